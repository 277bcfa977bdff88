//! The leases this process holds, renewed together. A heartbeat per job was a
//! write transaction per running job every third of the lease: with hundreds of
//! jobs waiting on a remote or a pipeline, most of what a replica wrote. One
//! keeper per process renews them all in one statement per tick and tells each
//! job what it learnt (a cancel, a lost lease) through its stop signal.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};

use super::{JobControl, StopReason};
use crate::storage::jobs::{self, Heartbeat};
use crate::storage::{Db, StorageError};

/// Renews the leases of every job this process runs.
pub struct LeaseKeeper {
    db: Db,
    lease: Duration,
    held: Mutex<HashMap<i64, Held>>,
    renewing: AtomicBool,
}

/// A job's lease as this process knows it.
struct Held {
    owner: String,
    control: JobControl,
    /// Until when the database's lease is known to hold.
    until: Instant,
}

/// A job held while it runs; dropping it ends the renewals.
pub struct LeaseGuard {
    keeper: Arc<LeaseKeeper>,
    job_id: i64,
    owner: String,
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        // Only its own claim: this process may have claimed the job again
        // meanwhile (its lease lapsed), and that newer run keeps its renewals.
        self.keeper.with_held(|held| {
            if held
                .get(&self.job_id)
                .is_some_and(|h| h.owner == self.owner)
            {
                held.remove(&self.job_id);
            }
        });
    }
}

impl LeaseKeeper {
    pub fn new(db: Db, lease: Duration) -> Arc<LeaseKeeper> {
        Arc::new(LeaseKeeper {
            db,
            lease,
            held: Mutex::new(HashMap::new()),
            renewing: AtomicBool::new(false),
        })
    }

    /// Keeps renewing the lease `owner` took on the job (at claim time, for the
    /// lease's length) until the guard is dropped; `control` hears a cancel or the
    /// loss of the lease. Starts the renewals on first use (a runtime is needed).
    pub fn hold(self: &Arc<Self>, job_id: i64, owner: &str, control: JobControl) -> LeaseGuard {
        let entry = Held {
            owner: owner.to_string(),
            control,
            until: Instant::now() + self.lease,
        };
        self.with_held(|held| {
            // An older run of the same job here lost its lease to this claim: it
            // hears so, and stops writing, instead of running on unwatched.
            if let Some(older) = held.insert(job_id, entry) {
                older.control.stop(StopReason::LeaseLost);
            }
        });
        if !self.renewing.swap(true, Ordering::AcqRel) {
            tokio::spawn(renew_until_dropped(Arc::downgrade(self)));
        }
        LeaseGuard {
            keeper: self.clone(),
            job_id,
            owner: owner.to_string(),
        }
    }

    /// Jobs held now; for tests and metrics.
    pub fn held_count(&self) -> usize {
        self.with_held(|held| held.len())
    }

    fn with_held<T>(&self, f: impl FnOnce(&mut HashMap<i64, Held>) -> T) -> T {
        // A panic while the map was held cannot leave it half-changed: every
        // change is one insert or remove.
        let mut held = self
            .held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut held)
    }

    /// One round: every held lease renewed in one transaction, each job told
    /// what was found.
    async fn renew_all(&self) {
        let owners: Vec<String> = self.with_held(|held| {
            let mut owners: Vec<String> = held.values().map(|h| h.owner.clone()).collect();
            owners.sort_unstable();
            owners.dedup();
            owners
        });
        if owners.is_empty() {
            return;
        }
        let sent = Instant::now();
        let lease_millis = self.lease.as_millis() as i64;
        let renewal = async {
            let mut tx = self.db.write().await?;
            let beats = jobs::heartbeat(&mut tx, self.db.engine, &owners, lease_millis).await?;
            tx.commit().await?;
            Ok::<_, StorageError>(beats)
        };
        // A database that hangs counts as one that fails: the lease runs out either way.
        let beats = match tokio::time::timeout(self.lease / 3, renewal).await {
            Ok(Ok(beats)) => beats,
            Ok(Err(error)) => return self.renewal_failed(&error.to_string()),
            Err(_) => return self.renewal_failed("the database did not answer in time"),
        };
        self.with_held(|held| {
            held.retain(|_, job| {
                if owners.binary_search(&job.owner).is_err() {
                    // Held since the round began: renewed next round.
                    return true;
                }
                match beats.get(&job.owner) {
                    Some(Heartbeat::Held) => job.until = sent + self.lease,
                    Some(Heartbeat::StopRequested(by)) => {
                        job.until = sent + self.lease;
                        job.control.stop(StopReason::Cancelled { by: by.clone() });
                    }
                    None => {
                        job.control.stop(StopReason::LeaseLost);
                        return false;
                    }
                }
                true
            });
        });
    }

    /// The renewal failed: a job whose lease could lapse before the next round
    /// has renewed it (a tick, and as long again if the database hangs) stops
    /// now, so that it never runs on while another replica takes it over.
    fn renewal_failed(&self, error: &str) {
        tracing::warn!(%error, "could not renew the leases of running jobs");
        let stop_from = Instant::now() + self.lease / 2;
        self.with_held(|held| {
            held.retain(|_, job| {
                if stop_from < job.until {
                    return true;
                }
                job.control.stop(StopReason::LeaseLost);
                false
            });
        });
    }
}

/// Renews every third of the lease, on a fixed beat (a slow round does not push
/// the next one later), while the keeper lives.
async fn renew_until_dropped(keeper: Weak<LeaseKeeper>) {
    let Some(tick) = keeper.upgrade().map(|k| k.lease / 3) else {
        return;
    };
    let mut beat = tokio::time::interval_at(Instant::now() + tick, tick);
    beat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        beat.tick().await;
        let Some(keeper) = keeper.upgrade() else {
            return;
        };
        keeper.renew_all().await;
    }
}
