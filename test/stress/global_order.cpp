// Stress test of the commit-safe global order (API.md §3, DESIGN-NOTES.md §1).
//
// Many writers (one libpq connection each) append to many streams of one store; each sleeps a
// random time inside its transaction, so they commit in random order; ~10 % roll back, some
// append inside savepoints that are rolled back, a few go through PREPARE TRANSACTION. One
// tailing reader uses only es.read_all(after_position => last). An unrelated session holds a
// transaction with an assigned xid open for the whole run.
//
// At the end it reconciles exactly: the reader saw exactly the committed events (by event id),
// each once, in strictly increasing position order; the store holds exactly the committed
// events; and the reader caught up to within --lag-bound positions of the sequence's head in
// every --lag-window while the unrelated transaction was open. Exit status 0 only if all hold.
//
// Proving the checks can fail: --naive replaces the reader's read_all with a plain
// `WHERE global_position > last` query (the reconciliation reports skips); --xmin reads only
// rows whose inserting xid is below the snapshot's xmin, the design that stalls behind any
// long transaction (the lag check fails: the unrelated transaction holds it back).
//
// Connection parameters come from the environment (PGHOST, PGPORT, PGUSER, PGDATABASE).

#include <libpq-fe.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  int writers = 20;
  int seconds = 30;         // how long the writers write
  int streams = 1000;
  int page_size = 500;      // max_count of each read_all
  int lag_window_ms = 2000;
  int64_t lag_bound = 1000;  // positions behind the sequence's head, once per window
  bool naive = false;
  bool xmin = false;
  bool keep = false;         // keep the store afterwards
  std::string store = "stress_global_order";
};

// Owns a PGresult.
struct ResultDeleter {
  void operator()(PGresult *r) const { PQclear(r); }
};
using Result = std::unique_ptr<PGresult, ResultDeleter>;

// One libpq connection; errors become exceptions unless the caller asks for the result.
class Connection {
 public:
  explicit Connection(const char *application_name) {
    conn_ = PQconnectdb("");
    if (PQstatus(conn_) != CONNECTION_OK)
      throw std::runtime_error(std::string("connection failed: ") + PQerrorMessage(conn_));
    command(std::string("SET application_name = '") + application_name + "'");
    command("SET statement_timeout = '60s'");
    command("SET lock_timeout = '20s'");
    command("SET client_min_messages = warning");
  }
  ~Connection() { PQfinish(conn_); }
  Connection(const Connection &) = delete;
  Connection &operator=(const Connection &) = delete;

  // Runs a statement; returns false (and keeps the SQLSTATE) when the server reports an error.
  bool try_command(const std::string &sql) {
    Result r(PQexec(conn_, sql.c_str()));
    return check(r.get(), sql);
  }
  void command(const std::string &sql) {
    if (!try_command(sql)) throw std::runtime_error(sql + ": " + last_error_);
  }
  Result query(const std::string &sql, const std::vector<std::string> &params = {}) {
    Result r = try_query(sql, params);
    if (!r) throw std::runtime_error(sql + ": " + last_error_);
    return r;
  }
  // nullptr on a server error.
  Result try_query(const std::string &sql, const std::vector<std::string> &params = {}) {
    std::vector<const char *> values;
    for (const std::string &p : params) values.push_back(p.c_str());
    Result r(PQexecParams(conn_, sql.c_str(), static_cast<int>(values.size()), nullptr,
                          values.data(), nullptr, nullptr, 0));
    if (!check(r.get(), sql)) return nullptr;
    return r;
  }
  const std::string &last_error() const { return last_error_; }
  const std::string &last_sqlstate() const { return last_sqlstate_; }

 private:
  bool check(PGresult *r, const std::string &sql) {
    ExecStatusType s = PQresultStatus(r);
    if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK) return true;
    if (PQstatus(conn_) != CONNECTION_OK)
      throw std::runtime_error(sql + ": connection lost: " + PQerrorMessage(conn_));
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
    last_sqlstate_ = state ? state : "";
    last_error_ = r ? PQresultErrorMessage(r) : PQerrorMessage(conn_);
    return false;
  }
  PGconn *conn_;
  std::string last_error_, last_sqlstate_;
};

