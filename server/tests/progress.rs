//! Live progress over the real router and a real listener: a job's step and its
//! program's output lines arrive as server-sent events while the job runs, a
//! reconnect with `Last-Event-ID` gets only what came after, someone who may not
//! view the request gets a refusal and no event, and a secret never appears.

#[allow(dead_code, unused_macros)]
mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{TestApp, TestResult, draft};
use reqwest::StatusCode;
use serde_json::{Value, json};
use slipway_core::ids::RequestId;
use slipway_core::state::RequestState;
use slipway_core::views::{TokenRequest, TokenScope};
use slipway_server::orchestrator;
use slipway_server::services::{requests, tokens};
use slipway_server::storage::Engine;

const CANARY: &str = "canary-77d2e1-live-secret";

/// A type whose one step talks, pauses, echoes its secret and talks again.
const CHATTER_TYPE: &str = r#"name: chatter
title: Chatter
description: Prints a few lines with pauses, as a real tool would.
owner: payments
owner_param: team
parameters:
  type: object
  additionalProperties: false
  required: [name, team, token]
  properties:
    name: { type: string, title: Name, pattern: "^[a-z][a-z0-9-]{1,20}$" }
    team: { type: string, title: Team, x-dictionary: teams }
    token: { type: string, title: Token, minLength: 8, x-secret: true }
naming:
  template: "{{ team }}-{{ name }}"
review:
  approvers: { role: reviewer }
  auto_approve: { when: "true" }
outputs:
  - name: plan
    path: "chatter/{{ team }}/{{ name }}.yaml"
    template: chatter/plan.yaml.j2
execute:
  - driver: command
    program: sh
    args:
      - "-c"
      - "echo starting; sleep 1.5; echo \"token is $TOKEN\"; sleep 1.5; echo finished"
    secret_env: { TOKEN: token }
"#;

fn chatter_catalog() -> TestResult<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    common::copy_dir(&common::shipped_catalog(), dir.path())?;
    std::fs::write(dir.path().join("types/chatter.yaml"), CHATTER_TYPE)?;
    std::fs::create_dir_all(dir.path().join("templates/chatter"))?;
    std::fs::write(
        dir.path().join("templates/chatter/plan.yaml.j2"),
        "chatter: {{ resource_name }}\n",
    )?;
    Ok(dir)
}

