-- PostgreSQL dialect. Keep in step with migrations/sqlite.
-- The SQLite twin lengthens its FTS5 prefix lists; PostgreSQL's GIN index on the
-- tsvector answers prefix queries as it is, so nothing changes here.
SELECT 1;
