-- Each catalog version of a type as it was loaded: its definition (steps,
-- checks, monitoring items, limits) in JSON, recorded at start by every
-- process, once per version. A change set is reviewed as one version rendered
-- it; a job that runs after the catalog moved on runs and verifies it by that
-- version's steps and checks, not by today's (a check added for a file the
-- reviewed change never wrote would fail it). `started_at` is the last start
-- of a process with the version, `swept_at` the last template-upgrade pass
-- of one: while replicas run two catalogs (a rolling deploy, a canary), those
-- whose version another one started after, still sweeping lately, leave the
-- sweep to it, so the two do not undo each other's upgrades.
CREATE TABLE type_versions (
    type_name   TEXT NOT NULL,
    version     TEXT NOT NULL,
    definition  TEXT NOT NULL,
    recorded_at BIGINT NOT NULL,
    started_at  BIGINT NOT NULL,
    swept_at    BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (type_name, version)
);
