-- The commit-safe global order (API.md §3): what a single session can show. The races are in
-- test/isolation/specs/order_*.spec, the load in test/stress/global_order.cpp.
\set VERBOSITY terse
SELECT es.create_event_table('order_regress');

-- An empty store: head 0, nothing to read.
SELECT es.head_position('order_regress') AS head;
SELECT count(*) FROM es.read_all(store => 'order_regress');

SELECT last_position FROM es.append('order-1', 0,
    '[{"type":"Placed"},{"type":"Paid"},{"type":"Shipped"}]', store => 'order_regress');
SELECT last_position FROM es.append('invoice-1', 0, '[{"type":"Issued"}]', store => 'order_regress');
SELECT es.head_position('order_regress') AS head;

-- Pages follow the position order; after_position is exclusive; max_count bounds the page.
SELECT global_position, stream_id, stream_version, event_type
  FROM es.read_all(store => 'order_regress');
SELECT global_position FROM es.read_all(2, 1, store => 'order_regress');
SELECT global_position FROM es.read_all(3, store => 'order_regress');
SELECT count(*) FROM es.read_all(0, 0, store => 'order_regress');
-- At or past the head (the idle tailing reader's poll): nothing.
SELECT count(*) FROM es.read_all(4, store => 'order_regress');
SELECT count(*) FROM es.read_all(1000, store => 'order_regress');

-- Filters apply below the same horizon.
SELECT global_position FROM es.read_all(store => 'order_regress', event_types => ARRAY['Paid', 'Issued']);
SELECT global_position FROM es.read_all(store => 'order_regress', stream_prefix => 'invoice-');
SELECT global_position FROM es.read_all(store => 'order_regress', stream_prefix => 'order%');

-- Inside the appending transaction its own positions are held back too: they may still roll back.
BEGIN;
SELECT last_position FROM es.append_event('order-1', 3, 'Delivered', NULL, store => 'order_regress');
SELECT es.head_position('order_regress') AS head;
SELECT count(*) FROM es.read_all(4, store => 'order_regress');
ROLLBACK;
SELECT es.head_position('order_regress') AS head;

-- Bad arguments (shown by SQLSTATE).
\set VERBOSITY sqlstate
SELECT count(*) FROM es.read_all(0, -1, store => 'order_regress');
SELECT count(*) FROM es.read_all(store => NULL);
SELECT es.head_position(NULL);
SELECT count(*) FROM es.read_all(store => 'es._stores');

-- SERIALIZABLE readers are refused (ES022); head_position still answers.
BEGIN ISOLATION LEVEL SERIALIZABLE;
SELECT es.head_position('order_regress') AS head;
SELECT count(*) FROM es.read_all(store => 'order_regress');
ROLLBACK;
\set VERBOSITY default

-- A position sequence that hands out cached or descending values would break the order:
-- appending is refused (ES025) until it is set back; reading still works.
ALTER SEQUENCE order_regress_position_seq CACHE 20;
SELECT last_position FROM es.append_event('order-2', NULL, 'Placed', NULL, store => 'order_regress');
\set VERBOSITY sqlstate
ALTER SEQUENCE order_regress_position_seq CACHE 1 CYCLE;
SELECT last_position FROM es.append_event('order-2', NULL, 'Placed', NULL, store => 'order_regress');
ALTER SEQUENCE order_regress_position_seq NO CYCLE INCREMENT -1;
SELECT last_position FROM es.append_event('order-2', NULL, 'Placed', NULL, store => 'order_regress');
\set VERBOSITY terse
ALTER SEQUENCE order_regress_position_seq INCREMENT 1;
SELECT count(*) FROM es.read_all(store => 'order_regress');
SELECT last_position FROM es.append_event('order-2', NULL, 'Placed', NULL, store => 'order_regress');

SELECT es.drop_event_table('order_regress');
