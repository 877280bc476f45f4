-- Stream reads (API.md §3): es.read_stream, es.read_stream_backward, es.stream_version.
-- Errors show message, DETAIL and HINT (no CONTEXT), then the SQLSTATE.
\set SHOW_CONTEXT never
CREATE SCHEMA regress_rs;
SELECT es.create_event_table('regress_rs.store');
SELECT es.create_event_table('regress_rs.other');
SELECT last_position FROM es.append('cart-1', 0,
    '[{"type":"Created","data":{"n":1}},{"type":"Added","data":{"n":2}},{"type":"Added","data":{"n":3}},
      {"type":"Removed","data":{"n":4}},{"type":"CheckedOut","data":{"n":5},"metadata":{"user":"u1"}}]',
    NULL, 'regress_rs.store');
SELECT last_position FROM es.append('cart-2', 0, '[{"type":"Created"}]', NULL, 'regress_rs.store');
SELECT last_position FROM es.append('cart-1', 0, '[{"type":"InOther"},{"type":"InOther2"}]', NULL, 'regress_rs.other');

-- 1. Forward.
-- Whole stream; the row type is es.event, every column filled.
SELECT global_position, stream_id, stream_version, event_type, data, metadata,
       event_id IS NOT NULL AS has_id, recorded_at <= now() AS recorded
  FROM es.read_stream('cart-1', 1, NULL, 'regress_rs.store');
SELECT pg_typeof(e) FROM es.read_stream('cart-1', 1, 1, 'regress_rs.store') e;
-- from_version, max_count.
SELECT stream_version, event_type FROM es.read_stream('cart-1', 3, NULL, 'regress_rs.store');
SELECT stream_version, event_type FROM es.read_stream('cart-1', 2, 2, 'regress_rs.store');
SELECT stream_version, event_type FROM es.read_stream('cart-1', 5, 10, 'regress_rs.store');
SELECT count(*) AS past_the_end FROM es.read_stream('cart-1', 6, NULL, 'regress_rs.store');
SELECT count(*) AS max_count_0 FROM es.read_stream('cart-1', 1, 0, 'regress_rs.store');
-- Defaults (NULL from_version means 1); named arguments.
SELECT stream_version FROM es.read_stream('cart-1', NULL, 2, 'regress_rs.store');
SELECT stream_version FROM es.read_stream(stream_id => 'cart-1', max_count => 1, store => 'regress_rs.store');
-- A stream that does not exist reads as empty.
SELECT count(*) AS missing FROM es.read_stream('cart-404', 1, NULL, 'regress_rs.store');
-- Stream ids match exactly: no prefix, case or pattern matching.
SELECT count(*) AS prefix FROM es.read_stream('cart-', 1, NULL, 'regress_rs.store');
SELECT count(*) AS upper FROM es.read_stream('CART-1', 1, NULL, 'regress_rs.store');
SELECT count(*) AS pattern FROM es.read_stream('cart-%', 1, NULL, 'regress_rs.store');

-- 2. Backward.
SELECT stream_version, event_type FROM es.read_stream_backward('cart-1', NULL, NULL, 'regress_rs.store');
SELECT stream_version, event_type FROM es.read_stream_backward('cart-1', NULL, 2, 'regress_rs.store');
SELECT stream_version, event_type FROM es.read_stream_backward('cart-1', 3, NULL, 'regress_rs.store');
SELECT stream_version, event_type FROM es.read_stream_backward('cart-1', 4, 2, 'regress_rs.store');
SELECT stream_version FROM es.read_stream_backward('cart-1', 99, 1, 'regress_rs.store');
SELECT count(*) AS missing FROM es.read_stream_backward('cart-404', NULL, NULL, 'regress_rs.store');

-- 3. stream_version.
SELECT es.stream_version('cart-1', 'regress_rs.store') AS cart_1,
       es.stream_version('cart-2', 'regress_rs.store') AS cart_2,
       es.stream_version('cart-404', 'regress_rs.store') AS missing,
       es.stream_version('cart-1', 'regress_rs.other') AS in_other;

-- 4. Other stores: the same stream id is another stream there.
SELECT global_position, stream_version, event_type FROM es.read_stream('cart-1', 1, NULL, 'regress_rs.other');
SELECT stream_version, event_type FROM es.read_stream_backward('cart-1', NULL, 1, 'regress_rs.other');
-- The default store is es.events.
SELECT first_version FROM es.append('regress-rs-default', 0, '[{"type":"D1"},{"type":"D2"}]');
SELECT stream_version, event_type FROM es.read_stream('regress-rs-default');
SELECT stream_version, event_type FROM es.read_stream_backward('regress-rs-default');
SELECT es.stream_version('regress-rs-default');

-- 5. Bad arguments.
SELECT * FROM es.read_stream(NULL, 1, NULL, 'regress_rs.store');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT * FROM es.read_stream('', 1, NULL, 'regress_rs.store');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT * FROM es.read_stream('cart-1', 0, NULL, 'regress_rs.store');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT * FROM es.read_stream('cart-1', -3, NULL, 'regress_rs.store');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT * FROM es.read_stream('cart-1', 1, -1, 'regress_rs.store');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT * FROM es.read_stream_backward(NULL, NULL, NULL, 'regress_rs.store');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT * FROM es.read_stream_backward('cart-1', 0, NULL, 'regress_rs.store');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT * FROM es.read_stream_backward('cart-1', NULL, -1, 'regress_rs.store');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT es.stream_version(NULL, 'regress_rs.store');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT es.stream_version('', 'regress_rs.store');
\echo sqlstate: :LAST_ERROR_SQLSTATE
-- Unknown stores.
CREATE TABLE regress_rs.plain (x int);
SELECT * FROM es.read_stream('cart-1', 1, NULL, 'regress_rs.plain');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT * FROM es.read_stream_backward('cart-1', NULL, NULL, 'regress_rs.plain');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT es.stream_version('cart-1', 'regress_rs.plain');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT * FROM es.read_stream('cart-1', 1, NULL, NULL);
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT es.stream_version('cart-1', NULL);
\echo sqlstate: :LAST_ERROR_SQLSTATE

SELECT es.drop_event_table('regress_rs.store'), es.drop_event_table('regress_rs.other');
DROP SCHEMA regress_rs CASCADE;
