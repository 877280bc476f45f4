// es.outbox_claim and es.outbox_ack in C++ (API.md §5; the design is docs/outbox.md "Claiming").
// Same behaviour, errors and privileges as the PL/pgSQL versions they replace (0.2.0 and early
// 0.3.0), at a fraction of the statements: they run as the extension owner internally (no
// SECURITY DEFINER, no SET clauses), read through direct index scans where they only look (the
// group, the sweep window, ready lanes, intake cursors, the shards' new messages, the messages
// handed out), lock and delete an ack's lanes directly, and insert a claim's rows (the lanes of
// a key-less window, the cursor and sweep rows) through the table and index AMs, with kept
// plans as the fallback when those tables have triggers or other columns. The rare paths stay PL/pgSQL and are called through SPI: the lease sweep that
// finds leases to end, the intake of a window with keyed messages (es._outbox_intake), the
// one-by-one precise errors of an ack and the advance of lanes with messages waiting.
//
// Plans: the lane and cursor tables are small (often empty) when a plan is made, so the planner
// would choose sequential scans, which an open transaction turns into reading every deleted lane
// (docs/outbox.md "Why it does not rot"). Every statement these functions run, theirs and those
// of the PL/pgSQL helpers they call, is planned with enable_seqscan off (a planner hook active
// only inside them), without the GUC change per call the PL/pgSQL versions' SET clause cost.
#include "direct_insert.hpp"
#include "outbox.hpp"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

extern "C" {
#include "access/skey.h"
#include "catalog/pg_collation.h"
#include "optimizer/cost.h"
#include "optimizer/planner.h"
#include "utils/array.h"
#include "utils/datetime.h"
}

