//! The apply job: run the type's execution steps on the approved change set, each
//! through its driver, verify the result with the type's acceptance checks, and
//! record the asset.

use std::time::Duration;

use rand::Rng as _;
use slipway_core::catalog::ResourceType;
use slipway_core::execution::{self, PlannedStep, RunInfo};
use slipway_core::ids::RequestId;
use slipway_core::render::{self, ChangeSet};
use slipway_core::secret::SecretValues;
use slipway_core::state::{Action, RequestState, next_state};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;
use tracing::instrument;

use super::{JobControl, StopReason};
use crate::drivers::{DriverError, ProgressLines, StepContext, StepOutcome, StepSessions};
use crate::services::{self, Actor, ServiceError, load_request, request_type, transition};
use crate::state::AppState;
use crate::storage::jobs::{self, JobRow};
use crate::storage::pipeline_runs::{self, StepKey};
use crate::storage::requests::{RequestRow, RevisionRow};
use crate::storage::{self, StorageError, Tx};

mod journal;
mod verify;

use verify::verify;

#[derive(Debug)]
enum JobError {
    /// Worth another attempt later (the repository was busy, the database blinked).
    Retryable(String),
    /// Another attempt would fail the same way.
    Permanent(String),
    /// The job was told to stop: it ends (or is handed back) without failing.
    Stopped(StopReason),
    /// The request moved on without this job (cancelled, or failed and retried by
    /// another job): nothing to run, and nothing of the request to touch.
    NothingToRun(RequestState),
}

impl From<ServiceError> for JobError {
    fn from(error: ServiceError) -> Self {
        if error.is_transient() {
            JobError::Retryable(error.cause())
        } else {
            JobError::Permanent(error.cause())
        }
    }
}

/// A constraint violation fails the same way every time; only the rest is retried.
impl From<StorageError> for JobError {
    fn from(error: StorageError) -> Self {
        ServiceError::from(error).into()
    }
}

impl From<sqlx::Error> for JobError {
    fn from(error: sqlx::Error) -> Self {
        ServiceError::from(error).into()
    }
}

/// The longest pause between two attempts.
const MAX_BACKOFF_MILLIS: u64 = 5 * 60 * 1000;

/// Exponential from two seconds, capped, with "equal jitter" (half fixed, half
/// random) so replicas that failed together do not all come back together.
fn backoff_millis(attempts: i64) -> i64 {
    let doublings = attempts.clamp(1, 16) as u32 - 1;
    let pause = 2_000_u64
        .saturating_mul(2_u64.pow(doublings))
        .min(MAX_BACKOFF_MILLIS);
    rand::rng().random_range(pause / 2..=pause) as i64
}

/// How a job that ran to its end left its own row.
enum Done {
    /// The transaction that recorded the outcome also closed the job.
    Closed,
    /// Nothing was left to run; the job is still to be closed.
    Open,
}

/// One claimed job as it runs: who runs it and what tells it to stop.
struct Run<'a> {
    state: &'a AppState,
    job: &'a JobRow,
    worker: &'a str,
    control: &'a JobControl,
}

impl Run<'_> {
    /// A write transaction in which this worker still holds the job: the fence that
    /// keeps a worker whose lease lapsed from writing over the one that took over.
    async fn fenced(&self) -> Result<Tx, JobError> {
        let mut tx = self.state.db.write().await?;
        if !jobs::holds(&mut tx, self.job.id, self.worker).await? {
            return Err(JobError::Stopped(StopReason::LeaseLost));
        }
        Ok(tx)
    }

    fn check_stop(&self) -> Result<(), JobError> {
        match self.control.reason() {
            Some(reason) => Err(JobError::Stopped(reason)),
            None => Ok(()),
        }
    }
}

