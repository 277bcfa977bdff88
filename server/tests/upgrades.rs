//! Template upgrades as reviewed change, on both engines: a catalog whose
//! namespace template changed opens one upgrade request per asset whose files
//! would change, with the diff against what is deployed; a change that renders
//! the same opens none; a busy asset waits for a later sweep; a second sweep
//! opens nothing twice; and the approved upgrade brings the asset to the version.

#[allow(dead_code)]
#[macro_use]
mod common;

use std::path::{Path, PathBuf};

use common::{TestApp, TestResult, run_jobs_on};
use serde_json::json;
use slipway_core::catalog::TypeAction;
use slipway_core::diff::FileStatus;
use slipway_core::ids::{AssetId, RequestId};
use slipway_core::state::RequestState;
use slipway_core::views::{ActionDraft, NoUpgrade, ReviewDecision};
use slipway_server::services::detail::ReviewerRead;
use slipway_server::services::{
    Caller, actions, assets, detail, operations, requests, reviews, upgrades,
};
use slipway_server::state::AppState;
use slipway_server::storage;

on_both_engines!(@one a_template_change_reaches_every_asset_as_a_reviewed_request, crate::start);
on_both_engines!(@one a_parameter_required_since_is_upgraded_with_its_default, crate::start);
on_both_engines!(@one a_parameter_required_since_without_a_default_is_named, crate::start);
on_both_engines!(@one a_catalog_check_against_the_database_names_what_it_would_strand, crate::start);
on_both_engines!(@one an_asset_recorded_behind_after_the_sweep_is_upgraded, crate::start);
on_both_engines!(@one a_change_reviewed_before_a_new_check_is_verified_as_reviewed, crate::start);
on_both_engines!(@one a_request_resolved_by_hand_is_recorded_as_reviewed, crate::start);
on_both_engines!(@one a_rejected_upgrade_stays_rejected_after_a_backup, crate::start);
on_both_engines!(@one files_the_templates_no_longer_write_are_removed, crate::start);
on_both_engines!(@one an_older_asset_upgraded_before_its_files_were_recovered_leaves_none, crate::start);

const TYPE_FILE: &str = "types/k8s-namespace.yaml";
const TEMPLATE: &str = "templates/k8s-namespace/namespace.yaml.j2";
const ADDED_LABEL: &str = "    slipway.io/upgraded: \"yes\"\n";

/// The app on a copy of the shipped catalog, which the test then edits.
async fn start(engine: slipway_server::storage::Engine) -> TestResult<Option<TestApp>> {
    let dir = tempfile::tempdir()?;
    common::copy_dir(&common::shipped_catalog(), dir.path())?;
    TestApp::start_with_catalog(engine, Some(dir)).await
}

fn edit(catalog: &Path, file: &str, change: impl Fn(String) -> String) -> TestResult {
    let path = catalog.join(file);
    let text = std::fs::read_to_string(&path)?;
    std::fs::write(&path, change(text))?;
    Ok(())
}

async fn asset_of(state: &AppState, request: RequestId) -> TestResult<storage::assets::AssetRow> {
    let mut conn = state.db.pool.acquire().await?;
    Ok(storage::assets::by_request(&mut conn, request)
        .await?
        .ok_or("the request recorded an asset")?)
}

fn version(state: &AppState) -> TestResult<String> {
    Ok(state
        .catalog
        .resource_type("k8s-namespace")
        .ok_or("k8s-namespace")?
        .version
        .clone())
}

async fn request_count(state: &AppState) -> TestResult<i64> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM requests")
        .fetch_one(&state.db.pool)
        .await?)
}

async fn a_template_change_reaches_every_asset_as_a_reviewed_request(app: &TestApp) -> TestResult {
    let catalog: PathBuf = app.state.settings.catalog.clone();
    let (alice, bob) = (app.user("alice").await?, app.user("bob").await?);
    let web = asset_of(&app.state, app.namespace(&alice, "prod", "web").await?).await?;
    let api = asset_of(&app.state, app.namespace(&alice, "prod", "api").await?).await?;
    let first = version(&app.state)?;
    assert_eq!(
        web.catalog_version, first,
        "an asset records what rendered it"
    );
    let made = detail::request_detail(
        &app.state,
        &alice,
        web.summary.request_id,
        slipway_server::services::detail::ReviewerRead::Counts,
    )
    .await?;
    assert!(made.revisions.iter().all(|r| r.catalog_version == first));
    let shown = assets::detail(&app.state, &alice, web.summary.id).await?;
    assert!(shown.templates.is_current() && shown.templates.upgrade_request.is_none());
    assert!(
        !shown.actions.iter().any(|a| a.name == TypeAction::UPGRADE),
        "nothing to upgrade"
    );
    assert_eq!(
        upgrades::sweep(&app.state).await?,
        upgrades::SweepReport::default()
    );

    // A reworded description: a new version, the same files, no request.
    edit(&catalog, TYPE_FILE, |t| {
        t.replacen("description:", "description: Reworded.", 1)
    })?;
    let reworded = app.restart().await?;
    assert_ne!(version(&reworded)?, first);
    let requests_before = request_count(&reworded).await?;
    let report = upgrades::sweep(&reworded).await?;
    assert_eq!(
        (report.opened.len(), report.unchanged, report.deferred),
        (0, 2, 0)
    );
    assert_eq!(request_count(&reworded).await?, requests_before);
    assert_eq!(
        asset_of(&reworded, web.summary.request_id)
            .await?
            .catalog_version,
        version(&reworded)?
    );

    // api is busy with a resize in review when the template changes.
    let draft = ActionDraft {
        params: json!({"cpu_limit": 3, "memory_limit_gi": 6}),
        submit_key: "resize-api".into(),
    };
    let resize = actions::submit(&reworded, &alice, api.summary.id, "resize", &draft).await?;
    edit(&catalog, TEMPLATE, |t| {
        format!("{}\n{ADDED_LABEL}", t.trim_end())
    })?;
    let changed = app.restart().await?;
    let current = version(&changed)?;
    let report = upgrades::sweep(&changed).await?;
    assert_eq!(
        (report.opened.len(), report.unchanged, report.deferred),
        (1, 0, 1)
    );
    let upgrade = report.opened[0];
    check_upgrade_request(&changed, &alice, upgrade, (web.summary.id, &current)).await?;
    let again = upgrades::sweep(&changed).await?;
    assert_eq!(
        (again.opened.len(), again.deferred),
        (0, 2),
        "nothing is opened twice"
    );

    reviews::decide(&changed, &bob, upgrade, 1, ReviewDecision::Approve, "fine").await?;
    reviews::decide(&changed, &bob, resize, 1, ReviewDecision::Approve, "fine").await?;
    run_jobs_on(&changed).await?;
    // The resize runs what was reviewed: its files from the templates of then.
    let resized = asset_of(&changed, api.summary.request_id).await?;
    assert_ne!(resized.catalog_version, current);
    let later = upgrades::sweep(&changed).await?;
    assert_eq!(
        (later.opened.len(), later.deferred),
        (1, 0),
        "the busy asset's turn came"
    );
    reviews::decide(
        &changed,
        &bob,
        later.opened[0],
        1,
        ReviewDecision::Approve,
        "ok",
    )
    .await?;
    run_jobs_on(&changed).await?;
    for id in [upgrade, resize, later.opened[0]] {
        let mut conn = changed.db.pool.acquire().await?;
        let row = storage::requests::get(&mut conn, id)
            .await?
            .ok_or("request")?;
        assert_eq!(
            row.state,
            RequestState::Completed,
            "#{id}: {:?}",
            row.last_error
        );
    }
    for (asset, name) in [(&web, "web"), (&api, "api")] {
        let now = asset_of(&changed, asset.summary.request_id).await?;
        assert_eq!(now.catalog_version, current, "{name}");
        let path = format!("prod/payments/k8s-namespace/{name}/namespace.yaml");
        let deployed = changed.gitops.read_head_file(&path)?.unwrap_or_default();
        assert!(
            deployed.contains("slipway.io/upgraded"),
            "{path}: {deployed}"
        );
    }
    assert!(asset_of(&changed, api.summary.request_id).await?.params["cpu_limit"] == json!(3));
    let done = upgrades::sweep(&changed).await?;
    assert_eq!(done, upgrades::SweepReport::default());
    let mut conn = changed.db.pool.acquire().await?;
    let swept = storage::upgrades::swept_version(&mut conn, "k8s-namespace").await?;
    assert_eq!(swept.as_deref(), Some(current.as_str()));
    Ok(())
}

