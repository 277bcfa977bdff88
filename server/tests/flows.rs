//! End-to-end flows through the service layer and the orchestrator, each run on
//! SQLite and (with `SLIPWAY_TEST_POSTGRES_URL`) on PostgreSQL.

#[allow(dead_code)]
#[macro_use]
mod common;

use common::{TestApp, TestResult, draft, namespace_params, postgres_params, run_jobs_on};
use serde_json::json;
use slipway_core::diff::{FileStatus, LineTag};
use slipway_core::ids::{RequestId, UserId};
use slipway_core::listing::{ListFilter, PageRequest};
use slipway_core::state::RequestState;
use slipway_core::views::{ActionDraft, AuditFilter, ReviewDecision};
use slipway_server::services::{
    ServiceError, actions, assets, audit, catalog, detail, operations, requests, reviews,
};
use slipway_server::storage::audit::ChainStatus;
use slipway_server::storage::{self, Engine};

on_both_engines!(
    whole_chain,
    auto_approve_and_rerun,
    restart_mid_job,
    restart_after_the_commit_landed,
    hash_binding_and_manual_fallback,
    a_request_handled_by_hand_may_close_without_an_asset,
    bad_requests_change_nothing,
    bad_reviews_change_nothing,
    state_machine_through_the_services,
    request_state_is_shown_to_those_who_may_see_the_request,
    concurrent_double_click_lands_once,
    concurrent_submits_respect_the_quota,
    concurrent_submits_of_one_name_land_once,
    constraint_violations_name_what_clashed,
    audit_events_name_their_channel_address_and_trace,
    a_page_another_site_opened_does_not_count_as_read,
    a_request_left_unrevised_is_closed_and_frees_its_name,
    a_revision_made_from_a_stale_form_is_refused,
    pre_checks_keep_to_a_pace_per_person,
);
on_both_engines!(@one extra_type_from_yaml_only, super::start_with_redis_catalog);
on_both_engines!(@one a_request_whose_type_left_the_catalog_is_turned_down_by_an_admin, super::start_with_redis_catalog);
on_both_engines!(@one one_reviewer_approving_twice_at_once_counts_once, super::start_with_two_approvals);

/// Audit actions on one target, oldest first.
async fn audit_actions(app: &TestApp, target: &str) -> TestResult<Vec<String>> {
    let carol = app.user("carol").await?;
    let filter = AuditFilter {
        target: Some(target.into()),
        ..AuditFilter::default()
    };
    let mut entries = audit::list(&app.state, &carol, &filter, storage::Window::first(500))
        .await?
        .items;
    entries.reverse();
    Ok(entries.into_iter().map(|e| e.action).collect())
}

async fn whole_chain(app: &TestApp) -> TestResult {
    let state = &app.state;
    let (alice, bob, carol) = (
        app.user("alice").await?,
        app.user("bob").await?,
        app.user("carol").await?,
    );
    let namespace_request = app.namespace(&alice, "prod", "core").await?;
    let namespace_asset = {
        let mut conn = state.db.pool.acquire().await?;
        storage::assets::by_request(&mut conn, namespace_request)
            .await?
            .ok_or("the namespace has no asset")?
    };

    let id = requests::submit(
        state,
        &alice,
        &draft("postgres-database", postgres_params("ledger", "prod", 20)),
    )
    .await?;
    assert_eq!(app.request_state(id).await?, RequestState::InReview);
    let queue = reviews::queue(state, &bob, &ListFilter::default(), PageRequest::first(100))
        .await?
        .items;
    assert!(
        queue.iter().any(|r| r.id == id),
        "bob's queue lacks #{id}: {queue:?}"
    );
    assert!(matches!(
        reviews::queue(
            state,
            &alice,
            &ListFilter::default(),
            PageRequest::first(100)
        )
        .await,
        Err(ServiceError::Forbidden(_))
    ));

    let first_look = detail::request_detail(
        state,
        &bob,
        id,
        slipway_server::services::detail::ReviewerRead::Counts,
    )
    .await?;
    assert!(first_look.permissions.review);
    assert_eq!(
        first_look.review_diff, None,
        "nothing to compare with on a first look"
    );
    reviews::decide(
        state,
        &bob,
        id,
        1,
        ReviewDecision::RequestChanges,
        "50 GB please, the ledger grows",
    )
    .await?;
    assert_eq!(app.request_state(id).await?, RequestState::ChangesRequested);

    requests::resubmit(state, &alice, id, &postgres_params("ledger", "prod", 50)).await?;
    let row = app.request(id).await?;
    assert_eq!(
        (row.state, row.current_revision),
        (RequestState::InReview, 2)
    );

    let second_look = detail::request_detail(
        state,
        &bob,
        id,
        slipway_server::services::detail::ReviewerRead::Counts,
    )
    .await?;
    let diff = second_look
        .review_diff
        .ok_or("bob should see what changed since revision 1")?;
    assert_eq!((diff.base_revision, diff.revision), (1, 2));
    assert_eq!(diff.params.len(), 1, "{:?}", diff.params);
    assert_eq!(diff.params[0].name, "storage_gb");
    assert_eq!(
        (diff.params[0].before.clone(), diff.params[0].after.clone()),
        (Some(json!(20)), Some(json!(50)))
    );
    let cluster = "prod/payments/postgres-database/ledger/cluster.yaml";
    let file = diff
        .files
        .iter()
        .find(|f| f.path == cluster)
        .ok_or("no diff for the cluster file")?;
    assert_eq!(file.status, FileStatus::Modified);
    assert!(
        file.lines
            .iter()
            .any(|l| l.tag == LineTag::Removed && l.text.contains("size: 20Gi")),
        "{:?}",
        file.lines
    );
    assert!(
        file.lines
            .iter()
            .any(|l| l.tag == LineTag::Added && l.text.contains("size: 50Gi")),
        "{:?}",
        file.lines
    );

    reviews::decide(state, &bob, id, 2, ReviewDecision::Approve, "").await?;
    assert_eq!(app.request_state(id).await?, RequestState::Approved);
    assert_eq!(app.run_jobs().await?, 1);
    let row = app.request(id).await?;
    assert_eq!(row.state, RequestState::Completed);
    let commit = row
        .applied_commit
        .ok_or("a completed request names its commit")?;

    let approved = second_look
        .revisions
        .iter()
        .find(|r| r.revision == 2)
        .ok_or("revision 2")?;
    assert_eq!(
        approved
            .change_set
            .files
            .iter()
            .map(|f| f.path.as_str())
            .collect::<Vec<_>>(),
        [cluster]
    );
    let in_repo = state
        .gitops
        .read_file(&commit, cluster)?
        .ok_or("the cluster file is not in the GitOps repo")?;
    assert_eq!(in_repo, approved.change_set.files[0].content);
    assert!(
        in_repo.contains("name: payments-ledger-prod") && in_repo.contains("size: 50Gi"),
        "{in_repo}"
    );

    let filter = ListFilter {
        type_name: Some("postgres-database".into()),
        ..ListFilter::default()
    };
    let listed = assets::list(state, &alice, &filter, PageRequest::first(100))
        .await?
        .items;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(
        (listed[0].name.as_str(), listed[0].request_id),
        ("payments-ledger-prod", id)
    );
    let asset = assets::detail(state, &alice, listed[0].id).await?;
    assert_eq!(asset.commit_id, commit);
    assert_eq!(asset.params["storage_gb"], json!(50));
    let monitoring: Vec<&str> = asset.monitoring.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        monitoring,
        [
            "payments-ledger-prod availability",
            "payments-ledger-prod dashboard"
        ]
    );
    assert!(
        asset
            .relations
            .iter()
            .any(|r| r.kind == "requires" && r.asset_id == namespace_asset.summary.id),
        "{:?}",
        asset.relations
    );
    assert!(asset.history.iter().any(|e| e.action == "asset.created"));

    assert_eq!(
        audit_actions(app, &format!("request:{id}")).await?,
        [
            "request.submit",
            "request.enter_review",
            "request.request_changes",
            "request.resubmit",
            "request.enter_review",
            "request.approve",
            "request.start_execution",
            "request.execution_succeeded",
            "request.verification_passed",
        ]
    );
    assert_eq!(
        audit_actions(app, &format!("asset:{}", asset.summary.id)).await?,
        ["asset.created"]
    );

    let events = app.count("audit_events").await?;
    slipway_server::audit_chain::seal_pending(&state.db).await?;
    assert_eq!(
        storage::audit::verify_chain(&state.db).await?,
        ChainStatus::Intact { events }
    );
    assert_eq!(
        audit::verify(state, &carol).await?,
        ChainStatus::Intact { events }
    );
    assert!(matches!(
        audit::verify(state, &alice).await,
        Err(ServiceError::Forbidden(_))
    ));

    // The database refuses edits and deletions of audit events…
    assert!(
        app.exec("UPDATE audit_events SET detail = 'x' WHERE seq = 2")
            .await
            .is_err()
    );
    assert!(
        app.exec("DELETE FROM audit_events WHERE seq = 2")
            .await
            .is_err()
    );
    // …and when someone with full access removes that guard, the chain shows it.
    let drop_guard = match app.engine {
        Engine::Sqlite => "DROP TRIGGER audit_events_no_update",
        Engine::Postgres => "DROP TRIGGER audit_events_no_update ON audit_events",
    };
    app.exec(drop_guard).await?;
    assert_eq!(
        app.exec("UPDATE audit_events SET detail = 'x' WHERE seq = 2")
            .await?,
        1
    );
    match storage::audit::verify_chain(&state.db).await? {
        ChainStatus::Broken { seq, .. } => assert_eq!(seq, Some(2)),
        intact => panic!("a tampered row must break the chain, got {intact:?}"),
    }
    Ok(())
}

