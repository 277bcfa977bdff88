//! Durable jobs: rows claimed under a lease. A worker that dies leaves its lease to
//! expire and the job is claimed again; the job itself is idempotent.

use slipway_core::ids::RequestId;
use sqlx::{AnyConnection, Row};

use super::{Engine, StorageError, now_millis};

#[derive(Debug, Clone)]
pub struct JobRow {
    pub id: i64,
    pub request_id: RequestId,
    pub kind: String,
    pub state: String,
    pub attempts: i64,
    pub max_attempts: i64,
    pub last_error: Option<String>,
}

pub const QUEUED: &str = "queued";
pub const RUNNING: &str = "running";
pub const DONE: &str = "done";
pub const FAILED: &str = "failed";

fn job_from_row(row: &sqlx::any::AnyRow) -> Result<JobRow, StorageError> {
    Ok(JobRow {
        id: row.try_get("id")?,
        request_id: RequestId(row.try_get("request_id")?),
        kind: row.try_get("kind")?,
        state: row.try_get("state")?,
        attempts: row.try_get("attempts")?,
        max_attempts: row.try_get("max_attempts")?,
        last_error: row.try_get("last_error")?,
    })
}

const JOB_COLUMNS: &str = "id, request_id, kind, state, attempts, max_attempts, last_error";

pub async fn enqueue(
    conn: &mut AnyConnection,
    request_id: RequestId,
    kind: &str,
    max_attempts: i64,
) -> Result<i64, StorageError> {
    let now = now_millis();
    Ok(sqlx::query_scalar(
        "INSERT INTO jobs (request_id, kind, state, attempts, max_attempts, run_after, created_at, \
         updated_at) VALUES ($1, $2, $3, 0, $4, $5, $5, $5) RETURNING id",
    )
    .bind(request_id.0)
    .bind(kind)
    .bind(QUEUED)
    .bind(max_attempts)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?)
}

/// Claims the oldest runnable job: queued and due, or running with an expired lease.
/// Call inside a write transaction.
pub async fn claim(
    conn: &mut AnyConnection,
    engine: Engine,
    worker: &str,
    lease_millis: i64,
) -> Result<Option<JobRow>, StorageError> {
    let now = now_millis();
    let lock = match engine {
        // Replicas skip rows another one holds instead of queueing behind it.
        Engine::Postgres => " FOR UPDATE SKIP LOCKED",
        // BEGIN IMMEDIATE already made this transaction the only writer.
        Engine::Sqlite => "",
    };
    let id: Option<i64> = sqlx::query_scalar(&format!(
        "SELECT id FROM jobs WHERE (state = $1 AND run_after <= $2) \
            OR (state = $3 AND lease_until < $2) ORDER BY id LIMIT 1{lock}"
    ))
    .bind(QUEUED)
    .bind(now)
    .bind(RUNNING)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(id) = id else { return Ok(None) };
    let row = sqlx::query(&format!(
        "UPDATE jobs SET state = $1, lease_owner = $2, lease_until = $3, attempts = attempts + 1, \
         updated_at = $4 WHERE id = $5 RETURNING {JOB_COLUMNS}"
    ))
    .bind(RUNNING)
    .bind(worker)
    .bind(now + lease_millis)
    .bind(now)
    .bind(id)
    .fetch_one(&mut *conn)
    .await?;
    job_from_row(&row).map(Some)
}

pub async fn finish(
    conn: &mut AnyConnection,
    id: i64,
    state: &str,
    error: Option<&str>,
) -> Result<(), StorageError> {
    sqlx::query(
        "UPDATE jobs SET state = $1, last_error = $2, lease_owner = NULL, lease_until = NULL, \
         updated_at = $3 WHERE id = $4",
    )
    .bind(state)
    .bind(error)
    .bind(now_millis())
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Puts a job back in the queue after a transient failure, to run after `delay_millis`.
pub async fn reschedule(
    conn: &mut AnyConnection,
    id: i64,
    delay_millis: i64,
    error: &str,
) -> Result<(), StorageError> {
    let now = now_millis();
    sqlx::query(
        "UPDATE jobs SET state = $1, last_error = $2, lease_owner = NULL, lease_until = NULL, \
         run_after = $3, updated_at = $4 WHERE id = $5",
    )
    .bind(QUEUED)
    .bind(error)
    .bind(now + delay_millis)
    .bind(now)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// On SQLite one process owns the jobs, so at start-up every lease is from a process
/// that is gone: make those jobs claimable at once instead of waiting out the lease.
pub async fn release_stale_leases(conn: &mut AnyConnection) -> Result<u64, StorageError> {
    let done = sqlx::query("UPDATE jobs SET lease_until = 0 WHERE state = $1")
        .bind(RUNNING)
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected())
}

pub async fn latest_for_request(
    conn: &mut AnyConnection,
    request_id: RequestId,
) -> Result<Option<JobRow>, StorageError> {
    let row = sqlx::query(&format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE request_id = $1 ORDER BY id DESC LIMIT 1"
    ))
    .bind(request_id.0)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(job_from_row).transpose()
}

pub async fn count_unfinished(conn: &mut AnyConnection) -> Result<i64, StorageError> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE state IN ($1, $2)")
            .bind(QUEUED)
            .bind(RUNNING)
            .fetch_one(&mut *conn)
            .await?,
    )
}
