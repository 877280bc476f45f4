-- es.outbox_publish in C++ (src/pg/outbox_publish.cpp): the checks, messages and SQLSTATEs of
-- the former PL/pgSQL function, the row as its INSERT wrote it, the shard es._outbox_shard
-- computes, index maintenance and constraints of the direct insert, the executor's INSERT when
-- the message table has a trigger, and the extension owner's rights. Topics 'pub-*' only.
\set VERBOSITY default

-- Bad input, with details and hints.
SELECT es.outbox_publish(NULL, '{}');
SELECT es.outbox_publish('', '{}');
SELECT es.outbox_publish(repeat('é', 129), '{}');
SELECT es.outbox_publish('pub', NULL);
SELECT es.outbox_publish('pub', '{}', 'k', '[1]');
SELECT es.outbox_publish('pub', '{}', 'k', '"text"');
SELECT es.outbox_publish('pub', '{}', 'k', '1.5');
SELECT es.outbox_publish('pub', '{}', 'k', 'true');
SELECT es.outbox_publish('pub', '{}', 'k', 'null');
SELECT es.outbox_publish('pub', '{}', repeat('é', 513));
-- checked in this order: topic, payload, headers, key
SELECT es.outbox_publish('', NULL, repeat('k', 2000), '1');
SELECT es.outbox_publish('pub', NULL, repeat('k', 2000), '1');
SELECT es.outbox_publish('pub', '{}', repeat('k', 2000), '1');
-- the limits are inclusive; a JSON null payload is a message
SELECT es.outbox_publish(repeat('t', 256), '{}', repeat('k', 1024)) > 0 AS at_the_limits;
SELECT es.outbox_publish('pub', 'null') > 0 AS null_payload;
SELECT count(*) AS the_null_payload_only FROM es._outbox_messages WHERE topic = 'pub';

-- The row, as the INSERT of the PL/pgSQL function wrote it: published_at is the transaction's
-- start, the id the one returned, visible to the caller's next statement.
BEGIN;
SELECT es.outbox_publish('pub-row', '{"a": [1, 2]}', 'k-1', '{"h": true}') AS id1 \gset
SELECT es.outbox_publish('pub-row', '"plain"') AS id2 \gset
SELECT id = :id1 AS first, id = :id2 AS second, topic, key, payload, headers,
       published_at = now() AS published_now, shard = es._outbox_shard(key, id) AS shard_agrees
  FROM es._outbox_messages WHERE topic = 'pub-row' ORDER BY id;
SELECT :id2 > :id1 AS ids_increase;
COMMIT;
-- ten in one statement: each call sees the ones before it
SELECT count(*) AS published, count(DISTINCT id) AS distinct_ids
  FROM (SELECT es.outbox_publish('pub-ten', jsonb_build_object('i', i), 'k-' || (i % 3)) AS id
          FROM generate_series(1, 10) i) p;

-- The shard computed in C++ agrees with es._outbox_shard: keys ASCII, multibyte, empty, long,
-- and none (runs of 16 ids).
SELECT count(es.outbox_publish('pub-shard', '{}', k))
  FROM (SELECT CASE i % 6 WHEN 0 THEN NULL
                          WHEN 1 THEN 'order-' || i
                          WHEN 2 THEN repeat('ü', i % 300) || i
                          WHEN 3 THEN md5(i::text)
                          WHEN 4 THEN repeat('x', i % 1025)
                          ELSE '' END AS k
          FROM generate_series(1, 3000) i) keys;
SELECT count(*) AS messages,
       count(*) FILTER (WHERE shard IS DISTINCT FROM es._outbox_shard(key, id)) AS disagreements,
       count(DISTINCT shard) AS shards_used,
       count(DISTINCT shard) FILTER (WHERE key IS NULL) AS keyless_shards_used,
       count(DISTINCT shard) FILTER (WHERE key = '') AS empty_key_shards
  FROM es._outbox_messages WHERE topic = 'pub-shard';

-- Every index got the rows: the same counts through each index as through the heap.
SET enable_seqscan = off;
SET enable_bitmapscan = off;
SELECT count(*) AS by_topic_shard FROM es._outbox_messages WHERE topic = 'pub-shard' AND shard >= 0;
SELECT count(*) AS by_topic_key FROM es._outbox_messages WHERE topic = 'pub-shard' AND key IS NOT NULL;
SELECT count(*) AS by_id FROM es._outbox_messages WHERE id >= :id1 AND topic LIKE 'pub-%';
RESET enable_seqscan;
RESET enable_bitmapscan;
SELECT count(*) FILTER (WHERE topic = 'pub-shard') AS heap_topic_shard,
       count(*) FILTER (WHERE topic = 'pub-shard' AND key IS NOT NULL) AS heap_topic_key,
       count(*) FILTER (WHERE topic LIKE 'pub-%' AND id >= :id1) AS heap_ids
  FROM es._outbox_messages;

-- Constraints hold on the direct insert, and a duplicate id is refused like INSERT does.
\set VERBOSITY terse
ALTER TABLE es._outbox_messages ADD CONSTRAINT pub_no_forbidden CHECK (topic <> 'pub-forbidden');
SELECT es.outbox_publish('pub-forbidden', '{}');
ALTER TABLE es._outbox_messages DROP CONSTRAINT pub_no_forbidden;
INSERT INTO es._outbox_messages (id, topic, payload, shard)
    VALUES (pg_sequence_last_value('es._outbox_messages_id_seq') + 1, 'pub-squatter', '{}', 0);
