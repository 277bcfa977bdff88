//! The definition of every catalog version of a type seen at start
//! (`type_versions`), so a change set reviewed under one version is run and
//! verified by it after the catalog moved on; and which version a process
//! started with last.

use slipway_core::catalog::{Catalog, ResourceType};
use sqlx::AnyConnection;

use super::{Db, Engine, StorageError, lease_clock, parse_json, to_json};

/// Records the definition of each type of `catalog` at its version (one
/// already recorded, by another replica or an earlier start, is kept as it
/// was) and that a process started with it now. Times are the database's
/// clock (on PostgreSQL), as leases are: which version started after which, and
/// which still sweeps, is then read alike by replicas whose clocks disagree.
pub async fn record(db: &Db, catalog: &Catalog) -> Result<(), StorageError> {
    let mut tx = db.write().await?;
    let now = lease_clock(&mut tx, db.engine).await?;
    for ty in catalog.types.values() {
        let started = sqlx::query(
            "UPDATE type_versions SET started_at = $3 WHERE type_name = $1 AND version = $2",
        )
        .bind(&ty.name)
        .bind(&ty.version)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if started.rows_affected() > 0 {
            continue;
        }
        sqlx::query(
            "INSERT INTO type_versions (type_name, version, definition, recorded_at, started_at) \
             VALUES ($1, $2, $3, $4, $4) \
             ON CONFLICT (type_name, version) DO UPDATE SET started_at = excluded.started_at",
        )
        .bind(&ty.name)
        .bind(&ty.version)
        .bind(to_json(ty))
        .bind(now)
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

/// Records that a process with `version` of the type sweeps now, and answers
/// whether another version started after this one (by `started`, this
/// version's start) was swept with in the last `alive_within` milliseconds:
/// that one's replicas sweep, this one's leave it to them. A version whose
/// processes stopped sweeping (a canary taken down, a start that failed) is not
/// waited for.
pub async fn sweeping_elsewhere(
    (conn, engine): (&mut AnyConnection, Engine),
    (type_name, version): (&str, &str),
    alive_within: i64,
) -> Result<bool, StorageError> {
    let now = lease_clock(&mut *conn, engine).await?;
    sqlx::query("UPDATE type_versions SET swept_at = $3 WHERE type_name = $1 AND version = $2")
        .bind(type_name)
        .bind(version)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    let alive_after = now.saturating_sub(alive_within);
    let newer: Option<String> = sqlx::query_scalar(
        "SELECT other.version FROM type_versions other JOIN type_versions mine \
         ON mine.type_name = other.type_name AND mine.version = $2 \
         WHERE other.type_name = $1 AND other.version <> $2 \
         AND other.started_at > mine.started_at AND other.swept_at > $3 LIMIT 1",
    )
    .bind(type_name)
    .bind(version)
    .bind(alive_after)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(newer.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A recorded definition is the type itself again: a job runs the reviewed
    /// version by it, steps, checks, actions and all.
    #[test]
    fn every_shipped_type_reads_back_as_it_was_recorded() -> Result<(), Box<dyn std::error::Error>>
    {
        let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../catalog");
        let loaded = crate::catalog_source::load(&shipped)?;
        assert!(!loaded.catalog.types.is_empty());
        for ty in loaded.catalog.types.values() {
            let back: ResourceType = parse_json(&to_json(ty), "a recorded type version")?;
            assert_eq!(&back, ty, "{} reads back otherwise", ty.name);
        }
        Ok(())
    }
}
