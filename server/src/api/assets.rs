//! The CMDB: assets with filters, one asset, and its history.

use axum::Json;
use axum::extract::{Extension, State};
use serde::{Deserialize, Serialize};
use slipway_core::ids::AssetId;
use slipway_core::views::{AssetDetail, AssetFilter, AssetSummary, AuditEntry};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiPath, ApiQuery, problem};
use super::paging::{Page, PageParams};
use super::problem::{ApiError, Problem};
use crate::services::{Caller, assets};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_assets))
        .routes(routes!(get_asset))
        .routes(routes!(asset_history))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AssetListQuery {
    /// A resource type's name.
    #[serde(rename = "type")]
    pub type_name: Option<String>,
    /// Words to find in the asset's name or parameters.
    pub text: Option<String>,
    pub cursor: Option<String>,
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AssetPage {
    pub items: Vec<AssetSummary>,
    pub next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/assets", tag = "assets",
    params(AssetListQuery),
    responses(
        (status = 200, description = "Assets, newest first", body = AssetPage),
        (status = 400, body = Problem, content_type = "application/problem+json"),
    ))]
/// List assets in the CMDB, newest first.
async fn list_assets(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(query): ApiQuery<AssetListQuery>,
) -> Result<Json<AssetPage>, ApiError> {
    let window = PageParams {
        cursor: query.cursor,
        limit: query.limit,
    }
    .window()?;
    let filter = AssetFilter {
        type_name: query.type_name,
        text: query.text,
    };
    let page: Page<AssetSummary> = assets::list(&state, &caller, &filter, window)
        .await
        .map_err(|e| problem(&caller, e))?
        .into();
    Ok(Json(AssetPage {
        items: page.items,
        next_cursor: page.next_cursor,
    }))
}

#[utoipa::path(get, path = "/api/v1/assets/{id}", tag = "assets",
    params(("id" = i64, Path, description = "The asset's number")),
    responses(
        (status = 200, body = AssetDetail),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
/// One asset with its relations and monitoring items.
async fn get_asset(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<AssetDetail>, ApiError> {
    assets::detail(&state, &caller, AssetId(id))
        .await
        .map(Json)
        .map_err(|e| problem(&caller, e))
}

#[utoipa::path(get, path = "/api/v1/assets/{id}/history", tag = "assets",
    params(("id" = i64, Path, description = "The asset's number")),
    responses(
        (status = 200, description = "Every audit event about the asset, oldest first", body = [AuditEntry]),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
/// Every audit event about one asset, oldest first.
async fn asset_history(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Vec<AuditEntry>>, ApiError> {
    assets::history(&state, &caller, AssetId(id))
        .await
        .map(Json)
        .map_err(|e| problem(&caller, e))
}
