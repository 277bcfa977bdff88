-- SQLite dialect. Keep in step with migrations/postgres.
-- Which request is deploying which GitOps path right now, by the same key as
-- deployed_files. A request claims its files as its execution starts, in the
-- transaction that checks them against deployed_files: of two requests for one
-- file whose executions overlap, the second finds the first's claim instead of
-- both passing their checks before either records its asset. A claim binds
-- while its request is on its way (approved, executing, verifying, failed or
-- in manual handling); one whose request completed or was cancelled is taken
-- over by the next.
CREATE TABLE path_claims (
    path_key   TEXT PRIMARY KEY,
    request_id BIGINT NOT NULL,
    path       TEXT NOT NULL
);
