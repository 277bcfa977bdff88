//! Flow metrics from a scripted history driven through the real services, on
//! SQLite and (with `SLIPWAY_TEST_POSTGRES_URL`) PostgreSQL: the figures, who may
//! read them (service and REST), and the migration's backfill from the audit log.

#[allow(dead_code)]
#[macro_use]
mod common;

use std::net::SocketAddr;

use common::{TestApp, TestResult, draft, namespace_params};
use reqwest::StatusCode;
use serde_json::Value;
use slipway_core::flow::{
    self, FlowMetrics, FlowQuery, OpenRequest, TypeFlow, TypeWaiting, WaitingStep, What,
};
use slipway_core::ids::RequestId;
use slipway_core::state::RequestState;
use slipway_core::views::{ActionDraft, ReviewDecision, TokenRequest, TokenScope};
use slipway_server::services::{ServiceError, actions, flow as flow_service, operations, requests};
use slipway_server::services::{reviews, tokens};
use slipway_server::storage::{self, Engine};
use sqlx::Row;

on_both_engines!(
    figures_of_a_scripted_history,
    each_step_starts_where_the_one_before_ended,
    only_the_platform_team_and_auditors_read_them,
    the_backfill_rebuilds_the_steps_from_the_audit_log,
    seeded_requests_walk_the_flow_too,
    a_request_left_in_review_waits_now_until_decided,
    waiting_now_reads_its_index_at_100k_requests,
    creations_and_actions_are_counted_apart,
    another_type_or_action_of_a_window_reads_nothing_again,
    the_window_reads_its_covering_indexes_at_scale,
    a_window_read_in_two_parts_is_the_window_read_whole,
);

const NS: &str = "k8s-namespace";

async fn submit(app: &TestApp, name: &str, environment: &str) -> TestResult<RequestId> {
    let alice = app.user("alice").await?;
    let params = namespace_params(name, "payments", environment, 2);
    Ok(requests::submit(&app.state, &alice, &draft(NS, params)).await?)
}

async fn decide(app: &TestApp, id: RequestId, revision: i64, d: ReviewDecision) -> TestResult {
    let bob = app.user("bob").await?;
    reviews::decide(&app.state, &bob, id, revision, d, "scripted").await?;
    Ok(())
}

async fn resubmit(app: &TestApp, id: RequestId, name: &str, cpu: i64) -> TestResult {
    let alice = app.user("alice").await?;
    let params = namespace_params(name, "payments", "prod", cpu);
    requests::resubmit(&app.state, &alice, id, &params).await?;
    Ok(())
}

/// Four namespaces: sent back once then completed; auto-approved and completed;
/// approved, failed and resolved by hand; sent back twice then cancelled.
async fn scripted_history(app: &TestApp) -> TestResult {
    let reworked = submit(app, "alpha", "prod").await?;
    decide(app, reworked, 1, ReviewDecision::RequestChanges).await?;
    resubmit(app, reworked, "alpha", 3).await?;
    decide(app, reworked, 2, ReviewDecision::Approve).await?;

    let auto = submit(app, "beta", "dev").await?;
    assert_eq!(app.request_state(auto).await?, RequestState::Approved);

    let failing = submit(app, "gamma", "prod").await?;
    decide(app, failing, 1, ReviewDecision::Approve).await?;
    // An approved hash that matches nothing: the worker refuses to apply.
    app.exec(&format!(
        "UPDATE requests SET approved_hash = 'tampered' WHERE id = {failing}"
    ))
    .await?;
    app.run_jobs().await?;
    for id in [reworked, auto] {
        assert_eq!(app.request_state(id).await?, RequestState::Completed);
    }
    assert_eq!(app.request_state(failing).await?, RequestState::Failed);
    let carol = app.user("carol").await?;
    operations::take_over(&app.state, &carol, failing).await?;
    operations::resolve(&app.state, &carol, failing, "made by hand").await?;

    let abandoned = submit(app, "delta", "prod").await?;
    decide(app, abandoned, 1, ReviewDecision::RequestChanges).await?;
    resubmit(app, abandoned, "delta", 3).await?;
    decide(app, abandoned, 2, ReviewDecision::RequestChanges).await?;
    requests::cancel(&app.state, &app.user("alice").await?, abandoned).await?;
    Ok(())
}

/// A step's time in its state runs from the step before it (the request's
/// creation for the first), and a completed request's lead time from its first
/// submit: the row's `updated_at` tells the worker when the state began, with no
/// read of the steps before.
async fn each_step_starts_where_the_one_before_ended(app: &TestApp) -> TestResult {
    scripted_history(app).await?;
    let rows = sqlx::query(
        "SELECT s.request_id, s.action, s.entered_at, s.at, s.duration_ms, s.lead_ms, \
         r.created_at FROM flow_steps s JOIN requests r ON r.id = s.request_id \
         ORDER BY s.request_id, s.id",
    )
    .fetch_all(&app.state.db.pool)
    .await?;
    assert!(rows.len() > 20, "{} steps", rows.len());
    let mut previous: Option<(i64, i64)> = None;
    let mut first_submit = None;
    for row in &rows {
        let request: i64 = row.try_get("request_id")?;
        let (entered, at): (i64, i64) = (row.try_get("entered_at")?, row.try_get("at")?);
        let action: String = row.try_get("action")?;
        let lead: Option<i64> = row.try_get("lead_ms")?;
        let expected = match previous {
            Some((id, last)) if id == request => last,
            _ => {
                first_submit = None;
                row.try_get("created_at")?
            }
        };
        assert_eq!(entered, expected, "request {request}, {action}");
        assert_eq!(row.try_get::<i64, _>("duration_ms")?, at - entered);
        if action == "submit" && first_submit.is_none() {
            first_submit = Some(at);
        }
        let completes = matches!(action.as_str(), "verification_passed" | "resolve_manually");
        match (completes, first_submit) {
            (true, Some(submitted)) => assert_eq!(lead, Some(at - submitted), "{action}"),
            _ => assert_eq!(lead, None, "request {request}, {action}"),
        }
        previous = Some((request, at));
    }
    Ok(())
}

