//! Template upgrades as reviewed change. When a type's catalog version changes,
//! each of its assets is rendered again from its recorded parameters and
//! compared with what is deployed; where the files differ, one upgrade request
//! per asset is opened for its owners and reviewers, reviewed with its diff as
//! any other change. An asset that renders the same just takes the new version.
//!
//! The sweep runs at start and again every so often: an asset busy with another
//! request is reached on a later pass, and a type is marked swept only once all
//! its assets met the version, so an unchanged catalog reads no asset. Several
//! replicas may sweep at once: the submission lock, the re-read under it and
//! "one request per asset at a time" make the second find the first's request.

use std::time::Duration;

use serde_json::Value;
use slipway_core::action::ACTIVE;
use slipway_core::catalog::{ResourceType, TypeAction};
use slipway_core::ids::{AssetId, RequestId};
use slipway_core::policy::{self, RequestFacts, Verb};
use slipway_core::render::{ChangeSet, RenderedFile};
use slipway_core::state::{Action, RequestState};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::actions::{ActingOn, deployed_state, remove_unwritten};
use super::requests::{prepare, store_submission};
use super::{Actor, CallMeta, Caller, Channel, ServiceError, ServiceResult, record};
use crate::state::AppState;
use crate::storage;
use crate::storage::assets::AssetRow;
use crate::storage::requests::ActionTarget;

/// Assets read per statement while sweeping a type.
const BATCH: i64 = 200;
/// The rule named in the audit trail as the upgrades' author.
const RULE: &str = "template-upgrade";
/// How the submit key of every upgrade begins; no one else may submit under one
/// (see `requests::checked_submit_key`).
pub(crate) const SUBMIT_KEY_PREFIX: &str = "template-upgrade-";

/// What one sweep did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepReport {
    /// Upgrade requests opened, one per asset whose files would change.
    pub opened: Vec<RequestId>,
    /// Assets that render as deployed: they took the new version, no request.
    pub unchanged: u64,
    /// Assets left for a later sweep (busy with another request, or failing to
    /// render: each is logged with why).
    pub deferred: u64,
    /// Upgrades opened for another catalog version, still waiting for a
    /// decision, cancelled: the catalog left their version.
    pub superseded: Vec<RequestId>,
}

enum Outcome {
    Opened(RequestId),
    Unchanged,
    Deferred,
}

/// Runs a sweep now and then every `every`, until `stopped` turns true.
pub fn spawn(
    state: AppState,
    every: Duration,
    mut stopped: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match sweep(&state).await {
                Ok(report) if report != SweepReport::default() => {
                    tracing::info!(
                        opened = report.opened.len(),
                        unchanged = report.unchanged,
                        deferred = report.deferred,
                        "template upgrade sweep"
                    );
                }
                Ok(_) => {}
                Err(error) => tracing::error!(%error, "the template upgrade sweep stopped"),
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stopped.wait_for(|stop| *stop) => return,
            }
        }
    })
}

/// Compares every asset behind its type's catalog version with what the current
/// templates render, opening an upgrade request where they differ.
/// A type whose pass fails is logged and the others are swept all the same;
/// the first failure is returned once they have been.
pub async fn sweep(state: &AppState) -> ServiceResult<SweepReport> {
    let mut report = SweepReport::default();
    let mut failed = None;
    for ty in state.catalog.catalog.types.values() {
        if let Some(upgrade) = ty.action(TypeAction::UPGRADE)
            && let Err(error) = sweep_type(state, ty, upgrade, &mut report).await
        {
            tracing::error!(type_name = %ty.name, %error, "the template upgrade sweep of this type stopped");
            failed.get_or_insert(error);
        }
    }
    match failed {
        Some(error) => Err(error),
        None => Ok(report),
    }
}

