//! The pipeline driver against a small CI/CD server the test starts on loopback,
//! answering enough like GitHub Actions `workflow_dispatch`, GitLab's pipeline
//! API and Argo Workflows: trigger, poll to success, poll to failure, a run that
//! passes its deadline, a host the settings do not allow, a token that reaches
//! the CI/CD system and nothing else, and a job resumed after a crash that
//! follows the run it started instead of triggering a second one.

#[allow(dead_code, unused_macros)]
mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use common::{TestApp, TestResult, draft};
use serde_json::{Value, json};
use slipway_core::ids::RequestId;
use slipway_core::state::RequestState;
use slipway_server::config::Secret;
use slipway_server::services::requests;
use slipway_server::storage::{self, Engine};

const TOKEN: &str = "ci-canary-token-7d1e";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Flavour {
    GitHub,
    GitLab,
    Argo,
}

struct FakeRun {
    flavour: Flavour,
    outcome: String,
    polls: u32,
    name: String,
}

#[derive(Default)]
struct Ci {
    base: String,
    runs: Vec<FakeRun>,
    /// Every trigger received, with its Idempotency-Key.
    triggers: Vec<String>,
    /// How long Argo's trigger takes to answer (after it is received).
    trigger_delay: Duration,
    /// How many triggers still to turn away as rate-limited (429), starting nothing.
    busy_for: u32,
    /// The triggers turned away.
    turned_away: u32,
}

type Shared = Arc<Mutex<Ci>>;

/// The outcome the requester asked for travels in the body, as a workflow
/// input, a pipeline variable or a workflow argument would.
fn outcome_of(body: &str) -> String {
    ["failure", "never"]
        .into_iter()
        .find(|o| body.contains(&format!("\"{o}\"")))
        .unwrap_or("success")
        .to_string()
}

fn authorised(headers: &HeaderMap, flavour: Flavour) -> bool {
    let (name, expected) = match flavour {
        Flavour::GitLab => ("private-token", TOKEN.to_string()),
        _ => ("authorization", format!("Bearer {TOKEN}")),
    };
    headers.get(name).and_then(|v| v.to_str().ok()) == Some(expected.as_str())
}

fn trigger(ci: &Shared, flavour: Flavour, headers: &HeaderMap, body: &str) -> Response {
    if !authorised(headers, flavour) {
        return (StatusCode::UNAUTHORIZED, "bad credentials").into_response();
    }
    if serde_json::from_str::<Value>(body).is_err() {
        return (StatusCode::BAD_REQUEST, "not JSON").into_response();
    }
    let Ok(mut ci) = ci.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    if ci.busy_for > 0 {
        ci.busy_for -= 1;
        ci.turned_away += 1;
        return (StatusCode::TOO_MANY_REQUESTS, "rate limited, try later").into_response();
    }
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    ci.triggers.push(key.clone());
    let id = ci.runs.len() + 1;
    let name = format!("{key}-{id}");
    ci.runs.push(FakeRun {
        flavour,
        outcome: outcome_of(body),
        polls: 0,
        name: name.clone(),
    });
    let base = ci.base.clone();
    match flavour {
        Flavour::GitHub => Json(json!({
            "workflow_run_id": id,
            "run_url": format!("{base}/repos/acme/infra/actions/runs/{id}"),
            "html_url": format!("{base}/acme/infra/actions/runs/{id}"),
        })),
        Flavour::GitLab => Json(json!({
            "id": id, "project_id": 42, "status": "created",
            "web_url": format!("{base}/acme/infra/-/pipelines/{id}"),
        })),
        Flavour::Argo => Json(json!({
            "metadata": {"name": name, "namespace": "argo"}, "status": {},
        })),
    }
    .into_response()
}

struct Json(Value);

impl IntoResponse for Json {
    fn into_response(self) -> Response {
        (
            StatusCode::OK,
            [("content-type", "application/json")],
            self.0.to_string(),
        )
            .into_response()
    }
}

