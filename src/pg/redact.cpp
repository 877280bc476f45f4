// es.redact_stream: the one sanctioned rewrite of stored events (API.md §8).
// Replaces `data` and `metadata` of every event of a stream, keeps positions, versions, event
// ids and types, deletes the stream's snapshots, and records who and why in es.redactions,
// all in the caller's transaction.
// The append-only guard lets the UPDATE through only while a RewriteScope is open, and only
// this C++ entry point opens one: no SQL path can.
#include "runtime.hpp"

#include "../core/limits.hpp"
#include "../core/validation.hpp"

namespace es {
namespace {

// SQLSTATEs of redaction (README "Error codes").
constexpr const char *kStreamNotFound = "ES060";
constexpr const char *kInvalidRedactionReason = "ES061";
constexpr const char *kUnvouchedRewrite = "ES062";

constexpr std::size_t kMaxReasonBytes = 4096;

struct Redaction {
  int64 id;
  int64 events;
};

// Runs a fixed-search_path plan that returns one row of int8 columns into `out`.
void run_int8_row(const char *sql, int nargs, Oid *types, Datum *args, int64 *out, int ncols) {
  SPIPlanPtr plan = prepare_fixed(sql, nargs, types);
  pg_call([&] {
    int rc = SPI_execute_plan(plan, args, nullptr, false, 0);
    if (rc < 0 || SPI_processed != 1) elog(ERROR, "pg_eventstore: redaction step failed");
    for (int i = 0; i < ncols; ++i) {
      bool isnull;
      Datum d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, i + 1, &isnull);
      out[i] = isnull ? 0 : DatumGetInt64(d);
    }
  });
}

// SELECT and UPDATE on a store are the right to redact it (es_admin holds both on es.events).
void require_select_update(Oid store) {
  AclResult acl = pg_call([&] {
    return pg_class_aclmask(store, GetUserId(), ACL_SELECT | ACL_UPDATE, ACLMASK_ALL) ==
                   (ACL_SELECT | ACL_UPDATE)
               ? ACLCHECK_OK
               : ACLCHECK_NO_PRIV;
  });
  if (acl == ACLCHECK_OK) return;
  const char *name = qualified_name(store);
  raise("42501", std::string("permission denied to redact event table ") + (name ? name : "?"),
        "Redaction needs the SELECT and UPDATE privileges on the event table.",
        "Grant SELECT, UPDATE on the table to the admin; es_admin holds them on es.events.");
}

// While the rewrite runs, the append-only guard is open for this backend. Code a store's owner
// attached that would run inside the UPDATE (UPDATE triggers, UPDATE rules, row-level
// security policies) could use that to rewrite any event table, so such a store is refused.
// Holding RowExclusiveLock first keeps CREATE TRIGGER/RULE/POLICY out until commit.
void require_plain_store(Oid store, const char *table) {
  pg_call([&] { LockRelationOid(store, RowExclusiveLock); });
  int64 foreign_code = 0;
  Oid types[1] = {OIDOID};
  Datum args[1] = {ObjectIdGetDatum(store)};
  run_int8_row(
      "SELECT (SELECT pg_catalog.count(*) FROM pg_catalog.pg_trigger t"
      "         JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid"
      "        WHERE t.tgrelid = $1 AND NOT t.tgisinternal AND t.tgenabled <> 'D'"
      "          AND (t.tgtype::pg_catalog.int4 & 16) <> 0"
      "          AND p.pronamespace <> 'es'::pg_catalog.regnamespace)"
      "     + (SELECT pg_catalog.count(*) FROM pg_catalog.pg_rewrite r"
      "         WHERE r.ev_class = $1 AND r.ev_type = '2')"
      "     + (SELECT pg_catalog.count(*) FROM pg_catalog.pg_class c"
      "         WHERE c.oid = $1 AND c.relrowsecurity)",
      1, types, args, &foreign_code, 1);
  if (foreign_code > 0)
    raise(kUnvouchedRewrite,
          std::string("event table ") + table + " has UPDATE triggers, UPDATE rules or row-level security",
          "Redaction opens the append-only guard while it rewrites; code attached to the "
          "table would run inside that window.",
          "Drop or disable the table's own UPDATE triggers and rules (and row-level security) "
          "before redacting.");
}

// 1. (extension owner) draw the audit id; 2. (caller) rewrite the stream's events under a
// RewriteScope, so triggers a store's owner attached run with the caller's rights, never the
// extension owner's; 3. (extension owner) drop the stream's snapshots, which hold state folded
// from the erased data, and write the audit row.
Redaction redact(text *stream, text *reason, Oid store) {
  SpiConnection spi;
  lookup_store(store);
  require_select_update(store);
  const char *table = qualified_name(store);
  if (table == nullptr) raise(sqlstate::kUnknownStore, "store was dropped concurrently");
  require_plain_store(store, table);
  // Who asked: the session user and the role in effect.
  Datum session_user = pg_call([] {
    return DirectFunctionCall1(namein, CStringGetDatum(GetUserNameFromId(GetSessionUserId(), false)));
  });
  Datum current_user = pg_call([] {
    return DirectFunctionCall1(namein, CStringGetDatum(GetUserNameFromId(GetUserId(), false)));
  });

  Redaction r{0, 0};
  {
    AsExtensionOwner owner;
    run_int8_row("SELECT pg_catalog.nextval('es.redactions_id_seq'::pg_catalog.regclass)", 0,
                 nullptr, nullptr, &r.id, 1);
  }

  int64 rewritten[3];  // events, first position, last position
  {
    std::string sql =
        std::string("WITH rewritten AS (UPDATE ") + table +
        " e SET data = '{\"redacted\": true}'::pg_catalog.jsonb,"
        " metadata = pg_catalog.jsonb_build_object('redacted', true, 'redaction_id', $2,"
        " 'redacted_at', pg_catalog.now())"
        " WHERE e.stream_id = $1 RETURNING e.global_position)"
        " SELECT pg_catalog.count(*), pg_catalog.min(global_position),"
        " pg_catalog.max(global_position) FROM rewritten";
    Oid types[2] = {TEXTOID, INT8OID};
    Datum args[2] = {PointerGetDatum(stream), Int64GetDatum(r.id)};
    RewriteScope rewrite;
    run_int8_row(sql.c_str(), 2, types, args, rewritten, 3);
  }
  r.events = rewritten[0];
  if (r.events == 0) {
    std::string name = pg_call([&] { return text_to_cstring(stream); });
    raise(kStreamNotFound, "stream \"" + name + "\" does not exist",
          std::string("The store ") + table + " holds no events of the stream.",
          "Check the stream id and the store argument.");
  }

  {
    AsExtensionOwner owner;
    Oid types[9] = {INT8OID, REGCLASSOID, TEXTOID, TEXTOID, INT8OID,
                    INT8OID, INT8OID,     NAMEOID, NAMEOID};
    Datum args[9] = {Int64GetDatum(r.id),          ObjectIdGetDatum(store),
                     PointerGetDatum(stream),      PointerGetDatum(reason),
                     Int64GetDatum(r.events),      Int64GetDatum(rewritten[1]),
                     Int64GetDatum(rewritten[2]),  session_user,
                     current_user};
    int64 id;
    run_int8_row(
        "WITH dropped AS (DELETE FROM es._snapshots s WHERE s.store = $2 AND s.stream_id = $3"
        " RETURNING 1)"
        " INSERT INTO es.redactions (id, store, stream_id, reason, events, first_position,"
        "  last_position, redacted_by, redacted_as, snapshots_deleted)"
        " SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, (SELECT pg_catalog.count(*) FROM dropped)"
        " RETURNING id",
        9, types, args, &id, 1);
  }
  return r;
}

}  // namespace
}  // namespace es

