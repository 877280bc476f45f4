-- pg_eventstore 0.1.0 -> 0.2.0: the outbox, subscriptions, projections, state and snapshots,
-- redaction, store notifications, statistics and the privilege helpers.
--
-- Released with 0.2.0 and frozen: it was assembled from the 0.2.0 area files (src/sql) —
-- 05_security, 40_outbox, 50_subscriptions, 60_projections, 70_state, 80_maintenance (CREATE
-- OR REPLACE: es.maintain() also purges outbox messages, grants kept), 82_redaction, 85_stats —
-- then a revoke block (the new functions start revoked from PUBLIC), 91_grants (the grants of
-- the new areas) and 95_relay. 00_schema, 10_event_tables, 20_append, 30_read and 90_roles were
-- unchanged since 0.1.0. test/t/040_upgrade.pl updates 0.1.0 through every release to the
-- current one and compares the result with a fresh install.
\echo Use "ALTER EXTENSION pg_eventstore UPDATE" to load this file. \quit
-- Privilege helpers (API.md §8: no function lets a role read or write a store it has no grant
-- on). SECURITY DEFINER functions run as the extension owner, so inside them current_user
-- cannot say who called: they check the session's role instead (SET ROLE, else the session
-- user), which SET ROLE cannot change inside a SECURITY DEFINER function. Views and
-- SECURITY INVOKER functions check current_user as usual.

-- The role SECURITY DEFINER functions check store privileges for: the session's current role.
CREATE FUNCTION es._session_role() RETURNS name
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN pg_catalog.current_setting('role') = 'none' THEN session_user
                ELSE pg_catalog.current_setting('role')::pg_catalog.name END
$$;
COMMENT ON FUNCTION es._session_role() IS
    'The session''s current role, whose store privileges SECURITY DEFINER functions check (internal)';

-- Raises 42501 unless `role` holds `privilege` on event table `store`; `what` says what was refused.
CREATE FUNCTION es._require_store_privilege(role name, store regclass, privilege text, what text)
RETURNS void
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT has_table_privilege(role, store, privilege) THEN
        RAISE EXCEPTION 'permission denied to % event table %', what, store
            USING ERRCODE = '42501',
                  DETAIL = format('Role %s has no %s privilege on it.', quote_ident(role), privilege),
                  HINT = 'GRANT the table privilege on the store to the role.';
    END IF;
END $$;
COMMENT ON FUNCTION es._require_store_privilege(name, regclass, text, text) IS
    'Raises 42501 unless a role holds a privilege on an event table (internal)';

-- False when `headers` names (as routed outbox messages do, key "store") an event table that
-- `role` may not SELECT from: a routed message carries the event, so reading it is reading
-- the store. Messages without that header, or naming no event table, are readable.
CREATE FUNCTION es._may_read_routed(headers jsonb, role name) RETURNS boolean
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT $1 ->> 'store' IS NULL
        OR NOT EXISTS (SELECT 1 FROM es._stores s
                         JOIN pg_class c ON c.oid = s.store
                         JOIN pg_namespace n ON n.oid = c.relnamespace
                        WHERE format('%I.%I', n.nspname, c.relname) = $1 ->> 'store'
                          AND NOT has_table_privilege($2, s.store, 'SELECT'))
$$;
COMMENT ON FUNCTION es._may_read_routed(jsonb, name) IS
    'Whether a role may read an outbox message routed from an event table (internal)';
-- Transactional outbox (API.md §5). The design is in docs/outbox.md; in short:
--   _outbox_messages  insert-only; ids from one sequence, made commit-safe by the horizon
--                     (src/pg/outbox.cpp), so a group's intake cursor never skips a late commit
--   _outbox_groups    one row per (consumer group, topic): the intake cursor (HOT updates)
--   _outbox_lanes     per group, one row per key with work outstanding (head = the message that
--                     may be handed out, (head, tail] waiting behind it), or per key-less message
--                     in flight; acked messages leave no row behind
--   _outbox_dead      the groups' dead letters
-- Claims of one group serialize on the group row for the claim's transaction only; acks and
-- nacks lock just the lane they finish.