/// A run is in progress for its first poll and ends at its second, as asked;
/// `never` stays in progress.
fn status(
    ci: &Shared,
    flavour: Flavour,
    headers: &HeaderMap,
    find: &dyn Fn(&FakeRun) -> bool,
) -> Response {
    if !authorised(headers, flavour) {
        return (StatusCode::UNAUTHORIZED, "bad credentials").into_response();
    }
    let Ok(mut ci) = ci.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let Some(run) = ci.runs.iter_mut().find(|r| r.flavour == flavour && find(r)) else {
        return (StatusCode::NOT_FOUND, "no such run").into_response();
    };
    run.polls += 1;
    let ended = run.polls >= 2 && run.outcome != "never";
    let failed = run.outcome == "failure";
    Json(match (flavour, ended, failed) {
        (Flavour::GitHub, false, _) => json!({"status": "in_progress", "conclusion": null}),
        (Flavour::GitHub, true, false) => json!({"status": "completed", "conclusion": "success"}),
        (Flavour::GitHub, true, true) => json!({"status": "completed", "conclusion": "failure"}),
        (Flavour::GitLab, false, _) => json!({"status": "running"}),
        (Flavour::GitLab, true, false) => json!({"status": "success"}),
        (Flavour::GitLab, true, true) => json!({"status": "failed"}),
        (Flavour::Argo, false, _) => json!({"status": {"phase": "Running"}}),
        (Flavour::Argo, true, false) => json!({"status": {"phase": "Succeeded"}}),
        (Flavour::Argo, true, true) => json!({"status": {"phase": "Failed"}}),
    })
    .into_response()
}

async fn start_ci() -> TestResult<(SocketAddr, Shared)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let ci: Shared = Arc::new(Mutex::new(Ci {
        base: format!("http://{address}"),
        ..Ci::default()
    }));
    let app = Router::new()
        .route(
            "/repos/acme/infra/actions/workflows/provision.yml/dispatches",
            post(|State(ci): State<Shared>, headers: HeaderMap, body: String| async move {
                trigger(&ci, Flavour::GitHub, &headers, &body)
            }),
        )
        .route(
            "/repos/acme/infra/actions/runs/{id}",
            get(|State(ci): State<Shared>, headers: HeaderMap, Path(id): Path<usize>| async move {
                status(&ci, Flavour::GitHub, &headers, &|r| r.name.ends_with(&format!("-{id}")))
            }),
        )
        .route(
            "/api/v4/projects/42/pipeline",
            post(|State(ci): State<Shared>, headers: HeaderMap, body: String| async move {
                trigger(&ci, Flavour::GitLab, &headers, &body)
            }),
        )
        .route(
            "/api/v4/projects/42/pipelines/{id}",
            get(|State(ci): State<Shared>, headers: HeaderMap, Path(id): Path<usize>| async move {
                status(&ci, Flavour::GitLab, &headers, &|r| r.name.ends_with(&format!("-{id}")))
            }),
        )
        .route(
            "/api/v1/workflows/argo",
            post(|State(ci): State<Shared>, headers: HeaderMap, body: String| async move {
                let delay = ci.lock().map(|c| c.trigger_delay).unwrap_or_default();
                let answer = trigger(&ci, Flavour::Argo, &headers, &body);
                tokio::time::sleep(delay).await;
                answer
            }),
        )
        .route(
            "/api/v1/workflows/argo/{name}",
            get(|State(ci): State<Shared>, headers: HeaderMap, Path(name): Path<String>| async move {
                status(&ci, Flavour::Argo, &headers, &|r| r.name == name)
            }),
        )
        .with_state(ci.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((address, ci))
}

