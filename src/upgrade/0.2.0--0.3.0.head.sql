-- pg_eventstore 0.2.0 -> 0.3.0.
--
-- Built by the Makefile until 0.3.0 is released (then frozen): this head — drops and ALTERs
-- that re-running an area file cannot express — followed by the area files UPGRADE_AREAS in the
-- Makefile lists (CREATE OR REPLACE only), in install order. The 0.3.0 library still exports
-- every C function 0.1.0 and 0.2.0 name. test/t/040_upgrade.pl compares a database updated from
-- 0.1.0 through 0.2.0 with a fresh 0.3.0 install and prints every difference.
\echo Use "ALTER EXTENSION pg_eventstore UPDATE" to load this file. \quit

-- Changes:
-- * Outbox claims no longer serialize on the group row for the whole claim, and no longer
--   update it: workers take ready lanes side by side (FOR UPDATE SKIP LOCKED); one claim at a
--   time takes in new messages (set-based) and sweeps expired leases, recording the intake
--   cursor in the insert-only es._outbox_intake. Lane indexes split into two partial indexes
--   (ready / leased). Acks finish their lanes set-based. (41_outbox_flow.sql, 85_stats.sql)

-- Outbox (src/sql/40_outbox.sql, 41_outbox_flow.sql).
DROP FUNCTION es._outbox_lock_group(text, text);
DROP INDEX es._outbox_lanes_due;
-- Shards of existing messages: set by the tail, once es._outbox_shard exists.
ALTER TABLE es._outbox_messages ADD COLUMN shard smallint NOT NULL DEFAULT 0;
DROP INDEX es._outbox_messages_topic_id;
CREATE INDEX _outbox_messages_topic_shard_id ON es._outbox_messages (topic, shard, id);
CREATE INDEX _outbox_lanes_ready ON es._outbox_lanes (group_id, due_at, head_id) WHERE NOT leased;
CREATE INDEX _outbox_lanes_leased ON es._outbox_lanes (group_id, due_at) WHERE leased;
CREATE TABLE es._outbox_intake (
    group_id      int NOT NULL REFERENCES es._outbox_groups ON DELETE CASCADE,
    shard         smallint NOT NULL,   -- -1: the lease sweep's row
    intake_id     bigint NOT NULL,
    swept_at      timestamptz NOT NULL,
    full_swept_at timestamptz NOT NULL,
    PRIMARY KEY (group_id, shard, intake_id, swept_at)
);
COMMENT ON TABLE es._outbox_intake IS 'Outbox intake cursors and lease sweeps per group, newest row wins (internal)';
SELECT pg_catalog.pg_extension_config_dump('es._outbox_intake', '');
