use crate::services::Caller;
use slipway_core::views::{AuditEntry, AuditFilter, Role};

use super::{Paged, ServiceResult, require_any_role};
use crate::state::AppState;
use crate::storage::{self, Window, audit::ChainStatus};

const AUDIT_ROLES: [Role; 3] = [Role::Platform, Role::Auditor, Role::Admin];

pub async fn list(
    state: &AppState,
    user: &Caller,
    filter: &AuditFilter,
    window: Window,
) -> ServiceResult<Paged<AuditEntry>> {
    require_any_role(user, &AUDIT_ROLES, "reading the audit log")?;
    let mut conn = state.db.pool.acquire().await?;
    let rows = storage::audit::list(&mut conn, filter, window).await?;
    let last = rows.last().map(|e| e.seq);
    let scanned = rows.len();
    Ok(Paged::from_window(rows, scanned, last, window))
}

pub async fn verify(state: &AppState, user: &Caller) -> ServiceResult<ChainStatus> {
    require_any_role(user, &AUDIT_ROLES, "verifying the audit log")?;
    let mut conn = state.db.pool.acquire().await?;
    Ok(storage::audit::verify_chain(&mut conn).await?)
}
