//! The GitOps driver: a change set becomes one commit in a git repository that a
//! tool such as Argo CD or Flux reconciles, in a local bare repository or pushed
//! to a remote one. Committing content the branch already holds creates no commit,
//! which makes a re-run job harmless.

mod advertised;
mod batch;
mod handles;
mod turns;
mod upkeep;

pub use turns::{PushTurns, Turn};
pub use upkeep::{LOOSE_OBJECTS_LIMIT, Packed};

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use std::cell::RefCell;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use git2::build::TreeUpdateBuilder;
use git2::{
    Cred, CredentialType, FetchOptions, FileMode, ObjectType, PushOptions, RemoteCallbacks,
    Repository, Signature,
};
use rand::Rng;
use slipway_core::execution::PlannedStep;
use slipway_core::render::{self, RenderedFile};
use slipway_core::secret::SecretValues;

use super::{Driver, DriverError, StepContext, StepOutcome};
use crate::config::Secret;

/// How long a connection to the remote may take to open, and how long a read or a
/// write on it may wait, in the server: libgit2 waits for ever by default, and a
/// remote that stops answering (a half-open connection after a partition) would
/// hold the repository's publish lock, and every job behind it, until a restart.
pub const NETWORK_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub const NETWORK_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Sets libgit2's limits on waiting for a remote, for the whole process.
///
/// # Safety
/// The limits are C globals that libgit2 reads without synchronisation: call this
/// before any thread makes a libgit2 call (at the start of `main`).
pub unsafe fn limit_network_waits(connect: Duration, idle: Duration) -> Result<(), git2::Error> {
    let millis = |d: Duration| i32::try_from(d.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: the caller promises no other thread uses libgit2 yet.
    unsafe {
        git2::opts::set_server_connect_timeout_in_milliseconds(millis(connect))?;
        git2::opts::set_server_timeout_in_milliseconds(millis(idle))?;
    }
    Ok(())
}

/// Takes a lock whose last holder may have panicked (a bug, or a library's panic
/// on a remote's answer it did not expect) over instead of refusing: what the
/// locks guard is a hint rebuilt from the repository and the remote (`reset`
/// forgets it), and a poisoned lock would refuse every later change, and every
/// job behind it, until a restart.
fn taken_over<T>(mutex: &Mutex<T>, reset: impl FnOnce(&mut T)) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => {
            tracing::error!(
                "a GitOps repository lock was held by a call that panicked; taken over"
            );
            let mut guard = poisoned.into_inner();
            reset(&mut guard);
            mutex.clear_poison();
            guard
        }
    }
}

/// A secret may reach a path, a file or the commit message only through a bug in a
/// template or a catalog; this is the last place to stop it.
fn refuse_secrets(
    files: &[RenderedFile],
    message: &str,
    secrets: &SecretValues,
) -> Result<(), GitOpsError> {
    for (param, value) in secrets.iter().filter(|(_, v)| !v.is_empty()) {
        let leak = files
            .iter()
            .find(|f| f.path.contains(value) || f.content.contains(value))
            .map(|f| f.path.clone())
            .or_else(|| {
                message
                    .contains(value)
                    .then(|| "the commit message".to_string())
            });
        if let Some(path) = leak {
            return Err(GitOpsError::SecretInFile {
                path,
                param: param.to_string(),
            });
        }
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum GitOpsError {
    #[error("GitOps repository {path}: {source}")]
    Git { path: String, source: git2::Error },
    /// The remote could not be reached or refused the transfer; worth a retry.
    /// The message names the remote's URL, which never holds credentials (the
    /// settings refuse such a URL), and is scrubbed of the password besides.
    #[error("GitOps remote {url}: {message}")]
    Remote { url: String, message: String },
    /// Other writers kept moving the branch while this one tried to push.
    #[error(
        "GitOps remote {url}: the branch {branch} moved under every one of {attempts} pushes; will try again"
    )]
    Contended {
        url: String,
        branch: String,
        attempts: u32,
    },
    #[error("the change was dropped by a call that panicked while writing it; it is tried again")]
    Poisoned,
    #[error(
        "refusing to commit {path}: it would contain the value of the secret parameter {param}; a template must refer to a secret, never hold it"
    )]
    SecretInFile { path: String, param: String },
}

/// Every change of a group fails with the same error.
fn answer_all(group: Vec<batch::Pending>, error: &GitOpsError) {
    for pending in group {
        pending.answer(Err(error.duplicate()));
    }
}

fn answer_each(group: Vec<batch::Pending>, outcomes: Vec<Result<Applied, GitOpsError>>) {
    for (pending, outcome) in group.into_iter().zip(outcomes) {
        pending.answer(outcome);
    }
}

impl GitOpsError {
    /// The same error again, for each change of a group that it failed.
    fn duplicate(&self) -> GitOpsError {
        match self {
            GitOpsError::Git { path, source } => GitOpsError::Git {
                path: path.clone(),
                source: git2::Error::new(source.code(), source.class(), source.message()),
            },
            GitOpsError::Remote { url, message } => GitOpsError::Remote {
                url: url.clone(),
                message: message.clone(),
            },
            GitOpsError::Contended {
                url,
                branch,
                attempts,
            } => GitOpsError::Contended {
                url: url.clone(),
                branch: branch.clone(),
                attempts: *attempts,
            },
            GitOpsError::Poisoned => GitOpsError::Poisoned,
            GitOpsError::SecretInFile { path, param } => GitOpsError::SecretInFile {
                path: path.clone(),
                param: param.clone(),
            },
        }
    }

    /// Whether the same call may succeed later without anyone changing anything.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, GitOpsError::SecretInFile { .. })
    }
}

/// Where the commit landed and whether this call made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub commit: String,
    pub created: bool,
}

/// A file as the branch publishes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The branch, with the remote's URL when there is one.
    pub place: String,
    /// The branch head read; `None` when the branch does not exist yet.
    pub commit: Option<String>,
    /// `None` when the path is absent at that head.
    pub content: Option<String>,
}

/// The branch to commit to and, optionally, the remote to push it to.
#[derive(Debug, Clone)]
pub struct GitOpsSettings {
    /// The branch commits go to, locally and on the remote; the local repository's
    /// `HEAD` names it so a plain `git clone` checks it out.
    pub branch: String,
    pub remote: Option<RemoteSettings>,
}

impl Default for GitOpsSettings {
    fn default() -> Self {
        GitOpsSettings {
            branch: DEFAULT_BRANCH.to_string(),
            remote: None,
        }
    }
}

pub const DEFAULT_BRANCH: &str = "main";

/// The most one fetch may bring, and the longest it may take: the idle timeout
/// alone lets a remote that sends an endless pack fill the disk, or one that
/// trickles a byte a minute hold every push behind it for good. A GitOps
/// repository's history is text; its first fetch stays far below both.
const FETCH_MAX_BYTES: usize = 4 << 30;
const FETCH_TIME_LIMIT: Duration = Duration::from_secs(15 * 60);

