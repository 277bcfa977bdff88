//! Durable jobs: rows claimed under a lease. A worker that dies leaves its lease to
//! expire and the job is claimed again; the job itself is idempotent.

use std::collections::HashMap;

use slipway_core::ids::RequestId;
use sqlx::{AnyConnection, Row};

use super::{Engine, StorageError, now_millis};

#[derive(Debug, Clone)]
pub struct JobRow {
    pub id: i64,
    pub request_id: RequestId,
    pub kind: String,
    pub state: String,
    /// Runs started, including those taken over from a worker that died.
    pub attempts: i64,
    pub max_attempts: i64,
    /// Runs started by taking the job over from a worker that stopped renewing
    /// its lease (the run before was cut short, not failed).
    pub takeovers: i64,
    pub last_error: Option<String>,
    /// The worker holding the job's lease while it runs.
    pub lease_owner: Option<String>,
}

impl JobRow {
    /// Runs that ended in a failure, or are running now: the ones the type's
    /// attempt limit counts. A run cut short by its worker's death is not one.
    pub fn failing_runs(&self) -> i64 {
        self.attempts - self.takeovers
    }
}

pub const QUEUED: &str = "queued";
pub const RUNNING: &str = "running";
pub const DONE: &str = "done";
pub const FAILED: &str = "failed";
/// Stopped on purpose: the request was cancelled while it was queued or running.
pub const CANCELLED: &str = "cancelled";

fn job_from_row(row: &sqlx::any::AnyRow) -> Result<JobRow, StorageError> {
    Ok(JobRow {
        id: row.try_get("id")?,
        request_id: RequestId(row.try_get("request_id")?),
        kind: row.try_get("kind")?,
        state: row.try_get("state")?,
        attempts: row.try_get("attempts")?,
        max_attempts: row.try_get("max_attempts")?,
        takeovers: row.try_get("takeovers")?,
        last_error: row.try_get("last_error")?,
        lease_owner: row.try_get("lease_owner")?,
    })
}

const JOB_COLUMNS: &str =
    "id, request_id, kind, state, attempts, max_attempts, takeovers, last_error, lease_owner";

pub async fn enqueue(
    conn: &mut AnyConnection,
    request_id: RequestId,
    kind: &str,
    max_attempts: i64,
) -> Result<i64, StorageError> {
    let now = now_millis();
    let run_after = super::lease_clock_sql(conn).unwrap_or("$5");
    Ok(sqlx::query_scalar(&format!(
        "INSERT INTO jobs (request_id, kind, state, attempts, max_attempts, run_after, created_at, \
         updated_at) VALUES ($1, $2, $3, 0, $4, {run_after}, $5, $5) RETURNING id"
    ))
    .bind(request_id.0)
    .bind(kind)
    .bind(QUEUED)
    .bind(max_attempts)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?)
}

/// A job this worker now holds, and whose lease it took over if it was running.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub job: JobRow,
    /// The worker whose lease lapsed while it ran this job (it died or lost the
    /// database); `None` for a job taken from the queue.
    pub taken_over_from: Option<String>,
}

/// Claims the job due longest: queued and due, or running with a lapsed lease (a
/// running job's `run_after` follows its lease). Call inside a write transaction.
pub async fn claim(
    conn: &mut AnyConnection,
    engine: Engine,
    worker: &str,
    lease_millis: i64,
) -> Result<Option<Claimed>, StorageError> {
    let owners = [worker.to_string()];
    Ok(claim_due(conn, engine, &owners, lease_millis).await?.pop())
}

