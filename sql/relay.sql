-- Store notifications (API.md §4): es.store_channel, what es._relay_poll announces and when,
-- es.listen, es.relay_start / es.relay_status. The relay worker itself (NOTIFY after commit,
-- latency) is exercised by test/stress/notify.sh.
-- es._relay_poll keeps its "announced up to" state in the calling backend, so polling here
-- is independent of the relay worker that runs beside this test.
\set SHOW_CONTEXT never
CREATE SCHEMA regress_relay;
CREATE SCHEMA "Regress Relay";
SELECT es.create_event_table('regress_relay.orders');
SELECT es.create_event_table('"Regress Relay"."Orders (EU)"');
SELECT es.create_event_table('regress_relay.' || repeat('long_name_', 6));

-- 1. Channels: short, plain identifiers, derived from the qualified name only.
SELECT es.store_channel() = es.store_channel('es.events') AS default_is_es_events;
SELECT es.store_channel('es.events');
SELECT es.store_channel('regress_relay.orders');
SELECT es.store_channel('"Regress Relay"."Orders (EU)"');
SELECT c, octet_length(c) AS bytes
  FROM es.store_channel(('regress_relay.' || repeat('long_name_', 6))::regclass) c;
-- Names that fold to the same text still get different channels.
SELECT es.create_event_table('regress_relay."orders EU"');
SELECT es.create_event_table('regress_relay."orders_EU"');
SELECT es.store_channel('regress_relay."orders EU"') <> es.store_channel('regress_relay."orders_EU"')
    AS distinct_channels;
-- Every channel is a valid LISTEN target without quoting.
SELECT bool_and(es.store_channel(store) ~ '^[a-z_][a-z0-9_]{0,62}$') AS plain_identifiers
  FROM es._stores;
-- Stable across dump/restore: the same name gives the same channel whatever its oid.
SELECT es.store_channel('regress_relay."orders EU"') AS before \gset
SELECT es.drop_event_table('regress_relay."orders EU"');
SELECT es.create_event_table('regress_relay."orders EU"');
SELECT es.store_channel('regress_relay."orders EU"') = :'before' AS same_after_recreate;
SELECT es.store_channel('pg_class');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT es.store_channel(NULL);
\echo sqlstate: :LAST_ERROR_SQLSTATE

-- 2. What a poll announces: the newest event at or below the safe head of each store that
-- moved since this backend's previous poll; payload = that position.
CREATE FUNCTION regress_relay.poll() RETURNS TABLE (store text, payload text)
    LANGUAGE sql AS $$
    SELECT s.store::text, p.payload
      FROM es._relay_poll() p
      JOIN es._stores s ON es.store_channel(s.store) = p.channel
     WHERE s.store::text LIKE 'regress_relay.%' ORDER BY 1 $$;
-- Empty stores: nothing.
SELECT * FROM regress_relay.poll();
SELECT last_position FROM es.append('o-1', 0,
    '[{"type":"Placed"},{"type":"Paid"}]', store => 'regress_relay.orders');
SELECT * FROM regress_relay.poll();
-- Nothing new: nothing announced, however often the relay polls.
SELECT * FROM regress_relay.poll();
SELECT * FROM regress_relay.poll();
-- Appends to two stores, one poll: one row per store, coalesced to the newest position.
SELECT last_position FROM es.append_event('o-2', 0, 'Placed', '{}', store => 'regress_relay.orders');
SELECT last_position FROM es.append_event('o-3', 0, 'Placed', '{}', store => 'regress_relay.orders');
SELECT last_position FROM es.append_event('x-1', 0, 'Placed', '{}', store => 'regress_relay."orders_EU"');
SELECT * FROM regress_relay.poll();

-- Not before commit: inside the appending transaction the head stays below its events.
BEGIN;
SELECT last_position FROM es.append_event('o-4', 0, 'Placed', '{}', store => 'regress_relay.orders');
SELECT * FROM regress_relay.poll();
COMMIT;
SELECT * FROM regress_relay.poll();

