//! Secret parameters in the service layer: sealed into the revision that gives
//! them, carried into a revision that keeps them, and opened only for the job that
//! runs the request. Nothing here logs or returns a value except `open_revision`,
//! whose caller is a driver.

use slipway_core::ids::RequestId;
use slipway_core::secret::{SecretValues, Split};
use sqlx::AnyConnection;

use super::{ServiceError, ServiceResult};
use crate::secrets::{SecretBox, SecretError};
use crate::state::AppState;
use crate::storage;

impl From<SecretError> for ServiceError {
    /// A value that does not open will not open on a retry either.
    fn from(error: SecretError) -> Self {
        ServiceError::Conflict(error.to_string())
    }
}

fn secret_box(state: &AppState) -> ServiceResult<&SecretBox> {
    state.secrets.as_ref().ok_or_else(|| {
        ServiceError::Internal(format!(
            "secret parameters need a key: set {}",
            crate::secrets::KEY_SETTING
        ))
    })
}

/// Seals the values given in this revision and copies forward the ones kept from
/// `previous_revision`, in the caller's transaction.
pub(crate) async fn store(
    conn: &mut AnyConnection,
    state: &AppState,
    request: RequestId,
    revision: i64,
    split: &Split,
    previous_revision: Option<i64>,
) -> ServiceResult<()> {
    if split.given.is_empty() && split.kept.is_empty() {
        return Ok(());
    }
    if !split.given.is_empty() {
        let secrets = secret_box(state)?;
        for (param, value) in split.given.iter() {
            let sealed = secrets.seal(request, param, value)?;
            storage::secrets::insert(conn, request, revision, param, &sealed).await?;
        }
    }
    for param in &split.kept {
        let copied = match previous_revision {
            Some(from) => {
                storage::secrets::copy_forward(conn, request, from, revision, param).await?
            }
            None => false,
        };
        if !copied {
            return Err(ServiceError::Conflict(format!(
                "request #{request}: the secret parameter {param} was to be kept from the previous revision, which has none; give it again"
            )));
        }
    }
    Ok(())
}

/// The decrypted secrets of one revision, for the driver that runs it. Keep the
/// result in memory only.
pub async fn open_revision(
    state: &AppState,
    request: RequestId,
    revision: i64,
) -> ServiceResult<SecretValues> {
    let mut conn = state.db.pool.acquire().await?;
    let sealed = storage::secrets::of_revision(&mut conn, request, revision).await?;
    drop(conn);
    let mut values = SecretValues::new();
    if sealed.is_empty() {
        return Ok(values);
    }
    let secrets = secret_box(state)?;
    for (param, sealed) in &sealed {
        values.insert(param.clone(), secrets.open(request, param, sealed)?);
    }
    Ok(values)
}
