//! Live progress: step state changes and driver output lines, one row each, in the
//! order they happened. Written by whichever replica runs the job, read by whichever
//! one a browser is connected to.

use slipway_core::ids::RequestId;
use slipway_core::views::{ProgressEvent, ProgressKind};
use sqlx::{AnyConnection, Row};

use super::{StorageError, now_millis};

pub const KIND_STEP: &str = "step";
pub const KIND_LINE: &str = "line";

/// Records a step attempt's new state, in the transaction that wrote it to `job_steps`.
pub async fn record_step_state(
    conn: &mut AnyConnection,
    step_id: i64,
    state: &str,
) -> Result<(), StorageError> {
    sqlx::query(
        "INSERT INTO request_progress (request_id, step_id, kind, text, created_at) \
         SELECT request_id, id, $1, $2, $3 FROM job_steps WHERE id = $4",
    )
    .bind(KIND_STEP)
    .bind(state)
    .bind(now_millis())
    .bind(step_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Records lines a step's driver reported, in one statement.
pub async fn record_lines(
    conn: &mut AnyConnection,
    request_id: RequestId,
    step_id: i64,
    lines: &[String],
) -> Result<(), StorageError> {
    if lines.is_empty() {
        return Ok(());
    }
    let values = (0..lines.len())
        .map(|i| format!("($1, $2, $3, ${}, $4)", i + 5))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "INSERT INTO request_progress (request_id, step_id, kind, text, created_at) VALUES {values}"
    );
    let mut query = sqlx::query(&sql)
        .bind(request_id.0)
        .bind(step_id)
        .bind(KIND_LINE)
        .bind(now_millis());
    for line in lines {
        query = query.bind(line.as_str());
    }
    query.execute(&mut *conn).await?;
    Ok(())
}

/// A request's progress after the event `after`, oldest first, at most `limit`.
pub async fn after(
    conn: &mut AnyConnection,
    request_id: RequestId,
    after: i64,
    limit: i64,
) -> Result<Vec<ProgressEvent>, StorageError> {
    let rows = sqlx::query(
        "SELECT p.id, p.kind, p.text, p.step_id, s.step_index, s.attempt, s.driver, s.state, \
         s.summary FROM request_progress p JOIN job_steps s ON s.id = p.step_id \
         WHERE p.request_id = $1 AND p.id > $2 ORDER BY p.id LIMIT $3",
    )
    .bind(request_id.0)
    .bind(after)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(event_from_row).collect()
}

fn event_from_row(row: &sqlx::any::AnyRow) -> Result<ProgressEvent, StorageError> {
    let kind: String = row.try_get("kind")?;
    let kind = ProgressKind::parse(&kind)
        .ok_or_else(|| StorageError::Corrupt(format!("unknown progress kind {kind:?}")))?;
    let text: String = row.try_get("text")?;
    let step_state: String = row.try_get("state")?;
    // The step's summary belongs to the event that ended it.
    let summary = if kind == ProgressKind::Step && text == step_state && text != "running" {
        row.try_get("summary")?
    } else {
        String::new()
    };
    Ok(ProgressEvent {
        id: row.try_get("id")?,
        kind,
        step_id: row.try_get("step_id")?,
        step: row.try_get::<i64, _>("step_index")? + 1,
        attempt: row.try_get("attempt")?,
        driver: row.try_get("driver")?,
        text,
        summary,
    })
}

/// The newest progress event of a request, 0 when there is none: where a page
/// rendered now starts following.
pub async fn last_id(conn: &mut AnyConnection, request_id: RequestId) -> Result<i64, StorageError> {
    let last: Option<i64> =
        sqlx::query_scalar("SELECT MAX(id) FROM request_progress WHERE request_id = $1")
            .bind(request_id.0)
            .fetch_one(&mut *conn)
            .await?;
    Ok(last.unwrap_or(0))
}

/// The lines a step attempt reported up to event `up_to`, oldest first, at most
/// `limit`: the log of a step still running (its stored log is written when it ends).
pub async fn lines_of_step(
    conn: &mut AnyConnection,
    request_id: RequestId,
    step_id: i64,
    up_to: i64,
    limit: i64,
) -> Result<Vec<String>, StorageError> {
    Ok(sqlx::query_scalar(
        "SELECT text FROM request_progress WHERE request_id = $1 AND id <= $2 AND step_id = $3 \
         AND kind = $4 ORDER BY id LIMIT $5",
    )
    .bind(request_id.0)
    .bind(up_to)
    .bind(step_id)
    .bind(KIND_LINE)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?)
}

/// Rows deleted per transaction when old progress is forgotten.
const FORGET_BATCH: i64 = 5000;

/// Deletes the progress written before `before` (milliseconds), a batch per
/// transaction so a writer is never held long. Ids grow with time: the last old
/// row is found by halving the id range (a few dozen lookups by the primary key;
/// walking back from the newest row read a whole day of lines at every sweep),
/// and everything up to it goes by the primary key. Returns how many rows went.
pub async fn forget_before(db: &super::Db, before: i64) -> Result<u64, StorageError> {
    let mut conn = db.pool.acquire().await?;
    let cut = super::last_id_before(&mut conn, ("request_progress", "created_at"), before).await?;
    drop(conn);
    let Some(cut) = cut else {
        return Ok(0);
    };
    super::in_batches(
        db,
        "DELETE FROM request_progress WHERE id IN \
         (SELECT id FROM request_progress WHERE id <= $1 ORDER BY id LIMIT $2)",
        &[cut],
        FORGET_BATCH,
    )
    .await
}
