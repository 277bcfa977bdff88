//! tower-sessions storage on our own pool. The published sqlx stores need an
//! engine-specific pool; ours is `Any`, so sessions live beside the rest of the
//! data and follow the same migrations on both engines.
//!
//! Beside the opaque data, each row carries its user, its start, its last use and
//! the browser it came from (read from the data the sign-in put there), so people
//! can list and end their sessions and the absolute timeout holds on the server.
//!
//! A row is keyed by the SHA-256 of the session id ([`stored_key`]), never by the
//! id: the id is the credential, and whoever reads the database or a backup must
//! not be able to present it.

use std::time::Duration;

use async_trait::async_trait;
use sha2::Digest as _;
use slipway_core::ids::UserId;
use sqlx::{AnyConnection, AnyPool};
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, SessionStore};

use super::{StorageError, now_millis};

/// Session data key: the signed-in user's id.
pub const USER_KEY: &str = "user_id";
/// Session data key: the browser's `User-Agent` at sign-in.
pub const USER_AGENT_KEY: &str = "user_agent";
/// Session data key: the version of the account's password the sign-in checked
/// (`users.credential_version`; none is version 0). A session whose version is
/// no longer the account's loads as no session: a sign-in that read the password
/// before `slipway user set-password` changed it signs no one in, even when its
/// session is stored after that command ended the account's sessions.
pub const CREDENTIAL_KEY: &str = "credential_version";

#[derive(Debug, Clone)]
pub struct DbSessionStore {
    pool: AnyPool,
    /// Writes take the database's write path (on SQLite, its one writer).
    writer: AnyPool,
    absolute_millis: i64,
}

impl DbSessionStore {
    /// A store whose sessions end, at the latest, `absolute` after they began.
    pub fn new(db: &super::Db, absolute: Duration) -> Self {
        DbSessionStore {
            pool: db.pool.clone(),
            writer: db.writer.clone(),
            absolute_millis: i64::try_from(absolute.as_millis()).unwrap_or(i64::MAX),
        }
    }

    fn started_after(&self) -> i64 {
        now_millis().saturating_sub(self.absolute_millis)
    }

    /// Two statements, each served by its own index: with `OR` between them,
    /// SQLite read the whole table every minute.
    pub async fn delete_expired(&self) -> Result<u64, sqlx::Error> {
        let expired = sqlx::query("DELETE FROM sessions WHERE expires_at < $1")
            .bind(now_millis())
            .execute(&self.writer)
            .await?;
        let too_old = sqlx::query("DELETE FROM sessions WHERE created_at < $1")
            .bind(self.started_after())
            .execute(&self.writer)
            .await?;
        Ok(expired.rows_affected() + too_old.rows_affected())
    }

    /// Deletes expired sessions once a minute until the server shuts down.
    pub fn spawn_cleanup(self, shutdown: tokio::sync::watch::Receiver<bool>) {
        tokio::spawn(async move {
            let mut shutdown = shutdown;
            loop {
                if let Err(error) = self.delete_expired().await {
                    tracing::warn!(%error, "could not delete expired sessions");
                }
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_secs(60)) => {}
                    _ = shutdown.changed() => break,
                }
            }
        });
    }
}

/// The key a session's row is stored under: the SHA-256 of its id, in hex. A
/// session id is 128 random bits, so a plain hash is as hard to reverse as the
/// id is to guess, and it takes no secret that a lost key would void. Public
/// for tests that look a browser's session up in the table.
pub fn stored_key(session_id: &str) -> String {
    hex::encode(sha2::Sha256::digest(session_id.as_bytes()))
}

/// How a store error says that the database could not answer, so that the
/// caller can tell an outage (503) from a fault (see `http::session_failed`).
pub const UNAVAILABLE_MARK: &str = "the database cannot answer: ";

fn backend(error: sqlx::Error) -> session_store::Error {
    if super::database_unavailable(&error) {
        return session_store::Error::Backend(format!("{UNAVAILABLE_MARK}{error}"));
    }
    session_store::Error::Backend(error.to_string())
}

