-- The C++/PostgreSQL boundary (STYLE.md §2): errors raised *inside* es.append (from SPI,
-- user triggers, constraints, timeouts) come out with their own SQLSTATE, DETAIL and HINT,
-- nothing is written, and the session keeps working: the next append in the same session
-- (and transaction, after a savepoint) succeeds, and the global order is not held back.
\set SHOW_CONTEXT never
CREATE SCHEMA regress_bd;
SELECT es.create_event_table('regress_bd.store');
SELECT es.create_event_table('regress_bd.other');
CREATE FUNCTION regress_bd.written() RETURNS bigint LANGUAGE sql AS
    $$ SELECT count(*) FROM regress_bd.store $$;
SELECT first_position FROM es.append('s-1', 0, '[{"type":"Start"}]', NULL, 'regress_bd.store');

-- 1. A user trigger that raises on the second event of a batch: its SQLSTATE, DETAIL and
-- HINT come through; the first event is not kept.
CREATE FUNCTION regress_bd.refuse_bad() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.event_type = 'Bad' THEN
        RAISE EXCEPTION 'event type Bad refused by a user trigger' USING ERRCODE = 'UX001',
            DETAIL = format('stream %s, version %s', NEW.stream_id, NEW.stream_version),
            HINT = 'Do not append Bad.';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refuse_bad BEFORE INSERT ON regress_bd.store
    FOR EACH ROW EXECUTE FUNCTION regress_bd.refuse_bad();
SELECT * FROM es.append('s-1', 1, '[{"type":"Good"},{"type":"Bad"}]', 'bd-key-1', 'regress_bd.store');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT regress_bd.written() AS written, es.stream_version('s-1', 'regress_bd.store') AS version;
-- The key of the failed call was not used up; the session appends again.
SELECT first_version, last_version, duplicate
  FROM es.append('s-1', 1, '[{"type":"Good"},{"type":"AlsoGood"}]', 'bd-key-1', 'regress_bd.store');
-- The same through es.append_event.
SELECT * FROM es.append_event('s-1', 3, 'Bad', '{}', NULL, NULL, 'regress_bd.store');
\echo sqlstate: :LAST_ERROR_SQLSTATE
DROP TRIGGER refuse_bad ON regress_bd.store;

-- 2. A check constraint the owner added.
-- (terse: the DETAIL shows the failing row, with its generated id and time)
ALTER TABLE regress_bd.store ADD CONSTRAINT small_data CHECK (octet_length(data::text) < 40);
\set VERBOSITY terse
SELECT * FROM es.append('s-1', 3, '[{"type":"Big","data":{"text":"far too long for the constraint"}}]', NULL, 'regress_bd.store');
\echo sqlstate: :LAST_ERROR_SQLSTATE
\set VERBOSITY default
SELECT first_version FROM es.append('s-1', 3, '[{"type":"Small","data":{"n":1}}]', NULL, 'regress_bd.store');
ALTER TABLE regress_bd.store DROP CONSTRAINT small_data;

-- 3. Out-of-range values computed inside the insert (a user trigger overflowing an integer,
-- dividing by zero).
CREATE FUNCTION regress_bd.compute() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM (NEW.data ->> 'i')::int + 1;
    PERFORM 100 / (NEW.data ->> 'd')::int;
    RETURN NEW;
END $$;
CREATE TRIGGER compute BEFORE INSERT ON regress_bd.store
    FOR EACH ROW EXECUTE FUNCTION regress_bd.compute();
SELECT * FROM es.append('s-1', 4, '[{"type":"N","data":{"i":2147483647,"d":1}}]', NULL, 'regress_bd.store');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT * FROM es.append('s-1', 4, '[{"type":"N","data":{"i":1,"d":0}}]', NULL, 'regress_bd.store');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT * FROM es.append('s-1', 4, '[{"type":"N","data":{"i":"x","d":1}}]', NULL, 'regress_bd.store');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT first_version FROM es.append('s-1', 4, '[{"type":"N","data":{"i":1,"d":1}}]', NULL, 'regress_bd.store');
DROP TRIGGER compute ON regress_bd.store;

-- 4. A query cancel (statement_timeout) while es.append waits inside a user trigger.
CREATE FUNCTION regress_bd.slow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_sleep(5);
    RETURN NEW;
END $$;
CREATE TRIGGER slow BEFORE INSERT ON regress_bd.store
    FOR EACH ROW EXECUTE FUNCTION regress_bd.slow();
SET statement_timeout = '100ms';
SELECT * FROM es.append('s-1', 5, '[{"type":"Slow"}]', 'bd-key-slow', 'regress_bd.store');
\echo sqlstate: :LAST_ERROR_SQLSTATE
RESET statement_timeout;
DROP TRIGGER slow ON regress_bd.store;
SELECT first_version, duplicate FROM es.append('s-1', 5, '[{"type":"Slow"}]', 'bd-key-slow', 'regress_bd.store');

-- 5. Inside one transaction: a failing append in a savepoint (here a plpgsql EXCEPTION
-- block) rolls back alone; the transaction appends again and commits; after it the head of
-- the global order is the last committed position (no registration leaked).
CREATE TRIGGER refuse_bad BEFORE INSERT ON regress_bd.store
    FOR EACH ROW EXECUTE FUNCTION regress_bd.refuse_bad();
