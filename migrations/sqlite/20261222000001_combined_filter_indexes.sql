-- Filters given together are read from one index in id order: with an index
-- per column only, a page walked one filter's whole list newest first and
-- fetched each row to test the other (a rare pair walked all of it).
CREATE INDEX audit_actor_action ON audit_events (actor, action, seq);
CREATE INDEX audit_kind_action ON audit_events (target_kind, action, seq);
CREATE INDEX requests_team_type_id ON requests (team, type_name, id);
CREATE INDEX requests_team_environment_id ON requests (team, environment, id);
CREATE INDEX assets_team_type_id ON assets (team, type_name, id);
CREATE INDEX assets_team_environment_id ON assets (team, environment, id);
-- The name checks of every pre-check keystroke read a name's requests in
-- flight only, not the asset's whole history of day-2 requests.
CREATE INDEX requests_name_state ON requests (type_name, resource_name, state, id);
DROP INDEX requests_resource_name;
