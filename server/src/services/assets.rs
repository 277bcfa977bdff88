//! The CMDB: assets, their relations and monitoring items, and their history.

use std::collections::BTreeMap;

use futures_util::Stream;
use futures_util::stream::{self, StreamExt as _};
use slipway_core::backstage::{self, ExportedAsset};
use slipway_core::catalog::ResourceType;
use slipway_core::ids::{AssetId, RequestId};
use slipway_core::listing::{ListFilter, ListPage, PageRequest, indexed_words};
use slipway_core::policy;
use slipway_core::precheck;
use slipway_core::render;
use slipway_core::views::{AssetDetail, AssetSummary, AssetTemplates, AuditEntry, RelationView};
use sqlx::AnyConnection;
use tracing::instrument;

use super::{Actor, ServiceError, ServiceResult, record, request_type};
use crate::services::Caller;
use crate::services::requests::find_required_asset;
use crate::state::AppState;
use crate::storage;
use crate::storage::assets::{AssetRow, ExportRow, NewAsset};
use crate::storage::requests::{RequestRow, RevisionRow};

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

/// The most events an asset's history answers with: the newest, oldest first. A
/// long-lived asset gathers events for ever (every action asked for, every
/// backup); the audit log pages through all of them.
pub const ASSET_HISTORY_LIMIT: i64 = 1_000;

/// An asset's history: its newest audit events (at most [`ASSET_HISTORY_LIMIT`]),
/// oldest first, as this person may read it (client addresses and trace ids only
/// for the audit log's readers).
pub async fn history(
    state: &AppState,
    user: &Caller,
    id: AssetId,
) -> ServiceResult<Vec<AuditEntry>> {
    let mut conn = state.db.pool.acquire().await?;
    storage::assets::get(&mut conn, id)
        .await?
        .ok_or_else(|| ServiceError::NotFound(format!("asset #{id}")))?;
    let events = storage::audit::newest_for_target(
        &mut conn,
        ("asset", &id.to_string()),
        ASSET_HISTORY_LIMIT,
    )
    .await?;
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
            storage::audit::newest_for_target(
                &mut conn,
                ("asset", &id.to_string()),
                slipway_core::views::ASSET_PAGE_HISTORY as i64,
            )
            .await?,
        ),
        param_titles: state
            .catalog
            .resource_type(&asset.summary.type_name)
            .map(|t| t.param_titles())
            .unwrap_or_default(),
        actions: super::actions::choices(state, user, &asset),
        templates: templates(state, &mut conn, &asset).await?,
        params: asset.params,
        commit_id: asset.commit_id,
        summary: asset.summary,
    })
}

/// Which templates rendered the asset, the current ones, and the upgrade that
/// waits, or why none does.
async fn templates(
    state: &AppState,
    conn: &mut AnyConnection,
    asset: &AssetRow,
) -> ServiceResult<AssetTemplates> {
    let ty = state.catalog.resource_type(&asset.summary.type_name);
    let current = ty.map(|t| t.version.clone()).unwrap_or_default();
    let upgrade_request = storage::upgrades::waiting_upgrade(conn, asset.summary.id)
        .await?
        .map(RequestId);
    let no_upgrade = if upgrade_request.is_none() && asset.catalog_version != current {
        Some(super::upgrades::why_none_waits(state, conn, ty, asset).await?)
    } else {
        None
    };
    Ok(AssetTemplates {
        rendered_by: asset.catalog_version.clone(),
        current,
        upgrade_request,
        no_upgrade,
    })
}

