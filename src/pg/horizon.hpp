// The commit-safe global order (API.md §3): appenders register the lowest position they may
// still make visible; readers only return positions below every registration.
#pragma once
#include "runtime.hpp"

namespace es {

// Registers the current transaction as an appender to `info`'s store, before it allocates
// positions: the registration is the sequence's last value + 1, or `explicit_position` when
// a plain INSERT brings its own (registered only if lower than what is already held).
void register_appender(const StoreInfo &info, int64 explicit_position = 0);

// Highest position a reader may return now: every position at or below it is either committed
// and visible to a snapshot taken afterwards, or will never become visible. A reader that
// only wants positions above `floor` gets an answer at or below `floor` without the lock-table
// scan when nothing above it was allocated yet (the idle tailing reader's poll).
// Raises ES024 on a hot standby, where appenders' registrations are not visible.
// `durable`: flush the WAL up to the sequence value first (see durable_sequence_value); only
// the notification relay passes false (a doorbell need not survive a crash: a listener reads
// es.read_all, which flushes).
int64 safe_horizon(const StoreInfo &info, int64 floor = -1, bool durable = true);

// The first step of safe_horizon, for es.read_all's gap-free page: the sequence's last value,
// read as safe_horizon reads it (ES024 on a hot standby) and, when it is above `floor` and
// `durable`, made durable (the WAL flushed up to the record that logged it) before any
// position up to it is returned. No lock-table scan.
int64 durable_sequence_value(const StoreInfo &info, int64 floor, bool durable = true);

// Last value the sequence handed out (0 before the first), read from its page (no privilege
// check) under the RowExclusiveLock nextval takes.
int64 sequence_last_value(Oid seq);

// Next value of the store's position sequence (no privilege check: callers checked).
int64 allocate_position(const StoreInfo &info);

// Moves the store's sequence to at least `position` (a plain INSERT brought its own).
void advance_sequence_to(const StoreInfo &info, int64 position);

// True when the current transaction holds a registration (it appended and may commit events).
bool horizon_registered();
// The same for one store: its own uncommitted appends may be visible to its reads.
bool horizon_registered(Oid store);

// True when some transaction of `database` holds a registration (an append is in flight).
// Plain PostgreSQL code: may ereport, never throws.
bool appenders_in_flight(Oid database);

void horizon_subxact_abort(SubTransactionId sub);
void horizon_subxact_commit(SubTransactionId sub, SubTransactionId parent);
void horizon_xact_end();
// At XACT_EVENT_PRE_PREPARE: the registrations become locks of the prepared transaction.
void horizon_pre_prepare();
// From _PG_init: with shared_preload_libraries, registrations use slots in shared memory
// (horizon.cpp).
void horizon_init();

}  // namespace es
