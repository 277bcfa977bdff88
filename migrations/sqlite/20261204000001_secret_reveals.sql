-- Generated secrets are shown to their requester once: this row says when and to
-- whom. Its primary key is what makes "once" hold when two clicks race.
CREATE TABLE secret_reveals (
    request_id  BIGINT NOT NULL REFERENCES requests (id),
    param       TEXT NOT NULL,
    revealed_by BIGINT NOT NULL,
    revealed_at BIGINT NOT NULL,
    PRIMARY KEY (request_id, param)
);