/// The upgrade is alice's request on web, in review, with the template's new
/// line in its diff against the deployed file, and the asset's page points at it.
async fn check_upgrade_request(
    state: &AppState,
    alice: &Caller,
    id: RequestId,
    (asset, current): (AssetId, &str),
) -> TestResult {
    let shown = detail::request_detail(
        state,
        alice,
        id,
        slipway_server::services::detail::ReviewerRead::Counts,
    )
    .await?;
    assert_eq!(shown.summary.state, RequestState::InReview);
    assert_eq!(shown.summary.requester, "alice");
    let on = shown.action.ok_or("the upgrade acts on an asset")?;
    assert_eq!(
        (on.asset_id, on.action.name.as_str()),
        (asset, TypeAction::UPGRADE)
    );
    let diff = on.deployed_diff.ok_or("a diff against what is deployed")?;
    assert!(
        diff.params.is_empty(),
        "an upgrade changes no parameter: {:?}",
        diff.params
    );
    let file = diff
        .files
        .iter()
        .find(|f| f.path.ends_with("namespace.yaml"))
        .ok_or("namespace.yaml")?;
    assert_eq!(file.status, FileStatus::Modified);
    assert!(
        format!("{file:?}").contains("slipway.io/upgraded"),
        "{file:?}"
    );
    assert!(shown.revisions.iter().all(|r| r.catalog_version == current));
    let page = assets::detail(state, alice, asset).await?;
    assert_eq!(page.templates.upgrade_request, Some(id));
    assert_eq!(page.templates.current, current);
    assert!(!page.templates.is_current());
    let mut conn = state.db.pool.acquire().await?;
    let events = storage::audit::for_target(&mut conn, "asset", &asset.to_string()).await?;
    assert!(
        events
            .iter()
            .any(|e| e.action == "asset.upgrade_requested" && e.actor == "policy:template-upgrade")
    );
    Ok(())
}

/// An upgrade is opened for someone who may still ask for the asset: not the
/// first requester once she has left the team (she would see, and could cancel,
/// a change that is no longer hers, and her old team could not revise it), but
/// whoever of the team last asked for an action on it; with no one left, the
/// upgrade waits for a later sweep.
#[tokio::test]
async fn an_upgrade_goes_to_someone_who_may_still_ask_for_the_asset() -> TestResult {
    let Some(app) = start(slipway_server::storage::Engine::Sqlite).await? else {
        return Ok(());
    };
    let catalog: PathBuf = app.state.settings.catalog.clone();
    let alice = app.user("alice").await?;
    let web = asset_of(&app.state, app.namespace(&alice, "dev", "web").await?).await?;
    let solo = asset_of(&app.state, app.namespace(&alice, "dev", "solo").await?).await?;

    // Dave of payments resizes web; then alice moves to another team.
    let hash = slipway_server::services::auth::hash_password("dave-demo-pw")?;
    let mut conn = app.state.db.pool.acquire().await?;
    storage::users::insert(
        &mut conn,
        &storage::users::NewUser {
            username: "dave",
            display_name: "Dave",
            password_hash: Some(&hash),
            roles: &[slipway_core::views::Role::Requester],
            teams: &["payments".to_string()],
        },
    )
    .await?;
    drop(conn);
    let dave = app.user("dave").await?;
    let draft = ActionDraft {
        params: json!({"cpu_limit": 3, "memory_limit_gi": 6}),
        submit_key: "resize-web".into(),
    };
    let resize = actions::submit(&app.state, &dave, web.summary.id, "resize", &draft).await?;
    if app.request_state(resize).await? == RequestState::InReview {
        let bob = app.user("bob").await?;
        reviews::decide(&app.state, &bob, resize, 1, ReviewDecision::Approve, "fine").await?;
    }
    run_jobs_on(&app.state).await?;
    assert_eq!(app.request_state(resize).await?, RequestState::Completed);
    let moved = "UPDATE users SET teams = 'search' WHERE username = 'alice'";
    sqlx::query(moved).execute(&app.state.db.writer).await?;

    edit(&catalog, TEMPLATE, |t| {
        format!("{}\n{ADDED_LABEL}", t.trim_end())
    })?;
    let changed = app.restart().await?;
    let report = upgrades::sweep(&changed).await?;
    assert_eq!(
        (report.opened.len(), report.deferred),
        (1, 1),
        "web for dave; solo has no one left to ask: {report:?}"
    );
    let upgrade = storage::requests::get(&mut *changed.db.pool.acquire().await?, report.opened[0])
        .await?
        .ok_or("the upgrade")?;
    assert_eq!(
        (upgrade.asset_id, upgrade.requester_id),
        (Some(web.summary.id), dave.id)
    );
    let solo_now = storage::assets::get(&mut *changed.db.pool.acquire().await?, solo.summary.id)
        .await?
        .ok_or("solo")?;
    assert_ne!(
        solo_now.catalog_version,
        version(&changed)?,
        "solo still waits"
    );
    // Its page says why, and who may help, rather than promise the next sweep.
    let page = assets::detail(&changed, &dave, solo.summary.id).await?;
    assert_eq!(page.templates.no_upgrade, Some(NoUpgrade::NoOwner));
    Ok(())
}

