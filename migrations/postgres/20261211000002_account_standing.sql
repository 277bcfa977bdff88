-- When the identity provider last confirmed an account's roles and teams (its
-- last sign-in there; NULL for local accounts and until the next sign-in), and
-- when an administrator disabled the account (NULL while it may act).
ALTER TABLE users ADD COLUMN confirmed_at BIGINT;
ALTER TABLE users ADD COLUMN disabled_at BIGINT;