async fn chatter_app(engine: Engine) -> TestResult<Option<TestApp>> {
    let app = TestApp::start_configured(engine, Some(chatter_catalog()?), |s| {
        s.command.allowed = vec!["sh".into()];
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

/// The real router on a loopback port; its address.
async fn serve(app: &TestApp) -> TestResult<String> {
    let router = slipway_server::cli::router(&app.state, axum::Router::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let service = router.into_make_service_with_connect_info::<SocketAddr>();
        let _ = axum::serve(listener, service).await;
    });
    Ok(format!("http://{addr}"))
}

/// Whether an open stream ends (its caller no longer standing) within a few of
/// the server's checks of its caller.
async fn ends_within_a_standing_check(mut followed: reqwest::Response) -> bool {
    let stopped = tokio::time::timeout(
        slipway_server::http::events::STANDING_CHECKED_EVERY * 3,
        async {
            while followed.chunk().await?.is_some() {}
            Ok::<(), reqwest::Error>(())
        },
    )
    .await;
    matches!(stopped, Ok(Ok(())))
}

/// A portal session of `user`, stored as a sign-in stores it; its id (the
/// cookie's value).
async fn portal_session(app: &TestApp, user: &str) -> TestResult<String> {
    use slipway_server::storage::sessions::{CREDENTIAL_KEY, DbSessionStore, USER_KEY};
    use tower_sessions::SessionStore as _;
    let (id, version): (i64, i64) =
        sqlx::query_as("SELECT id, credential_version FROM users WHERE username = $1")
            .bind(user)
            .fetch_one(&app.state.db.pool)
            .await?;
    let mut record = tower_sessions::session::Record {
        id: tower_sessions::session::Id::default(),
        data: [
            (USER_KEY.to_string(), serde_json::json!(id)),
            (CREDENTIAL_KEY.to_string(), serde_json::json!(version)),
        ]
        .into_iter()
        .collect(),
        expiry_date: tower_sessions::cookie::time::OffsetDateTime::now_utc()
            + tower_sessions::cookie::time::Duration::hours(1),
    };
    DbSessionStore::new(&app.state.db, Duration::from_secs(3600))
        .create(&mut record)
        .await?;
    Ok(record.id.to_string())
}

async fn token(app: &TestApp, user: &str) -> TestResult<String> {
    let caller = app.user(user).await?;
    let request = TokenRequest {
        name: format!("{user} live token"),
        scopes: vec![TokenScope::Read, TokenScope::Request],
        expires_in_days: Some(1),
    };
    Ok(tokens::create(&app.state, &caller, &request).await?.secret)
}

/// One server-sent event as it arrived.
#[derive(Debug, Clone)]
struct Sse {
    id: Option<i64>,
    event: String,
    data: Value,
    /// Whether the job was still running when it arrived.
    while_running: bool,
}

/// Reads a stream until its `end` event (or a deadline), noting for each event
/// whether the worker was still busy; every raw byte is kept to look for secrets.
async fn read_events<T>(
    mut response: reqwest::Response,
    worker: Option<&tokio::task::JoinHandle<T>>,
    raw: &mut String,
) -> TestResult<Vec<Sse>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut events = Vec::new();
    let mut pending = String::new();
    while Instant::now() < deadline {
        let chunk = tokio::time::timeout(Duration::from_secs(10), response.chunk()).await??;
        let Some(chunk) = chunk else { break };
        let text = String::from_utf8_lossy(&chunk).to_string();
        raw.push_str(&text);
        pending.push_str(&text);
        let running = worker.is_some_and(|w| !w.is_finished());
        while let Some(end) = pending.find("\n\n") {
            let block: String = pending.drain(..end + 2).collect();
            if let Some(event) = parse_event(&block, running)? {
                let last = event.event == "end";
                events.push(event);
                if last {
                    return Ok(events);
                }
            }
        }
    }
    Err(format!("the stream did not end; got {events:?}").into())
}

fn parse_event(block: &str, while_running: bool) -> TestResult<Option<Sse>> {
    let (mut id, mut event, mut data) = (None, String::from("message"), String::new());
    for line in block.lines() {
        if let Some(v) = line.strip_prefix("id:") {
            id = Some(v.trim().parse()?);
        } else if let Some(v) = line.strip_prefix("event:") {
            event = v.trim().to_string();
        } else if let Some(v) = line.strip_prefix("data:") {
            data.push_str(v.trim_start());
        }
    }
    if data.is_empty() {
        return Ok(None); // a keep-alive comment or the retry hint
    }
    Ok(Some(Sse {
        id,
        event,
        data: serde_json::from_str(&data)?,
        while_running,
    }))
}

macro_rules! on_both_engines {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $name() -> super::TestResult {
                super::$name(super::Engine::Sqlite).await
            })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $name() -> super::TestResult {
                super::$name(super::Engine::Postgres).await
            })*
        }
    };
}

on_both_engines!(
    steps_and_lines_arrive_as_they_happen_and_resume_after_the_last_seen,
    only_those_who_may_view_the_request_follow_it,
    a_cancelled_run_is_followed_until_its_step_ends,
);

async fn submit_chatter(app: &TestApp, name: &str) -> TestResult<RequestId> {
    let alice = app.user("alice").await?;
    let params = json!({ "name": name, "team": "payments", "token": CANARY });
    let id = requests::submit(&app.state, &alice, &draft("chatter", params)).await?;
    assert_eq!(app.request_state(id).await?, RequestState::Approved);
    Ok(id)
}