/// Claims up to one job per owner, those due longest first, in one statement: the
/// dispatcher fills every free worker slot with one round trip instead of one per
/// slot. Each owner names one claim (a fencing token): no two running jobs share
/// one. Call inside a write transaction.
pub async fn claim_due(
    conn: &mut AnyConnection,
    engine: Engine,
    owners: &[String],
    lease_millis: i64,
) -> Result<Vec<Claimed>, StorageError> {
    if owners.is_empty() {
        return Ok(Vec::new());
    }
    let now = super::lease_clock(conn, engine).await?;
    let lock = match engine {
        // Replicas skip rows another one holds instead of queueing behind it.
        Engine::Postgres => " FOR UPDATE SKIP LOCKED",
        // BEGIN IMMEDIATE already made this transaction the only writer.
        Engine::Sqlite => "",
    };
    // The states are written into the statement, as the partial index `jobs_due`
    // names them: bound as parameters, no engine could tell it serves the query.
    let due: Vec<(i64, String, Option<String>)> = sqlx::query_as(&format!(
        "SELECT id, state, lease_owner FROM jobs WHERE state IN ({}) AND run_after <= $1 \
         ORDER BY run_after, id LIMIT $2{lock}",
        super::listing::literals(&[QUEUED, RUNNING])
    ))
    .bind(now)
    .bind(owners.len() as i64)
    .fetch_all(&mut *conn)
    .await?;
    if due.is_empty() {
        return Ok(Vec::new());
    }
    let mut rows = take_leases(conn, &due, owners, now, lease_millis).await?;
    let mut claimed = Vec::with_capacity(due.len());
    // In the order they were due: the oldest first.
    for (id, state, previous_owner) in due {
        let position = rows
            .iter()
            .position(|job| job.id == id)
            .ok_or_else(|| StorageError::Corrupt(format!("claimed job {id} was not updated")))?;
        let job = rows.swap_remove(position);
        let taken_over_from = (state == RUNNING).then(|| previous_owner.unwrap_or_default());
        if taken_over_from.is_some() {
            close_abandoned_steps(conn, &job, now).await?;
        }
        claimed.push(Claimed {
            job,
            taken_over_from,
        });
    }
    Ok(claimed)
}

/// Moves the selected jobs to running, each under its own owner, in one statement.
/// The ids are the database's own integers; only the owners travel as parameters.
async fn take_leases(
    conn: &mut AnyConnection,
    due: &[(i64, String, Option<String>)],
    owners: &[String],
    now: i64,
    lease_millis: i64,
) -> Result<Vec<JobRow>, StorageError> {
    const FIXED: usize = 4;
    let owner_of: String = due
        .iter()
        .enumerate()
        .map(|(n, (id, _, _))| format!(" WHEN {id} THEN ${}", FIXED + 1 + n))
        .collect();
    let ids: Vec<String> = due.iter().map(|(id, _, _)| id.to_string()).collect();
    let sql = format!(
        "UPDATE jobs SET state = $1, lease_owner = CASE id{owner_of} END, lease_until = $2, \
         run_after = $2, heartbeat_at = $3, attempts = attempts + 1, \
         takeovers = takeovers + CASE WHEN state = $4 THEN 1 ELSE 0 END, updated_at = $3 \
         WHERE id IN ({}) RETURNING {JOB_COLUMNS}",
        ids.join(", ")
    );
    let mut query = sqlx::query(&sql)
        .bind(RUNNING)
        .bind(now + lease_millis)
        .bind(now)
        .bind(RUNNING);
    for owner in &owners[..due.len()] {
        query = query.bind(owner.as_str());
    }
    let rows = query.fetch_all(&mut *conn).await?;
    rows.iter().map(job_from_row).collect()
}

/// The dead worker's step never ended; say so instead of "running" forever, also
/// to anyone following the request live.
async fn close_abandoned_steps(
    conn: &mut AnyConnection,
    job: &JobRow,
    now: i64,
) -> Result<(), StorageError> {
    let summary = format!(
        "abandoned: its worker stopped renewing the lease; attempt {} takes over",
        job.attempts
    );
    close_running_steps(conn, job.id, &summary, now).await
}

/// Ends the job's steps still marked running as failed with `summary`, telling
/// anyone following the request live: a run that stops between a step's end and
/// its record (a cancel, a shutdown, a lost lease) leaves none running for ever.
pub async fn close_running_steps(
    conn: &mut AnyConnection,
    job_id: i64,
    summary: &str,
    now: i64,
) -> Result<(), StorageError> {
    sqlx::query(
        "INSERT INTO request_progress (request_id, step_id, kind, text, created_at) \
         SELECT request_id, id, $1, $2, $3 FROM job_steps WHERE job_id = $4 AND state = $5",
    )
    .bind(super::progress::KIND_STEP)
    .bind(STEP_FAILED)
    .bind(now)
    .bind(job_id)
    .bind(STEP_RUNNING)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE job_steps SET state = $1, summary = $2, log = $2, finished_at = $3 \
         WHERE job_id = $4 AND state = $5",
    )
    .bind(STEP_FAILED)
    .bind(summary)
    .bind(now)
    .bind(job_id)
    .bind(STEP_RUNNING)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// What a heartbeat found for a job whose lease is still its worker's: whether