namespace es {
namespace {

constexpr const char *kUnknownGroup = "ES040";
constexpr const char *kInvalidTopic = "ES041";
constexpr const char *kInvalidOutboxArgument = "ES044";
constexpr const char *kNotReadCommitted = "ES046";

constexpr int64 kSweepInterval = 10 * USECS_PER_SEC / 1000;  // 10 ms between lease sweeps
constexpr int64 kFullSweepInterval = 10 * 60 * USECS_PER_SEC;  // a full sweep every 10 min
constexpr int64 kIdleCursorInterval = USECS_PER_SEC;  // an idle shard's cursor: once a second

// ---- Plans made with enable_seqscan off -----------------------------------------------------

planner_hook_type previous_planner = nullptr;
bool planner_installed = false;
int index_plans_depth = 0;  // > 0 while a claim or an ack runs

PlannedStmt *outbox_planner(Query *parse, const char *query_string, int cursor_options,
                            ParamListInfo params) {
  if (index_plans_depth == 0)
    return previous_planner ? previous_planner(parse, query_string, cursor_options, params)
                            : standard_planner(parse, query_string, cursor_options, params);
  bool saved = enable_seqscan;
  PlannedStmt *volatile result = nullptr;
  enable_seqscan = false;
  PG_TRY();
  {
    result = previous_planner ? previous_planner(parse, query_string, cursor_options, params)
                              : standard_planner(parse, query_string, cursor_options, params);
  }
  PG_FINALLY();
  { enable_seqscan = saved; }
  PG_END_TRY();
  return result;
}

void reset_index_plans(XactEvent event, void *) {
  if (event == XACT_EVENT_ABORT || event == XACT_EVENT_COMMIT) index_plans_depth = 0;
}

// While alive, every statement planned in this backend is planned with enable_seqscan off.
class IndexPlans {
 public:
  IndexPlans() {
    if (!planner_installed) {
      pg_call([] {
        previous_planner = planner_hook;
        planner_hook = outbox_planner;
        RegisterXactCallback(reset_index_plans, nullptr);
      });
      planner_installed = true;
    }
    ++index_plans_depth;
  }
  ~IndexPlans() {
    if (index_plans_depth > 0) --index_plans_depth;
  }
  IndexPlans(const IndexPlans &) = delete;
  IndexPlans &operator=(const IndexPlans &) = delete;
};

// ---- Direct index scans -----------------------------------------------------------------------

// The outbox relations the probes read (looked up per call: cheap syscache hits, and never
// stale after the extension is dropped and created again).
struct OutboxRelations {
  Oid groups, groups_key;            // (consumer_group, topic)
  Oid routes;
  Oid messages, messages_pkey, messages_shard_id;   // (id); (topic, shard, id)
  Oid intake, intake_pkey;           // (group_id, shard, intake_id, swept_at)
  Oid lanes, lanes_pkey, lanes_ready, lanes_leased;  // (group_id, due_at, head_id) WHERE NOT leased;
                                         // (group_id, due_at) WHERE leased
};

OutboxRelations outbox_relations() {
  OutboxRelations r{};
  pg_call([&] {
    Oid nsp = get_namespace_oid("es", false);
    r.groups = get_relname_relid("_outbox_groups", nsp);
    r.groups_key = get_relname_relid("_outbox_groups_consumer_group_topic_key", nsp);
    r.routes = get_relname_relid("_outbox_routes", nsp);
    r.messages = get_relname_relid("_outbox_messages", nsp);
    r.messages_pkey = get_relname_relid("_outbox_messages_pkey", nsp);
    r.messages_shard_id = get_relname_relid("_outbox_messages_topic_shard_id", nsp);
    r.intake = get_relname_relid("_outbox_intake", nsp);
    r.intake_pkey = get_relname_relid("_outbox_intake_pkey", nsp);
    r.lanes = get_relname_relid("_outbox_lanes", nsp);
    r.lanes_pkey = get_relname_relid("_outbox_lanes_pkey", nsp);
    r.lanes_ready = get_relname_relid("_outbox_lanes_ready", nsp);
    r.lanes_leased = get_relname_relid("_outbox_lanes_leased", nsp);
    for (Oid oid : {r.groups, r.groups_key, r.routes, r.messages, r.messages_pkey, r.messages_shard_id, r.intake, r.intake_pkey, r.lanes, r.lanes_pkey,
                    r.lanes_ready, r.lanes_leased})
      if (!OidIsValid(oid)) elog(ERROR, "pg_eventstore: outbox tables are missing");
  });
  return r;
}

// A snapshot that sees every transaction committed so far and this transaction's own writes
// (as the next statement of a VOLATILE function would); registered, release with
// UnregisterSnapshot. Plain PostgreSQL code.
Snapshot fresh_snapshot() {
  CommandCounterIncrement();
  return RegisterSnapshot(GetLatestSnapshot());
}

// Calls visit(slot) for each row of `heap` visible to `snapshot` that an index scan of `index`
// with `keys` finds in `direction`, until visit returns false. Plain PostgreSQL code: call it
// inside pg_call; `visit` must not throw.
template <class Visit>
void scan_index(Oid heap_oid, Oid index_oid, Snapshot snapshot, ScanKeyData *keys, int nkeys,
                ScanDirection direction, Visit &&visit) {
  Relation heap = table_open(heap_oid, AccessShareLock);
  Relation index = index_open(index_oid, AccessShareLock);
  TupleTableSlot *slot = table_slot_create(heap, nullptr);
  IndexScanDesc scan = index_beginscan(heap, index, snapshot, nkeys, 0);
  index_rescan(scan, keys, nkeys, nullptr, 0);
  while (index_getnext_slot(scan, direction, slot))
    if (!visit(slot)) break;
  index_endscan(scan);
  ExecDropSingleTupleTableSlot(slot);
  index_close(index, NoLock);
  table_close(heap, NoLock);
}

void key(ScanKeyData &k, AttrNumber column, StrategyNumber strategy, RegProcedure proc,
         Datum value, Oid collation = InvalidOid) {
  ScanKeyEntryInitialize(&k, 0, column, strategy, InvalidOid, collation, proc, value);
}

// The newest es._outbox_intake row of (group, shard): a backward scan of the primary key that
// stops at the first visible row, however many dead ones lie below it.
struct IntakeRow {
  bool found;
  int64 intake_id;
  TimestampTz swept_at, full_swept_at;
};

IntakeRow newest_intake_row(const OutboxRelations &rel, Snapshot snapshot, int32 group_id,
                            int16 shard) {
  IntakeRow row{};
  ScanKeyData keys[2];
  key(keys[0], 1, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(group_id));
  key(keys[1], 2, BTEqualStrategyNumber, F_INT2EQ, Int16GetDatum(shard));
  scan_index(rel.intake, rel.intake_pkey, snapshot, keys, 2, BackwardScanDirection,
             [&](TupleTableSlot *slot) {
               bool isnull;
               row.found = true;
               row.intake_id = DatumGetInt64(slot_getattr(slot, 3, &isnull));
               row.swept_at = DatumGetTimestampTz(slot_getattr(slot, 4, &isnull));
               row.full_swept_at = DatumGetTimestampTz(slot_getattr(slot, 5, &isnull));
               return false;
             });
  return row;
}

// Visits the messages of (topic, shard) with id in (after, upto] in id order.
template <class Visit>
void scan_new_messages(const OutboxRelations &rel, Snapshot snapshot, Datum topic, int16 shard,
                       int64 after, int64 upto, Visit &&visit) {
  Relation index = index_open(rel.messages_shard_id, AccessShareLock);
  Oid collation = index->rd_indcollation[0];
  index_close(index, NoLock);
  ScanKeyData keys[3];
  key(keys[0], 1, BTEqualStrategyNumber, F_TEXTEQ, topic, collation);
  key(keys[1], 2, BTEqualStrategyNumber, F_INT2EQ, Int16GetDatum(shard));
  key(keys[2], 3, BTGreaterStrategyNumber, F_INT8GT, Int64GetDatum(after));
  scan_index(rel.messages, rel.messages_shard_id, snapshot, keys, 3, ForwardScanDirection,
             [&](TupleTableSlot *slot) {
               bool isnull;
               int64 id = DatumGetInt64(slot_getattr(slot, 1, &isnull));
               if (id > upto) return false;
               slot_getattr(slot, 3, &isnull);
               return visit(id, !isnull);
             });
}

TimestampTz plus(TimestampTz t, int64 usecs) { return TIMESTAMP_NOT_FINITE(t) ? t : t + usecs; }

// ---- Kept plans -------------------------------------------------------------------------------

// A statement prepared once per backend (with enable_seqscan off) and kept.
struct KeptPlan {
  const char *sql;
  int nargs;
  Oid types[7];
  SPIPlanPtr plan;
};

SPIPlanPtr kept(KeptPlan &p) {
  if (p.plan == nullptr) p.plan = prepare_kept(p.sql, p.nargs, p.types);
  return p.plan;
}

// Runs a kept plan (each run with a fresh snapshot, as a statement of a VOLATILE function);
// returns SPI_processed. Results stay in SPI_tuptable.
uint64 run(KeptPlan &p, const Datum *values, const char *nulls, int expected_rc, long limit = 0) {
  SPIPlanPtr plan = kept(p);
  return pg_call([&] {
    int rc = SPI_execute_plan(plan, const_cast<Datum *>(values), nulls, false, limit);
    if (rc != expected_rc)
      elog(ERROR, "pg_eventstore: outbox statement failed: %s", SPI_result_code_string(rc));
    return SPI_processed;
  });
}

KeptPlan sweep_plan = {
    "SELECT es._outbox_sweep(g, $2) FROM es._outbox_groups g WHERE g.group_id = $1",
    2, {INT4OID, TIMESTAMPTZOID}, nullptr};

KeptPlan intake_row_plan = {
    "INSERT INTO es._outbox_intake (group_id, shard, intake_id, swept_at, full_swept_at)"
    " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    5, {INT4OID, INT2OID, INT8OID, TIMESTAMPTZOID, TIMESTAMPTZOID}, nullptr};

KeptPlan ready_plan = {
    "WITH c AS ("
    " SELECT l.group_id, l.head_id FROM es._outbox_lanes l"
    "  WHERE l.group_id = $1 AND NOT l.leased AND l.due_at <= $2"
    "  ORDER BY l.due_at, l.head_id LIMIT $3 FOR UPDATE SKIP LOCKED)"
    " UPDATE es._outbox_lanes l SET attempts = l.attempts + 1, leased = true, due_at = $4"
    " FROM c WHERE l.group_id = c.group_id AND l.head_id = c.head_id"
    " RETURNING l.head_id, l.attempts",
    4, {INT4OID, TIMESTAMPTZOID, INT4OID, TIMESTAMPTZOID}, nullptr};

KeptPlan keyless_lanes_cursor_plan = {
    // The new lanes of a key-less window, leased, and the shard's new cursor (when $7).
    "WITH lanes AS ("
    " INSERT INTO es._outbox_lanes (group_id, lane_key, head_id, tail_id, attempts, leased, due_at)"
    " SELECT $1, NULL, u.id, u.id, 1, true, $3 FROM pg_catalog.unnest($2) AS u(id) ORDER BY u.id)"
    " INSERT INTO es._outbox_intake (group_id, shard, intake_id, swept_at, full_swept_at)"
    " SELECT $1, $4, $5, $6, '-infinity' WHERE $7 ON CONFLICT DO NOTHING",
    7, {INT4OID, INT8ARRAYOID, TIMESTAMPTZOID, INT2OID, INT8OID, TIMESTAMPTZOID, BOOLOID}, nullptr};

KeptPlan keyed_intake_plan = {
    "SELECT es._outbox_intake(g, $2, $3, $4, $5) FROM es._outbox_groups g WHERE g.group_id = $1",
    5, {INT4OID, INT4OID, INT8OID, INT4OID, TIMESTAMPTZOID}, nullptr};

KeptPlan advance_lanes_plan = {
    "SELECT es._outbox_advance(l, g.topic) FROM es._outbox_lanes l"
    " JOIN es._outbox_groups g ON g.group_id = l.group_id"
    " WHERE l.ctid = ANY ($1::pg_catalog.tid[]) ORDER BY l.head_id",
    1, {TIDARRAYOID}, nullptr};

KeptPlan check_group_plan = {"SELECT es._outbox_check_group($1)", 1, {TEXTOID}, nullptr};

KeptPlan held_plan = {"SELECT es._outbox_held($1, $2)", 2, {TEXTOID, INT8OID}, nullptr};

KeptPlan store_privilege_plan = {
    "SELECT es._require_store_privilege(es._session_role(), $1::pg_catalog.regclass, 'SELECT',"
    " 'claim messages routed from')",
    1, {OIDOID}, nullptr};

Datum int8_array(const std::vector<int64> &values) {
  return pg_call([&] {
    Datum *elems = static_cast<Datum *>(palloc(sizeof(Datum) * std::max<size_t>(values.size(), 1)));
    for (size_t i = 0; i < values.size(); ++i) elems[i] = Int64GetDatum(values[i]);
    return PointerGetDatum(construct_array(elems, static_cast<int>(values.size()), INT8OID,
                                           sizeof(int64), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
  });
}

Datum tid_array(const std::vector<ItemPointerData> &values) {
  return pg_call([&] {
    Datum *elems = static_cast<Datum *>(palloc(sizeof(Datum) * std::max<size_t>(values.size(), 1)));
    auto *tids = static_cast<ItemPointerData *>(
        palloc(sizeof(ItemPointerData) * std::max<size_t>(values.size(), 1)));
    for (size_t i = 0; i < values.size(); ++i) {
      tids[i] = values[i];
      elems[i] = PointerGetDatum(&tids[i]);
    }
    return PointerGetDatum(construct_array(elems, static_cast<int>(values.size()), TIDOID,
                                           sizeof(ItemPointerData), false, TYPALIGN_SHORT));
  });
}

// ---- Direct inserts: the lanes of a key-less window, the cursor and sweep rows ---------------

// The columns of es._outbox_lanes and es._outbox_intake, in the order the inserts fill them.
enum LaneColumn { kLaneGroup, kLaneKey, kLaneHead, kLaneTail, kLaneAttempts, kLaneLeased,
                  kLaneDue, kLaneError, kLaneColumns };
constexpr DirectColumn kLaneShape[kLaneColumns] = {
    {"group_id", INT4OID}, {"lane_key", TEXTOID},  {"head_id", INT8OID},
    {"tail_id", INT8OID},  {"attempts", INT4OID},  {"leased", BOOLOID},
    {"due_at", TIMESTAMPTZOID}, {"last_error", TEXTOID}};
enum IntakeColumn { kIntakeGroup, kIntakeShard, kIntakeId, kIntakeSwept, kIntakeFullSwept,
                    kIntakeColumns };
constexpr DirectColumn kIntakeShape[kIntakeColumns] = {
    {"group_id", INT4OID}, {"shard", INT2OID}, {"intake_id", INT8OID},
    {"swept_at", TIMESTAMPTZOID}, {"full_swept_at", TIMESTAMPTZOID}};

// One es._outbox_intake row: a shard's new cursor, or a sweep's record (shard -1).
struct IntakeRecord {
  int32 group_id;
  int16 shard;
  int64 intake_id;
  TimestampTz swept_at, full_swept_at;
};

// True when the executor's INSERT into `rel` would do nothing the direct path skips: the
// table's exact columns (direct_shape: no row security, rules, generated columns), no
// triggers (foreign keys and deferrable unique constraints are triggers too; the extension's
// own trigger es_outbox_group_deleted is on es._outbox_groups, not here), and no default on
// `unfilled` (the lanes' last_error, which the inserts leave NULL; 0: none). Checked at every
// open, after the lock has processed pending invalidations: a few comparisons. Plain
// PostgreSQL code.
bool claim_table_allows_direct(Relation rel, const DirectColumn *shape, int count,
                               AttrNumber *attnums, int unfilled) {
  if (rel->trigdesc != nullptr || !direct_shape(rel, shape, count, attnums)) return false;
  return unfilled == 0 ||
         !TupleDescAttr(RelationGetDescr(rel), attnums[unfilled] - 1)->atthasdef;
}

// Writes what a claim records, as the kept plans above would, through the table and index
// AMs: the lanes of a key-less window's `heads` (leased until `lease_end`, one attempt, as
// INSERT: a duplicate head raises 23505), then `row` (when given) as INSERT ... ON CONFLICT DO
// NOTHING, with the same speculative insertion (a conflicting row is waited for, then the row
// is skipped). The caller holds the shard's claim lock (the sweep lock for a sweep row), so
// no other transaction writes this (group, shard)'s rows and a conflict is not expected; it
// is handled rather than argued away (restored rows, es.maintain's pruning, a future writer).
// Returns false, having written nothing, when either table needs the executor.
bool insert_claim_rows(const OutboxRelations &rel, int32 group_id, const std::vector<int64> &heads,
                       TimestampTz lease_end, const IntakeRecord *row) {
  return pg_call([&]() -> bool {
    AttrNumber lane_at[kLaneColumns], intake_at[kIntakeColumns];
    Relation lanes = heads.empty() ? nullptr : table_open(rel.lanes, RowExclusiveLock);
    Relation intake = row == nullptr ? nullptr : table_open(rel.intake, RowExclusiveLock);
    bool direct =
        (lanes == nullptr ||
         claim_table_allows_direct(lanes, kLaneShape, kLaneColumns, lane_at, kLaneError)) &&
        (intake == nullptr ||
         claim_table_allows_direct(intake, kIntakeShape, kIntakeColumns, intake_at, 0));
    if (direct && lanes != nullptr) {
      DirectTarget t;
      direct_begin(t, lanes);
      for (int64 head : heads) {
        TupleTableSlot *slot = direct_row(t);
        Datum values[kLaneError] = {Int32GetDatum(group_id), (Datum)0, Int64GetDatum(head),
                                    Int64GetDatum(head), Int32GetDatum(1), BoolGetDatum(true),
                                    TimestampTzGetDatum(lease_end)};
        for (int c = 0; c < kLaneError; ++c) {
          slot->tts_values[lane_at[c] - 1] = values[c];
          slot->tts_isnull[lane_at[c] - 1] = c == kLaneKey;
        }
        direct_put(t);
      }
      direct_end(t);
    }
    if (direct && intake != nullptr) {
      DirectTarget t;
      direct_begin(t, intake);
      TupleTableSlot *slot = direct_row(t);
      Datum values[kIntakeColumns] = {Int32GetDatum(row->group_id), Int16GetDatum(row->shard),
                                      Int64GetDatum(row->intake_id),
                                      TimestampTzGetDatum(row->swept_at),
                                      TimestampTzGetDatum(row->full_swept_at)};
      for (int c = 0; c < kIntakeColumns; ++c) {
        slot->tts_values[intake_at[c] - 1] = values[c];
        slot->tts_isnull[intake_at[c] - 1] = false;
      }
      direct_put_unless_conflict(t, false);
      direct_end(t);
    }
    if (lanes != nullptr) table_close(lanes, NoLock);
    if (intake != nullptr) table_close(intake, NoLock);
    return direct;
  });
}

// The sweep row or an idle shard's cursor: directly, or with the kept plan.
void record_intake_row(const OutboxRelations &rel, const IntakeRecord &row) {
  if (insert_claim_rows(rel, row.group_id, {}, 0, &row)) return;
  Datum values[5] = {Int32GetDatum(row.group_id), Int16GetDatum(row.shard),
                     Int64GetDatum(row.intake_id), TimestampTzGetDatum(row.swept_at),
                     TimestampTzGetDatum(row.full_swept_at)};
  run(intake_row_plan, values, nullptr, SPI_OK_INSERT);
}

// Column `col` (1-based) of row `row` of SPI_tuptable.
Datum spi_value(uint64 row, int col, bool *isnull) {
  return SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col, isnull);
}

// ---- The claim ----------------------------------------------------------------------------------

struct Group {
  int32 id;
  int64 intake_id;  // the cursor a shard has before its first intake row
  Datum topic;
};

// When a lease sweep of a group can be due again, as far as this backend knows (a sweep runs
// at most every 10 ms per group): claims before it skip the sweep without reading anything. A
// later sweep by another backend only makes the next one due later, so the guess is never late
// by more than the 10 ms; a sweep row this backend wrote and then rolled back, likewise.
struct SweepDue {
  int32 group_id;
  TimestampTz not_before;
};
SweepDue sweep_due[16];

TimestampTz &sweep_not_before(int32 group_id) {
  SweepDue &slot = sweep_due[static_cast<uint32>(group_id) % 16];
  if (slot.group_id != group_id) slot = SweepDue{group_id, DT_NOBEGIN};
  return slot.not_before;
}

// The lease sweep of the group, by the holder of its sweep lock, with es._outbox_sweep's rules:
// at most every 10 ms, a full one every 10 minutes, each over the leases that ended since the
// previous one. The usual sweep finds no lease that ended: it only records itself (one insert).
// When leases ended, or a full sweep is due, es._outbox_sweep does the work. Returns how many
// lanes it changed (their locks are this transaction's now).
int sweep(const OutboxRelations &rel, const Group &g, TimestampTz now_at) {
  IntakeRow last{};
  bool whole = false, due = false, ended = false;
  pg_call([&] {
    Snapshot snapshot = fresh_snapshot();
    last = newest_intake_row(rel, snapshot, g.id, -1);
    if (!last.found) {
      last.intake_id = 0;
      last.swept_at = last.full_swept_at = DT_NOBEGIN;
    }
    whole = last.full_swept_at <= plus(now_at, -kFullSweepInterval);
    due = whole || now_at >= plus(last.swept_at, kSweepInterval);
    if (due && !whole) {
      // Leases that ended since the previous sweep (through the partial index of leases).
      ScanKeyData keys[3];
      key(keys[0], 1, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(g.id));
      key(keys[1], 2, BTGreaterStrategyNumber, F_TIMESTAMPTZ_GT,
          TimestampTzGetDatum(last.swept_at));
      key(keys[2], 2, BTLessEqualStrategyNumber, F_TIMESTAMPTZ_LE, TimestampTzGetDatum(now_at));
      scan_index(rel.lanes, rel.lanes_leased, snapshot, keys, 3, ForwardScanDirection,
                 [&](TupleTableSlot *) {
                   ended = true;
                   return false;
                 });
    }
    UnregisterSnapshot(snapshot);
  });
  TimestampTz &not_before = sweep_not_before(g.id);
  TimestampTz full_due = plus(last.full_swept_at, kFullSweepInterval);
  if (!due) {
    not_before = std::min(plus(last.swept_at, kSweepInterval), full_due);
    return 0;
  }
  if (!whole && !ended) {
    // Recorded as es._outbox_sweep records a sweep that found nothing: numbered, at now_at.
    record_intake_row(rel, IntakeRecord{g.id, -1, last.intake_id + 1, now_at, last.full_swept_at});
    not_before = std::min(plus(now_at, kSweepInterval), full_due);
    return 0;
  }
  Datum values[2] = {Int32GetDatum(g.id), TimestampTzGetDatum(now_at)};
  run(sweep_plan, values, nullptr, SPI_OK_SELECT);
  int changed = pg_call([] {
    bool isnull;
    Datum d = spi_value(0, 1, &isnull);
    return isnull ? 0 : DatumGetInt32(d);
  });
  not_before = plus(now_at, kSweepInterval);
  return changed;
}

// True when the group has a ready lane due by `now_at` (a visible entry of the ready index).
bool has_ready_lane(const OutboxRelations &rel, const Group &g, TimestampTz now_at) {
  return pg_call([&] {
    bool found = false;
    Snapshot snapshot = fresh_snapshot();
    ScanKeyData keys[2];
    key(keys[0], 1, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(g.id));
    key(keys[1], 2, BTLessEqualStrategyNumber, F_TIMESTAMPTZ_LE, TimestampTzGetDatum(now_at));
    scan_index(rel.lanes, rel.lanes_ready, snapshot, keys, 2, ForwardScanDirection,
               [&](TupleTableSlot *) {
                 found = true;
                 return false;
               });
    UnregisterSnapshot(snapshot);
    return found;
  });
}

// What this backend knows about the messages of a group's shard after id `after`: none in
// (after, probed_to], except `first` (0: none). Messages are insert-only and ids at or below
// the horizon never appear later, so the knowledge stays true; it is used while `after` is
// still the shard's cursor (a claim that took messages in moved it), and spares a claim the
// index probe of each shard whose cursor did not move — the probe of an index whose leading
// column is the topic (text) reads a whole leaf page of entries.
struct ShardFirst {
  Oid messages;  // the message table the knowledge is about (a new one after re-creation)
  int32 group_id;
  int64 after, probed_to, first;
};
ShardFirst shard_first[kOutboxShards];

// The oldest message of the group's shard after `after`, up to `horizon`; 0 when none.
// Plain PostgreSQL code.
int64 first_new_message(const OutboxRelations &rel, Snapshot snapshot, const Group &g, int shard,
                        int64 after, int64 horizon) {
  ShardFirst &known = shard_first[shard];
  int64 from = after;
  if (known.messages == rel.messages && known.group_id == g.id && known.after == after) {
    if (known.first != 0) return known.first <= horizon ? known.first : 0;
    if (horizon <= known.probed_to) return 0;
    from = known.probed_to;
  }
  int64 first = 0;
  scan_new_messages(rel, snapshot, g.topic, static_cast<int16>(shard), from, horizon,
                    [&](int64 id, bool) {
                      first = id;
                      return false;
                    });
  known = ShardFirst{rel.messages, g.id, after, horizon, first};
  return first;
}

// The shards with messages new to the group up to `horizon`, the one whose oldest new message
// is the oldest first: per shard, its cursor (an index probe) and the first message after it.
std::vector<int> shard_order(const OutboxRelations &rel, const Group &g, int64 horizon) {
  std::pair<int64, int> firsts[kOutboxShards];
  int count = pg_call([&] {
    int n = 0;
    Snapshot snapshot = fresh_snapshot();
    for (int s = 0; s < kOutboxShards; ++s) {
      IntakeRow cursor = newest_intake_row(rel, snapshot, g.id, static_cast<int16>(s));
      int64 after = cursor.found ? cursor.intake_id : g.intake_id;
      if (after >= horizon) continue;
      int64 first = first_new_message(rel, snapshot, g, s, after, horizon);
      if (first != 0) firsts[n++] = {first, s};
    }
    UnregisterSnapshot(snapshot);
    return n;
  });
  // At most 8: an insertion sort by first new message.
  for (int i = 1; i < count; ++i)
    for (int j = i; j > 0 && firsts[j].first < firsts[j - 1].first; --j)
      std::swap(firsts[j], firsts[j - 1]);
  std::vector<int> order;
  for (int i = 0; i < count; ++i) order.push_back(firsts[i].second);
  return order;
}

// Intake of one shard, by the holder of its claim lock, as es._outbox_intake: the shard's
// messages new to the group (after its cursor, up to the horizon) become leased one-message
// lanes, up to max_count. Here when the window es._outbox_intake would look at first (twice
// max_count messages, at least 16) has no keyed message; a window with keys goes to it.
// Records the new cursor (an idle shard's at most once a second). Returns the heads handed out.
std::vector<int64> intake(const OutboxRelations &rel, const Group &g, int shard, int64 horizon,
                          int max_count, TimestampTz lease_end) {
  if (max_count > PG_INT32_MAX / 2)  // greatest(2 * max_count, 16) in es._outbox_intake
    raise("22003", "integer out of range");
  int window = std::max(2 * max_count, 16);
  IntakeRow last{};
  int64 *found = nullptr;  // the first max_count new messages (palloc'd)
  int capacity = 0, seen = 0, kept_count = 0;
  int64 next_id = 0;  // the first message after the max_count-th, if the window has one
  bool keyed = false;
  pg_call([&] {
    Snapshot snapshot = fresh_snapshot();
    last = newest_intake_row(rel, snapshot, g.id, static_cast<int16>(shard));
    if (!last.found) {
      last.intake_id = g.intake_id;
      last.swept_at = DT_NOBEGIN;
    }
    if (horizon > last.intake_id)
      scan_new_messages(rel, snapshot, g.topic, static_cast<int16>(shard), last.intake_id,
                        horizon, [&](int64 id, bool has_key) {
                          if (has_key) keyed = true;
                          if (kept_count < max_count) {
                            if (kept_count == capacity) {
                              capacity = capacity == 0 ? std::min(max_count, 64) : 2 * capacity;
                              found = static_cast<int64 *>(
                                  found ? repalloc(found, sizeof(int64) * capacity)
                                        : palloc(sizeof(int64) * capacity));
                            }
                            found[kept_count++] = id;
                          } else if (next_id == 0) {
                            next_id = id;
                          }
                          ++seen;
                          return !keyed && seen < window;
                        });
    UnregisterSnapshot(snapshot);
  });
  std::vector<int64> heads;
  if (horizon <= last.intake_id) return heads;
  if (keyed) {
    Datum values[5] = {Int32GetDatum(g.id), Int32GetDatum(shard), Int64GetDatum(horizon),
                       Int32GetDatum(max_count), TimestampTzGetDatum(lease_end)};
    run(keyed_intake_plan, values, nullptr, SPI_OK_SELECT);
    Datum *elems = nullptr;
    int n = 0;
    pg_call([&] {
      bool isnull;
      Datum d = spi_value(0, 1, &isnull);
      if (isnull) return;
      bool *nulls;
      deconstruct_array(DatumGetArrayTypeP(d), INT8OID, sizeof(int64), FLOAT8PASSBYVAL,
                        TYPALIGN_DOUBLE, &elems, &nulls, &n);
    });
    for (int i = 0; i < n; ++i) heads.push_back(DatumGetInt64(elems[i]));
    return heads;
  }
  heads.assign(found, found + kept_count);
  int took = kept_count;
  // Every message up to the horizon is in (fewer than wanted): the cursor follows the horizon;
  // otherwise it stops at the last message taken.
  int64 upto = took < max_count ? horizon : heads.back();
  // The window showed what follows the new cursor: the next claim need not probe the shard.
  shard_first[shard] = ShardFirst{rel.messages, g.id, upto, next_id != 0 ? next_id : horizon,
                                  next_id};
  TimestampTz now = GetCurrentTimestamp();
  bool record =
      upto > last.intake_id && (took > 0 || now >= plus(last.swept_at, kIdleCursorInterval));
  IntakeRecord cursor{g.id, static_cast<int16>(shard), upto, now, DT_NOBEGIN};
  if (took > 0 && insert_claim_rows(rel, g.id, heads, lease_end, record ? &cursor : nullptr))
    return heads;
  if (took > 0) {
    Datum values[7] = {Int32GetDatum(g.id), int8_array(heads), TimestampTzGetDatum(lease_end),
                       Int16GetDatum(static_cast<int16>(shard)), Int64GetDatum(upto),
                       TimestampTzGetDatum(now), BoolGetDatum(record)};
    run(keyless_lanes_cursor_plan, values, nullptr, SPI_OK_INSERT);
  } else if (record) {
    record_intake_row(rel, cursor);
  }
  return heads;
}

// The group (consumer_group, topic) through its unique index; found false when none. Plain
// PostgreSQL code.
bool find_group(const OutboxRelations &rel, Snapshot snapshot, Datum consumer_group, Group &g) {
  bool found = false;
  Relation index = index_open(rel.groups_key, AccessShareLock);
  Oid collations[2] = {index->rd_indcollation[0], index->rd_indcollation[1]};
  index_close(index, NoLock);
  ScanKeyData keys[2];
  key(keys[0], 1, BTEqualStrategyNumber, F_TEXTEQ, consumer_group, collations[0]);
  key(keys[1], 2, BTEqualStrategyNumber, F_TEXTEQ, g.topic, collations[1]);
  scan_index(rel.groups, rel.groups_key, snapshot, keys, 2, ForwardScanDirection,
             [&](TupleTableSlot *slot) {
               bool isnull;
               found = true;
               g.id = DatumGetInt32(slot_getattr(slot, 1, &isnull));
               g.intake_id = DatumGetInt64(slot_getattr(slot, 6, &isnull));
               return false;
             });
  return found;
}

// The first (by oid) event table routed to the topic that the session's role (SET ROLE's, or
// the session user) may not SELECT from, as es._session_role() and has_table_privilege() see
// it; InvalidOid when none. Routed messages carry events: claiming them needs SELECT on every
// such store. Plain PostgreSQL code.
Oid unreadable_route(const OutboxRelations &rel, Snapshot snapshot, Datum topic) {
  Oid role = OidIsValid(GetCurrentRoleId()) ? GetCurrentRoleId() : GetSessionUserId();
  Oid unreadable = InvalidOid;
  Relation routes = table_open(rel.routes, AccessShareLock);
  TupleTableSlot *slot = table_slot_create(routes, nullptr);
  TableScanDesc scan = table_beginscan(routes, snapshot, 0, nullptr);
  while (table_scan_getnextslot(scan, ForwardScanDirection, slot)) {
    bool isnull;
    Datum route_topic = slot_getattr(slot, 1, &isnull);
    if (!DatumGetBool(DirectFunctionCall2Coll(texteq, DEFAULT_COLLATION_OID, route_topic, topic)))
      continue;
    Oid store = DatumGetObjectId(slot_getattr(slot, 2, &isnull));
    bool missing = false;
    if (pg_class_aclcheck_ext(store, role, ACL_SELECT, &missing) != ACLCHECK_OK && !missing &&
        (!OidIsValid(unreadable) || store < unreadable))
      unreadable = store;
  }
  table_endscan(scan);
  ExecDropSingleTupleTableSlot(slot);
  table_close(routes, NoLock);
  return unreadable;
}

// Adds the messages `ids` (sorted; attempts in `tries`) to the SRF's result, read through the
// primary key with a fresh snapshot, taken after the horizon. Plain PostgreSQL code.
void put_messages(FunctionCallInfo fcinfo, const OutboxRelations &rel, const int64 *ids,
                  const int32 *tries, int count) {
  auto *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
  Snapshot snapshot = fresh_snapshot();
  for (int i = 0; i < count; ++i) {
    ScanKeyData keys[1];
    key(keys[0], 1, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(ids[i]));
    scan_index(rel.messages, rel.messages_pkey, snapshot, keys, 1, ForwardScanDirection,
               [&](TupleTableSlot *slot) {
                 Datum values[7];
                 bool nulls[7];
                 slot_getsomeattrs(slot, 6);
                 for (int c = 0; c < 6; ++c) {
                   values[c] = slot->tts_values[c];
                   nulls[c] = slot->tts_isnull[c];
                 }
                 values[6] = Int32GetDatum(tries[i]);
                 nulls[6] = false;
                 tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
                 return false;
               });
  }
  UnregisterSnapshot(snapshot);
}

std::string text_or_null(FunctionCallInfo fcinfo, int arg) {
  if (PG_ARGISNULL(arg)) return "<NULL>";
  return pg_call([&] { return static_cast<const char *>(TextDatumGetCString(PG_GETARG_DATUM(arg))); });
}

// The topic rules of es._outbox_check_topic (ES041).
void check_topic(FunctionCallInfo fcinfo) {
  if (PG_ARGISNULL(1)) raise(kInvalidTopic, "topic must not be NULL or empty");
  text *topic = pg_call([&] { return PG_GETARG_TEXT_PP(1); });
  size_t bytes = VARSIZE_ANY_EXHDR(topic);
  if (bytes == 0) raise(kInvalidTopic, "topic must not be NULL or empty");
  if (bytes > 256)
    raise(kInvalidTopic, "topic is too long",
          "The limit is 256 bytes; the topic has " + std::to_string(bytes) + ".");
}

Datum claim(FunctionCallInfo fcinfo) {
  if (PG_ARGISNULL(2) || PG_GETARG_INT32(2) < 0)
    raise(kInvalidOutboxArgument, "max_count must not be NULL or negative",
          "max_count is " +
              (PG_ARGISNULL(2) ? std::string("NULL") : std::to_string(PG_GETARG_INT32(2))) + ".");
  int max_count = PG_GETARG_INT32(2);
  bool bad_lease = PG_ARGISNULL(3) || pg_call([&] {
                     Interval zero{};
                     return DatumGetBool(DirectFunctionCall2(
                         interval_le, PG_GETARG_DATUM(3), IntervalPGetDatum(&zero)));
                   });
  if (bad_lease) {
    std::string shown = PG_ARGISNULL(3) ? std::string("NULL") : pg_call([&] {
      return static_cast<const char *>(
          DatumGetCString(DirectFunctionCall1(interval_out, PG_GETARG_DATUM(3))));
    });
    raise(kInvalidOutboxArgument, "lease must be a positive interval", "lease is " + shown + ".");
  }
  if (XactIsoLevel != XACT_READ_COMMITTED)
    raise(kNotReadCommitted, "es.outbox_claim must run in a READ COMMITTED transaction",
          "A claim reads messages with a snapshot taken after their safe horizon.",
          "Claim in a short READ COMMITTED transaction of its own.");
  check_topic(fcinfo);
  Datum lease = PG_GETARG_DATUM(3);

  SpiConnection spi;
  IndexPlans index_plans;
  Group g{};
  g.topic = PG_GETARG_DATUM(1);
  std::vector<int64> ids;
  std::vector<int32> tries;
  {
    AsExtensionOwner owner;
    OutboxRelations rel = outbox_relations();
    bool found = false;
    Oid unreadable = InvalidOid;
    pg_call([&] {
      Snapshot snapshot = fresh_snapshot();
      found = !PG_ARGISNULL(0) && find_group(rel, snapshot, PG_GETARG_DATUM(0), g);
      if (found) unreadable = unreadable_route(rel, snapshot, g.topic);
      UnregisterSnapshot(snapshot);
    });
    if (!found)
      raise(kUnknownGroup,
            "consumer group \"" + text_or_null(fcinfo, 0) + "\" is not subscribed to topic \"" +
                text_or_null(fcinfo, 1) + "\"",
            {}, "Create it with es.outbox_subscribe().");
    if (OidIsValid(unreadable)) {
      Datum store[1] = {ObjectIdGetDatum(unreadable)};
      run(store_privilege_plan, store, nullptr, SPI_OK_SELECT);
    }

    if (max_count > 0) {
      TimestampTz claimed_at = GetCurrentTimestamp();
      TimestampTz lease_end = pg_call([&] {
        return DatumGetTimestampTz(DirectFunctionCall2(
            timestamptz_pl_interval, TimestampTzGetDatum(claimed_at), lease));
      });

      // Expired leases, unless another claim of the group is sweeping or none can be due.
      bool held_lanes = false;
      if (claimed_at >= sweep_not_before(g.id) && outbox_claim_lock(g.id, kOutboxShards, false))
        held_lanes = sweep(rel, g, claimed_at) > 0;

      // Ready lanes, side by side with the group's other workers.
      if (has_ready_lane(rel, g, claimed_at)) {
        Datum values[4] = {Int32GetDatum(g.id), TimestampTzGetDatum(claimed_at),
                           Int32GetDatum(max_count), TimestampTzGetDatum(lease_end)};
        uint64 n = run(ready_plan, values, nullptr, SPI_OK_UPDATE_RETURNING);
        for (uint64 i = 0; i < n; ++i) {
          bool isnull;  // SPI_getbinval of a plain column does not ereport
          ids.push_back(DatumGetInt64(spi_value(i, 1, &isnull)));
          tries.push_back(DatumGetInt32(spi_value(i, 2, &isnull)));
        }
      }

      // New messages, shard by shard, the shard with the oldest new message first; a shard
      // another claim is taking in is skipped. When every such shard is busy and nothing was
      // handed out, wait for the first (holding no lane, so no claim waits for us), then go
      // round again.
      for (int pass = 0; pass < 2 && static_cast<int>(ids.size()) < max_count; ++pass) {
        int64 horizon = outbox_safe_horizon();
        std::vector<int> order = shard_order(rel, g, horizon);
        int locked = 0;
        for (int shard : order) {
          if (static_cast<int>(ids.size()) >= max_count) break;
          if (!outbox_claim_lock(g.id, shard, false)) continue;
          ++locked;
          std::vector<int64> heads =
              intake(rel, g, shard, horizon, max_count - static_cast<int>(ids.size()), lease_end);
          ids.insert(ids.end(), heads.begin(), heads.end());
          tries.insert(tries.end(), heads.size(), 1);
        }
        if (locked > 0 || !ids.empty() || held_lanes || order.empty()) break;
        outbox_claim_lock(g.id, order.front(), true);
      }
    }
  }

  pg_call([&] { InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC); });
  if (ids.empty()) return (Datum)0;
  // In id order (a claim returns its messages in id order).
  std::vector<std::pair<int64, int32>> out;
  for (size_t i = 0; i < ids.size(); ++i) out.emplace_back(ids[i], tries[i]);
  std::sort(out.begin(), out.end());
  for (size_t i = 0; i < out.size(); ++i) {
    ids[i] = out[i].first;
    tries[i] = out[i].second;
  }
  AsExtensionOwner owner;
  OutboxRelations rel = outbox_relations();
  pg_call([&] { put_messages(fcinfo, rel, ids.data(), tries.data(), static_cast<int>(ids.size())); });
  return (Datum)0;
}

// ---- The ack ------------------------------------------------------------------------------------

void check_group(Datum consumer_group, bool group_null) {
  Datum values[1] = {consumer_group};
  char nulls[2] = {group_null ? 'n' : ' ', '\0'};
  run(check_group_plan, values, nulls, SPI_OK_SELECT);
}

// A lane an ack locked: the version it holds the lock on.
struct LockedLane {
  ItemPointerData tid;
  bool leased;
  TimestampTz due_at;
  bool waiting;  // keyed, with messages behind the head
};

// Locks (FOR UPDATE) the lanes of `consumer_group`'s groups whose heads are `ids` (sorted), in
// id order, through the lanes' primary key; returns how many it found, in `out` (palloc'd).
// As SELECT ... FOR UPDATE in READ COMMITTED: a lane another transaction is changing is waited
// for, and when that transaction changed or deleted it, looked up again with a new snapshot
// (a lane that moved to another head is no longer the id's). Plain PostgreSQL code.
int lock_lanes(const OutboxRelations &rel, Datum consumer_group, const int64 *ids, int count,
               LockedLane **out) {
  // The groups of the consumer group (one per topic), through the unique index's first column.
  int32 *groups = static_cast<int32 *>(palloc(sizeof(int32) * 8));
  int group_count = 0, group_capacity = 8;
  Snapshot snapshot = fresh_snapshot();
  {
    Relation index = index_open(rel.groups_key, AccessShareLock);
    Oid collation = index->rd_indcollation[0];
    index_close(index, NoLock);
    ScanKeyData keys[1];
    key(keys[0], 1, BTEqualStrategyNumber, F_TEXTEQ, consumer_group, collation);
    scan_index(rel.groups, rel.groups_key, snapshot, keys, 1, ForwardScanDirection,
               [&](TupleTableSlot *slot) {
                 bool isnull;
                 if (group_count == group_capacity) {
                   group_capacity *= 2;
                   groups = static_cast<int32 *>(repalloc(groups, sizeof(int32) * group_capacity));
                 }
                 groups[group_count++] = DatumGetInt32(slot_getattr(slot, 1, &isnull));
                 return true;
               });
  }
  // By group id, as the index returns the lanes of one head.
  for (int i = 1; i < group_count; ++i)
    for (int j = i; j > 0 && groups[j] < groups[j - 1]; --j) std::swap(groups[j], groups[j - 1]);
  auto *lanes_found =
      static_cast<LockedLane *>(palloc(sizeof(LockedLane) * std::max(1, count * group_count)));
  int found = 0;
  Relation lanes = table_open(rel.lanes, RowShareLock);
  TupleTableSlot *slot = table_slot_create(lanes, nullptr);
  for (int i = 0; i < count; ++i) {
    for (int k = 0; k < group_count; ++k) {
      for (;;) {
        ItemPointerData tid;
        bool visible = false;
        ScanKeyData keys[2];
        key(keys[0], 1, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(groups[k]));
        key(keys[1], 2, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(ids[i]));
        scan_index(rel.lanes, rel.lanes_pkey, snapshot, keys, 2, ForwardScanDirection,
                   [&](TupleTableSlot *row) {
                     visible = true;
                     tid = row->tts_tid;
                     return false;
                   });
        if (!visible) break;
        TM_FailureData failure;
        TM_Result result = table_tuple_lock(lanes, &tid, snapshot, slot,
                                            GetCurrentCommandId(true), LockTupleExclusive,
                                            LockWaitBlock, 0, &failure);
        if (result == TM_Ok) {
          bool isnull;
          LockedLane &lane = lanes_found[found++];
          lane.tid = tid;
          bool keyed = !slot_attisnull(slot, 2);
          int64 head = DatumGetInt64(slot_getattr(slot, 3, &isnull));
          int64 tail = DatumGetInt64(slot_getattr(slot, 4, &isnull));
          lane.leased = DatumGetBool(slot_getattr(slot, 6, &isnull));
          lane.due_at = DatumGetTimestampTz(slot_getattr(slot, 7, &isnull));
          lane.waiting = keyed && tail > head;
          break;
        }
        if (result != TM_Updated && result != TM_Deleted && result != TM_SelfModified)
          elog(ERROR, "pg_eventstore: unexpected result %d locking an outbox lane", result);
        // Changed or deleted meanwhile: look the head up again, in a new snapshot.
        UnregisterSnapshot(snapshot);
        snapshot = fresh_snapshot();
      }
    }
  }
  ExecDropSingleTupleTableSlot(slot);
  table_close(lanes, NoLock);
  UnregisterSnapshot(snapshot);
  *out = lanes_found;
  return found;
}

Datum ack(FunctionCallInfo fcinfo) {
  if (PG_ARGISNULL(1))
    raise(kInvalidOutboxArgument, "ids must be an array of message ids without NULLs");
  std::vector<int64> wanted;
  bool has_null = false;
  pg_call([&] {
    ArrayType *array = PG_GETARG_ARRAYTYPE_P(1);
    if (ARR_NDIM(array) > 1)  // as array_position() in the PL/pgSQL version
      ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                      errmsg("searching for elements in multidimensional arrays is not supported")));
    has_null = array_contains_nulls(array);
  });
  if (has_null) raise(kInvalidOutboxArgument, "ids must be an array of message ids without NULLs");
  Datum *elems = nullptr;
  int count = 0;
  pg_call([&] {
    bool *nulls;
    deconstruct_array(PG_GETARG_ARRAYTYPE_P(1), INT8OID, sizeof(int64), FLOAT8PASSBYVAL,
                      TYPALIGN_DOUBLE, &elems, &nulls, &count);
  });
  for (int i = 0; i < count; ++i) wanted.push_back(DatumGetInt64(elems[i]));
  std::sort(wanted.begin(), wanted.end());
  wanted.erase(std::unique(wanted.begin(), wanted.end()), wanted.end());

