-- The append-only trigger lets sealing set an event's place in the chain and
-- nothing else; `channel_user` came after it was written and was not among the
-- columns it holds still, so a row could be sealed with another chat user than
-- it was written with. (PostgreSQL's trigger compares whole rows.)
DROP TRIGGER audit_events_no_update;
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
WHEN NOT (
    OLD.position IS NULL AND OLD.prev_hash IS NULL AND OLD.hash IS NULL
    AND NEW.position IS NOT NULL AND NEW.prev_hash IS NOT NULL AND NEW.hash IS NOT NULL
    AND NEW.seq IS OLD.seq AND NEW.at IS OLD.at AND NEW.actor_id IS OLD.actor_id
    AND NEW.actor IS OLD.actor AND NEW.action IS OLD.action
    AND NEW.target_kind IS OLD.target_kind AND NEW.target_id IS OLD.target_id
    AND NEW.before_value IS OLD.before_value AND NEW.after_value IS OLD.after_value
    AND NEW.detail IS OLD.detail AND NEW.channel IS OLD.channel
    AND NEW.client_addr IS OLD.client_addr AND NEW.trace_id IS OLD.trace_id
    AND NEW.token_id IS OLD.token_id AND NEW.channel_user IS OLD.channel_user
)
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;
