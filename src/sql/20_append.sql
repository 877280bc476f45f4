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
