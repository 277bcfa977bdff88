//! The flow metrics: the value-stream view of every team's requests, for the
//! platform team and auditors. The portal's page and `GET /api/v1/metrics/flow`
//! both ask this one function.

use slipway_core::flow::{self, FlowMetrics, FlowQuery};
use slipway_core::policy;
use slipway_core::validate::FieldError;

use super::{Caller, ServiceError, ServiceResult};
use crate::state::AppState;
use crate::storage;

/// The figures of the window the query asks for (the last 12 weeks by default).
#[tracing::instrument(skip_all, fields(weeks = ?query.weeks, type_name = ?query.type_name))]
pub async fn flow_metrics(
    state: &AppState,
    caller: &Caller,
    query: &FlowQuery,
) -> ServiceResult<FlowMetrics> {
    policy::may_see_flow_metrics(caller).map_err(ServiceError::refused)?;
    let (since, until) = query
        .window(storage::now_millis())
        .map_err(|message| ServiceError::Invalid(vec![FieldError::new("weeks", message)]))?;
    let trend_type = query.type_name.as_deref().filter(|t| !t.is_empty());
    if let Some(name) = trend_type
        && state.catalog.resource_type(name).is_none()
    {
        return Err(ServiceError::Invalid(vec![FieldError::new(
            "type",
            format!("no resource type is called {name:?}"),
        )]));
    }
    let input = storage::flow::read(&state.db.pool, since, until).await?;
    Ok(flow::compute(&input, trend_type))
}
