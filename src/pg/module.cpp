// Module entry: magic block, GUCs, transaction callbacks, error reporting, small SQL helpers.
#include "horizon.hpp"
#include "relay.hpp"
#include "runtime.hpp"

#include "../core/limits.hpp"
#include "../core/uuid.hpp"

extern "C" {
PG_MODULE_MAGIC;
void _PG_init(void);
}

namespace es {

void reset_scopes();  // runtime.cpp
int idempotency_retention_seconds = 7 * 24 * 3600;

namespace {

void on_xact(XactEvent event, void *) {
  switch (event) {
    case XACT_EVENT_COMMIT:
    case XACT_EVENT_PARALLEL_COMMIT:
    case XACT_EVENT_ABORT:
    case XACT_EVENT_PARALLEL_ABORT:
    case XACT_EVENT_PREPARE:
      horizon_xact_end();
      reset_scopes();
      break;
    case XACT_EVENT_PRE_PREPARE:
      horizon_pre_prepare();
      break;
    default:
      break;
  }
}

void on_subxact(SubXactEvent event, SubTransactionId sub, SubTransactionId parent, void *) {
  if (event == SUBXACT_EVENT_ABORT_SUB) horizon_subxact_abort(sub);
  if (event == SUBXACT_EVENT_COMMIT_SUB) horizon_subxact_commit(sub, parent);
}

}  // namespace

void report_user_error(const char *sqlstate, const char *message, const char *detail,
                       const char *hint) {
  ereport(ERROR, (errcode(MAKE_SQLSTATE(sqlstate[0], sqlstate[1], sqlstate[2], sqlstate[3],
                                        sqlstate[4])),
                  errmsg("%s", message), detail[0] ? errdetail("%s", detail) : 0,
                  hint[0] ? errhint("%s", hint) : 0));
  pg_unreachable();
}

// A time-ordered UUIDv7 (palloc'd pg_uuid_t).
// The random bits come from a per-backend pool refilled from pg_strong_random 1 KB at a time:
// one call costs as much as ~100 uuids' worth of bytes (OpenSSL's per-call overhead), and the
// bytes are no secret (they end up in the ids). The postmaster never fills the pool, so a
// forked backend never shares bytes with another.
pg_uuid_t *new_uuidv7() {
  static uint8 pool[1000];
  static std::size_t pool_used = sizeof pool;
  constexpr std::size_t kRandomBytes = 10;
  if (pool_used + kRandomBytes > sizeof pool) {
    if (!pg_strong_random(pool, sizeof pool))
      ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("could not generate random bytes")));
    pool_used = 0;
  }
  const uint8 *random_bytes = pool + pool_used;
  pool_used += kRandomBytes;
  TimestampTz now = GetCurrentTimestamp();
  // TimestampTz counts microseconds since 2000-01-01; move to the Unix epoch in ms.
  uint64 unix_ms = static_cast<uint64>(
      (now + (int64)(POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY) / 1000);
  Uuid u = make_uuidv7(unix_ms, random_bytes);
  auto *out = static_cast<pg_uuid_t *>(palloc(sizeof(pg_uuid_t)));
  memcpy(out->data, u.data(), UUID_LEN);
  return out;
}

}  // namespace es

void _PG_init(void) {
  DefineCustomIntVariable(
      "pg_eventstore.idempotency_retention",
      "How long idempotency keys are kept before es.maintain() may purge them.", nullptr,
      &es::idempotency_retention_seconds, 7 * 24 * 3600, 60, INT_MAX, PGC_SUSET, GUC_UNIT_S,
      nullptr, nullptr, nullptr);
  es::horizon_init();
  es::relay_init();
  MarkGUCPrefixReserved("pg_eventstore");
  RegisterXactCallback(es::on_xact, nullptr);
  RegisterSubXactCallback(es::on_subxact, nullptr);
}

extern "C" {

PG_FUNCTION_INFO_V1(es_uuidv7);
Datum es_uuidv7(PG_FUNCTION_ARGS) { return es::guarded([&] {
  return UUIDPGetDatum(es::pg_call([] { return es::new_uuidv7(); }));
}); }

PG_FUNCTION_INFO_V1(es_in_append);
Datum es_in_append(PG_FUNCTION_ARGS) {
  PG_RETURN_BOOL(es::is_append_insert(PG_GETARG_OID(0), false));
}

PG_FUNCTION_INFO_V1(es_idempotency_retention);
Datum es_idempotency_retention(PG_FUNCTION_ARGS) {
  PG_RETURN_INT32(es::idempotency_retention_seconds);
}

}
