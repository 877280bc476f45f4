-- Roles (API.md §8): es_reader reads, es_writer appends, es_admin creates event tables; a
-- store created by es_admin is usable by a role only after GRANT SELECT/INSERT on it; code a
-- store's owner attached to it never runs with the extension owner's rights.
-- Roles are cluster-wide: all are named regress_es_* and dropped at the end.
\set SHOW_CONTEXT never
CREATE ROLE regress_es_nobody LOGIN;
CREATE ROLE regress_es_writer LOGIN IN ROLE es_writer;
CREATE ROLE regress_es_reader LOGIN IN ROLE es_reader;
CREATE ROLE regress_es_admin LOGIN IN ROLE es_admin;
CREATE SCHEMA regress_roles;
GRANT USAGE, CREATE ON SCHEMA regress_roles TO regress_es_admin;
GRANT USAGE ON SCHEMA regress_roles TO regress_es_writer, regress_es_reader, regress_es_nobody;
SELECT first_version FROM es.append('regress-roles-1', 0, '[{"type":"BySuperuser","data":{"secret":1}}]');

-- 1. A login role with no grant: no function, no data.
SET ROLE regress_es_nobody;
SELECT * FROM es.append('regress-roles-1', NULL, '[{"type":"A"}]');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT * FROM es.read_stream('regress-roles-1');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT es.stream_version('regress-roles-1');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT count(*) FROM es.events;
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT count(*) FROM es._idempotency_keys;
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT es.create_event_table('regress_roles.mine');
\echo sqlstate: :LAST_ERROR_SQLSTATE
RESET ROLE;
-- Even with USAGE on the schema, the functions are not granted to PUBLIC.
GRANT USAGE ON SCHEMA es TO regress_es_nobody;
SET ROLE regress_es_nobody;
SELECT * FROM es.append('regress-roles-1', NULL, '[{"type":"A"}]');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT * FROM es.append_event('regress-roles-1', NULL, 'A', '{}');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT * FROM es.read_stream('regress-roles-1');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT * FROM es.read_stream_backward('regress-roles-1');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT * FROM es.read_all();
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT count(*) FROM es.events;
\echo sqlstate: :LAST_ERROR_SQLSTATE
INSERT INTO es.events (stream_id, stream_version, event_type) VALUES ('regress-roles-1', 2, 'Plain');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT es.create_event_table('regress_roles.mine');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT * FROM es.maintain();
\echo sqlstate: :LAST_ERROR_SQLSTATE
RESET ROLE;
REVOKE USAGE ON SCHEMA es FROM regress_es_nobody;

-- 2. es_writer: appends to es.events; cannot read, create tables or touch the registries.
SET ROLE regress_es_writer;
SELECT first_version, last_version, duplicate
  FROM es.append('regress-roles-1', 1, '[{"type":"ByWriter"}]', 'regress-roles-key');
SELECT first_version, duplicate FROM es.append_event('regress-roles-1', 2, 'ByWriter2', '{}');
SELECT first_version, duplicate
  FROM es.append('regress-roles-1', 1, '[{"type":"ByWriter"}]', 'regress-roles-key');
SELECT * FROM es.read_stream('regress-roles-1');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT es.stream_version('regress-roles-1');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT count(*) FROM es.events;
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT count(*) FROM es._idempotency_keys;
\echo sqlstate: :LAST_ERROR_SQLSTATE
DELETE FROM es._idempotency_keys;
\echo sqlstate: :LAST_ERROR_SQLSTATE
DELETE FROM es._stores;
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT es.create_event_table('regress_roles.by_writer');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT es.drop_event_table('es.events');
\echo sqlstate: :LAST_ERROR_SQLSTATE
-- A plain INSERT (INSERT privilege on es.events) goes through the append checks.
INSERT INTO es.events (stream_id, stream_version, event_type) VALUES ('regress-roles-1', 9, 'Gap');
\echo sqlstate: :LAST_ERROR_SQLSTATE
INSERT INTO es.events (stream_id, stream_version, event_type) VALUES ('regress-roles-1', 4, 'Plain');
RESET ROLE;

