// Projections and state (API.md §6-§7): the C++ pieces where a per-event fmgr call pays off.
//  es._projection_inline()  AFTER INSERT trigger of stores with inline projections: runs the
//                           matching handlers inside the appending transaction, as the caller.
//  es._call_handler         applies a batch of events to an async projection's handler, in order.
//  es._fold_stream          folds a stream range with a reducer (es.aggregate_state).
//  enable_restored_inline_trigger  es.append enables the inline trigger pg_restore left disabled.
// None of them runs user code with the extension owner's rights: handlers and reducers run as
// the caller (for inline projections: the role that called es.append, or that INSERTed).
#include "runtime.hpp"

extern "C" {
#include "access/relation.h"
#include "catalog/pg_proc.h"
#include "utils/datum.h"
#include "utils/regproc.h"
#include "utils/typcache.h"
}

namespace es {
namespace {

constexpr long kFoldFetch = 500;

// The OID of composite type es.event.
Oid event_type_oid() {
  return pg_call([] {
    Oid nsp = get_namespace_oid("es", false);
    Oid typid = GetSysCacheOid2(TYPENAMENSP, Anum_pg_type_oid, CStringGetDatum("event"),
                                ObjectIdGetDatum(nsp));
    if (!OidIsValid(typid)) elog(ERROR, "pg_eventstore: type es.event is missing");
    return typid;
  });
}

// Raises unless `role` may execute `fn` (fmgr itself checks no privileges).
void require_execute(Oid fn, Oid role, const char *what) {
  bool exists = pg_call([&] { return SearchSysCacheExists1(PROCOID, ObjectIdGetDatum(fn)); });
  if (!exists)
    raise("ES053", std::string("the ") + what + " function (OID " + std::to_string(fn) +
                       ") no longer exists",
          {}, "Drop and re-create the projection with an existing function.");
  AclResult acl = pg_call([&] {
#if PG_VERSION_NUM >= 160000
    return object_aclcheck(ProcedureRelationId, fn, role, ACL_EXECUTE);
#else
    return pg_proc_aclcheck(fn, role, ACL_EXECUTE);
#endif
  });
  if (acl != ACLCHECK_OK) {
    const char *name = pg_call([&] { return format_procedure(fn); });
    raise("42501", std::string("permission denied for function ") + (name ? name : "?"), {},
          std::string("The ") + what + " runs with the caller's rights: GRANT EXECUTE on it.");
  }
}

// Calls fn(arg) and ignores the result (handlers return void).
void call_void(FmgrInfo *flinfo, Datum arg) {
  LOCAL_FCINFO(fc, 1);
  InitFunctionCallInfoData(*fc, flinfo, 1, InvalidOid, nullptr, nullptr);
  fc->args[0].value = arg;
  fc->args[0].isnull = false;
  (void)FunctionCallInvoke(fc);
}

// The inline handlers of `store` whose filters match the row, in projection name order
// (palloc'd array; *count set). Runs as the extension owner: the registry is not public.
Oid *matching_inline_handlers(Oid store, Datum event_type, Datum stream_id, int *count) {
  static SPIPlanPtr plan = nullptr;
  if (plan == nullptr) {
    Oid types[3] = {OIDOID, TEXTOID, TEXTOID};
    plan = prepare_kept(
        "SELECT handler::pg_catalog.regprocedure::pg_catalog.oid FROM es._projections"
        " WHERE store::pg_catalog.oid = $1 AND mode = 'inline'"
        " AND (event_types IS NULL OR $2 = ANY (event_types))"
        " AND (stream_prefix IS NULL OR pg_catalog.starts_with($3, stream_prefix))"
        " ORDER BY name",
        3, types);
  }
  AsExtensionOwner owner;
  return pg_call([&]() -> Oid * {
    Datum args[3] = {ObjectIdGetDatum(store), event_type, stream_id};
    if (SPI_execute_plan(plan, args, nullptr, true, 0) != SPI_OK_SELECT)
      elog(ERROR, "pg_eventstore: inline projection lookup failed");
    *count = static_cast<int>(SPI_processed);
    Oid *handlers = static_cast<Oid *>(palloc(sizeof(Oid) * (SPI_processed + 1)));
    for (uint64 i = 0; i < SPI_processed; ++i) {
      bool isnull;
      handlers[i] = DatumGetObjectId(
          SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
    }
    return handlers;
  });
}

// The inserted row as an es.event datum (columns matched by name).
Datum event_from_row(Relation rel, HeapTuple row, Oid event_typid) {
  return pg_call([&] {
    TupleDesc rel_desc = RelationGetDescr(rel);
    TupleDesc ev_desc = lookup_rowtype_tupdesc(event_typid, -1);
    Datum values[16];
    bool nulls[16];
    if (ev_desc->natts > 16) elog(ERROR, "pg_eventstore: es.event has too many attributes");
    for (int i = 0; i < ev_desc->natts; ++i) {
      const char *column = NameStr(TupleDescAttr(ev_desc, i)->attname);
      int attnum = SPI_fnumber(rel_desc, column);
      if (attnum <= 0) elog(ERROR, "pg_eventstore: event table has no column %s", column);
      values[i] = heap_getattr(row, attnum, rel_desc, &nulls[i]);
    }
    HeapTuple tuple = heap_form_tuple(ev_desc, values, nulls);
    ReleaseTupleDesc(ev_desc);
    return HeapTupleGetDatum(tuple);
  });
}

// True when `rel` carries the disabled inline trigger es._projection_restored() creates while
// pg_restore loads es._projections: es_projection_inline, argument 'restored'.
bool has_restored_inline_trigger(Relation rel) {
  const TriggerDesc *desc = rel->trigdesc;
  if (desc == nullptr) return false;
  for (int i = 0; i < desc->numtriggers; ++i) {
    const Trigger &t = desc->triggers[i];
    if (strcmp(t.tgname, "es_projection_inline") == 0 && t.tgenabled == TRIGGER_DISABLED &&
        t.tgnargs == 1 && strcmp(t.tgargs[0], "restored") == 0)
      return true;
  }
  return false;
}

}  // namespace

// The first append to a restored store enables its inline trigger: its inline projections run
// from this append on (the restored events were projected in the source). Every append looks:
// an ACCESS SHARE lock and a scan of the relcache trigger list. SHARE ROW EXCLUSIVE (what
// ALTER TABLE ENABLE TRIGGER takes) only when the trigger is there, so concurrent first
// appends queue behind the one that enables it and then find it enabled.
void enable_restored_inline_trigger(Oid store) {
  pg_call([&] {
    // Not a table, or gone: the store lookup that follows reports it.
    Relation rel = try_relation_open(store, AccessShareLock);
    if (rel == nullptr) return;
    bool restored = has_restored_inline_trigger(rel);
    relation_close(rel, NoLock);
    if (!restored) return;
    rel = relation_open(store, ShareRowExclusiveLock);
    if (has_restored_inline_trigger(rel)) {
      EnableDisableTrigger(rel, "es_projection_inline", TRIGGER_FIRES_ON_ORIGIN, false,
                           ShareRowExclusiveLock);
      CommandCounterIncrement();
    }
    relation_close(rel, NoLock);
  });
}

}  // namespace es

extern "C" {

// es._projection_inline(): AFTER INSERT FOR EACH ROW on a store with inline projections.
// A handler's error aborts the INSERT, and with it the append.
PG_FUNCTION_INFO_V1(es_projection_inline);
Datum es_projection_inline(PG_FUNCTION_ARGS) {
  return es::guarded([&] {
    if (!CALLED_AS_TRIGGER(fcinfo)) es::raise("39P01", "function can only be called as a trigger");
    TriggerData *td = reinterpret_cast<TriggerData *>(fcinfo->context);
    if (!TRIGGER_FIRED_AFTER(td->tg_event) || !TRIGGER_FIRED_FOR_ROW(td->tg_event) ||
        !TRIGGER_FIRED_BY_INSERT(td->tg_event))
      es::raise("39P01", "es._projection_inline must fire AFTER INSERT FOR EACH ROW");
    Relation rel = td->tg_relation;
    HeapTuple row = td->tg_trigtuple;
    es::SpiConnection spi;
    TupleDesc desc = RelationGetDescr(rel);
    Datum type = es::pg_call([&] {
      bool isnull;
      return heap_getattr(row, SPI_fnumber(desc, "event_type"), desc, &isnull);
    });
    Datum stream = es::pg_call([&] {
      bool isnull;
      return heap_getattr(row, SPI_fnumber(desc, "stream_id"), desc, &isnull);
    });
    int count = 0;
    Oid *handlers = es::matching_inline_handlers(RelationGetRelid(rel), type, stream, &count);
    if (count == 0) return PointerGetDatum(row);

    Datum event = es::event_from_row(rel, row, es::event_type_oid());
    es::AsCaller as_caller;
    for (int i = 0; i < count; ++i) {
      es::require_execute(handlers[i], as_caller.user(), "projection handler");
      es::pg_call([&] {
        FmgrInfo flinfo;
        fmgr_info(handlers[i], &flinfo);
        es::call_void(&flinfo, event);
      });
    }
    return PointerGetDatum(row);
  });
}

// es._call_handler(handler regprocedure, events es.event[]) → int: calls handler(e) for every
// element in order, as the caller; returns how many it applied. The caller wraps it in a
// subtransaction: an error leaves nothing of the batch applied.
PG_FUNCTION_INFO_V1(es_call_handler);
Datum es_call_handler(PG_FUNCTION_ARGS) {
  return es::guarded([&] {
    if (PG_ARGISNULL(0)) es::raise("ES053", "handler must not be NULL");
    if (PG_ARGISNULL(1)) return Int32GetDatum(0);
    Oid handler = PG_GETARG_OID(0);
    es::require_execute(handler, GetUserId(), "projection handler");
    int applied = es::pg_call([&] {
      ArrayType *events = PG_GETARG_ARRAYTYPE_P(1);
      Datum *elems;
      bool *nulls;
      int n;
      deconstruct_array(events, ARR_ELEMTYPE(events), -1, false, TYPALIGN_DOUBLE, &elems,
                        &nulls, &n);
      FmgrInfo flinfo;
      fmgr_info(handler, &flinfo);
      MemoryContext per_event = AllocSetContextCreate(CurrentMemoryContext,
                                                      "pg_eventstore handler call",
                                                      ALLOCSET_DEFAULT_SIZES);
      MemoryContext outer = MemoryContextSwitchTo(per_event);
      for (int i = 0; i < n; ++i) {
        if (nulls[i]) elog(ERROR, "pg_eventstore: NULL event in a handler batch");
        es::call_void(&flinfo, elems[i]);
        MemoryContextReset(per_event);
      }
      MemoryContextSwitchTo(outer);
      MemoryContextDelete(per_event);
      return n;
    });
    return Int32GetDatum(applied);
  });
}

// es._fold_stream(reducer, state, stream_id, from_version, to_version, store) → jsonb:
// state := reducer(state, e) for the stream's events from_version..to_version, in version
// order, read with the caller's privileges.
PG_FUNCTION_INFO_V1(es_fold_stream);
Datum es_fold_stream(PG_FUNCTION_ARGS) {
  return es::guarded([&] {
    for (int i : {0, 2, 3, 4, 5})
      if (PG_ARGISNULL(i)) es::raise("ES018", "es._fold_stream: argument must not be NULL");
    Oid reducer = PG_GETARG_OID(0);
    bool state_null = PG_ARGISNULL(1);
    Datum state = state_null ? (Datum)0 : PG_GETARG_DATUM(1);
    Datum stream = PG_GETARG_DATUM(2);
    int64 from_version = PG_GETARG_INT64(3);
    int64 to_version = PG_GETARG_INT64(4);
    Oid store = PG_GETARG_OID(5);
    es::require_execute(reducer, GetUserId(), "reducer");
    MemoryContext result_cxt = CurrentMemoryContext;
    if (from_version > to_version) {
      if (state_null) PG_RETURN_NULL();
      return PG_GETARG_DATUM(1);
    }

    es::SpiConnection spi;
    const char *table = es::qualified_name(store);
    if (table == nullptr) es::raise("ES017", "store does not exist");
    std::string sql = std::string(
                          "SELECT ROW(global_position, stream_id, stream_version, event_id,"
                          " event_type, data, metadata, recorded_at)::es.event FROM ") +
                      table +
                      " WHERE stream_id = $1 AND stream_version >= $2 AND stream_version <= $3"
                      " ORDER BY stream_version";
    Oid types[3] = {TEXTOID, INT8OID, INT8OID};
    SPIPlanPtr plan = es::prepare_fixed(sql.c_str(), 3, types);
    bool result_null = state_null;
    Datum result = es::pg_call([&]() -> Datum {
      FmgrInfo flinfo;
      fmgr_info(reducer, &flinfo);
      // The state lives in one of two contexts, swapped after every call, so memory stays
      // bounded by two states plus one call's garbage however long the stream is.
      MemoryContext state_cxt[2] = {
          AllocSetContextCreate(CurrentMemoryContext, "pg_eventstore fold state",
                                ALLOCSET_DEFAULT_SIZES),
          AllocSetContextCreate(CurrentMemoryContext, "pg_eventstore fold state",
                                ALLOCSET_DEFAULT_SIZES)};
      MemoryContext call_cxt = AllocSetContextCreate(CurrentMemoryContext,
                                                     "pg_eventstore reducer call",
                                                     ALLOCSET_DEFAULT_SIZES);
      int current = 0;
      Datum value = result_null ? (Datum)0 : datumCopy(state, false, -1);
      Datum args[3] = {stream, Int64GetDatum(from_version), Int64GetDatum(to_version)};
      Portal portal = SPI_cursor_open(nullptr, plan, args, nullptr, true);
      // The reducer runs with the caller's search_path (the cursor's plan is fixed by now).
      int nest = NewGUCNestLevel();
      if (const char *path = es::caller_search_path())
        set_config_option("search_path", path, PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
                          true, 0, false);
      for (;;) {
        SPI_cursor_fetch(portal, true, es::kFoldFetch);
        uint64 fetched = SPI_processed;
        SPITupleTable *page = SPI_tuptable;
        if (fetched == 0) break;
        for (uint64 i = 0; i < fetched; ++i) {
          bool ev_null;
          Datum ev = SPI_getbinval(page->vals[i], page->tupdesc, 1, &ev_null);
          MemoryContext saved = MemoryContextSwitchTo(call_cxt);
          LOCAL_FCINFO(fc, 2);
          InitFunctionCallInfoData(*fc, &flinfo, 2, InvalidOid, nullptr, nullptr);
          fc->args[0].value = value;
          fc->args[0].isnull = result_null;
          fc->args[1].value = ev;
          fc->args[1].isnull = ev_null;
          Datum next = (Datum)0;
          bool next_null = true;
          if (!(flinfo.fn_strict && (result_null || ev_null))) {
            next = FunctionCallInvoke(fc);
            next_null = fc->isnull;
          }
          MemoryContextSwitchTo(saved);
          int spare = 1 - current;
          MemoryContextReset(state_cxt[spare]);
          if (!next_null) {
            MemoryContextSwitchTo(state_cxt[spare]);
            next = datumCopy(next, false, -1);
            MemoryContextSwitchTo(saved);
          }
          value = next;
          result_null = next_null;
          current = spare;
          MemoryContextReset(call_cxt);
        }
        SPI_freetuptable(page);
      }
      AtEOXact_GUC(true, nest);
      SPI_cursor_close(portal);
      if (!result_null) {
        MemoryContext saved = MemoryContextSwitchTo(result_cxt);
        value = datumCopy(value, false, -1);
        MemoryContextSwitchTo(saved);
      }
      MemoryContextDelete(call_cxt);
      MemoryContextDelete(state_cxt[0]);
      MemoryContextDelete(state_cxt[1]);
      return value;
    });
    if (result_null) PG_RETURN_NULL();
    return result;
  });
}

}