async fn sweep_type(
    state: &AppState,
    ty: &ResourceType,
    upgrade: &TypeAction,
    report: &mut SweepReport,
) -> ServiceResult<()> {
    // Replicas running two catalogs at once (a rolling deploy, a canary) would
    // undo each other's upgrades: those whose version another one started
    // after, and still sweeping lately, leave the sweep to it.
    let elsewhere = {
        let mut tx = state.db.write().await?;
        let versions = (ty.name.as_str(), ty.version.as_str());
        let elsewhere = storage::type_versions::sweeping_elsewhere(
            (&mut tx, state.db.engine),
            versions,
            still_sweeping_within(state),
        )
        .await?;
        tx.commit().await?;
        elsewhere
    };
    if elsewhere {
        tracing::info!(type_name = %ty.name, version = %ty.version, "replicas started since with another catalog version sweep this type");
        return Ok(());
    }
    let mut conn = state.db.pool.acquire().await?;
    match storage::upgrades::swept_version(&mut conn, &ty.name).await? {
        Some(swept) if swept == ty.version => return Ok(()),
        // The mark of another version stops standing the moment the catalog
        // leaves it: assets are upgraded off it from now on, so a catalog
        // rolled back to it later must walk them again (a pass that cannot
        // finish would otherwise leave the old mark to say they never moved).
        Some(swept) => {
            let mut tx = state.db.write().await?;
            storage::upgrades::forget_swept(&mut tx, &ty.name, &swept).await?;
            tx.commit().await?;
        }
        None => {}
    }
    report
        .superseded
        .extend(cancel_superseded(state, ty).await?);
    // An upgrade this server could not carry out (a program the allow-list lacks,
    // a server the settings do not name) waits for the settings, said once a
    // pass rather than once an asset.
    if let Some(why) = super::requests::unavailable_here(state, &upgrade.request_type) {
        tracing::warn!(type_name = %ty.name, %why, "no template upgrades of this type yet");
        return Ok(());
    }
    let (mut after, mut deferred) = (AssetId(0), 0);
    loop {
        let batch =
            storage::upgrades::behind(&mut conn, &ty.name, &ty.version, after, BATCH).await?;
        let Some(last) = batch.last() else { break };
        after = *last;
        for id in batch {
            match upgrade_one(state, ty, upgrade, id).await {
                Ok(Outcome::Opened(request)) => report.opened.push(request),
                Ok(Outcome::Unchanged) => report.unchanged += 1,
                Ok(Outcome::Deferred) => deferred += 1,
                Err(error) => {
                    tracing::warn!(asset_id = %id, %error, "no template upgrade for this asset yet");
                    deferred += 1;
                }
            }
        }
    }
    report.deferred += deferred;
    if deferred == 0 {
        let mut tx = state.db.write().await?;
        storage::upgrades::set_swept(&mut tx, &ty.name, &ty.version).await?;
        tx.commit().await?;
    }
    Ok(())
}

/// How long a version's replicas count as sweeping after their last pass:
/// three passes, and at least ten minutes.
fn still_sweeping_within(state: &AppState) -> i64 {
    let every = state.settings.upgrade_sweep_interval * 3;
    let window = every.max(Duration::from_secs(600));
    i64::try_from(window.as_millis()).unwrap_or(i64::MAX)
}

/// Cancels the type's upgrades opened for a catalog version it has left and
/// still waiting for a decision: approved, one would deploy the templates of a
/// version rolled back, or replaced by a fix. The asset's turn comes again in
/// this pass, for the version the catalog is at. One already approved runs.
async fn cancel_superseded(state: &AppState, ty: &ResourceType) -> ServiceResult<Vec<RequestId>> {
    let waiting = {
        let mut conn = state.db.pool.acquire().await?;
        storage::upgrades::superseded(&mut conn, &ty.name, &ty.version).await?
    };
    let mut cancelled = Vec::with_capacity(waiting.len());
    for id in waiting {
        if cancel_one_superseded(state, ty, id).await? {
            cancelled.push(id);
        }
    }
    if !cancelled.is_empty() {
        tracing::info!(type_name = %ty.name, cancelled = cancelled.len(), "superseded template upgrades cancelled");
    }
    Ok(cancelled)
}

