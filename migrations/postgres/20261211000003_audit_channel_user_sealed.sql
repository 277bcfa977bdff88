-- Kept in step with SQLite's migration of the same name, which adds
-- `channel_user` to the columns its append-only trigger holds still; PostgreSQL's
-- trigger already compares whole rows, so nothing changes here.
SELECT 1;
