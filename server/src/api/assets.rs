//! The CMDB: assets with filters, one asset, and its history.

use axum::Json;
use axum::extract::{Extension, State};
use serde::Serialize;
use slipway_core::ids::AssetId;
use slipway_core::listing::ListQuery;
use slipway_core::views::{AssetDetail, AssetSummary, AuditEntry};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiPath, ApiQuery, problem};
use super::listing::{self, ListAnswer, list_query_doc};
use super::problem::{ApiError, Problem};
use crate::services::{Caller, assets};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_assets))
        .routes(routes!(get_asset))
        .routes(routes!(asset_history))
}

list_query_doc! {
    /// The query of the asset list.
    AssetListQuery {
        /// Words to find: each must begin a word of the asset's name, its team or a
        /// parameter its type makes searchable. Anything but letters and digits
        /// separates words.
        text: Option<String>,
    }
}

/// A page of assets, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AssetPage {
    pub items: Vec<AssetSummary>,
    /// Pass as `cursor` for the next (older) page; absent on the oldest page.
    pub next_cursor: Option<String>,
    /// Pass as `cursor` for the previous (newer) page; absent on the newest page.
    pub prev_cursor: Option<String>,
    /// The id to pass as `before` for the next (older) page.
    pub before: Option<i64>,
    /// The id to pass as `after` for the previous (newer) page.
    pub after: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/assets", tag = "assets",
    params(AssetListQuery),
    responses(
        (status = 200, description = "Assets, newest first", body = AssetPage),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A query parameter is unknown or its value is wrong; `errors` names it", body = Problem, content_type = "application/problem+json"),
    ))]
/// List assets in the CMDB, newest first, filtered and searched.
async fn list_assets(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(pairs): ApiQuery<Vec<(String, String)>>,
) -> Result<Json<AssetPage>, ApiError> {
    let parsed = listing::parse(&pairs, listing::ASSET_FILTERS, &[])?;
    let ListQuery { filter, page } = &parsed.query;
    let found: ListAnswer<AssetSummary> = assets::list(&state, &caller, filter, *page)
        .await
        .map_err(|e| problem(&caller, e))?
        .into();
    Ok(Json(AssetPage {
        items: found.items,
        next_cursor: found.next_cursor,
        prev_cursor: found.prev_cursor,
        before: found.before,
        after: found.after,
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
