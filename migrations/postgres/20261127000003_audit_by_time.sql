-- The audit log's pages filter by day on the time each event was written.
CREATE INDEX audit_at ON audit_events (at);
