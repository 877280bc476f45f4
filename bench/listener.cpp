// A LISTENing subscriber for the benchmarks (bench/run): connects with the libpq environment,
// starts the relay (es.relay_start), evaluates CHANNEL_SQL (a query returning one channel name,
// e.g. "SELECT es.store_channel('es.events')"), LISTENs on it, prints "listening" and then
// consumes notifications until SIGTERM/SIGINT, when it prints how many it received.
//
//   listener DBNAME CHANNEL_SQL
#include <libpq-fe.h>
#include <poll.h>

#include <csignal>
#include <cstdio>
#include <string>

namespace {

volatile std::sig_atomic_t stop = 0;

void on_signal(int) { stop = 1; }

bool exec_ok(PGconn *c, const std::string &sql, std::string *value = nullptr) {
  PGresult *r = PQexec(c, sql.c_str());
  const bool ok = PQresultStatus(r) == PGRES_TUPLES_OK || PQresultStatus(r) == PGRES_COMMAND_OK;
  if (!ok) std::fprintf(stderr, "listener: %s: %s", sql.c_str(), PQerrorMessage(c));
  if (ok && value && PQntuples(r) == 1) *value = PQgetvalue(r, 0, 0);
  PQclear(r);
  return ok;
}

}  // namespace

int main(int argc, char **argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: listener DBNAME CHANNEL_SQL\n");
    return 2;
  }
  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  std::string conninfo = std::string("dbname=") + argv[1];
  PGconn *c = PQconnectdb(conninfo.c_str());
  if (PQstatus(c) != CONNECTION_OK) {
    std::fprintf(stderr, "listener: %s", PQerrorMessage(c));
    return 1;
  }
  std::string channel;
  if (!exec_ok(c, "SELECT es.relay_start()") || !exec_ok(c, argv[2], &channel) || channel.empty()) {
    PQfinish(c);
    return 1;
  }
  char *quoted = PQescapeIdentifier(c, channel.c_str(), channel.size());
  const bool listening = exec_ok(c, std::string("LISTEN ") + quoted);
  PQfreemem(quoted);
  if (!listening) {
    PQfinish(c);
    return 1;
  }
  std::printf("listening\n");
  std::fflush(stdout);
  long received = 0;
  while (!stop) {
    pollfd pfd{PQsocket(c), POLLIN, 0};
    if (poll(&pfd, 1, 200) < 0) continue;  // EINTR: the loop condition decides
    if (!PQconsumeInput(c)) {
      std::fprintf(stderr, "listener: %s", PQerrorMessage(c));
      break;
    }
    while (PGnotify *n = PQnotifies(c)) {
      ++received;
      PQfreemem(n);
    }
  }
  std::printf("received %ld\n", received);
  PQfinish(c);
  return 0;
}
