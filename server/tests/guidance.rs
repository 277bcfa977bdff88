//! Guidance from history against a scripted history with known answers, on SQLite
//! and (with `SLIPWAY_TEST_POSTGRES_URL`) PostgreSQL: the team's most chosen value,
//! a field a review sent a request back for, an unusual number, too little
//! history, the team boundary (service and REST), hostile stored data, and the
//! reads' plans at 100k requests.

#[allow(dead_code)]
#[macro_use]
mod common;

use std::net::SocketAddr;

use common::{TestApp, TestResult, draft, postgres_params};
use reqwest::StatusCode;
use serde_json::{Map, Value, json};
use slipway_core::guidance::{self, Guidance, Hint, HintKind};
use slipway_core::views::{ReviewDecision, TokenRequest, TokenScope};
use slipway_server::services::tokens;
use slipway_server::services::{ServiceError, guidance as guidance_service, requests, reviews};
use slipway_server::storage::{self, Engine};

on_both_engines!(
    the_teams_most_chosen_value_is_offered,
    a_review_that_named_a_field_gives_a_sent_back_hint,
    an_unusual_value_is_flagged,
    too_little_or_too_old_history_gives_no_hint,
    another_teams_history_never_shows,
    hostile_history_is_handled,
    the_reads_use_their_index_at_100k_requests,
);

const PG: &str = "postgres-database";
const DAY_MS: i64 = 24 * 3_600_000;

/// A request of `team` written straight into the table, `age_days` old, with these
/// parameters (stored as given: a JSON text, or anything else).
async fn past(app: &TestApp, team: &str, params: &str, age_days: i64) -> TestResult<i64> {
    let created = storage::now_millis() - age_days * DAY_MS;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO requests (type_name, resource_name, requester_id, state, current_revision, \
         submit_key, created_at, updated_at, params, team, environment) \
         SELECT $1, 'past', id, 'completed', 1, $2, $3, $3, $4, $5, 'prod' FROM users \
         WHERE username = 'carol' RETURNING id",
    )
    .bind(PG)
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(created)
    .bind(params)
    .bind(team)
    .fetch_one(&app.state.db.pool)
    .await?;
    Ok(id)
}

/// Parameters of a past request with these changes from the usual small database.
fn with(changes: Value) -> String {
    let mut params = postgres_params("past", "prod", 20);
    if let (Some(params), Value::Object(changes)) = (params.as_object_mut(), changes) {
        params.extend(changes);
    }
    params.to_string()
}

/// A reviewer's "request changes" on a past request.
async fn sent_back(app: &TestApp, request_id: i64, comment: &str) -> TestResult {
    sqlx::query(
        "INSERT INTO decisions (request_id, revision, decision, comment, change_set_hash, created_at) \
         VALUES ($1, 1, 'request_changes', $2, '', $3)",
    )
    .bind(request_id)
    .bind(comment)
    .bind(storage::now_millis())
    .execute(&app.state.db.pool)
    .await?;
    Ok(())
}

async fn guidance_for(app: &TestApp, user: &str, team: Option<&str>) -> TestResult<Guidance> {
    let caller = app.user(user).await?;
    Ok(guidance_service::for_form(&app.state, &caller, PG, team).await?)
}

fn hints(guidance: &Guidance, kind: HintKind, field: &str) -> Vec<Hint> {
    guidance
        .hints
        .iter()
        .filter(|h| h.kind == kind && h.field == field)
        .cloned()
        .collect()
}

