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

}  // namespace es