/// Runs one claimed job to an end state: done, rescheduled, handed back, or failed
/// with the request in `failed` where people see it. Every write about the job is
/// made only while this worker still holds its lease.
#[instrument(skip_all, fields(job_id = job.id, request_id = %job.request_id, attempt = job.attempts))]
pub async fn run_job(
    state: &AppState,
    job: &JobRow,
    worker: &str,
    control: &JobControl,
) -> Result<(), StorageError> {
    let run = Run {
        state,
        job,
        worker,
        control,
    };
    let outcome = execute(&run).await;
    if let Ok(Done::Closed) = outcome {
        return Ok(());
    }
    let mut tx = state.db.write().await?;
    // A run that failed because its request was cancelled under it (the cancel
    // moved the request before this worker's next renewal told it to stop) was
    // stopped, not failed.
    let outcome = match outcome {
        Err(JobError::Retryable(_) | JobError::Permanent(_)) => {
            match jobs::stop_requested_by(&mut tx, job.id).await? {
                Some(by) => Err(JobError::Stopped(StopReason::Cancelled { by })),
                None => outcome,
            }
        }
        other => other,
    };
    // Why a step still marked running ends here (a last step whose record was
    // rolled back with the transition a cancel made impossible, say).
    let (held, note) = match outcome {
        Ok(_) => (
            jobs::finish(&mut tx, job.id, worker, jobs::DONE, None).await?,
            None,
        ),
        Err(JobError::Retryable(message)) if job.failing_runs() < job.max_attempts => {
            let pause = backoff_millis(job.failing_runs());
            tracing::warn!(%message, pause_ms = pause, "job failed; will retry");
            let held = jobs::reschedule(&mut tx, job.id, worker, pause, &message).await?;
            (
                held,
                Some(format!("failed: {message}; the job runs again later")),
            )
        }
        Err(JobError::Retryable(message) | JobError::Permanent(message)) => {
            tracing::error!(%message, "job failed");
            let held = fail_request(&mut tx, state, job, worker, &message).await?;
            (held, Some(format!("failed: {message}")))
        }
        Err(JobError::Stopped(StopReason::Cancelled { by })) => {
            tracing::info!(%by, "job stopped: its request was cancelled");
            let text = format!("cancelled by {by}");
            let held = jobs::finish(&mut tx, job.id, worker, jobs::CANCELLED, Some(&text)).await?;
            (held, Some(format!("stopped: {text}")))
        }
        Err(JobError::Stopped(StopReason::Shutdown)) => {
            tracing::info!("job handed back at shutdown");
            let held = jobs::release(&mut tx, job.id, worker).await?;
            let text = "stopped: the server shut down; the job runs again";
            (held, Some(text.to_string()))
        }
        Err(JobError::Stopped(StopReason::LeaseLost)) => (false, None),
        Err(JobError::NothingToRun(request_state)) => {
            let end = if request_state == RequestState::Cancelled {
                jobs::CANCELLED
            } else {
                jobs::FAILED
            };
            let text = format!("the request is {}; nothing to run", request_state.label());
            let held = jobs::finish(&mut tx, job.id, worker, end, Some(&text)).await?;
            (held, Some(text))
        }
    };
    if !held {
        tracing::warn!("the job's lease was lost; another worker resumes it");
        tx.rollback().await?;
        return Ok(());
    }
    if let Some(note) = note {
        jobs::close_running_steps(&mut tx, job.id, &note, storage::now_millis()).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Marks the job failed and the request failed, in the caller's transaction.
/// False (nothing written) when the lease was lost meanwhile.
async fn fail_request(
    tx: &mut Tx,
    state: &AppState,
    job: &JobRow,
    worker: &str,
    message: &str,
) -> Result<bool, StorageError> {
    if !jobs::finish(tx, job.id, worker, jobs::FAILED, Some(message)).await? {
        return Ok(false);
    }
    let Some(mut request) = storage::requests::get(tx, job.request_id).await? else {
        return Ok(true);
    };
    // A job that failed before its first step started (the approval did not
    // match, say) started executing all the same: the request is failed from
    // `executing`, where a person can retry it or take it over.
    if request.state == RequestState::Approved {
        let detail = start_detail(job);
        let action = Action::StartExecution;
        if let Err(error) =
            transition(tx, state, &mut request, action, &Actor::Worker, detail).await
        {
            tracing::error!(%error, "could not mark the request executing");
        }
    }
    if next_state(request.state, Action::Fail).is_ok() {
        if let Err(error) = transition(
            tx,
            state,
            &mut request,
            Action::Fail,
            &Actor::Worker,
            message.to_string(),
        )
        .await
        {
            tracing::error!(%error, "could not mark the request failed");
        }
        storage::requests::set_error(tx, job.request_id, Some(message)).await?;
    }
    Ok(true)
}

async fn execute(run: &Run<'_>) -> Result<Done, JobError> {
    // Takeovers do not count as failures, but a job whose workers keep dying
    // under it (one that brings its process down, say) must not loop for ever.
    if run.job.takeovers > run.job.max_attempts {
        return Err(JobError::Permanent(format!(
            "its worker stopped {} times while running it; it is not run again",
            run.job.takeovers
        )));
    }
    let state = run.state;
    let mut conn = state.db.pool.acquire().await?;
    let mut request = load_request(&mut conn, run.job.request_id).await?;
    drop(conn);
    // An approved request starts executing in the transaction that records its
    // first step's start (or, with nothing to run, with the end of execution).
    let start = match request.state {
        RequestState::Approved => Some(start_detail(run.job)),
        RequestState::Executing | RequestState::Verifying => None,
        RequestState::Completed => return Ok(Done::Open),
        other => return Err(JobError::NothingToRun(other)),
    };
    let approved = approved_revision(state, &request).await?;
    if request.state != RequestState::Verifying {
        apply(run, &mut request, &approved, start).await?;
    }
    run.check_stop()?;
    // Checks may wait on a remote for a while; a stop ends the wait (nothing of
    // the verification is written until every check has answered).
    tokio::select! {
        verified = verify(run, &mut request, &approved) => verified,
        _ = run.control.stopped() => Err(JobError::Stopped(
            run.control.reason().unwrap_or(StopReason::Shutdown),
        )),
    }
}

fn start_detail(job: &JobRow) -> String {
    format!("job {} attempt {}", job.id, job.attempts)
}

/// The approved revision as the job runs it, its change set's hash checked.
struct Approved {
    revision: RevisionRow,
    /// The type (with its actions) as the catalog version that rendered the
    /// revision defined it, when the catalog has moved on since: the reviewed
    /// change runs by that version's steps, is verified by its checks and is
    /// recorded by its monitoring items.
    reviewed: Option<ResourceType>,
}

impl Approved {
    /// The type the job runs the change as: the version that rendered it.
    fn request_type<'a>(
        &'a self,
        state: &'a AppState,
        request: &RequestRow,
    ) -> Result<&'a ResourceType, JobError> {
        // A type gone from the catalog runs nothing, whatever version made it.
        let current = request_type(state, request)?;
        let Some(base) = &self.reviewed else {
            return Ok(current);
        };
        Ok(match request.action.as_deref() {
            None => base,
            Some(action) => base
                .action(action)
                .map_or(current, |action| &action.request_type),
        })
    }
}

