-- A review notice is recorded per room that showed it: an approval typed in a
-- room binds to what that room was shown, not to what another room (or no room
-- the reviewer reads) was shown last. Notices recorded before, without their
-- room, are dropped: an approval of those requests names its revision
-- (`approve #id r<n>`), as where no notice was shown.
DROP TABLE chat_review_notices;
CREATE TABLE chat_review_notices (
    request_id      BIGINT NOT NULL REFERENCES requests (id),
    room_id         TEXT NOT NULL,
    revision        BIGINT NOT NULL,
    change_set_hash TEXT NOT NULL,
    posted_at       BIGINT NOT NULL,
    PRIMARY KEY (request_id, room_id)
);
