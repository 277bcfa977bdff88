-- Who a caller is on the channel itself where that is not a Slipway account
-- (the Matrix user id of a chat message); part of the event's hashed content
-- when present, so events written before it hash as they did.
ALTER TABLE audit_events ADD COLUMN channel_user TEXT;
