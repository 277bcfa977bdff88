-- SQLite dialect. Keep in step with migrations/postgres.
-- The GitOps paths each asset's files were last written at (a JSON array of
-- text), from the change set of its creation or of the last action that
-- rendered it anew: what its template upgrade removes once the templates no
-- longer write one, and what its decommission removes besides the paths the
-- current templates name. NULL for an asset recorded before: only the current
-- templates' paths are known of it.
ALTER TABLE assets ADD COLUMN deployed_paths TEXT;
