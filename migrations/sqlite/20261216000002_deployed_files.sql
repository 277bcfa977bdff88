-- SQLite dialect. Keep in step with migrations/postgres.
-- Which asset deployed which GitOps path, by the path folded to lower case (a
-- checkout on macOS or Windows holds one file for `A.yaml` and `a.yaml`): a
-- request that would write over another asset's file is refused, and a
-- retirement or an upgrade never removes a file another asset deployed. The
-- same paths as assets.deployed_paths, kept apart so that one lookup by path
-- answers among a year of assets. Filled here from what was recorded so far.
CREATE TABLE deployed_files (
    path_key TEXT NOT NULL,
    asset_id BIGINT NOT NULL REFERENCES assets (id),
    path     TEXT NOT NULL,
    PRIMARY KEY (path_key, asset_id)
);
CREATE INDEX deployed_files_by_asset ON deployed_files (asset_id);

INSERT OR IGNORE INTO deployed_files (path_key, asset_id, path)
SELECT lower(paths.value), assets.id, paths.value
  FROM assets, json_each(assets.deployed_paths) AS paths
 WHERE assets.deployed_paths IS NOT NULL AND json_valid(assets.deployed_paths)
   AND json_type(assets.deployed_paths) = 'array' AND paths.type = 'text';