fn namespace_figures(m: &FlowMetrics) -> TestResult<&TypeFlow> {
    Ok(m.types
        .iter()
        .find(|t| t.type_name == NS)
        .ok_or("no figures for namespaces")?)
}

async fn figures_of_a_scripted_history(app: &TestApp) -> TestResult {
    scripted_history(app).await?;
    let carol = app.user("carol").await?;
    let m = flow_service::flow_metrics(&app.state, &carol, &FlowQuery::default()).await?;
    assert_eq!(m.weeks, 12);
    assert_eq!(m.trend.len(), 12);
    let ns = namespace_figures(&m)?;
    let r = ns.rates;
    assert_eq!((r.submitted, r.completed, r.reviewed), (4, 3, 3));
    assert_eq!((r.sent_back, r.change_rounds), (2, 3));
    assert_eq!(r.rework_rate, Some(2.0 / 3.0));
    assert_eq!(r.rounds_per_request, Some(1.0));
    assert_eq!((r.auto_approved, r.approved_by_person), (1, 2));
    assert_eq!(r.auto_approval_share, Some(1.0 / 3.0));
    assert_eq!((r.executed, r.failed, r.manual), (3, 1, 1));
    assert_eq!(r.failure_rate, Some(1.0 / 3.0));
    assert_eq!(r.manual_rate, Some(1.0 / 3.0));
    assert_eq!(ns.lead.count, 3);
    let visited: Vec<RequestState> = ns.steps.iter().map(|s| s.step).collect();
    for step in [
        RequestState::Submitted,
        RequestState::InReview,
        RequestState::ChangesRequested,
        RequestState::Approved,
        RequestState::Executing,
        RequestState::Failed,
        RequestState::Manual,
    ] {
        assert!(visited.contains(&step), "{step} missing from {visited:?}");
    }
    // Everything happened this week: its point of the trend holds every count.
    let this_week = m.trend.last().ok_or("an empty trend")?;
    assert_eq!(this_week.rates, r);
    assert_eq!(m.all.rates, r, "one type: all types are the same");

    // The trend of one type, and a name no type could have.
    let one = FlowQuery {
        weeks: Some(2),
        type_name: Some(NS.into()),
        action: None,
    };
    let m = flow_service::flow_metrics(&app.state, &carol, &one).await?;
    assert_eq!((m.weeks, m.trend_type.as_deref()), (2, Some(NS)));
    let malformed = FlowQuery {
        weeks: None,
        type_name: Some("No such type!".into()),
        action: None,
    };
    for bad in [
        malformed,
        FlowQuery {
            weeks: Some(53),
            type_name: None,
            action: None,
        },
    ] {
        match flow_service::flow_metrics(&app.state, &carol, &bad).await {
            Err(ServiceError::Invalid(fields)) => assert_eq!(fields.len(), 1),
            other => panic!("{bad:?} must be Invalid, got {other:?}"),
        }
    }

    // A type removed from the catalog: its history, and its trend, are still true.
    // (Renamed in place, the steps are not new ones: a window read before the
    // rename would be used again, so another window is asked.)
    app.exec("UPDATE flow_steps SET type_name = 'retired-queue'")
        .await?;
    let retired = FlowQuery {
        weeks: Some(3),
        type_name: Some("retired-queue".into()),
        action: None,
    };
    let m = flow_service::flow_metrics(&app.state, &carol, &retired).await?;
    assert_eq!(m.trend_type.as_deref(), Some("retired-queue"));
    let types: Vec<&str> = m.types.iter().map(|t| t.type_name.as_str()).collect();
    assert_eq!(types, ["retired-queue"]);
    assert_eq!(m.trend.last().ok_or("an empty trend")?.rates, r);
    Ok(())
}

async fn api_get(app: &TestApp, path: &str, user: &str) -> TestResult<(StatusCode, Value)> {
    let caller = app.user(user).await?;
    let request = TokenRequest {
        name: format!("{user} metrics token"),
        scopes: vec![TokenScope::Read],
        expires_in_days: Some(1),
    };
    let secret = tokens::create(&app.state, &caller, &request).await?.secret;
    let router = slipway_server::cli::router(&app.state, axum::Router::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let service = router.into_make_service_with_connect_info::<SocketAddr>();
        let _ = axum::serve(listener, service).await;
    });
    let response = reqwest::Client::new()
        .get(format!("http://{addr}/api/v1{path}"))
        .bearer_auth(secret)
        .send()
        .await?;
    Ok((response.status(), response.json().await?))
}

