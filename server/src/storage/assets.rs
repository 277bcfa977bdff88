use serde_json::Value;
use slipway_core::ids::{AssetId, RequestId};
use slipway_core::listing::{ListFilter, ListPage, PageRequest};
use slipway_core::render::MonitoringItem;
use slipway_core::views::{AssetSummary, RelationView};
use sqlx::{AnyConnection, Row};

use super::listing::{self, Conditions, ListSql};
use super::{Engine, StorageError, format_millis, now_millis, parse_json, to_json};

pub use slipway_core::action::{ACTIVE, RETIRED};

#[derive(Debug, Clone)]
pub struct AssetRow {
    pub summary: AssetSummary,
    pub params: Value,
    pub commit_id: String,
    /// The catalog version of its type that last rendered it ('' before versions).
    pub catalog_version: String,
}

pub(super) const ASSET_COLUMNS: &str =
    "id, type_name, name, params, request_id, commit_id, state, created_at, catalog_version";

pub(super) fn asset_from_row(row: &sqlx::any::AnyRow) -> Result<AssetRow, StorageError> {
    Ok(AssetRow {
        summary: AssetSummary {
            id: AssetId(row.try_get("id")?),
            type_name: row.try_get("type_name")?,
            name: row.try_get("name")?,
            state: row.try_get("state")?,
            request_id: RequestId(row.try_get("request_id")?),
            created_at: format_millis(row.try_get("created_at")?),
        },
        params: parse_json(&row.try_get::<String, _>("params")?, "asset parameters")?,
        commit_id: row.try_get("commit_id")?,
        catalog_version: row.try_get("catalog_version")?,
    })
}

pub struct NewAsset<'a> {
    pub type_name: &'a str,
    pub name: &'a str,
    pub params: &'a Value,
    pub team: Option<&'a str>,
    pub environment: Option<&'a str>,
    pub request_id: RequestId,
    pub commit_id: &'a str,
    pub catalog_version: &'a str,
    /// The words asset search finds it by (see `storage::search`); none leaves
    /// the asset to the indexing at start.
    pub search_text: Option<&'a str>,
}

pub async fn insert(
    conn: &mut AnyConnection,
    asset: &NewAsset<'_>,
) -> Result<AssetId, StorageError> {
    let now = now_millis();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO assets (type_name, name, params, team, environment, request_id, commit_id, \
         state, created_at, updated_at, catalog_version, search_text) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, $11) RETURNING id",
    )
    .bind(asset.type_name)
    .bind(asset.name)
    .bind(to_json(asset.params))
    .bind(asset.team)
    .bind(asset.environment)
    .bind(asset.request_id.0)
    .bind(asset.commit_id)
    .bind(ACTIVE)
    .bind(now)
    .bind(asset.catalog_version)
    .bind(asset.search_text)
    .fetch_one(&mut *conn)
    .await?;
    Ok(AssetId(id))
}

pub async fn by_request(
    conn: &mut AnyConnection,
    request_id: RequestId,
) -> Result<Option<AssetRow>, StorageError> {
    let row = sqlx::query(&format!(
        "SELECT {ASSET_COLUMNS} FROM assets WHERE request_id = $1"
    ))
    .bind(request_id.0)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(asset_from_row).transpose()
}

pub async fn get(conn: &mut AnyConnection, id: AssetId) -> Result<Option<AssetRow>, StorageError> {
    let row = sqlx::query(&format!("SELECT {ASSET_COLUMNS} FROM assets WHERE id = $1"))
        .bind(id.0)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(asset_from_row).transpose()
}

/// Any asset of this type and name, whatever its state, and its state: a
/// retired asset keeps its name (its history names it).
pub async fn named(
    conn: &mut AnyConnection,
    type_name: &str,
    name: &str,
) -> Result<Option<(AssetId, String)>, StorageError> {
    let row: Option<(i64, String)> =
        sqlx::query_as("SELECT id, state FROM assets WHERE type_name = $1 AND name = $2")
            .bind(type_name)
            .bind(name)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(row.map(|(id, state)| (AssetId(id), state)))
}

pub async fn active_named(
    conn: &mut AnyConnection,
    type_name: &str,
    name: &str,
) -> Result<Option<AssetId>, StorageError> {
    let id: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM assets WHERE type_name = $1 AND name = $2 AND state = $3",
    )
    .bind(type_name)
    .bind(name)
    .bind(ACTIVE)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(id.map(AssetId))
}

