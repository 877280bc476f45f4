// es.outbox_publish (API.md §5, docs/outbox.md "Publishing"): records a message in the caller's
// transaction. Runs as the extension owner without SECURITY DEFINER or a SET clause (no GUC
// change per call, no PL/pgSQL): validates like es._outbox_check_topic and the former PL/pgSQL
// body (same SQLSTATEs and messages), registers with the outbox horizon before allocating the
// id (horizon.cpp, as es._outbox_next_id), computes the shard as es._outbox_shard does
// (src/core/outbox_shard.hpp), and inserts the row through the table AM and the index AMs
// directly (direct_insert.cpp does the same for events). A message table with anything the
// direct path would skip — triggers, row security, rules, other columns — gets a kept-plan
// INSERT instead. Writers never NOTIFY: the registration makes the commit ask for the relay
// (relay.cpp), which rings the doorbell.
#include "horizon.hpp"
#include "runtime.hpp"

#include "../core/outbox_shard.hpp"

namespace es {
namespace {

constexpr const char *kInvalidTopic = "ES041";
constexpr const char *kInvalidMessage = "ES044";
constexpr std::size_t kMaxTopicBytes = 256;
constexpr std::size_t kMaxKeyBytes = 1024;

// The columns of es._outbox_messages, in the order of the insert's values.
enum MessageColumn { kId, kTopic, kKey, kPayload, kHeaders, kShard, kPublishedAt, kColumns };
struct ColumnShape {
  const char *name;
  Oid type;
};
constexpr ColumnShape kShape[kColumns] = {
    {"id", INT8OID},        {"topic", TEXTOID},  {"key", TEXTOID},
    {"payload", JSONBOID},  {"headers", JSONBOID}, {"shard", INT2OID},
    {"published_at", TIMESTAMPTZOID}};

// What the backend keeps about the message table: its oids (the outbox as a "store" of the
// horizon), the direct path's verdict (0 not checked since the last invalidation, 1 yes,
// -1 no) with the columns' attnums, and the fallback's kept plan.
struct MessageTable {
  StoreInfo order;
  int direct_state;
  AttrNumber attnums[kColumns];
  SPIPlanPtr insert_plan;
};
MessageTable messages{};
bool callback_registered = false;

void invalidate_messages(Datum, Oid relid) {
  if (relid == InvalidOid || relid == messages.order.store ||
      relid == messages.order.position_seq) {
    messages.order.valid = false;
    messages.direct_state = 0;
  }
}

// The message table's oids, looked up once per invalidation.
MessageTable &message_table() {
  if (messages.order.valid) return messages;
  pg_call([&] {
    if (!callback_registered) {
      CacheRegisterRelcacheCallback(invalidate_messages, 0);
      callback_registered = true;
    }
    Oid nsp = get_namespace_oid("es", false);
    messages.order.store = get_relname_relid("_outbox_messages", nsp);
    messages.order.position_seq = get_relname_relid("_outbox_messages_id_seq", nsp);
    if (!OidIsValid(messages.order.store) || !OidIsValid(messages.order.position_seq))
      elog(ERROR, "pg_eventstore: outbox tables are missing");
  });
  messages.direct_state = 0;
  messages.order.valid = true;
  return messages;
}

// es._outbox_check_topic's rules: ES041 for a NULL, empty or too long topic.
void check_topic(text *topic) {
  if (topic == nullptr || VARSIZE_ANY_EXHDR(topic) == 0)
    raise(kInvalidTopic, "topic must not be NULL or empty");
  std::size_t bytes = VARSIZE_ANY_EXHDR(topic);
  if (bytes > kMaxTopicBytes)
    raise(kInvalidTopic, "topic is too long",
          "The limit is " + std::to_string(kMaxTopicBytes) + " bytes; the topic has " +
              std::to_string(bytes) + ".");
}

// ES044 unless `headers` (not NULL) is a JSON object; the detail names its jsonb_typeof.
void check_headers(Jsonb *headers) {
  if (JB_ROOT_IS_OBJECT(headers)) return;
  std::string type = pg_call([&] {
    return text_to_cstring(DatumGetTextPP(DirectFunctionCall1(jsonb_typeof, JsonbPGetDatum(headers))));
  });
  raise(kInvalidMessage, "headers must be a JSON object", "headers is a JSON " + type + ".");
}

// es._outbox_shard(key, id), computed in C++ (src/core/outbox_shard.hpp): md5 of the key's
// bytes, as SQL's md5(text) hashes them.
int16 message_shard(text *key, int64 id) {
  if (key == nullptr) return static_cast<int16>(outbox_id_shard(id));
  return static_cast<int16>(outbox_key_shard(VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key)));
}

// The table's part of the direct path's verdict (PostgreSQL calls only; inside pg_call): a
// plain table of exactly the seven columns with their types, published_at DEFAULT now(), no
// triggers (foreign keys and deferred unique checks are triggers too), row security, rules or
// generated columns. Then the executor's INSERT would do nothing more than the direct path:
// evaluate the default, check NOT NULL and CHECK constraints, insert the heap and index tuples.
bool table_allows_direct(Relation rel, MessageTable &t) {
  if (rel->rd_rel->relkind != RELKIND_RELATION || rel->rd_rel->relrowsecurity ||
      rel->rd_rel->relhasrules || rel->trigdesc != nullptr)
    return false;
  TupleDesc desc = RelationGetDescr(rel);
  if (desc->constr != nullptr && desc->constr->has_generated_stored) return false;
  AttrNumber found[kColumns] = {0, 0, 0, 0, 0, 0, 0};
  for (int i = 0; i < desc->natts; ++i) {
    Form_pg_attribute att = TupleDescAttr(desc, i);
    if (att->attisdropped) continue;
    int k = 0;
    while (k < kColumns && strcmp(NameStr(att->attname), kShape[k].name) != 0) ++k;
    if (k == kColumns || found[k] != 0 || att->atttypid != kShape[k].type || att->attgenerated ||
        att->attidentity)
      return false;
    found[k] = att->attnum;
  }
  for (AttrNumber a : found)
    if (a == 0) return false;
  Node *published_default = build_column_default(rel, found[kPublishedAt]);
  if (published_default == nullptr || !IsA(published_default, FuncExpr) ||
      reinterpret_cast<FuncExpr *>(published_default)->funcid != F_NOW)
    return false;
  memcpy(t.attnums, found, sizeof found);
  return true;
}

// Inserts the row through the table AM and the index AMs (the executor set-up of
// direct_insert.cpp, without speculative insertion: the id is fresh from the sequence, so a
// duplicate can only come from a hand-made row, and the unique index reports it as INSERT
// would). Returns false, having written nothing, when the table needs the executor.
bool insert_direct(MessageTable &t, const Datum *values, const bool *nulls) {
  return pg_call([&]() -> bool {
    // Opening takes the lock, which processes pending invalidations: a trigger created
    // meanwhile has reset the verdict.
    Relation rel = table_open(t.order.store, RowExclusiveLock);
    if (t.direct_state == 0) t.direct_state = table_allows_direct(rel, t) ? 1 : -1;
    if (t.direct_state < 0) {
      table_close(rel, NoLock);
      return false;
    }
    EState *estate = CreateExecutorState();
    ResultRelInfo *result = makeNode(ResultRelInfo);
    InitResultRelInfo(result, rel, 0, nullptr, 0);
    ExecOpenIndices(result, false);
    estate->es_output_cid = GetCurrentCommandId(true);
    TupleDesc desc = RelationGetDescr(rel);
    TupleTableSlot *slot = ExecInitExtraTupleSlot(estate, desc, table_slot_callbacks(rel));
    ExecClearTuple(slot);
    for (int a = 0; a < desc->natts; ++a) {
      slot->tts_values[a] = (Datum)0;
      slot->tts_isnull[a] = true;
    }
    for (int c = 0; c < kPublishedAt; ++c) {
      slot->tts_values[t.attnums[c] - 1] = values[c];
      slot->tts_isnull[t.attnums[c] - 1] = nulls[c];
    }
    // DEFAULT now(): the transaction's start.
    slot->tts_values[t.attnums[kPublishedAt] - 1] =
        TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
    slot->tts_isnull[t.attnums[kPublishedAt] - 1] = false;
    ExecStoreVirtualTuple(slot);
    slot->tts_tableOid = RelationGetRelid(rel);
    if (desc->constr != nullptr) ExecConstraints(result, slot, estate);
    table_tuple_insert(rel, slot, estate->es_output_cid, 0, nullptr);
#if PG_VERSION_NUM >= 160000
    List *recheck = ExecInsertIndexTuples(result, slot, estate, false, false, nullptr, NIL, false);
#else
    List *recheck = ExecInsertIndexTuples(result, slot, estate, false, false, nullptr, NIL);
#endif
    list_free(recheck);
    ExecCloseIndices(result);
    ExecResetTupleTable(estate->es_tupleTable, false);
    FreeExecutorState(estate);
    table_close(rel, NoLock);
    // As SPI does after a statement: the row is visible to what the caller runs next.
    CommandCounterIncrement();
    return true;
  });
}

// The executor's INSERT, for a message table the direct path does not cover (run as the
// extension owner, as the former SECURITY DEFINER function did).
void insert_with_plan(MessageTable &t, const Datum *values, const bool *nulls) {
  SpiConnection spi;
  if (t.insert_plan == nullptr) {
    Oid types[kPublishedAt] = {INT8OID, TEXTOID, TEXTOID, JSONBOID, JSONBOID, INT2OID};
    t.insert_plan = prepare_kept(
        "INSERT INTO es._outbox_messages (id, topic, key, payload, headers, shard)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        kPublishedAt, types);
  }
  pg_call([&] {
    char plan_nulls[kPublishedAt];
    for (int c = 0; c < kPublishedAt; ++c) plan_nulls[c] = nulls[c] ? 'n' : ' ';
    if (SPI_execute_plan(t.insert_plan, const_cast<Datum *>(values), plan_nulls, false, 0) !=
        SPI_OK_INSERT)
      elog(ERROR, "pg_eventstore: outbox message insert failed");
  });
}

}  // namespace
}  // namespace es

