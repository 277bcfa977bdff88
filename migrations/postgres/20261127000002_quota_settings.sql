-- The rules each type's quota counters were counted under: a start recounts only
-- the types whose rules changed, instead of reading every active row.
CREATE TABLE quota_settings (
    type_name TEXT PRIMARY KEY,
    rules     TEXT NOT NULL
);
