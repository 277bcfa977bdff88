//! A GitOps file belongs to one asset: a request that would write over another
//! asset's file is refused, and a retirement removes only its own files.

// Each test binary uses a part of the shared harness.
#[allow(dead_code, unused_macros)]
mod common;

use common::{TestApp, TestResult, draft};
use serde_json::json;
use slipway_core::ids::RequestId;
use slipway_core::state::RequestState;
use slipway_core::views::ActionDraft;
use slipway_server::services::{ServiceError, actions, requests};
use slipway_server::storage::{Engine, path_claims};

/// A quota override written where a namespace keeps its own resource quota:
/// its path does not follow its own name, so it can meet another asset's file.
const OVERRIDE_TYPE: &str = r#"name: quota-override
title: Quota override
description: Replaces a namespace's resource quota.
owner: platform
parameters:
  type: object
  additionalProperties: false
  required: [name, team, environment, namespace]
  properties:
    name: { type: string, title: Name, pattern: "^[a-z][a-z0-9-]{1,30}$" }
    team: { type: string, title: Team, x-dictionary: teams }
    environment: { type: string, title: Environment, x-dictionary: environments }
    namespace: { type: string, title: Namespace, pattern: "^[a-zA-Z][a-zA-Z0-9-]{1,30}$" }
naming:
  template: "{{ team }}-{{ name }}-{{ environment }}-override"
review:
  approvers: { role: reviewer }
  auto_approve: { when: "true" }
outputs:
  - name: quota
    path: "{{ environment }}/{{ team }}/k8s-namespace/{{ namespace }}/resourcequota.yaml"
    template: quota-override/quota.yaml.j2
  - name: record
    path: "{{ environment }}/{{ team }}/overrides/{{ name }}.yaml"
    template: quota-override/quota.yaml.j2
actions:
  - name: decommission
    title: Decommission
    description: Remove the override.
    retires: true
"#;

async fn start(engine: Engine) -> TestResult<Option<TestApp>> {
    let dir = tempfile::tempdir()?;
    common::copy_dir(&common::shipped_catalog(), dir.path())?;
    std::fs::write(dir.path().join("types/quota-override.yaml"), OVERRIDE_TYPE)?;
    std::fs::create_dir_all(dir.path().join("templates/quota-override"))?;
    std::fs::write(
        dir.path().join("templates/quota-override/quota.yaml.j2"),
        "override: {{ resource_name }}\n",
    )?;
    TestApp::start_with_catalog(engine, Some(dir)).await
}

fn override_params(name: &str, namespace: &str) -> serde_json::Value {
    json!({"name": name, "team": "payments", "environment": "dev", "namespace": namespace})
}