extern "C" {

// es.outbox_publish(topic text, payload jsonb, key text, headers jsonb) -> bigint: the new
// message's id. Errors: ES041 bad topic; ES044 NULL payload, non-object headers, key over
// 1024 bytes.
PG_FUNCTION_INFO_V1(es_outbox_publish);
Datum es_outbox_publish(PG_FUNCTION_ARGS) {
  return es::guarded([&] {
    text *topic = PG_ARGISNULL(0) ? nullptr : es::pg_call([&] { return PG_GETARG_TEXT_PP(0); });
    es::check_topic(topic);
    if (PG_ARGISNULL(1))
      es::raise(es::kInvalidMessage, "payload must not be NULL", {},
                "Publish 'null'::jsonb for an empty message.");
    Datum payload = PG_GETARG_DATUM(1);
    Jsonb *headers = PG_ARGISNULL(3) ? nullptr : es::pg_call([&] { return PG_GETARG_JSONB_P(3); });
    if (headers != nullptr) es::check_headers(headers);
    text *key = PG_ARGISNULL(2) ? nullptr : es::pg_call([&] { return PG_GETARG_TEXT_PP(2); });
    if (key != nullptr && VARSIZE_ANY_EXHDR(key) > es::kMaxKeyBytes)
      es::raise(es::kInvalidMessage, "key is too long",
                "The limit is " + std::to_string(es::kMaxKeyBytes) + " bytes; the key has " +
                    std::to_string(VARSIZE_ANY_EXHDR(key)) + ".");

    es::AsExtensionOwner owner;
    es::MessageTable &table = es::message_table();
    // Register first, allocate second: a claim's horizon never passes an id still open.
    es::register_appender(table.order);
    int64 id = es::allocate_position(table.order);
    Datum values[es::kPublishedAt] = {
        Int64GetDatum(id),  PointerGetDatum(topic),   PointerGetDatum(key),
        payload,            PointerGetDatum(headers), Int16GetDatum(es::message_shard(key, id))};
    bool nulls[es::kPublishedAt] = {false, false, key == nullptr, false, headers == nullptr, false};
    if (!es::insert_direct(table, values, nulls)) es::insert_with_plan(table, values, nulls);
    return Int64GetDatum(id);
  });
}

}