async fn only_the_platform_team_and_auditors_read_them(app: &TestApp) -> TestResult {
    submit(app, "epsilon", "dev").await?;
    for developer in ["alice", "bob"] {
        let caller = app.user(developer).await?;
        let answer = flow_service::flow_metrics(&app.state, &caller, &FlowQuery::default()).await;
        assert!(
            matches!(answer, Err(ServiceError::Forbidden(_))),
            "{developer}: {answer:?}"
        );
        let (status, body) = api_get(app, "/metrics/flow", developer).await?;
        assert_eq!(status, StatusCode::FORBIDDEN, "{developer}: {body}");
        // Told so before anything about the query, as the page does.
        let (status, body) = api_get(app, "/metrics/flow?weeks=abc&bogus=1", developer).await?;
        assert_eq!(status, StatusCode::FORBIDDEN, "{developer}: {body}");
    }
    let (status, body) = api_get(app, "/metrics/flow?weeks=4", "carol").await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["weeks"], 4);
    assert_eq!(body["all"]["rates"]["auto_approved"], 1);
    let (status, body) = api_get(app, "/metrics/flow?weeks=0", "carol").await?;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["errors"][0]["field"], "weeks");
    let document = serde_json::to_value(slipway_server::api::openapi())?;
    assert!(
        document["paths"]["/api/v1/metrics/flow"]["get"].is_object(),
        "the endpoint is documented"
    );
    Ok(())
}

/// (request, from, to, action, actor kind, at, lead?, request action) of every
/// stored step.
type Step = (
    i64,
    String,
    String,
    String,
    String,
    i64,
    bool,
    Option<String>,
);

async fn stored_steps(app: &TestApp) -> TestResult<Vec<Step>> {
    let rows = sqlx::query(
        "SELECT request_id, from_state, to_state, action, actor_kind, at, lead_ms, \
         duration_ms, bucket, request_action FROM flow_steps ORDER BY request_id, at, id",
    )
    .fetch_all(&app.state.db.pool)
    .await?;
    let mut steps = Vec::new();
    for row in rows {
        let (duration, bucket): (i64, i64) = (row.try_get("duration_ms")?, row.try_get("bucket")?);
        assert_eq!(
            bucket,
            flow::bucket_of(duration),
            "SQL and core buckets agree"
        );
        let lead: Option<i64> = row.try_get("lead_ms")?;
        steps.push((
            row.try_get("request_id")?,
            row.try_get("from_state")?,
            row.try_get("to_state")?,
            row.try_get("action")?,
            row.try_get("actor_kind")?,
            row.try_get("at")?,
            lead.is_some(),
            row.try_get("request_action")?,
        ));
    }
    Ok(steps)
}