extern "C" {

// es.redact_stream(stream_id, reason, store) → number of events redacted
PG_FUNCTION_INFO_V1(es_redact_stream);
Datum es_redact_stream(PG_FUNCTION_ARGS) {
  return es::guarded([&] {
    bool stream_null = PG_ARGISNULL(0);
    text *stream = stream_null ? nullptr : es::pg_call([&] { return PG_GETARG_TEXT_PP(0); });
    std::string_view sv = stream_null ? std::string_view()
                                      : std::string_view(VARDATA_ANY(stream), VARSIZE_ANY_EXHDR(stream));
    if (auto p = es::check_stream_id(stream_null, sv)) es::raise(*p);

    text *reason = PG_ARGISNULL(1) ? nullptr : es::pg_call([&] { return PG_GETARG_TEXT_PP(1); });
    std::string_view why = reason ? std::string_view(VARDATA_ANY(reason), VARSIZE_ANY_EXHDR(reason))
                                  : std::string_view();
    bool blank = why.find_first_not_of(" \t\r\n") == std::string_view::npos;
    if (reason == nullptr || blank)
      es::raise(es::kInvalidRedactionReason, "a redaction needs a reason", {},
                "Say why the data is erased (e.g. the erasure request it answers); it is kept "
                "in es.redactions.");
    if (why.size() > es::kMaxReasonBytes)
      es::raise(es::kInvalidRedactionReason, "redaction reason is too long",
                "The reason has " + std::to_string(why.size()) + " bytes; the limit is " +
                    std::to_string(es::kMaxReasonBytes) + ".");

    if (PG_ARGISNULL(2))
      es::raise(es::sqlstate::kUnknownStore, "store must not be NULL", {},
                "Omit the argument to use es.events.");
    es::Redaction r = es::redact(stream, reason, PG_GETARG_OID(2));
    return Int64GetDatum(r.events);
  });
}

}