-- 3. es_reader: reads es.events; cannot append.
SET ROLE regress_es_reader;
SELECT stream_version, event_type, data FROM es.read_stream('regress-roles-1');
SELECT stream_version, event_type FROM es.read_stream_backward('regress-roles-1', NULL, 1);
SELECT es.stream_version('regress-roles-1');
SELECT count(*) > 0 AS reads_all FROM es.read_all(0, 1000, NULL, 'regress-roles-');
SELECT * FROM es.append('regress-roles-1', NULL, '[{"type":"ByReader"}]');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT * FROM es.append_event('regress-roles-1', NULL, 'ByReader', '{}');
\echo sqlstate: :LAST_ERROR_SQLSTATE
INSERT INTO es.events (stream_id, stream_version, event_type) VALUES ('regress-roles-1', 5, 'ByReader');
\echo sqlstate: :LAST_ERROR_SQLSTATE
UPDATE es.events SET event_type = 'x' WHERE stream_id = 'regress-roles-1';
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT es.create_event_table('regress_roles.by_reader');
\echo sqlstate: :LAST_ERROR_SQLSTATE
RESET ROLE;

-- 4. es_admin creates a store; others use it only after a table GRANT.
SET ROLE regress_es_admin;
SELECT es.create_event_table('regress_roles.ledger');
SELECT first_version FROM es.append('acct-1', 0, '[{"type":"Opened"}]', NULL, 'regress_roles.ledger');
SELECT stream_version, event_type FROM es.read_stream('acct-1', 1, NULL, 'regress_roles.ledger');
RESET ROLE;
SET ROLE regress_es_writer;
SELECT * FROM es.append('acct-1', 1, '[{"type":"Deposited"}]', NULL, 'regress_roles.ledger');
\echo sqlstate: :LAST_ERROR_SQLSTATE
RESET ROLE;
SET ROLE regress_es_reader;
SELECT * FROM es.read_stream('acct-1', 1, NULL, 'regress_roles.ledger');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT es.stream_version('acct-1', 'regress_roles.ledger');
\echo sqlstate: :LAST_ERROR_SQLSTATE
SELECT * FROM es.read_all(0, 10, NULL, NULL, 'regress_roles.ledger');
\echo sqlstate: :LAST_ERROR_SQLSTATE
RESET ROLE;
SET ROLE regress_es_admin;
GRANT INSERT ON regress_roles.ledger TO regress_es_writer;
GRANT SELECT ON regress_roles.ledger TO regress_es_reader;
RESET ROLE;
SET ROLE regress_es_writer;
SELECT first_version, duplicate FROM es.append('acct-1', 1, '[{"type":"Deposited"}]', 'regress-roles-ledger', 'regress_roles.ledger');
SELECT first_version, duplicate FROM es.append('acct-1', 1, '[{"type":"Deposited"}]', 'regress-roles-ledger', 'regress_roles.ledger');
-- INSERT on the store is not a read: es_writer has no read function either.
SELECT * FROM es.read_stream('acct-1', 1, NULL, 'regress_roles.ledger');
\echo sqlstate: :LAST_ERROR_SQLSTATE
RESET ROLE;
SET ROLE regress_es_reader;
SELECT stream_version, event_type FROM es.read_stream('acct-1', 1, NULL, 'regress_roles.ledger');
SELECT es.stream_version('acct-1', 'regress_roles.ledger');
SELECT global_position, event_type FROM es.read_all(0, 10, NULL, NULL, 'regress_roles.ledger');
SELECT * FROM es.append('acct-1', 2, '[{"type":"Deposited"}]', NULL, 'regress_roles.ledger');
\echo sqlstate: :LAST_ERROR_SQLSTATE
RESET ROLE;
-- Only the owner drops it.
SET ROLE regress_es_writer;
SELECT es.drop_event_table('regress_roles.ledger');
\echo sqlstate: :LAST_ERROR_SQLSTATE
RESET ROLE;

-- 5. Code the store's owner attaches to it (a trigger here) runs as the role that appends,
-- never as the extension owner: otherwise owning an event table would mean superuser.
CREATE TABLE regress_roles.seen (who text, superuser boolean);
GRANT INSERT ON regress_roles.seen TO PUBLIC;
SET ROLE regress_es_admin;
CREATE FUNCTION regress_roles.who_appends() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO regress_roles.seen
        SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user;
    RETURN NEW;
END $$;
CREATE TRIGGER who_appends BEFORE INSERT ON regress_roles.ledger
    FOR EACH ROW EXECUTE FUNCTION regress_roles.who_appends();
SELECT first_version FROM es.append('acct-2', 0, '[{"type":"Opened"}]', NULL, 'regress_roles.ledger');
RESET ROLE;
SET ROLE regress_es_writer;
SELECT first_version FROM es.append('acct-2', 1, '[{"type":"Deposited"}]', NULL, 'regress_roles.ledger');
RESET ROLE;
SELECT who, superuser FROM regress_roles.seen ORDER BY who;

-- Clean up.
SELECT es.drop_event_table('regress_roles.ledger');
DROP SCHEMA regress_roles CASCADE;
DROP ROLE regress_es_nobody, regress_es_writer, regress_es_reader, regress_es_admin;
