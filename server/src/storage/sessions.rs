//! tower-sessions storage on our own pool. The published sqlx stores need an
//! engine-specific pool; ours is `Any`, so sessions live beside the rest of the
//! data and follow the same migrations on both engines.

use async_trait::async_trait;
use sqlx::AnyPool;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, SessionStore};

use super::now_millis;

#[derive(Debug, Clone)]
pub struct DbSessionStore {
    pool: AnyPool,
}

impl DbSessionStore {
    pub fn new(db: &super::Db) -> Self {
        DbSessionStore {
            pool: db.pool.clone(),
        }
    }

    pub async fn delete_expired(&self) -> Result<u64, sqlx::Error> {
        let done = sqlx::query("DELETE FROM sessions WHERE expires_at < $1")
            .bind(now_millis())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
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

fn backend(error: impl std::fmt::Display) -> session_store::Error {
    session_store::Error::Backend(error.to_string())
}

fn expiry_millis(record: &Record) -> i64 {
    (record.expiry_date.unix_timestamp_nanos() / 1_000_000) as i64
}

#[async_trait]
impl SessionStore for DbSessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        let data = serde_json::to_string(&record.data)
            .map_err(|e| session_store::Error::Encode(e.to_string()))?;
        // A fresh id collides only by astronomically bad luck; retry instead of overwriting.
        loop {
            let inserted = sqlx::query(
                "INSERT INTO sessions (id, data, expires_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(record.id.to_string())
            .bind(&data)
            .bind(expiry_millis(record))
            .execute(&self.pool)
            .await
            .map_err(backend)?;
            if inserted.rows_affected() == 1 {
                return Ok(());
            }
            record.id = Id::default();
        }
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let data = serde_json::to_string(&record.data)
            .map_err(|e| session_store::Error::Encode(e.to_string()))?;
        sqlx::query(
            "INSERT INTO sessions (id, data, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET data = excluded.data, expires_at = excluded.expires_at",
        )
        .bind(record.id.to_string())
        .bind(data)
        .bind(expiry_millis(record))
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let row: Option<(String, i64)> = sqlx::query_as(
            "SELECT data, expires_at FROM sessions WHERE id = $1 AND expires_at > $2",
        )
        .bind(id.to_string())
        .bind(now_millis())
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        let Some((data, expires_at)) = row else {
            return Ok(None);
        };
        let data =
            serde_json::from_str(&data).map_err(|e| session_store::Error::Decode(e.to_string()))?;
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
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }
}
