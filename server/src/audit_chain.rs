//! The audit chain's machinery around its storage: the sealer the server runs,
//! signed checkpoints and their copy in the GitOps repository, and the
//! verification `slipway audit verify` and the service layer share.
//!
//! A checkpoint says "the chain had this hash at this place at this time", signed
//! with Ed25519 under a key derived from the settings' secret key. It is stored in
//! the database and committed to the GitOps repository (`audit/checkpoint.json`; the
//! repository's history keeps every one). Someone who deletes the newest events —
//! triggers dropped — leaves a chain that is whole from genesis to its new end; the
//! checkpoint outside the database still names a later place, so verification
//! catches the truncated tail.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use slipway_core::render::RenderedFile;
use tokio::sync::watch;

use crate::drivers::gitops::{GitOpsError, GitOpsRepo};
use crate::secrets::SecretKey;
use crate::state::AppState;
use crate::storage::audit::{ChainPoint, ChainReport, Checkpoint, VerifyFrom};
use crate::storage::secrets::KeyCheckLock;
use crate::storage::{self, Db, StorageError, format_millis, now_millis};

/// Where checkpoints are committed in the GitOps repository.
pub const CHECKPOINT_FILE: &str = "audit/checkpoint.json";

/// The HKDF label that turns the secret key into the signing key; fixed, so the
/// verifying key stays the same as long as the secret key does.
const KEY_LABEL: &str = "slipway audit checkpoint signing key v1";

/// Events sealed per transaction while serving: a sealing transaction holds
/// SQLite's one write turn, so it stays a few milliseconds long (5,000 at a time
/// held submits for 200 ms after a burst of API calls).
const SEAL_BATCH: i64 = 256;
/// Events sealed per transaction when nobody waits (a seeded backlog).
const BACKLOG_SEAL_BATCH: i64 = 5000;

/// How often the sealer looks without being nudged.
const SEAL_TICK: Duration = Duration::from_millis(500);
/// How long a nudged sealer waits for the nudges that follow (see `spawn`).
const SEAL_COALESCE: Duration = Duration::from_millis(250);

pub use crate::storage::audit::UNSEALED_GRACE_MILLIS;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("database: {0}")]
    Storage(#[from] StorageError),
    #[error(transparent)]
    GitOps(#[from] GitOpsError),
    #[error(
        "the checkpoint for position {position} in {source_name} is not signed by this server's key (forged, or signed with another key): refused"
    )]
    Forged { source_name: String, position: i64 },
    #[error("{source_name} does not hold a readable checkpoint: {message}")]
    Unreadable {
        source_name: String,
        message: String,
    },
    #[error(
        "checkpoints need a key: the secret key (--secret-key-file or SLIPWAY_SECRET_KEY; demo mode: <data-dir>/secret.key), or --public-key to check them"
    )]
    NoKey,
    #[error(
        "--from-checkpoint: the GitOps repository holds no checkpoint to start from (run `slipway audit checkpoint`, or verify from genesis)"
    )]
    NoCheckpoint,
    #[error("the checkpoint's commit to the GitOps repository stopped: {0}")]
    Interrupted(String),
    #[error(
        "the audit chain is broken at position {position} ({reason}): no checkpoint is signed over it; run `slipway audit verify`"
    )]
    Broken { position: i64, reason: String },
    #[error(
        "the secret key was rotated: this server's key no longer signs checkpoints here; restart it with the new key"
    )]
    KeyRotated,
}

fn signed_message(position: i64, hash: &str, at: i64) -> Vec<u8> {
    format!("slipway audit checkpoint v1\n{position}\n{hash}\n{at}").into_bytes()
}

/// Signs checkpoints. `Debug` never shows the key.
#[derive(Clone)]
pub struct CheckpointSigner {
    key: Arc<SigningKey>,
    /// The secret key's check value, as the database records the key in use.
    key_check: String,
}

impl std::fmt::Debug for CheckpointSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CheckpointSigner(***)")
    }
}

impl CheckpointSigner {
    pub fn new(secret: &SecretKey) -> CheckpointSigner {
        CheckpointSigner {
            key: Arc::new(SigningKey::from_bytes(&secret.derive(KEY_LABEL))),
            key_check: secret.check_value(),
        }
    }

