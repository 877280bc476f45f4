// Load client for the consumer crash test (test/t/011_crash_consumers.pl, API.md §4-§6). It
// publishes to the outbox (plain publishes and routed appends, some rolled back), claims and
// acks/nacks with two consumer groups, tails a subscription (next + ack) and refreshes an
// async projection from two connections at once, and writes one line per outcome to a log
// file, each only after the server confirmed it (COMMIT returned):
//   pub ID TAG | pubrb ID TAG              publish committed | rolled back
//   app POS,.. TAG ROUTED | apprb POS,.. TAG   append committed | rolled back (its positions)
// TAG (client pid.thread.call) is in the payload / event data as "t": ids and positions of
// rolled-back calls may be handed out again after a crash (sequences are WAL-logged ahead, and
// an aborted transaction does not flush), so rolled-back calls are looked for by tag.
//   claim GROUP ID ATTEMPTS TS             handed out (TS: server clock after the claim, µs)
//   ackreq GROUP ID | ack GROUP ID TS      ack sent | ack committed (TS: server clock before commit)
//   nackreq GROUP ID | nack GROUP ID       nack sent | nack committed
//   seen POS | suback POS                  subscription_next returned POS | ack committed
//   proj POS                               checkpoint read after a refresh committed
//   err ROLE SQLSTATE MESSAGE              an error that was not a lost connection
// The server is crashed under it: a thread stops at its first lost connection, the process
// when every thread stopped. Usage:
//   crash_consumers load  CONNINFO LOGFILE SECONDS   all roles until the crash (or SECONDS)
//   crash_consumers drain CONNINFO LOGFILE SECONDS   consumers only, until every message is
//                                                   acked or dead and subscription and
//                                                   projection are at the last event; exit 3
//                                                   when SECONDS pass first
#include <libpq-fe.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

namespace {

using Clock = std::chrono::steady_clock;

const char *kTopic = "crash";
const char *kLease = "4 seconds";

std::string conninfo;
std::atomic<bool> running{true};
std::FILE *log_file = nullptr;
std::mutex log_mu;

void log_line(const std::string &line) {
  std::lock_guard<std::mutex> lock(log_mu);
  std::fputs(line.c_str(), log_file);
  std::fputc('\n', log_file);
  std::fflush(log_file);
}

void sleep_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

// The outcome of one statement: ok, a lost connection (the crash), or another error.
enum class Outcome { kOk, kLost, kError };

struct Session {
  std::string role;
  PGconn *conn = nullptr;
  PGresult *result = nullptr;
  std::string sqlstate;