/// The change set the approval names, refusing any whose hash differs from the one
/// approved: the reviewer approved those bytes, not whatever is stored now.
async fn approved_revision(state: &AppState, request: &RequestRow) -> Result<Approved, JobError> {
    let (Some(revision), Some(approved_hash)) =
        (request.approved_revision, request.approved_hash.as_deref())
    else {
        return Err(JobError::Permanent(format!(
            "request #{} has no recorded approval",
            request.id
        )));
    };
    if revision != request.current_revision {
        return Err(JobError::Permanent(format!(
            "the approval is for revision {revision} but the request is at revision {}",
            request.current_revision
        )));
    }
    let mut conn = state.db.pool.acquire().await?;
    let stored = storage::requests::revision(&mut conn, request.id, revision)
        .await?
        .ok_or_else(|| JobError::Permanent(format!("revision {revision} is missing")))?;
    let actual = stored.change_set.hash();
    if actual != approved_hash {
        return Err(JobError::Permanent(format!(
            "refusing to apply: the change set's hash {actual} differs from the approved hash {approved_hash}"
        )));
    }
    let params_hash = render::params_hash(&stored.params);
    if let Some(approved) = request.approved_params_hash.as_deref()
        && approved != params_hash
    {
        return Err(JobError::Permanent(format!(
            "refusing to apply: the parameters' hash {params_hash} differs from the approved hash {approved}"
        )));
    }
    let reviewed = services::reviewed_type(state, &mut conn, request, &stored).await?;
    Ok(Approved {
        revision: stored,
        reviewed,
    })
}