/// Records the asset a completed request made, once: a re-run finds it and returns it.
/// `reviewed` is the type as the catalog version that rendered the revision
/// defined it, when that is not today's: what the asset is recorded with
/// (its monitoring items, the files it holds) follows what ran. Quota counters
/// follow today's rules, which they are counted by.
pub(crate) async fn record_asset(
    state: &AppState,
    conn: &mut AnyConnection,
    (request, revision, reviewed): (&RequestRow, &RevisionRow, Option<&ResourceType>),
    commit: &str,
    actor: &Actor,
) -> ServiceResult<AssetId> {
    if let Some(existing) = storage::assets::by_request(conn, request.id).await? {
        return Ok(existing.summary.id);
    }
    let today = request_type(state, request)?;
    // A day-2 action changes the asset it acts on instead of making one.
    if request.asset_id.is_some() {
        let ran = (request, revision, reviewed);
        return super::actions::record_outcome(state, conn, ran, commit, actor).await;
    }
    let ty = reviewed.unwrap_or(today);
    let params = &revision.params;
    // Indexed as today's catalog says what is searched (as `search::sync` does).
    let words = indexed_words(
        Some(today),
        &request.resource_name,
        today.owning_team(params),
        params,
    );
    let id = storage::assets::insert(
        conn,
        &NewAsset {
            type_name: &ty.name,
            name: &request.resource_name,
            params,
            team: ty.owning_team(params),
            environment: ty.environment(params),
            request_id: request.id,
            commit_id: commit,
            catalog_version: &revision.catalog_version,
            search_text: Some(&words),
        },
    )
    .await?;
    storage::search::index_new_asset(conn, state.db.engine, id, &words).await?;
    let written: Vec<String> = revision
        .change_set
        .files
        .iter()
        .map(|f| f.path.clone())
        .collect();
    storage::assets::set_deployed_paths(conn, id, &written, ty.commits_to_gitops()).await?;
    // Reviewed under templates that have changed since: the sweep may have
    // marked the type done before this asset existed.
    if revision.catalog_version != today.version {
        storage::assets::reopen_sweep(conn, &ty.name).await?;
    }
    storage::quota::adjust(conn, today, params, 1).await?;
    let monitoring = render::monitoring(ty, params, &request.resource_name)
        .map_err(|e| ServiceError::Internal(format!("monitoring items: {e}")))?;
    storage::assets::insert_monitoring(conn, id, &monitoring).await?;
    let dependencies = precheck::dependency_queries(ty, params).unwrap_or_else(|error| {
        tracing::warn!(request_id = %request.id, %error, "requirements not evaluable; the asset is recorded without relations");
        Vec::new()
    });
    for dependency in &dependencies {
        if let Some(target) = find_required_asset(conn, state.db.engine, dependency).await? {
            storage::assets::insert_relation(conn, id, target.summary.id, backstage::REQUIRES)
                .await?;
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

/// How many assets one read of the Backstage feed takes from the database.
pub const FEED_PAGE: i64 = 500;

/// One asset as a Backstage `catalog-info.yaml`, whatever its state (one that is
/// no longer active says `lifecycle: deprecated`). Links point at `slipway_url`.
/// Everyone signed in may read the CMDB, so everyone may export from it.
#[instrument(skip_all, fields(asset_id = %id))]
pub async fn backstage_entity(
    state: &AppState,
    _user: &Caller,
    id: AssetId,
    slipway_url: &str,
) -> ServiceResult<String> {
    let mut conn = state.db.pool.acquire().await?;
    let row = storage::assets::for_export(&mut conn, id)
        .await?
        .ok_or_else(|| ServiceError::NotFound(format!("asset #{id}")))?;
    let relations = storage::assets::relations(&mut conn, id).await?;
    drop(conn);
    backstage::to_yaml(&entity_of(state, &row, &relations, slipway_url))
        .map_err(|e| ServiceError::Internal(e.to_string()))
}

fn entity_of(
    state: &AppState,
    row: &ExportRow,
    relations: &[RelationView],
    slipway_url: &str,
) -> backstage::Entity {
    let asset = &row.asset;
    let ty = state.catalog.resource_type(&asset.summary.type_name);
    // Rows recorded before the team and environment columns were filled still
    // carry both in their parameters.
    let team = row
        .team
        .as_deref()
        .or_else(|| ty.and_then(|t| t.owning_team(&asset.params)));
    let environment = row
        .environment
        .as_deref()
        .or_else(|| ty.and_then(|t| t.environment(&asset.params)));
    let exported = ExportedAsset {
        asset: &asset.summary,
        commit_id: &asset.commit_id,
        team,
        environment,
        resource_type: ty,
        relations,
    };
    backstage::entity(&exported, slipway_url)
}

/// One page of the feed: the YAML documents of up to `limit` active assets
/// numbered above `after`, and where the next page starts (none after the last).
pub struct FeedPage {
    pub yaml: String,
    pub next: Option<AssetId>,
}

pub async fn backstage_feed_page(
    state: &AppState,
    _user: &Caller,
    slipway_url: &str,
    after: AssetId,
    limit: i64,
) -> ServiceResult<FeedPage> {
    let mut conn = state.db.pool.acquire().await?;
    let rows = storage::assets::active_for_export(&mut conn, after, limit).await?;
    let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
        return Ok(FeedPage {
            yaml: String::new(),
            next: None,
        });
    };
    let (first, last) = (first.asset.summary.id, last.asset.summary.id);
    let mut requirements: BTreeMap<AssetId, Vec<RelationView>> = BTreeMap::new();
    for (from, relation) in storage::assets::requirements_between(&mut conn, first, last).await? {
        requirements.entry(from).or_default().push(relation);
    }
    drop(conn);
    let mut yaml = String::new();
    for row in &rows {
        let relations = requirements
            .get(&row.asset.summary.id)
            .map_or(&[][..], Vec::as_slice);
        let entity = entity_of(state, row, relations, slipway_url);
        let document =
            backstage::feed_document(&entity).map_err(|e| ServiceError::Internal(e.to_string()))?;
        yaml.push_str(&document);
    }
    let full = i64::try_from(rows.len()).is_ok_and(|n| n >= limit);
    Ok(FeedPage {
        yaml,
        next: full.then_some(last),
    })
}

/// Every active asset as one multi-document YAML stream (`---` before each
/// entity), for a Backstage catalog location. The stream reads the database one
/// page at a time as it is sent; the first page is read before anything is sent,
/// so a failure there is an error answer rather than a cut stream.
#[instrument(skip_all)]
pub async fn backstage_feed(
    state: AppState,
    user: Caller,
    slipway_url: String,
) -> ServiceResult<impl Stream<Item = ServiceResult<String>> + Send + 'static> {
    // Held until the last page is sent (or the client goes away).
    let slot = state.downloads.take(&user.username)?;
    let first = backstage_feed_page(&state, &user, &slipway_url, AssetId(0), FEED_PAGE).await?;
    let rest = stream::unfold(first.next, move |after| {
        let (state, user, url) = (state.clone(), user.clone(), slipway_url.clone());
        let _held = &slot;
        async move {
            let after = after?;
            // Each page under the caller's rights as they are when it is read: a
            // token revoked, or an account disabled, mid-stream ends the stream.
            let page = match super::tokens::still_standing(&state, &user).await {
                Ok(user) => backstage_feed_page(&state, &user, &url, after, FEED_PAGE).await,
                Err(error) => Err(error),
            };
            match page {
                Ok(page) => Some((Ok(page.yaml), page.next)),
                Err(error) => Some((Err(error), None)),
            }
        }
    });
    Ok(stream::once(async move { Ok(first.yaml) }).chain(rest))
}
