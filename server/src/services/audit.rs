use crate::services::Caller;
use slipway_core::views::{AuditEntry, AuditFilter, Role};

use super::{ServiceResult, require_any_role};
use crate::state::AppState;
use crate::storage::{self, audit::ChainStatus};

const AUDIT_ROLES: [Role; 3] = [Role::Platform, Role::Auditor, Role::Admin];

pub async fn list(
    state: &AppState,
    user: &Caller,
    filter: &AuditFilter,
) -> ServiceResult<Vec<AuditEntry>> {
    require_any_role(user, &AUDIT_ROLES, "reading the audit log")?;
    let mut conn = state.db.pool.acquire().await?;
    Ok(storage::audit::list(&mut conn, filter, 500).await?)
}

pub async fn verify(state: &AppState, user: &Caller) -> ServiceResult<ChainStatus> {
    require_any_role(user, &AUDIT_ROLES, "verifying the audit log")?;
    let mut conn = state.db.pool.acquire().await?;
    Ok(storage::audit::verify_chain(&mut conn).await?)
}
