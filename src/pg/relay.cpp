// The notification relay: a dynamic background worker per database that, every
// pg_eventstore.relay_interval, runs `SELECT channel, payload FROM es._relay_poll()` in a short
// transaction of its own and NOTIFYs each row. Writers never NOTIFY, so their commits never
// take NOTIFY's cluster-wide lock (PreCommit_Notify in src/backend/commands/async.c); the
// relay commits asynchronously, so its own notifying commits do not wait for a WAL flush.
//
// Lifecycle, without shared_preload_libraries (dynamic workers need no preload):
//  - started on demand: by the first committing append in a backend (then at most one check
//    every kRequestInterval per backend), by es.listen(), es.subscription_create() and
//    es.relay_start();
//  - one per database: the relay holds a session lock (LOCKTAG_USERLOCK: database, 0, 0,
//    kRelayLockFlag; horizon registrations use the 0x8000 flag and a store oid, so they never
//    meet it); a starter that can take that lock knows none runs, releases it and registers
//    a worker; a duplicate worker finds the lock taken and exits;
//  - an error in a poll is logged and the relay carries on; if it dies otherwise, the
//    postmaster restarts it after kRestartSeconds;
//  - it exits (and is started again on demand) when the extension is dropped, when its
//    database is being dropped or renamed (so DROP DATABASE is not held up), after
//    pg_eventstore.relay_idle_timeout without anything to notify, and when
//    pg_eventstore.relay is turned off (then it is not started either).
// With shared_preload_libraries nothing changes: relays start on demand the same way.
// With pg_eventstore.projection_worker on, the relay also refreshes async projections after
// its polls (src/pg/projection_worker.cpp).
#include "relay.hpp"

#include "horizon.hpp"
#include "outbox.hpp"

#include "../core/limits.hpp"

extern "C" {
#include "access/xlog.h"
#include "catalog/pg_database_d.h"
#include "commands/async.h"
#include "commands/extension.h"
#include "parser/parse_func.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/latch.h"
#include "storage/ipc.h"
#include "tcop/tcopprot.h"
#include "utils/backend_status.h"
#include "utils/wait_event.h"

PGDLLEXPORT void es_relay_main(Datum main_arg);
}