CREATE TABLE es._outbox_messages (
    id           bigint PRIMARY KEY,
    topic        text NOT NULL,
    key          text,
    payload      jsonb NOT NULL,
    headers      jsonb,
    published_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
CREATE SEQUENCE es._outbox_messages_id_seq AS bigint OWNED BY es._outbox_messages.id;
CREATE INDEX _outbox_messages_topic_id ON es._outbox_messages (topic, id);
CREATE INDEX _outbox_messages_topic_key_id ON es._outbox_messages (topic, key, id)
    WHERE key IS NOT NULL;
COMMENT ON TABLE es._outbox_messages IS 'Outbox messages, insert-only until purged (internal)';
SELECT pg_catalog.pg_extension_config_dump('es._outbox_messages', '');
SELECT pg_catalog.pg_extension_config_dump('es._outbox_messages_id_seq', '');

-- Routes: events appended to `store` that match are published to `topic`.
CREATE TABLE es._outbox_routes (
    topic         text NOT NULL,
    store         regclass NOT NULL REFERENCES es._stores ON DELETE CASCADE,
    event_types   text[],
    stream_prefix text,
    created_at    timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (store, topic)
);
COMMENT ON TABLE es._outbox_routes IS 'Outbox routes from event tables to topics (internal)';
SELECT pg_catalog.pg_extension_config_dump('es._outbox_routes', '');

-- Consumer groups: every message of `topic` with id > start_id is delivered to the group;
-- messages up to intake_id have been taken into its lanes (or acked).
CREATE TABLE es._outbox_groups (
    group_id       int GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    consumer_group text NOT NULL,
    topic          text NOT NULL,
    max_attempts   int NOT NULL,
    start_id       bigint NOT NULL,
    intake_id      bigint NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT pg_catalog.now(),
    UNIQUE (consumer_group, topic)
) WITH (fillfactor = 20);
COMMENT ON TABLE es._outbox_groups IS 'Outbox consumer groups and their intake cursors (internal)';
SELECT pg_catalog.pg_extension_config_dump('es._outbox_groups', '');
SELECT pg_catalog.pg_extension_config_dump(pg_catalog.pg_get_serial_sequence('es._outbox_groups', 'group_id'), '');

-- Work outstanding in a group. Keyed lane (lane_key = the key): head_id is the one message of
-- the key that may be out; the key's messages in (head_id, tail_id] wait behind it. Key-less
-- lane (lane_key NULL): one message (no key, or a re-driven dead letter).
-- leased: head is handed out until due_at; otherwise head may be handed out from due_at on.
CREATE TABLE es._outbox_lanes (
    group_id   int NOT NULL REFERENCES es._outbox_groups ON DELETE CASCADE,
    lane_key   text,
    head_id    bigint NOT NULL,
    tail_id    bigint NOT NULL,
    attempts   int NOT NULL DEFAULT 0,
    leased     boolean NOT NULL DEFAULT false,
    due_at     timestamptz NOT NULL,
    last_error text,
    PRIMARY KEY (group_id, head_id)
) WITH (fillfactor = 70);
CREATE UNIQUE INDEX _outbox_lanes_key ON es._outbox_lanes (group_id, lane_key);
CREATE INDEX _outbox_lanes_due ON es._outbox_lanes (group_id, due_at);
COMMENT ON TABLE es._outbox_lanes IS 'Outbox work in flight, waiting or retrying, per group and key (internal)';
SELECT pg_catalog.pg_extension_config_dump('es._outbox_lanes', '');

CREATE TABLE es._outbox_dead (
    group_id   int NOT NULL REFERENCES es._outbox_groups ON DELETE CASCADE,
    message_id bigint NOT NULL,
    attempts   int NOT NULL,
    last_error text,
    failed_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (group_id, message_id)
);
COMMENT ON TABLE es._outbox_dead IS 'Outbox dead letters per group (internal)';
SELECT pg_catalog.pg_extension_config_dump('es._outbox_dead', '');

-- Purge marks: at marked_at every message of the group's topic below done_below was acked or
-- dead. es.outbox_purge uses the newest mark older than its cutoff (one kept per minute).
CREATE TABLE es._outbox_marks (
    group_id   int NOT NULL REFERENCES es._outbox_groups ON DELETE CASCADE,
    marked_at  timestamptz NOT NULL,
    done_below bigint NOT NULL,
    PRIMARY KEY (group_id, marked_at)
);
COMMENT ON TABLE es._outbox_marks IS 'Outbox acknowledgement watermarks for purging (internal)';
SELECT pg_catalog.pg_extension_config_dump('es._outbox_marks', '');

-- The message row claims return.
CREATE TYPE es.outbox_message AS (
    id           bigint,
    topic        text,
    key          text,
    payload      jsonb,
    headers      jsonb,
    published_at timestamptz,
    attempts     int
);
COMMENT ON TYPE es.outbox_message IS 'One outbox message as es.outbox_claim hands it out';

-- Commit-safe ids (src/pg/outbox.cpp).
CREATE FUNCTION es._outbox_next_id() RETURNS bigint
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'es_outbox_next_id';
COMMENT ON FUNCTION es._outbox_next_id() IS
    'Registers the transaction as a publisher and allocates a message id (internal)';

CREATE FUNCTION es._outbox_horizon() RETURNS bigint
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'es_outbox_horizon';
COMMENT ON FUNCTION es._outbox_horizon() IS
    'Highest message id below which every message is committed or never will be (internal)';

CREATE FUNCTION es._outbox_relay_window(OUT after_id bigint, OUT upto_id bigint)
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'es_outbox_relay_window';
COMMENT ON FUNCTION es._outbox_relay_window() IS
    'Message ids that became safe since this backend''s previous call (internal)';

-- Raises ES041 unless `topic` is a usable topic name.
CREATE FUNCTION es._outbox_check_topic(topic text) RETURNS void
    LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF topic IS NULL OR topic = '' THEN
        RAISE EXCEPTION 'topic must not be NULL or empty' USING ERRCODE = 'ES041';
    END IF;
    IF octet_length(topic) > 256 THEN
        RAISE EXCEPTION 'topic is too long' USING ERRCODE = 'ES041',
            DETAIL = format('The limit is 256 bytes; the topic has %s.', octet_length(topic));
    END IF;
END $$;
COMMENT ON FUNCTION es._outbox_check_topic(text) IS 'Raises ES041 for a NULL, empty or too long topic (internal)';

-- The NOTIFY channel of a topic: readable for short topics, hashed beyond (channel names are
-- limited to 63 bytes).
CREATE FUNCTION es.outbox_channel(topic text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM es._outbox_check_topic(topic);
    IF octet_length(topic) <= 48 THEN
        RETURN 'es_outbox:' || topic;
    END IF;
    RETURN 'es_outbox#' || md5(topic);
END $$;
COMMENT ON FUNCTION es.outbox_channel(text) IS
    'The LISTEN channel that gets a (coalesced) NOTIFY after messages of the topic commit';

-- Records a message in the caller's transaction; returns its id. Consumers see it only if the
-- transaction commits. Errors: ES041 bad topic, ES044 NULL payload, non-object headers,
-- key over 1024 bytes.
CREATE FUNCTION es.outbox_publish(topic text, payload jsonb, key text DEFAULT NULL,
                                  headers jsonb DEFAULT NULL)
RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    new_id bigint;
BEGIN
    PERFORM es._outbox_check_topic(topic);
    IF payload IS NULL THEN
        RAISE EXCEPTION 'payload must not be NULL' USING ERRCODE = 'ES044',
            HINT = 'Publish ''null''::jsonb for an empty message.';
    END IF;
    IF headers IS NOT NULL AND jsonb_typeof(headers) <> 'object' THEN
        RAISE EXCEPTION 'headers must be a JSON object' USING ERRCODE = 'ES044',
            DETAIL = format('headers is a JSON %s.', jsonb_typeof(headers));
    END IF;
    IF octet_length(key) > 1024 THEN
        RAISE EXCEPTION 'key is too long' USING ERRCODE = 'ES044',
            DETAIL = format('The limit is 1024 bytes; the key has %s.', octet_length(key));
    END IF;
    new_id := es._outbox_next_id();
    INSERT INTO es._outbox_messages (id, topic, key, payload, headers)
        VALUES (new_id, topic, key, payload, headers);
    RETURN new_id;
END $$;
COMMENT ON FUNCTION es.outbox_publish(text, jsonb, text, jsonb) IS
    'Records an outbox message in the current transaction; returns its id';

-- Route trigger on event tables with routes: publishes each event es.append inserts to every
-- matching route's topic (key = stream id, payload = the event, headers = id/type/position).
-- Plain INSERT/COPY rows (pg_restore, migrations) are not routed (the trigger's WHEN clause).
CREATE FUNCTION es._outbox_route_event() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT rt.topic FROM es._outbox_routes rt
              WHERE rt.store = TG_RELID::regclass
                AND (rt.event_types IS NULL OR NEW.event_type = ANY (rt.event_types))
                AND (rt.stream_prefix IS NULL OR starts_with(NEW.stream_id, rt.stream_prefix))
              ORDER BY rt.topic
    LOOP
        INSERT INTO es._outbox_messages (id, topic, key, payload, headers)
        VALUES (es._outbox_next_id(), r.topic, NEW.stream_id, to_jsonb(NEW),
                jsonb_build_object('event_id', NEW.event_id, 'event_type', NEW.event_type,
                                   'global_position', NEW.global_position,
                                   'stream_version', NEW.stream_version,
                                   'store', TG_RELID::regclass::text));
    END LOOP;
    RETURN NULL;
END $$;
COMMENT ON FUNCTION es._outbox_route_event() IS
    'Event table trigger: publishes appended events to the routes'' topics (internal)';

-- Creates the route trigger on `store` when it has routes and drops it when it has none, so
-- stores without routes pay nothing.
CREATE FUNCTION es._outbox_sync_trigger(store regclass) RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    has_routes  boolean := EXISTS (SELECT 1 FROM es._outbox_routes r WHERE r.store = _outbox_sync_trigger.store);
    has_trigger boolean := EXISTS (SELECT 1 FROM pg_trigger t
                                    WHERE t.tgrelid = _outbox_sync_trigger.store
                                      AND t.tgname = 'es_outbox_route');
BEGIN
    IF has_routes AND NOT has_trigger THEN
        EXECUTE format('CREATE TRIGGER es_outbox_route AFTER INSERT ON %s FOR EACH ROW'
                       ' WHEN (es._in_append(NEW.tableoid)) EXECUTE FUNCTION es._outbox_route_event()', store);
    ELSIF NOT has_routes AND has_trigger THEN
        EXECUTE format('DROP TRIGGER es_outbox_route ON %s', store);
    END IF;
END $$;
COMMENT ON FUNCTION es._outbox_sync_trigger(regclass) IS
    'Creates or drops the route trigger of an event table to match its routes (internal)';

-- Restore: pg_dump does not dump triggers of the extension's own tables (es.events), so a
-- restored route re-creates its trigger there; user event tables get theirs from the dump.
CREATE FUNCTION es._outbox_route_restored() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_depend d
                WHERE d.classid = 'pg_class'::regclass AND d.objid = NEW.store
                  AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e') THEN
        PERFORM es._outbox_sync_trigger(NEW.store);
    END IF;
    RETURN NULL;
END $$;
COMMENT ON FUNCTION es._outbox_route_restored() IS
    'Route registry trigger: restores the route trigger of extension-owned stores (internal)';
CREATE TRIGGER es_outbox_route_restored AFTER INSERT ON es._outbox_routes
    FOR EACH ROW EXECUTE FUNCTION es._outbox_route_restored();

-- Routes matching events appended to `store` to `topic`, in the appending transaction; an
-- existing route of the pair gets the new filters. Errors: ES041 bad topic, ES017 unknown
-- store, ES044 empty filters.
CREATE FUNCTION es.outbox_route(topic text, store regclass DEFAULT 'es.events',
                                event_types text[] DEFAULT NULL, stream_prefix text DEFAULT NULL)
RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM es._outbox_check_topic(topic);
    PERFORM es._check_store(store);
    -- A route publishes the store's events: only a role that may read them may set one up.
    PERFORM es._require_store_privilege(es._session_role(), store, 'SELECT', 'route');
    IF event_types IS NOT NULL AND (cardinality(event_types) = 0 OR array_position(event_types, NULL) IS NOT NULL) THEN
        RAISE EXCEPTION 'event_types must be NULL or a non-empty array without NULLs'
            USING ERRCODE = 'ES044';
    END IF;
    IF stream_prefix = '' THEN
        RAISE EXCEPTION 'stream_prefix must be NULL or non-empty' USING ERRCODE = 'ES044';
    END IF;
    -- Serializes route changes of the store with each other.
    PERFORM 1 FROM es._stores s WHERE s.store = outbox_route.store FOR UPDATE;
    INSERT INTO es._outbox_routes AS r (topic, store, event_types, stream_prefix)
        VALUES (topic, store, event_types, stream_prefix)
        ON CONFLICT ON CONSTRAINT _outbox_routes_pkey DO UPDATE
            SET event_types = excluded.event_types, stream_prefix = excluded.stream_prefix;
    PERFORM es._outbox_sync_trigger(store);
END $$;
COMMENT ON FUNCTION es.outbox_route(text, regclass, text[], text) IS
    'Publishes every matching event appended to the store to the topic (key = stream id)';

-- Removes a route; the store's trigger goes with its last route. Errors: ES045 no such route.
CREATE FUNCTION es.outbox_unroute(topic text, store regclass DEFAULT 'es.events')
RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM es._outbox_check_topic(topic);
    PERFORM es._check_store(store);
    PERFORM 1 FROM es._stores s WHERE s.store = outbox_unroute.store FOR UPDATE;
    DELETE FROM es._outbox_routes r WHERE r.topic = outbox_unroute.topic AND r.store = outbox_unroute.store;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no route from % to topic "%"', store, topic USING ERRCODE = 'ES045';
    END IF;
    PERFORM es._outbox_sync_trigger(store);
END $$;
COMMENT ON FUNCTION es.outbox_unroute(text, regclass) IS 'Removes a route from an event table to a topic';

-- Creates consumer group `consumer_group` on `topic`: it receives every message committed
-- after this call. Subscribing again only changes max_attempts. Errors: ES041, ES044.
CREATE FUNCTION es.outbox_subscribe(consumer_group text, topic text, max_attempts int DEFAULT 10)
RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    start bigint;
BEGIN
    IF consumer_group IS NULL OR consumer_group = '' THEN
        RAISE EXCEPTION 'consumer_group must not be NULL or empty' USING ERRCODE = 'ES044';
    END IF;
    PERFORM es._outbox_check_topic(topic);
    IF max_attempts IS NULL OR max_attempts < 1 THEN
        RAISE EXCEPTION 'max_attempts must be 1 or more' USING ERRCODE = 'ES044',
            DETAIL = format('max_attempts is %s.', coalesce(max_attempts::text, 'NULL'));
    END IF;
    start := es._outbox_horizon();
    INSERT INTO es._outbox_groups AS g (consumer_group, topic, max_attempts, start_id, intake_id)
        VALUES (consumer_group, topic, max_attempts, start, start)
        ON CONFLICT ON CONSTRAINT _outbox_groups_consumer_group_topic_key
        DO UPDATE SET max_attempts = excluded.max_attempts;
END $$;
COMMENT ON FUNCTION es.outbox_subscribe(text, text, int) IS
    'Creates a consumer group on a topic; it receives every message published afterwards';

-- The group row of (consumer_group, topic), locked for claiming; raises ES040 when missing.
CREATE FUNCTION es._outbox_lock_group(consumer_group text, topic text)
RETURNS es._outbox_groups
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    g es._outbox_groups;
BEGIN
    SELECT * INTO g FROM es._outbox_groups x
     WHERE x.consumer_group = _outbox_lock_group.consumer_group AND x.topic = _outbox_lock_group.topic
       FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'consumer group "%" is not subscribed to topic "%"', consumer_group, topic
            USING ERRCODE = 'ES040', HINT = 'Create it with es.outbox_subscribe().';
    END IF;
    RETURN g;
END $$;
COMMENT ON FUNCTION es._outbox_lock_group(text, text) IS
    'Locks a consumer group for claiming; ES040 when it does not exist (internal)';

-- The lane's head is done (acked or dead): the key's next waiting message becomes the head,
-- ready at once, or the lane goes away.
CREATE FUNCTION es._outbox_advance(lane es._outbox_lanes, topic text) RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    next_id bigint;
BEGIN
    IF lane.lane_key IS NOT NULL AND lane.tail_id > lane.head_id THEN
        SELECT m.id INTO next_id FROM es._outbox_messages m
         WHERE m.topic = _outbox_advance.topic AND m.key = lane.lane_key
           AND m.id > lane.head_id AND m.id <= lane.tail_id
         ORDER BY m.id LIMIT 1;
    END IF;
    IF next_id IS NULL THEN
        DELETE FROM es._outbox_lanes l WHERE l.group_id = lane.group_id AND l.head_id = lane.head_id;
    ELSE
        UPDATE es._outbox_lanes l
           SET head_id = next_id, attempts = 0, leased = false, due_at = '-infinity', last_error = NULL
         WHERE l.group_id = lane.group_id AND l.head_id = lane.head_id;
    END IF;
END $$;
COMMENT ON FUNCTION es._outbox_advance(es._outbox_lanes, text) IS
    'Moves a lane past its finished head (internal)';

-- Moves the lane's head to the group's dead letters and the lane past it.
CREATE FUNCTION es._outbox_bury(lane es._outbox_lanes, topic text, error text) RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO es._outbox_dead AS d (group_id, message_id, attempts, last_error, failed_at)
        VALUES (lane.group_id, lane.head_id, lane.attempts, error, clock_timestamp())
        ON CONFLICT (group_id, message_id) DO UPDATE
            SET attempts = excluded.attempts, last_error = excluded.last_error,
                failed_at = excluded.failed_at;
    PERFORM es._outbox_advance(lane, topic);
END $$;
COMMENT ON FUNCTION es._outbox_bury(es._outbox_lanes, text, text) IS
    'Dead-letters a lane''s head and advances the lane (internal)';

-- Hands up to max_count messages of `topic` to one worker of `consumer_group` for `lease`.
-- Order of service: lanes whose head is ready, due for retry or whose lease ran out (a head
-- whose lease ran out on its last attempt goes to the dead letters instead), then messages
-- new to the group, in id order. Per key at most one message is out or waiting for retry.
-- Every hand-out counts as an attempt. Claims of a group serialize for their transaction:
-- claim in a short transaction of its own. Errors: ES040 unknown group, ES044 bad count or
-- lease, ES046 not READ COMMITTED.
CREATE FUNCTION es.outbox_claim(consumer_group text, topic text, max_count int DEFAULT 10,
                                lease interval DEFAULT '30 seconds')
RETURNS SETOF es.outbox_message
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    g          es._outbox_groups;
    lane       es._outbox_lanes;
    fresh      record;
    claimed_at timestamptz := clock_timestamp();
    lease_end  timestamptz;
    handed     int := 0;
    scanned    int := 0;
    horizon    bigint;
    intake     bigint;
    head       bigint;
    unreadable regclass;
BEGIN
    IF max_count IS NULL OR max_count < 0 THEN
        RAISE EXCEPTION 'max_count must not be NULL or negative' USING ERRCODE = 'ES044',
            DETAIL = format('max_count is %s.', coalesce(max_count::text, 'NULL'));
    END IF;
    IF lease IS NULL OR lease <= interval '0' THEN
        RAISE EXCEPTION 'lease must be a positive interval' USING ERRCODE = 'ES044',
            DETAIL = format('lease is %s.', coalesce(lease::text, 'NULL'));
    END IF;
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'es.outbox_claim must run in a READ COMMITTED transaction'
            USING ERRCODE = 'ES046',
            DETAIL = 'A claim reads messages with a snapshot taken after their safe horizon.',
            HINT = 'Claim in a short READ COMMITTED transaction of its own.';
    END IF;
    PERFORM es._outbox_check_topic(topic);
    g := es._outbox_lock_group(consumer_group, topic);
    -- Routed messages carry events: claiming them needs SELECT on every store routed here.
    FOR unreadable IN SELECT r.store FROM es._outbox_routes r
                       WHERE r.topic = outbox_claim.topic
                         AND NOT has_table_privilege(es._session_role(), r.store, 'SELECT')
                       ORDER BY r.store::oid LIMIT 1 LOOP
        PERFORM es._require_store_privilege(es._session_role(), unreadable, 'SELECT',
                                            'claim messages routed from');
    END LOOP;
    IF max_count = 0 THEN
        RETURN;
    END IF;
    lease_end := claimed_at + lease;

    -- Heads whose lease ran out on their last attempt are dead.
    FOR lane IN SELECT * FROM es._outbox_lanes l
                 WHERE l.group_id = g.group_id AND l.due_at <= claimed_at AND l.leased
                   AND l.attempts >= g.max_attempts
                 ORDER BY l.head_id FOR UPDATE
    LOOP
        PERFORM es._outbox_bury(lane, g.topic, 'lease expired');
    END LOOP;

    -- Lanes with a head to hand out.
    FOR lane IN SELECT * FROM es._outbox_lanes l
                 WHERE l.group_id = g.group_id AND l.due_at <= claimed_at
                 ORDER BY l.due_at, l.head_id LIMIT max_count FOR UPDATE
    LOOP
        UPDATE es._outbox_lanes l
           SET attempts = l.attempts + 1, leased = true, due_at = lease_end
         WHERE l.group_id = lane.group_id AND l.head_id = lane.head_id;
        RETURN QUERY SELECT m.id, m.topic, m.key, m.payload, m.headers, m.published_at,
                            lane.attempts + 1
                       FROM es._outbox_messages m WHERE m.id = lane.head_id;
        handed := handed + 1;
    END LOOP;

    -- Messages new to the group, up to the horizon (read with a later snapshot).
    IF handed < max_count THEN
        horizon := es._outbox_horizon();
        intake := g.intake_id;
        FOR fresh IN SELECT x.id, x.key FROM es._outbox_messages x
                  WHERE x.topic = g.topic AND x.id > g.intake_id AND x.id <= horizon
                  ORDER BY x.id
        LOOP
            EXIT WHEN handed >= max_count OR scanned >= 1000;
            scanned := scanned + 1;
            IF fresh.key IS NULL THEN
                INSERT INTO es._outbox_lanes (group_id, lane_key, head_id, tail_id, attempts, leased, due_at)
                    VALUES (g.group_id, NULL, fresh.id, fresh.id, 1, true, lease_end);
                head := fresh.id;
            ELSE
                INSERT INTO es._outbox_lanes AS l (group_id, lane_key, head_id, tail_id, attempts, leased, due_at)
                    VALUES (g.group_id, fresh.key, fresh.id, fresh.id, 1, true, lease_end)
                    ON CONFLICT (group_id, lane_key) DO UPDATE SET tail_id = excluded.tail_id
                    RETURNING l.head_id INTO head;
            END IF;
            intake := fresh.id;
            IF head = fresh.id THEN
                RETURN QUERY SELECT x.id, x.topic, x.key, x.payload, x.headers, x.published_at, 1
                               FROM es._outbox_messages x WHERE x.id = fresh.id;
                handed := handed + 1;
            END IF;
        END LOOP;
        IF intake > g.intake_id THEN
            UPDATE es._outbox_groups x SET intake_id = intake WHERE x.group_id = g.group_id;
        END IF;
    END IF;
END $$;
COMMENT ON FUNCTION es.outbox_claim(text, text, int, interval) IS
    'Hands out messages of a topic to one worker of a consumer group, under a lease';

-- The lane of `consumer_group` whose head is message `id`, locked; raises ES042 unless the
-- group holds it under a lease and ES043 when that lease has run out.
CREATE FUNCTION es._outbox_held(consumer_group text, id bigint, OUT lane es._outbox_lanes,
                                OUT grp es._outbox_groups)
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    SELECT l.* INTO lane FROM es._outbox_lanes l JOIN es._outbox_groups g USING (group_id)
     WHERE g.consumer_group = _outbox_held.consumer_group AND l.head_id = _outbox_held.id
       FOR UPDATE OF l;
    IF NOT FOUND OR NOT lane.leased THEN
        RAISE EXCEPTION 'message % is not held by consumer group "%"', id, consumer_group
            USING ERRCODE = 'ES042',
            DETAIL = 'It was never handed out to the group, is already acked, waits for retry or is dead.';
    END IF;
    IF lane.due_at <= clock_timestamp() THEN
        RAISE EXCEPTION 'the lease of message % in consumer group "%" has expired', id, consumer_group
            USING ERRCODE = 'ES043',
            DETAIL = format('The lease ended at %s.', lane.due_at),
            HINT = 'The message will be handed out again; claim with a longer lease.';
    END IF;
    SELECT * INTO grp FROM es._outbox_groups g WHERE g.group_id = lane.group_id;
END $$;
COMMENT ON FUNCTION es._outbox_held(text, bigint) IS
    'Locks the lane holding a message under a live lease; ES042/ES043 otherwise (internal)';

-- Raises ES040 unless some topic has `consumer_group`.
CREATE FUNCTION es._outbox_check_group(consumer_group text) RETURNS void
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM es._outbox_groups g WHERE g.consumer_group = _outbox_check_group.consumer_group) THEN
        RAISE EXCEPTION 'consumer group "%" does not exist', consumer_group
            USING ERRCODE = 'ES040', HINT = 'Create it with es.outbox_subscribe().';
    END IF;
END $$;
COMMENT ON FUNCTION es._outbox_check_group(text) IS 'Raises ES040 for an unknown consumer group (internal)';

-- Acknowledges messages the group holds: they are never handed to it again, and the next
-- message of each key becomes ready. All or nothing. Errors: ES040 unknown group, ES042 a
-- message not held, ES043 a lease expired, ES044 NULL ids.
CREATE FUNCTION es.outbox_ack(consumer_group text, ids bigint[]) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    held record;
    one  bigint;
BEGIN
    IF ids IS NULL OR array_position(ids, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'ids must be an array of message ids without NULLs' USING ERRCODE = 'ES044';
    END IF;
    PERFORM es._outbox_check_group(consumer_group);
    FOR one IN SELECT DISTINCT u FROM unnest(ids) u ORDER BY u LOOP
        held := es._outbox_held(consumer_group, one);
        PERFORM es._outbox_advance(held.lane, (held.grp).topic);
    END LOOP;
END $$;
COMMENT ON FUNCTION es.outbox_ack(text, bigint[]) IS
    'Acknowledges messages a consumer group holds; they are never handed to it again';

-- Reports a failed attempt: the message is handed out again after retry_after (default:
-- exp(attempts) seconds, at most 6 hours) and holds its key back meanwhile; after the group's
-- max_attempts it moves to the dead letters. Errors: ES040, ES042, ES043, ES044.
CREATE FUNCTION es.outbox_nack(consumer_group text, id bigint, error text,
                               retry_after interval DEFAULT NULL)
RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    held record;
    lane es._outbox_lanes;
BEGIN
    IF id IS NULL THEN
        RAISE EXCEPTION 'id must not be NULL' USING ERRCODE = 'ES044';
    END IF;
    IF retry_after < interval '0' THEN
        RAISE EXCEPTION 'retry_after must not be negative' USING ERRCODE = 'ES044',
            DETAIL = format('retry_after is %s.', retry_after);
    END IF;
    PERFORM es._outbox_check_group(consumer_group);
    held := es._outbox_held(consumer_group, id);
    lane := held.lane;
    IF lane.attempts >= (held.grp).max_attempts THEN
        PERFORM es._outbox_bury(lane, (held.grp).topic, error);
        RETURN;
    END IF;
    UPDATE es._outbox_lanes l
       SET leased = false, last_error = error,
           due_at = clock_timestamp() + coalesce(retry_after,
                        make_interval(secs => least(exp(least(lane.attempts, 10)), 21600)))
     WHERE l.group_id = lane.group_id AND l.head_id = lane.head_id;
END $$;
COMMENT ON FUNCTION es.outbox_nack(text, bigint, text, interval) IS
    'Reports a failed attempt: retried after a delay or, after max_attempts, dead-lettered';

-- Every group's dead letters.
CREATE VIEW es.outbox_dead_letters AS
    SELECT g.consumer_group, d.message_id AS id, m.topic, m.key, m.payload, d.attempts,
           d.last_error, d.failed_at
      FROM es._outbox_dead d
      JOIN es._outbox_groups g USING (group_id)
      JOIN es._outbox_messages m ON m.id = d.message_id
     WHERE es._may_read_routed(m.headers, current_user);
COMMENT ON VIEW es.outbox_dead_letters IS
    'Messages that failed max_attempts times, per consumer group (routed ones: of readable stores)';

-- Re-drives dead letters of the group (NULL ids: all): each is handed out again, outside its
-- key's order, with a fresh attempt count. Returns how many. Errors: ES040, ES044.
CREATE FUNCTION es.outbox_retry_dead(consumer_group text, ids bigint[] DEFAULT NULL)
RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    n bigint;
BEGIN
    IF ids IS NOT NULL AND array_position(ids, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'ids must not contain NULLs' USING ERRCODE = 'ES044';
    END IF;
    PERFORM es._outbox_check_group(consumer_group);
    WITH redriven AS (
        DELETE FROM es._outbox_dead d
         USING es._outbox_groups g
         WHERE g.group_id = d.group_id AND g.consumer_group = outbox_retry_dead.consumer_group
           AND (ids IS NULL OR d.message_id = ANY (ids))
        RETURNING d.group_id, d.message_id)
    INSERT INTO es._outbox_lanes (group_id, lane_key, head_id, tail_id, attempts, leased, due_at)
        SELECT r.group_id, NULL, r.message_id, r.message_id, 0, false, '-infinity' FROM redriven r;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;
COMMENT ON FUNCTION es.outbox_retry_dead(text, bigint[]) IS
    'Re-drives dead letters of a consumer group (NULL ids: all); returns how many';

-- Records, per group, how far every message is acked or dead (one mark kept per minute,
-- 30 days), so es.outbox_purge can tell how long ago a message was last acked.
CREATE FUNCTION es._outbox_mark() RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    mark_time timestamptz := clock_timestamp();
BEGIN
    INSERT INTO es._outbox_marks (group_id, marked_at, done_below)
        SELECT g.group_id, mark_time,
               least(g.intake_id + 1,
                     (SELECT min(l.head_id) FROM es._outbox_lanes l
                       WHERE l.group_id = g.group_id AND l.lane_key IS NOT NULL),
                     (SELECT min(l.head_id) FROM es._outbox_lanes l
                       WHERE l.group_id = g.group_id AND l.lane_key IS NULL))
          FROM es._outbox_groups g;
    DELETE FROM es._outbox_marks k
     WHERE k.marked_at < mark_time
       AND (k.marked_at < mark_time - interval '30 days'
            OR date_trunc('minute', k.marked_at) = date_trunc('minute', mark_time));
END $$;
COMMENT ON FUNCTION es._outbox_mark() IS 'Records the groups'' acknowledgement watermarks (internal)';

-- Deletes messages every group has acked, last acked more than older_than ago; never one a
-- group has not acked (outstanding or dead-lettered). Messages published before any group
-- existed count as acked by all. Returns how many. Errors: ES044 NULL or negative interval.
CREATE FUNCTION es.outbox_purge(older_than interval DEFAULT '1 day') RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    cutoff timestamptz;
    n      bigint;
BEGIN
    IF older_than IS NULL OR older_than < interval '0' THEN
        RAISE EXCEPTION 'older_than must be a non-negative interval' USING ERRCODE = 'ES044';
    END IF;
    PERFORM es._outbox_mark();
    cutoff := clock_timestamp() - older_than;
    WITH done AS (
        SELECT g.group_id, g.topic, g.start_id,
               coalesce((SELECT max(k.done_below) FROM es._outbox_marks k
                          WHERE k.group_id = g.group_id AND k.marked_at <= cutoff), 0) AS done_below
          FROM es._outbox_groups g)
    DELETE FROM es._outbox_messages m
     WHERE m.published_at <= cutoff
       AND NOT EXISTS (SELECT 1 FROM done
                        WHERE done.topic = m.topic AND done.start_id < m.id
                          AND (m.id >= done.done_below
                               OR EXISTS (SELECT 1 FROM es._outbox_dead d
                                           WHERE d.group_id = done.group_id AND d.message_id = m.id)
                               OR EXISTS (SELECT 1 FROM es._outbox_lanes l
                                           WHERE l.group_id = done.group_id AND l.head_id = m.id)));
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;
COMMENT ON FUNCTION es.outbox_purge(interval) IS
    'Deletes messages every consumer group acked more than older_than ago; never an unacked one';

-- es.maintain()'s share: fully-acked messages older than a day.
CREATE FUNCTION es._maintain_outbox() RETURNS bigint
    LANGUAGE sql SET search_path = pg_catalog, pg_temp
    RETURN es.outbox_purge(interval '1 day');
COMMENT ON FUNCTION es._maintain_outbox() IS 'Purges outbox messages acked over a day ago (internal)';

-- Debezium outbox-event-router shape: Kafka Connect reads it as it would an outbox table
-- (aggregatetype routes to the Kafka topic, aggregateid is the record key).
CREATE VIEW es.outbox_debezium AS
    SELECT m.id,
           m.topic AS aggregatetype,
           m.key AS aggregateid,
           coalesce(m.headers ->> 'event_type', m.headers ->> 'type', m.topic) AS type,
           m.payload,
           m.headers,
           m.published_at
      FROM es._outbox_messages m
     WHERE es._may_read_routed(m.headers, current_user);
COMMENT ON VIEW es.outbox_debezium IS
    'Outbox messages in the Debezium outbox shape (id, aggregatetype, aggregateid, type, payload); routed ones only of readable stores';

-- Relay hook (src/pg/relay.cpp calls es._relay_poll(), which includes these rows): one row per
-- topic with messages committed since the previous call in this backend; payload = the
-- topic's newest such message id. Never called by writers: they never NOTIFY.
CREATE FUNCTION es._relay_poll_outbox() RETURNS TABLE (channel text, payload text)
    LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    w record;
BEGIN
    w := es._outbox_relay_window();
    IF w.upto_id <= w.after_id THEN
        RETURN;
    END IF;
    RETURN QUERY
        SELECT es.outbox_channel(m.topic), max(m.id)::text
          FROM es._outbox_messages m
         WHERE m.id > w.after_id AND m.id <= w.upto_id
         GROUP BY m.topic
         ORDER BY m.topic;
END $$;
COMMENT ON FUNCTION es._relay_poll_outbox() IS
    'Topics with newly committed messages since the previous call, for the NOTIFY relay (internal)';
-- Subscriptions (API.md §4): named, checkpointed readers of a store's commit-safe global order.
-- A subscription remembers the position its consumer has acknowledged; es.subscription_next
-- reads the page after it through es.read_all (so it inherits the safe horizon, the caller's
-- SELECT privilege on the store and the filters), es.subscription_ack moves it forward only.
-- SQLSTATEs: ES030 unknown subscription, ES031 duplicate name, ES032 invalid argument,
-- ES033 position beyond the head.

CREATE TABLE es._subscriptions (
    name          text PRIMARY KEY,
    store         regclass NOT NULL REFERENCES es._stores ON DELETE CASCADE,
    event_types   text[],
    stream_prefix text,
    position      bigint NOT NULL CHECK (position >= 0),
    created_at    timestamptz NOT NULL DEFAULT pg_catalog.now(),
    acked_at      timestamptz
);
CREATE INDEX ON es._subscriptions (store);
COMMENT ON TABLE es._subscriptions IS 'Subscriptions and their checkpoints (internal)';
SELECT pg_catalog.pg_extension_config_dump('es._subscriptions', '');

-- Checkpoints never move backwards, not even through a direct UPDATE of the registry.
CREATE FUNCTION es._subscription_forward_only() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NEW.position < OLD.position THEN
        RAISE EXCEPTION 'subscription "%" cannot move back from % to %',
            OLD.name, OLD.position, NEW.position USING ERRCODE = 'ES032',
            HINT = 'Drop and re-create the subscription with start_position to replay.';
    END IF;
    RETURN NEW;
END $$;
COMMENT ON FUNCTION es._subscription_forward_only() IS
    'es._subscriptions trigger: a checkpoint never moves backwards (internal)';
CREATE TRIGGER es_forward_only BEFORE UPDATE OF position ON es._subscriptions
    FOR EACH ROW EXECUTE FUNCTION es._subscription_forward_only();

-- Raises ES032 for a NULL, empty or over-long subscription name.
CREATE FUNCTION es._check_subscription_name(name text) RETURNS void
    LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF name IS NULL OR name = '' THEN
        RAISE EXCEPTION 'subscription name must not be NULL or empty' USING ERRCODE = 'ES032';
    END IF;
    IF pg_catalog.octet_length(name) > 256 THEN
        RAISE EXCEPTION 'subscription name is too long' USING ERRCODE = 'ES032',
            DETAIL = pg_catalog.format('%s bytes; at most 256 are allowed.',
                                       pg_catalog.octet_length(name));
    END IF;
END $$;
COMMENT ON FUNCTION es._check_subscription_name(text) IS
    'Raises ES032 for a NULL, empty or over-long subscription name (internal)';

-- Creates a subscription that starts after start_position (0: from the beginning).
-- Errors: ES031 name taken, ES032 bad argument, ES033 start_position beyond the head,
-- ES017 not an event table, 42501 no SELECT on the store.
CREATE FUNCTION es.subscription_create(
    name text,
    store regclass DEFAULT 'es.events',
    event_types text[] DEFAULT NULL,
    stream_prefix text DEFAULT NULL,
    start_position bigint DEFAULT 0)
RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    head bigint;
BEGIN
    PERFORM es._check_subscription_name(name);
    PERFORM es._check_store(store);
    IF start_position IS NULL OR start_position < 0 THEN
        RAISE EXCEPTION 'start_position must be 0 or more' USING ERRCODE = 'ES032',
            DETAIL = pg_catalog.format('start_position is %s.', coalesce(start_position::text, 'NULL'));
    END IF;
    IF event_types IS NOT NULL AND (pg_catalog.cardinality(event_types) = 0
            OR pg_catalog.array_position(event_types, NULL) IS NOT NULL
            OR '' = ANY (event_types)) THEN
        RAISE EXCEPTION 'event_types must be NULL or a non-empty array of non-empty types'
            USING ERRCODE = 'ES032', HINT = 'Pass NULL to receive every event type.';
    END IF;
    IF stream_prefix = '' THEN
        RAISE EXCEPTION 'stream_prefix must be NULL or non-empty' USING ERRCODE = 'ES032',
            HINT = 'Pass NULL to receive every stream.';
    END IF;
    head := es.head_position(store);
    IF start_position > head THEN
        RAISE EXCEPTION 'start_position % is beyond the head of "%"', start_position, store
            USING ERRCODE = 'ES033',
            DETAIL = pg_catalog.format('The head position is %s.', head);
    END IF;
    INSERT INTO es._subscriptions AS s (name, store, event_types, stream_prefix, position)
        VALUES (subscription_create.name, subscription_create.store,
                subscription_create.event_types, subscription_create.stream_prefix,
                start_position)
        ON CONFLICT ON CONSTRAINT _subscriptions_pkey DO NOTHING;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'subscription "%" already exists', name USING ERRCODE = 'ES031',
            HINT = 'Pick another name, or es.subscription_drop() the old one first.';
    END IF;
    -- Subscribers may LISTEN on es.store_channel(store): make sure the relay runs.
    PERFORM es.relay_start();
END $$;
COMMENT ON FUNCTION es.subscription_create(text, regclass, text[], text, bigint) IS
    'Creates a named, checkpointed subscription to a store''s global order';

-- The subscription's registry row, or ES030 when it does not exist.
CREATE FUNCTION es._subscription(name text) RETURNS es._subscriptions
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    sub es._subscriptions;
BEGIN
    PERFORM es._check_subscription_name(name);
    SELECT * INTO sub FROM es._subscriptions s WHERE s.name = _subscription.name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'subscription "%" does not exist', name USING ERRCODE = 'ES030',
            HINT = 'See the view es.subscriptions; create one with es.subscription_create().';
    END IF;
    RETURN sub;
END $$;
COMMENT ON FUNCTION es._subscription(text) IS
    'A subscription''s registry row; raises ES030 when it does not exist (internal)';

-- The next events after the checkpoint, in the commit-safe global order, filtered like the
-- subscription; does not move the checkpoint (ack does).
-- Errors: ES030 unknown, ES032 bad max_count, ES022 in SERIALIZABLE, 42501 no SELECT on store.
CREATE FUNCTION es.subscription_next(name text, max_count int DEFAULT 100)
RETURNS SETOF es.event
    LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    sub es._subscriptions;
BEGIN
    sub := es._subscription(name);
    IF max_count IS NULL OR max_count < 0 THEN
        RAISE EXCEPTION 'max_count must be 0 or more' USING ERRCODE = 'ES032',
            DETAIL = pg_catalog.format('max_count is %s.', coalesce(max_count::text, 'NULL'));
    END IF;
    RETURN QUERY SELECT * FROM es.read_all(sub.position, max_count, sub.event_types,
                                            sub.stream_prefix, sub.store);
END $$;
COMMENT ON FUNCTION es.subscription_next(text, int) IS
    'Next page of a subscription after its checkpoint; does not move the checkpoint';

-- Moves the checkpoint to acked_position. An ack at or below the checkpoint is a no-op (acks
-- may race or arrive late); concurrent acks serialize on the row and the highest wins.
-- Errors: ES030 unknown, ES032 NULL or negative position, ES033 beyond the head (the consumer
-- cannot have seen it), 42501 no SELECT on the store.
CREATE FUNCTION es.subscription_ack(name text, acked_position bigint)
RETURNS void
    LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    sub es._subscriptions;
    head bigint;
BEGIN
    sub := es._subscription(name);
    IF acked_position IS NULL OR acked_position < 0 THEN
        RAISE EXCEPTION 'acked_position must be 0 or more' USING ERRCODE = 'ES032',
            DETAIL = pg_catalog.format('acked_position is %s.',
                                       coalesce(acked_position::text, 'NULL'));
    END IF;
    IF acked_position <= sub.position THEN
        RETURN;
    END IF;
    head := es.head_position(sub.store);
    IF acked_position > head THEN
        RAISE EXCEPTION 'cannot ack position % of subscription "%": beyond the head',
            acked_position, name USING ERRCODE = 'ES033',
            DETAIL = pg_catalog.format('The head position of %s is %s.', sub.store, head),
            HINT = 'Ack the global_position of the last event es.subscription_next returned.';
    END IF;
    -- Re-checked on the newest row version when a concurrent ack got there first.
    UPDATE es._subscriptions s
       SET position = acked_position, acked_at = pg_catalog.now()
     WHERE s.name = subscription_ack.name AND s.position < acked_position;
END $$;
COMMENT ON FUNCTION es.subscription_ack(text, bigint) IS
    'Moves a subscription''s checkpoint forward (never backwards; older acks are no-ops)';

-- Drops a subscription. Errors: ES030 unknown, ES032 bad name.
CREATE FUNCTION es.subscription_drop(name text) RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM es._check_subscription_name(name);
    DELETE FROM es._subscriptions s WHERE s.name = subscription_drop.name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'subscription "%" does not exist', name USING ERRCODE = 'ES030';
    END IF;
END $$;
COMMENT ON FUNCTION es.subscription_drop(text) IS 'Drops a subscription and its checkpoint';

-- Events in `store` with after < global_position <= upto. The predicate is a range of the
-- primary key and count(*) needs no column, so this is an index-only scan of the primary key
-- index (heap visits only for pages not yet all-visible): cheap, unlike head - position, which
-- would count the holes aborted appends leave in the sequence.
CREATE FUNCTION es._count_events_between(store regclass, after bigint, upto bigint)
RETURNS bigint
    LANGUAGE plpgsql STABLE STRICT SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    n bigint;
BEGIN
    IF upto <= after THEN
        RETURN 0;
    END IF;
    EXECUTE pg_catalog.format(
        'SELECT count(*) FROM %s WHERE global_position > $1 AND global_position <= $2', store)
        INTO n USING after, upto;
    RETURN n;
END $$;
COMMENT ON FUNCTION es._count_events_between(regclass, bigint, bigint) IS
    'Number of events in a store between two positions, by an index-only count (internal)';

-- Every subscription with its checkpoint, the store's head and the lag: events of the store
-- between checkpoint and head (all of them, also those the filters skip: that is what the
-- consumer still has to pass over). head and lag are NULL for stores the caller cannot read.
CREATE VIEW es.subscriptions AS
SELECT s.name, s.position, h.head,
       es._count_events_between(s.store, s.position, h.head) AS lag,
       s.store, s.event_types, s.stream_prefix, s.created_at, s.acked_at
  FROM es._subscriptions s
  LEFT JOIN LATERAL (
      SELECT es.head_position(s.store) AS head
       WHERE pg_catalog.has_table_privilege(s.store, 'SELECT')) h ON true;
COMMENT ON VIEW es.subscriptions IS
    'Subscriptions: checkpoint, head of the store and lag in events';
-- Projections (API.md §6): read models kept up to date by handlers, inline (inside the
-- appending transaction) or async (by es.projection_refresh, checkpointed), and materialized
-- views refreshed when their store advanced. Design: docs/projections.md.
-- Handlers run with the caller's rights: the appender's for inline projections, the
-- refresher's for async ones. Nothing here runs user code as the extension owner.

-- One row per projection. Handlers are kept as their signature text (schema-qualified, as
-- es._procedure_name prints it), not as regprocedure: pg_upgrade refuses clusters with
-- regprocedure columns in user tables, and the text dumps and restores by name alike.
-- `position` is the async checkpoint (every event at or below it has
-- been applied) or, for a matview, the head it was last refreshed at; inline ones keep 0.
-- `owner` is the role that registered the projection: the background refresh
-- (pg_eventstore.projection_worker) runs its handler as that role, never with more rights;
-- only a role that may SET ROLE to it can register a projection under it.
CREATE TABLE es._projections (
    name                 text PRIMARY KEY CHECK (name <> ''),
    store                regclass NOT NULL REFERENCES es._stores ON DELETE CASCADE,
    mode                 text NOT NULL CHECK (mode IN ('inline', 'async', 'matview')),
    handler              text,
    reset_handler        text,
    matview              regclass,
    refresh_concurrently boolean NOT NULL DEFAULT true,
    event_types          text[],
    stream_prefix        text,
    position             bigint NOT NULL DEFAULT 0 CHECK (position >= 0),
    last_error           text,
    failed_position      bigint,
    last_error_at        timestamptz,
    refreshed_at         timestamptz,
    created_at           timestamptz NOT NULL DEFAULT pg_catalog.now(),
    owner                regrole NOT NULL
                         DEFAULT pg_catalog.quote_ident(CURRENT_USER)::pg_catalog.regrole,
    CHECK ((mode = 'matview') = (matview IS NOT NULL)),
    CHECK ((mode = 'matview') = (handler IS NULL))
);
CREATE INDEX ON es._projections (store) WHERE mode = 'inline';
COMMENT ON TABLE es._projections IS 'Registry and checkpoints of projections (internal)';
SELECT pg_catalog.pg_extension_config_dump('es._projections', '');
-- Registering a projection directly in the registry needs SELECT on its store too (a handler
-- gets its events) and membership in its owner; every row stays visible. The extension owner (and pg_restore) bypass RLS.
ALTER TABLE es._projections ENABLE ROW LEVEL SECURITY;
CREATE POLICY projections_read ON es._projections FOR SELECT USING (true);
CREATE POLICY projections_delete ON es._projections FOR DELETE USING (true);
CREATE POLICY projections_insert ON es._projections FOR INSERT
    WITH CHECK (pg_catalog.has_table_privilege(store, 'SELECT')
                AND pg_catalog.pg_has_role(owner, 'MEMBER'));
CREATE POLICY projections_update ON es._projections FOR UPDATE
    USING (true) WITH CHECK (pg_catalog.has_table_privilege(store, 'SELECT')
                             AND pg_catalog.pg_has_role(owner, 'MEMBER'));

-- The canonical, schema-qualified signature text of a function, as stored in the registries.
CREATE FUNCTION es._procedure_name(fn regprocedure) RETURNS text
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS
    'SELECT $1::pg_catalog.text';
COMMENT ON FUNCTION es._procedure_name(regprocedure) IS
    'Schema-qualified signature text of a function, as stored in the registries (internal)';

-- The C++ pieces (src/pg/projection.cpp).
CREATE FUNCTION es._projection_inline() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'es_projection_inline';
COMMENT ON FUNCTION es._projection_inline() IS
    'Event table trigger: runs the inline projections matching the inserted event, as the appender (internal)';

-- Calls handler(e) for each event in order, as the caller; returns how many it applied.
CREATE FUNCTION es._call_handler(handler regprocedure, events es.event[]) RETURNS int
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'es_call_handler';
COMMENT ON FUNCTION es._call_handler(regprocedure, es.event[]) IS
    'Applies a batch of events to a projection handler, in order, as the caller (internal)';

-- Raises `errcode` unless fn is a plain function taking exactly `arg_types` and returning `result`.
CREATE FUNCTION es._check_function(fn regprocedure, arg_types regtype[], result regtype,
                                   what text, errcode text)
RETURNS void LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF fn IS NULL THEN
        RAISE EXCEPTION '% must not be NULL', what USING ERRCODE = errcode;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_proc p
                    WHERE p.oid = fn AND p.prokind = 'f' AND NOT p.proretset
                      AND p.prorettype = result
                      AND p.pronargs = cardinality(arg_types)
                      AND p.proargtypes::text = array_to_string(arg_types::oid[], ' ')) THEN
        RAISE EXCEPTION '% % has the wrong signature', what, fn USING ERRCODE = errcode,
            DETAIL = format('A %s takes (%s) and returns %s.', what,
                            array_to_string(arg_types, ', '), result);
    END IF;
END $$;
COMMENT ON FUNCTION es._check_function(regprocedure, regtype[], regtype, text, text) IS
    'Checks the signature of a handler, reset handler or reducer (internal)';

-- Raises ES050 unless the projection exists; returns its row, locked FOR UPDATE when asked.
CREATE FUNCTION es._projection_get(name text, lock boolean DEFAULT false)
RETURNS es._projections LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    p es._projections;
BEGIN
    IF lock THEN
        SELECT * INTO p FROM es._projections r WHERE r.name = _projection_get.name FOR UPDATE;
    ELSE
        SELECT * INTO p FROM es._projections r WHERE r.name = _projection_get.name;
    END IF;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'projection "%" does not exist', name USING ERRCODE = 'ES050',
            HINT = 'es.projections lists the projections.';
    END IF;
    RETURN p;
END $$;
COMMENT ON FUNCTION es._projection_get(text, boolean) IS
    'A projection''s registry row, optionally locked; ES050 when unknown (internal)';

-- Creates or drops the store's es_projection_inline trigger so that it exists, enabled,
-- exactly while the store has inline projections. Locks the store against appends first, so an inline
-- projection starts at a clean point: appends committed before it never ran it, later ones do.
CREATE FUNCTION es._projection_sync_trigger(store regclass) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    wanted boolean;
    present boolean;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM es._stores s WHERE s.store = _projection_sync_trigger.store) THEN
        RETURN;
    END IF;
    EXECUTE format('LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE', store);
    wanted := EXISTS (SELECT 1 FROM es._projections p
                       WHERE p.store = _projection_sync_trigger.store AND p.mode = 'inline');
    present := EXISTS (SELECT 1 FROM pg_trigger t
                        WHERE t.tgrelid = _projection_sync_trigger.store
                          AND t.tgname = 'es_projection_inline');
    IF wanted AND NOT present THEN
        EXECUTE format('CREATE TRIGGER es_projection_inline AFTER INSERT ON %s'
                       ' FOR EACH ROW EXECUTE FUNCTION es._projection_inline()', store);
    ELSIF present AND NOT wanted THEN
        EXECUTE format('DROP TRIGGER es_projection_inline ON %s', store);
    ELSIF present AND EXISTS (SELECT 1 FROM pg_trigger t
                               WHERE t.tgrelid = _projection_sync_trigger.store
                                 AND t.tgname = 'es_projection_inline' AND t.tgenabled = 'D') THEN
        -- Left disabled by a restore (es._projection_restored), or by hand: made anew.
        EXECUTE format('DROP TRIGGER es_projection_inline ON %s', store);
        EXECUTE format('CREATE TRIGGER es_projection_inline AFTER INSERT ON %s'
                       ' FOR EACH ROW EXECUTE FUNCTION es._projection_inline()', store);
    END IF;
END $$;
COMMENT ON FUNCTION es._projection_sync_trigger(regclass) IS
    'Creates or drops a store''s inline projection trigger to match the registry (internal)';

-- Restore: pg_dump leaves out the triggers of the extension's own tables, so the inline
-- trigger of es.events is not in a dump. When pg_restore loads an inline projection of an
-- extension-owned store, this re-creates the trigger *disabled* (argument 'restored'): the
-- store's events may be loaded after the registry, and they were projected in the source
-- already. The first es.append to the store enables it (src/pg/projection.cpp), as do
-- es.projection_create and es.projection_sync_triggers(). User stores get their trigger from
-- the dump (post-data, after their events). es.projection_create inserts through here too:
-- it enables the trigger right after.
CREATE FUNCTION es._projection_restored() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_depend d
                WHERE d.classid = 'pg_class'::regclass AND d.objid = NEW.store
                  AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e')
       AND NOT EXISTS (SELECT 1 FROM pg_trigger t
                        WHERE t.tgrelid = NEW.store AND t.tgname = 'es_projection_inline') THEN
        EXECUTE format('CREATE TRIGGER es_projection_inline AFTER INSERT ON %s FOR EACH ROW'
                       ' EXECUTE FUNCTION es._projection_inline(%L)', NEW.store, 'restored');
        EXECUTE format('ALTER TABLE %s DISABLE TRIGGER es_projection_inline', NEW.store);
    END IF;
    RETURN NULL;
END $$;
COMMENT ON FUNCTION es._projection_restored() IS
    'Projection registry trigger: re-creates the inline trigger of extension-owned stores, disabled until the next append (internal)';
CREATE TRIGGER es_projection_restored AFTER INSERT ON es._projections
    FOR EACH ROW WHEN (NEW.mode = 'inline') EXECUTE FUNCTION es._projection_restored();

-- Makes the inline triggers of every store match the registry: creates missing ones, enables
-- disabled ones, drops unwanted ones (after a pg_restore run with --disable-triggers, or when
-- a trigger was dropped or disabled by hand). Returns the stores it checked.
CREATE FUNCTION es.projection_sync_triggers() RETURNS SETOF regclass
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    s regclass;
BEGIN
    FOR s IN SELECT st.store FROM es._stores st ORDER BY st.store::oid LOOP
        PERFORM es._projection_sync_trigger(s);
        RETURN NEXT s;
    END LOOP;
END $$;
COMMENT ON FUNCTION es.projection_sync_triggers() IS
    'Makes every store''s inline projection trigger match the registry and enables it (repair; pg_restore needs it only with --disable-triggers)';

-- Registers a projection. handler(e es.event) → void updates the read model; 'inline' runs it
-- in every appending transaction (its error aborts the append), 'async' in es.projection_refresh.
-- reset_handler() → void, optional, empties the read model on reset and rebuild.
-- Errors: ES050-ES053, ES017 unknown store, ES018 empty event_types.
CREATE FUNCTION es.projection_create(
    name text,
    handler regprocedure,
    store regclass DEFAULT 'es.events',
    event_types text[] DEFAULT NULL,
    stream_prefix text DEFAULT NULL,
    mode text DEFAULT 'async',
    reset_handler regprocedure DEFAULT NULL)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF name IS NULL OR name = '' THEN
        RAISE EXCEPTION 'projection name must not be NULL or empty' USING ERRCODE = 'ES052';
    END IF;
    IF mode IS NULL OR mode NOT IN ('inline', 'async') THEN
        RAISE EXCEPTION 'invalid projection mode "%"', mode USING ERRCODE = 'ES052',
            HINT = 'Use ''inline'' or ''async''; materialized views: es.projection_create_matview().';
    END IF;
    IF event_types IS NOT NULL AND cardinality(event_types) = 0 THEN
        RAISE EXCEPTION 'event_types must not be empty' USING ERRCODE = 'ES018',
            HINT = 'Pass NULL for every type.';
    END IF;
    PERFORM es._check_store(store);
    -- The handler gets every matching event: only a role that may read them may register it.
    PERFORM es._require_store_privilege(current_user, store, 'SELECT', 'project');
    PERFORM es._check_function(handler, ARRAY['es.event'::regtype], 'void', 'projection handler', 'ES053');
    IF reset_handler IS NOT NULL THEN
        PERFORM es._check_function(reset_handler, ARRAY[]::regtype[], 'void', 'reset handler', 'ES053');
    END IF;
    INSERT INTO es._projections AS p (name, store, mode, handler, reset_handler, event_types, stream_prefix)
        VALUES (projection_create.name, projection_create.store, projection_create.mode,
                es._procedure_name(projection_create.handler),
                es._procedure_name(projection_create.reset_handler),
                projection_create.event_types, projection_create.stream_prefix)
        ON CONFLICT ON CONSTRAINT _projections_pkey DO NOTHING;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'projection "%" already exists', name USING ERRCODE = 'ES051',
            HINT = 'Drop it with es.projection_drop() first, or choose another name.';
    END IF;
    IF mode = 'inline' THEN
        PERFORM es._projection_sync_trigger(store);
    END IF;
END $$;
COMMENT ON FUNCTION es.projection_create(text, regprocedure, regclass, text[], text, text, regprocedure) IS
    'Registers a projection whose handler(e es.event) keeps a read model, inline or async';

-- Registers a materialized view refreshed by es.projection_refresh when the store advanced.
-- Errors: ES051 exists, ES052 bad name, ES054 not a materialized view, ES017 unknown store.
CREATE FUNCTION es.projection_create_matview(
    name text,
    matview regclass,
    store regclass DEFAULT 'es.events',
    refresh_concurrently boolean DEFAULT true)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF name IS NULL OR name = '' THEN
        RAISE EXCEPTION 'projection name must not be NULL or empty' USING ERRCODE = 'ES052';
    END IF;
    IF matview IS NULL OR NOT EXISTS (SELECT 1 FROM pg_class c
                                       WHERE c.oid = matview AND c.relkind = 'm') THEN
        RAISE EXCEPTION '"%" is not a materialized view', matview USING ERRCODE = 'ES054';
    END IF;
    PERFORM es._check_store(store);
    INSERT INTO es._projections AS p (name, store, mode, matview, refresh_concurrently)
        VALUES (projection_create_matview.name, projection_create_matview.store, 'matview',
                projection_create_matview.matview,
                coalesce(projection_create_matview.refresh_concurrently, true))
        ON CONFLICT ON CONSTRAINT _projections_pkey DO NOTHING;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'projection "%" already exists', name USING ERRCODE = 'ES051';
    END IF;
END $$;
COMMENT ON FUNCTION es.projection_create_matview(text, regclass, regclass, boolean) IS
    'Registers a materialized view refreshed by es.projection_refresh when its store advanced';

-- Unregisters a projection (the read model is left alone); removes the store's inline
-- trigger with its last inline projection. Errors: ES050.
CREATE FUNCTION es.projection_drop(name text) RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    p es._projections;
BEGIN
    p := es._projection_get(name, true);
    DELETE FROM es._projections r WHERE r.name = p.name;
    IF p.mode = 'inline' THEN
        PERFORM es._projection_sync_trigger(p.store);
    END IF;
END $$;
COMMENT ON FUNCTION es.projection_drop(text) IS
    'Unregisters a projection; the read model itself is kept';

-- Number and age of the events of `store` in (after, upto] that pass the filters.
CREATE FUNCTION es._projection_backlog(store regclass, after bigint, upto bigint,
                                       event_types text[], stream_prefix text,
                                       OUT events bigint, OUT oldest timestamptz)
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM es._require_store_privilege(es._session_role(), store, 'SELECT', 'count events of');
    IF upto <= after THEN
        events := 0;
        RETURN;
    END IF;
    EXECUTE format('SELECT count(*), min(recorded_at) FROM %s'
                   ' WHERE global_position > $1 AND global_position <= $2'
                   ' AND ($3 IS NULL OR event_type = ANY ($3))'
                   ' AND ($4 IS NULL OR starts_with(stream_id, $4))', store)
        INTO events, oldest USING after, upto, event_types, stream_prefix;
END $$;
COMMENT ON FUNCTION es._projection_backlog(regclass, bigint, bigint, text[], text) IS
    'How many matching events lie in a position range, and the oldest one''s time (internal)';

-- Progress of one projection for es.projections: head, lag in events and in seconds.
CREATE FUNCTION es._projection_progress(name text,
                                        OUT head bigint, OUT lag_events bigint,
                                        OUT lag_seconds double precision)
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    p es._projections;
    oldest timestamptz;
BEGIN
    SELECT * INTO p FROM es._projections r WHERE r.name = _projection_progress.name;
    -- Head and lag stay NULL for a store the session's role may not read.
    IF NOT FOUND OR NOT has_table_privilege(es._session_role(), p.store, 'SELECT') THEN
        RETURN;
    END IF;
    head := es.head_position(p.store);
    IF p.mode = 'inline' THEN
        lag_events := 0;
        lag_seconds := 0;
        RETURN;
    END IF;
    SELECT b.events, b.oldest INTO lag_events, oldest
      FROM es._projection_backlog(p.store, p.position, head, p.event_types, p.stream_prefix) b;
    lag_seconds := CASE WHEN oldest IS NULL THEN 0
                        ELSE greatest(extract(epoch FROM clock_timestamp() - oldest)::float8, 0) END;
END $$;
COMMENT ON FUNCTION es._projection_progress(text) IS
    'Head and lag of one projection, for es.projections (internal)';

-- Refreshes a materialized-view projection when its store advanced past the last refresh;
-- CONCURRENTLY when asked and possible (populated, with a plain unique index). Returns the
-- events the refresh took in. A failing refresh is recorded like a handler error.
CREATE FUNCTION es._projection_refresh_matview(p es._projections, head bigint) RETURNS bigint
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    use_concurrently boolean;
    covered bigint;
    message text;
    state text;
BEGIN
    IF head <= p.position THEN
        RETURN 0;
    END IF;
    use_concurrently := p.refresh_concurrently
        AND (SELECT c.relispopulated FROM pg_class c WHERE c.oid = p.matview)
        AND EXISTS (SELECT 1 FROM pg_index i
                     WHERE i.indrelid = p.matview AND i.indisunique AND i.indisvalid
                       AND i.indpred IS NULL AND i.indexprs IS NULL);
    SELECT b.events INTO covered
      FROM es._projection_backlog(p.store, p.position, head, NULL, NULL) b;
    BEGIN
        IF use_concurrently THEN
            EXECUTE format('REFRESH MATERIALIZED VIEW CONCURRENTLY %s', p.matview);
        ELSE
            EXECUTE format('REFRESH MATERIALIZED VIEW %s', p.matview);
        END IF;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS message = MESSAGE_TEXT, state = RETURNED_SQLSTATE;
        IF state LIKE '40%' THEN
            RAISE;
        END IF;
        UPDATE es._projections r
           SET last_error = state || ': ' || message, failed_position = p.position + 1,
               last_error_at = now()
         WHERE r.name = p.name;
        RAISE WARNING 'projection "%": refreshing materialized view % failed: %', p.name, p.matview, message
            USING ERRCODE = 'ES058',
                  HINT = 'es.projections shows last_error; es.projection_refresh retries.';
        RETURN 0;
    END;
    UPDATE es._projections r
       SET position = head, refreshed_at = now(), last_error = NULL, failed_position = NULL,
           last_error_at = NULL
     WHERE r.name = p.name;
    RETURN covered;
END $$;
COMMENT ON FUNCTION es._projection_refresh_matview(es._projections, bigint) IS
    'Refreshes a materialized-view projection if its store advanced (internal)';

-- Brings one async or matview projection towards the head of the commit-safe global order,
-- applying at most max_events events (NULL: no limit). The projection's row stays locked until
-- the caller's transaction ends, so concurrent refreshes queue and never apply an event twice;
-- the handler's writes and the checkpoint commit together. Events go to the handler a chunk at
-- a time inside one subtransaction; when a chunk fails it is replayed one event per
-- subtransaction to find the failing event: the events before it stay applied, the checkpoint
-- stops just before it, the error is recorded in last_error and reported as a WARNING.
CREATE FUNCTION es._projection_refresh_one(name text, max_events bigint,
                                            missing_ok boolean DEFAULT false) RETURNS bigint
    LANGUAGE plpgsql AS $$
DECLARE
    chunk_size constant int := 500;
    p es._projections;
    head bigint;
    events es.event[];
    want int;
    got int;
    processed bigint := 0;
    failed es.event;
    has_failed boolean := false;
    message text;
    state text;
    detail text;
BEGIN
    IF missing_ok THEN
        -- refresh-all: a projection dropped since the list was read is skipped
        SELECT * INTO p FROM es._projections r WHERE r.name = _projection_refresh_one.name FOR UPDATE;
        IF NOT FOUND THEN
            RETURN 0;
        END IF;
    ELSE
        p := es._projection_get(name, true);
    END IF;
    head := es.head_position(p.store);
    IF p.mode = 'matview' THEN
        RETURN es._projection_refresh_matview(p, head);
    ELSIF p.mode <> 'async' THEN
        RAISE EXCEPTION 'projection "%" is inline: appends apply it, not es.projection_refresh', name
            USING ERRCODE = 'ES057', HINT = 'es.projection_rebuild() replays an inline projection.';
    END IF;

    <<chunks>>
    WHILE p.position < head AND (max_events IS NULL OR processed < max_events) LOOP
        want := CASE WHEN max_events IS NULL THEN chunk_size
                     ELSE least(chunk_size, max_events - processed)::int END;
        SELECT pg_catalog.array_agg(e ORDER BY e.global_position) INTO events
          FROM es.read_all(p.position, want, p.event_types, p.stream_prefix, p.store) e
         WHERE e.global_position <= head;
        got := coalesce(pg_catalog.cardinality(events), 0);
        IF got = 0 THEN
            p.position := head;  -- read_all's horizon is at least head: nothing left up to it
            EXIT;
        END IF;
        BEGIN
            PERFORM es._call_handler(p.handler::regprocedure, events);
        EXCEPTION WHEN OTHERS THEN
            -- Find the failing event: replay one event per subtransaction.
            FOR i IN 1 .. got LOOP
                BEGIN
                    PERFORM es._call_handler(p.handler::regprocedure, ARRAY[events[i]]);
                EXCEPTION WHEN OTHERS THEN
                    GET STACKED DIAGNOSTICS message = MESSAGE_TEXT, state = RETURNED_SQLSTATE,
                                            detail = PG_EXCEPTION_DETAIL;
                    IF state LIKE '40%' THEN
                        RAISE;  -- serialization failure or deadlock: the caller retries
                    END IF;
                    failed := events[i];
                    has_failed := true;
                    EXIT chunks;
                END;
                processed := processed + 1;
                p.position := events[i].global_position;
            END LOOP;
            CONTINUE chunks;  -- the replay went through (a flaky handler): carry on
        END;
        processed := processed + got;
        p.position := events[got].global_position;
        IF got < want THEN
            p.position := greatest(p.position, head);  -- the page ended before head
        END IF;
    END LOOP;

    IF has_failed THEN
        UPDATE es._projections r
           SET position = p.position, last_error = state || ': ' || message,
               failed_position = failed.global_position, last_error_at = pg_catalog.now(),
               refreshed_at = pg_catalog.now()
         WHERE r.name = p.name;
        RAISE WARNING 'projection "%" stopped at position %: %', p.name, failed.global_position, message
            USING ERRCODE = 'ES058',
                  DETAIL = pg_catalog.format('Event %s (%s, stream %s version %s) failed with SQLSTATE %s%s.',
                                  failed.event_id, failed.event_type, failed.stream_id,
                                  failed.stream_version, state,
                                  CASE WHEN detail IS NULL OR detail = '' THEN ''
                                       ELSE ': ' || detail END),
                  HINT = 'The checkpoint stays before this event; fix the handler and refresh again.';
    ELSE
        -- The error is cleared once the checkpoint has passed the event that failed (a call
        -- with max_events => 0 does not retry it, so it keeps the record).
        UPDATE es._projections r
           SET position = p.position, refreshed_at = pg_catalog.now(),
               last_error = CASE WHEN p.position >= r.failed_position THEN NULL ELSE r.last_error END,
               last_error_at = CASE WHEN p.position >= r.failed_position THEN NULL ELSE r.last_error_at END,
               failed_position = CASE WHEN p.position >= r.failed_position THEN NULL ELSE r.failed_position END
         WHERE r.name = p.name;
    END IF;
    RETURN processed;
END $$;
COMMENT ON FUNCTION es._projection_refresh_one(text, bigint, boolean) IS
    'Refreshes one async or matview projection (internal; see es.projection_refresh)';

-- Brings one projection (name) or every async and matview projection (NULL, in name order)
-- up to the head of the global order; max_events bounds the events of the whole call.
-- Returns the events processed. A handler error is recorded and reported as a WARNING (ES058),
-- never raised. Errors: ES050 unknown, ES057 inline projection named, ES018 negative max_events.
CREATE FUNCTION es.projection_refresh(name text DEFAULT NULL, max_events int DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    total bigint := 0;
    one text;
BEGIN
    IF max_events IS NOT NULL AND max_events < 0 THEN
        RAISE EXCEPTION 'max_events must not be negative' USING ERRCODE = 'ES018',
            DETAIL = pg_catalog.format('max_events is %s.', max_events);
    END IF;
    IF name IS NOT NULL THEN
        RETURN es._projection_refresh_one(name, max_events);
    END IF;
    FOR one IN SELECT r.name FROM es._projections r WHERE r.mode IN ('async', 'matview')
                ORDER BY r.name LOOP
        EXIT WHEN max_events IS NOT NULL AND total >= max_events;
        total := total + es._projection_refresh_one(one, max_events - total, true);
    END LOOP;
    RETURN total;
END $$;
COMMENT ON FUNCTION es.projection_refresh(text, int) IS
    'Applies the events since its checkpoint to one (or every) async projection; returns how many';

-- Runs a projection's reset handler (fn() → void) as the caller; nothing when NULL.
CREATE FUNCTION es._projection_call_reset(fn text) RETURNS void
    LANGUAGE plpgsql AS $$
DECLARE
    call text;
BEGIN
    IF fn IS NULL THEN
        RETURN;
    END IF;
    SELECT pg_catalog.format('SELECT %I.%I()', n.nspname, f.proname) INTO call
      FROM pg_catalog.pg_proc f JOIN pg_catalog.pg_namespace n ON n.oid = f.pronamespace
     WHERE f.oid = fn::regprocedure;
    EXECUTE call;
END $$;
COMMENT ON FUNCTION es._projection_call_reset(text) IS
    'Runs a projection''s reset handler as the caller (internal)';

-- Puts an async or matview projection's checkpoint back to 0 and runs its reset handler.
-- Errors: ES050 unknown, ES057 inline (rebuild it instead).
CREATE FUNCTION es.projection_reset(name text) RETURNS void
    LANGUAGE plpgsql AS $$
DECLARE
    p es._projections;
BEGIN
    p := es._projection_get(name, true);
    IF p.mode = 'inline' THEN
        RAISE EXCEPTION 'projection "%" is inline and has no checkpoint', name
            USING ERRCODE = 'ES057', HINT = 'es.projection_rebuild() replays an inline projection.';
    END IF;
    PERFORM es._projection_call_reset(p.reset_handler);
    UPDATE es._projections r
       SET position = 0, last_error = NULL, failed_position = NULL, last_error_at = NULL
     WHERE r.name = p.name;
END $$;
COMMENT ON FUNCTION es.projection_reset(text) IS
    'Moves a projection''s checkpoint back to 0 (running its reset handler, if any)';

-- Resets a projection and replays every event up to the head, in the caller's transaction.
-- An inline projection is replayed with appends to its store paused (SHARE lock), so no event
-- is applied twice or missed. Returns the events applied. Errors: ES050.
CREATE FUNCTION es.projection_rebuild(name text) RETURNS bigint
    LANGUAGE plpgsql AS $$
DECLARE
    p es._projections;
    events es.event[];
    after bigint := 0;
    head bigint;
    total bigint := 0;
BEGIN
    p := es._projection_get(name, true);
    IF p.mode <> 'inline' THEN
        PERFORM es.projection_reset(name);
        RETURN es._projection_refresh_one(name, NULL);
    END IF;
    PERFORM es._projection_pause_appends(p.store);
    PERFORM es._projection_call_reset(p.reset_handler);
    head := es.head_position(p.store);
    LOOP
        SELECT pg_catalog.array_agg(e ORDER BY e.global_position) INTO events
          FROM es.read_all(after, 1000, p.event_types, p.stream_prefix, p.store) e
         WHERE e.global_position <= head;
        EXIT WHEN events IS NULL;
        total := total + es._call_handler(p.handler::regprocedure, events);
        after := events[pg_catalog.cardinality(events)].global_position;
    END LOOP;
    RETURN total;
END $$;
COMMENT ON FUNCTION es.projection_rebuild(text) IS
    'Resets a projection and replays all events into it; returns how many it applied';

-- Blocks appends to `store` until the caller's transaction ends (inline rebuild).
CREATE FUNCTION es._projection_pause_appends(store regclass) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM es._check_store(store);
    EXECUTE format('LOCK TABLE %s IN SHARE MODE', store);
END $$;
COMMENT ON FUNCTION es._projection_pause_appends(regclass) IS
    'Blocks appends to a store until the transaction ends (internal)';

-- One row per projection: checkpoint, head of its store, lag in events and seconds, last error.
CREATE VIEW es.projections AS
SELECT p.name,
       p.mode,
       CASE WHEN p.mode = 'inline' THEN g.head ELSE p.position END AS position,
       g.head,
       g.lag_events,
       g.lag_seconds,
       p.last_error,
       p.store,
       p.handler,
       p.matview,
       p.event_types,
       p.stream_prefix,
       p.failed_position,
       p.last_error_at,
       p.refreshed_at
  FROM es._projections p
  CROSS JOIN LATERAL es._projection_progress(p.name) g;
COMMENT ON VIEW es.projections IS
    'Projections with checkpoint, head, lag (events, seconds) and last error';
-- State, snapshots, time travel (API.md §7): fold a stream with a reducer, starting from the
-- newest usable snapshot. Reducers run with the caller's rights; the events are read with them.

-- Saved states of streams. reducer is the reducer's signature text (es._procedure_name; text,
-- not regprocedure, so pg_upgrade accepts the table); '' marks a snapshot saved without a
-- reducer, which every reducer may use. Row-level security: a snapshot is visible to roles that may read its
-- store, and written by roles that may append to it.
CREATE TABLE es._snapshots (
    store     regclass NOT NULL REFERENCES es._stores ON DELETE CASCADE,
    stream_id text NOT NULL,
    reducer   text NOT NULL DEFAULT '',
    version   bigint NOT NULL CHECK (version >= 1),
    state     jsonb NOT NULL,
    saved_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (store, stream_id, reducer, version)
);
COMMENT ON TABLE es._snapshots IS 'Snapshots of stream states, per reducer (internal)';
SELECT pg_catalog.pg_extension_config_dump('es._snapshots', '');
ALTER TABLE es._snapshots ENABLE ROW LEVEL SECURITY;
CREATE POLICY snapshots_read ON es._snapshots FOR SELECT
    USING (pg_catalog.has_table_privilege(store, 'SELECT'));
CREATE POLICY snapshots_insert ON es._snapshots FOR INSERT
    WITH CHECK (pg_catalog.has_table_privilege(store, 'INSERT'));
CREATE POLICY snapshots_update ON es._snapshots FOR UPDATE
    USING (pg_catalog.has_table_privilege(store, 'INSERT'));

-- Folds versions from_version..to_version of a stream into state (C++, src/pg/projection.cpp).
CREATE FUNCTION es._fold_stream(reducer regprocedure, state jsonb, stream_id text,
                                from_version bigint, to_version bigint, store regclass)
RETURNS jsonb LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'es_fold_stream';
COMMENT ON FUNCTION es._fold_stream(regprocedure, jsonb, text, bigint, bigint, regclass) IS
    'state := reducer(state, e) over a range of a stream, as the caller (internal)';

-- Raises ES055 unless reducer is (state jsonb, e es.event) → jsonb.
CREATE FUNCTION es._check_reducer(reducer regprocedure) RETURNS void
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM es._check_function(reducer, ARRAY['jsonb', 'es.event']::regtype[], 'jsonb',
                               'reducer', 'ES055');
END $$;
COMMENT ON FUNCTION es._check_reducer(regprocedure) IS
    'Checks a reducer''s signature: (jsonb, es.event) → jsonb (internal)';

-- Saves the state of a stream at `version`, for `reducer` (NULL: usable by every reducer).
-- Saving the same stream, reducer and version again replaces the state.
-- Errors: ES056 bad version or NULL state (or a version the stream has not reached),
-- ES055 bad reducer, ES010 bad stream id, ES017 unknown store, 42501 no SELECT and INSERT on it.
CREATE FUNCTION es.snapshot_save(
    stream_id text,
    version bigint,
    state jsonb,
    store regclass DEFAULT 'es.events',
    reducer regprocedure DEFAULT NULL)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    current bigint;
BEGIN
    PERFORM es._check_read_args(stream_id, NULL, NULL);
    IF version IS NULL OR version < 1 THEN
        RAISE EXCEPTION 'snapshot version must be 1 or more' USING ERRCODE = 'ES056',
            DETAIL = format('version is %s.', coalesce(version::text, 'NULL'));
    END IF;
    IF state IS NULL THEN
        RAISE EXCEPTION 'snapshot state must not be NULL' USING ERRCODE = 'ES056';
    END IF;
    PERFORM es._check_store(store);
    IF reducer IS NOT NULL THEN
        PERFORM es._check_reducer(reducer);
    END IF;
    current := es.stream_version(stream_id, store);
    IF version > current THEN
        RAISE EXCEPTION 'stream "%" has not reached version %', stream_id, version
            USING ERRCODE = 'ES056',
                  DETAIL = format('expected at most %s, actual %s', current, version),
                  HINT = 'Snapshot a state computed from the stored events.';
    END IF;
    INSERT INTO es._snapshots AS s (store, stream_id, reducer, version, state)
        VALUES (snapshot_save.store, snapshot_save.stream_id,
                coalesce(es._procedure_name(snapshot_save.reducer), ''),
                snapshot_save.version, snapshot_save.state)
        ON CONFLICT ON CONSTRAINT _snapshots_pkey
        DO UPDATE SET state = excluded.state, saved_at = excluded.saved_at;
END $$;
COMMENT ON FUNCTION es.snapshot_save(text, bigint, jsonb, regclass, regprocedure) IS
    'Saves a stream''s state at a version, for a reducer or (NULL) for any';

-- The newest snapshot a reducer may start from: saved for it or with none, at or below
-- max_version. With reducer NULL: only snapshots saved without one.
CREATE FUNCTION es._snapshot_find(stream_id text, store regclass, reducer regprocedure,
                                  max_version bigint, OUT version bigint, OUT state jsonb)
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT s.version, s.state
      FROM es._snapshots s
     WHERE s.store = $2 AND s.stream_id = $1 AND s.version <= $4
       AND s.reducer IN (coalesce(es._procedure_name($3), ''), '')
     ORDER BY s.version DESC, s.reducer = ''
     LIMIT 1
$$;
COMMENT ON FUNCTION es._snapshot_find(text, regclass, regprocedure, bigint) IS
    'The newest snapshot usable by a reducer up to a version (internal)';

-- The newest snapshot of a stream usable by `reducer` (saved for it, or with none; with
-- reducer NULL only those saved with none): no row when there is none.
CREATE FUNCTION es.snapshot_load(
    stream_id text,
    store regclass DEFAULT 'es.events',
    reducer regprocedure DEFAULT NULL)
RETURNS TABLE (version bigint, state jsonb)
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM es._check_read_args(stream_id, NULL, NULL);
    PERFORM es._check_store(store);
    IF reducer IS NOT NULL THEN
        PERFORM es._check_reducer(reducer);
    END IF;
    RETURN QUERY SELECT f.version, f.state
                   FROM es._snapshot_find(stream_id, store, reducer, 9223372036854775807) f
                  WHERE f.version IS NOT NULL;
END $$;
COMMENT ON FUNCTION es.snapshot_load(text, regclass, regprocedure) IS
    'The newest snapshot of a stream usable by a reducer';

-- Folds a stream with reducer(state jsonb, e es.event) → jsonb, from `initial` or from the
-- newest usable snapshot, up to to_version and/or as_of (the longest prefix of the stream
-- recorded at or before as_of). use_snapshots => false ignores snapshots.
-- Errors: ES055 bad reducer, ES010 bad stream id, ES018 negative to_version, ES017 unknown store.
CREATE FUNCTION es.aggregate_state(
    stream_id text,
    reducer regprocedure,
    initial jsonb DEFAULT '{}',
    to_version bigint DEFAULT NULL,
    as_of timestamptz DEFAULT NULL,
    store regclass DEFAULT 'es.events',
    use_snapshots boolean DEFAULT true)
RETURNS jsonb LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    upto bigint := coalesce(to_version, 9223372036854775807);
    first_later bigint;
    snap_version bigint;
    snap_state jsonb;
BEGIN
    PERFORM es._check_read_args(stream_id, NULL, NULL);
    PERFORM es._check_reducer(reducer);
    PERFORM es._check_store(store);
    IF to_version < 0 THEN
        RAISE EXCEPTION 'to_version must not be negative' USING ERRCODE = 'ES018',
            DETAIL = pg_catalog.format('to_version is %s.', to_version);
    END IF;
    IF as_of IS NOT NULL THEN
        EXECUTE pg_catalog.format('SELECT min(stream_version) FROM %s WHERE stream_id = $1 AND recorded_at > $2',
                       store) INTO first_later USING stream_id, as_of;
        IF first_later IS NOT NULL THEN
            upto := least(upto, first_later - 1);
        END IF;
    END IF;
    IF coalesce(use_snapshots, true) THEN
        SELECT f.version, f.state INTO snap_version, snap_state
          FROM es._snapshot_find(stream_id, store, reducer, upto) f;
    END IF;
    IF snap_version IS NOT NULL THEN
        RETURN es._fold_stream(reducer, snap_state, stream_id, snap_version + 1, upto, store);
    END IF;
    RETURN es._fold_stream(reducer, initial, stream_id, 1, upto, store);
END $$;
COMMENT ON FUNCTION es.aggregate_state(text, regprocedure, jsonb, bigint, timestamptz, regclass, boolean) IS
    'Folds a stream with a reducer from its newest usable snapshot, up to a version or a time';
-- Operations (API.md §8).

CREATE OR REPLACE FUNCTION es._idempotency_retention_seconds() RETURNS int
    LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'es_idempotency_retention';
COMMENT ON FUNCTION es._idempotency_retention_seconds() IS
    'pg_eventstore.idempotency_retention in seconds (internal)';

-- Purges expired idempotency keys and fully-acked outbox messages; safe to run from cron at any frequency.
-- Returns what it removed, one row per kind.
CREATE OR REPLACE FUNCTION es.maintain()
RETURNS TABLE (kind text, removed bigint)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    n bigint;
BEGIN
    DELETE FROM es._idempotency_keys
     WHERE created_at < now() - make_interval(secs => es._idempotency_retention_seconds());
    GET DIAGNOSTICS n = ROW_COUNT;
    kind := 'idempotency_keys'; removed := n; RETURN NEXT;
    kind := 'outbox_messages'; removed := es._maintain_outbox(); RETURN NEXT;
END $$;
COMMENT ON FUNCTION es.maintain() IS
    'Purges expired idempotency keys and outbox messages every group acked over a day ago';
-- Redaction (API.md §8): the only way to erase personal data from stored events.

-- The audit trail of redactions: one row per es.redact_stream call, kept in pg_dump. The
-- reason lives only here; the redacted events carry the row's id in their metadata.
CREATE TABLE es.redactions (
    id             bigserial PRIMARY KEY,
    store          regclass NOT NULL REFERENCES es._stores ON DELETE CASCADE,
    stream_id      text NOT NULL,
    reason         text NOT NULL,
    events         bigint NOT NULL,
    first_position bigint NOT NULL,
    last_position  bigint NOT NULL,
    redacted_by    name NOT NULL,
    redacted_as    name NOT NULL,
    redacted_at    timestamptz NOT NULL DEFAULT pg_catalog.now(),
    snapshots_deleted bigint NOT NULL DEFAULT 0
);
CREATE INDEX ON es.redactions (store, stream_id);
COMMENT ON TABLE es.redactions IS
    'Audit trail of es.redact_stream: store, stream, reason, how many events and snapshots, who (session user and role in effect) and when';
SELECT pg_catalog.pg_extension_config_dump('es.redactions', '');
SELECT pg_catalog.pg_extension_config_dump('es.redactions_id_seq', '');

-- Replaces data (with {"redacted": true}) and metadata (with {"redacted": true,
-- "redaction_id": n, "redacted_at": t}) of every event of a stream; positions, versions, event
-- ids, types and recorded_at stay. Deletes the stream's snapshots (es._snapshots: state
-- folded from the erased data). Records the call in es.redactions. Returns the number of
-- events redacted. Implemented in C++ (src/pg/redact.cpp): the append-only guard lets only it
-- rewrite rows. Needs SELECT and UPDATE on the store (es_admin has both on es.events);
-- the rewrite runs as the caller, and a store with its own UPDATE triggers, UPDATE rules or
-- row-level security is refused (that code would run while the guard is open).
-- Read models built by projections are the application's to scrub.
-- Errors: ES010 bad stream id, ES017 unknown store, ES060 the stream has no events in the
-- store, ES061 missing, blank or over-long reason, ES062 the store has its own UPDATE
-- triggers, UPDATE rules or row-level security, 42501 no SELECT or UPDATE on the store.
CREATE FUNCTION es.redact_stream(
    stream_id text,
    reason text,
    store regclass DEFAULT 'es.events')
RETURNS bigint
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'es_redact_stream';
COMMENT ON FUNCTION es.redact_stream(text, text, regclass) IS
    'Erases data and metadata of every event of a stream (positions, versions, ids and types stay) and records who and why in es.redactions';
-- Operations: es.stats (API.md §8), one row per store, consumer group and projection.

-- Per event table: events, streams and events recorded in the last minute. NULLs for a store
-- the caller may not read (the counts run with the caller's rights).
CREATE FUNCTION es._stats_store(store regclass, OUT events bigint, OUT streams bigint,
                                OUT appended_last_minute bigint)
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT has_table_privilege(store, 'SELECT') THEN
        RETURN;
    END IF;
    EXECUTE format('SELECT count(*), count(DISTINCT stream_id),'
                   ' count(*) FILTER (WHERE recorded_at > pg_catalog.now() - interval ''1 minute'')'
                   ' FROM %s', store)
        INTO events, streams, appended_last_minute;
END $$;
COMMENT ON FUNCTION es._stats_store(regclass) IS
    'Events, streams and events of the last minute of an event table (internal)';

-- Per consumer group and topic: messages not yet acked (handed out, waiting, or not yet taken
-- in), the age of the oldest of them, and dead letters. Counts only, no payloads.
CREATE FUNCTION es._stats_outbox()
RETURNS TABLE (consumer_group text, topic text, backlog bigint, oldest_unacked_age interval,
               dead_letters bigint)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT g.consumer_group, g.topic, count(u.id), now() - min(u.published_at),
           (SELECT count(*) FROM es._outbox_dead d WHERE d.group_id = g.group_id)
      FROM es._outbox_groups g
      LEFT JOIN LATERAL (
          SELECT m.id, m.published_at FROM es._outbox_messages m
           WHERE m.topic = g.topic AND m.id > g.intake_id
          UNION ALL
          SELECT m.id, m.published_at FROM es._outbox_lanes l
            JOIN es._outbox_messages m
              ON m.id = l.head_id
              OR (l.lane_key IS NOT NULL AND m.topic = g.topic AND m.key = l.lane_key
                  AND m.id > l.head_id AND m.id <= l.tail_id)
           WHERE l.group_id = g.group_id) u ON true
     GROUP BY g.group_id, g.consumer_group, g.topic
$$;
COMMENT ON FUNCTION es._stats_outbox() IS
    'Backlog, oldest unacked age and dead letters of each outbox consumer group (internal)';

-- kind 'store'      name = event table: events, streams, appended_last_minute
-- kind 'outbox'     name = consumer group, topic: backlog, oldest_unacked_age, dead_letters
-- kind 'projection' name = projection: lag_events, lag_seconds (NULL: store not readable)
CREATE VIEW es.stats AS
SELECT 'store'::text AS kind, s.store::text AS name, NULL::text AS topic,
       st.events, st.streams, st.appended_last_minute,
       NULL::bigint AS backlog, NULL::interval AS oldest_unacked_age, NULL::bigint AS dead_letters,
       NULL::bigint AS lag_events, NULL::double precision AS lag_seconds
  FROM es._stores s CROSS JOIN LATERAL es._stats_store(s.store) st
UNION ALL
SELECT 'outbox', o.consumer_group, o.topic, NULL, NULL, NULL,
       o.backlog, o.oldest_unacked_age, o.dead_letters, NULL, NULL
  FROM es._stats_outbox() o
UNION ALL
SELECT 'projection', p.name, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       p.lag_events, p.lag_seconds
  FROM es.projections p;
COMMENT ON VIEW es.stats IS
    'Operational statistics: per store events, streams, append rate; outbox backlog, oldest unacked age, dead letters; projection lag';
-- A fresh install revokes every function in schema es from PUBLIC after creating them all
-- (REVOKE ALL ON ALL FUNCTIONS IN SCHEMA es FROM PUBLIC). Here that would also take back
-- PUBLIC grants an administrator made on 0.1.0 functions, so only the functions this script
-- created are revoked: the extension's members that still have the default ACL (every 0.1.0
-- function had its ACL set by that REVOKE).
DO $$
DECLARE
    fn regprocedure;
BEGIN
    FOR fn IN
        SELECT p.oid::regprocedure
          FROM pg_catalog.pg_proc p
          JOIN pg_catalog.pg_depend d
            ON d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
         WHERE d.refclassid = 'pg_catalog.pg_extension'::regclass
           AND d.refobjid = (SELECT e.oid FROM pg_catalog.pg_extension e
                              WHERE e.extname = 'pg_eventstore')
           AND p.pronamespace = 'es'::regnamespace
           AND p.proacl IS NULL
         ORDER BY p.oid
    LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', fn);
    END LOOP;
END $$;
-- Grants of the areas added after 0.1.0 (outbox, subscriptions, projections, state, redaction,
-- statistics). Kept apart from 90_roles.sql so the 0.1.0 -> 0.2.0 upgrade script reuses it.

-- Subscriptions (src/sql/50_subscriptions.sql). Readers consume: they read the registry and
-- may move checkpoints (only `position`/`acked_at`; a trigger refuses moving back). Reading a
-- subscription's events still needs SELECT on its store (es.read_all checks it).
GRANT SELECT ON es._subscriptions, es.subscriptions TO es_reader;
GRANT UPDATE (position, acked_at) ON es._subscriptions TO es_reader;
GRANT EXECUTE ON FUNCTION
    es._check_subscription_name(text),
    es._subscription(text),
    es._count_events_between(regclass, bigint, bigint),
    es.subscription_next(text, int),
    es.subscription_ack(text, bigint)
    TO es_reader;
GRANT INSERT, DELETE ON es._subscriptions TO es_admin;
GRANT EXECUTE ON FUNCTION
    es.subscription_create(text, regclass, text[], text, bigint),
    es.subscription_drop(text)
    TO es_admin;
-- Store notifications (src/sql/95_relay.sql) are assembled after this file and carry their
-- own REVOKE/GRANT block: es.store_channel, es.listen, es.relay_start, es.relay_status to
-- es_reader; the relay's internals (es._relay_*) to nobody (the relay runs as superuser).

-- Projections and state (API.md §6-§7, src/sql/60_projections.sql, 70_state.sql).
-- es_admin creates, drops, resets, rebuilds and refreshes projections: refreshing moves
-- checkpoints and runs handlers, so it is an operator's (or a worker's) job, not a reader's —
-- give a worker role es_admin, or EXECUTE on es.projection_refresh plus UPDATE on
-- es._projections and the helpers below. Handlers run with the caller's rights, so the
-- refresher (for inline projections: every appender) also needs EXECUTE on the handler and the
-- privileges it writes with, unless the handler is SECURITY DEFINER.
-- es_reader sees es.projections, folds state and loads snapshots (of stores it can read);
-- es_writer saves snapshots (of stores it can append to and read).
GRANT SELECT ON es.projections TO es_reader;
GRANT EXECUTE ON FUNCTION es._projection_progress(text) TO es_reader;
GRANT SELECT, INSERT, UPDATE, DELETE ON es._projections TO es_admin;
GRANT EXECUTE ON FUNCTION
    es.projection_create(text, regprocedure, regclass, text[], text, text, regprocedure),
    es.projection_create_matview(text, regclass, regclass, boolean),
    es.projection_drop(text),
    es.projection_refresh(text, int),
    es.projection_reset(text),
    es.projection_rebuild(text),
    es.projection_sync_triggers(),
    es._check_function(regprocedure, regtype[], regtype, text, text),
    es._projection_get(text, boolean),
    es._projection_sync_trigger(regclass),
    es._projection_backlog(regclass, bigint, bigint, text[], text),
    es._projection_refresh_matview(es._projections, bigint),
    es._projection_refresh_one(text, bigint, boolean),
    es._projection_call_reset(text),
    es._procedure_name(regprocedure),
    es._projection_pause_appends(regclass),
    es._call_handler(regprocedure, es.event[])
    TO es_admin;

