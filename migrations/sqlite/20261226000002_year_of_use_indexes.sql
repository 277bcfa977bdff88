-- Indexes for reads that otherwise grow with a year of use.
--
-- The audit list filtered by actor and target kind ("what did this bot do to
-- tokens"): with only `audit_actor` it walked every event of the actor, or the
-- whole table backwards, to fill a page that matched nothing.
CREATE INDEX audit_actor_kind ON audit_events (actor, target_kind, seq);

-- An asset's day-2 requests by action and state (one action at a time, the
-- retiring request, a waiting upgrade, completed backups): with only
-- `requests_asset` each read fetched every request the asset ever had.
CREATE INDEX requests_asset_action ON requests (asset_id, action, state, id);

-- Guidance reads a team's recent creations of a type; its backups and resizes
-- are not read at all when the index holds only creations.
DROP INDEX requests_team_type_created;
CREATE INDEX requests_team_type_created ON requests (team, type_name, created_at)
    WHERE action IS NULL;