/// An upgrade the team cancels, or a reviewer rejects, is the answer for that
/// version: later sweeps neither open it again nor fail on it (before, each
/// sweep that walked the type again failed on the key taken, counted the asset
/// as deferred, and so never marked the type swept).
#[tokio::test]
async fn a_declined_upgrade_stays_declined_for_its_version() -> TestResult {
    let Some(app) = start(slipway_server::storage::Engine::Sqlite).await? else {
        return Ok(());
    };
    let catalog: PathBuf = app.state.settings.catalog.clone();
    let (alice, bob) = (app.user("alice").await?, app.user("bob").await?);
    // In prod, where upgrades wait for a reviewer (dev approves them at once).
    app.namespace(&alice, "prod", "web").await?;
    app.namespace(&alice, "prod", "api").await?;
    // A third is busy with a resize, so the type is walked again at each sweep.
    let busy = asset_of(&app.state, app.namespace(&alice, "prod", "busy").await?).await?;
    let draft = ActionDraft {
        params: json!({"cpu_limit": 3, "memory_limit_gi": 6}),
        submit_key: "resize-busy".into(),
    };
    actions::submit(&app.state, &alice, busy.summary.id, "resize", &draft).await?;
    edit(&catalog, TEMPLATE, |t| {
        format!("{}\n{ADDED_LABEL}", t.trim_end())
    })?;
    let changed = app.restart().await?;
    let report = upgrades::sweep(&changed).await?;
    assert_eq!((report.opened.len(), report.deferred), (2, 1), "{report:?}");
    slipway_server::services::requests::cancel(&changed, &alice, report.opened[0]).await?;
    reviews::decide(
        &changed,
        &bob,
        report.opened[1],
        1,
        ReviewDecision::Reject,
        "not now",
    )
    .await?;
    let before = request_count(&changed).await?;
    let again = upgrades::sweep(&changed).await?;
    assert_eq!(
        (again.opened.len(), again.unchanged, again.deferred),
        (0, 2, 1),
        "the declined two are answered, not failed on: {again:?}"
    );
    assert_eq!(request_count(&changed).await?, before);
    // The asset's page says so, rather than promising an upgrade that will not
    // come; the busy one's says the next sweep opens it.
    let mut conn = changed.db.pool.acquire().await?;
    let declined = storage::requests::get(&mut conn, report.opened[0])
        .await?
        .and_then(|r| r.asset_id)
        .ok_or("the upgrade names its asset")?;
    drop(conn);
    let page = assets::detail(&changed, &alice, declined).await?;
    assert_eq!(
        page.templates.no_upgrade,
        Some(NoUpgrade::Declined {
            request: report.opened[0]
        })
    );
    let page = assets::detail(&changed, &alice, busy.summary.id).await?;
    assert_eq!(page.templates.no_upgrade, Some(NoUpgrade::NotYet));
    Ok(())
}

/// An upgrade sent back for changes and left unrevised is not closed as other
/// requests are: the sweep opened it (closing it would read as the team's
/// answer to it, and the asset would stay behind unnoticed), and it holds no
/// name; the asset's page keeps saying an upgrade waits.
#[tokio::test]
async fn an_upgrade_left_unrevised_waits_on() -> TestResult {
    let Some(app) = start(slipway_server::storage::Engine::Sqlite).await? else {
        return Ok(());
    };
    let catalog: PathBuf = app.state.settings.catalog.clone();
    let (alice, bob) = (app.user("alice").await?, app.user("bob").await?);
    app.namespace(&alice, "prod", "web").await?;
    edit(&catalog, TEMPLATE, |t| {
        format!("{}\n{ADDED_LABEL}", t.trim_end())
    })?;
    let changed = app.restart().await?;
    let report = upgrades::sweep(&changed).await?;
    let [upgrade] = report.opened[..] else {
        return Err(format!("one upgrade: {report:?}").into());
    };
    reviews::decide(
        &changed,
        &bob,
        upgrade,
        1,
        ReviewDecision::RequestChanges,
        "later",
    )
    .await?;
    let month = 31 * 24 * 60 * 60 * 1000_i64;
    sqlx::query("UPDATE requests SET updated_at = updated_at - $1 WHERE id = $2")
        .bind(month)
        .bind(upgrade.0)
        .execute(&changed.db.pool)
        .await?;
    let cut = storage::now_millis() - 30 * 24 * 60 * 60 * 1000;
    assert_eq!(
        slipway_server::services::requests::close_unrevised(&changed, cut).await?,
        0
    );
    assert_eq!(
        changed_state(&changed, upgrade).await?,
        RequestState::ChangesRequested
    );
    Ok(())
}

/// A catalog that goes to V2, back to V1 and to V2 again asks each asset for V2
/// twice: the second upgrade opens and runs like the first (before, its key was
/// the first's, so the sweep failed on the asset at every pass and never marked
/// the type swept).
#[tokio::test]
async fn a_version_asked_for_again_after_a_revert_is_upgraded_again() -> TestResult {
    let Some(app) = start(slipway_server::storage::Engine::Sqlite).await? else {
        return Ok(());
    };
    let catalog: PathBuf = app.state.settings.catalog.clone();
    let alice = app.user("alice").await?;
    // In dev, where upgrades are approved at once.
    let web = asset_of(&app.state, app.namespace(&alice, "dev", "web").await?).await?;
    let original = std::fs::read_to_string(catalog.join(TEMPLATE))?;
    let labelled = format!("{}\n{ADDED_LABEL}", original.trim_end());
    for (turn, text) in [&labelled, &original, &labelled].into_iter().enumerate() {
        std::fs::write(catalog.join(TEMPLATE), text)?;
        let state = app.restart().await?;
        let report = upgrades::sweep(&state).await?;
        assert_eq!(
            (report.opened.len(), report.deferred),
            (1, 0),
            "turn {turn}: {report:?}"
        );
        run_jobs_on(&state).await?;
        let mut conn = state.db.pool.acquire().await?;
        let row = storage::requests::get(&mut conn, report.opened[0])
            .await?
            .ok_or("the upgrade request")?;
        assert_eq!(row.state, RequestState::Completed, "turn {turn}");
        drop(conn);
        let now = asset_of(&state, web.summary.request_id).await?;
        assert_eq!(now.catalog_version, version(&state)?, "turn {turn}");
        assert_eq!(
            upgrades::sweep(&state).await?,
            upgrades::SweepReport::default(),
            "turn {turn}: swept"
        );
    }
    Ok(())
}