void sleep_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

std::string new_uuid(std::mt19937_64 &rng) {
  uint64_t hi = rng(), lo = rng();
  hi = (hi & ~uint64_t{0xF000}) | 0x4000;                       // version 4
  lo = (lo & ~(uint64_t{0xC} << 60)) | (uint64_t{0x8} << 60);  // RFC 4122 variant
  char out[37];
  std::snprintf(out, sizeof out, "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(hi >> 32),
                static_cast<unsigned>((hi >> 16) & 0xFFFF), static_cast<unsigned>(hi & 0xFFFF),
                static_cast<unsigned>(lo >> 48),
                static_cast<unsigned long long>(lo & 0xFFFFFFFFFFFFULL));
  return out;
}

// What one writer did; read by main after the writer's thread has joined.
struct WriterLog {
  std::vector<std::string> committed;   // event ids whose transaction committed
  std::vector<std::string> discarded;   // event ids rolled back (transaction or savepoint)
  long transactions = 0, commits = 0, rollbacks = 0, savepoint_rollbacks = 0, prepared = 0,
       errors = 0;
  std::string failure;  // non-empty: the writer could not go on
};

struct LagSample {
  double at_seconds;
  int64_t lag;
};

// What the reader saw.
struct ReaderLog {
  std::vector<std::string> seen;  // event ids in the order read
  long order_violations = 0;      // a position at or below the previous one
  long polls = 0;
  std::vector<double> read_ms;    // duration of each read_all call
  std::vector<LagSample> lag;     // sequence head − last position, whenever caught up
  bool drained = false;
  std::string failure;
};

struct Shared {
  Options options;
  std::string store_literal;  // the store as a quoted SQL identifier
  std::string sequence;       // the store's position sequence (regclass text)
  Clock::time_point start;
  Clock::time_point writers_deadline;
  std::atomic<bool> writers_done{false};
};

// Appends `count` events with client-generated ids to a random stream; false on an error
// (deadlock, lock timeout): the caller rolls back.
bool append_batch(Connection &db, const Shared &shared, std::mt19937_64 &rng, int writer,
                  std::vector<std::string> &ids) {
  int count = 1 + static_cast<int>(rng() % 3);
  std::string stream = "s-" + std::to_string(rng() % shared.options.streams);
  std::string batch = "[";
  for (int i = 0; i < count; ++i) {
    std::string id = new_uuid(rng);
    ids.push_back(id);
    if (i) batch += ",";
    batch += "{\"type\":\"Stressed\",\"id\":\"" + id + "\",\"data\":{\"writer\":" +
             std::to_string(writer) + "}}";
  }
  batch += "]";
  Result r = db.try_query("SELECT last_position FROM es.append($1, NULL, $2::jsonb, NULL, $3::regclass)",
                          {stream, batch, shared.options.store});
  if (!r) {
    ids.resize(ids.size() - count);
    return false;
  }
  return true;
}

