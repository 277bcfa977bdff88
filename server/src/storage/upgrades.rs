//! What the template-upgrade sweep reads and writes: which assets a type's
//! current catalog version has not rendered yet, and which versions have been
//! compared with every asset.

use sqlx::AnyConnection;

use super::{StorageError, now_millis};
use slipway_core::action::ACTIVE;
use slipway_core::ids::AssetId;

/// The version of the type whose assets were all compared with it, if any.
pub async fn swept_version(
    conn: &mut AnyConnection,
    type_name: &str,
) -> Result<Option<String>, StorageError> {
    Ok(
        sqlx::query_scalar("SELECT version FROM catalog_sweeps WHERE type_name = $1")
            .bind(type_name)
            .fetch_optional(&mut *conn)
            .await?,
    )
}

/// Forgets the mark of `version` (and only it: another replica may have just
/// marked the type for the catalog's current one).
pub async fn forget_swept(
    conn: &mut AnyConnection,
    type_name: &str,
    version: &str,
) -> Result<(), StorageError> {
    sqlx::query("DELETE FROM catalog_sweeps WHERE type_name = $1 AND version = $2")
        .bind(type_name)
        .bind(version)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Records that every asset of the type has met `version`.
pub async fn set_swept(
    conn: &mut AnyConnection,
    type_name: &str,
    version: &str,
) -> Result<(), StorageError> {
    sqlx::query(
        "INSERT INTO catalog_sweeps (type_name, version, swept_at) VALUES ($1, $2, $3) \
         ON CONFLICT (type_name) DO UPDATE SET version = excluded.version, \
         swept_at = excluded.swept_at",
    )
    .bind(type_name)
    .bind(version)
    .bind(now_millis())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Up to `limit` active assets of the type after `after`, in id order, that
/// another catalog version rendered (walks the type's id index).
pub async fn behind(
    conn: &mut AnyConnection,
    type_name: &str,
    version: &str,
    after: AssetId,
    limit: i64,
) -> Result<Vec<AssetId>, StorageError> {
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM assets WHERE type_name = $1 AND id > $2 AND state = $3 \
         AND catalog_version <> $4 ORDER BY id LIMIT $5",
    )
    .bind(type_name)
    .bind(after.0)
    .bind(ACTIVE)
    .bind(version)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    Ok(ids.into_iter().map(AssetId).collect())
}

/// The asset renders as it is deployed under `version`: nothing to upgrade.
pub async fn set_asset_version(
    conn: &mut AnyConnection,
    id: AssetId,
    version: &str,
) -> Result<(), StorageError> {
    sqlx::query("UPDATE assets SET catalog_version = $1 WHERE id = $2")
        .bind(version)
        .bind(id.0)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The asset's template upgrade still in flight (submitted, in review, approved
/// or running), for its page.
pub async fn waiting_upgrade(
    conn: &mut AnyConnection,
    id: AssetId,
) -> Result<Option<i64>, StorageError> {
    Ok(sqlx::query_scalar(&format!(
        "SELECT id FROM requests WHERE asset_id = $1 AND action = $2 AND state IN ({}) \
         ORDER BY id DESC LIMIT 1",
        super::requests::in_flight_list()
    ))
    .bind(id.0)
    .bind(slipway_core::catalog::TypeAction::UPGRADE)
    .fetch_optional(&mut *conn)
    .await?)
}

/// Template upgrades of `type_name` still waiting for a decision whose change
/// set was rendered by another catalog version than `version`.
pub async fn superseded(
    conn: &mut AnyConnection,
    type_name: &str,
    version: &str,
) -> Result<Vec<slipway_core::ids::RequestId>, StorageError> {
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT r.id FROM requests r JOIN request_revisions v \
         ON v.request_id = r.id AND v.revision = r.current_revision \
         WHERE r.type_name = $1 AND r.action = $2 \
         AND r.state IN ('submitted', 'in_review', 'changes_requested') \
         AND v.catalog_version <> $3 ORDER BY r.id",
    )
    .bind(type_name)
    .bind(slipway_core::catalog::TypeAction::UPGRADE)
    .bind(version)
    .fetch_all(&mut *conn)
    .await?;
    Ok(ids.into_iter().map(slipway_core::ids::RequestId).collect())
}

/// Frees a superseded upgrade's submit key: cancelled by the sweep, not by
/// the team, it must not read as the team's answer to that version's upgrade
/// when the catalog comes back to it. Only a key the sweep gave it (one with
/// the sweep's `prefix`, which no one else may submit under) is renamed, into
/// the same reserved space: a person's own key stays theirs, and idempotent.
pub async fn release_key(
    conn: &mut AnyConnection,
    id: slipway_core::ids::RequestId,
    prefix: &str,
) -> Result<(), StorageError> {
    // Compared byte for byte: SQLite's LIKE ignores case, and `Template-Upgrade-x`
    // is a person's key.
    sqlx::query(
        "UPDATE requests SET submit_key = $1 WHERE id = $2 \
         AND substr(submit_key, 1, length(CAST($3 AS TEXT))) = $3",
    )
    .bind(format!("{prefix}superseded-{id}"))
    .bind(id.0)
    .bind(prefix)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
