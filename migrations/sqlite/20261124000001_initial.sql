-- Slipway schema, SQLite dialect. Keep in step with migrations/postgres.
-- Times are Unix milliseconds (BIGINT) so both engines sort and subtract them the same way.

CREATE TABLE users (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    username        TEXT NOT NULL UNIQUE,
    display_name    TEXT NOT NULL,
    -- NULL for accounts that sign in through an external identity provider.
    password_hash   TEXT,
    external_issuer TEXT,
    external_subject TEXT,
    roles           TEXT NOT NULL,
    teams           TEXT NOT NULL DEFAULT '',
    created_at      BIGINT NOT NULL,
    UNIQUE (external_issuer, external_subject)
);

CREATE TABLE sessions (
    id         TEXT PRIMARY KEY,
    data       TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_expiry ON sessions (expires_at);

CREATE TABLE requests (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    type_name        TEXT NOT NULL,
    resource_name    TEXT NOT NULL,
    requester_id     BIGINT NOT NULL REFERENCES users (id),
    state            TEXT NOT NULL,
    current_revision BIGINT NOT NULL,
    approved_revision BIGINT,
    approved_hash    TEXT,
    -- A client-chosen key per form: a double-clicked submit finds the first request.
    submit_key       TEXT NOT NULL,
    manual_owner_id  BIGINT REFERENCES users (id),
    last_error       TEXT,
    -- The GitOps commit that carries the approved change set, once applied.
    applied_commit   TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    UNIQUE (requester_id, submit_key)
);
CREATE INDEX requests_state ON requests (state);
CREATE INDEX requests_type ON requests (type_name, state);

CREATE TABLE request_revisions (
    request_id      BIGINT NOT NULL REFERENCES requests (id),
    revision        BIGINT NOT NULL,
    params          TEXT NOT NULL,
    precheck        TEXT NOT NULL,
    change_set      TEXT NOT NULL,
    change_set_hash TEXT NOT NULL,
    author_id       BIGINT NOT NULL REFERENCES users (id),
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (request_id, revision)
);

CREATE TABLE decisions (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id      BIGINT NOT NULL REFERENCES requests (id),
    revision        BIGINT NOT NULL,
    -- NULL when a catalog policy decided.
    reviewer_id     BIGINT REFERENCES users (id),
    decision        TEXT NOT NULL,
    comment         TEXT NOT NULL DEFAULT '',
    change_set_hash TEXT NOT NULL,
    voided          BIGINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL
);
CREATE INDEX decisions_request ON decisions (request_id);

CREATE TABLE review_views (
    request_id  BIGINT NOT NULL REFERENCES requests (id),
    reviewer_id BIGINT NOT NULL REFERENCES users (id),
    revision    BIGINT NOT NULL,
    first_seen_at BIGINT NOT NULL,
    PRIMARY KEY (request_id, reviewer_id, revision)
);

CREATE TABLE jobs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id   BIGINT NOT NULL REFERENCES requests (id),
    kind         TEXT NOT NULL,
    state        TEXT NOT NULL,
    attempts     BIGINT NOT NULL DEFAULT 0,
    max_attempts BIGINT NOT NULL,
    run_after    BIGINT NOT NULL,
    lease_owner  TEXT,
    lease_until  BIGINT,
    last_error   TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX jobs_claim ON jobs (state, run_after);

CREATE TABLE check_results (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id  BIGINT NOT NULL REFERENCES requests (id),
    revision    BIGINT NOT NULL,
    kind        TEXT NOT NULL,
    description TEXT NOT NULL,
    passed      BIGINT NOT NULL,
    detail      TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE assets (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    type_name  TEXT NOT NULL,
    name       TEXT NOT NULL,
    params     TEXT NOT NULL,
    request_id BIGINT NOT NULL REFERENCES requests (id),
    commit_id  TEXT NOT NULL,
    state      TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (type_name, name)
);

CREATE TABLE asset_relations (
    from_asset_id BIGINT NOT NULL REFERENCES assets (id),
    to_asset_id   BIGINT NOT NULL REFERENCES assets (id),
    kind          TEXT NOT NULL,
    PRIMARY KEY (from_asset_id, to_asset_id, kind)
);

CREATE TABLE monitoring_items (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    asset_id BIGINT NOT NULL REFERENCES assets (id),
    name     TEXT NOT NULL,
    kind     TEXT NOT NULL,
    target   TEXT NOT NULL
);

-- Append-only and hash-chained: each row's hash covers the previous row's hash.
CREATE TABLE audit_events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    at          BIGINT NOT NULL,
    actor_id    BIGINT,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    target_kind TEXT NOT NULL,
    target_id   TEXT NOT NULL,
    before_value TEXT,
    after_value TEXT,
    detail      TEXT NOT NULL DEFAULT '',
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
);
CREATE INDEX audit_target ON audit_events (target_kind, target_id);