void run_writer(int writer, Shared &shared, WriterLog &log) {
  try {
    Connection db(("stress_go_writer_" + std::to_string(writer)).c_str());
    std::mt19937_64 rng(std::random_device{}() ^ (uint64_t(writer) << 32));
    auto percent = [&] { return static_cast<int>(rng() % 100); };
    while (Clock::now() < shared.writers_deadline) {
      ++log.transactions;
      std::vector<std::string> pending, rolled_back;
      db.command("BEGIN");
      bool failed = false;
      int calls = 1 + static_cast<int>(rng() % 3);
      for (int c = 0; c < calls && !failed; ++c) {
        bool in_savepoint = percent() < 25;
        if (in_savepoint) db.command("SAVEPOINT sp");
        std::vector<std::string> ids;
        if (!append_batch(db, shared, rng, writer, ids)) {
          failed = true;
          break;
        }
        sleep_ms(static_cast<int>(rng() % 30));
        if (in_savepoint && percent() < 40) {
          db.command("ROLLBACK TO SAVEPOINT sp");
          ++log.savepoint_rollbacks;
          rolled_back.insert(rolled_back.end(), ids.begin(), ids.end());
        } else {
          if (in_savepoint) db.command("RELEASE SAVEPOINT sp");
          pending.insert(pending.end(), ids.begin(), ids.end());
        }
      }
      auto discard_all = [&] {
        log.discarded.insert(log.discarded.end(), pending.begin(), pending.end());
        log.discarded.insert(log.discarded.end(), rolled_back.begin(), rolled_back.end());
      };
      if (failed) {
        ++log.errors;
        db.command("ROLLBACK");
        discard_all();
        continue;
      }
      sleep_ms(static_cast<int>(rng() % 50));
      int ending = percent();
      bool committed;
      if (ending < 10) {
        db.command("ROLLBACK");
        committed = false;
      } else if (writer < 2 && ending < 20) {
        // Two-phase: the prepared transaction keeps holding readers back until it is finished.
        std::string gid = "stress_go_" + std::to_string(writer) + "_" + std::to_string(log.transactions);
        db.command("PREPARE TRANSACTION '" + gid + "'");
        ++log.prepared;
        sleep_ms(static_cast<int>(rng() % 50));
        committed = percent() >= 30;
        db.command((committed ? "COMMIT PREPARED '" : "ROLLBACK PREPARED '") + gid + "'");
      } else {
        // An error reply to COMMIT means the transaction rolled back.
        committed = db.try_command("COMMIT");
        if (!committed) ++log.errors;
      }
      log.discarded.insert(log.discarded.end(), rolled_back.begin(), rolled_back.end());
      if (committed) {
        ++log.commits;
        log.committed.insert(log.committed.end(), pending.begin(), pending.end());
      } else {
        ++log.rollbacks;
        log.discarded.insert(log.discarded.end(), pending.begin(), pending.end());
      }
    }
  } catch (const std::exception &e) {
    log.failure = e.what();
  }
}

void run_reader(Shared &shared, ReaderLog &log) {
  try {
    const Options &o = shared.options;
    Connection db("stress_go_reader");
    std::string read_sql =
        "SELECT global_position, event_id FROM es.read_all(after_position => $1::bigint,"
        " max_count => $2::int, store => $3::regclass)";
    if (o.naive || o.xmin)
      read_sql = "SELECT global_position, event_id FROM " + shared.store_literal +
                 " WHERE global_position > $1::bigint" +
                 (o.xmin ? " AND xmin::text::bigint <"
                           " pg_snapshot_xmin(pg_current_snapshot())::text::bigint" : "") +
                 " ORDER BY global_position LIMIT $2::int";
    bool plain_query = o.naive || o.xmin;
    std::string probe_sql = "SELECT (SELECT last_value FROM " + shared.sequence +
                            "), es.head_position($1::regclass)";
    int64_t last = 0;
    Clock::time_point drain_deadline{};
    for (;;) {
      // Read before the page: a page read while a writer was still finishing proves nothing.
      bool writers_were_done = shared.writers_done.load();
      std::vector<std::string> params{std::to_string(last), std::to_string(o.page_size)};
      if (!plain_query) params.push_back(o.store);
      auto t0 = Clock::now();
      Result page = db.query(read_sql, params);
      log.read_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
      ++log.polls;
      int rows = PQntuples(page.get());
      for (int i = 0; i < rows; ++i) {
        int64_t position = std::strtoll(PQgetvalue(page.get(), i, 0), nullptr, 10);
        if (position <= last) ++log.order_violations;
        last = position;
        log.seen.emplace_back(PQgetvalue(page.get(), i, 1));
      }
      if (rows == o.page_size) continue;  // more is readable now

      // Caught up with what is safe to read: how far behind the sequence's head is that?
      Result probe = db.query(probe_sql, {o.store});
      int64_t head_seq = PQgetisnull(probe.get(), 0, 0)
                             ? 0 : std::strtoll(PQgetvalue(probe.get(), 0, 0), nullptr, 10);
      int64_t safe = std::strtoll(PQgetvalue(probe.get(), 0, 1), nullptr, 10);
      double at = std::chrono::duration<double>(Clock::now() - shared.start).count();
      log.lag.push_back({at, head_seq - last});

      if (writers_were_done) {
        // Every writer has finished: nothing can still appear once the safe head reached the
        // sequence's head and a page came back empty.
        if (drain_deadline == Clock::time_point{}) drain_deadline = Clock::now() + std::chrono::seconds(10);
        if (rows == 0 && (plain_query || safe >= head_seq)) {
          log.drained = true;
          return;
        }
        if (Clock::now() > drain_deadline) {
          log.failure = "reader did not drain within 10 s after the writers stopped (position " +
                        std::to_string(last) + ", safe head " + std::to_string(safe) +
                        ", sequence " + std::to_string(head_seq) + ")";
          return;
        }
      }
      sleep_ms(2);
    }
  } catch (const std::exception &e) {
    log.failure = e.what();
  }
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1)))];
}

