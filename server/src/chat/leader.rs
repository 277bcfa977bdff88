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
    // One session asks, again and again, for as long as this replica stands by
    // (a session per try closed a connection every two seconds, for ever).
    let mut asking: Option<AnyConnection> = None;
    loop {
        match try_lock(state, &mut asking).await {
            Ok(true) => {
                if let Some(session) = asking.take() {
                    tracing::info!("this replica runs the chat bot");
                    return Some(Leadership::Held(session));
                }
            }
            Ok(false) if !announced => {
                tracing::info!("another replica runs the chat bot; this one stands by");
                announced = true;
            }
            Ok(false) => {}
            Err(error) => tracing::warn!(%error, "the chat bot cannot ask for its lock"),
        }
        if !pause_or_stop(CHECK_EVERY, stopped).await {
            return None;
        }
    }
}

/// Asks for the lock on a session of its own (not returned to the pool, where the
/// lock would outlive the bot), made when there is none; a session that fails is
/// dropped, and the next try makes another.
async fn try_lock(
    state: &AppState,
    asking: &mut Option<AnyConnection>,
) -> Result<bool, StorageError> {
    let session = match asking {
        Some(session) => session,
        None => asking.insert(state.db.pool.acquire().await?.detach()),
    };
    let held = sqlx::query_scalar::<_, bool>("SELECT pg_try_advisory_lock($1)")
        .bind(BOT_LOCK)
        .fetch_one(&mut *session)
        .await;
    match held {
        Ok(held) => Ok(held),
        Err(error) => {
            *asking = None;
            Err(error.into())
        }
    }
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