fn expiry_millis(record: &Record) -> i64 {
    (record.expiry_date.unix_timestamp_nanos() / 1_000_000) as i64
}

fn user_of(record: &Record) -> Option<i64> {
    record
        .data
        .get(USER_KEY)
        .and_then(serde_json::Value::as_i64)
}

/// Whether a session's sign-in checked a password the account no longer has
/// (`current`: the account's version; none when the session is nobody's or the
/// account is gone, which the caller's lookup of the user refuses anyway).
fn signed_in_with_old_credentials(
    data: &std::collections::HashMap<String, serde_json::Value>,
    current: Option<i64>,
) -> bool {
    let signed_in = data.get(USER_KEY).is_some_and(|v| !v.is_null());
    let checked = data
        .get(CREDENTIAL_KEY)
        .and_then(serde_json::Value::as_i64)
        .unwrap_or(0);
    signed_in && current.is_some_and(|current| current != checked)
}

fn user_agent_of(record: &Record) -> String {
    record
        .data
        .get(USER_AGENT_KEY)
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
        .chars()
        .take(300)
        .collect()
}

/// The most a session's data may take. A session holds who is signed in, a
/// sign-in's state and one refused form's text; more is a bug or someone
/// growing it on purpose, and every call of theirs reads and writes it whole.
pub const MAX_SESSION_BYTES: usize = 64 * 1024;

fn encoded(record: &Record) -> session_store::Result<String> {
    let data = serde_json::to_string(&record.data)
        .map_err(|e| session_store::Error::Encode(e.to_string()))?;
    if data.len() > MAX_SESSION_BYTES {
        return Err(session_store::Error::Encode(format!(
            "a session's data would take {} bytes; at most {MAX_SESSION_BYTES} are kept",
            data.len()
        )));
    }
    Ok(data)
}

#[async_trait]
impl SessionStore for DbSessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        let data = encoded(record)?;
        let now = now_millis();
        // A fresh id collides only by astronomically bad luck; retry instead of overwriting.
        loop {
            let inserted = sqlx::query(
                "INSERT INTO sessions \
                 (id, data, expires_at, user_id, handle, created_at, last_seen_at, user_agent) \
                 VALUES ($1, $2, $3, $4, $5, $6, $6, $7) \
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(stored_key(&record.id.to_string()))
            .bind(&data)
            .bind(expiry_millis(record))
            .bind(user_of(record))
            .bind(uuid::Uuid::new_v4().simple().to_string())
            .bind(now)
            .bind(user_agent_of(record))
            .execute(&self.writer)
            .await
            .map_err(backend)?;
            if inserted.rows_affected() == 1 {
                return Ok(());
            }
            record.id = Id::default();
        }
    }

    /// Updates only: a session ended elsewhere (signed out, ended from the sessions
    /// page) while one of its requests was running must stay ended, not come back.
    /// New sessions always arrive through `create`.
    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let data = encoded(record)?;
        sqlx::query(
            "UPDATE sessions SET data = $2, expires_at = $3, user_id = $4, last_seen_at = $5, \
             user_agent = $6 WHERE id = $1",
        )
        .bind(stored_key(&record.id.to_string()))
        .bind(data)
        .bind(expiry_millis(record))
        .bind(user_of(record))
        .bind(now_millis())
        .bind(user_agent_of(record))
        .execute(&self.writer)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let row: Option<(String, i64, Option<i64>)> = sqlx::query_as(
            "SELECT s.data, s.expires_at, u.credential_version FROM sessions s \
             LEFT JOIN users u ON u.id = s.user_id \
             WHERE s.id = $1 AND s.expires_at > $2 AND s.created_at > $3",
        )
        .bind(stored_key(&id.to_string()))
        .bind(now_millis())
        .bind(self.started_after())
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        let Some((data, expires_at, credential_version)) = row else {
            return Ok(None);
        };
        let data: std::collections::HashMap<String, serde_json::Value> =
            serde_json::from_str(&data).map_err(|e| session_store::Error::Decode(e.to_string()))?;
        if signed_in_with_old_credentials(&data, credential_version) {
            return Ok(None);
        }
        let expiry_date =
            time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(expires_at) * 1_000_000)
                .map_err(|e| session_store::Error::Decode(e.to_string()))?;
        Ok(Some(Record {
            id: *id,
            data,
            expiry_date,
        }))
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        sqlx::query("DELETE FROM sessions WHERE id = $1")
            .bind(stored_key(&id.to_string()))
            .execute(&self.writer)
            .await
            .map_err(backend)?;
        Ok(())
    }
}

