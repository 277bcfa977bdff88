-- Making a token counts the person's live ones under the write lock: read from
-- the live ones alone, not every token a CI script ever made for them.
CREATE INDEX api_tokens_live ON api_tokens (user_id, expires_at) WHERE revoked_at IS NULL;
