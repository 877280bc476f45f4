-- es.append_event of one event with a fresh idempotency key (claim, append, complete the key).
-- group: single
-- baseline: insert_single
-- events: 1
-- sync: off
\set sid random(1, 10000)
\set n random(1, 1000000)
\set k random(1, 9000000000000000000)
SELECT * FROM es.append_event('k-' || :sid, NULL, 'Deposited', jsonb_build_object('amount', :n::int),
                              '{"source":"bench"}', 'key-' || :k);