Options parse_options(int argc, char **argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error(a + " needs a value");
      return argv[++i];
    };
    if (a == "--writers") o.writers = std::stoi(value());
    else if (a == "--seconds") o.seconds = std::stoi(value());
    else if (a == "--streams") o.streams = std::stoi(value());
    else if (a == "--page-size") o.page_size = std::stoi(value());
    else if (a == "--lag-window-ms") o.lag_window_ms = std::stoi(value());
    else if (a == "--lag-bound") o.lag_bound = std::stoll(value());
    else if (a == "--store") o.store = value();
    else if (a == "--naive") o.naive = true;
    else if (a == "--xmin") o.xmin = true;
    else if (a == "--keep") o.keep = true;
    else throw std::runtime_error("unknown option " + a);
  }
  if (o.writers < 1 || o.seconds < 1 || o.streams < 1 || o.page_size < 1 || o.lag_window_ms < 1)
    throw std::runtime_error("options must be positive");
  return o;
}

std::string single_value(Connection &db, const std::string &sql,
                         const std::vector<std::string> &params = {}) {
  Result r = db.query(sql, params);
  return PQntuples(r.get()) && !PQgetisnull(r.get(), 0, 0) ? PQgetvalue(r.get(), 0, 0) : "";
}

// Drops leftovers of an earlier run and creates the store; fills in its names.
void create_store(Connection &admin, Shared &shared) {
  admin.command("CREATE EXTENSION IF NOT EXISTS pg_eventstore");
  Result gids = admin.query("SELECT gid FROM pg_prepared_xacts WHERE gid LIKE 'stress\\_go\\_%'");
  for (int i = 0; i < PQntuples(gids.get()); ++i)
    admin.command(std::string("ROLLBACK PREPARED '") + PQgetvalue(gids.get(), i, 0) + "'");
  admin.query("SELECT es.drop_event_table(store) FROM es._stores WHERE store = to_regclass($1)",
              {shared.options.store});
  admin.query("SELECT es.create_event_table($1)", {shared.options.store});
  shared.store_literal = single_value(admin, "SELECT $1::regclass::text", {shared.options.store});
  shared.sequence = single_value(
      admin, "SELECT position_seq::text FROM es._stores WHERE store = $1::regclass",
      {shared.options.store});
}

