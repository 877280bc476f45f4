-- Projections (API.md §6), walked through a small CQRS example on a store of its own:
-- an order read model kept inline, a per-customer summary kept async, a matview.
\set VERBOSITY terse
SET client_min_messages = warning;
SELECT es.create_event_table('public.shop_events');

-- The read models and their handlers.
CREATE TABLE orders (order_id text PRIMARY KEY, customer text, total numeric, status text);
CREATE FUNCTION orders_apply(e es.event) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    CASE e.event_type
    WHEN 'OrderPlaced' THEN
        INSERT INTO orders VALUES (e.stream_id, e.data->>'customer', (e.data->>'total')::numeric, 'placed');
    WHEN 'OrderShipped' THEN
        UPDATE orders SET status = 'shipped' WHERE order_id = e.stream_id;
    WHEN 'OrderRejected' THEN
        RAISE EXCEPTION 'order % rejected by the read model', e.stream_id;
    ELSE
        NULL;
    END CASE;
END $$;

CREATE TABLE customer_summary (customer text PRIMARY KEY, orders int, spent numeric);
CREATE FUNCTION summary_apply(e es.event) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF (e.data->>'total')::numeric < 0 THEN
        RAISE EXCEPTION 'negative total in %', e.stream_id USING ERRCODE = '22023';
    END IF;
    INSERT INTO customer_summary VALUES (e.data->>'customer', 1, (e.data->>'total')::numeric)
    ON CONFLICT (customer) DO UPDATE
        SET orders = customer_summary.orders + 1, spent = customer_summary.spent + excluded.spent;
END $$;
CREATE FUNCTION summary_clear() RETURNS void LANGUAGE sql AS 'DELETE FROM customer_summary';

-- Registration: an inline projection creates the store's trigger.
SELECT es.projection_create('orders', 'orders_apply(es.event)', 'shop_events',
                            stream_prefix => 'order-', mode => 'inline');
SELECT tgname FROM pg_trigger WHERE tgrelid = 'shop_events'::regclass AND tgname LIKE 'es_proj%';
SELECT es.projection_create('customer_summary', 'summary_apply(es.event)', 'shop_events',
                            event_types => '{OrderPlaced}', reset_handler => 'summary_clear()');

-- Commands append events; the inline read model follows in the same transaction.
SELECT last_position FROM es.append('order-1', 0,
    '[{"type": "OrderPlaced", "data": {"customer": "ann", "total": 30}}]', store => 'shop_events');
SELECT last_position FROM es.append('order-2', 0,
    '[{"type": "OrderPlaced", "data": {"customer": "bob", "total": 12}},
      {"type": "OrderShipped", "data": {}}]', store => 'shop_events');
SELECT last_position FROM es.append('order-3', 0,
    '[{"type": "OrderPlaced", "data": {"customer": "ann", "total": 8}}]', store => 'shop_events');
-- Not an order stream: the inline projection's prefix skips it.
SELECT last_position FROM es.append('cart-9', 0,
    '[{"type": "OrderPlaced", "data": {"customer": "cid", "total": 1}}]', store => 'shop_events');
SELECT * FROM orders ORDER BY order_id;

-- An inline handler error aborts the append: no event, no read-model change.
SELECT * FROM es.append('order-4', 0, '[{"type": "OrderRejected", "data": {}}]', store => 'shop_events');
SELECT es.stream_version('order-4', 'shop_events') AS order_4_version;
-- ... and within an explicit transaction the whole append rolls back.
BEGIN;
SELECT last_position FROM es.append('order-5', 0,
    '[{"type": "OrderPlaced", "data": {"customer": "dan", "total": 5}}]', store => 'shop_events');
SELECT count(*) AS orders_in_tx FROM orders;
ROLLBACK;
SELECT count(*) AS orders_after_rollback FROM orders;

-- The async summary lags until refreshed.
SELECT name, mode, position, head, lag_events, lag_seconds > 0 AS lagging, last_error
  FROM es.projections WHERE store = 'shop_events'::regclass ORDER BY name;
SELECT * FROM customer_summary;
-- max_events bounds one call.
SELECT es.projection_refresh('customer_summary', max_events => 2) AS processed;
SELECT * FROM customer_summary ORDER BY customer;
SELECT name, position, lag_events FROM es.projections WHERE name = 'customer_summary';
SELECT es.projection_refresh('customer_summary') AS processed;
SELECT * FROM customer_summary ORDER BY customer;
SELECT name, position, head, lag_events, lag_seconds, last_error
  FROM es.projections WHERE name = 'customer_summary';
SELECT es.projection_refresh('customer_summary') AS nothing_new;

