-- Appending (API.md §2). Implemented in C++ (src/pg/append.cpp).
-- Re-runnable (CREATE OR REPLACE only): the 0.2.0 -> 0.3.0 upgrade runs this file after its
-- head dropped the 0.2.0 definitions (which returned TABLE (...)); 91_grants.sql grants them.
-- SETOF with ROWS 1: every call returns exactly one row or raises, but a set-returning
-- function keeps `SELECT (es.append(...)).*` to one call (a plain composite result would be
-- evaluated once per column, appending five times).

-- Appends a batch of events to a stream atomically.
-- Returns one row: versions and positions of the batch, and whether it was an idempotent replay.
-- Errors: ES001 wrong expected version, ES002 idempotency key reused, ES003 duplicate event id,
-- ES010-ES019 bad input, 42501 no INSERT privilege on the store.
CREATE OR REPLACE FUNCTION es.append(
    stream_id text,
    expected_version bigint,
    events jsonb,
    idempotency_key text DEFAULT NULL,
    store regclass DEFAULT 'es.events')
RETURNS SETOF es.append_result ROWS 1
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'es_append';
COMMENT ON FUNCTION es.append(text, bigint, jsonb, text, regclass) IS
    'Appends a JSON array of events to a stream with an optimistic version check and an optional idempotency key';

-- Appends one event; same result and errors as es.append.
CREATE OR REPLACE FUNCTION es.append_event(
    stream_id text,
    expected_version bigint,
    event_type text,
    data jsonb,
    metadata jsonb DEFAULT NULL,
    idempotency_key text DEFAULT NULL,
    store regclass DEFAULT 'es.events')
RETURNS SETOF es.append_result ROWS 1
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'es_append_event';
COMMENT ON FUNCTION es.append_event(text, bigint, text, jsonb, jsonb, text, regclass) IS
    'Appends one event to a stream; same checks and result as es.append';
