-- Template upgrades: every change set records the catalog version of its type
-- (a digest of the type's file and templates), and every asset the version that
-- last rendered it. Rows from before versions existed hold '' (unknown): the
-- first sweep renders those assets and compares them with what is deployed.
ALTER TABLE request_revisions ADD COLUMN catalog_version TEXT NOT NULL DEFAULT '';
ALTER TABLE assets ADD COLUMN catalog_version TEXT NOT NULL DEFAULT '';
-- The version of each type whose assets have all been compared with it, so a
-- start with an unchanged catalog reads no asset.
CREATE TABLE catalog_sweeps (
    type_name TEXT PRIMARY KEY,
    version   TEXT NOT NULL,
    swept_at  BIGINT NOT NULL
);
