-- Lists page and filter on indexes; assets are searched on a text index.
--
-- search_text holds the words asset search finds (the name, the team and the
-- type's declared `search` parameters, never a secret), written when an asset is
-- recorded and (re)built at start for rows without it or whose type's `search`
-- list changed (search_settings remembers the list each type was indexed with).
-- On SQLite the words live in an FTS5 table whose rowid is the asset's id.

ALTER TABLE assets ADD COLUMN search_text TEXT;
CREATE VIRTUAL TABLE assets_fts USING fts5(words, tokenize = 'unicode61 remove_diacritics 2');
CREATE TABLE search_settings (
    type_name TEXT PRIMARY KEY,
    params    TEXT NOT NULL
);

-- Assets by time.
CREATE INDEX assets_created ON assets (created_at);
