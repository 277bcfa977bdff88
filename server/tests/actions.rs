//! Day-2 actions declared in the catalog, through the whole flow on both engines:
//! each shipped action of a database and a namespace is asked for, reviewed with
//! its diff against what is deployed, run by the drivers, verified and recorded
//! on its asset; and every way to ask wrongly is refused without a trace.

#[allow(dead_code)]
#[macro_use]
mod common;

use common::{TestApp, TestResult, postgres_params};
use serde_json::{Value, json};
use slipway_core::diff::FileStatus;
use slipway_core::ids::{AssetId, RequestId};
use slipway_core::state::RequestState;
use slipway_core::views::{ActionDraft, ReviewDecision, Role};
use slipway_server::services::{Caller, ServiceError, actions, assets, detail, requests, reviews};
use slipway_server::state::AppState;
use slipway_server::storage;

on_both_engines!(
    every_database_action_walks_the_flow,
    namespace_actions_and_refusals,
    actions_are_held_to_their_types_quota,
    nothing_new_may_depend_on_an_asset_being_retired,
);

fn action_draft(params: Value) -> ActionDraft {
    ActionDraft {
        params,
        submit_key: uuid::Uuid::new_v4().to_string(),
    }
}

/// The asset a completed request made.
async fn asset_of(app: &TestApp, request: RequestId) -> TestResult<AssetId> {
    let mut conn = app.state.db.pool.acquire().await?;
    Ok(storage::assets::by_request(&mut conn, request)
        .await?
        .ok_or("the request recorded an asset")?
        .summary
        .id)
}

/// Asks for `action` as `who`, has bob approve it when it waits for review, runs
/// the jobs and checks the request completed.
async fn act(
    app: &TestApp,
    who: &Caller,
    asset: AssetId,
    action: &str,
    params: Value,
) -> TestResult<RequestId> {
    let id = actions::submit(&app.state, who, asset, action, &action_draft(params)).await?;
    if app.request_state(id).await? == RequestState::InReview {
        let bob = app.user("bob").await?;
        reviews::decide(&app.state, &bob, id, 1, ReviewDecision::Approve, "ok").await?;
    }
    app.run_jobs().await?;
    let row = app.request(id).await?;
    assert_eq!(
        row.state,
        RequestState::Completed,
        "{action}: {:?}",
        row.last_error
    );
    Ok(id)
}

async fn asset_params(app: &TestApp, asset: AssetId) -> TestResult<Value> {
    let alice = app.user("alice").await?;
    Ok(assets::detail(&app.state, &alice, asset).await?.params)
}

fn head_file(app: &TestApp, path: &str) -> TestResult<Option<String>> {
    Ok(app.state.gitops.read_head_file(path)?)
}