const JOB_TYPE: &str = r#"name: NAME
title: CI job
description: Provisions through a CI/CD run.
owner: platform
owner_param: team
parameters:
  type: object
  additionalProperties: false
  required: [name, team, outcome]
  properties:
    name: { type: string, title: Name, pattern: "^[a-z][a-z0-9-]{1,20}$" }
    team: { type: string, title: Team, x-dictionary: teams }
    outcome: { type: string, title: Outcome, enum: [success, failure, never] }
naming:
  template: "{{ team }}-{{ name }}"
review:
  approvers: { role: reviewer }
  auto_approve: { when: "true" }
outputs:
  - path: "jobs/{{ team }}/{{ name }}.yaml"
    template: job/job.yaml.j2
execute:
  - driver: pipeline
STEP    deadline_seconds: 3
    poll_seconds: 1
"#;

const GITHUB_STEP: &str = r#"    url: "BASE/repos/acme/infra/actions/workflows/provision.yml/dispatches"
    token: ci
    headers: { Accept: "application/vnd.github+json", X-GitHub-Api-Version: "2022-11-28" }
    body: |
      {"ref": "main", "return_run_details": true,
       "inputs": {"resource": "{{ resource_name }}", "outcome": "{{ outcome }}", "slipway_key": "{{ run_key }}"}}
    status_url: "{{ answer.run_url }}"
    status_pointer: /conclusion
    success: [success]
    failure: [failure, cancelled, timed_out, startup_failure]
"#;

const GITLAB_STEP: &str = r#"    url: "BASE/api/v4/projects/42/pipeline"
    token: ci
    token_header: PRIVATE-TOKEN
    body: '{"ref": "main", "variables": [{"key": "RESOURCE", "value": "{{ resource_name }}"}, {"key": "OUTCOME", "value": "{{ outcome }}"}]}'
    status_url: "BASE/api/v4/projects/{{ answer.project_id }}/pipelines/{{ answer.id }}"
    status_pointer: /status
    success: [success]
    failure: [failed, canceled, skipped]
"#;

const ARGO_STEP: &str = r#"    url: "BASE/api/v1/workflows/argo"
    token: ci
    body: |
      {"workflow": {"metadata": {"name": "{{ run_key }}"},
        "spec": {"workflowTemplateRef": {"name": "provision"},
          "arguments": {"parameters": [{"name": "resource", "value": "{{ resource_name }}"},
                                       {"name": "outcome", "value": "{{ outcome }}"}]}}}}
    status_url: "BASE/api/v1/workflows/argo/{{ answer.metadata.name }}"
    status_pointer: /status/phase
    success: [Succeeded]
    failure: [Failed, Error]
"#;

fn ci_catalog(base: &str) -> TestResult<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    common::copy_dir(&common::shipped_catalog(), dir.path())?;
    for (name, step) in [
        ("github-job", GITHUB_STEP.to_string()),
        ("gitlab-job", GITLAB_STEP.to_string()),
        ("argo-job", ARGO_STEP.to_string()),
        // The same as GitHub's, at a host the settings do not allow.
        (
            "rogue-job",
            GITHUB_STEP.replace("BASE/repos", "http://169.254.169.254/repos"),
        ),
    ] {
        let text = JOB_TYPE
            .replace("NAME", name)
            .replace("STEP", &step)
            .replace("BASE", base);
        // GitHub's again, with time to cancel it while it runs.
        if name == "github-job" {
            let patient = text
                .replace("name: github-job", "name: patient-job")
                .replace("deadline_seconds: 3", "deadline_seconds: 120");
            std::fs::write(dir.path().join("types/patient-job.yaml"), patient)?;
        }
        std::fs::write(dir.path().join(format!("types/{name}.yaml")), text)?;
    }
    std::fs::create_dir_all(dir.path().join("templates/job"))?;
    std::fs::write(
        dir.path().join("templates/job/job.yaml.j2"),
        "job: {{ resource_name }}\n",
    )?;
    Ok(dir)
}

