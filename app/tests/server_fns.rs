//! The portal's server functions meet malformed calls: each is a 4xx with a clear
//! message, never a 500, and nothing is written.
#![cfg(feature = "ssr")]

#[allow(dead_code, unused_macros)]
#[path = "../../server/tests/common/mod.rs"]
mod common;

use app::api::{
    CancelRequest, Decide, ListAssets, Login, MyRequests, PrecheckRequest, ResolveRequest,
    SubmitRequest,
};
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::{TestApp, TestResult};
use leptos::server_fn::ServerFn;
use slipway_server::storage::Engine;
use tower::ServiceExt;

const HOST: &str = "slipway.test";
const ORIGIN: &str = "http://slipway.test";

async fn call(
    router: &axum::Router,
    cookie: Option<&str>,
    path: &str,
    content_type: &str,
    body: String,
) -> TestResult<(StatusCode, String, Option<String>)> {
    let mut request = Request::post(path)
        .header(header::HOST, HOST)
        .header(header::ORIGIN, ORIGIN)
        .header(header::CONTENT_TYPE, content_type);
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    let response = router
        .clone()
        .oneshot(request.body(Body::from(body))?)
        .await?;
    let status = response.status();
    let set_cookie = response
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::to_string);
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await?;
    Ok((
        status,
        String::from_utf8_lossy(&bytes).into_owned(),
        set_cookie,
    ))
}

const FORM: &str = "application/x-www-form-urlencoded";
const JSON: &str = "application/json";

#[tokio::test]
async fn malformed_calls_are_client_errors_and_change_nothing() -> TestResult {
    let app = TestApp::start(Engine::Sqlite)
        .await?
        .ok_or("SQLite is always available")?;
    let router =
        slipway_server::cli::router(&app.state, app::ssr::portal_router(app.state.clone()));
    let (status, _, cookie) = call(
        &router,
        None,
        Login::PATH,
        FORM,
        "username=alice&password=alice-demo-pw".into(),
    )
    .await?;
    assert!(status.is_success() || status.is_redirection(), "{status}");
    let cookie = cookie.ok_or("no session cookie")?;
    let before = app.snapshot().await?;
    let deep = format!(
        "{{\"draft\":{{\"type_name\":\"k8s-namespace\",\"params\":{}{},\"submit_key\":\"k\"}}}}",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    let huge = format!(
        "{{\"draft\":{{\"type_name\":\"k8s-namespace\",\"params\":{{\"name\":\"{}\"}},\"submit_key\":\"k\"}}}}",
        "a".repeat(5 * 1024 * 1024)
    );
    let cases: Vec<(&str, &str, String, &str)> = vec![
        ("malformed JSON", JSON, "{".into(), SubmitRequest::PATH),
        ("a 5 MB body", JSON, huge, SubmitRequest::PATH),
        ("nesting 5,000 deep", JSON, deep, SubmitRequest::PATH),
        (
            "a missing field",
            JSON,
            "{\"draft\":{\"type_name\":\"k8s-namespace\"}}".into(),
            SubmitRequest::PATH,
        ),
        (
            "a wrong type",
            JSON,
            "{\"type_name\":5,\"params\":{},\"exclude\":null}".into(),
            PrecheckRequest::PATH,
        ),
        (
            "an unknown decision value",
            FORM,
            "id=1&revision=1&decision=maybe&comment=x".into(),
            Decide::PATH,
        ),
        (
            "a non-numeric id",
            FORM,
            "id=abc".into(),
            CancelRequest::PATH,
        ),
        (
            "a missing form field",
            FORM,
            "id=1".into(),
            ResolveRequest::PATH,
        ),
        (
            "an id out of range",
            FORM,
            "id=99999999999999999999999".into(),
            CancelRequest::PATH,
        ),
    ];
    // A list's query, sent as JSON: the rules the API reads a query string by.
    let list_call = |filter: slipway_core::listing::ListFilter| -> TestResult<String> {
        let query = slipway_core::listing::ListQuery {
            filter,
            ..Default::default()
        };
        Ok(serde_json::to_string(
            &serde_json::json!({ "query": query }),
        )?)
    };
    let mut cases = cases;
    cases.push((
        "a control character in a list's filter",
        JSON,
        list_call(slipway_core::listing::ListFilter {
            team: Some("pay\u{0}ments".into()),
            ..Default::default()
        })?,
        MyRequests::PATH,
    ));
    cases.push((
        "a filter of 300,000 characters",
        JSON,
        list_call(slipway_core::listing::ListFilter {
            type_name: Some("t".repeat(300_000)),
            ..Default::default()
        })?,
        ListAssets::PATH,
    ));
    for (what, content_type, body, path) in cases {
        let (status, answer, _) = call(&router, Some(&cookie), path, content_type, body).await?;
        assert!(status.is_client_error(), "{what}: {status} {answer}");
        assert!(!answer.is_empty(), "{what}: no message");
        assert!(!answer.contains("results"), "{what}: {answer}");
    }
    // Without a session, a body past the API's limit (under axum's default of
    // 2 MiB) is refused before it is read into arguments: a million JSON values
    // would cost a hundred megabytes of memory for a call that is then refused.
    let wide = format!(
        "{{\"type_name\":\"k8s-namespace\",\"params\":[{}0],\"exclude\":null}}",
        "0,".repeat(600_000)
    );
    let (status, answer, _) = call(&router, None, PrecheckRequest::PATH, JSON, wide).await?;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    // A password far longer than any real one is refused before it is hashed.
    let long = format!("username=alice&password={}", "a".repeat(100_000));
    let (status, answer, _) = call(&router, None, Login::PATH, FORM, long).await?;
    assert!(status.is_client_error(), "{status} {answer}");
    assert!(answer.contains("too long"), "{answer}");
    assert_eq!(
        app.snapshot().await?,
        before,
        "a malformed call wrote something"
    );
    Ok(())
}