async fn every_database_action_walks_the_flow(app: &TestApp) -> TestResult {
    let state = &app.state;
    let (alice, bob) = (app.user("alice").await?, app.user("bob").await?);
    app.namespace(&alice, "prod", "ledger").await?;
    let created = requests::submit(
        state,
        &alice,
        &common::draft("postgres-database", postgres_params("ledger", "prod", 20)),
    )
    .await?;
    reviews::decide(state, &bob, created, 1, ReviewDecision::Approve, "").await?;
    app.run_jobs().await?;
    let asset = asset_of(app, created).await?;
    let cluster = "prod/payments/postgres-database/ledger/cluster.yaml";

    // The owner's team is offered every action of the type.
    let offered: Vec<String> = assets::detail(state, &alice, asset)
        .await?
        .actions
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(
        offered,
        ["scale", "upgrade", "backup", "restore", "decommission"]
    );
    let form = actions::form(state, &alice, asset, "scale").await?;
    assert_eq!(form.initial.get("size"), Some(&json!("small")));
    assert_eq!(form.initial.get("storage_gb"), Some(&json!(20)));

    // The action's rules read the asset as it is: no shrinking the volume, no
    // going back a major version; refused with the field named, nothing stored.
    refused!(app, actions::submit(state, &alice, asset, "scale", &action_draft(json!({"size": "small", "storage_gb": 10}))),
    ServiceError::PrecheckFailed(report) => {
        let error = report.field_errors.iter().find(|e| e.field == "storage_gb").ok_or("storage_gb named")?;
        assert!(error.message.contains("the 20 GB the cluster has"), "{}", error.message);
    });
    refused!(app, actions::submit(state, &alice, asset, "upgrade", &action_draft(json!({"version": "15"}))),
    ServiceError::PrecheckFailed(report) => {
        assert!(report.field_errors.iter().any(|e| e.field == "version" && e.message.contains("cannot go back")), "{report:?}");
    });
    let live = actions::precheck(
        state,
        &alice,
        asset,
        "scale",
        &json!({"size": "small", "storage_gb": 15}),
        None,
    )
    .await?;
    assert!(
        live.field_errors.iter().any(|e| e.field == "storage_gb"),
        "the form is told while typing"
    );

    // Scale: reviewed with the diff against what is deployed.
    let scale = actions::submit(
        state,
        &alice,
        asset,
        "scale",
        &action_draft(json!({"size": "medium", "storage_gb": 40})),
    )
    .await?;
    assert_eq!(app.request_state(scale).await?, RequestState::InReview);
    let seen = detail::request_detail(
        state,
        &bob,
        scale,
        slipway_server::services::detail::ReviewerRead::Counts,
    )
    .await?;
    assert!(seen.permissions.review);
    assert_eq!(seen.asset_id, Some(asset));
    assert_eq!(seen.summary.type_title, "PostgreSQL database: Resize");
    let context = seen
        .action
        .ok_or("an action request says what it acts on")?;
    assert_eq!(
        (context.asset_id, context.action.name.as_str()),
        (asset, "scale")
    );
    let diff = context
        .deployed_diff
        .ok_or("a diff against what is deployed")?;
    let changed: Vec<(String, Option<Value>, Option<Value>)> = diff
        .params
        .iter()
        .map(|c| (c.name.clone(), c.before.clone(), c.after.clone()))
        .collect();
    assert!(changed.contains(&("size".into(), Some(json!("small")), Some(json!("medium")))));
    assert!(changed.contains(&("storage_gb".into(), Some(json!(20)), Some(json!(40)))));
    assert_eq!(diff.files.len(), 1, "{:?}", diff.files);
    assert_eq!(diff.files[0].path, cluster);
    assert_eq!(diff.files[0].status, FileStatus::Modified);
    let lines: Vec<String> = diff.files[0]
        .lines
        .iter()
        .map(|l| format!("{:?} {}", l.tag, l.text))
        .collect();
    assert!(
        lines.iter().any(|l| l == "Added     size: 40Gi"),
        "{lines:#?}"
    );
    reviews::decide(state, &bob, scale, 1, ReviewDecision::Approve, "").await?;
    app.run_jobs().await?;
    assert_eq!(app.request_state(scale).await?, RequestState::Completed);
    let params = asset_params(app, asset).await?;
    assert_eq!(
        (&params["size"], &params["storage_gb"]),
        (&json!("medium"), &json!(40))
    );
    let deployed = head_file(app, cluster)?.ok_or("the cluster is deployed")?;
    assert!(deployed.contains("size: 40Gi"), "{deployed}");
    // What the diff showed stays what it was once the action has run.
    let after = detail::request_detail(
        state,
        &alice,
        scale,
        slipway_server::services::detail::ReviewerRead::Counts,
    )
    .await?;
    let kept = after.action.and_then(|a| a.deployed_diff).ok_or("diff")?;
    assert_eq!(kept.files[0].status, FileStatus::Modified);

    // Back up (approved by the type's policy), upgrade, back up again, restore.
    // A backup never taken is not restored: it would recover from nothing.
    refused!(app, actions::submit(state, &alice, asset, "restore", &action_draft(json!({"backup_name": "before-42"}))),
    ServiceError::PrecheckFailed(report) => {
        let error = report.field_errors.iter().find(|e| e.field == "backup_name").ok_or("backup_name named")?;
        assert!(error.message.contains("no completed request of Back up now"), "{}", error.message);
    });
    let backup = actions::submit(
        state,
        &alice,
        asset,
        "backup",
        &action_draft(json!({"backup_name": "before-42"})),
    )
    .await?;
    assert_eq!(app.request_state(backup).await?, RequestState::Approved);
    app.run_jobs().await?;
    assert_eq!(app.request_state(backup).await?, RequestState::Completed);
    let backup_path = "prod/payments/postgres-database/ledger/backups/before-42.yaml";
    let backup_file = head_file(app, backup_path)?.ok_or("the Backup is committed")?;
    assert!(backup_file.contains("kind: Backup"), "{backup_file}");
    assert!(
        backup_file.contains("name: payments-ledger-prod.before-42"),
        "a dot, which neither name may hold, joins the database's and the backup's: {backup_file}"
    );
    let params = asset_params(app, asset).await?;
    assert!(
        params.get("backup_name").is_none(),
        "an action's own input is not the asset's: {params}"
    );
    // The same name again would render the same file, commit nothing and
    // complete without a backup taken: the pre-check refuses it.
    let again = actions::submit(
        state,
        &alice,
        asset,
        "backup",
        &action_draft(json!({"backup_name": "before-42"})),
    )
    .await;
    match again {
        Err(ServiceError::PrecheckFailed(report)) => {
            let fields = &report.field_errors;
            assert_eq!(fields[0].field, "backup_name", "{fields:?}");
            assert!(
                fields[0].message.contains(&format!(
                    "request #{backup} (Back up now) already used backup_name \"before-42\""
                )),
                "{fields:?}"
            );
        }
        other => panic!("a backup name used before was taken: {other:?}"),
    }
    act(app, &alice, asset, "upgrade", json!({"version": "17"})).await?;
    assert_eq!(asset_params(app, asset).await?["version"], json!("17"));
    act(
        app,
        &alice,
        asset,
        "backup",
        json!({"backup_name": "before-43"}),
    )
    .await?;
    // The database matches the values: the older backup is found past newer
    // ones however many there are (one row read here, not the history).
    let mut conn = state.db.pool.acquire().await?;
    for limit in [1, 5] {
        let name = json!("before-42");
        let values = [("backup_name", &name)];
        let found =
            storage::requests::completed_actions(&mut conn, asset, "backup", &values, limit)
                .await?;
        let ids: Vec<RequestId> = found.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, vec![backup], "limit {limit}");
    }
    drop(conn);
    act(
        app,
        &alice,
        asset,
        "restore",
        json!({"backup_name": "before-42"}),
    )
    .await?;
    let restore = head_file(app, "prod/payments/postgres-database/ledger/restore.yaml")?
        .ok_or("the restore is committed")?;
    assert!(
        restore.contains("name: payments-ledger-prod.before-42"),
        "{restore}"
    );
    // The backup was taken at 16: only 16 recovers it, whatever runs today.
    assert!(restore.contains("postgresql:16\n"), "{restore}");
    // CloudNativePG reads a cluster's bootstrap only when it creates it: a
    // second restore names a new cluster, which replaces the first.
    act(
        app,
        &alice,
        asset,
        "restore",
        json!({"backup_name": "before-43"}),
    )
    .await?;
    let restore = head_file(app, "prod/payments/postgres-database/ledger/restore.yaml")?
        .ok_or("the restore is committed")?;
    assert!(
        restore.contains("name: payments-ledger-prod-restore-before-43\n"),
        "{restore}"
    );
    assert!(restore.contains("postgresql:17\n"), "{restore}");
    assert!(
        head_file(app, cluster)?.is_some_and(|c| c.contains("postgresql:17")),
        "the restore leaves the cluster as it is"
    );
    // The backup restored last, restored again, would commit nothing and leave
    // that cluster as it is (CloudNativePG bootstraps a cluster once): refused,
    // not completed as if it had restored something.
    let again = action_draft(json!({"backup_name": "before-43"}));
    refused!(app, actions::submit(state, &alice, asset, "restore", &again),
    ServiceError::Invalid(errors) => assert!(
        errors[0].message.contains(&format!("would leave asset #{asset} as it is")),
        "{errors:?}"
    ));

    // Decommission removes the cluster through the driver and retires the asset.
    let watched = assets::detail(state, &alice, asset).await?.monitoring;
    assert!(!watched.is_empty(), "an active database is monitored");
    let retire = act(app, &alice, asset, "decommission", json!({})).await?;
    assert_eq!(
        head_file(app, cluster)?,
        None,
        "the cluster file is removed"
    );
    assert_eq!(
        head_file(app, "prod/payments/postgres-database/ledger/restore.yaml")?,
        None,
        "the cluster restored beside it goes too"
    );
    assert!(
        head_file(app, backup_path)?.is_some(),
        "backups outlive the cluster"
    );
    let retired = assets::detail(state, &alice, asset).await?;
    assert_eq!(retired.summary.state, "retired");
    assert!(retired.actions.is_empty(), "a retired asset offers nothing");
    assert!(
        retired.monitoring.is_empty(),
        "a retired asset is not monitored"
    );
    let history: Vec<String> = retired.history.iter().map(|e| e.action.clone()).collect();
    assert_eq!(history.first().map(String::as_str), Some("asset.created"));
    for event in ["asset.action_requested", "asset.updated", "asset.retired"] {
        assert!(history.iter().any(|h| h == event), "{history:?}");
    }
    let checks = detail::request_detail(
        state,
        &alice,
        retire,
        slipway_server::services::detail::ReviewerRead::Counts,
    )
    .await?
    .checks;
    assert!(
        !checks.is_empty() && checks.iter().all(|c| c.passed),
        "{checks:?}"
    );

    // A retired asset takes no more actions, and the refusal changes nothing.
    let before = app.snapshot().await?;
    match actions::submit(
        state,
        &alice,
        asset,
        "scale",
        &action_draft(json!({"size": "large", "storage_gb": 40})),
    )
    .await
    {
        Err(ServiceError::Conflict(message)) => {
            assert!(message.contains("retired"), "{message}")
        }
        other => panic!("a retired asset must refuse, got {other:?}"),
    }
    assert_eq!(app.snapshot().await?, before);
    // Another team's retired asset is refused as another team's.
    let outsider = stranger(app).await?;
    refused!(app, actions::submit(state, &outsider, asset, "scale", &action_draft(json!({"size": "large", "storage_gb": 40}))),
        ServiceError::Forbidden(message) => assert!(message.contains("not a member of team payments"), "{message}"));
    Ok(())
}