/// someone asked for the job to stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heartbeat {
    Held,
    /// The request was cancelled by this person; the job should stop now.
    StopRequested(String),
}

/// Extends the leases of running jobs, each held under its own owner, in one
/// statement: a process renews every job it holds with one round trip instead of
/// one per job. Returns, for each owner that still holds its job, who asked the
/// job to stop (if anyone); an owner missing from the answer lost its job.
pub async fn heartbeat(
    conn: &mut AnyConnection,
    engine: Engine,
    owners: &[String],
    lease_millis: i64,
) -> Result<HashMap<String, Heartbeat>, StorageError> {
    let mut beats = HashMap::with_capacity(owners.len());
    let now = super::lease_clock(conn, engine).await?;
    // Well under SQLite's limit on parameters in one statement.
    for chunk in owners.chunks(500) {
        let listed: Vec<String> = (0..chunk.len()).map(|n| format!("${}", n + 4)).collect();
        let sql = format!(
            "UPDATE jobs SET lease_until = $1, run_after = $1, heartbeat_at = $2 \
             WHERE state = $3 AND lease_owner IN ({}) RETURNING lease_owner, stop_requested_by",
            listed.join(", ")
        );
        let mut query = sqlx::query_as::<_, (String, Option<String>)>(&sql)
            .bind(now + lease_millis)
            .bind(now)
            .bind(RUNNING);
        for owner in chunk {
            query = query.bind(owner);
        }
        for (owner, stop_requested_by) in query.fetch_all(&mut *conn).await? {
            let beat = match stop_requested_by {
                Some(by) => Heartbeat::StopRequested(by),
                None => Heartbeat::Held,
            };
            beats.insert(owner, beat);
        }
    }
    Ok(beats)
}

/// Whether this worker still holds the running job, checked by a write so that,
/// inside a transaction, no other worker can claim the job until it commits.
pub async fn holds(conn: &mut AnyConnection, id: i64, worker: &str) -> Result<bool, StorageError> {
    update_held(
        conn,
        (id, worker),
        "heartbeat_at = $4",
        &[Bound::Int(now_millis())],
    )
    .await
}

/// Ends a job this worker holds. False when the lease was lost meanwhile: the
/// job is another worker's now and nothing was written.
pub async fn finish(
    conn: &mut AnyConnection,
    id: i64,
    worker: &str,
    state: &str,
    error: Option<&str>,
) -> Result<bool, StorageError> {
    update_held(
        conn,
        (id, worker),
        "state = $4, last_error = $5, lease_owner = NULL, lease_until = NULL, updated_at = $6",
        &[
            Bound::Text(Some(state)),
            Bound::Text(error),
            Bound::Int(now_millis()),
        ],
    )
    .await
}

/// Puts a job this worker holds back in the queue after a transient failure, to
/// run after `delay_millis`; a job whose request was cancelled meanwhile ends
/// cancelled instead (it must not run again beside a retry). False when the
/// lease was lost meanwhile.
pub async fn reschedule(
    conn: &mut AnyConnection,
    id: i64,
    worker: &str,
    delay_millis: i64,
    error: &str,
) -> Result<bool, StorageError> {
    let now = now_millis();
    let (run_after, after) = match super::lease_clock_sql(conn) {
        Some(clock) => (format!("{clock} + $6"), delay_millis),
        None => ("$6".to_string(), now + delay_millis),
    };
    update_held(
        conn,
        (id, worker),
        &format!(
            "state = CASE WHEN stop_requested_by IS NULL THEN $4 ELSE $8 END, last_error = $5, \
             lease_owner = NULL, lease_until = NULL, run_after = {run_after}, updated_at = $7"
        ),
        &[
            Bound::Text(Some(QUEUED)),
            Bound::Text(Some(error)),
            Bound::Int(after),
            Bound::Int(now),
            Bound::Text(Some(CANCELLED)),
        ],
    )
    .await
}

