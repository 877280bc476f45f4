// The optional background refresh of async projections (pg_eventstore.projection_worker, off
// by default). When on, the notification relay (src/pg/relay.cpp), after a poll that sent
// notifications, while a previous pass left work, and at least every kCatchUpMs, runs
// es.projection_refresh(name, kBatchEvents) for each async projection that is behind, each in
// a short transaction of its own, and stops a pass after kPassBudgetMs so that notifications
// are never held up for long. Materialized-view projections are left to es.projection_refresh
// (a REFRESH can take long). No preload is needed: the relay is a dynamic worker and reads the
// GUC from postgresql.conf when it loads the library.
//
// Rights: the relay runs as the bootstrap superuser; a projection is refreshed as its owner
// (es._projections.owner, the role that registered it): SET ROLE to it, then the security
// context is marked LOCAL_USERID_CHANGE so the handler cannot SET ROLE, RESET ROLE or SET
// SESSION AUTHORIZATION its way back, and every setting the handler changed is rolled back
// after it (as PostgreSQL does around maintenance commands that run a table owner's code).
// A projection whose owner no longer exists is skipped.
//
// Errors: a handler error is recorded by es.projection_refresh itself (last_error, WARNING);
// any other error of one projection (a lock timeout, a missing privilege) is logged, rolled
// back and recorded in its last_error as well. A projection with an error recorded in the last
// kErrorRetrySeconds is not retried until then (no WARNING per append in the server log).
//
// Plain C style, like the relay's main loop: no C++ objects with destructors live here, so
// ereport's longjmp is harmless.
#include "relay.hpp"

extern "C" {
#include "pgstat.h"
#include "utils/backend_status.h"
}

namespace es {

bool projection_worker_enabled = false;

namespace {

constexpr int kBatchEvents = 1000;
constexpr long kPassBudgetMs = 200;
constexpr int kErrorRetrySeconds = 60;
constexpr const char *kRefreshSql = "SELECT es.projection_refresh($1, $2)";

// Async projections that are behind their store's head, with no recent error, and their owners.
constexpr const char *kCandidatesSql =
    "SELECT p.name, p.owner::pg_catalog.oid FROM es._projections p"
    " WHERE p.mode = 'async'"
    "   AND (p.last_error_at IS NULL"
    "        OR p.last_error_at < pg_catalog.now() - pg_catalog.make_interval(secs => $1))"
    "   AND p.position < es.head_position(p.store)"
    " ORDER BY p.name";

// Locks the projection's row as the relay, so a refresh running elsewhere is skipped, not
// waited for; the refresh takes the same lock again in the same transaction.
constexpr const char *kLockSql =
    "SELECT 1 FROM es._projections p WHERE p.name = $1 AND p.owner::pg_catalog.oid = $2"
    "   AND p.mode = 'async' FOR UPDATE SKIP LOCKED";

constexpr const char *kRecordErrorSql =
    "UPDATE es._projections p SET last_error = $2, last_error_at = pg_catalog.now(),"
    "       failed_position = p.position + 1 WHERE p.name = $1";

MemoryContext pass_context = nullptr;

struct Candidate {
  char *name;
  Oid owner;
};
// This pass's candidates (in pass_context).
Candidate *candidates = nullptr;
int candidate_count = 0;

void start_xact() {
  SetCurrentStatementStartTimestamp();
  StartTransactionCommand();
  if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "pg_eventstore projection worker: SPI_connect failed");
  PushActiveSnapshot(GetTransactionSnapshot());
}

void end_xact() {
  SPI_finish();
  PopActiveSnapshot();
  CommitTransactionCommand();
}

// Lists the candidates into `candidates`, copied into pass_context.
void list_candidates() {
  start_xact();
  Oid types[1] = {INT4OID};
  Datum values[1] = {Int32GetDatum(kErrorRetrySeconds)};
  if (SPI_execute_with_args(kCandidatesSql, 1, types, values, nullptr, true, 0) != SPI_OK_SELECT)
    elog(ERROR, "pg_eventstore projection worker: listing projections failed");
  int n = static_cast<int>(SPI_processed);
  auto *list = static_cast<Candidate *>(MemoryContextAlloc(pass_context, sizeof(Candidate) * (n + 1)));
  for (int i = 0; i < n; ++i) {
    char *name = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
    bool isnull = true;
    Datum owner = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull);
    list[i].name = MemoryContextStrdup(pass_context, name);
    list[i].owner = isnull ? InvalidOid : DatumGetObjectId(owner);
  }
  end_xact();
  candidates = list;
  candidate_count = n;
}

