-- State, snapshots, time travel (API.md §7) on a store of its own.
\set VERBOSITY terse
SET client_min_messages = warning;
SELECT es.create_event_table('public.bank_events');

-- A reducer that keeps a balance, and counts its calls in a temp table so the test can see
-- how many events each fold actually read.
CREATE TEMP TABLE reducer_calls (n int NOT NULL);
INSERT INTO reducer_calls VALUES (0);
CREATE FUNCTION balance(state jsonb, e es.event) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    UPDATE reducer_calls SET n = n + 1;
    RETURN CASE e.event_type
        WHEN 'Deposited' THEN jsonb_build_object(
            'balance', coalesce((state->>'balance')::numeric, 0) + (e.data->>'amount')::numeric,
            'version', e.stream_version)
        WHEN 'Withdrawn' THEN jsonb_build_object(
            'balance', coalesce((state->>'balance')::numeric, 0) - (e.data->>'amount')::numeric,
            'version', e.stream_version)
        ELSE state END;
END $$;
-- Another reducer: counts events.
CREATE FUNCTION event_count(state jsonb, e es.event) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('count', coalesce((state->>'count')::int, 0) + 1)
$$;
CREATE FUNCTION calls() RETURNS int LANGUAGE sql AS $$
    SELECT n FROM reducer_calls $$;
CREATE FUNCTION reset_calls() RETURNS void LANGUAGE sql AS $$
    UPDATE reducer_calls SET n = 0 $$;

-- Six events, recorded in three transactions at distinct times.
SELECT last_version FROM es.append('acct-1', 0,
    '[{"type": "Deposited", "data": {"amount": 100}}, {"type": "Withdrawn", "data": {"amount": 30}}]',
    store => 'bank_events');
SELECT pg_sleep(0.05);
SELECT clock_timestamp() AS after_two \gset
SELECT pg_sleep(0.05);
SELECT last_version FROM es.append('acct-1', 2,
    '[{"type": "Deposited", "data": {"amount": 5}}, {"type": "Renamed", "data": {}}]',
    store => 'bank_events');
SELECT pg_sleep(0.05);
SELECT clock_timestamp() AS after_four \gset
SELECT pg_sleep(0.05);
SELECT last_version FROM es.append('acct-1', 4,
    '[{"type": "Withdrawn", "data": {"amount": 20}}, {"type": "Deposited", "data": {"amount": 1}}]',
    store => 'bank_events');

-- Without snapshots: every event is read.
SELECT reset_calls();
SELECT es.aggregate_state('acct-1', 'balance(jsonb, es.event)', store => 'bank_events') AS state,
       calls() AS events_read;
-- Up to a version, and as of a time.
SELECT reset_calls();
SELECT es.aggregate_state('acct-1', 'balance(jsonb, es.event)', to_version => 3,
                          store => 'bank_events') AS state, calls() AS events_read;
SELECT es.aggregate_state('acct-1', 'balance(jsonb, es.event)', as_of => :'after_two',
                          store => 'bank_events') AS as_of_after_two;
SELECT es.aggregate_state('acct-1', 'balance(jsonb, es.event)', as_of => :'after_four',
                          store => 'bank_events') AS as_of_after_four;
SELECT es.aggregate_state('acct-1', 'balance(jsonb, es.event)', as_of => '2000-01-01',
                          initial => '{"balance": 0}', store => 'bank_events') AS before_anything;
SELECT es.aggregate_state('acct-1', 'balance(jsonb, es.event)', to_version => 0,
                          initial => '{"balance": 0}', store => 'bank_events') AS version_zero;
SELECT es.aggregate_state('nobody', 'balance(jsonb, es.event)', store => 'bank_events') AS unknown_stream;

-- A snapshot at version 4 for this reducer: the fold starts there and reads 2 events.
SELECT es.snapshot_save('acct-1', 4,
    es.aggregate_state('acct-1', 'balance(jsonb, es.event)', to_version => 4, store => 'bank_events'),
    'bank_events', 'balance(jsonb, es.event)');
SELECT * FROM es.snapshot_load('acct-1', 'bank_events', 'balance(jsonb, es.event)');
SELECT reset_calls();
SELECT es.aggregate_state('acct-1', 'balance(jsonb, es.event)', store => 'bank_events') AS state,
       calls() AS events_read;
-- Same answer as the full fold.
SELECT reset_calls();
SELECT es.aggregate_state('acct-1', 'balance(jsonb, es.event)', store => 'bank_events',
                          use_snapshots => false) AS full_fold, calls() AS events_read;
-- The snapshot is not used below its version, nor when as_of predates it.
SELECT reset_calls();
SELECT es.aggregate_state('acct-1', 'balance(jsonb, es.event)', to_version => 3,
                          store => 'bank_events') AS state, calls() AS events_read;
