//! Secret parameters in the service layer: sealed into the revision that gives
//! them, carried into a revision that keeps them, and opened only for the job that
//! runs the request. Nothing here logs or returns a value except `open_revision`,
//! whose caller is a driver.

use rand::distr::{Alphanumeric, SampleString};
use slipway_core::catalog::ResourceType;
use slipway_core::ids::RequestId;
use slipway_core::secret::{SecretValues, Split};
use sqlx::AnyConnection;

use super::{Actor, Caller, ServiceError, ServiceResult, authorize, load_request, request_type};
use crate::secrets::{SecretBox, SecretError};
use crate::state::AppState;
use crate::storage;
use crate::storage::secrets::KeyCheckLock;
use slipway_core::policy::{self, Verb};

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

/// A server still running with a key rotated away since (`slipway secrets
/// rotate-key`) would seal values that the new key cannot open: it refuses, and
/// the log says to restart it with the new key.
/// The key check row stays shared-locked until the caller's transaction ends, so
/// a rotation waits for this write, or this write for the rotation.
async fn ensure_current_key(
    conn: &mut AnyConnection,
    state: &AppState,
    secrets: &SecretBox,
) -> ServiceResult<()> {
    let recorded =
        storage::secrets::key_check_locked(conn, state.db.engine, KeyCheckLock::Share).await?;
    match recorded {
        Some(recorded) if recorded != secrets.check_value() => {
            Err(rotated_away(&recorded, secrets))
        }
        _ => Ok(()),
    }
}

fn rotated_away(recorded: &str, secrets: &SecretBox) -> ServiceError {
    ServiceError::Internal(format!(
        "the secret key was rotated (the database's key check value is {recorded}, this \
         server's is {}): restart this server with the new key",
        secrets.check_value()
    ))
}

/// A value that does not open on a server whose key was rotated away is the
/// server's fault, not the value's: said so (a server fault, which a worker
/// retries, rather than a conflict, which fails the request at once). A key
/// record that cannot be read is a server fault too.
async fn unopened(state: &AppState, secrets: &SecretBox, error: SecretError) -> ServiceError {
    let recorded = match state.db.pool.acquire().await {
        Ok(mut conn) => storage::secrets::key_check(&mut conn).await,
        Err(e) => Err(e.into()),
    };
    match recorded {
        Ok(Some(recorded)) if recorded != secrets.check_value() => rotated_away(&recorded, secrets),
        Ok(_) => error.into(),
        Err(e) => ServiceError::Internal(format!("{error}; the key record could not be read: {e}")),
    }
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
    ensure_current_key(conn, state, secret_box(state)?).await?;
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

/// Makes up the type's generated secrets for a new request, sealed like given
/// ones; a new revision keeps the values the first one made (a secret the type
/// gained since is made now).
pub(crate) async fn store_generated(
    conn: &mut AnyConnection,
    state: &AppState,
    ty: &ResourceType,
    request: RequestId,
    revision: i64,
    previous_revision: Option<i64>,
) -> ServiceResult<()> {
    if !ty.generated_secrets.is_empty() {
        ensure_current_key(conn, state, secret_box(state)?).await?;
    }
    for generated in &ty.generated_secrets {
        let kept = match previous_revision {
            Some(from) => {
                storage::secrets::copy_forward(conn, request, from, revision, &generated.name)
                    .await?
            }
            None => false,
        };
        if !kept {
            let secrets = secret_box(state)?;
            let value = Alphanumeric.sample_string(&mut rand::rng(), generated.length);
            let sealed = secrets.seal(request, &generated.name, &value)?;
            storage::secrets::insert(conn, request, revision, &generated.name, &sealed).await?;
        }
    }
    Ok(())
}

/// Forgets what a request that reached its end was given in secret (every
/// revision's values): no driver runs it again, and a value kept for ever is one
/// more for a leaked key to open. A completed request's generated secrets stay
/// until their one showing; a rejected or cancelled one's can never be shown.
pub(crate) async fn forget_given(
    conn: &mut sqlx::AnyConnection,
    state: &AppState,
    request: &crate::storage::requests::RequestRow,
    ended_as: slipway_core::state::RequestState,
) -> ServiceResult<()> {
    if ended_as != slipway_core::state::RequestState::Completed {
        storage::secrets::forget_all_but(conn, request.id, &[]).await?;
        return Ok(());
    }
    // A type gone from the catalog: what it generated is not known, so all stays.
    let Ok(ty) = super::request_type(state, request) else {
        return Ok(());
    };
    if ty.secret_params().is_empty() && ty.generated_secrets.is_empty() {
        return Ok(());
    }
    let generated: Vec<&str> = ty
        .generated_secrets
        .iter()
        .map(|g| g.name.as_str())
        .collect();
    storage::secrets::forget_all_but(conn, request.id, &generated).await?;
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
        match secrets.open(request, param, sealed) {
            Ok(value) => values.insert(param.clone(), value),
            Err(error) => return Err(unopened(state, secrets, error).await),
        };
    }
    Ok(values)
}

/// A generated secret as its requester sees it, the one time it is shown.
pub struct Revealed {
    pub title: String,
    pub value: String,
}

/// Shows a generated secret of request `id` to its requester, once: the reveal
/// is recorded (and audited, by name only) in the transaction that opens the
/// value, so a second click, on any replica, is refused with when it was shown.
pub async fn reveal_once(
    state: &AppState,
    caller: &Caller,
    id: RequestId,
    name: &str,
) -> ServiceResult<Revealed> {
    let mut tx = state.db.write().await?;
    let request = load_request(&mut tx, id).await?;
    authorize(state, caller, Verb::View, &request)?;
    let generated = request_type(state, &request)?
        .generated_secrets
        .iter()
        .find(|g| g.name == name)
        .ok_or_else(|| {
            ServiceError::NotFound(format!("generated secret {name:?} of request #{id}"))
        })?;
    policy::may_reveal_secret(caller, &super::facts(state, &request))
        .map_err(ServiceError::refused)?;
    if !storage::secrets::mark_revealed(&mut tx, id, name, caller.id.0).await? {
        let shown = storage::secrets::reveals(&mut tx, id)
            .await?
            .into_iter()
            .find(|(param, _, _)| param == name)
            .map(|(_, by, at)| format!(" to {by} on {}", storage::format_millis(at)))
            .unwrap_or_default();
        return Err(ServiceError::Conflict(format!(
            "{} of request #{id} was already shown{shown}; it is shown only once",
            generated.title
        )));
    }
    let sealed = storage::secrets::of_revision(&mut tx, id, request.current_revision)
        .await?
        .into_iter()
        .find(|(param, _)| param == name)
        .map(|(_, sealed)| sealed)
        .ok_or_else(|| {
            ServiceError::Conflict(format!(
                "request #{id} holds no {name:?}: it was made before its type generated one"
            ))
        })?;
    let secrets = secret_box(state)?;
    let value = match secrets.open(id, name, &sealed) {
        Ok(value) => value,
        Err(error) => return Err(unopened(state, secrets, error).await),
    };
    // Shown once, never again, and the request is done: nothing needs it now.
    storage::secrets::forget(&mut tx, id, name).await?;
    super::record(
        &mut tx,
        state.db.engine,
        &Actor::User(caller.clone()),
        "secret.revealed",
        ("request", id.to_string()),
        None,
        format!("{} ({name}) shown to its requester", generated.title),
    )
    .await?;
    tx.commit().await?;
    Ok(Revealed {
        title: generated.title.clone(),
        value,
    })
}
