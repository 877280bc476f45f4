// The executor-level insert of es.append (see direct_insert.hpp). The speculative-insertion
// steps follow ExecInsert in src/backend/executor/nodeModifyTable.c (ON CONFLICT DO NOTHING),
// the executor set-up follows the logical replication apply worker
// (src/backend/replication/logical/worker.c, ExecSimpleRelationInsert).
#include "direct_insert.hpp"

extern "C" {
#include "catalog/index.h"
}

namespace es {

namespace {

// The standard columns, in EventRow order, then recorded_at.
struct StandardColumn {
  const char *name;
  Oid type;
};
constexpr StandardColumn kColumns[8] = {
    {"global_position", INT8OID}, {"stream_id", TEXTOID},  {"stream_version", INT8OID},
    {"event_id", UUIDOID},        {"event_type", TEXTOID}, {"data", JSONBOID},
    {"metadata", JSONBOID},       {"recorded_at", TIMESTAMPTZOID}};
constexpr int kRecordedAt = 7;

// The oid of the trigger function es.<name>() (InvalidOid when missing).
Oid es_function(const char *name) {
  return LookupFuncName(list_make2(makeString(pstrdup("es")), makeString(pstrdup(name))), 0,
                        nullptr, true);
}

// The table's part of the verdict (PostgreSQL calls only; runs inside pg_call).
bool table_allows_direct(Relation rel, StoreInfo &info) {
  if (rel->rd_rel->relkind != RELKIND_RELATION || rel->rd_rel->relrowsecurity ||
      rel->rd_rel->relhasrules)
    return false;
  TupleDesc desc = RelationGetDescr(rel);
  if (desc->constr != nullptr && desc->constr->has_generated_stored) return false;
  AttrNumber found[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int i = 0; i < desc->natts; ++i) {
    Form_pg_attribute att = TupleDescAttr(desc, i);
    if (att->attisdropped) continue;
    int k = 0;
    while (k < 8 && strcmp(NameStr(att->attname), kColumns[k].name) != 0) ++k;
    if (k == 8 || found[k] != 0 || att->atttypid != kColumns[k].type || att->attgenerated ||
        att->attidentity)
      return false;
    found[k] = att->attnum;
  }
  for (AttrNumber a : found)
    if (a == 0) return false;
  Node *recorded_default = build_column_default(rel, found[kRecordedAt]);
  if (recorded_default == nullptr || !IsA(recorded_default, FuncExpr) ||
      reinterpret_cast<FuncExpr *>(recorded_default)->funcid != F_NOW)
    return false;

  if (rel->trigdesc != nullptr) {
    Oid own[3] = {es_function("_guard_insert"), es_function("_check_version_chain"),
                  es_function("_guard_modify")};
    for (int i = 0; i < rel->trigdesc->numtriggers; ++i) {
      Oid fn = rel->trigdesc->triggers[i].tgfoid;
      if (!OidIsValid(fn) || (fn != own[0] && fn != own[1] && fn != own[2])) return false;
    }
  }

  // The index the version read uses: exactly one valid, immediate, non-partial unique index on
  // the key columns (stream_id, stream_version). No deferrable unique index anywhere: ON
  // CONFLICT refuses those as arbiters, and the SPI path reports it.
  int arbiters = 0;
  Oid arbiter = InvalidOid;
  List *indexes = RelationGetIndexList(rel);
  ListCell *lc;
  foreach (lc, indexes) {
    Oid index = lfirst_oid(lc);
    HeapTuple tuple = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(index));
    if (!HeapTupleIsValid(tuple)) elog(ERROR, "cache lookup failed for index %u", index);
    auto *form = reinterpret_cast<Form_pg_index>(GETSTRUCT(tuple));
    bool immediate = form->indimmediate || !form->indisunique;
    bool on_version_key =
        form->indisunique && form->indisvalid && form->indnkeyatts == 2 &&
        ((form->indkey.values[0] == found[1] && form->indkey.values[1] == found[2]) ||
         (form->indkey.values[0] == found[2] && form->indkey.values[1] == found[1])) &&
        heap_attisnull(tuple, Anum_pg_index_indexprs, nullptr) &&
        heap_attisnull(tuple, Anum_pg_index_indpred, nullptr);
    ReleaseSysCache(tuple);
    if (!immediate) return false;
    if (on_version_key) {
      ++arbiters;
      arbiter = index;
    }
  }
  if (arbiters != 1) return false;
  memcpy(info.direct_columns, found, sizeof found);
  info.arbiter_index = arbiter;
  return true;
}

// Opens the store and settles the verdict; nullptr (table closed) when the direct path is
// not equivalent. Opening takes the lock, which processes pending invalidations: a trigger or
// policy created meanwhile has marked `info` invalid, and the verdict is redone.
Relation open_direct(StoreInfo &info, LOCKMODE mode) {
  Relation rel = table_open(info.store, mode);
  if (info.direct_state == 0 || !info.valid)
    info.direct_state = table_allows_direct(rel, info) ? 1 : -1;
  if (info.direct_state > 0) return rel;
  table_close(rel, NoLock);
  return nullptr;
}

}  // namespace

