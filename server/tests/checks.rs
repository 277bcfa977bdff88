//! Acceptance checks run for real against a service the test starts on loopback:
//! HTTP status and body tried until a deadline, TCP connect, a command's exit
//! status and the GitOps file, each result stored per verification round and
//! shown; and the outbound allow-list holding against parameters that name
//! another host, a redirect off the list, a huge body and a URL that is no URL.

#[allow(dead_code, unused_macros)]
mod common;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use common::{TestApp, TestResult, draft};
use slipway_core::ids::RequestId;
use slipway_core::state::RequestState;
use slipway_core::views::CheckResultView;
use slipway_server::services::{detail, operations, requests};
use slipway_server::storage::Engine;

const SERVICE_TYPE: &str = r#"name: service
title: Service
description: A service whose health the checks look at.
owner: platform
owner_param: team
parameters:
  type: object
  additionalProperties: false
  required: [name, team, endpoint]
  properties:
    name: { type: string, title: Name, pattern: "^[a-z][a-z0-9-]{1,20}$" }
    team: { type: string, title: Team, x-dictionary: teams }
    # The default gives `catalog check` (and the server's start) an address to
    # render the tcp check with.
    endpoint: { type: string, title: Endpoint, default: "localhost:8080" }
naming:
  template: "{{ team }}-{{ name }}"
review:
  approvers: { role: reviewer }
  auto_approve: { when: "true" }
outputs:
  - path: "services/{{ team }}/{{ name }}.yaml"
    template: service/service.yaml.j2
checks:
  - kind: git-file
    path: "services/{{ team }}/{{ name }}.yaml"
  - kind: http
    url: "http://{{ endpoint }}/health/{{ name }}"
    body_contains: "ready"
    deadline_seconds: 3
    description: "{{ resource_name }} is healthy"
  - kind: tcp
    address: "{{ endpoint }}"
    deadline_seconds: 2
  - kind: command
    program: test
    args: ["-n", "{{ name }}"]
"#;

/// How the loopback service answers each name's health URL.
#[derive(Default)]
struct Service {
    hits: HashMap<String, u32>,
    /// Names that answer 503 until this many hits have been seen.
    warm_up: HashMap<String, u32>,
    /// Names that answer 503 until taken out.
    down: HashSet<String>,
    port: u16,
}

type Shared = Arc<Mutex<Service>>;

async fn health(State(service): State<Shared>, Path(name): Path<String>) -> Response {
    let (hits, warm_up, down, port) = {
        let Ok(mut service) = service.lock() else {
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        };
        let hits = service.hits.entry(name.clone()).or_default();
        *hits += 1;
        let hits = *hits;
        let down = service.down.contains(&name);
        (
            hits,
            service.warm_up.get(&name).copied(),
            down,
            service.port,
        )
    };
    match name.as_str() {
        _ if down => (StatusCode::SERVICE_UNAVAILABLE, "starting").into_response(),
        "hop" => (
            StatusCode::FOUND,
            [(header::LOCATION, "/health/ok")],
            "moved",
        )
            .into_response(),
        "escape" => (
            StatusCode::FOUND,
            [(
                header::LOCATION,
                format!("http://localhost:{port}/health/ok"),
            )],
            "moved",
        )
            .into_response(),
        "metadata" => (
            StatusCode::TEMPORARY_REDIRECT,
            [(header::LOCATION, "http://169.254.169.254/latest/meta-data/")],
            "moved",
        )
            .into_response(),
        // 4 MiB of padding before the word the check looks for.
        "huge" => (StatusCode::OK, format!("{}ready", "x".repeat(4 << 20))).into_response(),
        _ if warm_up.is_some_and(|n| hits <= n) => {
            (StatusCode::SERVICE_UNAVAILABLE, "warming up").into_response()
        }
        _ => (StatusCode::OK, "ready: true").into_response(),
    }
}

async fn start_service() -> TestResult<(SocketAddr, Shared)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let shared: Shared = Arc::new(Mutex::new(Service {
        port: address.port(),
        ..Service::default()
    }));
    let app = Router::new()
        .route("/health/{name}", get(health))
        .with_state(shared.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((address, shared))
}

