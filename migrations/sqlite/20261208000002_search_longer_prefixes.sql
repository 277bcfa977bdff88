-- SQLite dialect. Keep in step with migrations/postgres.
-- Prefix lists up to ten characters. A typed word longer than the longest list
-- is matched by merging the hit list of every indexed word that starts with it,
-- in full, before the first row is returned: "payments" (a team, on a quarter of
-- all assets) cost 1.8 ms at 100,000 assets and 0.1 ms at 1,000. With a list of
-- its length it is read lazily, newest first, like any word: 0.2 ms at 100,000
-- (Python's sqlite3 on the seed's words; the index grows by about a fifth).
DROP TABLE assets_fts;
CREATE VIRTUAL TABLE assets_fts USING fts5(
    words,
    tokenize = 'unicode61 remove_diacritics 2',
    prefix = '1 2 3 4 5 6 7 8 9 10'
);
INSERT INTO assets_fts (rowid, words)
SELECT id, search_text FROM assets WHERE search_text IS NOT NULL;