async fn namespace_actions_and_refusals(app: &TestApp) -> TestResult {
    let state = &app.state;
    let (alice, bob) = (app.user("alice").await?, app.user("bob").await?);
    let dev = asset_of(app, app.namespace(&alice, "dev", "web").await?).await?;
    let quota = "dev/payments/k8s-namespace/web/resourcequota.yaml";

    // In dev the type's policy approves an action as it approves a new namespace.
    act(
        app,
        &alice,
        dev,
        "resize",
        json!({"cpu_limit": 6, "memory_limit_gi": 12}),
    )
    .await?;
    let params = asset_params(app, dev).await?;
    assert_eq!(
        (&params["cpu_limit"], &params["memory_limit_gi"]),
        (&json!(6), &json!(12))
    );
    assert!(head_file(app, quota)?.is_some_and(|q| q.contains("limits.cpu: \"6\"")));
    // Asked again for what it has, it is refused: a request that changes no file
    // would be reviewed and run for nothing, and hold the asset meanwhile; so is
    // the template upgrade of an asset on the current templates.
    let same = action_draft(json!({"cpu_limit": 6, "memory_limit_gi": 12}));
    refused!(app, actions::submit(state, &alice, dev, "resize", &same),
    ServiceError::Invalid(errors) => assert!(
        errors[0].message.contains(&format!("would leave asset #{dev} as it is")),
        "{errors:?}"
    ));
    refused!(app, actions::submit(state, &alice, dev, "upgrade-templates", &action_draft(json!({}))),
    ServiceError::Invalid(errors) => assert!(
        errors[0].message.contains("rendered by the current templates of k8s-namespace already"),
        "{errors:?}"
    ));
    act(
        app,
        &alice,
        dev,
        "set-admins",
        json!({"admins": ["alice", "dora"]}),
    )
    .await?;
    assert_eq!(
        asset_params(app, dev).await?["admins"],
        json!(["alice", "dora"])
    );

    let scale = |params: Value| action_draft(params);
    // Another team's asset: bob asks for requests, but not for team payments.
    refused!(app, actions::submit(state, &bob, dev, "resize", &scale(json!({"cpu_limit": 2, "memory_limit_gi": 2}))),
        ServiceError::Forbidden(message) => assert!(message.contains("not a member of team payments"), "{message}"));
    assert!(
        assets::detail(state, &bob, dev).await?.actions.is_empty(),
        "another team is offered nothing"
    );
    // An action the type does not declare.
    refused!(app, actions::submit(state, &alice, dev, "explode", &scale(json!({}))),
        ServiceError::NotFound(message) => assert!(message.contains("resize, set-admins, decommission"), "{message}"));
    // An asset that does not exist.
    refused!(app, actions::submit(state, &alice, AssetId(9999), "resize", &scale(json!({}))),
        ServiceError::NotFound(_) => ());
    // A value the action's schema refuses, named with its field and rule.
    refused!(app, actions::submit(state, &alice, dev, "resize", &scale(json!({"cpu_limit": 0, "memory_limit_gi": 2}))),
    ServiceError::PrecheckFailed(report) => {
        let error = report.field_errors.iter().find(|e| e.field == "cpu_limit").ok_or("cpu_limit named")?;
        assert_eq!(error.message, "must be at least 1");
    });
    // A parameter of the type that the action does not take.
    refused!(app, actions::submit(state, &alice, dev, "resize", &scale(json!({"cpu_limit": 2, "memory_limit_gi": 2, "team": "search"}))),
    ServiceError::Invalid(errors) => {
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].field, "team");
        assert!(errors[0].message.contains("not a parameter of the action resize"), "{errors:?}");
    });

    // One action at a time on an asset: a prod one waits for its review.
    let prod = asset_of(app, app.namespace(&alice, "prod", "api").await?).await?;
    let waiting = actions::submit(
        state,
        &alice,
        prod,
        "resize",
        &scale(json!({"cpu_limit": 3, "memory_limit_gi": 4})),
    )
    .await?;
    assert_eq!(app.request_state(waiting).await?, RequestState::InReview);
    refused!(app, actions::submit(state, &alice, prod, "resize", &scale(json!({"cpu_limit": 5, "memory_limit_gi": 4}))),
        ServiceError::PrecheckFailed(report) => assert!(
            report.field_errors.iter().any(|e| e.message.contains(&format!("request #{waiting} in flight"))),
            "{report:?}"));
    // A requester and reviewer of another team learns nothing of the request,
    // not even that it exists: it answers as a missing one.
    let zed = stranger(app).await?;
    for decision in [ReviewDecision::Approve, ReviewDecision::Reject] {
        refused!(app, reviews::decide(state, &zed, waiting, 1, decision, "no"),
            ServiceError::NotFound(message) => assert_eq!(message, format!("request #{waiting}")));
        refused!(app, reviews::may_decide(state, &zed, waiting, decision),
            ServiceError::NotFound(message) => assert_eq!(message, format!("request #{waiting}")));
    }
    // Changes requested: the revision gives the action's parameters again.
    reviews::decide(
        state,
        &bob,
        waiting,
        1,
        ReviewDecision::RequestChanges,
        "4 cores",
    )
    .await?;
    refused!(app, requests::resubmit(state, &zed, waiting, &json!({"zz": 1})),
        ServiceError::NotFound(message) => assert_eq!(message, format!("request #{waiting}")));
    // Revised back to what the asset has, it would change nothing: refused.
    let has = asset_params(app, prod).await?;
    let same = json!({"cpu_limit": has["cpu_limit"], "memory_limit_gi": has["memory_limit_gi"]});
    refused!(app, requests::resubmit(state, &alice, waiting, &same),
    ServiceError::Invalid(errors) => assert!(
        errors[0].message.contains(&format!("would leave asset #{prod} as it is")),
        "{errors:?}"
    ));
    requests::resubmit(
        state,
        &alice,
        waiting,
        &json!({"cpu_limit": 4, "memory_limit_gi": 4}),
    )
    .await?;
    reviews::decide(state, &bob, waiting, 2, ReviewDecision::Approve, "").await?;
    app.run_jobs().await?;
    assert_eq!(app.request_state(waiting).await?, RequestState::Completed);
    assert_eq!(asset_params(app, prod).await?["cpu_limit"], json!(4));

    // A namespace a database still lives in is not retired under it.
    let db = requests::submit(
        state,
        &alice,
        &common::draft("postgres-database", postgres_params("cache", "dev", 10)),
    )
    .await?;
    // Nor while a request that requires it waits in review: it would run
    // against a namespace gone, and its database keep no relation.
    refused!(app, actions::submit(state, &alice, dev, "decommission", &scale(json!({}))),
        ServiceError::PrecheckFailed(report) => assert!(
            report.field_errors.iter().any(|e| e.message.contains(&format!("required by request #{db} in flight"))),
            "{report:?}"));
    reviews::decide(state, &bob, db, 1, ReviewDecision::Approve, "").await?;
    app.run_jobs().await?;
    refused!(app, actions::submit(state, &alice, dev, "decommission", &scale(json!({}))),
        ServiceError::PrecheckFailed(report) => assert!(
            report.field_errors.iter().any(|e| e.message.contains("still required by payments-cache-dev")),
            "{report:?}"));
    let db_asset = asset_of(app, db).await?;
    act(app, &alice, db_asset, "decommission", json!({})).await?;
    act(app, &alice, dev, "decommission", json!({})).await?;
    assert_eq!(head_file(app, quota)?, None);
    refused!(app, actions::submit(state, &alice, dev, "resize", &scale(json!({"cpu_limit": 2, "memory_limit_gi": 2}))),
        ServiceError::Conflict(message) => assert!(message.contains("retired"), "{message}"));
    // The retired asset keeps its name: its history names it.
    let again = common::draft(
        "k8s-namespace",
        common::namespace_params("web", "payments", "dev", 2),
    );
    refused!(app, requests::submit(state, &alice, &again),
        ServiceError::PrecheckFailed(report) => assert!(
            report.field_errors.iter().any(|e| e.message.contains("retired")),
            "{report:?}"));
    Ok(())
}

