-- Event tables (API.md §1): es.create_event_table, es.drop_event_table, the append-only
-- guard, and plain INSERT/COPY going through the same checks as es.append.
-- Errors show message, DETAIL and HINT (no CONTEXT: it names internal line numbers), then
-- the SQLSTATE.
\set SHOW_CONTEXT never
CREATE SCHEMA regress_et;
CREATE SCHEMA regress_et_path;

-- What an event table looks like: the standard columns, in the order of es.event.
CREATE FUNCTION regress_et.columns(t regclass) RETURNS text LANGUAGE sql AS $$
    SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod)
                      || CASE WHEN attnotnull THEN ' not null' ELSE '' END, ', ' ORDER BY attnum)
      FROM pg_attribute WHERE attrelid = t AND attnum > 0 AND NOT attisdropped $$;
-- Its guard triggers and whether they fire in every session_replication_role ('A').
CREATE FUNCTION regress_et.guards(t regclass) RETURNS text LANGUAGE sql AS $$
    SELECT string_agg(tgname || '=' || tgenabled::text, ', ' ORDER BY tgname)
      FROM pg_trigger WHERE tgrelid = t AND tgname LIKE 'es\_%' $$;

-- 1. Creation.
-- Schema-qualified: the result is the table, printed qualified because regress_et is not on
-- the search_path.
SELECT es.create_event_table('regress_et.orders');
SELECT regress_et.columns('regress_et.orders');
SELECT regress_et.columns('es.events') = regress_et.columns('regress_et.orders') AS same_as_es_events;
SELECT regress_et.guards('regress_et.orders');
SELECT store, position_seq, builtin FROM es._stores WHERE store = 'regress_et.orders'::regclass;

-- Unqualified names follow search_path like CREATE TABLE: the first existing schema wins.
SET search_path = regress_et_missing, regress_et_path, public;
SELECT es.create_event_table('inbox');
SELECT es.create_event_table('MixedCase');  -- unquoted: folded to lower case
RESET search_path;
SELECT c.oid::regclass AS created FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'regress_et_path' AND c.relkind = 'r' ORDER BY 1;
-- No schema on the search_path: the same error CREATE TABLE gives.
SET search_path = '';
SELECT es.create_event_table('nowhere');
\echo sqlstate: :LAST_ERROR_SQLSTATE
RESET search_path;

-- Odd names, quoted: spaces, capitals, a quote and a dot inside the identifier.
SELECT es.create_event_table('regress_et."Order Events"');
SELECT es.create_event_table('regress_et."we""ird.name"');
SELECT * FROM es.append('order-1', 0, '[{"type":"Placed"}]', NULL, 'regress_et."Order Events"');
SELECT * FROM es.append('w-1', 0, '[{"type":"W"}]', NULL, 'regress_et."we""ird.name"');
SELECT stream_id, stream_version, event_type
  FROM es.read_stream('order-1', 1, NULL, 'regress_et."Order Events"');
SELECT stream_id, stream_version, event_type
  FROM es.read_stream('w-1', 1, NULL, 'regress_et."we""ird.name"');
-- Not valid as one unquoted identifier.
SELECT es.create_event_table('regress_et.Order Events');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT es.create_event_table('a.b.c.d');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT es.create_event_table('');
\echo sqlstate: :LAST_ERROR_SQLSTATE

-- An existing name is an error, also when the existing relation is not an event table.
SELECT es.create_event_table('regress_et.orders');
\echo sqlstate: :LAST_ERROR_SQLSTATE
CREATE TABLE regress_et.plain (x int);
SELECT es.create_event_table('regress_et.plain');
\echo sqlstate: :LAST_ERROR_SQLSTATE

-- Names that share their first 49 characters, and a name whose natural sequence name is
-- already taken, still get their own position sequence.
SELECT es.create_event_table('regress_et.' || repeat('l', 49) || '_first') IS NOT NULL AS created;
SELECT es.create_event_table('regress_et.' || repeat('l', 49) || '_second') IS NOT NULL AS created;
CREATE TABLE regress_et.taken_position_seq (x int);
SELECT es.create_event_table('regress_et.taken');
SELECT position_seq FROM es._stores WHERE store = 'regress_et.taken'::regclass;
SELECT count(DISTINCT position_seq) AS sequences, count(*) AS stores
  FROM es._stores WHERE store::text LIKE 'regress_et.%';
SELECT * FROM es.append('s', 0, '[{"type":"T"}]', NULL, 'regress_et.taken');

-- 2. Dropping.
SELECT * FROM es.append('o-1', 0, '[{"type":"A"},{"type":"B"}]', 'regress-et-key', 'regress_et_path.inbox');
SELECT count(*) AS keys FROM es._idempotency_keys WHERE key = 'regress-et-key';
SELECT position_seq AS inbox_seq FROM es._stores WHERE store = 'regress_et_path.inbox'::regclass \gset
SELECT es.drop_event_table('regress_et_path.inbox');
SELECT count(*) AS keys FROM es._idempotency_keys WHERE key = 'regress-et-key';
SELECT count(*) AS stores FROM es._stores WHERE store::text LIKE '%inbox%';
SELECT to_regclass('regress_et_path.inbox') AS table_left, to_regclass(:'inbox_seq') AS sequence_left;
-- es.events belongs to the extension.
SELECT es.drop_event_table('es.events');
\echo sqlstate: :LAST_ERROR_SQLSTATE
-- A table that is not an event table.
SELECT es.drop_event_table('regress_et.plain');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT es.drop_event_table(NULL);
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT to_regclass('regress_et.plain') IS NOT NULL AS plain_kept;

