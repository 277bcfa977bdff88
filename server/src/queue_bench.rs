//! `slipway dev queue-bench`: how many jobs a second the queue itself can hand
//! out, with the orchestrator's own claim and finish statements and nothing run
//! in between, so the end-to-end figure can be read as a share of it.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use slipway_core::ids::RequestId;

use crate::config::ServeArgs;
use crate::storage::{Db, StorageError, jobs};

const NOOP_JOB: &str = "noop";

pub async fn run(settings: ServeArgs, count: u32, claimers: u16) -> ExitCode {
    match measure(settings, count, claimers).await {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("slipway: queue bench: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn measure(settings: ServeArgs, count: u32, claimers: u16) -> Result<String, String> {
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
    let started = Instant::now();
    let loops: Vec<_> = (0..claimers)
        .map(|n| {
            tokio::spawn(claim_until_empty(
                db.clone(),
                format!("bench-{n}"),
                done.clone(),
            ))
        })
        .collect();
    for claimer in loops {
        claimer
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
    }
    let took = started.elapsed().as_secs_f64();
    let finished = done.load(Ordering::Relaxed);
    Ok(format!(
        "queue: {finished} no-op jobs claimed and finished by {claimers} claimers in {took:.2} s: {:.0} claims/s ({:?})",
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

/// Claims and finishes one job per round, each in its own transaction as a worker
/// does, until none is due.
async fn claim_until_empty(
    db: Db,
    worker: String,
    done: Arc<AtomicU64>,
) -> Result<(), StorageError> {
    loop {
        let mut tx = db.write().await?;
        let claimed = jobs::claim(&mut tx, db.engine, &worker, 30_000).await?;
        tx.commit().await?;
        let Some(claimed) = claimed else {
            return Ok(());
        };
        let mut tx = db.write().await?;
        jobs::finish(&mut tx, claimed.job.id, &worker, jobs::DONE, None).await?;
        tx.commit().await?;
        done.fetch_add(1, Ordering::Relaxed);
    }
}