/// The backfill statements of this engine's migration `name` (from its
/// "Backfill" note on).
fn backfill_sql(engine: Engine, name: &str) -> TestResult<Vec<String>> {
    let dir = match engine {
        Engine::Sqlite => "sqlite",
        Engine::Postgres => "postgres",
    };
    let path = format!(
        "{}/../migrations/{dir}/{name}.sql",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(path)?;
    let start = text
        .find("-- Backfill")
        .ok_or("no backfill in the migration")?;
    let code: String = text[start..]
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    Ok(code
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect())
}

/// The migrations that fill `flow_steps`: the steps from the audit log, then
/// what each step's request does from the requests.
const BACKFILLS: [&str; 2] = [
    "20261206000001_flow_metrics",
    "20261225000001_flow_steps_request_action",
];

async fn the_backfill_rebuilds_the_steps_from_the_audit_log(app: &TestApp) -> TestResult {
    scripted_history(app).await?;
    resized_namespace(app).await?;
    let written = stored_steps(app).await?;
    assert!(written.len() > 20, "{written:?}");
    assert!(
        written.iter().any(|w| w.7.as_deref() == Some("resize")),
        "{written:?}"
    );
    app.exec("DELETE FROM flow_steps").await?;
    for migration in BACKFILLS {
        for statement in backfill_sql(app.state.db.engine, migration)? {
            app.exec(&statement).await?;
        }
    }
    let rebuilt = stored_steps(app).await?;
    assert_eq!(rebuilt.len(), written.len());
    for (w, r) in written.iter().zip(&rebuilt) {
        // The audit event's clock is read a moment after the step's.
        assert!((w.5 - r.5).abs() < 1000, "{w:?} vs {r:?}");
        assert_eq!(
            (&w.0, &w.1, &w.2, &w.3, &w.4, w.6, &w.7),
            (&r.0, &r.1, &r.2, &r.3, &r.4, r.6, &r.7)
        );
    }
    // Run again (an interrupted migration retried), it writes the same values.
    for statement in backfill_sql(app.state.db.engine, BACKFILLS[1])? {
        app.exec(&statement).await?;
    }
    assert_eq!(stored_steps(app).await?, rebuilt);
    // Steps a replica on the previous build recorded without what their request
    // does are filled in by the housekeeping, and only those.
    app.exec("UPDATE flow_steps SET request_action = NULL")
        .await?;
    let mut conn = app.state.db.write().await?;
    let filled = slipway_server::storage::flow::fill_request_actions(&mut conn).await?;
    conn.commit().await?;
    assert!(filled > 0);
    assert_eq!(stored_steps(app).await?, rebuilt);
    let mut conn = app.state.db.write().await?;
    let again = slipway_server::storage::flow::fill_request_actions(&mut conn).await?;
    conn.commit().await?;
    assert_eq!(again, 0, "filled ones are not written again");
    Ok(())
}

/// `slipway dev seed` records each request's path through the flow, so a demo's
/// metrics page has a year of figures to draw.
async fn seeded_requests_walk_the_flow_too(app: &TestApp) -> TestResult {
    let plan = slipway_server::seed::SeedPlan {
        requests: 300,
        audit_events: 0,
    };
    slipway_server::seed::seed(&app.state, plan).await?;
    let submitted: i64 = sqlx::query_scalar(
        "SELECT COUNT(DISTINCT request_id) FROM flow_steps WHERE action = 'submit'",
    )
    .fetch_one(&app.state.db.pool)
    .await?;
    assert_eq!(submitted, 300, "every seeded request was submitted");
    let carol = app.user("carol").await?;
    let year = FlowQuery {
        weeks: Some(52),
        type_name: None,
        action: None,
    };
    let m = flow_service::flow_metrics(&app.state, &carol, &year).await?;
    let r = m.all.rates;
    assert!(
        r.submitted > 200 && r.completed > 0 && r.sent_back > 0,
        "{r:?}"
    );
    assert!(
        r.failed > 0 && r.auto_approved + r.approved_by_person > 0,
        "{r:?}"
    );
    assert!(m.all.lead.median_ms.is_some_and(|ms| ms > 0));
    assert!(m.all.steps.len() >= 6, "{:?}", m.all.steps);
    // Each week's rates divide requests by a set that holds them, as the SQL
    // counts them on either engine.
    for week in &m.trend {
        let r = &week.rates;
        let rates = [
            r.rework_rate,
            r.auto_approval_share,
            r.failure_rate,
            r.manual_rate,
        ];
        assert!(
            rates.into_iter().flatten().all(|rate| rate <= 1.0),
            "week {}: {r:?}",
            week.week_start_ms
        );
        assert!(r.sent_back <= r.reviewed && r.failed <= r.executed, "{r:?}");
    }
    Ok(())
}

const DAY_MS: i64 = 24 * 3_600_000;

fn waiting_in(w: &TypeWaiting, step: RequestState) -> TestResult<WaitingStep> {
    Ok(*w
        .steps
        .iter()
        .find(|s| s.step == step)
        .ok_or_else(|| format!("no {step} in {w:?}"))?)
}

/// A request nobody decides on for five days shows in "waiting now" with its age,
/// in any window, while the window's figures cannot count it (they count a step
/// when a request leaves it); once decided it leaves for the next step.
async fn a_request_left_in_review_waits_now_until_decided(app: &TestApp) -> TestResult {
    let id = submit(app, "stuck", "prod").await?;
    assert_eq!(app.request_state(id).await?, RequestState::InReview);
    let entered = storage::now_millis() - 5 * DAY_MS;
    app.exec(&format!(
        "UPDATE requests SET updated_at = {entered} WHERE id = {id}"
    ))
    .await?;
    let carol = app.user("carol").await?;
    for weeks in [1, 12, 52] {
        let query = FlowQuery {
            weeks: Some(weeks),
            type_name: None,
            action: None,
        };
        let m = flow_service::flow_metrics(&app.state, &carol, &query).await?;
        assert!(
            m.all.steps.iter().all(|s| s.step != RequestState::InReview),
            "still in review: not in the window's steps"
        );
        let review = waiting_in(&m.waiting.all, RequestState::InReview)?;
        assert_eq!(review.requests, 1, "{weeks} weeks: {:?}", m.waiting);
        let age = review.oldest_ms.ok_or("no age")?;
        assert!((5 * DAY_MS..5 * DAY_MS + 60_000).contains(&age), "{age}");
        assert_eq!(review.median_ms, Some(age));
        assert_eq!(m.waiting.all.requests(), 1);
        assert_eq!(m.waiting.of_type(Some(NS)).steps, m.waiting.all.steps);
    }
    let (status, body) = api_get(app, "/metrics/flow?weeks=1", "carol").await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    let steps = body["waiting"]["all"]["steps"]
        .as_array()
        .ok_or("no waiting steps in the API's answer")?;
    let review = steps
        .iter()
        .find(|s| s["step"] == "in_review")
        .ok_or("no in_review")?;
    assert_eq!(review["requests"], 1, "{body}");
    assert!(review["oldest_ms"].as_i64() >= Some(5 * DAY_MS), "{body}");

    decide(app, id, 1, ReviewDecision::Approve).await?;
    // A year's figures may be shared for 15 s whatever happens; what waits now
    // is read afresh.
    let year = FlowQuery {
        weeks: Some(52),
        type_name: None,
        action: None,
    };
    let shared = flow_service::flow_metrics(&app.state, &carol, &year).await?;
    assert_eq!(
        waiting_in(&shared.waiting.all, RequestState::InReview)?.requests,
        0
    );
    let m = flow_service::flow_metrics(&app.state, &carol, &FlowQuery::default()).await?;
    let review = waiting_in(&m.waiting.all, RequestState::InReview)?;
    assert_eq!((review.requests, review.oldest_ms), (0, None));
    let approved = waiting_in(&m.waiting.all, RequestState::Approved)?;
    assert_eq!(approved.requests, 1);
    assert!(
        approved.oldest_ms.is_some_and(|ms| ms < 60_000),
        "{approved:?}"
    );
    // Its five days in review now count in the window's steps.
    let in_review = m
        .all
        .steps
        .iter()
        .find(|s| s.step == RequestState::InReview)
        .ok_or("the review left is a step of the window")?;
    assert!(in_review.durations.total_ms >= 5 * DAY_MS);

    app.run_jobs().await?;
    assert_eq!(app.request_state(id).await?, RequestState::Completed);
    let m = flow_service::flow_metrics(&app.state, &carol, &FlowQuery::default()).await?;
    assert_eq!(m.waiting.all.requests(), 0, "{:?}", m.waiting);
    assert!(m.waiting.types.is_empty());
    Ok(())
}

/// Every request that does `what` in a step of the flow, read plainly.
async fn open_requests(app: &TestApp, what: &What) -> TestResult<Vec<OpenRequest>> {
    let rows = sqlx::query("SELECT state, type_name, updated_at, action FROM requests")
        .fetch_all(&app.state.db.pool)
        .await?;
    let mut open = Vec::new();
    for row in rows {
        let action: Option<String> = row.try_get("action")?;
        if !what.counts(action.as_deref()) {
            continue;
        }
        let state: String = row.try_get("state")?;
        open.push(OpenRequest {
            state: state.parse()?,
            type_name: row.try_get("type_name")?,
            entered_at: row.try_get("updated_at")?,
        });
    }
    Ok(open)
}

/// At 100k requests (a fifth of them in the flow, with ties in their times, a
/// seventh of them day-2 actions) the figures come from `requests_state_entered_action`
/// without reading the table whole, and agree with the plain reference ranking
/// of every request, for creations, one action and every request alike.
async fn waiting_now_reads_its_index_at_100k_requests(app: &TestApp) -> TestResult {
    let numbers = match app.engine {
        Engine::Sqlite => {
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000) "
        }
        Engine::Postgres => "WITH n(i) AS (SELECT generate_series(1, 100000)) ",
    };
    let now = storage::now_millis();
    app.exec(&format!(
        "INSERT INTO requests (type_name, resource_name, requester_id, state, current_revision, \
         submit_key, created_at, updated_at, action) \
         {numbers} SELECT CASE i % 3 WHEN 0 THEN 'postgres-database' WHEN 1 THEN '{NS}' \
         ELSE 'shared-database' END, 'bulk', (SELECT id FROM users WHERE username = 'carol'), \
         CASE i % 20 WHEN 0 THEN 'in_review' WHEN 1 THEN 'approved' WHEN 2 THEN 'failed' \
         WHEN 3 THEN 'draft' WHEN 4 THEN 'cancelled' WHEN 5 THEN 'executing' \
         ELSE 'completed' END, 1, 'bulk-' || CAST(i AS TEXT), {created}, \
         {now} - CAST(i % 997 AS BIGINT) * 3600000, \
         CASE i % 7 WHEN 0 THEN 'resize' WHEN 1 THEN 'backup' ELSE NULL END FROM n",
        created = now - 90 * DAY_MS,
    ))
    .await?;
    assert!(app.count("requests").await? >= 100_000);
    let mut conn = app.state.db.pool.acquire().await?;
    if app.engine == Engine::Postgres {
        sqlx::query("ANALYZE requests").execute(&mut *conn).await?;
    }
    let whats = [What::Creations, What::Action("resize".into()), What::Every];
    for what in &whats {
        let plan = storage::flow::waiting_plan(&mut conn, app.engine, what).await?;
        assert!(plan.contains("requests_state_entered_action"), "{plan}");
        assert!(!plan.contains("Seq Scan"), "{plan}");
        for line in plan.lines() {
            // SQLite: a SCAN of the table without an index reads it whole (a SCAN
            // of the ranked subquery reads only the open requests' rows).
            assert!(
                !line.contains("SCAN requests") || line.contains("INDEX"),
                "reads the whole table:\n{plan}"
            );
        }
    }
    drop(conn);

    let mut in_review = Vec::new();
    for what in &whats {
        let now = storage::now_millis();
        let rows = storage::flow::waiting(&app.state.db.pool, what).await?;
        assert!(
            rows.len() <= 3 * 4 * 4,
            "a few ranks per line: {}",
            rows.len()
        );
        let read = flow::waiting_now(&rows, now);
        let reference = flow::waiting_now(&flow::rank(&open_requests(app, what).await?), now);
        assert_eq!(read, reference, "{what:?}");
        in_review.push(waiting_in(&read.all, RequestState::InReview)?.requests);
        if *what == What::Every {
            assert_eq!(
                read.all.requests(),
                20_000,
                "drafts and ended requests left out"
            );
        }
    }
    // i % 20 == 0 in review; of those, i % 7 picks the action (i % 140 classes).
    assert_eq!(in_review, [3_572, 714, 5_000]);
    Ok(())
}