async fn api_get(app: &TestApp, path: &str, user: &str) -> TestResult<(StatusCode, Value)> {
    let caller = app.user(user).await?;
    let request = TokenRequest {
        name: format!("{user} guidance token"),
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

async fn the_teams_most_chosen_value_is_offered(app: &TestApp) -> TestResult {
    for _ in 0..5 {
        past(app, "payments", &with(json!({"size": "medium"})), 3).await?;
    }
    past(app, "payments", &with(json!({})), 3).await?;
    // Values reviewers refused or the team withdrew were not chosen in the end.
    for state in [
        "rejected",
        "cancelled",
        "rejected",
        "cancelled",
        "rejected",
        "rejected",
    ] {
        let id = past(app, "payments", &with(json!({"size": "large"})), 2).await?;
        sqlx::query("UPDATE requests SET state = $1 WHERE id = $2")
            .bind(state)
            .bind(id)
            .execute(&app.state.db.pool)
            .await?;
    }
    let guidance = guidance_for(app, "alice", None).await?;
    assert_eq!(guidance.team.as_deref(), Some("payments"));
    assert_eq!(guidance.requests, 6);
    let size = hints(&guidance, HintKind::MostChosen, "size");
    assert_eq!(size.len(), 1, "{guidance:?}");
    assert_eq!(size[0].value, Some(json!("medium")));
    assert!(size[0].message.starts_with("5 of 6"), "{}", size[0].message);
    assert_eq!(
        size[0].source,
        "from 6 payments requests for PostgreSQL database in the last 180 days"
    );
    // The catalog's own default (version 16, 20 GB) is not repeated as a hint.
    assert!(hints(&guidance, HintKind::MostChosen, "version").is_empty());

    let (status, body) = api_get(app, "/types/postgres-database/guidance", "alice").await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, serde_json::to_value(&guidance)?);
    let document = serde_json::to_value(slipway_server::api::openapi())?;
    let operation = &document["paths"]["/api/v1/types/{name}/guidance"]["get"];
    assert!(operation.is_object(), "the endpoint is documented");
    assert!(document["components"]["schemas"]["Guidance"].is_object());
    Ok(())
}

/// Through the real flow: alice asks for a big production database, bob sends it
/// back naming the storage, and the next form says so.
async fn a_review_that_named_a_field_gives_a_sent_back_hint(app: &TestApp) -> TestResult {
    let alice = app.user("alice").await?;
    app.namespace(&alice, "prod", "payments-prod").await?;
    let id = requests::submit(
        &app.state,
        &alice,
        &draft(PG, postgres_params("orders", "prod", 400)),
    )
    .await?;
    let bob = app.user("bob").await?;
    let comment = "Storage of 400 GB is far more than orders needs; 50 will do.";
    reviews::decide(
        &app.state,
        &bob,
        id,
        1,
        ReviewDecision::RequestChanges,
        comment,
    )
    .await?;

    let guidance = guidance_for(app, "alice", Some("payments")).await?;
    let storage = hints(&guidance, HintKind::SentBack, "storage_gb");
    assert_eq!(storage.len(), 1, "{guidance:?}");
    assert_eq!(
        storage[0].message,
        format!(
            "1 request like this one was sent back for Storage (GB). The latest review said: “{comment}”"
        )
    );
    assert_eq!(
        storage[0].source,
        "review comments from 1 payments request for PostgreSQL database in the last 180 days"
    );
    // Only the field the comment named.
    let others: Vec<&Hint> = guidance
        .hints
        .iter()
        .filter(|h| h.kind == HintKind::SentBack && h.field != "storage_gb")
        .collect();
    assert!(others.is_empty(), "{others:?}");
    Ok(())
}

async fn an_unusual_value_is_flagged(app: &TestApp) -> TestResult {
    for storage_gb in [20, 20, 30, 10, 20, 25] {
        past(
            app,
            "payments",
            &with(json!({ "storage_gb": storage_gb })),
            10,
        )
        .await?;
    }
    let guidance = guidance_for(app, "alice", None).await?;
    assert_eq!(guidance.usual.len(), 1, "{guidance:?}");
    assert_eq!(guidance.usual[0].field, "storage_gb");
    assert_eq!(guidance.usual[0].median, 20.0);
    let ty = app
        .state
        .catalog
        .resource_type(PG)
        .ok_or("postgres-database is shipped")?;
    let form = |storage_gb: i64| -> Map<String, Value> {
        let params = postgres_params("new", "prod", storage_gb);
        params.as_object().cloned().unwrap_or_default()
    };
    let flagged = guidance::unusual_values(ty, &guidance, &form(250));
    assert_eq!(flagged.len(), 1);
    assert_eq!(
        flagged[0].message,
        "Storage (GB) 250 is unusual: 12.5 times your team's usual 20 (values 10× above or below it are flagged)."
    );
    assert!(guidance::unusual_values(ty, &guidance, &form(150)).is_empty());
    assert_eq!(guidance::unusual_values(ty, &guidance, &form(2)).len(), 1);
    Ok(())
}

async fn too_little_or_too_old_history_gives_no_hint(app: &TestApp) -> TestResult {
    for _ in 0..2 {
        let id = past(app, "payments", &with(json!({"size": "large"})), 1).await?;
        assert!(id > 0);
    }
    // Plenty, but from before the window.
    for _ in 0..10 {
        let id = past(app, "payments", &with(json!({"size": "large"})), 200).await?;
        sent_back(app, id, "size is too large").await?;
    }
    let guidance = guidance_for(app, "alice", None).await?;
    assert_eq!(guidance.requests, 2);
    assert!(guidance.hints.is_empty(), "{guidance:?}");
    assert!(guidance.usual.is_empty());
    Ok(())
}

async fn another_teams_history_never_shows(app: &TestApp) -> TestResult {
    for _ in 0..6 {
        let id = past(
            app,
            "platform",
            &with(json!({"size": "large", "storage_gb": 300})),
            2,
        )
        .await?;
        sent_back(app, id, "Size: platform-secret-remark").await?;
    }
    let guidance = guidance_for(app, "alice", None).await?;
    assert_eq!(guidance.requests, 0);
    assert!(
        guidance.hints.is_empty() && guidance.usual.is_empty(),
        "{guidance:?}"
    );
    let leaked = serde_json::to_string(&guidance)?;
    assert!(!leaked.contains("platform-secret-remark"));

    // Asking for the other team is refused, through the service and the API.
    let alice = app.user("alice").await?;
    let answer = guidance_service::for_form(&app.state, &alice, PG, Some("platform")).await;
    assert!(
        matches!(answer, Err(ServiceError::Forbidden(_))),
        "{answer:?}"
    );
    let (status, body) = api_get(
        app,
        "/types/postgres-database/guidance?team=platform",
        "alice",
    )
    .await?;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(!body.to_string().contains("platform-secret-remark"));

    // bob is in platform and dba: with two teams he names the one he means.
    let unnamed = guidance_service::for_form(&app.state, &app.user("bob").await?, PG, None).await;
    let Err(ServiceError::Invalid(fields)) = unnamed else {
        return Err(format!("{unnamed:?}").into());
    };
    assert_eq!(fields[0].field, "team");
    assert!(
        fields[0].message.contains("dba, platform") || fields[0].message.contains("platform, dba"),
        "{fields:?}"
    );
    let (status, body) = api_get(app, "/types/postgres-database/guidance", "bob").await?;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["errors"][0]["field"], "team", "{body}");
    let platform = guidance_for(app, "bob", Some("platform")).await?;
    assert_eq!(hints(&platform, HintKind::SentBack, "size").len(), 1);
    // An admin acts for any team, and so reads any team's guidance.
    let carol = guidance_for(app, "carol", Some("platform")).await?;
    assert_eq!(carol.requests, 6);
    // A team the catalog does not know is a mistake, not a query.
    let unknown = guidance_service::for_form(&app.state, &alice, PG, Some("nobody\0")).await;
    assert!(
        matches!(unknown, Err(ServiceError::Invalid(_))),
        "{unknown:?}"
    );
    let (status, body) = api_get(
        app,
        "/types/postgres-database/guidance?team=nob%00ody",
        "carol",
    )
    .await?;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = api_get(app, "/types/no-such-type/guidance", "alice").await?;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    Ok(())
}

