-- An event is inserted without a place in the chain; only the sealer gives it
-- one. A row inserted already "sealed" (a hash computed by whoever wrote it,
-- since the chain's hash takes no key) would otherwise continue the chain.
CREATE TRIGGER audit_events_inserted_unsealed BEFORE INSERT ON audit_events
WHEN NEW.position IS NOT NULL OR NEW.prev_hash IS NOT NULL OR NEW.hash IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'audit events are inserted unsealed; the sealer gives them their place');
END;
