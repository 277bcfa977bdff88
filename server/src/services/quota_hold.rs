//! What an in-flight request holds of its type's quota. A request to make an
//! asset holds its whole parameters, as the asset will. A request for a day-2
//! action holds only what it adds to its asset (the asset holds the rest), so two
//! resizes in flight at once cannot together pass a limit that each alone passes.

use serde_json::Value;
use slipway_core::state::RequestState;
use sqlx::AnyConnection;

use super::ServiceResult;
use crate::state::AppState;
use crate::storage::requests::RequestRow;
use crate::storage::{self, quota};

/// The request's parameters start (`+1`) or stop (`-1`) holding quota as it
/// enters or leaves flight for `to`. An action's completion is left to
/// [`super::actions::record_outcome`], which moves the asset's own counters and
/// lets go of what its request held in one step: by then the asset's parameters
/// are the new ones, and the increase could no longer be told.
pub(crate) async fn on_transition(
    conn: &mut AnyConnection,
    state: &AppState,
    request: &RequestRow,
    to: RequestState,
    sign: i64,
) -> ServiceResult<()> {
    match (request.asset_id, request.action.as_deref()) {
        (Some(_), Some(_)) if to == RequestState::Completed => Ok(()),
        (Some(_), Some(_)) => reserve_increase(conn, state, request, &request.params, sign).await,
        _ => {
            if let Some(ty) = state.catalog.resource_type(&request.type_name) {
                quota::adjust(conn, ty, &request.params, sign).await?;
            }
            Ok(())
        }
    }
}

/// An in-flight request's parameters change to `after` (a new revision).
pub(crate) async fn on_revision(
    conn: &mut AnyConnection,
    state: &AppState,
    request: &RequestRow,
    after: &Value,
) -> ServiceResult<()> {
    if !request.state.is_in_flight() || request.params == *after {
        return Ok(());
    }
    if request.asset_id.is_some() && request.action.is_some() {
        reserve_increase(conn, state, request, &request.params, -1).await?;
        return reserve_increase(conn, state, request, after, 1).await;
    }
    if let Some(ty) = state.catalog.resource_type(&request.type_name) {
        quota::replace(conn, ty, &request.params, after).await?;
    }
    Ok(())
}

/// Holds (or lets go of) what an action with `params` adds to its asset as the
/// asset is now; an action that retires its asset adds nothing.
async fn reserve_increase(
    conn: &mut AnyConnection,
    state: &AppState,
    request: &RequestRow,
    params: &Value,
    sign: i64,
) -> ServiceResult<()> {
    let (Some(asset_id), Some(name)) = (request.asset_id, request.action.as_deref()) else {
        return Ok(());
    };
    let Some(ty) = state.catalog.resource_type(&request.type_name) else {
        return Ok(());
    };
    if ty.quota.is_empty() || ty.action(name).is_none_or(|a| a.retires) {
        return Ok(());
    }
    if let Some(asset) = storage::assets::get(conn, asset_id).await? {
        quota::reserve(conn, ty, (&asset.params, params), sign).await?;
    }
    Ok(())
}
