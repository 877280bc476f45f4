-- Subscriptions (API.md §4): named, checkpointed readers of a store's commit-safe global order.
-- A subscription remembers the position its consumer has acknowledged; es.subscription_next
-- reads the page after it through es.read_all (so it inherits the safe horizon, the caller's
-- SELECT privilege on the store and the filters), es.subscription_ack moves it forward only.
-- SQLSTATEs: ES030 unknown subscription, ES031 duplicate name, ES032 invalid argument,
-- ES033 position beyond the head.

CREATE TABLE es._subscriptions (
    name          text PRIMARY KEY,
    store         regclass NOT NULL REFERENCES es._stores ON DELETE CASCADE,
    event_types   text[],
    stream_prefix text,
    position      bigint NOT NULL CHECK (position >= 0),
    created_at    timestamptz NOT NULL DEFAULT pg_catalog.now(),
    acked_at      timestamptz
);
CREATE INDEX ON es._subscriptions (store);
COMMENT ON TABLE es._subscriptions IS 'Subscriptions and their checkpoints (internal)';
SELECT pg_catalog.pg_extension_config_dump('es._subscriptions', '');

-- Checkpoints never move backwards, not even through a direct UPDATE of the registry.
CREATE FUNCTION es._subscription_forward_only() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NEW.position < OLD.position THEN
        RAISE EXCEPTION 'subscription "%" cannot move back from % to %',
            OLD.name, OLD.position, NEW.position USING ERRCODE = 'ES032',
            HINT = 'Drop and re-create the subscription with start_position to replay.';
    END IF;
    RETURN NEW;
END $$;
COMMENT ON FUNCTION es._subscription_forward_only() IS
    'es._subscriptions trigger: a checkpoint never moves backwards (internal)';
CREATE TRIGGER es_forward_only BEFORE UPDATE OF position ON es._subscriptions
    FOR EACH ROW EXECUTE FUNCTION es._subscription_forward_only();

-- Raises ES032 for a NULL, empty or over-long subscription name.
CREATE FUNCTION es._check_subscription_name(name text) RETURNS void
    LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF name IS NULL OR name = '' THEN
        RAISE EXCEPTION 'subscription name must not be NULL or empty' USING ERRCODE = 'ES032';
    END IF;
    IF pg_catalog.octet_length(name) > 256 THEN
        RAISE EXCEPTION 'subscription name is too long' USING ERRCODE = 'ES032',
            DETAIL = pg_catalog.format('%s bytes; at most 256 are allowed.',
                                       pg_catalog.octet_length(name));
    END IF;
END $$;
COMMENT ON FUNCTION es._check_subscription_name(text) IS
    'Raises ES032 for a NULL, empty or over-long subscription name (internal)';

-- Creates a subscription that starts after start_position (0: from the beginning).
-- Errors: ES031 name taken, ES032 bad argument, ES033 start_position beyond the head,
-- ES017 not an event table, 42501 no SELECT on the store.
CREATE FUNCTION es.subscription_create(
    name text,
    store regclass DEFAULT 'es.events',
    event_types text[] DEFAULT NULL,
    stream_prefix text DEFAULT NULL,
    start_position bigint DEFAULT 0)
RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    head bigint;
BEGIN
    PERFORM es._check_subscription_name(name);
    PERFORM es._check_store(store);
    IF start_position IS NULL OR start_position < 0 THEN
        RAISE EXCEPTION 'start_position must be 0 or more' USING ERRCODE = 'ES032',
            DETAIL = pg_catalog.format('start_position is %s.', coalesce(start_position::text, 'NULL'));
    END IF;
    IF event_types IS NOT NULL AND (pg_catalog.cardinality(event_types) = 0
            OR pg_catalog.array_position(event_types, NULL) IS NOT NULL
            OR '' = ANY (event_types)) THEN
        RAISE EXCEPTION 'event_types must be NULL or a non-empty array of non-empty types'
            USING ERRCODE = 'ES032', HINT = 'Pass NULL to receive every event type.';
    END IF;
    IF stream_prefix = '' THEN
        RAISE EXCEPTION 'stream_prefix must be NULL or non-empty' USING ERRCODE = 'ES032',
            HINT = 'Pass NULL to receive every stream.';
    END IF;
    head := es.head_position(store);
    IF start_position > head THEN
        RAISE EXCEPTION 'start_position % is beyond the head of "%"', start_position, store
            USING ERRCODE = 'ES033',
            DETAIL = pg_catalog.format('The head position is %s.', head);
    END IF;
    INSERT INTO es._subscriptions AS s (name, store, event_types, stream_prefix, position)
        VALUES (subscription_create.name, subscription_create.store,
                subscription_create.event_types, subscription_create.stream_prefix,
                start_position)
        ON CONFLICT ON CONSTRAINT _subscriptions_pkey DO NOTHING;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'subscription "%" already exists', name USING ERRCODE = 'ES031',
            HINT = 'Pick another name, or es.subscription_drop() the old one first.';
    END IF;
    -- Subscribers may LISTEN on es.store_channel(store): make sure the relay runs.
    PERFORM es.relay_start();