/// The longest a push may take where the remote gives libgit2 a chance to stop
/// it (its advertisement before the pack goes, its progress messages after):
/// a remote that trickles a byte a minute would otherwise hold the publish
/// lock, and every step waiting on it, for good.
const PUSH_TIME_LIMIT: Duration = Duration::from_secs(5 * 60);

/// Why a fetch that has `received` bytes after `elapsed` must stop, if it must.
fn fetch_over_budget(received: usize, elapsed: Duration) -> Option<String> {
    if received > FETCH_MAX_BYTES {
        return Some(format!(
            "the fetch was stopped: the remote sent more than {} GiB",
            FETCH_MAX_BYTES >> 30
        ));
    }
    (elapsed > FETCH_TIME_LIMIT).then(|| {
        format!(
            "the fetch was stopped: it took longer than {} minutes",
            FETCH_TIME_LIMIT.as_secs() / 60
        )
    })
}

/// A remote repository (git://, http:// or a path) that Argo CD or Flux reads.
#[derive(Debug, Clone)]
pub struct RemoteSettings {
    /// Without credentials in it (the settings refuse a URL that holds a password).
    pub url: String,
    pub credentials: Option<RemoteCredentials>,
}

/// A user name and a password or token, from the settings, never the catalog.
#[derive(Clone)]
pub struct RemoteCredentials {
    pub username: String,
    pub password: Secret,
}

impl std::fmt::Debug for RemoteCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteCredentials")
            .field("username", &self.username)
            .field("password", &self.password)
            .finish()
    }
}

/// How often a push that lost a race to another writer is re-applied on the new
/// branch head before the job is rescheduled, and the first pause between tries.
const PUSH_ATTEMPTS: u32 = 12;
const FIRST_BACKOFF: Duration = Duration::from_millis(20);
const MAX_BACKOFF: Duration = Duration::from_millis(1500);

/// How long a group builder waits for new changes before it asks again whether
/// the push before its own has ended (a push that ends also wakes it).
const PUSH_WATCH: Duration = Duration::from_millis(20);

/// How long a push waits for its turn with the other replicas before it goes
/// ahead without one (the holder may hang; the remote still refuses a push that
/// is not a fast-forward).
const TURN_WAIT: Duration = Duration::from_secs(2);

/// The least time between two looks at the remote's head for checks.
const LOOK_GAP: Duration = Duration::from_millis(100);

/// Where fetches keep the remote's branch head.
fn tracking_ref(branch: &str) -> String {
    format!("refs/remotes/slipway/{branch}")
}

#[derive(Clone)]
pub struct GitOpsRepo {
    path: PathBuf,
    branch: String,
    branch_ref: String,
    remote: Option<Arc<RemoteSettings>>,
    /// Held while a group of changes is committed; it keeps the tip of the
    /// newest group built for the remote, which the next group builds on while
    /// that one is still being pushed.
    build: Arc<Mutex<Option<git2::Oid>>>,
    /// Held while the branch moves: a push (and its retries), a fetch. Taken
    /// while `build` is held, never the other way round, so groups push in the
    /// order they were built.
    publish: Arc<Mutex<()>>,
    /// Changes waiting for `build`, committed together by its next holder.
    queue: batch::Queue,
    /// The remote branch's head as last seen, and when.
    seen: batch::RemoteSeen,
    /// Held by a check while it asks the remote for its head, so that checks
    /// waiting together share one look; it keeps when the last look began. Never
    /// held with `build` or `publish`: a check does not wait for a push to
    /// finish, nor a push for a check.
    look: Arc<Mutex<Option<Instant>>>,
    /// Turns at the remote shared with the other replicas, when there are any.
    turns: Option<Arc<dyn PushTurns>>,
    /// Pushes turned down although made right after a fetch: another writer
    /// pushed in between.
    races_lost: Arc<AtomicU64>,
    /// Open handles on the repository, with their object caches.
    handles: Arc<handles::Handles>,
    /// Another writer pushed to the branch since this one last pushed: groups are
    /// then built at their turn instead of ahead of it.
    others_push: Arc<AtomicBool>,
    /// Commits written, including those of groups built again on a moved head.
    commits_written: Arc<AtomicU64>,
    /// Fetches from the remote.
    fetches: Arc<AtomicU64>,
}

impl std::fmt::Debug for GitOpsRepo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitOpsRepo")
            .field("path", &self.path)
            .field("branch", &self.branch)
            .field("remote", &self.remote.as_ref().map(|r| &r.url))
            .finish()
    }
}

/// A group committed while the group before it was pushed, on `base`: good for
/// the first push only if the remote's head is still `base` then. While other
/// writers push to the branch too, the remote's head has moved by the time this
/// group's turn comes and the group would be built again on it: then it is only
/// collected (`deferred`), and built once, on the head fetched at its turn.
struct Building {
    base: Option<git2::Oid>,
    group: Vec<batch::Pending>,
    applied: Vec<Result<Applied, GitOpsError>>,
    tip: Option<git2::Oid>,
    deferred: bool,
}

impl Building {
    fn start(base: Option<git2::Oid>, deferred: bool) -> Building {
        Building {
            base,
            group: Vec::new(),
            applied: Vec::new(),
            tip: base,
            deferred,
        }
    }

    /// Commits `more` on top of what is built so far (or, deferred, queues it).
    fn add(&mut self, repo: &GitOpsRepo, git: &Repository, more: Vec<batch::Pending>) {
        if more.is_empty() {
            return;
        }
        if self.deferred {
            self.group.extend(more);
            return;
        }
        let (applied, tip) = repo.commit_group(git, self.tip, &more);
        self.applied.extend(applied);
        self.tip = tip;
        self.group.extend(more);
    }

    /// Commits the whole group again, on `base` (a deferred group is built later).
    fn rebase(&mut self, repo: &GitOpsRepo, git: &Repository, base: Option<git2::Oid>) {
        if self.deferred {
            return;
        }
        let (applied, tip) = repo.commit_group(git, base, &self.group);
        (self.base, self.applied, self.tip) = (base, applied, tip);
    }
}

/// A push the remote turned down because its branch moved since the fetch.
enum Push {
    Landed,
    /// Another writer's push landed first: apply again on the new head.
    Rejected(String),
}

/// Whether a remote's refusal of a ref update means only that the branch moved
/// under the push (git's receive-pack: not a fast-forward, or the ref changed
/// between its check and its lock), rather than a rule of the remote's.
fn lost_a_race(status: &str) -> bool {
    const RACES: [&str; 6] = [
        "non-fast-forward",
        "fetch first",
        "failed to update ref",
        "failed to lock",
        "cannot lock ref",
        "stale info",
    ];
    let status = status.to_ascii_lowercase();
    RACES.iter().any(|race| status.contains(race))
}

