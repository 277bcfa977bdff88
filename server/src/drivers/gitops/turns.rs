//! Turns at the remote for replicas that push to one branch. Correctness never
//! rests on them: the remote turns down a push that is not a fast-forward, and
//! the loser builds its group again. But a replica that keeps landing keeps the
//! branch moving: its next group is built while a push is under way and follows
//! it at once, and another replica that fetches and builds again finds the
//! branch moved on before its push arrives, for seconds on end. Taking turns
//! through a lock the replicas share (the database's) makes them push one after
//! the other instead.

use std::time::Duration;

/// A turn-keeper shared by the replicas.
pub trait PushTurns: Send + Sync {
    /// Waits up to `wait` for this replica's turn. `None` when it could not be had
    /// in time (the holder may hang); the push goes ahead without one.
    fn take(&self, wait: Duration) -> Option<Turn>;
}

/// A turn held until dropped.
pub struct Turn {
    release: Option<Box<dyn FnOnce() + Send>>,
}

impl Turn {
    pub fn new(release: impl FnOnce() + Send + 'static) -> Turn {
        Turn {
            release: Some(Box::new(release)),
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        if let Some(release) = self.release.take() {
            release();
        }
    }
}
