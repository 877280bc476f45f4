-- Outbox messages published under 0.2.0 get their shard (a key's messages must share one).
UPDATE es._outbox_messages m SET shard = es._outbox_shard(m.key, m.id)
 WHERE m.shard <> es._outbox_shard(m.key, m.id);
ALTER TABLE es._outbox_messages ALTER COLUMN shard DROP DEFAULT;

-- After the area files: functions this update created start revoked from PUBLIC, as a fresh
-- install leaves every function (REVOKE ALL ON ALL FUNCTIONS IN SCHEMA es FROM PUBLIC); a new
-- function that a role may call needs its GRANT from src/sql/91_grants.sql repeated below
-- this block (0.3.0 adds only internal ones). Functions that existed before keep their ACL
-- (CREATE OR REPLACE does not touch it), so grants an administrator made stay. The new ones
-- are the extension's members in schema es whose ACL is still the default.
DO $$
DECLARE
    fn regprocedure;
BEGIN
    FOR fn IN
        SELECT p.oid::regprocedure
          FROM pg_catalog.pg_proc p
          JOIN pg_catalog.pg_depend d
            ON d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
         WHERE d.refclassid = 'pg_catalog.pg_extension'::regclass
           AND d.refobjid = (SELECT e.oid FROM pg_catalog.pg_extension e
                              WHERE e.extname = 'pg_eventstore')
           AND p.pronamespace = 'es'::regnamespace
           AND p.proacl IS NULL
         ORDER BY p.oid
    LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', fn);
    END LOOP;
END $$;