/// zed: a requester and reviewer of team search, signed in.
async fn stranger(app: &TestApp) -> TestResult<Caller> {
    let hash = slipway_server::services::auth::hash_password("zed-demo-pw")?;
    let mut conn = app.state.db.pool.acquire().await?;
    storage::users::insert(
        &mut conn,
        &storage::users::NewUser {
            username: "zed",
            display_name: "Zed",
            password_hash: Some(&hash),
            roles: &[Role::Requester, Role::Reviewer],
            teams: &["search".to_string()],
        },
    )
    .await?;
    drop(conn);
    app.user("zed").await
}

/// A namespace of team payments with `cpu` (any JSON number), approved and made.
async fn namespace_with_cpu(
    app: &TestApp,
    environment: &str,
    name: &str,
    cpu: Value,
) -> TestResult<AssetId> {
    let alice = app.user("alice").await?;
    let mut params = common::namespace_params(name, "payments", environment, 1);
    params["cpu_limit"] = cpu;
    let id = requests::submit(&app.state, &alice, &common::draft("k8s-namespace", params)).await?;
    if app.request_state(id).await? == RequestState::InReview {
        let bob = app.user("bob").await?;
        reviews::decide(&app.state, &bob, id, 1, ReviewDecision::Approve, "").await?;
    }
    app.run_jobs().await?;
    asset_of(app, id).await
}

