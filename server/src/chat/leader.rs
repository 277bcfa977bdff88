//! One bot among replicas. On PostgreSQL the replica that holds a session-level
//! advisory lock runs the bot; the others stand by and take over when its
//! database session ends (the lock ends with it), so every replica may be given
//! the chat settings. On SQLite the process that holds a lock file beside the
//! database runs it: a second process on the same file (one serving pages with
//! `--workers 0`, given the same Matrix settings) stands by in the same way.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::AnyConnection;
use tokio::sync::watch;

use super::pause_or_stop;
use crate::state::AppState;
use crate::storage::{Engine, StorageError, sqlite_file};

/// Taken only by chat bots, for as long as their session lives (the other keys
/// of 7105xxx are the sealer's, submissions', and the catalog syncs').
const BOT_LOCK: i64 = 7105005;
/// How often a standby asks for the lock, and the leader checks its session.
const CHECK_EVERY: Duration = Duration::from_secs(2);

/// The right to run the bot.
pub enum Leadership {
    /// An in-memory SQLite database: no other process can reach it.
    Sole,
    /// SQLite: the lock file beside the database, held while it is open (the
    /// OS lets it go when the process dies).
    File(File),
    /// PostgreSQL: the session that holds the advisory lock.
    Held(AnyConnection),
}

impl Leadership {
    /// The database session the lock lives in, on PostgreSQL.
    pub fn session(&mut self) -> Option<&mut AnyConnection> {
        match self {
            Leadership::Held(session) => Some(session),
            Leadership::Sole | Leadership::File(_) => None,
        }
    }
}

/// Waits until this replica may run the bot; `None` when told to stop first.
pub async fn acquire(state: &AppState, stopped: &mut watch::Receiver<bool>) -> Option<Leadership> {
    if state.db.engine == Engine::Sqlite {
        return match lock_path(&state.settings.database_url) {
            Some(path) => acquire_file(&path, stopped).await,
            None => Some(Leadership::Sole),
        };
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

/// Waits for the SQLite lock file, asking every [`CHECK_EVERY`].
async fn acquire_file(path: &Path, stopped: &mut watch::Receiver<bool>) -> Option<Leadership> {
    let mut announced = false;
    loop {
        match try_lock_file(path) {
            Ok(Some(file)) => {
                tracing::info!("this process runs the chat bot");
                return Some(Leadership::File(file));
            }
            Ok(None) if !announced => {
                tracing::info!(
                    lock = %path.display(),
                    "another process runs the chat bot on this SQLite database; this one stands by"
                );
                announced = true;
            }
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(lock = %path.display(), %error, "the chat bot cannot take its lock file");
            }
        }
        if !pause_or_stop(CHECK_EVERY, stopped).await {
            return None;
        }
    }
}

/// The chat bot's lock file of the SQLite database a `sqlite:` URL names,
/// beside the workers' one (`<database>.chat.lock`); none for an in-memory
/// database.
fn lock_path(database_url: &str) -> Option<PathBuf> {
    let path = sqlite_file(database_url)?;
    // The file itself, not the name it was given by: a process that names it
    // through a symbolic link or another relative path finds the same lock.
    let mut lock = std::fs::canonicalize(&path)
        .unwrap_or(path)
        .into_os_string();
    lock.push(".chat.lock");
    Some(PathBuf::from(lock))
}

/// Takes the lock file, as the workers' lock is taken (an exclusive `flock`,
/// which two open files conflict on even within one process); `None` while
/// another holds it.
fn try_lock_file(path: &Path) -> std::io::Result<Option<File>> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(error)) => Err(error),
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
        None => asking.insert(lock_session(state).await?),
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

/// A session of its own for the lock, told to notice a peer that died.
async fn lock_session(state: &AppState) -> Result<AnyConnection, StorageError> {
    let mut session = state.db.pool.acquire().await?.detach();
    if let Err(error) = keep_alive(&mut session).await {
        tracing::warn!(%error, "the chat bot's lock session has no TCP keepalives; a dead host may hold the lock for hours");
    }
    Ok(session)
}

/// The first version (`server_version_num`) with `client_connection_check_interval`.
const CONNECTION_CHECKS_SINCE: i64 = 140_000;

