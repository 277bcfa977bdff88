//! What operators run Slipway with: `/readyz` for the load balancer, `/metrics`
//! for Prometheus (behind a token when one is set), and the SQLite guard that keeps
//! a second process from running jobs on the same database file.

#[allow(dead_code, unused_macros)]
mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::{TestApp, TestResult};
use slipway_server::config::Secret;
use slipway_server::storage::Engine;
use tokio::sync::watch;
use tower::ServiceExt as _;

const METRICS_TOKEN: &str = "scrape-token-0123456789";

async fn get(app: &TestApp, uri: &str, bearer: Option<&str>) -> TestResult<(StatusCode, String)> {
    let router = slipway_server::cli::router(&app.state, axum::Router::new());
    let mut request = Request::get(uri).header(header::HOST, "slipway.test");
    if let Some(token) = bearer {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let response = router.oneshot(request.body(Body::empty())?).await?;
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await?;
    Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
}

#[tokio::test]
async fn readiness_and_metrics_sqlite() -> TestResult {
    readiness_and_metrics(Engine::Sqlite).await
}

#[tokio::test]
async fn readiness_and_metrics_postgres() -> TestResult {
    readiness_and_metrics(Engine::Postgres).await
}

async fn readiness_and_metrics(engine: Engine) -> TestResult {
    let Some(app) = TestApp::start_configured(engine, None, |s| {
        s.workers.workers = 2;
        s.metrics_token = Some(Secret::new(METRICS_TOKEN.into()));
    })
    .await?
    else {
        return Ok(());
    };
    // Configured for two workers, none running yet: not ready, and it says why.
    let (status, body) = get(&app, "/readyz", None).await?;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body)?;
    assert_eq!(answer["database"]["ok"], true);
    assert_eq!(answer["migrations"]["detail"], "current");
    assert_eq!(answer["workers"]["detail"], "0 of 2 running");

    let (stop, stopped) = watch::channel(false);
    let workers = slipway_server::orchestrator::spawn(app.state.clone(), stopped);
    let mut ready = false;
    for _ in 0..100 {
        let (status, _) = get(&app, "/readyz", None).await?;
        if status == StatusCode::OK {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(ready, "ready once the workers run");

    // A request runs through the workers; the metrics show it.
    let alice = app.user("alice").await?;
    let id = slipway_server::services::requests::submit(
        &app.state,
        &alice,
        &common::draft(
            "k8s-namespace",
            common::namespace_params("metered", "payments", "dev", 2),
        ),
    )
    .await?;
    let mut completed = false;
    for _ in 0..200 {
        if app.request_state(id).await? == slipway_core::state::RequestState::Completed {
            completed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(completed, "the workers ran the request");
    let (status, body) = get(&app, "/metrics", None).await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the token is asked for");
    assert!(!body.contains("slipway_"), "{body}");
    let (status, _) = get(&app, "/metrics", Some("scrape-token-0123456788")).await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = get(&app, "/metrics", Some(METRICS_TOKEN)).await?;
    assert_eq!(status, StatusCode::OK);
    for line in [
        "slipway_requests{resource_type=\"k8s-namespace\",state=\"completed\"} 1",
        "slipway_jobs{state=\"queued\"} 0",
        "slipway_jobs{state=\"running\"} 0",
        "slipway_workers_alive 2",
        "slipway_job_lease_takeovers_total 0",
        "slipway_step_duration_seconds_count{driver=\"gitops\",outcome=\"done\"} 1",
    ] {
        assert!(
            body.lines().any(|l| l == line),
            "{line} missing from:\n{body}"
        );
    }
    assert!(body.trim_end().ends_with("# EOF"), "{body}");

    stop.send(true)?;
    workers.await?;
    let (status, body) = get(&app, "/readyz", None).await?;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    Ok(())
}

#[tokio::test]
async fn a_second_process_on_one_sqlite_file_runs_no_workers() -> TestResult {
    let Some(app) = TestApp::start(Engine::Sqlite).await? else {
        return Ok(());
    };
    let first = slipway_server::cli::lock_sqlite_workers(&app.state)?;
    assert!(first.is_some(), "the first process holds the lock");
    let second = app.restart().await?;
    let refused = slipway_server::cli::lock_sqlite_workers(&second)
        .err()
        .ok_or("a second process must be refused")?
        .to_string();
    assert!(
        refused
            .contains("another slipway process already runs the workers on this SQLite database")
            && refused.contains("PostgreSQL"),
        "{refused}"
    );
    // Nor may one that names the file through a symbolic link.
    let url = &app.state.settings.database_url;
    let file = url
        .strip_prefix("sqlite://")
        .and_then(|rest| rest.split('?').next())
        .ok_or(format!("not a SQLite file URL: {url}"))?;
    let elsewhere = tempfile::tempdir()?;
    let link = elsewhere.path().join("same.db");
    std::os::unix::fs::symlink(file, &link)?;
    let through_link = format!("sqlite://{}?mode=rwc", link.display());
    assert!(
        slipway_server::cli::lock_sqlite_file_workers(&through_link).is_err(),
        "a link to the same file finds the same lock"
    );
    // Nor one that spells the file's name percent-encoded, as sqlx reads it.
    let encoded: Vec<String> = file
        .split('/')
        .map(|part| part.bytes().map(|b| format!("%{b:02X}")).collect())
        .collect();
    let encoded = format!("sqlite://{}?mode=rwc", encoded.join("/"));
    assert!(
        slipway_server::cli::lock_sqlite_file_workers(&encoded).is_err(),
        "{encoded} is the same file"
    );
    // An in-memory database is no file another process could open: no lock.
    assert!(
        slipway_server::cli::lock_sqlite_file_workers("sqlite://shared.db?mode=memory")?.is_none()
    );
    // Once the first process is gone, a new one may run them.
    drop(first);
    assert!(slipway_server::cli::lock_sqlite_workers(&second)?.is_some());
    Ok(())
}

#[tokio::test]
async fn housekeeping_forgets_what_a_year_would_pile_up_sqlite() -> TestResult {
    housekeeping_forgets_what_a_year_would_pile_up(Engine::Sqlite).await
}

#[tokio::test]
async fn housekeeping_forgets_what_a_year_would_pile_up_postgres() -> TestResult {
    housekeeping_forgets_what_a_year_would_pile_up(Engine::Postgres).await
}

/// Live progress lines of yesterday and older go (each finished step keeps its
/// own log); today's stay; SQLite gets statistics to plan with.
async fn housekeeping_forgets_what_a_year_would_pile_up(engine: Engine) -> TestResult {
    let Some(app) = TestApp::start(engine).await? else {
        return Ok(());
    };
    let alice = app.user("alice").await?;
    for name in ["old", "new"] {
        app.namespace(&alice, "dev", name).await?;
    }
    let lines = |sql: &'static str| {
        let pool = app.state.db.pool.clone();
        async move { sqlx::query_scalar::<_, i64>(sql).fetch_one(&pool).await }
    };
    let all = lines("SELECT COUNT(*) FROM request_progress").await?;
    assert!(
        all >= 4,
        "each request's steps reported their states: {all}"
    );
    // The first request's progress as if written two days ago.
    let two_days = 2 * 24 * 60 * 60 * 1000_i64;
    sqlx::query(
        "UPDATE request_progress SET created_at = created_at - $1 \
         WHERE request_id = (SELECT MIN(id) FROM requests)",
    )
    .bind(two_days)
    .execute(&app.state.db.pool)
    .await?;
    let old = lines(
        "SELECT COUNT(*) FROM request_progress WHERE request_id = (SELECT MIN(id) FROM requests)",
    )
    .await?;
    assert!(old > 0);
    slipway_server::housekeeping::tidy(&app.state).await;
    assert_eq!(
        lines("SELECT COUNT(*) FROM request_progress").await?,
        all - old
    );
    // A thousand lines a millisecond apart, two days ago: the cut falls between
    // two of them, found by halving the ids (not by walking back through a day).
    let base = slipway_server::storage::now_millis() - two_days;
    let (request_id, step_id): (i64, i64) =
        sqlx::query_as("SELECT request_id, step_id FROM request_progress ORDER BY id LIMIT 1")
            .fetch_one(&app.state.db.pool)
            .await?;
    app.exec("DELETE FROM request_progress").await?;
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 999) \
         INSERT INTO request_progress (request_id, step_id, kind, text, created_at) \
         SELECT $1, $2, 'line', 'filler', $3 + n.i FROM n",
    )
    .bind(request_id)
    .bind(step_id)
    .bind(base)
    .execute(&app.state.db.pool)
    .await?;
    let before = lines("SELECT COUNT(*) FROM request_progress").await?;
    let gone = slipway_server::storage::progress::forget_before(&app.state.db, base + 600).await?;
    assert_eq!(gone, 600);
    assert_eq!(
        lines("SELECT COUNT(*) FROM request_progress").await?,
        before - 600
    );
    assert_eq!(
        slipway_server::storage::progress::forget_before(&app.state.db, base + 600).await?,
        0
    );
    if engine == Engine::Sqlite {
        let analyzed = lines("SELECT COUNT(*) FROM sqlite_stat1").await?;
        assert!(analyzed > 0, "PRAGMA optimize gathered statistics");
    }
    Ok(())
}

#[tokio::test]
async fn tokens_ended_over_a_year_ago_are_deleted_sqlite() -> TestResult {
    tokens_ended_over_a_year_ago_are_deleted(Engine::Sqlite).await
}

#[tokio::test]
async fn tokens_ended_over_a_year_ago_are_deleted_postgres() -> TestResult {
    tokens_ended_over_a_year_ago_are_deleted(Engine::Postgres).await
}

/// Expired or revoked over a year ago: deleted. Ended since, or live: kept. A
/// long-ended token that a live token was made with is kept while that one is
/// (its end is what keeps the other unusable), and goes after it.
async fn tokens_ended_over_a_year_ago_are_deleted(engine: Engine) -> TestResult {
    let Some(app) = TestApp::start(engine).await? else {
        return Ok(());
    };
    let alice = app.user("alice").await?;
    let now = slipway_server::storage::now_millis();
    let day = 24 * 60 * 60 * 1000_i64;
    let long_ago = now - slipway_server::housekeeping::KEEP_ENDED_TOKENS_MS - day;
    let insert =
        async |name: &str, expires_at: i64, revoked_at: Option<i64>, parent: Option<i64>| {
            sqlx::query_scalar::<_, i64>(
                "INSERT INTO api_tokens (user_id, name, prefix, secret_hash, scopes, created_at, \
             expires_at, revoked_at, parent_id) \
             VALUES ($1, $2, 'slw_x', $3, 'read', $4, $5, $6, $7) RETURNING id",
            )
            .bind(alice.id.0)
            .bind(name)
            .bind(format!("hash of {name}"))
            .bind(long_ago - 30 * day)
            .bind(expires_at)
            .bind(revoked_at)
            .bind(parent)
            .fetch_one(&app.state.db.pool)
            .await
        };
    insert("expired long ago", long_ago, None, None).await?;
    insert("revoked long ago", now + day, Some(long_ago), None).await?;
    insert("expired last month", now - 30 * day, None, None).await?;
    insert("live", now + day, None, None).await?;
    let parent = insert("parent, expired long ago", long_ago, None, None).await?;
    let child = insert("made with the parent", now + day, None, Some(parent)).await?;
    let names = async || {
        sqlx::query_scalar::<_, String>("SELECT name FROM api_tokens ORDER BY id")
            .fetch_all(&app.state.db.pool)
            .await
    };
    slipway_server::housekeeping::tidy(&app.state).await;
    assert_eq!(
        names().await?,
        [
            "expired last month",
            "live",
            "parent, expired long ago",
            "made with the parent"
        ]
    );
    let mut conn = app.state.db.pool.acquire().await?;
    assert!(
        slipway_server::storage::tokens::usable_by_id(&mut conn, child)
            .await?
            .is_none(),
        "the kept parent's end still stops the token made with it"
    );
    drop(conn);
    sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2")
        .bind(long_ago)
        .bind(child)
        .execute(&app.state.db.pool)
        .await?;
    slipway_server::housekeeping::tidy(&app.state).await;
    slipway_server::housekeeping::tidy(&app.state).await;
    assert_eq!(names().await?, ["expired last month", "live"]);
    Ok(())
}

/// Scrapes at once (a pair of Prometheus servers) each get every series: the
/// gauges read from the database are rebuilt and encoded by one scrape at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scrapes_at_once_each_get_every_series() -> TestResult {
    let Some(app) = TestApp::start(Engine::Sqlite).await? else {
        return Ok(());
    };
    let alice = app.user("alice").await?;
    app.namespace(&alice, "dev", "scraped").await?;
    let state = std::sync::Arc::new(app.state.clone());
    for _ in 0..20 {
        let scrapes: Vec<_> = (0..8)
            .map(|_| {
                let state = state.clone();
                tokio::spawn(async move { state.metrics.render(&state.db).await })
            })
            .collect();
        for scrape in scrapes {
            let text = scrape.await??;
            for line in [
                "slipway_jobs{state=\"queued\"} 0",
                "slipway_database_up 1",
                "slipway_requests{resource_type=\"k8s-namespace\",state=\"completed\"} 1",
            ] {
                assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
            }
        }
    }
    Ok(())
}

