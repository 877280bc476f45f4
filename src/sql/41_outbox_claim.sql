-- Outbox consumption (API.md §5): claim, ack, nack and their helpers. The tables are in
-- 40_outbox.sql; the design is in docs/outbox.md. Re-runnable (CREATE OR REPLACE only): the
-- 0.2.0 -> 0.3.0 upgrade script runs this file as it is.
--
-- Who locks what, so that no claim waits while it holds what another one waits for:
--   group row   the group's intake (new messages -> lanes) and its lease sweep; a claim waits
--               for it only while it holds no lane
--   lane        a claim hands out ready lanes with FOR UPDATE SKIP LOCKED (never waits); acks,
--               nacks and the holder of the group row wait for lanes, never for the group row

-- Raises ES040 unless some topic has `consumer_group`.
CREATE OR REPLACE FUNCTION es._outbox_check_group(consumer_group text) RETURNS void
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM es._outbox_groups g WHERE g.consumer_group = _outbox_check_group.consumer_group) THEN
        RAISE EXCEPTION 'consumer group "%" does not exist', consumer_group
            USING ERRCODE = 'ES040', HINT = 'Create it with es.outbox_subscribe().';
    END IF;
END $$;
COMMENT ON FUNCTION es._outbox_check_group(text) IS 'Raises ES040 for an unknown consumer group (internal)';

-- The lane's head is done (acked or dead): the key's next waiting message becomes the head,
-- ready at once, or the lane goes away.
CREATE OR REPLACE FUNCTION es._outbox_advance(lane es._outbox_lanes, topic text) RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    next_id bigint;
BEGIN
    IF lane.lane_key IS NOT NULL AND lane.tail_id > lane.head_id THEN
        SELECT m.id INTO next_id FROM es._outbox_messages m
         WHERE m.topic = _outbox_advance.topic AND m.key = lane.lane_key
           AND m.id > lane.head_id AND m.id <= lane.tail_id
         ORDER BY m.id LIMIT 1;
    END IF;
    IF next_id IS NULL THEN
        DELETE FROM es._outbox_lanes l WHERE l.group_id = lane.group_id AND l.head_id = lane.head_id;
    ELSE
        UPDATE es._outbox_lanes l
           SET head_id = next_id, attempts = 0, leased = false, due_at = '-infinity', last_error = NULL
         WHERE l.group_id = lane.group_id AND l.head_id = lane.head_id;
    END IF;
END $$;
COMMENT ON FUNCTION es._outbox_advance(es._outbox_lanes, text) IS
    'Moves a lane past its finished head (internal)';

-- Moves the lane's head to the group's dead letters and the lane past it.
CREATE OR REPLACE FUNCTION es._outbox_bury(lane es._outbox_lanes, topic text, error text) RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO es._outbox_dead AS d (group_id, message_id, attempts, last_error, failed_at)
        VALUES (lane.group_id, lane.head_id, lane.attempts, error, clock_timestamp())
        ON CONFLICT (group_id, message_id) DO UPDATE
            SET attempts = excluded.attempts, last_error = excluded.last_error,
                failed_at = excluded.failed_at;
    PERFORM es._outbox_advance(lane, topic);
END $$;
COMMENT ON FUNCTION es._outbox_bury(es._outbox_lanes, text, text) IS
    'Dead-letters a lane''s head and advances the lane (internal)';

-- The group's intake cursor: every message of its topic up to it has been taken into its
-- lanes (or acked). Claims never update the group row (an open transaction would keep every
-- version of it, and each look-up would walk them): each intake inserts a row into
-- es._outbox_intake, and the newest row — the first in a backward index scan, however many
-- dead rows lie below it — is the cursor. Groups without rows there: their row's intake_id.
CREATE OR REPLACE FUNCTION es._outbox_intake_id(group_id int) RETURNS bigint
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(
        (SELECT i.intake_id FROM es._outbox_intake i
          WHERE i.group_id = _outbox_intake_id.group_id
          ORDER BY i.intake_id DESC, i.swept_at DESC LIMIT 1),
        (SELECT g.intake_id FROM es._outbox_groups g WHERE g.group_id = _outbox_intake_id.group_id))
$$;
COMMENT ON FUNCTION es._outbox_intake_id(int) IS
    'A consumer group''s intake cursor: messages up to it are in its lanes or acked (internal)';

