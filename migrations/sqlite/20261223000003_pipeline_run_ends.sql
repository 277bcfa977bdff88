-- When a step saw its pipeline run end (a verdict, or its deadline passed): a
-- retry starts a new run only for one that ended, and follows again one whose
-- following was cut short (a cancel while it ran), rather than starting a
-- second beside it. Runs recorded before are taken as ended, as retries
-- treated them then.
ALTER TABLE pipeline_runs ADD COLUMN ended_at BIGINT;
UPDATE pipeline_runs SET ended_at = started_at;