/// A scrape while the database cannot be read still answers the process's own
/// series, with `database_up` 0 and no counts that would look current.
#[tokio::test]
async fn a_scrape_during_a_database_outage_keeps_the_process_series() -> TestResult {
    let Some(app) = TestApp::start(Engine::Sqlite).await? else {
        return Ok(());
    };
    let alice = app.user("alice").await?;
    app.namespace(&alice, "dev", "scraped").await?;
    let state = &app.state;
    // The pool that the gauges read through, closed: every read fails at once.
    state.db.pool.close().await;
    let outage = state.metrics.render(&state.db).await?;
    assert!(
        outage.lines().any(|l| l == "slipway_database_up 0"),
        "{outage}"
    );
    assert!(outage.contains("slipway_workers_alive"), "{outage}");
    assert!(
        outage.contains("slipway_job_lease_takeovers_total"),
        "{outage}"
    );
    assert!(!outage.contains("slipway_requests{"), "{outage}");
    Ok(())
}

/// A call while the database cannot answer is a 503 that asks to come back
/// (`Retry-After`) and says nothing was changed, not a server fault.
#[tokio::test]
async fn a_call_during_a_database_outage_is_asked_to_come_back() -> TestResult {
    use slipway_core::views::{TokenRequest, TokenScope};
    let Some(app) = TestApp::start(Engine::Sqlite).await? else {
        return Ok(());
    };
    let alice = app.user("alice").await?;
    let made = slipway_server::services::tokens::create(
        &app.state,
        &alice,
        &TokenRequest {
            name: "outage".into(),
            scopes: vec![TokenScope::Read],
            expires_in_days: Some(1),
        },
    )
    .await?;
    let router = slipway_server::cli::router(&app.state, axum::Router::new());
    app.state.db.pool.close().await;
    app.state.db.writer.close().await;
    let request = Request::get("/api/v1/requests")
        .header(header::HOST, "slipway.test")
        .header(header::AUTHORIZATION, format!("Bearer {}", made.secret))
        .body(Body::empty())?;
    let response = router.oneshot(request).await?;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok()),
        Some("5")
    );
    let body = axum::body::to_bytes(response.into_body(), 64 * 1024).await?;
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("cannot be reached right now"), "{text}");
    Ok(())
}

