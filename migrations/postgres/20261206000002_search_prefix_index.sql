-- PostgreSQL dialect. Keep in step with migrations/sqlite.
-- The SQLite twin gives its FTS5 asset index prefix lists; PostgreSQL's GIN index
-- on the tsvector answers prefix queries as it is, so nothing changes here.
SELECT 1;
