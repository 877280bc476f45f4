-- Hot streams: every client appends to one of 4 streams with expected version any; a lost race
-- is retried inside es.append_event.
-- group: hot
-- baseline: plpgsql_append_hot
-- events: 1
-- sync: off
\set sid random(1, 4)
\set n random(1, 1000000)
SELECT * FROM es.append_event('hot-' || :sid, NULL, 'Deposited', jsonb_build_object('amount', :n::int));
