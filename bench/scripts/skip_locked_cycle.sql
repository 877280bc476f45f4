-- Baseline worker cycle on a hand-written queue (bench_queue, setup.sql): publish 10 messages,
-- claim up to 10 with FOR UPDATE SKIP LOCKED (lease + attempt count), ack (delete) the claimed
-- ones; three autocommit statements, as a producer and a worker would run them (issue 4).
-- group: outbox_claim
-- baseline: skip_locked_cycle
-- events: 10
-- sync: off
-- extended: yes
INSERT INTO bench_queue (payload) SELECT jsonb_build_object('n', i) FROM generate_series(1, 10) i;
WITH c AS (
    SELECT id FROM bench_queue WHERE visible_at <= now() ORDER BY id LIMIT 10 FOR UPDATE SKIP LOCKED),
u AS (
    UPDATE bench_queue q SET visible_at = now() + interval '30 seconds', attempts = q.attempts + 1
    FROM c WHERE q.id = c.id RETURNING q.id, q.payload)
SELECT coalesce(array_agg(id), '{}')::text AS ids FROM u \gset
DELETE FROM bench_queue WHERE id = ANY (:ids::bigint[]);
