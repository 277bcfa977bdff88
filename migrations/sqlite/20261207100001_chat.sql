-- SQLite dialect. Keep in step with migrations/postgres.
-- ChatOps over Matrix: who is who in chat, the one-time codes that link them, and
-- where the bot's sync and notifications have got to, so a restart resumes there.

-- A chat account linked to a Slipway account; one each way. The room is where the
-- person linked, where the bot tells them about their requests.
CREATE TABLE chat_links (
    chat_user  TEXT PRIMARY KEY,
    user_id    BIGINT NOT NULL UNIQUE REFERENCES users (id),
    room_id    TEXT NOT NULL,
    linked_at  BIGINT NOT NULL
);

-- One-time link codes, shown once in the portal; only a SHA-256 is kept.
CREATE TABLE chat_link_codes (
    code_hash  TEXT PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES users (id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX chat_link_codes_user ON chat_link_codes (user_id);

-- Named positions: the sync token, the audit position notified up to.
CREATE TABLE chat_cursors (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Events already handled: claimed before the command runs, so a sync replayed
-- after a restart never runs a command twice.
CREATE TABLE chat_events (
    event_id   TEXT PRIMARY KEY,
    handled_at BIGINT NOT NULL
);
CREATE INDEX chat_events_by_time ON chat_events (handled_at);

-- The revision and change set each review notice showed, so an approval from chat
-- is bound to what the reviewers were shown.
CREATE TABLE chat_review_notices (
    request_id      BIGINT PRIMARY KEY REFERENCES requests (id),
    revision        BIGINT NOT NULL,
    change_set_hash TEXT NOT NULL,
    posted_at       BIGINT NOT NULL
);
