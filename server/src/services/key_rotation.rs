//! Rotating the secret key (`slipway secrets rotate-key`): every sealed secret is
//! opened with the old key and sealed again with the new one, and the database's
//! record of the key in use moves to the new one, all in one transaction; the
//! audit chain, verified under the old key first, is then vouched for by a
//! checkpoint the new key signs, so verification goes on with the new key alone.
//!
//! Run it with every server stopped. A server still running with the old key
//! refuses to seal a secret or sign a checkpoint once the key has moved on (on
//! PostgreSQL the key record is locked against it while the rotation runs), and
//! a value it cannot open is said to be its fault, not the value's (its workers
//! still use up a job's attempts on it, as on any server fault). It has to be
//! restarted with the new key.

use super::{Actor, ServiceError, record};
use crate::audit_chain::{self, AuditError, CheckpointSigner, VerifyOptions};
use crate::drivers::gitops::GitOpsRepo;
use crate::secrets::{SecretBox, SecretError, SecretKey};
use crate::storage::audit::{ChainStatus, Checkpoint};
use crate::storage::secrets::{KeyCheckLock, SealedPlace};
use crate::storage::{self, Db, StorageError};

/// Sealed values re-sealed per read: the rotation's memory stays small on a
/// database of any size (the transaction is one all the same).
pub const RESEAL_BATCH: i64 = 500;

/// What the rotation's transaction did.
#[derive(Debug)]
pub struct Resealed {
    /// Sealed values re-encrypted under the new key.
    pub resealed: u64,
    pub old_check: String,
    pub new_check: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error("the new key is the key in use: give a new one")]
    SameKey,
    #[error(
        "the current key (--secret-key-file or SLIPWAY_SECRET_KEY) is not the one this database is sealed with (its check value is {recorded}, this key's is {given})"
    )]
    NotTheCurrentKey { recorded: String, given: String },
    #[error(
        "the audit chain is broken at position {position} ({reason}): a checkpoint signed by the new key would vouch for it (run `slipway audit verify`)"
    )]
    BrokenChain { position: i64, reason: String },
    #[error("{0}")]
    Secret(#[from] SecretError),
    #[error("database: {0}")]
    Storage(#[from] StorageError),
    #[error("the audit log: {0}")]
    Audit(#[from] AuditError),
    #[error("{0}")]
    Service(#[from] ServiceError),
}

/// The first step, all or nothing: checks that `old` is the database's key and
/// that the audit chain is whole under it, then in one transaction re-seals every
/// value with `new` and records `new` as the database's key. Once it returns Ok
/// the database opens with `new` only; [`sign_over`] is the second step.
/// `batch` is how many sealed values are read at a time ([`RESEAL_BATCH`]).
pub async fn reseal(
    db: &Db,
    gitops: &GitOpsRepo,
    (old, new): (&SecretKey, &SecretKey),
    batch: i64,
) -> Result<Resealed, RotateError> {
    let (old_check, new_check) = (old.check_value(), new.check_value());
    if old_check == new_check {
        return Err(RotateError::SameKey);
    }
    let mut conn = db.pool.acquire().await.map_err(StorageError::from)?;
    let recorded = storage::secrets::key_check(&mut conn).await?;
    drop(conn);
    is_current(recorded, &old_check)?;
    verify_chain_under(db, gitops, old).await?;
    let mut tx = db.write().await?;
    // Held to the commit: a server sealing a value or signing a checkpoint
    // meanwhile waits, then finds the new key recorded and refuses.
    let recorded =
        storage::secrets::key_check_locked(&mut tx, db.engine, KeyCheckLock::Update).await?;
    is_current(recorded, &old_check)?;
    let boxes = (SecretBox::new(old.clone()), SecretBox::new(new.clone()));
    let resealed = reseal_all(&mut tx, &boxes, batch.max(1)).await?;
    storage::secrets::replace_key_check(&mut tx, &new_check).await?;
    record(
        &mut tx,
        db.engine,
        &Actor::Policy("secret key rotation".into()),
        "secrets.key_rotated",
        ("secret_key", new_check.clone()),
        None,
        format!(
            "secret key check value {old_check} → {new_check}; {resealed} sealed values re-encrypted"
        ),
    )
    .await?;
    tx.commit().await.map_err(StorageError::from)?;
    Ok(Resealed {
        resealed,
        old_check,
        new_check,
    })
}

/// The second step: the new key signs a checkpoint of the chain, so that
/// `audit verify` goes on with the new key alone. Run again (or `slipway audit
/// checkpoint` with the new key) if it failed after [`reseal`].
pub async fn sign_over(
    db: &Db,
    gitops: &GitOpsRepo,
    new: &SecretKey,
) -> Result<Option<Checkpoint>, AuditError> {
    audit_chain::checkpoint(db, gitops, &CheckpointSigner::new(new)).await
}

fn is_current(recorded: Option<String>, old_check: &str) -> Result<(), RotateError> {
    match recorded {
        Some(recorded) if recorded != old_check => Err(RotateError::NotTheCurrentKey {
            recorded,
            given: old_check.to_string(),
        }),
        _ => Ok(()),
    }
}

/// The chain must be whole under the old key before the new key signs over it.
async fn verify_chain_under(
    db: &Db,
    gitops: &GitOpsRepo,
    old: &SecretKey,
) -> Result<(), RotateError> {
    let verifier = CheckpointSigner::new(old).verifier();
    let verified =
        audit_chain::verify(db, Some(gitops), Some(&verifier), VerifyOptions::default()).await?;
    match verified.report.status {
        ChainStatus::Intact { .. } => Ok(()),
        ChainStatus::Broken {
            position, reason, ..
        } => Err(RotateError::BrokenChain { position, reason }),
    }
}

/// Opens every sealed value with the old box and seals it with the new, in place.
async fn reseal_all(
    conn: &mut sqlx::AnyConnection,
    (old, new): &(SecretBox, SecretBox),
    batch: i64,
) -> Result<u64, RotateError> {
    let mut resealed = 0;
    let mut after: Option<SealedPlace> = None;
    loop {
        let page = storage::secrets::sealed_page(conn, after.as_ref(), batch).await?;
        let Some((last, _)) = page.last() else {
            return Ok(resealed);
        };
        let last = last.clone();
        for (place, sealed) in &page {
            let (request, _, param) = place;
            let value = old.open(*request, param, sealed)?;
            storage::secrets::reseal(conn, place, &new.seal(*request, param, &value)?).await?;
            resealed += 1;
        }
        after = Some(last);
    }
}
