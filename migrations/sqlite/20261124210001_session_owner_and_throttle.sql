-- Sessions know their user, when they began and were last used, and from which
-- browser, so a person can see and end their sessions and an absolute timeout can
-- be enforced. Sessions from before this change have no start time; they end here.
DELETE FROM sessions;
ALTER TABLE sessions ADD COLUMN user_id BIGINT;
-- A public name for the session: the id itself is the credential and never leaves the server.
ALTER TABLE sessions ADD COLUMN handle TEXT NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN created_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN last_seen_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN user_agent TEXT NOT NULL DEFAULT '';
CREATE INDEX sessions_user ON sessions (user_id);

-- Failed sign-ins per user name and per client address, in the database so the
-- limit holds across replicas.
CREATE TABLE sign_in_failures (
    subject         TEXT PRIMARY KEY,
    failures        BIGINT NOT NULL,
    last_failure_at BIGINT NOT NULL,
    locked_until    BIGINT NOT NULL
);
