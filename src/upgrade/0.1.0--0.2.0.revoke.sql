-- A fresh install revokes every function in schema es from PUBLIC after creating them all
-- (REVOKE ALL ON ALL FUNCTIONS IN SCHEMA es FROM PUBLIC). Here that would also take back
-- PUBLIC grants an administrator made on 0.1.0 functions, so only the functions this script
-- created are revoked: the extension's members that still have the default ACL (every 0.1.0
-- function had its ACL set by that REVOKE).
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