-- Lease sweep, by the holder of the group row: heads whose lease ran out go to the dead
-- letters (on their last attempt) or become ready again, keeping their place (due_at = when
-- the lease ended). It reads the leases that ended since the previous recorded sweep (one
-- second of overlap) through the partial index of leased lanes, so its cost follows the
-- hand-out rate, not the history an open transaction keeps from being vacuumed. Once a minute
-- it reads them all: a claim whose transaction outlived its lease commits a lease that ended
-- before the previous sweep. Returns whether this was such a full sweep.
CREATE OR REPLACE FUNCTION es._outbox_sweep(g es._outbox_groups, swept_at timestamptz,
                                            full_swept_at timestamptz, now_at timestamptz)
RETURNS boolean
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    lane   es._outbox_lanes;
    whole  boolean := full_swept_at <= now_at - interval '1 minute';
    since  timestamptz := CASE WHEN whole THEN '-infinity' ELSE swept_at - interval '1 second' END;
BEGIN
    FOR lane IN SELECT * FROM es._outbox_lanes l
                 WHERE l.group_id = g.group_id AND l.leased
                   AND l.due_at > since AND l.due_at <= now_at
                 ORDER BY l.head_id FOR UPDATE
    LOOP
        IF lane.attempts >= g.max_attempts THEN
            PERFORM es._outbox_bury(lane, g.topic, 'lease expired');
        ELSE
            UPDATE es._outbox_lanes l SET leased = false
             WHERE l.group_id = lane.group_id AND l.head_id = lane.head_id;
        END IF;
    END LOOP;
    RETURN whole;
END $$;
COMMENT ON FUNCTION es._outbox_sweep(es._outbox_groups, timestamptz, timestamptz, timestamptz) IS
    'Dead-letters or readies the group''s heads whose lease ran out (internal)';

-- Intake, by the holder of the group row: takes messages new to the group (id > intake, up
-- to the horizon, at most 1,000 looked at) into lanes and leases the new heads — a key-less
-- message, or the first message of a key that has no lane — up to max_count of them; the
-- key's later messages wait in its lane. Stops right after the max_count-th head, so every
-- message taken in is handed out or queued. upto: the new cursor (NULL: nothing new).
CREATE OR REPLACE FUNCTION es._outbox_intake(g es._outbox_groups, intake bigint, max_count int,
                                             lease_end timestamptz, OUT upto bigint,
                                             OUT heads bigint[])
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    horizon bigint := es._outbox_horizon();
BEGIN
    heads := '{}';
    IF horizon <= intake THEN
        RETURN;
    END IF;
    WITH fresh AS (
        SELECT m.id, m.key FROM es._outbox_messages m
         WHERE m.topic = g.topic AND m.id > intake AND m.id <= horizon
         ORDER BY m.id LIMIT 1000),
    marked AS (
        SELECT f.id, f.key,
               (f.key IS NULL
                OR (row_number() OVER (PARTITION BY f.key ORDER BY f.id) = 1
                    AND NOT EXISTS (SELECT 1 FROM es._outbox_lanes l
                                     WHERE l.group_id = g.group_id AND l.lane_key = f.key))) AS head
          FROM fresh f),
    counted AS (
        SELECT k.id, k.key, k.head, count(*) FILTER (WHERE k.head) OVER (ORDER BY k.id) AS seen
          FROM marked k),
    taken AS (
        SELECT c.id, c.key FROM counted c WHERE c.seen - c.head::int < max_count),
    lanes AS (
        INSERT INTO es._outbox_lanes AS l (group_id, lane_key, head_id, tail_id, attempts, leased, due_at)
        SELECT g.group_id, t.key, min(t.id), max(t.id), 1, true, lease_end
          FROM taken t
         GROUP BY t.key, CASE WHEN t.key IS NULL THEN t.id END
        ON CONFLICT (group_id, lane_key) DO UPDATE SET tail_id = excluded.tail_id
        RETURNING l.head_id)
    SELECT (SELECT max(t.id) FROM taken t),
           array(SELECT n.head_id FROM lanes n WHERE n.head_id > intake ORDER BY n.head_id)
      INTO upto, heads;
    -- A lane acked away between the look above and the insert makes one more head than
    -- counted: hand out max_count, leave the rest ready.
    IF cardinality(heads) > max_count THEN
        UPDATE es._outbox_lanes l SET leased = false, attempts = 0, due_at = '-infinity'
         WHERE l.group_id = g.group_id AND l.head_id = ANY (heads[max_count + 1:]);
        heads := heads[1:max_count];
    END IF;
END $$;
COMMENT ON FUNCTION es._outbox_intake(es._outbox_groups, bigint, int, timestamptz) IS
    'Takes messages new to a group into its lanes and leases the new heads (internal)';

