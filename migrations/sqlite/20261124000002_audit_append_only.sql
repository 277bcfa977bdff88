-- The audit log is append-only: the database itself refuses edits and deletions.
-- Someone with direct write access can still drop the trigger; the hash chain is what
-- then shows the tampering.
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;

CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;
