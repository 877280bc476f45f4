-- Outbox flow (API.md §5): publish, the route trigger function, claim, ack, nack and their
-- helpers. The tables are in 40_outbox.sql; the design is in docs/outbox.md. Re-runnable
-- (CREATE OR REPLACE only): the 0.2.0 -> 0.3.0 upgrade script runs this file as it is.
--
-- Messages fall into 8 shards (es._outbox_shard: by key, so a key's messages share one; by id
-- without a key). Claims visit the shards in the order of their oldest message new to the
-- group, so a claim of one message gets the oldest; a larger claim may take a shard's later
-- messages before another shard's older ones (order is promised per key only). Per group, one claim at a time takes in new messages of a shard — claims
-- take in different shards side by side — and one at a time sweeps expired leases
-- (es._outbox_lock: transaction-scoped claim locks, never a row update). Who waits for what,
-- so that no two transactions wait for each other:
--   claim locks  taken without waiting; a claim waits for one only while it holds no lane
--   lanes        claims hand out ready lanes and sweep with SKIP LOCKED (never wait); the
--                intake of a shard, acks and nacks wait for lanes, never for a claim lock

-- The shard of a message: a key's messages share one (md5, stable across PostgreSQL
-- versions and platforms); key-less ones go in runs of 16 consecutive ids, so a claim takes
-- a run from one shard and a lone worker gets them in id order.
-- (No SET search_path, so that it is inlined into the INSERT that uses it; every name is
-- schema-qualified instead.)
CREATE OR REPLACE FUNCTION es._outbox_shard(key text, id bigint) RETURNS smallint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN key IS NULL
                THEN ((id OPERATOR(pg_catalog.>>) 4) OPERATOR(pg_catalog.&) 7)::pg_catalog.int2
                ELSE (pg_catalog.get_byte(pg_catalog.decode(pg_catalog.md5(key), 'hex'), 0)
                      OPERATOR(pg_catalog.&) 7)::pg_catalog.int2 END;
COMMENT ON FUNCTION es._outbox_shard(text, bigint) IS
    'The intake shard (0-7) of an outbox message: by key, or by id without one (internal)';

-- Takes a claim lock of a consumer group for the transaction: part 0-7 the intake of that
-- shard, part 8 the lease sweep. Without wait, false when another transaction holds it.
CREATE OR REPLACE FUNCTION es._outbox_lock(group_id int, part int, wait boolean) RETURNS boolean
    LANGUAGE c VOLATILE STRICT AS 'MODULE_PATHNAME', 'es_outbox_lock';
COMMENT ON FUNCTION es._outbox_lock(int, int, boolean) IS
    'Takes a transaction-scoped claim lock of a consumer group (internal)';

-- Records a message in the caller's transaction; returns its id. Consumers see it only if the
-- transaction commits. Errors: ES041 bad topic, ES044 NULL payload, non-object headers,
-- key over 1024 bytes. C++ (src/pg/outbox_publish.cpp): runs as the extension owner without
-- SECURITY DEFINER or a SET clause, registers with the outbox horizon before taking its id
-- (as es._outbox_next_id), computes es._outbox_shard(key, id) and inserts the row directly.
CREATE OR REPLACE FUNCTION es.outbox_publish(topic text, payload jsonb, key text DEFAULT NULL,
                                  headers jsonb DEFAULT NULL)
RETURNS bigint
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'es_outbox_publish';
COMMENT ON FUNCTION es.outbox_publish(text, jsonb, text, jsonb) IS
    'Records an outbox message in the current transaction; returns its id';

