-- Acceptance checks are run for real now (HTTP, TCP, commands, the GitOps
-- remote), so each result records which verification round it belongs to
-- (1 the first time a revision is verified, 2 after a retry, …), what it looked
-- at, how many tries it took within its deadline and how long.
ALTER TABLE check_results ADD COLUMN attempt BIGINT NOT NULL DEFAULT 1;
ALTER TABLE check_results ADD COLUMN target TEXT NOT NULL DEFAULT '';
ALTER TABLE check_results ADD COLUMN tries BIGINT NOT NULL DEFAULT 1;
ALTER TABLE check_results ADD COLUMN duration_ms BIGINT NOT NULL DEFAULT 0;
