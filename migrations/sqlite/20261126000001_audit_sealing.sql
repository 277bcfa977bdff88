-- Audit at volume. Writers only insert an event (in the transaction of the change it
-- records, with no read of the chain); a sealer then gives each committed event its
-- place in the chain (`position`) and its `prev_hash` and `hash`, in order, in a
-- write transaction. Until then the three are NULL. Existing events keep their
-- hashes and get their places in seq order.
--
-- SQLite cannot drop NOT NULL: the table is rebuilt, its rows copied, its indexes
-- and triggers made again.
CREATE TABLE audit_events_sealed (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    at           BIGINT NOT NULL,
    actor_id     BIGINT,
    actor        TEXT NOT NULL,
    action       TEXT NOT NULL,
    target_kind  TEXT NOT NULL,
    target_id    TEXT NOT NULL,
    before_value TEXT,
    after_value  TEXT,
    detail       TEXT NOT NULL DEFAULT '',
    prev_hash    TEXT,
    hash         TEXT,
    channel      TEXT,
    client_addr  TEXT,
    trace_id     TEXT,
    token_id     BIGINT,
    position     BIGINT
);

INSERT INTO audit_events_sealed (seq, at, actor_id, actor, action, target_kind, target_id,
    before_value, after_value, detail, prev_hash, hash, channel, client_addr, trace_id,
    token_id, position)
SELECT seq, at, actor_id, actor, action, target_kind, target_id, before_value,
    after_value, detail, prev_hash, hash, channel, client_addr, trace_id, token_id,
    row_number() OVER (ORDER BY seq)
FROM audit_events;

DROP TABLE audit_events;
ALTER TABLE audit_events_sealed RENAME TO audit_events;

-- One event per place; unsealed rows stay out of it.
CREATE UNIQUE INDEX audit_position ON audit_events (position) WHERE position IS NOT NULL;
-- The sealer's work list: O(pending), whatever the size of the log.
CREATE INDEX audit_unsealed ON audit_events (seq) WHERE position IS NULL;
-- The audit list's filters, each in seq order (newest first, keyset paging).
CREATE INDEX audit_target ON audit_events (target_kind, target_id, seq);
CREATE INDEX audit_actor ON audit_events (actor, seq);
CREATE INDEX audit_action ON audit_events (action, seq);

-- Still append-only, with one exception: sealing, which sets position, prev_hash and
-- hash once, from NULL, and changes nothing else. Every other update, and every
-- delete, is refused.
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
    AND NEW.token_id IS OLD.token_id
)
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;

CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;

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

CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'audit checkpoints are append-only');
END;

CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'audit checkpoints are append-only');
END;
