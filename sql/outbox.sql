-- Transactional outbox (API.md §5): publish, routes, groups, claim/ack/nack, dead letters,
-- purge, channel, Debezium view, relay hook, grants. Ids are shown relative to a baseline.
\set VERBOSITY terse
SELECT es._outbox_horizon() AS base \gset
-- claims shown compactly: relative id, key, attempts
CREATE FUNCTION pg_temp.claim(g text, t text, n int DEFAULT 10, l interval DEFAULT '30 s')
RETURNS TABLE (rid bigint, key text, payload jsonb, attempts int) LANGUAGE sql AS $$
    SELECT c.id - current_setting('outbox.base')::bigint, c.key, c.payload, c.attempts
      FROM es.outbox_claim(g, t, n, l) c ORDER BY c.id $$;
SELECT set_config('outbox.base', :'base', false) IS NOT NULL AS based;
CREATE FUNCTION pg_temp.gid(g text) RETURNS int LANGUAGE sql AS $$
    SELECT group_id FROM es._outbox_groups WHERE consumer_group = g AND topic = 'orders' $$;
CREATE FUNCTION pg_temp.ids(VARIADIC r int[]) RETURNS bigint[] LANGUAGE sql AS $$
    SELECT array_agg(x + current_setting('outbox.base')::bigint) FROM unnest(r) x $$;

-- Publishing: bad input.
SELECT es.outbox_publish(NULL, '{}');
SELECT es.outbox_publish('', '{}');
SELECT es.outbox_publish(repeat('t', 257), '{}');
SELECT es.outbox_publish('orders', NULL);
SELECT es.outbox_publish('orders', '{}', 'k', '[1]');
SELECT es.outbox_publish('orders', '{}', repeat('k', 1025));

-- A message published before any group exists reaches no group.
SELECT es.outbox_publish('orders', '{"n": 0}') - :base AS rid;

-- Groups: bad input, unknown groups.
SELECT es.outbox_subscribe(NULL, 'orders');
SELECT es.outbox_subscribe('billing', 'orders', 0);
SELECT es.outbox_subscribe('billing', NULL);
SELECT * FROM es.outbox_claim('nobody', 'orders');
SELECT es.outbox_subscribe('billing', 'orders', 3);
SELECT es.outbox_subscribe('shipping', 'orders');
SELECT es.outbox_subscribe('shipping', 'orders', 2);   -- again: only max_attempts changes
SELECT consumer_group, topic, max_attempts FROM es._outbox_groups ORDER BY 1, 2;
SELECT * FROM es.outbox_claim('billing', 'invoices');
SELECT * FROM es.outbox_claim('billing', 'orders', -1);
SELECT * FROM es.outbox_claim('billing', 'orders', 1, '0 s');
SELECT * FROM es.outbox_claim('billing', 'orders', 0);

-- Per-key order: k1 twice, k2 once, one key-less message.
SELECT es.outbox_publish('orders', '{"n": 1}', 'k1') - :base AS rid;
SELECT es.outbox_publish('orders', '{"n": 2}', 'k1', '{"type": "OrderPaid"}') - :base AS rid;
SELECT es.outbox_publish('orders', '{"n": 3}', 'k2') - :base AS rid;
SELECT es.outbox_publish('orders', '{"n": 4}') - :base AS rid;
-- a rolled-back publish is never handed out
BEGIN;
SELECT es.outbox_publish('orders', '{"n": "rolled back"}', 'k3') IS NOT NULL AS published;
ROLLBACK;
-- billing gets 2, 4, 5 (3 waits behind 2 of the same key k1); 1 predates the groups
SELECT * FROM pg_temp.claim('billing', 'orders', 2);
SELECT * FROM pg_temp.claim('billing', 'orders');
SELECT * FROM pg_temp.claim('billing', 'orders');
-- shipping, a second group, gets every message too (fan-out)
SELECT * FROM pg_temp.claim('shipping', 'orders');

-- Ack: 2 done, so 3 (same key) becomes claimable.
SELECT es.outbox_ack('billing', pg_temp.ids(2));
SELECT * FROM pg_temp.claim('billing', 'orders');
-- acking again, or a message never handed out, or an unknown group: errors, all or nothing
SELECT es.outbox_ack('billing', pg_temp.ids(2));
SELECT es.outbox_ack('billing', pg_temp.ids(4, 99));
SELECT es.outbox_ack('billing', pg_temp.ids(1));
SELECT es.outbox_ack('nobody', pg_temp.ids(4));
SELECT es.outbox_ack('billing', NULL);
SELECT es.outbox_ack('billing', ARRAY[NULL]::bigint[]);
SELECT es.outbox_ack('billing', pg_temp.ids(4, 5, 4));
SELECT * FROM pg_temp.claim('billing', 'orders');

