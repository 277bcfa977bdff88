//! Asset search on a real text index: FTS5 on SQLite (`assets_fts`, rowid = the
//! asset's id), a generated `tsvector` with a GIN index on PostgreSQL
//! (`assets.search_doc`). Both hold the words of `assets.search_text`, which
//! [`slipway_core::listing::indexed_words`] makes from the asset's name, team and
//! its type's `search` parameters.
//!
//! What is typed into a search never reaches either query language as syntax: it
//! is cut into words of letters and digits first
//! ([`slipway_core::listing::search_words`]), and each word is quoted as a prefix
//! term.

use slipway_core::catalog::Catalog;
use slipway_core::ids::AssetId;
use slipway_core::listing::indexed_words;
use sqlx::{AnyConnection, Row};

use super::listing::Conditions;
use super::{Db, Engine, StorageError, parse_json, to_json};

/// Rows re-indexed per transaction at start.
const BATCH: i64 = 500;
/// Held while the index is rebuilt, so replicas starting together take turns.
const SYNC_LOCK: i64 = 7105004;

/// On SQLite a search reads the text index first, newest row first, and joins each
/// hit to its asset: FTS5 walks its hits in rowid order and stops at the page's
/// end, where `id IN (all hits)` read every hit (17,000 of 70,000 assets for
/// "payments s00") before ordering them.
pub(crate) const SQLITE_FROM: &str = "assets_fts JOIN assets a ON a.id = assets_fts.rowid";
/// The id a searched SQLite list orders and pages by.
pub(crate) const SQLITE_ID: &str = "assets_fts.rowid";

/// The condition "the asset's words start with each of `words`" (every word
/// already only letters and digits).
pub(crate) fn matches(engine: Engine, c: &mut Conditions, words: &[String]) -> String {
    match engine {
        Engine::Sqlite => {
            // FTS5: each word a quoted string (inner quotes doubled) with `*` for a
            // prefix; words side by side must all match.
            let query: Vec<String> = words
                .iter()
                .map(|w| format!("\"{}\"*", w.replace('"', "\"\"")))
                .collect();
            let mark = c.text(query.join(" "));
            // The list reads `assets_fts` joined to `assets` (see [`SQLITE_FROM`]).
            format!("assets_fts MATCH {mark}")
        }
        Engine::Postgres => {
            // to_tsquery: each word a quoted lexeme (inner quotes doubled, backslashes
            // escaped) with `:*` for a prefix, joined with `&`.
            let query: Vec<String> = words
                .iter()
                .map(|w| format!("'{}':*", w.replace('\\', "\\\\").replace('\'', "''")))
                .collect();
            let mark = c.text(query.join(" & "));
            format!("a.search_doc @@ to_tsquery('simple', {mark})")
        }
    }
}

/// Stores an asset's search words, in the caller's transaction.
pub async fn index_asset(
    conn: &mut AnyConnection,
    engine: Engine,
    id: AssetId,
    words: &str,
) -> Result<(), StorageError> {
    sqlx::query("UPDATE assets SET search_text = $1 WHERE id = $2")
        .bind(words)
        .bind(id.0)
        .execute(&mut *conn)
        .await?;
    if engine == Engine::Sqlite {
        sqlx::query("DELETE FROM assets_fts WHERE rowid = $1")
            .bind(id.0)
            .execute(&mut *conn)
            .await?;
    }
    index_new_asset(conn, engine, id, words).await
}

/// Indexes an asset just inserted with its `search_text`: on SQLite its words
/// go into the FTS table too (PostgreSQL indexes the column itself).
pub async fn index_new_asset(
    conn: &mut AnyConnection,
    engine: Engine,
    id: AssetId,
    words: &str,
) -> Result<(), StorageError> {
    if engine == Engine::Sqlite {
        sqlx::query("INSERT INTO assets_fts (rowid, words) VALUES ($1, $2)")
            .bind(id.0)
            .bind(words)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// At start: assets of a type whose `search` list changed since they were indexed
/// are indexed again, and so is every asset without search words (recorded before
/// search existed, or by a tool that wrote the row alone). Returns how many
/// assets were (re)indexed.
pub async fn sync(db: &Db, catalog: &Catalog) -> Result<u64, StorageError> {
    let mut tx = db.write().await?;
    if db.engine == Engine::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(SYNC_LOCK)
            .execute(&mut *tx)
            .await?;
    }
    let stored: Vec<(String, String)> =
        sqlx::query_as("SELECT type_name, params FROM search_settings")
            .fetch_all(&mut *tx)
            .await?;
    for ty in catalog.types.values() {
        let wanted = to_json(&ty.search);
        let before = stored.iter().find(|(name, _)| *name == ty.name);
        if before.is_some_and(|(_, params)| *params == wanted) {
            continue;
        }
        if before.is_some() {
            sqlx::query("UPDATE assets SET search_text = NULL WHERE type_name = $1")
                .bind(&ty.name)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO search_settings (type_name, params) VALUES ($1, $2) \
             ON CONFLICT (type_name) DO UPDATE SET params = excluded.params",
        )
        .bind(&ty.name)
        .bind(&wanted)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;

    let (mut indexed, mut after) = (0, 0_i64);
    loop {
        let mut tx = db.write().await?;
        // On from the last batch's end: from the start, each batch would walk
        // past every row indexed before it (a quadratic start at 100k assets).
        let rows = sqlx::query(
            "SELECT id, type_name, name, team, params FROM assets \
             WHERE search_text IS NULL AND id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(BATCH)
        .fetch_all(&mut *tx)
        .await?;
        let Some(last) = rows.last() else {
            break;
        };
        after = last.try_get("id")?;
        for row in &rows {
            let type_name: String = row.try_get("type_name")?;
            let name: String = row.try_get("name")?;
            let team: Option<String> = row.try_get("team")?;
            let params = parse_json(&row.try_get::<String, _>("params")?, "asset parameters")?;
            let words = indexed_words(
                catalog.types.get(&type_name),
                &name,
                team.as_deref(),
                &params,
            );
            index_asset(&mut tx, db.engine, AssetId(row.try_get("id")?), &words).await?;
            indexed += 1;
        }
        tx.commit().await?;
    }
    if indexed > 0 {
        tracing::info!(assets = indexed, "asset search index rebuilt");
    }
    Ok(indexed)
}
