// es.redact_stream: the one sanctioned rewrite of stored events (API.md §8).
// Replaces `data` and `metadata` of every event of a stream, keeps positions, versions, event
// ids and types, and records who and why in es.redactions, all in the caller's transaction.
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

constexpr std::size_t kMaxReasonBytes = 4096;

struct Redaction {
  int64 id;
  int64 events;
};

// The one statement of a redaction: rewrites the stream's events and writes the audit row
// (only when it found events). `table` is the quoted, schema-qualified store.
std::string redaction_sql(const std::string &table) {
  return "WITH audit_id AS MATERIALIZED ("
         "  SELECT pg_catalog.nextval('es.redactions_id_seq'::pg_catalog.regclass) AS id),"
         " rewritten AS ("
         "  UPDATE " + table + " e SET data = '{\"redacted\": true}'::pg_catalog.jsonb,"
         "   metadata = pg_catalog.jsonb_build_object('redacted', true,"
         "     'redaction_id', (SELECT id FROM audit_id), 'redacted_at', pg_catalog.now())"
         "  WHERE e.stream_id = $1 RETURNING e.global_position),"
         " summary AS ("
         "  SELECT pg_catalog.count(*) AS events, pg_catalog.min(global_position) AS first_position,"
         "   pg_catalog.max(global_position) AS last_position FROM rewritten)"
         " INSERT INTO es.redactions (id, store, stream_id, reason, events, first_position,"
         "  last_position, redacted_by, redacted_as)"
         " SELECT (SELECT id FROM audit_id), $2, $1, $3, s.events, s.first_position,"
         "  s.last_position, $4, $5 FROM summary s WHERE s.events > 0"
         " RETURNING id, events";
}

// The UPDATE privilege on a store is the right to redact it (es_admin holds it on es.events).
void require_update(Oid store) {
  AclResult acl = pg_call([&] { return pg_class_aclcheck(store, GetUserId(), ACL_UPDATE); });
  if (acl == ACLCHECK_OK) return;
  const char *name = qualified_name(store);
  raise("42501", std::string("permission denied to redact event table ") + (name ? name : "?"),
        "Redaction needs the UPDATE privilege on the event table.",
        "Grant UPDATE on the table to the admin; es_admin holds it on es.events.");
}

Redaction redact(text *stream, text *reason, Oid store) {
  SpiConnection spi;
  lookup_store(store);
  require_update(store);
  // Who asked: the session user and the role in effect, captured before the owner switch.
  Datum session_user = pg_call([] {
    return DirectFunctionCall1(namein, CStringGetDatum(GetUserNameFromId(GetSessionUserId(), false)));
  });
  Datum current_user = pg_call([] {
    return DirectFunctionCall1(namein, CStringGetDatum(GetUserNameFromId(GetUserId(), false)));
  });
  const char *table = qualified_name(store);
  if (table == nullptr) raise(sqlstate::kUnknownStore, "store was dropped concurrently");

  AsExtensionOwner owner;
  Oid types[5] = {TEXTOID, REGCLASSOID, TEXTOID, NAMEOID, NAMEOID};
  SPIPlanPtr plan = prepare_fixed(redaction_sql(table).c_str(), 5, types);
  Datum args[5] = {PointerGetDatum(stream), ObjectIdGetDatum(store), PointerGetDatum(reason),
                   session_user, current_user};
  Redaction r{0, 0};
  {
    RewriteScope rewrite;
    pg_call([&] {
      if (SPI_execute_plan(plan, args, nullptr, false, 0) != SPI_OK_INSERT_RETURNING)
        elog(ERROR, "pg_eventstore: redaction failed");
      if (SPI_processed == 1) {
        bool isnull;
        r.id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
        r.events = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
      }
    });
  }
  if (r.events == 0) {
    std::string name = pg_call([&] { return text_to_cstring(stream); });
    raise(kStreamNotFound, "stream \"" + name + "\" does not exist",
          std::string("The store ") + table + " holds no events of the stream.",
          "Check the stream id and the store argument.");
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