GRANT SELECT ON es._snapshots TO es_reader, es_writer;
GRANT INSERT, UPDATE ON es._snapshots TO es_writer;
GRANT EXECUTE ON FUNCTION
    es._check_function(regprocedure, regtype[], regtype, text, text),
    es._check_reducer(regprocedure),
    es._procedure_name(regprocedure),
    es._snapshot_find(text, regclass, regprocedure, bigint),
    es._fold_stream(regprocedure, jsonb, text, bigint, bigint, regclass),
    es.aggregate_state(text, regprocedure, jsonb, bigint, timestamptz, regclass, boolean),
    es.snapshot_load(text, regclass, regprocedure)
    TO es_reader, es_writer;
GRANT EXECUTE ON FUNCTION
    es._check_read_args(text, bigint, int),
    es._check_store(regclass),
    es.stream_version(text, regclass),
    es.snapshot_save(text, bigint, jsonb, regclass, regprocedure)
    TO es_writer;

-- Outbox (API.md §5, src/sql/40_outbox.sql). The functions are SECURITY DEFINER; the internal
-- tables stay private. Writers publish; readers claim, ack, nack and read the views; admins
-- route, subscribe, re-drive dead letters and purge.
GRANT EXECUTE ON FUNCTION
    es._outbox_check_topic(text),
    es.outbox_channel(text)
    TO es_reader, es_writer;
