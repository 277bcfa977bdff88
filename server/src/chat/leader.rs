//! One bot among replicas. On PostgreSQL the replica that holds a session-level
//! advisory lock runs the bot; the others stand by and take over when its
//! database session ends (the lock ends with it), so every replica may be given
//! the chat settings. SQLite has one serving process, which is always the one.

use std::time::Duration;

use sqlx::AnyConnection;
use tokio::sync::watch;

use super::pause_or_stop;
use crate::state::AppState;
use crate::storage::{Engine, StorageError};

/// Taken only by chat bots, for as long as their session lives (the other keys
/// of 7105xxx are the sealer's, submissions', and the catalog syncs').
const BOT_LOCK: i64 = 7105005;
/// How often a standby asks for the lock, and the leader checks its session.
const CHECK_EVERY: Duration = Duration::from_secs(2);

/// The right to run the bot: on PostgreSQL, the session that holds the lock.
pub(super) enum Leadership {
    Sole,
    Held(AnyConnection),
}

/// Waits until this replica may run the bot; `None` when told to stop first.
pub(super) async fn acquire(
    state: &AppState,
    stopped: &mut watch::Receiver<bool>,
) -> Option<Leadership> {
    if state.db.engine == Engine::Sqlite {
        return Some(Leadership::Sole);
    }
    let mut announced = false;
    loop {
        match try_lock(state).await {
            Ok(Some(session)) => {
                tracing::info!("this replica runs the chat bot");
                return Some(Leadership::Held(session));
            }
            Ok(None) if !announced => {
                tracing::info!("another replica runs the chat bot; this one stands by");
                announced = true;
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, "the chat bot cannot ask for its lock"),
        }
        if !pause_or_stop(CHECK_EVERY, stopped).await {
            return None;
        }
    }
}

/// A session of its own (not returned to the pool, where the lock would outlive
/// the bot), kept when it got the lock.
async fn try_lock(state: &AppState) -> Result<Option<AnyConnection>, StorageError> {
    let mut session = state.db.pool.acquire().await?.detach();
    let held: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(BOT_LOCK)
        .fetch_one(&mut session)
        .await?;
    Ok(held.then_some(session))
}

/// Resolves once the lock may have gone: the session stopped answering, so
/// another replica may hold the lock now and this bot must stop.
pub(super) async fn lost(leadership: &mut Leadership) {
    let Leadership::Held(session) = leadership else {
        return std::future::pending().await;
    };
    loop {
        tokio::time::sleep(CHECK_EVERY).await;
        let alive =
            tokio::time::timeout(CHECK_EVERY, sqlx::query("SELECT 1").execute(&mut *session)).await;
        if !matches!(alive, Ok(Ok(_))) {
            return;
        }
    }
}
