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
constexpr DirectColumn kColumns[8] = {
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
  AttrNumber found[8];
  if (!direct_shape(rel, kColumns, 8, found)) return false;
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

void direct_begin(DirectTarget &t, Relation rel) {
  t.rel = rel;
  t.estate = CreateExecutorState();
  t.result = makeNode(ResultRelInfo);
  InitResultRelInfo(t.result, rel, 0, nullptr, 0);
  // Without the speculative-insertion details of the unique indexes: only the pre-check of
  // ON CONFLICT needs them (ExecCheckIndexConstraints); ExecInsertIndexTuples does not. Built
  // on the first pre-check (BuildSpeculativeIndexInfo, as ExecOpenIndices(..., true) would).
  ExecOpenIndices(t.result, false);
  t.speculative_info = false;
  t.estate->es_output_cid = GetCurrentCommandId(true);
  t.slot = ExecInitExtraTupleSlot(t.estate, RelationGetDescr(rel), table_slot_callbacks(rel));
}

TupleTableSlot *direct_row(DirectTarget &t) {
  TupleTableSlot *slot = t.slot;
  ExecClearTuple(slot);
  for (int a = 0; a < slot->tts_tupleDescriptor->natts; ++a) {
    slot->tts_values[a] = (Datum)0;
    slot->tts_isnull[a] = true;
  }
  return slot;
}

namespace {

// Stores the slot's values as its row and checks NOT NULL and CHECK constraints.
void direct_prepare(DirectTarget &t) {
  ExecStoreVirtualTuple(t.slot);
  t.slot->tts_tableOid = RelationGetRelid(t.rel);
  if (RelationGetDescr(t.rel)->constr != nullptr) ExecConstraints(t.result, t.slot, t.estate);
}

}  // namespace

void direct_put(DirectTarget &t) {
  direct_prepare(t);
  table_tuple_insert(t.rel, t.slot, t.estate->es_output_cid, 0, nullptr);
#if PG_VERSION_NUM >= 160000
  List *recheck = ExecInsertIndexTuples(t.result, t.slot, t.estate, false, false, nullptr, NIL, false);
#else
  List *recheck = ExecInsertIndexTuples(t.result, t.slot, t.estate, false, false, nullptr, NIL);
#endif
  list_free(recheck);
  ResetPerTupleExprContext(t.estate);
}

bool direct_put_unless_conflict(DirectTarget &t, bool check_first) {
  direct_prepare(t);
  // ON CONFLICT DO NOTHING without a target: every unique index is an arbiter (NIL).
  List *arbiters = NIL;
  TransactionId xid = GetCurrentTransactionId();
  bool taken = false;
  for (bool first_try = true;; first_try = false) {
    // Every retry checks first, waiting for an in-progress inserter to commit or abort, as
    // ON CONFLICT DO NOTHING does.
    if (check_first || !first_try) {
      if (!t.speculative_info) {
        for (int i = 0; i < t.result->ri_NumIndices; ++i)
          if (t.result->ri_IndexRelationInfo[i]->ii_Unique)
            BuildSpeculativeIndexInfo(t.result->ri_IndexRelationDescs[i],
                                      t.result->ri_IndexRelationInfo[i]);
        t.speculative_info = true;
      }
      ItemPointerData conflict;
      if (!ExecCheckIndexConstraints(t.result, t.slot, t.estate, &conflict, arbiters)) {
        taken = true;  // a committed (or waited-for) row holds one of the unique keys
        break;
      }
    }
    uint32 token = SpeculativeInsertionLockAcquire(xid);
    table_tuple_insert_speculative(t.rel, t.slot, t.estate->es_output_cid, 0, nullptr, token);
    bool speculative_conflict = false;
#if PG_VERSION_NUM >= 160000
    List *recheck = ExecInsertIndexTuples(t.result, t.slot, t.estate, false, true,
                                          &speculative_conflict, arbiters, false);
#else
    List *recheck = ExecInsertIndexTuples(t.result, t.slot, t.estate, false, true,
                                          &speculative_conflict, arbiters);
#endif
    table_tuple_complete_speculative(t.rel, t.slot, token, !speculative_conflict);
    SpeculativeInsertionLockRelease(xid);
    list_free(recheck);
    if (!speculative_conflict) break;
    // A concurrent insert of the same key won the race: check again (it may abort).
  }
  ResetPerTupleExprContext(t.estate);
  return !taken;
}

void direct_end(DirectTarget &t) {
  ExecCloseIndices(t.result);
  ExecResetTupleTable(t.estate->es_tupleTable, false);
  FreeExecutorState(t.estate);
  CommandCounterIncrement();
}

bool direct_shape(Relation rel, const DirectColumn *columns, int count, AttrNumber *attnums) {
  if (rel->rd_rel->relkind != RELKIND_RELATION || rel->rd_rel->relrowsecurity ||
      rel->rd_rel->relhasrules)
    return false;
  TupleDesc desc = RelationGetDescr(rel);
  if (desc->constr != nullptr && desc->constr->has_generated_stored) return false;
  for (int k = 0; k < count; ++k) attnums[k] = 0;
  for (int i = 0; i < desc->natts; ++i) {
    Form_pg_attribute att = TupleDescAttr(desc, i);
    if (att->attisdropped) continue;
    int k = 0;
    while (k < count && strcmp(NameStr(att->attname), columns[k].name) != 0) ++k;
    if (k == count || attnums[k] != 0 || att->atttypid != columns[k].type || att->attgenerated ||
        att->attidentity)
      return false;
    attnums[k] = att->attnum;
  }
  for (int k = 0; k < count; ++k)
    if (attnums[k] == 0) return false;
  return true;
}

int64 direct_insert(StoreInfo &info, const EventRow *rows, int count) {
  if (IsolationUsesXactSnapshot()) return -1;
  return pg_call([&]() -> int64 {
    Relation rel = open_direct(info, RowExclusiveLock);
    if (rel == nullptr) return -1;
    DirectTarget t;
    direct_begin(t, rel);
    Datum recorded_at = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
    int64 inserted = 0;
    for (int r = 0; r < count; ++r) {
      TupleTableSlot *slot = direct_row(t);
      for (int c = 0; c < 7; ++c) {
        int a = info.direct_columns[c] - 1;
        slot->tts_values[a] = rows[r].values[c];
        slot->tts_isnull[a] = rows[r].nulls[c] == 'n';
      }
      slot->tts_values[info.direct_columns[kRecordedAt] - 1] = recorded_at;
      slot->tts_isnull[info.direct_columns[kRecordedAt] - 1] = false;
      // The caller has just read the stream's version, so a conflict is rare: the first try
      // skips the pre-check (a row holding the version or the id ends the batch).
      if (!direct_put_unless_conflict(t, false)) break;
      ++inserted;
    }
    direct_end(t);
    table_close(rel, NoLock);
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
