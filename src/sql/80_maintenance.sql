-- Operations (API.md §8).

CREATE OR REPLACE FUNCTION es._idempotency_retention_seconds() RETURNS int
    LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'es_idempotency_retention';
COMMENT ON FUNCTION es._idempotency_retention_seconds() IS
    'pg_eventstore.idempotency_retention in seconds (internal)';

-- Purges expired idempotency keys and fully-acked outbox messages; safe to run from cron at any frequency.
-- Returns what it removed, one row per kind.
CREATE OR REPLACE FUNCTION es.maintain()
RETURNS TABLE (kind text, removed bigint)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    n bigint;
BEGIN
    DELETE FROM es._idempotency_keys
     WHERE created_at < now() - make_interval(secs => es._idempotency_retention_seconds());
    GET DIAGNOSTICS n = ROW_COUNT;
    kind := 'idempotency_keys'; removed := n; RETURN NEXT;
    kind := 'outbox_messages'; removed := es._maintain_outbox(); RETURN NEXT;
END $$;
COMMENT ON FUNCTION es.maintain() IS
    'Purges expired idempotency keys and outbox messages every group acked over a day ago';
