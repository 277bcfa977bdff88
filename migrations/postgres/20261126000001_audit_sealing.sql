-- Audit at volume. Writers only insert an event (in the transaction of the change it
-- records, with no lock and no read of the chain); a sealer then gives each
-- committed event its place in the chain (`position`) and its `prev_hash` and `hash`,
-- in order, under an advisory lock that only sealers take. Until then the three are
-- NULL. Existing events keep their hashes and get their places in seq order.
DROP TRIGGER audit_events_no_update ON audit_events;

ALTER TABLE audit_events ADD COLUMN position BIGINT;
ALTER TABLE audit_events ALTER COLUMN prev_hash DROP NOT NULL;
ALTER TABLE audit_events ALTER COLUMN hash DROP NOT NULL;

UPDATE audit_events AS a SET position = r.n
FROM (SELECT seq, row_number() OVER (ORDER BY seq) AS n FROM audit_events) AS r
WHERE a.seq = r.seq;

-- One event per place; unsealed rows stay out of it.
CREATE UNIQUE INDEX audit_position ON audit_events (position) WHERE position IS NOT NULL;
-- The sealer's work list: O(pending), whatever the size of the log.
CREATE INDEX audit_unsealed ON audit_events (seq) WHERE position IS NULL;
-- The audit list's filters, each in seq order (newest first, keyset paging).
DROP INDEX audit_target;
CREATE INDEX audit_target ON audit_events (target_kind, target_id, seq);
CREATE INDEX audit_actor ON audit_events (actor, seq);
CREATE INDEX audit_action ON audit_events (action, seq);

-- Still append-only, with one exception: sealing, which sets position, prev_hash and
-- hash once, from NULL, and changes nothing else. Every other update, and every
-- delete, is refused.
CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE'
       AND OLD.position IS NULL AND OLD.prev_hash IS NULL AND OLD.hash IS NULL
       AND NEW.position IS NOT NULL AND NEW.prev_hash IS NOT NULL AND NEW.hash IS NOT NULL
       AND (to_jsonb(NEW) - 'position' - 'prev_hash' - 'hash')
           = (to_jsonb(OLD) - 'position' - 'prev_hash' - 'hash')
    THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit events are append-only';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_events_no_update BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();

-- Signed checkpoints: "the chain had this hash at this place at this time", signed
-- with Ed25519 under a key derived from the server's secret key. Also committed to
-- the GitOps repository, outside the database, where deleting the newest events
-- cannot reach them.
CREATE TABLE audit_checkpoints (
    position   BIGINT PRIMARY KEY,
    hash       TEXT NOT NULL,
    at         BIGINT NOT NULL,
    public_key TEXT NOT NULL,
    signature  TEXT NOT NULL
);

CREATE FUNCTION audit_checkpoints_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit checkpoints are append-only';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_checkpoints_append_only();
