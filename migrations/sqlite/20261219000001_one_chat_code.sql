-- One chat link code a user: a new code replaces the earlier one in a single
-- statement (two asked for at the same instant used to both stay on PostgreSQL,
-- where a delete and an insert of two calls could interleave).
DELETE FROM chat_link_codes WHERE EXISTS (
    SELECT 1 FROM chat_link_codes newer
    WHERE newer.user_id = chat_link_codes.user_id
      AND (newer.created_at > chat_link_codes.created_at
           OR (newer.created_at = chat_link_codes.created_at
               AND newer.code_hash > chat_link_codes.code_hash))
);
DROP INDEX chat_link_codes_user;
CREATE UNIQUE INDEX chat_link_codes_user ON chat_link_codes (user_id);
