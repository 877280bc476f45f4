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
    CHECK ((mode = 'matview') = (matview IS NOT NULL)),
    CHECK ((mode = 'matview') = (handler IS NULL))
);
CREATE INDEX ON es._projections (store) WHERE mode = 'inline';
COMMENT ON TABLE es._projections IS 'Registry and checkpoints of projections (internal)';
SELECT pg_catalog.pg_extension_config_dump('es._projections', '');
-- Registering a projection directly in the registry needs SELECT on its store too (a handler
-- gets its events); every row stays visible. The extension owner (and pg_restore) bypass RLS.
ALTER TABLE es._projections ENABLE ROW LEVEL SECURITY;
CREATE POLICY projections_read ON es._projections FOR SELECT USING (true);
CREATE POLICY projections_delete ON es._projections FOR DELETE USING (true);
CREATE POLICY projections_insert ON es._projections FOR INSERT
    WITH CHECK (pg_catalog.has_table_privilege(store, 'SELECT'));
CREATE POLICY projections_update ON es._projections FOR UPDATE
    USING (true) WITH CHECK (pg_catalog.has_table_privilege(store, 'SELECT'));

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
