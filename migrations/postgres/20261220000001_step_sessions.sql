-- The prefix of the application names a command step's sessions carry on its
-- PostgreSQL server, one per step of a revision, recorded by its first attempt
-- (each attempt adds its own step record to it). A replica killed mid-step
-- leaves its statement running on that server; the attempt that resumes the
-- job on another replica ends the sessions of every earlier attempt before it
-- runs the step again, so that two runs of one step do not overlap there. A
-- manual retry keeps the prefix, and so also ends what the failed run left.
CREATE TABLE step_sessions (
    request_id  BIGINT NOT NULL REFERENCES requests (id),
    revision    BIGINT NOT NULL,
    step_index  BIGINT NOT NULL,
    name_prefix TEXT NOT NULL,
    PRIMARY KEY (request_id, revision, step_index)
);
