//! Failed sign-ins counted per subject (`user:<name>`, `addr:<ip>`).

use sqlx::AnyConnection;

use super::{Engine, StorageError};

/// Holds the subject's turn to the end of the transaction, so no failure is lost
/// and none is checked unseen.
pub async fn take_turn(
    conn: &mut AnyConnection,
    engine: Engine,
    subject: &str,
) -> Result<(), StorageError> {
    super::take_turn(conn, engine, super::Turn::SignIns, subject).await
}

/// Takes back one failure counted at `counted_at` for an attempt that then
/// succeeded (or was never checked): the count one lower, its last failure's
/// time back to `before` unless another failure came since, the lock it started
/// gone when the count no longer earns one, and the row gone at zero.
pub async fn take_back_one(
    conn: &mut AnyConnection,
    subject: &str,
    (counted_at, before): (i64, i64),
    free: i64,
) -> Result<(), StorageError> {
    sqlx::query(
        "UPDATE sign_in_failures SET failures = failures - 1, \
         last_failure_at = CASE WHEN last_failure_at = $2 THEN $3 ELSE last_failure_at END, \
         locked_until = CASE WHEN failures - 1 < $4 THEN 0 ELSE locked_until END \
         WHERE subject = $1 AND failures > 0",
    )
    .bind(subject)
    .bind(counted_at)
    .bind(before)
    .bind(free)
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM sign_in_failures WHERE subject = $1 AND failures <= 0")
        .bind(subject)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureCount {
    pub failures: i64,
    pub last_failure_at: i64,
    pub locked_until: i64,
}

pub async fn get(
    conn: &mut AnyConnection,
    subject: &str,
) -> Result<Option<FailureCount>, StorageError> {
    let row: Option<(i64, i64, i64)> = sqlx::query_as(
        "SELECT failures, last_failure_at, locked_until FROM sign_in_failures WHERE subject = $1",
    )
    .bind(subject)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(
        row.map(|(failures, last_failure_at, locked_until)| FailureCount {
            failures,
            last_failure_at,
            locked_until,
        }),
    )
}

pub async fn put(
    conn: &mut AnyConnection,
    subject: &str,
    count: FailureCount,
) -> Result<(), StorageError> {
    sqlx::query(
        "INSERT INTO sign_in_failures (subject, failures, last_failure_at, locked_until) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (subject) DO UPDATE SET \
         failures = excluded.failures, last_failure_at = excluded.last_failure_at, \
         locked_until = excluded.locked_until",
    )
    .bind(subject)
    .bind(count.failures)
    .bind(count.last_failure_at)
    .bind(count.locked_until)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub async fn clear(conn: &mut AnyConnection, subject: &str) -> Result<(), StorageError> {
    sqlx::query("DELETE FROM sign_in_failures WHERE subject = $1")
        .bind(subject)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Deletes the counts whose last failure is older than `before` and which lock
/// nobody after `now`: they would count from one again anyway. Keeps the table
/// as large as the failures of one window, however many names are tried.
pub async fn forget_stale(
    conn: &mut AnyConnection,
    before: i64,
    now: i64,
) -> Result<u64, StorageError> {
    let done = sqlx::query(
        "DELETE FROM sign_in_failures WHERE last_failure_at < $1 AND locked_until <= $2",
    )
    .bind(before)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected())
}
