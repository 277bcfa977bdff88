-- Idempotency-Key (IETF httpapi draft): the first answer to a key, kept so a retry
-- gets it again instead of a second effect. Keys belong to the caller.
CREATE TABLE idempotency_keys (
    user_id      BIGINT NOT NULL REFERENCES users (id),
    idem_key     TEXT NOT NULL,
    -- SHA-256 of method, path and body: the same key with another payload is refused.
    fingerprint  TEXT NOT NULL,
    -- 'running' while the first call works, then 'done' with its answer.
    state        TEXT NOT NULL,
    status       BIGINT,
    content_type TEXT,
    body         TEXT,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (user_id, idem_key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