/// An upgrade waiting in review when the catalog leaves its version (a template
/// change rolled back) cannot be approved, and the next sweep cancels it; when
/// the catalog comes back to that version, the upgrade is opened again (the
/// sweep's cancel is not the team declining it).
#[tokio::test]
async fn an_upgrade_to_a_version_the_catalog_left_is_superseded() -> TestResult {
    let Some(app) = start(slipway_server::storage::Engine::Sqlite).await? else {
        return Ok(());
    };
    let catalog: PathBuf = app.state.settings.catalog.clone();
    let (alice, bob) = (app.user("alice").await?, app.user("bob").await?);
    let web = asset_of(&app.state, app.namespace(&alice, "prod", "web").await?).await?;
    let api = asset_of(&app.state, app.namespace(&alice, "prod", "api").await?).await?;
    let original = std::fs::read_to_string(catalog.join(TEMPLATE))?;
    let labelled = format!("{}\n{ADDED_LABEL}", original.trim_end());
    std::fs::write(catalog.join(TEMPLATE), &labelled)?;
    let newer = app.restart().await?;
    // alice asks for api's upgrade herself, under a key of her own.
    let own = ActionDraft {
        params: json!({}),
        submit_key: "mine-api".into(),
    };
    let hers = actions::submit(&newer, &alice, api.summary.id, TypeAction::UPGRADE, &own).await?;
    let report = upgrades::sweep(&newer).await?;
    assert_eq!(report.opened.len(), 1, "{report:?}");
    let upgrade = report.opened[0];
    let waiting = changed_state(&newer, upgrade).await?;
    assert_eq!(waiting, RequestState::InReview);
    // A replica still on the older catalog (a rolling deploy) leaves the sweep
    // to the version started last.
    let older_replica = upgrades::sweep(&app.state).await?;
    assert_eq!(older_replica, upgrades::SweepReport::default());
    assert_eq!(changed_state(&newer, upgrade).await?, waiting);

    std::fs::write(catalog.join(TEMPLATE), &original)?;
    let rolled_back = app.restart().await?;
    let earlier_start = upgrades::sweep(&newer).await?;
    assert_eq!(
        earlier_start,
        upgrades::SweepReport::default(),
        "the newer catalog's replica, started earlier, leaves it too"
    );
    let approve = ReviewDecision::Approve;
    let refused = reviews::decide(&rolled_back, &bob, upgrade, 1, approve, "ok")
        .await
        .expect_err("an upgrade to a version the catalog left is not approved");
    assert!(
        refused.to_string().contains("which the catalog has left"),
        "{refused}"
    );
    let report = upgrades::sweep(&rolled_back).await?;
    assert_eq!(report.superseded, vec![hers, upgrade], "{report:?}");
    assert!(report.opened.is_empty(), "the assets are on this version");
    let cancelled = changed_state(&rolled_back, upgrade).await?;
    assert_eq!(cancelled, RequestState::Cancelled);
    let keys: Vec<String> =
        sqlx::query_scalar("SELECT submit_key FROM requests WHERE id IN ($1, $2) ORDER BY id")
            .bind(hers.0)
            .bind(upgrade.0)
            .fetch_all(&rolled_back.db.pool)
            .await?;
    let freed = format!("template-upgrade-superseded-{upgrade}");
    assert_eq!(
        keys,
        ["mine-api".to_string(), freed],
        "only the sweep's own key is freed, into its reserved space"
    );
    let swept = upgrades::sweep(&rolled_back).await?;
    assert_eq!(swept, upgrades::SweepReport::default());

    std::fs::write(catalog.join(TEMPLATE), &labelled)?;
    let again = app.restart().await?;
    let report = upgrades::sweep(&again).await?;
    assert_eq!(report.opened.len(), 2, "opened again: {report:?}");
    assert!(!report.opened.contains(&upgrade));
    for opened in &report.opened {
        reviews::decide(&again, &bob, *opened, 1, approve, "ok").await?;
    }
    run_jobs_on(&again).await?;
    let now = asset_of(&again, web.summary.request_id).await?;
    assert_eq!(now.catalog_version, version(&again)?);
    // The older catalog's replica waits for the newer one while it sweeps, and
    // no longer once its replicas have stopped (a canary taken down).
    let waiting = upgrades::sweep(&rolled_back).await?;
    assert_eq!(waiting, upgrades::SweepReport::default());
    sqlx::query("UPDATE type_versions SET swept_at = 0 WHERE version = $1")
        .bind(version(&again)?)
        .execute(&again.db.pool)
        .await?;
    let alone = upgrades::sweep(&rolled_back).await?;
    assert_eq!(alone.opened.len(), 2, "{alone:?}");
    Ok(())
}

/// A catalog rolled back to a version it was swept at before brings back every
/// asset upgraded meanwhile: the sweep of the newer version could not finish
/// (an asset was busy), and the mark of the older one must not stand for it
/// (before, the rollback's sweep found the older mark and walked nothing, so
/// the upgraded assets stayed on the newer templates).
#[tokio::test]
async fn a_rollback_to_a_version_swept_before_brings_back_the_upgraded_assets() -> TestResult {
    let Some(app) = start(slipway_server::storage::Engine::Sqlite).await? else {
        return Ok(());
    };
    let catalog: PathBuf = app.state.settings.catalog.clone();
    let alice = app.user("alice").await?;
    let web = asset_of(&app.state, app.namespace(&alice, "dev", "web").await?).await?;
    let busy = asset_of(&app.state, app.namespace(&alice, "prod", "busy").await?).await?;
    let original_version = version(&app.state)?;
    assert_eq!(
        upgrades::sweep(&app.state).await?,
        upgrades::SweepReport::default()
    );
    let mut conn = app.state.db.pool.acquire().await?;
    let swept = storage::upgrades::swept_version(&mut conn, "k8s-namespace").await?;
    assert_eq!(swept.as_deref(), Some(original_version.as_str()));
    drop(conn);
    let draft = ActionDraft {
        params: json!({"cpu_limit": 3, "memory_limit_gi": 6}),
        submit_key: "resize-busy".into(),
    };
    actions::submit(&app.state, &alice, busy.summary.id, "resize", &draft).await?;

    let original = std::fs::read_to_string(catalog.join(TEMPLATE))?;
    std::fs::write(
        catalog.join(TEMPLATE),
        format!("{}\n{ADDED_LABEL}", original.trim_end()),
    )?;
    let newer = app.restart().await?;
    let report = upgrades::sweep(&newer).await?;
    assert_eq!((report.opened.len(), report.deferred), (1, 1), "{report:?}");
    run_jobs_on(&newer).await?;
    let upgraded = asset_of(&newer, web.summary.request_id).await?;
    assert_eq!(upgraded.catalog_version, version(&newer)?);

    std::fs::write(catalog.join(TEMPLATE), &original)?;
    let rolled_back = app.restart().await?;
    assert_eq!(version(&rolled_back)?, original_version);
    // The busy asset never left the older version: only the upgraded one moves.
    let report = upgrades::sweep(&rolled_back).await?;
    assert_eq!((report.opened.len(), report.deferred), (1, 0), "{report:?}");
    run_jobs_on(&rolled_back).await?;
    let back = asset_of(&rolled_back, web.summary.request_id).await?;
    assert_eq!(back.catalog_version, original_version);
    Ok(())
}

/// The type file with `cost_center` added to its required parameters, with
/// "none" as its default and a pattern (free text may not be written into a
/// manifest as it is), and the namespace template labelled with it.
fn require_cost_center(catalog: &Path) -> TestResult {
    edit(catalog, TYPE_FILE, |t| {
        t.replace(
            "required: [name, team, environment, cpu_limit, memory_limit_gi]",
            "required: [name, team, environment, cpu_limit, memory_limit_gi, cost_center]",
        )
        .replace(
            "  properties:\n    name:\n",
            "  properties:\n    cost_center:\n      type: string\n      pattern: \"^[a-z0-9-]+$\"\n      default: \"none\"\n    name:\n",
        )
    })?;
    edit(catalog, TEMPLATE, |t| {
        format!(
            "{}\n    slipway.io/cost-center: \"{{{{ cost_center }}}}\"\n",
            t.trim_end()
        )
    })
}