int run(const Options &options) {
  Shared shared;
  shared.options = options;
  Connection admin("stress_go_admin");
  create_store(admin, shared);

  // The unrelated session: an assigned xid, open for the whole run (it even read the store).
  Connection unrelated("stress_go_unrelated");
  unrelated.command("BEGIN");
  std::string xid = single_value(unrelated, "SELECT txid_current()::text");
  single_value(unrelated, "SELECT count(*) FROM " + shared.store_literal);

  shared.start = Clock::now();
  shared.writers_deadline = shared.start + std::chrono::seconds(options.seconds);
  std::vector<WriterLog> writer_logs(options.writers);
  ReaderLog reader_log;
  std::thread reader(run_reader, std::ref(shared), std::ref(reader_log));
  std::vector<std::thread> writers;
  for (int w = 0; w < options.writers; ++w)
    writers.emplace_back(run_writer, w, std::ref(shared), std::ref(writer_logs[w]));
  for (std::thread &t : writers) t.join();
  double writing_seconds = std::chrono::duration<double>(Clock::now() - shared.start).count();
  shared.writers_done = true;
  reader.join();

  // The unrelated transaction must still be the same open one.
  std::string xid_at_end = single_value(unrelated, "SELECT txid_current_if_assigned()::text");
  unrelated.command("COMMIT");

  std::vector<std::string> problems;
  long transactions = 0, commits = 0, rollbacks = 0, savepoint_rollbacks = 0, prepared = 0,
       errors = 0;
  std::unordered_set<std::string> committed, discarded;
  for (int w = 0; w < options.writers; ++w) {
    const WriterLog &l = writer_logs[w];
    if (!l.failure.empty()) problems.push_back("writer " + std::to_string(w) + ": " + l.failure);
    transactions += l.transactions;
    commits += l.commits;
    rollbacks += l.rollbacks;
    savepoint_rollbacks += l.savepoint_rollbacks;
    prepared += l.prepared;
    errors += l.errors;
    committed.insert(l.committed.begin(), l.committed.end());
    discarded.insert(l.discarded.begin(), l.discarded.end());
  }
  if (!reader_log.failure.empty()) problems.push_back("reader: " + reader_log.failure);
  if (xid_at_end != xid)
    problems.push_back("the unrelated transaction did not stay open (xid " + xid + ", at end " +
                       xid_at_end + ")");

  // Exact reconciliation, by event id.
  std::unordered_set<std::string> seen;
  long duplicates = 0;
  for (const std::string &id : reader_log.seen)
    if (!seen.insert(id).second) ++duplicates;
  long missing = 0, unexpected = 0, discarded_seen = 0;
  for (const std::string &id : committed)
    if (!seen.count(id)) ++missing;
  for (const std::string &id : seen) {
    if (!committed.count(id)) ++unexpected;
    if (discarded.count(id)) ++discarded_seen;
  }
  // The store itself must hold exactly the committed events (checks the writers' bookkeeping).
  Result stored = admin.query("SELECT event_id::text FROM " + shared.store_literal);
  std::unordered_set<std::string> in_store;
  for (int i = 0; i < PQntuples(stored.get()); ++i) in_store.insert(PQgetvalue(stored.get(), i, 0));
  long store_mismatch = 0;
  for (const std::string &id : committed)
    if (!in_store.count(id)) ++store_mismatch;
  for (const std::string &id : in_store)
    if (!committed.count(id)) ++store_mismatch;

  if (missing) {
    // Where the skipped events are, for the failure report.
    std::vector<std::string> sample;
    for (const std::string &id : committed)
      if (!seen.count(id) && sample.size() < 5) sample.push_back(id);
    for (const std::string &id : sample)
      std::printf("  missing event %s at position %s\n", id.c_str(),
                  single_value(admin, "SELECT global_position::text FROM " + shared.store_literal +
                                          " WHERE event_id = $1::uuid", {id}).c_str());
  }
  if (duplicates) problems.push_back(std::to_string(duplicates) + " events read more than once");
  if (reader_log.order_violations)
    problems.push_back(std::to_string(reader_log.order_violations) + " positions out of order");
  if (missing) problems.push_back(std::to_string(missing) + " committed events never read (skipped)");
  if (unexpected) problems.push_back(std::to_string(unexpected) + " events read that never committed");
  if (discarded_seen)
    problems.push_back(std::to_string(discarded_seen) + " rolled-back (savepoint or transaction) events read");
  if (store_mismatch)
    problems.push_back(std::to_string(store_mismatch) + " differences between the store and the committed set");
  if (committed.empty()) problems.push_back("nothing was committed");
  if (savepoint_rollbacks == 0 || rollbacks == 0 || prepared == 0)
    problems.push_back("the run did not exercise savepoint rollbacks, rollbacks and 2PC");

  // Lag: in every full window while the writers ran, the reader caught up to within the bound
  // at least once. The unrelated transaction was open all along.
  int windows = static_cast<int>(writing_seconds * 1000 / options.lag_window_ms);
  std::vector<int64_t> best(windows, INT64_MAX);
  int64_t worst_lag = 0;
  for (const LagSample &s : reader_log.lag) {
    int w = static_cast<int>(s.at_seconds * 1000 / options.lag_window_ms);
    if (w < windows) best[w] = std::min(best[w], s.lag);
    if (s.at_seconds <= writing_seconds) worst_lag = std::max(worst_lag, s.lag);
  }
  int64_t worst_window = 0;
  for (int w = 0; w < windows; ++w) {
    worst_window = std::max(worst_window, best[w]);
    if (best[w] > options.lag_bound)
      problems.push_back("window " + std::to_string(w) + ": the reader never came within " +
                         std::to_string(options.lag_bound) + " positions of the head (best " +
                         (best[w] == INT64_MAX ? std::string("none") : std::to_string(best[w])) + ")");
  }

  std::printf("global_order%s: %d writers, %.1f s, %ld transactions (%ld committed, %ld rolled back,"
              " %ld savepoints rolled back, %ld prepared, %ld errors)\n",
              options.naive ? " (NAIVE reader)" : options.xmin ? " (XMIN reader)" : "", options.writers, writing_seconds, transactions,
              commits, rollbacks, savepoint_rollbacks, prepared, errors);
  std::printf("  committed events %zu, rolled-back events %zu, in store %zu\n", committed.size(),
              discarded.size(), in_store.size());
  std::printf("  reader: %zu events read, %zu distinct, %ld duplicates, %ld missing, %ld unexpected,"
              " %ld out of order, %ld polls\n",
              reader_log.seen.size(), seen.size(), duplicates, missing, unexpected,
              reader_log.order_violations, reader_log.polls);
  std::printf("  read_all latency p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
              percentile(reader_log.read_ms, 0.5), percentile(reader_log.read_ms, 0.99),
              percentile(reader_log.read_ms, 1.0));
  std::printf("  lag behind the sequence head while writing: worst %lld positions; best per %d ms"
              " window at most %lld (bound %lld), %d windows\n",
              static_cast<long long>(worst_lag), options.lag_window_ms,
              static_cast<long long>(worst_window), static_cast<long long>(options.lag_bound), windows);
  std::printf("  unrelated transaction xid %s open for the whole run: %s\n", xid.c_str(),
              xid_at_end == xid ? "yes" : "NO");

  if (!options.keep && problems.empty()) admin.query("SELECT es.drop_event_table($1)", {options.store});
  for (const std::string &p : problems) std::printf("MISMATCH: %s\n", p.c_str());
  std::printf("%s\n", problems.empty() ? "global_order: OK" : "global_order: FAILED");
  return problems.empty() ? 0 : 1;
}

}  // namespace

int main(int argc, char **argv) {
  try {
    Options options = parse_options(argc, argv);
    // A watchdog: a hung run fails instead of hanging the suite.
    std::thread([seconds = options.seconds] {
      std::this_thread::sleep_for(std::chrono::seconds(seconds + 90));
      std::fprintf(stderr, "global_order: timed out\n");
      std::_Exit(2);
    }).detach();
    return run(options);
  } catch (const std::exception &e) {
    std::fprintf(stderr, "global_order: %s\n", e.what());
    return 2;
  }
}
