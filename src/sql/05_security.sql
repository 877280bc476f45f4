-- Privilege helpers (API.md §8: no function lets a role read or write a store it has no grant
-- on). SECURITY DEFINER functions run as the extension owner, so inside them current_user
-- cannot say who called: they check the session's role instead (SET ROLE, else the session
-- user), which SET ROLE cannot change inside a SECURITY DEFINER function. Views and
-- SECURITY INVOKER functions check current_user as usual.

-- The role SECURITY DEFINER functions check store privileges for: the session's current role.
CREATE FUNCTION es._session_role() RETURNS name
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN pg_catalog.current_setting('role') = 'none' THEN session_user
                ELSE pg_catalog.current_setting('role')::pg_catalog.name END
$$;
COMMENT ON FUNCTION es._session_role() IS
    'The session''s current role, whose store privileges SECURITY DEFINER functions check (internal)';

-- Raises 42501 unless `role` holds `privilege` on event table `store`; `what` says what was refused.
CREATE FUNCTION es._require_store_privilege(role name, store regclass, privilege text, what text)
RETURNS void
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT has_table_privilege(role, store, privilege) THEN
        RAISE EXCEPTION 'permission denied to % event table %', what, store
            USING ERRCODE = '42501',
                  DETAIL = format('Role %s has no %s privilege on it.', quote_ident(role), privilege),
                  HINT = 'GRANT the table privilege on the store to the role.';
    END IF;
END $$;
COMMENT ON FUNCTION es._require_store_privilege(name, regclass, text, text) IS
    'Raises 42501 unless a role holds a privilege on an event table (internal)';

-- False when `headers` names (as routed outbox messages do, key "store") an event table that
-- `role` may not SELECT from: a routed message carries the event, so reading it is reading
-- the store. Messages without that header, or naming no event table, are readable.
CREATE FUNCTION es._may_read_routed(headers jsonb, role name) RETURNS boolean
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT $1 ->> 'store' IS NULL
        OR NOT EXISTS (SELECT 1 FROM es._stores s
                         JOIN pg_class c ON c.oid = s.store
                         JOIN pg_namespace n ON n.oid = c.relnamespace
                        WHERE format('%I.%I', n.nspname, c.relname) = $1 ->> 'store'
                          AND NOT has_table_privilege($2, s.store, 'SELECT'))
$$;
COMMENT ON FUNCTION es._may_read_routed(jsonb, name) IS
    'Whether a role may read an outbox message routed from an event table (internal)';
