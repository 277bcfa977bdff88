-- A value derived from the secret key the database's secrets are sealed with,
-- recorded at the first start with a key: a server started with another key
-- (a rotated setting, one replica left behind, the demo key pasted) refuses to
-- start instead of failing every request that carries a secret, and sealing new
-- ones under a second key beside the first.
CREATE TABLE secret_key_checks (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    check_value TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