/// A decommission in flight (asked for, in review) makes its asset one nothing
/// new may require: the check that refuses to retire an asset still required
/// ran when the decommission was asked for, and must not be outrun.
async fn nothing_new_may_depend_on_an_asset_being_retired(app: &TestApp) -> TestResult {
    let state = &app.state;
    let alice = app.user("alice").await?;
    let namespace = namespace_with_cpu(app, "staging", "apps", json!(1)).await?;
    let database = postgres_params("orders", "staging", 20);
    let before = requests::precheck(state, &alice, "postgres-database", &database, None).await?;
    assert!(before.dependencies.iter().all(|d| d.ok), "{before:?}");
    let retire = actions::submit(
        state,
        &alice,
        namespace,
        "decommission",
        &action_draft(json!({})),
    )
    .await?;
    assert_eq!(app.request_state(retire).await?, RequestState::InReview);
    let after = requests::precheck(state, &alice, "postgres-database", &database, None).await?;
    let leaving = format!(
        "payments-apps-staging is being retired by request #{}",
        retire.0
    );
    assert!(
        after
            .dependencies
            .iter()
            .any(|d| !d.ok && d.description.ends_with(&leaving)),
        "{after:?}"
    );
    refused!(app, requests::submit(state, &alice, &common::draft("postgres-database", database.clone())),
        ServiceError::PrecheckFailed(_) => {});
    // Once the decommission is turned down, the namespace may be required again.
    let bob = app.user("bob").await?;
    reviews::decide(
        state,
        &bob,
        retire,
        1,
        ReviewDecision::Reject,
        "still needed",
    )
    .await?;
    let again = requests::precheck(state, &alice, "postgres-database", &database, None).await?;
    assert!(again.dependencies.iter().all(|d| d.ok), "{again:?}");
    Ok(())
}

