-- Subscriptions (API.md §4): create, next, ack, drop, the es.subscriptions view, grants.
-- Errors show message, DETAIL and HINT (no CONTEXT: it names internal line numbers), then
-- the SQLSTATE.
\set SHOW_CONTEXT never
CREATE SCHEMA regress_subs;
SELECT es.create_event_table('regress_subs.orders') AS store \gset

-- Six events: positions 1..6 of the store.
SELECT first_position, last_position FROM es.append('order-1', 0,
    '[{"type":"Placed","data":{"n":1}},{"type":"Paid","data":{"n":2}}]',
    store => 'regress_subs.orders');
SELECT first_position FROM es.append_event('user-1', 0, 'Registered', '{"n":3}',
                                           store => 'regress_subs.orders');
SELECT first_position, last_position FROM es.append('order-2', 0,
    '[{"type":"Placed","data":{"n":4}},{"type":"Shipped","data":{"n":5}},{"type":"Paid","data":{"n":6}}]',
    store => 'regress_subs.orders');

-- 1. Creating.
SELECT es.subscription_create('all', 'regress_subs.orders');
SELECT es.subscription_create('orders-paid', 'regress_subs.orders', ARRAY['Paid'], 'order-');
SELECT es.subscription_create('late', 'regress_subs.orders', start_position => 4);
-- es.events is shared with other suites: start this one at its head.
SELECT es.subscription_create('default-store', start_position => es.head_position());
SELECT name, store, event_types, stream_prefix, position = es.head_position(store) AS at_head,
       acked_at IS NULL AS never_acked
  FROM es._subscriptions ORDER BY name;

-- Names are unique.
SELECT es.subscription_create('all', 'regress_subs.orders');
\echo sqlstate: :LAST_ERROR_SQLSTATE
-- Bad arguments, each refused before anything is written.
SELECT es.subscription_create(NULL);
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT es.subscription_create('');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT es.subscription_create(repeat('x', 257));
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT es.subscription_create('s', start_position => -1);
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT es.subscription_create('s', start_position => NULL);
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT es.subscription_create('s', event_types => '{}');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT es.subscription_create('s', event_types => ARRAY['Paid', NULL]);
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT es.subscription_create('s', stream_prefix => '');
\echo sqlstate: :LAST_ERROR_SQLSTATE
-- Not an event table; NULL store.
SELECT es.subscription_create('s', 'pg_class');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT es.subscription_create('s', NULL);
\echo sqlstate: :LAST_ERROR_SQLSTATE
-- A start position the store has not reached.
SELECT es.subscription_create('s', 'regress_subs.orders', start_position => 7);
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT count(*) AS subscriptions FROM es._subscriptions;

-- 2. Reading: the page after the checkpoint, filtered; next does not move the checkpoint.
SELECT global_position, stream_id, stream_version, event_type, data
  FROM es.subscription_next('all');
SELECT global_position, stream_id, event_type FROM es.subscription_next('all', 2);
SELECT global_position, stream_id, event_type FROM es.subscription_next('all', 2);
SELECT global_position, stream_id, event_type FROM es.subscription_next('orders-paid');
SELECT global_position, stream_id, event_type FROM es.subscription_next('late');
SELECT count(*) FROM es.subscription_next('all', 0);
SELECT count(*) FROM es.subscription_next('default-store');
SELECT * FROM es.subscription_next('nope');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT * FROM es.subscription_next('all', -1);
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT * FROM es.subscription_next('all', NULL);
\echo sqlstate: :LAST_ERROR_SQLSTATE

-- 3. Acknowledging moves the checkpoint forward; the next page starts after it.
SELECT es.subscription_ack('all', 2);
SELECT position, acked_at IS NOT NULL AS acked FROM es._subscriptions WHERE name = 'all';
SELECT global_position, stream_id, event_type FROM es.subscription_next('all', 2);
-- An older or repeated ack is a no-op, not an error.
SELECT es.subscription_ack('all', 1);
SELECT es.subscription_ack('all', 2);
SELECT es.subscription_ack('all', 0);
SELECT position FROM es._subscriptions WHERE name = 'all';
-- A filtered subscription acks the last event it got; what its filters skipped stays behind.
SELECT es.subscription_ack('orders-paid', 6);
SELECT count(*) FROM es.subscription_next('orders-paid');
-- Beyond the head: the consumer cannot have seen it.
SELECT es.subscription_ack('all', 7);
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT es.subscription_ack('all', NULL);
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT es.subscription_ack('all', -5);
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT es.subscription_ack('nope', 1);
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT position FROM es._subscriptions WHERE name = 'all';
-- Not even a direct UPDATE of the registry moves a checkpoint back.
UPDATE es._subscriptions SET position = 1 WHERE name = 'all';
\echo sqlstate: :LAST_ERROR_SQLSTATE

