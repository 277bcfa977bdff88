-- The session sweep deletes by start as well as by expiry (the absolute
-- timeout), and the audit log is filtered by a target's kind alone (every
-- request, every token), newest first: each gets an index that serves it.
CREATE INDEX sessions_created ON sessions (created_at);
CREATE INDEX audit_target_kind ON audit_events (target_kind, seq);