/// A parameter the catalog made required after the assets were recorded takes
/// its default: the sweep opens the upgrade carrying it, and a decommission is
/// asked for as before (before, both were refused with "cost_center: is
/// required", and the sweep failed on every asset at every pass).
async fn a_parameter_required_since_is_upgraded_with_its_default(app: &TestApp) -> TestResult {
    let catalog: PathBuf = app.state.settings.catalog.clone();
    let alice = app.user("alice").await?;
    let web = asset_of(&app.state, app.namespace(&alice, "prod", "web").await?).await?;
    let old = asset_of(&app.state, app.namespace(&alice, "prod", "old").await?).await?;
    require_cost_center(&catalog)?;
    let changed = app.restart().await?;
    let draft = ActionDraft {
        params: json!({}),
        submit_key: "decommission-old".into(),
    };
    actions::submit(&changed, &alice, old.summary.id, "decommission", &draft).await?;
    let report = upgrades::sweep(&changed).await?;
    assert_eq!(
        (report.opened.len(), report.deferred),
        (1, 1),
        "web is upgraded; old waits for its decommission: {report:?}"
    );
    let mut conn = changed.db.pool.acquire().await?;
    let upgrade = storage::requests::get(&mut conn, report.opened[0])
        .await?
        .ok_or("the upgrade")?;
    assert_eq!(upgrade.asset_id, Some(web.summary.id));
    assert_eq!(upgrade.params["cost_center"], json!("none"), "{upgrade:?}");
    Ok(())
}

/// A parameter the catalog made required since, with no default, cannot be
/// rendered for the assets recorded before: the sweep leaves each for a later
/// pass and says which parameter it lacks and whose fix it is (before, the
/// template's "undefined value" was all it said).
async fn a_parameter_required_since_without_a_default_is_named(app: &TestApp) -> TestResult {
    use tracing::instrument::WithSubscriber as _;
    let catalog: PathBuf = app.state.settings.catalog.clone();
    let alice = app.user("alice").await?;
    let web = asset_of(&app.state, app.namespace(&alice, "prod", "web").await?).await?;
    require_cost_center(&catalog)?;
    edit(&catalog, TYPE_FILE, |t| {
        t.replace("      default: \"none\"\n", "")
    })?;
    let changed = app.restart().await?;
    let before = request_count(&changed).await?;
    let logs = common::CapturedLogs::default();
    let report = upgrades::sweep(&changed)
        .with_subscriber(logs.subscriber(tracing::Level::WARN))
        .await?;
    assert_eq!((report.opened.len(), report.deferred), (0, 1), "{report:?}");
    assert_eq!(request_count(&changed).await?, before);
    let logged = logs.text();
    let line = logged
        .lines()
        .find(|line| line.contains("no template upgrade for this asset yet"))
        .ok_or(logged.clone())?;
    assert!(
        line.contains(&format!("asset_id={}", web.summary.id))
            && line.contains(&format!(
                "the asset has no cost_center ({})",
                slipway_core::action::LACKED_SINCE
            )),
        "{line}"
    );
    Ok(())
}

/// `slipway catalog check --against` a database names, before the catalog is
/// deployed, what it would leave stranded there: a type gone while assets and
/// requests are of it, a parameter now required with no default that assets
/// lack. It reads only, and a database it cannot read fails the check.
async fn a_catalog_check_against_the_database_names_what_it_would_strand(
    app: &TestApp,
) -> TestResult {
    use std::process::ExitCode;
    let catalog: PathBuf = app.state.settings.catalog.clone();
    let url = app.settings.database_url.clone();
    let alice = app.user("alice").await?;
    let web = asset_of(&app.state, app.namespace(&alice, "prod", "web").await?).await?;
    database(app, "ledger").await?;
    let open = requests::submit(
        &app.state,
        &alice,
        &common::draft(
            "postgres-database",
            common::postgres_params("orders", "prod", 20),
        ),
    )
    .await?;
    assert_eq!(app.request_state(open).await?, RequestState::InReview);
    let check = |dir: PathBuf, against: String| async move {
        slipway_server::cli::check_catalog(&dir, Some(&against)).await
    };
    assert_eq!(check(catalog.clone(), url.clone()).await, ExitCode::SUCCESS);

    require_cost_center(&catalog)?;
    edit(&catalog, TYPE_FILE, |t| {
        t.replace("      default: \"none\"\n", "")
    })?;
    std::fs::remove_file(catalog.join("types/postgres-database.yaml"))?;
    let before = app.snapshot().await?;
    let loaded = slipway_server::catalog_source::load(&catalog)?;
    let mut conn = app.state.db.pool.acquire().await?;
    let found = slipway_server::stranded::stranded(&mut conn, &loaded).await?;
    drop(conn);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(
        found[0].starts_with(
            "the type postgres-database is not in this catalog, but 1 active asset(s) and 1 \
             open request(s) are of it: its assets take no action any more"
        ),
        "{found:#?}"
    );
    assert!(
        found[1].starts_with(&format!(
            "1 active asset(s) of k8s-namespace (#{} {}) have no cost_center, which the type \
             now requires with no default",
            web.summary.id, web.summary.name
        )),
        "{found:#?}"
    );
    assert_eq!(check(catalog.clone(), url).await, ExitCode::FAILURE);
    let missing = "sqlite:///nonexistent-dir/slipway.db".to_string();
    assert_eq!(check(catalog.clone(), missing).await, ExitCode::FAILURE);
    // A server's own URL asks to create a missing file: the check does not.
    let dir = tempfile::tempdir()?;
    let absent = dir.path().join("slipway.db");
    let creating = format!("sqlite://{}?mode=rwc", absent.display());
    assert_eq!(check(catalog, creating).await, ExitCode::FAILURE);
    assert!(!absent.exists(), "the check created a database file");
    assert_eq!(app.snapshot().await?, before, "the check changed nothing");
    Ok(())
}