    pub fn verifier(&self) -> CheckpointVerifier {
        CheckpointVerifier {
            key: self.key.verifying_key(),
        }
    }

    pub fn sign(&self, point: &ChainPoint, at: i64) -> Checkpoint {
        let signature = self
            .key
            .sign(&signed_message(point.position, &point.hash, at));
        Checkpoint {
            position: point.position,
            hash: point.hash.clone(),
            at,
            public_key: self.verifier().to_hex(),
            signature: hex::encode(signature.to_bytes()),
        }
    }
}

/// Checks checkpoints against one verifying key.
#[derive(Debug, Clone)]
pub struct CheckpointVerifier {
    key: VerifyingKey,
}

impl CheckpointVerifier {
    /// 64 hex digits, as `slipway audit public-key` prints them.
    pub fn parse(text: &str) -> Result<CheckpointVerifier, String> {
        let bytes = hex::decode(text.trim()).map_err(|e| format!("not hex: {e}"))?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "must be 32 bytes (64 hex digits)".to_string())?;
        VerifyingKey::from_bytes(&bytes)
            .map(|key| CheckpointVerifier { key })
            .map_err(|e| format!("not an Ed25519 public key: {e}"))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.key.to_bytes())
    }

    /// Whether this key signed exactly this position, hash and time.
    pub fn is_signed(&self, checkpoint: &Checkpoint) -> bool {
        let Ok(bytes) = hex::decode(&checkpoint.signature) else {
            return false;
        };
        let Ok(signature) = Signature::from_slice(&bytes) else {
            return false;
        };
        self.key
            .verify(
                &signed_message(checkpoint.position, &checkpoint.hash, checkpoint.at),
                &signature,
            )
            .is_ok()
    }
}

/// Seals every committed event still waiting, in short transactions; returns how many.
pub async fn seal_pending(db: &Db) -> Result<u64, StorageError> {
    seal_in_batches(db, SEAL_BATCH).await
}

/// Seals a backlog no writer waits behind (after `dev seed`) in long transactions.
pub async fn seal_backlog(db: &Db) -> Result<u64, StorageError> {
    seal_in_batches(db, BACKLOG_SEAL_BATCH).await
}

async fn seal_in_batches(db: &Db, batch: i64) -> Result<u64, StorageError> {
    let mut total = 0;
    loop {
        let mut tx = db.write().await?;
        let sealed = storage::audit::seal(&mut tx, db.engine, batch).await?;
        tx.commit().await?;
        total += sealed;
        if sealed < batch as u64 {
            return Ok(total);
        }
        // Let a waiting request in between two batches.
        tokio::task::yield_now().await;
    }
}

/// The checkpoint committed to the GitOps repository's branch head, if any.
pub fn read_external(gitops: &GitOpsRepo) -> Result<Option<Checkpoint>, AuditError> {
    let Some(text) = gitops.read_head_file(CHECKPOINT_FILE)? else {
        return Ok(None);
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| AuditError::Unreadable {
            source_name: format!("the GitOps repository's {CHECKPOINT_FILE}"),
            message: e.to_string(),
        })
}

#[derive(serde::Serialize)]
struct CheckpointFile<'a> {
    #[serde(flatten)]
    checkpoint: &'a Checkpoint,
    /// For people reading the repository; not signed.
    signed_at: String,
}

/// Commits the checkpoint to the GitOps repository; false when it already holds it.
pub fn write_external(gitops: &GitOpsRepo, checkpoint: &Checkpoint) -> Result<bool, AuditError> {
    let file = CheckpointFile {
        checkpoint,
        signed_at: format_millis(checkpoint.at),
    };
    let content = format!(
        "{}\n",
        serde_json::to_string_pretty(&file).unwrap_or_default()
    );
    let applied = gitops.apply(
        &[RenderedFile {
            path: CHECKPOINT_FILE.into(),
            content,
        }],
        &format!(
            "audit checkpoint: position {}, hash {}",
            checkpoint.position, checkpoint.hash
        ),
    )?;
    Ok(applied.created)
}

