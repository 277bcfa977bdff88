//! Housekeeping, at start and every ten minutes: what a year of use would
//! otherwise pile up or slow down; at start, also what data recorded by older
//! versions lacks. Each chore is logged and skipped on error.

use std::time::Duration;

use crate::state::AppState;
use crate::storage::{self, Engine, StorageError, now_millis};

const EVERY: Duration = Duration::from_secs(600);
/// Live progress lines are kept a day: a page following a step reads them, and
/// a finished step keeps its own log (for [`KEEP_STEP_LOGS_MS`]).
const KEEP_PROGRESS_MS: i64 = 24 * 60 * 60 * 1000;

/// A finished step's output (up to 64 KiB of each stream) is kept half a year;
/// then only its state and summary are, as the audit log keeps what happened.
pub const KEEP_STEP_LOGS_MS: i64 = 183 * 24 * 60 * 60 * 1000;

/// An API token that ended (expired or revoked) is kept a year, then deleted;
/// the token list shows those ended in the last 30 days, the audit log what
/// each did for as long as it is kept.
pub const KEEP_ENDED_TOKENS_MS: i64 = 366 * 24 * 60 * 60 * 1000;

/// Runs the chores now and then every ten minutes, until shutdown.
pub fn spawn(state: AppState, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    tokio::spawn(async move {
        recover_deployed_paths(&state).await;
        // At start and once more a pass later: a replica still on the previous
        // build (a rolling deploy, so PostgreSQL only: SQLite has one process)
        // records flow steps without what their request does, until replaced.
        let mut catch_up = if state.db.engine == Engine::Postgres {
            2
        } else {
            0
        };
        loop {
            if catch_up > 0 {
                fill_flow_step_actions(&state).await;
                catch_up -= 1;
            }
            tidy(&state).await;
            tokio::select! {
                _ = tokio::time::sleep(EVERY) => {}
                _ = shutdown.changed() => break,
            }
        }
    });
}

/// What older versions did not record, recovered once at start.
async fn recover_deployed_paths(state: &AppState) {
    match crate::services::deployed_paths::recover_unrecorded(state).await {
        Ok(0) => {}
        Ok(assets) => tracing::info!(
            assets,
            "recorded the files of assets recorded before files had one owner"
        ),
        Err(error) => tracing::warn!(%error, "could not record the files of older assets"),
    }
}

/// Flow steps of day-2 requests recorded without their action, filled in.
async fn fill_flow_step_actions(state: &AppState) {
    let filled = async {
        let mut conn = state.db.write().await?;
        let filled = storage::flow::fill_request_actions(&mut conn).await?;
        conn.commit().await?;
        Ok::<u64, StorageError>(filled)
    };
    match filled.await {
        Ok(0) => {}
        Ok(steps) => {
            tracing::info!(steps, "recorded what their requests do on older flow steps");
            // The flow page's kept weeks counted those steps as creations.
            state.flow_figures.forget_closed_weeks();
        }
        Err(error) => tracing::warn!(%error, "could not fill in the flow steps' request actions"),
    }
}

/// Every chore once.
pub async fn tidy(state: &AppState) {
    let now = now_millis();
    match forget_keys(state, now - crate::api::idempotency::KEEP_MS).await {
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "could not forget old idempotency keys"),
    }
    match storage::progress::forget_before(&state.db, now - KEEP_PROGRESS_MS).await {
        Ok(0) => {}
        Ok(lines) => tracing::info!(lines, "forgot live progress lines older than a day"),
        Err(error) => tracing::warn!(%error, "could not forget old progress lines"),
    }
    match storage::jobs::trim_logs_before(&state.db, now - KEEP_STEP_LOGS_MS).await {
        Ok(0) => {}
        Ok(steps) => tracing::info!(steps, "emptied the logs of steps older than half a year"),
        Err(error) => tracing::warn!(%error, "could not empty old step logs"),
    }
    match storage::tokens::forget_ended_before(&state.db, now - KEEP_ENDED_TOKENS_MS).await {
        Ok(0) => {}
        Ok(tokens) => tracing::info!(tokens, "deleted API tokens that ended over a year ago"),
        Err(error) => tracing::warn!(%error, "could not delete long-ended API tokens"),
    }
    if let Some(after) = state.settings.close_unrevised_after {
        let before = now - i64::try_from(after.as_millis()).unwrap_or(i64::MAX);
        match crate::services::requests::close_unrevised(state, before).await {
            Ok(0) => {}
            Ok(requests) => tracing::info!(requests, "closed requests left unrevised"),
            Err(error) => tracing::warn!(%error, "could not close requests left unrevised"),
        }
    }
    let scratch = state.settings.command.scratch_dir.clone();
    let swept = tokio::task::spawn_blocking(move || {
        crate::drivers::command::sweep_scratch(
            &scratch,
            crate::drivers::command::SCRATCH_LEFT_OVER_AFTER,
        )
    })
    .await;
    match swept {
        Ok(Ok(0)) => {}
        Ok(Ok(dirs)) => tracing::info!(dirs, "removed scratch directories left by killed runs"),
        Ok(Err(error)) => tracing::warn!(%error, "could not sweep the scratch directories"),
        Err(error) => tracing::warn!(%error, "the scratch sweep stopped"),
    }
    pack_repository(state).await;
    if state.db.engine == Engine::Sqlite
        && let Err(error) = refresh_statistics(state).await
    {
        tracing::warn!(%error, "could not refresh SQLite's statistics");
    }
}

/// Packs the local GitOps repository's loose objects once there are many.
async fn pack_repository(state: &AppState) {
    let repo = state.drivers.gitops.clone();
    let packed = tokio::task::spawn_blocking(move || {
        repo.pack_loose_objects(crate::drivers::gitops::LOOSE_OBJECTS_LIMIT)
    })
    .await;
    match packed {
        Ok(Ok(None)) => {}
        Ok(Ok(Some(packed))) => tracing::info!(
            loose_before = packed.loose_before,
            loose_after = packed.loose_after,
            took_ms = packed.took.as_millis() as u64,
            "packed the GitOps repository's loose objects"
        ),
        Ok(Err(error)) => tracing::warn!(%error, "could not pack the GitOps repository"),
        Err(error) => tracing::warn!(%error, "the GitOps repository's upkeep stopped"),
    }
}

async fn forget_keys(state: &AppState, before: i64) -> Result<u64, StorageError> {
    let mut conn = state.db.writer.acquire().await?;
    storage::idempotency::purge_before(&mut conn, before).await
}

/// SQLite plans its queries from statistics that only `ANALYZE` gathers; a
/// database that grew for a year without them picks indexes by guesswork (the
/// chat notifier once read every request event per poll). `PRAGMA optimize`
/// analyzes the tables whose size changed much since, reading a bounded sample
/// of each (`analysis_limit`), so it costs milliseconds.
async fn refresh_statistics(state: &AppState) -> Result<(), StorageError> {
    let mut conn = state.db.writer.acquire().await?;
    sqlx::query("PRAGMA analysis_limit = 1000")
        .execute(&mut *conn)
        .await?;
    // 0x10002: look at every table, not only those this connection queried.
    sqlx::query("PRAGMA optimize = 0x10002")
        .execute(&mut *conn)
        .await?;
    Ok(())
}
