-- Lists page and filter on indexes; assets are searched on a text index.
--
-- search_text holds the words asset search finds (the name, the team and the
-- type's declared `search` parameters, never a secret), written when an asset is
-- recorded and (re)built at start for rows without it or whose type's `search`
-- list changed (search_settings remembers the list each type was indexed with).
-- On PostgreSQL a generated tsvector of those words carries a GIN index.

ALTER TABLE assets ADD COLUMN search_text TEXT;
ALTER TABLE assets ADD COLUMN search_doc tsvector
    GENERATED ALWAYS AS (to_tsvector('simple', coalesce(search_text, ''))) STORED;
CREATE INDEX assets_search ON assets USING GIN (search_doc);
CREATE TABLE search_settings (
    type_name TEXT PRIMARY KEY,
    params    TEXT NOT NULL
);

-- Assets by time.
CREATE INDEX assets_created ON assets (created_at);
