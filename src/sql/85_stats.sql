-- Operations: es.stats (API.md §8), one row per store, consumer group and projection.
-- Re-runnable (CREATE OR REPLACE only): the 0.2.0 -> 0.3.0 upgrade script runs this file as it is.

-- Per event table: events, streams and events recorded in the last minute. NULLs for a store
-- the caller may not read (the counts run with the caller's rights).
CREATE OR REPLACE FUNCTION es._stats_store(store regclass, OUT events bigint, OUT streams bigint,
                                OUT appended_last_minute bigint)
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT has_table_privilege(store, 'SELECT') THEN
        RETURN;
    END IF;
    EXECUTE format('SELECT count(*), count(DISTINCT stream_id),'
                   ' count(*) FILTER (WHERE recorded_at > pg_catalog.now() - interval ''1 minute'')'
                   ' FROM %s', store)
        INTO events, streams, appended_last_minute;
END $$;
COMMENT ON FUNCTION es._stats_store(regclass) IS
    'Events, streams and events of the last minute of an event table (internal)';

-- Per consumer group and topic: messages not yet acked (handed out, waiting, or not yet taken
-- in), the age of the oldest of them, and dead letters. Counts only, no payloads.
CREATE OR REPLACE FUNCTION es._stats_outbox()
RETURNS TABLE (consumer_group text, topic text, backlog bigint, oldest_unacked_age interval,
               dead_letters bigint)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT g.consumer_group, g.topic, count(u.id), now() - min(u.published_at),
           (SELECT count(*) FROM es._outbox_dead d WHERE d.group_id = g.group_id)
      FROM es._outbox_groups g
      LEFT JOIN LATERAL (
          SELECT m.id, m.published_at
            FROM generate_series(0, 7) s
            JOIN es._outbox_messages m
              ON m.topic = g.topic AND m.shard = s AND m.id > es._outbox_intake_id(g.group_id, s)
          UNION ALL
          SELECT m.id, m.published_at FROM es._outbox_lanes l
            JOIN es._outbox_messages m
              ON m.id = l.head_id
              OR (l.lane_key IS NOT NULL AND m.topic = g.topic AND m.key = l.lane_key
                  AND m.id > l.head_id AND m.id <= l.tail_id)
           WHERE l.group_id = g.group_id) u ON true
     GROUP BY g.group_id, g.consumer_group, g.topic
$$;
COMMENT ON FUNCTION es._stats_outbox() IS
    'Backlog, oldest unacked age and dead letters of each outbox consumer group (internal)';

-- kind 'store'      name = event table: events, streams, appended_last_minute
-- kind 'outbox'     name = consumer group, topic: backlog, oldest_unacked_age, dead_letters
-- kind 'projection' name = projection: lag_events, lag_seconds (NULL: store not readable)
CREATE OR REPLACE VIEW es.stats AS
SELECT 'store'::text AS kind, s.store::text AS name, NULL::text AS topic,
       st.events, st.streams, st.appended_last_minute,
       NULL::bigint AS backlog, NULL::interval AS oldest_unacked_age, NULL::bigint AS dead_letters,
       NULL::bigint AS lag_events, NULL::double precision AS lag_seconds
  FROM es._stores s CROSS JOIN LATERAL es._stats_store(s.store) st
UNION ALL
SELECT 'outbox', o.consumer_group, o.topic, NULL, NULL, NULL,
       o.backlog, o.oldest_unacked_age, o.dead_letters, NULL, NULL
  FROM es._stats_outbox() o
UNION ALL
SELECT 'projection', p.name, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       p.lag_events, p.lag_seconds
  FROM es.projections p;
COMMENT ON VIEW es.stats IS
    'Operational statistics: per store events, streams, append rate; outbox backlog, oldest unacked age, dead letters; projection lag';