async fn start(engine: Engine, ci: SocketAddr) -> TestResult<Option<TestApp>> {
    let catalog = ci_catalog(&format!("http://{ci}"))?;
    let app = TestApp::start_configured(engine, Some(catalog), |settings| {
        settings.outbound.allowed_hosts = slipway_core::checks::AllowedHosts::new(vec![
            slipway_core::checks::HostRule::parse(&ci.to_string())
                .unwrap_or_else(|e| panic!("{e}")),
        ]);
        settings.outbound.pipeline_tokens =
            BTreeMap::from([("ci".to_string(), Secret::new(TOKEN.into()))]);
    })
    .await?;
    if app.is_none() {
        eprintln!(
            "note: {} is not set; skipping the PostgreSQL run",
            common::POSTGRES_ENV
        );
    }
    Ok(app)
}

async fn submit(
    app: &TestApp,
    type_name: &str,
    name: &str,
    outcome: &str,
) -> TestResult<RequestId> {
    let alice = app.user("alice").await?;
    let params = json!({"name": name, "team": "payments", "outcome": outcome});
    Ok(requests::submit(&app.state, &alice, &draft(type_name, params)).await?)
}

async fn steps(app: &TestApp, id: RequestId) -> TestResult<Vec<(String, String, String)>> {
    let mut conn = app.state.db.pool.acquire().await?;
    Ok(storage::jobs::steps_for_request(&mut conn, id)
        .await?
        .into_iter()
        .map(|s| (s.state, s.summary, s.log))
        .collect())
}

#[tokio::test]
async fn pipelines_run_to_success_failure_and_deadline_sqlite() -> TestResult {
    runs_to_an_end(Engine::Sqlite).await
}

#[tokio::test]
async fn pipelines_run_to_success_failure_and_deadline_postgres() -> TestResult {
    runs_to_an_end(Engine::Postgres).await
}

