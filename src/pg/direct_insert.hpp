// The executor-level insert of es.append (DESIGN-NOTES §4): for an event table of the standard
// shape, the stream's version is read and the rows go in through the table AM and the index AMs
// directly, with the same speculative-insertion protocol as INSERT ... ON CONFLICT DO NOTHING,
// and without the per-statement planning and executor start-up of SPI. Anything unusual about
// the table sends the caller back to the SPI plans, which handle every case.
#pragma once
#include "runtime.hpp"

namespace es {

// The column values of one event row, in the order of the insert plans: global_position,
// stream_id, stream_version, event_id, event_type, data, metadata ('n' in nulls: NULL).
struct EventRow {
  Datum values[7];
  char nulls[8];
};

// Inserts rows[0..count) in order, stopping at the first that conflicts on a unique index
// ((stream_id, stream_version), event_id, global_position), waiting like ON CONFLICT DO NOTHING
// for an in-progress inserter to decide; returns how many went in.
// Returns -1, having written nothing, unless the direct path is equivalent to the SPI insert:
// READ COMMITTED; the eight standard columns with their types and nothing else; recorded_at
// DEFAULT now(); only the extension's own triggers (which let es.append's rows through
// unchanged); no row-level security, rules, generated columns or deferrable unique indexes;
// exactly one unique index on (stream_id, stream_version). The table's part of that verdict
// is cached in `info` until the next invalidation.
int64 direct_insert(StoreInfo &info, const EventRow *rows, int count);

// The stream's last version (0: none), read through the (stream_id, stream_version) index with
// the latest snapshot as the SPI version query does; -1 when the table does not allow the
// direct path.
int64 direct_last_version(StoreInfo &info, text *stream);

// ---- The executor set-up shared by the direct inserts (events, outbox messages, lanes and
// intake cursors). Plain PostgreSQL code: call these inside pg_call.

// An open table with an executor state, its indexes and one row slot.
struct DirectTarget {
  Relation rel;
  EState *estate;
  ResultRelInfo *result;
  TupleTableSlot *slot;
  bool speculative_info;  // the unique indexes' speculative-insertion details are built
};

// Sets up `t` for inserting into `rel` (opened by the caller with RowExclusiveLock).
void direct_begin(DirectTarget &t, Relation rel);

// Clears the slot to all NULLs and returns it: set tts_values/tts_isnull, then insert.
TupleTableSlot *direct_row(DirectTarget &t);

// INSERT of the slot's row: NOT NULL and CHECK constraints, the heap tuple, every index entry
// (a partial index's predicate evaluated as the executor does); a unique violation raises as
// INSERT's does.
void direct_put(DirectTarget &t);

// INSERT ... ON CONFLICT DO NOTHING of the slot's row, every unique index an arbiter: true
// when it went in, false when a committed row (or one whose inserter this waited for) holds
// one of its unique keys. `check_first`: look for a conflicting row before inserting (as
// ExecInsert does); without it the first try relies on the unique indexes to report one.
bool direct_put_unless_conflict(DirectTarget &t, bool check_first);

// Closes the indexes and frees the executor state (not the table), then makes what was
// written visible to the caller's next read, as SPI does after a statement.
void direct_end(DirectTarget &t);

// The columns a direct insert fills: name and type.
struct DirectColumn {
  const char *name;
  Oid type;
};

// True when `rel` is a plain table of exactly the columns `columns[0..count)` (any order),
// with no row security, rules, generated or identity columns; their attnums go to `attnums`.
// Triggers and defaults are the caller's to judge.
bool direct_shape(Relation rel, const DirectColumn *columns, int count, AttrNumber *attnums);

}  // namespace es