async fn auto_approve_and_rerun(app: &TestApp) -> TestResult {
    let state = &app.state;
    let alice = app.user("alice").await?;
    let id = requests::submit(
        state,
        &alice,
        &draft(
            "k8s-namespace",
            namespace_params("web", "payments", "dev", 2),
        ),
    )
    .await?;
    assert_eq!(app.request_state(id).await?, RequestState::Approved);
    let seen = detail::request_detail(
        state,
        &alice,
        id,
        slipway_server::services::detail::ReviewerRead::Counts,
    )
    .await?;
    assert_eq!(seen.decisions.len(), 1);
    let decision = &seen.decisions[0];
    assert_eq!(
        (decision.decided_by.as_str(), decision.decision.as_str()),
        ("policy", "auto_approve")
    );
    assert!(
        decision.comment.contains("environment == 'dev'"),
        "{}",
        decision.comment
    );
    assert_eq!(decision.change_set_hash, seen.revisions[0].change_set_hash);
    assert_eq!(seen.job.as_ref().map(|j| j.state.as_str()), Some("queued"));
    let actors: Vec<(String, String)> = seen
        .timeline
        .iter()
        .map(|t| (t.actor.clone(), t.action.clone()))
        .collect();
    assert_eq!(
        actors,
        [
            ("alice".to_string(), "request.submit".to_string()),
            (
                "policy:k8s-namespace.auto_approve".to_string(),
                "request.auto_approve".to_string()
            )
        ]
    );

    assert_eq!(app.gitops_commits()?, 0);
    assert_eq!(app.run_jobs().await?, 1);
    let row = app.request(id).await?;
    assert_eq!(row.state, RequestState::Completed);
    let commit = row.applied_commit.ok_or("applied commit")?;
    assert_eq!(app.gitops_commits()?, 1);
    for file in ["namespace.yaml", "resourcequota.yaml", "rolebinding.yaml"] {
        let path = format!("dev/payments/k8s-namespace/web/{file}");
        assert!(
            state.gitops.read_file(&commit, &path)?.is_some(),
            "{path} missing"
        );
    }

    // The same job again (a duplicate delivery): nothing new happens.
    let mut tx = state.db.write().await?;
    storage::jobs::enqueue(
        &mut tx,
        id,
        requests::APPLY_JOB,
        i64::from(slipway_core::catalog::ExecutionLimits::default().max_attempts),
    )
    .await?;
    tx.commit().await?;
    let before = app.snapshot().await?;
    assert_eq!(app.run_jobs().await?, 1);
    assert_eq!(app.gitops_commits()?, 1);
    assert_eq!(app.request_state(id).await?, RequestState::Completed);
    assert_eq!(
        app.snapshot().await?,
        before,
        "a re-run job must not add rows"
    );
    let mut conn = state.db.pool.acquire().await?;
    let job = storage::jobs::latest_for_request(&mut conn, id)
        .await?
        .ok_or("job")?;
    assert_eq!(job.state, storage::jobs::DONE);
    Ok(())
}

/// A prod namespace bob approved, its job not yet run.
async fn approved_prod_namespace(app: &TestApp, name: &str) -> TestResult<RequestId> {
    let (alice, bob) = (app.user("alice").await?, app.user("bob").await?);
    let id = requests::submit(
        &app.state,
        &alice,
        &draft(
            "k8s-namespace",
            namespace_params(name, "payments", "prod", 2),
        ),
    )
    .await?;
    reviews::decide(&app.state, &bob, id, 1, ReviewDecision::Approve, "fine").await?;
    assert_eq!(app.request_state(id).await?, RequestState::Approved);
    Ok(id)
}

/// The worker "dead" claims the job and moves the request to executing, then dies.
async fn crash_after_claim(app: &TestApp, id: RequestId) -> TestResult<i64> {
    let state = &app.state;
    let mut tx = state.db.write().await?;
    let lease = slipway_server::orchestrator::LEASE.as_millis() as i64;
    let job = storage::jobs::claim(&mut tx, state.db.engine, "dead", lease)
        .await?
        .ok_or("a job to claim")?
        .job;
    assert_eq!(job.request_id, id);
    assert!(
        storage::requests::set_state(
            &mut tx,
            id,
            (RequestState::Approved, RequestState::Executing),
            storage::now_millis()
        )
        .await?
    );
    tx.commit().await?;
    Ok(job.id)
}

/// Builds a new state on the same database and files and frees the dead worker's job
/// the way each engine does: SQLite at start-up, PostgreSQL when the lease runs out.
async fn restart_and_recover(app: &TestApp) -> TestResult<slipway_server::AppState> {
    let restarted = app.restart().await?;
    assert!(
        !slipway_server::orchestrator::run_once(&restarted, "new-worker").await?,
        "a live lease must hold"
    );
    match app.engine {
        Engine::Sqlite => {
            let mut tx = restarted.db.write().await?;
            assert_eq!(storage::jobs::release_stale_leases(&mut tx).await?, 1);
            tx.commit().await?;
        }
        Engine::Postgres => {
            // Stands in for waiting out the lease.
            app.exec(
                "UPDATE jobs SET lease_until = lease_until - 120000, run_after = run_after - 120000 \
                 WHERE state = 'running'",
            )
                .await?;
        }
    }
    Ok(restarted)
}

async fn restart_mid_job(app: &TestApp) -> TestResult {
    let id = approved_prod_namespace(app, "api").await?;
    let job = crash_after_claim(app, id).await?;
    let restarted = restart_and_recover(app).await?;
    assert_eq!(run_jobs_on(&restarted).await?, 1);
    let row = app.request(id).await?;
    assert_eq!(row.state, RequestState::Completed);
    assert_eq!(app.gitops_commits()?, 1, "exactly one commit");
    let mut conn = restarted.db.pool.acquire().await?;
    let latest = storage::jobs::latest_for_request(&mut conn, id)
        .await?
        .ok_or("job")?;
    assert_eq!(
        (latest.id, latest.state.as_str(), latest.attempts),
        (job, storage::jobs::DONE, 2)
    );
    assert_eq!(app.count("assets").await?, 1);
    let actions = audit_actions(app, &format!("request:{id}")).await?;
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "request.execution_succeeded")
            .count(),
        1,
        "{actions:?}"
    );
    assert_eq!(
        actions.last().map(String::as_str),
        Some("request.verification_passed")
    );
    Ok(())
}

