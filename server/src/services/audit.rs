use crate::services::Caller;
use slipway_core::listing::{ListFilter, ListPage, ListQuery};
use slipway_core::policy;
use slipway_core::views::{AuditEntry, AuditFilter};

use super::{Paged, ServiceError, ServiceResult};
use crate::audit_chain::{self, AuditError};
use crate::state::AppState;
use crate::storage::{self, Window, audit::ChainStatus};

/// Whether `user` may read the audit log: asked first, so that someone who
/// may not is told so before anything about the query they sent.
pub fn may_read(user: &Caller) -> ServiceResult<()> {
    policy::may_see_audit(user).map_err(ServiceError::refused)
}

pub async fn list(
    state: &AppState,
    user: &Caller,
    filter: &AuditFilter,
    window: Window,
) -> ServiceResult<Paged<AuditEntry>> {
    may_read(user)?;
    // The portal's rules for the same filters (no control characters, names
    // within their length): PostgreSQL cannot even compare a text holding NUL.
    let query = ListQuery {
        filter: ListFilter::from(filter),
        ..ListQuery::default()
    };
    query.checked().map_err(ServiceError::Invalid)?;
    let mut conn = state.db.pool.acquire().await?;
    let rows = storage::audit::list(&mut conn, filter, window).await?;
    let last = rows.last().map(|e| e.seq);
    let scanned = rows.len();
    Ok(Paged::from_window(rows, scanned, last, window))
}

/// One page of the audit log for the portal, newest first, with "Newer" and "Older".
pub async fn page(
    state: &AppState,
    user: &Caller,
    query: &ListQuery,
) -> ServiceResult<ListPage<AuditEntry>> {
    policy::may_see_audit(user).map_err(ServiceError::refused)?;
    let mut conn = state.db.pool.acquire().await?;
    Ok(storage::audit::page(&mut conn, &query.filter, query.page).await?)
}

/// Seals what is pending, then verifies the whole chain and that it reaches the
/// newest signed checkpoint (in the GitOps repository or the database).
pub async fn verify(state: &AppState, user: &Caller) -> ServiceResult<ChainStatus> {
    policy::may_see_audit(user).map_err(ServiceError::refused)?;
    let verifier = state.audit_signer.as_ref().map(|s| s.verifier());
    let verified = audit_chain::verify(
        &state.db,
        Some(&state.gitops),
        verifier.as_ref(),
        audit_chain::VerifyOptions::default(),
    )
    .await
    .map_err(|error| match error {
        AuditError::Storage(error) => ServiceError::from(error),
        other => ServiceError::Conflict(other.to_string()),
    })?;
    Ok(verified.report.status)
}
