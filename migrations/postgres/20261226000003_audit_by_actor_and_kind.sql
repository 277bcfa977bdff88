-- The audit list filtered by actor and target kind ("what did this bot do to
-- tokens"): with only `audit_actor` it walked every event of the actor, or the
-- whole table backwards, to fill a page that matched nothing. Its own
-- migration (its own transaction), so building it over a year of events holds
-- no lock on `requests`.
CREATE INDEX audit_actor_kind ON audit_events (actor, target_kind, seq);
