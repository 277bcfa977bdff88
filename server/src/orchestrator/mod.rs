//! The orchestrator: background workers that claim jobs from the database and run
//! them. Several replicas share one queue: a worker holds a job under a lease it
//! renews while it runs; a replica that dies stops renewing and another takes the
//! job over; every step is safe to repeat, so a job interrupted anywhere completes
//! with one effect.

mod apply;
mod control;

use std::time::Duration;

use tokio::sync::watch;

use crate::state::AppState;
use crate::storage::{self, Engine, StorageError, jobs};

pub use apply::run_job;
pub use control::{JobControl, StopReason};

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
    // A shutdown that never comes: the job runs to its end.
    let (_keep, never) = watch::channel(false);
    run_next(state, worker, never).await
}

async fn run_next(
    state: &AppState,
    worker: &str,
    shutdown: watch::Receiver<bool>,
) -> Result<bool, StorageError> {
    let lease = state.settings.workers.lease;
    let mut tx = state.db.write().await?;
    let claimed = jobs::claim(&mut tx, state.db.engine, worker, lease.as_millis() as i64).await?;
    tx.commit().await?;
    let Some(claimed) = claimed else {
        return Ok(false);
    };
    if let Some(previous) = &claimed.taken_over_from {
        tracing::warn!(
            job_id = claimed.job.id,
            previous_worker = %previous,
            "took over a job whose worker stopped renewing its lease"
        );
        state.metrics.lease_takeovers.inc();
    }
    let control = JobControl::default();
    let heartbeat = tokio::spawn(control::keep_lease(
        state.clone(),
        claimed.job.id,
        worker.to_string(),
        control.clone(),
        shutdown,
    ));
    let outcome = run_job(state, &claimed.job, worker, &control).await;
    heartbeat.abort();
    outcome?;
    Ok(true)
}

/// Starts the configured number of workers; they stop claiming when `shutdown`
/// turns true and hand back, after the grace period, what they still hold.
pub fn spawn(state: AppState, shutdown: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if state.db.engine == Engine::Sqlite {
            release_stale_sqlite_leases(&state).await;
        }
        let process = uuid::Uuid::new_v4();
        let workers: Vec<_> = (0..state.settings.workers.workers)
            .map(|n| {
                let name = format!("worker-{process}-{n}");
                tokio::spawn(work(state.clone(), name, shutdown.clone()))
            })
            .collect();
        for worker in workers {
            let _ = worker.await;
        }
        tracing::info!("workers stopped");
    })
}

async fn work(state: AppState, worker: String, mut shutdown: watch::Receiver<bool>) {
    let _alive = state.metrics.worker_started();
    loop {
        if *shutdown.borrow() {
            break;
        }
        match run_next(&state, &worker, shutdown.clone()).await {
            Ok(true) => continue,
            Ok(false) => {}
            Err(error) => tracing::error!(%error, "worker could not run a job; will try again"),
        }
        tokio::select! {
            _ = state.jobs_ready.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.changed() => {}
        }
    }
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
