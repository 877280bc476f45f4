-- Acknowledging a subscription's progress (API.md §4; the rest is 50_subscriptions.sql).
-- Re-runnable (CREATE OR REPLACE only): the 0.2.0 -> 0.3.0 upgrade runs this file (its ACL
-- stays).

-- Moves the checkpoint to acked_position. An ack at or below the checkpoint is a no-op (acks
-- may race or arrive late); concurrent acks serialize on the row and the highest wins.
-- An ack above es.head_position is accepted when every position between the checkpoint (or the
-- head, if higher) and acked_position holds a committed event: es.read_all returns such a
-- gap-free run without waiting for the head (README "The global order"), so the consumer may
-- have been given it; nothing can appear there any more.
-- Errors: ES030 unknown, ES032 NULL or negative position, ES033 beyond the head (the consumer
-- cannot have seen it), 42501 no SELECT on the store.
CREATE OR REPLACE FUNCTION es.subscription_ack(name text, acked_position bigint)
RETURNS void
    LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    sub es._subscriptions;
    head bigint;
    settled bigint;
    present bigint;
BEGIN
    sub := es._subscription(name);
    IF acked_position IS NULL OR acked_position < 0 THEN
        RAISE EXCEPTION 'acked_position must be 0 or more' USING ERRCODE = 'ES032',
            DETAIL = pg_catalog.format('acked_position is %s.',
                                       coalesce(acked_position::text, 'NULL'));
    END IF;
    IF acked_position <= sub.position THEN
        RETURN;
    END IF;
    head := es.head_position(sub.store);
    IF acked_position > head THEN
        settled := GREATEST(head, sub.position);
        EXECUTE pg_catalog.format(
            'SELECT count(*) FROM %s WHERE global_position > $1 AND global_position <= $2',
            sub.store) INTO present USING settled, acked_position;
        IF present < acked_position - settled THEN
            RAISE EXCEPTION 'cannot ack position % of subscription "%": beyond the head',
                acked_position, name USING ERRCODE = 'ES033',
                DETAIL = pg_catalog.format('The head position of %s is %s.', sub.store, head),
                HINT = 'Ack the global_position of the last event es.subscription_next returned.';
        END IF;
    END IF;
    -- Re-checked on the newest row version when a concurrent ack got there first.
    UPDATE es._subscriptions s
       SET position = acked_position, acked_at = pg_catalog.now()
     WHERE s.name = subscription_ack.name AND s.position < acked_position;
END $$;
COMMENT ON FUNCTION es.subscription_ack(text, bigint) IS
    'Moves a subscription''s checkpoint forward (never backwards; older acks are no-ops)';
