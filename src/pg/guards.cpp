// The append-only guard triggers of event tables (API.md §1).
//  es._guard_modify: UPDATE, DELETE and TRUNCATE fail for every role (ENABLE ALWAYS, so not even
//    session_replication_role = replica skips it); only es.redact_stream opens it.
//  es._guard_insert: rows of es.append's own INSERT pass untouched; a plain INSERT or COPY (pg_restore)
//    goes through the same checks: the position is allocated (or, when given, registered and
//    checked against the global order), the stream id and type are validated.
//  es._check_version_chain: after a plain INSERT, every version above 1 must have its
//    predecessor, so versions stay gapless whatever order COPY brings the rows in.
#include "horizon.hpp"
#include "runtime.hpp"

#include "../core/limits.hpp"

namespace es {
namespace {

TriggerData *trigger_data(FunctionCallInfo fcinfo) {
  if (!CALLED_AS_TRIGGER(fcinfo))
    raise("39P01", "function can only be called as a trigger");
  return reinterpret_cast<TriggerData *>(fcinfo->context);
}

int attnum(TupleDesc desc, const char *name) {
  int n = SPI_fnumber(desc, name);
  if (n <= 0) raise(sqlstate::kInvalidDirectInsert, std::string("event table has no column ") + name);
  return n;
}

SPIPlanPtr max_position_plan(const StoreInfo &info) {
  // Not cached per store: plain INSERTs are the rare path (restore, migrations).
  std::string sql = std::string("SELECT max(global_position) FROM ") + qualified_name(info.store);
  return prepare_fixed(sql.c_str(), 0, nullptr);
}

}  // namespace

// Checks a row of a plain INSERT/COPY; returns the position to assign (0: keep the row's).
int64 check_plain_insert(Relation rel, HeapTuple row, int gp_col) {
  TupleDesc desc = RelationGetDescr(rel);
  SpiConnection spi;
  StoreInfo *info = lookup_store(RelationGetRelid(rel));

    int stream_col = attnum(desc, "stream_id");
    int version_col = attnum(desc, "stream_version");
    int type_col = attnum(desc, "event_type");

    bool isnull;
    Datum stream = pg_call([&] { return SPI_getbinval(row, desc, stream_col, &isnull); });
    std::string_view stream_view;
    text *stream_text = nullptr;
    if (!isnull) {
      stream_text = pg_call([&] { return DatumGetTextPP(stream); });
      stream_view = std::string_view(VARDATA_ANY(stream_text), VARSIZE_ANY_EXHDR(stream_text));
    }
    if (auto p = check_stream_id(isnull, stream_view)) {
      p->sqlstate = sqlstate::kInvalidDirectInsert;
      raise(*p);
    }
    Datum type = pg_call([&] { return SPI_getbinval(row, desc, type_col, &isnull); });
    if (isnull || pg_call([&] { return VARSIZE_ANY_EXHDR(DatumGetTextPP(type)); }) == 0 ||
        pg_call([&] { return VARSIZE_ANY_EXHDR(DatumGetTextPP(type)); }) > kMaxEventTypeBytes)
      raise(sqlstate::kInvalidDirectInsert, "event_type must be a non-empty text",
                "The limit is " + std::to_string(kMaxEventTypeBytes) + " bytes.");
    Datum version = pg_call([&] { return SPI_getbinval(row, desc, version_col, &isnull); });
    if (isnull || DatumGetInt64(version) < 1)
      raise(sqlstate::kInvalidDirectInsert, "stream_version must be 1 or more",
                {}, "Append with es.append(), which assigns versions.");

    Datum position = pg_call([&] { return SPI_getbinval(row, desc, gp_col, &isnull); });
    AsExtensionOwner owner;
    if (isnull) {
      register_appender(*info);
      return allocate_position(*info);
    }
    // An explicit position (pg_restore, migrations): register it first, then make sure no
    // reader can have passed it already, then move the sequence beyond it. Readers can only
    // have seen rows other transactions committed, so this transaction's own rows do not count:
    // a COPY may bring a store's rows in any order (heap order is not position order).
    int64 gp = DatumGetInt64(position);
    if (gp < 1)
      raise(sqlstate::kInvalidDirectInsert, "global_position must be 1 or more");
    register_appender(*info, gp);
    SPIPlanPtr plan = max_position_plan(*info);
    int64 max_visible = pg_call([&]() -> int64 {
      Snapshot others = GetLatestSnapshot();
      others->curcid = FirstCommandId;  // hides every row this transaction inserted
      if (SPI_execute_snapshot(plan, nullptr, nullptr, others, InvalidSnapshot,
                               true /* read_only: keep curcid */, false, 1) != SPI_OK_SELECT)
        elog(ERROR, "pg_eventstore: position check failed");
      bool null_max;
      Datum m = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &null_max);
      return null_max ? 0 : DatumGetInt64(m);
    });
    if (gp <= max_visible)
      raise(sqlstate::kInvalidDirectInsert,
                "global_position " + std::to_string(gp) + " is not above the store's last position",
                "The store already holds committed position " + std::to_string(max_visible) + ".",
                "Leave global_position NULL to have it assigned, or append with es.append().");
    advance_sequence_to(*info, gp);
    return int64{0};
}

}  // namespace es