async fn hostile_history_is_handled(app: &TestApp) -> TestResult {
    let huge = format!(
        "<b onmouseover=\"alert(1)\">Size</b> is wrong. {}",
        "<script>alert('x')</script> ".repeat(4_000)
    );
    assert!(huge.len() > 100_000);
    for storage in [json!(20), json!(20), json!(20), json!(20), json!(20)] {
        past(app, "payments", &with(json!({ "storage_gb": storage })), 1).await?;
    }
    let id = past(app, "payments", &with(json!({"storage_gb": "lots"})), 1).await?;
    sent_back(app, id, &huge).await?;
    past(app, "payments", "{not json", 1).await?;
    past(app, "payments", "[1, 2]", 1).await?;

    let guidance = guidance_for(app, "alice", None).await?;
    assert_eq!(guidance.usual.len(), 1, "{guidance:?}");
    assert_eq!(
        guidance.usual[0].samples, 5,
        "the text value is not a sample"
    );
    let size = hints(&guidance, HintKind::SentBack, "size");
    assert_eq!(size.len(), 1, "{guidance:?}");
    assert!(size[0].message.len() < 1_000, "{}", size[0].message);
    // Markup comes back as the text it is; the page escapes it.
    assert!(
        size[0]
            .message
            .contains("<b onmouseover=\"alert(1)\">Size</b>")
    );
    let (status, body) = api_get(app, "/types/postgres-database/guidance", "alice").await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    Ok(())
}

