//! `slipway dev queue-bench`: how many jobs a second the queue itself can hand
//! out, with the orchestrator's own claim and finish statements and nothing run
//! in between, so the end-to-end figure can be read as a share of it.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};

use slipway_core::ids::RequestId;

use crate::config::ServeArgs;
use crate::orchestrator::{self, dispatch};
use crate::storage::jobs::{self, Claimed};
use crate::storage::{Db, StorageError};

const NOOP_JOB: &str = "noop";

pub async fn run(settings: ServeArgs, count: u32, slots: u16) -> ExitCode {
    match measure(settings, count, slots).await {
        Ok(report) => {
            say!("{report}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("slipway: queue bench: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn measure(settings: ServeArgs, count: u32, slots: u16) -> Result<String, String> {
    let settings = settings.check().map_err(|e| e.to_string())?;
    let db = Db::connect(&settings.database_url)
        .await
        .map_err(|e| e.to_string())?;
    let request: Option<i64> = sqlx::query_scalar("SELECT MIN(id) FROM requests")
        .fetch_one(&db.pool)
        .await
        .map_err(|e| e.to_string())?;
    let request = RequestId(
        request.ok_or("no request is stored; run `slipway dev seed --requests 1` first")?,
    );
    let unfinished = {
        let mut conn = db.pool.acquire().await.map_err(|e| e.to_string())?;
        jobs::count_unfinished(&mut conn)
            .await
            .map_err(|e| e.to_string())?
    };
    if unfinished > 0 {
        return Err(format!(
            "{unfinished} unfinished jobs are queued: use a scratch database no server runs on"
        ));
    }
    enqueue(&db, request, count)
        .await
        .map_err(|e| e.to_string())?;
    let done = Arc::new(AtomicU64::new(0));
    let (stop, shutdown) = watch::channel(false);
    let stop = Arc::new(stop);
    let queue = dispatch::Queue {
        db: db.clone(),
        lease: Duration::from_secs(30),
        ready: Arc::new(Notify::new()),
        metrics: Arc::new(crate::metrics::Metrics::new()),
    };
    let started = Instant::now();
    let finisher = {
        let db = db.clone();
        let done = done.clone();
        move |claimed: Claimed| finish_noop(db.clone(), claimed, done.clone(), stop.clone(), count)
    };
    orchestrator::dispatch::run(queue, usize::from(slots), shutdown, finisher).await;
    let took = started.elapsed().as_secs_f64();
    let finished = done.load(Ordering::Relaxed);
    Ok(format!(
        "queue: {finished} no-op jobs claimed and finished through the dispatcher with {slots} slots in {took:.2} s: {:.0} claims/s ({:?})",
        finished as f64 / took,
        db.engine
    ))
}

async fn enqueue(db: &Db, request: RequestId, count: u32) -> Result<(), StorageError> {
    let mut tx = db.write().await?;
    for _ in 0..count {
        jobs::enqueue(&mut tx, request, NOOP_JOB, 1).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// A no-op job's end, in its own transaction as a worker's is; the last one
/// stops the dispatcher.
async fn finish_noop(
    db: Db,
    claimed: Claimed,
    done: Arc<AtomicU64>,
    stop: Arc<watch::Sender<bool>>,
    count: u32,
) {
    let owner = claimed.job.lease_owner.clone().unwrap_or_default();
    let finished = async {
        let mut tx = db.write().await?;
        jobs::finish(&mut tx, claimed.job.id, &owner, jobs::DONE, None).await?;
        tx.commit().await?;
        Ok::<(), StorageError>(())
    };
    match finished.await {
        Ok(()) => {
            if done.fetch_add(1, Ordering::Relaxed) + 1 >= u64::from(count) {
                let _ = stop.send(true);
            }
        }
        Err(error) => {
            eprintln!("slipway: queue bench: {error}");
            let _ = stop.send(true);
        }
    }
}