GRANT EXECUTE ON FUNCTION
    es.outbox_publish(text, jsonb, text, jsonb)
    TO es_writer;
GRANT EXECUTE ON FUNCTION
    es.outbox_claim(text, text, int, interval),
    es.outbox_ack(text, bigint[]),
    es.outbox_nack(text, bigint, text, interval)
    TO es_reader;
GRANT SELECT ON es.outbox_dead_letters, es.outbox_debezium TO es_reader;
GRANT EXECUTE ON FUNCTION
    es.outbox_route(text, regclass, text[], text),
    es.outbox_unroute(text, regclass),
    es.outbox_subscribe(text, text, int),
    es.outbox_retry_dead(text, bigint[]),
    es.outbox_purge(interval)
    TO es_admin;

-- Security helpers (src/sql/05_security.sql): the outbox views filter routed messages by the
-- reader's SELECT privilege on their store.
GRANT EXECUTE ON FUNCTION
    es._session_role(),
    es._may_read_routed(jsonb, name),
    es._require_store_privilege(name, regclass, text, text)
    TO es_reader, es_writer, es_admin;

-- Statistics (src/sql/85_stats.sql): readers see es.stats; store counts need SELECT on the store.
GRANT SELECT ON es.stats TO es_reader;
GRANT EXECUTE ON FUNCTION es._stats_store(regclass), es._stats_outbox() TO es_reader;

