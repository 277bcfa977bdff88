-- The token that made a token (none when it was made from a signed-in session):
-- revoking a token revokes every token made with it, so a leaked admin token
-- cannot outlive its revocation through tokens it minted.
ALTER TABLE api_tokens ADD COLUMN parent_id BIGINT REFERENCES api_tokens (id);
CREATE INDEX api_tokens_parent ON api_tokens (parent_id) WHERE parent_id IS NOT NULL;
