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
#include "direct_insert.hpp"
#include "horizon.hpp"
#include "runtime.hpp"

#include "../core/outbox_shard.hpp"

extern "C" {
#include "nodes/makefuncs.h"
}

namespace es {
namespace {

constexpr const char *kInvalidTopic = "ES041";
constexpr const char *kInvalidMessage = "ES044";
constexpr std::size_t kMaxTopicBytes = 256;
constexpr std::size_t kMaxKeyBytes = 1024;

// The columns of es._outbox_messages, in the order of the insert's values.
enum MessageColumn { kId, kTopic, kKey, kPayload, kHeaders, kShard, kPublishedAt, kColumns };
constexpr DirectColumn kShape[kColumns] = {
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
  if (rel->trigdesc != nullptr) return false;
  AttrNumber found[kColumns];
  if (!direct_shape(rel, kShape, kColumns, found)) return false;
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
    DirectTarget target;
    direct_begin(target, rel);
    TupleTableSlot *slot = direct_row(target);
    for (int c = 0; c < kPublishedAt; ++c) {
      slot->tts_values[t.attnums[c] - 1] = values[c];
      slot->tts_isnull[t.attnums[c] - 1] = nulls[c];
    }
    // DEFAULT now(): the transaction's start.
    slot->tts_values[t.attnums[kPublishedAt] - 1] =
        TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
    slot->tts_isnull[t.attnums[kPublishedAt] - 1] = false;
    direct_put(target);
    direct_end(target);  // the row is visible to what the caller runs next
    table_close(rel, NoLock);
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

// Records one message (arguments already checked): registers, takes its id, inserts the row
// as the extension owner. Returns the id.
int64 publish_message(text *topic, text *key, Datum payload, Datum headers) {
  AsExtensionOwner owner;
  MessageTable &table = message_table();
  // Register first, allocate second: a claim's horizon never passes an id still open.
  register_appender(table.order);
  int64 id = allocate_position(table.order);
  Datum values[kPublishedAt] = {Int64GetDatum(id), PointerGetDatum(topic), PointerGetDatum(key),
                                payload,           headers,                Int16GetDatum(message_shard(key, id))};
  bool nulls[kPublishedAt] = {false, false, key == nullptr, false, headers == (Datum)0, false};
  if (!insert_direct(table, values, nulls)) insert_with_plan(table, values, nulls);
  return id;
}

// The routes of `store` that match an event: their topics in name order (copied into the
// caller's memory context). Runs under the caller's SpiConnection, as the extension owner.
SPIPlanPtr matching_routes_plan = nullptr;

List *matching_topics(Oid store, Datum event_type, bool event_type_null, Datum stream,
                      bool stream_null) {
  if (matching_routes_plan == nullptr) {
    Oid types[3] = {REGCLASSOID, TEXTOID, TEXTOID};
    matching_routes_plan = prepare_kept(
        "SELECT rt.topic FROM es._outbox_routes rt"
        " WHERE rt.store = $1"
        " AND (rt.event_types IS NULL OR $2 = ANY (rt.event_types))"
        " AND (rt.stream_prefix IS NULL OR starts_with($3, rt.stream_prefix))"
        " ORDER BY rt.topic",
        3, types);
  }
  MemoryContext caller = CurrentMemoryContext;
  return pg_call([&]() -> List * {
    Datum args[3] = {ObjectIdGetDatum(store), event_type, stream};
    char nulls[3] = {' ', event_type_null ? 'n' : ' ', stream_null ? 'n' : ' '};
    if (SPI_execute_plan(matching_routes_plan, args, nulls, false, 0) != SPI_OK_SELECT)
      elog(ERROR, "pg_eventstore: outbox route lookup failed");
    List *topics = NIL;
    MemoryContext spi = MemoryContextSwitchTo(caller);
    for (uint64 i = 0; i < SPI_processed; ++i) {
      bool isnull;
      Datum topic = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
      if (!isnull) topics = lappend(topics, pg_detoast_datum_copy(reinterpret_cast<struct varlena *>(DatumGetPointer(topic))));
    }
    MemoryContextSwitchTo(spi);
    return topics;
  });
}

// A column of the event row by name (the trigger's NEW.<name>); raises when there is none.
Datum event_column(HeapTuple row, TupleDesc desc, const char *name, bool *isnull) {
  int attnum = SPI_fnumber(desc, name);
  if (attnum <= 0) elog(ERROR, "record \"new\" has no field \"%s\"", name);
  return heap_getattr(row, attnum, desc, isnull);
}

void push_key(JsonbParseState **state, const char *key) {
  JsonbValue k;
  k.type = jbvString;
  k.val.string.val = const_cast<char *>(key);
  k.val.string.len = static_cast<int>(strlen(key));
  pushJsonbValue(state, WJB_KEY, &k);
}

void push_string(JsonbParseState **state, const char *value) {
  JsonbValue v;
  if (value == nullptr) {
    v.type = jbvNull;
  } else {
    v.type = jbvString;
    v.val.string.val = const_cast<char *>(value);
    v.val.string.len = static_cast<int>(strlen(value));
  }
  pushJsonbValue(state, WJB_VALUE, &v);
}

void push_int8(JsonbParseState **state, Datum value, bool isnull) {
  JsonbValue v;
  if (isnull) {
    v.type = jbvNull;
  } else {
    v.type = jbvNumeric;
    v.val.numeric = DatumGetNumeric(DirectFunctionCall1(int8_numeric, value));
  }
  pushJsonbValue(state, WJB_VALUE, &v);
}

// to_jsonb(NEW): the whole event row, as the SQL function makes it (to_jsonb learns the row
// type from its call expression, so it gets one).
Datum row_to_jsonb(HeapTuple row, TupleDesc desc) {
  Datum record = heap_copy_tuple_as_datum(row, desc);
  FmgrInfo flinfo;
  fmgr_info(F_TO_JSONB, &flinfo);
  FuncExpr *call = makeFuncExpr(F_TO_JSONB, JSONBOID,
                                list_make1(makeNullConst(desc->tdtypeid, -1, InvalidOid)),
                                InvalidOid, InvalidOid, COERCE_EXPLICIT_CALL);
  fmgr_info_set_expr(reinterpret_cast<Node *>(call), &flinfo);
  return FunctionCall1(&flinfo, record);
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

    int64 id = es::publish_message(topic, key, payload, PointerGetDatum(headers));
    return Int64GetDatum(id);
  });
}

// es._outbox_route_event(): the route trigger of event tables (AFTER INSERT FOR EACH ROW,
// WHEN es._in_append(NEW.tableoid)). Publishes the event to every matching route's topic, in
// topic order: key = stream id, payload = to_jsonb(NEW), headers = event_id, event_type,
// global_position, stream_version, store (the table's name as regclass prints it under
// search_path pg_catalog, pg_temp). As the extension owner, like the former SECURITY DEFINER
// PL/pgSQL function. Returns NULL.
PG_FUNCTION_INFO_V1(es_outbox_route_event);
Datum es_outbox_route_event(PG_FUNCTION_ARGS) {
  return es::guarded([&] {
    auto *trigger = reinterpret_cast<TriggerData *>(fcinfo->context);
    if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BY_INSERT(trigger->tg_event) ||
        !TRIGGER_FIRED_FOR_ROW(trigger->tg_event) || !TRIGGER_FIRED_AFTER(trigger->tg_event))
      es::pg_call([] {
        elog(ERROR, "pg_eventstore: _outbox_route_event must run as an AFTER INSERT row trigger");
      });
    Relation rel = trigger->tg_relation;
    HeapTuple row = trigger->tg_trigtuple;
    TupleDesc desc = RelationGetDescr(rel);
    Oid store = RelationGetRelid(rel);
    es::SpiConnection spi;  // pins search_path: the route query, regclass output
    es::AsExtensionOwner owner;
    bool type_null, stream_null;
    Datum event_type = es::pg_call([&] { return es::event_column(row, desc, "event_type", &type_null); });
    Datum stream = es::pg_call([&] { return es::event_column(row, desc, "stream_id", &stream_null); });
    List *topics = es::matching_topics(store, event_type, type_null, stream, stream_null);
    if (topics == NIL) return PointerGetDatum(nullptr);

    text *key = stream_null ? nullptr : es::pg_call([&] {
      return reinterpret_cast<text *>(pg_detoast_datum_packed(reinterpret_cast<struct varlena *>(DatumGetPointer(stream))));
    });
    Datum payload = es::pg_call([&] { return es::row_to_jsonb(row, desc); });
    Datum headers = es::pg_call([&] {
      bool isnull;
      JsonbParseState *state = nullptr;
      pushJsonbValue(&state, WJB_BEGIN_OBJECT, nullptr);
      es::push_key(&state, "event_id");
      Datum event_id = es::event_column(row, desc, "event_id", &isnull);
      es::push_string(&state, isnull ? nullptr : DatumGetCString(DirectFunctionCall1(uuid_out, event_id)));
      es::push_key(&state, "event_type");
      es::push_string(&state, type_null ? nullptr : TextDatumGetCString(event_type));
      es::push_key(&state, "global_position");
      Datum position = es::event_column(row, desc, "global_position", &isnull);
      es::push_int8(&state, position, isnull);
      es::push_key(&state, "stream_version");
      Datum version = es::event_column(row, desc, "stream_version", &isnull);
      es::push_int8(&state, version, isnull);
      es::push_key(&state, "store");
      es::push_string(&state, DatumGetCString(DirectFunctionCall1(regclassout, ObjectIdGetDatum(store))));
      JsonbValue *object = pushJsonbValue(&state, WJB_END_OBJECT, nullptr);
      return JsonbPGetDatum(JsonbValueToJsonb(object));
    });
    ListCell *lc;
    foreach (lc, topics) es::publish_message(static_cast<text *>(lfirst(lc)), key, payload, headers);
    return PointerGetDatum(nullptr);
  });
}

}
