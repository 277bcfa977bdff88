//! The CMDB: assets with filters, one asset, its history, and the day-2 actions
//! asked for on it.

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use slipway_core::ids::AssetId;
use slipway_core::listing::ListQuery;
use slipway_core::views::{
    ActionDraft, AssetDetail, AssetSummary, AuditEntry, RequestDetail, TokenScope,
};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiJson, ApiPath, ApiQuery, problem};
use super::listing::{self, ListAnswer, list_query_doc};
use super::problem::{ApiError, Problem};
use super::requests::{after_change, scoped, submit_key};
use crate::services::{Caller, actions, assets};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_assets))
        .routes(routes!(get_asset))
        .routes(routes!(asset_history))
        .routes(routes!(request_action))
}

/// A day-2 action to ask for: the action's own parameters (`actions[].name` of
/// the asset names the actions the caller may take).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionBody {
    /// The action's parameters, as its schema in the type
    /// (`GET /api/v1/types/{name}`, `actions[].schema`) describes; those it
    /// leaves out keep the asset's recorded values. An action without
    /// parameters takes `{}` or no `params` at all.
    #[serde(default = "no_params")]
    #[schema(value_type = Object)]
    pub params: Value,
}

fn no_params() -> Value {
    Value::Object(serde_json::Map::new())
}

#[utoipa::path(post, path = "/api/v1/assets/{id}/actions/{action}", tag = "assets",
    params(
        ("id" = i64, Path, description = "The asset's number"),
        ("action" = String, Path, description = "The action's name, e.g. `scale` or `decommission`"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry replay the first answer"),
    ),
    request_body = ActionBody,
    responses(
        (status = 303, description = "Done, but its detail could not be read just now: read it at Location"),
        (status = 201, description = "Created: a request for the action on the asset; Location names it", body = RequestDetail),
        (status = 403, description = "The asset belongs to another team, or the caller may not ask for requests", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such asset, or its type declares no such action", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The asset is retired, or its type left the catalog", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The pre-check failed or a parameter is wrong; `errors` names each field and rule", body = Problem, content_type = "application/problem+json"),
    ))]
/// Ask for a day-2 action on an asset (resize, upgrade, back up, restore,
/// decommission): a request that is pre-checked, reviewed with its diff against
/// what the asset has deployed, run, verified, and recorded on the asset.
async fn request_action(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    ApiPath((id, action)): ApiPath<(i64, String)>,
    ApiJson(body): ApiJson<ActionBody>,
) -> Result<Response, ApiError> {
    scoped(&caller, TokenScope::Request)?;
    let draft = ActionDraft {
        params: body.params,
        submit_key: submit_key(&headers),
    };
    let request = actions::submit(&state, &caller, AssetId(id), &action, &draft)
        .await
        .map_err(|e| problem(&caller, e))?;
    after_change(&state, &caller, request, StatusCode::CREATED).await
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
        (status = 200, description = "The newest 1,000 audit events about the asset, oldest first (the audit log, filtered by target, pages through all of them)", body = [AuditEntry]),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
/// The newest 1,000 audit events about one asset, oldest first.
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