/// The SQL of a page of assets. A search text with no word in it (only
/// spaces, punctuation, symbols or control characters, all of them separators
/// between words) searches for nothing, as an empty one does.
fn list_sql(engine: Engine, filter: &ListFilter) -> ListSql<'static> {
    let mut c = Conditions::default();
    listing::filter_conditions(&mut c, ("assets", "a"), filter);
    let (mut from, mut id, mut windowed) = ("assets a", "a.id", None);
    let words = filter
        .text
        .as_deref()
        .map(slipway_core::listing::search_words)
        .unwrap_or_default();
    if !words.is_empty() {
        let matches = super::search::matches(engine, &mut c, &words);
        match engine {
            Engine::Sqlite => {
                c.push(matches);
                (from, id) = (super::search::SQLITE_FROM, super::search::SQLITE_ID);
            }
            Engine::Postgres => windowed = Some(matches),
        }
    }
    ListSql {
        columns: "a.id, a.type_name, a.name, a.params, a.request_id, a.commit_id, a.state, a.created_at, \
                  a.catalog_version",
        from,
        id,
        conditions: c,
        windowed,
    }
}

/// One page of assets, newest first.
pub async fn list(
    conn: &mut AnyConnection,
    engine: Engine,
    filter: &ListFilter,
    page: PageRequest,
) -> Result<ListPage<AssetSummary>, StorageError> {
    list_sql(engine, filter)
        .page(
            conn,
            page,
            |r| asset_from_row(r).map(|a| a.summary),
            |a| a.id.0,
        )
        .await
}

/// How the database reads that page (`EXPLAIN`), for tests and operators.
pub async fn list_plan(
    conn: &mut AnyConnection,
    engine: Engine,
    filter: &ListFilter,
    page: PageRequest,
) -> Result<String, StorageError> {
    list_sql(engine, filter).plan(conn, engine, page).await
}

pub async fn insert_relation(
    conn: &mut AnyConnection,
    from: AssetId,
    to: AssetId,
    kind: &str,
) -> Result<(), StorageError> {
    sqlx::query(
        "INSERT INTO asset_relations (from_asset_id, to_asset_id, kind) VALUES ($1, $2, $3) \
         ON CONFLICT DO NOTHING",
    )
    .bind(from.0)
    .bind(to.0)
    .bind(kind)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Relations shown per direction: a namespace every database of a team lands in
/// gathers dependants for years; the page shows the active ones first, then the
/// newest retired, and the asset search finds the rest.
pub const RELATIONS_SHOWN: i64 = 200;

/// Both directions: what this asset requires, and what requires it (at most
/// [`RELATIONS_SHOWN`] each, active first, newest first).
pub async fn relations(
    conn: &mut AnyConnection,
    id: AssetId,
) -> Result<Vec<RelationView>, StorageError> {
    let rows = sqlx::query(
        "SELECT * FROM (SELECT r.kind, a.id, a.name, a.type_name, a.state FROM asset_relations r \
           JOIN assets a ON a.id = r.to_asset_id WHERE r.from_asset_id = $1 \
           ORDER BY CASE WHEN a.state = $2 THEN 0 ELSE 1 END, a.id DESC LIMIT $3) requires \
         UNION ALL \
         SELECT * FROM (SELECT 'required by' AS kind, a.id, a.name, a.type_name, a.state \
           FROM asset_relations r JOIN assets a ON a.id = r.from_asset_id WHERE r.to_asset_id = $1 \
           ORDER BY CASE WHEN a.state = $2 THEN 0 ELSE 1 END, a.id DESC LIMIT $3) required_by",
    )
    .bind(id.0)
    .bind(ACTIVE)
    .bind(RELATIONS_SHOWN)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(RelationView {
                kind: row.try_get(0)?,
                asset_id: AssetId(row.try_get(1)?),
                asset_name: row.try_get(2)?,
                type_name: row.try_get(3)?,
                state: row.try_get(4)?,
            })
        })
        .collect()
}

/// Records the asset's monitoring items, in one statement.
pub async fn insert_monitoring(
    conn: &mut AnyConnection,
    asset: AssetId,
    items: &[MonitoringItem],
) -> Result<(), StorageError> {
    if items.is_empty() {
        return Ok(());
    }
    let rows = (0..items.len())
        .map(|i| format!("($1, ${}, ${}, ${})", 2 + i * 3, 3 + i * 3, 4 + i * 3))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!("INSERT INTO monitoring_items (asset_id, name, kind, target) VALUES {rows}");
    let mut query = sqlx::query(&sql).bind(asset.0);
    for item in items {
        query = query.bind(&item.name).bind(&item.kind).bind(&item.target);
    }
    query.execute(&mut *conn).await?;
    Ok(())
}

