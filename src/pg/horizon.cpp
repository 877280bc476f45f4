#include "horizon.hpp"

#include "../core/limits.hpp"

extern "C" {
#include "access/relation.h"
#include "storage/bufmgr.h"
}

namespace es {

namespace {

// Registration locks live in the lock manager (shared memory, no preload needed), tagged
// LOCKTAG_USERLOCK so they never meet pg_advisory_lock keys:
//   field1 database, field2 store, field3 low 32 bits of the position,
//   field4 0x8000 | bits 32..46 of the position.
constexpr uint16 kRegistrationFlag = 0x8000;
constexpr int64 kMaxRegistrablePosition = (int64{1} << 47) - 1;

void set_registration_tag(LOCKTAG &tag, Oid store, int64 position) {
  tag.locktag_field1 = MyDatabaseId;
  tag.locktag_field2 = store;
  tag.locktag_field3 = static_cast<uint32>(position & 0xFFFFFFFF);
  tag.locktag_field4 = static_cast<uint16>(kRegistrationFlag | ((position >> 32) & 0x7FFF));
  tag.locktag_type = LOCKTAG_USERLOCK;
  tag.locktag_lockmethodid = USER_LOCKMETHOD;
}

// The registrations this transaction holds, with the subtransaction that took each.
struct Registration {
  Oid store;
  int64 position;
  SubTransactionId sub;
};
Registration *registrations = nullptr;
int registration_count = 0;
int registration_capacity = 0;

int64 lowest_registration(Oid store) {
  int64 lowest = 0;
  for (int i = 0; i < registration_count; ++i)
    if (registrations[i].store == store && (lowest == 0 || registrations[i].position < lowest))
      lowest = registrations[i].position;
  return lowest;
}

void take_registration(Oid store, int64 position) {
  if (position > kMaxRegistrablePosition)
    raise(sqlstate::kPositionLimit, "global position limit reached",
          "Positions above " + std::to_string(kMaxRegistrablePosition) +
              " cannot be registered in the global order.");
  pg_call([&] {
    LOCKTAG tag;
    set_registration_tag(tag, store, position);
    (void)LockAcquire(&tag, ShareLock, false, false);
    if (registration_count == registration_capacity) {
      int capacity = registration_capacity == 0 ? 8 : registration_capacity * 2;
      auto bytes = sizeof(Registration) * capacity;
      registrations = static_cast<Registration *>(
          registrations == nullptr ? MemoryContextAlloc(TopMemoryContext, bytes)
                                   : repalloc(registrations, bytes));
      registration_capacity = capacity;
    }
    registrations[registration_count++] =
        Registration{store, position, GetCurrentSubTransactionId()};
  });
}

// Registering "the sequence's last value + 1" is a lower bound of what this backend allocates
// next only if the sequence hands out values one at a time, upwards: with CACHE > 1 a backend
// allocates from its private cache, below the shared last value; CYCLE or a negative INCREMENT
// go backwards. Refuse to append rather than break the order.
void check_position_sequence(const StoreInfo &info) {
  bool usable = true, cycle = false;
  int64 cache = 1, increment = 1;
  pg_call([&] {
    HeapTuple tuple = SearchSysCache1(SEQRELID, ObjectIdGetDatum(info.position_seq));
    if (!HeapTupleIsValid(tuple)) elog(ERROR, "cache lookup failed for sequence %u", info.position_seq);
    auto *seq = reinterpret_cast<Form_pg_sequence>(GETSTRUCT(tuple));
    cache = seq->seqcache;
    increment = seq->seqincrement;
    cycle = seq->seqcycle;
    usable = cache == 1 && increment > 0 && !cycle;
    ReleaseSysCache(tuple);
  });
  if (usable) return;
  const char *seq_name = qualified_name(info.position_seq);
  const char *store_name = qualified_name(info.store);
  std::string seq_text = seq_name ? seq_name : std::to_string(info.position_seq);
  raise(sqlstate::kPositionSequenceAltered,
        std::string("the position sequence of event table ") + (store_name ? store_name : "?") +
            " was altered",
        "Sequence " + seq_text + " has CACHE " + std::to_string(cache) + ", INCREMENT " +
            std::to_string(increment) + (cycle ? ", CYCLE" : ", NO CYCLE") +
            "; the global order needs CACHE 1, a positive INCREMENT and NO CYCLE.",
        "ALTER SEQUENCE " + seq_text + " CACHE 1 INCREMENT 1 NO CYCLE;");
}

// What the sequence's page says now (read_sequence).
struct SequenceState {
  int64 last_value;  // last value handed out, 0 before the first (as pg_sequence_last_value)
  XLogRecPtr lsn;    // the page's LSN: the WAL record that made last_value durable is below it
};

// Reads the sequence's tuple straight from its page, under the lock nextval takes: without
// pg_sequence_last_value's fmgr call, privilege check (callers checked the store's; the value
// used to be read as the extension owner) and lookup of the backend's sequence cache, and with
// the page LSN in the same buffer visit. The layout is PostgreSQL's (src/backend/commands/
// sequence.c read_seq_tuple: one tuple on block 0 whose data is FormData_pg_sequence_data).
SequenceState read_sequence(Oid seq) {
  SequenceState state{0, InvalidXLogRecPtr};
  pg_call([&] {
    // RowExclusiveLock: what nextval (and pg_sequence_last_value) take, so the allocation that
    // follows a registration finds it held.
    LockRelationOid(seq, RowExclusiveLock);
    Relation rel = relation_open(seq, NoLock);
    if (rel->rd_rel->relkind != RELKIND_SEQUENCE)
      elog(ERROR, "pg_eventstore: \"%s\" is not a sequence", RelationGetRelationName(rel));
    Buffer buf = ReadBuffer(rel, 0);
    LockBuffer(buf, BUFFER_LOCK_SHARE);
    Page page = BufferGetPage(buf);
    ItemId item = PageGetItemId(page, FirstOffsetNumber);
    bool has_tuple = ItemIdIsNormal(item);
    if (has_tuple) {
      auto *tuple = reinterpret_cast<HeapTupleHeader>(PageGetItem(page, item));
      auto *data = reinterpret_cast<Form_pg_sequence_data>(reinterpret_cast<char *>(tuple) +
                                                           tuple->t_hoff);
      state.last_value = data->is_called ? data->last_value : 0;
      state.lsn = PageGetLSN(page);
    }
    UnlockReleaseBuffer(buf);
    if (!has_tuple)
      elog(ERROR, "pg_eventstore: sequence \"%s\" has no tuple", RelationGetRelationName(rel));
    relation_close(rel, NoLock);
  });
  return state;
}

}  // namespace

int64 sequence_last_value(Oid seq) { return read_sequence(seq).last_value; }

void register_appender(const StoreInfo &info, int64 explicit_position) {
  int64 held = lowest_registration(info.store);
  if (explicit_position > 0) {
    if (held == 0 || explicit_position < held) take_registration(info.store, explicit_position);
    return;
  }
  if (held != 0) return;  // every later allocation is above what we already hold
  check_position_sequence(info);
  // Register first, allocate second: a reader reads the sequence before the registrations,
  // so it either sees this registration or a sequence value below our position.
  take_registration(info.store, sequence_last_value(info.position_seq) + 1);
}

int64 allocate_position(const StoreInfo &info) {
  return pg_call([&] { return nextval_internal(info.position_seq, false); });
}

void advance_sequence_to(const StoreInfo &info, int64 position) {
  if (sequence_last_value(info.position_seq) >= position) return;
  while (allocate_position(info) < position) {
  }
}

int64 durable_sequence_value(const StoreInfo &info, int64 floor, bool durable) {
  // Appenders register in the primary's lock table; a standby cannot see them (and its copy of
  // the sequence runs up to 32 values ahead of what was allocated).
  if (RecoveryInProgress())
    raise(sqlstate::kStandbyRead, "the global order cannot be read on a hot standby",
          "A standby cannot see which transactions on the primary are still appending.",
          "Read es.read_all and es.head_position on the primary.");
  SequenceState sequence = read_sequence(info.position_seq);
  if (sequence.last_value <= floor || !durable) return sequence.last_value;
  // Flushes the WAL up to the record that logged the sequence value read, so a position read
  // up to it survives a crash. nextval logs 32 values ahead and a transaction that allocated
  // and rolled back never flushes: without this, a crash could restart the sequence below a
  // horizon already handed out (es.head_position() said 41, the next commit after the crash
  // got 34) and a consumer that kept that head would skip the event. Free when the record is
  // already flushed (the usual case: appenders flush it at commit); otherwise one WAL flush.
  pg_call([&] { XLogFlush(sequence.lsn); });
  return sequence.last_value;
}

int64 safe_horizon(const StoreInfo &info, int64 floor, bool durable) {
  // Sequence first, registrations second (see register_appender).
  int64 horizon = durable_sequence_value(info, floor, durable);
  if (horizon <= floor) return horizon;  // nothing allocated above the reader's position
  pg_call([&] {
    LockData *locks = GetLockStatusData();
    for (int i = 0; i < locks->nelements; ++i) {
      const LockInstanceData &lock = locks->locks[i];
      const LOCKTAG &tag = lock.locktag;
      if (tag.locktag_type != LOCKTAG_USERLOCK || tag.locktag_field1 != MyDatabaseId ||
          tag.locktag_field2 != info.store || (tag.locktag_field4 & kRegistrationFlag) == 0 ||
          lock.holdMask == 0)
        continue;
      int64 registered = (static_cast<int64>(tag.locktag_field4 & 0x7FFF) << 32) |
                         static_cast<int64>(tag.locktag_field3);
      if (registered - 1 < horizon) horizon = registered - 1;
    }
  });
  return horizon;
}

bool horizon_registered() { return registration_count > 0; }

bool horizon_registered(Oid store) { return lowest_registration(store) != 0; }

// Plain PostgreSQL code (may ereport, never throws): the relay worker calls it.
bool appenders_in_flight(Oid database) {
  LockData *locks = GetLockStatusData();
  for (int i = 0; i < locks->nelements; ++i) {
    const LOCKTAG &tag = locks->locks[i].locktag;
    if (tag.locktag_type == LOCKTAG_USERLOCK && tag.locktag_field1 == database &&
        (tag.locktag_field4 & kRegistrationFlag) != 0 && locks->locks[i].holdMask != 0)
      return true;
  }
  return false;
}

void horizon_subxact_abort(SubTransactionId sub) {
  // The lock manager released the subtransaction's locks; forget them too.
  int kept = 0;
  for (int i = 0; i < registration_count; ++i)
    if (registrations[i].sub != sub) registrations[kept++] = registrations[i];
  registration_count = kept;
}

void horizon_subxact_commit(SubTransactionId sub, SubTransactionId parent) {
  for (int i = 0; i < registration_count; ++i)
    if (registrations[i].sub == sub) registrations[i].sub = parent;
}

void horizon_xact_end() { registration_count = 0; }

}  // namespace es