namespace es {

bool relay_enabled = true;
int relay_interval_ms = 2;
int relay_idle_timeout_s = 60;
int relay_busy_interval_ms = 5;

namespace {

constexpr uint16 kRelayLockFlag = 0x4000;
constexpr int kRestartSeconds = 1;
constexpr long kRequestInterval = 5 * USECS_PER_SEC;
constexpr long kErrorBackoffMs = 1000;
constexpr int kFullPollIntervalMs = 100;
constexpr int kProjectionCatchUpMs = 1000;
// A poll that announced this many new positions (events and outbox ids, all stores and topics
// together) makes the relay wait relay_busy_interval: at the default 2 ms interval that is
// 8,000 a second; at 1,000 appends/s (API.md's latency target) it polls every relay_interval.
constexpr int64 kBusyPositions = 16;
constexpr const char *kWorkerType = "pg_eventstore relay";
// NOTIFY_PAYLOAD_MAX_LENGTH of src/backend/commands/async.c (not in a header).
constexpr std::size_t kMaxPayload = BLCKSZ - NAMEDATALEN - 128;
// What pg_stat_activity shows while a poll runs (it computes what es._relay_poll() returns).
constexpr const char *kPollActivity = "SELECT channel, payload FROM es._relay_poll()";

TimestampTz next_request_check = 0;

void set_relay_tag(LOCKTAG &tag, Oid database) {
  tag.locktag_field1 = database;
  tag.locktag_field2 = InvalidOid;
  tag.locktag_field3 = 0;
  tag.locktag_field4 = kRelayLockFlag;
  tag.locktag_type = LOCKTAG_USERLOCK;
  tag.locktag_lockmethodid = USER_LOCKMETHOD;
}

// True when a relay holds this database's relay lock (or the lock table is full: then we
// cannot tell and do not start another). Never raises.
bool relay_running() {
  LOCKTAG tag;
  set_relay_tag(tag, MyDatabaseId);
  LockAcquireResult got =
      LockAcquireExtended(&tag, ExclusiveLock, true, true, false, nullptr);
  if (got == LOCKACQUIRE_NOT_AVAIL) return true;
  LockRelease(&tag, ExclusiveLock, true);
  return false;
}

// Registers a relay worker for this database; false when no worker slot is free.
bool register_relay() {
  BackgroundWorker worker;
  memset(&worker, 0, sizeof worker);
  worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
  worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
  worker.bgw_restart_time = kRestartSeconds;
  strlcpy(worker.bgw_library_name, "pg_eventstore", BGW_MAXLEN);
  strlcpy(worker.bgw_function_name, "es_relay_main", BGW_MAXLEN);
  ::snprintf(worker.bgw_name, BGW_MAXLEN, "pg_eventstore relay for database %u", MyDatabaseId);
  strlcpy(worker.bgw_type, kWorkerType, BGW_MAXLEN);
  worker.bgw_main_arg = ObjectIdGetDatum(MyDatabaseId);
  worker.bgw_notify_pid = 0;
  return RegisterDynamicBackgroundWorker(&worker, nullptr);
}

// Starts a relay unless one runs; true when one runs or was registered.
bool ensure_relay() {
  if (!relay_enabled || !OidIsValid(MyDatabaseId) || RecoveryInProgress()) return false;
  return relay_running() || register_relay();
}

// Appending transactions ask for a relay just before they commit (errors are allowed there,
// and the check itself never raises).
void on_xact(XactEvent event, void *) {
  if (event == XACT_EVENT_PRE_COMMIT && horizon_registered()) relay_request();
}

// --- The relay's own state: per store, what it saw at its last poll -------------------------

struct StoreState {
  Oid store;         // hash key
  Oid position_seq;  // a different sequence under the same oid: a new store, start over
  int64 sequence_value;
  int64 head;
  int64 notified;    // last position announced; -1: never seen
  SPIPlanPtr newest_event;  // SELECT max(global_position) ... WHERE global_position <= $1
  SPIPlanPtr run;           // SELECT global_position ... WHERE > $1 AND <= $2 ORDER BY 1 LIMIT $3
  bool plan_stale;          // the table changed (e.g. renamed): prepare again
  char channel[NAMEDATALEN];  // es.store_channel(store); "" until asked or after a rename
};
HTAB *store_states = nullptr;

void invalidate_plans(Datum, Oid relid) {
  HASH_SEQ_STATUS status;
  hash_seq_init(&status, store_states);
  while (auto *state = static_cast<StoreState *>(hash_seq_search(&status)))
    if (relid == InvalidOid || state->store == relid) {
      state->plan_stale = true;
      state->channel[0] = '\0';
    }
}

// A renamed schema renames every channel in it (ALTER SCHEMA ... RENAME sends no relcache
// invalidation for its tables).
void invalidate_channels(Datum, int, uint32) {
  HASH_SEQ_STATUS status;
  hash_seq_init(&status, store_states);
  while (auto *state = static_cast<StoreState *>(hash_seq_search(&status))) state->channel[0] = '\0';
}

// The state of `store`, reset when it is new or its oid now names another store.
StoreState *store_state(Oid store, Oid position_seq) {
  if (store_states == nullptr) {
    HASHCTL ctl;
    memset(&ctl, 0, sizeof ctl);
    ctl.keysize = sizeof(Oid);
    ctl.entrysize = sizeof(StoreState);
    store_states = hash_create("pg_eventstore relay stores", 16, &ctl, HASH_ELEM | HASH_BLOBS);
    CacheRegisterRelcacheCallback(invalidate_plans, 0);
    CacheRegisterSyscacheCallback(NAMESPACEOID, invalidate_channels, 0);
  }
  bool found = false;
  auto *state = static_cast<StoreState *>(hash_search(store_states, &store, HASH_ENTER, &found));
  if (found && state->position_seq == position_seq) return state;
  if (found && state->newest_event) SPI_freeplan(state->newest_event);
  if (found && state->run) SPI_freeplan(state->run);
  state->position_seq = position_seq;
  state->sequence_value = -1;
  state->head = -1;
  state->notified = -1;
  state->newest_event = nullptr;
  state->run = nullptr;
  state->plan_stale = false;
  state->channel[0] = '\0';
  return state;
}

// Locks the store (to the end of the poll) so that a concurrent es.drop_event_table cannot
// pull it and its sequence away mid-poll; false when it is being dropped right now, is gone,
// or a transaction holds a SHARE (ROW EXCLUSIVE) lock on it: skip it this time. The mode is
// RowExclusiveLock, not AccessShareLock, because lookup_store prepares the store's INSERT
// plan, which takes RowExclusiveLock: upgrading to it unconditionally mid-poll deadlocked with
// a transaction that held SHARE ROW EXCLUSIVE (an inline projection created) and then asked
// for ACCESS EXCLUSIVE (DROP TRIGGER of a route or projection).
bool lock_store(Oid store) {
  return pg_call([&] {
    if (!ConditionalLockRelationOid(store, RowExclusiveLock)) return false;
    if (SearchSysCacheExists1(RELOID, ObjectIdGetDatum(store))) return true;
    UnlockRelationOid(store, RowExclusiveLock);
    return false;
  });
}

// Drops the store's plans after its table changed (e.g. was renamed).
void refresh_plans(StoreState &state) {
  if (!state.plan_stale) return;
  pg_call([&] {
    if (state.newest_event != nullptr) SPI_freeplan(state.newest_event);
    if (state.run != nullptr) SPI_freeplan(state.run);
  });
  state.newest_event = state.run = nullptr;
  state.plan_stale = false;
}

// Newest event at or below `head`, read with a snapshot taken now (after the head was
// computed), so every position at or below the head is settled and visible to it.
int64 newest_event_upto(StoreState &state, int64 head) {
  refresh_plans(state);
  if (state.newest_event == nullptr) {
    const char *table = qualified_name(state.store);
    if (table == nullptr) raise(sqlstate::kUnknownStore, "event table vanished");
    Oid types[1] = {INT8OID};
    state.newest_event = prepare_kept(
        (std::string("SELECT max(global_position) FROM ") + table +
         " WHERE global_position <= $1").c_str(),
        1, types);
  }
  return pg_call([&]() -> int64 {
    Datum values[1] = {Int64GetDatum(head)};
    if (SPI_execute_snapshot(state.newest_event, values, nullptr, GetLatestSnapshot(),
                             InvalidSnapshot, true, false, 1) != SPI_OK_SELECT)
      elog(ERROR, "pg_eventstore relay: newest event query failed");
    bool isnull = true;
    Datum newest = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
    return isnull ? 0 : DatumGetInt64(newest);
  });
}

// Positions (events and outbox ids) the polls of this process announced; the relay's loop
// reads it to tell a busy store from a quiet one.
int64 positions_announced = 0;

// Events read per poll by gap_free_end (the next poll reads on).
constexpr int64 kRunLimit = 10000;

// The end of the run of events at after+1, after+2, ... (at most up to `allocated`) that a
// snapshot taken now sees without a gap; `after` when there is none. Positions are unique (the
// store's primary key) and committed rows are never deleted, so no transaction can ever add a
// row at or below that end: it is settled, as es.read_all's gap-free pages are, without the
// lock-table copy of the safe horizon (which holds every lock partition while it runs).
int64 gap_free_end(StoreState &state, int64 after, int64 allocated) {
  refresh_plans(state);
  if (state.run == nullptr) {
    const char *table = qualified_name(state.store);
    if (table == nullptr) raise(sqlstate::kUnknownStore, "event table vanished");
    Oid types[3] = {INT8OID, INT8OID, INT8OID};
    state.run = prepare_kept((std::string("SELECT global_position FROM ") + table +
                              " WHERE global_position > $1 AND global_position <= $2"
                              " ORDER BY global_position LIMIT $3")
                                 .c_str(),
                             3, types, CURSOR_OPT_GENERIC_PLAN);
  }
  return pg_call([&]() -> int64 {
    Datum values[3] = {Int64GetDatum(after), Int64GetDatum(allocated), Int64GetDatum(kRunLimit)};
    if (SPI_execute_snapshot(state.run, values, nullptr, GetLatestSnapshot(), InvalidSnapshot,
                             true, false, 0) != SPI_OK_SELECT)
      elog(ERROR, "pg_eventstore relay: event run query failed");
    int64 end = after;
    for (uint64 i = 0; i < SPI_processed; ++i) {
      bool isnull = true;
      Datum position = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
      if (isnull || DatumGetInt64(position) != end + 1) break;
      ++end;
    }
    return end;
  });
}

// The position to announce for `store` now, or 0. A store whose sequence has not moved since
// a poll that found its head equal to it is skipped without computing the head: nothing in
// it can have changed. An append that rolled back moves the head but not the newest event,
// so it is never announced.
int64 store_news(Oid store, Oid position_seq) {
  if (!lock_store(store)) return 0;
  int64 sequence_value = sequence_last_value(position_seq);
  StoreState *state = pg_call([&] { return store_state(store, position_seq); });
  if (state->sequence_value == sequence_value && state->head == sequence_value) return 0;
  SpiConnection spi;
  StoreInfo *info = lookup_store(store);
  // Under a steady load: the events committed on from the last head, read without a gap.
  // Only when that finds nothing new (a gap that stays: an append still in flight, or one
  // that rolled back) the safe horizon, which sees past a rolled-back position.
  // Not in a transaction that appended to the store (es._relay_poll called there): its own
  // uncommitted rows are visible to it and would fill gaps.
  if (state->head >= 0 && !horizon_registered(store)) {
    int64 allocated = durable_sequence_value(*info, state->head, false);
    int64 end = allocated > state->head ? gap_free_end(*state, state->head, allocated) : state->head;
    if (end > state->head && end > state->notified) {
      positions_announced += end - std::max<int64>(state->notified, state->head);
      state->sequence_value = sequence_value;
      state->head = end;
      state->notified = end;
      return end;
    }
  }
  int64 head = safe_horizon(*info, -1, false);
  int64 newest = newest_event_upto(*state, head);
  state->sequence_value = sequence_value;
  state->head = head;
  if (newest <= 0 || newest <= state->notified) return 0;
  positions_announced += state->notified > 0 ? newest - state->notified : 1;
  state->notified = newest;
  return newest;
}

// --- The poll -------------------------------------------------------------------------------
// What es._relay_poll() returns, computed without parsing SQL on every poll: the relay polls
// every pg_eventstore.relay_interval (2 ms) while anything is written, so on a 2-core machine
// the parse and plan of the PL/pgSQL poll, its EXECUTE of the outbox part and es.store_channel
// per announcement cost the appenders ~10 us of CPU per transaction (bench/RESULTS.md).
// Kept plans instead; a store's channel is remembered until the store or a schema is renamed.

SPIPlanPtr stores_plan = nullptr;   // the stores, in es._relay_poll's order
SPIPlanPtr channel_plan = nullptr;  // es.store_channel($1)
SPIPlanPtr outbox_plan = nullptr;   // the outbox's rows of es._relay_poll_outbox()

const char *store_channel(StoreState &state) {
  if (state.channel[0] != '\0') return state.channel;
  if (channel_plan == nullptr) {
    Oid types[1] = {REGCLASSOID};
    channel_plan = prepare_kept("SELECT es.store_channel($1)", 1, types);
  }
  return pg_call([&] {
    Datum values[1] = {ObjectIdGetDatum(state.store)};
    if (SPI_execute_plan(channel_plan, values, nullptr, false, 1) != SPI_OK_SELECT ||
        SPI_processed != 1)
      elog(ERROR, "pg_eventstore relay: es.store_channel failed");
    char *channel = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
    if (channel == nullptr || strlen(channel) >= NAMEDATALEN) return static_cast<const char *>(channel);
    strlcpy(state.channel, channel, NAMEDATALEN);
    return static_cast<const char *>(state.channel);
  });
}

// True when the installed extension has the outbox's part of the poll (0.2.0 on).
bool outbox_poll_installed() {
  return pg_call([] {
    List *name = list_make2(makeString(pstrdup("es")), makeString(pstrdup("_relay_poll_outbox")));
    return OidIsValid(LookupFuncName(name, 0, nullptr, true));
  });
}

// The outbox's rows of the poll (es._relay_poll_outbox()): one per topic with messages that
// became safe since this backend's previous call, payload the topic's newest such id.
template <class Emit>
void outbox_rows(Emit &&emit) {
  int64 after = 0, upto = 0;
  outbox_relay_window(after, upto);
  if (upto <= after) return;
  positions_announced += upto - after;
  if (outbox_plan == nullptr) {
    Oid types[2] = {INT8OID, INT8OID};
    outbox_plan = prepare_kept(
        "SELECT es.outbox_channel(m.topic), max(m.id)::text FROM es._outbox_messages m"
        " WHERE m.id > $1 AND m.id <= $2 GROUP BY m.topic ORDER BY m.topic",
        2, types);
  }
  // A snapshot taken after the window: every id in it is settled and visible.
  uint64 rows = pg_call([&] {
    Datum values[2] = {Int64GetDatum(after), Int64GetDatum(upto)};
    if (SPI_execute_snapshot(outbox_plan, values, nullptr, GetLatestSnapshot(), InvalidSnapshot,
                             true, false, 0) != SPI_OK_SELECT)
      elog(ERROR, "pg_eventstore relay: the outbox poll failed");
    return SPI_processed;
  });
  SPITupleTable *table = SPI_tuptable;
  for (uint64 i = 0; i < rows; ++i) {
    char *channel = pg_call([&] { return SPI_getvalue(table->vals[i], table->tupdesc, 1); });
    char *payload = pg_call([&] { return SPI_getvalue(table->vals[i], table->tupdesc, 2); });
    emit(channel, payload);
  }
}

// The rows of es._relay_poll(): (channel, payload) for each store with news, in store order,
// then the outbox's topics with news. Runs inside an SpiConnection; `emit(channel, payload)`.
template <class Emit>
void poll_rows(Emit &&emit) {
  if (stores_plan == nullptr)
    stores_plan = prepare_kept(
        "SELECT st.store::oid, st.position_seq::oid FROM es._stores st ORDER BY st.store::oid", 0,
        nullptr);
  int nstores = 0;
  Oid *stores = pg_call([&] {
    if (SPI_execute_plan(stores_plan, nullptr, nullptr, true, 0) != SPI_OK_SELECT)
      elog(ERROR, "pg_eventstore relay: reading es._stores failed");
    nstores = static_cast<int>(SPI_processed);
    auto *oids = static_cast<Oid *>(palloc(sizeof(Oid) * 2 * (nstores + 1)));
    for (int i = 0; i < 2 * nstores; ++i) {
      bool isnull = false;
      oids[i] = DatumGetObjectId(
          SPI_getbinval(SPI_tuptable->vals[i / 2], SPI_tuptable->tupdesc, 1 + i % 2, &isnull));
    }
    return oids;
  });
  for (int i = 0; i < nstores; ++i) {
    int64 news = store_news(stores[2 * i], stores[2 * i + 1]);
    if (news <= 0) continue;
    StoreState *state = pg_call([&] { return store_state(stores[2 * i], stores[2 * i + 1]); });
    char payload[32];
    ::snprintf(payload, sizeof payload, INT64_FORMAT, news);
    emit(store_channel(*state), payload);
  }
  if (outbox_poll_installed()) outbox_rows(emit);
}

// One (channel, payload) row into a materialized SRF's tuplestore.
void put_row(ReturnSetInfo *rsinfo, const char *channel, const char *payload) {
  pg_call([&] {
    Datum values[2] = {channel ? CStringGetTextDatum(channel) : (Datum)0,
                       payload ? CStringGetTextDatum(payload) : (Datum)0};
    bool nulls[2] = {channel == nullptr, payload == nullptr};
    tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
  });
}

// Queues this poll's notifications (they go out when the transaction commits); returns how
// many. A row Async_Notify would raise on is skipped with a warning: one bad row must not stop
// the others.
int poll_notifications() {
  SpiConnection spi;
  int sent = 0;
  poll_rows([&](const char *channel, const char *payload) {
    if (channel == nullptr || channel[0] == '\0' || strlen(channel) >= NAMEDATALEN ||
        (payload != nullptr && strlen(payload) >= kMaxPayload)) {
      pg_call([&] {
        elog(WARNING, "pg_eventstore relay: skipping invalid notification for channel \"%s\"",
             channel ? channel : "(null)");
      });
      return;
    }
    pg_call([&] { Async_Notify(channel, payload ? payload : ""); });
    ++sent;
  });
  return sent;
}

// --- The worker ----------------------------------------------------------------------------

// Takes the relay lock for the life of the process; false when another relay holds it (a
// starter probing the lock may hold it for a moment: retry briefly).
bool claim_relay_lock() {
  LOCKTAG tag;
  set_relay_tag(tag, MyDatabaseId);
  for (int attempt = 0; attempt < 5; ++attempt) {
    StartTransactionCommand();
    LockAcquireResult got = LockAcquire(&tag, ExclusiveLock, true, true);
    CommitTransactionCommand();
    if (got != LOCKACQUIRE_NOT_AVAIL) return true;
    (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 20,
                    PG_WAIT_EXTENSION);
    ResetLatch(MyLatch);
    CHECK_FOR_INTERRUPTS();
  }
  return false;
}

void release_relay_lock() {
  LOCKTAG tag;
  set_relay_tag(tag, MyDatabaseId);
  LockRelease(&tag, ExclusiveLock, true);
}

bool appends_in_flight() {
  StartTransactionCommand();
  bool busy = appenders_in_flight(MyDatabaseId);
  CommitTransactionCommand();
  return busy;
}

// After relay_idle_timeout: hand over and exit, unless an append is in flight. A backend
// checks for a relay just before its appending transaction commits, holding its horizon
// registration until the commit is visible; so once the lock is released and no registration
// is left, every append that counted on this relay is committed and the final poll sees it.
bool try_idle_exit() {
  if (appends_in_flight()) return false;
  release_relay_lock();
  if (appends_in_flight()) {
    if (claim_relay_lock()) return false;
    return true;  // another relay took over
  }
  return true;
}

// DROP DATABASE, ALTER DATABASE RENAME/SET TABLESPACE hold an AccessExclusiveLock on the
// database while they wait for its other sessions to leave (src/backend/commands/dbcommands.c).
bool database_wants_us_gone() {
  LOCKTAG tag;
  SET_LOCKTAG_OBJECT(tag, InvalidOid, DatabaseRelationId, MyDatabaseId, 0);
  return LockAcquire(&tag, AccessShareLock, false, true) == LOCKACQUIRE_NOT_AVAIL;
}

enum class PollOutcome {
  Quiet,     // nothing to announce, nothing in flight: until new WAL, nothing can change
  Idle,      // nothing to announce
  Notified,  // notifications sent
  Stop,      // the extension or the database is going away
};

// One poll in one short transaction; the NOTIFYs go out when it commits.
// When poll_once last asked whether the database or the extension is going away (a catalog
// scan and a lock-manager round trip: every kFullPollIntervalMs, not every poll).
TimestampTz last_existence_check = 0;

PollOutcome poll_once() {
  SetCurrentStatementStartTimestamp();
  StartTransactionCommand();
  TimestampTz now = GetCurrentStatementStartTimestamp();
  bool check = TimestampDifferenceExceeds(last_existence_check, now, kFullPollIntervalMs);
  if (check) last_existence_check = now;
  if ((check && (database_wants_us_gone() ||
                 !OidIsValid(get_extension_oid("pg_eventstore", true)))) ||
      !OidIsValid(get_namespace_oid("es", true))) {
    CommitTransactionCommand();
    return PollOutcome::Stop;
  }
  // Quiet (see es_relay_main): no transaction with an xid running in the cluster when the
  // snapshot is taken, and no append or publish in flight in this database afterwards (one
  // that registered before and is gone committed or aborted before that check, i.e. it is
  // visible to the snapshot or wrote WAL after the loop read the insert position): everything
  // committed so far is then visible to this poll. The lock-table copy of that check is made
  // only when the snapshot saw nothing running: never under a steady load.
  Snapshot snapshot = GetTransactionSnapshot();
  bool nothing_running = snapshot->xcnt == 0 && snapshot->subxcnt == 0 &&
                         !snapshot->suboverflowed && !appenders_in_flight(MyDatabaseId);
  PushActiveSnapshot(snapshot);
  pgstat_report_activity(STATE_RUNNING, kPollActivity);
  bool notified = DatumGetInt32(guarded([] { return Int32GetDatum(poll_notifications()); })) > 0;
  bool quiet = !notified && nothing_running;
  PopActiveSnapshot();
  CommitTransactionCommand();
  pgstat_report_stat(false);
  pgstat_report_activity(STATE_IDLE, nullptr);
  return notified ? PollOutcome::Notified : quiet ? PollOutcome::Quiet : PollOutcome::Idle;
}

// poll_once, with an error logged and rolled back instead of ending the relay.
PollOutcome poll_or_recover() {
  volatile PollOutcome outcome = PollOutcome::Idle;
  PG_TRY();
  { outcome = poll_once(); }
  PG_CATCH();
  {
    HOLD_INTERRUPTS();
    EmitErrorReport();
    AbortOutOfAnyTransaction();
    FlushErrorState();
    RESUME_INTERRUPTS();
    MemoryContextSwitchTo(TopMemoryContext);
    pgstat_report_activity(STATE_IDLE, nullptr);
    (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, kErrorBackoffMs,
                    PG_WAIT_EXTENSION);
    ResetLatch(MyLatch);
  }
  PG_END_TRY();
  return outcome;
}

}  // namespace

void relay_request() {
  TimestampTz now = GetCurrentTimestamp();
  if (now < next_request_check) return;
  next_request_check = now + kRequestInterval;
  (void)ensure_relay();
}

void relay_init() {
  DefineCustomBoolVariable(
      "pg_eventstore.relay",
      "Runs the notification relay (store and outbox NOTIFYs); off stops it and keeps it off.",
      nullptr, &relay_enabled, true, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
  DefineCustomIntVariable(
      "pg_eventstore.relay_interval",
      "How often the notification relay looks for committed appends.", nullptr,
      &relay_interval_ms, 2, 1, 60000, PGC_SIGHUP, GUC_UNIT_MS, nullptr, nullptr, nullptr);
  DefineCustomIntVariable(
      "pg_eventstore.relay_busy_interval",
      "How often the notification relay looks for committed appends while they arrive faster "
      "than it notifies (at least 16 new positions per poll); never below relay_interval.",
      "Each poll is a short transaction that wakes up on a cold CPU; under a heavy load polls "
      "every relay_interval cost the appenders measurable throughput for no gain: every "
      "notification is coalesced anyway.",
      &relay_busy_interval_ms, 5, 1, 60000, PGC_SIGHUP, GUC_UNIT_MS, nullptr, nullptr, nullptr);
  DefineCustomIntVariable(
      "pg_eventstore.relay_idle_timeout",
      "How long the notification relay runs with nothing to notify before it exits "
      "(it is started again on demand); 0 keeps it running.",
      nullptr, &relay_idle_timeout_s, 60, 0, INT_MAX / 1000, PGC_SIGHUP, GUC_UNIT_S, nullptr,
      nullptr, nullptr);
  RegisterXactCallback(on_xact, nullptr);
  projection_worker_init();
}

}  // namespace es

// The relay's main loop (runs in the background worker; plain C style: no C++ objects with
// destructors live here, so ereport's longjmp is harmless).
void es_relay_main(Datum main_arg) {
  pqsignal(SIGHUP, SignalHandlerForConfigReload);
  pqsignal(SIGTERM, die);
  BackgroundWorkerUnblockSignals();
  BackgroundWorkerInitializeConnectionByOid(DatumGetObjectId(main_arg), InvalidOid, 0);
  // Notifications are lost in a crash anyway: never wait for a WAL flush to send them.
  SetConfigOption("synchronous_commit", "off", PGC_SUSET, PGC_S_OVERRIDE);
  SetConfigOption("lock_timeout", "1s", PGC_SUSET, PGC_S_OVERRIDE);
  SetConfigOption("application_name", es::kWorkerType, PGC_USERSET, PGC_S_OVERRIDE);
  pgstat_report_appname(es::kWorkerType);
  if (!es::claim_relay_lock()) proc_exit(0);

  // A quiet poll (nothing announced, nothing in flight or running when it began) is followed
  // only by polls that see new WAL: a transaction that was not yet visible to it must commit
  // later, and every commit writes a commit record, so while the WAL insert position (read
  // before the poll began) stands still, nothing new can be visible. An idle relay thus costs
  // a latch wake-up per interval. A full poll still runs every kFullPollIntervalMs, to notice
  // DROP DATABASE.
  TimestampTz last_notified = GetCurrentTimestamp();
  TimestampTz last_full_poll = 0;
  XLogRecPtr quiet_since = InvalidXLogRecPtr;
  TimestampTz last_projection_pass = 0;
  bool projections_pending = false;
  bool busy = false;
  for (;;) {
    CHECK_FOR_INTERRUPTS();
    if (ConfigReloadPending) {
      ConfigReloadPending = false;
      ProcessConfigFile(PGC_SIGHUP);
    }
    if (!es::relay_enabled) break;
    XLogRecPtr wal = GetXLogInsertRecPtr();
    TimestampTz now = GetCurrentTimestamp();
    if (quiet_since == InvalidXLogRecPtr || wal != quiet_since ||
        TimestampDifferenceExceeds(last_full_poll, now, es::kFullPollIntervalMs)) {
      int64 announced_before = es::positions_announced;
      es::PollOutcome outcome = es::poll_or_recover();
      if (outcome == es::PollOutcome::Stop) break;
      busy = es::positions_announced - announced_before >= es::kBusyPositions;
      last_full_poll = now;
      quiet_since = outcome == es::PollOutcome::Quiet ? wal : InvalidXLogRecPtr;
      if (outcome == es::PollOutcome::Notified) {
        last_notified = now;
        projections_pending = true;
      }
    }
    // After the notifications went out: async projections (src/pg/projection_worker.cpp),
    // when a store advanced, while a pass left work, and at least every kProjectionCatchUpMs.
    if (es::projection_worker_enabled &&
        (projections_pending ||
         TimestampDifferenceExceeds(last_projection_pass, now, es::kProjectionCatchUpMs))) {
      projections_pending = es::refresh_projections();
      last_projection_pass = now;
    }
    if (es::relay_idle_timeout_s > 0 &&
        TimestampDifferenceExceeds(last_notified, now, es::relay_idle_timeout_s * 1000)) {
      if (es::try_idle_exit()) {
        (void)es::poll_or_recover();
        break;
      }
      last_notified = now;
    }
    // Busy (the poll announced kBusyPositions or more): many commits per interval, the next
    // notification is coalesced over relay_busy_interval instead.
    (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
                    busy ? std::max(es::relay_interval_ms, es::relay_busy_interval_ms)
                         : es::relay_interval_ms,
                    PG_WAIT_EXTENSION);
    ResetLatch(MyLatch);
  }
  proc_exit(0);
}

extern "C" {

// es.relay_start() → boolean: starts this database's relay unless one runs; true when one
// runs or was registered, false when pg_eventstore.relay is off or no worker slot is free.
PG_FUNCTION_INFO_V1(es_relay_start);
Datum es_relay_start(PG_FUNCTION_ARGS) {
  return es::guarded([&] {
    bool ok = es::pg_call([] { return es::ensure_relay(); });
    return BoolGetDatum(ok);
  });
}

// es._relay_interval_ms() → integer: pg_eventstore.relay_interval in milliseconds.
PG_FUNCTION_INFO_V1(es_relay_interval_ms);
Datum es_relay_interval_ms(PG_FUNCTION_ARGS) { PG_RETURN_INT32(es::relay_interval_ms); }

// es._relay_poll() → TABLE (channel text, payload text): what the relay's next poll would
// NOTIFY, computed as the relay computes it (the "announced up to" state is this backend's).
PG_FUNCTION_INFO_V1(es_relay_poll);
Datum es_relay_poll(PG_FUNCTION_ARGS) {
  return es::guarded([&] {
    es::pg_call([&] { InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC); });
    auto *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    es::SpiConnection spi;
    es::poll_rows([&](const char *channel, const char *payload) {
      es::put_row(rsinfo, channel, payload);
    });
    return (Datum)0;
  });
}

// es._relay_poll_outbox() → TABLE (channel text, payload text): the outbox's part of the poll.
PG_FUNCTION_INFO_V1(es_relay_poll_outbox);
Datum es_relay_poll_outbox(PG_FUNCTION_ARGS) {
  return es::guarded([&] {
    es::pg_call([&] { InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC); });
    auto *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    es::SpiConnection spi;
    es::outbox_rows([&](const char *channel, const char *payload) {
      es::put_row(rsinfo, channel, payload);
    });
    return (Datum)0;
  });
}

// es._relay_store_news(store, position_seq) → bigint: the position to announce for the store
// now (its newest event at or below the safe head, when this backend has not announced it
// yet), or NULL. State is kept in this backend's memory.
PG_FUNCTION_INFO_V1(es_relay_store_news);
Datum es_relay_store_news(PG_FUNCTION_ARGS) {
  return es::guarded([&] {
    int64 news = es::store_news(PG_GETARG_OID(0), PG_GETARG_OID(1));
    if (news <= 0) PG_RETURN_NULL();
    return Int64GetDatum(news);
  });
}

}