/// Cancels one superseded upgrade, in a transaction of its own under the
/// type's submission turn; false when it is no longer waiting (a reviewer
/// decided, the requester cancelled it).
async fn cancel_one_superseded(
    state: &AppState,
    ty: &ResourceType,
    id: RequestId,
) -> ServiceResult<bool> {
    let mut tx = state.db.write().await?;
    storage::requests::serialize_submissions(&mut tx, state.db.engine, &ty.name).await?;
    storage::requests::lock(&mut tx, state.db.engine, id).await?;
    let mut request = super::load_request(&mut tx, id).await?;
    if !matches!(
        request.state,
        RequestState::Submitted | RequestState::InReview | RequestState::ChangesRequested
    ) {
        return Ok(false);
    }
    // Revised since it was listed, its new revision rendered by today's version.
    let current = storage::requests::revision(&mut tx, id, request.current_revision).await?;
    if current.is_none_or(|revision| revision.catalog_version == ty.version) {
        return Ok(false);
    }
    let note = format!(
        "superseded: the templates of {} are at catalog version {} now; the upgrade to it is opened instead",
        ty.name, ty.version
    );
    let actor = Actor::Policy(RULE.to_string());
    super::transition(&mut tx, state, &mut request, Action::Cancel, &actor, note).await?;
    storage::upgrades::release_key(&mut tx, id, SUBMIT_KEY_PREFIX).await?;
    tx.commit().await?;
    Ok(true)
}

/// What one asset looks like against the current templates, worked out before
/// the write lock is taken: rendering and reading the deployed files from git for
/// every asset of a type must not hold up every other writer for the whole sweep.
struct Looked {
    asset: AssetRow,
    key: String,
    deployed: Value,
    as_deployed: bool,
}

/// Looks at one asset without a lock; `Err` holds the outcome when there is
/// nothing to open.
async fn look(
    state: &AppState,
    ty: &ResourceType,
    upgrade: &TypeAction,
    id: AssetId,
) -> ServiceResult<Result<Looked, Outcome>> {
    let mut conn = state.db.pool.acquire().await?;
    let asset = storage::assets::get(&mut conn, id)
        .await?
        .ok_or_else(|| ServiceError::NotFound(format!("asset #{id}")))?;
    if asset.summary.state != ACTIVE || asset.catalog_version == ty.version {
        return Ok(Err(Outcome::Unchanged));
    }
    // One request per asset at a time: one busy with another (its own upgrade
    // among them) waits for a later pass. Asked first, so a pass neither runs
    // the pre-check that would refuse it nor logs that refusal as a failure.
    if storage::requests::in_flight_named(&mut conn, &ty.name, &asset.summary.name, None)
        .await?
        .is_some()
    {
        return Ok(Err(Outcome::Deferred));
    }
    // The key names what the upgrade starts from (the last request that rendered
    // the asset's files) as well as the version it brings: a catalog that goes to
    // V2, back to V1 and to V2 again asks for V2 twice, from two different
    // assets' states. A backup or a restore renders nothing of the asset: after
    // one, a declined upgrade is still the same question, and stays declined.
    let key = upgrade_key(&mut conn, ty, &asset).await?;
    // This version's upgrade from this state was opened before and is no longer in
    // flight: the team cancelled it or a reviewer rejected it. That answer stands
    // until the templates or the asset change again; opening it anew would meet the
    // same key.
    if declined(&mut conn, id, &ty.version, &key).await?.is_some() {
        return Ok(Err(Outcome::Unchanged));
    }
    let prepared = prepare_upgrade(&mut conn, state, ty, upgrade, &asset).await?;
    drop(conn);
    let deployed = deployed_state(state, &asset, &prepared.change_set).await?;
    let as_deployed = renders_as_deployed(&prepared.change_set, &deployed);
    Ok(Ok(Looked {
        asset,
        key,
        deployed,
        as_deployed,
    }))
}

/// The submit key of the upgrade of `asset` to the current templates. It names
/// what the upgrade starts from (the last request that rendered the asset's
/// files) as well as the version it brings: a catalog that goes to V2, back to
/// V1 and to V2 again asks for V2 twice, from two different assets' states. A
/// backup or a restore renders nothing of the asset: after one, a declined
/// upgrade is still the same question, and stays declined.
async fn upgrade_key(
    conn: &mut sqlx::AnyConnection,
    ty: &ResourceType,
    asset: &AssetRow,
) -> ServiceResult<String> {
    let rendering: Vec<&str> = ty
        .actions
        .iter()
        .filter(|a| slipway_core::action::renders_asset(ty, a))
        .map(|a| a.name.as_str())
        .collect();
    let id = asset.summary.id;
    let from =
        storage::requests::last_rendering_on_asset(conn, id, asset.summary.request_id, &rendering)
            .await?;
    Ok(format!(
        "{SUBMIT_KEY_PREFIX}{id}-{}-after-{from}",
        ty.version
    ))
}