/// A namespace made in dev (approved by the type's policy) and resized there,
/// the resize approved by the same policy: (creation, resize).
async fn resized_namespace(app: &TestApp) -> TestResult<(RequestId, RequestId)> {
    let alice = app.user("alice").await?;
    let created = app.namespace(&alice, "dev", "web").await?;
    let mut conn = app.state.db.pool.acquire().await?;
    let asset = storage::assets::by_request(&mut conn, created)
        .await?
        .ok_or("the namespace recorded an asset")?
        .summary
        .id;
    drop(conn);
    let draft = ActionDraft {
        params: serde_json::json!({"cpu_limit": 6, "memory_limit_gi": 12}),
        submit_key: uuid::Uuid::new_v4().to_string(),
    };
    let resize = actions::submit(&app.state, &alice, asset, "resize", &draft).await?;
    app.run_jobs().await?;
    assert_eq!(app.request_state(resize).await?, RequestState::Completed);
    Ok((created, resize))
}

fn asking(type_name: Option<&str>, action: Option<&str>) -> FlowQuery {
    FlowQuery {
        weeks: None,
        type_name: type_name.map(str::to_string),
        action: action.map(str::to_string),
    }
}

fn row_of<'a>(m: &'a FlowMetrics, action: Option<&str>) -> TestResult<&'a TypeFlow> {
    Ok(m.types
        .iter()
        .find(|t| t.type_name == NS && t.action.as_deref() == action)
        .ok_or_else(|| format!("no row for {action:?} in {:?}", m.types))?)
}