-- Redaction (src/sql/82_redaction.sql): admins only. SELECT and UPDATE on a store are the right
-- to redact it (es_admin reads es.events through es_reader); the append-only guard still
-- refuses every plain UPDATE.
GRANT UPDATE ON es.events TO es_admin;
GRANT SELECT ON es.redactions TO es_admin;
GRANT EXECUTE ON FUNCTION es.redact_stream(text, text, regclass) TO es_admin;
-- Store notifications (API.md §4): channels, the relay's poll, starting and watching the relay.
-- Writers never NOTIFY: a relay (a background worker per database, src/pg/relay.cpp) runs
-- es._relay_poll() every pg_eventstore.relay_interval and NOTIFYs each row after its own
-- commit. A notification is a doorbell; es.read_all is the truth.

-- The NOTIFY channel of an event table: 'es_store_', the qualified name folded to
-- [a-z0-9_] (at most 40 characters), '_' and 8 hex digits of md5 of the quoted qualified
-- name (so folded names cannot collide). At most 58 bytes, usable unquoted in LISTEN, and
-- the same after dump/restore (it never depends on an oid); renaming the table changes it.
-- Errors: ES017 not an event table.
CREATE FUNCTION es.store_channel(store regclass DEFAULT 'es.events') RETURNS text
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    nsp text;
    rel text;
