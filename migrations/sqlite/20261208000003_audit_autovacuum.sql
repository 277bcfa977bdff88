-- SQLite dialect. Keep in step with migrations/postgres.
-- The PostgreSQL twin tunes autovacuum for the audit log; SQLite rewrites a row
-- in place and needs nothing here.
SELECT 1;