/// A resize is recorded as a resize, not as one more namespace: the comparison
/// has a row for the type's creations and one for its resizes, and the focus,
/// the trend and all types' figures count what the query asks (creations by
/// default), in the service and the REST API alike.
async fn creations_and_actions_are_counted_apart(app: &TestApp) -> TestResult {
    scripted_history(app).await?;
    let (created, resize) = resized_namespace(app).await?;
    let whats: Vec<(i64, Option<String>)> =
        sqlx::query_as("SELECT DISTINCT request_id, request_action FROM flow_steps")
            .fetch_all(&app.state.db.pool)
            .await?;
    for (request, what) in &whats {
        let expected = (*request == resize.0).then(|| "resize".to_string());
        assert_eq!(what, &expected, "request {request} (created {created})");
    }
    let carol = app.user("carol").await?;
    let m = flow_service::flow_metrics(&app.state, &carol, &asking(Some(NS), None)).await?;
    let (creations, resizes) = (row_of(&m, None)?, row_of(&m, Some("resize"))?);
    assert_eq!((creations.rates.submitted, resizes.rates.submitted), (5, 1));
    assert_eq!(resizes.rates.auto_approval_share, Some(1.0));
    assert_eq!(m.types.len(), 2, "{:?}", m.types);
    assert_eq!((m.action.as_deref(), m.all.rates.submitted), (None, 5));
    assert_eq!(m.focus.rates, creations.rates);
    assert_eq!(
        m.trend.last().ok_or("an empty trend")?.rates,
        creations.rates
    );

    let m =
        flow_service::flow_metrics(&app.state, &carol, &asking(Some(NS), Some("resize"))).await?;
    assert_eq!(m.action.as_deref(), Some("resize"));
    assert_eq!((m.focus.rates, m.focus.lead), (resizes.rates, resizes.lead));
    assert_eq!(m.trend.last().ok_or("an empty trend")?.rates.submitted, 1);
    let every = flow_service::flow_metrics(&app.state, &carol, &asking(None, Some("*"))).await?;
    assert_eq!(every.all.rates.submitted, 6);

    let (status, body) = api_get(
        app,
        "/metrics/flow?type=k8s-namespace&action=resize",
        "carol",
    )
    .await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["action"], "resize");
    assert_eq!(body["focus"]["rates"]["submitted"], 1);
    assert_eq!(body["types"][1]["action"], "resize", "{body}");
    let (status, body) = api_get(app, "/metrics/flow?action=", "carol").await?;
    assert_eq!((status, &body["action"]), (StatusCode::OK, &Value::Null));
    let document = serde_json::to_value(slipway_server::api::openapi())?;
    let params = &document["paths"]["/api/v1/metrics/flow"]["get"]["parameters"];
    assert!(
        params
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p["name"] == "action")),
        "{params}"
    );
    hostile_actions_are_named(app).await
}

/// Malformed, oversized and hostile `action` values are refused with the field
/// named (422), by the service and the REST API, and never echoed whole.
async fn hostile_actions_are_named(app: &TestApp) -> TestResult {
    let carol = app.user("carol").await?;
    let long = "a".repeat(5_000);
    for hostile in [
        "Resize",
        "re size",
        "**",
        "-x",
        "../../etc",
        "a\0b",
        "<b>",
        "é",
        &long,
    ] {
        match flow_service::flow_metrics(&app.state, &carol, &asking(None, Some(hostile))).await {
            Err(ServiceError::Invalid(fields)) => {
                assert_eq!(fields.len(), 1);
                assert_eq!(fields[0].field, "action");
                assert!(fields[0].message.len() < 400, "{}", fields[0].message);
            }
            other => panic!("{hostile:?} must be Invalid, got {other:?}"),
        }
    }
    let encoded_long = format!("/metrics/flow?action={long}");
    for query in [
        "/metrics/flow?action=Resize",
        "/metrics/flow?action=%27%3B%20DROP%20TABLE%20flow_steps%3B--",
        "/metrics/flow?action=%00",
        "/metrics/flow?action=%E2%80%AEresize",
        "/metrics/flow?type=k8s-namespace&action=**",
        encoded_long.as_str(),
    ] {
        let (status, body) = api_get(app, query, "carol").await?;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {body}");
        assert_eq!(body["errors"][0]["field"], "action", "{query}: {body}");
    }
    // Given twice, it is not read as either: refused, never a server error.
    let (status, body) = api_get(app, "/metrics/flow?action=resize&action=backup", "carol").await?;
    assert!(status.is_client_error(), "{status}: {body}");
    Ok(())
}