/// The most the remote's own words add to a refusal.
const REMOTE_WORDS_BYTES: usize = 1024;

/// Keeps the start of what the remote printed while it received a push, up to
/// [`REMOTE_WORDS_BYTES`], printable and on one line.
fn keep_remote_words(kept: &mut String, text: &[u8]) {
    for c in String::from_utf8_lossy(text).chars() {
        if kept.len() + c.len_utf8() > REMOTE_WORDS_BYTES {
            return;
        }
        match c {
            '\r' | '\n' => {
                if !kept.is_empty() && !kept.ends_with(' ') {
                    kept.push(' ');
                }
            }
            c if c.is_control() => {}
            c => kept.push(c),
        }
    }
}

/// The remote is the one configured, and its credentials go to it alone: an
/// HTTP remote that redirects elsewhere (libgit2 follows one on the first
/// request by default) is not followed. Set in the repository's configuration
/// for the connections that take no options (a look at the remote's head).
fn refuse_redirects(repo: &Repository) -> Result<(), git2::Error> {
    let mut config = repo.config()?;
    if config.get_string("http.followRedirects").ok().as_deref() != Some("false") {
        config.set_str("http.followRedirects", "false")?;
    }
    Ok(())
}

impl GitOpsRepo {
    /// Opens the repository on the default branch, creating a bare one when the path
    /// does not exist yet.
    pub fn open_or_init(path: &Path) -> Result<GitOpsRepo, GitOpsError> {
        GitOpsRepo::open_with(path, &GitOpsSettings::default())
    }

