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
