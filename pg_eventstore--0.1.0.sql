-- pg_eventstore install script: schema, row type, registries.
\echo Use "CREATE EXTENSION pg_eventstore" to load this file. \quit

CREATE SCHEMA es;
COMMENT ON SCHEMA es IS 'pg_eventstore: event store and transactional outbox';

-- The row every read returns (API.md §1).
CREATE TYPE es.event AS (
    global_position bigint,
    stream_id       text,
    stream_version  bigint,
    event_id        uuid,
    event_type      text,
    data            jsonb,
    metadata        jsonb,
    recorded_at     timestamptz
);
COMMENT ON TYPE es.event IS 'One stored event, as every read function returns it';

-- Every event table and its position sequence. Other registries reference it with
-- ON DELETE CASCADE, so es.drop_event_table cleans them.
CREATE TABLE es._stores (
    store        regclass PRIMARY KEY,
    position_seq regclass NOT NULL,
    builtin      boolean NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE es._stores IS 'Registry of event tables (internal)';
SELECT pg_catalog.pg_extension_config_dump('es._stores', 'WHERE NOT builtin');

-- Idempotency keys of es.append: the first committed call's result, per store and key.
CREATE TABLE es._idempotency_keys (
    store          regclass NOT NULL REFERENCES es._stores ON DELETE CASCADE,
    key            text NOT NULL,
    stream_id      text NOT NULL,
    fingerprint    bigint NOT NULL,
    first_version  bigint,
    last_version   bigint,
    first_position bigint,
    last_position  bigint,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (store, key)
);
CREATE INDEX ON es._idempotency_keys (created_at);
COMMENT ON TABLE es._idempotency_keys IS 'Idempotency keys of es.append (internal)';
SELECT pg_catalog.pg_extension_config_dump('es._idempotency_keys', '');
-- Event tables (API.md §1): creation, the append-only guards, dropping.

CREATE FUNCTION es.uuidv7() RETURNS uuid
    LANGUAGE c VOLATILE PARALLEL SAFE AS 'MODULE_PATHNAME', 'es_uuidv7';
COMMENT ON FUNCTION es.uuidv7() IS 'A new time-ordered UUID (version 7)';

-- True for a row es.append itself is inserting into the table: the WHEN clause of the version
-- chain trigger skips the check for those (es.append assigned the version).
CREATE FUNCTION es._in_append(rel oid) RETURNS boolean
    LANGUAGE c VOLATILE STRICT AS 'MODULE_PATHNAME', 'es_in_append';
COMMENT ON FUNCTION es._in_append(oid) IS 'True while es.append itself inserts into the table (internal)';

CREATE FUNCTION es._guard_insert() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'es_guard_insert';
COMMENT ON FUNCTION es._guard_insert() IS
    'Event table trigger: plain INSERT/COPY rows go through the append checks (internal)';

CREATE FUNCTION es._check_version_chain() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'es_check_version_chain';
COMMENT ON FUNCTION es._check_version_chain() IS
    'Event table trigger: plain INSERT rows must keep stream versions gapless (internal)';

CREATE FUNCTION es._guard_modify() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'es_guard_modify';
COMMENT ON FUNCTION es._guard_modify() IS
    'Event table trigger: UPDATE, DELETE and TRUNCATE are refused (internal)';

-- Raises ES017 unless `store` is a registered event table.
CREATE FUNCTION es._check_store(store regclass) RETURNS void
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF store IS NULL THEN
        RAISE EXCEPTION 'store must not be NULL' USING ERRCODE = 'ES017',
            HINT = 'Omit the argument to use es.events.';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM es._stores s WHERE s.store = _check_store.store) THEN
        RAISE EXCEPTION '"%" is not an event table', store USING ERRCODE = 'ES017',
            HINT = 'Create event tables with es.create_event_table(); es.events is the default store.';
    END IF;
END $$;
COMMENT ON FUNCTION es._check_store(regclass) IS 'Raises ES017 unless the table is an event table (internal)';

-- Creates an event table: standard columns, indexes, position sequence, append-only guards.
-- Unqualified names follow the caller's search_path, like CREATE TABLE. Returns the table.
-- Errors: 42P07 when the name exists, 42501 without CREATE on the schema, 42602 bad name.
CREATE FUNCTION es.create_event_table(name text) RETURNS regclass
    LANGUAGE plpgsql AS $$
DECLARE
    parts  text[];
    nsp    text;
    rel    text;
    seq    text;
    suffix text;
    attempt int := 0;
    tbl    regclass;