/// The secrets of the approved revision, decrypted for the drivers of this run only:
/// they live in memory for the length of the job.
async fn secrets_for_run(state: &AppState, request: &RequestRow) -> Result<SecretValues, JobError> {
    Ok(services::secrets::open_revision(state, request.id, request.current_revision).await?)
}

/// Runs the type's execution steps in order, each through its driver, recording
/// per step what happened. A step recorded done for this revision (by an earlier
/// attempt that crashed later) is not run again; one that crashed mid-way runs
/// again, which its driver's idempotence makes harmless. The last step's end and
/// the end of execution are written in one transaction.
async fn apply(
    run: &Run<'_>,
    request: &mut RequestRow,
    approved: &Approved,
    start: Option<String>,
) -> Result<(), JobError> {
    let state = run.state;
    let secrets = secrets_for_run(state, request).await?;
    let handed = secrets.names().collect::<Vec<_>>().join(", ");
    let ty = approved.request_type(state, request)?;
    let (done, round) = {
        let mut conn = state.db.pool.acquire().await?;
        let done = jobs::done_steps(&mut conn, request.id, request.current_revision).await?;
        // Only a pipeline step's key tells rounds apart.
        let pipelines = ty
            .execute
            .iter()
            .any(|s| matches!(s, slipway_core::catalog::ExecutionStep::Pipeline(_)));
        let round = match pipelines {
            true => jobs::earlier_jobs(&mut conn, request.id, run.job.id).await?,
            false => 0,
        };
        (done, round)
    };
    let info = RunInfo {
        request_id: request.id.0,
        revision: request.current_revision,
        requester: &request.requester,
        round,
    };
    let steps = execution::plan(
        ty,
        &approved.revision.params,
        &request.resource_name,
        &approved.revision.change_set,
        info,
    )
    .map_err(|e| JobError::Permanent(format!("the execution steps: {e}")))?;
    // Every run claims its files before its first step, a retry too: a request
    // refused at its start, or failed before it, holds no claim.
    let mut start = Some(Start {
        detail: start,
        ty,
        change_set: &approved.revision.change_set,
        steps_ran: !done.is_empty(),
    });
    let step_timeout = Duration::from_secs(ty.limits.step_timeout_seconds);
    let mut commit: Option<String> = None;
    let mut summaries = Vec::with_capacity(steps.len());
    let mut last_end: Option<(Tx, FinishedStep)> = None;
    for (index, step) in steps.iter().enumerate() {
        run.check_stop()?;
        let step_index = index as i64;
        let (driver, outcome) = match done.iter().find(|d| d.step_index == step_index) {
            Some(done) => (
                done.driver.clone(),
                (done.summary.clone(), done.commit_id.clone()),
            ),
            None => {
                let ran = (step_index, step);
                let timeout = timeout_of(step, step_timeout);
                let finished = run_step(run, request, ran, &secrets, timeout, &mut start).await?;
                let mut tx = run.fenced().await?;
                finished.record(&mut tx, request.id).await?;
                let outcome = finished.outcome.clone();
                if index + 1 == steps.len() {
                    last_end = Some((tx, finished));
                } else {
                    tx.commit().await?;
                }
                (step.driver().to_string(), (outcome.summary, outcome.commit))
            }
        };
        summaries.push(format!("step {} ({driver}): {}", index + 1, outcome.0));
        commit = outcome.1.or(commit);
    }
    let mut detail = summaries.join("; ");
    if !handed.is_empty() {
        detail.push_str(&format!(
            "; secret parameters handed to the driver, not committed: {handed}"
        ));
    }
    let (mut tx, last_step) = match last_end {
        Some((tx, finished)) => (tx, Some(finished)),
        None => (run.fenced().await?, None),
    };
    let ended = end_execution(&mut tx, state, request, start.take(), &commit, detail).await;
    if let Err(error) = ended {
        drop(tx);
        // The execution cannot end (a cancel moved the request while the last
        // step ran): what that step did, and the commit it made, still happened.
        if let Some(last_step) = last_step {
            let mut tx = run.fenced().await?;
            last_step.record(&mut tx, request.id).await?;
            if let Some(commit) = &commit {
                storage::requests::set_applied_commit(&mut tx, request.id, commit).await?;
            }
            tx.commit().await?;
        }
        return Err(error);
    }
    tx.commit().await?;
    if commit.is_some() {
        request.applied_commit = commit;
    }
    Ok(())
}

