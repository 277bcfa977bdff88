//! Every SQL statement lives in this module tree. Functions take an executor or a
//! transaction, so services compose them inside one transaction.
//!
//! One query set serves both engines through sqlx's `Any` driver: parameters are
//! written `$1`, which SQLite and PostgreSQL both accept, and values stay within the
//! types both map the same way (BIGINT, TEXT). Where the dialects truly differ
//! (claiming a job) the module branches on [`Engine`].

pub mod assets;
pub mod audit;
pub mod chat;
pub mod flow;
pub mod guidance;
pub mod idempotency;
pub mod jobs;
pub(crate) mod listing;
pub mod lookup;
pub mod path_claims;
pub mod pipeline_runs;
pub mod progress;
pub mod push_turns;
pub mod quota;
pub mod requests;
pub mod search;
pub mod secrets;
pub mod sessions;
pub mod stranding;
pub mod throttle;
pub mod tokens;
pub mod type_versions;
pub mod upgrades;
pub mod users;

/// Rows a list with a windowed condition reads first (a PostgreSQL asset search).
pub use listing::WINDOW as LIST_WINDOW;

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{Any, AnyConnection, AnyPool, Executor, Transaction};

/// A write transaction. On SQLite it runs on the one connection of the writer
/// pool, so this process's writers queue for it in order, instead of polling
/// SQLite's busy handler (which sleeps up to 100 ms between tries and turned a
/// burst of submits into second-long tails), and a writer never waits for a
/// reader's connection while holding the write lock. (Other processes on the same
/// file still meet the busy timeout.)
pub struct Tx {
    inner: Transaction<'static, Any>,
}

impl Tx {
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.inner.commit().await
    }

    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.inner.rollback().await
    }
}

impl std::ops::Deref for Tx {
    type Target = AnyConnection;
    fn deref(&self) -> &Self::Target {
        &self.inner
    }
}

impl std::ops::DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.inner
    }
}

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/postgres");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("DATABASE_URL must start with sqlite: or postgres:, got {0:?}")]
    UnsupportedUrl(String),
    #[error("database: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is not readable: {0}")]
    Corrupt(String),
    #[error("database: beginning a transaction stopped: {0}")]
    Interrupted(String),
    #[error("the database at {at} could not be reached: {reason}")]
    Unreachable { at: String, reason: String },
}

/// The connection pools and the engine behind them. `pool` serves reads (and, on
/// PostgreSQL, writes too); on SQLite every write goes through `writer`, a pool of
/// one connection, because SQLite has one writer at a time anyway.
#[derive(Clone, Debug)]
pub struct Db {
    pub pool: AnyPool,
    pub writer: AnyPool,
    pub engine: Engine,
}

/// Reader connections on SQLite: WAL lets them all read while one writes.
const READERS: u32 = 8;
/// How long a SQLite writer waits for its turn before the call fails; under load
/// the queue moves a few hundred transactions a second.
const SQLITE_WRITE_WAIT: Duration = Duration::from_secs(30);

/// SQLite connections. The writer does not checkpoint the write-ahead log at
/// commit (SQLite's default makes whichever commit crosses 1,000 pages copy them
/// into the database file, a tail of tens of milliseconds on a large database);
/// [`spawn_checkpointer`] does it beside the writer instead.
fn sqlite_pool(connections: u32, writer: bool) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(connections)
        .acquire_timeout(SQLITE_WRITE_WAIT)
        // A file connection does not drop like a network one; a ping per write
        // transaction would be a round trip to the connection's thread for nothing.
        .test_before_acquire(false)
        .after_connect(move |conn, _| {
            Box::pin(async move {
                conn.execute(
                    "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000; \
                     PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;",
                )
                .await?;
                if writer {
                    conn.execute("PRAGMA wal_autocheckpoint = 0").await?;
                }
                Ok(())
            })
        })
}

/// How often the log is copied into the database file. A passive checkpoint
/// neither waits for nor blocks the writer or the readers.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// Checkpoints the write-ahead log on a reader connection until the pool closes.
fn spawn_checkpointer(readers: AnyPool) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !readers.is_closed() {
            tick.tick().await;
            if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&readers)
                .await
            {
                tracing::debug!(%error, "write-ahead log checkpoint did not run");
            }
        }
    });
}

/// Whether `error` says the database is out of reach for now rather than that
/// this call was wrong: no connection (refused, lost, none free in time), a
/// server shutting down or starting, or out of connections.
pub fn database_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| unavailable_code(&code)),
        _ => false,
    }
}

