-- es.append / es.append_event (API.md §2): expected versions, batches, ids, idempotency keys
-- and every bad input. Most calls use a private store (positions start at 1 there); the
-- default store es.events is shared with other suites, so only differences are shown for it.
-- Errors show message, DETAIL and HINT (no CONTEXT), then the SQLSTATE.
\set SHOW_CONTEXT never
CREATE SCHEMA regress_ap;
SELECT es.create_event_table('regress_ap.store');
-- Events in the store, so "nothing was written" is a number.
CREATE FUNCTION regress_ap.written() RETURNS bigint LANGUAGE sql AS
    $$ SELECT count(*) FROM regress_ap.store $$;

-- 1. expected_version.
-- 0: the stream must not exist.
SELECT * FROM es.append('acc-1', 0, '[{"type":"Opened","data":{"owner":"ann"}}]', NULL, 'regress_ap.store');
SELECT * FROM es.append('acc-1', 0, '[{"type":"Opened"}]', NULL, 'regress_ap.store');
\echo sqlstate: :LAST_ERROR_SQLSTATE
-- n: the stream's last version must be exactly n.
SELECT * FROM es.append('acc-1', 1, '[{"type":"Deposited","data":{"amount":10}}]', NULL, 'regress_ap.store');
SELECT * FROM es.append('acc-1', 1, '[{"type":"Deposited","data":{"amount":10}}]', NULL, 'regress_ap.store');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT * FROM es.append('acc-1', 3, '[{"type":"Deposited"}]', NULL, 'regress_ap.store');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT * FROM es.append('acc-2', 5, '[{"type":"Deposited"}]', NULL, 'regress_ap.store');
\echo sqlstate: :LAST_ERROR_SQLSTATE
-- -1: the stream must exist.
SELECT * FROM es.append('acc-1', -1, '[{"type":"Withdrawn","data":{"amount":3}}]', NULL, 'regress_ap.store');
SELECT * FROM es.append('acc-2', -1, '[{"type":"Withdrawn"}]', NULL, 'regress_ap.store');
\echo sqlstate: :LAST_ERROR_SQLSTATE
-- NULL: any version, new stream or not.
SELECT * FROM es.append('acc-1', NULL, '[{"type":"Noted"}]', NULL, 'regress_ap.store');
SELECT * FROM es.append('acc-2', NULL, '[{"type":"Opened"}]', NULL, 'regress_ap.store');
-- Below -1 is not a mode.
SELECT * FROM es.append('acc-1', -2, '[{"type":"Noted"}]', NULL, 'regress_ap.store');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT regress_ap.written() AS written;
SELECT es.stream_version('acc-1', 'regress_ap.store') AS acc_1, es.stream_version('acc-2', 'regress_ap.store') AS acc_2;

-- 2. Batches: atomic, consecutive versions and increasing positions, returned.
SELECT * FROM es.append('batch-1', 0,
    '[{"type":"A","data":1},{"type":"B","data":"two"},{"type":"C","data":[3],"metadata":{"by":"test"}}]',
    NULL, 'regress_ap.store');
SELECT global_position, stream_version, event_type, data, metadata
  FROM regress_ap.store WHERE stream_id = 'batch-1' ORDER BY global_position;
-- A bad third event: nothing of the batch is written.
SELECT * FROM es.append('batch-2', 0, '[{"type":"A"},{"type":"B"},{"data":"no type"}]', NULL, 'regress_ap.store');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT es.stream_version('batch-2', 'regress_ap.store') AS batch_2, regress_ap.written() AS written;
-- Inside a transaction that rolls back: nothing is kept.
BEGIN;
SELECT * FROM es.append('batch-3', 0, '[{"type":"A"},{"type":"B"}]', NULL, 'regress_ap.store');
ROLLBACK;
SELECT es.stream_version('batch-3', 'regress_ap.store') AS batch_3, regress_ap.written() AS written;
-- Two appends in one transaction: versions continue.
BEGIN;
SELECT first_version, last_version FROM es.append('batch-4', 0, '[{"type":"A"}]', NULL, 'regress_ap.store');
SELECT first_version, last_version FROM es.append('batch-4', 1, '[{"type":"B"},{"type":"C"}]', NULL, 'regress_ap.store');
COMMIT;
SELECT stream_version, event_type FROM regress_ap.store WHERE stream_id = 'batch-4' ORDER BY 1;

-- 3. Event ids.
-- Generated ids are UUIDv7: version nibble 7, variant 10xx; all distinct; time-ordered
-- (the 48-bit millisecond prefix never goes down in append order).
SELECT count(*) AS events,
       count(*) FILTER (WHERE substr(event_id::text, 15, 1) = '7') AS version_7,
       count(*) FILTER (WHERE substr(event_id::text, 20, 1) IN ('8', '9', 'a', 'b')) AS variant_rfc,
       count(DISTINCT event_id) AS distinct_ids
  FROM regress_ap.store;