/// The start of a run, written in the transaction of its first step's start
/// (or, with no step left, of the end of execution): its claim on the files the
/// change writes and, for an approved request, the move to executing (`detail`).
struct Start<'a> {
    detail: Option<String>,
    ty: &'a ResourceType,
    change_set: &'a ChangeSet,
    /// Steps of this revision ran in an earlier run (one that crashed).
    steps_ran: bool,
}

impl Start<'_> {
    /// Claims the files the change writes and moves an approved request to
    /// executing; a file another request or asset deploys fails the job before
    /// anything is written (the caller's transaction rolls back, claiming
    /// nothing). A request's own claims are its own: a run after a crash or a
    /// retry finds them and goes on.
    async fn record(
        self,
        tx: &mut Tx,
        state: &AppState,
        request: &mut RequestRow,
    ) -> Result<(), JobError> {
        let claimed = services::deployed_paths::claim_files(
            tx,
            self.ty,
            (request.id, request.asset_id),
            self.change_set,
            self.steps_ran,
        )
        .await?;
        if let Some(why) = claimed {
            return Err(JobError::Permanent(why));
        }
        if let Some(detail) = self.detail {
            let action = Action::StartExecution;
            transition(tx, state, request, action, &Actor::Worker, detail).await?;
        }
        Ok(())
    }
}

/// Moves the request to executed, recording the commit its steps made, in the
/// transaction of its last step's end.
async fn end_execution(
    tx: &mut Tx,
    state: &AppState,
    request: &mut RequestRow,
    start: Option<Start<'_>>,
    commit: &Option<String>,
    detail: String,
) -> Result<(), JobError> {
    if let Some(start) = start {
        start.record(tx, state, request).await?;
    }
    if let Some(commit) = commit {
        storage::requests::set_applied_commit(tx, request.id, commit).await?;
    }
    let action = Action::ExecutionSucceeded;
    transition(tx, state, request, action, &Actor::Worker, detail).await?;
    Ok(())
}

/// How long a step may run: the type's step timeout, or for a pipeline step the
/// run's own deadline with a poll to spare when that is longer (a CI/CD run that
/// may take an hour must not be cut off, and an attempt spent, every ten minutes).
fn timeout_of(step: &PlannedStep, step_timeout: Duration) -> Duration {
    match step {
        PlannedStep::Pipeline(pipeline) => step_timeout.max(Duration::from_secs(
            pipeline.deadline_seconds + pipeline.poll_seconds + 30,
        )),
        _ => step_timeout,
    }
}

/// How the sessions of a step run beside a PostgreSQL server are named: recorded
/// in the fenced transaction that starts the attempt, so an attempt whose lease
/// was taken over never names (nor ends) sessions of the one that took it.
async fn sessions_beside_a_server(
    tx: &mut sqlx::AnyConnection,
    key: StepKey,
    step: &PlannedStep,
    step_id: i64,
) -> Result<Option<StepSessions>, JobError> {
    let PlannedStep::Command(command) = step else {
        return Ok(None);
    };
    if command.postgres_server.is_none() {
        return Ok(None);
    }
    let fresh = StepSessions::fresh_prefix();
    let (prefix, earlier) = pipeline_runs::session_prefix(tx, key, &fresh).await?;
    Ok(Some(StepSessions {
        prefix,
        attempt: step_id,
        earlier,
    }))
}