/// Seals what is pending and, when the chain grew since the last checkpoint, signs
/// its head, stores the checkpoint and commits it to the GitOps repository. Returns
/// the newest checkpoint (none while the log is empty).
///
/// Only a chain that still passes through the last signed place is signed: the
/// events since it are verified first. Without that, someone who rewrote the
/// chain (or cut it) and let it grow past the last checkpoint again would have
/// the server vouch for the forgery at its next checkpoint, and verify, which
/// walks to the newest checkpoint, would find it whole.
pub async fn checkpoint(
    db: &Db,
    gitops: &GitOpsRepo,
    signer: &CheckpointSigner,
) -> Result<Option<Checkpoint>, AuditError> {
    seal_pending(db).await?;
    let verifier = signer.verifier();
    let mut conn = db.pool.acquire().await.map_err(StorageError::from)?;
    let stored = storage::audit::latest_checkpoint(&mut conn)
        .await?
        .filter(|c| verifier.is_signed(c));
    drop(conn);
    let repo = gitops.clone();
    let external = tokio::task::spawn_blocking(move || read_external(&repo))
        .await
        .map_err(|e| AuditError::Interrupted(e.to_string()))?
        .ok()
        .flatten()
        .filter(|c| verifier.is_signed(c));
    let signed_before = [stored.clone(), external]
        .into_iter()
        .flatten()
        .max_by_key(|c| c.position);
    let since = signed_before.as_ref().map(Checkpoint::point);
    let report = storage::audit::verify(
        db,
        &VerifyFrom {
            start: since.as_ref(),
            ..VerifyFrom::default()
        },
    )
    .await?;
    if let storage::audit::ChainStatus::Broken {
        position, reason, ..
    } = report.status
    {
        tracing::error!(position, %reason, "the audit chain is broken: no checkpoint is signed over it");
        return Err(AuditError::Broken { position, reason });
    }
    let checkpoint = match (report.head, signed_before) {
        (Some(head), Some(before)) if head.position <= before.position => before,
        (Some(head), _) => {
            let signed = signer.sign(&head, now_millis());
            let mut tx = db.write().await?;
            // A checkpoint signed with a key rotated away would read as forged to
            // every server started with the new one. The key check row stays
            // locked until this commits, so a rotation cannot slip in between.
            let recorded =
                storage::secrets::key_check_locked(&mut tx, db.engine, KeyCheckLock::Share).await?;
            if recorded.is_some_and(|recorded| recorded != signer.key_check) {
                return Err(AuditError::KeyRotated);
            }
            storage::audit::insert_checkpoint(&mut tx, &signed).await?;
            tx.commit().await.map_err(StorageError::from)?;
            signed
        }
        (None, _) => return Ok(None),
    };
    // A push to the remote blocks for as long as the network takes: off the
    // runtime's threads, as every other use of the repository.
    let (repo, newest) = (gitops.clone(), checkpoint.clone());
    tokio::task::spawn_blocking(move || publish_external(&repo, &newest))
        .await
        .map_err(|e| AuditError::Interrupted(e.to_string()))??;
    Ok(Some(checkpoint))
}

/// Commits the checkpoint to the GitOps repository unless it already holds one as
/// new or newer: the external checkpoint never moves back (another replica may be
/// ahead).
fn publish_external(gitops: &GitOpsRepo, checkpoint: &Checkpoint) -> Result<(), AuditError> {
    let external = read_external(gitops).ok().flatten();
    if external.is_none_or(|e| e.position < checkpoint.position) {
        write_external(gitops, checkpoint)?;
    }
    Ok(())
}