BEGIN
    PERFORM es._check_store(store);
    SELECT n.nspname, c.relname INTO nsp, rel
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = store;
    RETURN 'es_store_'
        || left(lower(regexp_replace(nsp || '_' || rel, '[^A-Za-z0-9_]+', '_', 'g')), 40)
        || '_' || left(md5(format('%I.%I', nsp, rel)), 8);
END $$;
COMMENT ON FUNCTION es.store_channel(regclass) IS
    'The NOTIFY channel of an event table (stable across dump/restore)';

CREATE FUNCTION es._relay_store_news(store regclass, position_seq regclass) RETURNS bigint
    LANGUAGE c VOLATILE STRICT AS 'MODULE_PATHNAME', 'es_relay_store_news';
COMMENT ON FUNCTION es._relay_store_news(regclass, regclass) IS
    'Position to announce for a store now, or NULL; state kept in this backend (internal)';

-- What the relay must announce now: one row per store whose newest event at or below the
-- safe head is past what this backend announced before (payload: that position), then the
-- outbox's rows when the outbox defines es._relay_poll_outbox() (same columns).
-- The head is read first and the newest event second, with a fresh snapshot, so every
-- position at or below the head is settled: an append that rolled back advances the head
-- but never the newest event, so it is never announced; one that commits is announced at
-- the first poll after its commit. The state ("announced up to") lives in the calling
-- backend's memory: each backend polls for itself, a restarted relay announces every
-- non-empty store once. A store being dropped is skipped, not waited for; one whose
-- sequence has not moved since a poll that found nothing in flight is skipped without
-- computing its head.
CREATE FUNCTION es._relay_poll()
RETURNS TABLE (channel text, payload text)
    LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    s record;
    news bigint;
