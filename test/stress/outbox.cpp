// Outbox stress test (API.md §5): publishers (plain publishes and routed appends, some rolled
// back, some holding their transaction open a moment) race two consumer groups of four workers
// each; workers nack at random (and always nack poison messages), and some are terminated (pg_terminate_backend) while holding
// claimed messages. At the end, for each group, every committed message was acked exactly once
// or sits in the dead letters after exactly max_attempts attempts; nothing rolled back was
// handed out; per key, the successful acks came in publish (id) order. Exits 1 on a mismatch.
//
// Connection parameters come from the libpq environment (PGHOST, PGPORT, PGUSER, PGDATABASE).
#include <libpq-fe.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

constexpr int kPublishers = 3;
constexpr int kWorkersPerGroup = 4;
constexpr int kMaxAttempts = 4;
constexpr int kKeys = 12;
constexpr auto kPublishFor = std::chrono::seconds(12);
constexpr auto kDeadline = std::chrono::seconds(55);
const char *kLease = "1500 milliseconds";

std::string topic, prefix;
std::atomic<bool> publishing{true}, consuming{true};
std::atomic<int> failures{0};

void fail(const std::string &what) {
  std::fprintf(stderr, "FAIL: %s\n", what.c_str());
  ++failures;
}

PGconn *connect_or_die() {
  PGconn *c = PQconnectdb("");
  if (PQstatus(c) != CONNECTION_OK) {
    std::fprintf(stderr, "connection failed: %s", PQerrorMessage(c));
    std::exit(2);
  }
  PQclear(PQexec(c, "SET client_min_messages = warning"));
  return c;
}

// Runs a statement; returns the result (caller clears) or nullptr on error (error in *err).
PGresult *run(PGconn *c, const std::string &sql, const std::vector<std::string> &params = {},
              std::string *err = nullptr) {
  std::vector<const char *> values;
  for (const auto &p : params) values.push_back(p.c_str());
  PGresult *r = PQexecParams(c, sql.c_str(), static_cast<int>(values.size()), nullptr,
                             values.data(), nullptr, nullptr, 0);
  ExecStatusType st = PQresultStatus(r);
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return r;
  if (err) {
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    *err = std::string(state ? state : "?????") + " " + PQerrorMessage(c);
  }
  PQclear(r);
  return nullptr;
}

void must(PGconn *c, const std::string &sql, const std::vector<std::string> &params = {}) {
  std::string err;
  PGresult *r = run(c, sql, params, &err);
  if (!r) {
    std::fprintf(stderr, "statement failed: %s\n%s\n", sql.c_str(), err.c_str());
    std::exit(2);
  }
  PQclear(r);
}

// ---- publishers ------------------------------------------------------------------------

struct PublisherLog {
  std::vector<long long> committed_ids, rolled_back_ids;
  long long routed_committed = 0, routed_rolled_back = 0, plain_committed = 0, deadlocks = 0;
};

void publisher(int n, PublisherLog &log) {
  PGconn *c = connect_or_die();
  std::mt19937 rng(1000 + n);
  std::uniform_int_distribution<int> pct(0, 99), key(0, kKeys - 1), count(1, 3);
  while (publishing) {
    std::vector<long long> ids;
    long long routed = 0;
    bool ok = true;
    must(c, "BEGIN");
    int messages = count(rng);
    for (int i = 0; i < messages && ok; ++i) {
      std::string err;
      if (pct(rng) < 60) {
        // about 3 % are poison: every worker nacks them, so they die after max_attempts
        PGresult *r = run(c, "SELECT es.outbox_publish($1, jsonb_build_object('p', $2::int, 'poison', $4::bool), $3)",
                          {topic, std::to_string(n), "k" + std::to_string(key(rng)),
                           pct(rng) < 3 ? "true" : "false"}, &err);
        if (!r) { ok = false; fail("publish: " + err); break; }
        ids.push_back(std::atoll(PQgetvalue(r, 0, 0)));
        PQclear(r);
      } else {
        PGresult *r = run(c, "SELECT es.append_event($1, NULL, 'Stressed', jsonb_build_object('p', $2::int))",
                          {prefix + std::to_string(key(rng)), std::to_string(n)}, &err);
        if (!r) {
          // Two publishers appending to the same streams in opposite order may deadlock
          // (the event table's unique index); the loser's transaction just rolls back.
          ok = false;
          if (err.rfind("40P01", 0) == 0) ++log.deadlocks;
          else fail("append: " + err);
          break;
        }
        ++routed;
        PQclear(r);
      }
    }
    if (pct(rng) < 20) std::this_thread::sleep_for(std::chrono::milliseconds(pct(rng) % 30));
    if (!ok || pct(rng) < 10) {
      must(c, "ROLLBACK");
      log.rolled_back_ids.insert(log.rolled_back_ids.end(), ids.begin(), ids.end());
      log.routed_rolled_back += routed;
    } else {
      std::string err;
      PGresult *r = run(c, "COMMIT", {}, &err);
      if (!r) { fail("commit: " + err); continue; }
      PQclear(r);
      log.committed_ids.insert(log.committed_ids.end(), ids.begin(), ids.end());
      log.plain_committed += static_cast<long long>(ids.size());
      log.routed_committed += routed;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(3 + pct(rng) % 10));
  }
  PQfinish(c);
}