SELECT bool_and(prefix >= prev) AS time_ordered FROM (
    SELECT left(replace(event_id::text, '-', ''), 12) AS prefix,
           lag(left(replace(event_id::text, '-', ''), 12), 1, '') OVER (ORDER BY global_position) AS prev
      FROM regress_ap.store) t;
SELECT es.uuidv7() <> es.uuidv7() AS fresh, substr(es.uuidv7()::text, 15, 1) AS version;
-- Supplied ids are kept (any UUID version).
SELECT * FROM es.append('ids-1', 0,
    '[{"type":"A","id":"0190a6c2-4f5e-7abc-8def-0123456789ab"},{"type":"B","id":"A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"}]',
    NULL, 'regress_ap.store');
SELECT stream_version, event_id FROM regress_ap.store WHERE stream_id = 'ids-1' ORDER BY 1;
SELECT first_version FROM es.append('ids-1', 2, '[{"type":"C","id":null}]', NULL, 'regress_ap.store');
SELECT substr(event_id::text, 15, 1) AS generated_version FROM regress_ap.store
 WHERE stream_id = 'ids-1' AND stream_version = 3;
-- An id that exists in the store (other stream too), or twice in one batch: ES003.
SELECT * FROM es.append('ids-2', 0, '[{"type":"A","id":"0190a6c2-4f5e-7abc-8def-0123456789ab"}]', NULL, 'regress_ap.store');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT * FROM es.append('ids-2', 0,
    '[{"type":"A","id":"11111111-1111-4111-8111-111111111111"},{"type":"B","id":"11111111-1111-4111-8111-111111111111"}]',
    NULL, 'regress_ap.store');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT * FROM es.append('ids-1', NULL, '[{"type":"A","id":"0190a6c2-4f5e-7abc-8def-0123456789ab"}]', NULL, 'regress_ap.store');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT es.stream_version('ids-2', 'regress_ap.store') AS ids_2, es.stream_version('ids-1', 'regress_ap.store') AS ids_1;
-- The same id in another store is fine: ids are unique per store.
SELECT first_version FROM es.append('regress-ap-ids', 0, '[{"type":"A","id":"0190a6c2-4f5e-7abc-8def-0123456789ab"}]');
SELECT count(*) FROM es.events WHERE event_id = '0190a6c2-4f5e-7abc-8def-0123456789ab';

-- 4. Idempotency keys.
SELECT regress_ap.written() AS before_key \gset
SELECT * FROM es.append('pay-1', 0, '[{"type":"Paid","data":{"eur":5}},{"type":"Receipt"}]', 'pay-1/try', 'regress_ap.store');
-- A sequential replay returns the original result with duplicate = true and writes nothing,
-- whatever the stream looks like now (expected_version 0 would fail otherwise).
SELECT * FROM es.append('pay-1', 0, '[{"type":"Paid","data":{"eur":5}},{"type":"Receipt"}]', 'pay-1/try', 'regress_ap.store');
SELECT * FROM es.append('pay-1', 0, '[{"type":"Paid","data":{"eur":5}},{"type":"Receipt"}]', 'pay-1/try', 'regress_ap.store');
SELECT regress_ap.written() - :before_key AS written_since;
-- Reuse with another stream, or other events (type, data, metadata, count), is an error.
SELECT * FROM es.append('pay-2', 0, '[{"type":"Paid","data":{"eur":5}},{"type":"Receipt"}]', 'pay-1/try', 'regress_ap.store');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT * FROM es.append('pay-1', 0, '[{"type":"Paid","data":{"eur":6}},{"type":"Receipt"}]', 'pay-1/try', 'regress_ap.store');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT * FROM es.append('pay-1', 0, '[{"type":"Paid","data":{"eur":5}}]', 'pay-1/try', 'regress_ap.store');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT * FROM es.append('pay-1', 0, '[{"type":"Paid","data":{"eur":5}},{"type":"Receipt","metadata":{}}]', 'pay-1/try', 'regress_ap.store');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT regress_ap.written() - :before_key AS written_since;
-- A key is per store: the same key in es.events is another key (for another stream here).
SELECT first_version, last_version, duplicate
  FROM es.append('regress-ap-pay-1', 0, '[{"type":"Paid","data":{"eur":5}},{"type":"Receipt"}]', 'pay-1/try');
