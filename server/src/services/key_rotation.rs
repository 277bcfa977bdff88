//! Rotating the secret key (`slipway secrets rotate-key`): every sealed secret is
//! opened with the old key and sealed again with the new one, and the database's
//! record of the key in use moves to the new one, all in one transaction; the
//! audit chain, verified under the old key first, is then vouched for by a
//! checkpoint the new key signs, so verification goes on with the new key alone.
//!
//! Run it with every server stopped. A server still running with the old key
//! refuses to seal a secret or sign a checkpoint once the key has moved on, and
//! cannot open what the new key sealed: it has to be restarted with the new key.

use slipway_core::ids::RequestId;

use super::{Actor, ServiceError, record};
use crate::audit_chain::{self, AuditError, CheckpointSigner, VerifyOptions};
use crate::drivers::gitops::GitOpsRepo;
use crate::secrets::{SecretBox, SecretError, SecretKey};
use crate::storage::audit::{ChainStatus, Checkpoint};
use crate::storage::{self, Db, StorageError};

/// Sealed values re-sealed per read: the rotation's memory stays small on a
/// database of any size (the transaction is one all the same).
const RESEAL_BATCH: i64 = 500;

/// What a rotation did.
#[derive(Debug)]
pub struct Rotated {
    /// Sealed values re-encrypted under the new key.
    pub resealed: u64,
    pub old_check: String,
    pub new_check: String,
    /// The checkpoint the new key signed over the verified chain (none while the
    /// audit log is empty).
    pub checkpoint: Option<Checkpoint>,
    /// The new key's checkpoint public key, for `slipway audit verify --public-key`.
    pub public_key: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error("the new key is the key in use: give a new one")]
    SameKey,
    #[error(
        "the current key (--secret-key-file or SLIPWAY_SECRET_KEY) is not the one this database is sealed with"
    )]
    NotTheCurrentKey,
    #[error(
        "the audit chain is broken at position {position} ({reason}): a checkpoint signed by the new key would vouch for it; nothing was changed (run `slipway audit verify`)"
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

/// Moves the database from `old` to `new`: see the module's documentation.
pub async fn rotate(
    db: &Db,
    gitops: &GitOpsRepo,
    old: &SecretKey,
    new: &SecretKey,
) -> Result<Rotated, RotateError> {
    let (old_check, new_check) = (old.check_value(), new.check_value());
    if old_check == new_check {
        return Err(RotateError::SameKey);
    }
    verify_chain_under(db, gitops, old).await?;
    let mut tx = db.write().await?;
    if storage::secrets::key_check(&mut tx)
        .await?
        .is_some_and(|recorded| recorded != old_check)
    {
        return Err(RotateError::NotTheCurrentKey);
    }
    let resealed = reseal_all(
        &mut tx,
        &SecretBox::new(old.clone()),
        &SecretBox::new(new.clone()),
    )
    .await?;
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
    let signer = CheckpointSigner::new(new);
    let checkpoint = audit_chain::checkpoint(db, gitops, &signer).await?;
    Ok(Rotated {
        resealed,
        old_check,
        new_check,
        checkpoint,
        public_key: signer.verifier().to_hex(),
    })
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

/// Opens every sealed value with `old` and seals it with `new`, in place.
async fn reseal_all(
    conn: &mut sqlx::AnyConnection,
    old: &SecretBox,
    new: &SecretBox,
) -> Result<u64, RotateError> {
    let mut resealed = 0;
    let mut after: Option<(RequestId, i64, String)> = None;
    loop {
        let page = storage::secrets::sealed_page(conn, after.as_ref(), RESEAL_BATCH).await?;
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