/// PostgreSQL's codes for a server out of reach: the connection exceptions
/// but a protocol violation (a client's bug), the shutdowns and start-up, and
/// too many connections. A read-only transaction (25006) is not among them:
/// a standby says it, and so would a write slipped into a read-only snapshot.
fn unavailable_code(code: &str) -> bool {
    matches!(
        code,
        "08000"
            | "08001"
            | "08003"
            | "08004"
            | "08006"
            | "08007"
            | "57P01"
            | "57P02"
            | "57P03"
            | "53300"
    )
}

/// How long start-up waits for the database server's first answer.
const FIRST_CONNECT_WAIT: Duration = Duration::from_secs(10);

/// One connection made before the pool is: the pool retries a refused
/// connection until its acquire timeout and then says only "pool timed out",
/// where the connection's own error (refused, no such host, a password the
/// server turned down) is what the person starting Slipway needs.
async fn first_connection(url: &str, options: &AnyConnectOptions) -> Result<(), StorageError> {
    use sqlx::Connection as _;
    // Named by host and port only: the URL may hold a password.
    let at = url::Url::parse(url)
        .ok()
        .map(|u| {
            let host = u.host_str().unwrap_or("localhost").to_string();
            u.port()
                .map_or(host.clone(), |port| format!("{host}:{port}"))
        })
        .unwrap_or_else(|| "DATABASE_URL".into());
    let unreachable = |reason: String| StorageError::Unreachable {
        at: at.clone(),
        reason,
    };
    // A server still starting (it refuses connections, or says it is starting
    // up) is waited for, as when Slipway and PostgreSQL start together; any
    // other refusal (a password, a database that does not exist) is final.
    let deadline = tokio::time::Instant::now() + FIRST_CONNECT_WAIT;
    let mut pause = Duration::from_millis(250);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let error =
            match tokio::time::timeout(left, sqlx::AnyConnection::connect_with(options)).await {
                Ok(Ok(connection)) => {
                    let _ = connection.close().await;
                    return Ok(());
                }
                Ok(Err(error)) => error,
                Err(_) => {
                    return Err(unreachable(format!(
                        "no answer within {} s",
                        FIRST_CONNECT_WAIT.as_secs()
                    )));
                }
            };
        let starting = match &error {
            sqlx::Error::Io(_) => true,
            sqlx::Error::Database(db) => db.code().as_deref() == Some("57P03"),
            _ => false,
        };
        if !starting || tokio::time::Instant::now() + pause >= deadline {
            return Err(unreachable(error.to_string()));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

impl Db {
    /// Connects and applies the engine's migrations.
    pub async fn connect(url: &str) -> Result<Db, StorageError> {
        sqlx::any::install_default_drivers();
        let engine = if url.starts_with("sqlite:") {
            Engine::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Engine::Postgres
        } else {
            return Err(StorageError::UnsupportedUrl(url.to_string()));
        };
        let options = AnyConnectOptions::from_str(url)?;
        let (pool, writer) = match engine {
            Engine::Sqlite => {
                let readers = sqlite_pool(READERS, false)
                    .connect_with(options.clone())
                    .await?;
                let writer = sqlite_pool(1, true).connect_with(options).await?;
                spawn_checkpointer(readers.clone());
                (readers, writer)
            }
            Engine::Postgres => {
                first_connection(url, &options).await?;
                let pool = AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(options)
                    .await?;
                (pool.clone(), pool)
            }
        };
        let migrator = match engine {
            Engine::Sqlite => &SQLITE_MIGRATIONS,
            Engine::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&writer).await?;
        Ok(Db {
            pool,
            writer,
            engine,
        })
    }

    /// A transaction that will write. On SQLite it takes the write lock up front
    /// (`BEGIN IMMEDIATE`): a deferred transaction that later upgrades can fail with
    /// SQLITE_BUSY instead of waiting for the busy timeout.
    ///
    /// The transaction is begun on a task of its own, so that a caller dropped
    /// while it waits (a handler whose client hung up) cannot leave the connection
    /// in a transaction no one holds: sqlx would hand that connection out again
    /// and every later `BEGIN` on it would fail, wedging this process's writer.
    /// The task always receives the transaction; with no caller left to take it,
    /// dropping it rolls it back.
    pub async fn write(&self) -> Result<Tx, StorageError> {
        let (engine, pool) = match self.engine {
            Engine::Sqlite => (Engine::Sqlite, self.writer.clone()),
            Engine::Postgres => (Engine::Postgres, self.pool.clone()),
        };
        let begun = tokio::spawn(async move {
            match engine {
                Engine::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await,
                Engine::Postgres => pool.begin().await,
            }
        })
        .await
        .map_err(|e| StorageError::Interrupted(e.to_string()))?;
        Ok(Tx { inner: begun? })
    }

    /// A read-only transaction whose reads all see one moment of the database: a
    /// page that reads a cursor and then the rows after it must not see a row
    /// that committed in between.
    pub async fn snapshot(&self) -> Result<Transaction<'static, Any>, StorageError> {
        Ok(match self.engine {
            // A deferred transaction reads from one WAL snapshot from its first read.
            Engine::Sqlite => self.pool.begin_with("BEGIN").await?,
            Engine::Postgres => {
                self.pool
                    .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .await?
            }
        })
    }

    pub async fn ping(&self) -> Result<(), StorageError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// How the database's applied migrations compare with this build's: versions
    /// this build has that are not applied, and applied ones it does not know (a
    /// newer replica migrated the database).
    pub async fn migration_status(&self) -> Result<MigrationStatus, StorageError> {
        let migrator = match self.engine {
            Engine::Sqlite => &SQLITE_MIGRATIONS,
            Engine::Postgres => &POSTGRES_MIGRATIONS,
        };
        let applied: Vec<i64> = sqlx::query_scalar(
            "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version",
        )
        .fetch_all(&self.pool)
        .await?;
        let known: Vec<i64> = migrator.iter().map(|m| m.version).collect();
        Ok(MigrationStatus {
            missing: known
                .iter()
                .copied()
                .filter(|v| !applied.contains(v))
                .collect(),
            unknown: applied.into_iter().filter(|v| !known.contains(v)).collect(),
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationStatus {
    pub missing: Vec<i64>,
    pub unknown: Vec<i64>,
}

/// One page of a list kept in id order, newest first: rows before `before` (an id
/// or sequence number from the previous page), at most `limit` of them. Keyset
/// paging stays stable while rows are added and never scans what it skips.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub before: Option<i64>,
    pub limit: i64,
}

impl Window {
    pub const fn first(limit: i64) -> Window {
        Window {
            before: None,
            limit,
        }
    }
}

/// Milliseconds since the Unix epoch: the one clock every row uses.
/// The time leases are measured by: on PostgreSQL the database's own clock, so
/// replicas whose clocks disagree still agree on when a lease ends (a replica
/// running behind would otherwise take over healthy jobs, and one running ahead
/// hold dead ones for longer); SQLite has one worker process, whose clock it is.
pub async fn lease_clock(conn: &mut AnyConnection, engine: Engine) -> Result<i64, StorageError> {
    match engine {
        Engine::Postgres => Ok(sqlx::query_scalar(&format!("SELECT {POSTGRES_CLOCK}"))
            .fetch_one(conn)
            .await?),
        Engine::Sqlite => Ok(now_millis()),
    }
}

/// The database's clock in milliseconds, as PostgreSQL reads it in a statement.
const POSTGRES_CLOCK: &str = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)";

/// The lease clock as SQL to put in a statement where a queue time is written
/// (on PostgreSQL), or `None` where this process's clock is the lease clock
/// (SQLite): a time a replica writes is then compared with claims on one clock.
pub fn lease_clock_sql(conn: &AnyConnection) -> Option<&'static str> {
    (conn.backend_name() == "PostgreSQL").then_some(POSTGRES_CLOCK)
}

/// The id of the last row of `table` stamped (`time`) before `before`, if any,
/// where ids grow with time: the first row at or after an id, by the primary
/// key, tells which side of the cut that id is on, so the id range is halved a
/// few dozen times instead of the old rows being walked. `table` and `time` are
/// the code's own names, never input.
pub(crate) async fn last_id_before(
    conn: &mut AnyConnection,
    (table, time): (&str, &str),
    before: i64,
) -> Result<Option<i64>, StorageError> {
    let (low, high): (Option<i64>, Option<i64>) =
        sqlx::query_as(&format!("SELECT MIN(id), MAX(id) FROM {table}"))
            .fetch_one(&mut *conn)
            .await?;
    let (Some(mut low), Some(mut high)) = (low, high) else {
        return Ok(None);
    };
    let at_or_after = async |conn: &mut AnyConnection, id: i64| {
        sqlx::query_as::<_, (i64, i64)>(&format!(
            "SELECT id, {time} FROM {table} WHERE id >= $1 ORDER BY id LIMIT 1"
        ))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
    };
    match at_or_after(conn, low).await? {
        Some((_, at)) if at < before => {}
        _ => return Ok(None),
    }
    // Invariant: the line at or after `low` is old; the one after `high` is not.
    while low < high {
        let middle = low + (high - low + 1) / 2;
        match at_or_after(conn, middle).await? {
            Some((id, at)) if at < before => low = id,
            _ => high = middle - 1,
        }
    }
    Ok(Some(low))
}

/// Runs `sql` again and again, each time in a write transaction of its own,
/// until it changes fewer rows than `batch`: a chore over many old rows never
/// holds the writer long. `values` are bound as `$1…` in order, then `batch`
/// as the last; `sql` is the code's own, never input. Returns the rows changed.
pub(crate) async fn in_batches(
    db: &Db,
    sql: &str,
    values: &[i64],
    batch: i64,
) -> Result<u64, StorageError> {
    let mut changed = 0;
    loop {
        let mut tx = db.write().await?;
        let mut query = sqlx::query(sql);
        for value in values {
            query = query.bind(*value);
        }
        let done = query.bind(batch).execute(&mut *tx).await?;
        tx.commit().await?;
        changed += done.rows_affected();
        if done.rows_affected() < batch as u64 {
            return Ok(changed);
        }
    }
}

pub fn now_millis() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    (now.unix_timestamp_nanos() / 1_000_000) as i64
}

/// A human reading of a stored time, always UTC.
pub fn format_millis(millis: i64) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
        .ok()
        .and_then(|t| t.format(format).ok())
        .unwrap_or_else(|| millis.to_string())
}

pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    text: &str,
    what: &str,
) -> Result<T, StorageError> {
    serde_json::from_str(text).map_err(|e| StorageError::Corrupt(format!("{what}: {e}")))
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> String {
    // Serialising our own plain data types cannot fail (no maps with non-string keys).
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_string())
}

/// What a writer takes its turn at on PostgreSQL (the first key of a two-key
/// advisory lock): each class in one place, so no two collide (the sign-in
/// turns first shared the push turns' class).
#[derive(Debug, Clone, Copy)]
pub enum Turn {
    /// Submitting a request of one type: names and quotas stay exact.
    Submissions = 7105002,
    /// Pushing to one remote branch (a session's lock, see `push_turns`).
    Pushes = 7105003,
    /// Counting a sign-in attempt of one user name or address.
    SignIns = 7105006,
    /// Making a token for one person.
    Tokens = 7105004,
}

/// Holds the turn of `key` in `turn` to the end of the transaction: on
/// PostgreSQL, writers of the same key go one after the other (SQLite has one
/// writer at a time anyway).
pub async fn take_turn(
    conn: &mut AnyConnection,
    engine: Engine,
    turn: Turn,
    key: &str,
) -> Result<(), StorageError> {
    if engine == Engine::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
            .bind(turn as i32)
            .bind(key)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// The file a `sqlite:` URL opens, read as sqlx reads it (the URL parsed,
/// its scheme and query taken off, the rest percent-decoded: `my%20db.sqlite`
/// is `my db.sqlite`, which two processes must find under one lock); none for
/// an in-memory database (`:memory:`, or `mode=memory` whatever the name),
/// which no other process can open. The workers' and the chat bot's locks
/// beside the file are found by it.
pub fn sqlite_file(database_url: &str) -> Option<std::path::PathBuf> {
    // As `AnyConnectOptions` does first: the URL as the `url` crate writes it.
    let url = url::Url::parse(database_url).ok()?;
    if url.scheme() != "sqlite" {
        return None;
    }
    let in_memory = url
        .query_pairs()
        .any(|(key, value)| key == "mode" && value == "memory");
    let rest = url
        .as_str()
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let database = rest.split('?').next().unwrap_or_default();
    if in_memory || database.is_empty() || database == ":memory:" {
        return None;
    }
    let decoded = percent_encoding::percent_decode_str(database)
        .decode_utf8()
        .ok()?;
    Some(std::path::PathBuf::from(decoded.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_out_of_reach_is_told_from_a_call_gone_wrong() {
        for code in ["08006", "08001", "57P01", "57P03", "53300"] {
            assert!(unavailable_code(code), "{code}");
        }
        // A protocol violation, a read-only transaction, a unique violation.
        for code in ["08P01", "25006", "23505", "42P01"] {
            assert!(!unavailable_code(code), "{code}");
        }
        assert!(database_unavailable(&sqlx::Error::PoolTimedOut));
        assert!(!database_unavailable(&sqlx::Error::RowNotFound));
    }
}