async fn steps_and_lines_arrive_as_they_happen_and_resume_after_the_last_seen(
    engine: Engine,
) -> TestResult {
    let Some(app) = chatter_app(engine).await? else {
        return Ok(());
    };
    let base = serve(&app).await?;
    let alice = token(&app, "alice").await?;
    let id = submit_chatter(&app, "talk").await?;
    let http = reqwest::Client::new();
    let url = format!("{base}/api/v1/requests/{id}/events");
    let response = http.get(&url).bearer_auth(&alice).send().await?;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    let state = app.state.clone();
    let worker =
        tokio::spawn(async move { orchestrator::run_once(&state, "live").await.map(|_| ()) });
    let mut raw = String::new();
    let events = read_events(response, Some(&worker), &mut raw).await?;
    worker.await??;

    let texts: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            (
                e.event.as_str(),
                e.data["text"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        texts,
        [
            ("step", "running"),
            ("line", "stdout: starting"),
            ("line", "stdout: token is ***"),
            ("line", "stdout: finished"),
            ("step", "done"),
            ("end", ""),
        ]
    );
    assert!(
        events[1].while_running,
        "a line arrives before the job ends"
    );
    assert!(events[2].while_running, "and the next one too");
    assert_eq!(events[0].data["step"], json!(1));
    assert_eq!(events[0].data["driver"], json!("command"));
    assert!(
        events[4].data["summary"]
            .as_str()
            .is_some_and(|s| s.starts_with("sh exited 0")),
        "{:?}",
        events[4]
    );
    assert_eq!(events[5].data, json!({ "state": "completed" }));
    assert!(!raw.contains(CANARY), "the secret leaked into the stream");
    let ids: Vec<i64> = events.iter().filter_map(|e| e.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");

    // A reconnect resumes after the last event it saw: only later ones, then the end.
    let seen = events[1].id.ok_or("the line has an id")?;
    let resumed = http
        .get(&url)
        .bearer_auth(&alice)
        .header("Last-Event-ID", seen.to_string())
        .send()
        .await?;
    let mut raw_again = String::new();
    let later = read_events::<()>(resumed, None, &mut raw_again).await?;
    let later_ids: Vec<Option<i64>> = later.iter().map(|e| e.id).collect();
    assert_eq!(later_ids, [events[2].id, events[3].id, events[4].id, None]);

    // A garbled or negative `Last-Event-ID` is refused, naming the header,
    // rather than starting over and sending what the client has shown.
    for garbled in ["12abc", "-3", "99999999999999999999"] {
        let refused = http
            .get(&url)
            .bearer_auth(&alice)
            .header("Last-Event-ID", garbled)
            .send()
            .await?;
        assert_eq!(refused.status(), 422, "{garbled}");
        let problem: Value = refused.json().await?;
        assert_eq!(
            problem["errors"][0]["field"],
            json!("Last-Event-ID"),
            "{problem}"
        );
    }

    // The page's read model shows the same lines as the stored log.
    let detail = slipway_server::services::detail::request_detail(
        &app.state,
        &app.user("alice").await?,
        id,
        slipway_server::services::detail::ReviewerRead::Counts,
    )
    .await?;
    assert_eq!(
        detail.steps[0].log,
        "stdout: starting\nstdout: token is ***\nstdout: finished"
    );
    assert_eq!(detail.progress_cursor, ids[ids.len() - 1]);
    Ok(())
}

async fn only_those_who_may_view_the_request_follow_it(engine: Engine) -> TestResult {
    let Some(app) = chatter_app(engine).await? else {
        return Ok(());
    };
    let base = serve(&app).await?;
    let id = submit_chatter(&app, "quiet").await?;
    app.run_jobs().await?;
    let http = reqwest::Client::new();
    let url = format!("{base}/api/v1/requests/{id}/events");

    // Bob reviews for other teams: this request is none of his business, and
    // answers him as a missing one.
    let bob = token(&app, "bob").await?;
    let refused = http.get(&url).bearer_auth(&bob).send().await?;
    assert_eq!(refused.status(), StatusCode::NOT_FOUND);
    let body = refused.text().await?;
    assert!(!body.contains("event:") && !body.contains(CANARY), "{body}");

    let missing = http
        .get(format!("{base}/api/v1/requests/999999/events"))
        .bearer_auth(&bob)
        .send()
        .await?;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    let anonymous = http.get(&url).send().await?;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    // The portal's stream asks for a session: without one, nothing.
    let portal = http
        .get(format!("{base}/requests/{id}/events"))
        .send()
        .await?;
    assert_eq!(portal.status(), StatusCode::UNAUTHORIZED);
    let advice = portal.text().await?;
    assert!(advice.contains("sign in to follow"), "{advice}");
    assert!(
        !advice.contains("Bearer"),
        "a browser is not told to send a token: {advice}"
    );

    // An address or a resume point that does not read is a problem naming it,
    // not the router's plain text.
    let not_a_number = http
        .get(format!("{base}/requests/abc/events"))
        .send()
        .await?;
    assert_eq!(not_a_number.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        not_a_number.headers()["content-type"],
        "application/problem+json"
    );
    let after = http
        .get(format!("{base}/requests/{id}/events?after=x"))
        .send()
        .await?;
    assert_eq!(after.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem = after.text().await?;
    assert!(problem.contains("\"after\""), "{problem}");

    // Carol (platform) may see every request: the whole story, then the end.
    let carol = token(&app, "carol").await?;
    let mut raw = String::new();
    let seen = read_events::<()>(
        http.get(&url).bearer_auth(&carol).send().await?,
        None,
        &mut raw,
    )
    .await?;
    assert_eq!(seen.len(), 6, "{seen:?}");
    assert!(!raw.contains(CANARY));

    // A stream whose token is revoked while it is open ends within the time its
    // caller's standing is checked again, not after its whole minute.
    let waiting = submit_chatter(&app, "waiting").await?;
    let alice = token(&app, "alice").await?;
    let followed = http
        .get(format!("{base}/api/v1/requests/{waiting}/events"))
        .bearer_auth(&alice)
        .send()
        .await?;
    assert_eq!(followed.status(), StatusCode::OK);
    sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE name = 'alice live token'")
        .bind(slipway_server::storage::now_millis())
        .execute(&app.state.db.pool)
        .await?;
    assert!(
        ends_within_a_standing_check(followed).await,
        "a revoked token's stream ends within its standing's check"
    );

    // So does the portal's stream of a session signed out in another tab.
    let session = portal_session(&app, "alice").await?;
    let followed = http
        .get(format!("{base}/requests/{waiting}/events"))
        .header(
            reqwest::header::COOKIE,
            format!("slipway_session={session}"),
        )
        .send()
        .await?;
    assert_eq!(followed.status(), StatusCode::OK);
    let mut conn = app.state.db.pool.acquire().await?;
    assert!(slipway_server::storage::sessions::end_by_id(&mut conn, &session).await?);
    drop(conn);
    assert!(
        ends_within_a_standing_check(followed).await,
        "a signed-out session's stream ends within its standing's check"
    );

    // A stream of a request that waits for its worker ends when the server shuts
    // down, so that the graceful shutdown does not wait on it.
    let mut open = http
        .get(format!("{base}/api/v1/requests/{waiting}/events"))
        .bearer_auth(&carol)
        .send()
        .await?;
    assert_eq!(open.status(), StatusCode::OK);
    app.state.shutdown.cancel();
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        while open.chunk().await?.is_some() {}
        Ok::<(), reqwest::Error>(())
    })
    .await;
    assert!(matches!(closed, Ok(Ok(()))), "the stream ends at shutdown");
    Ok(())
}

/// A cancel settles the request at once, but its worker stops at its next lease
/// renewal and writes the step's end then: the stream follows the run to that end
/// instead of saying `end` as soon as the request is cancelled.
async fn a_cancelled_run_is_followed_until_its_step_ends(engine: Engine) -> TestResult {
    let Some(app) = chatter_app(engine).await? else {
        return Ok(());
    };
    let base = serve(&app).await?;
    let token = token(&app, "alice").await?;
    let id = submit_chatter(&app, "stopped").await?;
    let url = format!("{base}/api/v1/requests/{id}/events");
    let mut response = reqwest::Client::new()
        .get(&url)
        .bearer_auth(&token)
        .send()
        .await?;
    let state = app.state.clone();
    let worker =
        tokio::spawn(async move { orchestrator::run_once(&state, "live").await.map(|_| ()) });
    let (mut events, mut pending, mut cancelled) = (Vec::new(), String::new(), false);
    let deadline = Instant::now() + Duration::from_secs(30);
    while events.last().is_none_or(|e: &Sse| e.event != "end") {
        if Instant::now() > deadline {
            return Err(format!("the stream did not end; got {events:?}").into());
        }
        let chunk = tokio::time::timeout(Duration::from_secs(10), response.chunk()).await??;
        let Some(chunk) = chunk else { break };
        pending.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = pending.find("\n\n") {
            let block: String = pending.drain(..end + 2).collect();
            events.extend(parse_event(&block, !worker.is_finished())?);
        }
        if !cancelled && events.iter().any(|e| e.event == "line") {
            requests::cancel(&app.state, &app.user("alice").await?, id).await?;
            cancelled = true;
        }
    }
    worker.await??;
    let kinds: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            let text = e.data["text"].as_str().or(e.data["state"].as_str());
            (e.event.as_str(), text.unwrap_or_default())
        })
        .collect();
    assert!(cancelled, "{kinds:?}");
    let step_end = kinds
        .iter()
        .position(|(event, text)| *event == "step" && *text != "running")
        .ok_or(format!("the step's end was not streamed: {kinds:?}"))?;
    // A cancel fails a request that is executing.
    assert_eq!(kinds.last(), Some(&("end", "failed")), "{kinds:?}");
    assert!(step_end < kinds.len() - 1, "{kinds:?}");
    let detail = slipway_server::services::detail::request_detail(
        &app.state,
        &app.user("alice").await?,
        id,
        slipway_server::services::detail::ReviewerRead::Counts,
    )
    .await?;
    // The step ended before the worker heard of the cancel (its last step's end
    // cannot be written with the execution's end any more): what it did is
    // recorded as it happened, and the job ends cancelled.
    assert_eq!(detail.steps[0].state, "done", "{:?}", detail.steps[0]);
    assert_eq!(
        detail.job.map(|job| job.state).as_deref(),
        Some("cancelled")
    );
    Ok(())
}