/// The request by which the team declined this upgrade (its key; or, for an
/// upgrade opened before keys named the asset's last change, the version alone).
async fn declined(
    conn: &mut sqlx::AnyConnection,
    id: AssetId,
    version: &str,
    key: &str,
) -> ServiceResult<Option<RequestId>> {
    let older_key = format!("{SUBMIT_KEY_PREFIX}{id}-{version}");
    for key in [key, older_key.as_str()] {
        let earlier =
            storage::requests::declined_on_asset_with_key(conn, id, TypeAction::UPGRADE, key)
                .await?;
        if let Some(earlier) = earlier {
            tracing::debug!(asset_id = %id, request = %earlier, "this template upgrade was declined");
            return Ok(Some(earlier));
        }
    }
    Ok(None)
}

/// Why `asset`, whose templates are not the current ones, has no upgrade
/// waiting (for its page: "no upgrade is open yet" would promise one that may
/// never come).
pub(crate) async fn why_none_waits(
    state: &AppState,
    conn: &mut sqlx::AnyConnection,
    ty: Option<&ResourceType>,
    asset: &AssetRow,
) -> ServiceResult<slipway_core::views::NoUpgrade> {
    use slipway_core::views::NoUpgrade;
    let Some(ty) = ty else {
        return Ok(NoUpgrade::TypeRemoved);
    };
    if asset.summary.state != ACTIVE {
        return Ok(NoUpgrade::Retired);
    }
    let Some(upgrade) = ty.action(TypeAction::UPGRADE) else {
        return Ok(NoUpgrade::NotOffered);
    };
    let key = upgrade_key(conn, ty, asset).await?;
    if let Some(request) = declined(conn, asset.summary.id, &ty.version, &key).await? {
        return Ok(NoUpgrade::Declined { request });
    }
    Ok(match asset_owner(state, conn, asset, upgrade).await? {
        Some(_) => NoUpgrade::NotYet,
        None => NoUpgrade::NoOwner,
    })
}

async fn prepare_upgrade(
    conn: &mut sqlx::AnyConnection,
    state: &AppState,
    ty: &ResourceType,
    upgrade: &TypeAction,
    asset: &AssetRow,
) -> ServiceResult<super::requests::Prepared> {
    let validator = state
        .catalog
        .request_validator(&ty.name, Some(TypeAction::UPGRADE))
        .ok_or_else(|| ServiceError::Internal(format!("no upgrade validator for {}", ty.name)))?;
    let on = ActingOn {
        asset,
        ty,
        action: upgrade,
    };
    // A parameter the type gained since the asset was recorded renders with its
    // default, as it would for a new asset, and the upgrade records it.
    let params = slipway_core::action::with_type_defaults(ty, &asset.params);
    let mut prepared = prepare(
        conn,
        state,
        &upgrade.request_type,
        validator,
        &params,
        None,
        Some(&asset.params),
        Some(on),
    )
    .await?;
    remove_unwritten(conn, &upgrade.request_type, asset, &mut prepared).await?;
    Ok(prepared)
}