-- Route trigger on event tables with routes: publishes each event es.append inserts to every
-- matching route's topic (key = stream id, payload = the event, headers = id/type/position).
-- Plain INSERT/COPY rows (pg_restore, migrations) are not routed (the trigger's WHEN clause).
-- C++ (src/pg/outbox_publish.cpp), as the extension owner, like es.outbox_publish.
CREATE OR REPLACE FUNCTION es._outbox_route_event() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'es_outbox_route_event';
COMMENT ON FUNCTION es._outbox_route_event() IS
    'Event table trigger: publishes appended events to the routes'' topics (internal)';

-- Lanes and intake cursors have no foreign key to their group: the check of each lane a claim
-- inserts would take a KEY SHARE lock on the group row (a MultiXact when claims run side by
-- side, the row's page dirtied by every claim). Deleting a group deletes them here instead.
CREATE OR REPLACE FUNCTION es._outbox_group_deleted() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    DELETE FROM es._outbox_lanes l WHERE l.group_id = OLD.group_id;
    DELETE FROM es._outbox_intake i WHERE i.group_id = OLD.group_id;
    RETURN NULL;
END $$;
COMMENT ON FUNCTION es._outbox_group_deleted() IS
    'Consumer group trigger: deletes the group''s lanes and intake cursors (internal)';
CREATE OR REPLACE TRIGGER es_outbox_group_deleted AFTER DELETE ON es._outbox_groups
    FOR EACH ROW EXECUTE FUNCTION es._outbox_group_deleted();

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

-- A shard's intake cursor in a group: every message of the shard up to it has been taken into
-- the group's lanes (or acked). Claims never update a row for it (an open transaction would
-- keep every version, and each look-up would walk them): each intake inserts a row into
-- es._outbox_intake, and the newest row of (group, shard) — the first in a backward index
-- scan, however many dead rows lie below it — is the cursor. Without rows: the group's
-- intake_id (where it started, or its cursor when updated from 0.2.0).
CREATE OR REPLACE FUNCTION es._outbox_intake_id(group_id int, shard int) RETURNS bigint
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(
        (SELECT i.intake_id FROM es._outbox_intake i
          WHERE i.group_id = _outbox_intake_id.group_id AND i.shard = _outbox_intake_id.shard
          ORDER BY i.intake_id DESC, i.swept_at DESC LIMIT 1),
        (SELECT g.intake_id FROM es._outbox_groups g WHERE g.group_id = _outbox_intake_id.group_id))
$$;
COMMENT ON FUNCTION es._outbox_intake_id(int, int) IS
    'A consumer group''s intake cursor in one shard (internal)';

-- The group's intake cursor: every message of its topic up to it has been taken into its
-- lanes or acked. Per shard, the message before the shard's first one not taken in (or the
-- horizon when there is none: a shard no claim visited lately is not behind); the lowest.
CREATE OR REPLACE FUNCTION es._outbox_intake_id(group_id int) RETURNS bigint
    LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
    WITH h AS (SELECT es._outbox_horizon() AS horizon),
    cur AS (SELECT s, es._outbox_intake_id(_outbox_intake_id.group_id, s) AS intake_id
              FROM generate_series(0, 7) s)
    SELECT min(coalesce(
               (SELECT m.id - 1 FROM es._outbox_messages m
                 WHERE m.topic = g.topic AND m.shard = cur.s
                   AND m.id > cur.intake_id AND m.id <= h.horizon
                 ORDER BY m.id LIMIT 1),
               greatest(h.horizon, cur.intake_id)))
      FROM cur, h, es._outbox_groups g
     WHERE g.group_id = _outbox_intake_id.group_id
$$;
COMMENT ON FUNCTION es._outbox_intake_id(int) IS
    'A consumer group''s intake cursor: messages up to it are in its lanes or acked (internal)';

-- (_outbox_sweep and _outbox_intake are called only by es.outbox_claim, whose search_path is
-- pinned; they have no SET clause of their own, which would cost a GUC change per call.)
--
-- Claim, ack and nack run with enable_seqscan = off: the lane and cursor tables are small
-- when their plans are made (often empty), so the planner would pick sequential scans, and
-- under a long-open transaction, which keeps every deleted lane in the heap, each claim would
-- then read all of them. Every look-up here has an index that bounds it.

-- Lease sweep, by the holder of the group's sweep lock, at most every 10 ms per group: heads
-- whose lease ran out go to the dead letters (on their last attempt) or become ready again,
-- keeping their place (due_at = when the lease ended). It reads only the leases that ended
-- since the previous sweep, through the partial index of leased lanes, so each lease entry —
-- live or, under an open transaction, dead — is read about once, and a sweep's cost follows
-- the hand-out rate, not the history an open transaction keeps from being vacuumed. A full
-- sweep (full_, or every 10 minutes from claims; es.outbox_purge and es.maintain() run one)
-- reads them all: a lease can end before a sweep and yet be unseen by it (its claim's
-- transaction outlived the lease). Lanes other transactions hold are skipped, and the next
-- sweep starts at the earliest skipped lease. Records itself (numbered) in es._outbox_intake,
-- shard -1. Returns how many lanes it changed (and holds locked).
CREATE OR REPLACE FUNCTION es._outbox_sweep(g es._outbox_groups, now_at timestamptz,
                                            full_ boolean DEFAULT false) RETURNS int
    LANGUAGE plpgsql AS $$