  explicit Session(std::string r) : role(std::move(r)) {}
  ~Session() {
    clear();
    if (conn) PQfinish(conn);
  }
  void clear() {
    if (result) PQclear(result);
    result = nullptr;
  }
  bool connect() {
    conn = PQconnectdb(conninfo.c_str());
    if (PQstatus(conn) != CONNECTION_OK) return false;
    PQclear(PQexec(conn, "SET client_min_messages = error"));
    return true;
  }
  // Runs one statement; on kOk the rows are in `result` until the next call.
  Outcome exec(const std::string &sql, const std::vector<std::string> &params = {}) {
    clear();
    std::vector<const char *> values;
    for (const auto &p : params) values.push_back(p.c_str());
    result = PQexecParams(conn, sql.c_str(), static_cast<int>(values.size()), nullptr,
                          values.data(), nullptr, nullptr, 0);
    ExecStatusType st = PQresultStatus(result);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return Outcome::kOk;
    const char *state = PQresultErrorField(result, PG_DIAG_SQLSTATE);
    sqlstate = state ? state : "";
    // Connection failures (no SQLSTATE, class 08) and the shutdown/crash terminations (57P0x).
    if (PQstatus(conn) != CONNECTION_OK || sqlstate.empty() || sqlstate.rfind("08", 0) == 0 ||
        sqlstate.rfind("57P0", 0) == 0)
      return Outcome::kLost;
    std::string message = PQresultErrorMessage(result);
    for (char &ch : message)
      if (ch == '\n') ch = ' ';
    log_line("err " + role + " " + sqlstate + " " + message);
    return Outcome::kError;
  }
  const char *value(int row, int col) const { return PQgetvalue(result, row, col); }
  int rows() const { return PQntuples(result); }
};

// Publishes plain messages or appends events (routed 'order-' streams, unrouted 'acc-'), in
// transactions of which about one in ten rolls back.
void publisher(int n) {
  Session s("publisher");
  if (!s.connect()) return;
  std::mt19937 rng(7919 * n + static_cast<unsigned>(std::time(nullptr)));
  std::uniform_int_distribution<int> pct(0, 99), key(0, 7), count(1, 3);
  long seq = 0;
  std::string tag_prefix = std::to_string(getpid()) + "." + std::to_string(n) + ".";
  while (running) {
    std::string tag = tag_prefix + std::to_string(++seq);
    if (s.exec("BEGIN") != Outcome::kOk) return;
    std::vector<std::string> done;  // log lines, written only once COMMIT returned
    std::vector<std::string> undone;
    bool ok = true;
    int kind = pct(rng);
    if (kind < 40) {
      for (int i = count(rng); i > 0 && ok; --i) {
        std::string k = pct(rng) < 30 ? "" : "k" + std::to_string(key(rng));
        std::string msg_tag = tag + "." + std::to_string(i);
        Outcome o = s.exec("SELECT es.outbox_publish($1, jsonb_build_object('p', $2::int, 't', $3::text), "
                           "nullif($4, ''))",
                           {kTopic, std::to_string(n), msg_tag, k});
        if (o == Outcome::kLost) return;
        ok = o == Outcome::kOk;
        if (ok) {
          done.push_back(std::string("pub ") + s.value(0, 0) + " " + msg_tag);
          undone.push_back(std::string("pubrb ") + s.value(0, 0) + " " + msg_tag);
        }
      }
    } else {
      bool routed = kind < 80;
      std::string stream = (routed ? "order-" : "acc-") + std::to_string(key(rng));
      std::string events = "[";
      for (int i = count(rng); i > 0; --i)
        events += std::string(events.size() > 1 ? "," : "") + "{\"type\":\"Crashed\",\"data\":{\"t\":\"" +
                  tag + "\"}}";
      events += "]";
      // Positions of one call increase but need not be consecutive (concurrent appends
      // interleave): read them back in the transaction.
      Outcome o = s.exec("SELECT first_version, last_version FROM es.append($1, NULL, $2::jsonb)",
                         {stream, events});
      if (o == Outcome::kOk)
        o = s.exec("SELECT string_agg(global_position::text, ',' ORDER BY global_position)"
                   "  FROM es.events WHERE stream_id = $1 AND stream_version BETWEEN $2 AND $3",
                   {stream, s.value(0, 0), s.value(0, 1)});
      if (o == Outcome::kLost) return;
      ok = o == Outcome::kOk;
      if (ok) {
        std::string positions = s.value(0, 0);
        done.push_back("app " + positions + " " + tag + (routed ? " 1" : " 0"));
        undone.push_back("apprb " + positions + " " + tag);
      }
    }
    if (!ok || pct(rng) < 10) {
      if (s.exec("ROLLBACK") != Outcome::kOk) return;
      for (const auto &line : undone) log_line(line);
    } else {
      Outcome o = s.exec("COMMIT");
      if (o != Outcome::kOk) return;  // a COMMIT without an answer is neither logged nor counted
      for (const auto &line : done) log_line(line);
    }
    sleep_ms(2 + pct(rng) % 8);
  }
}

// One worker of a consumer group: claims, nacks some (nack_pct) and acks the rest in one call.
void consumer(const std::string &group, int nack_pct, int n, bool draining) {
  Session s("consumer-" + group);
  if (!s.connect()) return;
  std::mt19937 rng(104729 * n + static_cast<unsigned>(std::time(nullptr)));
  std::uniform_int_distribution<int> pct(0, 99);
  while (running) {
    Outcome o = s.exec("SELECT id, attempts, (extract(epoch FROM clock_timestamp()) * 1e6)::bigint"
                       "  FROM es.outbox_claim($1, $2, 10, $3::interval) ORDER BY id",
                       {group, kTopic, kLease});
    if (o == Outcome::kLost) return;
    if (o != Outcome::kOk || s.rows() == 0) {
      sleep_ms(draining ? 50 : 20);
      continue;
    }
    std::vector<std::string> ids;
    for (int i = 0; i < s.rows(); ++i) {
      ids.push_back(s.value(i, 0));
      log_line("claim " + group + " " + s.value(i, 0) + " " + s.value(i, 1) + " " + s.value(i, 2));
    }
    std::string array = "{";
    std::vector<std::string> acked;
    for (const auto &id : ids) {
      if (pct(rng) < nack_pct) {
        log_line("nackreq " + group + " " + id);
        o = s.exec("SELECT es.outbox_nack($1, $2::bigint, 'crash test', '0 seconds')", {group, id});
        if (o == Outcome::kLost) return;
        if (o == Outcome::kOk) log_line("nack " + group + " " + id);
      } else {
        array += (acked.empty() ? "" : ",") + id;
        acked.push_back(id);
      }
    }
    array += "}";
    if (acked.empty()) continue;
    for (const auto &id : acked) log_line("ackreq " + group + " " + id);
    // OFFSET 0 keeps the ack in a subquery evaluated before the clock is read.
    o = s.exec("SELECT (extract(epoch FROM clock_timestamp()) * 1e6)::bigint"
               "  FROM (SELECT es.outbox_ack($1, $2::bigint[]) OFFSET 0) a",
               {group, array});
    if (o == Outcome::kLost) return;
    if (o == Outcome::kOk) {
      std::string ts = s.value(0, 0);
      for (const auto &id : acked) log_line("ack " + group + " " + id + " " + ts);
    }
  }
}

// Tails the subscription: next, then ack the last position returned.
void subscriber(bool draining) {
  Session s("subscriber");
  if (!s.connect()) return;
  std::string page = draining ? "2000" : "200";
  while (running) {
    Outcome o = s.exec("SELECT global_position FROM es.subscription_next('sub', $1::int)", {page});
    if (o == Outcome::kLost) return;
    if (o != Outcome::kOk || s.rows() == 0) {
      sleep_ms(20);
      continue;
    }
    std::string last;
    for (int i = 0; i < s.rows(); ++i) {
      log_line(std::string("seen ") + s.value(i, 0));
      last = s.value(i, 0);
    }
    o = s.exec("SELECT es.subscription_ack('sub', $1::bigint)", {last});
    if (o == Outcome::kLost) return;
    if (o == Outcome::kOk) log_line("suback " + last);
  }
}

// Refreshes the async projection, mostly in bounded steps, sometimes without a bound.
void refresher(int n, bool draining) {
  Session s("refresher");
  if (!s.connect()) return;
  std::mt19937 rng(15485863 * n + static_cast<unsigned>(std::time(nullptr)));
  std::uniform_int_distribution<int> pct(0, 99), step(20, 400);
  while (running) {
    std::string max_events = draining || pct(rng) < 10 ? "" : std::to_string(step(rng));
    Outcome o = s.exec("SELECT es.projection_refresh('rm', nullif($1, '')::int)", {max_events});
    if (o == Outcome::kLost) return;
    if (o == Outcome::kOk) {
      o = s.exec("SELECT position FROM es._projections WHERE name = 'rm'");
      if (o == Outcome::kLost) return;
      if (o == Outcome::kOk) log_line(std::string("proj ") + s.value(0, 0));
    }
    sleep_ms(10 + pct(rng) % 30);
  }
}

// Drain mode: true once nothing is outstanding for either group and subscription and
// projection passed the last event.
bool drained(Session &s) {
  Outcome o = s.exec(
      "SELECT NOT EXISTS (SELECT 1 FROM es._outbox_lanes)"
      "   AND (SELECT bool_and(es._outbox_intake_id(g.group_id) >= (SELECT coalesce(max(m.id), 0) FROM es._outbox_messages m"
      "                                         WHERE m.topic = g.topic)) FROM es._outbox_groups g)"
      "   AND (SELECT position FROM es._subscriptions WHERE name = 'sub')"
      "       >= (SELECT coalesce(max(global_position), 0) FROM es.events)"
      "   AND (SELECT position FROM es._projections WHERE name = 'rm')"
      "       >= (SELECT coalesce(max(global_position), 0) FROM es.events)");
  return o == Outcome::kOk && std::strcmp(s.value(0, 0), "t") == 0;
}

}  // namespace

