// es.read_all / es.head_position: the commit-safe global order (API.md §3).
#include "horizon.hpp"
#include "runtime.hpp"

#include "../core/limits.hpp"

namespace es {
namespace {

// Reads the page with a snapshot taken now (after the sequence or the horizon was read); with
// `run`, only as far as its positions run on without a gap (see execute_into_result).
void read_page(FunctionCallInfo fcinfo, const StoreInfo &info, const Datum *args,
               const bool *nulls, PositionRun *run = nullptr) {
  static const Oid types[5] = {INT8OID, INT8OID, TEXTARRAYOID, TEXTOID, INT8OID};
  pin_search_path();
  pg_call([] { PushActiveSnapshot(GetLatestSnapshot()); });
  execute_into_result(fcinfo, info.read_all, 5, types, args, nulls, run);
  pg_call([] { PopActiveSnapshot(); });
}

// The unfiltered page without the safe horizon, as far as it is gap-free. Positions are unique
// (the store's primary key) and committed rows are never deleted: if a snapshot sees a row at
// every position after+1 .. after+k, no transaction can ever add one at or below after+k, so
// those rows are final whatever the horizon (and an empty page is always safe). Bounded by the
// sequence's last value, made durable first, as the horizon is. Returns true when the result
// is complete (also when nothing was allocated after `after`: no SPI statement); false when the
// page has a gap (an in-flight or rolled-back append): the result then holds the rows before
// it, up to run.next - 1, and the caller reads on from there up to the horizon.
bool read_gap_free_page(FunctionCallInfo fcinfo, const StoreInfo &info, int64 after,
                        Datum *args, const bool *nulls, PositionRun &run) {
  int64 allocated = durable_sequence_value(info, after);
  if (allocated <= after) return true;
  args[1] = Int64GetDatum(allocated);
  run = PositionRun{after + 1, false};
  read_page(fcinfo, info, args, nulls, &run);
  return !run.broken;
}

}  // namespace
}  // namespace es

extern "C" {

// es.read_all(after_position, max_count, event_types, stream_prefix, store)
PG_FUNCTION_INFO_V1(es_read_all);
Datum es_read_all(PG_FUNCTION_ARGS) {
  return es::guarded([&] {
    int64 after = PG_ARGISNULL(0) ? 0 : PG_GETARG_INT64(0);
    int64 max_count = PG_ARGISNULL(1) ? 1000 : PG_GETARG_INT32(1);
    es::check_non_negative("max_count", max_count);
    if (PG_ARGISNULL(4)) es::raise(es::sqlstate::kUnknownStore, "store must not be NULL");
    Oid store = PG_GETARG_OID(4);
    if (IsolationIsSerializable())
      es::raise(es::sqlstate::kSerializableRead,
                "es.read_all cannot run in a SERIALIZABLE transaction",
                "The global order is read with a snapshot taken after its safe horizon, which "
                "a serializable transaction may not use.",
                "Read in READ COMMITTED or REPEATABLE READ.");
    es::pg_call([&] { InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC); });
    // A tailing reader's poll that finds nothing new runs no SPI statement.
    es::SpiConnection spi(es::SpiConnection::Pin::kOnFirstStatement);
    es::StoreInfo *info = es::lookup_store(store);
    es::require_privilege(store, ACL_SELECT, "read");
    Datum args[5] = {};
    bool nulls[5] = {false, false, false, false, false};
    args[0] = Int64GetDatum(after);
    if (PG_ARGISNULL(2)) nulls[2] = true; else args[2] = PG_GETARG_DATUM(2);
    if (PG_ARGISNULL(3)) nulls[3] = true; else args[3] = PG_GETARG_DATUM(3);
    args[4] = Int64GetDatum(max_count);
    // Unfiltered: first the page as it is, as far as it is gap-free (no lock-table scan). Not
    // for a filtered page (its positions have gaps by design), nor in a transaction that
    // appended to the store (its own uncommitted rows are visible to it and would fill gaps).
    // Only from a position this backend knows to be final (a safe horizon it computed, or the
    // end of a gap-free page read on from such a position): a caller's after_position above an
    // append still in flight must not be read past it (API.md §3: no position is returned while
    // a smaller one could still become visible, whatever after_position says).
    if (PG_ARGISNULL(2) && PG_ARGISNULL(3) && max_count > 0 && after <= info->settled &&
        !es::horizon_registered(store)) {
      es::PositionRun run{after + 1, false};
      bool complete = es::read_gap_free_page(fcinfo, *info, after, args, nulls, run);
      if (run.next - 1 > info->settled) info->settled = run.next - 1;
      if (complete) return (Datum)0;
      // A gap: the rows before it are in the result (final); the rest of the page comes from
      // the horizon path, after them.
      max_count -= run.next - 1 - after;
      after = run.next - 1;
      args[0] = Int64GetDatum(after);
      args[4] = Int64GetDatum(max_count);
    }
    int64 horizon = es::safe_horizon(*info, after);
    // (At or below `after`, safe_horizon may have returned the sequence's value unchecked.)
    if (horizon > after && horizon > info->settled) info->settled = horizon;
    if (max_count == 0 || horizon <= after) return (Datum)0;
    args[1] = Int64GetDatum(horizon);
    es::read_page(fcinfo, *info, args, nulls);
    return (Datum)0;
  });
}

// es.head_position(store): the highest position safe to read.
PG_FUNCTION_INFO_V1(es_head_position);
Datum es_head_position(PG_FUNCTION_ARGS) {
  return es::guarded([&] {
    if (PG_ARGISNULL(0)) es::raise(es::sqlstate::kUnknownStore, "store must not be NULL");
    Oid store = PG_GETARG_OID(0);
    // Runs no SPI statement unless the store lookup misses its cache (which pins).
    es::SpiConnection spi(es::SpiConnection::Pin::kOnFirstStatement);
    es::StoreInfo *info = es::lookup_store(store);
    es::require_privilege(store, ACL_SELECT, "read");
    int64 horizon = es::safe_horizon(*info);
    if (horizon > info->settled) info->settled = horizon;
    return Int64GetDatum(horizon);
  });
}

}