BEGIN;
SELECT first_version FROM es.append('s-2', 0, '[{"type":"First"}]', NULL, 'regress_bd.store');
DO $$
BEGIN
    PERFORM es.append('s-2', 1, '[{"type":"Bad"}]', NULL, 'regress_bd.store');
EXCEPTION WHEN SQLSTATE 'UX001' THEN
    RAISE NOTICE 'caught: %', SQLERRM;
END $$;
SAVEPOINT before_conflict;
SELECT * FROM es.append('s-2', 5, '[{"type":"Wrong"}]', NULL, 'regress_bd.store');
ROLLBACK TO SAVEPOINT before_conflict;
SELECT first_version FROM es.append('s-2', 1, '[{"type":"Second"}]', NULL, 'regress_bd.store');
COMMIT;
SELECT stream_version, event_type FROM es.read_stream('s-2', 1, NULL, 'regress_bd.store');
SELECT es.head_position('regress_bd.store') = (SELECT last_value FROM regress_bd.store_position_seq)
       AS not_held_back,
       (SELECT count(*) FROM pg_locks WHERE locktype = 'userlock' AND pid = pg_backend_pid())
       AS registrations_left;
SELECT count(*) = regress_bd.written() AS read_all_sees_all
  FROM es.read_all(0, 1000, NULL, NULL, 'regress_bd.store');
-- A failed transaction leaves nothing behind either.
BEGIN;
SELECT first_version FROM es.append('s-3', 0, '[{"type":"First"}]', NULL, 'regress_bd.store');
SELECT * FROM es.append('s-3', 1, '[{"type":"Bad"}]', NULL, 'regress_bd.store');
COMMIT;
SELECT es.stream_version('s-3', 'regress_bd.store') AS s_3,
       es.head_position('regress_bd.store') = (SELECT last_value FROM regress_bd.store_position_seq)
       AS not_held_back,
       (SELECT count(*) FROM pg_locks WHERE locktype = 'userlock' AND pid = pg_backend_pid())
       AS registrations_left;
DROP TRIGGER refuse_bad ON regress_bd.store;

-- 6. Nested appends: a trigger on one store appends to another through es.append (allowed,
-- checked like any append), but a plain INSERT it makes into another store is a plain INSERT
-- and gets the plain INSERT checks, although es.append is running.
CREATE FUNCTION regress_bd.mirror() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM es.append('mirror-' || NEW.stream_id, NULL,
                      jsonb_build_array(jsonb_build_object('type', NEW.event_type)), NULL,
                      'regress_bd.other');
    RETURN NEW;
END $$;
CREATE TRIGGER mirror BEFORE INSERT ON regress_bd.store
    FOR EACH ROW EXECUTE FUNCTION regress_bd.mirror();
SELECT first_version, last_version FROM es.append('s-4', 0, '[{"type":"A"},{"type":"B"}]', NULL, 'regress_bd.store');
SELECT global_position, stream_id, stream_version, event_type FROM regress_bd.other ORDER BY 1;
-- An error inside the nested append (its stream id 'mirror-' || 1020 bytes is too long)
-- surfaces from the outer one with its SQLSTATE; neither store keeps anything.
SELECT * FROM es.append(repeat('s', 1020), 0, '[{"type":"A"}]', NULL, 'regress_bd.store');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT es.stream_version(repeat('s', 1020), 'regress_bd.store') AS outer_stream,
       (SELECT count(*) FROM regress_bd.other) AS other_events;
DROP TRIGGER mirror ON regress_bd.store;
CREATE FUNCTION regress_bd.forge() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO regress_bd.other (global_position, stream_id, stream_version, event_type)
    VALUES (1000, 'forged', 7, 'Forged');
    RETURN NEW;
END $$;
CREATE TRIGGER forge BEFORE INSERT ON regress_bd.store
    FOR EACH ROW EXECUTE FUNCTION regress_bd.forge();
SELECT * FROM es.append('s-6', 0, '[{"type":"A"}]', NULL, 'regress_bd.store');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT count(*) AS forged FROM regress_bd.other WHERE stream_id = 'forged';
-- A recursive plain INSERT into the same store is checked too (versions gapless).
CREATE OR REPLACE FUNCTION regress_bd.forge() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.stream_id <> 'forged' THEN
        INSERT INTO regress_bd.store (stream_id, stream_version, event_type)
        VALUES ('forged', 7, 'Forged');
    END IF;
    RETURN NEW;
END $$;
SELECT * FROM es.append('s-6', 0, '[{"type":"A"}]', NULL, 'regress_bd.store');
\echo sqlstate: :LAST_ERROR_SQLSTATE
DROP TRIGGER forge ON regress_bd.store;
SELECT count(*) AS forged FROM regress_bd.store WHERE stream_id = 'forged';

-- 7. After all of this the backend is healthy: appends, reads, positions in order.
SELECT first_version, duplicate FROM es.append('s-1', NULL, '[{"type":"End"}]', NULL, 'regress_bd.store');
SELECT stream_version, event_type FROM es.read_stream('s-1', 1, NULL, 'regress_bd.store');
SELECT bool_and(global_position > prev) AS positions_increase FROM (
    SELECT global_position, lag(global_position, 1, 0::bigint) OVER (ORDER BY global_position) AS prev
      FROM regress_bd.store) t;

SELECT es.drop_event_table('regress_bd.store'), es.drop_event_table('regress_bd.other');
DROP SCHEMA regress_bd CASCADE;
