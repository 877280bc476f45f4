-- es.redact_stream (API.md §8): erases data and metadata, keeps positions, versions, ids and
-- types, records who and why; plain UPDATE stays refused; admins only. Streams start with
-- "redact-" and queries filter on it: other suites share the database.
SET client_min_messages = warning;
CREATE ROLE regress_redact_admin IN ROLE es_admin;
CREATE ROLE regress_redact_writer IN ROLE es_writer, es_reader;
RESET client_min_messages;

SELECT first_version, last_version, duplicate FROM es.append('redact-customer-1', 0,
  '[{"type": "Registered", "data": {"name": "Ada Lovelace", "email": "ada@example.com"},
     "metadata": {"ip": "192.0.2.1"}},
    {"type": "AddressChanged", "data": {"street": "12 St James Square"}},
    {"type": "Unsubscribed", "data": {}}]', 'redact-customer-1-signup');
SELECT first_version, last_version FROM es.append_event('redact-customer-2', 0, 'Registered',
  '{"name": "Charles Babbage"}', '{"ip": "192.0.2.2"}');

SELECT first_version FROM es.append_event('redact-customer-3', 0, 'Registered',
  '{"name": "Grace Hopper"}');

CREATE TEMP TABLE before_redaction AS
  SELECT global_position, stream_id, stream_version, event_id, event_type, recorded_at
    FROM es.events WHERE stream_id LIKE 'redact-%';

-- Redaction as the superuser: three events.
SELECT es.redact_stream('redact-customer-1', 'erasure request #17 (GDPR art. 17)');

-- Data and metadata replaced; metadata points at the audit row.
SELECT e.stream_version, e.event_type, e.data,
       e.metadata->'redacted' AS redacted,
       (e.metadata->>'redaction_id')::bigint = r.id AS names_audit_row,
       (e.metadata->>'redacted_at')::timestamptz = r.redacted_at AS same_time
  FROM es.read_stream('redact-customer-1') e, es.redactions r
 WHERE r.stream_id = e.stream_id
 ORDER BY e.stream_version;

-- Positions, versions, ids, types and recorded_at are unchanged, for every event.
SELECT count(*) AS changed FROM (
  SELECT global_position, stream_id, stream_version, event_id, event_type, recorded_at
    FROM es.events WHERE stream_id LIKE 'redact-%'
  EXCEPT
  SELECT * FROM before_redaction) d;
SELECT count(*) AS events FROM es.events WHERE stream_id LIKE 'redact-%';

-- The other stream is untouched.
SELECT data, metadata FROM es.read_stream('redact-customer-2');

-- The audit row: who (session user and the role in effect), why, what.
SELECT store, stream_id, reason, events, first_position < last_position AS span,
       redacted_by = session_user AS by_session_user, redacted_as = current_user AS as_role
  FROM es.redactions WHERE stream_id LIKE 'redact-%';

-- Plain UPDATE and DELETE are still refused afterwards, also in the redacting transaction.
\set VERBOSITY sqlstate
UPDATE es.events SET data = '{}' WHERE stream_id = 'redact-customer-1';
DELETE FROM es.events WHERE stream_id = 'redact-customer-1';
BEGIN;
SELECT es.redact_stream('redact-customer-2', 'same transaction');
UPDATE es.events SET data = '{"name": "restored"}' WHERE stream_id = 'redact-customer-2';
ROLLBACK;
SELECT data FROM es.read_stream('redact-customer-2');
\set VERBOSITY default

-- The stream lives on: appends continue at the next version; the original idempotency key
-- still replays the original result.
SELECT first_version, last_version, duplicate FROM es.append('redact-customer-1', 3,
  '[{"type": "Reactivated", "data": {"email": "ada@example.org"}}]');
SELECT first_version, last_version, duplicate FROM es.append('redact-customer-1', 0,
  '[{"type": "Registered", "data": {"name": "Ada Lovelace", "email": "ada@example.com"},
     "metadata": {"ip": "192.0.2.1"}},
    {"type": "AddressChanged", "data": {"street": "12 St James Square"}},
    {"type": "Unsubscribed", "data": {}}]', 'redact-customer-1-signup');
SELECT count(*) AS in_global_order FROM es.read_all(0, 1000000) WHERE stream_id LIKE 'redact-%';

-- Redacting again covers the new event too and adds a second audit row.
SELECT es.redact_stream('redact-customer-1', 'second request');
SELECT stream_version, data FROM es.read_stream('redact-customer-1') ORDER BY stream_version;
SELECT stream_id, reason, events FROM es.redactions WHERE stream_id LIKE 'redact-%' ORDER BY id;

-- Atomic: a redaction rolled back by a failing caller leaves nothing behind.
DO $$
BEGIN
    PERFORM es.redact_stream('redact-customer-2', 'rolled back');
    RAISE EXCEPTION 'caller fails';
EXCEPTION WHEN raise_exception THEN
    NULL;
END $$;
SELECT data FROM es.read_stream('redact-customer-2');
SELECT count(*) AS audit_rows FROM es.redactions WHERE stream_id LIKE 'redact-%';