-- 3. The append-only guard.
SELECT * FROM es.append('g-1', 0, '[{"type":"A"},{"type":"B"}]', NULL, 'regress_et.orders');
-- As superuser.
UPDATE regress_et.orders SET event_type = 'Changed';
\echo sqlstate: :LAST_ERROR_SQLSTATE
DELETE FROM regress_et.orders;
\echo sqlstate: :LAST_ERROR_SQLSTATE
TRUNCATE regress_et.orders;
\echo sqlstate: :LAST_ERROR_SQLSTATE
-- With session_replication_role = replica (which skips ordinary triggers).
SET session_replication_role = replica;
UPDATE regress_et.orders SET event_type = 'Changed';
\echo sqlstate: :LAST_ERROR_SQLSTATE
DELETE FROM regress_et.orders;
\echo sqlstate: :LAST_ERROR_SQLSTATE
TRUNCATE regress_et.orders;
\echo sqlstate: :LAST_ERROR_SQLSTATE
RESET session_replication_role;
-- As the table's owner.
CREATE ROLE regress_es_et_owner IN ROLE es_admin, es_writer;
GRANT CREATE, USAGE ON SCHEMA regress_et TO regress_es_et_owner;
SET ROLE regress_es_et_owner;
SELECT es.create_event_table('regress_et.owned');
SELECT * FROM es.append('g-1', 0, '[{"type":"A"}]', NULL, 'regress_et.owned');
UPDATE regress_et.owned SET event_type = 'Changed';
\echo sqlstate: :LAST_ERROR_SQLSTATE
DELETE FROM regress_et.owned;
\echo sqlstate: :LAST_ERROR_SQLSTATE
TRUNCATE regress_et.owned;
\echo sqlstate: :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT stream_id, stream_version, event_type FROM regress_et.orders ORDER BY global_position;
SELECT stream_id, stream_version, event_type FROM regress_et.owned ORDER BY global_position;

-- 4. A plain INSERT goes through the same checks.
-- No position: the next one of the store's sequence is assigned.
INSERT INTO regress_et.orders (stream_id, stream_version, event_type)
VALUES ('g-1', 3, 'Plain') RETURNING global_position, stream_id, stream_version, event_type;
-- Versions stay gapless: version 5 without a 4.
INSERT INTO regress_et.orders (stream_id, stream_version, event_type) VALUES ('g-1', 5, 'Gap');
\echo sqlstate: :LAST_ERROR_SQLSTATE
-- A new stream must start at 1.
INSERT INTO regress_et.orders (stream_id, stream_version, event_type) VALUES ('g-2', 2, 'Gap');
\echo sqlstate: :LAST_ERROR_SQLSTATE
INSERT INTO regress_et.orders (stream_id, stream_version, event_type) VALUES ('g-2', 0, 'Zero');
\echo sqlstate: :LAST_ERROR_SQLSTATE
-- A version that already exists is refused by the unique constraint.
INSERT INTO regress_et.orders (stream_id, stream_version, event_type) VALUES ('g-1', 2, 'Again');
\echo sqlstate: :LAST_ERROR_SQLSTATE
-- Bad stream ids and types, like es.append refuses them.
INSERT INTO regress_et.orders (stream_id, stream_version, event_type) VALUES ('', 1, 'T');
\echo sqlstate: :LAST_ERROR_SQLSTATE
INSERT INTO regress_et.orders (stream_id, stream_version, event_type) VALUES ('g-3', 1, '');
\echo sqlstate: :LAST_ERROR_SQLSTATE
-- An explicit position below the store's last one could be skipped by a reader: refused.
INSERT INTO regress_et.orders (global_position, stream_id, stream_version, event_type)
VALUES (2, 'g-3', 1, 'Low');
\echo sqlstate: :LAST_ERROR_SQLSTATE
INSERT INTO regress_et.orders (global_position, stream_id, stream_version, event_type)
VALUES (0, 'g-3', 1, 'Zero');
\echo sqlstate: :LAST_ERROR_SQLSTATE
-- An explicit position above it is kept, and the sequence moves past it.
INSERT INTO regress_et.orders (global_position, stream_id, stream_version, event_type)
VALUES (100, 'g-3', 1, 'High') RETURNING global_position;
SELECT first_position FROM es.append('g-3', 1, '[{"type":"After"}]', NULL, 'regress_et.orders');
-- COPY (what pg_restore does) with rows in neither version nor position order (heap order is
-- not position order when appends interleave): the version chain is checked
-- once the statement is complete, so this is accepted.
COPY regress_et.orders (global_position, stream_id, stream_version, event_type, data) FROM stdin;
203	copy-1	3	C3	{"n": 3}
201	copy-1	1	C1	{"n": 1}
202	copy-1	2	C2	{"n": 2}
\.
-- A COPY with a gap is refused as a whole.
COPY regress_et.orders (global_position, stream_id, stream_version, event_type) FROM stdin;
301	copy-2	1	C1
302	copy-2	3	C3
\.
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT global_position, stream_id, stream_version, event_type, data
  FROM regress_et.orders ORDER BY global_position;
SELECT first_position, last_version FROM es.append('copy-1', 3, '[{"type":"C4"}]', NULL, 'regress_et.orders');

-- Clean up (the roles are cluster-wide).
SELECT es.drop_event_table(store) FROM es._stores
 WHERE store::text LIKE 'regress\_et%' ORDER BY store::text;
DROP SCHEMA regress_et, regress_et_path CASCADE;
DROP ROLE regress_es_et_owner;