/// Server-side TCP keepalives on the lock's session. A host that dies without
/// closing its connection (power cut, network cut) leaves its backend, and the
/// lock, alive for as long as the kernel's defaults wait on a silent peer
/// (about two hours), and no replica runs the bot meanwhile. With these,
/// PostgreSQL ends that backend some 25 s after the host went silent (10 s
/// idle, then 3 probes 5 s apart), and the lock with it. From PostgreSQL 14 it
/// also checks the client every 5 s while a statement runs. They need a direct
/// connection to PostgreSQL: behind a pooler they apply to its connection.
async fn keep_alive(session: &mut AnyConnection) -> Result<(), sqlx::Error> {
    for setting in [
        "SET tcp_keepalives_idle = 10",
        "SET tcp_keepalives_interval = 5",
        "SET tcp_keepalives_count = 3",
    ] {
        sqlx::query(setting).execute(&mut *session).await?;
    }
    let version: String = sqlx::query_scalar("SELECT current_setting('server_version_num')")
        .fetch_one(&mut *session)
        .await?;
    if version.trim().parse::<i64>().unwrap_or(0) < CONNECTION_CHECKS_SINCE {
        return Ok(());
    }
    // Optional (a server built without it refuses it): the keepalives above
    // already end a dead peer's session.
    let checks = sqlx::query("SET client_connection_check_interval = '5s'")
        .execute(&mut *session)
        .await;
    if let Err(error) = checks {
        tracing::debug!(%error, "the chat bot's lock session does not check its client");
    }
    Ok(())
}

/// Resolves once the lock may have gone: the session stopped answering, so
/// another replica may hold the lock now and this bot must stop. A lock file
/// is held as long as this process lives.
pub async fn lost(leadership: &mut Leadership) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chat_lock_lies_beside_the_database_file() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let db = dir.path().join("slipway.db");
        std::fs::write(&db, b"")?;
        let canonical = std::fs::canonicalize(&db)?;
        let expected = PathBuf::from(format!("{}.chat.lock", canonical.display()));
        let url = format!("sqlite://{}?mode=rwc", db.display());
        assert_eq!(lock_path(&url), Some(expected.clone()));
        assert_eq!(
            lock_path(&format!("sqlite:{}", db.display())),
            Some(expected)
        );
        assert_eq!(lock_path("sqlite::memory:"), None);
        assert_eq!(lock_path("sqlite://"), None);
        assert_eq!(lock_path("postgres://db/slipway"), None);
        Ok(())
    }

    #[test]
    fn the_database_file_is_read_from_its_url_as_sqlx_reads_it() {
        let file = |url: &str| sqlite_file(url).map(|p| p.display().to_string());
        assert_eq!(
            file("sqlite:my%20db.sqlite").as_deref(),
            Some("my db.sqlite")
        );
        assert_eq!(file("sqlite:my db.sqlite").as_deref(), Some("my db.sqlite"));
        assert_eq!(
            file("sqlite:///var/lib/slipway/a%3Fb%23c.db?mode=rwc").as_deref(),
            Some("/var/lib/slipway/a?b#c.db")
        );
        assert_eq!(
            file("sqlite://slipway.db?mode=rwc").as_deref(),
            Some("slipway.db")
        );
        // In memory: no other process can reach it, and no lock is taken.
        for memory in [
            "sqlite::memory:",
            "sqlite://:memory:",
            "sqlite::memory:?cache=shared",
            "sqlite://shared?mode=memory",
            "sqlite:shared?cache=shared&mode=memory",
            "sqlite://?mode=memory",
        ] {
            assert_eq!(file(memory), None, "{memory}");
        }
        assert_eq!(
            file("sqlite:%FF.db"),
            None,
            "not UTF-8: sqlx refuses it too"
        );
    }

    #[test]
    fn one_process_holds_the_lock_file_the_next_waits_for_it() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("slipway.db.chat.lock");
        let first = try_lock_file(&path)?;
        assert!(first.is_some(), "a free lock is taken");
        // Another open file of the same lock, as a second process's would be.
        assert!(
            try_lock_file(&path)?.is_none(),
            "a held lock is not taken twice"
        );
        drop(first);
        assert!(
            try_lock_file(&path)?.is_some(),
            "a lock let go is taken again"
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_standby_waits_for_the_lock_file_and_stops_when_told() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("slipway.db.chat.lock");
        let held = try_lock_file(&path)?;
        let (stop, mut stopped) = watch::channel(false);
        let standby = tokio::spawn({
            let path = path.clone();
            async move { acquire_file(&path, &mut stopped).await.is_some() }
        });
        tokio::time::sleep(CHECK_EVERY + Duration::from_millis(500)).await;
        assert!(
            !standby.is_finished(),
            "the standby took a lock that is held"
        );
        drop(held);
        let took = tokio::time::timeout(CHECK_EVERY * 3, standby).await;
        assert!(
            matches!(took, Ok(Ok(true))),
            "the standby took the lock let go"
        );
        // A standby told to stop gives up.
        let _held = try_lock_file(&path)?;
        let (stop_now, mut stopped) = watch::channel(false);
        let waiting =
            tokio::spawn(async move { acquire_file(&path, &mut stopped).await.is_some() });
        let _ = stop_now.send(true);
        let gave_up = tokio::time::timeout(CHECK_EVERY * 3, waiting).await;
        assert!(matches!(gave_up, Ok(Ok(false))));
        drop(stop);
        Ok(())
    }
}