// ---- consumers -------------------------------------------------------------------------

struct Ack {
  long long id;
  std::string key;
  Clock::time_point sent;  // taken before the ack was sent: orders acks of one key
};

struct GroupLog {
  std::string name;
  std::mutex mu;
  std::vector<Ack> acks;
  long long claims = 0, handed = 0, nacks = 0, ack_errors = 0, terminated = 0, deadlocks = 0;
};

struct WorkerState {
  std::atomic<bool> doomed{false};      // set by the killer: hold the next claim until killed
  std::atomic<int> ready_to_die{0};     // backend pid while holding, waiting to be killed
};

void worker(GroupLog &g, WorkerState &state, int n) {
  PGconn *c = connect_or_die();
  std::mt19937 rng(std::hash<std::string>{}(g.name) + n);
  std::uniform_int_distribution<int> pct(0, 99);
  while (consuming) {
    std::string err;
    PGresult *r = run(c, "SELECT id, key, coalesce(payload->>'poison', 'false') FROM es.outbox_claim($1, $2, 5, $3::interval) ORDER BY id",
                      {g.name, topic, kLease}, &err);
    if (!r && err.rfind("40P01", 0) == 0) {  // a claim may lose a deadlock to an ack: retry
      std::lock_guard<std::mutex> lock(g.mu);
      ++g.deadlocks;
      continue;
    }
    if (!r) { fail(g.name + " claim: " + err); break; }
    int rows = PQntuples(r);
    struct Claimed { long long id; std::string key; bool poison; };
    std::vector<Claimed> got;
    for (int i = 0; i < rows; ++i)
      got.push_back({std::atoll(PQgetvalue(r, i, 0)), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2)[0] == 't'});
    PQclear(r);
    {
      std::lock_guard<std::mutex> lock(g.mu);
      ++g.claims;
      g.handed += rows;
    }
    if (rows == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      continue;
    }
    if (state.doomed) {
      // Hold the claimed messages until the killer terminates this backend (or gives up).
      state.ready_to_die = PQbackendPID(c);
      bool killed = false;
      while (consuming && state.doomed && !killed) {
        PGresult *ping = PQexec(c, "SELECT pg_sleep(0.05)");
        killed = PQresultStatus(ping) != PGRES_TUPLES_OK;
        PQclear(ping);
      }
      PQfinish(c);  // the held messages come back when their lease ends
      c = connect_or_die();
      state.ready_to_die = 0;
      state.doomed = false;
      if (killed) {
        std::lock_guard<std::mutex> lock(g.mu);
        ++g.terminated;
      }
      continue;
    }
    for (auto &[id, key, poison] : got) {
      if (poison || pct(rng) < 12) {
        PGresult *x = run(c, "SELECT es.outbox_nack($1, $2, 'random failure', '20 milliseconds')",
                          {g.name, std::to_string(id)}, &err);
        std::lock_guard<std::mutex> lock(g.mu);
        if (x) { ++g.nacks; PQclear(x); } else { ++g.ack_errors; }
        continue;
      }
      Ack a{id, key, Clock::now()};
      PGresult *x = run(c, "SELECT es.outbox_ack($1, ARRAY[$2::bigint])", {g.name, std::to_string(id)}, &err);
      std::lock_guard<std::mutex> lock(g.mu);
      if (x) {
        g.acks.push_back(a);
        PQclear(x);
      } else if (err.rfind("ES043", 0) == 0 || err.rfind("ES042", 0) == 0) {
        ++g.ack_errors;  // lease ran out: the message comes again
      } else if (err.rfind("40P01", 0) == 0) {
        ++g.deadlocks;   // lost a deadlock to a claim: the message comes again
      } else {
        fail(g.name + " ack: " + err);
      }
    }
  }
  PQfinish(c);
}

