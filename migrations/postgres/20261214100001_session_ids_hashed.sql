-- The sessions table is keyed by the SHA-256 of the session id (hex), no longer
-- by the id itself: whoever reads the database or a backup finds no id a
-- browser could present. Rows keyed the old way could never be found again;
-- they end here, and everyone signs in once more after the upgrade.
DELETE FROM sessions;
