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

-- Core: appending. EXECUTE on es.append and es.append_event is granted in 91_grants.sql,
-- which the 0.2.0 -> 0.3.0 upgrade re-runs after re-creating them.
GRANT INSERT ON es.events TO es_writer;

-- Core: administration.
GRANT INSERT, DELETE ON es._stores TO es_admin;
GRANT EXECUTE ON FUNCTION
    es.create_event_table(text),
    es.drop_event_table(regclass),
    es._guard_insert(), es._check_version_chain(), es._guard_modify(),
    es.maintain(),
    es._idempotency_retention_seconds()
    TO es_admin;
