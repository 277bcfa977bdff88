//! The dispatcher: one loop per process fills free worker slots with due jobs,
//! every free slot with one claim. A worker per slot claiming for itself paid a
//! write transaction per job; a burst of submits is now claimed in batches, and
//! each claim gets its own owner (a fencing token), so a job claimed again by this
//! same process never passes the fence of its earlier, stale run.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinSet;

use crate::metrics::Metrics;
use crate::storage::jobs::{self, Claimed};
use crate::storage::{Db, StorageError};

/// Where jobs come from: the database, how long a claim holds, and the signal
/// that new ones were queued.
pub struct Queue {
    pub db: Db,
    pub lease: Duration,
    pub ready: Arc<Notify>,
    /// Told how each round of claims went, for `/readyz`.
    pub metrics: Arc<Metrics>,
}

/// How long an idle dispatcher sleeps when no one says a job was queued: jobs
/// rescheduled for later and leases that lapse are found this way.
const POLL: Duration = Duration::from_secs(1);

/// Claims jobs into `slots` slots and runs each with `run` until `shutdown` turns
/// true; then waits for the jobs still running (they hand themselves back).
pub async fn run<F, Fut>(queue: Queue, slots: usize, mut shutdown: watch::Receiver<bool>, run: F)
where
    F: Fn(Claimed) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let free = Arc::new(Semaphore::new(slots));
    let process = uuid::Uuid::new_v4().simple().to_string();
    let mut claims: u64 = 0;
    let mut running = JoinSet::new();
    while !*shutdown.borrow() {
        while running.try_join_next().is_some() {}
        let first = tokio::select! {
            permit = free.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            _ = changed(&mut shutdown) => continue,
        };
        let mut permits = vec![first];
        while let Ok(permit) = free.clone().try_acquire_owned() {
            permits.push(permit);
        }
        let owners: Vec<String> = permits
            .iter()
            .map(|_| {
                claims += 1;
                format!("worker-{process}-{claims}")
            })
            .collect();
        let claimed = claim(&queue, &owners).await;
        queue
            .metrics
            .claim_round(claimed.as_ref().err().map(ToString::to_string));
        let drained = match claimed {
            Ok(claimed) => {
                let drained = claimed.len() < permits.len();
                for job in claimed {
                    let Some(permit) = permits.pop() else { break };
                    let body = run(job);
                    running.spawn(async move {
                        body.await;
                        drop(permit);
                    });
                }
                drained
            }
            Err(error) => {
                tracing::error!(%error, "could not claim jobs; will try again");
                true
            }
        };
        drop(permits);
        if drained {
            tokio::select! {
                _ = queue.ready.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
                _ = changed(&mut shutdown) => {}
            }
        }
    }
    while running.join_next().await.is_some() {}
}

async fn claim(queue: &Queue, owners: &[String]) -> Result<Vec<Claimed>, StorageError> {
    let mut tx = queue.db.write().await?;
    let claimed = jobs::claim_due(
        &mut tx,
        queue.db.engine,
        owners,
        queue.lease.as_millis() as i64,
    )
    .await?;
    tx.commit().await?;
    Ok(claimed)
}

/// A change of the shutdown flag; never, once no one can send one.
async fn changed(shutdown: &mut watch::Receiver<bool>) {
    if shutdown.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}
