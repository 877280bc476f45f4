// Store notifications end to end (API.md §4): a listener on es.store_channel(store) is woken by
// the relay after an appending transaction commits — not while it is open, and never for one
// that rolled back — and, under ~1,000 appends/s from several writers (some rolled back), every
// committed position is covered by a notification whose payload is a committed position.
// Prints commit-to-wake latency p50/p99 (the target, p99 < 10 ms, is printed, not asserted).
// Then the same for the outbox's channel: woken after a publishing commit (payload: the message
// id), not while it is open, not for a rolled-back publish, once for ten messages in one commit.
// Works in a database of its own (es_notify_stress), dropped and re-created on each run: that
// also checks that a running relay does not hold up DROP DATABASE.
//
// Connection parameters come from the libpq environment (PGHOST, PGPORT, PGUSER, PGDATABASE).
#include <libpq-fe.h>
#include <poll.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

constexpr const char *kDatabase = "es_notify_stress";
constexpr int kWriters = 8;
constexpr int kTargetRate = 1000;  // appends per second, all writers together
constexpr auto kLoadFor = std::chrono::seconds(10);
constexpr double kRollbackShare = 0.05;
constexpr auto kQuietWindow = std::chrono::milliseconds(500);
constexpr auto kWakeTimeout = std::chrono::seconds(3);

int failures = 0;

void fail(const std::string &what) {
  std::fprintf(stderr, "FAIL: %s\n", what.c_str());
  ++failures;
}

PGconn *connect_or_die(const char *dbname) {
  std::string conninfo = dbname ? std::string("dbname=") + dbname : std::string();
  PGconn *c = PQconnectdb(conninfo.c_str());
  if (PQstatus(c) != CONNECTION_OK) {
    std::fprintf(stderr, "connection failed: %s", PQerrorMessage(c));
    std::exit(2);
  }
  PQclear(PQexec(c, "SET client_min_messages = warning"));
  return c;
}

// Runs a statement and returns its first value ("" when none); exits on error.
std::string must(PGconn *c, const std::string &sql) {
  PGresult *r = PQexec(c, sql.c_str());
  ExecStatusType st = PQresultStatus(r);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    std::fprintf(stderr, "statement failed: %s\n%s", sql.c_str(), PQerrorMessage(c));
    std::exit(2);
  }
  std::string value = PQntuples(r) > 0 && PQnfields(r) > 0 ? PQgetvalue(r, 0, 0) : "";
  PQclear(r);
  return value;
}

struct Notification {
  long long payload;
  Clock::time_point at;
};

