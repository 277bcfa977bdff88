//! A running job's lease and stop signal. A heartbeat task renews the lease while
//! the job runs and turns what it learns (a cancel, a lost lease, a shutdown past
//! its grace) into one stop signal that the steps and drivers watch.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

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

/// Stops the job when a shutdown's grace runs out (a job claimed while a shutdown
/// began counts its grace from its claim). Its lease is renewed by the process's
/// `LeaseKeeper`, which stops it on a cancel or a lost lease.
pub(super) async fn stop_after_shutdown_grace(
    control: JobControl,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
) {
    if !*shutdown.borrow() && shutdown.changed().await.is_err() {
        // No one can start a shutdown any more.
        return;
    }
    tokio::time::sleep(grace).await;
    control.stop(StopReason::Shutdown);
}
