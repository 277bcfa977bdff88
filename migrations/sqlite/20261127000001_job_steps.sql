-- What each execution step of a request did: one row per step per attempt, so
-- a request's history shows the driver, the outcome and when; a step recorded
-- done for a revision is not run again when its job resumes after a crash.
CREATE TABLE job_steps (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id      BIGINT NOT NULL REFERENCES jobs (id),
    request_id  BIGINT NOT NULL REFERENCES requests (id),
    revision    BIGINT NOT NULL,
    step_index  BIGINT NOT NULL,
    driver      TEXT NOT NULL,
    attempt     BIGINT NOT NULL,
    state       TEXT NOT NULL,
    summary     TEXT NOT NULL,
    log         TEXT NOT NULL,
    commit_id   TEXT,
    started_at  BIGINT NOT NULL,
    finished_at BIGINT
);
CREATE INDEX job_steps_request ON job_steps (request_id, revision, step_index);