/// Replaces the asset's monitoring items (none once it is retired).
pub async fn replace_monitoring(
    conn: &mut AnyConnection,
    asset: AssetId,
    items: &[MonitoringItem],
) -> Result<(), StorageError> {
    sqlx::query("DELETE FROM monitoring_items WHERE asset_id = $1")
        .bind(asset.0)
        .execute(&mut *conn)
        .await?;
    insert_monitoring(conn, asset, items).await
}

pub async fn monitoring(
    conn: &mut AnyConnection,
    asset: AssetId,
) -> Result<Vec<MonitoringItem>, StorageError> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT name, kind, target FROM monitoring_items WHERE asset_id = $1 ORDER BY id",
    )
    .bind(asset.0)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(name, kind, target)| MonitoringItem { name, kind, target })
        .collect())
}

/// An asset as the Backstage export reads it: the row with the team and the
/// environment recorded beside it.
#[derive(Debug, Clone)]
pub struct ExportRow {
    pub asset: AssetRow,
    pub team: Option<String>,
    pub environment: Option<String>,
}

fn export_from_row(row: &sqlx::any::AnyRow) -> Result<ExportRow, StorageError> {
    Ok(ExportRow {
        asset: asset_from_row(row)?,
        team: row.try_get("team")?,
        environment: row.try_get("environment")?,
    })
}

/// One asset for export, whatever its state.
pub async fn for_export(
    conn: &mut AnyConnection,
    id: AssetId,
) -> Result<Option<ExportRow>, StorageError> {
    let row = sqlx::query(&format!(
        "SELECT {ASSET_COLUMNS}, team, environment FROM assets WHERE id = $1"
    ))
    .bind(id.0)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(export_from_row).transpose()
}

/// Up to `limit` active assets with ids above `after`, oldest first: one keyset
/// page, read along the primary key, so a feed of any size reads page by page.
pub async fn active_for_export(
    conn: &mut AnyConnection,
    after: AssetId,
    limit: i64,
) -> Result<Vec<ExportRow>, StorageError> {
    let rows = sqlx::query(&format!(
        "SELECT {ASSET_COLUMNS}, team, environment FROM assets \
         WHERE id > $1 AND state = $2 ORDER BY id LIMIT $3"
    ))
    .bind(after.0)
    .bind(ACTIVE)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(export_from_row).collect()
}

/// What the assets numbered `first..=last` require, each with the asset that
/// requires it: the relations of one export page in one range read of the
/// relations' primary key.
pub async fn requirements_between(
    conn: &mut AnyConnection,
    first: AssetId,
    last: AssetId,
) -> Result<Vec<(AssetId, RelationView)>, StorageError> {
    let rows = sqlx::query(
        "SELECT r.from_asset_id, r.kind, a.id, a.name, a.type_name, a.state FROM asset_relations r \
           JOIN assets a ON a.id = r.to_asset_id \
         WHERE r.from_asset_id BETWEEN $1 AND $2 AND r.kind = $3 \
         ORDER BY r.from_asset_id, a.id",
    )
    .bind(first.0)
    .bind(last.0)
    .bind(slipway_core::backstage::REQUIRES)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            let relation = RelationView {
                kind: row.try_get(1)?,
                asset_id: AssetId(row.try_get(2)?),
                asset_name: row.try_get(3)?,
                type_name: row.try_get(4)?,
                state: row.try_get(5)?,
            };
            Ok((AssetId(row.try_get(0)?), relation))
        })
        .collect()
}

/// The asset after a day-2 action: its parameters, the commit that carries it,
/// and its state (retired once an action retires it).
/// What an action leaves in the asset's record: its parameters, the commit that
/// has them, its state and the catalog version that rendered it.
pub struct AfterAction<'a> {
    pub params: &'a Value,
    pub commit_id: &'a str,
    pub state: &'a str,
    pub catalog_version: &'a str,
    /// As the recorded parameters name them: an action may move the asset.
    pub team: Option<&'a str>,
    pub environment: Option<&'a str>,
}