SELECT reset_calls();
SELECT es.aggregate_state('acct-1', 'balance(jsonb, es.event)', as_of => :'after_two',
                          store => 'bank_events') AS state, calls() AS events_read;
-- A snapshot at exactly to_version: nothing left to read.
SELECT reset_calls();
SELECT es.aggregate_state('acct-1', 'balance(jsonb, es.event)', to_version => 4,
                          store => 'bank_events') AS state, calls() AS events_read;

-- Snapshots belong to their reducer: event_count does not use balance's snapshot ...
SELECT es.aggregate_state('acct-1', 'event_count(jsonb, es.event)', store => 'bank_events') AS counted;
SELECT * FROM es.snapshot_load('acct-1', 'bank_events', 'event_count(jsonb, es.event)');
-- ... but a snapshot saved without a reducer serves every reducer (a deliberately odd state
-- shows it was used), and the reducer's own newer snapshot still wins for balance.
SELECT es.snapshot_save('acct-1', 2, '{"count": 100}', 'bank_events');
SELECT es.aggregate_state('acct-1', 'event_count(jsonb, es.event)', store => 'bank_events') AS counted;
SELECT * FROM es.snapshot_load('acct-1', 'bank_events');
SELECT * FROM es.snapshot_load('acct-1', 'bank_events', 'event_count(jsonb, es.event)');
SELECT * FROM es.snapshot_load('acct-1', 'bank_events', 'balance(jsonb, es.event)');
-- Saving the same version again replaces the state.
SELECT es.snapshot_save('acct-1', 2, '{"count": 2}', 'bank_events');
SELECT es.aggregate_state('acct-1', 'event_count(jsonb, es.event)', store => 'bank_events') AS counted;
SELECT * FROM es.snapshot_load('acct-2', 'bank_events') AS no_snapshot;

-- Errors, with their SQLSTATEs.
CREATE FUNCTION pg_temp.outcome(statement text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE statement;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
SELECT pg_temp.outcome(s) FROM (VALUES
    ($$SELECT es.aggregate_state('acct-1', 'calls()', store => 'bank_events')$$),
    ($$SELECT es.aggregate_state('acct-1', NULL, store => 'bank_events')$$),
    ($$SELECT es.aggregate_state('', 'balance(jsonb, es.event)', store => 'bank_events')$$),
    ($$SELECT es.aggregate_state('acct-1', 'balance(jsonb, es.event)', to_version => -1, store => 'bank_events')$$),
    ($$SELECT es.aggregate_state('acct-1', 'balance(jsonb, es.event)', store => 'reducer_calls')$$),
    ($$SELECT es.snapshot_save('acct-1', 7, '{}', 'bank_events')$$),
    ($$SELECT es.snapshot_save('acct-1', 0, '{}', 'bank_events')$$),
    ($$SELECT es.snapshot_save('acct-1', 1, NULL, 'bank_events')$$),
    ($$SELECT es.snapshot_save('acct-1', 1, '{}', 'bank_events', 'calls()')$$),
    ($$SELECT es.snapshot_load('acct-1', 'bank_events', 'calls()')$$)) AS t(s);

-- Reducers run with the caller's rights, and snapshots are only visible to roles that may
-- read their store.
CREATE ROLE regress_state_reader;
GRANT es_reader TO regress_state_reader;
GRANT EXECUTE ON FUNCTION event_count(jsonb, es.event) TO regress_state_reader;
SET ROLE regress_state_reader;
SELECT pg_temp.outcome($$SELECT es.aggregate_state('acct-1', 'event_count(jsonb, es.event)', store => 'bank_events')$$);
SELECT count(*) AS visible_snapshots FROM es._snapshots WHERE store = 'bank_events'::regclass;
RESET ROLE;
GRANT SELECT ON bank_events TO regress_state_reader;
SET ROLE regress_state_reader;
SELECT es.aggregate_state('acct-1', 'event_count(jsonb, es.event)', store => 'bank_events') AS counted;
SELECT count(*) AS visible_snapshots FROM es._snapshots WHERE store = 'bank_events'::regclass;
SELECT pg_temp.outcome($$SELECT es.snapshot_save('acct-1', 1, '{}', 'bank_events')$$);
RESET ROLE;

-- Dropping the store drops its snapshots.
SELECT es.drop_event_table('bank_events');
SELECT count(*) AS snapshots_left FROM es._snapshots WHERE store::oid NOT IN (SELECT store FROM es._stores);
DROP FUNCTION balance(jsonb, es.event), event_count(jsonb, es.event), calls(), reset_calls();
DROP ROLE regress_state_reader;
