-- A job taken over closes its abandoned steps by job; without this index each
-- takeover read every step ever run (every step of a year, with its log).
CREATE INDEX job_steps_job ON job_steps (job_id, state);
