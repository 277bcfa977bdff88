//! What `catalog check --against` reads of a Slipway database to say what a new
//! catalog would leave stranded: counts of what is live per type, and the
//! parameters of active assets. Reads only.

use serde_json::Value;
use slipway_core::action::ACTIVE;
use slipway_core::state::RequestState;
use sqlx::{AnyConnection, Row};

use super::{StorageError, listing, parse_json};

/// Active assets per type.
pub async fn active_assets_by_type(
    conn: &mut AnyConnection,
) -> Result<Vec<(String, i64)>, StorageError> {
    let rows = sqlx::query(
        "SELECT type_name, COUNT(*) AS n FROM assets WHERE state = $1 GROUP BY type_name",
    )
    .bind(ACTIVE)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| Ok((row.try_get("type_name")?, row.try_get("n")?)))
        .collect()
}

/// Requests not yet ended, per type and action (`None`: creating the resource).
pub async fn open_requests_by_type(
    conn: &mut AnyConnection,
) -> Result<Vec<(String, Option<String>, i64)>, StorageError> {
    let open: Vec<&str> = RequestState::ALL
        .iter()
        .filter(|s| !s.is_terminal())
        .map(|s| s.as_str())
        .collect();
    let rows = sqlx::query(&format!(
        "SELECT type_name, action, COUNT(*) AS n FROM requests WHERE state IN ({}) \
         GROUP BY type_name, action",
        listing::literals(&open)
    ))
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok((
                row.try_get("type_name")?,
                row.try_get("action")?,
                row.try_get("n")?,
            ))
        })
        .collect()
}

/// An active asset as the check reads it.
pub struct RecordedAsset {
    pub id: i64,
    pub name: String,
    pub params: Value,
}

/// Active assets of a type after `after` (by id), at most `limit`.
pub async fn active_assets_of(
    conn: &mut AnyConnection,
    type_name: &str,
    after: i64,
    limit: i64,
) -> Result<Vec<RecordedAsset>, StorageError> {
    let rows = sqlx::query(
        "SELECT id, name, params FROM assets WHERE type_name = $1 AND state = $2 AND id > $3 \
         ORDER BY id LIMIT $4",
    )
    .bind(type_name)
    .bind(ACTIVE)
    .bind(after)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(RecordedAsset {
                id: row.try_get("id")?,
                name: row.try_get("name")?,
                params: parse_json(&row.try_get::<String, _>("params")?, "asset parameters")?,
            })
        })
        .collect()
}