-- Never for a rolled-back append: the head moves past its positions, the newest event does not.
BEGIN;
SELECT last_position FROM es.append_event('o-5', 0, 'Placed', '{}', store => 'regress_relay.orders');
ROLLBACK;
SELECT es.head_position('regress_relay.orders') AS head_past_the_hole;
SELECT * FROM regress_relay.poll();
-- Nor for the part a savepoint rolled back.
BEGIN;
SELECT last_position FROM es.append_event('o-6', 0, 'Placed', '{}', store => 'regress_relay.orders');
SAVEPOINT sp;
SELECT last_position FROM es.append_event('o-7', 0, 'Placed', '{}', store => 'regress_relay.orders');
ROLLBACK TO SAVEPOINT sp;
COMMIT;
SELECT * FROM regress_relay.poll();
-- Committed events run on from the last announced position without a gap: announced without
-- the lock-table copy. A rolled-back position in between stops that run: the events before it
-- are announced at once, those after it at the next poll (from the safe head, which is past
-- the hole). (First a poll that moves the head past the savepoint's hole: nothing to announce.)
SELECT * FROM regress_relay.poll();
SELECT last_position AS before_hole FROM es.append_event('o-8', 0, 'Placed', '{}', store => 'regress_relay.orders') \gset
BEGIN;
SELECT es.append_event('o-9', 0, 'Placed', '{}', store => 'regress_relay.orders') IS NOT NULL AS rolled_back;
ROLLBACK;
SELECT last_position AS after_hole FROM es.append_event('o-10', 0, 'Placed', '{}', store => 'regress_relay.orders') \gset
SELECT payload::bigint = :before_hole AS up_to_the_hole FROM regress_relay.poll();
SELECT payload::bigint = :after_hole AS past_the_hole FROM regress_relay.poll();
SELECT * FROM regress_relay.poll();
-- A store re-created under the same name is a new store to the poll.
SELECT es.drop_event_table('regress_relay."orders_EU"');
SELECT es.create_event_table('regress_relay."orders_EU"');
SELECT last_position FROM es.append_event('x-1', 0, 'Placed', '{}', store => 'regress_relay."orders_EU"');
SELECT * FROM regress_relay.poll();

-- The outbox shares the relay: after the stores' rows, one row per topic with newly committed
-- messages (payload: the newest id), coalesced, never before commit. (The test's messages are
-- deleted afterwards.)
SELECT count(*) >= 0 AS primed FROM es._relay_poll();
SELECT es.outbox_publish('regress_relay_a', '{}') AS a1 \gset
SELECT es.outbox_publish('regress_relay_a', '{}') AS a2 \gset
SELECT es.outbox_publish('regress_relay_b', '{}') AS b1 \gset
SELECT channel, payload::bigint - :a1 AS newest_after_a1
  FROM es._relay_poll() WHERE channel LIKE 'es_outbox:%' ORDER BY 1;
SELECT count(*) AS quiet FROM es._relay_poll();
BEGIN;
SELECT es.outbox_publish('regress_relay_a', '{}') - :a1 AS uncommitted;
SELECT count(*) AS not_before_commit FROM es._relay_poll();
COMMIT;
SELECT channel, payload::bigint - :a1 AS newest_after_a1 FROM es._relay_poll();
DELETE FROM es._outbox_messages WHERE topic LIKE 'regress\_relay\_%';

-- 3. es.listen: LISTENs (effective at commit) and returns the channel.
BEGIN;
SELECT es.listen('regress_relay.orders') = es.store_channel('regress_relay.orders') AS listens_on_channel;
ROLLBACK;
SELECT count(*) AS listening_after_rollback FROM pg_listening_channels();

-- 4. The relay of this database: started on demand, visible in es.relay_status().
SELECT es.relay_start() AS started;
DO $$
BEGIN
    FOR i IN 1..100 LOOP
        EXIT WHEN (SELECT running FROM es.relay_status());
        PERFORM pg_sleep(0.05);
    END LOOP;
END $$;
SELECT running, pid <> pg_backend_pid() AS other_process, poll_interval_ms FROM es.relay_status();
SELECT backend_type, datname = current_database() AS this_database
  FROM pg_stat_activity WHERE pid = (SELECT pid FROM es.relay_status());
-- Starting it again is a no-op: still one relay.
SELECT es.relay_start() AS started;
SELECT pg_sleep(0.2);
SELECT count(*) AS relays FROM pg_stat_activity
 WHERE backend_type = 'pg_eventstore relay' AND datname = current_database();

-- 5. Privileges: readers get channels and may listen; the poll is the relay's alone.
CREATE ROLE regress_relay_reader IN ROLE es_reader;
GRANT USAGE ON SCHEMA regress_relay TO regress_relay_reader;
SET ROLE regress_relay_reader;
SELECT es.store_channel('es.events');
SELECT running FROM es.relay_status();
BEGIN;
SELECT es.listen() = es.store_channel() AS listens;
ROLLBACK;
SELECT es.listen('regress_relay.orders');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT * FROM es._relay_poll();
\echo sqlstate: :LAST_ERROR_SQLSTATE
RESET ROLE;

SELECT count(es.drop_event_table(store)) AS dropped FROM es._stores
 WHERE store::text LIKE 'regress_relay.%' OR store::text LIKE '"Regress Relay".%';
DROP SCHEMA regress_relay CASCADE;
DROP SCHEMA "Regress Relay";
DROP ROLE regress_relay_reader;
