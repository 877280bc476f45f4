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