-- 4. The view: head of the store, lag in events. An aborted append leaves a hole in the
-- positions (7 is never visible): lag counts events, not positions.
BEGIN;
SELECT last_position FROM es.append_event('order-3', 0, 'Placed', '{}', store => 'regress_subs.orders');
ROLLBACK;
SELECT first_position FROM es.append_event('order-3', 0, 'Placed', '{}', store => 'regress_subs.orders');
SELECT name, position, head, lag, store FROM es.subscriptions
 WHERE store = 'regress_subs.orders'::regclass ORDER BY name;
SELECT es.subscription_ack('all', 8);
SELECT name, position, head, lag FROM es.subscriptions WHERE name = 'all';
-- The lag is an index-only count over the primary key.
SET enable_seqscan = off;
SET enable_bitmapscan = off;
EXPLAIN (COSTS OFF)
SELECT count(*) FROM regress_subs.orders WHERE global_position > 2 AND global_position <= 8;
RESET enable_seqscan;
RESET enable_bitmapscan;

-- 5. Dropping.
SELECT es.subscription_drop('late');
SELECT es.subscription_drop('late');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT es.subscription_drop(NULL);
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT name FROM es.subscriptions ORDER BY name;

-- 6. Privileges. Readers consume (next, ack, the view); admins create and drop. A reader
-- still needs SELECT on the store itself.
CREATE ROLE regress_subs_reader IN ROLE es_reader;
CREATE ROLE regress_subs_admin IN ROLE es_admin;
GRANT USAGE ON SCHEMA regress_subs TO regress_subs_reader, regress_subs_admin;
GRANT SELECT ON regress_subs.orders TO regress_subs_admin;
SET ROLE regress_subs_admin;
SELECT es.subscription_create('by-admin', 'regress_subs.orders');
RESET ROLE;
SET ROLE regress_subs_reader;
SELECT es.subscription_create('by-reader', 'regress_subs.orders');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT es.subscription_drop('all');
\echo sqlstate: :LAST_ERROR_SQLSTATE
-- No SELECT on regress_subs.orders: neither its events nor its head.
SELECT count(*) FROM es.subscription_next('all');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT es.subscription_ack('by-admin', 3);
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT name, position, head, lag FROM es.subscriptions
 WHERE store = 'regress_subs.orders'::regclass ORDER BY name;
-- The registry itself: checkpoints only.
UPDATE es._subscriptions SET store = 'es.events' WHERE name = 'all';
\echo sqlstate: :LAST_ERROR_SQLSTATE
-- es.events is readable by es_reader.
SELECT es.subscription_ack('default-store', 0);
SELECT count(*) >= 0 AS readable FROM es.subscription_next('default-store');
SELECT head >= position AS has_head, lag >= 0 AS has_lag FROM es.subscriptions
 WHERE name = 'default-store';
RESET ROLE;
GRANT SELECT ON regress_subs.orders TO regress_subs_reader;
SET ROLE regress_subs_reader;
SELECT global_position FROM es.subscription_next('by-admin', 3);
SELECT es.subscription_ack('by-admin', 3);
SELECT name, position, head, lag FROM es.subscriptions WHERE name = 'by-admin';
RESET ROLE;

-- 7. Dumped with the extension, and cleaned with the store.
SELECT 'es._subscriptions'::regclass = ANY (extconfig) AS dumped
  FROM pg_extension WHERE extname = 'pg_eventstore';
SELECT es.drop_event_table('regress_subs.orders');
SELECT name, store FROM es.subscriptions ORDER BY name;

SELECT es.subscription_drop('default-store');
DROP SCHEMA regress_subs CASCADE;
DROP ROLE regress_subs_reader, regress_subs_admin;