-- Snapshots hold state folded from the erased data: redaction deletes them.
SELECT es.snapshot_save('redact-customer-3', 1, '{"name": "Grace Hopper"}');
SELECT es.redact_stream('redact-customer-3', 'snapshot too');
SELECT count(*) AS snapshots_left FROM es.snapshot_load('redact-customer-3');
SELECT events, snapshots_deleted FROM es.redactions WHERE stream_id = 'redact-customer-3';

-- Bad arguments.
SELECT es.redact_stream('no-such-stream', 'typo');
\set VERBOSITY sqlstate
SELECT es.redact_stream(NULL, 'why');
SELECT es.redact_stream('', 'why');
SELECT es.redact_stream('redact-customer-2', NULL);
SELECT es.redact_stream('redact-customer-2', '  ');
SELECT es.redact_stream('redact-customer-2', repeat('x', 4097));
SELECT es.redact_stream('redact-customer-2', 'why', NULL);
SELECT es.redact_stream('redact-customer-2', 'why', 'pg_class');
SELECT es.redact_stream('redact-customer-2', 'why', 'es.no_such_table');
\set VERBOSITY default

-- Roles: a writer cannot redact (no EXECUTE), nor read the audit trail.
SET ROLE regress_redact_writer;
SELECT es.redact_stream('redact-customer-2', 'writer tries');
\set VERBOSITY sqlstate
SELECT count(*) FROM es.redactions;
UPDATE es.events SET data = '{}' WHERE stream_id = 'redact-customer-2';
\set VERBOSITY default
RESET ROLE;

-- An admin can: the audit row names the admin role.
SET ROLE regress_redact_admin;
SELECT es.redact_stream('redact-customer-2', 'admin request');
SELECT stream_id, redacted_as FROM es.redactions WHERE stream_id = 'redact-customer-2';
-- ...but a plain UPDATE is refused even with the UPDATE grant.
\set VERBOSITY sqlstate
UPDATE es.events SET data = '{}' WHERE stream_id = 'redact-customer-2';
\set VERBOSITY default
RESET ROLE;

-- An admin without UPDATE on another store cannot redact it.
SELECT es.create_event_table('public.redact_private_events');
SELECT first_version FROM es.append_event('redact-patient-1', 0, 'Admitted', '{"name": "x"}',
  store => 'public.redact_private_events');
SET ROLE regress_redact_admin;
SELECT es.redact_stream('redact-patient-1', 'admin tries', 'public.redact_private_events');
RESET ROLE;
SELECT data FROM es.read_stream('redact-patient-1', store => 'public.redact_private_events');
GRANT SELECT, UPDATE ON public.redact_private_events TO regress_redact_admin;
-- Code the store's owner attached would run while the guard is open: a store with its own
-- UPDATE trigger, UPDATE rule or row-level security is refused (ES062).
CREATE FUNCTION public.redact_tamper() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE es.events SET data = '{"tampered": true}' WHERE stream_id = 'redact-customer-2';
    RETURN NEW;
END $$;
CREATE TRIGGER redact_tamper BEFORE UPDATE ON public.redact_private_events
    FOR EACH ROW EXECUTE FUNCTION public.redact_tamper();
SET ROLE regress_redact_admin;
SELECT es.redact_stream('redact-patient-1', 'granted', 'public.redact_private_events');
RESET ROLE;
SELECT data FROM es.read_stream('redact-customer-2');
DROP TRIGGER redact_tamper ON public.redact_private_events;
-- (An UPDATE rule already makes the store unusable: PostgreSQL refuses the ON CONFLICT of its
-- prepared insert, 0A000, before redaction gets to look.)
CREATE RULE redact_tamper AS ON UPDATE TO public.redact_private_events
    DO ALSO UPDATE es.events SET data = '{"tampered": true}' WHERE stream_id = 'redact-customer-2';
\set VERBOSITY sqlstate
SELECT es.redact_stream('redact-patient-1', 'granted', 'public.redact_private_events');
DROP RULE redact_tamper ON public.redact_private_events;
ALTER TABLE public.redact_private_events ENABLE ROW LEVEL SECURITY;
SELECT es.redact_stream('redact-patient-1', 'granted', 'public.redact_private_events');
ALTER TABLE public.redact_private_events DISABLE ROW LEVEL SECURITY;
\set VERBOSITY default
-- Without them it works.
SET ROLE regress_redact_admin;
SELECT es.redact_stream('redact-patient-1', 'granted', 'public.redact_private_events');
RESET ROLE;
SELECT data FROM es.read_stream('redact-patient-1', store => 'public.redact_private_events');

-- Dropping the store drops its audit rows.
SELECT count(*) AS audit_rows FROM es.redactions WHERE store = 'public.redact_private_events'::regclass;
SELECT es.drop_event_table('public.redact_private_events');
SELECT stream_id, events FROM es.redactions WHERE stream_id LIKE 'redact-%' ORDER BY id;

DROP FUNCTION public.redact_tamper();
DROP ROLE regress_redact_admin;
DROP ROLE regress_redact_writer;
