-- The same worker cycle on the outbox: es.outbox_publish of 10 messages, es.outbox_claim of up
-- to 10 for group 'bench', es.outbox_ack of the claimed ids (issue 4).
-- group: outbox_claim
-- baseline: skip_locked_cycle
-- events: 10
-- sync: off
-- extended: yes
SELECT count(es.outbox_publish('bench-claim', jsonb_build_object('n', i))) FROM generate_series(1, 10) i;
SELECT coalesce(array_agg(id), '{}')::text AS ids FROM es.outbox_claim('bench', 'bench-claim', 10) \gset
SELECT es.outbox_ack('bench', :ids::bigint[]);
