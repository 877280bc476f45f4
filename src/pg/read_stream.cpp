// es.read_stream / es.read_stream_backward: one stream's events (API.md §3), read as the caller.
// Same checks and errors as the PL/pgSQL versions they replace (0.2.0): the store's kept plan
// runs with the caller's identity, so table and column privileges and row-level security apply
// exactly as to a plain SELECT, and the schema's USAGE is checked as parsing the query would.
#include "runtime.hpp"

#include "../core/limits.hpp"

namespace es {
namespace {

enum class Direction { kForward, kBackward };

// The arguments both reads share, checked in the order es._check_read_args checked them.
struct StreamRead {
  Datum stream_id;
  int64 from_version;
  bool has_max_count;
  int64 max_count;
  Oid store;
};

StreamRead check_arguments(FunctionCallInfo fcinfo, Direction direction) {
  StreamRead read{};
  if (PG_ARGISNULL(0) || VARSIZE_ANY_EXHDR(PG_GETARG_DATUM(0)) == 0)
    raise(sqlstate::kInvalidStreamId, "stream id must not be NULL or empty");
  read.stream_id = PG_GETARG_DATUM(0);
  if (PG_ARGISNULL(1)) {
    read.from_version = direction == Direction::kForward ? 1 : PG_INT64_MAX;
  } else {
    read.from_version = PG_GETARG_INT64(1);
    if (read.from_version < 1)
      raise(sqlstate::kInvalidArgument, "from_version must be 1 or more",
            "from_version is " + std::to_string(read.from_version) + ".");
  }
  read.has_max_count = !PG_ARGISNULL(2);
  if (read.has_max_count) {
    read.max_count = PG_GETARG_INT32(2);
    check_non_negative("max_count", read.max_count);
  }
  if (PG_ARGISNULL(3))
    raise(sqlstate::kUnknownStore, "store must not be NULL", {},
          "Omit the argument to use es.events.");
  read.store = PG_GETARG_OID(3);
  return read;
}

// The store's stream query in one direction, prepared on first use and kept with the store.
SPIPlanPtr stream_plan(StoreInfo &info, Direction direction) {
  SPIPlanPtr &plan =
      direction == Direction::kForward ? info.read_stream_forward : info.read_stream_backward;
  if (plan != nullptr) return plan;
  const char *table = qualified_name(info.store);
  std::string sql =
      std::string("SELECT global_position, stream_id, stream_version, event_id, event_type,"
                  " data, metadata, recorded_at FROM ") +
      table +
      (direction == Direction::kForward
           ? " WHERE stream_id = $1 AND stream_version >= $2 ORDER BY stream_version LIMIT $3"
           : " WHERE stream_id = $1 AND stream_version <= $2"
             " ORDER BY stream_version DESC LIMIT $3");
  Oid types[3] = {TEXTOID, INT8OID, INT8OID};
  // Always the generic plan, like read_all's (runtime.cpp): at 10M events the plan cache
  // preferred a custom plan, i.e. planning every call.
  plan = prepare_kept(sql.c_str(), 3, types, CURSOR_OPT_GENERIC_PLAN);
  return plan;
}

// Parsing `SELECT ... FROM schema.table` as the caller needs USAGE on the schema; the kept plan
// names the table by OID, so check it here with the parser's error.
void require_schema_usage(Oid store) {
  pg_call([&] {
    Oid nsp = get_rel_namespace(store);
    if (pg_namespace_aclcheck(nsp, GetUserId(), ACL_USAGE) != ACLCHECK_OK)
      aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_SCHEMA, get_namespace_name(nsp));
  });
}

// Runs the stream query as the caller, with the calling query's snapshot (as a STABLE
// function reads), into the SRF's result.
Datum read_stream(FunctionCallInfo fcinfo, Direction direction) {
  StreamRead read = check_arguments(fcinfo, direction);
  SpiConnection spi;
  StoreInfo *info = lookup_store(read.store);
  require_schema_usage(read.store);
  SPIPlanPtr plan = stream_plan(*info, direction);
  pg_call([&] { InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC); });
  static const Oid types[3] = {TEXTOID, INT8OID, INT8OID};
  const Datum values[3] = {read.stream_id, Int64GetDatum(read.from_version),
                           Int64GetDatum(read.max_count)};
  const bool nulls[3] = {false, false, !read.has_max_count};
  execute_into_result(fcinfo, plan, 3, types, values, nulls);
  return (Datum)0;
}

}  // namespace
}  // namespace es

extern "C" {

// es.read_stream(stream_id, from_version, max_count, store)
PG_FUNCTION_INFO_V1(es_read_stream);
Datum es_read_stream(PG_FUNCTION_ARGS) {
  return es::guarded([&] { return es::read_stream(fcinfo, es::Direction::kForward); });
}

// es.read_stream_backward(stream_id, from_version, max_count, store)
PG_FUNCTION_INFO_V1(es_read_stream_backward);
Datum es_read_stream_backward(PG_FUNCTION_ARGS) {
  return es::guarded([&] { return es::read_stream(fcinfo, es::Direction::kBackward); });
}

}
