-- Reading (API.md §3). Stream reads run with the caller's privileges (SELECT on the store).
-- Re-runnable (CREATE OR REPLACE only): the 0.2.0 -> 0.3.0 upgrade runs this file, replacing
-- the PL/pgSQL stream reads of 0.2.0 with the C++ ones (their ACLs stay).

-- Raises ES010 for a NULL or empty stream id and ES018 for a bad count or version.
CREATE OR REPLACE FUNCTION es._check_read_args(stream_id text, from_version bigint, max_count int)
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

-- The stream forward from from_version (NULL: 1), at most max_count events (NULL: all).
-- Errors: ES010 NULL or empty stream id, ES018 from_version below 1 or negative max_count,
-- ES017 unknown store, 42501 no USAGE on the store's schema or no SELECT on the store.
-- Implemented in C++ (src/pg/read_stream.cpp); runs as the caller.
CREATE OR REPLACE FUNCTION es.read_stream(
    stream_id text,
    from_version bigint DEFAULT 1,
    max_count int DEFAULT NULL,
    store regclass DEFAULT 'es.events')
RETURNS SETOF es.event
    LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'es_read_stream';
COMMENT ON FUNCTION es.read_stream(text, bigint, int, regclass) IS
    'Reads a stream forward from a version';

-- The stream newest first, from from_version (NULL: the last) down; same errors as read_stream.
CREATE OR REPLACE FUNCTION es.read_stream_backward(
    stream_id text,
    from_version bigint DEFAULT NULL,
    max_count int DEFAULT NULL,
    store regclass DEFAULT 'es.events')
RETURNS SETOF es.event
    LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'es_read_stream_backward';
COMMENT ON FUNCTION es.read_stream_backward(text, bigint, int, regclass) IS
    'Reads a stream newest first';

-- The stream's last version; 0 when it does not exist.
CREATE OR REPLACE FUNCTION es.stream_version(stream_id text, store regclass DEFAULT 'es.events')
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
CREATE OR REPLACE FUNCTION es.read_all(
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
CREATE OR REPLACE FUNCTION es.head_position(store regclass DEFAULT 'es.events')
RETURNS bigint
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'es_head_position';
COMMENT ON FUNCTION es.head_position(regclass) IS
    'Highest global position safe to read in the store';
