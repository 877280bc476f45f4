-- Store notifications (API.md §4): channels, the relay's poll, starting and watching the relay.
-- Writers never NOTIFY: a relay (a background worker per database, src/pg/relay.cpp) runs
-- es._relay_poll() every pg_eventstore.relay_interval and NOTIFYs each row after its own
-- commit. A notification is a doorbell; es.read_all is the truth.

-- The NOTIFY channel of an event table: 'es_store_', the qualified name folded to
-- [a-z0-9_] (at most 40 characters), '_' and 8 hex digits of md5 of the quoted qualified
-- name (so folded names cannot collide). At most 58 bytes, usable unquoted in LISTEN, and
-- the same after dump/restore (it never depends on an oid); renaming the table changes it.
-- Errors: ES017 not an event table.
CREATE FUNCTION es.store_channel(store regclass DEFAULT 'es.events') RETURNS text
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    nsp text;
    rel text;
BEGIN
    PERFORM es._check_store(store);
    SELECT n.nspname, c.relname INTO nsp, rel
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = store;
    RETURN 'es_store_'
        || left(lower(regexp_replace(nsp || '_' || rel, '[^A-Za-z0-9_]+', '_', 'g')), 40)
        || '_' || left(md5(format('%I.%I', nsp, rel)), 8);
END $$;
COMMENT ON FUNCTION es.store_channel(regclass) IS
    'The NOTIFY channel of an event table (stable across dump/restore)';

CREATE FUNCTION es._relay_store_news(store regclass, position_seq regclass) RETURNS bigint
    LANGUAGE c VOLATILE STRICT AS 'MODULE_PATHNAME', 'es_relay_store_news';
COMMENT ON FUNCTION es._relay_store_news(regclass, regclass) IS
    'Position to announce for a store now, or NULL; state kept in this backend (internal)';

-- What the relay must announce now: one row per store whose newest settled event is past what
-- this backend announced before (payload: that position), then the outbox's rows (the same as
-- es._relay_poll_outbox()). Settled: the relay reads on from the store's last head as far as
-- the events run without a gap (a snapshot taken now sees every position: all are final, no
-- lock-table copy); only when that finds nothing new, the safe head, read first, and the newest
-- event at or below it second, with a fresh snapshot. An append that rolled back advances the
-- head but never the newest event, so it is never announced; one that commits is announced at
-- the first poll after its commit (or, behind a rolled-back position, at the next one). The
-- state ("announced up to") lives in the calling backend's memory: each backend polls for
-- itself, a restarted relay announces every non-empty store once. A store being dropped is
-- skipped, not waited for; one whose sequence has not moved since a poll that found nothing in
-- flight is skipped without computing its head. C (src/pg/relay.cpp): the relay worker runs
-- the same code every pg_eventstore.relay_interval, with plans kept across polls.
CREATE FUNCTION es._relay_poll()
RETURNS TABLE (channel text, payload text)
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'es_relay_poll';
COMMENT ON FUNCTION es._relay_poll() IS
    'Notifications due since this backend''s last poll: (channel, payload) rows for the relay (internal)';

-- Starts this database's relay unless one runs. Returns true when one runs or was started,
-- false when pg_eventstore.relay is off or no background worker slot is free.
CREATE FUNCTION es.relay_start() RETURNS boolean
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'es_relay_start';
COMMENT ON FUNCTION es.relay_start() IS
    'Starts the notification relay of the current database unless it runs';

CREATE FUNCTION es._relay_interval_ms() RETURNS integer
    LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'es_relay_interval_ms';
COMMENT ON FUNCTION es._relay_interval_ms() IS
    'pg_eventstore.relay_interval in milliseconds (internal)';

-- Whether this database's relay runs: its pid (from the session lock it holds, visible in
-- pg_locks to everyone), its start time (NULL unless the caller may see it in
-- pg_stat_activity) and the poll interval.
CREATE FUNCTION es.relay_status()
RETURNS TABLE (running boolean, pid integer, started_at timestamptz, poll_interval_ms integer)
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT l.pid IS NOT NULL, l.pid, a.backend_start, es._relay_interval_ms()
      FROM (SELECT 1) one
      LEFT JOIN pg_locks l
        ON l.locktype = 'userlock' AND l.granted
       AND l.database = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())
       AND l.classid = 0 AND l.objid = 0 AND l.objsubid = 16384
      LEFT JOIN pg_stat_activity a ON a.pid = l.pid
$$;
COMMENT ON FUNCTION es.relay_status() IS
    'Whether the notification relay of the current database runs (pid, start time, interval)';

-- LISTENs (from the caller's next commit, like LISTEN) on the store's channel and makes sure
-- the relay runs; returns the channel. Errors: ES017 not an event table, 42501 no SELECT.
CREATE FUNCTION es.listen(store regclass DEFAULT 'es.events') RETURNS text
    LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    channel text := es.store_channel(store);
BEGIN
    IF NOT has_table_privilege(store, 'SELECT') THEN
        RAISE EXCEPTION 'permission denied to listen to event table %', store
            USING ERRCODE = '42501', HINT = 'Grant SELECT on the store to the caller.';
    END IF;
    EXECUTE format('LISTEN %I', channel);
    IF NOT es.relay_start() THEN
        RAISE WARNING 'the notification relay is not running'
            USING DETAIL = 'pg_eventstore.relay is off, or no background worker slot is free.',
                  HINT = 'Raise max_worker_processes (one relay per database is needed).';
    END IF;
    RETURN channel;
END $$;
COMMENT ON FUNCTION es.listen(regclass) IS
    'LISTENs on a store''s notification channel and starts the relay; returns the channel';

-- Grants. This file is assembled after 90_roles.sql (whose REVOKE ... FROM PUBLIC ran before
-- these functions existed), so it revokes and grants its own; see the note there.
REVOKE ALL ON FUNCTION
    es.store_channel(regclass),
    es._relay_store_news(regclass, regclass),
    es._relay_poll(),
    es._relay_interval_ms(),
    es.relay_start(),
    es.relay_status(),
    es.listen(regclass)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    es.store_channel(regclass),
    es._relay_interval_ms(),
    es.relay_start(),
    es.relay_status(),
    es.listen(regclass)
    TO es_reader;