/// The namespace type's quota counters as stored, in order.
async fn counters(state: &AppState) -> TestResult<Vec<(String, String, i64, i64)>> {
    Ok(sqlx::query_as(
        "SELECT rule, scope, holders, total FROM quota_usage \
         WHERE type_name = 'k8s-namespace' ORDER BY rule, scope",
    )
    .fetch_all(&state.db.pool)
    .await?)
}

/// The counters as the services keep them are what a recount from the rows makes.
async fn assert_counters_match_a_recount(state: &AppState) -> TestResult {
    let kept = counters(state).await?;
    let mut tx = state.db.write().await?;
    storage::quota::recount(
        &mut tx,
        state.db.engine,
        &state.catalog.catalog,
        storage::quota::Recount::All,
    )
    .await?;
    tx.commit().await?;
    assert_eq!(
        counters(state).await?,
        kept,
        "the kept counters against a recount"
    );
    Ok(())
}

fn resize(cpu: i64) -> Value {
    json!({"cpu_limit": cpu, "memory_limit_gi": 4})
}

fn failing_quota(report: &slipway_core::precheck::PrecheckReport) -> Option<String> {
    report
        .quotas
        .iter()
        .find(|q| !q.ok)
        .map(|q| q.description.clone())
}

/// Team payments may hold 128 cores of namespaces. A resize is held to that as a
/// new namespace is, by what it adds; one in flight holds its increase until it
/// ends; a whole number written as a decimal counts as the number.
async fn actions_are_held_to_their_types_quota(app: &TestApp) -> TestResult {
    let state = &app.state;
    let (alice, bob) = (app.user("alice").await?, app.user("bob").await?);
    // `60.0` is the integer 60 to the schema: stored as 60 and counted (it was
    // once stored as written and skipped by the sum).
    let alpha = namespace_with_cpu(app, "dev", "alpha", json!(60.0)).await?;
    assert_eq!(asset_params(app, alpha).await?["cpu_limit"], json!(60));
    assert!(asset_params(app, alpha).await?["cpu_limit"].is_i64());
    let beta = namespace_with_cpu(app, "dev", "beta", json!(6.0e1)).await?;
    let gamma = namespace_with_cpu(app, "prod", "gamma", json!(2)).await?;
    let new_one = |cpu: i64| common::namespace_params("delta", "payments", "dev", cpu);
    let report = requests::precheck(state, &alice, "k8s-namespace", &new_one(7), None).await?;
    assert!(
        failing_quota(&report).is_some_and(|q| q.contains("122 of 128")),
        "{report:?}"
    );

    // A prod resize waits for review and holds its four more cores meanwhile.
    let waiting = actions::submit(state, &alice, gamma, "resize", &action_draft(resize(6))).await?;
    assert_eq!(app.request_state(waiting).await?, RequestState::InReview);
    assert_counters_match_a_recount(&app.state).await?;
    let report = actions::precheck(state, &alice, alpha, "resize", &resize(63), None).await?;
    assert!(
        failing_quota(&report).is_some_and(|q| q.contains("66 of 128") && q.contains("129")),
        "besides alpha itself: 60 + 2 + 4 held; {report:?}"
    );
    refused!(app, actions::submit(state, &alice, alpha, "resize", &action_draft(resize(63))),
        ServiceError::PrecheckFailed(report) => assert!(failing_quota(&report).is_some(), "{report:?}"));
    let report = actions::precheck(state, &alice, alpha, "resize", &resize(62), None).await?;
    assert_eq!(failing_quota(&report), None, "{report:?}");

    // Revising the waiting resize: it does not count against itself, and its
    // new revision holds only its own increase.
    reviews::decide(
        state,
        &bob,
        waiting,
        1,
        ReviewDecision::RequestChanges,
        "less",
    )
    .await?;
    let own = actions::precheck(state, &alice, gamma, "resize", &resize(8), Some(waiting)).await?;
    assert_eq!(
        failing_quota(&own),
        None,
        "120 besides gamma and its request; {own:?}"
    );
    requests::resubmit(state, &alice, waiting, &resize(3)).await?;
    assert_counters_match_a_recount(&app.state).await?;
    let report = actions::precheck(state, &alice, alpha, "resize", &resize(64), None).await?;
    assert_eq!(
        failing_quota(&report),
        None,
        "60 + 2 + 1 held + 64; {report:?}"
    );

    // Rejected, it holds nothing; a shrink frees its cores once done.
    reviews::decide(state, &bob, waiting, 2, ReviewDecision::Reject, "not now").await?;
    act(app, &alice, beta, "resize", resize(10)).await?;
    assert_counters_match_a_recount(&app.state).await?;
    let report = requests::precheck(state, &alice, "k8s-namespace", &new_one(56), None).await?;
    assert_eq!(
        failing_quota(&report),
        None,
        "60 + 10 + 2 + 56 = 128; {report:?}"
    );

    // Another team's usage is not shown to alice, only the team rule.
    let search = common::namespace_params("delta", "search", "dev", 1);
    let report = requests::precheck(state, &alice, "k8s-namespace", &search, None).await?;
    assert!(report.quotas.is_empty(), "{report:?}");
    assert!(
        report.field_errors.iter().any(|e| e.field == "team"),
        "{report:?}"
    );
    // Nor which of their names a request in flight holds.
    let bob = app.user("bob").await?;
    let ops = common::namespace_params("ops", "platform", "prod", 1);
    requests::submit(state, &bob, &common::draft("k8s-namespace", ops.clone())).await?;
    let report = requests::precheck(state, &alice, "k8s-namespace", &ops, None).await?;
    assert!(
        report
            .field_errors
            .iter()
            .all(|e| !e.message.contains("taken")),
        "{report:?}"
    );
    let own = requests::precheck(state, &bob, "k8s-namespace", &ops, None).await?;
    assert!(
        own.field_errors
            .iter()
            .any(|e| e.message.contains("already taken by request #")),
        "the team's own people are told: {own:?}"
    );

    // Three namespaces fill payments' dev; a pre-check that names a request of
    // another type as the one revised does not take it out of the count.
    namespace_with_cpu(app, "dev", "epsilon", json!(1)).await?;
    let database = common::postgres_params("ledger", "dev", 20);
    let other_type =
        requests::submit(state, &alice, &common::draft("postgres-database", database)).await?;
    let fourth = new_one(1);
    for revised in [None, Some(other_type)] {
        let report = requests::precheck(state, &alice, "k8s-namespace", &fourth, revised).await?;
        assert!(
            failing_quota(&report).is_some_and(|q| q.contains("3 of 3")),
            "{revised:?}: {report:?}"
        );
    }
    Ok(())
}