fn service_catalog() -> TestResult<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    common::copy_dir(&common::shipped_catalog(), dir.path())?;
    std::fs::write(dir.path().join("types/service.yaml"), SERVICE_TYPE)?;
    std::fs::create_dir_all(dir.path().join("templates/service"))?;
    std::fs::write(
        dir.path().join("templates/service/service.yaml.j2"),
        "service: {{ resource_name }}\nendpoint: {{ endpoint | tojson }}\n",
    )?;
    Ok(dir)
}

struct Run {
    id: RequestId,
    state: RequestState,
    reason: String,
    checks: Vec<CheckResultView>,
}

/// Submits a service (auto-approved), runs its job and reads what the request
/// page would show.
async fn submit(app: &TestApp, name: &str, endpoint: &str) -> TestResult<Run> {
    let alice = app.user("alice").await?;
    let params = serde_json::json!({"name": name, "team": "payments", "endpoint": endpoint});
    let id = requests::submit(&app.state, &alice, &draft("service", params)).await?;
    app.run_jobs().await?;
    observe(app, id).await
}

async fn observe(app: &TestApp, id: RequestId) -> TestResult<Run> {
    let alice = app.user("alice").await?;
    let row = app.request(id).await?;
    let shown = detail::request_detail(
        &app.state,
        &alice,
        id,
        slipway_server::services::detail::ReviewerRead::Counts,
    )
    .await?;
    Ok(Run {
        id,
        state: row.state,
        reason: row.last_error.unwrap_or_default(),
        checks: shown.checks,
    })
}

