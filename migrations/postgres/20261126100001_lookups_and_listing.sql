-- Scale: the current revision's parameters on the request itself, so the
-- pre-check's quota and requirement lookups run on indexes derived from the
-- catalog (created at start, named lookup_*); team and environment as columns so
-- every list filters by them on an index; and indexes for each list's order.

ALTER TABLE requests ADD COLUMN params TEXT;
ALTER TABLE requests ADD COLUMN team TEXT;
ALTER TABLE requests ADD COLUMN environment TEXT;
UPDATE requests SET params = (
    SELECT v.params FROM request_revisions v
    WHERE v.request_id = requests.id AND v.revision = requests.current_revision
);
ALTER TABLE assets ADD COLUMN team TEXT;
ALTER TABLE assets ADD COLUMN environment TEXT;

DROP INDEX requests_state;
CREATE INDEX requests_state_id ON requests (state, id);
CREATE INDEX requests_requester_id ON requests (requester_id, id);
CREATE INDEX requests_type_id ON requests (type_name, id);
CREATE INDEX requests_team_id ON requests (team, id);
CREATE INDEX requests_environment_id ON requests (environment, id);
CREATE INDEX requests_created ON requests (created_at);
CREATE INDEX requests_resource_name ON requests (type_name, resource_name);

CREATE INDEX assets_type_id ON assets (type_name, id);
CREATE INDEX assets_team_id ON assets (team, id);
CREATE INDEX assets_environment_id ON assets (environment, id);
CREATE INDEX assets_request ON assets (request_id);
CREATE INDEX check_results_request ON check_results (request_id);
CREATE INDEX monitoring_asset ON monitoring_items (asset_id);
CREATE INDEX relations_to ON asset_relations (to_asset_id);
CREATE INDEX jobs_request ON jobs (request_id);

-- Quota usage per rule and scope, moved in the same transaction as every change
-- that starts or stops a holder counting; rebuilt from the rows at start.
CREATE TABLE quota_usage (
    type_name TEXT NOT NULL,
    rule      TEXT NOT NULL,
    scope     TEXT NOT NULL,
    holders   BIGINT NOT NULL,
    total     BIGINT NOT NULL,
    PRIMARY KEY (type_name, rule, scope)
);