/// A creation still in review when the templates change completes later,
/// recording the version it was reviewed under: the next sweep reaches it,
/// though the type was marked swept before the asset existed (before, the mark
/// made every later pass skip the type, and the asset stayed behind for good).
async fn an_asset_recorded_behind_after_the_sweep_is_upgraded(app: &TestApp) -> TestResult {
    let catalog: PathBuf = app.state.settings.catalog.clone();
    let (alice, bob) = (app.user("alice").await?, app.user("bob").await?);
    let late = slipway_server::services::requests::submit(
        &app.state,
        &alice,
        &common::draft(
            "k8s-namespace",
            common::namespace_params("late", "payments", "prod", 2),
        ),
    )
    .await?;
    assert_eq!(app.request_state(late).await?, RequestState::InReview);
    let first = version(&app.state)?;
    edit(&catalog, TEMPLATE, |t| {
        format!("{}\n{ADDED_LABEL}", t.trim_end())
    })?;
    let changed = app.restart().await?;
    let current = version(&changed)?;
    assert_eq!(
        upgrades::sweep(&changed).await?,
        upgrades::SweepReport::default(),
        "no asset yet"
    );
    let mut conn = changed.db.pool.acquire().await?;
    let swept = storage::upgrades::swept_version(&mut conn, "k8s-namespace").await?;
    assert_eq!(swept.as_deref(), Some(current.as_str()));
    drop(conn);

    reviews::decide(&changed, &bob, late, 1, ReviewDecision::Approve, "ok").await?;
    run_jobs_on(&changed).await?;
    let asset = asset_of(&changed, late).await?;
    assert_eq!(asset.catalog_version, first, "it runs what was reviewed");
    let report = upgrades::sweep(&changed).await?;
    assert_eq!((report.opened.len(), report.deferred), (1, 0), "{report:?}");
    let mut conn = changed.db.pool.acquire().await?;
    let upgrade = storage::requests::get(&mut conn, report.opened[0])
        .await?
        .ok_or("the upgrade")?;
    assert_eq!(upgrade.asset_id, Some(asset.summary.id));
    Ok(())
}

/// The namespace type gains a network policy file, its check and a monitoring item.
fn add_a_network_policy(catalog: &Path) -> TestResult {
    let policy = "{{ environment }}/{{ team }}/k8s-namespace/{{ name }}/networkpolicy.yaml";
    edit(catalog, TYPE_FILE, |t| {
        t.replacen(
            "outputs:\n",
            &format!(
                "outputs:\n  - path: \"{policy}\"\n    template: k8s-namespace/networkpolicy.yaml.j2\n"
            ),
            1,
        )
        .replacen(
            "checks:\n",
            &format!("checks:\n  - kind: git-file\n    path: \"{policy}\"\n"),
            1,
        )
        .replacen(
            "monitoring:\n",
            "monitoring:\n  - name: \"{{ resource_name }} network policy\"\n    kind: grafana-dashboard\n    target: \"/d/np?ns={{ resource_name }}\"\n",
            1,
        )
    })?;
    std::fs::write(
        catalog.join("templates/k8s-namespace/networkpolicy.yaml.j2"),
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: default-deny\n  namespace: {{ resource_name }}\nspec:\n  podSelector: {}\n",
    )?;
    Ok(())
}

/// The catalog gains a file and its check while a resize waits in review: the
/// approved resize writes the files that were reviewed and is verified by the
/// checks of the version that rendered them (before, by today's: the new
/// file's check failed it, as it would any retry, though nothing was wrong).
async fn a_change_reviewed_before_a_new_check_is_verified_as_reviewed(app: &TestApp) -> TestResult {
    let catalog: PathBuf = app.state.settings.catalog.clone();
    let (alice, bob) = (app.user("alice").await?, app.user("bob").await?);
    let api = asset_of(&app.state, app.namespace(&alice, "prod", "api").await?).await?;
    let draft = ActionDraft {
        params: json!({"cpu_limit": 3, "memory_limit_gi": 6}),
        submit_key: "resize-api".into(),
    };
    let resize = actions::submit(&app.state, &alice, api.summary.id, "resize", &draft).await?;
    let reviewed = version(&app.state)?;
    add_a_network_policy(&catalog)?;
    let changed = app.restart().await?;
    assert_ne!(version(&changed)?, reviewed, "the catalog moved on");
    reviews::decide(&changed, &bob, resize, 1, ReviewDecision::Approve, "fine").await?;
    run_jobs_on(&changed).await?;
    let mut conn = changed.db.pool.acquire().await?;
    let row = storage::requests::get(&mut conn, resize)
        .await?
        .ok_or("the resize")?;
    assert_eq!(row.state, RequestState::Completed, "{:?}", row.last_error);
    let checked: Vec<String> = sqlx::query_scalar(
        "SELECT target FROM check_results WHERE request_id = $1 ORDER BY target",
    )
    .bind(resize.0)
    .fetch_all(&mut *conn)
    .await?;
    assert_eq!(
        checked.len(),
        3,
        "the reviewed version's checks: {checked:?}"
    );
    let watched: Vec<String> =
        sqlx::query_scalar("SELECT name FROM monitoring_items WHERE asset_id = $1 ORDER BY name")
            .bind(api.summary.id.0)
            .fetch_all(&mut *conn)
            .await?;
    assert!(
        watched.len() == 2 && watched.iter().all(|n| !n.contains("network policy")),
        "the reviewed version's monitoring items: {watched:?}"
    );
    assert!(
        checked.iter().all(|t| !t.contains("networkpolicy")),
        "{checked:?}"
    );
    let path = "prod/payments/k8s-namespace/api/networkpolicy.yaml";
    assert_eq!(
        changed.gitops.read_head_file(path)?,
        None,
        "not reviewed, not written"
    );
    // The next sweep brings the asset to today's version, with the new file.
    let report = upgrades::sweep(&changed).await?;
    assert_eq!(report.opened.len(), 1, "{report:?}");
    Ok(())
}

/// A request reviewed before the catalog gained a monitoring item, failed and
/// resolved by hand, is recorded by what was reviewed, as a job records what it
/// ran (before, by today's catalog: its asset watched a network policy nobody
/// wrote).
async fn a_request_resolved_by_hand_is_recorded_as_reviewed(app: &TestApp) -> TestResult {
    let catalog: PathBuf = app.state.settings.catalog.clone();
    let (alice, bob, carol) = (
        app.user("alice").await?,
        app.user("bob").await?,
        app.user("carol").await?,
    );
    let params = common::namespace_params("ledger", "payments", "prod", 2);
    let id = requests::submit(&app.state, &alice, &common::draft("k8s-namespace", params)).await?;
    let reviewed = version(&app.state)?;
    add_a_network_policy(&catalog)?;
    let changed = app.restart().await?;
    assert_ne!(version(&changed)?, reviewed, "the catalog moved on");
    reviews::decide(&changed, &bob, id, 1, ReviewDecision::Approve, "fine").await?;
    // An approved hash that matches nothing: the worker refuses to apply.
    sqlx::query("UPDATE requests SET approved_hash = 'tampered' WHERE id = $1")
        .bind(id.0)
        .execute(&changed.db.pool)
        .await?;
    run_jobs_on(&changed).await?;
    assert_eq!(changed_state(&changed, id).await?, RequestState::Failed);
    operations::take_over(&changed, &carol, id).await?;
    operations::resolve(&changed, &carol, id, "made by hand").await?;
    let asset = asset_of(&changed, id).await?;
    assert_eq!(asset.catalog_version, reviewed);
    let watched: Vec<String> =
        sqlx::query_scalar("SELECT name FROM monitoring_items WHERE asset_id = $1 ORDER BY name")
            .bind(asset.summary.id.0)
            .fetch_all(&changed.db.pool)
            .await?;
    assert!(
        !watched.is_empty() && watched.iter().all(|n| !n.contains("network policy")),
        "the reviewed version's monitoring items: {watched:?}"
    );
    Ok(())
}