extern "C" {

PG_FUNCTION_INFO_V1(es_guard_modify);
Datum es_guard_modify(PG_FUNCTION_ARGS) {
  return es::guarded([&] {
    TriggerData *td = es::trigger_data(fcinfo);
    if (es::rewrite_allowed()) {
      return PointerGetDatum(TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? td->tg_newtuple
                                                                    : td->tg_trigtuple);
    }
    const char *what = TRIGGER_FIRED_BY_UPDATE(td->tg_event)   ? "UPDATE"
                       : TRIGGER_FIRED_BY_DELETE(td->tg_event) ? "DELETE"
                                                               : "TRUNCATE";
    const char *name = es::qualified_name(RelationGetRelid(td->tg_relation));
    es::raise(es::sqlstate::kAppendOnly,
              std::string(what) + " is not allowed on event table " + (name ? name : "?"),
              "Event tables are append-only.",
              "Append compensating events; erase personal data with es.redact_stream().");
  });
}

PG_FUNCTION_INFO_V1(es_guard_insert);
Datum es_guard_insert(PG_FUNCTION_ARGS) {
  return es::guarded([&] {
    TriggerData *td = es::trigger_data(fcinfo);
    HeapTuple row = td->tg_trigtuple;
    Relation rel = td->tg_relation;
    if (es::is_append_insert(RelationGetRelid(rel), true)) return PointerGetDatum(row);

    TupleDesc desc = RelationGetDescr(rel);
    int gp_col = es::attnum(desc, "global_position");
    int64 assigned = es::check_plain_insert(rel, row, gp_col);
    if (assigned == 0) return PointerGetDatum(row);
    Datum value = Int64GetDatum(assigned);
    bool replace_null = false;
    return PointerGetDatum(es::pg_call([&] {
      return heap_modify_tuple_by_cols(row, desc, 1, &gp_col, &value, &replace_null);
    }));
  });
}

PG_FUNCTION_INFO_V1(es_check_version_chain);
Datum es_check_version_chain(PG_FUNCTION_ARGS) {
  return es::guarded([&] {
    TriggerData *td = es::trigger_data(fcinfo);
    HeapTuple row = td->tg_trigtuple;
    Relation rel = td->tg_relation;
    TupleDesc desc = RelationGetDescr(rel);
    es::SpiConnection spi;
    bool isnull;
    int stream_col = es::attnum(desc, "stream_id");
    int version_col = es::attnum(desc, "stream_version");
    Datum stream = es::pg_call([&] { return SPI_getbinval(row, desc, stream_col, &isnull); });
    int64 version = DatumGetInt64(es::pg_call([&] { return SPI_getbinval(row, desc, version_col, &isnull); }));
    if (version <= 1) return PointerGetDatum(row);
    std::string sql = std::string("SELECT 1 FROM ") + es::qualified_name(RelationGetRelid(rel)) +
                      " WHERE stream_id = $1 AND stream_version = $2";
    es::AsExtensionOwner owner;
    Oid types[2] = {TEXTOID, INT8OID};
    SPIPlanPtr plan = es::prepare_fixed(sql.c_str(), 2, types);
    bool found = es::pg_call([&] {
      Datum args[2] = {stream, Int64GetDatum(version - 1)};
      if (SPI_execute_plan(plan, args, nullptr, false, 1) != SPI_OK_SELECT)
        elog(ERROR, "pg_eventstore: version chain check failed");
      return SPI_processed == 1;
    });
    if (!found) {
      std::string s = es::pg_call([&] { return TextDatumGetCString(stream); });
      es::raise(es::sqlstate::kInvalidDirectInsert,
                "stream version " + std::to_string(version) + " of stream \"" + s +
                    "\" has no predecessor",
                "Stream versions are gapless: version " + std::to_string(version - 1) +
                    " must exist first.",
                "Append with es.append(), which assigns versions.");
    }
    return PointerGetDatum(row);
  });
}

}
