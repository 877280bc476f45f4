-- es.append_event at 8 clients, nobody LISTENing on es.store_channel('es.events') (issue 3).
-- group: listen
-- baseline: append_listen_0
-- events: 1
-- sync: off
-- extended: yes
-- clients: 8
\set sid random(1, 10000)
\set n random(1, 1000000)
SELECT * FROM es.append_event('l-' || :sid, NULL, 'Deposited', jsonb_build_object('amount', :n::int));