/// Workers that are alive but cannot claim a job (a database that refuses the
/// writes: read-only after a failover, a full disk; here a trigger refuses every
/// change to the queue) are not ready once that has lasted ten seconds, and
/// ready again when a claim goes through.
#[tokio::test]
async fn workers_that_cannot_claim_are_not_ready() -> TestResult {
    let Some(app) = TestApp::start_configured(Engine::Sqlite, None, |s| {
        s.workers.workers = 2;
    })
    .await?
    else {
        return Ok(());
    };
    let pool = app.state.db.writer.clone();
    sqlx::query(
        "CREATE TRIGGER refuse_claims BEFORE UPDATE ON jobs \
         BEGIN SELECT RAISE(ABORT, 'the queue is read-only'); END",
    )
    .execute(&pool)
    .await?;
    let alice = app.user("alice").await?;
    let id = slipway_server::services::requests::submit(
        &app.state,
        &alice,
        &common::draft(
            "k8s-namespace",
            common::namespace_params("stuck", "payments", "dev", 1),
        ),
    )
    .await?;
    let (stop, stopped) = watch::channel(false);
    let workers = slipway_server::orchestrator::spawn(app.state.clone(), stopped);
    let mut answer = serde_json::Value::Null;
    for _ in 0..40 {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let (status, body) = get(&app, "/readyz", None).await?;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            answer = serde_json::from_str(&body)?;
            break;
        }
    }
    let detail = answer["workers"]["detail"].as_str().unwrap_or_default();
    assert!(
        detail.starts_with("2 of 2 running, but they could not claim jobs for ")
            && detail.ends_with("(see the log)"),
        "{answer}"
    );
    assert!(
        !detail.contains("the queue is read-only"),
        "the database's own words stay in the log: {answer}"
    );
    assert_eq!(answer["database"]["ok"], true, "{answer}");

    sqlx::query("DROP TRIGGER refuse_claims")
        .execute(&pool)
        .await?;
    let mut ready = false;
    for _ in 0..40 {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        if get(&app, "/readyz", None).await?.0 == StatusCode::OK {
            ready = true;
            break;
        }
    }
    assert!(ready, "ready again once a claim goes through");
    for _ in 0..100 {
        if app.request_state(id).await? == slipway_core::state::RequestState::Completed {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        app.request_state(id).await?,
        slipway_core::state::RequestState::Completed
    );
    stop.send(true)?;
    workers.await?;
    Ok(())
}