async fn the_reads_use_their_index_at_100k_requests(app: &TestApp) -> TestResult {
    let numbers = match app.engine {
        Engine::Sqlite => {
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000) "
        }
        Engine::Postgres => "WITH n(i) AS (SELECT generate_series(1, 100000)) ",
    };
    // One team and type (search's databases) has a third of all rows; payments'
    // databases are rare (333): the case where reading by time alone would wade
    // through the whole table.
    app.exec(&format!(
        "INSERT INTO requests (type_name, resource_name, requester_id, state, current_revision, \
         submit_key, created_at, updated_at, params, team, environment) \
         {numbers} SELECT CASE i % 3 WHEN 0 THEN '{PG}' WHEN 1 THEN 'k8s-namespace' \
         ELSE 'shared-database' END, \
         'bulk', (SELECT id FROM users WHERE username = 'carol'), 'completed', 1, \
         'bulk-' || CAST(i AS TEXT), {now} - CAST(i AS BIGINT) * 60000, \
         {now} - CAST(i AS BIGINT) * 60000, '{{\"size\": \"medium\", \"storage_gb\": 20}}', \
         CASE WHEN i % 100 = 0 THEN 'payments' WHEN i % 3 = 0 THEN 'search' \
         WHEN i % 3 = 1 THEN 'platform' ELSE 'dba' END, 'prod' FROM n",
        now = storage::now_millis(),
    ))
    .await?;
    assert!(app.count("requests").await? >= 100_000);
    // Every fifth request was sent back once.
    app.exec(
        "INSERT INTO decisions (request_id, revision, decision, comment, change_set_hash, created_at) \
         SELECT id, 1, 'request_changes', 'the size is too big', '', created_at FROM requests \
         WHERE id % 5 = 0",
    )
    .await?;
    let mut conn = app.state.db.pool.acquire().await?;
    if app.engine == Engine::Postgres {
        sqlx::query("ANALYZE requests").execute(&mut *conn).await?;
        sqlx::query("ANALYZE decisions").execute(&mut *conn).await?;
    }
    let plans = storage::guidance::plans(&mut conn, app.engine, "payments", PG).await?;
    // By time within the team and type, or (for a pair this rare) the few rows
    // of the pair by `(team, type_name, id)` and sorted.
    assert!(
        plans[0].contains("requests_team_type_creations")
            || plans[0].contains("requests_team_type_id"),
        "{}",
        plans[0]
    );
    assert!(plans[1].contains("decisions_request"), "{}", plans[1]);
    for plan in plans {
        assert!(!plan.contains("Seq Scan"), "{plan}");
        for line in plan.lines() {
            // SQLite: SEARCH is an index lookup; SCAN without an index reads a table.
            assert!(
                !line.contains("SCAN ") || line.contains("INDEX"),
                "reads a whole table:\n{plan}"
            );
        }
    }
    drop(conn);
    let guidance = guidance_for(app, "alice", None).await?;
    assert_eq!(guidance.requests, 333);
    assert_eq!(hints(&guidance, HintKind::MostChosen, "size").len(), 1);
    let search = guidance_for(app, "carol", Some("search")).await?;
    assert_eq!(
        search.requests,
        guidance::MAX_REQUESTS,
        "the read is bounded"
    );
    Ok(())
}
