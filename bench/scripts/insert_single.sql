-- Baseline: a raw INSERT of one event row into bench_raw (same columns and indexes as an event
-- table, no triggers, no checks), position from a sequence, returning the position.
-- group: single
-- baseline: insert_single
-- events: 1
-- sync: off on
\set sid random(1, 10000)
\set n random(1, 1000000)
INSERT INTO bench_raw (global_position, stream_id, stream_version, event_type, data, metadata)
SELECT p, 'a-' || :sid, p, 'Deposited', jsonb_build_object('amount', :n::int), '{"source":"bench"}'
FROM nextval('bench_raw_seq') p
RETURNING global_position, stream_version;