BEGIN
    IF name IS NULL OR pg_catalog.btrim(name) = '' THEN
        RAISE EXCEPTION 'event table name must not be empty' USING ERRCODE = '42602';
    END IF;
    parts := pg_catalog.parse_ident(name);
    IF pg_catalog.array_length(parts, 1) = 1 THEN
        nsp := pg_catalog.current_schema();
        rel := parts[1];
        IF nsp IS NULL THEN
            RAISE EXCEPTION 'no schema has been selected to create in' USING ERRCODE = '3F000';
        END IF;
    ELSIF pg_catalog.array_length(parts, 1) = 2 THEN
        nsp := parts[1];
        rel := parts[2];
    ELSE
        RAISE EXCEPTION 'invalid event table name "%"', name USING ERRCODE = '42602',
            HINT = 'Use table or schema.table.';
    END IF;
    -- The position sequence: <table>_position_seq, shortened to fit in 63 bytes and numbered
    -- when that name is taken (long names sharing a prefix, or a user's relation).
    suffix := '_position_seq';
    LOOP
        seq := rel;
        WHILE pg_catalog.octet_length(seq || suffix) > 63 LOOP
            seq := pg_catalog.left(seq, -1);
        END LOOP;
        seq := seq || suffix;
        EXIT WHEN pg_catalog.to_regclass(pg_catalog.format('%I.%I', nsp, seq)) IS NULL;
        attempt := attempt + 1;
        suffix := '_position_seq' || attempt;
    END LOOP;

    EXECUTE pg_catalog.format($ddl$
        CREATE TABLE %1$I.%2$I (
            global_position bigint NOT NULL,
            stream_id       text NOT NULL,
            stream_version  bigint NOT NULL,
            event_id        uuid NOT NULL DEFAULT es.uuidv7(),
            event_type      text NOT NULL,
            data            jsonb NOT NULL DEFAULT 'null',
            metadata        jsonb,
            recorded_at     timestamptz NOT NULL DEFAULT pg_catalog.now(),
            PRIMARY KEY (global_position),
            UNIQUE (stream_id, stream_version),
            UNIQUE (event_id)
        )$ddl$, nsp, rel);
    tbl := pg_catalog.format('%I.%I', nsp, rel)::regclass;
    EXECUTE pg_catalog.format('CREATE SEQUENCE %1$I.%2$I AS bigint OWNED BY %1$I.%3$I.global_position',
                              nsp, seq, rel);
    EXECUTE pg_catalog.format($ddl$
        CREATE TRIGGER es_guard_insert BEFORE INSERT ON %1$s
            FOR EACH ROW EXECUTE FUNCTION es._guard_insert();
        CREATE TRIGGER es_version_chain AFTER INSERT ON %1$s
            FOR EACH ROW WHEN (NOT es._in_append(NEW.tableoid)) EXECUTE FUNCTION es._check_version_chain();
        CREATE TRIGGER es_guard_modify BEFORE UPDATE OR DELETE ON %1$s
            FOR EACH ROW EXECUTE FUNCTION es._guard_modify();
        CREATE TRIGGER es_guard_truncate BEFORE TRUNCATE ON %1$s
            FOR EACH STATEMENT EXECUTE FUNCTION es._guard_modify();
        ALTER TABLE %1$s ENABLE ALWAYS TRIGGER es_guard_insert;
        ALTER TABLE %1$s ENABLE ALWAYS TRIGGER es_version_chain;
        ALTER TABLE %1$s ENABLE ALWAYS TRIGGER es_guard_modify;
        ALTER TABLE %1$s ENABLE ALWAYS TRIGGER es_guard_truncate;
        COMMENT ON TABLE %1$s IS 'pg_eventstore event table (append-only)'
        $ddl$, tbl);
    INSERT INTO es._stores (store, position_seq)
        VALUES (tbl, pg_catalog.format('%I.%I', nsp, seq)::regclass);
    RETURN tbl;
END $$;
COMMENT ON FUNCTION es.create_event_table(text) IS
    'Creates an append-only event table (schema-qualified or on search_path) and returns it';

-- Drops an event table and everything registered against it (keys, subscriptions, routes,
-- projections: they reference es._stores with ON DELETE CASCADE). es.events cannot be dropped.
CREATE FUNCTION es.drop_event_table(name regclass) RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM es._check_store(name);
    IF (SELECT builtin FROM es._stores WHERE store = name) THEN
        RAISE EXCEPTION 'es.events belongs to the extension and cannot be dropped'
            USING ERRCODE = 'ES018', HINT = 'DROP EXTENSION pg_eventstore removes it.';
    END IF;
    DELETE FROM es._stores WHERE store = name;
    EXECUTE pg_catalog.format('DROP TABLE %s', name);
END $$;
COMMENT ON FUNCTION es.drop_event_table(regclass) IS
    'Drops an event table with its subscriptions, routes, projections and idempotency keys';

-- The default store.
SELECT es.create_event_table('es.events');
UPDATE es._stores SET builtin = true WHERE store = 'es.events'::regclass;
SELECT pg_catalog.pg_extension_config_dump('es.events', '');
SELECT pg_catalog.pg_extension_config_dump('es.events_position_seq', '');
-- Appending (API.md §2). Implemented in C++ (src/pg/append.cpp).

-- Appends a batch of events to a stream atomically.
-- Returns one row: versions and positions of the batch, and whether it was an idempotent replay.
-- Errors: ES001 wrong expected version, ES002 idempotency key reused, ES003 duplicate event id,
-- ES010-ES019 bad input, 42501 no INSERT privilege on the store.
CREATE FUNCTION es.append(
    stream_id text,
    expected_version bigint,
    events jsonb,
    idempotency_key text DEFAULT NULL,
    store regclass DEFAULT 'es.events')
RETURNS TABLE (first_version bigint, last_version bigint,
               first_position bigint, last_position bigint, duplicate boolean)
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'es_append';
COMMENT ON FUNCTION es.append(text, bigint, jsonb, text, regclass) IS
    'Appends a JSON array of events to a stream with an optimistic version check and an optional idempotency key';

-- Appends one event; same result and errors as es.append.
CREATE FUNCTION es.append_event(
    stream_id text,
    expected_version bigint,
    event_type text,
    data jsonb,
    metadata jsonb DEFAULT NULL,
    idempotency_key text DEFAULT NULL,
    store regclass DEFAULT 'es.events')
RETURNS TABLE (first_version bigint, last_version bigint,
               first_position bigint, last_position bigint, duplicate boolean)
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'es_append_event';
COMMENT ON FUNCTION es.append_event(text, bigint, text, jsonb, jsonb, text, regclass) IS
    'Appends one event to a stream; same checks and result as es.append';
-- Reading (API.md §3). Stream reads run with the caller's privileges (SELECT on the store).

-- Raises ES010 for a NULL or empty stream id and ES018 for a bad count or version.
CREATE FUNCTION es._check_read_args(stream_id text, from_version bigint, max_count int)
RETURNS void LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF stream_id IS NULL OR stream_id = '' THEN
        RAISE EXCEPTION 'stream id must not be NULL or empty' USING ERRCODE = 'ES010';
    END IF;
    IF from_version IS NOT NULL AND from_version < 1 THEN
        RAISE EXCEPTION 'from_version must be 1 or more' USING ERRCODE = 'ES018',
            DETAIL = pg_catalog.format('from_version is %s.', from_version);
    END IF;
    IF max_count IS NOT NULL AND max_count < 0 THEN
        RAISE EXCEPTION 'max_count must not be negative' USING ERRCODE = 'ES018',
            DETAIL = pg_catalog.format('max_count is %s.', max_count);
    END IF;
END $$;
COMMENT ON FUNCTION es._check_read_args(text, bigint, int) IS 'Argument checks of the stream reads (internal)';

-- The stream forward from from_version, at most max_count events (NULL: all).
CREATE FUNCTION es.read_stream(
    stream_id text,
    from_version bigint DEFAULT 1,
    max_count int DEFAULT NULL,
    store regclass DEFAULT 'es.events')
RETURNS SETOF es.event
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM es._check_read_args(stream_id, from_version, max_count);
    PERFORM es._check_store(store);
    RETURN QUERY EXECUTE pg_catalog.format(
        'SELECT global_position, stream_id, stream_version, event_id, event_type, data,'
        ' metadata, recorded_at FROM %s WHERE stream_id = $1 AND stream_version >= $2'
        ' ORDER BY stream_version LIMIT $3', store)
        USING stream_id, coalesce(from_version, 1), max_count;
END $$;
COMMENT ON FUNCTION es.read_stream(text, bigint, int, regclass) IS
    'Reads a stream forward from a version';

-- The stream newest first, from from_version (NULL: the last) down.
CREATE FUNCTION es.read_stream_backward(
    stream_id text,
    from_version bigint DEFAULT NULL,
    max_count int DEFAULT NULL,
    store regclass DEFAULT 'es.events')
RETURNS SETOF es.event
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM es._check_read_args(stream_id, from_version, max_count);
    PERFORM es._check_store(store);
    RETURN QUERY EXECUTE pg_catalog.format(
        'SELECT global_position, stream_id, stream_version, event_id, event_type, data,'
        ' metadata, recorded_at FROM %s WHERE stream_id = $1 AND stream_version <= $2'
        ' ORDER BY stream_version DESC LIMIT $3', store)
        USING stream_id, coalesce(from_version, pg_catalog.int8 '9223372036854775807'), max_count;
END $$;
COMMENT ON FUNCTION es.read_stream_backward(text, bigint, int, regclass) IS
    'Reads a stream newest first';

-- The stream's last version; 0 when it does not exist.
CREATE FUNCTION es.stream_version(stream_id text, store regclass DEFAULT 'es.events')
RETURNS bigint
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v bigint;
BEGIN
    PERFORM es._check_read_args(stream_id, NULL, NULL);
    PERFORM es._check_store(store);
    EXECUTE pg_catalog.format(
        'SELECT stream_version FROM %s WHERE stream_id = $1 ORDER BY stream_version DESC LIMIT 1',
        store) INTO v USING stream_id;
    RETURN coalesce(v, 0);
END $$;
COMMENT ON FUNCTION es.stream_version(text, regclass) IS
    'Last version of a stream, 0 when it does not exist';

-- The global order: events after after_position in position order, never past the safe
-- horizon (see README "The global order"). Implemented in C++ (src/pg/read_all.cpp).
CREATE FUNCTION es.read_all(
    after_position bigint DEFAULT 0,
    max_count int DEFAULT 1000,
    event_types text[] DEFAULT NULL,
    stream_prefix text DEFAULT NULL,
    store regclass DEFAULT 'es.events')
RETURNS SETOF es.event
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'es_read_all';
COMMENT ON FUNCTION es.read_all(bigint, int, text[], text, regclass) IS
    'Reads the commit-safe global order: a consumer keeping its last position never skips an event';

-- Highest position safe to read: everything at or below it is committed or will never be.
CREATE FUNCTION es.head_position(store regclass DEFAULT 'es.events')
RETURNS bigint
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'es_head_position';
COMMENT ON FUNCTION es.head_position(regclass) IS
    'Highest global position safe to read in the store';
-- Operations (API.md §8).

CREATE FUNCTION es._idempotency_retention_seconds() RETURNS int
    LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'es_idempotency_retention';
COMMENT ON FUNCTION es._idempotency_retention_seconds() IS
    'pg_eventstore.idempotency_retention in seconds (internal)';

-- Purges expired idempotency keys; safe to run from cron at any frequency.
-- Returns what it removed, one row per kind.
CREATE FUNCTION es.maintain()
RETURNS TABLE (kind text, removed bigint)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    n bigint;
BEGIN
    DELETE FROM es._idempotency_keys
     WHERE created_at < now() - make_interval(secs => es._idempotency_retention_seconds());
    GET DIAGNOSTICS n = ROW_COUNT;
    kind := 'idempotency_keys'; removed := n; RETURN NEXT;
END $$;
COMMENT ON FUNCTION es.maintain() IS
    'Purges expired idempotency keys (and, as they land, fully-acked outbox messages)';
-- Roles and grants (API.md §8): every grant of the extension lives in this file.
--   es_reader  read streams and the global order, consume (subscriptions, outbox claim/ack)
--   es_writer  append events, publish messages
--   es_admin   everything above, plus event tables, routes, projections, redaction
-- Per-store access is the table privilege: GRANT SELECT (read) / INSERT (append) ON a store.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'es_reader') THEN
        CREATE ROLE es_reader NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'es_writer') THEN
        CREATE ROLE es_writer NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'es_admin') THEN
        CREATE ROLE es_admin NOLOGIN;
    END IF;