/// What a verification read and found.
#[derive(Debug, Clone)]
pub struct Verified {
    pub report: ChainReport,
    /// The checkpoint the run started after (`--from-checkpoint`).
    pub started_from: Option<Checkpoint>,
    /// The newest signed checkpoint the chain had to reach.
    pub reached: Option<(Checkpoint, &'static str)>,
    /// Sealed before reading.
    pub sealed: u64,
    pub elapsed: Duration,
    /// Things the reader should know (no key, no checkpoint yet).
    pub notes: Vec<String>,
}

impl Verified {
    /// Sealed events read per second.
    pub fn rate(&self) -> f64 {
        let events = match &self.report.status {
            storage::audit::ChainStatus::Intact { events } => *events,
            storage::audit::ChainStatus::Broken { .. } => 0,
        };
        events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// How a verification runs.
#[derive(Debug, Clone, Copy)]
pub struct VerifyOptions {
    /// Start after the newest external checkpoint instead of at genesis.
    pub from_checkpoint: bool,
    /// Seal what is pending first; without it (read-only credentials) an event left
    /// unsealed long after its neighbours shows as a break.
    pub seal: bool,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            from_checkpoint: false,
            seal: true,
        }
    }
}

/// Seals what is pending, then verifies the chain: from genesis, or (with
/// `from_checkpoint`) from the newest external checkpoint, whose place must still
/// hold its hash; and always up to the newest signed checkpoint, external or stored,
/// so a truncated tail shows. A checkpoint with a bad signature is refused.
pub async fn verify(
    db: &Db,
    gitops: Option<&GitOpsRepo>,
    verifier: Option<&CheckpointVerifier>,
    options: VerifyOptions,
) -> Result<Verified, AuditError> {
    let from_checkpoint = options.from_checkpoint;
    let sealed = if options.seal {
        seal_pending(db).await?
    } else {
        0
    };
    let mut conn = db.pool.acquire().await.map_err(StorageError::from)?;
    let external = match gitops {
        Some(gitops) => read_external(gitops)?,
        None => None,
    };
    let stored = storage::audit::latest_checkpoint(&mut conn).await?;
    let mut notes = Vec::new();
    let mut trusted: Vec<(Checkpoint, &'static str)> = Vec::new();
    match verifier {
        Some(verifier) => {
            // The external one last: of two at the same place, it is the one named.
            for (checkpoint, source_name) in [
                (stored, "the database"),
                (external.clone(), "the GitOps repository"),
            ] {
                let Some(checkpoint) = checkpoint else {
                    continue;
                };
                if !verifier.is_signed(&checkpoint) {
                    return Err(AuditError::Forged {
                        source_name: source_name.to_string(),
                        position: checkpoint.position,
                    });
                }
                trusted.push((checkpoint, source_name));
            }
            if external.is_none() {
                notes.push(format!(
                    "no checkpoint in the GitOps repository yet ({CHECKPOINT_FILE}): a truncated tail after the last stored checkpoint would not show"
                ));
            }
        }
        // A checkpoint that cannot be checked is neither trusted nor ignored.
        None if from_checkpoint || external.is_some() || stored.is_some() => {
            return Err(AuditError::NoKey);
        }
        None => notes.push(
            "no key: the signed checkpoints were not checked, so a truncated tail would not show"
                .into(),
        ),
    }
    let started_from = if from_checkpoint {
        Some(
            trusted
                .iter()
                .find(|(_, source)| *source == "the GitOps repository")
                .map(|(c, _)| c.clone())
                .ok_or(AuditError::NoCheckpoint)?,
        )
    } else {
        None
    };
    let reached = trusted.into_iter().max_by_key(|(c, _)| c.position);
    let start_point = started_from.as_ref().map(Checkpoint::point);
    let reach_point = reached.as_ref().map(|(c, _)| c.point());
    let began = Instant::now();
    drop(conn);
    let report = storage::audit::verify(
        db,
        &VerifyFrom {
            start: start_point.as_ref(),
            reach: reach_point.as_ref(),
            ..VerifyFrom::default()
        },
    )
    .await?;
    let report = match report.status {
        storage::audit::ChainStatus::Intact { .. } => {
            match checkpoint_off_the_chain(db, verifier, external.as_ref()).await? {
                Some(status) => ChainReport { status, ..report },
                None => report,
            }
        }
        storage::audit::ChainStatus::Broken { .. } => report,
    };
    Ok(Verified {
        report,
        started_from,
        reached,
        sealed,
        elapsed: began.elapsed(),
        notes,
    })
}

/// The first signed checkpoint, stored or external, whose place no longer holds
/// the hash it vouches for. The walk reaches the newest checkpoint only; a chain
/// rewritten behind it, and grown again past it, shows here.
async fn checkpoint_off_the_chain(
    db: &Db,
    verifier: Option<&CheckpointVerifier>,
    external: Option<&Checkpoint>,
) -> Result<Option<storage::audit::ChainStatus>, AuditError> {
    let Some(verifier) = verifier else {
        return Ok(None);
    };
    let mut conn = db.pool.acquire().await.map_err(StorageError::from)?;
    let mut off = storage::audit::checkpoints_off_the_chain(&mut conn, 100).await?;
    if let Some(external) = external
        && storage::audit::hash_at(&mut conn, external.position)
            .await?
            .as_deref()
            != Some(external.hash.as_str())
    {
        off.push(external.clone());
    }
    // A checkpoint not signed with this key vouches for nothing here.
    let first = off
        .into_iter()
        .filter(|c| verifier.is_signed(c))
        .min_by_key(|c| c.position);
    Ok(first.map(|c| storage::audit::ChainStatus::Broken {
        position: c.position,
        seq: None,
        reason: "its hash is not the one a signed checkpoint vouches for (the chain was rewritten or cut behind the newest checkpoint)".into(),
    }))
}

/// The server's audit task: seals events moments after they commit (nudged after
/// each state-changing HTTP call, and on a short tick for the worker's events), and
/// writes a checkpoint every `interval` when the chain grew. Several replicas may
/// run it: sealers take turns and a checkpoint is stored once per place.
pub fn spawn(state: AppState, mut stopped: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let interval = state.settings.audit_checkpoint_interval;
        if state.audit_signer.is_none() {
            tracing::warn!(
                "audit checkpoints are off: no secret key is configured (--secret-key-file or SLIPWAY_SECRET_KEY); a truncated audit tail would not be caught"
            );
        }
        let mut last_checkpoint = Instant::now();
        loop {
            tokio::select! {
                // Calls nudge the sealer one by one; waiting a moment first seals a
                // burst of them in one pass instead of a database round trip each.
                () = state.audit_pending.notified() => tokio::time::sleep(SEAL_COALESCE).await,
                () = tokio::time::sleep(SEAL_TICK) => {}
                _ = stopped.changed() => {}
            }
            if *stopped.borrow() {
                // The last calls' events, before the process goes.
                if let Err(error) = seal_pending(&state.db).await {
                    tracing::warn!(%error, "sealing audit events at shutdown failed");
                }
                break;
            }
            let pending = match state.db.pool.acquire().await {
                Ok(mut conn) => storage::audit::has_unsealed(&mut conn).await,
                Err(error) => Err(error.into()),
            };
            match pending {
                Ok(true) => {
                    if let Err(error) = seal_pending(&state.db).await {
                        tracing::warn!(%error, "sealing audit events failed; will retry");
                    }
                }
                Ok(false) => {}
                Err(error) => tracing::warn!(%error, "cannot look for unsealed audit events"),
            }
            if let Some(signer) = &state.audit_signer
                && last_checkpoint.elapsed() >= interval
            {
                last_checkpoint = Instant::now();
                match checkpoint(&state.db, &state.gitops, signer).await {
                    Ok(Some(c)) => tracing::debug!(position = c.position, "audit checkpoint"),
                    Ok(None) => {}
                    Err(error) => tracing::warn!(%error, "writing the audit checkpoint failed"),
                }
            }
        }
    })
}

/// Nudges the sealer after every call that may have written (its transaction has
/// committed by the time the answer leaves), so events are sealed within moments.
pub async fn nudge_sealer(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let writes = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    let response = next.run(request).await;
    if writes {
        state.audit_pending.notify_one();
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_verifies_with_its_key_only() {
        let signer = CheckpointSigner::new(&SecretKey::generate());
        let point = ChainPoint {
            position: 42,
            hash: "ab".repeat(32),
        };
        let checkpoint = signer.sign(&point, 1_700_000_000_000);
        let verifier = signer.verifier();
        assert!(verifier.is_signed(&checkpoint));
        assert_eq!(
            CheckpointVerifier::parse(&verifier.to_hex())
                .map(|v| v.is_signed(&checkpoint))
                .ok(),
            Some(true)
        );
        let moved = Checkpoint {
            position: 43,
            ..checkpoint.clone()
        };
        assert!(!verifier.is_signed(&moved));
        let other = CheckpointSigner::new(&SecretKey::generate()).verifier();
        assert!(!other.is_signed(&checkpoint));
        assert_eq!(format!("{signer:?}"), "CheckpointSigner(***)");
    }
}
