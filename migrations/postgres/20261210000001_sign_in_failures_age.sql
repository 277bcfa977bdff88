-- Failure counts that no longer lock anyone are deleted as new failures come in;
-- this index finds them without reading the table.
CREATE INDEX sign_in_failures_last ON sign_in_failures (last_failure_at);