/// Every type and action of a window come from one reading of its steps: a
/// year's window is read once however many of its types and actions are shown,
/// and the default window once while no step is recorded, again after one is.
async fn another_type_or_action_of_a_window_reads_nothing_again(app: &TestApp) -> TestResult {
    scripted_history(app).await?;
    resized_namespace(app).await?;
    let carol = app.user("carol").await?;
    let figures = &app.state.flow_figures;
    let views = [
        (None, None),
        (Some(NS), None),
        (Some(NS), Some("resize")),
        (None, Some("*")),
        (Some("postgres-database"), Some("backup")),
    ];
    for weeks in [52, 12] {
        let before = figures.reads();
        let mut seen = Vec::new();
        for (type_name, action) in views {
            let query = FlowQuery {
                weeks: Some(weeks),
                ..asking(type_name, action)
            };
            let m = flow_service::flow_metrics(&app.state, &carol, &query).await?;
            seen.push(m.types);
        }
        assert_eq!(figures.reads(), before + 1, "{weeks} weeks");
        assert!(seen.windows(2).all(|w| w[0] == w[1]), "one reading");
    }
    // A step recorded: the default window reads again, once.
    submit(app, "epsilon", "dev").await?;
    let before = figures.reads();
    for (type_name, action) in views {
        flow_service::flow_metrics(&app.state, &carol, &asking(type_name, action)).await?;
    }
    assert_eq!(figures.reads(), before + 1);
    Ok(())
}

/// 150,000 steps over three years, two thirds of them of day-2 actions: every
/// statement a window reads is a range of one covering index (on SQLite for a
/// year's window too), not a read of the table.
async fn the_window_reads_its_covering_indexes_at_scale(app: &TestApp) -> TestResult {
    submit(app, "bulk", "prod").await?;
    let numbers = match app.engine {
        Engine::Sqlite => {
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 150000) "
        }
        Engine::Postgres => "WITH n(i) AS (SELECT generate_series(CAST(1 AS BIGINT), 150000)) ",
    };
    let now = storage::now_millis();
    app.exec(&format!(
        "INSERT INTO flow_steps (request_id, type_name, request_action, from_state, to_state, \
         action, actor_kind, entered_at, at, week, duration_ms, bucket, lead_ms, lead_bucket) \
         {numbers} SELECT (SELECT MIN(id) FROM requests), \
         CASE i % 3 WHEN 0 THEN 'postgres-database' WHEN 1 THEN '{NS}' ELSE 'shared-database' END, \
         CASE (i / 3) % 3 WHEN 0 THEN 'backup' WHEN 1 THEN 'resize' ELSE NULL END, \
         CASE i % 4 WHEN 0 THEN 'submitted' WHEN 1 THEN 'in_review' WHEN 2 THEN 'approved' \
         ELSE 'executing' END, 'completed', \
         CASE i % 5 WHEN 0 THEN 'submit' WHEN 1 THEN 'enter_review' WHEN 2 THEN 'approve' \
         WHEN 3 THEN 'start_execution' ELSE 'verification_passed' END, 'person', \
         {now} - i * 600000, {now} - i * 600000 + i, {week} - i / 1000, i, i % 300, \
         CASE i % 5 WHEN 4 THEN i ELSE NULL END, CASE i % 5 WHEN 4 THEN i % 300 ELSE NULL END \
         FROM n",
        week = flow::week_of(now),
    ))
    .await?;
    if app.engine == Engine::Postgres {
        // What a live table has had done by autovacuum: statistics and the
        // visibility map an index-only scan relies on.
        app.exec("VACUUM ANALYZE flow_steps").await?;
    }
    let this_week = flow::week_of(now);
    let mut windows = vec![(this_week - 11, this_week)];
    if app.engine == Engine::Sqlite {
        windows.push((this_week - 51, this_week));
    }
    let mut conn = app.state.db.pool.acquire().await?;
    for window in windows {
        let plans = storage::flow::read_plans(&mut conn, app.engine, window).await?;
        assert_eq!(plans.len(), 9);
        let index_only = match app.engine {
            Engine::Sqlite => "USING COVERING INDEX flow_steps_by_",
            Engine::Postgres => "Index Only Scan using flow_steps_by_",
        };
        for plan in plans {
            assert!(plan.contains(index_only), "{plan}");
            assert!(!plan.contains("Seq Scan"), "{plan}");
            for line in plan.lines() {
                assert!(
                    !line.contains("SCAN flow_steps") || line.contains("COVERING INDEX"),
                    "reads the table:\n{plan}"
                );
            }
        }
    }
    // The current week's requests counted on both sides of the split: each
    // looks up its own earlier steps (one request holds all 150,000 here).
    let split = (this_week - 11, this_week, this_week);
    for plan in storage::flow::counted_twice_plans(&mut conn, app.engine, split).await? {
        // PostgreSQL may hash the earlier weeks' (request, action) pairs from
        // the covering index instead: no table read either way.
        if app.engine == Engine::Sqlite {
            assert!(plan.contains("flow_steps_by_request_action"), "{plan}");
        }
        assert!(!plan.contains("Seq Scan"), "{plan}");
        for line in plan.lines() {
            assert!(
                !line.contains("SCAN flow_steps") || line.contains("INDEX"),
                "reads the table:\n{plan}"
            );
        }
    }
    drop(conn);
    let carol = app.user("carol").await?;
    let m =
        flow_service::flow_metrics(&app.state, &carol, &asking(Some(NS), Some("backup"))).await?;
    assert!(m.focus.rates.submitted > 0, "{:?}", m.focus.rates);
    assert!(
        m.types.len() >= 9,
        "three types, each made, backed up and resized"
    );
    Ok(())
}

