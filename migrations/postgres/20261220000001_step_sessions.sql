-- The application name a command step's sessions carry on its PostgreSQL
-- server, one per step of a revision and the same for every attempt: a replica
-- killed mid-step leaves its statement running on that server, and the attempt
-- that resumes the job on another replica ends the sessions of this name before
-- it runs the step again, so that two runs of one step never overlap there.
CREATE TABLE step_sessions (
    request_id       BIGINT NOT NULL REFERENCES requests (id),
    revision         BIGINT NOT NULL,
    step_index       BIGINT NOT NULL,
    application_name TEXT NOT NULL,
    PRIMARY KEY (request_id, revision, step_index)
);