-- The error path: a bad event stops the projection at that event, with a WARNING; the events
-- before it in the same call stay applied and the call returns normally.
SELECT last_position FROM es.append('order-6', 0,
    '[{"type": "OrderPlaced", "data": {"customer": "bob", "total": 100}}]', store => 'shop_events');
SELECT last_position FROM es.append('order-7', 0,
    '[{"type": "OrderPlaced", "data": {"customer": "eve", "total": -1}}]', store => 'shop_events');
SELECT last_position FROM es.append('order-8', 0,
    '[{"type": "OrderPlaced", "data": {"customer": "eve", "total": 9}}]', store => 'shop_events');
SET client_min_messages = warning;
SELECT es.projection_refresh('customer_summary') AS processed;
SELECT * FROM customer_summary ORDER BY customer;
SELECT position, head, lag_events, last_error, failed_position
  FROM es.projections WHERE name = 'customer_summary';
-- Still stuck on the same event, however often it is retried.
SELECT es.projection_refresh() AS processed_by_refresh_all;
SELECT position, failed_position FROM es.projections WHERE name = 'customer_summary';
-- max_events => 0 applies nothing and keeps the record.
SELECT es.projection_refresh('customer_summary', max_events => 0) AS processed;
SELECT position, last_error FROM es.projections WHERE name = 'customer_summary';

-- Fix the handler (negative totals are refunds now): the next refresh carries on from the
-- checkpoint, applies the failed event and clears the error.
CREATE OR REPLACE FUNCTION summary_apply(e es.event) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO customer_summary VALUES (e.data->>'customer', 1, abs((e.data->>'total')::numeric))
    ON CONFLICT (customer) DO UPDATE
        SET orders = customer_summary.orders + 1, spent = customer_summary.spent + excluded.spent;
END $$;
SELECT es.projection_refresh('customer_summary') AS processed;
SELECT position, head, last_error, failed_position FROM es.projections WHERE name = 'customer_summary';
SELECT * FROM customer_summary ORDER BY customer;
-- A rebuild starts from scratch: the reset handler empties the read model and every event is
-- applied once more, in this transaction; the result is the same read model.
SELECT es.projection_rebuild('customer_summary') AS rebuilt;
SELECT * FROM customer_summary ORDER BY customer;
SELECT position, head, lag_events, last_error FROM es.projections WHERE name = 'customer_summary';

-- Reset alone puts the checkpoint back to 0 (and clears the read model).
SELECT es.projection_reset('customer_summary');
SELECT count(*) AS summary_rows, (SELECT position FROM es.projections
                                   WHERE name = 'customer_summary') AS position
  FROM customer_summary;
SELECT es.projection_refresh('customer_summary') AS processed;

-- Rebuilding the inline projection replays it with appends paused.
TRUNCATE orders;
SELECT es.projection_rebuild('orders') AS rebuilt;
SELECT * FROM orders ORDER BY order_id;

-- Handlers run with the caller's rights, never the extension owner's: an appender that may
-- not write the read model cannot append through the inline projection.
CREATE ROLE regress_proj_appender;
GRANT es_writer TO regress_proj_appender;
GRANT INSERT, SELECT ON shop_events TO regress_proj_appender;
SET ROLE regress_proj_appender;
SELECT * FROM es.append('order-9', 0, '[{"type": "OrderPlaced", "data": {"customer": "fay", "total": 1}}]',
                        store => 'shop_events');
RESET ROLE;
GRANT INSERT ON orders TO regress_proj_appender;
SET ROLE regress_proj_appender;
SELECT last_position FROM es.append('order-9', 0,
    '[{"type": "OrderPlaced", "data": {"customer": "fay", "total": 1}}]', store => 'shop_events');
RESET ROLE;
SELECT * FROM orders WHERE order_id = 'order-9';
-- A plain INSERT into the store runs the inline projection too.
INSERT INTO shop_events (stream_id, stream_version, event_type, data)
    VALUES ('order-10', 1, 'OrderPlaced', '{"customer": "gus", "total": 2}');
SELECT * FROM orders WHERE order_id = 'order-10';

-- A materialized view projection refreshes only when the store advanced.
CREATE MATERIALIZED VIEW order_counts AS
    SELECT event_type, count(*) AS n FROM shop_events GROUP BY event_type;
CREATE UNIQUE INDEX ON order_counts (event_type);
SELECT es.projection_create_matview('order_counts', 'order_counts', 'shop_events');
SELECT es.projection_refresh('order_counts') AS covered;
SELECT * FROM order_counts ORDER BY event_type;
SELECT refreshed_at AS first_refresh FROM es.projections WHERE name = 'order_counts' \gset
SELECT es.projection_refresh('order_counts') AS covered_again;
SELECT refreshed_at = :'first_refresh' AS not_refreshed_again
  FROM es.projections WHERE name = 'order_counts';