-- Hands up to max_count messages of `topic` to one worker of `consumer_group` for `lease`.
-- Order of service: ready lanes (a key's next message after an ack, retries that are due,
-- expired leases, re-driven dead letters; oldest due first), then messages new to the group in
-- id order. Per key at most one message is out or waiting for retry. Every hand-out counts
-- as an attempt; a head whose lease ran out on its last attempt goes to the dead letters.
-- Workers of a group claim ready lanes side by side (SKIP LOCKED); taking in new messages and
-- sweeping expired leases is one short step at a time per group (the group row's lock, held
-- to the end of the claim's transaction: claim in a short transaction of its own). Returns
-- the messages in id order. Errors: ES040 unknown group, ES044 bad count or lease, ES046 not
-- READ COMMITTED.
CREATE OR REPLACE FUNCTION es.outbox_claim(consumer_group text, topic text, max_count int DEFAULT 10,
                                           lease interval DEFAULT '30 seconds')
RETURNS SETOF es.outbox_message
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    g          es._outbox_groups;
    cur        record;
    claimed_at timestamptz := clock_timestamp();
    lease_end  timestamptz;
    ids        bigint[] := '{}';
    tries      int[] := '{}';
    got        record;
    upto       bigint;
    heads      bigint[];
    locked     boolean;
    whole      boolean := false;
    unreadable regclass;
BEGIN
    IF max_count IS NULL OR max_count < 0 THEN
        RAISE EXCEPTION 'max_count must not be NULL or negative' USING ERRCODE = 'ES044',
            DETAIL = format('max_count is %s.', coalesce(max_count::text, 'NULL'));
    END IF;
    IF lease IS NULL OR lease <= interval '0' THEN
        RAISE EXCEPTION 'lease must be a positive interval' USING ERRCODE = 'ES044',
            DETAIL = format('lease is %s.', coalesce(lease::text, 'NULL'));
    END IF;
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'es.outbox_claim must run in a READ COMMITTED transaction'
            USING ERRCODE = 'ES046',
            DETAIL = 'A claim reads messages with a snapshot taken after their safe horizon.',
            HINT = 'Claim in a short READ COMMITTED transaction of its own.';
    END IF;
    PERFORM es._outbox_check_topic(topic);
    SELECT * INTO g FROM es._outbox_groups x
     WHERE x.consumer_group = outbox_claim.consumer_group AND x.topic = outbox_claim.topic;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'consumer group "%" is not subscribed to topic "%"', consumer_group, topic
            USING ERRCODE = 'ES040', HINT = 'Create it with es.outbox_subscribe().';
    END IF;
    -- Routed messages carry events: claiming them needs SELECT on every store routed here.
    FOR unreadable IN SELECT r.store FROM es._outbox_routes r
                       WHERE r.topic = outbox_claim.topic
                         AND NOT has_table_privilege(es._session_role(), r.store, 'SELECT')
                       ORDER BY r.store::oid LIMIT 1 LOOP
        PERFORM es._require_store_privilege(es._session_role(), unreadable, 'SELECT',
                                            'claim messages routed from');
    END LOOP;
    IF max_count = 0 THEN
        RETURN;
    END IF;
    lease_end := claimed_at + lease;

    -- The group row, if no other claim holds it (a lock only: the row is not updated).
    PERFORM 1 FROM es._outbox_groups x WHERE x.group_id = g.group_id FOR NO KEY UPDATE SKIP LOCKED;
    locked := FOUND;
    LOOP
        IF locked THEN
            SELECT i.intake_id, i.swept_at, i.full_swept_at INTO cur FROM es._outbox_intake i
             WHERE i.group_id = g.group_id ORDER BY i.intake_id DESC, i.swept_at DESC LIMIT 1;
            IF NOT FOUND THEN
                SELECT g.intake_id, timestamptz '-infinity' AS swept_at,
                       timestamptz '-infinity' AS full_swept_at INTO cur;
            END IF;
            whole := es._outbox_sweep(g, cur.swept_at, cur.full_swept_at, claimed_at);
        END IF;
        -- Ready lanes, side by side with the group's other workers.
        FOR got IN
            WITH c AS (
                SELECT l.group_id, l.head_id FROM es._outbox_lanes l
                 WHERE l.group_id = g.group_id AND NOT l.leased AND l.due_at <= claimed_at
                 ORDER BY l.due_at, l.head_id
                 LIMIT max_count - cardinality(ids)
                   FOR UPDATE SKIP LOCKED)
            UPDATE es._outbox_lanes l
               SET attempts = l.attempts + 1, leased = true, due_at = lease_end
              FROM c
             WHERE l.group_id = c.group_id AND l.head_id = c.head_id
            RETURNING l.head_id, l.attempts
        LOOP
            ids := ids || got.head_id;
            tries := tries || got.attempts;
        END LOOP;
        EXIT WHEN locked OR cardinality(ids) > 0;
        -- Nothing ready and nothing held: wait for the group row, then take in new messages.
        PERFORM 1 FROM es._outbox_groups x WHERE x.group_id = g.group_id FOR NO KEY UPDATE;
        locked := true;
        claimed_at := clock_timestamp();
        lease_end := claimed_at + lease;
    END LOOP;

    IF locked THEN
        IF cardinality(ids) < max_count THEN
            SELECT i.upto, i.heads INTO upto, heads
              FROM es._outbox_intake(g, cur.intake_id, max_count - cardinality(ids), lease_end) i;
            ids := ids || heads;
            tries := tries || array_fill(1, ARRAY[cardinality(heads)]);
        END IF;
        -- Record the new cursor and the sweep (at most one row a second when nothing new came
        -- in); a full sweep also drops the group's older cursor rows.
        IF upto IS NOT NULL OR whole OR claimed_at >= cur.swept_at + interval '1 second' THEN
            INSERT INTO es._outbox_intake (group_id, intake_id, swept_at, full_swept_at)
                VALUES (g.group_id, coalesce(upto, cur.intake_id), claimed_at,
                        CASE WHEN whole THEN claimed_at ELSE cur.full_swept_at END)
                ON CONFLICT DO NOTHING;
            IF whole THEN
                DELETE FROM es._outbox_intake i
                 WHERE i.group_id = g.group_id
                   AND (i.intake_id, i.swept_at) < (coalesce(upto, cur.intake_id), claimed_at);
            END IF;
        END IF;
    END IF;

    RETURN QUERY
        SELECT m.id, m.topic, m.key, m.payload, m.headers, m.published_at, h.attempts
          FROM unnest(ids, tries) AS h(id, attempts)
          JOIN es._outbox_messages m ON m.id = h.id
         ORDER BY m.id;
END $$;
COMMENT ON FUNCTION es.outbox_claim(text, text, int, interval) IS
    'Hands out messages of a topic to one worker of a consumer group, under a lease';

-- The lane of `consumer_group` whose head is message `id`, locked; raises ES042 unless the
-- group holds it under a lease and ES043 when that lease has run out.
CREATE OR REPLACE FUNCTION es._outbox_held(consumer_group text, id bigint, OUT lane es._outbox_lanes,
                                           OUT grp es._outbox_groups)
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    SELECT l.* INTO lane FROM es._outbox_lanes l JOIN es._outbox_groups g USING (group_id)
     WHERE g.consumer_group = _outbox_held.consumer_group AND l.head_id = _outbox_held.id
       FOR UPDATE OF l;
    IF NOT FOUND OR NOT lane.leased THEN
        RAISE EXCEPTION 'message % is not held by consumer group "%"', id, consumer_group
            USING ERRCODE = 'ES042',
            DETAIL = 'It was never handed out to the group, is already acked, waits for retry or is dead.';
    END IF;
    IF lane.due_at <= clock_timestamp() THEN
        RAISE EXCEPTION 'the lease of message % in consumer group "%" has expired', id, consumer_group
            USING ERRCODE = 'ES043',
            DETAIL = format('The lease ended at %s.', lane.due_at),
            HINT = 'The message will be handed out again; claim with a longer lease.';
    END IF;
    SELECT * INTO grp FROM es._outbox_groups g WHERE g.group_id = lane.group_id;
END $$;
COMMENT ON FUNCTION es._outbox_held(text, bigint) IS
    'Locks the lane holding a message under a live lease; ES042/ES043 otherwise (internal)';

-- Acknowledges messages the group holds: they are never handed to it again, and the next
-- message of each key becomes ready. All or nothing. Errors: ES040 unknown group, ES042 a
-- message not held, ES043 a lease expired, ES044 NULL ids.
CREATE OR REPLACE FUNCTION es.outbox_ack(consumer_group text, ids bigint[]) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    wanted bigint[];
    lanes  es._outbox_lanes[];
    now_at timestamptz := clock_timestamp();
    held   record;
    one    bigint;
    lane   record;
BEGIN
    IF ids IS NULL OR array_position(ids, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'ids must be an array of message ids without NULLs' USING ERRCODE = 'ES044';
    END IF;
    PERFORM es._outbox_check_group(consumer_group);
    wanted := array(SELECT DISTINCT u FROM unnest(ids) u ORDER BY u);
    IF cardinality(wanted) = 0 THEN
        RETURN;
    END IF;
    -- Every lane at once, locked in id order (as the one-by-one path below locks them).
    SELECT coalesce(array_agg(x ORDER BY x.head_id), '{}') INTO lanes
      FROM (SELECT l.* FROM es._outbox_lanes l JOIN es._outbox_groups g USING (group_id)
             WHERE g.consumer_group = outbox_ack.consumer_group AND l.head_id = ANY (wanted)
             ORDER BY l.head_id FOR UPDATE OF l) x;
    IF cardinality(lanes) <> cardinality(wanted)
       OR EXISTS (SELECT 1 FROM unnest(lanes) x WHERE NOT x.leased OR x.due_at <= now_at) THEN
        -- Some id is not held, or its lease ran out: one by one, for the precise error.
        FOREACH one IN ARRAY wanted LOOP
            held := es._outbox_held(consumer_group, one);
        END LOOP;
    END IF;
    -- Lanes with nothing waiting go away in one statement; the others move to their next message.
    DELETE FROM es._outbox_lanes l
     USING unnest(lanes) x
     WHERE l.group_id = x.group_id AND l.head_id = x.head_id
       AND (x.lane_key IS NULL OR x.tail_id = x.head_id);
    FOR lane IN SELECT x AS l, g.topic FROM unnest(lanes) x JOIN es._outbox_groups g USING (group_id)
                 WHERE x.lane_key IS NOT NULL AND x.tail_id > x.head_id ORDER BY x.head_id LOOP
        PERFORM es._outbox_advance(lane.l, lane.topic);
    END LOOP;
END $$;
COMMENT ON FUNCTION es.outbox_ack(text, bigint[]) IS
    'Acknowledges messages a consumer group holds; they are never handed to it again';

-- Reports a failed attempt: the message is handed out again after retry_after (default:
-- exp(attempts) seconds, at most 6 hours) and holds its key back meanwhile; after the group's
-- max_attempts it moves to the dead letters. Errors: ES040, ES042, ES043, ES044.
CREATE OR REPLACE FUNCTION es.outbox_nack(consumer_group text, id bigint, error text,
                                          retry_after interval DEFAULT NULL)
RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    held record;
    lane es._outbox_lanes;
BEGIN
    IF id IS NULL THEN
        RAISE EXCEPTION 'id must not be NULL' USING ERRCODE = 'ES044';
    END IF;
    IF retry_after < interval '0' THEN
        RAISE EXCEPTION 'retry_after must not be negative' USING ERRCODE = 'ES044',
            DETAIL = format('retry_after is %s.', retry_after);
    END IF;
    PERFORM es._outbox_check_group(consumer_group);
    held := es._outbox_held(consumer_group, id);
    lane := held.lane;
    IF lane.attempts >= (held.grp).max_attempts THEN
        PERFORM es._outbox_bury(lane, (held.grp).topic, error);
        RETURN;
    END IF;
    UPDATE es._outbox_lanes l
       SET leased = false, last_error = error,
           due_at = clock_timestamp() + coalesce(retry_after,
                        make_interval(secs => least(exp(least(lane.attempts, 10)), 21600)))
     WHERE l.group_id = lane.group_id AND l.head_id = lane.head_id;
END $$;
COMMENT ON FUNCTION es.outbox_nack(text, bigint, text, interval) IS
    'Reports a failed attempt: retried after a delay or, after max_attempts, dead-lettered';

-- Records, per group, how far every message is acked or dead (one mark kept per minute,
-- 30 days), so es.outbox_purge can tell how long ago a message was last acked.
CREATE OR REPLACE FUNCTION es._outbox_mark() RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    mark_time timestamptz := clock_timestamp();
BEGIN
    INSERT INTO es._outbox_marks (group_id, marked_at, done_below)
        SELECT g.group_id, mark_time,
               least(es._outbox_intake_id(g.group_id) + 1,
                     (SELECT min(l.head_id) FROM es._outbox_lanes l
                       WHERE l.group_id = g.group_id AND l.lane_key IS NOT NULL),
                     (SELECT min(l.head_id) FROM es._outbox_lanes l
                       WHERE l.group_id = g.group_id AND l.lane_key IS NULL))
          FROM es._outbox_groups g;
    DELETE FROM es._outbox_marks k
     WHERE k.marked_at < mark_time
       AND (k.marked_at < mark_time - interval '30 days'
            OR date_trunc('minute', k.marked_at) = date_trunc('minute', mark_time));
END $$;
COMMENT ON FUNCTION es._outbox_mark() IS 'Records the groups'' acknowledgement watermarks (internal)';

