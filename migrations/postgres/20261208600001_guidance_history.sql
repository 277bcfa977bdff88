-- PostgreSQL dialect. Keep in step with migrations/sqlite.
-- Guidance from history: the request form reads a team's most recent requests of
-- one type (and the review decisions on them); this index serves that read
-- backwards from the newest, bounded by a LIMIT, whatever the table's size.
CREATE INDEX requests_team_type_created ON requests (team, type_name, created_at);