DECLARE
    lane  es._outbox_lanes;
    last_ record;
    whole   boolean;
    since   timestamptz;
    skipped timestamptz;
    n       int := 0;
BEGIN
    SELECT i.intake_id AS seq, i.swept_at, i.full_swept_at INTO last_ FROM es._outbox_intake i
     WHERE i.group_id = g.group_id AND i.shard = -1
     ORDER BY i.intake_id DESC, i.swept_at DESC LIMIT 1;
    IF NOT FOUND THEN
        SELECT 0::bigint AS seq, timestamptz '-infinity' AS swept_at,
               timestamptz '-infinity' AS full_swept_at INTO last_;
    END IF;
    whole := full_ OR last_.full_swept_at <= now_at - interval '10 minutes';
    -- At most one sweep per 10 ms and group: under an open transaction every dead lease entry
    -- in the window costs a heap visit, so each is walked about once.
    IF NOT whole AND now_at < last_.swept_at + interval '10 milliseconds' THEN
        RETURN 0;
    END IF;
    since := CASE WHEN whole THEN '-infinity' ELSE last_.swept_at END;
    FOR lane IN SELECT * FROM es._outbox_lanes l
                 WHERE l.group_id = g.group_id AND l.leased
                   AND l.due_at > since AND l.due_at <= now_at
                 ORDER BY l.due_at FOR UPDATE SKIP LOCKED
    LOOP
        IF lane.attempts >= g.max_attempts THEN
            PERFORM es._outbox_bury(lane, g.topic, 'lease expired');
        ELSE
            UPDATE es._outbox_lanes l SET leased = false
             WHERE l.group_id = lane.group_id AND l.head_id = lane.head_id;
        END IF;
        n := n + 1;
    END LOOP;
    -- Leases skipped because another transaction held their lane: the next sweeps start at
    -- the earliest of them.
    SELECT min(l.due_at) INTO skipped FROM es._outbox_lanes l
     WHERE l.group_id = g.group_id AND l.leased AND l.due_at > since AND l.due_at <= now_at;
    -- intake_id numbers the sweep rows (the newest wins).
    INSERT INTO es._outbox_intake (group_id, shard, intake_id, swept_at, full_swept_at)
        VALUES (g.group_id, -1, last_.seq + 1, least(now_at, skipped),
                CASE WHEN whole THEN now_at ELSE last_.full_swept_at END)
        ON CONFLICT DO NOTHING;
    RETURN n;
END $$;
COMMENT ON FUNCTION es._outbox_sweep(es._outbox_groups, timestamptz, boolean) IS
    'Dead-letters or readies the group''s heads whose lease ran out (internal)';

-- Intake of one shard, by the holder of its claim lock: takes the shard's messages new to the
-- group (id > its cursor, up to the horizon) into lanes and leases the new heads — a key-less
-- message, or the first message of a key that has no lane — up to max_count of them; the
-- key's later messages wait in its lane. Looks at twice max_count messages first, more (at
-- most 1,000 in all) while they queue behind their keys; stops right after the max_count-th
-- head, so every message taken in is handed out or queued. Records the new cursor; a shard
-- with nothing new follows the horizon (recorded at most once a second). Returns the heads.
CREATE OR REPLACE FUNCTION es._outbox_intake(g es._outbox_groups, shard int, horizon bigint,
                                             max_count int, lease_end timestamptz)
RETURNS bigint[]
    LANGUAGE plpgsql AS $$
DECLARE
    last_   record;
    intake  bigint;
    window_ int := greatest(2 * max_count, 16);
    looked  int := 0;
    seen    int;
    took    int;
    took_all int := 0;
    bound   bigint;
    keys_   text[];
    mine    text[];
    upto    bigint;
    taken_  bigint;
    more    bigint[];
    heads   bigint[] := '{}';
