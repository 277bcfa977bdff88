//! Group commit for the GitOps repository. Every change set still becomes its
//! own commit, but the changes that wait while another is being pushed are
//! committed one on top of the other and pushed together: one fetch and one push
//! for the group instead of one each, the way a database flushes its log once for
//! every transaction that waits on it. A worker hands its change to the queue and
//! then takes the repository lock; whoever holds the lock next applies everything
//! queued, so each change is applied by the time its worker has the lock.

use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

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

/// The changes waiting to be committed, and a signal for the group builder that
/// waits for the push before it: a change was queued, or that push ended.
#[derive(Clone, Default)]
pub(super) struct Queue(Arc<(Mutex<Vec<Pending>>, Condvar)>);

impl Queue {
    /// Queues a change; the receiver gets its outcome once a lock holder applied it.
    pub fn push(
        &self,
        files: &[RenderedFile],
        removed: &[String],
        message: &str,
    ) -> Result<mpsc::Receiver<Result<Applied, GitOpsError>>, GitOpsError> {
        let (reply, outcome) = mpsc::channel();
        let (queued, signal) = &*self.0;
        queued
            .lock()
            .map_err(|_| GitOpsError::Poisoned)?
            .push(Pending {
                files: files.to_vec(),
                removed: removed.to_vec(),
                message: message.to_string(),
                reply,
            });
        signal.notify_all();
        Ok(outcome)
    }

    /// Everything queued so far, oldest first.
    pub fn take(&self) -> Result<Vec<Pending>, GitOpsError> {
        Ok(std::mem::take(
            &mut *self.0.0.lock().map_err(|_| GitOpsError::Poisoned)?,
        ))
    }

    /// Waits up to `timeout` for a change to be queued or for [`Queue::wake`];
    /// returns at once when changes are waiting.
    pub fn wait(&self, timeout: Duration) -> Result<(), GitOpsError> {
        let (queued, signal) = &*self.0;
        let guard = queued.lock().map_err(|_| GitOpsError::Poisoned)?;
        if guard.is_empty() {
            drop(
                signal
                    .wait_timeout(guard, timeout)
                    .map_err(|_| GitOpsError::Poisoned)?,
            );
        }
        Ok(())
    }

    /// Wakes a builder waiting in [`Queue::wait`]: a push ended.
    pub fn wake(&self) {
        self.0.1.notify_all();
    }
}

/// The remote branch's head as last seen, and when: the start of the look (a
/// ref advertisement or a fetch) or of the push that landed it. A reader that
/// asked before that moment may take this head as the remote's without asking
/// again, since the remote showed it after the reader asked.
#[derive(Clone, Default)]
pub(super) struct RemoteSeen(Arc<(Mutex<Option<Seen>>, Condvar)>);

#[derive(Clone, Copy)]
struct Seen {
    at: Instant,
    head: Option<git2::Oid>,
}

impl RemoteSeen {
    /// Records what the remote showed at `at`, unless a newer look is on record,
    /// and wakes the readers waiting for one.
    pub fn mark(&self, at: Instant, head: Option<git2::Oid>) {
        let (seen, marked) = &*self.0;
        if let Ok(mut seen) = seen.lock()
            && seen.is_none_or(|seen| seen.at <= at)
        {
            *seen = Some(Seen { at, head });
            marked.notify_all();
        }
    }

    /// The head the remote showed after `asked`, if a look since then is on record;
    /// the inner `None` is a remote without the branch.
    pub fn since(&self, asked: Instant) -> Option<Option<git2::Oid>> {
        let seen = (*self.0.0.lock().ok()?)?;
        (seen.at >= asked).then_some(seen.head)
    }

    /// `since`, waiting until `deadline` for a look or a landed push to show it.
    pub fn wait_since(&self, asked: Instant, deadline: Instant) -> Option<Option<git2::Oid>> {
        let (seen, marked) = &*self.0;
        let mut guard = seen.lock().ok()?;
        loop {
            if let Some(seen) = *guard
                && seen.at >= asked
            {
                return Some(seen.head);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            guard = marked.wait_timeout(guard, left).ok()?.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oid(byte: u8) -> git2::Oid {
        git2::Oid::from_bytes(&[byte; 20]).expect("twenty bytes make an id")
    }

    #[test]
    fn a_look_counts_only_for_readers_that_asked_before_it_began() {
        let seen = RemoteSeen::default();
        let first = Instant::now();
        assert_eq!(seen.since(first), None, "nothing seen yet");
        seen.mark(first, Some(oid(1)));
        assert_eq!(seen.since(first), Some(Some(oid(1))));
        let later = first + Duration::from_millis(5);
        assert_eq!(
            seen.since(later),
            None,
            "a reader that asked afterwards looks again"
        );
    }

    #[test]
    fn an_older_look_never_replaces_a_newer_one() {
        let seen = RemoteSeen::default();
        let older = Instant::now();
        let newer = older + Duration::from_millis(5);
        seen.mark(newer, Some(oid(2)));
        seen.mark(older, Some(oid(1)));
        assert_eq!(seen.since(older), Some(Some(oid(2))));
        seen.mark(newer + Duration::from_millis(1), None);
        assert_eq!(seen.since(newer), Some(None), "the branch was deleted");
    }

    #[test]
    fn a_waiting_reader_wakes_when_a_push_lands_and_gives_up_at_its_deadline() {
        let seen = RemoteSeen::default();
        let asked = Instant::now();
        let pusher = {
            let seen = seen.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                seen.mark(Instant::now(), Some(oid(3)));
            })
        };
        let deadline = asked + Duration::from_secs(10);
        assert_eq!(seen.wait_since(asked, deadline), Some(Some(oid(3))));
        assert!(
            Instant::now() < deadline,
            "woken by the push, not the deadline"
        );
        pusher.join().expect("the pusher thread ends");
        let later = Instant::now();
        assert_eq!(
            seen.wait_since(later, later + Duration::from_millis(10)),
            None
        );
    }
}