async fn runs_to_an_end(engine: Engine) -> TestResult {
    let (address, ci) = start_ci().await?;
    let Some(app) = start(engine, address).await? else {
        return Ok(());
    };
    let base = format!("http://{address}");
    for (type_name, status_url) in [
        (
            "github-job",
            format!("{base}/repos/acme/infra/actions/runs/"),
        ),
        (
            "gitlab-job",
            format!("{base}/api/v4/projects/42/pipelines/"),
        ),
        ("argo-job", format!("{base}/api/v1/workflows/argo/slipway-")),
    ] {
        // Success: triggered once with the step's key, polled to its end.
        let id = submit(&app, type_name, "ok", "success").await?;
        app.run_jobs().await?;
        let row = app.request(id).await?;
        assert_eq!(
            row.state,
            RequestState::Completed,
            "{type_name}: {:?}",
            row.last_error
        );
        let seen = steps(&app, id).await?;
        assert_eq!(seen.len(), 1, "{seen:?}");
        let (state, summary, log) = &seen[0];
        assert_eq!(state, "done");
        assert!(
            summary.starts_with(&format!("pipeline run {status_url}")),
            "{summary}"
        );
        assert!(log.starts_with(&format!("triggered POST {base}/")), "{log}");
        let key = format!("slipway-{}-1-0", id.0);
        assert_eq!(
            ci.lock().map_err(|_| "lock")?.triggers.last(),
            Some(&key),
            "{type_name}: the trigger carries the step's key"
        );

        // Failure: the request fails with the run's end.
        let id = submit(&app, type_name, "bad", "failure").await?;
        app.run_jobs().await?;
        let row = app.request(id).await?;
        assert_eq!(row.state, RequestState::Failed);
        let reason = row.last_error.unwrap_or_default();
        assert!(
            reason.starts_with(&format!("step 1 (pipeline): pipeline run {status_url}"))
                && reason.contains(" ended "),
            "{reason}"
        );
        // A retry starts a new run under a key of its own, instead of following
        // the one that failed.
        let carol = app.user("carol").await?;
        let before = ci.lock().map_err(|_| "lock")?.triggers.len();
        slipway_server::services::operations::retry(&app.state, &carol, id).await?;
        app.run_jobs().await?;
        let triggers = ci.lock().map_err(|_| "lock")?.triggers.clone();
        assert_eq!(
            triggers.len(),
            before + 1,
            "{type_name}: the retry triggers"
        );
        assert_eq!(
            triggers.last(),
            Some(&format!("slipway-{}-1-0-retry1", id.0))
        );
        assert_eq!(app.request_state(id).await?, RequestState::Failed);
    }

    // A run that never ends fails once its deadline (3 s from the trigger) passes.
    let id = submit(&app, "gitlab-job", "slow", "never").await?;
    app.run_jobs().await?;
    let row = app.request(id).await?;
    assert_eq!(row.state, RequestState::Failed);
    let reason = row.last_error.unwrap_or_default();
    assert!(
        reason.contains("did not finish within 3 s (last: status running)"),
        "{reason}"
    );

    // A trigger URL at a host the settings do not allow: refused before connecting.
    let before = ci.lock().map_err(|_| "lock")?.triggers.len();
    let id = submit(&app, "rogue-job", "rogue", "success").await?;
    app.run_jobs().await?;
    let row = app.request(id).await?;
    assert_eq!(row.state, RequestState::Failed);
    let reason = row.last_error.unwrap_or_default();
    assert!(
        reason.starts_with(
            "step 1 (pipeline): 169.254.169.254:80 is not among the hosts the server's --check-allow-hosts (SLIPWAY_CHECK_ALLOW_HOSTS) setting allows"
        ),
        "{reason}"
    );
    assert_eq!(ci.lock().map_err(|_| "lock")?.triggers.len(), before);

    // The token reached the CI/CD system (it answers 401 otherwise) and nothing else.
    for (table, column) in [
        ("jobs", "last_error"),
        ("job_steps", "summary"),
        ("job_steps", "log"),
        ("audit_events", "detail"),
        ("requests", "last_error"),
        ("pipeline_runs", "status_url"),
    ] {
        let found: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM {table} WHERE {column} LIKE $1"
        ))
        .bind(format!("%{TOKEN}%"))
        .fetch_one(&app.state.db.pool)
        .await?;
        assert_eq!(found, 0, "{table}.{column} holds the token");
    }
    Ok(())
}

#[tokio::test]
async fn a_resumed_job_follows_the_run_it_started_sqlite() -> TestResult {
    resumed_job_follows_its_run(Engine::Sqlite).await
}

#[tokio::test]
async fn a_resumed_job_follows_the_run_it_started_postgres() -> TestResult {
    resumed_job_follows_its_run(Engine::Postgres).await
}

async fn resumed_job_follows_its_run(engine: Engine) -> TestResult {
    let (address, ci) = start_ci().await?;
    let Some(app) = start(engine, address).await? else {
        return Ok(());
    };
    let id = submit(&app, "argo-job", "resumed", "success").await?;

    // The worker triggers the run and dies while it polls.
    let worker = {
        let state = app.state.clone();
        tokio::spawn(async move { slipway_server::orchestrator::run_once(&state, "doomed").await })
    };
    let polled = async {
        loop {
            if ci
                .lock()
                .is_ok_and(|ci| ci.runs.iter().any(|r| r.polls >= 1))
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), polled).await?;
    worker.abort();
    let _ = worker.await;
    assert_eq!(ci.lock().map_err(|_| "lock")?.triggers.len(), 1);

    // Its lease runs out; another worker takes the job and follows the same run.
    app.exec("UPDATE jobs SET lease_until = 0, run_after = 0 WHERE state = 'running'")
        .await?;
    app.run_jobs().await?;
    let row = app.request(id).await?;
    assert_eq!(row.state, RequestState::Completed, "{:?}", row.last_error);
    let (triggers, polls) = {
        let ci = ci.lock().map_err(|_| "lock")?;
        (ci.triggers.len(), ci.runs.first().map_or(0, |r| r.polls))
    };
    assert_eq!(triggers, 1, "no second run");
    assert!(polls >= 2, "{polls}");
    let seen = steps(&app, id).await?;
    let states: Vec<&str> = seen.iter().map(|s| s.0.as_str()).collect();
    // The dead worker's attempt is marked abandoned when the job is taken over.
    assert_eq!(states, ["failed", "done"]);
    assert!(seen[0].1.starts_with("abandoned: "), "{:?}", seen[0]);
    assert!(
        seen[1].2.starts_with(&format!(
            "following the run an earlier attempt started: http://{address}/api/v1/workflows/argo/slipway-{}-1-0",
            id.0
        )),
        "{:?}",
        seen[1]
    );
    Ok(())
}