pub async fn update_after_action(
    conn: &mut AnyConnection,
    id: AssetId,
    after: &AfterAction<'_>,
) -> Result<(), StorageError> {
    sqlx::query(
        "UPDATE assets SET params = $1, commit_id = $2, state = $3, updated_at = $4, \
         catalog_version = $5, team = COALESCE($7, team), environment = COALESCE($8, environment) \
         WHERE id = $6",
    )
    .bind(to_json(after.params))
    .bind(after.commit_id)
    .bind(after.state)
    .bind(now_millis())
    .bind(after.catalog_version)
    .bind(id.0)
    .bind(after.team)
    .bind(after.environment)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The GitOps paths the asset's files were last written at; `None` for an asset
/// recorded before they were kept.
pub async fn deployed_paths(
    conn: &mut AnyConnection,
    id: AssetId,
) -> Result<Option<Vec<String>>, StorageError> {
    let text: Option<Option<String>> =
        sqlx::query_scalar("SELECT deployed_paths FROM assets WHERE id = $1")
            .bind(id.0)
            .fetch_optional(&mut *conn)
            .await?;
    text.flatten()
        .map(|text| parse_json(&text, "deployed paths"))
        .transpose()
}

/// Records where the asset's files are now written (sorted, each once), and
/// when its type commits them to the GitOps repository (`holds`), as the paths
/// it holds in `deployed_files`.
pub async fn set_deployed_paths(
    conn: &mut AnyConnection,
    id: AssetId,
    paths: &[String],
    holds: bool,
) -> Result<(), StorageError> {
    let mut paths = paths.to_vec();
    paths.sort();
    paths.dedup();
    sqlx::query("UPDATE assets SET deployed_paths = $1 WHERE id = $2")
        .bind(to_json(&paths))
        .bind(id.0)
        .execute(&mut *conn)
        .await?;
    hold_paths(conn, id, &paths, holds).await
}

/// Records an asset's deployed paths as [`set_deployed_paths`] does, only if
/// none are recorded yet (false otherwise: a change to the asset recorded
/// them meanwhile, and those are newer).
pub async fn fill_deployed_paths(
    conn: &mut AnyConnection,
    id: AssetId,
    paths: &[String],
    holds: bool,
) -> Result<bool, StorageError> {
    let mut paths = paths.to_vec();
    paths.sort();
    paths.dedup();
    let filled = sqlx::query(
        "UPDATE assets SET deployed_paths = $1 WHERE id = $2 AND deployed_paths IS NULL",
    )
    .bind(to_json(&paths))
    .bind(id.0)
    .execute(&mut *conn)
    .await?;
    if filled.rows_affected() == 0 {
        return Ok(false);
    }
    hold_paths(conn, id, &paths, holds).await?;
    Ok(true)
}

/// An active asset recorded before its deployed paths were kept.
#[derive(Debug, Clone)]
pub struct UnrecordedAsset {
    pub id: AssetId,
    pub type_name: String,
    pub created_by: RequestId,
}

/// Active assets without recorded paths after `after`, in id order.
pub async fn without_deployed_paths(
    conn: &mut AnyConnection,
    after: AssetId,
    limit: i64,
) -> Result<Vec<UnrecordedAsset>, StorageError> {
    let rows: Vec<(i64, String, i64)> = sqlx::query_as(
        "SELECT id, type_name, request_id FROM assets \
         WHERE deployed_paths IS NULL AND state = $1 AND id > $2 ORDER BY id LIMIT $3",
    )
    .bind(ACTIVE)
    .bind(after.0)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, type_name, created_by)| UnrecordedAsset {
            id: AssetId(id),
            type_name,
            created_by: RequestId(created_by),
        })
        .collect())
}