/// A request for an action the catalog then drops lets go of what it held when
/// it ends: the next start recounts the type, as the actions whose requests hold
/// quota are part of how it was counted (before, the cancel found no action to
/// let go of and the counters kept the increase for good).
#[tokio::test]
async fn a_dropped_action_holds_no_quota() -> TestResult {
    let dir = tempfile::tempdir()?;
    common::copy_dir(&common::shipped_catalog(), dir.path())?;
    let catalog = dir.path().to_path_buf();
    let engine = storage::Engine::Sqlite;
    let Some(app) = TestApp::start_with_catalog(engine, Some(dir)).await? else {
        return Ok(());
    };
    let alice = app.user("alice").await?;
    let asset = asset_of(&app, app.namespace(&alice, "prod", "web").await?).await?;
    let draft = action_draft(resize(40));
    let id = actions::submit(&app.state, &alice, asset, "resize", &draft).await?;
    assert_counters_match_a_recount(&app.state).await?;
    let held = counters(&app.state).await?;
    let file = catalog.join("types/k8s-namespace.yaml");
    let text = std::fs::read_to_string(&file)?;
    let start = text.find("  - name: resize").ok_or("the resize action")?;
    let end = text.find("  - name: set-admins").ok_or("the next action")?;
    std::fs::write(&file, format!("{}{}", &text[..start], &text[end..]))?;
    let state = app.restart().await?;
    assert!(
        state
            .catalog
            .resource_type("k8s-namespace")
            .is_some_and(|t| t.action("resize").is_none())
    );
    assert_ne!(
        counters(&state).await?,
        held,
        "the start let go of the increase"
    );
    requests::cancel(&state, &alice, id).await?;
    assert_counters_match_a_recount(&state).await?;
    Ok(())
}

