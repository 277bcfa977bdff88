//! A running job's lease and stop signal. A heartbeat task renews the lease while
//! the job runs and turns what it learns (a cancel, a lost lease, a shutdown past
//! its grace) into one stop signal that the steps and drivers watch.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::state::AppState;
use crate::storage::jobs::{self, Heartbeat};

/// Why a running job was told to stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// Its request was cancelled by this person.
    Cancelled { by: String },
    /// The lease lapsed and another worker may hold the job now: stop writing.
    LeaseLost,
    /// The process is shutting down and the grace period ran out.
    Shutdown,
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopReason::Cancelled { by } => write!(f, "stopped: the request was cancelled by {by}"),
            StopReason::LeaseLost => f.write_str(
                "stopped: this worker lost its lease on the job (another worker resumes it)",
            ),
            StopReason::Shutdown => f.write_str(
                "stopped: the server shut down before the step finished (the job was handed back and resumes)",
            ),
        }
    }
}

/// The stop signal of one running job; the first reason given wins.
#[derive(Clone, Default)]
pub struct JobControl {
    token: CancellationToken,
    reason: Arc<Mutex<Option<StopReason>>>,
}

impl JobControl {
    pub fn stop(&self, reason: StopReason) {
        if let Ok(mut held) = self.reason.lock() {
            held.get_or_insert(reason);
        }
        self.token.cancel();
    }

    pub fn reason(&self) -> Option<StopReason> {
        self.reason.lock().ok().and_then(|r| r.clone())
    }

    pub fn is_stopped(&self) -> bool {
        self.token.is_cancelled()
    }

    pub async fn stopped(&self) {
        self.token.cancelled().await;
    }

    /// A token for one step: cancelled when the job stops, and by itself when the
    /// step runs out of time, so a driver has one thing to watch.
    pub fn step_token(&self) -> CancellationToken {
        self.token.child_token()
    }
}

/// Renews the lease every third of its length until aborted. Stops the job when its
/// request is cancelled, when the lease is lost, when renewals have failed for so
/// long that the lease may have lapsed (another worker may have claimed the job, so
/// this one must not write any more), and when a shutdown's grace runs out.
pub(super) async fn keep_lease(
    state: AppState,
    job_id: i64,
    worker: String,
    control: JobControl,
    mut shutdown: watch::Receiver<bool>,
) {
    let lease = state.settings.workers.lease;
    let lease_millis = lease.as_millis() as i64;
    let mut held_until = Instant::now() + lease;
    // A shutdown that began while the job was being claimed counts from now.
    let mut shutdown_deadline =
        (*shutdown.borrow()).then(|| Instant::now() + state.settings.workers.shutdown_grace);
    loop {
        let grace_over = async {
            match shutdown_deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(lease / 3) => {}
            _ = shutdown.changed(), if shutdown_deadline.is_none() => {
                shutdown_deadline = Some(Instant::now() + state.settings.workers.shutdown_grace);
                continue;
            }
            _ = grace_over => {
                control.stop(StopReason::Shutdown);
                return;
            }
        }
        match renew(&state, job_id, &worker, lease_millis).await {
            Ok(Heartbeat::Held) => held_until = Instant::now() + lease,
            Ok(Heartbeat::StopRequested(by)) => {
                held_until = Instant::now() + lease;
                control.stop(StopReason::Cancelled { by });
            }
            Ok(Heartbeat::Lost) => {
                control.stop(StopReason::LeaseLost);
                return;
            }
            Err(error) => {
                tracing::warn!(%error, job_id, "could not renew the job's lease");
                // Stop a little before the lease can lapse, so two workers never run
                // the job's steps at once for long.
                if Instant::now() + lease / 6 >= held_until {
                    control.stop(StopReason::LeaseLost);
                    return;
                }
            }
        }
    }
}

async fn renew(
    state: &AppState,
    job_id: i64,
    worker: &str,
    lease_millis: i64,
) -> Result<Heartbeat, crate::storage::StorageError> {
    let renewal = async {
        let mut tx = state.db.write().await?;
        let beat = jobs::heartbeat(&mut tx, job_id, worker, lease_millis).await?;
        tx.commit().await?;
        Ok(beat)
    };
    // A database that hangs counts as one that fails: the lease runs out either way.
    match tokio::time::timeout(Duration::from_millis(lease_millis as u64 / 3), renewal).await {
        Ok(result) => result,
        Err(_) => Err(sqlx::Error::PoolTimedOut.into()),
    }
}