async fn restart_after_the_commit_landed(app: &TestApp) -> TestResult {
    let id = approved_prod_namespace(app, "api").await?;
    crash_after_claim(app, id).await?;
    // The dead worker got as far as committing before it died.
    let mut conn = app.state.db.pool.acquire().await?;
    let revision = storage::requests::revisions(&mut conn, id).await?.remove(0);
    drop(conn);
    let landed = app
        .state
        .gitops
        .apply(&revision.change_set.files, "committed by the dead worker")?;
    assert!(landed.created);
    let restarted = restart_and_recover(app).await?;
    assert_eq!(run_jobs_on(&restarted).await?, 1);
    let row = app.request(id).await?;
    assert_eq!(row.state, RequestState::Completed);
    assert_eq!(row.applied_commit.as_deref(), Some(landed.commit.as_str()));
    assert_eq!(app.gitops_commits()?, 1, "the re-run must not commit again");
    Ok(())
}

async fn hash_binding_and_manual_fallback(app: &TestApp) -> TestResult {
    let state = &app.state;
    let id = approved_prod_namespace(app, "api").await?;
    let mut conn = state.db.pool.acquire().await?;
    let mut revision = storage::requests::revisions(&mut conn, id).await?.remove(0);
    drop(conn);
    revision.change_set.files[0]
        .content
        .push_str("# slipped in after the review\n");
    let tampered = serde_json::to_string(&revision.change_set)?;
    let changed = sqlx::query(
        "UPDATE request_revisions SET change_set = $1 WHERE request_id = $2 AND revision = 1",
    )
    .bind(tampered)
    .bind(id.0)
    .execute(&state.db.pool)
    .await?
    .rows_affected();
    assert_eq!(changed, 1);

    assert_eq!(app.run_jobs().await?, 1);
    let row = app.request(id).await?;
    assert_eq!(row.state, RequestState::Failed);
    let error = row.last_error.ok_or("a failed request says why")?;
    assert!(
        error.contains("hash") && error.contains(&revision.change_set_hash),
        "{error}"
    );
    assert_eq!(row.applied_commit, None);
    assert_eq!(
        app.gitops_commits()?,
        0,
        "nothing may reach the GitOps repo"
    );

    let (alice, carol) = (app.user("alice").await?, app.user("carol").await?);
    assert!(matches!(
        operations::take_over(state, &alice, id).await,
        Err(ServiceError::Forbidden(_))
    ));
    operations::take_over(state, &carol, id).await?;
    let row = app.request(id).await?;
    assert_eq!(
        (row.state, row.manual_owner.as_deref()),
        (RequestState::Manual, Some("carol"))
    );
    let before = app.snapshot().await?;
    match operations::resolve(state, &carol, id, "   ").await {
        Err(ServiceError::Invalid(fields)) => assert_eq!(fields[0].field, "note"),
        other => panic!("an empty note must be Invalid, got {other:?}"),
    }
    assert_eq!(app.snapshot().await?, before);
    operations::resolve(
        state,
        &carol,
        id,
        "created the namespace by hand with kubectl",
    )
    .await?;
    assert_eq!(app.request_state(id).await?, RequestState::Completed);
    let actions = audit_actions(app, &format!("request:{id}")).await?;
    assert_eq!(
        actions[actions.len() - 4..],
        [
            "request.start_execution",
            "request.fail",
            "request.take_over",
            "request.resolve_manually"
        ]
    );
    let mut conn = state.db.pool.acquire().await?;
    let asset = storage::assets::by_request(&mut conn, id)
        .await?
        .ok_or("a resolved request records its asset")?;
    assert_eq!(asset.commit_id, "manual");
    Ok(())
}

/// An approved prod namespace whose run fails: its change set was altered after
/// the review, so the worker refuses it (the way a run fails for real).
async fn failed_prod_namespace(app: &TestApp, name: &str) -> TestResult<RequestId> {
    let state = &app.state;
    let id = approved_prod_namespace(app, name).await?;
    let mut conn = state.db.pool.acquire().await?;
    let mut revision = storage::requests::revisions(&mut conn, id).await?.remove(0);
    drop(conn);
    revision.change_set.files[0]
        .content
        .push_str("# changed after the review\n");
    sqlx::query(
        "UPDATE request_revisions SET change_set = $1 WHERE request_id = $2 AND revision = 1",
    )
    .bind(serde_json::to_string(&revision.change_set)?)
    .bind(id.0)
    .execute(&state.db.pool)
    .await?;
    app.run_jobs().await?;
    assert_eq!(app.request_state(id).await?, RequestState::Failed);
    Ok(id)
}

/// A failed request nobody will retry (the resource is not wanted any more, or
/// what its run left was cleaned up by hand) is closed by the person handling
/// it without an asset: it no longer holds its quota and name for ever, and no
/// asset that does not exist enters the CMDB.
async fn a_request_handled_by_hand_may_close_without_an_asset(app: &TestApp) -> TestResult {
    let state = &app.state;
    let id = failed_prod_namespace(app, "ghost").await?;
    let (alice, carol) = (app.user("alice").await?, app.user("carol").await?);
    let note = "nothing was made; the team no longer wants it";
    refused!(app, operations::abandon(state, &carol, id, note), ServiceError::Conflict(_) => {});
    operations::take_over(state, &carol, id).await?;
    refused!(app, operations::abandon(state, &alice, id, note), ServiceError::Forbidden(_) => {});
    refused!(app, operations::abandon(state, &carol, id, " \n "),
        ServiceError::Invalid(fields) => assert_eq!(fields[0].field, "note"));
    operations::abandon(state, &carol, id, note).await?;
    assert_eq!(app.request_state(id).await?, RequestState::Cancelled);
    let mut conn = state.db.pool.acquire().await?;
    assert!(storage::assets::by_request(&mut conn, id).await?.is_none());
    drop(conn);
    let actions = audit_actions(app, &format!("request:{id}")).await?;
    assert_eq!(actions.last().map(String::as_str), Some("request.abandon"));
    // Closed is closed: neither ending again.
    refused!(app, operations::abandon(state, &carol, id, note), ServiceError::Conflict(_) => {});
    refused!(app, operations::resolve(state, &carol, id, note), ServiceError::Conflict(_) => {});
    // Its name is free: the team may ask for it again.
    let again = requests::submit(
        state,
        &alice,
        &draft(
            "k8s-namespace",
            namespace_params("ghost", "payments", "prod", 2),
        ),
    )
    .await?;
    assert_eq!(app.request_state(again).await?, RequestState::InReview);
    Ok(())
}

const REDIS_TYPE: &str = r#"name: redis-cache
title: Redis cache
description: An in-memory cache for one team in one environment.
owner: platform
parameters:
  type: object
  additionalProperties: false
  required: [name, team, environment, memory_mb]
  properties:
    name: { type: string, title: Name, pattern: "^[a-z][a-z0-9-]{1,30}$" }
    team: { type: string, title: Team, x-dictionary: teams }
    environment: { type: string, title: Environment, x-dictionary: environments }
    memory_mb: { type: integer, title: Memory (MB), minimum: 64, maximum: 4096, default: 256 }
naming:
  template: "{{ team }}-{{ name }}-{{ environment }}-redis"
quota:
  - per: [team]
    sum: memory_mb
    max: 8192
review:
  approvers: { role: reviewer }
  required: 1
  auto_approve: { when: "environment == 'dev'" }
outputs:
  - path: "{{ environment }}/{{ team }}/redis-cache/{{ name }}/redis.yaml"
    template: redis-cache/redis.yaml.j2
checks:
  - kind: gitops-file
    path: "{{ environment }}/{{ team }}/redis-cache/{{ name }}/redis.yaml"
