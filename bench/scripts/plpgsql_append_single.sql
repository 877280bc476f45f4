-- Hand-written PL/pgSQL append (advisory lock, read last version, insert) of one event.
-- group: single
-- baseline: insert_single
-- events: 1
-- sync: off
\set sid random(1, 10000)
\set n random(1, 1000000)
SELECT * FROM bench_plpgsql_append('a-' || :sid, NULL, 'Deposited', jsonb_build_object('amount', :n::int),
                                   '{"source":"bench"}');
