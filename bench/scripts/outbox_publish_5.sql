-- es.outbox_publish of one message per transaction while 5 sessions LISTEN on
-- es.outbox_channel('bench-pub') and consume the relay's notifications (issue 4).
-- group: outbox_publish
-- baseline: outbox_publish_0
-- events: 1
-- sync: off
-- extended: yes
-- listeners: 5 SELECT es.outbox_channel('bench-pub')
\set n random(1, 1000000)
SELECT es.outbox_publish('bench-pub', jsonb_build_object('n', :n::int), 'k-' || :n);
