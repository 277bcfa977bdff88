-- SQLite dialect. Keep in step with migrations/postgres.
-- The PostgreSQL twin refuses TRUNCATE on the audit tables; SQLite has no
-- TRUNCATE, and its DELETE without WHERE fires the row triggers that refuse it.
SELECT 1;