/// Renders one asset with the current templates and compares the files with the
/// deployed ones (without a lock), then, under the type's submission lock and
/// only if the asset is still as it was looked at, records the new version or
/// opens its upgrade request.
async fn upgrade_one(
    state: &AppState,
    ty: &ResourceType,
    upgrade: &TypeAction,
    id: AssetId,
) -> ServiceResult<Outcome> {
    let looked = match look(state, ty, upgrade, id).await? {
        Ok(looked) => looked,
        Err(outcome) => return Ok(outcome),
    };
    let mut tx = state.db.write().await?;
    storage::requests::serialize_submissions(&mut tx, state.db.engine, &ty.name).await?;
    let asset = storage::assets::get(&mut tx, id)
        .await?
        .ok_or_else(|| ServiceError::NotFound(format!("asset #{id}")))?;
    if asset.summary.state != ACTIVE || asset.catalog_version == ty.version {
        return Ok(Outcome::Unchanged);
    }
    // Changed since it was looked at (an action completed): the next sweep looks again.
    if asset.params != looked.asset.params || asset.commit_id != looked.asset.commit_id {
        return Ok(Outcome::Deferred);
    }
    if storage::requests::in_flight_named(&mut tx, &ty.name, &asset.summary.name, None)
        .await?
        .is_some()
    {
        return Ok(Outcome::Deferred);
    }
    // Declined since it was looked at (another replica opened it, the team cancelled).
    if declined(&mut tx, id, &ty.version, &looked.key)
        .await?
        .is_some()
    {
        return Ok(Outcome::Unchanged);
    }
    if looked.as_deployed {
        storage::upgrades::set_asset_version(&mut tx, id, &ty.version).await?;
        tx.commit().await?;
        return Ok(Outcome::Unchanged);
    }
    // Prepared again in the transaction that stores it: the pre-check (names,
    // quotas) holds at the moment of submitting, as for any request.
    let prepared = prepare_upgrade(&mut tx, state, ty, upgrade, &asset).await?;
    let Some(owner) = asset_owner(state, &mut tx, &asset, upgrade).await? else {
        tracing::warn!(asset_id = %id, "no one who asked for this asset may still ask for its team; its template upgrade waits");
        return Ok(Outcome::Deferred);
    };
    let actor = Actor::Policy(RULE.to_string());
    let target = ActionTarget {
        asset_id: id,
        action: TypeAction::UPGRADE,
        deployed: &looked.deployed,
    };
    let request = store_submission(
        &mut tx,
        state,
        (&owner, &actor),
        (&upgrade.request_type, &looked.key),
        &prepared,
        Some(target),
    )
    .await?;
    record(
        &mut tx,
        state.db.engine,
        &actor,
        "asset.upgrade_requested",
        ("asset", id.to_string()),
        Some(ty.version.clone()),
        format!(
            "the templates of {} changed (catalog version {} → {}): request #{request} shows the diff",
            ty.name,
            shown_version(&asset.catalog_version),
            ty.version
        ),
    )
    .await?;
    tx.commit().await?;
    state.jobs_ready.notify_one();
    Ok(Outcome::Opened(request))
}

fn shown_version(version: &str) -> &str {
    if version.is_empty() {
        "unrecorded"
    } else {
        version
    }
}

/// The person the upgrade is opened for, so it is in their requests and reaches
/// them as theirs would: whoever asked for the asset, or else whoever last asked
/// for an action on it, as long as they may still ask for it now (an account
/// that is not disabled, in the asset's team, with the requester's role: the
/// rule a submit of theirs would meet). Someone who left the team would
/// otherwise see, and could cancel, a change of an asset that is no longer
/// theirs, and the team could not revise it. None when no one qualifies.
async fn asset_owner(
    state: &AppState,
    conn: &mut sqlx::AnyConnection,
    asset: &AssetRow,
    upgrade: &TypeAction,
) -> ServiceResult<Option<Caller>> {
    const CANDIDATES: i64 = 20;
    let ids = storage::requests::requesters_of_asset(
        conn,
        asset.summary.id,
        asset.summary.request_id,
        CANDIDATES,
    )
    .await?;
    for id in ids {
        let Ok(user) = super::auth::acting_user(state, conn, id).await else {
            continue;
        };
        let facts = RequestFacts::new(
            &upgrade.request_type,
            &asset.params,
            RequestState::Draft,
            id,
        );
        if policy::may(&user, Verb::Submit, &facts).is_ok() {
            return Ok(Some(Caller::new(
                user,
                Channel::System,
                CallMeta::default(),
            )));
        }
    }
    Ok(None)
}

/// Whether every file the change writes is deployed with exactly that content,
/// and none it removes is still deployed (a file the templates no longer write).
fn renders_as_deployed(change_set: &ChangeSet, deployed: &Value) -> bool {
    let files: Vec<RenderedFile> = deployed
        .get("files")
        .cloned()
        .and_then(|f| serde_json::from_value(f).ok())
        .unwrap_or_default();
    let nothing_to_remove = change_set
        .removed
        .iter()
        .all(|path| !files.iter().any(|d| &d.path == path));
    nothing_to_remove
        && change_set.files.iter().all(|f| {
            files
                .iter()
                .any(|d| d.path == f.path && d.content == f.content)
        })
}