void killer(std::vector<WorkerState> &states) {
  PGconn *c = connect_or_die();
  std::mt19937 rng(7);
  while (publishing) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    WorkerState &victim = states[rng() % states.size()];
    victim.doomed = true;
    for (int i = 0; i < 100 && victim.ready_to_die == 0 && consuming; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    int pid = victim.ready_to_die;
    if (pid != 0) must(c, "SELECT pg_terminate_backend($1::int)", {std::to_string(pid)});
    else victim.doomed = false;
  }
  PQfinish(c);
}

long long scalar(PGconn *c, const std::string &sql, const std::vector<std::string> &params = {}) {
  std::string err;
  PGresult *r = run(c, sql, params, &err);
  if (!r) { std::fprintf(stderr, "%s\n", err.c_str()); std::exit(2); }
  long long v = PQgetisnull(r, 0, 0) ? 0 : std::atoll(PQgetvalue(r, 0, 0));
  PQclear(r);
  return v;
}

}  // namespace

int main() {
  auto started = Clock::now();
  std::string run_id = std::to_string(getpid());
  topic = "stress-" + run_id;
  prefix = "outbox-stress-" + run_id + "-";
  PGconn *admin = connect_or_die();
  must(admin, "CREATE EXTENSION IF NOT EXISTS pg_eventstore");
  must(admin, "SELECT es.outbox_subscribe('stress-a', $1, $2::int)", {topic, std::to_string(kMaxAttempts)});
  must(admin, "SELECT es.outbox_subscribe('stress-b', $1, $2::int)", {topic, std::to_string(kMaxAttempts)});
  must(admin, "SELECT es.outbox_route($1, 'es.events', NULL, $2)", {topic, prefix});

  std::vector<PublisherLog> plog(kPublishers);
  GroupLog groups[2];
  groups[0].name = "stress-a";
  groups[1].name = "stress-b";
  std::vector<WorkerState> states(2 * kWorkersPerGroup);
  std::vector<std::thread> workers, publishers;
  for (int gi = 0; gi < 2; ++gi)
    for (int w = 0; w < kWorkersPerGroup; ++w)
      workers.emplace_back(worker, std::ref(groups[gi]), std::ref(states[gi * kWorkersPerGroup + w]), w);
  for (int p = 0; p < kPublishers; ++p) publishers.emplace_back(publisher, p, std::ref(plog[p]));
  std::thread kill_thread(killer, std::ref(states));

  std::this_thread::sleep_for(kPublishFor);
  publishing = false;
  for (auto &t : publishers) t.join();
  kill_thread.join();

  // Drain: both groups' cursors past the last message and no lane left.
  bool drained = false;
  while (Clock::now() - started < kDeadline) {
    long long open = scalar(admin,
        "SELECT count(*) FROM es._outbox_lanes l JOIN es._outbox_groups g USING (group_id) WHERE g.topic = $1",
        {topic});
    long long behind = scalar(admin,
        "SELECT count(*) FROM es._outbox_groups g WHERE g.topic = $1 AND es._outbox_intake_id(g.group_id) <"
        " (SELECT coalesce(max(id), 0) FROM es._outbox_messages WHERE topic = $1)", {topic});
    if (open == 0 && behind == 0) { drained = true; break; }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  consuming = false;
  for (auto &t : workers) t.join();
  if (!drained) fail("groups did not drain before the deadline");

  // What committed, according to the publishers and to the table.
  std::set<long long> committed_plain, rolled_back;
  long long routed_committed = 0, routed_rolled_back = 0, deadlocks = 0;
  for (auto &l : plog) {
    deadlocks += l.deadlocks;
    committed_plain.insert(l.committed_ids.begin(), l.committed_ids.end());
    rolled_back.insert(l.rolled_back_ids.begin(), l.rolled_back_ids.end());
    routed_committed += l.routed_committed;
    routed_rolled_back += l.routed_rolled_back;
  }
  std::map<long long, std::string> messages;  // id -> key
  std::set<long long> routed_in_table;
  {
    PGresult *r = run(admin, "SELECT id, key, headers ? 'event_id' FROM es._outbox_messages WHERE topic = $1",
                      {topic});
    for (int i = 0; i < PQntuples(r); ++i) {
      long long id = std::atoll(PQgetvalue(r, i, 0));
      messages[id] = PQgetvalue(r, i, 1);
      if (PQgetvalue(r, i, 2)[0] == 't') routed_in_table.insert(id);
    }
    PQclear(r);
  }
  for (long long id : committed_plain)
    if (!messages.count(id)) fail("committed message " + std::to_string(id) + " is missing");
  for (long long id : rolled_back)
    if (messages.count(id)) fail("rolled-back message " + std::to_string(id) + " exists");
  if (static_cast<long long>(routed_in_table.size()) != routed_committed)
    fail("routed messages: " + std::to_string(routed_in_table.size()) + " in the table, " +
         std::to_string(routed_committed) + " committed");
  if (messages.size() != committed_plain.size() + routed_in_table.size())
    fail("the table holds messages nobody committed");

  std::printf("published: %zu messages committed (%zu plain, %zu routed), %zu plain + %lld routed"
              " rolled back (%lld after an append deadlock)\n",
              messages.size(), committed_plain.size(), routed_in_table.size(), rolled_back.size(),
              routed_rolled_back, deadlocks);
  for (auto &g : groups) {
    std::map<long long, int> dead;  // id -> attempts
    PGresult *r = run(admin, "SELECT id, attempts FROM es.outbox_dead_letters WHERE consumer_group = $1 AND topic = $2",
                      {g.name, topic});
    for (int i = 0; i < PQntuples(r); ++i)
      dead[std::atoll(PQgetvalue(r, i, 0))] = std::atoi(PQgetvalue(r, i, 1));
    PQclear(r);
    std::map<long long, int> acked;
    for (auto &a : g.acks) ++acked[a.id];
    long long lost = 0, twice = 0, bad_dead = 0, foreign = 0;
    for (auto &[id, key] : messages) {
      int a = acked.count(id) ? acked[id] : 0;
      bool d = dead.count(id) > 0;
      if (a > 1) ++twice;
      if (a == 0 && !d) ++lost;
      if (a == 1 && d) ++twice;
      if (d && dead[id] != kMaxAttempts) ++bad_dead;
    }
    for (auto &[id, n] : acked)
      if (!messages.count(id)) ++foreign;
    // Per key: acks sorted by the time they were sent must have increasing ids.
    std::map<std::string, std::vector<Ack>> by_key;
    for (auto &a : g.acks) by_key[a.key].push_back(a);
    long long out_of_order = 0;
    for (auto &[key, list] : by_key) {
      std::sort(list.begin(), list.end(), [](const Ack &x, const Ack &y) { return x.sent < y.sent; });
      for (std::size_t i = 1; i < list.size(); ++i)
        if (list[i].id < list[i - 1].id) ++out_of_order;
    }
    std::printf("%s: %zu acked, %zu dead (all after %d attempts: %s), %lld claims handing out %lld,"
                " %lld nacks, %lld late acks refused, %lld deadlocks, %lld workers terminated holding messages;"
                " lost %lld, acked twice %lld, foreign %lld, key order violations %lld\n",
                g.name.c_str(), acked.size(), dead.size(), kMaxAttempts, bad_dead ? "NO" : "yes",
                g.claims, g.handed, g.nacks, g.ack_errors, g.deadlocks, g.terminated, lost, twice, foreign,
                out_of_order);
    if (lost) fail(g.name + ": messages neither acked nor dead");
    if (twice) fail(g.name + ": messages acked twice or acked and dead");
    if (bad_dead) fail(g.name + ": dead letters with attempts != max_attempts");
    if (foreign) fail(g.name + ": acks of messages that never committed");
    if (out_of_order) fail(g.name + ": per-key ack order differs from publish order");
  }
  long long terminated = groups[0].terminated + groups[1].terminated;
  if (terminated == 0) fail("no worker was terminated mid-claim: the test did not exercise it");

  must(admin, "SELECT es.outbox_unroute($1, 'es.events')", {topic});
  PQfinish(admin);
  double secs = std::chrono::duration<double>(Clock::now() - started).count();
  std::printf("%s in %.1f s\n", failures ? "FAILED" : "ok", secs);
  return failures ? 1 : 0;
}
