//! Every call made with an API token is in the audit log as `token.used` (its
//! method and path, under the token, user, trace id and client address), so any use
//! is attributable, reads included. A read does not wait for a write transaction of
//! its own: uses queue here and a writer appends them together, one transaction per
//! batch, within a fraction of a second, together with the tokens' "last used"
//! times. Without a running writer (tests, one-shot commands) a use is written at
//! once.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, watch};

use super::{Actor, Caller, ServiceError, ServiceResult, record_many};
use crate::state::AppState;

/// Longest method and path kept in an event; a longer one is cut and says so.
const MAX_CALL_CHARS: usize = 300;
/// A batch this large is written without waiting for the next tick.
const EAGER_BATCH: usize = 256;
/// How long a queued use waits at most.
const TICK: Duration = Duration::from_millis(200);
/// Uses queued at most: past them (the database has refused writes for a
/// while, a full disk, while reads still answer) a call is refused rather than
/// made unrecorded, or queued in memory without end.
const MOST_PENDING: usize = 50_000;

struct TokenUse {
    caller: Caller,
    token: i64,
    call: String,
}

/// The queue of uses not yet written.
#[derive(Default)]
pub struct UseLog {
    pending: Mutex<Vec<TokenUse>>,
    /// Uses queued and not written yet, those a failed write put back
    /// included: what the cap counts.
    unwritten: AtomicUsize,
    wake: Notify,
    writer_running: AtomicBool,
}

impl std::fmt::Debug for UseLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UseLog")
            .field(
                "writer_running",
                &self.writer_running.load(Ordering::Relaxed),
            )
            .finish_non_exhaustive()
    }
}

impl UseLog {
    fn take(&self) -> Vec<TokenUse> {
        match self.pending.lock() {
            Ok(mut pending) => std::mem::take(&mut *pending),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        }
    }

    fn push(&self, token_use: TokenUse) -> usize {
        let mut pending = match self.pending.lock() {
            Ok(pending) => pending,
            Err(poisoned) => poisoned.into_inner(),
        };
        pending.push(token_use);
        pending.len()
    }
}

/// Whether `unwritten` uses leave room for one more.
fn has_room(unwritten: usize) -> bool {
    unwritten < MOST_PENDING
}

/// Refuses a call with a token while the audit log cannot keep up: asked
/// before the call is counted against the person's pace, so a refused call
/// costs none of it.
pub fn room_for_a_use(state: &AppState) -> ServiceResult<()> {
    let log = &state.token_uses;
    if !log.writer_running.load(Ordering::Acquire)
        || has_room(log.unwritten.load(Ordering::Acquire))
    {
        return Ok(());
    }
    log.wake.notify_one();
    Err(ServiceError::Unavailable(
        "calls made with API tokens cannot be written to the audit log just now; \
         try again shortly"
            .into(),
        format!("{MOST_PENDING} token uses wait to be written"),
    ))
}

/// Records one call made with `token` by `caller`.
pub async fn record_use(
    state: &AppState,
    caller: &Caller,
    token: i64,
    call: &str,
) -> ServiceResult<()> {
    let token_use = TokenUse {
        caller: caller.clone(),
        token,
        call: shortened(call),
    };
    let log = &state.token_uses;
    if !log.writer_running.load(Ordering::Acquire) {
        return write(state, &[token_use]).await;
    }
    room_for_a_use(state)?;
    log.unwritten.fetch_add(1, Ordering::AcqRel);
    if log.push(token_use) >= EAGER_BATCH {
        log.wake.notify_one();
    }
    Ok(())
}

fn shortened(call: &str) -> String {
    if call.chars().count() <= MAX_CALL_CHARS {
        return call.to_string();
    }
    let cut: String = call.chars().take(MAX_CALL_CHARS).collect();
    format!("{cut}… (cut)")
}

async fn write(state: &AppState, uses: &[TokenUse]) -> ServiceResult<()> {
    if uses.is_empty() {
        return Ok(());
    }
    let actors: Vec<Actor> = uses.iter().map(|u| Actor::User(u.caller.clone())).collect();
    let events: Vec<_> = uses
        .iter()
        .zip(&actors)
        .map(|(u, actor)| (actor, ("token", u.token.to_string()), u.call.clone()))
        .collect();
    let mut tx = state.db.write().await?;
    record_many(&mut tx, state.db.engine, "token.used", &events).await?;
    // The tokens' "last used" moves with the batch, so a call itself never waits
    // for SQLite's write lock.
    let mut used: Vec<i64> = uses.iter().map(|u| u.token).collect();
    used.sort_unstable();
    used.dedup();
    for token in used {
        crate::storage::tokens::touch(&mut tx, token).await?;
    }
    tx.commit().await?;
    state.audit_pending.notify_one();
    Ok(())
}

/// Writes queued uses until `shutdown`, then what is left.
pub fn spawn_writer(
    state: AppState,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    state
        .token_uses
        .writer_running
        .store(true, Ordering::Release);
    tokio::spawn(async move {
        // An outage fails every tick: said once, then once a minute.
        let mut said_at: Option<std::time::Instant> = None;
        loop {
            let stopping = tokio::select! {
                () = state.token_uses.wake.notified() => false,
                () = tokio::time::sleep(TICK) => false,
                _ = shutdown.changed() => true,
            };
            if stopping {
                state
                    .token_uses
                    .writer_running
                    .store(false, Ordering::Release);
            }
            let batch = state.token_uses.take();
            match write_or_requeue(&state, batch).await {
                Ok(()) => said_at = None,
                Err(error) => {
                    if said_at.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
                        tracing::error!(%error, "token uses could not be written to the audit log; will try again");
                        said_at = Some(std::time::Instant::now());
                    }
                    // Not at once again, however many calls woke it meanwhile.
                    if !stopping {
                        tokio::time::sleep(TICK).await;
                    }
                }
            }
            if stopping {
                break;
            }
        }
    })
}

/// Writes a batch in transactions of at most [`EAGER_BATCH`] uses, so a burst of
/// thousands never holds the write lock long enough to stall a submit; what fails
/// goes back to the queue, ahead of later uses, for the next tick.
async fn write_or_requeue(state: &AppState, batch: Vec<TokenUse>) -> Result<(), ServiceError> {
    let mut rest = batch;
    while !rest.is_empty() {
        let later = rest.split_off(rest.len().min(EAGER_BATCH));
        if let Err(error) = write(state, &rest).await {
            let queued = state.token_uses.take();
            for token_use in rest.into_iter().chain(later).chain(queued) {
                state.token_uses.push(token_use);
            }
            return Err(error);
        }
        state
            .token_uses
            .unwritten
            .fetch_sub(rest.len(), Ordering::AcqRel);
        rest = later;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_counts_every_use_not_written() {
        assert!(has_room(MOST_PENDING - 1));
        assert!(!has_room(MOST_PENDING));
    }
}