int main(int argc, char **argv) {
  if (argc != 5 || (std::strcmp(argv[1], "load") != 0 && std::strcmp(argv[1], "drain") != 0)) {
    std::fprintf(stderr, "usage: %s load|drain CONNINFO LOGFILE SECONDS\n", argv[0]);
    return 2;
  }
  bool draining = std::strcmp(argv[1], "drain") == 0;
  conninfo = argv[2];
  log_file = std::fopen(argv[3], "a");
  if (!log_file) {
    std::perror(argv[3]);
    return 2;
  }
  auto deadline = Clock::now() + std::chrono::seconds(std::atoi(argv[4]));

  std::vector<std::thread> threads;
  if (!draining)
    for (int i = 1; i <= 2; ++i) threads.emplace_back(publisher, i);
  threads.emplace_back(consumer, "g1", 5, 1, draining);
  threads.emplace_back(consumer, "g1", 5, 2, draining);
  threads.emplace_back(consumer, "g2", 15, 3, draining);
  threads.emplace_back(subscriber, draining);
  threads.emplace_back(refresher, 1, draining);
  threads.emplace_back(refresher, 2, draining);

  int status = 0;
  std::thread watchdog;
  if (draining) {
    Session monitor("monitor");
    if (!monitor.connect()) return 2;
    while (!drained(monitor)) {
      if (Clock::now() > deadline) {
        status = 3;
        break;
      }
      sleep_ms(200);
    }
    running = false;
  } else {
    // Threads stop on their own at the crash; the deadline is a safety net.
    watchdog = std::thread([deadline] {
      while (running && Clock::now() < deadline) sleep_ms(100);
      running = false;
    });
  }
  for (auto &t : threads) t.join();
  running = false;
  if (watchdog.joinable()) watchdog.join();
  std::fclose(log_file);
  return status;
}
