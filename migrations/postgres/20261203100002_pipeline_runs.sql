-- The CI/CD run a pipeline step started, recorded as soon as the trigger answers
-- and before its status is polled: a job resumed after a crash follows this run
-- instead of triggering a second one, and measures its deadline from the start.
CREATE TABLE pipeline_runs (
    id          BIGSERIAL PRIMARY KEY,
    request_id  BIGINT NOT NULL REFERENCES requests (id),
    revision    BIGINT NOT NULL,
    step_index  BIGINT NOT NULL,
    status_url  TEXT NOT NULL,
    started_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX pipeline_runs_step ON pipeline_runs (request_id, revision, step_index);
