//! The orchestrator: background workers that claim jobs from the database and run
//! them. Several replicas share one queue: a worker holds a job under a lease it
//! renews while it runs; a replica that dies stops renewing and another takes the
//! job over; every step is safe to repeat, so a job interrupted anywhere completes
//! with one effect.

mod apply;
mod control;
pub mod dispatch;
mod leases;

use std::time::Duration;

use tokio::sync::watch;

use crate::state::AppState;
use crate::storage::{self, Engine, StorageError, jobs};

pub use apply::run_job;
pub use control::{JobControl, StopReason};
pub use leases::LeaseKeeper;

/// How jobs run in this process.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Jobs run at once; 0 runs none.
    pub workers: usize,
    /// How long a claim holds without a heartbeat.
    pub lease: Duration,
    /// At shutdown, how long running jobs may take before they are handed back.
    pub shutdown_grace: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            workers: 4,
            lease: LEASE,
            shutdown_grace: Duration::from_secs(20),
        }
    }
}

/// The default claim length.
pub const LEASE: Duration = Duration::from_secs(30);

/// Claims and runs one due job to its end. Returns false when none was due.
pub async fn run_once(state: &AppState, worker: &str) -> Result<bool, StorageError> {
    let lease = state.settings.workers.lease.as_millis() as i64;
    let mut tx = state.db.write().await?;
    let claimed = jobs::claim(&mut tx, state.db.engine, worker, lease).await?;
    tx.commit().await?;
    let Some(claimed) = claimed else {
        return Ok(false);
    };
    // A shutdown that never comes: the job runs to its end.
    let (_keep, never) = watch::channel(false);
    run_claimed(state.clone(), claimed, never).await?;
    Ok(true)
}

/// Runs a job this process claimed, renewing its lease meanwhile.
async fn run_claimed(
    state: AppState,
    claimed: jobs::Claimed,
    shutdown: watch::Receiver<bool>,
) -> Result<(), StorageError> {
    let job = claimed.job;
    let worker = job.lease_owner.clone().unwrap_or_default();
    if let Some(previous) = &claimed.taken_over_from {
        tracing::warn!(
            job_id = job.id,
            previous_worker = %previous,
            "took over a job whose worker stopped renewing its lease"
        );
        state.metrics.lease_takeovers.inc();
    }
    let control = JobControl::default();
    let _lease = state.leases.hold(job.id, &worker, control.clone());
    let grace = state.settings.workers.shutdown_grace;
    let at_shutdown = tokio::spawn(control::stop_after_shutdown_grace(
        control.clone(),
        shutdown,
        grace,
    ));
    let outcome = run_job(&state, &job, &worker, &control).await;
    at_shutdown.abort();
    outcome
}

/// Starts the configured number of worker slots; they stop claiming when
/// `shutdown` turns true and hand back, after the grace period, what they still
/// hold.
pub fn spawn(state: AppState, shutdown: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let slots = state.settings.workers.workers;
        // A process without workers (pages only, beside the one that runs them)
        // must not touch leases: the jobs it would release are running elsewhere.
        if slots == 0 {
            return;
        }
        if state.db.engine == Engine::Sqlite {
            release_stale_sqlite_leases(&state).await;
        }
        let _alive: Vec<_> = (0..slots).map(|_| state.metrics.worker_started()).collect();
        let queue = dispatch::Queue {
            db: state.db.clone(),
            lease: state.settings.workers.lease,
            ready: state.jobs_ready.clone(),
            metrics: state.metrics.clone(),
        };
        let runner = state.clone();
        let stop = shutdown.clone();
        dispatch::run(queue, slots, shutdown, move |claimed| {
            let state = runner.clone();
            let stop = stop.clone();
            async move {
                if let Err(error) = run_claimed(state, claimed, stop).await {
                    tracing::error!(%error, "worker could not finish a job; it will be claimed again");
                }
            }
        })
        .await;
        tracing::info!("workers stopped");
    })
}

/// On SQLite one process owns the jobs (start-up holds the workers' lock), so every
/// lease left in the database is from a process that is gone.
async fn release_stale_sqlite_leases(state: &AppState) {
    let released = async {
        let mut tx = state.db.write().await?;
        let released = storage::jobs::release_stale_leases(&mut tx).await?;
        tx.commit().await?;
        Ok::<_, StorageError>(released)
    };
    match released.await {
        Ok(0) => {}
        Ok(released) => tracing::info!(released, "resuming jobs interrupted by the last shutdown"),
        Err(error) => tracing::error!(%error, "could not release stale job leases"),
    }
}