async fn another_assets_file_is_never_written_over_nor_removed(app: &TestApp) -> TestResult {
    let state = &app.state;
    let alice = app.user("alice").await?;
    app.namespace(&alice, "dev", "alpha").await?;
    let quota = "dev/payments/k8s-namespace/alpha/resourcequota.yaml";
    let namespace_quota = state.drivers.gitops.read_head_file(quota)?;
    assert!(namespace_quota.is_some());

    // A request that would write over alpha's quota is refused, naming alpha.
    let refused = requests::submit(
        state,
        &alice,
        &draft("quota-override", override_params("one", "alpha")),
    )
    .await;
    match refused {
        Err(ServiceError::Invalid(errors)) => {
            let text = format!("{errors:?}");
            assert!(text.contains(quota), "{text}");
            assert!(text.contains("k8s-namespace payments-alpha-dev"), "{text}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Spelled in other letters, it is the same file on a checkout that ignores case.
    let upper = requests::submit(
        state,
        &alice,
        &draft("quota-override", override_params("two", "ALPHA")),
    )
    .await;
    assert!(matches!(upper, Err(ServiceError::Invalid(_))), "{upper:?}");
    assert_eq!(state.drivers.gitops.read_head_file(quota)?, namespace_quota);

    // Two requests in flight at once both pass their pre-checks: the one
    // that starts second finds the file taken and fails before writing.
    let beta_quota = "dev/payments/k8s-namespace/beta/resourcequota.yaml";
    let override_id = requests::submit(
        state,
        &alice,
        &draft("quota-override", override_params("three", "beta")),
    )
    .await?;
    let namespace_id = requests::submit(
        state,
        &alice,
        &draft(
            "k8s-namespace",
            common::namespace_params("beta", "payments", "dev", 2),
        ),
    )
    .await?;
    approve_if_in_review(app, namespace_id).await?;
    let commits = app.gitops_commits()?;
    app.run_jobs().await?;
    assert_eq!(
        app.request_state(override_id).await?,
        RequestState::Completed
    );
    let late = app.request(namespace_id).await?;
    assert_eq!(late.state, RequestState::Failed);
    let reason = late.last_error.unwrap_or_default();
    assert!(
        reason.contains(&format!("the change writes {beta_quota}, which asset #"))
            && reason.contains("deployed after this request was checked"),
        "{reason}"
    );
    assert_eq!(
        app.gitops_commits()?,
        commits + 1,
        "only the override's commit"
    );

    // A file held by two assets (recorded before files had one owner) stays
    // when either retires.
    let alpha = slipway_server::storage::assets::active_named(
        &mut *state.db.pool.acquire().await?,
        "k8s-namespace",
        "payments-alpha-dev",
    )
    .await?
    .ok_or("alpha is active")?;
    app.exec(&format!(
        "INSERT INTO deployed_files (path_key, asset_id, path) VALUES ('{beta_quota}', {}, '{beta_quota}')",
        alpha.0
    ))
    .await?;
    let retirement = retire(app, override_id).await?;
    let change = app.request(retirement).await?;
    let removed = slipway_server::storage::requests::revision(
        &mut *state.db.pool.acquire().await?,
        change.id,
        change.current_revision,
    )
    .await?
    .map(|r| r.change_set.removed)
    .unwrap_or_default();
    assert_eq!(removed, ["dev/payments/overrides/three.yaml"]);
    assert!(
        state.drivers.gitops.read_head_file(beta_quota)?.is_some(),
        "the namespace's quota stays"
    );
    assert_eq!(
        state
            .drivers
            .gitops
            .read_head_file("dev/payments/overrides/three.yaml")?,
        None
    );
    // Retired, an override holds nothing: its file can be written again.
    let four = requests::submit(
        state,
        &alice,
        &draft("quota-override", override_params("four", "delta")),
    )
    .await?;
    app.run_jobs().await?;
    let five = || draft("quota-override", override_params("five", "delta"));
    let held = requests::submit(state, &alice, &five()).await;
    assert!(matches!(held, Err(ServiceError::Invalid(_))), "{held:?}");
    retire(app, four).await?;
    let freed = requests::submit(state, &alice, &five()).await;
    assert!(freed.is_ok(), "{freed:?}");
    Ok(())
}

/// Two requests for one file whose executions overlap: each claims the file
/// as its execution starts, and the second waits for the first's claim and
/// finds it, instead of both passing their checks before either recorded its
/// asset.
async fn overlapping_executions_claim_a_file_once(app: &TestApp) -> TestResult {
    let state = &app.state;
    app.run_jobs().await?;
    let alice = app.user("alice").await?;
    let quota = "dev/payments/k8s-namespace/gamma/resourcequota.yaml";
    let namespace_id = requests::submit(
        state,
        &alice,
        &draft(
            "k8s-namespace",
            common::namespace_params("gamma", "payments", "dev", 2),
        ),
    )
    .await?;
    approve_if_in_review(app, namespace_id).await?;
    // Spelled in other letters: one file on a checkout that ignores case.
    let override_id = requests::submit(
        state,
        &alice,
        &draft("quota-override", override_params("six", "GAMMA")),
    )
    .await?;

    // The override's execution starts: its claim, in a transaction still open.
    let mut first = state.db.write().await?;
    let upper = "dev/payments/k8s-namespace/GAMMA/resourcequota.yaml";
    assert_eq!(
        path_claims::claim(&mut first, override_id, &[upper]).await?,
        None
    );
    let db = state.db.clone();
    let second = tokio::spawn(async move {
        let mut tx = db.write().await?;
        let claimed = path_claims::claim(&mut tx, namespace_id, &[quota]).await?;
        tx.rollback().await?;
        Ok::<_, slipway_server::storage::StorageError>(claimed)
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !second.is_finished(),
        "the second claim waits for the first"
    );
    first.commit().await?;
    let held = second.await??.ok_or("the second claim finds the first")?;
    assert_eq!(held.request_id, override_id);
    assert_eq!(held.path, upper);

    // The namespace's job comes first: it fails before writing anything,
    // naming the request that deploys the file; the override then lands.
    let commits = app.gitops_commits()?;
    app.run_jobs().await?;
    let late = app.request(namespace_id).await?;
    assert_eq!(late.state, RequestState::Failed);
    let reason = late.last_error.unwrap_or_default();
    assert!(
        reason.contains(&format!(
            "the change writes {upper}, which request #{override_id} (approved) is deploying"
        )),
        "{reason}"
    );
    assert_eq!(
        app.request_state(override_id).await?,
        RequestState::Completed
    );
    assert_eq!(app.gitops_commits()?, commits + 1);
    // Retried, it claims again and is refused again: it never held the file.
    let carol = app.user("carol").await?;
    slipway_server::services::operations::retry(state, &carol, namespace_id).await?;
    app.run_jobs().await?;
    let retried = app.request(namespace_id).await?;
    assert_eq!(retried.state, RequestState::Failed);
    let reason = retried.last_error.unwrap_or_default();
    assert!(
        reason.contains(&format!("the change writes {upper}, which asset #")),
        "{reason}"
    );
    assert_eq!(app.gitops_commits()?, commits + 1);

    // Once the override is retired, its completed request's claim binds no
    // more: the next claimer takes it over.
    retire(app, override_id).await?;
    let mut tx = state.db.write().await?;
    assert_eq!(
        path_claims::claim(&mut tx, namespace_id, &[quota]).await?,
        None
    );
    tx.commit().await?;
    let holder: i64 = sqlx::query_scalar("SELECT request_id FROM path_claims WHERE path_key = $1")
        .bind(quota)
        .fetch_one(&state.db.pool)
        .await?;
    assert_eq!(holder, namespace_id.0);
    Ok(())
}

/// An asset recorded before files had one owner held none: the upkeep at
/// start records them from the change set that last rendered it.
async fn older_assets_hold_their_files_once_recovered(app: &TestApp) -> TestResult {
    let state = &app.state;
    let alice = app.user("alice").await?;
    app.namespace(&alice, "staging", "epsilon").await?;
    let asset = slipway_server::storage::assets::active_named(
        &mut *state.db.pool.acquire().await?,
        "k8s-namespace",
        "payments-epsilon-staging",
    )
    .await?
    .ok_or("epsilon is active")?;
    let held = |id: i64| format!("SELECT COUNT(*) FROM deployed_files WHERE asset_id = {id}");
    let before: i64 = sqlx::query_scalar(&held(asset.0))
        .fetch_one(&state.db.pool)
        .await?;
    assert_eq!(before, 3, "a namespace deploys three files");
    // As recorded before session 27's migration.
    app.exec(&format!(
        "UPDATE assets SET deployed_paths = NULL WHERE id = {}",
        asset.0
    ))
    .await?;
    app.exec(&format!(
        "DELETE FROM deployed_files WHERE asset_id = {}",
        asset.0
    ))
    .await?;
    let recovered = slipway_server::services::deployed_paths::recover_unrecorded(state).await?;
    assert_eq!(recovered, 1);
    let after: i64 = sqlx::query_scalar(&held(asset.0))
        .fetch_one(&state.db.pool)
        .await?;
    assert_eq!(after, 3);
    let refused = requests::submit(
        state,
        &alice,
        &draft(
            "quota-override",
            json!({"name": "eight", "team": "payments", "environment": "staging", "namespace": "epsilon"}),
        ),
    )
    .await;
    assert!(
        matches!(refused, Err(ServiceError::Invalid(_))),
        "{refused:?}"
    );
    // Once recorded, nothing is left to recover.
    assert_eq!(
        slipway_server::services::deployed_paths::recover_unrecorded(state).await?,
        0
    );

    Ok(())
}

/// A namespace over its team's quota waits for a reviewer: bob approves it.
async fn approve_if_in_review(app: &TestApp, id: RequestId) -> TestResult {
    if app.request_state(id).await? == RequestState::InReview {
        let bob = app.user("bob").await?;
        let approve = slipway_core::views::ReviewDecision::Approve;
        slipway_server::services::reviews::decide(&app.state, &bob, id, 1, approve, "ok").await?;
    }
    Ok(())
}

/// Decommissions the asset a completed request made; the retirement's request.
async fn retire(app: &TestApp, made_by: RequestId) -> TestResult<RequestId> {
    let state = &app.state;
    let alice = app.user("alice").await?;
    let asset =
        slipway_server::storage::assets::by_request(&mut *state.db.pool.acquire().await?, made_by)
            .await?
            .map(|a| a.summary.id)
            .ok_or("the request made an asset")?;
    let draft = ActionDraft {
        params: json!({}),
        submit_key: uuid::Uuid::new_v4().to_string(),
    };
    let id = actions::submit(state, &alice, asset, "decommission", &draft).await?;
    app.run_jobs().await?;
    assert_eq!(app.request_state(id).await?, RequestState::Completed);
    Ok(id)
}

#[tokio::test]
async fn files_belong_to_one_asset_on_sqlite() -> TestResult {
    if let Some(app) = start(Engine::Sqlite).await? {
        another_assets_file_is_never_written_over_nor_removed(&app).await?;
        overlapping_executions_claim_a_file_once(&app).await?;
        older_assets_hold_their_files_once_recovered(&app).await?;
    }
    Ok(())
}

#[tokio::test]
async fn files_belong_to_one_asset_on_postgres() -> TestResult {
    if let Some(app) = start(Engine::Postgres).await? {
        another_assets_file_is_never_written_over_nor_removed(&app).await?;
        overlapping_executions_claim_a_file_once(&app).await?;
        older_assets_hold_their_files_once_recovered(&app).await?;
    }
    Ok(())
}
