//! Group commit for the GitOps repository. Every change set still becomes its
//! own commit, but the changes that wait while another is being pushed are
//! committed one on top of the other and pushed together: one fetch and one push
//! for the group instead of one each, the way a database flushes its log once for
//! every transaction that waits on it. A worker hands its change to the queue and
//! then takes the repository lock; whoever holds the lock next applies everything
//! queued, so each change is applied by the time its worker has the lock.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use slipway_core::render::RenderedFile;

use super::{Applied, GitOpsError};

/// One change set waiting to be committed, with where its outcome goes.
pub(super) struct Pending {
    pub files: Vec<RenderedFile>,
    /// Paths removed from the tree in the same commit.
    pub removed: Vec<String>,
    pub message: String,
    reply: mpsc::Sender<Result<Applied, GitOpsError>>,
}

impl Pending {
    pub fn answer(self, outcome: Result<Applied, GitOpsError>) {
        // The worker that queued it waits for this answer; it cannot be gone.
        let _ = self.reply.send(outcome);
    }
}

/// The changes waiting for the repository lock.
#[derive(Clone, Default)]
pub(super) struct Queue(Arc<Mutex<Vec<Pending>>>);

impl Queue {
    /// Queues a change; the receiver gets its outcome once a lock holder applied it.
    pub fn push(
        &self,
        files: &[RenderedFile],
        removed: &[String],
        message: &str,
    ) -> Result<mpsc::Receiver<Result<Applied, GitOpsError>>, GitOpsError> {
        let (reply, outcome) = mpsc::channel();
        self.0
            .lock()
            .map_err(|_| GitOpsError::Poisoned)?
            .push(Pending {
                files: files.to_vec(),
                removed: removed.to_vec(),
                message: message.to_string(),
                reply,
            });
        Ok(outcome)
    }

    /// Everything queued so far, oldest first.
    pub fn take(&self) -> Result<Vec<Pending>, GitOpsError> {
        Ok(std::mem::take(
            &mut *self.0.lock().map_err(|_| GitOpsError::Poisoned)?,
        ))
    }
}

/// When the local copy of the remote branch was last known to match the remote:
/// the start of the last fetch, or of the last push that landed. A reader that
/// asked before that moment may read the copy without fetching again.
#[derive(Clone, Default)]
pub(super) struct SyncedAt(Arc<Mutex<Option<Instant>>>);

impl SyncedAt {
    pub fn mark(&self, at: Instant) {
        if let Ok(mut synced) = self.0.lock() {
            *synced = Some(synced.map_or(at, |s| s.max(at)));
        }
    }

    /// Whether the copy was synced after `asked`.
    pub fn since(&self, asked: Instant) -> bool {
        self.0
            .lock()
            .ok()
            .and_then(|s| *s)
            .is_some_and(|synced| synced >= asked)
    }
}
