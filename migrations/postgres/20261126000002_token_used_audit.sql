-- When a token's use was last written to the audit log (`token.used`, at most once
-- an hour per token); `last_used_at` itself is refreshed every minute.
ALTER TABLE api_tokens ADD COLUMN used_audited_at BIGINT;
