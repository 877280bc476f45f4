-- pg_eventstore 0.2.0 -> 0.3.0.
--
-- Built by the Makefile until 0.3.0 is released (then frozen): this head — drops and ALTERs
-- that re-running an area file cannot express — followed by the area files UPGRADE_AREAS in the
-- Makefile lists (CREATE OR REPLACE only), in install order. The 0.3.0 library still exports
-- every C function 0.1.0 and 0.2.0 name. test/t/040_upgrade.pl compares a database updated from
-- 0.1.0 through 0.2.0 with a fresh 0.3.0 install and prints every difference.
\echo Use "ALTER EXTENSION pg_eventstore UPDATE" to load this file. \quit

-- Changes from 0.2.0:
--  * es.append and es.append_event return SETOF es.append_result (ROWS 1) instead of
--    TABLE (...), same columns: a return type cannot change in place, so they are dropped here,
--    re-created by src/sql/20_append.sql and re-granted by src/sql/91_grants.sql.
--  * Outbox claims no longer serialize on the group row, and never update it: workers take
--    ready lanes side by side (FOR UPDATE SKIP LOCKED) and new messages from 8 shards
--    (es._outbox_messages.shard, by key) under transaction-scoped claim locks, set-based; one
--    claim at a time sweeps expired leases, over a bounded window. Intake cursors live in the
--    insert-only es._outbox_intake. Lane indexes: two partial ones (ready / leased). Acks
--    finish their lanes set-based. publish, the route trigger function, claim, ack and nack
--    moved to the re-runnable 41_outbox_flow.sql; es.stats reads the new cursors (85_stats).
--    Lanes and cursors have no foreign key to their group (each check took a KEY SHARE lock
--    on the group row, a MultiXact under concurrent claims); a trigger on the group deletes them.
--  * es.read_stream and es.read_stream_backward are C++ (a kept plan per store, run as the
--    caller) instead of PL/pgSQL: same signatures, results, errors and privileges. The
--    re-runnable 30_read.sql replaces them in place (CREATE OR REPLACE keeps their ACLs).
--  * es.outbox_publish and the route trigger function es._outbox_route_event are C++
--    (src/pg/outbox_publish.cpp) instead of PL/pgSQL SECURITY DEFINER with a SET clause: same
--    signatures, checks, errors, ids, shards, messages and grants; they run as the extension
--    owner internally. The re-runnable 41_outbox_flow.sql replaces them in place.
--  * es.outbox_claim and es.outbox_ack are C++ (src/pg/outbox_claim.cpp) instead of PL/pgSQL
--    SECURITY DEFINER with SET clauses: same signatures, results, errors, privilege checks
--    and grants; they run as the extension owner internally and plan with enable_seqscan off.
--    41_outbox_flow.sql replaces them in place; its es._outbox_sweep now restarts the next
--    window at (not after) the earliest lease it had to skip.
--  * es.subscription_ack accepts an ack above es.head_position when every position between
--    the checkpoint (or the head) and it holds a committed event: es.read_all now returns such
--    gap-free runs without waiting for the head. Moved to the re-runnable
--    51_subscription_ack.sql, which replaces it in place (its ACL stays).
--  * es._relay_poll and es._relay_poll_outbox (internal) are C++ (src/pg/relay.cpp) instead
--    of PL/pgSQL: the relay worker computes its notifications with the same code through kept
--    plans, and reads on from a store's last head as far as its events run without a gap
--    before it copies the lock table. Same columns and rows; replaced in place below (their
--    ACLs stay).

-- Appending (src/sql/00_schema.sql, 20_append.sql).
DROP FUNCTION es.append(text, bigint, jsonb, text, regclass);
DROP FUNCTION es.append_event(text, bigint, text, jsonb, jsonb, text, regclass);
-- As in src/sql/00_schema.sql.
CREATE TYPE es.append_result AS (
    first_version  bigint,
    last_version   bigint,
    first_position bigint,
    last_position  bigint,
    duplicate      boolean
);
COMMENT ON TYPE es.append_result IS 'Result of es.append and es.append_event: versions and positions of the batch, and whether it was an idempotent replay';

-- Outbox (src/sql/40_outbox.sql, 41_outbox_flow.sql).
DROP FUNCTION es._outbox_lock_group(text, text);
DROP INDEX es._outbox_lanes_due;
-- Shards of existing messages: set by the tail, once es._outbox_shard exists.
ALTER TABLE es._outbox_messages ADD COLUMN shard smallint NOT NULL DEFAULT 0;
DROP INDEX es._outbox_messages_topic_id;
CREATE INDEX _outbox_messages_topic_shard_id ON es._outbox_messages (topic, shard, id);
CREATE INDEX _outbox_lanes_ready ON es._outbox_lanes (group_id, due_at, head_id) WHERE NOT leased;
CREATE INDEX _outbox_lanes_leased ON es._outbox_lanes (group_id, due_at) WHERE leased;
-- Lanes and cursors lose their foreign key to the group (es._outbox_group_deleted() cleans up).
ALTER TABLE es._outbox_lanes DROP CONSTRAINT _outbox_lanes_group_id_fkey;
CREATE TABLE es._outbox_intake (
    group_id      int NOT NULL,   -- no foreign key: see es._outbox_group_deleted()
    shard         smallint NOT NULL,   -- -1: the lease sweep's row
    intake_id     bigint NOT NULL,
    swept_at      timestamptz NOT NULL,
    full_swept_at timestamptz NOT NULL,
    PRIMARY KEY (group_id, shard, intake_id, swept_at)
);
COMMENT ON TABLE es._outbox_intake IS 'Outbox intake cursors and lease sweeps per group, newest row wins (internal)';
SELECT pg_catalog.pg_extension_config_dump('es._outbox_intake', '');

-- The relay's poll (src/sql/95_relay.sql).
CREATE OR REPLACE FUNCTION es._relay_poll()
RETURNS TABLE (channel text, payload text)
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'es_relay_poll';
CREATE OR REPLACE FUNCTION es._relay_poll_outbox()
RETURNS TABLE (channel text, payload text)
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'es_relay_poll_outbox';
