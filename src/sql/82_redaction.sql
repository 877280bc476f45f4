-- Redaction (API.md §8): the only way to erase personal data from stored events.

-- The audit trail of redactions: one row per es.redact_stream call, kept in pg_dump. The
-- reason lives only here; the redacted events carry the row's id in their metadata.
CREATE TABLE es.redactions (
    id             bigserial PRIMARY KEY,
    store          regclass NOT NULL REFERENCES es._stores ON DELETE CASCADE,
    stream_id      text NOT NULL,
    reason         text NOT NULL,
    events         bigint NOT NULL,
    first_position bigint NOT NULL,
    last_position  bigint NOT NULL,
    redacted_by    name NOT NULL,
    redacted_as    name NOT NULL,
    redacted_at    timestamptz NOT NULL DEFAULT pg_catalog.now(),
    snapshots_deleted bigint NOT NULL DEFAULT 0
);
CREATE INDEX ON es.redactions (store, stream_id);
COMMENT ON TABLE es.redactions IS
    'Audit trail of es.redact_stream: store, stream, reason, how many events and snapshots, who (session user and role in effect) and when';
SELECT pg_catalog.pg_extension_config_dump('es.redactions', '');
SELECT pg_catalog.pg_extension_config_dump('es.redactions_id_seq', '');

-- Replaces data (with {"redacted": true}) and metadata (with {"redacted": true,
-- "redaction_id": n, "redacted_at": t}) of every event of a stream; positions, versions, event
-- ids, types and recorded_at stay. Deletes the stream's snapshots (es._snapshots: state
-- folded from the erased data). Records the call in es.redactions. Returns the number of
-- events redacted. Implemented in C++ (src/pg/redact.cpp): the append-only guard lets only it
-- rewrite rows. Needs SELECT and UPDATE on the store (es_admin has both on es.events);
-- the rewrite runs as the caller, and a store with its own UPDATE triggers, UPDATE rules or
-- row-level security is refused (that code would run while the guard is open).
-- Read models built by projections are the application's to scrub.
-- Errors: ES010 bad stream id, ES017 unknown store, ES060 the stream has no events in the
-- store, ES061 missing, blank or over-long reason, ES062 the store has its own UPDATE
-- triggers, UPDATE rules or row-level security, 42501 no SELECT or UPDATE on the store.
CREATE FUNCTION es.redact_stream(
    stream_id text,
    reason text,
    store regclass DEFAULT 'es.events')
RETURNS bigint
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'es_redact_stream';
COMMENT ON FUNCTION es.redact_stream(text, text, regclass) IS
    'Erases data and metadata of every event of a stream (positions, versions, ids and types stay) and records who and why in es.redactions';