-- Nack with retry_after: not handed out before it is due, and it holds its key back.
SELECT es.outbox_publish('orders', '{"n": 5}', 'k1') - :base AS rid;
SELECT es.outbox_nack('billing', :base + 3, 'boom', '1 hour');
SELECT * FROM pg_temp.claim('billing', 'orders');
SELECT lane_key, head_id - :base AS head, tail_id - :base AS tail, attempts, leased, last_error,
       due_at > now() + interval '59 minutes' AS due_in_an_hour
  FROM es._outbox_lanes WHERE group_id = pg_temp.gid('billing');
SELECT es.outbox_nack('billing', :base + 3, 'again');   -- not held while it waits
SELECT es.outbox_nack('billing', NULL, 'x');
SELECT es.outbox_nack('billing', :base + 3, 'x', '-1 s');
SELECT es.outbox_nack('nobody', :base + 3, 'x');
-- default backoff: exp(attempts) seconds (time travel: make the retry due now)
UPDATE es._outbox_lanes SET due_at = '-infinity' WHERE head_id = :base + 3 AND group_id = pg_temp.gid('billing');
SELECT * FROM pg_temp.claim('billing', 'orders');
SELECT es.outbox_nack('billing', :base + 3, 'second time');
SELECT round(extract(epoch FROM due_at - clock_timestamp())) AS backoff_s, attempts, last_error
  FROM es._outbox_lanes WHERE head_id = :base + 3 AND group_id = pg_temp.gid('billing');
-- the third attempt fails: max_attempts 3 reached, 3 is dead and no longer holds k1 back
UPDATE es._outbox_lanes SET due_at = '-infinity' WHERE head_id = :base + 3 AND group_id = pg_temp.gid('billing');
SELECT * FROM pg_temp.claim('billing', 'orders');
SELECT es.outbox_nack('billing', :base + 3, 'gave up');
SELECT consumer_group, id - :base AS rid, topic, key, payload, attempts, last_error
  FROM es.outbox_dead_letters ORDER BY 1, 2;
SELECT * FROM pg_temp.claim('billing', 'orders');
SELECT es.outbox_ack('billing', pg_temp.ids(7));
SELECT count(*) AS billing_lanes FROM es._outbox_lanes WHERE group_id = pg_temp.gid('billing');

