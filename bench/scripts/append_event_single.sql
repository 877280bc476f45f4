-- es.append_event of one event to a random stream (expected version: any).
-- group: single
-- baseline: insert_single
-- events: 1
-- sync: off on
\set sid random(1, 10000)
\set n random(1, 1000000)
SELECT * FROM es.append_event('a-' || :sid, NULL, 'Deposited', jsonb_build_object('amount', :n::int),
                              '{"source":"bench"}');
