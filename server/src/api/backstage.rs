//! Assets as Backstage catalog entities: one asset's `catalog-info.yaml`, and a
//! feed of every active asset for a Backstage catalog location.

use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::HeaderMap;
use axum::response::Response;
use futures_util::StreamExt as _;
use slipway_core::ids::AssetId;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiPath, problem};
use super::problem::{ApiError, Problem};
use crate::http::catalog_info::{slipway_url, yaml_answer};
use crate::services::{Caller, ServiceError, assets};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(asset_entity))
        .routes(routes!(entity_feed))
}

#[utoipa::path(get, path = "/api/v1/assets/{id}/catalog-info.yaml", tag = "backstage",
    params(("id" = i64, Path, description = "The asset's number")),
    responses(
        (status = 200, description = "The asset as a Backstage `Resource` entity. An asset that is no longer active has `lifecycle: deprecated`.", content_type = "application/yaml", body = slipway_core::backstage::Entity),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
/// One asset as a Backstage `catalog-info.yaml`.
async fn asset_entity(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<i64>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let url = slipway_url(&state, &headers);
    let yaml = assets::backstage_entity(&state, &caller, AssetId(id), &url)
        .await
        .map_err(|e| problem(&caller, e))?;
    Ok(yaml_answer(yaml, false))
}

#[utoipa::path(get, path = "/api/v1/backstage/catalog-info.yaml", tag = "backstage",
    responses(
        (status = 200, description = "Every active asset as a Backstage `Resource` entity, oldest first, in one multi-document YAML stream (`---` before each). Assets that are no longer active are left out, so Backstage marks their entities orphaned. A stream of documents has no single schema (each document is a `BackstageEntity`), so none is declared.", content_type = "application/yaml"),
        (status = 429, description = "Too many exports being sent: two per person, six per server (the audit export counts too)", body = Problem, content_type = "application/problem+json"),
    ))]
/// Every active asset, for a Backstage catalog location (`type: url`).
async fn entity_feed(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let url = slipway_url(&state, &headers);
    let pages = assets::backstage_feed(state, caller.clone(), url)
        .await
        .map_err(|e| problem(&caller, e))?;
    // A page that fails after the answer began cuts the stream: Backstage then
    // reads an error, never a shortened catalog it would take as complete.
    let body = pages.map(|page| {
        page.map_err(|error| {
            if matches!(
                error,
                ServiceError::Unauthenticated | ServiceError::Forbidden(_)
            ) {
                tracing::info!(%error, "Backstage feed cut off: the reader no longer stands");
            } else {
                tracing::error!(%error, "Backstage feed stopped early");
            }
            std::io::Error::other(error.to_string())
        })
    });
    Ok(yaml_answer(
        Body::from_stream(super::stalled::ending_when_stalled(body)),
        false,
    ))
}
