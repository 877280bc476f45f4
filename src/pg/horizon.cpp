#include "horizon.hpp"

#include "../core/limits.hpp"

extern "C" {
#include "access/relation.h"
#include "access/twophase.h"
#include "port/atomics.h"
#include "storage/bufmgr.h"
#include "storage/ipc.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "storage/shmem.h"
}

namespace es {

namespace {

// --- Registration slots (only with shared_preload_libraries) ---------------------------------
// Taking and releasing a registration lock costs an appender two trips into a lock-manager
// partition (shared hash entries for the lock and its holder), ~7.6 us of CPU per append at 4
// clients on 2 cores (bench/RESULTS.md). With the library preloaded, each backend instead
// publishes its registrations in kSlotsPerBackend entries of its own in shared memory (indexed
// by its pgprocno): (database, store) and the position, written before the allocation and
// cleared after the transaction ended (XACT_EVENT_COMMIT/ABORT come after
// ProcArrayEndTransaction, as the lock manager's release does). Readers scan the entries after
// reading the sequence. The lock table is still read when it can hold registrations: a
// transaction that registers more stores than it has entries takes locks for the rest
// (counted in lock_registrations), and PREPARE TRANSACTION turns its registrations into locks
// (they move to the prepared transaction with its other locks) and publishes its xid in
// prepared_xids until it is no longer in progress. Without preloading: locks only, as before.
constexpr int kSlotsPerBackend = 4;

struct SlotEntry {
  pg_atomic_uint64 key;       // (database << 32) | store; 0: free
  pg_atomic_uint64 position;  // lowest registered position (valid while key is set)
};

struct SlotArea {
  pg_atomic_uint32 lock_registrations;  // registration locks held by backends (overflow)
  int nprocs;
  int nprepared;
};

SlotArea *slot_area = nullptr;
SlotEntry *slot_entries = nullptr;       // nprocs * kSlotsPerBackend
pg_atomic_uint32 *prepared_xids = nullptr;  // nprepared; 0: free
shmem_request_hook_type previous_request_hook = nullptr;
shmem_startup_hook_type previous_startup_hook = nullptr;

int slot_procs() { return MaxBackends + NUM_AUXILIARY_PROCS + max_prepared_xacts; }

Size slot_area_size() {
  Size size = MAXALIGN(sizeof(SlotArea));
  size = add_size(size, mul_size(mul_size(slot_procs(), kSlotsPerBackend), sizeof(SlotEntry)));
  size = add_size(size, mul_size(Max(max_prepared_xacts, 1), sizeof(pg_atomic_uint32)));
  return size;
}

void request_slots() {
  if (previous_request_hook) previous_request_hook();
  RequestAddinShmemSpace(slot_area_size());
}

void start_slots() {
  if (previous_startup_hook) previous_startup_hook();
  LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
  bool found = false;
  auto *area = static_cast<SlotArea *>(ShmemInitStruct("pg_eventstore registrations",
                                                       slot_area_size(), &found));
  auto *entries = reinterpret_cast<SlotEntry *>(reinterpret_cast<char *>(area) +
                                                MAXALIGN(sizeof(SlotArea)));
  int nprocs = slot_procs();
  auto *xids = reinterpret_cast<pg_atomic_uint32 *>(entries + nprocs * kSlotsPerBackend);
  if (!found) {
    pg_atomic_init_u32(&area->lock_registrations, 0);
    area->nprocs = nprocs;
    area->nprepared = max_prepared_xacts;
    for (int i = 0; i < nprocs * kSlotsPerBackend; ++i) {
      pg_atomic_init_u64(&entries[i].key, 0);
      pg_atomic_init_u64(&entries[i].position, 0);
    }
    for (int i = 0; i < Max(max_prepared_xacts, 1); ++i) pg_atomic_init_u32(&xids[i], 0);
  }
  LWLockRelease(AddinShmemInitLock);
  slot_area = area;
  slot_entries = entries;
  prepared_xids = xids;
}

// This backend's entries, or nullptr (no preload, or no PGPROC).
void release_slots_at_exit(int, Datum);

SlotEntry *my_slots() {
  if (slot_area == nullptr || MyProc == nullptr || MyProc->pgprocno >= slot_area->nprocs)
    return nullptr;
  static bool exit_hooked = false;
  if (!exit_hooked) {
    before_shmem_exit(release_slots_at_exit, 0);
    exit_hooked = true;
  }
  return &slot_entries[MyProc->pgprocno * kSlotsPerBackend];
}

uint64 slot_key(Oid database, Oid store) {
  return (static_cast<uint64>(database) << 32) | static_cast<uint64>(store);
}

// True when a transaction prepared with registrations is still in progress (entries of
// finished ones are freed on the way).
bool prepared_registrations() {
  bool any = false;
  for (int i = 0; i < slot_area->nprepared; ++i) {
    uint32 xid = pg_atomic_read_u32(&prepared_xids[i]);
    if (xid == InvalidTransactionId) continue;
    if (TransactionIdIsInProgress(xid)) {
      any = true;
    } else {
      (void)pg_atomic_compare_exchange_u32(&prepared_xids[i], &xid, InvalidTransactionId);
    }
  }
  return any;
}

// True when registrations may be in the lock table (read after the slot entries).
bool locks_may_hold_registrations() {
  if (slot_area == nullptr) return true;
  pg_memory_barrier();
  return pg_atomic_read_u32(&slot_area->lock_registrations) > 0 || prepared_registrations();
}

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

// The registrations this transaction holds, with the subtransaction that took each; `locked`:
// in the lock table (no preload, more stores than slot entries, or prepared).
struct Registration {
  Oid store;
  int64 position;
  SubTransactionId sub;
  bool locked;
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
    // Room in the list first: nothing below may fail between publishing and recording.
    if (registration_count == registration_capacity) {
      int capacity = registration_capacity == 0 ? 8 : registration_capacity * 2;
      auto bytes = sizeof(Registration) * capacity;
      registrations = static_cast<Registration *>(
          registrations == nullptr ? MemoryContextAlloc(TopMemoryContext, bytes)
                                   : repalloc(registrations, bytes));
      registration_capacity = capacity;
    }
    bool locked = true;
    if (SlotEntry *mine = my_slots()) {
      uint64 key = slot_key(MyDatabaseId, store);
      SlotEntry *entry = nullptr;
      for (int i = 0; i < kSlotsPerBackend && entry == nullptr; ++i)
        if (pg_atomic_read_u64(&mine[i].key) == key) entry = &mine[i];
      if (entry != nullptr) {
        // Held already (an explicit position below it): lower it.
        if (static_cast<uint64>(position) < pg_atomic_read_u64(&entry->position))
          pg_atomic_write_u64(&entry->position, static_cast<uint64>(position));
        pg_memory_barrier();
        locked = false;
      } else {
        for (int i = 0; i < kSlotsPerBackend && entry == nullptr; ++i)
          if (pg_atomic_read_u64(&mine[i].key) == 0) entry = &mine[i];
        if (entry != nullptr) {
          pg_atomic_write_u64(&entry->position, static_cast<uint64>(position));
          pg_write_barrier();
          pg_atomic_write_u64(&entry->key, key);
          pg_memory_barrier();  // published before the allocation that follows
          locked = false;
        }
      }
    }
    if (locked) {
      LOCKTAG tag;
      set_registration_tag(tag, store, position);
      (void)LockAcquire(&tag, ShareLock, false, false);
      // Counted after the lock is held and before the allocation that follows: a reader that
      // sees the allocation sees the count, so it reads the lock table.
      if (slot_area != nullptr) {
        pg_atomic_fetch_add_u32(&slot_area->lock_registrations, 1);
        pg_memory_barrier();
      }
    }
    registrations[registration_count++] =
        Registration{store, position, GetCurrentSubTransactionId(), locked};
  });
}

