-- SQLite dialect. Keep in step with migrations/postgres.
-- Asset search matches each typed word as a prefix. Without a prefix index FTS5
-- merges the hit list of every indexed word that starts with it (70,000 names
-- starting "s00" for a search of "s00"); with one, a prefix of up to four
-- characters reads one list. The words are copied back from assets.search_text,
-- which holds them.
DROP TABLE assets_fts;
CREATE VIRTUAL TABLE assets_fts USING fts5(
    words,
    tokenize = 'unicode61 remove_diacritics 2',
    prefix = '1 2 3 4'
);
INSERT INTO assets_fts (rowid, words)
SELECT id, search_text FROM assets WHERE search_text IS NOT NULL;
