//! Personal API tokens, stored as hashes of their secrets.

use slipway_core::ids::UserId;
use slipway_core::views::TokenScope;
use sqlx::{AnyConnection, Row};

use super::{StorageError, now_millis};

pub struct TokenRow {
    pub id: i64,
    pub user_id: UserId,
    pub name: String,
    pub prefix: String,
    pub scopes: Vec<TokenScope>,
    pub created_at: i64,
    pub expires_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

const TOKEN_COLUMNS: &str =
    "id, user_id, name, prefix, scopes, created_at, expires_at, last_used_at, revoked_at";

fn token_from_row(row: &sqlx::any::AnyRow) -> Result<TokenRow, StorageError> {
    let scopes: String = row.try_get("scopes")?;
    Ok(TokenRow {
        id: row.try_get("id")?,
        user_id: UserId(row.try_get("user_id")?),
        name: row.try_get("name")?,
        prefix: row.try_get("prefix")?,
        scopes: scopes.split(',').filter_map(TokenScope::parse).collect(),
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        last_used_at: row.try_get("last_used_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

pub struct NewTokenRow<'a> {
    pub user_id: UserId,
    pub name: &'a str,
    pub prefix: &'a str,
    pub secret_hash: &'a str,
    pub scopes: &'a [TokenScope],
    pub expires_at: i64,
    /// The token the call that made this one came with.
    pub parent_id: Option<i64>,
}

pub async fn insert(conn: &mut AnyConnection, new: &NewTokenRow<'_>) -> Result<i64, StorageError> {
    let scopes: Vec<&str> = new.scopes.iter().map(|s| s.as_str()).collect();
    Ok(sqlx::query_scalar(
        "INSERT INTO api_tokens (user_id, name, prefix, secret_hash, scopes, created_at, expires_at, parent_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
    )
    .bind(new.user_id.0)
    .bind(new.name)
    .bind(new.prefix)
    .bind(new.secret_hash)
    .bind(scopes.join(","))
    .bind(now_millis())
    .bind(new.expires_at)
    .bind(new.parent_id)
    .fetch_one(&mut *conn)
    .await?)
}

/// A user's tokens that are live or ended (revoked or expired) after
/// `ended_after`, the live ones first, each part newest first, at most `limit`:
/// a script that makes and revokes tokens in a loop does not grow the list.
pub async fn by_user(
    conn: &mut AnyConnection,
    user: UserId,
    (ended_after, now): (i64, i64),
    limit: i64,
) -> Result<Vec<TokenRow>, StorageError> {
    let rows = sqlx::query(&format!(
        "SELECT {TOKEN_COLUMNS} FROM api_tokens \
         WHERE user_id = $1 AND COALESCE(revoked_at, expires_at) > $2 \
         ORDER BY CASE WHEN revoked_at IS NULL AND expires_at > $3 THEN 0 ELSE 1 END, id DESC \
         LIMIT $4"
    ))
    .bind(user.0)
    .bind(ended_after)
    .bind(now)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(token_from_row).collect()
}

/// Holds the person's turn at making tokens to the end of the transaction: on
/// PostgreSQL two made at once would both count the live ones before either is
/// in (SQLite has one writer at a time anyway).
pub async fn take_turn(
    conn: &mut AnyConnection,
    engine: super::Engine,
    user: UserId,
) -> Result<(), StorageError> {
    super::take_turn(conn, engine, super::Turn::Tokens, &user.0.to_string()).await
}

/// How many of a user's tokens work now.
pub async fn live_count(
    conn: &mut AnyConnection,
    user: UserId,
    now: i64,
) -> Result<i64, StorageError> {
    Ok(sqlx::query_scalar(
        "SELECT COUNT(*) FROM api_tokens WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2",
    )
    .bind(user.0)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?)
}

pub async fn get(conn: &mut AnyConnection, id: i64) -> Result<Option<TokenRow>, StorageError> {
    let row = sqlx::query(&format!(
        "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(token_from_row).transpose()
}

/// A token that may be used now: not revoked, not expired, and made (if it was
/// made with a token) with a token whose own line is still live: a token minted
/// with one that was revoked meanwhile never works, whenever its row landed.
pub async fn usable_by_hash(
    conn: &mut AnyConnection,
    secret_hash: &str,
) -> Result<Option<TokenRow>, StorageError> {
    let row = sqlx::query(&usable_sql("secret_hash = $1"))
        .bind(secret_hash)
        .bind(now_millis())
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(token_from_row).transpose()
}

/// [`usable_by_hash`] by the token's id: whether a call that began with it may
/// go on (a long export asks again between batches).
pub async fn usable_by_id(
    conn: &mut AnyConnection,
    id: i64,
) -> Result<Option<TokenRow>, StorageError> {
    let row = sqlx::query(&usable_sql("id = $1"))
        .bind(id)
        .bind(now_millis())
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(token_from_row).transpose()
}

/// The token `which` ($1) names, if usable at $2: its line walks up from it
/// through the tokens that made it and stops at the first that ended; one that
/// ended disqualifies it. The line is short: every token in it is one of the
/// person's live ones.
fn usable_sql(which: &str) -> String {
    format!(
        "WITH RECURSIVE line (id, parent_id, ended) AS ( \
             SELECT id, parent_id, 0 FROM api_tokens WHERE {which} \
             UNION ALL \
             SELECT t.id, t.parent_id, \
                    CASE WHEN t.revoked_at IS NOT NULL OR t.expires_at <= $2 THEN 1 ELSE 0 END \
             FROM api_tokens t JOIN line l ON t.id = l.parent_id WHERE l.ended = 0 \
         ) \
         SELECT {TOKEN_COLUMNS} FROM api_tokens \
         WHERE {which} AND revoked_at IS NULL AND expires_at > $2 \
           AND NOT EXISTS (SELECT 1 FROM line WHERE ended = 1)"
    )
}

/// Holds a token's row to the end of the transaction (on PostgreSQL; SQLite has
/// one writer at a time anyway) and answers whether it is live: not revoked, not
/// expired. A token made with it in the same transaction is then either seen by
/// a concurrent revocation (which updates this row first, then follows the
/// tokens made with it) or refused after it.
pub async fn lock_live(
    conn: &mut AnyConnection,
    engine: super::Engine,
    id: i64,
) -> Result<bool, StorageError> {
    let lock = match engine {
        super::Engine::Postgres => " FOR UPDATE",
        super::Engine::Sqlite => "",
    };
    let found: Option<i64> = sqlx::query_scalar(&format!(
        "SELECT id FROM api_tokens WHERE id = $1 AND revoked_at IS NULL AND expires_at > $2{lock}"
    ))
    .bind(id)
    .bind(now_millis())
    .fetch_optional(&mut *conn)
    .await?;
    Ok(found.is_some())
}

/// Records a use, at most once a minute per token so reads stay cheap; true when
/// this call refreshed it.
pub async fn touch(conn: &mut AnyConnection, id: i64) -> Result<bool, StorageError> {
    let now = now_millis();
    let done = sqlx::query(
        "UPDATE api_tokens SET last_used_at = $1 \
         WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $3)",
    )
    .bind(now)
    .bind(id)
    .bind(now - 60_000)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Revokes every live token of `user`; answers how many. Whoever calls it
/// updates the user's row first in the same transaction (disabling the
/// account): a token being made for the account meanwhile holds that row, so
/// it is either in before this statement reads or refused after it.
pub async fn revoke_all(conn: &mut AnyConnection, user: UserId) -> Result<u64, StorageError> {
    let done = sqlx::query(
        "UPDATE api_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
    )
    .bind(now_millis())
    .bind(user.0)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected())
}

/// Revokes a live token of `user` and every live token made with it, and with
/// those, down the chain; answers how many ended (none: no such live token).
///
/// The token's own row is updated first, on its own: a token being made with it
/// holds that row (see [`lock_live`]), so this waits for it to be in, and one
/// that comes after is refused. The chain is then followed until a pass finds
/// nothing left live: on PostgreSQL each statement sees what committed before it
/// began, so a token committed while one pass waited is ended by the next.
pub async fn revoke(conn: &mut AnyConnection, id: i64, user: UserId) -> Result<u64, StorageError> {
    let now = now_millis();
    let root = sqlx::query(
        "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(id)
    .bind(user.0)
    .execute(&mut *conn)
    .await?;
    if root.rows_affected() == 0 {
        return Ok(0);
    }
    let mut ended = root.rows_affected();
    loop {
        let done = sqlx::query(
            "WITH RECURSIVE chain (id) AS ( \
                 SELECT id FROM api_tokens WHERE parent_id = $2 \
                 UNION SELECT t.id FROM api_tokens t JOIN chain c ON t.parent_id = c.id \
             ) \
             UPDATE api_tokens SET revoked_at = $1 \
             WHERE id IN (SELECT id FROM chain) AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *conn)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(ended);
        }
        ended += done.rows_affected();
    }
}

/// Tokens deleted per transaction when long-ended ones are forgotten.
const FORGET_BATCH: i64 = 2000;

/// Deletes the tokens that ended (expired or revoked) before `before`: a CI
/// script that makes a token per job leaves thousands a year. What each did
/// stays in the audit log, which names the token by id. A token another token
/// was made with is kept while that one is: its end is what keeps the other
/// unusable (see [`usable_sql`]). Returns how many went.
pub async fn forget_ended_before(db: &super::Db, before: i64) -> Result<u64, StorageError> {
    let mut forgotten = 0;
    for ended in ["expires_at", "revoked_at"] {
        let sql = format!(
            "DELETE FROM api_tokens WHERE id IN (SELECT t.id FROM api_tokens t \
             WHERE t.{ended} < $1 \
               AND NOT EXISTS (SELECT 1 FROM api_tokens c WHERE c.parent_id = t.id) \
             ORDER BY t.id LIMIT $2)"
        );
        forgotten += super::in_batches(db, &sql, &[before], FORGET_BATCH).await?;
    }
    Ok(forgotten)
}