SELECT es.outbox_publish('pub-taken', '{}');
DELETE FROM es._outbox_messages WHERE topic = 'pub-squatter';
SELECT count(*) AS not_written FROM es._outbox_messages WHERE topic IN ('pub-forbidden', 'pub-taken');
\set VERBOSITY default

-- A message table with a trigger (which a direct insert would skip) gets the executor's
-- INSERT: the trigger fires, as the extension owner, for a writer without other rights.
CREATE TABLE public.publish_seen (id bigint, topic text, by_owner boolean);
CREATE FUNCTION public.publish_seen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.publish_seen
        SELECT NEW.id, NEW.topic, n.nspowner = current_user::regrole FROM pg_namespace n
         WHERE n.nspname = 'es';
    RETURN NULL;
END $$;
CREATE TRIGGER publish_seen AFTER INSERT ON es._outbox_messages
    FOR EACH ROW EXECUTE FUNCTION public.publish_seen();
CREATE ROLE publish_w IN ROLE es_writer;
SET ROLE publish_w;
SELECT es.outbox_publish('pub-trigger', '{"via": "executor"}', 'k') AS id3 \gset
SELECT * FROM es._outbox_messages;
RESET ROLE;
SELECT id = :id3 AS same_id, topic, by_owner FROM public.publish_seen;
SELECT topic, key, payload, shard = es._outbox_shard(key, id) AS shard_agrees
  FROM es._outbox_messages WHERE id = :id3;
-- without the trigger, direct again: nothing fires
DROP TRIGGER publish_seen ON es._outbox_messages;
SET ROLE publish_w;
SELECT es.outbox_publish('pub-trigger', '{"via": "direct"}') > :id3 AS later_id;
RESET ROLE;
SELECT count(*) AS fired FROM public.publish_seen;
SELECT payload FROM es._outbox_messages WHERE topic = 'pub-trigger' ORDER BY id;
DROP TABLE public.publish_seen;
DROP FUNCTION public.publish_seen();
DROP ROLE publish_w;

-- Any isolation level, and a rolled-back savepoint takes its message with it.
BEGIN ISOLATION LEVEL SERIALIZABLE;
SELECT es.outbox_publish('pub-iso', '{"n": 1}') > 0 AS serializable;
SAVEPOINT s;
SELECT es.outbox_publish('pub-iso', '{"n": 2}') > 0 AS in_savepoint;
ROLLBACK TO SAVEPOINT s;
SELECT es.outbox_publish('pub-iso', '{"n": 3}') > 0 AS after_savepoint;
COMMIT;
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT es.outbox_publish('pub-iso', '{"n": 4}') > 0 AS repeatable_read;
COMMIT;
SELECT payload FROM es._outbox_messages WHERE topic = 'pub-iso' ORDER BY id;

-- The route trigger (C++ too) publishes what the PL/pgSQL trigger did: per matching route, in
-- topic order, key = stream id, payload = to_jsonb(event row), headers as below, the shard
-- es._outbox_shard computes.
SELECT es.create_event_table('public.pub_store') IS NOT NULL AS created;
SELECT es.outbox_route('pub-route-b', 'public.pub_store', ARRAY['Placed', 'Paid']);
SELECT es.outbox_route('pub-route-a', 'public.pub_store', NULL, 'order-');
SELECT es.outbox_route('pub-route-c', 'public.pub_store', ARRAY['Never']);
SELECT last_version FROM es.append('order-1', 0,
    '[{"type": "Placed", "data": {"n": 1}, "metadata": {"m": true}},
      {"type": "Noted", "data": null}, {"type": "Paid", "data": [1, "x"]}]',
    store => 'public.pub_store');
SELECT last_version FROM es.append_event('user-1', 0, 'Placed', '{}', store => 'public.pub_store');
SELECT m.topic, m.key, e.stream_version, m.headers->>'store' AS store,
       m.payload = to_jsonb(e) AS payload_is_the_event,
       m.headers = jsonb_build_object('event_id', e.event_id, 'event_type', e.event_type,
                                      'global_position', e.global_position,
                                      'stream_version', e.stream_version,
                                      'store', 'public.pub_store') AS headers_as_before,
       m.shard = es._outbox_shard(m.key, m.id) AS shard_agrees
  FROM es._outbox_messages m
  JOIN public.pub_store e ON e.global_position = (m.headers->>'global_position')::bigint
 WHERE m.topic LIKE 'pub-route-%' ORDER BY m.id;
SELECT es.drop_event_table('public.pub_store');

-- Both are C, run without SECURITY DEFINER or a SET clause; publish keeps its grants.
SELECT p.proname, p.prolang = (SELECT oid FROM pg_language WHERE lanname = 'c') AS is_c,
       p.prosecdef, p.proconfig, p.proisstrict,
       has_function_privilege('es_writer', p.oid, 'EXECUTE') AS writer,
       has_function_privilege('es_reader', p.oid, 'EXECUTE') AS reader,
       has_function_privilege('public', p.oid, 'EXECUTE') AS public
  FROM pg_proc p WHERE p.oid IN ('es.outbox_publish(text, jsonb, text, jsonb)'::regprocedure,
                               'es._outbox_route_event()'::regprocedure)
 ORDER BY 1;