int64 direct_insert(StoreInfo &info, const EventRow *rows, int count) {
  if (IsolationUsesXactSnapshot()) return -1;
  return pg_call([&]() -> int64 {
    Relation rel = open_direct(info, RowExclusiveLock);
    if (rel == nullptr) return -1;
    EState *estate = CreateExecutorState();
    ResultRelInfo *result = makeNode(ResultRelInfo);
    InitResultRelInfo(result, rel, 0, nullptr, 0);
    // Without the speculative-insertion details of the unique indexes: only the pre-check of
    // a retry needs them (ExecCheckIndexConstraints); ExecInsertIndexTuples does not. Built on
    // the first retry (BuildSpeculativeIndexInfo, as ExecOpenIndices(..., true) would).
    ExecOpenIndices(result, false);
    bool speculative_info = false;
    estate->es_output_cid = GetCurrentCommandId(true);
    TupleDesc desc = RelationGetDescr(rel);
    TupleTableSlot *slot = ExecInitExtraTupleSlot(estate, desc, table_slot_callbacks(rel));
    // ON CONFLICT DO NOTHING without a target: every unique index is an arbiter (NIL).
    List *arbiters = NIL;
    TransactionId xid = GetCurrentTransactionId();
    Datum recorded_at = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());

    int64 inserted = 0;
    for (int r = 0; r < count; ++r) {
      ExecClearTuple(slot);
      for (int a = 0; a < desc->natts; ++a) {
        slot->tts_values[a] = (Datum)0;
        slot->tts_isnull[a] = true;
      }
      for (int c = 0; c < 7; ++c) {
        int a = info.direct_columns[c] - 1;
        slot->tts_values[a] = rows[r].values[c];
        slot->tts_isnull[a] = rows[r].nulls[c] == 'n';
      }
      slot->tts_values[info.direct_columns[kRecordedAt] - 1] = recorded_at;
      slot->tts_isnull[info.direct_columns[kRecordedAt] - 1] = false;
      ExecStoreVirtualTuple(slot);
      slot->tts_tableOid = RelationGetRelid(rel);
      if (desc->constr != nullptr) ExecConstraints(result, slot, estate);

      // The caller has just read the stream's version, so a conflict is rare: the first try
      // skips ExecInsert's pre-check (an optimisation there too) and relies on the unique
      // indexes reporting the conflict; every retry checks first, waiting for an in-progress
      // inserter to commit or abort, as ON CONFLICT DO NOTHING does.
      bool taken = false;
      for (bool first_try = true;; first_try = false) {
        ItemPointerData conflict;
        if (!first_try && !speculative_info) {
          for (int i = 0; i < result->ri_NumIndices; ++i)
            if (result->ri_IndexRelationInfo[i]->ii_Unique)
              BuildSpeculativeIndexInfo(result->ri_IndexRelationDescs[i],
                                        result->ri_IndexRelationInfo[i]);
          speculative_info = true;
        }
        if (!first_try && !ExecCheckIndexConstraints(result, slot, estate, &conflict, arbiters)) {
          taken = true;  // a committed (or waited-for) row holds the version or the id
          break;
        }
        uint32 token = SpeculativeInsertionLockAcquire(xid);
        table_tuple_insert_speculative(rel, slot, estate->es_output_cid, 0, nullptr, token);
        bool speculative_conflict = false;
#if PG_VERSION_NUM >= 160000
        List *recheck = ExecInsertIndexTuples(result, slot, estate, false, true,
                                              &speculative_conflict, arbiters, false);
#else
        List *recheck = ExecInsertIndexTuples(result, slot, estate, false, true,
                                              &speculative_conflict, arbiters);
#endif
        table_tuple_complete_speculative(rel, slot, token, !speculative_conflict);
        SpeculativeInsertionLockRelease(xid);
        list_free(recheck);
        if (!speculative_conflict) break;
        // A concurrent insert of the same version won the race: check again (it may abort).
      }
      ResetPerTupleExprContext(estate);
      if (taken) break;
      ++inserted;
    }

    ExecCloseIndices(result);
    ExecResetTupleTable(estate->es_tupleTable, false);
    FreeExecutorState(estate);
    table_close(rel, NoLock);
    // As SPI does after a statement: what we wrote is visible to the next read of this call.
    CommandCounterIncrement();
    return inserted;
  });
}

int64 direct_last_version(StoreInfo &info, text *stream) {
  return pg_call([&]() -> int64 {
    Relation rel = open_direct(info, AccessShareLock);
    if (rel == nullptr) return -1;
    Relation index = index_open(info.arbiter_index, AccessShareLock);
    if (index->rd_index->indkey.values[0] != info.direct_columns[1]) {  // (version, stream)
      index_close(index, NoLock);
      table_close(rel, NoLock);
      return -1;
    }
    ScanKeyData key;
    ScanKeyEntryInitialize(&key, 0, 1, BTEqualStrategyNumber, InvalidOid,
                           index->rd_indcollation[0], F_TEXTEQ, PointerGetDatum(stream));
    Snapshot snapshot = RegisterSnapshot(GetLatestSnapshot());
    IndexScanDesc scan = index_beginscan(rel, index, snapshot, 1, 0);
    index_rescan(scan, &key, 1, nullptr, 0);
    TupleTableSlot *slot = table_slot_create(rel, nullptr);
    int64 version = 0;
    if (index_getnext_slot(scan, BackwardScanDirection, slot)) {
      bool isnull;
      Datum v = slot_getattr(slot, info.direct_columns[2], &isnull);
      if (!isnull) version = DatumGetInt64(v);
    }
    ExecDropSingleTupleTableSlot(slot);
    index_endscan(scan);
    UnregisterSnapshot(snapshot);
    index_close(index, NoLock);
    table_close(rel, NoLock);
    return version;
  });
}

}  // namespace es
