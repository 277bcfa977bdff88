-- Secret parameters, encrypted (XChaCha20-Poly1305, hex-encoded). A revision that
-- keeps an earlier secret gets a copy of its row: each revision lists its own.
CREATE TABLE request_secrets (
    request_id BIGINT NOT NULL REFERENCES requests (id),
    revision   BIGINT NOT NULL,
    param      TEXT NOT NULL,
    nonce      TEXT NOT NULL,
    ciphertext TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (request_id, revision, param)
);
