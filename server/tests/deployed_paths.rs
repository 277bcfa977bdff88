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
use slipway_server::storage::Engine;

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
    if app.request_state(namespace_id).await? == RequestState::InReview {
        let bob = app.user("bob").await?;
        slipway_server::services::reviews::decide(
            state,
            &bob,
            namespace_id,
            1,
            slipway_core::views::ReviewDecision::Approve,
            "ok",
        )
        .await?;
    }
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
    }
    Ok(())
}

#[tokio::test]
async fn files_belong_to_one_asset_on_postgres() -> TestResult {
    if let Some(app) = start(Engine::Postgres).await? {
        another_assets_file_is_never_written_over_nor_removed(&app).await?;
    }
    Ok(())
}
