// The transactional outbox's commit-safe message order (API.md §5, docs/outbox.md).
// Message ids come from one sequence and commit in any order, so a consumer cursor that moves
// past id n must know that no id below n can still appear. Publishers register with the same
// lock-table horizon as appenders (horizon.cpp), keyed by the message table's oid; claims and
// the relay read only ids at or below the horizon, with a snapshot taken afterwards.
#include <algorithm>

#include "outbox.hpp"

#include "horizon.hpp"

namespace es {
namespace {

// The outbox as a "store" for the horizon: the message table and its id sequence.
StoreInfo outbox_order() {
  StoreInfo info{};
  pg_call([&] {
    Oid nsp = get_namespace_oid("es", false);
    info.store = get_relname_relid("_outbox_messages", nsp);
    info.position_seq = get_relname_relid("_outbox_messages_id_seq", nsp);
    if (!OidIsValid(info.store) || !OidIsValid(info.position_seq))
      elog(ERROR, "pg_eventstore: outbox tables are missing");
  });
  info.valid = true;
  return info;
}

// Claim locks of a consumer group (transaction-scoped, LOCKTAG_USERLOCK: database, group,
// part, kClaimLockFlag): part 0..kShards-1 lets one claim at a time take in new messages of
// that shard, part kShards one at a time sweep expired leases. Horizon registrations carry
// the 0x8000 flag, the relay's lock 0x4000, so none of them meet.
constexpr uint16 kClaimLockFlag = 0x2000;

// The relay's high-water mark: ids up to it were reported. Backend memory only: the relay is
// one long-lived backend, and a lost mark costs at most one coalesced doorbell.
int64 relay_mark = -1;

}  // namespace

int64 outbox_safe_horizon() {
  StoreInfo info = outbox_order();
  return safe_horizon(info);
}

void outbox_relay_window(int64 &after, int64 &upto) {
  StoreInfo info = outbox_order();
  // Ids at or below the mark were reported: while the sequence stays there, no lock table copy.
  // No WAL flush: a doorbell need not survive a crash (claims compute their own horizon).
  int64 horizon = safe_horizon(info, relay_mark, false);
  constexpr int64 kRelayFirstWindow = 1000;
  after = relay_mark < 0 ? std::max<int64>(0, horizon - kRelayFirstWindow) : relay_mark;
  if (horizon > relay_mark) relay_mark = horizon;
  upto = horizon;
}

bool outbox_claim_lock(int32 group_id, int32 part, bool wait) {
  return pg_call([&] {
    LOCKTAG tag;
    tag.locktag_field1 = MyDatabaseId;
    tag.locktag_field2 = static_cast<uint32>(group_id);
    tag.locktag_field3 = static_cast<uint32>(part);
    tag.locktag_field4 = kClaimLockFlag;
    tag.locktag_type = LOCKTAG_USERLOCK;
    tag.locktag_lockmethodid = USER_LOCKMETHOD;
    return LockAcquire(&tag, ExclusiveLock, false, !wait) != LOCKACQUIRE_NOT_AVAIL;
  });
}

}  // namespace es

extern "C" {

// es._outbox_next_id(): registers the transaction as a publisher, then allocates an id.
PG_FUNCTION_INFO_V1(es_outbox_next_id);
Datum es_outbox_next_id(PG_FUNCTION_ARGS) {
  return es::guarded([&] {
    es::StoreInfo info = es::outbox_order();
    es::register_appender(info);
    return Int64GetDatum(es::allocate_position(info));
  });
}

// es._outbox_horizon(): every message id at or below it is committed or never will be.
PG_FUNCTION_INFO_V1(es_outbox_horizon);
Datum es_outbox_horizon(PG_FUNCTION_ARGS) {
  return es::guarded([&] { return Int64GetDatum(es::outbox_safe_horizon()); });
}

// es._outbox_lock(group_id int, part int, wait boolean) -> boolean: takes a claim lock of the
// group for the transaction; without wait, returns false when another transaction holds it.
PG_FUNCTION_INFO_V1(es_outbox_lock);
Datum es_outbox_lock(PG_FUNCTION_ARGS) {
  return es::guarded([&] {
    if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
      es::pg_call([] { elog(ERROR, "pg_eventstore: _outbox_lock arguments must not be NULL"); });
    return BoolGetDatum(
        es::outbox_claim_lock(PG_GETARG_INT32(0), PG_GETARG_INT32(1), PG_GETARG_BOOL(2)));
  });
}

// es._outbox_relay_window(OUT after_id, OUT upto_id): the ids that became safe since the
// previous call in this backend. The first call also covers the last kRelayFirstWindow ids, so
// the publish that started a fresh relay is announced too (a doorbell too many is harmless).
PG_FUNCTION_INFO_V1(es_outbox_relay_window);
Datum es_outbox_relay_window(PG_FUNCTION_ARGS) {
  return es::guarded([&] {
    int64 after = 0, horizon = 0;
    es::outbox_relay_window(after, horizon);
    return es::pg_call([&] {
      TupleDesc desc;
      if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE)
        elog(ERROR, "pg_eventstore: _outbox_relay_window must return a record");
      desc = BlessTupleDesc(desc);
      Datum values[2] = {Int64GetDatum(after), Int64GetDatum(horizon)};
      bool nulls[2] = {false, false};
      return HeapTupleGetDatum(heap_form_tuple(desc, values, nulls));
    });
  });
}

}