BEGIN
    FOR s IN SELECT st.store, st.position_seq FROM es._stores st ORDER BY st.store::oid LOOP
        news := es._relay_store_news(s.store, s.position_seq);
        IF news IS NOT NULL THEN
            channel := es.store_channel(s.store);
            payload := news::text;
            RETURN NEXT;
        END IF;
    END LOOP;
    IF to_regprocedure('es._relay_poll_outbox()') IS NOT NULL THEN
        RETURN QUERY EXECUTE 'SELECT channel, payload FROM es._relay_poll_outbox()';
    END IF;
END $$;
COMMENT ON FUNCTION es._relay_poll() IS
    'Notifications due since this backend''s last poll: (channel, payload) rows for the relay (internal)';

-- Starts this database's relay unless one runs. Returns true when one runs or was started,
-- false when pg_eventstore.relay is off or no background worker slot is free.
CREATE FUNCTION es.relay_start() RETURNS boolean
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'es_relay_start';
COMMENT ON FUNCTION es.relay_start() IS
    'Starts the notification relay of the current database unless it runs';

CREATE FUNCTION es._relay_interval_ms() RETURNS integer
    LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'es_relay_interval_ms';
COMMENT ON FUNCTION es._relay_interval_ms() IS
    'pg_eventstore.relay_interval in milliseconds (internal)';

