-- The roles and teams a key's first call was made with: its answer is replayed
-- only to a caller who still holds them all (NULL for keys kept before).
ALTER TABLE idempotency_keys ADD COLUMN rights TEXT;
