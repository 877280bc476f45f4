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

-- 6. Reads run as the caller: the schema's USAGE, table and column privileges and row-level
-- security apply as to a plain SELECT of the store, also after another role's read prepared
-- the store's plan (the superuser's reads below come first on purpose).
CREATE ROLE regress_rs_reader IN ROLE es_reader;
CREATE ROLE regress_rs_columns IN ROLE es_reader;
CREATE SCHEMA regress_rs_acl;
SELECT es.create_event_table('regress_rs_acl.store');
SELECT last_position FROM es.append('acct-1', 0,
    '[{"type":"Opened","data":{"owner":"alice"}},{"type":"Deposited","data":{"owner":"alice"}}]',
    NULL, 'regress_rs_acl.store');
SELECT last_position FROM es.append('acct-2', 0, '[{"type":"Opened","data":{"owner":"bob"}}]',
    NULL, 'regress_rs_acl.store');
SELECT count(*) AS warm_forward FROM es.read_stream('acct-1', 1, NULL, 'regress_rs_acl.store');
SELECT count(*) AS warm_backward FROM es.read_stream_backward('acct-1', NULL, NULL, 'regress_rs_acl.store');
-- SELECT on the store without USAGE on its schema: refused, like the plain SELECT. Naming the
-- store fails in regclass input already; by OID, the read itself refuses. refusal() shows only
-- the error (where it is noticed, and so its position, depends on the backend's store cache).
CREATE FUNCTION pg_temp.refusal(query text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE query;
    RETURN 'allowed';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
GRANT SELECT ON regress_rs_acl.store TO regress_rs_reader;
SELECT 'regress_rs_acl.store'::regclass::oid AS store_oid \gset
SET ROLE regress_rs_reader;
SELECT pg_temp.refusal('SELECT count(*) FROM regress_rs_acl.store');
SELECT pg_temp.refusal($$SELECT count(*) FROM es.read_stream('acct-1', 1, NULL, 'regress_rs_acl.store')$$);
SELECT pg_temp.refusal($$SELECT count(*) FROM es.read_stream('acct-1', 1, NULL, $$ || :store_oid || ')');
SELECT pg_temp.refusal($$SELECT count(*) FROM es.read_stream_backward('acct-1', NULL, NULL, $$ || :store_oid || ')');
RESET ROLE;
GRANT USAGE ON SCHEMA regress_rs_acl TO regress_rs_reader, regress_rs_columns;
SET ROLE regress_rs_reader;
SELECT stream_version, event_type FROM es.read_stream('acct-1', 1, NULL, 'regress_rs_acl.store');
RESET ROLE;
-- No SELECT: refused, also when max_count 0 would read nothing.
REVOKE SELECT ON regress_rs_acl.store FROM regress_rs_reader;
SET ROLE regress_rs_reader;
SELECT count(*) FROM es.read_stream('acct-1', 1, 0, 'regress_rs_acl.store');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT count(*) FROM es.read_stream_backward('acct-1', NULL, 0, 'regress_rs_acl.store');
\echo sqlstate: :LAST_ERROR_SQLSTATE
RESET ROLE;
-- Column privileges: SELECT on every column of es.event is enough; one missing is refused.
GRANT SELECT (global_position, stream_id, stream_version, event_id, event_type, data, metadata,
              recorded_at) ON regress_rs_acl.store TO regress_rs_columns;
SET ROLE regress_rs_columns;
SELECT stream_version, event_type FROM es.read_stream('acct-1', 1, NULL, 'regress_rs_acl.store');
RESET ROLE;
REVOKE SELECT (metadata) ON regress_rs_acl.store FROM regress_rs_columns;
SET ROLE regress_rs_columns;
SELECT count(*) FROM es.read_stream('acct-1', 1, NULL, 'regress_rs_acl.store');
\echo sqlstate: :LAST_ERROR_SQLSTATE
RESET ROLE;
-- Row-level security: the reader's policy hides bob's stream from it, not from the owner.
GRANT SELECT ON regress_rs_acl.store TO regress_rs_reader;
ALTER TABLE regress_rs_acl.store ENABLE ROW LEVEL SECURITY;
CREATE POLICY regress_rs_alice ON regress_rs_acl.store FOR SELECT TO regress_rs_reader
    USING (data ->> 'owner' = 'alice');
SELECT count(*) AS owner_sees_bob FROM es.read_stream('acct-2', 1, NULL, 'regress_rs_acl.store');
SET ROLE regress_rs_reader;
SELECT stream_id, stream_version FROM es.read_stream('acct-1', 1, NULL, 'regress_rs_acl.store');
SELECT count(*) AS reader_sees_bob FROM es.read_stream('acct-2', 1, NULL, 'regress_rs_acl.store');
SELECT count(*) AS reader_sees_bob FROM es.read_stream_backward('acct-2', NULL, NULL, 'regress_rs_acl.store');
RESET ROLE;
SELECT count(*) AS owner_still_sees_bob FROM es.read_stream('acct-2', 1, NULL, 'regress_rs_acl.store');
ALTER TABLE regress_rs_acl.store DISABLE ROW LEVEL SECURITY;
SET ROLE regress_rs_reader;
SELECT count(*) AS reader_sees_bob_without_rls FROM es.read_stream('acct-2', 1, NULL, 'regress_rs_acl.store');
RESET ROLE;

-- 7. The store changes under a kept plan: renamed, moved, a column added.
ALTER TABLE regress_rs_acl.store RENAME TO renamed;
SELECT stream_version, event_type FROM es.read_stream('acct-1', 2, NULL, 'regress_rs_acl.renamed');
CREATE SCHEMA regress_rs_moved;
ALTER TABLE regress_rs_acl.renamed SET SCHEMA regress_rs_moved;
SELECT stream_version, event_type FROM es.read_stream_backward('acct-1', NULL, 1, 'regress_rs_moved.renamed');
ALTER TABLE regress_rs_moved.renamed ADD COLUMN note text DEFAULT 'n';
SELECT stream_version, event_type FROM es.read_stream('acct-1', 1, NULL, 'regress_rs_moved.renamed');
-- The reader lost USAGE with the move.
SET ROLE regress_rs_reader;
SELECT pg_temp.refusal($$SELECT count(*) FROM es.read_stream('acct-1', 1, NULL, $$ || :store_oid || ')');
SELECT pg_temp.refusal($$SELECT count(*) FROM es.read_stream_backward('acct-1', NULL, NULL, $$ || :store_oid || ')');
RESET ROLE;

-- 8. Long streams: the result spills to disk past work_mem; in the select list too.
SELECT last_version FROM es.append('long-1', 0,
    (SELECT jsonb_agg(jsonb_build_object('type', 'T', 'data', jsonb_build_object('pad', repeat('x', 200), 'i', i)))
       FROM generate_series(1, 3000) i), NULL, 'regress_rs.store');
SET work_mem = '64kB';
SELECT count(*), min(stream_version), max(stream_version), sum((data ->> 'i')::int) AS sum_i,
       bool_and(stream_version = (data ->> 'i')::int) AS in_order
  FROM es.read_stream('long-1', 1, NULL, 'regress_rs.store');
SELECT count(*), max(stream_version) AS first_seen
  FROM es.read_stream_backward('long-1', 2990, 2000, 'regress_rs.store');
RESET work_mem;
SELECT (es.read_stream('cart-1', 4, NULL, 'regress_rs.store')).event_type AS select_list;
SELECT (e).stream_version, (e).event_type
  FROM (SELECT es.read_stream_backward('cart-1', NULL, 2, 'regress_rs.store') AS e) s;

SELECT es.drop_event_table('regress_rs_moved.renamed');
DROP SCHEMA regress_rs_acl, regress_rs_moved;
DROP ROLE regress_rs_reader, regress_rs_columns;
SELECT es.drop_event_table('regress_rs.store'), es.drop_event_table('regress_rs.other');
DROP SCHEMA regress_rs CASCADE;
