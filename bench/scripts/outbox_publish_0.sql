-- es.outbox_publish of one message per transaction, nobody LISTENing on the topic (issue 4).
-- group: outbox_publish
-- baseline: outbox_publish_0
-- events: 1
-- sync: off
-- extended: yes
\set n random(1, 1000000)
SELECT es.outbox_publish('bench-pub', jsonb_build_object('n', :n::int), 'k-' || :n);
