-- Grants of the areas added after 0.1.0 (outbox, subscriptions, projections, state, redaction,
-- statistics), and of functions re-created since. Kept apart from 90_roles.sql so the upgrade
-- scripts reuse it: re-runnable (GRANT/REVOKE only), in UPGRADE_AREAS of the Makefile.

-- Appending (src/sql/20_append.sql). 0.3.0 re-creates es.append and es.append_event (result
-- type es.append_result): the upgrade's new functions start with EXECUTE for PUBLIC, which
-- 90_roles.sql's REVOKE ALL ON ALL FUNCTIONS does not reach, hence the explicit REVOKE.
REVOKE ALL ON FUNCTION
    es.append(text, bigint, jsonb, text, regclass),
    es.append_event(text, bigint, text, jsonb, jsonb, text, regclass)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    es.append(text, bigint, jsonb, text, regclass),
    es.append_event(text, bigint, text, jsonb, jsonb, text, regclass)
    TO es_writer;

-- Subscriptions (src/sql/50_subscriptions.sql). Readers consume: they read the registry and
-- may move checkpoints (only `position`/`acked_at`; a trigger refuses moving back). Reading a
-- subscription's events still needs SELECT on its store (es.read_all checks it).
GRANT SELECT ON es._subscriptions, es.subscriptions TO es_reader;
GRANT UPDATE (position, acked_at) ON es._subscriptions TO es_reader;
GRANT EXECUTE ON FUNCTION
    es._check_subscription_name(text),
    es._subscription(text),
    es._count_events_between(regclass, bigint, bigint),
    es.subscription_next(text, int),
    es.subscription_ack(text, bigint)
    TO es_reader;
GRANT INSERT, DELETE ON es._subscriptions TO es_admin;
GRANT EXECUTE ON FUNCTION
    es.subscription_create(text, regclass, text[], text, bigint),
    es.subscription_drop(text)
    TO es_admin;
-- Store notifications (src/sql/95_relay.sql) are assembled after this file and carry their
-- own REVOKE/GRANT block: es.store_channel, es.listen, es.relay_start, es.relay_status to
-- es_reader; the relay's internals (es._relay_*) to nobody (the relay runs as superuser).

-- Projections and state (API.md §6-§7, src/sql/60_projections.sql, 70_state.sql).
-- es_admin creates, drops, resets, rebuilds and refreshes projections: refreshing moves
-- checkpoints and runs handlers, so it is an operator's (or a worker's) job, not a reader's —
-- give a worker role es_admin, or EXECUTE on es.projection_refresh plus UPDATE on
-- es._projections and the helpers below. Handlers run with the caller's rights, so the
-- refresher (for inline projections: every appender) also needs EXECUTE on the handler and the
-- privileges it writes with, unless the handler is SECURITY DEFINER.
-- es_reader sees es.projections, folds state and loads snapshots (of stores it can read);
-- es_writer saves snapshots (of stores it can append to and read).
GRANT SELECT ON es.projections TO es_reader;
GRANT EXECUTE ON FUNCTION es._projection_progress(text) TO es_reader;
GRANT SELECT, INSERT, UPDATE, DELETE ON es._projections TO es_admin;
GRANT EXECUTE ON FUNCTION
    es.projection_create(text, regprocedure, regclass, text[], text, text, regprocedure),
    es.projection_create_matview(text, regclass, regclass, boolean),
    es.projection_drop(text),
    es.projection_refresh(text, int),
    es.projection_reset(text),
    es.projection_rebuild(text),
    es.projection_sync_triggers(),
    es._check_function(regprocedure, regtype[], regtype, text, text),
    es._projection_get(text, boolean),
    es._projection_sync_trigger(regclass),
    es._projection_backlog(regclass, bigint, bigint, text[], text),
    es._projection_refresh_matview(es._projections, bigint),
    es._projection_refresh_one(text, bigint, boolean),
    es._projection_call_reset(text),
    es._procedure_name(regprocedure),
    es._projection_pause_appends(regclass),
    es._call_handler(regprocedure, es.event[])
    TO es_admin;

GRANT SELECT ON es._snapshots TO es_reader, es_writer;
GRANT INSERT, UPDATE ON es._snapshots TO es_writer;
GRANT EXECUTE ON FUNCTION
    es._check_function(regprocedure, regtype[], regtype, text, text),
    es._check_reducer(regprocedure),
    es._procedure_name(regprocedure),
    es._snapshot_find(text, regclass, regprocedure, bigint),
    es._fold_stream(regprocedure, jsonb, text, bigint, bigint, regclass),
    es.aggregate_state(text, regprocedure, jsonb, bigint, timestamptz, regclass, boolean),
    es.snapshot_load(text, regclass, regprocedure)
    TO es_reader, es_writer;
GRANT EXECUTE ON FUNCTION
    es._check_read_args(text, bigint, int),
    es._check_store(regclass),
    es.stream_version(text, regclass),
    es.snapshot_save(text, bigint, jsonb, regclass, regprocedure)
    TO es_writer;

-- Outbox (API.md §5, src/sql/40_outbox.sql). The functions are SECURITY DEFINER, or C
-- functions that work as the extension owner internally (publish, claim, ack, the route
-- trigger) after checking the caller's rights; the internal tables stay private. Writers publish; readers claim, ack, nack and read the views; admins
-- route, subscribe, re-drive dead letters and purge.
GRANT EXECUTE ON FUNCTION
    es._outbox_check_topic(text),
    es.outbox_channel(text)
    TO es_reader, es_writer;
GRANT EXECUTE ON FUNCTION
    es.outbox_publish(text, jsonb, text, jsonb)
    TO es_writer;
GRANT EXECUTE ON FUNCTION
    es.outbox_claim(text, text, int, interval),
    es.outbox_ack(text, bigint[]),
    es.outbox_nack(text, bigint, text, interval)
    TO es_reader;
GRANT SELECT ON es.outbox_dead_letters, es.outbox_debezium TO es_reader;
GRANT EXECUTE ON FUNCTION
    es.outbox_route(text, regclass, text[], text),
    es.outbox_unroute(text, regclass),
    es.outbox_subscribe(text, text, int),
    es.outbox_retry_dead(text, bigint[]),
    es.outbox_purge(interval)
    TO es_admin;

-- Security helpers (src/sql/05_security.sql): the outbox views filter routed messages by the
-- reader's SELECT privilege on their store.
GRANT EXECUTE ON FUNCTION
    es._session_role(),
    es._may_read_routed(jsonb, name),
    es._require_store_privilege(name, regclass, text, text)
    TO es_reader, es_writer, es_admin;

-- Statistics (src/sql/85_stats.sql): readers see es.stats; store counts need SELECT on the store.
GRANT SELECT ON es.stats TO es_reader;
GRANT EXECUTE ON FUNCTION es._stats_store(regclass), es._stats_outbox() TO es_reader;

-- Redaction (src/sql/82_redaction.sql): admins only. SELECT and UPDATE on a store are the right
-- to redact it (es_admin reads es.events through es_reader); the append-only guard still
-- refuses every plain UPDATE.
GRANT UPDATE ON es.events TO es_admin;
GRANT SELECT ON es.redactions TO es_admin;
GRANT EXECUTE ON FUNCTION es.redact_stream(text, text, regclass) TO es_admin;
