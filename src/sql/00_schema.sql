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

-- The row es.append and es.append_event return (API.md §2). A named type rather than
-- RETURNS TABLE: the executor then takes the result's descriptor from the type cache instead
-- of rebuilding it from pg_proc on every call. The 0.2.0 -> 0.3.0 upgrade creates it too
-- (src/upgrade/0.2.0--0.3.0.head.sql): keep the two definitions equal.
CREATE TYPE es.append_result AS (
    first_version  bigint,
    last_version   bigint,
    first_position bigint,
    last_position  bigint,
    duplicate      boolean
);
COMMENT ON TYPE es.append_result IS 'Result of es.append and es.append_event: versions and positions of the batch, and whether it was an idempotent replay';

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