/// The asset's rows in `deployed_files`: its paths when its type commits them
/// to the GitOps repository (`holds`), none otherwise.
async fn hold_paths(
    conn: &mut AnyConnection,
    id: AssetId,
    paths: &[String],
    holds: bool,
) -> Result<(), StorageError> {
    sqlx::query("DELETE FROM deployed_files WHERE asset_id = $1")
        .bind(id.0)
        .execute(&mut *conn)
        .await?;
    let mut keys = std::collections::BTreeSet::new();
    let held: Vec<&String> = paths
        .iter()
        .filter(|p| holds && keys.insert(path_key(p)))
        .collect();
    for chunk in held.chunks(PATHS_PER_STATEMENT) {
        let rows = (0..chunk.len())
            .map(|i| format!("(${}, ${}, ${})", 3 * i + 1, 3 * i + 2, 3 * i + 3))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!("INSERT INTO deployed_files (path_key, asset_id, path) VALUES {rows}");
        let mut insert = sqlx::query(&sql);
        for path in chunk {
            insert = insert.bind(path_key(path)).bind(id.0).bind(path.as_str());
        }
        insert.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Assets of types whose steps commit nothing to the GitOps repository hold
/// no path there (the migration that filled `deployed_files` could not tell
/// the types apart; a type's steps may also have changed since).
pub async fn forget_paths_of_types(
    conn: &mut AnyConnection,
    types: &[&str],
) -> Result<(), StorageError> {
    for chunk in types.chunks(PATHS_PER_STATEMENT) {
        let names = (1..=chunk.len())
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "DELETE FROM deployed_files WHERE asset_id IN \
             (SELECT id FROM assets WHERE type_name IN ({names}))"
        );
        let mut delete = sqlx::query(&sql);
        for name in chunk {
            delete = delete.bind(*name);
        }
        delete.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Paths bound in one statement: far below both engines' limits on binds.
const PATHS_PER_STATEMENT: usize = 200;

/// How paths are compared across assets: a checkout on a file system that
/// ignores case holds one file for `A.yaml` and `a.yaml`. ASCII letters only,
/// as the migration that filled the table folded them.
pub fn path_key(path: &str) -> String {
    path.to_ascii_lowercase()
}

/// A path another asset deployed: who holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldPath {
    pub path: String,
    pub asset_id: AssetId,
    pub type_name: String,
    pub name: String,
}

/// Which of `paths` an asset other than `except` deployed and has not retired.
pub async fn paths_held_by_others(
    conn: &mut AnyConnection,
    paths: &[&str],
    except: Option<AssetId>,
) -> Result<Vec<HeldPath>, StorageError> {
    let mut held = Vec::new();
    for chunk in paths.chunks(PATHS_PER_STATEMENT) {
        let keys = (0..chunk.len())
            .map(|i| format!("${}", i + 3))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT f.path, a.id, a.type_name, a.name FROM deployed_files f \
             JOIN assets a ON a.id = f.asset_id \
             WHERE a.state = $1 AND a.id <> $2 AND f.path_key IN ({keys}) ORDER BY f.path, a.id"
        );
        let mut query = sqlx::query_as::<_, (String, i64, String, String)>(&sql)
            .bind(ACTIVE)
            .bind(except.map_or(0, |a| a.0));
        for path in chunk {
            query = query.bind(path_key(path));
        }
        let rows = query.fetch_all(&mut *conn).await?;
        held.extend(
            rows.into_iter()
                .map(|(path, id, type_name, name)| HeldPath {
                    path,
                    asset_id: AssetId(id),
                    type_name,
                    name,
                }),
        );
    }
    Ok(held)
}

/// Forgets that every asset of the type met its current catalog version: one
/// was just recorded with another version (a creation or an action reviewed
/// before the templates changed completed after the sweep), and the next sweep
/// must walk the type again to reach it. Called in the transaction that records
/// the asset, so no sweep can mark the type between the two.
pub async fn reopen_sweep(conn: &mut AnyConnection, type_name: &str) -> Result<(), StorageError> {
    sqlx::query("DELETE FROM catalog_sweeps WHERE type_name = $1")
        .bind(type_name)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The active assets that require this one (a database in a namespace), the
/// oldest ten by name, then how many more: a refusal names a few, not thousands.
pub async fn active_dependents(
    conn: &mut AnyConnection,
    id: AssetId,
) -> Result<Vec<String>, StorageError> {
    const NAMED: usize = 10;
    let mut names: Vec<String> = sqlx::query_scalar(
        "SELECT a.name FROM asset_relations r JOIN assets a ON a.id = r.from_asset_id \
         WHERE r.to_asset_id = $1 AND a.state = $2 ORDER BY a.id LIMIT $3",
    )
    .bind(id.0)
    .bind(ACTIVE)
    .bind(NAMED as i64 + 1)
    .fetch_all(&mut *conn)
    .await?;
    if names.len() > NAMED {
        let all: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM asset_relations r JOIN assets a ON a.id = r.from_asset_id \
             WHERE r.to_asset_id = $1 AND a.state = $2",
        )
        .bind(id.0)
        .bind(ACTIVE)
        .fetch_one(&mut *conn)
        .await?;
        names.truncate(NAMED);
        names.push(format!("{} more", all - NAMED as i64));
    }
    Ok(names)
}