// Refreshes one projection as its owner; returns the events it processed.
int64 refresh_one(const Candidate &c) {
  start_xact();
  Oid lock_types[2] = {TEXTOID, OIDOID};
  Datum lock_values[2] = {CStringGetTextDatum(c.name), ObjectIdGetDatum(c.owner)};
  if (SPI_execute_with_args(kLockSql, 2, lock_types, lock_values, nullptr, false, 1) !=
      SPI_OK_SELECT)
    elog(ERROR, "pg_eventstore projection worker: locking projection \"%s\" failed", c.name);
  const char *role = SPI_processed == 1 ? GetUserNameFromId(c.owner, true) : nullptr;
  if (role == nullptr) {
    if (SPI_processed == 1)
      elog(LOG, "pg_eventstore projection worker: skipping projection \"%s\": its owner (oid %u) no longer exists",
           c.name, c.owner);
    end_xact();
    return 0;
  }

  int nest_level = NewGUCNestLevel();
  (void)set_config_option("role", role, PGC_SUSET, PGC_S_SESSION, GUC_ACTION_SET, true, 0, false);
  Oid saved_user = InvalidOid;
  int saved_context = 0;
  GetUserIdAndSecContext(&saved_user, &saved_context);
  SetUserIdAndSecContext(GetUserId(), saved_context | SECURITY_LOCAL_USERID_CHANGE);
  pgstat_report_activity(STATE_RUNNING, kRefreshSql);
  Oid types[2] = {TEXTOID, INT4OID};
  Datum values[2] = {CStringGetTextDatum(c.name), Int32GetDatum(kBatchEvents)};
  if (SPI_execute_with_args(kRefreshSql, 2, types, values, nullptr, false, 1) != SPI_OK_SELECT)
    elog(ERROR, "pg_eventstore projection worker: refreshing projection \"%s\" failed", c.name);
  bool isnull = true;
  Datum got = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
  int64 processed = isnull ? 0 : DatumGetInt64(got);
  SetUserIdAndSecContext(saved_user, saved_context);
  AtEOXact_GUC(false, nest_level);
  end_xact();
  pgstat_report_stat(false);
  pgstat_report_activity(STATE_IDLE, nullptr);
  return processed;
}

// Records an error that is not a handler's (those es.projection_refresh records itself).
void record_error(const char *name, const char *message) {
  start_xact();
  Oid types[2] = {TEXTOID, TEXTOID};
  Datum values[2] = {CStringGetTextDatum(name), CStringGetTextDatum(message)};
  (void)SPI_execute_with_args(kRecordErrorSql, 2, types, values, nullptr, false, 0);
  end_xact();
}

// Logs and rolls back the error being handled; returns "SQLSTATE: message" in pass_context.
char *recover() {
  HOLD_INTERRUPTS();
  MemoryContextSwitchTo(pass_context);
  ErrorData *error = CopyErrorData();
  EmitErrorReport();
  AbortOutOfAnyTransaction();
  FlushErrorState();
  RESUME_INTERRUPTS();
  MemoryContextSwitchTo(TopMemoryContext);
  pgstat_report_activity(STATE_IDLE, nullptr);
  return psprintf("%s: %s", unpack_sql_state(error->sqlerrcode),
                  error->message ? error->message : "(no message)");
}

// refresh_one, with an error logged, rolled back and recorded; true when it left work.
bool refresh_or_record(const Candidate &c) {
  volatile bool more = false;
  char *volatile failure = nullptr;
  PG_TRY();
  { more = refresh_one(c) >= kBatchEvents; }
  PG_CATCH();
  { failure = recover(); }
  PG_END_TRY();
  if (failure == nullptr) return more;
  PG_TRY();
  { record_error(c.name, failure); }
  PG_CATCH();
  { (void)recover(); }
  PG_END_TRY();
  return false;
}

}  // namespace

bool refresh_projections() {
  if (pass_context == nullptr)
    pass_context = AllocSetContextCreate(TopMemoryContext, "pg_eventstore projection worker",
                                         ALLOCSET_DEFAULT_SIZES);
  MemoryContextReset(pass_context);
  candidates = nullptr;
  candidate_count = 0;
  TimestampTz started = GetCurrentTimestamp();
  PG_TRY();
  { list_candidates(); }
  PG_CATCH();
  {
    (void)recover();
    candidate_count = 0;
  }
  PG_END_TRY();

  bool more = false;
  for (int i = 0; i < candidate_count; ++i) {
    CHECK_FOR_INTERRUPTS();
    if (TimestampDifferenceExceeds(started, GetCurrentTimestamp(), kPassBudgetMs)) {
      more = true;
      break;
    }
    if (refresh_or_record(candidates[i])) more = true;
  }
  return more;
}

void projection_worker_init() {
  DefineCustomBoolVariable(
      "pg_eventstore.projection_worker",
      "Lets the notification relay keep async projections current shortly after commits.",
      "Each projection is refreshed as the role that registered it.", &projection_worker_enabled,
      false, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
}

}  // namespace es
