//! The human fallback: the platform team retries a failed request or takes it over,
//! acts by hand, and resolves it with a note (an asset recorded) or abandons it
//! (none).

use crate::services::Caller;
use slipway_core::ids::RequestId;
use slipway_core::policy::Verb;
use slipway_core::state::Action;
use slipway_core::validate::FieldError;
use tracing::instrument;

use super::{Actor, ServiceError, ServiceResult, authorize, load_request, transition};
use crate::services::assets::record_asset;
use crate::services::requests::enqueue_apply;
use crate::state::AppState;
use crate::storage;

/// A request cancelled while it ran fails at once, but its worker stops at its
/// next heartbeat: until then a retry would run the same step twice at once, and
/// a person taking over would work beside a run still going.
async fn no_run_in_flight(tx: &mut sqlx::AnyConnection, id: RequestId) -> ServiceResult<()> {
    match storage::jobs::unfinished_for_request(tx, id).await? {
        Some(job) => Err(ServiceError::Conflict(format!(
            "request #{id}'s last run (job {job}) is still stopping; try again in a few seconds"
        ))),
        None => Ok(()),
    }
}

#[instrument(skip_all, fields(request_id = %id))]
pub async fn retry(state: &AppState, user: &Caller, id: RequestId) -> ServiceResult<()> {
    let mut tx = state.db.write().await?;
    let mut request = load_request(&mut tx, id).await?;
    authorize(state, user, Verb::Retry, &request)?;
    no_run_in_flight(&mut tx, id).await?;
    let error = request.last_error.clone().unwrap_or_default();
    transition(
        &mut tx,
        state,
        &mut request,
        Action::Retry,
        &Actor::User(user.clone()),
        format!("after: {error}"),
    )
    .await?;
    storage::requests::set_error(&mut tx, id, None).await?;
    // Steps that succeeded stay done; a pipeline run that failed (or ran out of
    // time) is not followed again: the retry starts a new one. The prefix of a
    // step's session names is kept, so the retry first ends whatever the failed
    // run left on a PostgreSQL server.
    storage::pipeline_runs::forget(&mut tx, id, request.current_revision).await?;
    let ty = super::request_type(state, &request)?;
    enqueue_apply(&mut tx, ty, id).await?;
    tx.commit().await?;
    state.jobs_ready.notify_one();
    Ok(())
}

#[instrument(skip_all, fields(request_id = %id))]
pub async fn take_over(state: &AppState, user: &Caller, id: RequestId) -> ServiceResult<()> {
    let mut tx = state.db.write().await?;
    let mut request = load_request(&mut tx, id).await?;
    authorize(state, user, Verb::TakeOver, &request)?;
    no_run_in_flight(&mut tx, id).await?;
    transition(
        &mut tx,
        state,
        &mut request,
        Action::TakeOver,
        &Actor::User(user.clone()),
        format!("{} handles it by hand", user.username),
    )
    .await?;
    storage::requests::set_manual_owner(&mut tx, id, user.id).await?;
    tx.commit().await?;
    Ok(())
}

/// The note that closes a manually handled request: required, one rule for both
/// endings. `what` says what the note must tell.
fn closing_note(note: &str, what: &str) -> ServiceResult<String> {
    let note = slipway_core::validate::note_text(note);
    if let Some(error) = slipway_core::validate::note_error("note", &note) {
        return Err(ServiceError::Invalid(vec![error]));
    }
    if note.is_empty() {
        return Err(ServiceError::Invalid(vec![FieldError {
            field: "note".into(),
            message: format!("is required: say {what}"),
        }]));
    }
    Ok(note)
}

/// Closes a manually handled request without an asset: nothing was made, or what
/// a failed run left behind was cleaned up by hand. Its quota and its name are
/// free again; the note says why, in the request's history and the audit log.
#[instrument(skip_all, fields(request_id = %id))]
pub async fn abandon(
    state: &AppState,
    user: &Caller,
    id: RequestId,
    note: &str,
) -> ServiceResult<()> {
    let mut tx = state.db.write().await?;
    let mut request = load_request(&mut tx, id).await?;
    authorize(state, user, Verb::Abandon, &request)?;
    let note = closing_note(note, "why nothing is left to record")?;
    transition(
        &mut tx,
        state,
        &mut request,
        Action::Abandon,
        &Actor::User(user.clone()),
        note,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Closes a manually handled request. The resource now exists, so it enters the CMDB
/// like any other, pointing at the commit if one was made.
#[instrument(skip_all, fields(request_id = %id))]
pub async fn resolve(
    state: &AppState,
    user: &Caller,
    id: RequestId,
    note: &str,
) -> ServiceResult<()> {
    let mut tx = state.db.write().await?;
    let mut request = load_request(&mut tx, id).await?;
    authorize(state, user, Verb::Resolve, &request)?;
    let note = &closing_note(note, "what was done by hand")?;
    let actor = Actor::User(user.clone());
    transition(
        &mut tx,
        state,
        &mut request,
        Action::ResolveManually,
        &actor,
        note.to_string(),
    )
    .await?;
    let commit = request
        .applied_commit
        .clone()
        .unwrap_or_else(|| "manual".to_string());
    let revision = storage::requests::revision(&mut tx, id, request.current_revision)
        .await?
        .ok_or_else(|| ServiceError::Internal(format!("request #{id} has no current revision")))?;
    // Recorded by what was reviewed, as a job records what it ran.
    let reviewed = super::reviewed_type(state, &mut tx, &request, &revision).await?;
    let ran = (&request, &revision, reviewed.as_ref());
    record_asset(state, &mut tx, ran, &commit, &actor).await?;
    tx.commit().await?;
    Ok(())
}