/// Runs one step through its driver, within the type's step timeout and until the
/// job is told to stop, and records the attempt: a row when it starts, its end,
/// summary and log when it ends however it ends.
async fn run_step(
    run: &Run<'_>,
    request: &mut RequestRow,
    (step_index, step): (i64, &PlannedStep),
    secrets: &SecretValues,
    timeout: Duration,
    start: &mut Option<Start<'_>>,
) -> Result<FinishedStep, JobError> {
    let key = StepKey {
        request_id: request.id,
        revision: request.current_revision,
        step_index,
    };
    let (step_id, sessions) = {
        let mut tx = run.fenced().await?;
        if let Some(start) = start.take() {
            start.record(&mut tx, run.state, request).await?;
        }
        let id = jobs::start_step(
            &mut tx,
            &jobs::NewStep {
                job_id: run.job.id,
                request_id: request.id,
                revision: request.current_revision,
                step_index,
                driver: step.driver(),
                attempt: run.job.attempts,
            },
        )
        .await?;
        let sessions = sessions_beside_a_server(&mut tx, key, step, id).await?;
        tx.commit().await?;
        (id, sessions)
    };
    let stop = run.control.step_token();
    let (progress, lines) = ProgressLines::channel(secrets.clone());
    let holder = (run.job.id, run.worker.to_string());
    let journal = journal::RunJournal::new(run.state.db.clone(), key, holder);
    let ctx = StepContext {
        secrets,
        stop: &stop,
        progress: &progress,
        journal: &journal,
        sessions: sessions.as_ref(),
    };
    let started = std::time::Instant::now();
    let driver = run.state.drivers.for_step(step);
    let step_over = CancellationToken::new();
    let drive = async {
        let result = if !driver.finishes_once_started() {
            tokio::select! {
                result = driver.run(step, &ctx) => result.map_err(StepFailure::Driver),
                _ = stop.cancelled() => Err(StepFailure::Stopped),
                _ = tokio::time::sleep(timeout) => Err(StepFailure::TimedOut),
            }
        } else if stop.is_cancelled() {
            Err(StepFailure::Stopped)
        } else {
            // Waited for through a stop, but not for ever: past the step's time
            // (a remote that keeps a push alive without end) the outcome is not
            // known, and the retry finds whether the change landed.
            match tokio::time::timeout(timeout, driver.run(step, &ctx)).await {
                Ok(result) => result.map_err(StepFailure::Driver),
                Err(_) => Err(StepFailure::TimedOut),
            }
        };
        // Whatever ended the step, a program it started must end too.
        stop.cancel();
        step_over.cancel();
        result
    };
    // The lines are all stored before (or with) the step's end: a reader sees them
    // in order.
    let (result, last_lines) = tokio::join!(
        drive,
        write_progress(run, request.id, step_id, lines, &step_over)
    );
    run.state
        .metrics
        .observe_step(step.driver(), started.elapsed(), result.is_ok());
    let failure = match result {
        Ok(outcome) => {
            return Ok(FinishedStep {
                step_id,
                outcome,
                last_lines,
            });
        }
        Err(StepFailure::Driver(error)) => match error {
            DriverError::Retryable(text) => JobError::Retryable(text),
            DriverError::Permanent(text) => JobError::Permanent(text),
        },
        Err(StepFailure::Stopped) => {
            JobError::Stopped(run.control.reason().unwrap_or(StopReason::Shutdown))
        }
        Err(StepFailure::TimedOut) => JobError::Retryable(format!(
            "did not finish within the type's step timeout of {} s and was stopped",
            timeout.as_secs()
        )),
    };
    let text = match &failure {
        JobError::Retryable(text) | JobError::Permanent(text) => text.clone(),
        JobError::Stopped(reason) => reason.to_string(),
        JobError::NothingToRun(state) => format!("the request is {}", state.label()),
    };
    let failed = StepOutcome {
        summary: text.clone(),
        commit: None,
        log: vec![text],
    };
    // A worker that lost its lease leaves the step's row to the one that took over.
    if !matches!(failure, JobError::Stopped(StopReason::LeaseLost)) {
        let end = StepEnd {
            state: jobs::STEP_FAILED,
            outcome: &failed,
            last_lines: &last_lines,
        };
        let mut tx = run.fenced().await?;
        end.record(&mut tx, request.id, step_id).await?;
        tx.commit().await?;
    }
    Err(match failure {
        JobError::Retryable(text) => JobError::Retryable(format!(
            "step {} ({}): {text}",
            step_index + 1,
            step.driver()
        )),
        JobError::Permanent(text) => JobError::Permanent(format!(
            "step {} ({}): {text}",
            step_index + 1,
            step.driver()
        )),
        other => other,
    })
}