-- Lease expiry returns the message (each hand-out is an attempt); an ack after expiry fails.
-- shipping holds 2 (k1), 4 (k2), 5; 3 and 7 (k1) wait behind 2.
SELECT es.outbox_ack('shipping', pg_temp.ids(4, 5));
-- (time travel: 2's lease ran out just now)
UPDATE es._outbox_lanes SET due_at = clock_timestamp() - interval '1 ms' WHERE head_id = :base + 2 AND group_id = pg_temp.gid('shipping');
SELECT * FROM pg_temp.claim('shipping', 'orders', 10, '1 ms');
SELECT pg_sleep(0.05);
SELECT es.outbox_ack('shipping', pg_temp.ids(2));
-- shipping has max_attempts 2: the second hand-out expired too, so 2 is dead and 3 comes
SELECT * FROM pg_temp.claim('shipping', 'orders', 1);
SELECT consumer_group, id - :base AS rid, attempts, last_error
  FROM es.outbox_dead_letters WHERE consumer_group = 'shipping' ORDER BY 2;

-- Re-driving dead letters: fresh attempts, outside key order (3 of k1 is still out).
SELECT es.outbox_retry_dead('shipping', pg_temp.ids(4)) AS not_dead;
SELECT es.outbox_retry_dead('nobody');
SELECT es.outbox_retry_dead('shipping', ARRAY[NULL]::bigint[]);
SELECT es.outbox_retry_dead('shipping') AS redriven;
SELECT * FROM pg_temp.claim('shipping', 'orders');
SELECT es.outbox_ack('shipping', pg_temp.ids(2, 3));
SELECT * FROM pg_temp.claim('shipping', 'orders');
SELECT es.outbox_ack('shipping', pg_temp.ids(7));
SELECT count(*) AS shipping_dead FROM es.outbox_dead_letters WHERE consumer_group = 'shipping';
SELECT count(*) AS shipping_lanes FROM es._outbox_lanes WHERE group_id = pg_temp.gid('shipping');

-- Purge: never an unacked message (billing's dead letter 3 stays), everything else goes;
-- 6 was rolled back, 1 predates every group.
SELECT es.outbox_purge(NULL);
SELECT es.outbox_purge('1 day') AS purged_recent;
SELECT es.outbox_purge('0 s') AS purged;
SELECT id - :base AS rid, topic FROM es._outbox_messages ORDER BY id;
SELECT kind, removed FROM es.maintain() ORDER BY kind;

-- A group created later receives only what is published afterwards.
SELECT es.outbox_publish('orders', '{"n": 6}', 'k9') - :base AS rid;
SELECT es.outbox_subscribe('audit', 'orders');
SELECT * FROM pg_temp.claim('audit', 'orders');
SELECT es.outbox_publish('orders', '{"n": 7}', 'k9') - :base AS rid;
SELECT * FROM pg_temp.claim('audit', 'orders');
SELECT es.outbox_ack('audit', pg_temp.ids(9));

-- Claims need READ COMMITTED (the horizon needs a fresh snapshot).
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT * FROM es.outbox_claim('audit', 'orders');
ROLLBACK;

-- Routes: events appended to the store are published in the same transaction, key = stream.
SELECT es.outbox_route('order-events', 'es.events', ARRAY['OrderPlaced'], 'order-');
SELECT tgname FROM pg_trigger WHERE tgrelid = 'es.events'::regclass AND tgname LIKE 'es_outbox%';
SELECT es.outbox_route('all-events');
SELECT es.outbox_route('x', 'pg_class');
SELECT es.outbox_route('x', 'es.events', ARRAY[]::text[]);
SELECT es.outbox_route('x', 'es.events', NULL, '');
SELECT es.outbox_subscribe('projector', 'order-events');
SELECT es.outbox_subscribe('projector', 'all-events');
SELECT first_version FROM es.append('order-1', 0,
    '[{"type": "OrderPlaced", "data": {"total": 5}}, {"type": "OrderNoted", "data": {}}]');
SELECT first_version FROM es.append_event('user-1', 0, 'OrderPlaced', '{}');
BEGIN;
SELECT first_version FROM es.append_event('order-2', 0, 'OrderPlaced', '{"rolled": "back"}');
ROLLBACK;
SELECT key, payload->>'event_type' AS type, payload->'data' AS data, attempts,
       headers ?& ARRAY['event_id', 'event_type', 'global_position', 'stream_version'] AS has_headers,
       (headers->>'global_position')::bigint = (payload->>'global_position')::bigint AS positions_match
  FROM es.outbox_claim('projector', 'order-events') ORDER BY id;
SELECT key, payload->>'event_type' AS type, headers->>'stream_version' AS version
  FROM es.outbox_claim('projector', 'all-events') ORDER BY id;
-- OrderNoted (order-1 version 2) waits behind version 1 of the same stream
SELECT es.outbox_ack('projector', ARRAY(SELECT id FROM es.outbox_debezium
                                         WHERE aggregatetype = 'all-events'
                                           AND aggregateid = 'order-1' AND type = 'OrderPlaced'));
SELECT key, payload->>'event_type' AS type, headers->>'stream_version' AS version
  FROM es.outbox_claim('projector', 'all-events') ORDER BY id;
-- a plain INSERT (migration, restore) is not routed
INSERT INTO es.events (stream_id, stream_version, event_type, data)
    VALUES ('order-3', 1, 'OrderPlaced', '{}');
SELECT count(*) AS routed FROM es.outbox_claim('projector', 'order-events');
-- the Debezium shape
SELECT aggregatetype, aggregateid, type, payload->'data' AS data
  FROM es.outbox_debezium WHERE aggregatetype = 'order-events' ORDER BY id;
-- unrouting: the trigger goes with the last route of the store
SELECT es.outbox_unroute('order-events');
SELECT tgname FROM pg_trigger WHERE tgrelid = 'es.events'::regclass AND tgname LIKE 'es_outbox%';
SELECT es.outbox_unroute('all-events');
SELECT tgname FROM pg_trigger WHERE tgrelid = 'es.events'::regclass AND tgname LIKE 'es_outbox%';
SELECT es.outbox_unroute('all-events');
-- dropping a store drops its routes
SELECT es.create_event_table('public.audit_log') IS NOT NULL AS created;
SELECT es.outbox_route('audit', 'public.audit_log');
SELECT first_version FROM es.append_event('a-1', 0, 'Seen', '{}', store => 'public.audit_log');
SELECT aggregateid FROM es.outbox_debezium WHERE aggregatetype = 'audit';
SELECT es.drop_event_table('public.audit_log');
SELECT count(*) AS routes_left FROM es._outbox_routes WHERE topic = 'audit';

-- Channels.
SELECT es.outbox_channel('orders');
SELECT es.outbox_channel(repeat('t', 60));
SELECT es.outbox_channel('');

-- The relay hook: one row per topic with newly committed messages, then nothing.
SELECT count(*) >= 0 AS primed FROM es._relay_poll_outbox();
SELECT count(*) AS quiet FROM es._relay_poll_outbox();
SELECT es.outbox_publish('orders', '{}') IS NOT NULL AS p1;
SELECT es.outbox_publish('orders', '{}') IS NOT NULL AS p2;
SELECT es.outbox_publish('invoices', '{}') IS NOT NULL AS p3;
SELECT channel, payload::bigint - :base AS newest FROM es._relay_poll_outbox();
SELECT count(*) AS quiet FROM es._relay_poll_outbox();
BEGIN;
SELECT es.outbox_publish('orders', '{}') IS NOT NULL AS uncommitted;
SELECT count(*) AS not_before_commit FROM es._relay_poll_outbox();
COMMIT;

-- Grants: writers publish, readers claim/ack/nack, admins subscribe/route/purge.
CREATE ROLE outbox_w LOGIN IN ROLE es_writer;
CREATE ROLE outbox_r LOGIN IN ROLE es_reader;
SELECT es.outbox_route('writer-events', 'es.events', NULL, 'writer-');
SET ROLE outbox_w;
SELECT es.outbox_publish('orders', '{"n": 8}', 'k9') - :base AS rid;
-- a writer's append is routed too (the trigger publishes with the extension's rights)
SELECT first_version FROM es.append_event('writer-1', 0, 'Written', '{}');
SELECT * FROM es.outbox_claim('audit', 'orders');
SELECT * FROM es._outbox_messages;
RESET ROLE;
SELECT aggregateid, type FROM es.outbox_debezium WHERE aggregatetype = 'writer-events';
SELECT es.outbox_unroute('writer-events');
SET ROLE outbox_r;
SELECT rid, key, attempts FROM pg_temp.claim('audit', 'orders');
SELECT es.outbox_ack('audit', pg_temp.ids(17, 18, 20));
SELECT es.outbox_nack('audit', :base + 21, 'reader may nack', '0 s');
SELECT count(*) FROM es.outbox_dead_letters;
SELECT es.outbox_publish('orders', '{}');
SELECT es.outbox_subscribe('mine', 'orders');
SELECT es.outbox_purge();
RESET ROLE;
DROP ROLE outbox_w;
DROP ROLE outbox_r;

-- A claim writes a key-less window's lanes and the shard's cursor through the table and index
-- AMs: the partial indexes get the leased lanes (read here through them), the primary key
-- finds them for the ack. A trigger on the lane table sends the claim back to the executor's
-- INSERT, which fires it; once dropped, the direct path resumes.
SELECT es.outbox_subscribe('direct', 'direct');
SELECT group_id AS dgid FROM es._outbox_groups WHERE consumer_group = 'direct' \gset
SELECT count(es.outbox_publish('direct', jsonb_build_object('n', i))) AS published
  FROM generate_series(1, 6) i;
SELECT max(id) AS first_last FROM es.outbox_claim('direct', 'direct', 2, '1 minute') \gset
SET enable_seqscan = off;
SELECT count(*) AS leased_by_index, min(attempts) AS attempts, bool_and(lane_key IS NULL) AS keyless
  FROM es._outbox_lanes WHERE group_id = :dgid AND leased AND due_at > now();
SELECT count(*) AS ready_by_index
  FROM es._outbox_lanes WHERE group_id = :dgid AND NOT leased AND due_at > '-infinity';
SELECT count(*) AS by_primary_key FROM es._outbox_lanes
 WHERE group_id = :dgid AND head_id IN (SELECT i FROM generate_series(:first_last - 1, :first_last) i);
RESET enable_seqscan;
SELECT count(*) > 0 AS cursor_recorded, bool_and(intake_id >= :first_last) AS cursor_past_claimed
  FROM es._outbox_intake WHERE group_id = :dgid AND shard >= 0;
CREATE TABLE public.lane_log (head_id bigint);
CREATE FUNCTION public.log_lane() RETURNS trigger LANGUAGE plpgsql
  AS $$BEGIN INSERT INTO public.lane_log VALUES (NEW.head_id); RETURN NEW; END$$;
CREATE TRIGGER log_lane AFTER INSERT ON es._outbox_lanes FOR EACH ROW EXECUTE FUNCTION public.log_lane();
SELECT count(*) AS claimed FROM es.outbox_claim('direct', 'direct', 2, '1 minute');
SELECT count(*) AS logged FROM public.lane_log;
DROP TRIGGER log_lane ON es._outbox_lanes;
SELECT count(*) AS claimed FROM es.outbox_claim('direct', 'direct', 2, '1 minute');
SELECT count(*) AS logged FROM public.lane_log;
SELECT es.outbox_ack('direct', (SELECT array_agg(head_id) FROM es._outbox_lanes WHERE group_id = :dgid));
SELECT count(*) AS lanes_left FROM es._outbox_lanes WHERE group_id = :dgid;
DROP TABLE public.lane_log;
DROP FUNCTION public.log_lane();