// Waits up to `timeout` for notifications on `channel`; returns those received.
std::vector<Notification> wait_notifications(PGconn *listener, const std::string &channel,
                                             Clock::duration timeout, bool stop_at_first) {
  std::vector<Notification> got;
  auto deadline = Clock::now() + timeout;
  for (;;) {
    PQconsumeInput(listener);
    while (PGnotify *n = PQnotifies(listener)) {
      if (channel == n->relname) got.push_back({std::atoll(n->extra), Clock::now()});
      PQfreemem(n);
    }
    if (stop_at_first && !got.empty()) return got;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return got;
    pollfd pfd{PQsocket(listener), POLLIN, 0};
    ::poll(&pfd, 1, static_cast<int>(left.count()));
  }
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  std::size_t i = static_cast<std::size_t>(p * (v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

struct Commit {
  long long position;
  Clock::time_point at;
};

}  // namespace

int main() {
  // A database of our own; a relay left running in it by a previous run must not block this.
  {
    PGconn *admin = connect_or_die(nullptr);
    auto start = Clock::now();
    must(admin, std::string("DROP DATABASE IF EXISTS ") + kDatabase);
    double drop_s = std::chrono::duration<double>(Clock::now() - start).count();
    std::printf("drop database: %.2f s\n", drop_s);
    if (drop_s > 4.0) fail("DROP DATABASE waited for the relay");
    must(admin, std::string("CREATE DATABASE ") + kDatabase);
    PQfinish(admin);
  }
  PGconn *setup = connect_or_die(kDatabase);
  must(setup, "CREATE EXTENSION pg_eventstore");
  must(setup, "SELECT es.create_event_table('notify_store')");
  PQfinish(setup);

  PGconn *listener = connect_or_die(kDatabase);
  std::string channel = must(listener, "SELECT es.listen('notify_store')");
  std::printf("channel: %s\n", channel.c_str());
  bool running = false;
  for (int i = 0; i < 100 && !running; ++i) {
    running = must(listener, "SELECT running FROM es.relay_status()") == "t";
    if (!running) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (!running) {
    fail("the relay did not start");
    return 1;
  }
  wait_notifications(listener, channel, kQuietWindow, false);  // a fresh relay's first doorbell

  PGconn *writer = connect_or_die(kDatabase);
  const std::string append =
      "SELECT last_position FROM es.append_event('s-' || (random() * 100)::int, NULL, 'T',"
      " '{}', store => 'notify_store')";

  // 1. Woken after commit, not before.
  must(writer, "BEGIN");
  long long open_position = std::atoll(must(writer, append).c_str());
  auto early = wait_notifications(listener, channel, kQuietWindow, false);
  if (!early.empty())
    fail("notified while the appending transaction was open (payload " +
         std::to_string(early[0].payload) + ")");
  must(writer, "COMMIT");
  auto committed_at = Clock::now();
  auto woken = wait_notifications(listener, channel, kWakeTimeout, true);
  if (woken.empty()) {
    fail("no notification after commit");
  } else {
    if (woken[0].payload != open_position)
      fail("payload " + std::to_string(woken[0].payload) + ", expected " +
           std::to_string(open_position));
    std::printf("after commit: woken in %.2f ms, payload %lld\n",
                std::chrono::duration<double, std::milli>(woken[0].at - committed_at).count(),
                woken[0].payload);
  }

  // 2. Not at all for a rolled-back append; the next commit is announced with its own position.
  must(writer, "BEGIN");
  long long rolled_back = std::atoll(must(writer, append).c_str());
  must(writer, "ROLLBACK");
  auto after_rollback = wait_notifications(listener, channel, kQuietWindow, false);
  if (!after_rollback.empty())
    fail("notified for a rolled-back append (payload " +
         std::to_string(after_rollback[0].payload) + ", rolled back " +
         std::to_string(rolled_back) + ")");
  long long next = std::atoll(must(writer, append).c_str());
  woken = wait_notifications(listener, channel, kWakeTimeout, true);
  if (woken.empty() || woken[0].payload != next)
    fail("the append after a rollback was not announced with its position");
  std::printf("rollback: no notification; next append (%lld > %lld) announced\n", next,
              rolled_back);
  PQfinish(writer);

  // 3. Load: kWriters writers, kTargetRate appends/s together, some rolled back.
  std::mutex mu;
  std::vector<Commit> commits;
  std::set<long long> aborted;
  std::atomic<bool> loading{true};
  std::vector<std::thread> writers;
  auto load_start = Clock::now();
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      PGconn *c = connect_or_die(kDatabase);
      std::mt19937 rng(w);
      std::uniform_real_distribution<double> coin(0, 1);
      auto period = std::chrono::microseconds(1000000LL * kWriters / kTargetRate);
      auto due = Clock::now() + period * w / kWriters;
      while (Clock::now() - load_start < kLoadFor) {
        std::this_thread::sleep_until(due);
        due += period;
        bool rollback = coin(rng) < kRollbackShare;
        if (rollback) {
          must(c, "BEGIN");
          long long p = std::atoll(must(c, append).c_str());
          must(c, "ROLLBACK");
          std::lock_guard<std::mutex> g(mu);
          aborted.insert(p);
        } else {
          long long p = std::atoll(must(c, append).c_str());
          auto at = Clock::now();
          std::lock_guard<std::mutex> g(mu);
          commits.push_back({p, at});
        }
      }
      PQfinish(c);
    });
  }
  std::vector<Notification> heard;
  while (Clock::now() - load_start < kLoadFor) {
    auto got = wait_notifications(listener, channel, std::chrono::milliseconds(100), false);
    heard.insert(heard.end(), got.begin(), got.end());
  }
  for (auto &t : writers) t.join();
  double load_s = std::chrono::duration<double>(Clock::now() - load_start).count();
  auto tail = wait_notifications(listener, channel, std::chrono::seconds(1), false);
  heard.insert(heard.end(), tail.begin(), tail.end());

  // Reconcile: payloads are committed positions, non-decreasing; every commit is covered.
  std::set<long long> committed;
  for (const auto &c : commits) committed.insert(c.position);
  for (std::size_t i = 0; i < heard.size(); ++i) {
    if (aborted.count(heard[i].payload))
      fail("payload " + std::to_string(heard[i].payload) + " is a rolled-back position");
    else if (!committed.count(heard[i].payload))
      fail("payload " + std::to_string(heard[i].payload) + " is not a committed position");
    if (i > 0 && heard[i].payload < heard[i - 1].payload)
      fail("payloads went backwards: " + std::to_string(heard[i - 1].payload) + " then " +
           std::to_string(heard[i].payload));
  }
  std::vector<double> latency_ms;
  std::size_t uncovered = 0;
  for (const auto &c : commits) {
    auto it = std::lower_bound(heard.begin(), heard.end(), c.position,
                               [](const Notification &n, long long p) { return n.payload < p; });
    if (it == heard.end()) {
      ++uncovered;
      continue;
    }
    latency_ms.push_back(
        std::max(0.0, std::chrono::duration<double, std::milli>(it->at - c.at).count()));
  }
  if (uncovered > 0) fail(std::to_string(uncovered) + " committed appends never announced");
  std::printf("load: %zu commits + %zu rollbacks in %.1f s (%.0f appends/s), %zu notifications\n",
              commits.size(), aborted.size(), load_s, (commits.size() + aborted.size()) / load_s,
              heard.size());
  std::printf("commit-to-wake latency: p50 %.2f ms, p99 %.2f ms, max %.2f ms (target p99 < 10 ms)\n",
              percentile(latency_ms, 0.50), percentile(latency_ms, 0.99),
              percentile(latency_ms, 1.0));

  // 4. The outbox (API.md §5): a listener on es.outbox_channel(topic) is woken after a
  // publishing commit, with the message id, not while the transaction is open, not for a
  // rolled-back publish; ten messages in one transaction make one notification.
  {
    PGconn *outbox_listener = connect_or_die(kDatabase);
    std::string topic_channel = must(outbox_listener, "SELECT es.outbox_channel('notify_topic')");
    must(outbox_listener, "LISTEN \"" + topic_channel + "\"");
    PGconn *publisher = connect_or_die(kDatabase);
    const std::string publish = "SELECT es.outbox_publish('notify_topic', '{\"n\": 1}')";
    must(publisher, "BEGIN");
    long long id = std::atoll(must(publisher, publish).c_str());
    auto open = wait_notifications(outbox_listener, topic_channel, kQuietWindow, false);
    if (!open.empty()) fail("outbox: notified while the publishing transaction was open");
    must(publisher, "COMMIT");
    auto at = Clock::now();
    auto got = wait_notifications(outbox_listener, topic_channel, kWakeTimeout, true);
    if (got.empty() || got[0].payload != id)
      fail("outbox: no notification with message id " + std::to_string(id) + " after commit");
    else
      std::printf("outbox: woken %.2f ms after the publishing commit, payload %lld\n",
                  std::chrono::duration<double, std::milli>(got[0].at - at).count(), id);
    must(publisher, "BEGIN");
    long long gone = std::atoll(must(publisher, publish).c_str());
    must(publisher, "ROLLBACK");
    auto rolled = wait_notifications(outbox_listener, topic_channel, kQuietWindow, false);
    if (!rolled.empty())
      fail("outbox: notified for a rolled-back publish (id " + std::to_string(gone) + ")");
    long long last = std::atoll(must(publisher,
        "SELECT max(es.outbox_publish('notify_topic', jsonb_build_object('n', i)))"
        " FROM generate_series(1, 10) i").c_str());
    auto batch = wait_notifications(outbox_listener, topic_channel, kQuietWindow * 2, false);
    if (batch.size() != 1 || batch[0].payload != last)
      fail("outbox: ten messages in one commit made " + std::to_string(batch.size()) +
           " notifications (expected one, payload " + std::to_string(last) + ")");
    else
      std::printf("outbox: rollback not announced; 10 messages in one commit, 1 notification\n");
    PQfinish(publisher);
    PQfinish(outbox_listener);
  }

  PQfinish(listener);

  if (failures > 0) {
    std::printf("notify: %d failure(s)\n", failures);
    return 1;
  }
  std::printf("notify: ok\n");
  return 0;
}