monitoring:
  - name: "{{ resource_name }} memory"
    kind: prometheus-rule
    target: 'redis_memory_used_bytes{instance="{{ resource_name }}"} > {{ memory_mb }} * 1048576 * 0.9'
actions:
  - name: resize
    title: Resize
    description: Give the cache more or less memory.
    parameters:
      type: object
      additionalProperties: false
      required: [memory_mb]
      properties:
        memory_mb: { type: integer, title: Memory (MB), minimum: 64, maximum: 2048 }
    review:
      approvers: { role: reviewer }
      auto_approve: { when: "memory_mb <= 1024" }
"#;

const REDIS_TEMPLATE: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ resource_name }}
  namespace: {{ team }}-{{ environment }}
data:
  maxmemory: "{{ memory_mb }}mb"
"#;

async fn start_with_redis_catalog(engine: Engine) -> TestResult<Option<TestApp>> {
    let dir = tempfile::tempdir()?;
    common::copy_dir(&common::shipped_catalog(), dir.path())?;
    std::fs::write(dir.path().join("types/redis-cache.yaml"), REDIS_TYPE)?;
    std::fs::create_dir_all(dir.path().join("templates/redis-cache"))?;
    std::fs::write(
        dir.path().join("templates/redis-cache/redis.yaml.j2"),
        REDIS_TEMPLATE,
    )?;
    TestApp::start_with_catalog(engine, Some(dir)).await
}

/// A request in review whose type then leaves the catalog can no longer be
/// approved, nor reviewed by the type's reviewers, who no longer see it: it
/// shows in an admin's review queue instead, and an admin rejects it (before,
/// it waited in review where nobody looked until its requester cancelled it).
async fn a_request_whose_type_left_the_catalog_is_turned_down_by_an_admin(
    app: &TestApp,
) -> TestResult {
    let (alice, bob) = (app.user("alice").await?, app.user("bob").await?);
    let params =
        json!({"name": "sessions", "team": "payments", "environment": "prod", "memory_mb": 512});
    let id = requests::submit(&app.state, &alice, &draft("redis-cache", params)).await?;
    assert_eq!(app.request_state(id).await?, RequestState::InReview);
    std::fs::remove_file(app.state.settings.catalog.join("types/redis-cache.yaml"))?;
    let state = &app.restart().await?;
    let carol = app.user("carol").await?;
    let queued = |items: Vec<slipway_core::views::RequestSummary>| items.iter().any(|r| r.id == id);
    let first = PageRequest::first(100);
    let for_bob = reviews::queue(state, &bob, &ListFilter::default(), first).await?;
    assert!(!queued(for_bob.items), "no role reviews it any more");
    let for_carol = reviews::queue(state, &carol, &ListFilter::default(), first).await?;
    assert!(queued(for_carol.items), "an admin's queue shows it");

    let gone = "resource type redis-cache is no longer in the catalog";
    for decision in [ReviewDecision::Approve, ReviewDecision::RequestChanges] {
        let refused = reviews::decide(state, &carol, id, 1, decision, "why").await;
        assert!(
            matches!(&refused, Err(ServiceError::Conflict(m)) if m == gone),
            "{refused:?}"
        );
        // Chat asks before it decides, and is told the same.
        let asked = reviews::may_decide(state, &carol, id, decision).await;
        assert!(
            matches!(&asked, Err(ServiceError::Conflict(m)) if m == gone),
            "{asked:?}"
        );
    }
    reviews::may_decide(state, &carol, id, ReviewDecision::Reject).await?;
    let seen = detail::request_detail(state, &carol, id, detail::ReviewerRead::Counts).await?;
    let offered = &seen.permissions;
    assert!(
        offered.review && !offered.approve && !offered.request_changes,
        "{offered:?}"
    );
    // Nothing names bob's role for it any more: to him it is another team's.
    for decision in [ReviewDecision::Approve, ReviewDecision::Reject] {
        let refused = reviews::decide(state, &bob, id, 1, decision, "why").await;
        assert!(
            matches!(&refused, Err(ServiceError::NotFound(_))),
            "{refused:?}"
        );
    }
    assert_eq!(app.request_state(id).await?, RequestState::InReview);
    reviews::decide(
        state,
        &carol,
        id,
        1,
        ReviewDecision::Reject,
        "redis-cache was retired from the catalog",
    )
    .await?;
    assert_eq!(app.request_state(id).await?, RequestState::Rejected);
    Ok(())
}

async fn extra_type_from_yaml_only(app: &TestApp) -> TestResult {
    let state = &app.state;
    let (alice, bob) = (app.user("alice").await?, app.user("bob").await?);
    assert!(
        catalog::list_types(state, &alice)
            .iter()
            .any(|t| t.name == "redis-cache")
    );
    let params = |env: &str| json!({"name": "sessions", "team": "payments", "environment": env, "memory_mb": 512});

    let dev = requests::submit(state, &alice, &draft("redis-cache", params("dev"))).await?;
    assert_eq!(
        app.request_state(dev).await?,
        RequestState::Approved,
        "the type's own policy auto-approves dev"
    );
    let prod = requests::submit(state, &alice, &draft("redis-cache", params("prod"))).await?;
    assert_eq!(app.request_state(prod).await?, RequestState::InReview);
    reviews::decide(state, &bob, prod, 1, ReviewDecision::Approve, "").await?;
    assert_eq!(app.run_jobs().await?, 2);

    for (id, env) in [(dev, "dev"), (prod, "prod")] {
        let row = app.request(id).await?;
        assert_eq!(row.state, RequestState::Completed);
        let commit = row.applied_commit.ok_or("commit")?;
        let path = format!("{env}/payments/redis-cache/sessions/redis.yaml");
        let content = state
            .gitops
            .read_file(&commit, &path)?
            .ok_or("rendered file")?;
        assert!(
            content.contains(&format!("name: payments-sessions-{env}-redis")),
            "{content}"
        );
        assert!(content.contains("maxmemory: \"512mb\""), "{content}");
    }
    let listed = assets::list(
        state,
        &alice,
        &ListFilter {
            type_name: Some("redis-cache".into()),
            ..ListFilter::default()
        },
        PageRequest::first(100),
    )
    .await?
    .items;
    assert_eq!(listed.len(), 2);
    let asset = assets::detail(state, &alice, listed[0].id).await?;
    assert_eq!(asset.monitoring.len(), 1);
    assert!(
        asset.monitoring[0].target.contains("512 * 1048576"),
        "{:?}",
        asset.monitoring
    );

    // An action declared only in the YAML: its own schema and review policy, the
    // type's outputs and checks, and the asset's record updated.
    let cache = listed
        .iter()
        .find(|a| a.name.ends_with("-dev-redis"))
        .ok_or("the dev cache")?
        .id;
    let draft_of = |memory: i64| ActionDraft {
        params: json!({ "memory_mb": memory }),
        submit_key: uuid::Uuid::new_v4().to_string(),
    };
    match actions::submit(state, &alice, cache, "resize", &draft_of(4096)).await {
        Err(ServiceError::PrecheckFailed(report)) => assert!(
            report.field_errors.iter().any(|e| e.field == "memory_mb"),
            "the action's own maximum: {report:?}"
        ),
        other => panic!("expected the action's schema to refuse, got {other:?}"),
    }
    let resize = actions::submit(state, &alice, cache, "resize", &draft_of(1024)).await?;
    assert_eq!(
        app.request_state(resize).await?,
        RequestState::Approved,
        "the action's own policy approves"
    );
    app.run_jobs().await?;
    assert_eq!(app.request_state(resize).await?, RequestState::Completed);
    let resized = assets::detail(state, &alice, cache).await?;
    assert_eq!(resized.params["memory_mb"], json!(1024));
    let file = state
        .gitops
        .read_head_file("dev/payments/redis-cache/sessions/redis.yaml")?
        .ok_or("the cache's file")?;
    assert!(file.contains("maxmemory: \"1024mb\""), "{file}");

    // The type's quota applies too: 8192 MB per team.
    let over = json!({"name": "big", "team": "payments", "environment": "dev", "memory_mb": 4096});
    requests::submit(state, &alice, &draft("redis-cache", over.clone())).await?;
    let over =
        json!({"name": "bigger", "team": "payments", "environment": "dev", "memory_mb": 4096});
    match requests::submit(state, &alice, &draft("redis-cache", over)).await {
        Err(ServiceError::PrecheckFailed(report)) => {
            assert!(report.quotas.iter().any(|q| !q.ok), "{report:?}")
        }
        other => panic!("expected the quota to refuse, got {other:?}"),
    }
    Ok(())
}