#[tokio::test]
async fn a_run_triggered_as_its_step_is_stopped_is_still_recorded_sqlite() -> TestResult {
    trigger_outlives_a_stop(Engine::Sqlite).await
}

#[tokio::test]
async fn a_run_triggered_as_its_step_is_stopped_is_still_recorded_postgres() -> TestResult {
    trigger_outlives_a_stop(Engine::Postgres).await
}

/// A step stopped (a cancel, a shutdown) while the CI/CD system is still
/// answering its trigger: the run it started is recorded all the same, so the
/// next attempt follows it instead of starting a second one.
async fn trigger_outlives_a_stop(engine: Engine) -> TestResult {
    use slipway_server::orchestrator::{self, JobControl, StopReason};
    let (address, ci) = start_ci().await?;
    let Some(app) = start(engine, address).await? else {
        return Ok(());
    };
    ci.lock().map_err(|_| "lock")?.trigger_delay = Duration::from_millis(1_500);
    let id = submit(&app, "argo-job", "stopped", "success").await?;
    let claimed = {
        let mut tx = app.state.db.write().await?;
        let owners = ["stopped-worker".to_string()];
        let claimed = storage::jobs::claim_due(&mut tx, app.engine, &owners, 60_000).await?;
        tx.commit().await?;
        claimed
    };
    let job = claimed.into_iter().next().ok_or("a job")?.job;
    let control = JobControl::default();
    let worker = {
        let (state, control) = (app.state.clone(), control.clone());
        tokio::spawn(async move {
            orchestrator::run_job(&state, &job, "stopped-worker", &control).await
        })
    };
    let received = async {
        while ci.lock().map(|c| c.triggers.is_empty()).unwrap_or(true) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), received).await?;
    control.stop(StopReason::Shutdown);
    worker.await??;
    let recorded = async {
        loop {
            let runs: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM pipeline_runs WHERE request_id = $1 AND status_url <> ''",
            )
            .bind(id.0)
            .fetch_one(&app.state.db.pool)
            .await?;
            if runs == 1 {
                return TestResult::Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), recorded).await??;
    // The job, handed back at the stop, resumes and follows that run.
    app.exec("UPDATE jobs SET run_after = 0").await?;
    app.run_jobs().await?;
    assert_eq!(app.request_state(id).await?, RequestState::Completed);
    assert_eq!(ci.lock().map_err(|_| "lock")?.triggers.len(), 1, "one run");
    Ok(())
}

#[tokio::test]
async fn an_attempt_that_died_before_its_record_triggers_nothing_sqlite() -> TestResult {
    died_between_intent_and_record(Engine::Sqlite).await
}

#[tokio::test]
async fn an_attempt_that_died_before_its_record_triggers_nothing_postgres() -> TestResult {
    died_between_intent_and_record(Engine::Postgres).await
}

