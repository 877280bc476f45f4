// es.append / es.append_event: the C++ append path (API.md §2).
#include "direct_insert.hpp"
#include "horizon.hpp"
#include "runtime.hpp"

#include <optional>
#include <vector>

#include "../core/limits.hpp"
#include "../core/validation.hpp"

namespace es {

pg_uuid_t *new_uuidv7();  // module.cpp

namespace {

constexpr int kMaxAnyVersionRetries = 1000;

// One validated event of the batch; the JSON pieces still point into the caller's datum.
struct EventInput {
  const char *type;
  int type_len;
  JsonbValue *data;      // nullptr: JSON null
  JsonbValue *metadata;  // nullptr: SQL NULL
  Datum data_datum;      // set instead of `data` by es.append_event
  Datum metadata_datum;
  bool has_datums;
  CheckedEvent checked;
};

struct AppendResult {
  int64 first_version, last_version, first_position, last_position;
  bool duplicate;
};

JsonKind kind_of(const JsonbValue *v) {
  if (v == nullptr) return JsonKind::Absent;
  switch (v->type) {
    case jbvNull: return JsonKind::Null;
    case jbvString: return JsonKind::String;
    case jbvNumeric: return JsonKind::Number;
    case jbvBool: return JsonKind::Bool;
    case jbvArray: return JsonKind::Array;
    case jbvObject: return JsonKind::Object;
    case jbvBinary:
      return JsonContainerIsObject(v->val.binary.data) ? JsonKind::Object : JsonKind::Array;
    default: return JsonKind::Null;
  }
}

JsonbValue *object_field(JsonbValue *object, const char *key) {
  JsonbValue k;
  k.type = jbvString;
  k.val.string.val = const_cast<char *>(key);
  k.val.string.len = static_cast<int>(strlen(key));
  return findJsonbValueFromContainer(object->val.binary.data, JB_FOBJECT, &k);
}

// Pulls the events out of the `events` argument and validates every one before any write.
std::vector<EventInput> parse_events(Jsonb *events) {
  JsonKind payload = JsonKind::Null;
  std::size_t count = 0;
  if (events != nullptr) {
    if (JB_ROOT_IS_SCALAR(events)) {
      JsonbValue scalar;
      pg_call([&] { JsonbExtractScalar(&events->root, &scalar); });
      payload = kind_of(&scalar);
    } else if (JB_ROOT_IS_OBJECT(events)) {
      payload = JsonKind::Object;
    } else {
      payload = JsonKind::Array;
      count = JB_ROOT_COUNT(events);
    }
  }
  if (auto p = check_events_payload(payload, count)) raise(*p);

  std::vector<EventInput> out(count);
  for (std::size_t i = 0; i < count; ++i) {
    EventShape shape;
    EventInput &ev = out[i];
    pg_call([&] {
      JsonbValue *element = getIthJsonbValueFromContainer(&events->root, static_cast<uint32>(i));
      shape.element = kind_of(element);
      ev.data = ev.metadata = nullptr;
      ev.has_datums = false;
      if (shape.element != JsonKind::Object) return;
      JsonbValue *type = object_field(element, "type");
      shape.type_kind = kind_of(type);
      if (shape.type_kind == JsonKind::String) {
        shape.type = std::string_view(type->val.string.val, type->val.string.len);
        ev.type = type->val.string.val;
        ev.type_len = type->val.string.len;
      }
      JsonbValue *id = object_field(element, "id");
      shape.id_kind = kind_of(id);
      if (shape.id_kind == JsonKind::String)
        shape.id = std::string_view(id->val.string.val, id->val.string.len);
      JsonbValue *metadata = object_field(element, "metadata");
      shape.metadata_kind = kind_of(metadata);
      if (shape.metadata_kind == JsonKind::Object) ev.metadata = metadata;
      JsonbValue *data = object_field(element, "data");
      if (data != nullptr && data->type != jbvNull) ev.data = data;
    });
    if (auto p = check_event(i + 1, shape, ev.checked)) raise(*p);
  }
  return out;
}

void fingerprint_jsonb(Fingerprint &fp, Datum value, bool present) {
  if (!present) {
    fp.add_tag(0);
    return;
  }
  fp.add_tag(1);
  struct varlena *v = pg_call([&] { return pg_detoast_datum_packed((struct varlena *)DatumGetPointer(value)); });
  uint32 len = VARSIZE_ANY_EXHDR(v);
  fp.add(&len, sizeof len);
  fp.add(VARDATA_ANY(v), len);
}

Datum jsonb_datum(JsonbValue *v) {
  return pg_call([&] { return JsonbPGetDatum(JsonbValueToJsonb(v)); });
}

// The plan shared by every store: records a key with its append's result.
SPIPlanPtr record_key_plan = nullptr;

void prepare_record_key_plan() {
  if (record_key_plan) return;
  Oid types[8] = {REGCLASSOID, TEXTOID, TEXTOID, INT8OID, INT8OID, INT8OID, INT8OID, INT8OID};
  record_key_plan = prepare_kept(
      "INSERT INTO es._idempotency_keys (store, key, stream_id, fingerprint, first_version,"
      " last_version, first_position, last_position) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
      " ON CONFLICT (store, key) DO NOTHING",
      8, types);
}

// Calls with the same key take turns: a transaction-scoped lock (LOCKTAG_USERLOCK: database,
// store, 45 bits of the key's hash with the 0x2000 flag in field4 — registrations carry 0x8000
// (horizon.cpp), the relay's lock is field4 = 0x4000 alone) held to commit or abort, like
// the row lock of an INSERT. A later call waits for an earlier one, then looks the key up with
// a fresh snapshot. A hash collision only makes two keys take turns.
constexpr uint16 kKeyLockFlag = 0x2000;

void lock_key(Oid store, text *key) {
  pg_call([&] {
    uint64 hash = DatumGetUInt64(hash_any_extended(
        reinterpret_cast<const unsigned char *>(VARDATA_ANY(key)),
        static_cast<int>(VARSIZE_ANY_EXHDR(key)), 0));
    LOCKTAG tag;
    tag.locktag_field1 = MyDatabaseId;
    tag.locktag_field2 = store;
    tag.locktag_field3 = static_cast<uint32>(hash & 0xFFFFFFFF);
    tag.locktag_field4 = static_cast<uint16>(kKeyLockFlag | ((hash >> 32) & 0x1FFF));
    tag.locktag_type = LOCKTAG_USERLOCK;
    tag.locktag_lockmethodid = USER_LOCKMETHOD;
    (void)LockAcquire(&tag, ExclusiveLock, false, false);
  });
}

// What es._idempotency_keys holds for a key.
struct StoredKey {
  bool found;
  bool same_stream;
  int64 fingerprint;
  AppendResult result;
};

int64 column_int8(int col) {
  bool isnull;
  Datum d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col, &isnull);
  return isnull ? -1 : DatumGetInt64(d);
}

int64 slot_int8(TupleTableSlot *slot, AttrNumber attnum) {
  bool isnull;
  Datum d = slot_getattr(slot, attnum, &isnull);
  return isnull ? -1 : DatumGetInt64(d);
}

// The key's row, read through the primary key with a fresh snapshot and locked FOR KEY SHARE,
// so that an es.maintain purge deleting it is waited for (then the key is gone). No planner: a
// kept plan's generic plan, chosen while the table was small, would scan it sequentially until
// the next ANALYZE. Runs as the extension owner (the table is private).
StoredKey find_key(Oid store, text *key, text *stream) {
  StoredKey k{};
  pg_call([&] {
    CommandCounterIncrement();  // keys this transaction recorded are visible to the snapshot
    Oid relid = get_relname_relid("_idempotency_keys", get_namespace_oid("es", false));
    if (!OidIsValid(relid)) elog(ERROR, "pg_eventstore: table es._idempotency_keys is missing");
    Relation rel = table_open(relid, RowShareLock);
    Relation index = index_open(RelationGetPrimaryKeyIndex(rel), AccessShareLock);
    TupleDesc desc = RelationGetDescr(rel);
    ScanKeyData scan_keys[2];
    ScanKeyEntryInitialize(&scan_keys[0], 0, 1, BTEqualStrategyNumber, InvalidOid,
                           index->rd_indcollation[0], F_OIDEQ, ObjectIdGetDatum(store));
    ScanKeyEntryInitialize(&scan_keys[1], 0, 2, BTEqualStrategyNumber, InvalidOid,
                           index->rd_indcollation[1], F_TEXTEQ, PointerGetDatum(key));
    Snapshot snapshot = RegisterSnapshot(GetLatestSnapshot());
    IndexScanDesc scan = index_beginscan(rel, index, snapshot, 2, 0);
    index_rescan(scan, scan_keys, 2, nullptr, 0);
    TupleTableSlot *slot = table_slot_create(rel, nullptr);
    if (index_getnext_slot(scan, ForwardScanDirection, slot)) {
      ItemPointerData tid = slot->tts_tid;
      TM_FailureData failure;
      TM_Result locked =
          table_tuple_lock(rel, &tid, snapshot, slot, GetCurrentCommandId(false),
                           LockTupleKeyShare, LockWaitBlock, TUPLE_LOCK_FLAG_FIND_LAST_VERSION,
                           &failure);
      if (locked == TM_Ok) {
        k.found = true;
        bool isnull;
        Datum stored = slot_getattr(slot, SPI_fnumber(desc, "stream_id"), &isnull);
        if (!isnull) {
          text *t = DatumGetTextPP(stored);
          k.same_stream = VARSIZE_ANY_EXHDR(t) == VARSIZE_ANY_EXHDR(stream) &&
                          memcmp(VARDATA_ANY(t), VARDATA_ANY(stream), VARSIZE_ANY_EXHDR(stream)) == 0;
        }
        k.fingerprint = slot_int8(slot, SPI_fnumber(desc, "fingerprint"));
        k.result.first_version = slot_int8(slot, SPI_fnumber(desc, "first_version"));
        k.result.last_version = slot_int8(slot, SPI_fnumber(desc, "last_version"));
        k.result.first_position = slot_int8(slot, SPI_fnumber(desc, "first_position"));
        k.result.last_position = slot_int8(slot, SPI_fnumber(desc, "last_position"));
      } else if (locked == TM_Deleted && IsolationUsesXactSnapshot()) {
        ereport(ERROR, (errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
                        errmsg("could not serialize access due to concurrent delete")));
      } else if (locked != TM_Deleted && locked != TM_SelfModified) {
        elog(ERROR, "pg_eventstore: unexpected result %d locking an idempotency key", locked);
      }
    }
    ExecDropSingleTupleTableSlot(slot);
    index_endscan(scan);
    UnregisterSnapshot(snapshot);
    index_close(index, NoLock);
    table_close(rel, NoLock);
  });
  return k;
}

// Takes `key`'s turn; when an earlier call recorded it, returns its result, or raises ES002
// when the content differs. Otherwise the append goes ahead and record_key stores its result.
std::optional<AppendResult> claim_key(Oid store, text *key, text *stream, int64 fingerprint) {
  lock_key(store, key);
  StoredKey stored = find_key(store, key, stream);
  if (!stored.found) return std::nullopt;
  std::string key_text = pg_call([&] { return text_to_cstring(key); });
  if (!stored.same_stream || stored.fingerprint != fingerprint)
    raise(sqlstate::kIdempotencyKeyReused,
          "idempotency key \"" + key_text + "\" was already used for a different append",
          stored.same_stream ? "The key was used for the same stream with different events."
                             : "The key was used for a different stream.",
          "Use a new key for a new append; a retry must repeat the original call exactly.");
  AppendResult r = stored.result;
  r.duplicate = true;
  return r;
}

// Stores the result of the append that took `key`'s turn (claim_key). Under the key's lock
// the row cannot exist, unless a writer that does not take the lock (a backend still running
// 0.2.0's library, or a restore) got there first: then the call is retried.
void record_key(Oid store, text *key, text *stream, int64 fingerprint, const AppendResult &r) {
  prepare_record_key_plan();
  pin_search_path();
  bool recorded = pg_call([&] {
    Datum args[8] = {ObjectIdGetDatum(store),         PointerGetDatum(key),
                     PointerGetDatum(stream),         Int64GetDatum(fingerprint),
                     Int64GetDatum(r.first_version),  Int64GetDatum(r.last_version),
                     Int64GetDatum(r.first_position), Int64GetDatum(r.last_position)};
    if (SPI_execute_plan(record_key_plan, args, nullptr, false, 0) != SPI_OK_INSERT)
      elog(ERROR, "pg_eventstore: idempotency key insert failed");
    return SPI_processed == 1;
  });
  if (!recorded)
    raise("40001", "idempotency key was recorded concurrently by another transaction", {},
          "Retry the transaction.");
}

int64 current_version(StoreInfo &info, text *stream) {
  int64 direct = direct_last_version(info, stream);
  if (direct >= 0) return direct;
  pin_search_path();
  return pg_call([&]() -> int64 {
    Datum args[1] = {PointerGetDatum(stream)};
    int rc = SPI_execute_snapshot(info.last_version, args, nullptr, GetLatestSnapshot(),
                                  InvalidSnapshot, false, false, 1);
    if (rc != SPI_OK_SELECT) elog(ERROR, "pg_eventstore: stream version lookup failed");
    if (SPI_processed == 0) return 0;
    return column_int8(1);
  });
}

// Who called es.append: the event INSERT runs as this identity.
struct Caller {
  Oid user;
  int security_context;
};

// True when `event_id` is already in the store (read as the extension owner: the caller may
// hold INSERT without SELECT). The rare path after an insert that did nothing.
bool event_id_taken(const StoreInfo &info, Datum event_id) {
  std::string sql = std::string("SELECT 1 FROM ") + qualified_name(info.store) + " WHERE event_id = $1";
  Oid types[1] = {UUIDOID};
  SPIPlanPtr plan = prepare_fixed(sql.c_str(), 1, types);
  pin_search_path();
  return pg_call([&] {
    Datum args[1] = {event_id};
    if (SPI_execute_snapshot(plan, args, nullptr, GetLatestSnapshot(), InvalidSnapshot, false,
                             false, 1) != SPI_OK_SELECT)
      elog(ERROR, "pg_eventstore: event id lookup failed");
    return SPI_processed == 1;
  });
}

// Raises ES003 when the event id of a row that was not inserted is taken (by another event,
// or by an earlier event of the same call); otherwise its version was.
void check_event_id_not_taken(const StoreInfo &info, Datum event_id) {
  if (!event_id_taken(info, event_id)) return;
  const char *id = pg_call([&] { return DatumGetCString(DirectFunctionCall1(uuid_out, event_id)); });
  raise(sqlstate::kDuplicateEventId, "event id already exists in the store",
        std::string("Key (event_id)=(") + id + ") already exists.",
        "Supply a new id, or none to have one generated.");
}

// A one-dimensional array of column `column` of `rows` (palloc'd in the SPI context).
Datum column_array(const EventRow *rows, int count, int column, Oid type) {
  return pg_call([&] {
    auto *values = static_cast<Datum *>(palloc(sizeof(Datum) * count));
    auto *nulls = static_cast<bool *>(palloc(sizeof(bool) * count));
    for (int i = 0; i < count; ++i) {
      values[i] = rows[i].values[column];
      nulls[i] = rows[i].nulls[column] == 'n';
    }
    int16 len;
    bool byval;
    char align;
    get_typlenbyvalalign(type, &len, &byval, &align);
    int dims[1] = {count};
    int lbs[1] = {1};
    return PointerGetDatum(
        construct_md_array(values, nulls, 1, dims, lbs, type, len, byval, align));
  });
}

// The SPI insert of rows of one stream; returns the index of the first row not inserted, or
// `count`. One row: insert_event; many: insert_batch, whose RETURNING lists the positions that
// went in (in row order, like the positions).
int spi_insert(const StoreInfo &info, const EventRow *rows, int count) {
  pin_search_path();
  if (count == 1) {
    return pg_call([&] {
      int rc = SPI_execute_plan(info.insert_event, const_cast<Datum *>(rows[0].values),
                                rows[0].nulls, false, 0);
      if (rc != SPI_OK_INSERT) elog(ERROR, "pg_eventstore: event insert failed");
      return SPI_processed == 1 ? 1 : 0;
    });
  }
  Datum args[7] = {column_array(rows, count, 0, INT8OID),  rows[0].values[1],
                   column_array(rows, count, 2, INT8OID),  column_array(rows, count, 3, UUIDOID),
                   column_array(rows, count, 4, TEXTOID),  column_array(rows, count, 5, JSONBOID),
                   column_array(rows, count, 6, JSONBOID)};
  return pg_call([&] {
    int rc = SPI_execute_plan(info.insert_batch, args, nullptr, false, 0);
    if (rc != SPI_OK_INSERT_RETURNING) elog(ERROR, "pg_eventstore: event insert failed");
    int first_missing = 0;
    for (uint64 i = 0; i < SPI_processed && first_missing < count; ++i) {
      bool isnull;
      Datum p = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
      if (isnull || DatumGetInt64(p) != DatumGetInt64(rows[first_missing].values[0])) break;
      ++first_missing;
    }
    return first_missing;
  });
}

// Inserts rows of one stream, in order, as the caller (whose INSERT privilege was checked), so
// the store owner's triggers, defaults and constraints never run with the extension owner's
// rights: directly when the table allows it (direct_insert.hpp), else with the SPI plans. Both
// say ON CONFLICT DO NOTHING without a conflict target (a target would need SELECT on its
// columns, which a writer need not have). Returns the index of the first row not inserted, or
// `count`; raises ES003 when that row's event id is taken (else its version was).
int insert_rows(StoreInfo &info, const EventRow *rows, int count, const Caller &caller) {
  int inserted;
  {
    AsUser as_caller(caller.user, caller.security_context);
    AppendInsert marker(info.store);
    int64 direct = direct_insert(info, rows, count);
    inserted = direct >= 0 ? static_cast<int>(direct) : spi_insert(info, rows, count);
  }
  if (inserted < count) check_event_id_not_taken(info, rows[inserted].values[3]);
  return inserted;
}

EventRow event_row(const EventInput &ev, int64 position, text *stream, int64 version) {
  EventRow row;
  memcpy(row.nulls, "       ", sizeof row.nulls);
  row.values[0] = Int64GetDatum(position);
  row.values[1] = PointerGetDatum(stream);
  row.values[2] = Int64GetDatum(version);
  if (ev.checked.has_id) {
    row.values[3] = pg_call([&] {
      auto *u = static_cast<pg_uuid_t *>(palloc(sizeof(pg_uuid_t)));
      memcpy(u->data, ev.checked.id.data(), UUID_LEN);
      return UUIDPGetDatum(u);
    });
  } else {
    row.values[3] = pg_call([] { return UUIDPGetDatum(new_uuidv7()); });
  }
  row.values[4] =
      pg_call([&] { return PointerGetDatum(cstring_to_text_with_len(ev.type, ev.type_len)); });
  if (ev.has_datums) {
    row.values[5] = ev.data_datum;
    row.values[6] = ev.metadata_datum;
    if (ev.metadata_datum == (Datum)0) row.nulls[6] = 'n';
  } else {
    if (ev.data) {
      row.values[5] = jsonb_datum(ev.data);
    } else {
      JsonbValue null_value;
      null_value.type = jbvNull;
      row.values[5] = jsonb_datum(&null_value);
    }
    if (ev.metadata) row.values[6] = jsonb_datum(ev.metadata);
    else row.nulls[6] = 'n';
  }
  return row;
}

// Inserts events[1..] with versions from `first_version` on and positions allocated in order.
// Returns insert_rows' result and sets the last position.
int insert_rest(StoreInfo &info, text *stream, const std::vector<EventInput> &events,
                int64 first_version, const Caller &caller, int64 &last_position) {
  int count = static_cast<int>(events.size() - 1);
  auto *rows = pg_call([&] { return static_cast<EventRow *>(palloc(sizeof(EventRow) * count)); });
  for (int i = 0; i < count; ++i) {
    last_position = allocate_position(info);
    rows[i] = event_row(events[i + 1], last_position, stream, first_version + i);
  }
  return insert_rows(info, rows, count, caller);
}

AppendResult append(text *stream, std::optional<int64> expected, std::vector<EventInput> &events,
                    text *key, Oid store, int64 fingerprint) {
  // The usual append (no key, a table of the standard shape) runs no SPI statement.
  SpiConnection spi(SpiConnection::Pin::kOnFirstStatement);
  enable_restored_inline_trigger(store);
  StoreInfo *info = lookup_store(store);
  require_privilege(store, ACL_INSERT, "append to");
  Caller caller;
  GetUserIdAndSecContext(&caller.user, &caller.security_context);
  AsExtensionOwner owner;
  // Before registering: a call waiting for its key's turn holds no reader back, and a replay
  // never registers.
  if (key != nullptr)
    if (auto duplicate = claim_key(store, key, stream, fingerprint)) return *duplicate;
  register_appender(*info);

  std::string stream_name;
  AppendResult r{};
  for (int attempt = 0;; ++attempt) {
    int64 actual = current_version(*info, stream);
    if (!expected_version_matches(expected, actual)) {
      if (stream_name.empty()) stream_name = pg_call([&] { return text_to_cstring(stream); });
      raise(version_conflict(stream_name, *expected, actual));
    }
    // The first event alone: when a concurrent append took its version and no version was
    // expected, nothing is written yet and the loop reads the version again.
    int64 position = allocate_position(*info);
    EventRow first = event_row(events[0], position, stream, actual + 1);
    if (insert_rows(*info, &first, 1, caller) != 1) {
      if (expected.has_value() || attempt >= kMaxAnyVersionRetries) {
        if (stream_name.empty()) stream_name = pg_call([&] { return text_to_cstring(stream); });
        int64 now_actual = current_version(*info, stream);
        raise(version_conflict(stream_name, expected.value_or(actual), now_actual));
      }
      continue;  // a concurrent append took the version first: read again
    }
    r.first_version = r.last_version = actual + 1;
    r.first_position = r.last_position = position;
    // The rest in one statement; a conflict there cannot be retried (rows are written).
    if (events.size() > 1) {
      std::size_t rest = events.size() - 1;
      int inserted = insert_rest(*info, stream, events, actual + 2, caller, r.last_position);
      r.last_version = actual + 1 + static_cast<int64>(rest);
      if (static_cast<std::size_t>(inserted) != rest) {
        if (stream_name.empty()) stream_name = pg_call([&] { return text_to_cstring(stream); });
        int64 now_actual = current_version(*info, stream);
        raise(version_conflict(stream_name, expected.value_or(actual), now_actual));
      }
    }
    break;
  }
  r.duplicate = false;

  if (key != nullptr) record_key(store, key, stream, fingerprint, r);
  return r;
}

struct CommonArgs {
  text *stream;
  std::optional<int64> expected;
  text *key;
  Oid store;
};

// Validates the arguments every append has: stream id, expected version, key, store.
CommonArgs common_args(FunctionCallInfo fcinfo, int key_arg, int store_arg) {
  CommonArgs a{};
  bool stream_null = PG_ARGISNULL(0);
  a.stream = stream_null ? nullptr : pg_call([&] { return PG_GETARG_TEXT_PP(0); });
  std::string_view sv = stream_null ? std::string_view()
                                    : std::string_view(VARDATA_ANY(a.stream), VARSIZE_ANY_EXHDR(a.stream));
  if (auto p = check_stream_id(stream_null, sv)) raise(*p);
  if (!PG_ARGISNULL(1)) {
    int64 e = PG_GETARG_INT64(1);
    if (auto p = check_expected_version_argument(e)) raise(*p);
    a.expected = e;
  }
  if (!PG_ARGISNULL(key_arg)) {
    a.key = pg_call([&] { return PG_GETARG_TEXT_PP(key_arg); });
    if (auto p = check_idempotency_key(std::string_view(VARDATA_ANY(a.key), VARSIZE_ANY_EXHDR(a.key))))
      raise(*p);
  }
  if (PG_ARGISNULL(store_arg))
    raise(sqlstate::kUnknownStore, "store must not be NULL", {},
          "Omit the argument to use es.events.");
  a.store = PG_GETARG_OID(store_arg);
  return a;
}

int64 fingerprint_of(text *stream, const std::vector<EventInput> &events) {
  Fingerprint fp;
  uint32 len = VARSIZE_ANY_EXHDR(stream);
  fp.add(&len, sizeof len);
  fp.add(VARDATA_ANY(stream), len);
  for (const EventInput &ev : events) {
    fp.add_tag(2);
    fp.add(&ev.type_len, sizeof ev.type_len);
    fp.add(ev.type, ev.type_len);
    if (ev.has_datums) {
      fingerprint_jsonb(fp, ev.data_datum, true);
      fingerprint_jsonb(fp, ev.metadata_datum, ev.metadata_datum != (Datum)0);
    } else {
      if (ev.data) fingerprint_jsonb(fp, jsonb_datum(ev.data), true);
      else fp.add_tag(3);
      fingerprint_jsonb(fp, ev.metadata ? jsonb_datum(ev.metadata) : (Datum)0, ev.metadata != nullptr);
    }
    fp.add_tag(ev.checked.has_id ? 1 : 0);
    if (ev.checked.has_id) fp.add(ev.checked.id.data(), ev.checked.id.size());
  }
  return static_cast<int64>(fp.value());
}

Datum return_result(FunctionCallInfo fcinfo, const AppendResult &r) {
  pg_call([&] {
    InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
    ReturnSetInfo *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    Datum values[5] = {Int64GetDatum(r.first_version), Int64GetDatum(r.last_version),
                       Int64GetDatum(r.first_position), Int64GetDatum(r.last_position),
                       BoolGetDatum(r.duplicate)};
    bool nulls[5] = {false, false, false, false, false};
    tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
  });
  return (Datum)0;
}

}  // namespace
}  // namespace es

