//! The CMDB: assets, their relations and monitoring items, and their history.

use crate::services::Caller;
use slipway_core::ids::AssetId;
use slipway_core::listing::{ListFilter, ListPage, PageRequest, indexed_words};
use slipway_core::policy;
use slipway_core::precheck;
use slipway_core::render;
use slipway_core::views::{AssetDetail, AssetSummary, AuditEntry};
use sqlx::AnyConnection;

use super::{Actor, ServiceError, ServiceResult, record, request_type};
use crate::services::requests::find_required_asset;
use crate::state::AppState;
use crate::storage;
use crate::storage::assets::NewAsset;
use crate::storage::requests::RequestRow;

/// A page of the CMDB, newest first, narrowed by type, team, environment, time
/// and search words. Everyone signed in may read the CMDB.
pub async fn list(
    state: &AppState,
    _user: &Caller,
    filter: &ListFilter,
    page: PageRequest,
) -> ServiceResult<ListPage<AssetSummary>> {
    let mut conn = state.db.pool.acquire().await?;
    Ok(storage::assets::list(&mut conn, state.db.engine, filter, page).await?)
}

/// An asset's history: every audit event about it, oldest first, as this person may
/// read it (client addresses and trace ids only for the audit log's readers).
pub async fn history(
    state: &AppState,
    user: &Caller,
    id: AssetId,
) -> ServiceResult<Vec<AuditEntry>> {
    let mut conn = state.db.pool.acquire().await?;
    storage::assets::get(&mut conn, id)
        .await?
        .ok_or_else(|| ServiceError::NotFound(format!("asset #{id}")))?;
    let events = storage::audit::for_target(&mut conn, "asset", &id.to_string()).await?;
    Ok(policy::history_for(user, events))
}

pub async fn detail(state: &AppState, user: &Caller, id: AssetId) -> ServiceResult<AssetDetail> {
    let mut conn = state.db.pool.acquire().await?;
    let asset = storage::assets::get(&mut conn, id)
        .await?
        .ok_or_else(|| ServiceError::NotFound(format!("asset #{id}")))?;
    Ok(AssetDetail {
        monitoring: storage::assets::monitoring(&mut conn, id).await?,
        relations: storage::assets::relations(&mut conn, id).await?,
        history: policy::history_for(
            user,
            storage::audit::for_target(&mut conn, "asset", &id.to_string()).await?,
        ),
        param_titles: state
            .catalog
            .resource_type(&asset.summary.type_name)
            .map(|t| t.param_titles())
            .unwrap_or_default(),
        params: asset.params,
        commit_id: asset.commit_id,
        summary: asset.summary,
    })
}

/// Records the asset a completed request made, once: a re-run finds it and returns it.
pub(crate) async fn record_asset(
    state: &AppState,
    conn: &mut AnyConnection,
    request: &RequestRow,
    commit: &str,
    actor: &Actor,
) -> ServiceResult<AssetId> {
    if let Some(existing) = storage::assets::by_request(conn, request.id).await? {
        return Ok(existing.summary.id);
    }
    let ty = request_type(state, request)?;
    let revisions = storage::requests::revisions(conn, request.id).await?;
    let params = revisions
        .iter()
        .find(|r| r.revision == request.current_revision)
        .map(|r| r.params.clone())
        .ok_or_else(|| {
            ServiceError::Internal(format!("request #{} has no current revision", request.id))
        })?;
    let id = storage::assets::insert(
        conn,
        &NewAsset {
            type_name: &ty.name,
            name: &request.resource_name,
            params: &params,
            team: ty.owning_team(&params),
            environment: ty.environment(&params),
            request_id: request.id,
            commit_id: commit,
        },
    )
    .await?;
    let words = indexed_words(
        Some(ty),
        &request.resource_name,
        ty.owning_team(&params),
        &params,
    );
    storage::search::index_asset(conn, state.db.engine, id, &words).await?;
    storage::quota::adjust(conn, ty, &params, 1).await?;
    let monitoring = render::monitoring(ty, &params, &request.resource_name)
        .map_err(|e| ServiceError::Internal(format!("monitoring items: {e}")))?;
    for item in &monitoring {
        storage::assets::insert_monitoring(conn, id, item).await?;
    }
    let dependencies = precheck::dependency_queries(ty, &params).unwrap_or_else(|error| {
        tracing::warn!(request_id = %request.id, %error, "requirements not evaluable; the asset is recorded without relations");
        Vec::new()
    });
    for dependency in &dependencies {
        if let Some(target) = find_required_asset(conn, state.db.engine, dependency).await? {
            storage::assets::insert_relation(conn, id, target.summary.id, "requires").await?;
        }
    }
    record(
        conn,
        state.db.engine,
        actor,
        "asset.created",
        ("asset", id.to_string()),
        Some(request.resource_name.clone()),
        format!(
            "{} from request #{} at commit {commit}",
            ty.name, request.id
        ),
    )
    .await?;
    Ok(id)
}