-- A failed append does not use up its key.
SELECT * FROM es.append('pay-3', 5, '[{"type":"Paid"}]', 'pay-3/try', 'regress_ap.store');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT * FROM es.append('pay-3', 0, '[{"type":"Paid"}]', 'pay-3/try', 'regress_ap.store');
-- A key whose transaction rolled back is free again.
BEGIN;
SELECT duplicate FROM es.append('pay-4', 0, '[{"type":"Paid"}]', 'pay-4/try', 'regress_ap.store');
ROLLBACK;
SELECT first_version, duplicate FROM es.append('pay-4', 0, '[{"type":"Paid"}]', 'pay-4/try', 'regress_ap.store');
-- es.append_event shares the keys and the checks.
SELECT * FROM es.append_event('pay-5', 0, 'Paid', '{"eur":1}', '{"m":1}', 'pay-5/try', 'regress_ap.store');
SELECT * FROM es.append_event('pay-5', 0, 'Paid', '{"eur":1}', '{"m":1}', 'pay-5/try', 'regress_ap.store');
SELECT * FROM es.append_event('pay-5', 0, 'Paid', '{"eur":1}', NULL, 'pay-5/try', 'regress_ap.store');
\echo sqlstate: :LAST_ERROR_SQLSTATE
-- A replayed call with an explicit event id is a replay, not a duplicate id.
SELECT first_version, duplicate FROM es.append('pay-6', 0,
    '[{"type":"Paid","id":"22222222-2222-4222-8222-222222222222"}]', 'pay-6/try', 'regress_ap.store');
SELECT first_version, duplicate FROM es.append('pay-6', 0,
    '[{"type":"Paid","id":"22222222-2222-4222-8222-222222222222"}]', 'pay-6/try', 'regress_ap.store');
-- Empty or too long keys (the limit is 512 bytes).
SELECT * FROM es.append('pay-7', 0, '[{"type":"Paid"}]', '', 'regress_ap.store');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT * FROM es.append('pay-7', 0, '[{"type":"Paid"}]', repeat('k', 513), 'regress_ap.store');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT first_version FROM es.append('pay-7', 0, '[{"type":"Paid"}]', repeat('k', 512), 'regress_ap.store');
SELECT key, stream_id, first_version, last_version, first_position, last_position
  FROM es._idempotency_keys WHERE store = 'regress_ap.store'::regclass AND length(key) < 20 ORDER BY key;

