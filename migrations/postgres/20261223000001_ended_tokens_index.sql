-- The housekeeping forgets tokens that ended a year ago: found by when they
-- expired or were revoked, not by reading every token ever made.
CREATE INDEX api_tokens_expires ON api_tokens (expires_at);
CREATE INDEX api_tokens_revoked ON api_tokens (revoked_at) WHERE revoked_at IS NOT NULL;
