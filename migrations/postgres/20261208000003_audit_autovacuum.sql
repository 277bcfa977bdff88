-- PostgreSQL dialect. Keep in step with migrations/sqlite.
-- Sealing an audit event updates it once, leaving a dead row version behind,
-- and the sealer finds the unsealed events through a partial index that keeps
-- pointing at those dead versions until a vacuum. By default autovacuum waits
-- for a fifth of the table to be dead: 200,000 rows at a million events, when
-- the sealer's look for unsealed events had grown from 0.02 ms to 1-4 ms (at
-- 360,000 events). Vacuum this table after every 10,000 dead rows instead, at
-- any size.
ALTER TABLE audit_events SET (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 10000,
    autovacuum_analyze_scale_factor = 0.05
);