async fn start(engine: Engine, service: SocketAddr) -> TestResult<Option<TestApp>> {
    let app = TestApp::start_configured(engine, Some(service_catalog()?), |settings| {
        settings.command.allowed = vec!["test".into()];
        settings.outbound.allowed_hosts = slipway_core::checks::AllowedHosts::new(vec![
            slipway_core::checks::HostRule::parse(&service.to_string())
                .unwrap_or_else(|e| panic!("{e}")),
        ]);
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

#[tokio::test]
async fn checks_of_every_kind_pass_and_are_recorded_per_round_sqlite() -> TestResult {
    every_kind_recorded_per_round(Engine::Sqlite).await
}

#[tokio::test]
async fn checks_of_every_kind_pass_and_are_recorded_per_round_postgres() -> TestResult {
    every_kind_recorded_per_round(Engine::Postgres).await
}

async fn every_kind_recorded_per_round(engine: Engine) -> TestResult {
    let (service, shared) = start_service().await?;
    let Some(app) = start(engine, service).await? else {
        return Ok(());
    };
    let endpoint = service.to_string();

    // A service that answers 503 twice before it is ready: the check keeps trying.
    shared
        .lock()
        .map_err(|_| "lock")?
        .warm_up
        .insert("web".into(), 2);
    let run = submit(&app, "web", &endpoint).await?;
    assert_eq!(run.state, RequestState::Completed, "{}", run.reason);
    let seen: Vec<(i64, &str, bool)> = run
        .checks
        .iter()
        .map(|c| (c.attempt, c.kind.as_str(), c.passed))
        .collect();
    assert_eq!(
        seen,
        [
            (1, "git-file", true),
            (1, "http", true),
            (1, "tcp", true),
            (1, "command", true)
        ]
    );
    let http = &run.checks[1];
    assert_eq!(http.tries, 3, "{http:?}");
    assert_eq!(http.target, format!("http://{endpoint}/health/web"));
    assert_eq!(http.description, "payments-web is healthy");
    assert!(http.duration_ms >= 900, "two pauses of 500 ms: {http:?}");
    assert_eq!(run.checks[3].target, "test -n web");
    assert!(
        run.checks[0]
            .detail
            .starts_with("services/payments/web.yaml present on main at "),
        "{:?}",
        run.checks[0]
    );

    // A service that does not get ready: failed after the deadline, with the reason.
    shared
        .lock()
        .map_err(|_| "lock")?
        .down
        .insert("late".into());
    let run = submit(&app, "late", &endpoint).await?;
    assert_eq!(run.state, RequestState::Failed);
    assert!(
        run.reason.contains(
            "payments-late is healthy (http): answered 503, expected 200 (gave up on http://"
        ),
        "{}",
        run.reason
    );
    let http = &run.checks[1];
    assert!(!http.passed);
    assert!((5..=7).contains(&http.tries), "{http:?}");
    assert!(http.duration_ms >= 2500, "{http:?}");
    assert_eq!(run.checks.iter().filter(|c| c.passed).count(), 3);

    // Retried once it is up: a second verification round, stored beside the first.
    shared.lock().map_err(|_| "lock")?.down.remove("late");
    let carol = app.user("carol").await?;
    operations::retry(&app.state, &carol, run.id).await?;
    app.run_jobs().await?;
    let again = observe(&app, run.id).await?;
    assert_eq!(again.state, RequestState::Completed, "{}", again.reason);
    let rounds: Vec<(i64, bool)> = again.checks.iter().map(|c| (c.attempt, c.passed)).collect();
    assert_eq!(
        rounds,
        [
            (1, true),
            (1, false),
            (1, true),
            (1, true),
            (2, true),
            (2, true),
            (2, true),
            (2, true)
        ]
    );
    Ok(())
}

#[tokio::test]
async fn outbound_checks_reach_only_allowed_hosts_sqlite() -> TestResult {
    hostile_targets(Engine::Sqlite).await
}

#[tokio::test]
async fn outbound_checks_reach_only_allowed_hosts_postgres() -> TestResult {
    hostile_targets(Engine::Postgres).await
}

async fn hostile_targets(engine: Engine) -> TestResult {
    let (service, _shared) = start_service().await?;
    let Some(app) = start(engine, service).await? else {
        return Ok(());
    };
    let endpoint = service.to_string();
    let setting = "--check-allow-hosts (SLIPWAY_CHECK_ALLOW_HOSTS)";

    // Parameters naming the cloud's metadata service: refused before connecting,
    // at once, naming the setting; neither the HTTP nor the TCP check connects.
    let run = submit(&app, "meta", "169.254.169.254:80").await?;
    assert_eq!(run.state, RequestState::Failed);
    for check in &run.checks[1..=2] {
        assert!(!check.passed);
        assert_eq!(check.tries, 1, "{check:?}");
        assert!(
            check.duration_ms < 1000,
            "no waiting for a deadline: {check:?}"
        );
        assert_eq!(
            check.detail,
            format!(
                "169.254.169.254:80 is not among the hosts the server's {setting} setting allows; the platform team can add it"
            )
        );
    }

    // The allowed host's other port is another host.
    let other = format!("127.0.0.1:{}", service.port().wrapping_add(1).max(1));
    let run = submit(&app, "port", &other).await?;
    assert!(
        run.checks[2]
            .detail
            .starts_with(&format!("{other} is not among")),
        "{:?}",
        run.checks[2]
    );

    // A redirect within the allowed host is followed; one off the list is not.
    let run = submit(&app, "hop", &endpoint).await?;
    assert!(run.checks[1].passed, "{:?}", run.checks[1]);
    assert_eq!(
        run.checks[1].detail,
        format!("http://{endpoint}/health/ok answered 200")
    );
    for (name, target) in [
        (
            "escape",
            format!("http://localhost:{}/health/ok", service.port()),
        ),
        (
            "metadata",
            "http://169.254.169.254/latest/meta-data/".to_string(),
        ),
    ] {
        let run = submit(&app, name, &endpoint).await?;
        let http = &run.checks[1];
        assert!(!http.passed);
        assert_eq!(http.tries, 1, "{http:?}");
        assert!(
            http.detail.starts_with(&format!(
                "http://{endpoint}/health/{name} redirects to {target}, which is refused: "
            )) && http.detail.contains(setting),
            "{http:?}"
        );
    }

    // A huge body is read only so far; the word beyond that is not found.
    let run = submit(&app, "huge", &endpoint).await?;
    let http = &run.checks[1];
    assert!(!http.passed);
    assert!(
        http.detail
            .starts_with(r#"the body does not contain "ready" (in its first 1024 KiB)"#),
        "{http:?}"
    );

    // A parameter that makes the URL no URL fails the request, naming the field.
    let run = submit(&app, "blank", "a b").await?;
    assert_eq!(run.state, RequestState::Failed);
    assert!(
        run.reason.starts_with(
            r#"acceptance checks: checks[1].url: "http://a%20b/health/blank" names a host with an encoded character"#
        ),
        "{}",
        run.reason
    );
    assert!(run.checks.is_empty(), "nothing was contacted");
    Ok(())
}