/// The default window is read as its closed weeks (kept) and the current one:
/// joined, the parts are the window read whole, distinct requests counted once
/// however their steps fall on the two sides; and the page says the same.
async fn a_window_read_in_two_parts_is_the_window_read_whole(app: &TestApp) -> TestResult {
    let mut ids = Vec::new();
    // Within the quota: three namespaces per environment, one left in prod.
    for n in 0..8 {
        let environment = ["dev", "staging", "prod"][n % 3];
        ids.push(submit(app, &format!("split{n}"), environment).await?);
    }
    let now = storage::now_millis();
    let this_week = flow::week_of(now);
    let actions = [
        "submit",
        "enter_review",
        "request_changes",
        "approve",
        "start_execution",
        "retry",
        "fail",
        "complete",
    ];
    let mut values = Vec::new();
    for i in 0..600_i64 {
        let id = ids[(i % 8) as usize];
        // Weeks from 13 ago to this one, so steps fall before, in and after the split.
        let week = this_week - (i * 7) % 14;
        let action = actions[((i / 12) % 8) as usize];
        let request_action = if i % 3 == 0 { "'resize'" } else { "NULL" };
        let lead = if action == "complete" {
            format!("{}, {}", i * 1000, i % 40)
        } else {
            "NULL, NULL".into()
        };
        values.push(format!(
            "({id}, '{NS}', {request_action}, 'in_review', 'approved', '{action}', 'person', \
             {at}, {at}, {week}, {d}, {b}, {lead})",
            at = flow::week_start(week) + i,
            d = i * 37,
            b = i % 50,
        ));
    }
    // One request whose earlier steps were recorded as a creation's (an older
    // replica's, before its request action was filled in) and whose steps of
    // this week as a resize's, for the same actions: two groups, each counting it.
    for (week, request_action) in [(this_week - 3, "NULL"), (this_week, "'resize'")] {
        for action in ["enter_review", "start_execution"] {
            values.push(format!(
                "({id}, '{NS}', {request_action}, 'in_review', 'approved', '{action}', \
                 'person', {at}, {at}, {week}, 5, 3, NULL, NULL)",
                id = ids[0],
                at = flow::week_start(week) + 1,
            ));
        }
    }
    app.exec(&format!(
        "INSERT INTO flow_steps (request_id, type_name, request_action, from_state, to_state, \
         action, actor_kind, entered_at, at, week, duration_ms, bucket, lead_ms, lead_bucket) \
         VALUES {}",
        values.join(", ")
    ))
    .await?;
    let pool = &app.state.db.pool;
    let (since, until) = (this_week - 11, this_week);
    let whole = storage::flow::read(pool, since, until).await?;
    let closed = storage::flow::read(pool, since, this_week - 1).await?;
    let current = storage::flow::read(pool, this_week, until).await?;
    let twice = storage::flow::counted_twice(pool, (since, this_week, until)).await?;
    assert!(
        twice.actions.iter().any(|row| row.requests > 0)
            && twice.bases.iter().any(|row| row.requests > 0),
        "requests on both sides: {twice:?}"
    );
    let joined = flow::join(&closed, current, &twice);
    assert_eq!(joined.clone().in_order(), whole.clone().in_order());
    let every = What::Every;
    assert_eq!(
        flow::compute(&joined, None, &every),
        flow::compute(&whole, None, &every)
    );
    // The service reads the default window so, and says what the whole says.
    let carol = app.user("carol").await?;
    let query = asking(None, Some("*"));
    let shown = flow_service::flow_metrics(&app.state, &carol, &query).await?;
    let expected = flow::compute(&whole, None, &every);
    assert_eq!(shown.types, expected.types);
    assert_eq!(shown.all, expected.all);
    // A step recorded this week counts at once, the closed weeks kept.
    let figures = &app.state.flow_figures;
    let closed_reads = figures.closed_reads();
    submit(app, "split-late", "prod").await?;
    let after = flow_service::flow_metrics(&app.state, &carol, &query).await?;
    let now_whole = storage::flow::read(pool, since, until).await?;
    assert_eq!(after.all, flow::compute(&now_whole, None, &every).all);
    assert_ne!(after.all, shown.all);
    assert_eq!(
        figures.closed_reads(),
        closed_reads,
        "the closed weeks kept"
    );
    // A step that lands in a closed week late (a transaction begun before the
    // week turned) is seen at the next view: the closed weeks are read again.
    app.exec(&format!(
        "INSERT INTO flow_steps (request_id, type_name, request_action, from_state, to_state, \
         action, actor_kind, entered_at, at, week, duration_ms, bucket, lead_ms, lead_bucket) \
         VALUES ({id}, '{NS}', NULL, 'submitted', 'in_review', 'submit', 'person', {at}, {at}, \
         {week}, 1, 1, NULL, NULL)",
        id = ids[1],
        week = this_week - 1,
        at = flow::week_start(this_week - 1) + 5,
    ))
    .await?;
    let late = flow_service::flow_metrics(&app.state, &carol, &query).await?;
    let late_whole = storage::flow::read(pool, since, until).await?;
    assert_eq!(late.all, flow::compute(&late_whole, None, &every).all);
    assert_eq!(figures.closed_reads(), closed_reads + 1);
    Ok(())
}