/// A worker that recorded it was about to trigger the run and died (or lost its
/// job) before a run was recorded may have started one: the next attempt sends
/// no trigger, and the request fails with what to look for; a retry by a person
/// starts a new run under a new key.
async fn died_between_intent_and_record(engine: Engine) -> TestResult {
    let (address, ci) = start_ci().await?;
    let Some(app) = start(engine, address).await? else {
        return Ok(());
    };
    let id = submit(&app, "github-job", "intended", "success").await?;
    let revision = app.request(id).await?.current_revision;
    sqlx::query(
        "INSERT INTO pipeline_runs (request_id, revision, step_index, status_url, started_at) \
         VALUES ($1, $2, 0, '', $3)",
    )
    .bind(id.0)
    .bind(revision)
    .bind(storage::now_millis())
    .execute(&app.state.db.pool)
    .await?;
    app.run_jobs().await?;
    let row = app.request(id).await?;
    assert_eq!(row.state, RequestState::Failed);
    let error = row.last_error.unwrap_or_default();
    assert!(
        error.contains("one may have started") && error.contains("look for that run"),
        "{error}"
    );
    assert_eq!(ci.lock().map_err(|_| "lock")?.triggers.len(), 0);
    let carol = app.user("carol").await?;
    slipway_server::services::operations::retry(&app.state, &carol, id).await?;
    app.run_jobs().await?;
    assert_eq!(app.request_state(id).await?, RequestState::Completed);
    assert_eq!(ci.lock().map_err(|_| "lock")?.triggers.len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_retry_after_a_cancel_follows_the_run_still_going_sqlite() -> TestResult {
    retry_after_cancel_follows_its_run(Engine::Sqlite).await
}

#[tokio::test]
async fn a_retry_after_a_cancel_follows_the_run_still_going_postgres() -> TestResult {
    retry_after_cancel_follows_its_run(Engine::Postgres).await
}

/// A cancel stops Slipway's job, not the CI/CD run it started: a retry then
/// follows that run to its end instead of starting a second one beside it
/// (a run seen to fail is not followed again: see `runs_to_an_end`).
async fn retry_after_cancel_follows_its_run(engine: Engine) -> TestResult {
    let (address, ci) = start_ci().await?;
    let Some(app) = start(engine, address).await? else {
        return Ok(());
    };
    let id = submit(&app, "patient-job", "cancelled", "never").await?;
    let worker = {
        let state = app.state.clone();
        tokio::spawn(async move { slipway_server::orchestrator::run_once(&state, "w").await })
    };
    let polled = async {
        while !ci
            .lock()
            .is_ok_and(|ci| ci.runs.iter().any(|r| r.polls >= 1))
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), polled).await?;
    let alice = app.user("alice").await?;
    requests::cancel(&app.state, &alice, id).await?;
    tokio::time::timeout(Duration::from_secs(60), worker).await???;
    assert_eq!(app.request_state(id).await?, RequestState::Failed);
    // The run goes on in the CI/CD system, and succeeds there.
    if let Ok(mut ci) = ci.lock() {
        for run in &mut ci.runs {
            run.outcome = "success".into();
        }
    }
    let carol = app.user("carol").await?;
    slipway_server::services::operations::retry(&app.state, &carol, id).await?;
    app.run_jobs().await?;
    let row = app.request(id).await?;
    assert_eq!(row.state, RequestState::Completed, "{:?}", row.last_error);
    assert_eq!(
        ci.lock().map_err(|_| "lock")?.triggers.len(),
        1,
        "no second run"
    );
    Ok(())
}

#[tokio::test]
async fn a_trigger_turned_away_by_a_rate_limit_is_sent_again_sqlite() -> TestResult {
    busy_then_started(Engine::Sqlite).await
}

#[tokio::test]
async fn a_trigger_turned_away_by_a_rate_limit_is_sent_again_postgres() -> TestResult {
    busy_then_started(Engine::Postgres).await
}

/// A CI/CD system that answers "rate limited" (429) started nothing: the attempt takes
/// its intent back, and the next attempt triggers the run and follows it to its
/// end, one run in all (left behind, the intent made the retry fail as "a run
/// may have started").
async fn busy_then_started(engine: Engine) -> TestResult {
    let (address, ci) = start_ci().await?;
    let Some(app) = start(engine, address).await? else {
        return Ok(());
    };
    ci.lock().map_err(|_| "lock")?.busy_for = 1;
    let id = submit(&app, "github-job", "busy", "success").await?;
    app.run_jobs().await?;
    assert_eq!(ci.lock().map_err(|_| "lock")?.turned_away, 1);
    let intents: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM pipeline_runs WHERE request_id = $1")
            .bind(id.0)
            .fetch_one(&app.state.db.pool)
            .await?;
    assert_eq!(intents, 0, "the intent was taken back");
    app.exec("UPDATE jobs SET run_after = 0").await?;
    app.run_jobs().await?;
    let row = app.request(id).await?;
    assert_eq!(row.state, RequestState::Completed, "{:?}", row.last_error);
    assert_eq!(ci.lock().map_err(|_| "lock")?.triggers.len(), 1, "one run");
    Ok(())
}

/// A trigger whose answer is lost (the connection closes after the request went
/// out, as a CI/CD system that restarts or a proxy that gives up would leave it)
/// may have started a run, and GitHub and GitLab start a second one for the same
/// key: the request fails with what to look for instead of triggering again.
#[tokio::test]
async fn a_trigger_whose_answer_is_lost_is_not_sent_again() -> TestResult {
    use tokio::io::AsyncReadExt as _;
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let lost = silent.local_addr()?;
    let received = Arc::new(Mutex::new(0_usize));
    let counted = received.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = silent.accept().await {
            let mut request = Vec::new();
            let mut chunk = [0_u8; 4096];
            // The whole head at least, then the connection closes unanswered.
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&chunk[..n]),
                }
            }
            if let Ok(mut n) = counted.lock() {
                *n += 1;
            }
        }
    });
    let app = TestApp::start_configured(
        Engine::Sqlite,
        Some(ci_catalog(&format!("http://{lost}"))?),
        |settings| {
            settings.outbound.allowed_hosts = slipway_core::checks::AllowedHosts::new(vec![
                slipway_core::checks::HostRule::parse(&lost.to_string())
                    .unwrap_or_else(|e| panic!("{e}")),
            ]);
            settings.outbound.pipeline_tokens =
                BTreeMap::from([("ci".to_string(), Secret::new(TOKEN.into()))]);
        },
    )
    .await?
    .ok_or("SQLite")?;
    let id = submit(&app, "github-job", "lost", "success").await?;
    app.run_jobs().await?;
    // Past the first retry's pause, had the job been queued again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    app.run_jobs().await?;
    let row = app.request(id).await?;
    assert_eq!(row.state, RequestState::Failed);
    let error = row.last_error.unwrap_or_default();
    assert!(
        error.contains("the trigger's answer was lost")
            && error.contains(&format!("slipway-{id}-1-0"))
            && error.contains("look for that run"),
        "{error}"
    );
    assert_eq!(*received.lock().map_err(|e| e.to_string())?, 1);
    Ok(())
}

/// A step whose token the settings do not name is refused before the request
/// is made, in the words of a program the allow-list lacks, instead of failing
/// when it runs after its review.
#[tokio::test]
async fn a_token_the_settings_do_not_name_is_refused_up_front() -> TestResult {
    let catalog = ci_catalog("http://127.0.0.1:9")?;
    let app = TestApp::start_configured(Engine::Sqlite, Some(catalog), |_| {})
        .await?
        .ok_or("SQLite")?;
    let error = submit(&app, "github-job", "early", "success")
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        error.contains(
            "CI job cannot be requested on this Slipway yet: its pipeline step sends the token \
             \"ci\", which the server's --pipeline-tokens (SLIPWAY_PIPELINE_TOKENS) setting \
             does not name; ask the platform team"
        ),
        "{error}"
    );
    Ok(())
}
