-- Baseline: a plain SELECT of 1000 events in position order after a random position.
-- group: read_all
-- baseline: select_all_1000
-- events: 1000
-- sync: off
\set after random(0, :read_events - 1000)
SELECT global_position, stream_id, stream_version, event_id, event_type, data, metadata, recorded_at
FROM es.events WHERE global_position > :after ORDER BY global_position LIMIT 1000;
