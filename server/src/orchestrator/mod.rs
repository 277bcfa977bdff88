//! The orchestrator: a background worker that claims jobs from the database and runs
//! them. Jobs survive restarts (a stale lease is claimed again) and every step is
//! safe to repeat, so a job interrupted anywhere completes with one effect.

mod apply;

use std::time::Duration;

use tokio::sync::watch;

use crate::state::AppState;
use crate::storage::{self, Engine, StorageError, jobs};

pub use apply::run_job;

/// How long a claim holds before another worker may take the job over.
pub const LEASE: Duration = Duration::from_secs(60);

/// Claims and runs one due job. Returns false when none was due.
pub async fn run_once(state: &AppState, worker: &str) -> Result<bool, StorageError> {
    let mut tx = state.db.write().await?;
    let job = jobs::claim(&mut tx, state.db.engine, worker, LEASE.as_millis() as i64).await?;
    tx.commit().await?;
    let Some(job) = job else { return Ok(false) };
    run_job(state, &job).await?;
    Ok(true)
}

/// Runs jobs until `shutdown` turns true; sleeps until woken or a second passes.
pub fn spawn(state: AppState, mut shutdown: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    let worker = format!("worker-{}", uuid::Uuid::new_v4());
    tokio::spawn(async move {
        if state.db.engine == Engine::Sqlite {
            match state.db.write().await {
                Ok(mut tx) => match storage::jobs::release_stale_leases(&mut tx).await {
                    Ok(released) => {
                        if let Err(error) = tx.commit().await {
                            tracing::error!(%error, "could not release stale job leases");
                        } else if released > 0 {
                            tracing::info!(
                                released,
                                "resuming jobs interrupted by the last shutdown"
                            );
                        }
                    }
                    Err(error) => tracing::error!(%error, "could not release stale job leases"),
                },
                Err(error) => tracing::error!(%error, "could not release stale job leases"),
            }
        }
        loop {
            if *shutdown.borrow() {
                break;
            }
            match run_once(&state, &worker).await {
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
        tracing::info!("worker stopped");
    })
}
