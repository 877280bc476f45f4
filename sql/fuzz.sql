-- Hostile input at every public function: random malformed arguments from a fixed seed (wrong
-- JSON shapes, huge strings, NULLs, negative counts, invalid UUIDs, odd code points). Each call
-- must succeed or fail with an ES*, 22* or 42* SQLSTATE; a failed call writes nothing, a
-- successful append writes its whole batch; the backend survives; no guard scope leaks.
-- The summary counts are deterministic (setseed; every stream id, key and table name starts
-- with fz/fuzz, so other suites' data in the database cannot change them); `unexpected` must
-- stay 0.
SET client_min_messages = warning;
SELECT setseed(0.20240607);
SELECT es.create_event_table('public.fuzz_store');

CREATE TEMP TABLE fuzz_log (fn text, outcome text);
CREATE TEMP TABLE fuzz_unexpected (fn text, args text, sqlstate text, message text);
CREATE TEMP TABLE fuzz_tables (oid oid);

-- One pick from a list, driven by the seeded random().
CREATE FUNCTION pg_temp.pick(variadic options text[]) RETURNS text LANGUAGE sql AS
  $$ SELECT options[1 + floor(random() * array_length(options, 1))::int] $$;

-- Strings of every awkward kind: NULL, empty, blank, over the limits, huge, odd code points
-- (noncharacters, BOM, bidi overrides, combining marks, private use, the last code point),
-- control characters, quoting and format characters.
CREATE FUNCTION pg_temp.fuzz_text() RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    k int := floor(random() * 16)::int;
BEGIN
    RETURN CASE k
        WHEN 0 THEN NULL
        WHEN 1 THEN ''
        WHEN 2 THEN '   '
        WHEN 3 THEN 'fz-stream-' || floor(random() * 5)::int
        WHEN 4 THEN 'fz-' || floor(random() * 3)::int
        WHEN 5 THEN 'fz' || repeat('x', 1022)
        WHEN 6 THEN 'fz' || repeat('x', 1023)
        WHEN 7 THEN 'fz' || repeat(chr(233), 512)
        WHEN 8 THEN 'fz' || repeat('y', 200000)
        WHEN 9 THEN 'fz' || chr(65534) || chr(65535) || chr(1114111) || chr(65279)
        WHEN 10 THEN chr(8238) || 'fz' || chr(8237) || chr(769) || chr(57344)
        WHEN 11 THEN 'fz' || chr(1) || chr(9) || chr(10) || chr(27) || chr(127)
        WHEN 12 THEN E'fz\'"; DROP TABLE es.events; --'
        WHEN 13 THEN 'fz%s%n%d\\x00\u0000'
        WHEN 14 THEN 'fz' || chr(128512) || chr(127987) || chr(8205) || chr(127752)
        ELSE 'fz-order-' || floor(random() * 1000)::int
    END;
END $$;

CREATE FUNCTION pg_temp.fuzz_bigint() RETURNS bigint LANGUAGE sql AS $$
  SELECT (pg_temp.pick(NULL, '-9223372036854775808', '-2', '-1', '0', '1', '2', '3', '1000000',
                       '9223372036854775807', (floor(random() * 10))::text))::bigint $$;

CREATE FUNCTION pg_temp.fuzz_int() RETURNS int LANGUAGE sql AS $$
  SELECT (pg_temp.pick(NULL, '-2147483648', '-1', '0', '1', '5', '1000', '2147483647'))::int $$;

-- A UUID-ish string: valid, braced, upper case, truncated, wrong digits, a fixed one (so
-- duplicate ids occur), a non-string.
CREATE FUNCTION pg_temp.fuzz_id() RETURNS jsonb LANGUAGE sql AS $$
  SELECT pg_temp.pick('"0190a0b0-c0d0-7000-8000-000000000001"',
                      to_jsonb(gen_random_uuid()::text)::text,
                      to_jsonb('{' || upper(gen_random_uuid()::text) || '}')::text,
                      '"0190a0b0-c0d0-7000-8000-00000000000"', '"0190a0b0c0d070008000000000000001"',
                      '"zz90a0b0-c0d0-7000-8000-000000000001"', '""', '42', 'null', '{}',
                      to_jsonb(repeat('a', 5000))::text)::jsonb $$;

-- One element of an events array, most of them broken in one way.
CREATE FUNCTION pg_temp.fuzz_event() RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    k int := floor(random() * 14)::int;
    t text := pg_temp.fuzz_text();
BEGIN
    RETURN CASE k
        WHEN 0 THEN '1'::jsonb
        WHEN 1 THEN '"event"'::jsonb
        WHEN 2 THEN '[{"type": "A"}]'::jsonb
        WHEN 3 THEN '{}'::jsonb
        WHEN 4 THEN jsonb_build_object('type', NULL)
        WHEN 5 THEN jsonb_build_object('type', 5)
        WHEN 6 THEN jsonb_build_object('type', t, 'data', t)
        WHEN 7 THEN jsonb_build_object('type', 'A', 'metadata', pg_temp.pick('[]', '"m"', '1', 'null', '{"k": 1}')::jsonb)
        WHEN 8 THEN jsonb_build_object('type', 'A', 'id', pg_temp.fuzz_id())
        WHEN 9 THEN jsonb_build_object('type', repeat('T', 256 + floor(random() * 2)::int))
        WHEN 10 THEN jsonb_build_object('type', 'Deep', 'data',
                       (repeat('[', 200) || '1' || repeat(']', 200))::jsonb)
        ELSE jsonb_build_object('type', 'Ok', 'data', jsonb_build_object('n', k, 's', t))
    END;
END $$;

-- The events argument: NULL, scalars, objects, empty, and arrays of 1..40 fuzzed elements
-- (valid ones first, then a broken one, tests atomicity).
CREATE FUNCTION pg_temp.fuzz_events() RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    k int := floor(random() * 10)::int;
    n int := 1 + floor(random() * 40)::int;
    arr jsonb := '[]';
BEGIN
    IF k = 0 THEN RETURN NULL; END IF;
    IF k = 1 THEN RETURN pg_temp.pick('null', '42', '"[]"', 'true', '{"type": "A"}', '[]')::jsonb; END IF;
    FOR i IN 1..n LOOP
        IF k >= 7 THEN
            arr := arr || jsonb_build_array(jsonb_build_object('type', 'Ok', 'data', i));
        ELSE
            arr := arr || jsonb_build_array(pg_temp.fuzz_event());
        END IF;
    END LOOP;
    RETURN arr;
END $$;

CREATE FUNCTION pg_temp.fuzz_store() RETURNS regclass LANGUAGE sql AS $$
  SELECT CASE WHEN p ~ '^[0-9]+$' THEN p::oid::regclass ELSE p::regclass END
    FROM pg_temp.pick(NULL, 'es.events', 'es.events', 'public.fuzz_store', 'pg_class',
                      'es._stores', '4294967295', '0') p $$;

CREATE FUNCTION pg_temp.fuzz_types() RETURNS text[] LANGUAGE sql AS $$
  SELECT pg_temp.pick(NULL, '{}', '{NULL}', '{Ok,A}', '{""}',
                      '{' || repeat('z', 3000) || '}')::text[] $$;

-- Records one outcome; SQLSTATEs outside ES/22/42 are kept for the report. 3F000 (schema
-- does not exist) is PostgreSQL's own answer to es.create_event_table('no_such_schema.t').
CREATE FUNCTION pg_temp.note(fn text, args text, state text, msg text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF state IS NULL THEN
        INSERT INTO fuzz_log VALUES (fn, 'ok');
    ELSIF state ~ '^(ES|22|42)' OR (fn = 'create_event_table' AND state = '3F000') THEN
        INSERT INTO fuzz_log VALUES (fn, substr(state, 1, 2));
    ELSE
        INSERT INTO fuzz_log VALUES (fn, 'unexpected');
        INSERT INTO fuzz_unexpected VALUES (fn, left(args, 300), state, left(msg, 300));
    END IF;
END $$;

-- Events stored per store: a failed call must leave it unchanged.
CREATE FUNCTION pg_temp.stored(store regclass) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    IF store IS NULL OR NOT EXISTS (SELECT 1 FROM es._stores s WHERE s.store = stored.store) THEN
        RETURN 0;
    END IF;
    EXECUTE format('SELECT count(*) FROM %s', store) INTO n;
    RETURN n;
END $$;

-- es.append / es.append_event with fuzzed arguments; a success must have written exactly its
-- batch (versions and positions as returned), a failure nothing.
CREATE FUNCTION pg_temp.fuzz_appends(calls int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    s text; v bigint; ev jsonb; key text; st regclass; single boolean;
    r record; before bigint; after bigint; state text; msg text; args text; n bigint;
BEGIN
    FOR i IN 1..calls LOOP
        single := random() < 0.3;
        s := pg_temp.fuzz_text();
        v := CASE WHEN random() < 0.5 THEN NULL ELSE pg_temp.fuzz_bigint() END;
        key := CASE WHEN random() < 0.5 THEN NULL ELSE 'fz-key-' || floor(random() * 20)::int END;
        st := pg_temp.fuzz_store();
        IF single THEN ev := jsonb_build_array(pg_temp.fuzz_event()); ELSE ev := pg_temp.fuzz_events(); END IF;
        IF random() < 0.35 THEN  -- a well-formed call now and then, so successes get checked
            s := 'fz-stream-' || floor(random() * 5)::int;
            st := pg_temp.pick('es.events', 'public.fuzz_store')::regclass;
            IF NOT single THEN
                SELECT jsonb_agg(jsonb_build_object('type', 'Ok', 'data', g))
                  INTO ev FROM generate_series(1, 1 + floor(random() * 30)::int) g;
            END IF;
        END IF;
        args := format('%L, %s, %s, %L, %s', left(s, 40), v, left(ev::text, 200), key, st);
        before := pg_temp.stored(st);
        state := NULL;
        BEGIN
            IF single THEN
                SELECT * INTO r FROM es.append_event(s, v, ev->0->>'type', ev->0->'data',
                                                     ev->0->'metadata', key, st);
            ELSE
                SELECT * INTO r FROM es.append(s, v, ev, key, st);
            END IF;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
        END;
        after := pg_temp.stored(st);
        IF state IS NOT NULL THEN
            IF after <> before THEN
                state := 'PARTIAL'; msg := format('failed call changed %s events', after - before);
            END IF;
        ELSIF r.duplicate THEN
            IF after <> before THEN
                state := 'PARTIAL'; msg := 'an idempotent replay wrote events';
            END IF;
        ELSE
            EXECUTE format('SELECT count(*) FROM %s WHERE stream_id = $1 AND stream_version'
                           ' BETWEEN $2 AND $3 AND global_position BETWEEN $4 AND $5', st)
                INTO n USING s, r.first_version, r.last_version, r.first_position, r.last_position;
            IF after - before <> r.last_version - r.first_version + 1 OR n <> after - before THEN
                state := 'PARTIAL'; msg := format('wrote %s events, %s where reported', after - before, n);
            END IF;
        END IF;
        PERFORM pg_temp.note(CASE WHEN single THEN 'append_event' ELSE 'append' END, args, state, msg);
    END LOOP;
END $$;

-- Every other public function with fuzzed arguments.
CREATE FUNCTION pg_temp.fuzz_others(calls int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    fn text; state text; msg text; args text; dummy bigint; name text; before bigint;
    s text; st regclass; a bigint; b int; c text[]; d text; rc regclass;
BEGIN
    FOR i IN 1..calls LOOP
        fn := pg_temp.pick('read_stream', 'read_stream_backward', 'stream_version', 'read_all',
                           'head_position', 'create_event_table', 'drop_event_table', 'maintain',
                           'uuidv7', 'redact_stream');
        s := pg_temp.fuzz_text(); a := pg_temp.fuzz_bigint(); b := pg_temp.fuzz_int();
        c := pg_temp.fuzz_types(); d := pg_temp.fuzz_text(); st := pg_temp.fuzz_store();
        name := pg_temp.pick(NULL, '', 'fuzz_t' || floor(random() * 4)::int,
                             'public.fuzz_t' || floor(random() * 4)::int, 'a.b.c', '"unclosed',
                             'pg_catalog.fuzz_t', 'no_such_schema.t', repeat('n', 100),
                             chr(8238) || 'fuzz', 'es.events');
        args := format('%L, %s, %s, %L, %L, %s, %L', left(s, 40), a, b, left(c::text, 40),
                       left(d, 40), st, left(name, 40));
        BEGIN
            rc := to_regclass(name);  -- the caller's cast, not the function under test
        EXCEPTION WHEN OTHERS THEN
            rc := NULL;
        END;
        before := pg_temp.stored(st);
        state := NULL;
        BEGIN
            CASE fn
            WHEN 'read_stream' THEN
                PERFORM count(*) FROM es.read_stream(s, a, b, st);
            WHEN 'read_stream_backward' THEN
                PERFORM count(*) FROM es.read_stream_backward(s, a, b, st);
            WHEN 'stream_version' THEN
                dummy := es.stream_version(s, st);
            WHEN 'read_all' THEN
                PERFORM count(*) FROM es.read_all(a, b, c, d, st);
            WHEN 'head_position' THEN
                dummy := es.head_position(st);
            WHEN 'create_event_table' THEN
                INSERT INTO fuzz_tables VALUES (es.create_event_table(name));
            WHEN 'drop_event_table' THEN
                PERFORM es.drop_event_table(rc);
            WHEN 'maintain' THEN
                PERFORM count(*) FROM es.maintain();
            WHEN 'uuidv7' THEN
                PERFORM es.uuidv7();
            WHEN 'redact_stream' THEN
                dummy := es.redact_stream(s, d, st);
            END CASE;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
        END;
        IF fn <> 'drop_event_table' AND pg_temp.stored(st) <> before THEN
            state := 'PARTIAL'; msg := 'the store changed size';
        END IF;
        PERFORM pg_temp.note(fn, args, state, msg);
    END LOOP;
END $$;

-- A reducer with the right signature, for es.aggregate_state.
CREATE FUNCTION public.fuzz_reducer(state jsonb, e es.event) RETURNS jsonb LANGUAGE sql AS
  $$ SELECT state || jsonb_build_object('n', coalesce((state->>'n')::int, 0) + 1) $$;

CREATE FUNCTION pg_temp.fuzz_interval() RETURNS interval LANGUAGE sql AS $$
  SELECT pg_temp.pick(NULL, '-1 second', '0', '1 millisecond', '30 seconds', '1 day',
                      '-100 years', '100 years')::interval $$;

-- The other areas' public functions (outbox, subscriptions, projections, state, notifications)
-- with fuzzed arguments; names of topics, groups, subscriptions and projections start with
-- fz. es.listen and es.relay_start are left out: they start the relay worker.
CREATE FUNCTION pg_temp.fuzz_more(calls int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    fn text; state text; msg text; args text; before bigint; dummy text;
    s text; st regclass; a bigint; b int; c text[]; d text; n text; g text; t text;
    j jsonb; iv interval; ids bigint[]; proc regprocedure; rc regclass;
BEGIN
    FOR i IN 1..calls LOOP
        fn := pg_temp.pick('outbox_channel', 'outbox_publish', 'outbox_route', 'outbox_unroute',
                           'outbox_subscribe', 'outbox_claim', 'outbox_ack', 'outbox_nack',
                           'outbox_retry_dead', 'outbox_purge', 'subscription_create',
                           'subscription_next', 'subscription_ack', 'subscription_drop',
                           'projection_create', 'projection_create_matview', 'projection_drop',
                           'projection_refresh', 'projection_reset', 'projection_rebuild',
                           'snapshot_save', 'snapshot_load', 'aggregate_state', 'store_channel',
                           'relay_status');
        s := pg_temp.fuzz_text(); a := pg_temp.fuzz_bigint(); b := pg_temp.fuzz_int();
        c := pg_temp.fuzz_types(); d := pg_temp.fuzz_text(); st := pg_temp.fuzz_store();
        iv := pg_temp.fuzz_interval();
        n := pg_temp.pick(NULL, '', 'fz-n' || floor(random() * 3)::int, 'fz' || repeat('n', 300),
                          'fz' || chr(8238) || chr(65279));
        g := pg_temp.pick(NULL, '', 'fz-g' || floor(random() * 2)::int, 'fz' || repeat('g', 300));
        t := pg_temp.pick(NULL, '', 'fz-t' || floor(random() * 2)::int, 'fz' || repeat('t', 300),
                          'fz-' || chr(128512));
        j := pg_temp.pick(NULL, 'null', '{}', '[]', '"s"', '{"k": [1, {"x": null}]}',
                          '{"a": "' || repeat('p', 10000) || '"}')::jsonb;
        proc := pg_temp.pick(NULL, 'public.fuzz_reducer(jsonb, es.event)', 'pg_catalog.now()',
                             'es.uuidv7()')::regprocedure;
        rc := pg_temp.pick(NULL, 'pg_class', 'es.events', 'public.fuzz_store')::regclass;
        ids := NULL;
        IF random() < 0.5 THEN
            SELECT array_agg(m.id) INTO ids FROM es.outbox_claim('fz-g0', 'fz-t0', 3, '1 hour') m;
        ELSE
            ids := pg_temp.pick(NULL, '{}', '{NULL}', '{-1}', '{0}', '{9223372036854775807}')::bigint[];
        END IF;
        args := format('%L, %s, %s, %L, %L, %s, %L, %L, %L, %L, %s, %s, %s, %s', left(s, 30), a, b,
                       left(c::text, 30), left(d, 30), st, iv, left(n, 30), left(g, 30),
                       left(t, 30), left(j::text, 30), proc, rc, ids);
        before := pg_temp.stored(st);
        state := NULL;
        BEGIN
            CASE fn
            WHEN 'outbox_channel' THEN dummy := es.outbox_channel(t);
            WHEN 'outbox_publish' THEN dummy := es.outbox_publish(t, j, s, j);
            WHEN 'outbox_route' THEN PERFORM es.outbox_route(t, st, c, d);
            WHEN 'outbox_unroute' THEN PERFORM es.outbox_unroute(t, st);
            WHEN 'outbox_subscribe' THEN PERFORM es.outbox_subscribe(g, t, b);
            WHEN 'outbox_claim' THEN PERFORM count(*) FROM es.outbox_claim(g, t, b, iv);
            WHEN 'outbox_ack' THEN PERFORM es.outbox_ack(g, ids);
            WHEN 'outbox_nack' THEN PERFORM es.outbox_nack(g, ids[1], s, iv);
            WHEN 'outbox_retry_dead' THEN PERFORM es.outbox_retry_dead(g, ids);
            WHEN 'outbox_purge' THEN PERFORM es.outbox_purge(iv);
            WHEN 'subscription_create' THEN PERFORM es.subscription_create(n, st, c, d, a);
            WHEN 'subscription_next' THEN PERFORM count(*) FROM es.subscription_next(n, b);
            WHEN 'subscription_ack' THEN PERFORM es.subscription_ack(n, a);
            WHEN 'subscription_drop' THEN PERFORM es.subscription_drop(n);
            WHEN 'projection_create' THEN
                PERFORM es.projection_create(n, proc, st, c, d,
                                             pg_temp.pick(NULL, 'async', 'inline', 'sync', ''));
            WHEN 'projection_create_matview' THEN
                PERFORM es.projection_create_matview(n, rc, st, random() < 0.5);
            WHEN 'projection_drop' THEN PERFORM es.projection_drop(n);
            WHEN 'projection_refresh' THEN PERFORM es.projection_refresh(n, b);
            WHEN 'projection_reset' THEN PERFORM es.projection_reset(n);
            WHEN 'projection_rebuild' THEN PERFORM es.projection_rebuild(n);
            WHEN 'snapshot_save' THEN PERFORM es.snapshot_save(s, a, j, st, proc);
            WHEN 'snapshot_load' THEN PERFORM count(*) FROM es.snapshot_load(s, st, proc);
            WHEN 'aggregate_state' THEN
                dummy := es.aggregate_state(s, proc, j, a, NULL, st, random() < 0.5);
            WHEN 'store_channel' THEN dummy := es.store_channel(st);
            WHEN 'relay_status' THEN PERFORM count(*) FROM es.relay_status();
            END CASE;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
        END;
        IF pg_temp.stored(st) <> before THEN
            state := 'PARTIAL'; msg := 'the store changed size';
        END IF;
        PERFORM pg_temp.note(fn, args, state, msg);
    END LOOP;
END $$;

-- Leaks of the guards' scopes would show here: still inside the fuzzing transaction, a plain
-- INSERT that skips a version must fail with ES021 and a plain UPDATE with ES020.
CREATE FUNCTION pg_temp.scopes_closed() RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    state text;
BEGIN
    IF es._in_append('es.events'::regclass) THEN RETURN 'append scope leaked'; END IF;
    BEGIN
        INSERT INTO es.events (stream_id, stream_version, event_type)
            VALUES ('fz-scope-probe', 7, 'Probe');
        RETURN 'append scope leaked: a version gap got in';
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE;
    END;
    IF state <> 'ES021' THEN RETURN 'gapped INSERT failed with ' || state; END IF;
    BEGIN
        PERFORM es.append_event('fz-scope-probe', NULL, 'Probe', '{}');
        UPDATE es.events SET data = '{}' WHERE stream_id = 'fz-scope-probe';
        RETURN 'rewrite scope leaked';
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE;
    END;
    RETURN CASE WHEN state = 'ES020' THEN 'closed' ELSE 'UPDATE failed with ' || state END;
END $$;

BEGIN;
SELECT pg_temp.fuzz_appends(1000);
SELECT pg_temp.fuzz_others(1000);
SELECT pg_temp.scopes_closed();
COMMIT;

-- The other areas run in a transaction that is rolled back, and the sequences it advanced are
-- put back, so the suites after this one (outbox ids, ...) find the database as they expect.
-- Their outcomes are reported before the rollback.
CREATE TEMP TABLE fuzz_sequences AS
  SELECT format('%I.%I', schemaname, sequencename) AS seq, last_value, min_value
    FROM pg_sequences WHERE schemaname = 'es';
BEGIN;
SELECT es.outbox_subscribe('fz-g0', 'fz-t0');
SELECT count(*) > 0 AS published FROM (
  SELECT es.outbox_publish('fz-t0', jsonb_build_object('n', g), 'fz-k' || g % 3)
    FROM generate_series(1, 30) g) p;
SELECT pg_temp.fuzz_more(1500);
SELECT pg_temp.scopes_closed();
RESET client_min_messages;

-- Outcomes per function: ok, or the SQLSTATE class of the error.
SELECT fn, count(*) AS calls,
       count(*) FILTER (WHERE outcome = 'ok') AS ok,
       count(*) FILTER (WHERE outcome = 'ES') AS es,
       count(*) FILTER (WHERE outcome = '22') AS "22",
       count(*) FILTER (WHERE outcome = '42') AS "42",
       count(*) FILTER (WHERE outcome = '3F') AS "3F",
       count(*) FILTER (WHERE outcome = 'unexpected') AS unexpected
  FROM fuzz_log GROUP BY fn ORDER BY fn;
SELECT * FROM fuzz_unexpected;
ROLLBACK;
SELECT count(*) > 0 AS sequences_restored FROM (
  SELECT CASE WHEN last_value IS NULL THEN setval(seq, min_value, false)
              ELSE setval(seq, last_value, true) END
    FROM fuzz_sequences) s;

-- Afterwards: versions gapless in every stream, the global order complete and readable.
SELECT count(*) AS streams_with_gaps FROM (
  SELECT stream_id FROM es.events GROUP BY stream_id
  HAVING max(stream_version) <> count(*) OR min(stream_version) <> 1) g;
SELECT count(*) AS streams_with_gaps FROM (
  SELECT stream_id FROM public.fuzz_store GROUP BY stream_id
  HAVING max(stream_version) <> count(*) OR min(stream_version) <> 1) g;
SELECT (SELECT count(*) FROM es.read_all(0, 1000000)) = (SELECT count(*) FROM es.events)
       AS read_all_complete,
       es.head_position() >= (SELECT coalesce(max(global_position), 0) FROM es.events)
       AS head_not_behind;
SELECT pg_temp.scopes_closed();
-- The event tables the fuzzing created and did not drop again go now.
SELECT count(*) AS created, count(s.store) AS still_there FROM fuzz_tables t
  LEFT JOIN es._stores s ON s.store = t.oid;
SELECT (SELECT count(*) FROM es._outbox_groups WHERE consumer_group LIKE 'fz%')
     + (SELECT count(*) FROM es._outbox_routes WHERE topic LIKE 'fz%')
     + (SELECT count(*) FROM es._subscriptions WHERE name LIKE 'fz%')
     + (SELECT count(*) FROM es._projections WHERE name LIKE 'fz%') AS fuzz_registrations_left;
SELECT count(*) AS dropped FROM (
  SELECT es.drop_event_table(s.store) FROM es._stores s
   WHERE s.store = 'public.fuzz_store'::regclass OR s.store IN (SELECT oid FROM fuzz_tables)) d;
DROP FUNCTION public.fuzz_reducer(jsonb, es.event);