    /// Opens (or creates) the local repository and points its `HEAD` at the
    /// configured branch, also in a repository an older version created with
    /// `HEAD` on `master` while it committed to `main`.
    pub fn open_with(path: &Path, settings: &GitOpsSettings) -> Result<GitOpsRepo, GitOpsError> {
        let git = |source| GitOpsError::Git {
            path: path.display().to_string(),
            source,
        };
        let branch_ref = format!("refs/heads/{}", settings.branch);
        if !git2::Reference::is_valid_name(&branch_ref) {
            return Err(git(git2::Error::from_str(&format!(
                "{:?} is not a valid branch name",
                settings.branch
            ))));
        }
        let repo = if path.exists() {
            Repository::open(path).map_err(git)?
        } else {
            Repository::init_bare(path).map_err(git)?
        };
        let head_names_branch = repo
            .find_reference("HEAD")
            .ok()
            .and_then(|head| {
                head.symbolic_target()
                    .ok()
                    .flatten()
                    .map(|t| t == branch_ref)
            })
            .unwrap_or(false);
        if !head_names_branch {
            repo.set_head(&branch_ref).map_err(git)?;
        }
        refuse_redirects(&repo).map_err(git)?;
        Ok(GitOpsRepo {
            path: path.to_path_buf(),
            branch: settings.branch.clone(),
            branch_ref,
            remote: settings.remote.clone().map(Arc::new),
            build: Arc::new(Mutex::new(None)),
            publish: Arc::new(Mutex::new(())),
            queue: batch::Queue::default(),
            seen: batch::RemoteSeen::default(),
            look: Arc::new(Mutex::new(None)),
            turns: None,
            races_lost: Arc::new(AtomicU64::new(0)),
            handles: Arc::new(handles::Handles::new(path)),
            others_push: Arc::new(AtomicBool::new(false)),
            commits_written: Arc::new(AtomicU64::new(0)),
            fetches: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Pushes take turns with the other replicas through `turns`.
    pub fn with_turns(mut self, turns: Arc<dyn PushTurns>) -> GitOpsRepo {
        self.turns = Some(turns);
        self
    }

    /// How many pushes made right after a fetch the remote turned down because
    /// another writer pushed in between (for the health of a replica set: with
    /// turns, none).
    pub fn races_lost(&self) -> u64 {
        self.races_lost.load(Ordering::Relaxed)
    }

    /// How many commits this writer has written, counting a group built again on
    /// a head another writer moved once per build (the work, not the result).
    pub fn commits_written(&self) -> u64 {
        self.commits_written.load(Ordering::Relaxed)
    }

    /// Whether groups are built ahead of their turn: no other writer was seen
    /// pushing to the branch since this one last pushed.
    pub fn builds_ahead(&self) -> bool {
        !self.others_push.load(Ordering::Relaxed)
    }

    /// How many times this writer fetched from the remote (a writer alone, whose
    /// pushes land on the head it built on, needs none).
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn branch(&self) -> &str {
        &self.branch
    }

    fn git_error(&self, source: git2::Error) -> GitOpsError {
        GitOpsError::Git {
            path: self.path.display().to_string(),
            source,
        }
    }

    /// Writes the files on top of the branch head and commits, unless the tree
    /// would not change.
    pub fn apply(&self, files: &[RenderedFile], message: &str) -> Result<Applied, GitOpsError> {
        self.apply_with_secrets(files, message, &SecretValues::new())
    }

    /// `apply` for a request with secret parameters. A repository is readable by
    /// everyone who reconciles it, so the values are used only to make sure none
    /// of them is about to be committed: the commit is refused if one would be.
    ///
    /// With a remote, the commit is made on top of the remote's branch and pushed;
    /// when another writer pushed first, the files are applied again on the new
    /// head and pushed again. Files the remote branch already holds make no commit,
    /// so a re-run after a push that landed (whatever happened after) is harmless.
    pub fn apply_with_secrets(
        &self,
        files: &[RenderedFile],
        message: &str,
        secrets: &SecretValues,
    ) -> Result<Applied, GitOpsError> {
        self.apply_change(files, &[], message, secrets)
    }

    /// `apply_with_secrets` that also removes `removed` (paths) from the tree: the
    /// files of a retired asset. A path already gone is no change, so a re-run
    /// after the removal landed commits nothing.
    pub fn apply_change(
        &self,
        files: &[RenderedFile],
        removed: &[String],
        message: &str,
        secrets: &SecretValues,
    ) -> Result<Applied, GitOpsError> {
        refuse_secrets(files, message, secrets)?;
        let outcome = self.queue.push(files, removed, message)?;
        self.apply_queued()?;
        // Applied by now: by this worker, or by one that took the queue after the
        // change was queued and answered before letting go of the locks.
        outcome.recv().map_err(|_| GitOpsError::Poisoned)?
    }

    /// Commits what is queued as one group and moves the branch to it. With a
    /// remote, building and pushing overlap: while the group before is pushed,
    /// this group's changes are committed on top of it as they arrive (the way a
    /// log writer fills the next buffer while the last is flushed), and the group
    /// is pushed, with everything queued until then, once that push has ended.
    fn apply_queued(&self) -> Result<(), GitOpsError> {
        let mut built = taken_over(&self.build, |built| *built = None);
        let group = self.queue.take()?;
        if group.is_empty() {
            return Ok(());
        }
        let repo = match self.handles.take() {
            Ok(repo) => repo,
            Err(e) => {
                answer_all(group, &self.git_error(e));
                return Ok(());
            }
        };
        let Some(remote) = &self.remote else {
            self.apply_local(&repo, group);
            return Ok(());
        };
        let built_on = match *built {
            Some(tip) => Some(tip),
            None => match self.known_remote_head(&repo) {
                Ok(head) => head,
                Err(error) => {
                    answer_all(group, &error);
                    return Ok(());
                }
            },
        };
        let deferred = self.others_push.load(Ordering::Relaxed);
        let mut building = Building::start(built_on, deferred);
        building.add(self, &repo, group);
        let publishing = self.build_until_published(&repo, &mut building)?;
        // Built on a tip that did not land as it was (a push that failed, or one
        // rebased on another writer's), the group is built again on what the
        // remote holds, still in order, so the next group builds on what this one
        // pushes.
        match self.known_remote_head(&repo) {
            Ok(head) if head.is_some() && head != building.base => {
                building.rebase(self, &repo, head)
            }
            Ok(_) => {}
            Err(error) => {
                *built = None;
                answer_all(building.group, &error);
                return Ok(());
            }
        }
        *built = match building.deferred {
            true => None,
            false => building.tip.or(building.base),
        };
        drop(built);
        let (changes, pushing) = (building.group.len(), Instant::now());
        let turn = self.turns.as_ref().and_then(|turns| turns.take(TURN_WAIT));
        self.apply_remote(&repo, remote, building);
        drop(turn);
        drop(publishing);
        tracing::debug!(
            changes,
            pushed_ms = pushing.elapsed().as_millis() as u64,
            "a group of changes was pushed"
        );
        self.queue.wake();
        Ok(())
    }

    /// Commits the changes that arrive onto `building` until the push before has
    /// ended, then the rest; returns the publish lock, held. Pushes are done in
    /// the order groups were built: the push before this one has ended once the
    /// lock is had.
    fn build_until_published(
        &self,
        repo: &Repository,
        building: &mut Building,
    ) -> Result<std::sync::MutexGuard<'_, ()>, GitOpsError> {
        let publishing = loop {
            match self.publish.try_lock() {
                Ok(guard) => break guard,
                Err(std::sync::TryLockError::WouldBlock) => {}
                Err(std::sync::TryLockError::Poisoned(held)) => {
                    // Let go first: `taken_over` locks again.
                    drop(held);
                    break taken_over(&self.publish, |_| {});
                }
            }
            self.queue.wait(PUSH_WATCH)?;
            building.add(self, repo, self.queue.take()?);
        };
        building.add(self, repo, self.queue.take()?);
        Ok(publishing)
    }

    fn apply_local(&self, repo: &Repository, group: Vec<batch::Pending>) {
        let head = match repo.refname_to_id(&self.branch_ref) {
            Ok(id) => Some(id),
            Err(e) if e.code() == git2::ErrorCode::NotFound => None,
            Err(e) => return answer_all(group, &self.git_error(e)),
        };
        let (applied, tip) = self.commit_group(repo, head, &group);
        if let Some(tip) = tip
            && Some(tip) != head
            && let Err(e) = self.set_ref(repo, &self.branch_ref, &tip.to_string())
        {
            return answer_all(group, &self.git_error(e));
        }
        answer_each(group, applied);
    }

    /// The remote's branch head as this repository last saw it (fetched, or
    /// pushed by this process); `None` when the branch is not there yet.
    fn known_remote_head(&self, repo: &Repository) -> Result<Option<git2::Oid>, GitOpsError> {
        match repo.refname_to_id(&tracking_ref(&self.branch)) {
            Ok(id) => Ok(Some(id)),
            Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
            Err(e) => Err(self.git_error(e)),
        }
    }

    /// Each change on top of the one before it, starting at `head`; a change that
    /// cannot be committed fails alone. Returns the outcomes and the new tip.
    fn commit_group(
        &self,
        repo: &Repository,
        mut head: Option<git2::Oid>,
        group: &[batch::Pending],
    ) -> (Vec<Result<Applied, GitOpsError>>, Option<git2::Oid>) {
        let outcomes = group
            .iter()
            .map(|pending| {
                let parent = head
                    .map(|id| repo.find_commit(id))
                    .transpose()
                    .map_err(|e| self.git_error(e))?;
                let applied = self
                    .commit_on(repo, parent, pending)
                    .map_err(|e| self.git_error(e))?;
                head = Some(git2::Oid::from_str(&applied.commit).map_err(|e| self.git_error(e))?);
                Ok(applied)
            })
            .collect();
        (outcomes, head)
    }

    /// The first try pushes the group as it was built when it was built on the
    /// remote's head as last seen (the tip of the group pushed before it, usually),
    /// else commits it again on that head; neither fetches. A push on a head that
    /// moved meanwhile is a non-fast-forward the remote (or libgit2, from the refs
    /// the remote advertises) turns down, and the next try fetches. With one
    /// writer, or few, most pushes land without the round trip.
    fn apply_remote(&self, repo: &Repository, remote: &RemoteSettings, building: Building) {
        let tracking = tracking_ref(&self.branch);
        let mut backoff = FIRST_BACKOFF;
        let Building {
            base,
            group,
            applied,
            tip,
            deferred,
        } = building;
        let mut prebuilt = (!deferred).then_some((base, applied, tip));
        for attempt in 1..=PUSH_ATTEMPTS {
            let optimistic =
                attempt == 1 && prebuilt.is_some() && repo.refname_to_id(&tracking).is_ok();
            // With the publish lock held, the head as last seen is this writer's
            // own last push or look: the fetch shows whether another one pushed.
            let seen_before = self.known_remote_head(repo);
            if !optimistic && let Err(error) = self.fetch(repo, remote) {
                return answer_all(group, &error);
            }
            let head = match self.known_remote_head(repo) {
                Ok(head) => head,
                Err(error) => return answer_all(group, &error),
            };
            if attempt == 1
                && !optimistic
                && let Ok(seen_before) = seen_before
            {
                self.others_push
                    .store(head != seen_before, Ordering::Relaxed);
            }
            let (applied, tip) = match prebuilt.take().filter(|(base, ..)| *base == head) {
                Some((_, applied, tip)) => (applied, tip),
                None => self.commit_group(repo, head, &group),
            };
            let Some(tip) = tip.filter(|tip| Some(*tip) != head) else {
                // Nothing new: the remote already holds every change.
                return answer_each(group, applied);
            };
            // The local branch follows what the remote holds (or is about to).
            if let Err(e) = self.set_ref(repo, &self.branch_ref, &tip.to_string()) {
                return answer_all(group, &self.git_error(e));
            }
            let pushed_at = Instant::now();
            match self.push(repo, remote) {
                Err(error) => return answer_all(group, &error),
                Ok(Push::Landed) => {
                    if optimistic {
                        self.others_push.store(false, Ordering::Relaxed);
                    }
                    if let Err(e) = self.set_ref(repo, &tracking, &tip.to_string()) {
                        return answer_all(group, &self.git_error(e));
                    }
                    self.seen.mark(pushed_at, Some(tip));
                    return answer_each(group, applied);
                }
                Ok(Push::Rejected(reason)) => {
                    tracing::info!(
                        attempt,
                        %reason,
                        branch = %self.branch,
                        changes = group.len(),
                        "the remote branch moved; applying the changes again on its new head"
                    );
                    self.others_push.store(true, Ordering::Relaxed);
                    // A stale copy is no race with another writer: fetch at once.
                    if !optimistic {
                        self.races_lost.fetch_add(1, Ordering::Relaxed);
                        std::thread::sleep(jittered(backoff));
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
            }
        }
        let contended = GitOpsError::Contended {
            url: remote.url.clone(),
            branch: self.branch.clone(),
            attempts: PUSH_ATTEMPTS,
        };
        answer_all(group, &contended);
    }

    fn remote_error(&self, remote: &RemoteSettings, error: &git2::Error) -> GitOpsError {
        let mut message = error.message().to_string();
        if let Some(credentials) = &remote.credentials {
            let password = credentials.password.expose();
            if !password.is_empty() {
                message = message.replace(password, "***");
            }
        }
        GitOpsError::Remote {
            url: remote.url.clone(),
            message,
        }
    }

    /// Credentials for one connection: offered once, so a refused password ends
    /// the attempt instead of libgit2 asking again forever.
    fn callbacks<'a>(&self, remote: &'a RemoteSettings) -> RemoteCallbacks<'a> {
        let mut callbacks = RemoteCallbacks::new();
        let mut offered = false;
        callbacks.credentials(move |_url, _user_from_url, allowed| {
            let Some(credentials) = &remote.credentials else {
                return Err(git2::Error::from_str(
                    "the remote asks for credentials and none are configured \
                     (--gitops-remote-username and --gitops-remote-password)",
                ));
            };
            if offered {
                return Err(git2::Error::from_str(
                    "the remote refused the configured credentials",
                ));
            }
            offered = true;
            if !allowed.contains(CredentialType::USER_PASS_PLAINTEXT) {
                return Err(git2::Error::from_str(
                    "the remote asks for a kind of credentials other than a user name and password",
                ));
            }
            Cred::userpass_plaintext(&credentials.username, credentials.password.expose())
        });
        callbacks
    }

    fn fetch(&self, repo: &Repository, remote: &RemoteSettings) -> Result<(), GitOpsError> {
        let mut connection = repo
            .remote_anonymous(&remote.url)
            .map_err(|e| self.remote_error(remote, &e))?;
        let started = Instant::now();
        let over_budget = std::cell::Cell::new(None);
        let received = std::cell::Cell::new(0);
        let within_budget = |bytes: usize| {
            let over = fetch_over_budget(bytes, started.elapsed());
            let go_on = over.is_none();
            if !go_on {
                over_budget.set(over);
            }
            go_on
        };
        let mut options = FetchOptions::new();
        let mut callbacks = self.callbacks(remote);
        callbacks.transfer_progress(|progress| {
            received.set(progress.received_bytes());
            within_budget(progress.received_bytes())
        });
        // A remote may also trickle progress messages or stall the negotiation
        // without sending pack data: the time limit holds there too.
        callbacks.sideband_progress(|_| within_budget(received.get()));
        options.remote_callbacks(callbacks);
        options.follow_redirects(git2::RemoteRedirect::None);
        options.download_tags(git2::AutotagOption::None);
        let refspec = format!("+{}:{}", self.branch_ref, tracking_ref(&self.branch));
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let fetched = connection.fetch(&[refspec.as_str()], Some(&mut options), None);
        if let Some(reason) = over_budget.take() {
            return Err(GitOpsError::Remote {
                url: remote.url.clone(),
                message: reason,
            });
        }
        fetched.map_err(|e| self.remote_error(remote, &e))?;
        // The advertisement the fetch worked from is the remote's head at `started`
        // or later.
        if let Ok(head) = advertised::advertised(&mut connection, &self.branch_ref) {
            self.seen.mark(started, head);
        }
        Ok(())
    }

    /// The commit the remote's branch points at now, from its ref advertisement
    /// alone (no repository is opened, so no lock is needed).
    fn remote_head(&self, remote: &RemoteSettings) -> Result<Option<git2::Oid>, GitOpsError> {
        // A handle of its own on the repository, only for its configuration
        // (no redirects): a detached remote would follow one with the credentials.
        let repo = Repository::open(&self.path).map_err(|source| GitOpsError::Git {
            path: self.path.display().to_string(),
            source,
        })?;
        let mut connection = repo
            .remote_anonymous(remote.url.as_str())
            .map_err(|e| self.remote_error(remote, &e))?;
        let listed = connection
            .connect_auth(git2::Direction::Fetch, Some(self.callbacks(remote)), None)
            .and_then(|mut connected| advertised::advertised(connected.remote(), &self.branch_ref));
        listed.map_err(|e| self.remote_error(remote, &e))
    }

    /// The remote's head as of `asked` or later: from a look or a landed push that
    /// began after `asked`, else from a new look. Looks are spaced by
    /// [`LOOK_GAP`]: a check waits out the gap (a push that lands meanwhile answers
    /// it) and checks that wait together share the next look. Each look is a
    /// process on the remote's side; asked for by every check at once they took
    /// the CPU the pushes needed.
    fn remote_head_since(
        &self,
        remote: &RemoteSettings,
        asked: Instant,
    ) -> Result<Option<git2::Oid>, GitOpsError> {
        if let Some(head) = self.seen.since(asked) {
            return Ok(head);
        }
        let mut last_look = taken_over(&self.look, |look| *look = None);
        let next_look = last_look.map_or(asked, |at| at + LOOK_GAP);
        if let Some(head) = self.seen.wait_since(asked, next_look) {
            return Ok(head);
        }
        let started = Instant::now();
        *last_look = Some(started);
        let head = self.remote_head(remote)?;
        self.seen.mark(started, head);
        Ok(head)
    }

    fn push(&self, repo: &Repository, remote: &RemoteSettings) -> Result<Push, GitOpsError> {
        let mut connection = repo
            .remote_anonymous(&remote.url)
            .map_err(|e| self.remote_error(remote, &e))?;
        let refused: RefCell<Option<String>> = RefCell::new(None);
        let said: RefCell<String> = RefCell::new(String::new());
        let started = Instant::now();
        let too_long = std::cell::Cell::new(false);
        let within_time = || {
            let go_on = started.elapsed() <= PUSH_TIME_LIMIT;
            too_long.set(too_long.get() || !go_on);
            go_on
        };
        let result = {
            let mut callbacks = self.callbacks(remote);
            callbacks.push_update_reference(|_refname, status| {
                if let Some(status) = status {
                    *refused.borrow_mut() = Some(status.to_string());
                }
                Ok(())
            });
            callbacks.push_negotiation(|_| {
                if within_time() {
                    Ok(())
                } else {
                    Err(git2::Error::from_str("the push took too long"))
                }
            });
            // What the remote's hooks print is the reason a person can act on.
            callbacks.sideband_progress(|text| {
                keep_remote_words(&mut said.borrow_mut(), text);
                within_time()
            });
            let mut options = PushOptions::new();
            options.remote_callbacks(callbacks);
            options.follow_redirects(git2::RemoteRedirect::None);
            let refspec = format!("{}:{}", self.branch_ref, self.branch_ref);
            // git2 reads the remote's status of each ref as UTF-8 and panics on
            // other bytes (the remote's own words): an answer of the remote's
            // that cannot be read, not a reason to unwind through the locks.
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                connection.push(&[refspec.as_str()], Some(&mut options))
            }))
            .unwrap_or_else(|_| {
                Err(git2::Error::from_str(
                    "the remote answered the push with a status that is not UTF-8 text",
                ))
            })
        };
        // Stopped for its time, the push failed (a push that completed anyway,
        // or that the remote turned down as behind, is taken as it ended).
        let stopped = matches!(&result, Err(e) if e.code() != git2::ErrorCode::NotFastForward);
        if too_long.get() && stopped {
            return Err(GitOpsError::Remote {
                url: remote.url.clone(),
                message: format!(
                    "the push was stopped: it took longer than {} minutes",
                    PUSH_TIME_LIMIT.as_secs() / 60
                ),
            });
        }
        match result {
            // libgit2 finds the remote ahead of what was fetched before it sends.
            Err(e) if e.code() == git2::ErrorCode::NotFastForward => {
                Ok(Push::Rejected(e.message().to_string()))
            }
            Err(e) => Err(self.remote_error(remote, &e)),
            // The remote's own check: another push landed between ours and its lock.
            Ok(()) => match refused.into_inner() {
                Some(reason) if lost_a_race(&reason) => Ok(Push::Rejected(reason)),
                // A hook, a protected branch: pushing again changes nothing. (A
                // remote that cannot write its ref says "failed to update ref" as a
                // lost race does: that one is pushed again, and ends contended.)
                Some(reason) => {
                    let said = said.into_inner();
                    let message = match said.trim() {
                        "" => format!("the remote refused the push: {reason}"),
                        words => {
                            format!("the remote refused the push: {reason} (it said: {words})")
                        }
                    };
                    let error = git2::Error::from_str(&message);
                    Err(self.remote_error(remote, &error))
                }
                None => Ok(Push::Landed),
            },
        }
    }

    fn set_ref(&self, repo: &Repository, name: &str, commit: &str) -> Result<(), git2::Error> {
        let oid = git2::Oid::from_str(commit)?;
        repo.reference(name, oid, true, "slipway: apply a change set")?;
        Ok(())
    }

    /// The files written on top of `head`: a new commit (not yet on any branch), or
    /// `head` itself when its tree already holds them.
    fn commit_on(
        &self,
        repo: &Repository,
        head: Option<git2::Commit<'_>>,
        change: &batch::Pending,
    ) -> Result<Applied, git2::Error> {
        let (files, message) = (&change.files, &change.message);
        let baseline = match &head {
            Some(commit) => commit.tree()?,
            None => {
                let empty = repo.treebuilder(None)?.write()?;
                repo.find_tree(empty)?
            }
        };
        let mut update = TreeUpdateBuilder::new();
        for file in files {
            let blob = repo.blob(file.content.as_bytes())?;
            update.upsert(file.path.as_str(), blob, FileMode::Blob);
        }
        for path in &change.removed {
            // Removing what is not there is an error in libgit2; here it is done.
            // Only a file is removed: a folder at the path (another writer's,
            // or a template that rendered a folder's name) holds files this
            // change does not own.
            let is_file = baseline
                .get_path(Path::new(path))
                .is_ok_and(|entry| entry.kind() == Some(git2::ObjectType::Blob));
            if is_file {
                update.remove(path.as_str());
            }
        }
        let tree_id = update.create_updated(repo, &baseline)?;
        if let Some(commit) = &head
            && commit.tree_id() == tree_id
        {
            return Ok(Applied {
                commit: commit.id().to_string(),
                created: false,
            });
        }
        let tree = repo.find_tree(tree_id)?;
        let signature = Signature::now("Slipway", "slipway@localhost")?;
        let parents: Vec<&git2::Commit<'_>> = head.iter().collect();
        let commit = repo.commit(None, &signature, &signature, message, &tree, &parents)?;
        self.commits_written.fetch_add(1, Ordering::Relaxed);
        Ok(Applied {
            commit: commit.to_string(),
            created: true,
        })
    }

    /// A file's content at a commit, or None when the path is absent there.
    ///
    /// Takes no lock: objects are never rewritten and a writer adds them with a
    /// rename, so a reader's own handle sees each whole or not at all.
    pub fn read_file(&self, commit: &str, path: &str) -> Result<Option<String>, GitOpsError> {
        let repo = self.handles.take().map_err(|e| self.git_error(e))?;
        let read = || -> Result<Option<String>, git2::Error> {
            let oid = git2::Oid::from_str(commit)?;
            let tree = repo.find_commit(oid)?.tree()?;
            let entry = match tree.get_path(Path::new(path)) {
                Ok(entry) => entry,
                Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(None),
                Err(e) => return Err(e),
            };
            if entry.kind() != Some(ObjectType::Blob) {
                return Ok(None);
            }
            let blob = repo.find_blob(entry.id())?;
            Ok(Some(String::from_utf8_lossy(blob.content()).into_owned()))
        };
        read().map_err(|e| self.git_error(e))
    }

    /// A file's content at the branch head, or None when the branch or the path is
    /// absent.
    pub fn read_head_file(&self, path: &str) -> Result<Option<String>, GitOpsError> {
        let head = {
            // A reference is replaced with a rename: it reads as old or new.
            let repo = self.handles.take().map_err(|e| self.git_error(e))?;
            match repo.refname_to_id(&self.branch_ref) {
                Ok(id) => id.to_string(),
                Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(None),
                Err(e) => return Err(self.git_error(e)),
            }
        };
        self.read_file(&head, path)
    }

    /// A file as the branch publishes it now: with a remote, as the remote's branch
    /// holds it (asked of the remote first, since that is what Argo CD or Flux
    /// reads); without one, as the local branch holds it.
    ///
    /// Checks that ask together share one look at the remote: a look (or a landed
    /// push) that began after this call was made already shows the remote as it
    /// was after the call, so it is not repeated. No check waits for a push.
    pub fn read_published(&self, path: &str) -> Result<Published, GitOpsError> {
        let asked = Instant::now();
        let head = match &self.remote {
            Some(remote) => {
                let head = self.remote_head_since(remote, asked)?;
                if let Some(head) = head {
                    self.hold_commit(remote, head)?;
                }
                head
            }
            None => {
                let repo = self.handles.take().map_err(|e| self.git_error(e))?;
                match repo.refname_to_id(&self.branch_ref) {
                    Ok(id) => Some(id),
                    Err(e) if e.code() == git2::ErrorCode::NotFound => None,
                    Err(e) => return Err(self.git_error(e)),
                }
            }
        };
        let head = head.map(|id| id.to_string());
        let content = match &head {
            Some(commit) => self.read_file(commit, path)?,
            None => None,
        };
        Ok(Published {
            place: self.place(),
            commit: head,
            content,
        })
    }

    /// Makes sure the repository holds `commit`, a head the remote showed: one this
    /// process pushed is here already; another writer's is fetched (a commit id
    /// names its whole content, so either reads the same).
    fn hold_commit(&self, remote: &RemoteSettings, commit: git2::Oid) -> Result<(), GitOpsError> {
        let held = |repo: &Repository| repo.find_commit(commit).is_ok();
        if held(&*self.handles.take().map_err(|e| self.git_error(e))?) {
            return Ok(());
        }
        let _guard = taken_over(&self.publish, |_| {});
        let repo = self.handles.take().map_err(|e| self.git_error(e))?;
        if !held(&repo) {
            self.fetch(&repo, remote)?;
        }
        Ok(())
    }

    /// The branch, and the remote's URL when there is one, for people to read.
    fn place(&self) -> String {
        match &self.remote {
            Some(remote) => format!("{} at {}", self.branch, remote.url),
            None => self.branch.clone(),
        }
    }

    /// How many commits the branch holds (for tests and the health page).
    pub fn commit_count(&self) -> Result<usize, GitOpsError> {
        let repo = self.handles.take().map_err(|e| self.git_error(e))?;
        let count = || -> Result<usize, git2::Error> {
            let head = match repo.refname_to_id(&self.branch_ref) {
                Ok(id) => id,
                Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(0),
                Err(e) => return Err(e),
            };
            let mut walk = repo.revwalk()?;
            walk.push(head)?;
            Ok(walk.count())
        };
        count().map_err(|e| self.git_error(e))
    }
}

