-- Where each event came from: the channel (portal, api, chat, system), the client's
-- address and the trace id of the HTTP request, so every call is attributable.
-- NULL on events written before; the hash covers these fields only when present.
ALTER TABLE audit_events ADD COLUMN channel TEXT;
ALTER TABLE audit_events ADD COLUMN client_addr TEXT;
ALTER TABLE audit_events ADD COLUMN trace_id TEXT;
-- The API token a call was made with, if any.
ALTER TABLE audit_events ADD COLUMN token_id BIGINT;
