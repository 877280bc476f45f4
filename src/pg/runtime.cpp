#include "runtime.hpp"

#include <stdexcept>

#include "../core/limits.hpp"

extern "C" {
#include "executor/tstoreReceiver.h"
#include "nodes/params.h"
}

namespace es {

namespace {

HTAB *store_cache = nullptr;
Oid append_store = InvalidOid;  // the store es.append is inserting into now
int append_trigger_depth = 0;   // pg_trigger_depth() where that INSERT runs
int rewrite_depth = 0;
CallerFrame caller_frame = {false, InvalidOid, 0};
Oid owner_namespace = InvalidOid;
int spi_depth = 0;                     // nesting of SpiConnection
char *outer_search_path = nullptr;     // the caller's search_path (TopMemoryContext)
SpiConnection *innermost_spi = nullptr;  // the innermost open SpiConnection

// Opens a GUC nest level with search_path set to `path` (AtEOXact_GUC closes it).
int push_search_path(const char *path) {
  int nest = NewGUCNestLevel();
  set_config_option("search_path", path, PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0,
                    false);
  return nest;
}
Oid owner_role = InvalidOid;

void invalidate_store(Datum, Oid relid) {
  if (store_cache == nullptr) return;
  HASH_SEQ_STATUS status;
  hash_seq_init(&status, store_cache);
  while (auto *entry = static_cast<StoreInfo *>(hash_seq_search(&status)))
    if (relid == InvalidOid || entry->store == relid || entry->position_seq == relid)
      entry->valid = false;
}

void forget_plans(StoreInfo *info) {
  for (SPIPlanPtr *plan :
       {&info->last_version, &info->insert_event, &info->insert_batch, &info->read_all,
        &info->read_stream_forward, &info->read_stream_backward}) {
    if (*plan) SPI_freeplan(*plan);
    *plan = nullptr;
  }
}

Oid extension_owner() {
  Oid nsp = get_namespace_oid("es", false);
  if (nsp != owner_namespace) {
    HeapTuple tup = SearchSysCache1(NAMESPACEOID, ObjectIdGetDatum(nsp));
    if (!HeapTupleIsValid(tup)) elog(ERROR, "cache lookup failed for schema es");
    owner_role = reinterpret_cast<Form_pg_namespace>(GETSTRUCT(tup))->nspowner;
    ReleaseSysCache(tup);
    owner_namespace = nsp;
  }
  return owner_role;
}

}  // namespace

const char *qualified_name(Oid rel) {
  return pg_call([&]() -> const char * {
    char *nsp = get_namespace_name(get_rel_namespace(rel));
    char *name = get_rel_name(rel);
    if (nsp == nullptr || name == nullptr) return nullptr;
    return quote_qualified_identifier(nsp, name);
  });
}

SPIPlanPtr prepare_kept(const char *sql, int nargs, Oid *types, int cursor_options) {
  SPIPlanPtr plan = prepare_fixed(sql, nargs, types, cursor_options);
  pg_call([&] { SPI_keepplan(plan); });
  return plan;
}

SPIPlanPtr prepare_fixed(const char *sql, int nargs, Oid *types, int cursor_options) {
  return pg_call([&]() -> SPIPlanPtr {
    int nest = NewGUCNestLevel();
    set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION,
                      GUC_ACTION_SAVE, true, 0, false);
    SPIPlanPtr plan = SPI_prepare_cursor(sql, nargs, types, cursor_options);
    if (plan == nullptr)
      elog(ERROR, "pg_eventstore: SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
    AtEOXact_GUC(true, nest);
    return plan;
  });
}

StoreInfo *lookup_store(Oid store) {
  if (store_cache == nullptr) {
    pg_call([&] {
      HASHCTL ctl;
      memset(&ctl, 0, sizeof ctl);
      ctl.keysize = sizeof(Oid);
      ctl.entrysize = sizeof(StoreInfo);
      store_cache = hash_create("pg_eventstore stores", 16, &ctl, HASH_ELEM | HASH_BLOBS);
      CacheRegisterRelcacheCallback(invalidate_store, 0);
    });
  }
  bool found = false;
  auto *info = pg_call([&] {
    return static_cast<StoreInfo *>(hash_search(store_cache, &store, HASH_ENTER, &found));
  });
  if (found && info->valid) return info;
  if (!found) {
    info->last_version = info->insert_event = info->insert_batch = info->read_all = nullptr;
    info->read_stream_forward = info->read_stream_backward = nullptr;
  } else {
    pg_call([&] { forget_plans(info); });
  }
  info->valid = false;
  info->direct_state = 0;
  info->settled = 0;

  static SPIPlanPtr registry_plan = nullptr;
  if (registry_plan == nullptr) {
    Oid types[1] = {OIDOID};
    registry_plan = prepare_kept(
        "SELECT position_seq::pg_catalog.oid FROM es._stores WHERE store::pg_catalog.oid = $1",
        1, types);
  }
  Oid seq = InvalidOid;
  pin_search_path();
  {
    AsExtensionOwner owner;
    pg_call([&] {
      Datum values[1] = {ObjectIdGetDatum(store)};
      int rc = SPI_execute_plan(registry_plan, values, nullptr, true, 1);
      if (rc != SPI_OK_SELECT) elog(ERROR, "pg_eventstore: store lookup failed");
      if (SPI_processed == 1) {
        bool isnull;
        seq = DatumGetObjectId(
            SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
      }
    });
  }
  if (!OidIsValid(seq)) {
    const char *name = qualified_name(store);
    raise(sqlstate::kUnknownStore,
          std::string("\"") + (name ? name : std::to_string(store)) + "\" is not an event table",
          {}, "Create event tables with es.create_event_table(); es.events is the default store.");
  }
  info->position_seq = seq;

  const char *table = qualified_name(store);
  std::string t(table);
  {
    Oid types[1] = {TEXTOID};
    info->last_version = prepare_kept(
        ("SELECT stream_version FROM " + t +
         " WHERE stream_id = $1 ORDER BY stream_version DESC LIMIT 1").c_str(),
        1, types);
  }
  {
    Oid types[7] = {INT8OID, TEXTOID, INT8OID, UUIDOID, TEXTOID, JSONBOID, JSONBOID};
    info->insert_event = prepare_kept(
        ("INSERT INTO " + t +
         " (global_position, stream_id, stream_version, event_id, event_type, data, metadata)"
         " VALUES ($1, $2, $3, $4, $5, $6, $7)"
         " ON CONFLICT DO NOTHING")
            .c_str(),
        7, types);
  }
  {
    // One statement for the rest of a multi-event append: executor start-up, trigger set-up
    // and the ON CONFLICT arbiters are paid once per batch instead of once per event. No
    // conflict target, like insert_event; RETURNING tells which rows went in.
    Oid types[7] = {INT8ARRAYOID, TEXTOID, INT8ARRAYOID, UUIDARRAYOID, TEXTARRAYOID,
                    JSONBARRAYOID, JSONBARRAYOID};
    info->insert_batch = prepare_kept(
        ("INSERT INTO " + t +
         " (global_position, stream_id, stream_version, event_id, event_type, data, metadata)"
         " SELECT e.global_position, $2, e.stream_version, e.event_id, e.event_type, e.data,"
         " e.metadata FROM unnest($1, $3, $4, $5, $6, $7)"
         " AS e (global_position, stream_version, event_id, event_type, data, metadata)"
         " ON CONFLICT DO NOTHING RETURNING global_position")
            .c_str(),
        7, types);
  }
  {
    Oid types[5] = {INT8OID, INT8OID, TEXTARRAYOID, TEXTOID, INT8OID};
    // Always the generic plan (see execute_into_result): with custom plans, chosen by the plan
    // cache once the store is large, every page was planned anew (~170,000 instructions at
    // 10M events, bench/RESULTS.md "issue 7").
    info->read_all = prepare_kept(
        ("SELECT global_position, stream_id, stream_version, event_id, event_type, data,"
         " metadata, recorded_at FROM " + t +
         " WHERE global_position > $1 AND global_position <= $2"
         " AND ($3 IS NULL OR event_type = ANY ($3))"
         " AND ($4 IS NULL OR starts_with(stream_id, $4))"
         " ORDER BY global_position LIMIT $5")
            .c_str(),
        5, types, CURSOR_OPT_GENERIC_PLAN);
  }
  info->valid = true;
  return info;
}

AsExtensionOwner::AsExtensionOwner() {
  GetUserIdAndSecContext(&saved_user_, &saved_context_);
  Oid owner = pg_call([] { return extension_owner(); });
  SetUserIdAndSecContext(owner, saved_context_ | SECURITY_LOCAL_USERID_CHANGE);
  saved_frame_ = caller_frame;
  if (!caller_frame.owner_active) caller_frame = CallerFrame{true, saved_user_, saved_context_};
}

AsExtensionOwner::~AsExtensionOwner() {
  caller_frame = saved_frame_;
  SetUserIdAndSecContext(saved_user_, saved_context_);
}

AsCaller::AsCaller() {
  guc_nest_ = pg_call([] {
    return outer_search_path ? push_search_path(outer_search_path) : NewGUCNestLevel();
  });
  GetUserIdAndSecContext(&saved_user_, &saved_context_);
  saved_frame_ = caller_frame;
  int context = saved_context_;
  user_ = saved_user_;
  if (caller_frame.owner_active) {
    user_ = caller_frame.user;
    context = caller_frame.context;
  }
  caller_frame.owner_active = false;
  SetUserIdAndSecContext(user_, context);
}

AsCaller::~AsCaller() {
  caller_frame = saved_frame_;
  SetUserIdAndSecContext(saved_user_, saved_context_);
  // On the error path the (sub)transaction abort pops the GUC nest level.
  if (std::uncaught_exceptions() == 0) AtEOXact_GUC(true, guc_nest_);
}

AsUser::AsUser(Oid user, int security_context) {
  GetUserIdAndSecContext(&saved_user_, &saved_context_);
  SetUserIdAndSecContext(user, security_context);
}

AsUser::~AsUser() { SetUserIdAndSecContext(saved_user_, saved_context_); }

static int trigger_depth() {
  LOCAL_FCINFO(fcinfo, 0);
  InitFunctionCallInfoData(*fcinfo, nullptr, 0, InvalidOid, nullptr, nullptr);
  return DatumGetInt32(pg_trigger_depth(fcinfo));
}

AppendInsert::AppendInsert(Oid store) : saved_store_(append_store), saved_depth_(append_trigger_depth) {
  append_store = store;
  append_trigger_depth = trigger_depth();
}

AppendInsert::~AppendInsert() {
  append_store = saved_store_;
  append_trigger_depth = saved_depth_;
}

bool is_append_insert(Oid rel, bool from_trigger) {
  return OidIsValid(append_store) && rel == append_store &&
         trigger_depth() == append_trigger_depth + (from_trigger ? 1 : 0);
}

RewriteScope::RewriteScope() { ++rewrite_depth; }
RewriteScope::~RewriteScope() { --rewrite_depth; }
bool rewrite_allowed() { return rewrite_depth > 0; }

// Called at transaction end: no scope survives an aborted statement.
void reset_scopes() {
  append_store = InvalidOid;
  append_trigger_depth = 0;
  rewrite_depth = 0;
  caller_frame = CallerFrame{false, InvalidOid, 0};
  spi_depth = 0;
  innermost_spi = nullptr;
  if (outer_search_path) pfree(outer_search_path);
  outer_search_path = nullptr;
}

SpiConnection::SpiConnection(Pin pin) : guc_nest_(0), enclosing_(innermost_spi) {
  pg_call([] {
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "pg_eventstore: SPI_connect failed");
  });
  innermost_spi = this;
  ++spi_depth;
  if (pin == Pin::kNow) this->pin();
}

void SpiConnection::pin() {
  if (guc_nest_ != 0) return;
  guc_nest_ = pg_call([] {
    // The first pin records the caller's path: until then nothing changed it, whatever the
    // nesting (an enclosing connection that pinned recorded it already).
    if (outer_search_path == nullptr)
      outer_search_path = MemoryContextStrdup(TopMemoryContext, namespace_search_path);
    return push_search_path("pg_catalog, pg_temp");
  });
}

void pin_search_path() {
  if (innermost_spi != nullptr) innermost_spi->pin();
}

// On the error path the transaction is about to abort, and abort cleans SPI and the GUC nest
// level up; calling into SPI with a half-unwound executor is exactly what we must not do.
SpiConnection::~SpiConnection() {
  innermost_spi = enclosing_;
  --spi_depth;
  if (std::uncaught_exceptions() == 0) {
    if (guc_nest_ != 0) AtEOXact_GUC(true, guc_nest_);
    SPI_finish();
  }
  if (spi_depth == 0 && outer_search_path) {
    pfree(outer_search_path);
    outer_search_path = nullptr;
  }
}

const char *caller_search_path() { return outer_search_path; }

namespace {

// A DestReceiver in front of the tuplestore's that checks the run of positions (PositionRun).
// Plain C callbacks run by the executor: they never throw.
struct RunReceiver {
  DestReceiver pub;  // first: the executor sees a DestReceiver
  DestReceiver *store;
  PositionRun *run;
};

bool run_receive(TupleTableSlot *slot, DestReceiver *self) {
  auto *receiver = reinterpret_cast<RunReceiver *>(self);
  bool isnull = false;
  Datum position = slot_getattr(slot, 1, &isnull);
  if (isnull || DatumGetInt64(position) != receiver->run->next) {
    receiver->run->broken = true;
    return false;  // stops the scan: the page goes no further than its first gap
  }
  ++receiver->run->next;
  return receiver->store->receiveSlot(slot, receiver->store);
}

void run_startup(DestReceiver *self, int operation, TupleDesc desc) {
  auto *receiver = reinterpret_cast<RunReceiver *>(self);
  receiver->store->rStartup(receiver->store, operation, desc);
}

void run_shutdown(DestReceiver *self) {
  auto *receiver = reinterpret_cast<RunReceiver *>(self);
  receiver->store->rShutdown(receiver->store);
}

void run_destroy(DestReceiver *self) {
  auto *receiver = reinterpret_cast<RunReceiver *>(self);
  receiver->store->rDestroy(receiver->store);
  pfree(receiver);
}

}  // namespace

void execute_into_result(FunctionCallInfo fcinfo, SPIPlanPtr plan, int nargs, const Oid *types,
                         const Datum *values, const bool *nulls, PositionRun *run) {
  auto *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
  if (innermost_spi == nullptr) throw std::logic_error("execute_into_result outside an SpiConnection");
  pin_search_path();
  pg_call([&] {
    // The read plans are generic and must be the ordered index range scan at every size: with
    // a small or never-analyzed table's statistics the planner prefers a sequential or bitmap
    // scan and a sort, which the kept plan would go on using as the table grows. Every other
    // plan for these queries sorts, so enable_sort = off rules them all out; a generic plan is
    // (re)built inside SPI_execute_plan_extended, so the setting is in force around it, in the
    // GUC nest level of the pinned connection (popped when it closes, or by the abort).
    set_config_option("enable_sort", "off", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true,
                      0, false);
    ParamListInfo params = makeParamList(nargs);
    params->numParams = nargs;
    for (int i = 0; i < nargs; ++i) {
      params->params[i].value = values[i];
      params->params[i].isnull = nulls[i];
      params->params[i].pflags = PARAM_FLAG_CONST;
      params->params[i].ptype = types[i];
    }
    DestReceiver *dest = CreateDestReceiver(DestTuplestore);
    SetTuplestoreDestReceiverParams(dest, rsinfo->setResult,
                                    rsinfo->econtext->ecxt_per_query_memory, false,
                                    rsinfo->setDesc,
                                    "structure of query does not match function result type");
    if (run != nullptr) {
      auto *receiver = static_cast<RunReceiver *>(palloc0(sizeof(RunReceiver)));
      receiver->pub.receiveSlot = run_receive;
      receiver->pub.rStartup = run_startup;
      receiver->pub.rShutdown = run_shutdown;
      receiver->pub.rDestroy = run_destroy;
      receiver->pub.mydest = dest->mydest;  // not DestNone: SPI reports SPI_OK_SELECT
      receiver->store = dest;
      receiver->run = run;
      run->broken = false;
      dest = &receiver->pub;
    }
    SPIExecuteOptions options;
    memset(&options, 0, sizeof options);
    options.params = params;
    options.read_only = true;  // under the active snapshot, as it is
    options.dest = dest;
    int rc = SPI_execute_plan_extended(plan, &options);
    if (rc != SPI_OK_SELECT)
      elog(ERROR, "pg_eventstore: read failed: %s", SPI_result_code_string(rc));
    dest->rDestroy(dest);
  });
}

void check_non_negative(const char *argument, int64 value) {
  if (value < 0)
    raise(sqlstate::kInvalidArgument, std::string(argument) + " must not be negative",
          std::string(argument) + " is " + std::to_string(value) + ".");
}

void require_privilege(Oid store, AclMode mode, const char *what) {
  AclResult acl = pg_call([&] { return pg_class_aclcheck(store, GetUserId(), mode); });
  if (acl != ACLCHECK_OK) {
    const char *name = qualified_name(store);
    Problem p{"42501",
              std::string("permission denied to ") + what + " event table " +
                  (name ? name : "?"),
              {},
              "Grant the role es_writer/es_reader, or the table privilege, to the caller."};
    raise(std::move(p));
  }
}

}  // namespace es