/// The catalog's rules change under assets made before: a shorter name limit
/// and a requirement the database's namespace no longer meets. The assets still
/// take their actions under the names they have, and a database whose required
/// namespace is gone is still retired (before, the first failed with an internal
/// error and the second was refused for ever).
#[tokio::test]
async fn assets_keep_their_actions_when_the_types_rules_change() -> TestResult {
    let dir = tempfile::tempdir()?;
    common::copy_dir(&common::shipped_catalog(), dir.path())?;
    let catalog = dir.path().to_path_buf();
    let Some(app) = TestApp::start_with_catalog(storage::Engine::Sqlite, Some(dir)).await? else {
        return Ok(());
    };
    let (alice, bob) = (app.user("alice").await?, app.user("bob").await?);
    let namespace = asset_of(&app, app.namespace(&alice, "dev", "webshop").await?).await?;
    let db = requests::submit(
        &app.state,
        &alice,
        &common::draft("postgres-database", postgres_params("cache", "dev", 10)),
    )
    .await?;
    reviews::decide(&app.state, &bob, db, 1, ReviewDecision::Approve, "").await?;
    app.run_jobs().await?;
    let database = asset_of(&app, db).await?;
    let edit = |file: &str, from: &str, to: &str| -> TestResult {
        let path = catalog.join("types").join(file);
        let text = std::fs::read_to_string(&path)?;
        assert!(text.contains(from), "{file} holds {from}");
        std::fs::write(&path, text.replacen(from, to, 1))?;
        Ok(())
    };
    // payments-webshop-dev is 19 characters.
    edit("k8s-namespace.yaml", "max_length: 63", "max_length: 12")?;
    edit(
        "postgres-database.yaml",
        "environment: \"{{ environment }}\"\n    description",
        "environment: \"{{ environment }}-eu\"\n    description",
    )?;
    let state = app.restart().await?;
    let resize = json!({"cpu_limit": 3, "memory_limit_gi": 3});
    let id = actions::submit(&state, &alice, namespace, "resize", &action_draft(resize)).await?;
    common::run_jobs_on(&state).await?;
    assert_eq!(app.request(id).await?.resource_name, "payments-webshop-dev");
    assert_eq!(app.request_state(id).await?, RequestState::Completed);
    let retire = action_draft(json!({}));
    let id = actions::submit(&state, &alice, database, "decommission", &retire).await?;
    if app.request_state(id).await? == RequestState::InReview {
        reviews::decide(&state, &bob, id, 1, ReviewDecision::Approve, "").await?;
    }
    common::run_jobs_on(&state).await?;
    let row = app.request(id).await?;
    assert_eq!(row.state, RequestState::Completed, "{:?}", row.last_error);
    // A new namespace is held to the new limit.
    refused!(app, requests::submit(&state, &alice, &common::draft("k8s-namespace", common::namespace_params("shop", "payments", "dev", 1))),
        ServiceError::PrecheckFailed(report) => assert!(
            report.field_errors.iter().any(|e| e.field == "name"), "{report:?}"));
    Ok(())
}