/// Writers that lost the same race would otherwise retry in step and collide again.
fn jittered(delay: Duration) -> Duration {
    let millis = delay.as_millis() as u64;
    Duration::from_millis(millis / 2 + rand::rng().random_range(0..=millis))
}

#[async_trait]
impl Driver for GitOpsRepo {
    fn name(&self) -> &'static str {
        "gitops"
    }

    /// A change handed to the publisher is pushed with its group, which a cancel
    /// cannot call back.
    fn finishes_once_started(&self) -> bool {
        true
    }

    async fn run(
        &self,
        step: &PlannedStep,
        ctx: &StepContext<'_>,
    ) -> Result<StepOutcome, DriverError> {
        let PlannedStep::Gitops {
            files,
            removed,
            message,
        } = step
        else {
            return Err(DriverError::Permanent(format!(
                "the gitops driver was handed a {} step",
                step.driver()
            )));
        };
        // Checked when rendered, and again here: what is stored may be older than
        // the check, and nothing unparsable should reach a reconciler.
        for file in files {
            render::check_syntax(file).map_err(|e| DriverError::Permanent(e.to_string()))?;
        }
        // And where it goes: a change set stored before a path rule was made (or
        // a path recorded then, removed by an upgrade) must not touch Slipway's
        // own files or git's.
        let paths = files.iter().map(|f| f.path.as_str());
        for path in paths.chain(removed.iter().map(String::as_str)) {
            render::check_deployable_path(path)
                .map_err(|m| DriverError::Permanent(format!("refusing to commit: {m}")))?;
        }
        let place = self.place();
        ctx.progress.line(&if removed.is_empty() {
            format!("committing {} file(s) to {place}", files.len())
        } else {
            format!(
                "committing {} file(s) and the removal of {} to {place}",
                files.len(),
                removed.len()
            )
        });
        let repo = self.clone();
        let (files, removed) = (files.clone(), removed.clone());
        let (message, secrets) = (message.clone(), ctx.secrets.clone());
        let applied = tokio::task::spawn_blocking(move || {
            repo.apply_change(&files, &removed, &message, &secrets)
        })
        .await
        .map_err(|e| DriverError::Retryable(format!("the GitOps driver stopped: {e}")))?
        .map_err(|e| {
            if e.is_retryable() {
                DriverError::Retryable(e.to_string())
            } else {
                DriverError::Permanent(e.to_string())
            }
        })?;
        let summary = if applied.created {
            format!("committed {} to {place}", applied.commit)
        } else {
            format!(
                "{place} already holds these files at {}; nothing new to commit",
                applied.commit
            )
        };
        ctx.progress.line(&summary);
        Ok(StepOutcome {
            log: vec![summary.clone()],
            summary,
            commit: Some(applied.commit),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fetch_that_brings_too_much_or_takes_too_long_is_stopped() {
        let minute = Duration::from_secs(60);
        assert_eq!(fetch_over_budget(10 << 20, minute), None);
        assert_eq!(fetch_over_budget(FETCH_MAX_BYTES, FETCH_TIME_LIMIT), None);
        let flood = fetch_over_budget(FETCH_MAX_BYTES + 1, minute);
        assert!(flood.is_some_and(|why| why.contains("more than 4 GiB")));
        let trickle = fetch_over_budget(100, FETCH_TIME_LIMIT + minute);
        assert!(trickle.is_some_and(|why| why.contains("longer than 15 minutes")));
    }

    pub(super) fn file(path: &str, content: &str) -> RenderedFile {
        RenderedFile {
            path: path.into(),
            content: content.into(),
        }
    }

    #[test]
    fn a_lock_held_by_a_call_that_panicked_is_taken_over() -> Result<(), Box<dyn std::error::Error>>
    {
        let dir = tempfile::tempdir()?;
        let bare = dir.path().join("remote.git");
        Repository::init_opts(
            &bare,
            git2::RepositoryInitOptions::new()
                .bare(true)
                .initial_head("main"),
        )?;
        let settings = GitOpsSettings {
            branch: "main".into(),
            remote: Some(RemoteSettings {
                url: bare.display().to_string(),
                credentials: None,
            }),
        };
        let repo = GitOpsRepo::open_with(&dir.path().join("gitops.git"), &settings)?;
        repo.apply(&[file("a.yaml", "a: 1\n")], "first")?;
        // A call that panics holding the locks (as git2 does on a ref name it
        // cannot read) poisons them.
        let (build, publish) = (repo.build.clone(), repo.publish.clone());
        let panicked = std::thread::spawn(move || {
            let _building = build.lock();
            let _publishing = publish.lock();
            panic!("a library's panic while a group is written");
        })
        .join();
        assert!(panicked.is_err() && repo.publish.is_poisoned() && repo.build.is_poisoned());
        let later = repo.apply(&[file("b.yaml", "b: 2\n")], "second")?;
        assert!(later.created, "the next change is written");
        assert!(!repo.publish.is_poisoned() && !repo.build.is_poisoned());
        assert_eq!(
            repo.read_published("a.yaml")?.content.as_deref(),
            Some("a: 1\n")
        );
        Ok(())
    }

    /// A removal names files: a path that is a folder (a template that rendered
    /// a folder's name, or another writer's folder where a file was) keeps every
    /// file in it.
    #[test]
    fn removing_a_path_that_is_a_folder_keeps_its_files() -> Result<(), Box<dyn std::error::Error>>
    {
        let dir = tempfile::tempdir()?;
        let repo = GitOpsRepo::open_or_init(&dir.path().join("gitops.git"))?;
        let none = SecretValues::default();
        repo.apply(
            &[
                file("dev/payments/a.yaml", "a: 1\n"),
                file("dev/payments/b.yaml", "b: 2\n"),
                file("dev/c.yaml", "c: 3\n"),
            ],
            "three files",
        )?;
        repo.apply_change(
            &[],
            &["dev/payments".to_string(), "dev/c.yaml".to_string()],
            "remove a folder and a file",
            &none,
        )?;
        for kept in ["dev/payments/a.yaml", "dev/payments/b.yaml"] {
            assert!(repo.read_published(kept)?.content.is_some(), "{kept}");
        }
        assert_eq!(repo.read_published("dev/c.yaml")?.content, None);
        Ok(())
    }

    #[test]
    fn applying_the_same_files_twice_commits_once() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let repo = GitOpsRepo::open_or_init(&dir.path().join("gitops.git"))?;
        let files = [
            file("dev/payments/a/x.yaml", "a: 1\n"),
            file("dev/payments/a/y.yaml", "b: 2\n"),
        ];
        let first = repo.apply(&files, "first")?;
        assert!(first.created);
        let second = repo.apply(&files, "again")?;
        assert_eq!(
            second,
            Applied {
                commit: first.commit.clone(),
                created: false
            }
        );
        assert_eq!(repo.commit_count()?, 1);
        assert_eq!(
            repo.read_file(&first.commit, "dev/payments/a/y.yaml")?
                .as_deref(),
            Some("b: 2\n")
        );
        assert_eq!(
            repo.read_file(&first.commit, "dev/payments/a/z.yaml")?,
            None
        );
        Ok(())
    }

    #[test]
    fn changes_applied_at_once_become_one_commit_each() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let repo = GitOpsRepo::open_or_init(&dir.path().join("gitops.git"))?;
        // Sixteen writers at once, twice each: the second round finds every file.
        let applied = std::thread::scope(|scope| {
            let writers: Vec<_> = (0..16)
                .map(|i| {
                    let repo = &repo;
                    scope.spawn(move || {
                        let files = [file(&format!("dev/t/ns-{i}/ns.yaml"), &format!("n: {i}\n"))];
                        let first = repo.apply(&files, &format!("request {i}"));
                        let again = repo.apply(&files, &format!("request {i} again"));
                        (i, first, again)
                    })
                })
                .collect();
            writers
                .into_iter()
                .map(|w| w.join().map_err(|_| "a writer panicked"))
                .collect::<Result<Vec<_>, _>>()
        })?;
        let mut commits = std::collections::BTreeSet::new();
        for (i, first, again) in applied {
            let (first, again) = (first?, again?);
            assert!(first.created && !again.created, "writer {i}");
            assert!(
                commits.insert(first.commit.clone()),
                "writer {i} shares a commit"
            );
            // Its own commit holds its file (later ones of the group are on top).
            assert_eq!(
                repo.read_file(&first.commit, &format!("dev/t/ns-{i}/ns.yaml"))?
                    .as_deref(),
                Some(format!("n: {i}\n").as_str())
            );
        }
        assert_eq!(repo.commit_count()?, 16);
        Ok(())
    }

    #[test]
    fn a_secret_handed_to_the_driver_is_never_committed() -> Result<(), Box<dyn std::error::Error>>
    {
        let dir = tempfile::tempdir()?;
        let repo = GitOpsRepo::open_or_init(&dir.path().join("gitops.git"))?;
        let mut secrets = SecretValues::new();
        secrets.insert("owner_password", "canary-5f1c2b9e-secret");
        let leaking = [file(
            "dev/payments/db/cluster.yaml",
            "password: canary-5f1c2b9e-secret\n",
        )];
        let refused = repo.apply_with_secrets(&leaking, "leak", &secrets);
        assert_eq!(
            refused.err().map(|e| e.to_string()).as_deref(),
            Some(
                "refusing to commit dev/payments/db/cluster.yaml: it would contain the value of the secret parameter owner_password; a template must refer to a secret, never hold it"
            )
        );
        let in_message = repo.apply_with_secrets(
            &[file("dev/a.yaml", "1")],
            "by canary-5f1c2b9e-secret",
            &secrets,
        );
        assert!(matches!(in_message, Err(GitOpsError::SecretInFile { .. })));
        assert_eq!(repo.commit_count()?, 0, "nothing was committed");
        let referring = [file(
            "dev/payments/db/cluster.yaml",
            "secret:\n  name: payments-db-dev-owner-password\n",
        )];
        assert!(repo.apply_with_secrets(&referring, "ok", &secrets)?.created);
        Ok(())
    }

    #[test]
    fn a_later_change_keeps_earlier_files() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let repo = GitOpsRepo::open_or_init(&dir.path().join("gitops.git"))?;
        repo.apply(&[file("dev/a.yaml", "1")], "one")?;
        let second = repo.apply(&[file("prod/b.yaml", "2")], "two")?;
        assert!(second.created);
        assert_eq!(
            repo.read_file(&second.commit, "dev/a.yaml")?.as_deref(),
            Some("1")
        );
        assert_eq!(repo.commit_count()?, 2);
        Ok(())
    }
}
