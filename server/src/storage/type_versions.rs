//! The definition of every catalog version of a type seen at start
//! (`type_versions`), so a change set reviewed under one version is run and
//! verified by it after the catalog moved on.

use slipway_core::catalog::{Catalog, ResourceType};
use sqlx::AnyConnection;

use super::{Db, StorageError, now_millis, parse_json, to_json};

/// Records the definition of each type of `catalog` at its version; a version
/// already recorded (by another replica, or an earlier start) is left as it is.
pub async fn record(db: &Db, catalog: &Catalog) -> Result<(), StorageError> {
    let mut tx = db.write().await?;
    for ty in catalog.types.values() {
        sqlx::query(
            "INSERT INTO type_versions (type_name, version, definition, recorded_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (type_name, version) DO NOTHING",
        )
        .bind(&ty.name)
        .bind(&ty.version)
        .bind(to_json(ty))
        .bind(now_millis())
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The type as its version `version` defined it, if that version was recorded.
pub async fn definition(
    conn: &mut AnyConnection,
    type_name: &str,
    version: &str,
) -> Result<Option<ResourceType>, StorageError> {
    let text: Option<String> = sqlx::query_scalar(
        "SELECT definition FROM type_versions WHERE type_name = $1 AND version = $2",
    )
    .bind(type_name)
    .bind(version)
    .fetch_optional(&mut *conn)
    .await?;
    text.map(|t| parse_json(&t, "a recorded type version"))
        .transpose()
}