SELECT last_position FROM es.append('order-11', 0,
    '[{"type": "OrderPlaced", "data": {"customer": "hal", "total": 3}}]', store => 'shop_events');
SELECT es.projection_refresh('order_counts') AS covered;
SELECT * FROM order_counts ORDER BY event_type;
SELECT name, mode, position = head AS current, lag_events FROM es.projections
 WHERE store = 'shop_events'::regclass ORDER BY name;

-- Errors, with their SQLSTATEs.
CREATE FUNCTION pg_temp.outcome(statement text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE statement;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
SELECT pg_temp.outcome(s) FROM (VALUES
    ($$SELECT es.projection_create('orders', 'orders_apply(es.event)', 'shop_events')$$),
    ($$SELECT es.projection_create('x', 'orders_apply(es.event)', 'shop_events', mode => 'sometimes')$$),
    ($$SELECT es.projection_create('', 'orders_apply(es.event)', 'shop_events')$$),
    ($$SELECT es.projection_create('x', 'summary_clear()', 'shop_events')$$),
    ($$SELECT es.projection_create('x', 'orders_apply(es.event)', 'shop_events', reset_handler => 'orders_apply(es.event)')$$),
    ($$SELECT es.projection_create('x', 'orders_apply(es.event)', 'orders')$$),
    ($$SELECT es.projection_create('x', 'orders_apply(es.event)', 'shop_events', event_types => '{}')$$),
    ($$SELECT es.projection_create_matview('x', 'orders', 'shop_events')$$),
    ($$SELECT es.projection_refresh('nope')$$),
    ($$SELECT es.projection_drop('nope')$$),
    ($$SELECT es.projection_refresh('orders')$$),
    ($$SELECT es.projection_reset('orders')$$),
    ($$SELECT es.projection_refresh(max_events => -1)$$)) AS t(s);

-- Nested calls keep their own caller: a SECURITY DEFINER handler that appends to another store
-- makes that store's inline handlers run as the definer, not as the original appender.
SELECT es.create_event_table('public.audit_events');
CREATE TABLE audit_log (stream_id text, written_by name);
CREATE FUNCTION audit_apply(e es.event) RETURNS void LANGUAGE sql AS
    $$ INSERT INTO audit_log VALUES (e.stream_id, current_user) $$;
SELECT es.projection_create('audit', 'audit_apply(es.event)', 'audit_events', mode => 'inline');
CREATE ROLE regress_proj_auditor;
GRANT es_writer TO regress_proj_auditor;
GRANT INSERT, SELECT ON audit_events TO regress_proj_auditor;
GRANT INSERT ON audit_log TO regress_proj_auditor;
CREATE FUNCTION forward_to_audit(e es.event) RETURNS void LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = public, pg_catalog AS $$
BEGIN
    PERFORM es.append('audit-' || e.stream_id, NULL,
                      jsonb_build_array(jsonb_build_object('type', 'Seen')), store => 'audit_events');
END $$;
ALTER FUNCTION forward_to_audit(es.event) OWNER TO regress_proj_auditor;
SELECT es.projection_create('forward', 'forward_to_audit(es.event)', 'shop_events',
                            stream_prefix => 'audited-', mode => 'inline');
SET ROLE regress_proj_appender;
SELECT last_position FROM es.append('audited-1', 0, '[{"type": "Noted"}]', store => 'shop_events');
RESET ROLE;
SELECT * FROM audit_log;
SELECT es.projection_drop('forward');
SELECT es.drop_event_table('audit_events');
DROP TABLE audit_log;
DROP FUNCTION audit_apply(es.event), forward_to_audit(es.event);
DROP ROLE regress_proj_auditor;

-- Dropping the last inline projection removes the trigger; dropping the store drops the rest.
SELECT es.projection_drop('orders');
SELECT count(*) AS inline_triggers FROM pg_trigger
 WHERE tgrelid = 'shop_events'::regclass AND tgname = 'es_projection_inline';
DROP MATERIALIZED VIEW order_counts;
SELECT es.drop_event_table('shop_events');
SELECT count(*) AS projections_left FROM es.projections
 WHERE name IN ('orders', 'customer_summary', 'order_counts');
DROP TABLE orders, customer_summary;
DROP FUNCTION orders_apply(es.event), summary_apply(es.event), summary_clear();
DROP ROLE regress_proj_appender;
