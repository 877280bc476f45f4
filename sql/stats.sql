-- es.stats (API.md §8): per store events, streams, append rate; outbox backlog, oldest
-- unacked age, dead letters; projection lag. Only deterministic columns are shown.
\set VERBOSITY terse
SELECT es.create_event_table('public.regress_stats');
SELECT first_version FROM es.append('s-1', 0, '[{"type":"A"},{"type":"B"}]', store => 'regress_stats');
SELECT first_version FROM es.append('s-2', 0, '[{"type":"A"}]', store => 'regress_stats');
SELECT kind, name, events, streams, appended_last_minute, backlog, dead_letters
  FROM es.stats WHERE kind = 'store' AND name = 'regress_stats';

-- Outbox: 3 messages, one acked, one dead-lettered, one never claimed.
SELECT es.outbox_subscribe('regress-stats-g', 'regress-stats', 1);
SELECT es.outbox_publish('regress-stats', '{"n":1}') > 0 AS published;
SELECT es.outbox_publish('regress-stats', '{"n":2}') > 0 AS published;
SELECT kind, name, topic, backlog, oldest_unacked_age > interval '0' AS has_age, dead_letters
  FROM es.stats WHERE kind = 'outbox' AND name = 'regress-stats-g';
SELECT es.outbox_ack('regress-stats-g', ARRAY[id]) FROM es.outbox_claim('regress-stats-g', 'regress-stats', 1);
SELECT es.outbox_nack('regress-stats-g', id, 'boom') FROM es.outbox_claim('regress-stats-g', 'regress-stats', 1);
SELECT es.outbox_publish('regress-stats', '{"n":3}') > 0 AS published;
SELECT kind, name, topic, backlog, dead_letters
  FROM es.stats WHERE kind = 'outbox' AND name = 'regress-stats-g';
SELECT es.outbox_ack('regress-stats-g', ARRAY[id]) FROM es.outbox_claim('regress-stats-g', 'regress-stats', 1);
SELECT kind, name, backlog, oldest_unacked_age, dead_letters
  FROM es.stats WHERE kind = 'outbox' AND name = 'regress-stats-g';

-- Projection lag.
CREATE TABLE regress_stats_model (n int);
CREATE FUNCTION regress_stats_handle(e es.event) RETURNS void LANGUAGE sql
    AS $$ INSERT INTO regress_stats_model VALUES (1) $$;
SELECT es.projection_create('regress-stats-p', 'regress_stats_handle(es.event)', 'regress_stats');
SELECT kind, name, lag_events FROM es.stats WHERE kind = 'projection' AND name = 'regress-stats-p';
SELECT es.projection_refresh('regress-stats-p');
SELECT kind, name, lag_events, lag_seconds FROM es.stats WHERE kind = 'projection' AND name = 'regress-stats-p';

-- A reader without SELECT on the store sees no counts for it.
CREATE ROLE regress_es_stats_reader IN ROLE es_reader;
SET ROLE regress_es_stats_reader;
SELECT kind, name, events, streams FROM es.stats WHERE name IN ('regress_stats', 'regress-stats-p');
SELECT kind, name, lag_events FROM es.stats WHERE kind = 'projection' AND name = 'regress-stats-p';
RESET ROLE;
DROP ROLE regress_es_stats_reader;

SELECT es.projection_drop('regress-stats-p');
SELECT es.drop_event_table('regress_stats');
DELETE FROM es._outbox_groups WHERE consumer_group = 'regress-stats-g';
DELETE FROM es._outbox_messages WHERE topic = 'regress-stats';
DROP TABLE regress_stats_model;
DROP FUNCTION regress_stats_handle(es.event);