async fn bad_requests_change_nothing(app: &TestApp) -> TestResult {
    let state = &app.state;
    let alice = app.user("alice").await?;

    let mut wrong_type = postgres_params("ledger", "dev", 20);
    wrong_type["storage_gb"] = json!("lots");
    refused!(app, requests::submit(state, &alice, &draft("postgres-database", wrong_type)),
        ServiceError::PrecheckFailed(report) => assert!(report.field_errors.iter().any(|e| e.field == "storage_gb"), "{report:?}"));

    refused!(app, requests::submit(state, &alice, &draft("k8s-namespace", namespace_params("Bad_Name", "payments", "dev", 2))),
        ServiceError::PrecheckFailed(report) => assert!(report.field_errors.iter().any(|e| e.field == "name"), "{report:?}"));

    refused!(app, requests::submit(state, &alice, &draft("postgres-database", postgres_params("ledger", "dev", 20))),
    ServiceError::PrecheckFailed(report) => {
        assert_eq!(report.dependencies.len(), 1, "{report:?}");
        assert!(!report.dependencies[0].ok && report.dependencies[0].type_name == "k8s-namespace", "{report:?}");
    });

    refused!(app, requests::submit(state, &alice, &draft("redis-cache", json!({"name": "x"}))),
        ServiceError::NotFound(what) => assert!(what.contains("redis-cache"), "{what}"));

    // Quota: three namespaces per team and environment.
    for name in ["one", "two", "three"] {
        requests::submit(
            state,
            &alice,
            &draft(
                "k8s-namespace",
                namespace_params(name, "payments", "dev", 1),
            ),
        )
        .await?;
    }
    refused!(app, requests::submit(state, &alice, &draft("k8s-namespace", namespace_params("four", "payments", "dev", 1))),
        ServiceError::PrecheckFailed(report) => assert!(report.quotas.iter().any(|q| !q.ok && q.limit == 3), "{report:?}"));
    // Quota: 128 CPU per team across environments (64 is the most one namespace may ask).
    requests::submit(
        state,
        &alice,
        &draft(
            "k8s-namespace",
            namespace_params("big", "payments", "staging", 64),
        ),
    )
    .await?;
    refused!(app, requests::submit(state, &alice, &draft("k8s-namespace", namespace_params("bigger", "payments", "prod", 64))),
        ServiceError::PrecheckFailed(report) => assert!(report.quotas.iter().any(|q| !q.ok && q.limit == 128 && q.used == 67), "{report:?}"));

    // Alice of payments cannot ask for team search, even where a policy would approve.
    refused!(app, requests::submit(state, &alice, &draft("k8s-namespace", namespace_params("elsewhere", "search", "dev", 1))),
        ServiceError::Forbidden(m) => assert!(m.contains("not a member of team search"), "{m}"));
    let report = requests::precheck(
        state,
        &alice,
        "k8s-namespace",
        &namespace_params("elsewhere", "search", "dev", 1),
        None,
    )
    .await?;
    assert!(
        report.field_errors.iter().any(|e| e.field == "team"),
        "{report:?}"
    );

    // A double-clicked submit lands once.
    let twice = draft(
        "k8s-namespace",
        namespace_params("clicked", "payments", "staging", 1),
    );
    let first = requests::submit(state, &alice, &twice).await?;
    let after_first = app.snapshot().await?;
    let second = requests::submit(state, &alice, &twice).await?;
    assert_eq!(first, second);
    assert_eq!(app.snapshot().await?, after_first);
    Ok(())
}

async fn bad_reviews_change_nothing(app: &TestApp) -> TestResult {
    let state = &app.state;
    let (alice, bob, carol) = (
        app.user("alice").await?,
        app.user("bob").await?,
        app.user("carol").await?,
    );

    let own = requests::submit(
        state,
        &bob,
        &draft(
            "k8s-namespace",
            namespace_params("tools", "platform", "prod", 1),
        ),
    )
    .await?;
    refused!(app, reviews::decide(state, &bob, own, 1, ReviewDecision::Approve, ""),
        ServiceError::Forbidden(message) => assert!(message.contains("own"), "{message}"));

    let id = requests::submit(
        state,
        &alice,
        &draft(
            "k8s-namespace",
            namespace_params("api", "payments", "prod", 1),
        ),
    )
    .await?;
    refused!(app, reviews::decide(state, &alice, id, 1, ReviewDecision::Approve, ""),
        ServiceError::Forbidden(message) => assert!(message.contains("reviewer"), "{message}"));
    refused!(app, reviews::decide(state, &bob, id, 1, ReviewDecision::Reject, "  "),
        ServiceError::Invalid(fields) => assert_eq!(fields[0].field, "comment"));
    // A comment is kept, audited and posted to chat: a page of text at most.
    let essay = "word ".repeat(1_000);
    refused!(app, reviews::decide(state, &bob, id, 1, ReviewDecision::RequestChanges, &essay),
        ServiceError::Invalid(fields) => assert_eq!(
            (fields[0].field.as_str(), fields[0].message.as_str()),
            ("comment", "is 4999 characters long; at most 4000 are kept")));
    refused!(app, reviews::decide(state, &bob, id, 2, ReviewDecision::Approve, ""),
        ServiceError::Conflict(_) => {});

    // A stale revision: bob reviews revision 1 after alice sent revision 2.
    reviews::decide(state, &bob, id, 1, ReviewDecision::RequestChanges, "4 CPUs").await?;
    requests::resubmit(
        state,
        &alice,
        id,
        &namespace_params("api", "payments", "prod", 4),
    )
    .await?;
    refused!(app, reviews::decide(state, &bob, id, 1, ReviewDecision::Approve, ""),
        ServiceError::Conflict(message) => assert!(message.contains("revision 2"), "{message}"));

    reviews::decide(state, &bob, id, 2, ReviewDecision::Approve, "").await?;
    refused!(app, reviews::decide(state, &bob, id, 2, ReviewDecision::Approve, ""),
        ServiceError::Conflict(_) => {});
    refused!(app, reviews::decide(state, &carol, id, 2, ReviewDecision::Approve, ""),
        ServiceError::Conflict(_) => {});

    let rejected = requests::submit(
        state,
        &alice,
        &draft(
            "k8s-namespace",
            namespace_params("old", "payments", "prod", 1),
        ),
    )
    .await?;
    reviews::decide(
        state,
        &bob,
        rejected,
        1,
        ReviewDecision::Reject,
        "we have one already",
    )
    .await?;
    assert_eq!(app.request_state(rejected).await?, RequestState::Rejected);
    refused!(app, reviews::decide(state, &carol, rejected, 1, ReviewDecision::Approve, ""),
        ServiceError::Conflict(_) => {});
    Ok(())
}