BEGIN
    SELECT i.intake_id, i.swept_at INTO last_ FROM es._outbox_intake i
     WHERE i.group_id = g.group_id AND i.shard = _outbox_intake.shard
     ORDER BY i.intake_id DESC, i.swept_at DESC LIMIT 1;
    IF NOT FOUND THEN
        SELECT g.intake_id, timestamptz '-infinity' AS swept_at INTO last_;
    END IF;
    intake := last_.intake_id;
    WHILE horizon > intake AND looked < 1000 AND cardinality(heads) < max_count LOOP
        -- The lanes the window's keys already have: lock them without waiting. A lane another
        -- transaction holds (an ack, a claim that handed it out) ends the window before its
        -- key's first message: intake never waits for a lane, so no two claims wait for each
        -- other. Those messages are taken in by a later claim.
        bound := horizon;
        keys_ := array(SELECT DISTINCT m.key FROM (
                           SELECT m.key FROM es._outbox_messages m
                            WHERE m.topic = g.topic AND m.shard = _outbox_intake.shard
                              AND m.id > intake AND m.id <= horizon
                            ORDER BY m.id LIMIT window_) m
                        WHERE m.key IS NOT NULL);
        IF cardinality(keys_) > 0 THEN
            mine := array(SELECT l.lane_key FROM es._outbox_lanes l
                           WHERE l.group_id = g.group_id AND l.lane_key = ANY (keys_)
                           ORDER BY l.head_id FOR UPDATE SKIP LOCKED);
            SELECT min(m.id) - 1 INTO bound FROM es._outbox_messages m
             WHERE m.topic = g.topic AND m.shard = _outbox_intake.shard
               AND m.id > intake AND m.id <= horizon
               AND m.key = ANY (keys_) AND m.key <> ALL (mine)
               AND EXISTS (SELECT 1 FROM es._outbox_lanes l
                            WHERE l.group_id = g.group_id AND l.lane_key = m.key);
            bound := coalesce(bound, horizon);
            EXIT WHEN bound <= intake;
        END IF;
        IF cardinality(keys_) = 0 THEN
            -- Key-less messages only: every one is a head; take what is wanted.
            window_ := least(window_, max_count - cardinality(heads));
            WITH fresh AS (
                SELECT m.id FROM es._outbox_messages m
                 WHERE m.topic = g.topic AND m.shard = _outbox_intake.shard
                   AND m.id > intake AND m.id <= bound
                 ORDER BY m.id LIMIT window_),
            lanes AS (
                INSERT INTO es._outbox_lanes AS l (group_id, lane_key, head_id, tail_id, attempts, leased, due_at)
                SELECT g.group_id, NULL, f.id, f.id, 1, true, lease_end FROM fresh f ORDER BY f.id
                RETURNING l.head_id)
            SELECT count(*), count(*), max(n.head_id), coalesce(array_agg(n.head_id ORDER BY n.head_id), '{}')
              INTO seen, took, taken_, more
              FROM lanes n;
        ELSE
            WITH fresh AS (
                SELECT m.id, m.key FROM es._outbox_messages m
                 WHERE m.topic = g.topic AND m.shard = _outbox_intake.shard
                   AND m.id > intake AND m.id <= bound
                 ORDER BY m.id LIMIT window_),
            marked AS (
                SELECT f.id, f.key,
                       (f.key IS NULL
                        OR (row_number() OVER (PARTITION BY f.key ORDER BY f.id) = 1
                            AND NOT EXISTS (SELECT 1 FROM es._outbox_lanes l
                                             WHERE l.group_id = g.group_id AND l.lane_key = f.key))) AS head
                  FROM fresh f),
            counted AS (
                SELECT k.id, k.key, k.head, count(*) FILTER (WHERE k.head) OVER (ORDER BY k.id) AS n
                  FROM marked k),
            taken AS (
                SELECT c.id, c.key FROM counted c
                 WHERE c.n - c.head::int < max_count - cardinality(heads)),
            lanes AS (
                INSERT INTO es._outbox_lanes AS l (group_id, lane_key, head_id, tail_id, attempts, leased, due_at)
                SELECT g.group_id, t.key, min(t.id), max(t.id), 1, true, lease_end
                  FROM taken t
                 GROUP BY t.key, CASE WHEN t.key IS NULL THEN t.id END
                 ORDER BY min(t.id)
                ON CONFLICT (group_id, lane_key) DO UPDATE SET tail_id = excluded.tail_id
                RETURNING l.head_id)
            SELECT (SELECT count(*) FROM fresh), (SELECT count(*) FROM taken), (SELECT max(t.id) FROM taken t),
                   array(SELECT n.head_id FROM lanes n WHERE n.head_id > intake ORDER BY n.head_id)
              INTO seen, took, taken_, more;
        END IF;
        heads := heads || more;
        took_all := took_all + took;
        IF seen < window_ AND took = seen AND bound = horizon THEN
            -- Every message of the shard up to the horizon is in: the cursor follows it.
            upto := horizon;
            EXIT;
        END IF;
        EXIT WHEN taken_ IS NULL;
        upto := taken_;
        EXIT WHEN took < seen OR seen < window_;   -- stopped at the max_count-th head or a busy key
        looked := looked + seen;
        intake := taken_;
        window_ := least(4 * window_, 1000);
    END LOOP;
    IF upto IS NOT NULL AND upto > last_.intake_id
       AND (took_all > 0 OR clock_timestamp() >= last_.swept_at + interval '1 second') THEN
        INSERT INTO es._outbox_intake (group_id, shard, intake_id, swept_at, full_swept_at)
            VALUES (g.group_id, _outbox_intake.shard, upto, clock_timestamp(), '-infinity')
            ON CONFLICT DO NOTHING;
    END IF;
    -- A lane acked away between the look above and the insert makes one more head than
    -- counted: hand out max_count, leave the rest ready.
    IF cardinality(heads) > max_count THEN
        UPDATE es._outbox_lanes l SET leased = false, attempts = 0, due_at = '-infinity'
         WHERE l.group_id = g.group_id AND l.head_id = ANY (heads[max_count + 1:]);
        heads := heads[1:max_count];
    END IF;
    RETURN heads;