/// An asset whose upgrade is still open is left for a later pass without a
/// pre-check or a warning: the pass knows why it waits (before, each pass ran
/// the whole pre-check for it and logged its refusal as a failure).
#[tokio::test]
async fn an_open_upgrade_is_waited_for_quietly() -> TestResult {
    use tracing::instrument::WithSubscriber as _;
    let Some(app) = start(slipway_server::storage::Engine::Sqlite).await? else {
        return Ok(());
    };
    let catalog: PathBuf = app.state.settings.catalog.clone();
    let alice = app.user("alice").await?;
    app.namespace(&alice, "prod", "web").await?;
    // Another is busy with a resize, so the type is walked again at each sweep.
    let busy = asset_of(&app.state, app.namespace(&alice, "prod", "busy").await?).await?;
    let draft = ActionDraft {
        params: json!({"cpu_limit": 3, "memory_limit_gi": 6}),
        submit_key: "resize-busy".into(),
    };
    actions::submit(&app.state, &alice, busy.summary.id, "resize", &draft).await?;
    edit(&catalog, TEMPLATE, |t| {
        format!("{}\n{ADDED_LABEL}", t.trim_end())
    })?;
    let changed = app.restart().await?;
    let report = upgrades::sweep(&changed).await?;
    assert_eq!((report.opened.len(), report.deferred), (1, 1), "{report:?}");
    let before = request_count(&changed).await?;
    // Log lines written while the sweep runs, for it alone (other tests of the
    // binary run beside it).
    let logs = common::CapturedLogs::default();
    let subscriber = logs.subscriber(tracing::Level::DEBUG);
    let again = upgrades::sweep(&changed)
        .with_subscriber(subscriber)
        .await?;
    assert_eq!(
        (again.opened.len(), again.unchanged, again.deferred),
        (0, 0, 2),
        "{again:?}"
    );
    assert_eq!(request_count(&changed).await?, before);
    let logged = logs.text();
    assert!(
        !logged.contains("no template upgrade for this asset yet"),
        "{logged}"
    );
    Ok(())
}

/// The key an upgrade is opened under is Slipway's: a member who gives it to
/// another request is refused naming submit_key, and a request of another action
/// under it (one stored before the rule), cancelled, does not read as the team
/// declining the upgrade (before, it kept the upgrade from ever opening).
#[tokio::test]
async fn an_upgrades_key_is_not_anyone_elses() -> TestResult {
    let Some(app) = start(slipway_server::storage::Engine::Sqlite).await? else {
        return Ok(());
    };
    let catalog: PathBuf = app.state.settings.catalog.clone();
    let alice = app.user("alice").await?;
    let web = asset_of(&app.state, app.namespace(&alice, "prod", "web").await?).await?;
    edit(&catalog, TEMPLATE, |t| {
        format!("{}\n{ADDED_LABEL}", t.trim_end())
    })?;
    let changed = app.restart().await?;
    let key = format!(
        "template-upgrade-{}-{}-after-{}",
        web.summary.id,
        version(&changed)?,
        web.summary.request_id
    );
    for action in ["resize", TypeAction::UPGRADE] {
        let forged = ActionDraft {
            params: json!({"cpu_limit": 3, "memory_limit_gi": 6}),
            submit_key: key.clone(),
        };
        let forged = if action == TypeAction::UPGRADE {
            ActionDraft {
                params: json!({}),
                ..forged
            }
        } else {
            forged
        };
        match actions::submit(&changed, &alice, web.summary.id, action, &forged).await {
            Err(slipway_server::services::ServiceError::Invalid(errors)) => {
                assert_eq!(errors.len(), 1, "{errors:?}");
                assert_eq!(errors[0].field, "submit_key");
                assert!(
                    errors[0].message.contains("template-upgrade-"),
                    "{errors:?}"
                );
            }
            other => panic!("{action} under the upgrade's key was taken: {other:?}"),
        }
    }
    // A resize stored under the key before the rule (by another member: one
    // person's keys are unique to them), then cancelled.
    let draft = ActionDraft {
        params: json!({"cpu_limit": 3, "memory_limit_gi": 6}),
        submit_key: "resize-web".into(),
    };
    let resize = actions::submit(&changed, &alice, web.summary.id, "resize", &draft).await?;
    slipway_server::services::requests::cancel(&changed, &alice, resize).await?;
    let other = app.user("bob").await?;
    sqlx::query("UPDATE requests SET submit_key = $1, requester_id = $2 WHERE id = $3")
        .bind(&key)
        .bind(other.id.0)
        .bind(resize.0)
        .execute(&changed.db.writer)
        .await?;
    let report = upgrades::sweep(&changed).await?;
    assert_eq!(
        (report.opened.len(), report.unchanged, report.deferred),
        (1, 0, 0),
        "{report:?}"
    );
    Ok(())
}

/// A database of payments in prod, created and approved; its asset.
async fn database(app: &TestApp, name: &str) -> TestResult<storage::assets::AssetRow> {
    let (alice, bob) = (app.user("alice").await?, app.user("bob").await?);
    let created = slipway_server::services::requests::submit(
        &app.state,
        &alice,
        &common::draft(
            "postgres-database",
            common::postgres_params(name, "prod", 20),
        ),
    )
    .await?;
    reviews::decide(&app.state, &bob, created, 1, ReviewDecision::Approve, "").await?;
    run_jobs_on(&app.state).await?;
    asset_of(&app.state, created).await
}

/// A backup writes a file beside the database and renders nothing of it: an
/// upgrade the reviewer rejected is still the same question after one, and is
/// not asked again (before, the key named the backup as the upgrade's starting
/// point, and every backup reopened the rejected upgrade).
async fn a_rejected_upgrade_stays_rejected_after_a_backup(app: &TestApp) -> TestResult {
    let catalog: PathBuf = app.state.settings.catalog.clone();
    let (alice, bob) = (app.user("alice").await?, app.user("bob").await?);
    app.namespace(&alice, "prod", "apps").await?;
    let ledger = database(app, "ledger").await?;
    edit(
        &catalog,
        "templates/postgres-database/cluster.yaml.j2",
        |t| format!("{}\n# upgraded\n", t.trim_end()),
    )?;
    let changed = app.restart().await?;
    let report = upgrades::sweep(&changed).await?;
    assert_eq!(report.opened.len(), 1, "{report:?}");
    reviews::decide(
        &changed,
        &bob,
        report.opened[0],
        1,
        ReviewDecision::Reject,
        "not now",
    )
    .await?;
    let draft = ActionDraft {
        params: json!({"backup_name": "before-42"}),
        submit_key: "backup-ledger".into(),
    };
    let backup = actions::submit(&changed, &alice, ledger.summary.id, "backup", &draft).await?;
    if changed_state(&changed, backup).await? == RequestState::InReview {
        reviews::decide(&changed, &bob, backup, 1, ReviewDecision::Approve, "").await?;
    }
    run_jobs_on(&changed).await?;
    assert_eq!(
        changed_state(&changed, backup).await?,
        RequestState::Completed
    );
    let before = request_count(&changed).await?;
    let again = upgrades::sweep(&changed).await?;
    assert_eq!(
        (again.opened.len(), again.unchanged, again.deferred),
        (0, 1, 0),
        "{again:?}"
    );
    assert_eq!(request_count(&changed).await?, before);
    Ok(())
}