/// Hands a job back at shutdown: queued and due at once, and the interrupted run
/// not counted as an attempt (it did not fail; the process stopped).
pub async fn release(
    conn: &mut AnyConnection,
    id: i64,
    worker: &str,
) -> Result<bool, StorageError> {
    let run_after = super::lease_clock_sql(conn).unwrap_or("$5");
    update_held(
        conn,
        (id, worker),
        &format!(
            "state = $4, lease_owner = NULL, lease_until = NULL, run_after = {run_after}, \
             attempts = attempts - 1, updated_at = $5"
        ),
        &[Bound::Text(Some(QUEUED)), Bound::Int(now_millis())],
    )
    .await
}

/// A value for [`update_held`]'s assignments.
enum Bound<'a> {
    Int(i64),
    Text(Option<&'a str>),
}

/// Updates a running job only while `worker` still holds it: `set` assigns the
/// columns from `$4` on (`$1` to `$3` are the fence). False when the lease was
/// lost meanwhile: the job is another worker's and nothing was written.
async fn update_held(
    conn: &mut AnyConnection,
    (id, worker): (i64, &str),
    set: &str,
    values: &[Bound<'_>],
) -> Result<bool, StorageError> {
    let sql = format!("UPDATE jobs SET {set} WHERE id = $1 AND lease_owner = $2 AND state = $3");
    let mut query = sqlx::query(&sql).bind(id).bind(worker).bind(RUNNING);
    for value in values {
        query = match value {
            Bound::Int(value) => query.bind(*value),
            Bound::Text(value) => query.bind(*value),
        };
    }
    Ok(query.execute(&mut *conn).await?.rows_affected() == 1)
}

/// Stops a request's unfinished job because the request was cancelled: a queued
/// one ends here; a running one is told through its row, and its worker stops at
/// its next heartbeat. Returns how many jobs were touched.
pub async fn stop_for_request(
    conn: &mut AnyConnection,
    request_id: RequestId,
    by: &str,
) -> Result<u64, StorageError> {
    let now = now_millis();
    let queued = sqlx::query(
        "UPDATE jobs SET state = $1, stop_requested_by = $2, last_error = $3, updated_at = $4 \
         WHERE request_id = $5 AND state = $6",
    )
    .bind(CANCELLED)
    .bind(by)
    .bind(format!("cancelled by {by}"))
    .bind(now)
    .bind(request_id.0)
    .bind(QUEUED)
    .execute(&mut *conn)
    .await?;
    let running = sqlx::query(
        "UPDATE jobs SET stop_requested_by = $1, updated_at = $2 WHERE request_id = $3 AND state = $4",
    )
    .bind(by)
    .bind(now)
    .bind(request_id.0)
    .bind(RUNNING)
    .execute(&mut *conn)
    .await?;
    Ok(queued.rows_affected() + running.rows_affected())
}

/// Who asked the job to stop, if anyone did.
pub async fn stop_requested_by(
    conn: &mut AnyConnection,
    id: i64,
) -> Result<Option<String>, StorageError> {
    Ok(
        sqlx::query_scalar::<_, Option<String>>("SELECT stop_requested_by FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?
            .flatten(),
    )
}

/// On SQLite one process owns the jobs, so at start-up every lease is from a process
/// that is gone: make those jobs claimable at once instead of waiting out the lease.
pub async fn release_stale_leases(conn: &mut AnyConnection) -> Result<u64, StorageError> {
    let done = sqlx::query("UPDATE jobs SET lease_until = 0, run_after = 0 WHERE state = $1")
        .bind(RUNNING)
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected())
}

/// How many jobs of the request were queued before `job_id`: the runs before
/// this one (a retry after a failure is a new job; a resumed run is the same).
pub async fn earlier_jobs(
    conn: &mut AnyConnection,
    request_id: RequestId,
    job_id: i64,
) -> Result<i64, StorageError> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE request_id = $1 AND id < $2")
            .bind(request_id.0)
            .bind(job_id)
            .fetch_one(&mut *conn)
            .await?,
    )
}

/// A job of the request that is queued or still running (a cancelled run whose
/// worker has not stopped yet, say), if any.
pub async fn unfinished_for_request(
    conn: &mut AnyConnection,
    request_id: RequestId,
) -> Result<Option<i64>, StorageError> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM jobs WHERE request_id = $1 AND state IN ($2, $3) ORDER BY id LIMIT 1",
    )
    .bind(request_id.0)
    .bind(QUEUED)
    .bind(RUNNING)
    .fetch_optional(&mut *conn)
    .await?)
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