async fn state_machine_through_the_services(app: &TestApp) -> TestResult {
    let state = &app.state;
    let (alice, bob, carol) = (
        app.user("alice").await?,
        app.user("bob").await?,
        app.user("carol").await?,
    );
    let done = app.namespace(&alice, "dev", "web").await?;
    refused!(app, requests::cancel(state, &alice, done), ServiceError::Conflict(_) => {});
    refused!(app, operations::retry(state, &carol, done), ServiceError::Conflict(_) => {});
    refused!(app, operations::take_over(state, &carol, done), ServiceError::Conflict(_) => {});
    refused!(app, operations::resolve(state, &carol, done, "done by hand"), ServiceError::Conflict(_) => {});
    refused!(app, requests::resubmit(state, &alice, done, &namespace_params("web", "payments", "dev", 3)),
        ServiceError::Conflict(_) => {});

    let waiting = requests::submit(
        state,
        &alice,
        &draft(
            "k8s-namespace",
            namespace_params("api", "payments", "prod", 1),
        ),
    )
    .await?;
    refused!(app, requests::resubmit(state, &alice, waiting, &namespace_params("api", "payments", "prod", 2)),
        ServiceError::Conflict(_) => {});
    refused!(app, requests::cancel(state, &bob, waiting), ServiceError::Forbidden(_) => {});
    requests::cancel(state, &alice, waiting).await?;
    assert_eq!(app.request_state(waiting).await?, RequestState::Cancelled);
    refused!(app, requests::cancel(state, &alice, waiting), ServiceError::Conflict(_) => {});
    refused!(app, reviews::decide(state, &bob, waiting, 1, ReviewDecision::Approve, ""), ServiceError::Conflict(_) => {});

    // Nobody reviews their own request, not even to send it back.
    let own = requests::submit(
        state,
        &alice,
        &draft(
            "k8s-namespace",
            namespace_params("own", "payments", "prod", 1),
        ),
    )
    .await?;
    refused!(app, reviews::decide(state, &alice, own, 1, ReviewDecision::RequestChanges, "more"),
        ServiceError::Forbidden(_) => {});
    // Rejected ends it: nothing moves it on.
    reviews::decide(state, &bob, own, 1, ReviewDecision::Reject, "not this one").await?;
    let params = namespace_params("own", "payments", "prod", 2);
    refused!(app, requests::cancel(state, &alice, own), ServiceError::Conflict(_) => {});
    refused!(app, requests::resubmit(state, &alice, own, &params), ServiceError::Conflict(_) => {});
    refused!(app, reviews::decide(state, &bob, own, 1, ReviewDecision::Approve, ""), ServiceError::Conflict(_) => {});
    refused!(app, operations::retry(state, &carol, own), ServiceError::Conflict(_) => {});

    // Approved: revised no more (the reviewer approved what they read).
    let approved = approved_prod_namespace(app, "approved").await?;
    let params = namespace_params("approved", "payments", "prod", 2);
    refused!(app, requests::resubmit(state, &alice, approved, &params), ServiceError::Conflict(_) => {});
    refused!(app, operations::take_over(state, &carol, approved), ServiceError::Conflict(_) => {});

    // Failed: only retry or take over; not cancelled (steps may have taken effect),
    // not revised, not closed before someone handles it.
    let failed = failed_prod_namespace(app, "failed").await?;
    let params = namespace_params("failed", "payments", "prod", 2);
    refused!(app, requests::cancel(state, &alice, failed), ServiceError::Conflict(_) => {});
    refused!(app, requests::resubmit(state, &alice, failed, &params), ServiceError::Conflict(_) => {});
    refused!(app, operations::resolve(state, &carol, failed, "done"), ServiceError::Conflict(_) => {});
    refused!(app, operations::retry(state, &alice, failed), ServiceError::Forbidden(_) => {});
    // Manual: resolved or abandoned by hand; not retried, taken again or cancelled.
    operations::take_over(state, &carol, failed).await?;
    refused!(app, operations::retry(state, &carol, failed), ServiceError::Conflict(_) => {});
    refused!(app, operations::take_over(state, &carol, failed), ServiceError::Conflict(_) => {});
    refused!(app, requests::cancel(state, &alice, failed), ServiceError::Conflict(_) => {});
    refused!(app, operations::resolve(state, &alice, failed, "done"), ServiceError::Forbidden(_) => {});
    Ok(())
}

/// What a page watching the worker asks every second: the same visibility rule as
/// the request page, and it writes nothing (the request page marks a review as seen).
async fn request_state_is_shown_to_those_who_may_see_the_request(app: &TestApp) -> TestResult {
    let state = &app.state;
    let (alice, bob) = (app.user("alice").await?, app.user("bob").await?);
    let outsider = {
        let mut conn = state.db.pool.acquire().await?;
        let teams = ["billing".to_string()];
        let new = storage::users::NewUser {
            username: "dave",
            display_name: "Dave (billing)",
            password_hash: None,
            roles: &[slipway_core::views::Role::Requester],
            teams: &teams,
        };
        storage::users::insert(&mut conn, &new).await?;
        storage::users::by_username(&mut conn, "dave")
            .await?
            .ok_or("dave was not stored")?
            .view
    };
    let outsider = slipway_server::services::Caller::new(
        outsider,
        slipway_server::services::Channel::Portal,
        Default::default(),
    );
    let id = requests::submit(
        state,
        &alice,
        &draft(
            "k8s-namespace",
            namespace_params("ops", "payments", "prod", 1),
        ),
    )
    .await?;
    let before = app.snapshot().await?;
    assert_eq!(
        detail::request_state(state, &alice, id).await?,
        RequestState::InReview
    );
    assert_eq!(
        detail::request_state(state, &bob, id).await?,
        RequestState::InReview
    );
    assert_eq!(
        app.snapshot().await?,
        before,
        "asking for the state wrote something"
    );
    // To an outsider it answers as a missing request does: nothing tells it exists.
    refused!(app, detail::request_state(state, &outsider, id), ServiceError::NotFound(m) => {
        assert_eq!(m, format!("request #{id}"));
    });
    refused!(app, detail::request_detail(state, &outsider, id, detail::ReviewerRead::Counts), ServiceError::NotFound(_) => {});
    refused!(app, detail::request_state(state, &alice, RequestId(9_999)), ServiceError::NotFound(_) => {});
    Ok(())
}

async fn concurrent_double_click_lands_once(app: &TestApp) -> TestResult {
    let alice = app.user("alice").await?;
    let twice = draft(
        "k8s-namespace",
        namespace_params("clicked", "payments", "staging", 1),
    );
    let (first, second) = tokio::join!(
        requests::submit(&app.state, &alice, &twice),
        requests::submit(&app.state, &alice, &twice)
    );
    let first_id = first?;
    assert_eq!(first_id, second?);
    assert_eq!(app.count("requests").await?, 1);
    // The same key with another body (a client with a fixed key, or one reused
    // after the API forgot the key) is refused, not answered with the old request.
    let mut other = twice.clone();
    other.params["cpu_limit"] = serde_json::json!(2);
    match requests::submit(&app.state, &alice, &other).await {
        Err(ServiceError::Invalid(errors)) => assert!(
            errors[0].field == "submit_key"
                && errors[0].message.contains("asked for something else"),
            "{errors:?}"
        ),
        other => panic!("another body under the same key: {other:?}"),
    }
    let mut elsewhere = twice.clone();
    elsewhere.type_name = "shared-database".into();
    assert!(
        requests::submit(&app.state, &alice, &elsewhere)
            .await
            .is_err()
    );
    assert_eq!(app.count("requests").await?, 1);
    // The very same body still gets the request back.
    assert_eq!(
        requests::submit(&app.state, &alice, &twice).await?,
        first_id
    );
    Ok(())
}

/// The shipped catalog with namespaces that need two approvals.
async fn start_with_two_approvals(engine: Engine) -> TestResult<Option<TestApp>> {
    let dir = tempfile::tempdir()?;
    common::copy_dir(&common::shipped_catalog(), dir.path())?;
    let path = dir.path().join("types/k8s-namespace.yaml");
    let yaml = std::fs::read_to_string(&path)?;
    let two = yaml.replace(
        "  required: 1\n  auto_approve",
        "  required: 2\n  auto_approve",
    );
    assert_ne!(yaml, two, "the namespace's review block changed");
    std::fs::write(&path, two)?;
    TestApp::start_with_catalog(engine, Some(dir)).await
}

