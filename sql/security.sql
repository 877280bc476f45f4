-- Security (API.md §8): search_path hijacking, identifier injection, per-store privileges.
-- Roles are cluster-wide: all are named regress_es_sec_* and dropped at the end.
\set SHOW_CONTEXT never
\set VERBOSITY terse
SET client_min_messages = warning;

-- 0. Audit: every SECURITY DEFINER function of the extension pins search_path.
SELECT p.oid::regprocedure AS definer_without_fixed_search_path
  FROM pg_proc p
 WHERE p.pronamespace = 'es'::regnamespace AND p.prosecdef
   AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (p.proconfig), false);
SELECT count(*) > 10 AS has_definer_functions
  FROM pg_proc p WHERE p.pronamespace = 'es'::regnamespace AND p.prosecdef;

-- 1. search_path hijacking. An es_admin login role owns schema regress_evil with functions,
-- operators and tables named like the builtins and internals the extension uses; each logs
-- its call (and who made it) and then behaves like the real one, so the extension would
-- carry on unawares. With regress_evil first on search_path every entry point is called;
-- no call may run as anyone but the attacker, nor come from a SECURITY DEFINER function or C.
CREATE ROLE regress_es_sec_attacker LOGIN IN ROLE es_admin;
CREATE SCHEMA regress_evil AUTHORIZATION regress_es_sec_attacker;
SET ROLE regress_es_sec_attacker;
CREATE TABLE regress_evil.calls (what text, by_role name DEFAULT current_user, ctx text);
GRANT INSERT ON regress_evil.calls TO PUBLIC;
GRANT USAGE ON SCHEMA regress_evil TO PUBLIC;
CREATE FUNCTION regress_evil.log(what text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    ctx text;
BEGIN
    GET DIAGNOSTICS ctx = PG_CONTEXT;
    INSERT INTO regress_evil.calls (what, ctx) VALUES (what, ctx);
END $$;
CREATE FUNCTION regress_evil.now() RETURNS timestamptz LANGUAGE sql
    AS $$ SELECT regress_evil.log('now()'); SELECT pg_catalog.now() $$;
CREATE FUNCTION regress_evil.clock_timestamp() RETURNS timestamptz LANGUAGE sql
    AS $$ SELECT regress_evil.log('clock_timestamp()'); SELECT pg_catalog.clock_timestamp() $$;
CREATE FUNCTION regress_evil.format(text, text) RETURNS text LANGUAGE sql
    AS $$ SELECT regress_evil.log('format(text,text)'); SELECT pg_catalog.format($1, $2) $$;
CREATE FUNCTION regress_evil.format(text, text, text) RETURNS text LANGUAGE sql
    AS $$ SELECT regress_evil.log('format(text,text,text)'); SELECT pg_catalog.format($1, $2, $3) $$;
CREATE FUNCTION regress_evil.format(text, regclass) RETURNS text LANGUAGE sql
    AS $$ SELECT regress_evil.log('format(text,regclass)'); SELECT pg_catalog.format($1, $2) $$;
CREATE FUNCTION regress_evil.array_length(text[], integer) RETURNS integer LANGUAGE sql
    AS $$ SELECT regress_evil.log('array_length'); SELECT pg_catalog.array_length($1, $2) $$;
CREATE FUNCTION regress_evil.cardinality(text[]) RETURNS integer LANGUAGE sql
    AS $$ SELECT regress_evil.log('cardinality'); SELECT pg_catalog.cardinality($1) $$;
CREATE FUNCTION regress_evil.starts_with(text, text) RETURNS boolean LANGUAGE sql
    AS $$ SELECT regress_evil.log('starts_with'); SELECT pg_catalog.starts_with($1, $2) $$;
CREATE FUNCTION regress_evil.octet_length(text) RETURNS integer LANGUAGE sql
    AS $$ SELECT regress_evil.log('octet_length'); SELECT pg_catalog.octet_length($1) $$;
CREATE FUNCTION regress_evil.to_jsonb(anyelement) RETURNS jsonb LANGUAGE sql
    AS $$ SELECT regress_evil.log('to_jsonb'); SELECT pg_catalog.to_jsonb($1) $$;
CREATE FUNCTION regress_evil.jsonb_typeof(jsonb) RETURNS text LANGUAGE sql
    AS $$ SELECT regress_evil.log('jsonb_typeof'); SELECT pg_catalog.jsonb_typeof($1) $$;
CREATE FUNCTION regress_evil.md5(text) RETURNS text LANGUAGE sql
    AS $$ SELECT regress_evil.log('md5'); SELECT pg_catalog.md5($1) $$;
CREATE FUNCTION regress_evil.jsonb_build_object(text, uuid, text, text, text, bigint, text, bigint, text, text)
    RETURNS jsonb LANGUAGE sql
    AS $$ SELECT regress_evil.log('jsonb_build_object');
          SELECT pg_catalog.jsonb_build_object($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) $$;
CREATE FUNCTION regress_evil.coalesce(bigint, bigint) RETURNS bigint LANGUAGE sql
    AS $$ SELECT regress_evil.log('coalesce'); SELECT CASE WHEN $1 IS NULL THEN $2 ELSE $1 END $$;
CREATE FUNCTION regress_evil.text_eq(text, text) RETURNS boolean LANGUAGE sql
    AS $$ SELECT regress_evil.log('=(text,text)'); SELECT $1 OPERATOR(pg_catalog.=) $2 $$;
CREATE OPERATOR regress_evil.= (FUNCTION = regress_evil.text_eq, LEFTARG = text, RIGHTARG = text);
CREATE FUNCTION regress_evil.int8_eq(bigint, bigint) RETURNS boolean LANGUAGE sql
    AS $$ SELECT regress_evil.log('=(bigint,bigint)'); SELECT $1 OPERATOR(pg_catalog.=) $2 $$;
CREATE OPERATOR regress_evil.= (FUNCTION = regress_evil.int8_eq, LEFTARG = bigint, RIGHTARG = bigint);
CREATE FUNCTION regress_evil.int8_lt(bigint, bigint) RETURNS boolean LANGUAGE sql
    AS $$ SELECT regress_evil.log('<(bigint,bigint)'); SELECT $1 OPERATOR(pg_catalog.<) $2 $$;
CREATE OPERATOR regress_evil.< (FUNCTION = regress_evil.int8_lt, LEFTARG = bigint, RIGHTARG = bigint);
CREATE FUNCTION regress_evil.int8_gt(bigint, bigint) RETURNS boolean LANGUAGE sql
    AS $$ SELECT regress_evil.log('>(bigint,bigint)'); SELECT $1 OPERATOR(pg_catalog.>) $2 $$;
CREATE OPERATOR regress_evil.> (FUNCTION = regress_evil.int8_gt, LEFTARG = bigint, RIGHTARG = bigint);
CREATE FUNCTION regress_evil.int84_pl(bigint, integer) RETURNS bigint LANGUAGE sql
    AS $$ SELECT regress_evil.log('+(bigint,integer)'); SELECT $1 OPERATOR(pg_catalog.+) $2 $$;
CREATE OPERATOR regress_evil.+ (FUNCTION = regress_evil.int84_pl, LEFTARG = bigint, RIGHTARG = integer);
CREATE FUNCTION regress_evil.oid_eq(oid, oid) RETURNS boolean LANGUAGE sql
    AS $$ SELECT regress_evil.log('=(oid,oid)'); SELECT $1 OPERATOR(pg_catalog.=) $2 $$;
CREATE OPERATOR regress_evil.= (FUNCTION = regress_evil.oid_eq, LEFTARG = oid, RIGHTARG = oid);
-- Relations named like the extension's internals.
CREATE FUNCTION regress_evil.seen(what text) RETURNS boolean LANGUAGE sql
    AS $$ SELECT regress_evil.log(what); SELECT false $$;
CREATE VIEW regress_evil._stores AS
    SELECT NULL::regclass AS store, NULL::regclass AS position_seq, false AS builtin
     WHERE regress_evil.seen('_stores');
CREATE VIEW regress_evil.events AS
    SELECT 0::bigint AS global_position WHERE regress_evil.seen('events');
CREATE VIEW regress_evil._outbox_messages AS
    SELECT 0::bigint AS id WHERE regress_evil.seen('_outbox_messages');
CREATE VIEW regress_evil._subscriptions AS
    SELECT ''::text AS name WHERE regress_evil.seen('_subscriptions');
CREATE VIEW regress_evil._projections AS
    SELECT ''::text AS name WHERE regress_evil.seen('_projections');
-- The evil objects work (they log when called directly).
SET search_path = regress_evil, pg_catalog;
SELECT now() IS NOT NULL AS evil_now, 'a'::text = 'a'::text AS evil_eq,
       1::bigint < 2::bigint AS evil_lt, format('%s', 'x'::text) AS evil_format;
SELECT what, by_role FROM regress_evil.calls ORDER BY what;
TRUNCATE regress_evil.calls;
RESET search_path;
RESET ROLE;

-- The extension's side: a user store the attacker may use, a reducer and a handler.
CREATE SCHEMA regress_sec;
GRANT USAGE ON SCHEMA regress_sec TO PUBLIC;
SELECT es.create_event_table('regress_sec.store');
GRANT SELECT, INSERT ON regress_sec.store TO regress_es_sec_attacker;
CREATE TABLE regress_sec.model (stream_id text PRIMARY KEY, n bigint NOT NULL);
GRANT ALL ON regress_sec.model TO regress_es_sec_attacker;
CREATE FUNCTION regress_sec.handle(e es.event) RETURNS void LANGUAGE sql
    SET search_path = pg_catalog, pg_temp AS $$
    INSERT INTO regress_sec.model VALUES (e.stream_id, 1)
        ON CONFLICT (stream_id) DO UPDATE SET n = regress_sec.model.n OPERATOR(pg_catalog.+) 1 $$;
CREATE FUNCTION regress_sec.count_events(state jsonb, e es.event) RETURNS jsonb LANGUAGE sql
    SET search_path = pg_catalog, pg_temp AS $$
    SELECT pg_catalog.jsonb_build_object('n', coalesce((state ->> 'n')::int, 0) OPERATOR(pg_catalog.+) 1) $$;
GRANT EXECUTE ON FUNCTION regress_sec.handle(es.event), regress_sec.count_events(jsonb, es.event) TO PUBLIC;

-- Every entry point, as the attacker, once with `regress_evil, pg_catalog` and once with
-- `regress_evil, public` (pg_catalog implicitly first: only the more specific evil functions
-- could still win).
SET ROLE regress_es_sec_attacker;
CREATE FUNCTION regress_evil.exercise(round int) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
    m es.outbox_message;
    topic text := 'regress-sec-topic-' || round;
    grp text := 'regress-sec-group-' || round;
    stream text := 'regress-sec-' || round;
BEGIN
    PERFORM es.outbox_route(topic, 'regress_sec.store', NULL, 'regress-sec-');
    PERFORM es.outbox_subscribe(grp, topic, 2);
    PERFORM es.subscription_create('regress-sec-sub-' || round, 'regress_sec.store');
    PERFORM es.projection_create('regress-sec-async-' || round, 'regress_sec.handle(es.event)',
                                 'regress_sec.store');
    PERFORM es.projection_create('regress-sec-inline-' || round, 'regress_sec.handle(es.event)',
                                 'regress_sec.store', mode => 'inline');
    PERFORM * FROM es.append(stream, 0, '[{"type":"A"},{"type":"B"}]', 'regress-sec-key-' || round,
                             'regress_sec.store');
    PERFORM * FROM es.append(stream, 0, '[{"type":"A"},{"type":"B"}]', 'regress-sec-key-' || round,
                             'regress_sec.store');
    PERFORM * FROM es.append_event(stream, 2, 'C', '{}', '{}', NULL, 'regress_sec.store');
    PERFORM * FROM es.append_event(stream, NULL, 'D', '{}');
    -- es.events takes the direct append path, which pins search_path only before the SPI
    -- statements it runs: the key's, here a first use and a replay. An idle read_all poll and
    -- head_position pin only on a store cache miss.
    PERFORM * FROM es.append_event(stream, NULL, 'E', '{}', NULL, 'regress-sec-key-e-' || round);
    PERFORM * FROM es.append_event(stream, NULL, 'E', '{}', NULL, 'regress-sec-key-e-' || round);
    PERFORM * FROM es.read_all(es.head_position(), 10);
    PERFORM * FROM es.read_stream(stream, 1, NULL, 'regress_sec.store');
    PERFORM * FROM es.read_stream_backward(stream, NULL, NULL, 'regress_sec.store');
    PERFORM es.stream_version(stream, 'regress_sec.store');
    PERFORM * FROM es.read_all(0, 100, ARRAY['A'], 'regress-', 'regress_sec.store');
    PERFORM es.head_position('regress_sec.store');
    PERFORM * FROM es.subscription_next('regress-sec-sub-' || round, 10);
    PERFORM es.subscription_ack('regress-sec-sub-' || round, es.head_position('regress_sec.store'));
    PERFORM * FROM es.subscriptions;
    PERFORM es.store_channel('regress_sec.store');
    PERFORM es.outbox_channel(topic);
    PERFORM es.outbox_publish(topic, '{"direct":true}', 'k', '{"h":1}');
    FOR m IN SELECT * FROM es.outbox_claim(grp, topic, 1) LOOP
        PERFORM es.outbox_ack(grp, ARRAY[m.id]);
    END LOOP;
    FOR m IN SELECT * FROM es.outbox_claim(grp, topic, 10) LOOP
        PERFORM es.outbox_nack(grp, m.id, 'no', interval '0');
    END LOOP;
    FOR m IN SELECT * FROM es.outbox_claim(grp, topic, 10) LOOP
        PERFORM es.outbox_nack(grp, m.id, 'no again', interval '0');
    END LOOP;
    PERFORM * FROM es.outbox_dead_letters;
    PERFORM es.outbox_retry_dead(grp);
    PERFORM * FROM es.outbox_debezium;
    PERFORM es.outbox_purge(interval '0');
    PERFORM es.outbox_unroute(topic, 'regress_sec.store');
    n := es.projection_refresh('regress-sec-async-' || round);
    RETURN NEXT 'refreshed ' || n;
    PERFORM es.projection_refresh();
    PERFORM * FROM es.projections;
    PERFORM es.projection_rebuild('regress-sec-inline-' || round);
    PERFORM es.projection_reset('regress-sec-async-' || round);
    PERFORM es.snapshot_save(stream, 2, '{"n":2}', 'regress_sec.store', 'regress_sec.count_events(jsonb,es.event)');
    PERFORM * FROM es.snapshot_load(stream, 'regress_sec.store', 'regress_sec.count_events(jsonb,es.event)');
    RETURN NEXT 'state ' || es.aggregate_state(stream, 'regress_sec.count_events(jsonb,es.event)',
                                               store => 'regress_sec.store')::text;
    RETURN NEXT 'state as of ' || es.aggregate_state(stream, 'regress_sec.count_events(jsonb,es.event)',
                                                     as_of => pg_catalog.now(), store => 'regress_sec.store',
                                                     use_snapshots => false)::text;
    PERFORM es.projection_drop('regress-sec-inline-' || round);
    PERFORM es.projection_drop('regress-sec-async-' || round);
    PERFORM es.subscription_drop('regress-sec-sub-' || round);
    PERFORM * FROM es.maintain();
    PERFORM es.relay_status();
END $$;
SET search_path = regress_evil, pg_catalog;
SELECT * FROM regress_evil.exercise(1);
RESET search_path;
SET search_path = regress_evil, public;
SELECT * FROM regress_evil.exercise(2);
RESET search_path;
RESET ROLE;
-- Nothing ran as anyone but the attacker: no SECURITY DEFINER function and no C entry point
-- (whose plans run as the extension owner) touched an evil object. The only calls come from
-- the SECURITY INVOKER functions that run projection handlers and reducers with the caller's
-- rights and search_path (README "Roles"): the attacker hijacked only itself.
SELECT count(*) AS evil_calls_as_others FROM regress_evil.calls WHERE by_role <> 'regress_es_sec_attacker';
SELECT count(*) AS evil_calls_outside_invoker_functions FROM regress_evil.calls
 WHERE ctx !~ 'PL/pgSQL function es\.(projection_refresh|projection_reset|_projection_refresh_one|aggregate_state)\(';
SELECT count(*) > 0 AS evil_objects_were_reachable FROM regress_evil.calls;
SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = 'regress_es_sec_attacker';
SELECT count(*) AS events_in_store FROM regress_sec.store;

-- 2. Identifier injection: names full of quotes, semicolons, SQL, mixed case and unicode are
-- data, never code. A canary table must survive; each name round-trips exactly.
CREATE TABLE regress_sec.canary (x int);
CREATE SCHEMA "regress Sec""; DROP TABLE regress_sec.canary; --";
SELECT es.create_event_table('"regress Sec""; DROP TABLE regress_sec.canary; --"."Évent''s ""Store""; DROP TABLE regress_sec.canary"') AS weird_store \gset
SELECT :'weird_store'::regclass = (SELECT store FROM es._stores ORDER BY created_at DESC, store::oid DESC LIMIT 1) AS registered;
SELECT first_version, last_version FROM es.append(
    $$it's"; DROP TABLE regress_sec.canary; --$$, 0, '[{"type":"Ty''pe\"; DROP TABLE x; --"}]',
    $$key'"; DROP TABLE regress_sec.canary$$, :'weird_store');
SELECT stream_id, event_type FROM es.read_stream($$it's"; DROP TABLE regress_sec.canary; --$$,
                                                 store => :'weird_store');
SELECT es.stream_version($$it's"; DROP TABLE regress_sec.canary; --$$, :'weird_store');
SELECT count(*) FROM es.read_all(0, 10, ARRAY['Ty''pe"; DROP TABLE x; --'], $$it's"$$, :'weird_store');
SELECT es.subscription_create($$Sub'"; DROP TABLE regress_sec.canary; --$$, :'weird_store');
SELECT stream_id FROM es.subscription_next($$Sub'"; DROP TABLE regress_sec.canary; --$$);
SELECT name, lag FROM es.subscriptions WHERE name LIKE 'Sub%';
SELECT es.store_channel(:'weird_store') ~ '^es_store_[a-z0-9_]+_[0-9a-f]{8}$' AS channel_is_plain;
SELECT es.outbox_route($$Tö'pic"; DROP TABLE regress_sec.canary$$, :'weird_store');
SELECT es.outbox_subscribe($$Gr'oup"; DROP TABLE regress_sec.canary$$, $$Tö'pic"; DROP TABLE regress_sec.canary$$);
SELECT first_version FROM es.append_event('second', 0, 'T', '{}', store => :'weird_store');
SELECT key, payload ->> 'stream_id' AS stream, headers ->> 'store' = :'weird_store'::regclass::text AS store_header
  FROM es.outbox_claim($$Gr'oup"; DROP TABLE regress_sec.canary$$, $$Tö'pic"; DROP TABLE regress_sec.canary$$);
SELECT es.outbox_channel($$Tö'pic"; DROP TABLE regress_sec.canary$$);
CREATE TABLE "regress Sec""; DROP TABLE regress_sec.canary; --"."Mödel'""; x" (stream_id text PRIMARY KEY);
CREATE FUNCTION "regress Sec""; DROP TABLE regress_sec.canary; --"."Händ'ler""; x"(e es.event) RETURNS void
    LANGUAGE sql AS $$ INSERT INTO "regress Sec""; DROP TABLE regress_sec.canary; --"."Mödel'""; x" VALUES (e.stream_id) ON CONFLICT DO NOTHING $$;
CREATE FUNCTION "regress Sec""; DROP TABLE regress_sec.canary; --"."reset'""; x"() RETURNS void
    LANGUAGE sql AS $$ DELETE FROM "regress Sec""; DROP TABLE regress_sec.canary; --"."Mödel'""; x" $$;
SELECT es.projection_create($$Proj'"; DROP TABLE regress_sec.canary; --$$,
    '"regress Sec""; DROP TABLE regress_sec.canary; --"."Händ''ler""; x"(es.event)', :'weird_store',
    reset_handler => '"regress Sec""; DROP TABLE regress_sec.canary; --"."reset''""; x"()');
SELECT es.projection_refresh($$Proj'"; DROP TABLE regress_sec.canary; --$$);
SELECT es.projection_rebuild($$Proj'"; DROP TABLE regress_sec.canary; --$$);
SELECT name, position = head AS caught_up, lag_events, last_error FROM es.projections WHERE name LIKE 'Proj%';
SELECT es.projection_create($$Inl'"; DROP TABLE regress_sec.canary; --$$,
    '"regress Sec""; DROP TABLE regress_sec.canary; --"."Händ''ler""; x"(es.event)', :'weird_store', mode => 'inline');
SELECT first_version FROM es.append_event('third', 0, 'T', '{}', store => :'weird_store');
SELECT stream_id FROM "regress Sec""; DROP TABLE regress_sec.canary; --"."Mödel'""; x" ORDER BY 1;
SELECT es.projection_drop($$Inl'"; DROP TABLE regress_sec.canary; --$$);
SELECT es.outbox_unroute($$Tö'pic"; DROP TABLE regress_sec.canary$$, :'weird_store');
SELECT es.drop_event_table(:'weird_store');
SELECT count(*) AS registries_left FROM es._subscriptions WHERE name LIKE 'Sub%';
SELECT to_regclass('regress_sec.canary') IS NOT NULL AS canary_alive;

-- 3. Per-store privileges. regress_sec.private is readable and writable by its owner only;
-- an admin (with SELECT on it) routes it to a topic, subscribes a group, creates a
-- subscription and projections. An es_reader/es_writer without any privilege on the store,
-- and an es_admin without SELECT on it, get nothing through any function.
CREATE ROLE regress_es_sec_outsider LOGIN IN ROLE es_reader, es_writer;
CREATE ROLE regress_es_sec_admin2 LOGIN IN ROLE es_admin;
SELECT es.create_event_table('regress_sec.private');
SELECT first_version FROM es.append('secret-1', 0, '[{"type":"Secret","data":{"pin":1234}}]',
                                    store => 'regress_sec.private');
SELECT es.outbox_route('regress-private', 'regress_sec.private');
SELECT es.outbox_subscribe('regress-private-group', 'regress-private');
SELECT es.subscription_create('regress-private-sub', 'regress_sec.private');
SELECT es.projection_create('regress-private-proj', 'regress_sec.handle(es.event)', 'regress_sec.private');
SELECT first_version FROM es.append('secret-1', 1, '[{"type":"Secret","data":{"pin":5678}}]',
                                    store => 'regress_sec.private');
SELECT es.outbox_publish('regress-private', '{"plain":true}') > 0 AS published;
SET ROLE regress_es_sec_outsider;
SELECT * FROM es.read_stream('secret-1', store => 'regress_sec.private');
SELECT * FROM es.read_stream_backward('secret-1', store => 'regress_sec.private');
SELECT es.stream_version('secret-1', 'regress_sec.private');
SELECT * FROM es.read_all(store => 'regress_sec.private');
SELECT es.head_position('regress_sec.private');
SELECT * FROM es.append('secret-1', NULL, '[{"type":"Forged"}]', store => 'regress_sec.private');
SELECT * FROM es.append_event('secret-2', NULL, 'Forged', '{}', store => 'regress_sec.private');
SELECT * FROM es.subscription_next('regress-private-sub');
SELECT es.subscription_ack('regress-private-sub', 1);
SELECT es.subscription_create('regress-mine', 'regress_sec.private');
SELECT name, position, head, lag FROM es.subscriptions WHERE name = 'regress-private-sub';
SELECT es.listen('regress_sec.private');
SELECT * FROM es.outbox_claim('regress-private-group', 'regress-private');
SELECT count(*) AS routed_visible FROM es.outbox_debezium WHERE aggregatetype = 'regress-private' AND headers ? 'store';
SELECT count(*) AS direct_visible FROM es.outbox_debezium WHERE aggregatetype = 'regress-private' AND NOT coalesce(headers ? 'store', false);
SELECT es.outbox_route('regress-private-2', 'regress_sec.private');
SELECT es.projection_create('regress-mine', 'regress_sec.handle(es.event)', 'regress_sec.private');
SELECT es.projection_refresh('regress-private-proj');
SELECT name, head, lag_events FROM es.projections WHERE name = 'regress-private-proj';
SELECT * FROM es._projection_progress('regress-private-proj');
SELECT * FROM es._projection_backlog('regress_sec.private', 0, 100, NULL, NULL);
SELECT es.aggregate_state('secret-1', 'regress_sec.count_events(jsonb,es.event)', store => 'regress_sec.private');
SELECT es.aggregate_state('secret-1', 'regress_sec.count_events(jsonb,es.event)', as_of => now(), store => 'regress_sec.private');
SELECT * FROM es.snapshot_load('secret-1', 'regress_sec.private');
SELECT es.snapshot_save('secret-1', 1, '{}', 'regress_sec.private');
SELECT count(*) FROM es._snapshots;
SELECT count(*) FROM regress_sec.private;
RESET ROLE;
-- An admin without SELECT on the store cannot route it, project it or count it.
SET ROLE regress_es_sec_admin2;
SELECT es.outbox_route('regress-private-3', 'regress_sec.private');
SELECT es.projection_create('regress-admin2', 'regress_sec.handle(es.event)', 'regress_sec.private', mode => 'inline');
INSERT INTO es._projections (name, store, mode, handler)
    VALUES ('regress-admin2', 'regress_sec.private', 'inline', 'regress_sec.handle(es.event)');
SELECT * FROM es._projection_backlog('regress_sec.private', 0, 100, NULL, NULL);
SELECT es.projection_refresh('regress-private-proj');
SELECT * FROM es.outbox_claim('regress-private-group', 'regress-private');
RESET ROLE;
-- With SELECT granted, the outsider claims the routed messages.
GRANT SELECT ON regress_sec.private TO regress_es_sec_outsider;
SET ROLE regress_es_sec_outsider;
SELECT payload -> 'data' AS data FROM es.outbox_claim('regress-private-group', 'regress-private');
SELECT count(*) AS routed_visible FROM es.outbox_debezium WHERE aggregatetype = 'regress-private' AND headers ? 'store';
RESET ROLE;
-- Nothing the outsiders tried left a trace.
SELECT stream_id, stream_version, event_type FROM regress_sec.private ORDER BY global_position;
SELECT name FROM es._projections WHERE name LIKE 'regress-admin2%' OR name = 'regress-mine';
SELECT topic FROM es._outbox_routes WHERE store = 'regress_sec.private'::regclass ORDER BY topic;

-- Clean up.
SELECT es.drop_event_table('regress_sec.private');
SELECT es.drop_event_table('regress_sec.store');
DROP SCHEMA regress_sec CASCADE;
DROP SCHEMA regress_evil CASCADE;
DROP SCHEMA "regress Sec""; DROP TABLE regress_sec.canary; --" CASCADE;
DELETE FROM es._outbox_groups
 WHERE consumer_group LIKE 'regress-sec-group-%' OR consumer_group IN ('regress-private-group', $$Gr'oup"; DROP TABLE regress_sec.canary$$);
DELETE FROM es._outbox_messages
 WHERE topic LIKE 'regress-sec-topic-%' OR topic IN ('regress-private', $$Tö'pic"; DROP TABLE regress_sec.canary$$);
DROP ROLE regress_es_sec_attacker, regress_es_sec_outsider, regress_es_sec_admin2;