// Rewrites this backend's slot entries from `registrations` (after some were forgotten): each
// entry keeps the lowest remaining slot registration of its store, or is freed.
void refresh_slots() {
  SlotEntry *mine = my_slots();
  if (mine == nullptr) return;
  for (int i = 0; i < kSlotsPerBackend; ++i) {
    uint64 key = pg_atomic_read_u64(&mine[i].key);
    if (key == 0) continue;
    int64 lowest = 0;
    for (int r = 0; r < registration_count; ++r)
      if (!registrations[r].locked && slot_key(MyDatabaseId, registrations[r].store) == key &&
          (lowest == 0 || registrations[r].position < lowest))
        lowest = registrations[r].position;
    if (lowest == 0)
      pg_atomic_write_u64(&mine[i].key, 0);
    else
      pg_atomic_write_u64(&mine[i].position, static_cast<uint64>(lowest));
  }
  pg_memory_barrier();
}

// Frees every entry of this backend and gives back its overflow count; after the transaction
// ended (its rows are visible or aborted) or when the backend exits.
void release_slots() {
  if (slot_area == nullptr) return;
  pg_memory_barrier();
  if (SlotEntry *mine = my_slots())
    for (int i = 0; i < kSlotsPerBackend; ++i) pg_atomic_write_u64(&mine[i].key, 0);
  uint32 locked = 0;
  for (int r = 0; r < registration_count; ++r) locked += registrations[r].locked ? 1 : 0;
  if (locked > 0) pg_atomic_fetch_sub_u32(&slot_area->lock_registrations, locked);
}