  Datum consumer_group = PG_ARGISNULL(0) ? (Datum)0 : PG_GETARG_DATUM(0);
  bool group_null = PG_ARGISNULL(0);
  SpiConnection spi;
  IndexPlans index_plans;
  AsExtensionOwner owner;
  if (wanted.empty()) {
    check_group(consumer_group, group_null);
    return (Datum)0;
  }
  TimestampTz now_at = GetCurrentTimestamp();
  OutboxRelations rel = outbox_relations();
  LockedLane *locked = nullptr;
  int n = group_null ? 0 : pg_call([&] {
    return lock_lanes(rel, consumer_group, wanted.data(), static_cast<int>(wanted.size()), &locked);
  });
  std::vector<ItemPointerData> finished, waiting;
  bool all_held = n == static_cast<int>(wanted.size());
  for (int i = 0; i < n; ++i) {
    if (!locked[i].leased || locked[i].due_at <= now_at) all_held = false;
    (locked[i].waiting ? waiting : finished).push_back(locked[i].tid);
  }
  char nulls[3] = {group_null ? 'n' : ' ', ' ', '\0'};
  if (!all_held) {
    // Some id is not held, or its lease ran out: one by one, for the precise error.
    check_group(consumer_group, group_null);
    for (int64 one : wanted) {
      Datum held[2] = {consumer_group, Int64GetDatum(one)};
      run(held_plan, held, nulls, SPI_OK_SELECT);
    }
  }
  // Lanes with nothing waiting go away; the others move to their next message.
  // (By tuple id, directly: the rows stay locked by this transaction, so no one else changed
  // them since they were locked.)
  if (!finished.empty()) {
    Oid lanes_oid = rel.lanes;
    pg_call([&] {
      Snapshot snapshot = fresh_snapshot();
      Relation lanes = table_open(lanes_oid, RowExclusiveLock);
      for (ItemPointerData &tid : finished) simple_table_tuple_delete(lanes, &tid, snapshot);
      table_close(lanes, NoLock);
      UnregisterSnapshot(snapshot);
    });
  }
  if (!waiting.empty()) {
    Datum tids[1] = {tid_array(waiting)};
    run(advance_lanes_plan, tids, nullptr, SPI_OK_SELECT);
  }
  return (Datum)0;
}

}  // namespace
}  // namespace es

extern "C" {

// es.outbox_claim(consumer_group, topic, max_count, lease) -> SETOF es.outbox_message
PG_FUNCTION_INFO_V1(es_outbox_claim);
Datum es_outbox_claim(PG_FUNCTION_ARGS) {
  return es::guarded([&] { return es::claim(fcinfo); });
}

// es.outbox_ack(consumer_group, ids)
PG_FUNCTION_INFO_V1(es_outbox_ack);
Datum es_outbox_ack(PG_FUNCTION_ARGS) {
  return es::guarded([&] { return es::ack(fcinfo); });
}

}
