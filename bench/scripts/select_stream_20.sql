-- Baseline: a plain SELECT of a 20-event stream from es.events by (stream_id, stream_version).
-- group: read_stream
-- baseline: select_stream_20
-- events: 20
-- sync: off
\set sid random(1, :read_streams)
SELECT global_position, stream_id, stream_version, event_id, event_type, data, metadata, recorded_at
FROM es.events WHERE stream_id = 'r-' || :sid AND stream_version >= 1
ORDER BY stream_version LIMIT 20;