/// How long reported lines wait to be written together, and how many are
/// written at once without waiting.
const PROGRESS_BATCH_WAIT: Duration = Duration::from_millis(250);
const PROGRESS_BATCH_LINES: usize = 100;

/// Stores the lines a step's driver reports, in batches, while this worker holds
/// the job. Once `step_over` is cancelled it returns the lines not stored yet,
/// which the step's end stores in its own transaction. Live lines are a view: a
/// failure to store them is logged, never fails the step (its log is stored with
/// its end as before).
async fn write_progress(
    run: &Run<'_>,
    request_id: RequestId,
    step_id: i64,
    mut lines: UnboundedReceiver<String>,
    step_over: &CancellationToken,
) -> Vec<String> {
    let mut batch = Vec::new();
    let mut writing = true;
    while !step_over.is_cancelled() {
        tokio::select! {
            biased;
            _ = step_over.cancelled() => break,
            line = lines.recv() => match line {
                Some(line) => batch.push(line),
                None => break,
            },
        }
        let flush_at = tokio::time::Instant::now() + PROGRESS_BATCH_WAIT;
        while batch.len() < PROGRESS_BATCH_LINES {
            tokio::select! {
                line = lines.recv() => match line {
                    Some(line) => batch.push(line),
                    None => break,
                },
                _ = tokio::time::sleep_until(flush_at) => break,
                _ = step_over.cancelled() => break,
            }
        }
        writing = writing && store_lines(run, request_id, step_id, &mut batch).await;
    }
    while let Ok(line) = lines.try_recv() {
        batch.push(line);
        if batch.len() >= PROGRESS_BATCH_LINES {
            writing = writing && store_lines(run, request_id, step_id, &mut batch).await;
        }
    }
    if writing { batch } else { Vec::new() }
}

/// Stores and empties one batch, fenced like every write of the job. False when
/// nothing more should be written: the lease is lost.
async fn store_lines(
    run: &Run<'_>,
    request_id: RequestId,
    step_id: i64,
    batch: &mut Vec<String>,
) -> bool {
    if batch.is_empty() {
        return true;
    }
    let stored = async {
        let mut tx = run.fenced().await?;
        storage::progress::record_lines(&mut tx, request_id, step_id, batch).await?;
        tx.commit().await?;
        Ok::<(), JobError>(())
    }
    .await;
    batch.clear();
    match stored {
        Ok(()) => true,
        Err(JobError::Stopped(_)) => false,
        Err(error) => {
            tracing::warn!(?error, "could not store a step's live progress lines");
            true
        }
    }
}

enum StepFailure {
    Driver(DriverError),
    Stopped,
    TimedOut,
}

/// How a step ended, with the live lines that arrived after the last batch.
struct StepEnd<'a> {
    state: &'a str,
    outcome: &'a StepOutcome,
    last_lines: &'a [String],
}

impl StepEnd<'_> {
    /// Records how the step ended, with its last live lines, in the caller's
    /// fenced transaction.
    async fn record(
        &self,
        tx: &mut Tx,
        request_id: RequestId,
        step_id: i64,
    ) -> Result<(), JobError> {
        if !self.last_lines.is_empty() {
            storage::progress::record_lines(tx, request_id, step_id, self.last_lines).await?;
        }
        jobs::finish_step(
            tx,
            step_id,
            &jobs::StepEnd {
                state: self.state,
                summary: &self.outcome.summary,
                log: &self.outcome.log.join("\n"),
                commit_id: self.outcome.commit.as_deref(),
            },
        )
        .await?;
        Ok(())
    }
}

/// A step whose driver succeeded; its end is recorded by the caller, with the
/// end of execution when it was the last.
struct FinishedStep {
    step_id: i64,
    outcome: StepOutcome,
    last_lines: Vec<String>,
}

impl FinishedStep {
    async fn record(&self, tx: &mut Tx, request_id: RequestId) -> Result<(), JobError> {
        let end = StepEnd {
            state: jobs::STEP_DONE,
            outcome: &self.outcome,
            last_lines: &self.last_lines,
        };
        end.record(tx, request_id, self.step_id).await
    }
}