/// The unfinished jobs: how many wait (some backing off), how many of those may
/// run now, how many run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueDepth {
    pub queued: i64,
    pub due: i64,
    pub running: i64,
}

/// Read through the `jobs_due` index, which holds only unfinished jobs.
pub async fn queue_depth(conn: &mut AnyConnection) -> Result<QueueDepth, StorageError> {
    let clock = super::lease_clock_sql(conn);
    let sql = format!(
        "SELECT SUM(CASE WHEN state = $1 THEN 1 ELSE 0 END), \
                SUM(CASE WHEN state = $1 AND run_after <= {} THEN 1 ELSE 0 END), \
                SUM(CASE WHEN state = $2 THEN 1 ELSE 0 END) \
         FROM jobs WHERE state IN ($1, $2)",
        clock.unwrap_or("$3")
    );
    let mut query = sqlx::query_as::<_, (Option<i64>, Option<i64>, Option<i64>)>(&sql)
        .bind(QUEUED)
        .bind(RUNNING);
    if clock.is_none() {
        query = query.bind(now_millis());
    }
    let (queued, due, running) = query.fetch_one(&mut *conn).await?;
    Ok(QueueDepth {
        queued: queued.unwrap_or(0),
        due: due.unwrap_or(0),
        running: running.unwrap_or(0),
    })
}

/// What one execution step did in one attempt of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRow {
    pub id: i64,
    pub job_id: i64,
    pub revision: i64,
    pub step_index: i64,
    pub driver: String,
    pub attempt: i64,
    /// `running`, then `done` or `failed`.
    pub state: String,
    pub summary: String,
    pub log: String,
    /// Whether `log` was left out as too old to carry (see
    /// [`steps_for_request`]); an empty log otherwise is one with no output,
    /// or emptied by the housekeeping.
    pub log_omitted: bool,
    pub commit_id: Option<String>,
    pub started_at: i64,
    pub finished_at: Option<i64>,
}

pub const STEP_RUNNING: &str = "running";
pub const STEP_DONE: &str = "done";
pub const STEP_FAILED: &str = "failed";

const STEP_COLUMNS: &str = "id, job_id, revision, step_index, driver, attempt, state, summary, \
                            log, commit_id, started_at, finished_at";

fn step_from_row(row: &sqlx::any::AnyRow) -> Result<StepRow, StorageError> {
    Ok(StepRow {
        id: row.try_get("id")?,
        job_id: row.try_get("job_id")?,
        revision: row.try_get("revision")?,
        step_index: row.try_get("step_index")?,
        driver: row.try_get("driver")?,
        attempt: row.try_get("attempt")?,
        state: row.try_get("state")?,
        summary: row.try_get("summary")?,
        log: row.try_get("log")?,
        log_omitted: false,
        commit_id: row.try_get("commit_id")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
    })
}

/// Which step of which job is starting, on which attempt.
pub struct NewStep<'a> {
    pub job_id: i64,
    pub request_id: RequestId,
    pub revision: i64,
    pub step_index: i64,
    pub driver: &'a str,
    pub attempt: i64,
}

/// Records that a step is starting, also in its live progress; its row is finished
/// by `finish_step`.
pub async fn start_step(conn: &mut AnyConnection, step: &NewStep<'_>) -> Result<i64, StorageError> {
    let id = sqlx::query_scalar(
        "INSERT INTO job_steps (job_id, request_id, revision, step_index, driver, attempt, state, \
         summary, log, started_at) VALUES ($1, $2, $3, $4, $5, $6, $7, '', '', $8) RETURNING id",
    )
    .bind(step.job_id)
    .bind(step.request_id.0)
    .bind(step.revision)
    .bind(step.step_index)
    .bind(step.driver)
    .bind(step.attempt)
    .bind(STEP_RUNNING)
    .bind(now_millis())
    .fetch_one(&mut *conn)
    .await?;
    super::progress::record_step_state(conn, id, STEP_RUNNING).await?;
    Ok(id)
}

/// How a step ended.
pub struct StepEnd<'a> {
    pub state: &'a str,
    pub summary: &'a str,
    pub log: &'a str,
    pub commit_id: Option<&'a str>,
}