END $$;
GRANT es_reader, es_writer TO es_admin;

-- Nothing is callable unless granted below.
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA es FROM PUBLIC;
GRANT USAGE ON SCHEMA es TO es_reader, es_writer, es_admin;

-- Harmless helpers that plain INSERTs into event tables evaluate (defaults, trigger WHEN).
GRANT EXECUTE ON FUNCTION es.uuidv7(), es._in_append(oid) TO PUBLIC;
GRANT SELECT ON es._stores TO PUBLIC;

-- Core: reading.
GRANT SELECT ON es.events TO es_reader;
GRANT EXECUTE ON FUNCTION
    es._check_store(regclass),
    es._check_read_args(text, bigint, int),
    es.read_stream(text, bigint, int, regclass),
    es.read_stream_backward(text, bigint, int, regclass),
    es.stream_version(text, regclass),
    es.read_all(bigint, int, text[], text, regclass),
    es.head_position(regclass)
    TO es_reader;

-- Core: appending.
GRANT INSERT ON es.events TO es_writer;
GRANT EXECUTE ON FUNCTION
    es.append(text, bigint, jsonb, text, regclass),
    es.append_event(text, bigint, text, jsonb, jsonb, text, regclass)
    TO es_writer;

-- Core: administration.
GRANT INSERT, DELETE ON es._stores TO es_admin;
GRANT EXECUTE ON FUNCTION
    es.create_event_table(text),
    es.drop_event_table(regclass),
    es._guard_insert(), es._check_version_chain(), es._guard_modify(),
    es.maintain(),
    es._idempotency_retention_seconds()
    TO es_admin;
