//! Guidance from history: the hints the request form shows, for scripts and bots
//! that fill in requests too.

use axum::Json;
use axum::extract::{Extension, State};
use serde::Deserialize;
use slipway_core::guidance::Guidance;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiPath, ApiQuery, problem};
use super::problem::{ApiError, Problem};
use crate::services::{Caller, guidance};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(type_guidance))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct GuidanceParams {
    /// The team the request is for; by default the caller's only team (a caller in several names one).
    pub team: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/types/{name}/guidance", tag = "catalog",
    params(("name" = String, Path, description = "The type's name, e.g. postgres-database"), GuidanceParams),
    responses(
        (status = 200, description = "Hints from the team's recent requests of the type: most chosen values, fields past reviews sent requests back for, and each numeric field's usual value (a value ten times it, or a tenth, is unusual). Never a reason to refuse a request.", body = Guidance),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller may not ask for that team", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The type offers no such team, or the caller is in several teams and named none; `errors` names `team`", body = Problem, content_type = "application/problem+json"),
    ))]
/// Guidance from the history of the caller's team for a new request of the type.
async fn type_guidance(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(params): ApiQuery<GuidanceParams>,
) -> Result<Json<Guidance>, ApiError> {
    guidance::for_form(&state, &caller, &name, params.team.as_deref())
        .await
        .map(Json)
        .map_err(|e| problem(&caller, e))
}