void release_slots_at_exit(int, Datum) {
  SlotEntry *mine = my_slots();
  if (mine == nullptr) return;
  for (int i = 0; i < kSlotsPerBackend; ++i) pg_atomic_write_u64(&mine[i].key, 0);
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
  if (slot_area != nullptr) {
    pg_memory_barrier();
    uint64 key = slot_key(MyDatabaseId, info.store);
    int n = slot_area->nprocs * kSlotsPerBackend;
    for (int i = 0; i < n; ++i) {
      if (pg_atomic_read_u64(&slot_entries[i].key) != key) continue;
      pg_read_barrier();
      auto registered = static_cast<int64>(pg_atomic_read_u64(&slot_entries[i].position));
      if (registered - 1 < horizon) horizon = registered - 1;
    }
    bool locks = pg_call([] { return locks_may_hold_registrations(); });
    if (!locks) return horizon;
  }
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
  if (slot_area != nullptr) {
    pg_memory_barrier();
    int n = slot_area->nprocs * kSlotsPerBackend;
    for (int i = 0; i < n; ++i) {
      uint64 key = pg_atomic_read_u64(&slot_entries[i].key);
      if (key != 0 && static_cast<Oid>(key >> 32) == database) return true;
    }
    if (!locks_may_hold_registrations()) return false;
  }
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
  // The lock manager released the subtransaction's locks; forget them too (and free or raise
  // the slot entries that held them: its rows are aborted already).
  int kept = 0;
  uint32 unlocked = 0;
  for (int i = 0; i < registration_count; ++i) {
    if (registrations[i].sub != sub)
      registrations[kept++] = registrations[i];
    else if (registrations[i].locked)
      ++unlocked;
  }
  bool forgot = kept != registration_count;
  registration_count = kept;
  if (forgot) refresh_slots();
  if (unlocked > 0 && slot_area != nullptr)
    pg_atomic_fetch_sub_u32(&slot_area->lock_registrations, unlocked);
}

void horizon_subxact_commit(SubTransactionId sub, SubTransactionId parent) {
  for (int i = 0; i < registration_count; ++i)
    if (registrations[i].sub == sub) registrations[i].sub = parent;
}

void horizon_xact_end() {
  if (registration_count > 0) release_slots();
  registration_count = 0;
}

void horizon_pre_prepare() {
  if (registration_count == 0 || slot_area == nullptr) return;
  TransactionId xid = GetTopTransactionIdIfAny();
  if (!TransactionIdIsValid(xid)) return;  // it wrote no row: nothing to hold back
  bool published = false;
  // The prepared transaction keeps its registrations as locks (PostPrepare_Locks hands them
  // over); its xid tells readers to look in the lock table while it is in progress. Both
  // before the slot entries are freed at XACT_EVENT_PREPARE.
  for (int r = 0; r < registration_count; ++r) {
    if (registrations[r].locked) continue;
    LOCKTAG tag;
    set_registration_tag(tag, registrations[r].store, registrations[r].position);
    (void)LockAcquire(&tag, ShareLock, false, false);
  }
  for (int i = 0; i < slot_area->nprepared && !published; ++i) {
    uint32 current = pg_atomic_read_u32(&prepared_xids[i]);
    if (current != InvalidTransactionId && TransactionIdIsInProgress(current)) continue;
    published = pg_atomic_compare_exchange_u32(&prepared_xids[i], &current, xid);
  }
  // No free entry: count the locks as held by backends for good. Readers then
  // always read the lock table: slower, never wrong.
  if (!published) pg_atomic_fetch_add_u32(&slot_area->lock_registrations, 1);
  pg_memory_barrier();
}

void horizon_init() {
  if (!process_shared_preload_libraries_in_progress) return;
  previous_request_hook = shmem_request_hook;
  shmem_request_hook = request_slots;
  previous_startup_hook = shmem_startup_hook;
  shmem_startup_hook = start_slots;
}

}  // namespace es