extern "C" {

// es.append(stream_id, expected_version, events, idempotency_key, store)
PG_FUNCTION_INFO_V1(es_append);
Datum es_append(PG_FUNCTION_ARGS) {
  return es::guarded([&] {
    es::CommonArgs a = es::common_args(fcinfo, 3, 4);
    Jsonb *events = PG_ARGISNULL(2) ? nullptr : es::pg_call([&] { return PG_GETARG_JSONB_P(2); });
    std::vector<es::EventInput> parsed = es::parse_events(events);
    int64 fingerprint = a.key ? es::fingerprint_of(a.stream, parsed) : 0;
    es::AppendResult r = es::append(a.stream, a.expected, parsed, a.key, a.store, fingerprint);
    return es::return_result(fcinfo, r);
  });
}

// es.append_event(stream_id, expected_version, event_type, data, metadata, idempotency_key, store)
PG_FUNCTION_INFO_V1(es_append_event);
Datum es_append_event(PG_FUNCTION_ARGS) {
  return es::guarded([&] {
    es::CommonArgs a = es::common_args(fcinfo, 5, 6);
    std::vector<es::EventInput> one(1);
    es::EventInput &ev = one[0];
    es::EventShape shape;
    shape.element = es::JsonKind::Object;
    text *type = nullptr;
    if (!PG_ARGISNULL(2)) {
      type = es::pg_call([&] { return PG_GETARG_TEXT_PP(2); });
      shape.type_kind = es::JsonKind::String;
      shape.type = std::string_view(VARDATA_ANY(type), VARSIZE_ANY_EXHDR(type));
      ev.type = VARDATA_ANY(type);
      ev.type_len = static_cast<int>(VARSIZE_ANY_EXHDR(type));
    }
    ev.has_datums = true;
    ev.data = ev.metadata = nullptr;
    if (PG_ARGISNULL(3)) {
      ev.data_datum = es::pg_call([] { return DirectFunctionCall1(jsonb_in, CStringGetDatum("null")); });
    } else {
      ev.data_datum = PG_GETARG_DATUM(3);
    }
    ev.metadata_datum = (Datum)0;
    if (!PG_ARGISNULL(4)) {
      Jsonb *metadata = es::pg_call([&] { return PG_GETARG_JSONB_P(4); });
      if (JB_ROOT_IS_SCALAR(metadata)) {
        JsonbValue scalar;
        es::pg_call([&] { JsonbExtractScalar(&metadata->root, &scalar); });
        shape.metadata_kind = es::kind_of(&scalar);
      } else {
        shape.metadata_kind = JB_ROOT_IS_OBJECT(metadata) ? es::JsonKind::Object : es::JsonKind::Array;
      }
      if (shape.metadata_kind != es::JsonKind::Null) ev.metadata_datum = JsonbPGetDatum(metadata);
    }
    if (auto p = es::check_event(1, shape, ev.checked)) es::raise(*p);
    int64 fingerprint = a.key ? es::fingerprint_of(a.stream, one) : 0;
    es::AppendResult r = es::append(a.stream, a.expected, one, a.key, a.store, fingerprint);
    return es::return_result(fcinfo, r);
  });
}

}
