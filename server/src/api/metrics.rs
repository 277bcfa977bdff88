//! The flow metrics: wait, touch and lead times, rework, auto-approval, failure and
//! manual-handling rates per type and step, with a weekly trend, and the requests
//! waiting in each step now.

use axum::Json;
use axum::extract::{Extension, State};
use serde::Deserialize;
use slipway_core::flow::{FlowMetrics, FlowQuery};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiQuery, problem};
use super::problem::{ApiError, Problem};
use crate::services::{Caller, flow};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(flow_metrics))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FlowParams {
    /// How many weeks back, this week included (default 12).
    #[param(minimum = 1, maximum = 52)]
    pub weeks: Option<i64>,
    /// The resource type whose weekly trend to follow; all types when absent.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub type_name: Option<String>,
    /// What the requests counted in `all`, `focus` and `trend` do: absent (or
    /// empty) for creations, a day-2 action's name (`backup`, `resize`,
    /// `upgrade-templates`…) for the requests of that action, or `*` for every
    /// request together. `types` lists each type's creations and each of its
    /// actions apart whatever this says.
    #[param(max_length = 32, example = "backup")]
    pub action: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/metrics/flow", tag = "metrics",
    params(FlowParams),
    responses(
        (status = 200, description = "The figures of the window: per type and what its requests do (`types`: creations and each day-2 action apart), for all types and for the chosen type (`all`, `focus`: of what `action` asks, creations by default), with the weekly trend; and `waiting`, the requests in each step now, which is not of the window", body = FlowMetrics),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A query parameter is unknown or its value is wrong (weeks out of range, a malformed type or action name); `errors` names it", body = Problem, content_type = "application/problem+json"),
    ))]
/// Flow metrics per type and per step over a window of weeks.
async fn flow_metrics(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    params: Result<ApiQuery<FlowParams>, ApiError>,
) -> Result<Json<FlowMetrics>, ApiError> {
    flow::may_see(&caller).map_err(|e| problem(&caller, e))?;
    let ApiQuery(params) = params?;
    let query = FlowQuery {
        weeks: params.weeks,
        type_name: params.type_name,
        action: params.action,
    };
    flow::flow_metrics(&state, &caller, &query)
        .await
        .map(Json)
        .map_err(|e| problem(&caller, e))
}
