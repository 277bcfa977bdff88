-- An approval binds the parameters too: they become the CMDB record, so a change to
-- them after approval must stop execution just as a changed change set does.
ALTER TABLE requests ADD COLUMN approved_params_hash TEXT;