-- 5. Bad input: each with its SQLSTATE, and nothing written.
SELECT regress_ap.written() AS before_bad \gset
SELECT * FROM es.append(NULL, NULL, '[{"type":"A"}]', NULL, 'regress_ap.store');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT * FROM es.append('', NULL, '[{"type":"A"}]', NULL, 'regress_ap.store');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT * FROM es.append(repeat('s', 1025), NULL, '[{"type":"A"}]', NULL, 'regress_ap.store');
\echo sqlstate: :LAST_ERROR_SQLSTATE
-- The limit counts bytes: 513 two-byte characters are 1026 bytes.
SELECT * FROM es.append(repeat('é', 513), NULL, '[{"type":"A"}]', NULL, 'regress_ap.store');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT * FROM es.append('bad', NULL, '[]', NULL, 'regress_ap.store');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT * FROM es.append('bad', NULL, '{"type":"A"}', NULL, 'regress_ap.store');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT * FROM es.append('bad', NULL, '"A"', NULL, 'regress_ap.store');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT * FROM es.append('bad', NULL, 'null', NULL, 'regress_ap.store');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT * FROM es.append('bad', NULL, NULL, NULL, 'regress_ap.store');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT * FROM es.append('bad', NULL, '[{"type":"A"}, 42]', NULL, 'regress_ap.store');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT * FROM es.append('bad', NULL, '[["A"]]', NULL, 'regress_ap.store');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT * FROM es.append('bad', NULL, '[{"data":{}}]', NULL, 'regress_ap.store');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT * FROM es.append('bad', NULL, '[{"type":null}]', NULL, 'regress_ap.store');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT * FROM es.append('bad', NULL, '[{"type":7}]', NULL, 'regress_ap.store');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT * FROM es.append('bad', NULL, '[{"type":""}]', NULL, 'regress_ap.store');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT * FROM es.append('bad', NULL, jsonb_build_array(jsonb_build_object('type', repeat('t', 257))), NULL, 'regress_ap.store');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT * FROM es.append('bad', NULL, '[{"type":"A","id":"not-a-uuid"}]', NULL, 'regress_ap.store');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT * FROM es.append('bad', NULL, '[{"type":"A","id":12}]', NULL, 'regress_ap.store');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT * FROM es.append('bad', NULL, '[{"type":"A","metadata":[1]}]', NULL, 'regress_ap.store');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT * FROM es.append('bad', NULL, '[{"type":"A","metadata":"m"}]', NULL, 'regress_ap.store');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT * FROM es.append_event('bad', NULL, 'A', '{}', '[1]', NULL, 'regress_ap.store');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT * FROM es.append_event('bad', NULL, NULL, '{}', NULL, NULL, 'regress_ap.store');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT * FROM es.append_event('bad', NULL, repeat('t', 257), '{}', NULL, NULL, 'regress_ap.store');
\echo sqlstate: :LAST_ERROR_SQLSTATE
-- Unknown stores: a table that is not an event table, a dropped one, NULL, a missing name.
CREATE TABLE regress_ap.not_events (x int);
SELECT * FROM es.append('bad', NULL, '[{"type":"A"}]', NULL, 'regress_ap.not_events');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT es.create_event_table('regress_ap.gone')::oid AS gone_oid \gset
SELECT first_version FROM es.append('bad', NULL, '[{"type":"A"}]', NULL, 'regress_ap.gone');
SELECT es.drop_event_table('regress_ap.gone');
-- (the message names the dropped table's OID, which varies: show the SQLSTATE only)
\set VERBOSITY sqlstate
SELECT * FROM es.append('bad', NULL, '[{"type":"A"}]', NULL, :gone_oid::regclass);
\set VERBOSITY default
SELECT * FROM es.append('bad', NULL, '[{"type":"A"}]', NULL, NULL);
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT * FROM es.append('bad', NULL, '[{"type":"A"}]', NULL, 'regress_ap.no_such_table');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT * FROM es.append('bad', -5, '[{"type":"A"}]', NULL, 'regress_ap.store');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT regress_ap.written() - :before_bad AS written_by_bad_calls,
       es.stream_version('bad', 'regress_ap.store') AS bad_stream;
-- Valid edge values: limits reached exactly, JSON null data, null metadata, extra keys.
SELECT first_version FROM es.append(repeat('é', 512), NULL, jsonb_build_array(jsonb_build_object('type', repeat('t', 256))), NULL, 'regress_ap.store');
SELECT first_version FROM es.append('edge', 0, '[{"type":"A","data":null,"metadata":null,"extra":1}]', NULL, 'regress_ap.store');
SELECT first_version FROM es.append_event('edge', 1, 'B', NULL, 'null', NULL, 'regress_ap.store');
SELECT stream_version, event_type, data, metadata FROM regress_ap.store WHERE stream_id = 'edge' ORDER BY 1;

-- 6. The default store es.events: results relative to its head.
SELECT coalesce(max(global_position), 0) AS head FROM es.events \gset
SELECT first_version, last_version, first_position > :head AS after_head,
       last_position - first_position AS span, duplicate
  FROM es.append('regress-ap-default', 0, '[{"type":"A"},{"type":"B"}]');
SELECT first_version, duplicate FROM es.append_event('regress-ap-default', 2, 'C', '{"k":"v"}');
SELECT stream_version, event_type, data FROM es.read_stream('regress-ap-default');

-- 7. The result row type es.append_result in every calling style; each call appends once
-- (`(es.append(...)).*` included: the function is set-returning, so it is not evaluated per
-- column).
SELECT es.append_event('call-styles', 0, 'A', NULL, NULL, NULL, 'regress_ap.store');
SELECT (es.append('call-styles', 1, '[{"type":"B"}]', NULL, 'regress_ap.store')).*;
SELECT (es.append_event('call-styles', 2, 'C', NULL, NULL, NULL, 'regress_ap.store')).last_version;
SELECT r.first_version, r.duplicate
  FROM es.append_event('call-styles', 3, 'D', NULL, NULL, NULL, 'regress_ap.store') AS r;
DO $$
DECLARE
    r es.append_result;
    v bigint;
BEGIN
    SELECT * INTO r FROM es.append('call-styles', 4, '[{"type":"E"},{"type":"F"}]', NULL, 'regress_ap.store');
    RAISE NOTICE 'into a row: versions % to %, duplicate %', r.first_version, r.last_version, r.duplicate;
    SELECT last_version INTO v FROM es.append_event('call-styles', 6, 'G', NULL, NULL, NULL, 'regress_ap.store');
    RAISE NOTICE 'into a scalar: version %', v;
END $$;
SELECT stream_version, event_type FROM regress_ap.store WHERE stream_id = 'call-styles' ORDER BY 1;
SELECT pg_get_function_result('es.append(text, bigint, jsonb, text, regclass)'::regprocedure) AS append,
       pg_get_function_result('es.append_event(text, bigint, text, jsonb, jsonb, text, regclass)'::regprocedure) AS append_event;

SELECT es.drop_event_table('regress_ap.store');
DROP SCHEMA regress_ap CASCADE;
