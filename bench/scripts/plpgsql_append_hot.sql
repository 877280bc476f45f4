-- Baseline for the hot stream: the PL/pgSQL append (advisory lock serializes) on 4 streams.
-- group: hot
-- baseline: plpgsql_append_hot
-- events: 1
-- sync: off
\set sid random(1, 4)
\set n random(1, 1000000)
SELECT * FROM bench_plpgsql_append('hot-' || :sid, NULL, 'Deposited', jsonb_build_object('amount', :n::int));
