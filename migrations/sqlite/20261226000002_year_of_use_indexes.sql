-- Indexes for reads that otherwise grow with a year of use.
--
-- An asset's day-2 requests by action and state (one action at a time, the
-- retiring request, a waiting upgrade, completed backups): with only
-- `requests_asset` each read fetched every request the asset ever had.
CREATE INDEX requests_asset_action ON requests (asset_id, action, state, id);

-- Guidance reads a team's recent creations of a type; its backups and resizes
-- are not read at all when the index holds only creations. Built before the
-- old one is dropped (see 20261226000001).
CREATE INDEX requests_team_type_creations ON requests (team, type_name, created_at)
    WHERE action IS NULL;
DROP INDEX requests_team_type_created;
