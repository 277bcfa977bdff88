-- A replayed answer keeps the Location header of the first one (a created
-- request's address), not only its status and body.
ALTER TABLE idempotency_keys ADD COLUMN location TEXT;
