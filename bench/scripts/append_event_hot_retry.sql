-- Hot streams with explicit expected versions: read the version, append, and on ES001 (a
-- conflict) read again and retry (bench_append_with_retry, one subtransaction per try).
-- group: hot
-- baseline: plpgsql_append_hot
-- events: 1
-- sync: off
\set sid random(1, 4)
\set n random(1, 1000000)
SELECT bench_append_with_retry('hotr-' || :sid, 'Deposited', jsonb_build_object('amount', :n::int));
