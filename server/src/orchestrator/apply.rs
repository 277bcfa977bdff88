//! The apply job: run the type's execution steps on the approved change set, each
//! through its driver, verify the result with the type's acceptance checks, and
//! record the asset.

use slipway_core::execution::{self, RunInfo};
use slipway_core::render::{self, ChangeSet};
use slipway_core::secret::SecretValues;
use slipway_core::state::{Action, RequestState, next_state};
use tracing::instrument;

use crate::drivers::{DriverError, StepContext};
use crate::services::{self, Actor, ServiceError, load_request, request_type, transition};
use crate::state::AppState;
use crate::storage::jobs::{self, JobRow};
use crate::storage::pipeline_runs::StepKey;
use crate::storage::requests::RequestRow;
use crate::storage::{self, StorageError};

mod journal;
mod verify;

use verify::verify;

#[derive(Debug)]
enum JobError {
    /// Worth another attempt later (the repository was busy, the database blinked).
    Retryable(String),
    /// Another attempt would fail the same way.
    Permanent(String),
}

impl From<ServiceError> for JobError {
    fn from(error: ServiceError) -> Self {
        if error.is_transient() {
            JobError::Retryable(error.to_string())
        } else {
            JobError::Permanent(error.to_string())
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

fn backoff_millis(attempts: i64) -> i64 {
    1000 * 2_i64.pow(attempts.clamp(0, 6) as u32)
}

/// Runs one claimed job to an end state: done, rescheduled, or failed with the
/// request in `failed` where people see it.
#[instrument(skip_all, fields(job_id = job.id, request_id = %job.request_id, attempt = job.attempts))]
pub async fn run_job(state: &AppState, job: &JobRow) -> Result<(), StorageError> {
    match execute(state, job).await {
        Ok(()) => {
            let mut tx = state.db.write().await?;
            jobs::finish(&mut tx, job.id, jobs::DONE, None).await?;
            tx.commit().await?;
        }
        Err(JobError::Retryable(message)) if job.attempts < job.max_attempts => {
            tracing::warn!(%message, "job failed; will retry");
            let mut tx = state.db.write().await?;
            jobs::reschedule(&mut tx, job.id, backoff_millis(job.attempts), &message).await?;
            tx.commit().await?;
        }
        Err(JobError::Retryable(message) | JobError::Permanent(message)) => {
            tracing::error!(%message, "job failed");
            fail_request(state, job, &message).await?;
        }
    }
    Ok(())
}

async fn fail_request(state: &AppState, job: &JobRow, message: &str) -> Result<(), StorageError> {
    let mut tx = state.db.write().await?;
    if let Some(mut request) = storage::requests::get(&mut tx, job.request_id).await? {
        if next_state(request.state, Action::Fail).is_ok()
            && let Err(error) = transition(
                &mut tx,
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
        storage::requests::set_error(&mut tx, job.request_id, Some(message)).await?;
    }
    jobs::finish(&mut tx, job.id, jobs::FAILED, Some(message)).await?;
    tx.commit().await?;
    Ok(())
}

async fn execute(state: &AppState, job: &JobRow) -> Result<(), JobError> {
    let mut conn = state.db.pool.acquire().await?;
    let mut request = load_request(&mut conn, job.request_id).await?;
    drop(conn);
    match request.state {
        RequestState::Approved => {
            let mut tx = state.db.write().await?;
            transition(
                &mut tx,
                state,
                &mut request,
                Action::StartExecution,
                &Actor::Worker,
                format!("job {} attempt {}", job.id, job.attempts),
            )
            .await?;
            tx.commit().await?;
        }
        RequestState::Executing | RequestState::Verifying => {}
        RequestState::Completed => return Ok(()),
        other => {
            return Err(JobError::Permanent(format!(
                "request #{} is {}; there is nothing to run",
                request.id,
                other.label()
            )));
        }
    }
    let change_set = approved_change_set(state, &request).await?;
    if request.state == RequestState::Executing {
        apply(state, job, &mut request, &change_set).await?;
    }
    verify(state, &mut request, &change_set).await
}

/// The change set the approval names, refusing any whose hash differs from the one
/// approved: the reviewer approved those bytes, not whatever is stored now.
async fn approved_change_set(
    state: &AppState,
    request: &RequestRow,
) -> Result<ChangeSet, JobError> {
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
    let revisions = storage::requests::revisions(&mut conn, request.id).await?;
    let stored = revisions
        .into_iter()
        .find(|r| r.revision == revision)
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
    Ok(stored.change_set)
}

/// The secrets of the approved revision, decrypted for the drivers of this run only:
/// they live in memory for the length of the job.
async fn secrets_for_run(state: &AppState, request: &RequestRow) -> Result<SecretValues, JobError> {
    Ok(services::secrets::open_revision(state, request.id, request.current_revision).await?)
}

/// The parameters of the request's current revision.
async fn revision_params(
    state: &AppState,
    request: &RequestRow,
) -> Result<serde_json::Value, JobError> {
    let mut conn = state.db.pool.acquire().await?;
    storage::requests::revisions(&mut conn, request.id)
        .await?
        .into_iter()
        .find(|r| r.revision == request.current_revision)
        .map(|r| r.params)
        .ok_or_else(|| JobError::Permanent("the current revision is missing".into()))
}

/// Runs the type's execution steps in order, each through its driver, recording
/// per step what happened. A step recorded done for this revision (by an earlier
/// attempt that crashed later) is not run again; one that crashed mid-way runs
/// again, which its driver's idempotence makes harmless.
async fn apply(
    state: &AppState,
    job: &JobRow,
    request: &mut RequestRow,
    change_set: &ChangeSet,
) -> Result<(), JobError> {
    let secrets = secrets_for_run(state, request).await?;
    let handed = secrets.names().collect::<Vec<_>>().join(", ");
    let ty = request_type(state, request)?;
    let params = revision_params(state, request).await?;
    let run = RunInfo {
        request_id: request.id.0,
        revision: request.current_revision,
        requester: &request.requester,
    };
    let steps = execution::plan(ty, &params, &request.resource_name, change_set, run)
        .map_err(|e| JobError::Permanent(format!("the execution steps: {e}")))?;
    let mut commit: Option<String> = None;
    let mut summaries = Vec::with_capacity(steps.len());
    for (index, step) in steps.iter().enumerate() {
        let number = index + 1;
        let step_index = index as i64;
        let done = {
            let mut conn = state.db.pool.acquire().await?;
            jobs::done_step(&mut conn, request.id, request.current_revision, step_index).await?
        };
        if let Some(done) = done {
            commit = done.commit_id.or(commit);
            summaries.push(format!("step {number} ({}): {}", done.driver, done.summary));
            continue;
        }
        let step_id = {
            let mut tx = state.db.write().await?;
            let id = jobs::start_step(
                &mut tx,
                &jobs::NewStep {
                    job_id: job.id,
                    request_id: request.id,
                    revision: request.current_revision,
                    step_index,
                    driver: step.driver(),
                    attempt: job.attempts,
                },
            )
            .await?;
            tx.commit().await?;
            id
        };
        let journal = journal::RunJournal::new(
            state.db.clone(),
            StepKey {
                request_id: request.id,
                revision: request.current_revision,
                step_index,
            },
        );
        let ctx = StepContext {
            secrets: &secrets,
            journal: &journal,
        };
        let result = state.drivers.for_step(step).run(step, &ctx).await;
        let mut tx = state.db.write().await?;
        match result {
            Ok(outcome) => {
                jobs::finish_step(
                    &mut tx,
                    step_id,
                    &jobs::StepEnd {
                        state: jobs::STEP_DONE,
                        summary: &outcome.summary,
                        log: &outcome.log.join("\n"),
                        commit_id: outcome.commit.as_deref(),
                    },
                )
                .await?;
                tx.commit().await?;
                summaries.push(format!(
                    "step {number} ({}): {}",
                    step.driver(),
                    outcome.summary
                ));
                commit = outcome.commit.or(commit);
            }
            Err(error) => {
                let text = error.to_string();
                jobs::finish_step(
                    &mut tx,
                    step_id,
                    &jobs::StepEnd {
                        state: jobs::STEP_FAILED,
                        summary: &text,
                        log: &text,
                        commit_id: None,
                    },
                )
                .await?;
                tx.commit().await?;
                let message = format!("step {number} ({}): {text}", step.driver());
                return Err(match error {
                    DriverError::Retryable(_) => JobError::Retryable(message),
                    DriverError::Permanent(_) => JobError::Permanent(message),
                });
            }
        }
    }
    let mut detail = summaries.join("; ");
    if !handed.is_empty() {
        detail.push_str(&format!(
            "; secret parameters handed to the driver, not committed: {handed}"
        ));
    }
    let mut tx = state.db.write().await?;
    if let Some(commit) = &commit {
        storage::requests::set_applied_commit(&mut tx, request.id, commit).await?;
    }
    transition(
        &mut tx,
        state,
        request,
        Action::ExecutionSucceeded,
        &Actor::Worker,
        detail,
    )
    .await?;
    tx.commit().await?;
    if commit.is_some() {
        request.applied_commit = commit;
    }
    Ok(())
}