/// A reviewer whose approval is sent twice at once (two tabs, a retried call
/// with another key) is one approval: the second is refused, so one person never
/// counts as the two a type asks for.
async fn one_reviewer_approving_twice_at_once_counts_once(app: &TestApp) -> TestResult {
    let (alice, bob) = (app.user("alice").await?, app.user("bob").await?);
    for name in ["twice-a", "twice-b", "twice-c"] {
        let params = namespace_params(name, "payments", "prod", 1);
        let id = requests::submit(&app.state, &alice, &draft("k8s-namespace", params)).await?;
        let approve = || reviews::decide(&app.state, &bob, id, 1, ReviewDecision::Approve, "");
        let (first, second) = tokio::join!(approve(), approve());
        let refused = [&first, &second]
            .iter()
            .filter(
                |r| matches!(r, Err(ServiceError::Conflict(m)) if m.contains("already approved")),
            )
            .count();
        assert!(
            first.is_ok() != second.is_ok() && refused == 1,
            "{first:?} {second:?}"
        );
        let mut conn = app.state.db.pool.acquire().await?;
        let approvals = storage::requests::decisions(&mut conn, id)
            .await?
            .into_iter()
            .filter(|d| d.decision == "approve")
            .count();
        assert_eq!(approvals, 1, "one person, one approval");
        assert_eq!(app.request_state(id).await?, RequestState::InReview);
    }
    Ok(())
}

/// Two requests racing for the last slot of a quota: one wins, one is refused.
async fn concurrent_submits_respect_the_quota(app: &TestApp) -> TestResult {
    let alice = app.user("alice").await?;
    for name in ["one", "two"] {
        requests::submit(
            &app.state,
            &alice,
            &draft(
                "k8s-namespace",
                namespace_params(name, "payments", "dev", 1),
            ),
        )
        .await?;
    }
    let (three, four) = (
        draft(
            "k8s-namespace",
            namespace_params("three", "payments", "dev", 1),
        ),
        draft(
            "k8s-namespace",
            namespace_params("four", "payments", "dev", 1),
        ),
    );
    let (a, b) = tokio::join!(
        requests::submit(&app.state, &alice, &three),
        requests::submit(&app.state, &alice, &four)
    );
    let refused = [&a, &b]
        .iter()
        .filter(|r| matches!(r, Err(ServiceError::PrecheckFailed(_))))
        .count();
    assert_eq!(
        (a.is_ok() as usize + b.is_ok() as usize, refused),
        (1, 1),
        "{a:?} / {b:?}"
    );
    assert_eq!(
        app.count("requests").await?,
        3,
        "the quota allows 3 namespaces per team and environment"
    );
    Ok(())
}

/// Two requests for the same resource name at once: one wins.
async fn concurrent_submits_of_one_name_land_once(app: &TestApp) -> TestResult {
    let alice = app.user("alice").await?;
    let (one, other) = (
        draft(
            "k8s-namespace",
            namespace_params("web", "payments", "dev", 1),
        ),
        draft(
            "k8s-namespace",
            namespace_params("web", "payments", "dev", 1),
        ),
    );
    let (a, b) = tokio::join!(
        requests::submit(&app.state, &alice, &one),
        requests::submit(&app.state, &alice, &other)
    );
    let refused = [&a, &b]
        .iter()
        .filter(|r| matches!(r, Err(ServiceError::PrecheckFailed(_))))
        .count();
    assert_eq!(
        (a.is_ok() as usize + b.is_ok() as usize, refused),
        (1, 1),
        "{a:?} / {b:?}"
    );
    assert_eq!(app.count("requests").await?, 1);
    Ok(())
}

#[test]
fn a_broken_catalog_names_the_file_and_the_place() -> TestResult {
    let dir = tempfile::tempdir()?;
    common::copy_dir(&common::shipped_catalog(), dir.path())?;
    let shipped = std::fs::read_to_string(dir.path().join("types/k8s-namespace.yaml"))?;
    let broken = shipped
        .replace("name: k8s-namespace\n", "name: broken-namespace\n")
        .replace("    role: reviewer\n", "    rolle: reviewer\n");
    assert_ne!(broken, shipped);
    std::fs::write(dir.path().join("types/broken-namespace.yaml"), broken)?;
    let error = match slipway_server::catalog_source::load(dir.path()) {
        Err(error) => error,
        Ok(_) => return Err("a broken catalog must not load".into()),
    };
    let text = error.to_string();
    assert!(text.contains("types/broken-namespace.yaml"), "{text}");
    assert!(text.contains("review.approvers"), "{text}");
    assert!(
        !text.contains("types/k8s-namespace.yaml"),
        "only the broken file is blamed: {text}"
    );
    Ok(())
}

#[test]
fn the_shipped_catalog_loads() -> TestResult {
    let loaded = slipway_server::catalog_source::load(&common::shipped_catalog())?;
    assert!(loaded.resource_type("postgres-database").is_some());
    assert!(loaded.resource_type("k8s-namespace").is_some());
    assert!(loaded.validator("postgres-database").is_some());
    Ok(())
}

