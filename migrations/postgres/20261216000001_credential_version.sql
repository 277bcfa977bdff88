-- PostgreSQL dialect. Keep in step with migrations/sqlite.
-- How many times an account's password was set: a sign-in keeps the version it
-- checked the password against in its session, and a session whose version is
-- no longer the account's does not sign anyone in (a sign-in that read the old
-- password while `slipway user set-password` ran cannot outlive the change).
ALTER TABLE users ADD COLUMN credential_version BIGINT NOT NULL DEFAULT 0;
