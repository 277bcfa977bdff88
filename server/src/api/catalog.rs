//! The catalog: resource types, each type's JSON Schema, and the dictionaries.

use axum::Json;
use axum::extract::{Extension, State};
use serde::Serialize;
use serde_json::Value;
use slipway_core::catalog::Dictionary;
use slipway_core::views::TypeSummary;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiPath, problem};
use super::problem::{ApiError, Problem};
use crate::services::{self, Caller};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_types))
        .routes(routes!(get_type))
        .routes(routes!(type_schema))
        .routes(routes!(list_dictionaries))
}

/// A resource type as the caller may request it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TypeDetail {
    #[serde(flatten)]
    pub summary: TypeSummary,
    /// The parameter naming the team a request is for, if the type has one.
    pub owner_param: Option<String>,
    /// The JSON Schema a request's `params` must satisfy, with dictionaries resolved
    /// and the owning-team choices narrowed to the caller's teams.
    pub schema: Value,
    /// The day-2 actions an asset of the type takes
    /// (`POST /api/v1/assets/{id}/actions/{name}`).
    pub actions: Vec<ActionSchema>,
}

/// A day-2 action of a type and the JSON Schema of its own parameters.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActionSchema {
    pub name: String,
    pub title: String,
    pub description: String,
    /// Completing it retires the asset (its files are removed).
    pub retires: bool,
    /// The JSON Schema an action's `params` must satisfy; parameters it leaves
    /// out keep the asset's recorded values.
    pub schema: Value,
}

#[utoipa::path(get, path = "/api/v1/types", tag = "catalog",
    responses((status = 200, description = "Every resource type", body = [TypeSummary])))]
/// List the resource types.
async fn list_types(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Json<Vec<TypeSummary>> {
    Json(services::catalog::list_types(&state, &caller))
}

#[utoipa::path(get, path = "/api/v1/types/{name}", tag = "catalog",
    params(("name" = String, Path, description = "The type's name, e.g. k8s-namespace")),
    responses(
        (status = 200, body = TypeDetail),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
/// One resource type with the JSON Schema of its parameters, narrowed to the caller's teams.
async fn get_type(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<TypeDetail>, ApiError> {
    let ty =
        services::catalog::form_type(&state, &caller, &name).map_err(|e| problem(&caller, e))?;
    let summary = services::catalog::list_types(&state, &caller)
        .into_iter()
        .find(|t| t.name == ty.name)
        .ok_or_else(|| Problem::from(services::ServiceError::NotFound(format!("type {name:?}"))))?;
    let actions = ty
        .actions
        .iter()
        .map(|a| ActionSchema {
            name: a.name.clone(),
            title: a.title.clone(),
            description: a.description.clone(),
            retires: a.retires,
            schema: a.parameters.clone(),
        })
        .collect();
    Ok(Json(TypeDetail {
        summary,
        owner_param: ty.owner_param.map(|o| o.param),
        schema: ty.parameters,
        actions,
    }))
}

#[utoipa::path(get, path = "/api/v1/types/{name}/schema", tag = "catalog",
    params(("name" = String, Path, description = "The type's name")),
    responses(
        (status = 200, description = "The JSON Schema of the type's parameters", body = Object),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
/// The JSON Schema a request's `params` must satisfy.
async fn type_schema(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let ty =
        services::catalog::form_type(&state, &caller, &name).map_err(|e| problem(&caller, e))?;
    Ok(Json(ty.parameters))
}

#[utoipa::path(get, path = "/api/v1/dictionaries", tag = "catalog",
    responses((status = 200, description = "The term dictionaries (teams, environments, …)", body = [Dictionary])))]
/// List the term dictionaries (teams, environments, …).
async fn list_dictionaries(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Json<Vec<Dictionary>> {
    Json(services::catalog::dictionaries(&state, &caller))
}
