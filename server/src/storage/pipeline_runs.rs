//! What a step's attempts leave for the next one, per step of a revision: the
//! CI/CD run a pipeline step started, the name a command step's sessions carry
//! on its PostgreSQL server.

use slipway_core::ids::RequestId;
use sqlx::{AnyConnection, Row};

use super::StorageError;

/// Which step of which revision a run belongs to.
#[derive(Debug, Clone, Copy)]
pub struct StepKey {
    pub request_id: RequestId,
    pub revision: i64,
    pub step_index: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineRun {
    pub status_url: String,
    pub started_at: i64,
}

pub async fn find(
    conn: &mut AnyConnection,
    key: StepKey,
) -> Result<Option<PipelineRun>, StorageError> {
    let row = sqlx::query(
        "SELECT status_url, started_at FROM pipeline_runs \
         WHERE request_id = $1 AND revision = $2 AND step_index = $3",
    )
    .bind(key.request_id.0)
    .bind(key.revision)
    .bind(key.step_index)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|row| {
        Ok(PipelineRun {
            status_url: row.try_get("status_url")?,
            started_at: row.try_get("started_at")?,
        })
    })
    .transpose()
}

/// The status URL of a run about to be triggered: not known yet.
pub const INTENDED: &str = "";

/// Records that an attempt is about to trigger the step's run (a row with no
/// status URL yet), unless an earlier attempt did. True when this one did: it
/// may send the trigger; a later attempt that finds the row without a URL knows
/// a run may have started and does not start another.
pub async fn intend(conn: &mut AnyConnection, key: StepKey, at: i64) -> Result<bool, StorageError> {
    let done = sqlx::query(
        "INSERT INTO pipeline_runs (request_id, revision, step_index, status_url, started_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (request_id, revision, step_index) DO NOTHING",
    )
    .bind(key.request_id.0)
    .bind(key.revision)
    .bind(key.step_index)
    .bind(INTENDED)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes the step's intent while it names no run: its trigger did not go
/// out. A run recorded meanwhile (another attempt's) stays.
pub async fn withdraw(conn: &mut AnyConnection, key: StepKey) -> Result<(), StorageError> {
    sqlx::query(
        "DELETE FROM pipeline_runs \
         WHERE request_id = $1 AND revision = $2 AND step_index = $3 AND status_url = ''",
    )
    .bind(key.request_id.0)
    .bind(key.revision)
    .bind(key.step_index)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Records the run over its intent; a second record for the same step keeps
/// the first (two workers that both triggered follow the run recorded first).
pub async fn record(
    conn: &mut AnyConnection,
    key: StepKey,
    run: &PipelineRun,
) -> Result<(), StorageError> {
    sqlx::query(
        "INSERT INTO pipeline_runs (request_id, revision, step_index, status_url, started_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (request_id, revision, step_index) DO UPDATE \
         SET status_url = excluded.status_url, started_at = excluded.started_at \
         WHERE pipeline_runs.status_url = ''",
    )
    .bind(key.request_id.0)
    .bind(key.revision)
    .bind(key.step_index)
    .bind(&run.status_url)
    .bind(run.started_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Records that the step saw its run end (its verdict, or its deadline passed).
pub async fn end(conn: &mut AnyConnection, key: StepKey, at: i64) -> Result<(), StorageError> {
    sqlx::query(
        "UPDATE pipeline_runs SET ended_at = $4 \
         WHERE request_id = $1 AND revision = $2 AND step_index = $3 AND ended_at IS NULL",
    )
    .bind(key.request_id.0)
    .bind(key.revision)
    .bind(key.step_index)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Forgets the runs of a revision's steps that ended, and the intents that
/// left no run: a retry after a failure starts new ones (under new keys)
/// instead of following runs that failed. A run whose following was cut short
/// (a cancel while it ran) stays, and the retry follows it to its end rather
/// than starting a second beside it.
pub async fn forget(
    conn: &mut AnyConnection,
    request_id: RequestId,
    revision: i64,
) -> Result<u64, StorageError> {
    let done = sqlx::query(
        "DELETE FROM pipeline_runs WHERE request_id = $1 AND revision = $2 \
         AND (ended_at IS NOT NULL OR status_url = '')",
    )
    .bind(request_id.0)
    .bind(revision)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected())
}

/// The prefix of the application names a command step's sessions carry on its
/// PostgreSQL server: the one the step's first attempt recorded (`fresh` when
/// this is the first), and whether an earlier attempt had recorded it.
pub async fn session_prefix(
    conn: &mut AnyConnection,
    key: StepKey,
    fresh: &str,
) -> Result<(String, bool), StorageError> {
    sqlx::query(
        "INSERT INTO step_sessions (request_id, revision, step_index, name_prefix) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (request_id, revision, step_index) DO NOTHING",
    )
    .bind(key.request_id.0)
    .bind(key.revision)
    .bind(key.step_index)
    .bind(fresh)
    .execute(&mut *conn)
    .await?;
    let recorded: String = sqlx::query_scalar(
        "SELECT name_prefix FROM step_sessions \
         WHERE request_id = $1 AND revision = $2 AND step_index = $3",
    )
    .bind(key.request_id.0)
    .bind(key.revision)
    .bind(key.step_index)
    .fetch_one(&mut *conn)
    .await?;
    let earlier = recorded != fresh;
    Ok((recorded, earlier))
}