END $$;
COMMENT ON FUNCTION es.subscription_create(text, regclass, text[], text, bigint) IS
    'Creates a named, checkpointed subscription to a store''s global order';

-- The subscription's registry row, or ES030 when it does not exist.
CREATE FUNCTION es._subscription(name text) RETURNS es._subscriptions
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    sub es._subscriptions;
BEGIN
    PERFORM es._check_subscription_name(name);
    SELECT * INTO sub FROM es._subscriptions s WHERE s.name = _subscription.name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'subscription "%" does not exist', name USING ERRCODE = 'ES030',
            HINT = 'See the view es.subscriptions; create one with es.subscription_create().';
    END IF;
    RETURN sub;
END $$;
COMMENT ON FUNCTION es._subscription(text) IS
    'A subscription''s registry row; raises ES030 when it does not exist (internal)';

-- The next events after the checkpoint, in the commit-safe global order, filtered like the
-- subscription; does not move the checkpoint (ack does).
-- Errors: ES030 unknown, ES032 bad max_count, ES022 in SERIALIZABLE, 42501 no SELECT on store.
CREATE FUNCTION es.subscription_next(name text, max_count int DEFAULT 100)
RETURNS SETOF es.event
    LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    sub es._subscriptions;
BEGIN
    sub := es._subscription(name);
    IF max_count IS NULL OR max_count < 0 THEN
        RAISE EXCEPTION 'max_count must be 0 or more' USING ERRCODE = 'ES032',
            DETAIL = pg_catalog.format('max_count is %s.', coalesce(max_count::text, 'NULL'));
    END IF;
    RETURN QUERY SELECT * FROM es.read_all(sub.position, max_count, sub.event_types,
                                            sub.stream_prefix, sub.store);
END $$;
COMMENT ON FUNCTION es.subscription_next(text, int) IS
    'Next page of a subscription after its checkpoint; does not move the checkpoint';

-- es.subscription_ack: src/sql/51_subscription_ack.sql (re-runnable: the 0.2.0 -> 0.3.0 upgrade
-- replaces it).

-- Drops a subscription. Errors: ES030 unknown, ES032 bad name.
CREATE FUNCTION es.subscription_drop(name text) RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM es._check_subscription_name(name);
    DELETE FROM es._subscriptions s WHERE s.name = subscription_drop.name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'subscription "%" does not exist', name USING ERRCODE = 'ES030';
    END IF;
END $$;
COMMENT ON FUNCTION es.subscription_drop(text) IS 'Drops a subscription and its checkpoint';

-- Events in `store` with after < global_position <= upto. The predicate is a range of the
-- primary key and count(*) needs no column, so this is an index-only scan of the primary key
-- index (heap visits only for pages not yet all-visible): cheap, unlike head - position, which
-- would count the holes aborted appends leave in the sequence.
CREATE FUNCTION es._count_events_between(store regclass, after bigint, upto bigint)
RETURNS bigint
    LANGUAGE plpgsql STABLE STRICT SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    n bigint;
BEGIN
    IF upto <= after THEN
        RETURN 0;
    END IF;
    EXECUTE pg_catalog.format(
        'SELECT count(*) FROM %s WHERE global_position > $1 AND global_position <= $2', store)
        INTO n USING after, upto;
    RETURN n;
END $$;
COMMENT ON FUNCTION es._count_events_between(regclass, bigint, bigint) IS
    'Number of events in a store between two positions, by an index-only count (internal)';

-- Every subscription with its checkpoint, the store's head and the lag: events of the store
-- between checkpoint and head (all of them, also those the filters skip: that is what the
-- consumer still has to pass over). head and lag are NULL for stores the caller cannot read.
CREATE VIEW es.subscriptions AS
SELECT s.name, s.position, h.head,
       es._count_events_between(s.store, s.position, h.head) AS lag,
       s.store, s.event_types, s.stream_prefix, s.created_at, s.acked_at
  FROM es._subscriptions s
  LEFT JOIN LATERAL (
      SELECT es.head_position(s.store) AS head
       WHERE pg_catalog.has_table_privilege(s.store, 'SELECT')) h ON true;
COMMENT ON VIEW es.subscriptions IS
    'Subscriptions: checkpoint, head of the store and lag in events';