/// One of a user's sessions, as its owner may see it.
#[derive(Debug, Clone)]
pub struct SessionRow {
    pub handle: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub user_agent: String,
    pub current: bool,
}

/// The user's live sessions, newest use first; `current` marks the one with the
/// session id `current_id` (the id, not its stored key).
pub async fn for_user(
    pool: &AnyPool,
    user: UserId,
    current_id: Option<&str>,
    absolute: Duration,
) -> Result<Vec<SessionRow>, StorageError> {
    let absolute = i64::try_from(absolute.as_millis()).unwrap_or(i64::MAX);
    let current_key = current_id.map(stored_key);
    let rows: Vec<(String, String, i64, i64, String)> = sqlx::query_as(
        "SELECT id, handle, created_at, last_seen_at, user_agent FROM sessions \
         WHERE user_id = $1 AND expires_at > $2 AND created_at > $3 \
         ORDER BY last_seen_at DESC LIMIT 101",
    )
    .bind(user.0)
    .bind(now_millis())
    .bind(now_millis().saturating_sub(absolute))
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(key, handle, created_at, last_seen_at, user_agent)| SessionRow {
                current: current_key.as_deref() == Some(key.as_str()),
                handle,
                created_at,
                last_seen_at,
                user_agent,
            },
        )
        .collect())
}

/// Ends one of the user's sessions; false when it is not theirs or already gone.
pub async fn end_for_user(
    conn: &mut AnyConnection,
    user: UserId,
    handle: &str,
) -> Result<bool, StorageError> {
    let done = sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND handle = $2")
        .bind(user.0)
        .bind(handle)
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Deletes every session of the user; answers how many there were.
pub async fn end_all_for_user(conn: &mut AnyConnection, user: UserId) -> Result<u64, StorageError> {
    let done = sqlx::query("DELETE FROM sessions WHERE user_id = $1")
        .bind(user.0)
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected())
}

/// Whether the session stored under `key` is still `user`'s to use: not signed
/// out or ended from the sessions page, not past its idle or absolute end, and
/// signed in with the password the account has now (as [`SessionStore::load`]
/// reads it).
pub async fn still_signed_in(
    conn: &mut AnyConnection,
    key: &str,
    user: UserId,
    absolute: Duration,
) -> Result<bool, StorageError> {
    let absolute = i64::try_from(absolute.as_millis()).unwrap_or(i64::MAX);
    let row: Option<(String, Option<i64>)> = sqlx::query_as(
        "SELECT s.data, u.credential_version FROM sessions s \
         LEFT JOIN users u ON u.id = s.user_id \
         WHERE s.id = $1 AND s.user_id = $2 AND s.expires_at > $3 AND s.created_at > $4",
    )
    .bind(key)
    .bind(user.0)
    .bind(now_millis())
    .bind(now_millis().saturating_sub(absolute))
    .fetch_optional(&mut *conn)
    .await?;
    let Some((data, credential_version)) = row else {
        return Ok(false);
    };
    let data: std::collections::HashMap<String, serde_json::Value> =
        serde_json::from_str(&data).unwrap_or_default();
    Ok(!signed_in_with_old_credentials(&data, credential_version))
}

/// Deletes the session with this id (its own user signing out); false when it was
/// already gone.
pub async fn end_by_id(conn: &mut AnyConnection, id: &str) -> Result<bool, StorageError> {
    let done = sqlx::query("DELETE FROM sessions WHERE id = $1")
        .bind(stored_key(id))
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected() > 0)
}