END $$;
COMMENT ON FUNCTION es._outbox_intake(es._outbox_groups, int, bigint, int, timestamptz) IS
    'Takes a shard''s messages new to a group into its lanes and leases the new heads (internal)';

-- Hands up to max_count messages of `topic` to one worker of `consumer_group` for `lease`.
-- Order of service: ready lanes (a key's next message after an ack, retries that are due,
-- expired leases, re-driven dead letters; oldest due first), then messages new to the group,
-- shard by shard (in id order within a shard; a key's messages share a shard). Per key at
-- most one message is out or waiting for retry. Every hand-out counts as an attempt; a head
-- whose lease ran out on its last attempt goes to the dead letters. Workers of a group claim
-- side by side: ready lanes with SKIP LOCKED, new messages from different shards (a shard's
-- claim lock is held to the end of the claim's transaction: claim in a short transaction of
-- its own). Returns the messages in id order. Errors: ES040 unknown group, ES044 bad count or
-- lease, ES046 not READ COMMITTED.
CREATE OR REPLACE FUNCTION es.outbox_claim(consumer_group text, topic text, max_count int DEFAULT 10,
                                           lease interval DEFAULT '30 seconds')
RETURNS SETOF es.outbox_message
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    SET enable_seqscan = off AS $$
DECLARE
    g          es._outbox_groups;
    claimed_at timestamptz := clock_timestamp();
    lease_end  timestamptz;
    ids        bigint[] := '{}';
    tries      int[] := '{}';
    got        record;
    heads      bigint[];
    horizon    bigint;
    order_     int[];
    shard      int;
    locked     int := 0;
    held_lanes boolean := false;
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
    IF topic IS NULL OR topic = '' OR octet_length(topic) > 256 THEN
        PERFORM es._outbox_check_topic(topic);   -- raises ES041
    END IF;
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

    -- Expired leases, unless another claim of the group is sweeping.
    IF es._outbox_lock(g.group_id, 8, false) THEN
        held_lanes := es._outbox_sweep(g, claimed_at) > 0;   -- their locks are ours now
    END IF;

    -- Ready lanes, side by side with the group's other workers.
    FOR got IN
        WITH c AS (
            SELECT l.group_id, l.head_id FROM es._outbox_lanes l
             WHERE l.group_id = g.group_id AND NOT l.leased AND l.due_at <= claimed_at
             ORDER BY l.due_at, l.head_id
             LIMIT max_count
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

    -- New messages, shard by shard: the shards with messages new to the group, the one with
    -- the oldest first (so a lone worker gets them in id order); a shard another claim is
    -- taking in is skipped. When every such shard is busy and nothing was handed out, wait
    -- for the first (holding no lane, so no claim waits for us), then go round again.
    IF cardinality(ids) < max_count THEN
        FOR pass IN 1..2 LOOP
            horizon := es._outbox_horizon();
            order_ := array(
                SELECT c.s
                  FROM generate_series(0, 7) c(s)
                 CROSS JOIN LATERAL (
                       SELECT coalesce(
                                  (SELECT i.intake_id FROM es._outbox_intake i
                                    WHERE i.group_id = g.group_id AND i.shard = c.s
                                    ORDER BY i.intake_id DESC, i.swept_at DESC LIMIT 1),
                                  g.intake_id) AS intake_id) k
                 CROSS JOIN LATERAL (
                       SELECT m.id FROM es._outbox_messages m
                        WHERE m.topic = g.topic AND m.shard = c.s
                          AND m.id > k.intake_id AND m.id <= horizon
                        ORDER BY m.id LIMIT 1) n
                 ORDER BY n.id);
            FOREACH shard IN ARRAY order_ LOOP
                EXIT WHEN cardinality(ids) >= max_count;
                CONTINUE WHEN NOT es._outbox_lock(g.group_id, shard, false);
                locked := locked + 1;
                heads := es._outbox_intake(g, shard, horizon, max_count - cardinality(ids), lease_end);
                ids := ids || heads;
                tries := tries || array_fill(1, ARRAY[cardinality(heads)]);
            END LOOP;
            EXIT WHEN locked > 0 OR cardinality(ids) > 0 OR held_lanes OR cardinality(order_) = 0;
            PERFORM es._outbox_lock(g.group_id, order_[1], true);
        END LOOP;
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
    SELECT l.* INTO lane FROM es._outbox_lanes l
     WHERE l.group_id = ANY (array(SELECT g.group_id FROM es._outbox_groups g
                                    WHERE g.consumer_group = _outbox_held.consumer_group))
       AND l.head_id = _outbox_held.id
       FOR UPDATE;
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
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    SET enable_seqscan = off AS $$
DECLARE
    wanted   bigint[];
    groups_  int[];
    lanes    es._outbox_lanes[];
    one_lane es._outbox_lanes;
    now_at timestamptz := clock_timestamp();
    held   record;
    one    bigint;
    lane   record;
BEGIN
    IF ids IS NULL OR array_position(ids, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'ids must be an array of message ids without NULLs' USING ERRCODE = 'ES044';
    END IF;
    wanted := array(SELECT DISTINCT u FROM unnest(ids) u ORDER BY u);
    IF cardinality(wanted) = 0 THEN
        PERFORM es._outbox_check_group(consumer_group);
        RETURN;
    END IF;
    -- Every lane at once, locked in id order (as the one-by-one path below locks them).
    -- (Both key columns of the lanes' primary key given, so that the look-up is by key and
    -- never walks the group's other lanes, dead ones included.)
    groups_ := array(SELECT g.group_id FROM es._outbox_groups g
                      WHERE g.consumer_group = outbox_ack.consumer_group);
    SELECT coalesce(array_agg(x ORDER BY x.head_id), '{}') INTO lanes
      FROM unnest(wanted) w(id)
     CROSS JOIN LATERAL (SELECT l.* FROM es._outbox_lanes l
                          WHERE l.group_id = ANY (groups_) AND l.head_id = w.id
                            FOR UPDATE) x;
    IF cardinality(lanes) <> cardinality(wanted)
       OR EXISTS (SELECT 1 FROM unnest(lanes) x WHERE NOT x.leased OR x.due_at <= now_at) THEN
        -- Some id is not held, or its lease ran out: one by one, for the precise error.
        PERFORM es._outbox_check_group(consumer_group);
        FOREACH one IN ARRAY wanted LOOP
            held := es._outbox_held(consumer_group, one);
        END LOOP;
    END IF;
    -- Lanes with nothing waiting go away; the others move to their next message.
    FOREACH one_lane IN ARRAY lanes LOOP
        CONTINUE WHEN one_lane.lane_key IS NOT NULL AND one_lane.tail_id > one_lane.head_id;
        DELETE FROM es._outbox_lanes l
         WHERE l.group_id = one_lane.group_id AND l.head_id = one_lane.head_id;
    END LOOP;
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
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    SET enable_seqscan = off AS $$
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
-- 30 days), so es.outbox_purge can tell how long ago a message was last acked. Also the
-- groups' maintenance: a full lease sweep and the pruning of the intake log.
CREATE OR REPLACE FUNCTION es._outbox_mark() RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    mark_time timestamptz := clock_timestamp();
    grp       es._outbox_groups;
BEGIN
    -- Maintenance of each group the claims leave to us (unless a claim is sweeping it now):
    -- a full lease sweep, and the intake log cut down to the newest row of each shard.
    FOR grp IN SELECT * FROM es._outbox_groups x ORDER BY x.group_id LOOP
        CONTINUE WHEN NOT es._outbox_lock(grp.group_id, 8, false);
        PERFORM es._outbox_sweep(grp, clock_timestamp(), true);
        DELETE FROM es._outbox_intake i
         WHERE i.group_id = grp.group_id
           AND EXISTS (SELECT 1 FROM es._outbox_intake n
                        WHERE n.group_id = i.group_id AND n.shard = i.shard
                          AND (n.intake_id, n.swept_at) > (i.intake_id, i.swept_at));
    END LOOP;
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

