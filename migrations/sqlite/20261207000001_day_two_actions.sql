-- Day-2 actions: a request may act on an existing asset (resize, upgrade, back
-- up, restore, decommission) instead of creating one. Creation requests keep
-- both columns NULL.
ALTER TABLE requests ADD COLUMN asset_id BIGINT REFERENCES assets (id);
ALTER TABLE requests ADD COLUMN action TEXT;
-- What the asset had deployed when the action was asked for (its parameters and
-- the files the action touches, as JSON): the base of the action's review diff,
-- kept so the diff reads the same after the action has run.
ALTER TABLE requests ADD COLUMN deployed TEXT;
-- An asset's requests, for its page and for "one action at a time".
CREATE INDEX requests_asset ON requests (asset_id, id);