/// Records how a step attempt ended, also in its live progress.
pub async fn finish_step(
    conn: &mut AnyConnection,
    id: i64,
    end: &StepEnd<'_>,
) -> Result<(), StorageError> {
    sqlx::query(
        "UPDATE job_steps SET state = $1, summary = $2, log = $3, commit_id = $4, \
         finished_at = $5 WHERE id = $6",
    )
    .bind(end.state)
    .bind(end.summary)
    .bind(end.log)
    .bind(end.commit_id)
    .bind(now_millis())
    .bind(id)
    .execute(&mut *conn)
    .await?;
    super::progress::record_step_state(conn, id, end.state).await?;
    Ok(())
}

/// The steps of this revision that already finished, the latest attempt of each
/// first: a resumed job takes their results instead of running them again.
pub async fn done_steps(
    conn: &mut AnyConnection,
    request_id: RequestId,
    revision: i64,
) -> Result<Vec<StepRow>, StorageError> {
    let rows = sqlx::query(&format!(
        "SELECT {STEP_COLUMNS} FROM job_steps WHERE request_id = $1 AND revision = $2 \
         AND state = $3 ORDER BY id DESC"
    ))
    .bind(request_id.0)
    .bind(revision)
    .bind(STEP_DONE)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(step_from_row).collect()
}

/// The newest step attempts of a request whose logs its page carries.
pub const STEPS_WITH_LOGS: i64 = 20;

/// Every step attempt of a request, oldest first; only the newest
/// [`STEPS_WITH_LOGS`] with their logs. A log holds up to 128 KiB, and a request
/// retried for months would otherwise carry megabytes of old attempts' output
/// into every view of its page (their state and summary stay).
pub async fn steps_for_request(
    conn: &mut AnyConnection,
    request_id: RequestId,
) -> Result<Vec<StepRow>, StorageError> {
    let rows = sqlx::query(
        "SELECT id, job_id, revision, step_index, driver, attempt, state, summary, \
         CASE WHEN id >= COALESCE((SELECT MIN(id) FROM (SELECT id FROM job_steps \
         WHERE request_id = $1 ORDER BY id DESC LIMIT $2) newest), 0) \
         THEN log ELSE '' END AS log, commit_id, started_at, finished_at \
         FROM job_steps WHERE request_id = $1 ORDER BY id",
    )
    .bind(request_id.0)
    .bind(STEPS_WITH_LOGS)
    .fetch_all(&mut *conn)
    .await?;
    let mut steps: Vec<StepRow> = rows.iter().map(step_from_row).collect::<Result<_, _>>()?;
    // The same attempts the statement left the log out of: all but the newest.
    let kept = usize::try_from(STEPS_WITH_LOGS).unwrap_or(usize::MAX);
    let omitted = steps.len().saturating_sub(kept);
    for step in &mut steps[..omitted] {
        step.log_omitted = true;
    }
    Ok(steps)
}

/// Logs emptied per transaction when old step logs are trimmed.
const TRIM_BATCH: i64 = 2000;

/// Empties the logs of steps started before `before`, keeping their state and
/// summary (what the request page and the audit say of them): a year of steps
/// kept up to 128 KiB of output each, gigabytes in the database. A batch per
/// transaction, so a writer is never held long; the steps still holding a log
/// are found by their own index, so each sweep reads only those. Returns how
/// many logs were emptied.
pub async fn trim_logs_before(db: &super::Db, before: i64) -> Result<u64, StorageError> {
    let mut conn = db.pool.acquire().await?;
    let cut = super::last_id_before(&mut conn, ("job_steps", "started_at"), before).await?;
    drop(conn);
    let Some(cut) = cut else {
        return Ok(0);
    };
    // SQLite weighs its partial index against walking the ids (statistics an
    // emptied log does not change): told, it reads only the steps still holding one.
    let index = match db.engine {
        Engine::Sqlite => " INDEXED BY job_steps_with_log",
        Engine::Postgres => "",
    };
    // The cut is an upper bound: a step stamped far off (a replica's clock
    // gone wrong) could move it, and the time keeps anything newer.
    let sql = format!(
        "UPDATE job_steps SET log = '' WHERE id IN \
         (SELECT id FROM job_steps{index} WHERE log <> '' AND id <= $1 AND started_at < $2 \
         ORDER BY id LIMIT $3)"
    );
    super::in_batches(db, &sql, &[cut, before], TRIM_BATCH).await
}