async fn changed_state(state: &AppState, id: RequestId) -> TestResult<RequestState> {
    let mut conn = state.db.pool.acquire().await?;
    Ok(storage::requests::get(&mut conn, id)
        .await?
        .ok_or("the request")?
        .state)
}

/// Templates that move a file (the namespace manifest from `namespace.yaml` to
/// `ns.yaml`): the upgrade writes the new file and removes the old one, and a
/// decommission removes the file the asset was written at, not only the ones
/// today's templates name (before, the old files stayed in the repository for
/// good, applied by the reconcilers with no asset to own them).
async fn files_the_templates_no_longer_write_are_removed(app: &TestApp) -> TestResult {
    let catalog: PathBuf = app.state.settings.catalog.clone();
    let alice = app.user("alice").await?;
    // In dev, where upgrades and decommissions are approved at once.
    let web = asset_of(&app.state, app.namespace(&alice, "dev", "web").await?).await?;
    let old = asset_of(&app.state, app.namespace(&alice, "dev", "old").await?).await?;
    // In prod, where a reviewer may send the upgrade back for a revision.
    app.namespace(&alice, "prod", "kept").await?;
    let path = |name: &str, file: &str| format!("dev/payments/k8s-namespace/{name}/{file}");
    let deployed = |state: &AppState, path: String| -> TestResult<bool> {
        Ok(state.gitops.read_head_file(&path)?.is_some())
    };
    assert!(deployed(&app.state, path("web", "namespace.yaml"))?);
    edit(&catalog, TYPE_FILE, |t| {
        t.replace("/namespace.yaml\"", "/ns.yaml\"")
    })?;
    let changed = app.restart().await?;

    let draft = ActionDraft {
        params: json!({}),
        submit_key: "decommission-old".into(),
    };
    let retire = actions::submit(&changed, &alice, old.summary.id, "decommission", &draft).await?;
    run_jobs_on(&changed).await?;
    assert_eq!(
        changed_state(&changed, retire).await?,
        RequestState::Completed
    );
    for file in ["namespace.yaml", "resourcequota.yaml", "rolebinding.yaml"] {
        assert!(
            !deployed(&changed, path("old", file))?,
            "old/{file} is left"
        );
    }

    let report = upgrades::sweep(&changed).await?;
    assert_eq!((report.opened.len(), report.deferred), (2, 0), "{report:?}");
    run_jobs_on(&changed).await?;
    let mut states = Vec::new();
    for id in &report.opened {
        states.push(changed_state(&changed, *id).await?);
    }
    assert!(states.contains(&RequestState::Completed), "{states:?}");
    // The prod upgrade, sent back and revised, still removes the moved file.
    let in_review = *report
        .opened
        .iter()
        .zip(&states)
        .find(|(_, s)| **s == RequestState::InReview)
        .ok_or("the prod upgrade waits for review")?
        .0;
    let bob = app.user("bob").await?;
    let changes = ReviewDecision::RequestChanges;
    reviews::decide(&changed, &bob, in_review, 1, changes, "again, please").await?;
    let revised = detail::request_detail(&changed, &alice, in_review, ReviewerRead::DoesNotCount);
    let first = revised.await?.revisions;
    let requester = app.user(&first[0].author).await?;
    requests::resubmit(&changed, &requester, in_review, &json!({})).await?;
    let shown = detail::request_detail(&changed, &alice, in_review, ReviewerRead::DoesNotCount);
    let revisions = shown.await?.revisions;
    let moved = "prod/payments/k8s-namespace/kept/namespace.yaml".to_string();
    for revision in &revisions {
        assert!(
            revision.change_set.removed.contains(&moved),
            "revision {}: {:?}",
            revision.revision,
            revision.change_set.removed
        );
    }
    assert_eq!(revisions.len(), 2);
    assert!(deployed(&changed, path("web", "ns.yaml"))?);
    assert!(
        !deployed(&changed, path("web", "namespace.yaml"))?,
        "the file the templates no longer write is removed"
    );
    let mut conn = changed.db.pool.acquire().await?;
    let recorded = storage::assets::deployed_paths(&mut conn, web.summary.id)
        .await?
        .ok_or("web's paths are recorded")?;
    assert!(recorded.contains(&path("web", "ns.yaml")), "{recorded:?}");
    assert!(
        !recorded.contains(&path("web", "namespace.yaml")),
        "{recorded:?}"
    );
    assert_eq!(
        upgrades::sweep(&changed).await?,
        upgrades::SweepReport::default(),
        "swept"
    );
    Ok(())
}

/// An asset recorded before its files were kept, upgraded before the recovery
/// at start reached it: its files are read from its history, so the upgrade
/// still removes the one the templates moved (before, it was left in the
/// repository, unowned) and records the files it now has.
async fn an_older_asset_upgraded_before_its_files_were_recovered_leaves_none(
    app: &TestApp,
) -> TestResult {
    let catalog: PathBuf = app.state.settings.catalog.clone();
    let alice = app.user("alice").await?;
    let legacy = asset_of(&app.state, app.namespace(&alice, "dev", "legacy").await?).await?;
    let id = legacy.summary.id.0;
    app.exec(&format!(
        "UPDATE assets SET deployed_paths = NULL WHERE id = {id}"
    ))
    .await?;
    app.exec(&format!("DELETE FROM deployed_files WHERE asset_id = {id}"))
        .await?;
    edit(&catalog, TYPE_FILE, |t| {
        t.replace("/namespace.yaml\"", "/ns.yaml\"")
    })?;
    let changed = app.restart().await?;
    let report = upgrades::sweep(&changed).await?;
    assert_eq!(report.opened.len(), 1, "{report:?}");
    run_jobs_on(&changed).await?;
    assert_eq!(
        changed_state(&changed, report.opened[0]).await?,
        RequestState::Completed
    );
    let moved = "dev/payments/k8s-namespace/legacy/namespace.yaml";
    assert!(
        changed.gitops.read_head_file(moved)?.is_none(),
        "the file the templates no longer write is removed"
    );
    let mut conn = changed.db.pool.acquire().await?;
    let recorded = storage::assets::deployed_paths(&mut conn, legacy.summary.id)
        .await?
        .ok_or("legacy's paths are recorded")?;
    assert_eq!(
        recorded,
        [
            "dev/payments/k8s-namespace/legacy/ns.yaml",
            "dev/payments/k8s-namespace/legacy/resourcequota.yaml",
            "dev/payments/k8s-namespace/legacy/rolebinding.yaml",
        ]
    );
    Ok(())
}
