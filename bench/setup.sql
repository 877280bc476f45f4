-- Benchmark fixtures: the extension, the baseline tables and functions, the read data set.
-- Run by bench/run in a database of its own; :streams and :read_streams come from psql -v.
\set ON_ERROR_STOP on
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_eventstore;

-- Baseline table: the columns and indexes of an event table (PK global_position from a
-- sequence, UNIQUE (stream_id, stream_version), UNIQUE (event_id)), without triggers or checks.
CREATE TABLE bench_raw (
    global_position bigint NOT NULL,
    stream_id       text NOT NULL,
    stream_version  bigint NOT NULL,
    event_id        uuid NOT NULL DEFAULT es.uuidv7(),
    event_type      text NOT NULL,
    data            jsonb NOT NULL DEFAULT 'null',
    metadata        jsonb,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (global_position),
    UNIQUE (stream_id, stream_version),
    UNIQUE (event_id)
);
CREATE SEQUENCE bench_raw_seq AS bigint OWNED BY bench_raw.global_position;

-- The same shape for the hand-written PL/pgSQL append.
CREATE TABLE bench_plpgsql (LIKE bench_raw INCLUDING ALL);
CREATE SEQUENCE bench_plpgsql_seq AS bigint OWNED BY bench_plpgsql.global_position;

-- The usual hand-written append: per-stream advisory lock, read the last version, check the
-- expected version, insert. Returns the new version and position.
CREATE FUNCTION bench_plpgsql_append(p_stream text, p_expected bigint, p_type text,
                                     p_data jsonb, p_metadata jsonb DEFAULT NULL,
                                     OUT new_version bigint, OUT new_position bigint)
LANGUAGE plpgsql AS $$
DECLARE
    current bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended(p_stream, 0));
    SELECT stream_version INTO current FROM bench_plpgsql
        WHERE stream_id = p_stream ORDER BY stream_version DESC LIMIT 1;
    current := coalesce(current, 0);
    IF p_expected IS NOT NULL AND p_expected <> current THEN
        RAISE EXCEPTION 'wrong expected version' USING ERRCODE = 'ES001',
            DETAIL = format('expected %s, actual %s', p_expected, current);
    END IF;
    new_version := current + 1;
    new_position := nextval('bench_plpgsql_seq');
    INSERT INTO bench_plpgsql (global_position, stream_id, stream_version, event_type, data, metadata)
        VALUES (new_position, p_stream, new_version, p_type, p_data, p_metadata);
END $$;

-- A client's optimistic retry loop around es.append_event with an explicit expected version:
-- read the version, append, on ES001 read again. Returns the number of retries it needed.
CREATE FUNCTION bench_append_with_retry(p_stream text, p_type text, p_data jsonb)
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    retries int := 0;
BEGIN
    LOOP
        BEGIN
            PERFORM es.append_event(p_stream, es.stream_version(p_stream), p_type, p_data);
            RETURN retries;
        EXCEPTION WHEN SQLSTATE 'ES001' THEN
            retries := retries + 1;
        END;
    END LOOP;
END $$;

-- Read data set: :read_streams streams of 20 events each ('r-1' ... ), appended in batches.
SELECT count(*) AS appended_streams
FROM generate_series(1, :read_streams) s,
     LATERAL es.append('r-' || s, 0,
         (SELECT jsonb_agg(jsonb_build_object('type', 'Loaded',
                                              'data', jsonb_build_object('n', i, 'stream', s)))
          FROM generate_series(1, 20) i)) a;
ANALYZE;

-- Outbox benchmarks (issue 4): the consumer group of the claim cycle, and the hand-written
-- FOR UPDATE SKIP LOCKED queue it is compared with (id order, lease by visible_at, attempts).
SELECT es.outbox_subscribe('bench', 'bench-claim');
CREATE TABLE bench_queue (
    id         bigserial PRIMARY KEY,
    payload    jsonb NOT NULL,
    visible_at timestamptz NOT NULL DEFAULT now(),
    attempts   int NOT NULL DEFAULT 0
);
CREATE INDEX ON bench_queue (visible_at, id);

-- Projection benchmarks (issue 5): two event tables, one with an inline projection whose
-- handler is one upsert per event.
SELECT es.create_event_table('bench_noproj'), es.create_event_table('bench_inline');
CREATE TABLE bench_counts (stream_id text PRIMARY KEY, n bigint NOT NULL);
CREATE FUNCTION bench_count_handler(e es.event) RETURNS void LANGUAGE sql AS $$
    INSERT INTO bench_counts VALUES (e.stream_id, 1)
    ON CONFLICT (stream_id) DO UPDATE SET n = bench_counts.n + 1 $$;
SELECT es.projection_create('bench_inline_counts', 'bench_count_handler(es.event)', 'bench_inline',
                            mode => 'inline');
