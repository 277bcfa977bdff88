//! The request form's "Guidance from history" panel, rendered on the server for a
//! signed-in requester, and its server function's team boundary.
#![cfg(feature = "ssr")]

#[allow(dead_code, unused_macros)]
#[path = "../../server/tests/common/mod.rs"]
mod common;

use app::api::{LoadGuidance, Login};
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::{TestApp, TestResult};
use leptos::server_fn::ServerFn;
use slipway_server::storage::{self, Engine};
use tower::ServiceExt;

const HOST: &str = "slipway.test";
const ORIGIN: &str = "http://slipway.test";

async fn send(
    router: &axum::Router,
    request: axum::http::request::Builder,
    body: String,
) -> TestResult<(StatusCode, String, Option<String>)> {
    let response = router
        .clone()
        .oneshot(request.header(header::HOST, HOST).body(Body::from(body))?)
        .await?;
    let status = response.status();
    let cookie = response
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::to_string);
    let bytes = axum::body::to_bytes(response.into_body(), 8 << 20).await?;
    Ok((status, String::from_utf8_lossy(&bytes).into_owned(), cookie))
}

fn post(path: &str) -> axum::http::request::Builder {
    Request::post(path)
        .header(header::ORIGIN, ORIGIN)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
}

/// Five payments databases of size medium, one sent back for its storage.
async fn history(app: &TestApp) -> TestResult {
    let now = storage::now_millis();
    for i in 0..5 {
        let params = r#"{"name":"past","team":"payments","environment":"prod","size":"medium","storage_gb":20,"version":"16"}"#;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO requests (type_name, resource_name, requester_id, state, current_revision, \
             submit_key, created_at, updated_at, params, team, environment) \
             SELECT 'postgres-database', 'past', id, 'completed', 1, $1, $2, $2, $3, 'payments', 'prod' \
             FROM users WHERE username = 'alice' RETURNING id",
        )
        .bind(format!("past-{i}"))
        .bind(now - 1000)
        .bind(params)
        .fetch_one(&app.state.db.pool)
        .await?;
        if i == 0 {
            sqlx::query(
                "INSERT INTO decisions (request_id, revision, decision, comment, change_set_hash, created_at) \
                 VALUES ($1, 1, 'request_changes', '<i>Storage</i> too big', '', $2)",
            )
            .bind(id)
            .bind(now)
            .execute(&app.state.db.pool)
            .await?;
        }
    }
    Ok(())
}

#[tokio::test]
async fn the_new_request_page_shows_guidance_from_the_teams_history() -> TestResult {
    let app = TestApp::start(Engine::Sqlite)
        .await?
        .ok_or("SQLite is always available")?;
    history(&app).await?;
    let router =
        slipway_server::cli::router(&app.state, app::ssr::portal_router(app.state.clone()));
    let login = "username=alice&password=alice-demo-pw".to_string();
    let (status, _, cookie) = send(&router, post(Login::PATH), login).await?;
    assert!(status.is_success() || status.is_redirection(), "{status}");
    let cookie = cookie.ok_or("no session cookie")?;

    let page = Request::get("/requests/new/postgres-database")
        .header(header::ACCEPT, "text/html")
        .header(header::COOKIE, &cookie);
    let (status, body, _) = send(&router, page, String::new()).await?;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("Guidance from history"), "no panel");
    assert!(body.contains("Usually chosen"));
    assert!(body.contains("Source: from 5 payments requests for PostgreSQL database"));
    assert!(body.contains("Sent back before"));
    // A button would do nothing until the form's script is live: none yet.
    assert!(!body.contains("Use this value"));
    // The reviewer's markup is shown as text, never as markup.
    assert!(!body.contains("<i>Storage</i>"));
    assert!(body.contains("&lt;i&gt;Storage&lt;/i&gt;"));

    // Another team's guidance is refused, as a client error.
    let other = "type_name=postgres-database&team=platform".to_string();
    let ask = post(LoadGuidance::PATH).header(header::COOKIE, &cookie);
    let (status, answer, _) = send(&router, ask, other).await?;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    Ok(())
}