-- Whether this database's relay runs: its pid (from the session lock it holds, visible in
-- pg_locks to everyone), its start time (NULL unless the caller may see it in
-- pg_stat_activity) and the poll interval.
CREATE FUNCTION es.relay_status()
RETURNS TABLE (running boolean, pid integer, started_at timestamptz, poll_interval_ms integer)
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT l.pid IS NOT NULL, l.pid, a.backend_start, es._relay_interval_ms()
      FROM (SELECT 1) one
      LEFT JOIN pg_locks l
        ON l.locktype = 'userlock' AND l.granted
       AND l.database = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())
       AND l.classid = 0 AND l.objid = 0 AND l.objsubid = 16384
      LEFT JOIN pg_stat_activity a ON a.pid = l.pid
$$;
COMMENT ON FUNCTION es.relay_status() IS
    'Whether the notification relay of the current database runs (pid, start time, interval)';

-- LISTENs (from the caller's next commit, like LISTEN) on the store's channel and makes sure
-- the relay runs; returns the channel. Errors: ES017 not an event table, 42501 no SELECT.
CREATE FUNCTION es.listen(store regclass DEFAULT 'es.events') RETURNS text
    LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    channel text := es.store_channel(store);
BEGIN
    IF NOT has_table_privilege(store, 'SELECT') THEN
        RAISE EXCEPTION 'permission denied to listen to event table %', store
            USING ERRCODE = '42501', HINT = 'Grant SELECT on the store to the caller.';
    END IF;
    EXECUTE format('LISTEN %I', channel);
    IF NOT es.relay_start() THEN
        RAISE WARNING 'the notification relay is not running'
            USING DETAIL = 'pg_eventstore.relay is off, or no background worker slot is free.',
                  HINT = 'Raise max_worker_processes (one relay per database is needed).';
    END IF;
    RETURN channel;
END $$;
COMMENT ON FUNCTION es.listen(regclass) IS
    'LISTENs on a store''s notification channel and starts the relay; returns the channel';

-- Grants. This file is assembled after 90_roles.sql (whose REVOKE ... FROM PUBLIC ran before
-- these functions existed), so it revokes and grants its own; see the note there.
REVOKE ALL ON FUNCTION
    es.store_channel(regclass),
    es._relay_store_news(regclass, regclass),
    es._relay_poll(),
    es._relay_interval_ms(),
    es.relay_start(),
    es.relay_status(),
    es.listen(regclass)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    es.store_channel(regclass),
    es._relay_interval_ms(),
    es.relay_start(),
    es.relay_status(),
    es.listen(regclass)
    TO es_reader;