/// A violated database constraint keeps its cause: a clash is a conflict, a dangling
/// reference is bad input, and neither is a server fault the worker would retry.
async fn constraint_violations_name_what_clashed(app: &TestApp) -> TestResult {
    let mut conn = app.state.db.pool.acquire().await?;
    let teams: [String; 0] = [];
    let again = storage::users::NewUser {
        username: "alice",
        display_name: "Another Alice",
        password_hash: None,
        roles: &[slipway_core::views::Role::Requester],
        teams: &teams,
    };
    let clash = storage::users::insert(&mut conn, &again)
        .await
        .err()
        .ok_or("a second alice was stored")?;
    let error = ServiceError::from(clash);
    match &error {
        ServiceError::Conflict(message) => {
            assert!(message.contains("users"), "{message}");
            assert!(message.contains("already exists"), "{message}");
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert!(!error.is_transient());

    let dangling = sqlx::query(
        "INSERT INTO review_views (request_id, reviewer_id, revision, first_seen_at) \
         VALUES ($1, $2, 1, 0)",
    )
    .bind(9_999_i64)
    .bind(UserId(9_999).0)
    .execute(&mut *conn)
    .await
    .err()
    .ok_or("a view of a missing request was stored")?;
    let error = ServiceError::from(dangling);
    assert!(
        matches!(&error, ServiceError::Invalid(fields) if fields[0].message.contains("does not exist")),
        "{error:?}"
    );
    assert!(!error.is_transient());
    Ok(())
}

/// Every event says where it came from: a person's acts carry their channel, address
/// and trace id; the policy's and the worker's acts are the system's.
async fn audit_events_name_their_channel_address_and_trace(app: &TestApp) -> TestResult {
    let state = &app.state;
    let alice = app.user("alice").await?;
    let id = requests::submit(
        state,
        &alice,
        &draft(
            "k8s-namespace",
            namespace_params("traced", "payments", "dev", 1),
        ),
    )
    .await?;
    let carol = app.user("carol").await?;
    let events = audit::list(
        state,
        &carol,
        &AuditFilter {
            target: Some(format!("request:{id}")),
            ..AuditFilter::default()
        },
        storage::Window::first(500),
    )
    .await?
    .items;
    let submit = events
        .iter()
        .find(|e| e.action == "request.submit")
        .ok_or("no submit event")?;
    assert_eq!(submit.channel.as_deref(), Some("portal"));
    assert_eq!(submit.client_addr.as_deref(), Some("127.0.0.1"));
    assert_eq!(submit.trace_id.as_deref(), Some("test-alice"));
    let approved = events
        .iter()
        .find(|e| e.action == "request.auto_approve")
        .ok_or("no auto-approve event")?;
    // The policy acted within alice's call: its event keeps that call's origin.
    assert_eq!(approved.actor, "policy:k8s-namespace.auto_approve");
    assert_eq!(approved.channel.as_deref(), Some("portal"));
    assert_eq!(approved.trace_id.as_deref(), Some("test-alice"));
    assert_eq!(
        audit::verify(state, &carol).await?,
        ChainStatus::Intact {
            events: app.count("audit_events").await?
        }
    );
    Ok(())
}

/// A revision names the one it was made from: a form opened on revision 2 and
/// sent after a revision 3 (another tab) and another round of review is
/// refused and changes nothing, never a quiet overwrite of revision 3.
async fn a_revision_made_from_a_stale_form_is_refused(app: &TestApp) -> TestResult {
    let state = &app.state;
    let (alice, bob) = (app.user("alice").await?, app.user("bob").await?);
    app.namespace(&alice, "prod", "core").await?;
    let id = requests::submit(
        state,
        &alice,
        &draft("postgres-database", postgres_params("ledger", "prod", 20)),
    )
    .await?;
    let changes = ReviewDecision::RequestChanges;
    reviews::decide(state, &bob, id, 1, changes, "more").await?;
    let opened_on = 1;
    requests::resubmit_from(
        state,
        &alice,
        (id, Some(opened_on)),
        &postgres_params("ledger", "prod", 50),
    )
    .await?;
    reviews::decide(state, &bob, id, 2, changes, "even more").await?;
    let before = app.snapshot().await?;
    let stale = requests::resubmit_from(
        state,
        &alice,
        (id, Some(opened_on)),
        &postgres_params("ledger", "prod", 30),
    )
    .await;
    match stale {
        Err(ServiceError::Conflict(message)) => {
            assert!(message.contains("revision 2 now, not 1"), "{message}")
        }
        other => return Err(format!("a stale form must be refused: {other:?}").into()),
    }
    assert_eq!(app.snapshot().await?, before, "nothing changed");
    requests::resubmit_from(
        state,
        &alice,
        (id, Some(2)),
        &postgres_params("ledger", "prod", 60),
    )
    .await?;
    assert_eq!(app.request(id).await?.current_revision, 3);
    Ok(())
}

/// A script looping on the pre-check is held to a pace (each check reads
/// names, quotas and requirements); another person checks on unhindered.
async fn pre_checks_keep_to_a_pace_per_person(app: &TestApp) -> TestResult {
    let state = &app.state;
    let (alice, bob) = (app.user("alice").await?, app.user("bob").await?);
    let params = namespace_params("paced", "payments", "dev", 1);
    // A minute's worth at once, and a few more as the pace refills (ten a
    // second); then a refusal saying when to come back.
    let pace = u64::from(state.settings.identity.checks_per_minute);
    let mut passed = 0;
    let refusal = loop {
        match requests::precheck(state, &alice, "k8s-namespace", &params, None).await {
            Ok(_) if passed < 2 * pace => passed += 1,
            other => break other,
        }
    };
    match refusal {
        Err(ServiceError::TooMany(message, Some(wait))) => {
            assert!(message.contains("pre-checks in a minute"), "{message}");
            assert!(wait <= std::time::Duration::from_secs(60));
        }
        other => return Err(format!("past the pace: {other:?}").into()),
    }
    assert!(passed >= pace, "{passed} passed");
    let theirs = namespace_params("paced", "platform", "dev", 1);
    requests::precheck(state, &bob, "k8s-namespace", &theirs, None).await?;
    Ok(())
}

/// A reviewer's diff starts at the newest revision they read. A page another
/// site had their browser load does not count as read: the requester could
/// otherwise have a revision marked read and hide it from the reviewer's next
/// diff. And a page read again writes nothing.
async fn a_page_another_site_opened_does_not_count_as_read(app: &TestApp) -> TestResult {
    use detail::ReviewerRead;
    let state = &app.state;
    let (alice, bob) = (app.user("alice").await?, app.user("bob").await?);
    app.namespace(&alice, "prod", "core").await?;
    let id = requests::submit(
        state,
        &alice,
        &draft("postgres-database", postgres_params("ledger", "prod", 20)),
    )
    .await?;
    detail::request_detail(state, &bob, id, ReviewerRead::Counts).await?;
    detail::request_detail(state, &bob, id, ReviewerRead::Counts).await?;
    assert_eq!(app.count("review_views").await?, 1, "read twice, kept once");
    reviews::decide(state, &bob, id, 1, ReviewDecision::RequestChanges, "more").await?;
    requests::resubmit(state, &alice, id, &postgres_params("ledger", "prod", 50)).await?;
    let lured = detail::request_detail(state, &bob, id, ReviewerRead::DoesNotCount).await?;
    let base = lured.review_diff.map(|d| d.base_revision);
    assert_eq!(base, Some(1), "the diff is shown all the same");
    assert_eq!(
        app.count("review_views").await?,
        1,
        "revision 2 not marked read"
    );
    // The requester is asked again and sends a small third revision.
    reviews::decide(state, &bob, id, 2, ReviewDecision::RequestChanges, "hm").await?;
    requests::resubmit(state, &alice, id, &postgres_params("ledger", "prod", 60)).await?;
    let read = detail::request_detail(state, &bob, id, ReviewerRead::Counts).await?;
    let diff = read.review_diff.ok_or("a diff since revision 1")?;
    assert_eq!(
        (diff.base_revision, diff.revision),
        (1, 3),
        "everything since what bob read, revision 2 included"
    );
    assert_eq!(app.count("review_views").await?, 2);
    Ok(())
}

/// A request sent back for changes and not revised within the setting's time is
/// cancelled by policy, with the reason in its history, and its name is free
/// again; one sent back more recently stays; a second pass closes nothing.
async fn a_request_left_unrevised_is_closed_and_frees_its_name(app: &TestApp) -> TestResult {
    let state = &app.state;
    let (alice, bob) = (app.user("alice").await?, app.user("bob").await?);
    app.namespace(&alice, "prod", "core").await?;
    let mut sent_back = Vec::new();
    for name in ["ledger", "recent"] {
        let id = requests::submit(
            state,
            &alice,
            &draft("postgres-database", postgres_params(name, "prod", 20)),
        )
        .await?;
        reviews::decide(
            state,
            &bob,
            id,
            1,
            ReviewDecision::RequestChanges,
            "smaller",
        )
        .await?;
        sent_back.push(id);
    }
    let [left, recent] = sent_back[..] else {
        return Err("two requests".into());
    };
    let day = 86_400_000_i64;
    sqlx::query("UPDATE requests SET updated_at = updated_at - $1 WHERE id = $2")
        .bind(31 * day)
        .bind(left.0)
        .execute(&state.db.pool)
        .await?;
    let month_ago = storage::now_millis() - 30 * day;
    assert_eq!(requests::close_unrevised(state, month_ago).await?, 1);
    assert_eq!(app.request_state(left).await?, RequestState::Cancelled);
    assert_eq!(
        app.request_state(recent).await?,
        RequestState::ChangesRequested
    );
    assert_eq!(requests::close_unrevised(state, month_ago).await?, 0);
    let (actor, detail): (String, String) = sqlx::query_as(
        "SELECT actor, detail FROM audit_events \
         WHERE target_kind = 'request' AND target_id = $1 AND action = 'request.cancel'",
    )
    .bind(left.0.to_string())
    .fetch_one(&state.db.pool)
    .await?;
    assert_eq!(actor, "policy:close-unrevised");
    assert!(
        detail.contains("changes were requested 31 days ago"),
        "{detail}"
    );
    // The name is free again; the one still waiting for its revision holds its own.
    let again = requests::submit(
        state,
        &alice,
        &draft("postgres-database", postgres_params("ledger", "prod", 20)),
    )
    .await?;
    assert_eq!(app.request_state(again).await?, RequestState::InReview);
    refused!(app, requests::submit(
        state,
        &alice,
        &draft("postgres-database", postgres_params("recent", "prod", 20)),
    ), ServiceError::PrecheckFailed(_) => {});
    Ok(())
}
