-- Replicas share the job queue: a worker renews its claim while it runs (the
-- heartbeat), another takes the job over once the claim lapses, and a cancel
-- reaches the worker through the row wherever it runs.
ALTER TABLE jobs ADD COLUMN heartbeat_at BIGINT;
ALTER TABLE jobs ADD COLUMN stop_requested_by TEXT;
ALTER TABLE jobs ADD COLUMN takeovers BIGINT NOT NULL DEFAULT 0;
-- A running job becomes claimable again when its lease lapses: run_after follows
-- the lease, so one range over run_after finds every job that is due.
UPDATE jobs SET run_after = lease_until WHERE state = 'running' AND lease_until IS NOT NULL;
CREATE INDEX jobs_due ON jobs (run_after, id) WHERE state IN ('queued', 'running');
