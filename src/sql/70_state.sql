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
