-- The steps whose logs are still kept: the housekeeping empties the old ones
-- by this index, reading only those not emptied yet.
CREATE INDEX job_steps_with_log ON job_steps (id) WHERE log <> '';
