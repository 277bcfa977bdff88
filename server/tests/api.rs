//! The REST API through the real router on loopback, on SQLite and PostgreSQL:
//! every endpoint, who may call what, bad input on every body, idempotency and
//! paging.

#[macro_use]
#[allow(dead_code, unused_macros)]
mod common;

use std::net::SocketAddr;

use common::{TestApp, TestResult, namespace_params};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use slipway_core::ids::RequestId;
use slipway_core::state::RequestState;
use slipway_core::views::{ReviewDecision, Role, TokenRequest, TokenScope};
use slipway_server::services::{CallMeta, ServiceError, auth, tokens};

on_both_engines!(
    tokens_authenticate_and_stop_at_once,
    catalog_and_me,
    create_is_idempotent_and_reads_back,
    concurrent_creates_with_one_key_make_one_request,
    precheck_and_dry_run_write_nothing,
    review_round_through_the_api,
    lists_page_across_more_rows_than_a_page,
    lists_take_filters_both_cursors_and_name_bad_parameters,
    bad_input_is_a_clear_4xx_and_changes_nothing,
    hostile_lists_get_a_short_answer_and_an_oversized_request_is_refused,
    who_may_call_what,
    audit_lists_and_exports_json_lines,
    unknown_methods_are_405_and_every_operation_documents_its_layers,
    a_secret_never_comes_back_through_the_api,
    the_command_line_client_submits_and_reads,
    tokens_are_made_and_revoked_through_the_api,
    a_token_revoked_or_an_account_disabled_mid_call_mints_nothing,
    asset_history_shows_client_and_trace_only_to_audit_readers,
    day_two_actions_through_the_api,
    a_disabled_account_acts_nowhere,
    provider_roles_lapse_without_a_new_sign_in,
);
on_both_engines!(@one role_by_endpoint_matrix, super::start_without_quota);
on_both_engines!(@one a_type_the_platform_role_approves_is_reviewed_from_the_platform_queue, super::start_with_platform_approvers);

struct Api {
    base: String,
    http: Client,
}

impl Api {
    async fn start(app: &TestApp) -> TestResult<Api> {
        let router = slipway_server::cli::router(&app.state, axum::Router::new());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            let service = router.into_make_service_with_connect_info::<SocketAddr>();
            let _ = axum::serve(listener, service).await;
        });
        Ok(Api {
            base: format!("http://{addr}/api/v1"),
            http: Client::new(),
        })
    }

    fn call(&self, method: Method, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token)
    }

    async fn get(&self, path: &str, token: &str) -> TestResult<(StatusCode, Value)> {
        answer(self.call(Method::GET, path, token)).await
    }

    async fn post(&self, path: &str, token: &str, body: &Value) -> TestResult<(StatusCode, Value)> {
        answer(self.call(Method::POST, path, token).json(body)).await
    }

    async fn post_with_key(
        &self,
        path: &str,
        token: &str,
        body: &Value,
        key: &str,
    ) -> TestResult<(StatusCode, Value)> {
        let request = self.call(Method::POST, path, token);
        answer(request.header("Idempotency-Key", key).json(body)).await
    }
}

async fn answer(request: reqwest::RequestBuilder) -> TestResult<(StatusCode, Value)> {
    let response = request.send().await?;
    let status = response.status();
    let problem = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/problem+json"));
    let text = response.text().await?;
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).map_err(|e| format!("{status}: not JSON ({e}): {text}"))?
    };
    if status.is_client_error() || status.is_server_error() {
        assert!(problem, "{status} without problem+json: {text}");
        assert_eq!(body["status"], json!(status.as_u16()), "{text}");
    }
    assert!(!status.is_server_error(), "{status}: {text}");
    Ok((status, body))
}

async fn token(app: &TestApp, user: &str, scopes: &[TokenScope]) -> TestResult<String> {
    let caller = app.user(user).await?;
    let request = TokenRequest {
        name: format!("{user} test token"),
        scopes: scopes.to_vec(),
        expires_in_days: Some(1),
    };
    Ok(tokens::create(&app.state, &caller, &request).await?.secret)
}

const ALL: &[TokenScope] = &[
    TokenScope::Read,
    TokenScope::Request,
    TokenScope::Review,
    TokenScope::Admin,
];

fn new_namespace(name: &str, environment: &str) -> Value {
    json!({ "type": "k8s-namespace", "params": namespace_params(name, "payments", environment, 1) })
}

async fn tokens_authenticate_and_stop_at_once(app: &TestApp) -> TestResult {
    let api = Api::start(app).await?;
    let secret = token(app, "alice", &[TokenScope::Read]).await?;
    let (status, me) = api.get("/me", &secret).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["username"], "alice");

    for bad in [
        "",
        "slw_short",
        "Basic abc",
        &format!("{secret}x"),
        "slw_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        let (status, problem) = api.get("/me", bad).await?;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{bad:?}: {problem}");
    }
    let (status, _) = answer(api.http.get(format!("{}/me", api.base))).await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The scheme's name is read in any case, as HTTP defines it.
    for scheme in ["bearer", "BEARER", "BeArEr"] {
        let call = api
            .http
            .get(format!("{}/me", api.base))
            .header("Authorization", format!("{scheme} {secret}"));
        assert_eq!(answer(call).await?.0, StatusCode::OK, "{scheme}");
    }

    // Revoked: refused on the next call.
    let alice = app.user("alice").await?;
    let listed = tokens::list(&app.state, &alice).await?;
    tokens::revoke(&app.state, &alice, listed[0].id).await?;
    assert_eq!(api.get("/me", &secret).await?.0, StatusCode::UNAUTHORIZED);

    // Expired: refused too.
    let second = token(app, "alice", &[TokenScope::Read]).await?;
    assert_eq!(api.get("/me", &second).await?.0, StatusCode::OK);
    app.exec("UPDATE api_tokens SET expires_at = 1").await?;
    assert_eq!(api.get("/me", &second).await?.0, StatusCode::UNAUTHORIZED);

    // The secret is stored only as a hash.
    let stored: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM api_tokens WHERE secret_hash = $1 OR prefix = $1")
            .bind(&second)
            .fetch_one(&app.state.db.pool)
            .await?;
    assert_eq!(stored, 0);

    // Tokens that ended long ago leave the list; a loop making tokens stops at
    // the most one person may hold live.
    // The revoked one ended today and is listed; the other expired in 1970.
    assert_eq!(tokens::list(&app.state, &alice).await?.len(), 1);
    let long_ago = slipway_server::storage::now_millis() - 31 * 86_400_000;
    sqlx::query("UPDATE api_tokens SET expires_at = $1, revoked_at = NULL")
        .bind(long_ago)
        .execute(&app.state.db.pool)
        .await?;
    assert!(tokens::list(&app.state, &alice).await?.is_empty());
    let made = |n: usize| TokenRequest {
        name: format!("loop {n}"),
        scopes: vec![TokenScope::Read],
        expires_in_days: Some(1),
    };
    for n in 0..tokens::MAX_LIVE_TOKENS as usize {
        tokens::create(&app.state, &alice, &made(n)).await?;
    }
    refused!(app, tokens::create(&app.state, &alice, &made(100)),
        ServiceError::Invalid(errors) => assert!(errors[0].message.contains("revoke one"), "{errors:?}"));
    assert_eq!(tokens::list(&app.state, &alice).await?.len(), 100);

    // A loop that makes and revokes tokens does not grow the list without end:
    // every live one is listed, then the newest that ended, up to the cap.
    sqlx::query("UPDATE api_tokens SET revoked_at = $1")
        .bind(slipway_server::storage::now_millis())
        .execute(&app.state.db.pool)
        .await?;
    for n in 0..tokens::MAX_LIVE_TOKENS as usize - 5 {
        tokens::create(&app.state, &alice, &made(n)).await?;
    }
    let listed = tokens::list(&app.state, &alice).await?;
    assert_eq!(listed.len(), tokens::LISTED_TOKENS as usize);
    assert!(listed[..95].iter().all(|t| !t.revoked));
    // Twenty made at once with room for five: five are made (on PostgreSQL the
    // count and the insert of each take the person's turn).
    let creates = (0..20).map(|n| {
        let (state, alice) = (app.state.clone(), alice.clone());
        let request = made(1000 + n);
        tokio::spawn(async move { tokens::create(&state, &alice, &request).await.is_ok() })
    });
    let mut made_now = 0;
    for create in creates.collect::<Vec<_>>() {
        made_now += i64::from(create.await?);
    }
    assert_eq!(made_now, 5);
    let live: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_tokens WHERE revoked_at IS NULL")
        .fetch_one(&app.state.db.pool)
        .await?;
    assert_eq!(live, tokens::MAX_LIVE_TOKENS);
    Ok(())
}

async fn catalog_and_me(app: &TestApp) -> TestResult {
    let api = Api::start(app).await?;
    let secret = token(app, "alice", &[TokenScope::Read]).await?;
    let (_, types) = api.get("/types", &secret).await?;
    let names: Vec<&str> = types
        .as_array()
        .ok_or("types")?
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["k8s-namespace", "postgres-database", "shared-database"]
    );
    let (_, ns) = api.get("/types/k8s-namespace", &secret).await?;
    assert_eq!(ns["owner_param"], "team");
    // Alice may only ask for her own team: the schema she gets says so.
    assert_eq!(
        ns["schema"]["properties"]["team"]["enum"],
        json!(["payments"])
    );
    let (_, schema) = api.get("/types/postgres-database/schema", &secret).await?;
    assert_eq!(schema["type"], "object");
    let (status, problem) = api.get("/types/nope", &secret).await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(problem["type"], "/api-docs#problem-not-found");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("nope"),
        "{problem}"
    );
    let (_, dictionaries) = api.get("/dictionaries", &secret).await?;
    assert_eq!(dictionaries.as_array().map(Vec::len), Some(2));
    let (_, doc) = answer(api.http.get(format!("{}/openapi.json", api.base))).await?;
    assert!(
        doc["openapi"]
            .as_str()
            .unwrap_or_default()
            .starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    assert!(doc["paths"]["/api/v1/requests/{id}/reviews"]["post"].is_object());
    Ok(())
}

async fn create_is_idempotent_and_reads_back(app: &TestApp) -> TestResult {
    let api = Api::start(app).await?;
    let secret = token(app, "alice", ALL).await?;
    let body = new_namespace("idem", "dev");
    let send = |body: &Value, key: &str| {
        api.call(Method::POST, "/requests", &secret)
            .header("Idempotency-Key", key)
            .json(body)
            .send()
    };
    // A refused call did nothing and holds its key for nothing: the same key
    // with the call put right (a content type, a valid name) is a new try.
    let bare = api
        .call(Method::POST, "/requests", &secret)
        .header("Idempotency-Key", "key-1")
        .body(serde_json::to_vec(&body)?)
        .send()
        .await?;
    assert_eq!(bare.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let invalid = send(&new_namespace("Not A Name!", "dev"), "key-1").await?;
    assert_eq!(invalid.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let invalid: Value = invalid.json().await?;
    assert_ne!(
        invalid["errors"][0]["field"], "Idempotency-Key",
        "{invalid}"
    );
    assert_eq!(app.count("idempotency_keys").await?, 0);
    let first = send(&body, "key-1").await?;
    assert_eq!(first.status(), StatusCode::CREATED);
    let location = first
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let first: Value = first.json().await?;
    let id = first["summary"]["id"].as_i64().ok_or("no id")?;
    assert_eq!(
        location.as_deref(),
        Some(format!("/api/v1/requests/{id}").as_str())
    );
    let before = app.snapshot().await?;

    let again = send(&body, "key-1").await?;
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(
        again
            .headers()
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    let replayed_location = again
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    assert_eq!(replayed_location, location, "a replay keeps the Location");
    let again: Value = again.json().await?;
    assert_eq!(again["summary"]["id"], json!(id));
    assert_eq!(
        app.snapshot().await?,
        before,
        "a replay changed stored data"
    );

    let other = send(&new_namespace("other", "dev"), "key-1").await?;
    assert_eq!(other.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.snapshot().await?, before);

    // The answer is replayed only to the token that earned it: another token of
    // alice's, one that may only read, does not get it by reusing the key.
    let reader = token(app, "alice", &[TokenScope::Read]).await?;
    let before = app.snapshot().await?;
    let borrowed = api
        .call(Method::POST, "/requests", &reader)
        .header("Idempotency-Key", "key-1")
        .json(&body)
        .send()
        .await?;
    assert_eq!(borrowed.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(borrowed.headers().get("idempotent-replayed").is_none());
    assert_eq!(app.snapshot().await?, before);

    // Nor to alice once she has left the team the first call was made for: the
    // answer showed that team's request. Back in the team, it is replayed again.
    app.exec("UPDATE users SET teams = 'search' WHERE username = 'alice'")
        .await?;
    let before = app.snapshot().await?;
    let moved = send(&body, "key-1").await?;
    assert_eq!(moved.status(), StatusCode::FORBIDDEN);
    assert!(moved.headers().get("idempotent-replayed").is_none());
    let moved: Value = moved.json().await?;
    assert!(
        moved["detail"]
            .as_str()
            .is_some_and(|d| d.contains("(team payments)") && !d.contains("payments-idem-dev")),
        "{moved}"
    );
    assert_eq!(app.snapshot().await?, before);
    app.exec("UPDATE users SET teams = 'payments' WHERE username = 'alice'")
        .await?;
    let back = send(&body, "key-1").await?;
    assert_eq!(back.status(), StatusCode::CREATED);
    assert!(back.headers().get("idempotent-replayed").is_some());

    // Keys belong to the caller: bob's key-1 is his own.
    let bob = token(app, "bob", ALL).await?;
    let response = api
        .call(Method::POST, "/requests", &bob)
        .header("Idempotency-Key", "key-1")
        .json(&json!({ "type": "k8s-namespace", "params": namespace_params("bobs", "platform", "dev", 1) }))
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::CREATED);

    let (status, read) = api.get(&format!("/requests/{id}"), &secret).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read["summary"]["resource_name"], "payments-idem-dev");

    // Three days on, the key's record swept: the same key is no retry any more,
    // and it is said so rather than answered with the old request as if new.
    app.exec("DELETE FROM idempotency_keys").await?;
    let three_days = 3 * 24 * 60 * 60 * 1000;
    app.exec(&format!(
        "UPDATE requests SET created_at = created_at - {three_days} WHERE id = {id}"
    ))
    .await?;
    let before = app.snapshot().await?;
    let late = send(&body, "key-1").await?;
    assert_eq!(late.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let late: Value = late.json().await?;
    assert_eq!(late["errors"][0]["field"], "Idempotency-Key", "{late}");
    assert_eq!(app.snapshot().await?, before);
    Ok(())
}

async fn concurrent_creates_with_one_key_make_one_request(app: &TestApp) -> TestResult {
    let api = Api::start(app).await?;
    let secret = token(app, "alice", ALL).await?;
    let body = new_namespace("race", "dev");
    let mut calls = Vec::new();
    for _ in 0..16 {
        let request = api
            .call(Method::POST, "/requests", &secret)
            .header("Idempotency-Key", "same-key")
            .json(&body);
        calls.push(tokio::spawn(async move {
            request.send().await.map(|r| r.status())
        }));
    }
    let mut statuses = Vec::new();
    for call in calls {
        statuses.push(call.await??);
    }
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::CREATED || *s == StatusCode::CONFLICT),
        "{statuses:?}"
    );
    assert!(statuses.contains(&StatusCode::CREATED));
    assert_eq!(app.count("requests").await?, 1, "{statuses:?}");
    Ok(())
}

async fn precheck_and_dry_run_write_nothing(app: &TestApp) -> TestResult {
    let api = Api::start(app).await?;
    let secret = token(app, "alice", ALL).await?;
    let before = app.snapshot().await?;
    let (status, report) = api
        .post("/requests/precheck", &secret, &new_namespace("pre", "prod"))
        .await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(report["resource_name"], "payments-pre-prod");
    let (_, dry) = api
        .post("/requests/dry-run", &secret, &new_namespace("pre", "prod"))
        .await?;
    assert_eq!(
        dry["change_set"]["files"].as_array().map(Vec::len),
        Some(3),
        "{dry}"
    );
    assert!(dry["change_set_hash"].is_string());
    let (_, failing) = api
        .post(
            "/requests/dry-run",
            &secret,
            &json!({"type": "k8s-namespace", "params": {"name": "X"}}),
        )
        .await?;
    assert!(failing["change_set"].is_null());
    assert!(
        !failing["precheck"]["field_errors"]
            .as_array()
            .ok_or("errors")?
            .is_empty()
    );
    // A key on a call that only computes is passed over: nothing is kept, and the
    // same key answers anew (never a pre-check from before a change).
    for path in ["/requests/precheck", "/requests/dry-run"] {
        for _ in 0..2 {
            let answer = api
                .call(Method::POST, path, &secret)
                .header("Idempotency-Key", "computing-only")
                .json(&new_namespace("pre", "prod"))
                .send()
                .await?;
            assert_eq!(answer.status(), StatusCode::OK, "{path}");
            assert!(
                answer.headers().get("idempotent-replayed").is_none(),
                "{path}"
            );
        }
    }
    assert_eq!(app.count("idempotency_keys").await?, 0);
    assert_eq!(app.snapshot().await?, before);
    Ok(())
}

async fn review_round_through_the_api(app: &TestApp) -> TestResult {
    let api = Api::start(app).await?;
    let alice = token(app, "alice", ALL).await?;
    let bob = token(app, "bob", &[TokenScope::Review]).await?;
    let (status, created) = api
        .post("/requests", &alice, &new_namespace("reviewed", "prod"))
        .await?;
    assert_eq!(status, StatusCode::CREATED);
    let id = created["summary"]["id"].as_i64().ok_or("id")?;
    let hash = created["revisions"][0]["change_set_hash"]
        .as_str()
        .ok_or("hash")?
        .to_string();
    let path = format!("/requests/{id}/reviews");

    // Nobody approves their own request, even with a token that may review.
    let (status, _) = api
        .post(
            &path,
            &alice,
            &json!({"decision": "approve", "revision": 1, "change_set_hash": hash}),
        )
        .await?;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A hash the reviewer did not see is a conflict.
    let (status, _) = api
        .post(
            &path,
            &bob,
            &json!({"decision": "approve", "revision": 1, "change_set_hash": "0000"}),
        )
        .await?;
    assert_eq!(status, StatusCode::CONFLICT);
    // A conflict says how things stood then: the same key asks anew, never a
    // replay of the refusal (a retry is what a conflict asks for).
    for _ in 0..2 {
        let answer = api
            .call(Method::POST, &path, &bob)
            .header("Idempotency-Key", "stale-hash")
            .json(&json!({"decision": "approve", "revision": 1, "change_set_hash": "0000"}))
            .send()
            .await?;
        assert_eq!(answer.status(), StatusCode::CONFLICT);
        assert!(answer.headers().get("idempotent-replayed").is_none());
    }
    let (status, _) = api
        .post(&path, &bob, &json!({"decision": "request_changes", "revision": 1, "change_set_hash": hash, "comment": "2 CPUs please"}))
        .await?;
    assert_eq!(status, StatusCode::OK);
    // A revision names the one it revises: one made from another is refused.
    let revisions = format!("/requests/{id}/revisions");
    let params = namespace_params("reviewed", "payments", "prod", 2);
    let (status, stale) = api
        .post(
            &revisions,
            &alice,
            &json!({"params": params, "revision": 7}),
        )
        .await?;
    assert_eq!(status, StatusCode::CONFLICT, "{stale}");
    let (status, revised) = api
        .post(
            &revisions,
            &alice,
            &json!({"params": params, "revision": 1}),
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{revised}");
    let current = revised["summary"]["revision"].clone();
    let new_hash = revised["revisions"]
        .as_array()
        .ok_or("revisions")?
        .iter()
        .find(|r| r["revision"] == current)
        .ok_or("no current revision")?["change_set_hash"]
        .as_str()
        .ok_or("hash")?
        .to_string();
    assert_ne!(new_hash, hash);
    let (status, _) = api
        .post(
            &path,
            &bob,
            &json!({"decision": "approve", "revision": 1, "change_set_hash": hash}),
        )
        .await?;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "the old change set must not be approvable"
    );
    let (status, _) = api
        .post(
            &path,
            &bob,
            &json!({"decision": "approve", "revision": 1, "change_set_hash": new_hash}),
        )
        .await?;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a decision names the revision it was made on, whatever the hash"
    );
    let (status, problem) = api
        .post(
            &path,
            &bob,
            &json!({"decision": "approve", "revision": current, "change_set_hash": hash}),
        )
        .await?;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        !problem.to_string().contains(&new_hash),
        "a refusal does not tell the hash to send: {problem}"
    );
    let (status, approved) = api
        .post(
            &path,
            &bob,
            &json!({"decision": "approve", "revision": current, "change_set_hash": new_hash}),
        )
        .await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(approved["summary"]["state"], "approved");
    app.run_jobs().await?;
    let (_, done) = api.get(&format!("/requests/{id}"), &alice).await?;
    assert_eq!(done["summary"]["state"], "completed");
    let asset = done["asset_id"].as_i64().ok_or("asset")?;
    let (_, asset_detail) = api.get(&format!("/assets/{asset}"), &alice).await?;
    assert_eq!(asset_detail["summary"]["name"], "payments-reviewed-prod");
    let (_, history) = api.get(&format!("/assets/{asset}/history"), &alice).await?;
    assert_eq!(history[0]["action"], "asset.created");
    Ok(())
}

async fn lists_page_across_more_rows_than_a_page(app: &TestApp) -> TestResult {
    let api = Api::start(app).await?;
    let alice = token(app, "alice", ALL).await?;
    let mut made = Vec::new();
    for (i, environment) in ["dev", "dev", "dev", "staging", "staging", "staging", "prod"]
        .iter()
        .enumerate()
    {
        let (_, created) = api
            .post(
                "/requests",
                &alice,
                &new_namespace(&format!("page{i}"), environment),
            )
            .await?;
        made.push(created["summary"]["id"].as_i64().ok_or("id")?);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/requests?mine=true&limit=3&cursor={c}"),
            None => "/requests?mine=true&limit=3".to_string(),
        };
        let (status, page) = api.get(&path, &alice).await?;
        assert_eq!(status, StatusCode::OK, "{page}");
        seen.extend(
            page["items"]
                .as_array()
                .ok_or("items")?
                .iter()
                .filter_map(|r| r["id"].as_i64()),
        );
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
        assert!(pages < 10, "paging does not end");
    }
    made.reverse();
    assert_eq!(seen, made);
    assert_eq!(pages, 3);
    let (_, filtered) = api
        .get("/requests?state=in_review&type=k8s-namespace", &alice)
        .await?;
    assert!(
        filtered["items"]
            .as_array()
            .ok_or("items")?
            .iter()
            .all(|r| r["state"] == "in_review")
    );
    let (_, assets) = api
        .get("/assets?type=k8s-namespace&limit=2", &alice)
        .await?;
    assert!(assets["items"].is_array());
    Ok(())
}

async fn bad_input_is_a_clear_4xx_and_changes_nothing(app: &TestApp) -> TestResult {
    let api = Api::start(app).await?;
    let alice = token(app, "alice", ALL).await?;
    let (_, created) = api
        .post("/requests", &alice, &new_namespace("bad", "prod"))
        .await?;
    let id = created["summary"]["id"].as_i64().ok_or("id")?;
    let before = app.snapshot().await?;
    let raw = |path: &str, body: String| {
        api.call(Method::POST, path, &alice)
            .header("content-type", "application/json")
            .body(body)
    };
    let deep = format!(
        "{{\"type\":\"k8s-namespace\",\"params\":{{\"name\":{}{}}}}}",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    let huge = format!(
        "{{\"type\":\"k8s-namespace\",\"params\":{{\"name\":\"{}\"}}}}",
        "a".repeat(5 * 1024 * 1024)
    );
    let reviews = format!("/requests/{id}/reviews");
    let cases: Vec<(&str, String, StatusCode)> = vec![
        ("/requests", "{".into(), StatusCode::BAD_REQUEST),
        ("/requests", "not json".into(), StatusCode::BAD_REQUEST),
        ("/requests", deep, StatusCode::BAD_REQUEST),
        ("/requests", huge, StatusCode::PAYLOAD_TOO_LARGE),
        ("/requests", json!({"type": "k8s-namespace"}).to_string(), StatusCode::UNPROCESSABLE_ENTITY),
        ("/requests", json!({"type": 5, "params": {}}).to_string(), StatusCode::UNPROCESSABLE_ENTITY),
        ("/requests", json!({"type": "k8s-namespace", "params": {}, "extra": 1}).to_string(), StatusCode::UNPROCESSABLE_ENTITY),
        ("/requests", json!({"type": "k8s-namespace", "params": {"name": "ok", "team": "payments", "environment": "dev", "cpu_limit": "many", "memory_limit_gi": 1}}).to_string(), StatusCode::UNPROCESSABLE_ENTITY),
        ("/requests", json!({"type": "nope", "params": {}}).to_string(), StatusCode::NOT_FOUND),
        ("/requests", json!({"type": "k8s-namespace", "params": [1, 2]}).to_string(), StatusCode::UNPROCESSABLE_ENTITY),
        // JSON allows a number no float holds: a value out of range, named.
        ("/requests", r#"{"type": "k8s-namespace", "params": {"cpu_limit": 1e400}}"#.into(), StatusCode::UNPROCESSABLE_ENTITY),
        (&reviews, json!({"decision": "maybe", "change_set_hash": "x"}).to_string(), StatusCode::UNPROCESSABLE_ENTITY),
        (&reviews, json!({"decision": "approve"}).to_string(), StatusCode::UNPROCESSABLE_ENTITY),
        ("/requests/abc/cancel", String::new(), StatusCode::BAD_REQUEST),
        ("/requests/99999/cancel", String::new(), StatusCode::NOT_FOUND),
        ("/requests/precheck", json!({"type": "k8s-namespace", "params": {}, "request_id": "x"}).to_string(), StatusCode::UNPROCESSABLE_ENTITY),
        ("/tokens", json!({"name": "", "scopes": []}).to_string(), StatusCode::UNPROCESSABLE_ENTITY),
        ("/tokens", json!({"name": "x", "scopes": ["root"]}).to_string(), StatusCode::UNPROCESSABLE_ENTITY),
        ("/tokens", json!({"name": "x", "scopes": ["read"], "expires_in_days": 100000}).to_string(), StatusCode::UNPROCESSABLE_ENTITY),
    ];
    for (path, body, want) in cases {
        let shown: String = body.chars().take(80).collect();
        let (status, problem) = answer(raw(path, body)).await?;
        assert_eq!(status, want, "POST {path} {shown}: {problem}");
        assert!(
            !problem["detail"].as_str().unwrap_or_default().is_empty(),
            "{problem}"
        );
        // Every problem names its call's trace, one refused before a handler too.
        assert!(
            problem["trace_id"].is_string(),
            "POST {path} {shown}: {problem}"
        );
    }
    let out_of_range = r#"{"type": "k8s-namespace", "params": {"cpu_limit": 1e400}}"#;
    let (_, problem) = answer(raw("/requests", out_of_range.into())).await?;
    assert_eq!(
        problem["errors"][0]["field"], "params.cpu_limit",
        "{problem}"
    );
    // A key given twice is refused, at any depth, naming it: serde would keep
    // the last, past whatever read the first.
    for (body, field) in [
        (
            r#"{"type": "k8s-namespace", "params": {"name": "big", "team": "payments", "environment": "dev", "cpu_limit": 2, "memory_limit_gi": 4, "name": "x"}}"#,
            "params.name",
        ),
        (
            r#"{"type": "k8s-namespace", "type": "postgres-database", "params": {}}"#,
            "type",
        ),
        // serde reads a struct from a list of its fields too: not here.
        (r#"["k8s-namespace", {}]"#, ""),
    ] {
        let (status, problem) = answer(raw("/requests", body.into())).await?;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {problem}"
        );
        assert_eq!(problem["errors"][0]["field"], field, "{body}: {problem}");
    }
    // Too large is one answer, with or without an Idempotency-Key.
    let mut kinds = Vec::new();
    for key in [None, Some("too-large")] {
        let mut request = raw("/requests", format!("\"{}\"", "a".repeat(300 * 1024)));
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        let (status, problem) = answer(request).await?;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{problem}");
        assert!(
            !problem["detail"].to_string().contains("buffer"),
            "{problem}"
        );
        kinds.push(problem["type"].clone());
    }
    assert_eq!(kinds[0], kinds[1]);
    // A list's query: every bad parameter is a 422 that names it.
    for (query, field) in [
        ("cursor=zzz", "cursor"),
        ("limit=100000", "limit"),
        ("colour=red", "colour"),
        ("state=sleeping", "state"),
        ("state=", "state"),
        ("before=", "before"),
        ("after=&created_to=2026-01-01", "after"),
        ("created_to=", "created_to"),
        ("mine=", "mine"),
    ] {
        let (status, problem) = api.get(&format!("/requests?{query}"), &alice).await?;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{query}: {problem}"
        );
        assert_eq!(problem["errors"][0]["field"], field, "{query}: {problem}");
        assert!(problem["trace_id"].is_string(), "{query}: {problem}");
    }
    let (status, _) = api.get("/no/such/thing", &alice).await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = api.get("/requests/18446744073709551616", &alice).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let long_key = "k".repeat(200);
    let (status, _) = answer(
        api.call(Method::POST, "/requests", &alice)
            .header("Idempotency-Key", long_key)
            .json(&new_namespace("keyed", "dev")),
    )
    .await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // A missing field is named, at the top of the body and deeper in it.
    for (path, body, field) in [
        ("/requests", json!({"type": "k8s-namespace"}), "params"),
        (
            reviews.as_str(),
            json!({"change_set_hash": "x"}),
            "decision",
        ),
        (
            reviews.as_str(),
            json!({"decision": "approve", "change_set_hash": "x"}),
            "revision",
        ),
    ] {
        let (status, problem) = api.post(path, &alice, &body).await?;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
        assert_eq!(problem["errors"][0]["message"], "is required", "{problem}");
    }
    // A field error names the field and its rule.
    let (status, problem) = api
        .post("/requests", &alice, &json!({"type": "k8s-namespace", "params": namespace_params("Bad Name", "payments", "dev", 1)}))
        .await?;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let errors = problem["errors"].as_array().ok_or("errors")?;
    assert!(
        errors.iter().any(|e| e["field"] == "name"
            && e["message"]
                .as_str()
                .unwrap_or_default()
                .contains("pattern")),
        "{problem}"
    );
    assert_eq!(
        app.snapshot().await?,
        before,
        "bad input changed stored data"
    );
    Ok(())
}

/// A list of ten thousand wrong items once took a megabyte to answer, and a valid
/// one too large for its Idempotency-Key's record was created but answered 500.
async fn hostile_lists_get_a_short_answer_and_an_oversized_request_is_refused(
    app: &TestApp,
) -> TestResult {
    let api = Api::start(app).await?;
    let alice = token(app, "alice", ALL).await?;
    let mut wrong = namespace_params("many", "payments", "dev", 1);
    wrong["admins"] = json!(vec![1; 10_000]);
    let body = json!({ "type": "k8s-namespace", "params": wrong });
    let (status, report) = api.post("/requests/precheck", &alice, &body).await?;
    assert_eq!(status, StatusCode::OK);
    let about_admins = report["field_errors"]
        .as_array()
        .ok_or("field_errors")?
        .iter()
        .filter(|e| e["field"] == "admins")
        .count();
    assert_eq!(
        about_admins, 11,
        "ten listed and one that counts the rest: {report}"
    );
    for _ in 0..2 {
        let response = api
            .call(Method::POST, "/requests", &alice)
            .header("Idempotency-Key", "hostile-list")
            .json(&body)
            .send()
            .await?;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let text = response.text().await?;
        assert!(text.len() < 16 * 1024, "{} bytes", text.len());
        assert!(text.contains("more problems like these"), "{text}");
    }

    // A list's query: a flag of 20,000 characters, a cursor given 2,000 times.
    let huge_flag = format!("/requests?mine={}", "x".repeat(20_000));
    let repeated = format!("/requests?{}", vec!["cursor=b1"; 2_000].join("&"));
    for path in [huge_flag, repeated] {
        let response = api.call(Method::GET, &path, &alice).send().await?;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let text = response.text().await?;
        assert!(text.len() < 16 * 1024, "{} bytes: {text:.300}", text.len());
    }

    let mut large = namespace_params("large", "payments", "dev", 1);
    let names: Vec<String> = (0..12_000).map(|i| format!("user{i:06}")).collect();
    large["admins"] = json!(names);
    let body = json!({ "type": "k8s-namespace", "params": large });
    let (status, problem) = api
        .post_with_key("/requests", &alice, &body, "oversized")
        .await?;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("at most 65536 are accepted"),
        "{problem}"
    );
    assert_eq!(app.count("requests").await?, 0);
    Ok(())
}

/// Each endpoint for each kind of caller: allowed, or refused with nothing changed.
async fn who_may_call_what(app: &TestApp) -> TestResult {
    let api = Api::start(app).await?;
    let alice = token(app, "alice", ALL).await?;
    let alice_read = token(app, "alice", &[TokenScope::Read]).await?;
    let bob = token(app, "bob", ALL).await?;
    let carol = token(app, "carol", ALL).await?;
    let (_, created) = api
        .post("/requests", &alice, &new_namespace("matrix", "prod"))
        .await?;
    let id = created["summary"]["id"].as_i64().ok_or("id")?;
    let hash = created["revisions"][0]["change_set_hash"]
        .as_str()
        .ok_or("hash")?
        .to_string();

    // (caller, method, path, body, expected status) — refusals first, each changes nothing.
    let refusals: Vec<(&str, &str, String, Value, StatusCode)> = vec![
        (
            &alice_read,
            "POST",
            "/requests".into(),
            new_namespace("readonly", "dev"),
            StatusCode::FORBIDDEN,
        ),
        (
            &alice_read,
            "POST",
            "/tokens".into(),
            json!({"name": "x", "scopes": ["read"]}),
            StatusCode::FORBIDDEN,
        ),
        (
            &alice,
            "POST",
            "/requests".into(),
            json!({"type": "k8s-namespace", "params": namespace_params("theirs", "search", "dev", 1)}),
            StatusCode::FORBIDDEN,
        ),
        (
            &alice,
            "POST",
            format!("/requests/{id}/reviews"),
            json!({"decision": "approve", "revision": 1, "change_set_hash": hash}),
            StatusCode::FORBIDDEN,
        ),
        (
            &alice,
            "POST",
            format!("/requests/{id}/claim"),
            Value::Null,
            StatusCode::FORBIDDEN,
        ),
        (
            &alice,
            "POST",
            format!("/requests/{id}/retry"),
            Value::Null,
            StatusCode::FORBIDDEN,
        ),
        (
            &alice,
            "POST",
            format!("/requests/{id}/resolve"),
            json!({"note": "x"}),
            StatusCode::FORBIDDEN,
        ),
        (
            &alice,
            "GET",
            "/audit".into(),
            Value::Null,
            StatusCode::FORBIDDEN,
        ),
        (
            &bob,
            "POST",
            format!("/requests/{id}/cancel"),
            Value::Null,
            StatusCode::FORBIDDEN,
        ),
        (
            &bob,
            "POST",
            format!("/requests/{id}/revisions"),
            json!({"params": namespace_params("matrix", "payments", "prod", 2)}),
            StatusCode::FORBIDDEN,
        ),
        (
            &bob,
            "POST",
            format!("/requests/{id}/claim"),
            Value::Null,
            StatusCode::FORBIDDEN,
        ),
        (
            &carol,
            "POST",
            format!("/requests/{id}/claim"),
            Value::Null,
            StatusCode::CONFLICT,
        ),
        (
            &carol,
            "POST",
            format!("/requests/{id}/revisions"),
            json!({"params": namespace_params("matrix", "payments", "prod", 2)}),
            StatusCode::FORBIDDEN,
        ),
    ];
    for (caller, method, path, body, want) in refusals {
        let before = app.snapshot().await?;
        let method = Method::from_bytes(method.as_bytes())?;
        let mut request = api.call(method.clone(), &path, caller);
        if !body.is_null() {
            request = request.json(&body);
        }
        let (status, problem) = answer(request).await?;
        assert_eq!(status, want, "{method} {path}: {problem}");
        assert_eq!(
            app.snapshot().await?,
            before,
            "{method} {path} changed stored data"
        );
    }
    // Allowed: bob may see it and the queue; carol may read the audit log and cancel.
    assert_eq!(
        api.get(&format!("/requests/{id}"), &bob).await?.0,
        StatusCode::OK
    );
    assert_eq!(api.get("/audit?limit=5", &carol).await?.0, StatusCode::OK);
    let (status, cancelled) = api
        .post(&format!("/requests/{id}/cancel"), &carol, &Value::Null)
        .await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(cancelled["summary"]["state"], "cancelled");
    Ok(())
}

async fn audit_lists_and_exports_json_lines(app: &TestApp) -> TestResult {
    let api = Api::start(app).await?;
    let alice = token(app, "alice", ALL).await?;
    let carol = token(app, "carol", &[TokenScope::Read]).await?;
    let (_, created) = api
        .post("/requests", &alice, &new_namespace("audited", "dev"))
        .await?;
    let id = created["summary"]["id"].as_i64().ok_or("id")?;
    let (_, page) = api
        .get(&format!("/audit?target=request:{id}"), &carol)
        .await?;
    let submit = page["items"]
        .as_array()
        .ok_or("items")?
        .iter()
        .find(|e| e["action"] == "request.submit")
        .cloned()
        .ok_or("no submit event")?;
    assert_eq!(submit["channel"], "api");
    assert_eq!(submit["client_addr"], "127.0.0.1");
    assert!(submit["trace_id"].is_string());
    let response = api
        .call(Method::GET, "/audit/export", &carol)
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/x-ndjson")
    );
    let text = response.text().await?;
    let lines: Vec<Value> = text
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(lines.len() as i64, app.count("audit_events").await?);
    assert_eq!(
        api.get("/audit/export", &alice).await?.0,
        StatusCode::FORBIDDEN
    );
    Ok(())
}

async fn unknown_methods_are_405_and_every_operation_documents_its_layers(
    app: &TestApp,
) -> TestResult {
    let api = Api::start(app).await?;
    let alice = token(app, "alice", ALL).await?;
    // Before the token and Idempotency-Key checks: the method is what is wrong.
    let (status, body) = answer(
        api.http
            .delete(format!("{}/requests", api.base))
            .header("Idempotency-Key", "not valid"),
    )
    .await?;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{body}");
    let (status, _) = answer(api.call(Method::PUT, "/requests/1/cancel", &alice)).await?;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    // The document too, and the API's own root: problems, never a bare status or
    // the portal's page (`answer` checks each is problem+json).
    let (status, _) = answer(api.call(Method::POST, "/openapi.json", &alice)).await?;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    for root in ["", "/"] {
        let (status, body) = answer(api.call(Method::GET, root, &alice)).await?;
        assert_eq!(status, StatusCode::NOT_FOUND, "{root:?}: {body}");
    }
    // A token call from a page of another site is no forgery (the token is its own
    // credential); the same call riding on a cookie is refused, as a problem.
    let (status, body) = answer(
        api.call(Method::POST, "/requests/precheck", &alice)
            .header("Origin", "http://evil.example")
            .json(&new_namespace("fromapage", "dev")),
    )
    .await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = answer(
        api.http
            .post(format!("{}/requests/precheck", api.base))
            .header("Origin", "http://evil.example")
            .header("Cookie", "slipway_session=whatever")
            .json(&new_namespace("fromapage", "dev")),
    )
    .await?;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    // A body that does not fit names the field that broke it.
    let (status, body) = api
        .post(
            "/requests",
            &alice,
            &json!({"type": "k8s-namespace", "params": {}, "draft": {"deep": 1}}),
        )
        .await?;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("draft"),
        "{body}"
    );
    let (status, body) = api
        .post("/requests", &alice, &json!({"type": 5, "params": {}}))
        .await?;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["errors"][0]["field"], json!("type"), "{body}");

    let document = serde_json::to_value(slipway_server::api::openapi())?;
    let paths = document["paths"].as_object().ok_or("paths")?;
    for (path, item) in paths {
        for (method, operation) in item.as_object().ok_or("path item")? {
            let responses = &operation["responses"];
            for status in ["401", "429", "500"] {
                assert_eq!(
                    responses[status]["content"]["application/problem+json"]["schema"]["$ref"],
                    "#/components/schemas/Problem",
                    "{method} {path} documents {status} as a problem"
                );
            }
            if operation.get("requestBody").is_some() {
                for status in ["400", "413", "415", "422"] {
                    assert!(
                        responses.get(status).is_some(),
                        "{method} {path} takes a body but does not document {status}"
                    );
                }
            }
        }
    }
    Ok(())
}

const CANARY: &str = "canary-api-7d3e0a91-secret";

/// Sends a call and returns the status with the raw body, for looking into.
async fn raw(request: reqwest::RequestBuilder) -> TestResult<(StatusCode, String)> {
    let response = request.send().await?;
    Ok((response.status(), response.text().await?))
}

/// A secret parameter set through the API is in no answer the API gives: not the
/// create, a replay of it, a read, a list, a pre-check, a dry run, the asset, its
/// history, the audit log or its export.
async fn a_secret_never_comes_back_through_the_api(app: &TestApp) -> TestResult {
    let api = Api::start(app).await?;
    let alice = token(app, "alice", ALL).await?;
    let bob = token(app, "bob", &[TokenScope::Read, TokenScope::Review]).await?;
    let carol = token(app, "carol", &[TokenScope::Read]).await?;
    let mut answers: Vec<(String, StatusCode, String)> = Vec::new();

    // The namespace the database requires, approved by bob when the policy asks.
    let (status, namespace) = api
        .post("/requests", &alice, &new_namespace("core", "prod"))
        .await?;
    assert_eq!(status, StatusCode::CREATED, "{namespace}");
    let namespace_id = namespace["summary"]["id"].as_i64().ok_or("id")?;
    if namespace["summary"]["state"] == "in_review" {
        let hash = namespace["revisions"][0]["change_set_hash"].clone();
        let (status, _) = api
            .post(
                &format!("/requests/{namespace_id}/reviews"),
                &bob,
                &json!({"decision": "approve", "revision": 1, "change_set_hash": hash}),
            )
            .await?;
        assert_eq!(status, StatusCode::OK);
    }
    app.run_jobs().await?;
    let (_, namespace) = api
        .get(&format!("/requests/{namespace_id}"), &alice)
        .await?;
    assert_eq!(namespace["summary"]["state"], "completed", "{namespace}");

    let mut params = common::postgres_params("ledger", "prod", 20);
    params["owner_password"] = json!(CANARY);
    let body = json!({"type": "postgres-database", "params": params});
    for path in ["/requests/precheck", "/requests/dry-run"] {
        let (status, text) = raw(api.call(Method::POST, path, &alice).json(&body)).await?;
        answers.push((format!("POST {path}"), status, text));
    }
    let create = || {
        api.call(Method::POST, "/requests", &alice)
            .header("Idempotency-Key", "canary-create")
            .json(&body)
    };
    let (status, text) = raw(create()).await?;
    assert_eq!(status, StatusCode::CREATED, "{text}");
    let created: Value = serde_json::from_str(&text)?;
    answers.push(("POST /requests".into(), status, text));
    let (status, text) = raw(create()).await?;
    answers.push(("POST /requests, replayed".into(), status, text));
    let id = created["summary"]["id"].as_i64().ok_or("id")?;
    assert_eq!(created["summary"]["state"], "in_review");
    let hash = created["revisions"][0]["change_set_hash"].clone();
    let (status, text) = raw(api
        .call(Method::POST, &format!("/requests/{id}/reviews"), &bob)
        .json(&json!({"decision": "approve", "revision": 1, "change_set_hash": hash})))
    .await?;
    assert_eq!(status, StatusCode::OK, "{text}");
    answers.push(("POST reviews".into(), status, text));
    app.run_jobs().await?;

    let (_, done) = api.get(&format!("/requests/{id}"), &alice).await?;
    assert_eq!(done["summary"]["state"], "completed", "{done}");
    let asset = done["asset_id"].as_i64().ok_or("asset")?;
    let reads = [
        (format!("/requests/{id}"), &alice),
        (format!("/requests/{id}"), &bob),
        ("/requests".to_string(), &alice),
        ("/requests?type=postgres-database".to_string(), &bob),
        ("/assets".to_string(), &alice),
        (format!("/assets/{asset}"), &alice),
        (format!("/assets/{asset}/history"), &alice),
        ("/audit".to_string(), &carol),
        (format!("/audit?target=request:{id}"), &carol),
        ("/audit/export".to_string(), &carol),
    ];
    for (path, token) in reads {
        let (status, text) = raw(api.call(Method::GET, &path, token)).await?;
        answers.push((format!("GET {path}"), status, text));
    }

    for (call, status, text) in &answers {
        assert!(status.is_success(), "{call}: {status}: {text}");
        assert!(
            !text.contains(CANARY),
            "the secret came back from {call}: {text}"
        );
    }
    // Not vacuous: the answers do name the parameter, by its placeholder.
    assert!(
        answers
            .iter()
            .any(|(_, _, text)| text.contains("owner_password")),
        "no answer mentions owner_password at all"
    );
    // Nor did the call that brought it in leave it anywhere behind the API: the
    // database (idempotency answers and token uses included), its raw files and
    // the GitOps repository the change was committed to.
    let database = app.dump_database().await?;
    assert!(
        database.contains("owner_password"),
        "the dump reads the tables"
    );
    assert!(!database.contains(CANARY), "the secret is in the database");
    let raw = common::files_containing(&app.state.settings.data_dir, CANARY.as_bytes())?;
    assert!(raw.is_empty(), "the secret is in the raw files {raw:?}");
    let (repository, blobs) = common::dump_repository(app.state.gitops.path())?;
    assert!(
        blobs > 0 && repository.contains("ledger"),
        "the walk read the commits"
    );
    assert!(
        !repository.contains(CANARY),
        "the secret is in the GitOps repository"
    );
    Ok(())
}

/// Adds a person who is not a demo user (an auditor, a requester of another team).
async fn add_user(app: &TestApp, name: &str, roles: &[Role], team: &str) -> TestResult<String> {
    let hash = slipway_server::services::auth::hash_password(&format!("{name}-demo-pw"))?;
    let teams = [team.to_string()];
    let mut conn = app.state.db.pool.acquire().await?;
    slipway_server::storage::users::insert(
        &mut conn,
        &slipway_server::storage::users::NewUser {
            username: name,
            display_name: name,
            password_hash: Some(&hash),
            roles,
            teams: &teams,
        },
    )
    .await?;
    drop(conn);
    token(app, name, ALL).await
}

/// A request of alice's, brought into `state` through the services (failed and manual
/// through the state a crashed apply leaves).
async fn request_in(app: &TestApp, name: &str, state: RequestState) -> TestResult<i64> {
    let alice = app.user("alice").await?;
    let bob = app.user("bob").await?;
    let carol = app.user("carol").await?;
    let id = slipway_server::services::requests::submit(
        &app.state,
        &alice,
        &common::draft(
            "k8s-namespace",
            namespace_params(name, "payments", "prod", 1),
        ),
    )
    .await?;
    use slipway_server::services::{operations, reviews};
    match state {
        RequestState::InReview => {}
        RequestState::ChangesRequested => {
            reviews::decide(
                &app.state,
                &bob,
                id,
                1,
                ReviewDecision::RequestChanges,
                "smaller",
            )
            .await?;
        }
        RequestState::Failed | RequestState::Manual => {
            reviews::decide(&app.state, &bob, id, 1, ReviewDecision::Approve, "").await?;
            app.exec(&format!("DELETE FROM jobs WHERE request_id = {id}"))
                .await?;
            app.exec(&format!(
                "UPDATE requests SET state = 'failed', last_error = 'apply failed' WHERE id = {id}"
            ))
            .await?;
            if state == RequestState::Manual {
                operations::take_over(&app.state, &carol, id).await?;
            }
        }
        other => return Err(format!("no fixture for {other}").into()),
    }
    assert_eq!(app.request_state(id).await?, state);
    Ok(id.0)
}

/// Every state-changing endpoint for every kind of caller: allowed, or 403 with
/// nothing changed (a forbidden call leaves the request, its rows and the audit log
/// as they were).
async fn role_by_endpoint_matrix(app: &TestApp) -> TestResult {
    let api = Api::start(app).await?;
    let callers = [
        ("alice", token(app, "alice", ALL).await?),
        ("bob", token(app, "bob", ALL).await?),
        ("carol", token(app, "carol", ALL).await?),
        (
            "erin",
            add_user(app, "erin", &[Role::Auditor], "platform").await?,
        ),
        (
            "dave",
            add_user(app, "dave", &[Role::Requester], "search").await?,
        ),
    ];
    // (endpoint, state it needs, body, the callers allowed)
    type Row = (&'static str, RequestState, Value, &'static [&'static str]);
    let rows: Vec<Row> = vec![
        (
            "cancel",
            RequestState::InReview,
            Value::Null,
            &["alice", "carol"],
        ),
        (
            "reviews",
            RequestState::InReview,
            json!({"decision": "reject", "revision": 1, "change_set_hash": "", "comment": "no"}),
            &["bob", "carol"],
        ),
        (
            "revisions",
            RequestState::ChangesRequested,
            json!({"params": namespace_params("m", "payments", "prod", 2)}),
            &["alice"],
        ),
        ("claim", RequestState::Failed, Value::Null, &["carol"]),
        ("retry", RequestState::Failed, Value::Null, &["carol"]),
        (
            "resolve",
            RequestState::Manual,
            json!({"note": "done by hand"}),
            &["carol"],
        ),
        (
            "abandon",
            RequestState::Manual,
            json!({"note": "nothing was made"}),
            &["carol"],
        ),
    ];
    let mut n = 0;
    for (endpoint, state, body, allowed) in rows {
        for (who, secret) in &callers {
            n += 1;
            let id = request_in(app, &format!("m{n}"), state).await?;
            let mut body = body.clone();
            if endpoint == "reviews" {
                let (_, detail) = api.get(&format!("/requests/{id}"), &callers[2].1).await?;
                body["change_set_hash"] = detail["revisions"][0]["change_set_hash"].clone();
                body["revision"] = detail["revisions"][0]["revision"].clone();
            }
            if endpoint == "revisions" {
                body["params"]["name"] = json!(format!("m{n}"));
            }
            let before = app.snapshot().await?;
            let mut call = api.call(Method::POST, &format!("/requests/{id}/{endpoint}"), secret);
            if !body.is_null() {
                call = call.json(&body);
            }
            let (status, answer) = answer(call).await?;
            if allowed.contains(who) {
                assert_eq!(
                    status,
                    StatusCode::OK,
                    "{who} {endpoint} in {state}: {answer}"
                );
            } else {
                // dave, of another team, may not even see the request: to him
                // it answers as a missing one.
                let refused = match *who {
                    "dave" => StatusCode::NOT_FOUND,
                    _ => StatusCode::FORBIDDEN,
                };
                assert_eq!(status, refused, "{who} {endpoint} in {state}: {answer}");
                assert_eq!(
                    app.snapshot().await?,
                    before,
                    "{who} {endpoint} changed stored data"
                );
                assert_eq!(app.request_state(RequestId(id)).await?, state);
            }
        }
    }
    // Creating: for one's own team (or any, as an admin); never without the role.
    for (who, secret) in &callers {
        n += 1;
        let before = app.snapshot().await?;
        let (status, answer) = api
            .post(
                "/requests",
                secret,
                &new_namespace(&format!("c{n}"), "prod"),
            )
            .await?;
        let want = if ["alice", "carol"].contains(who) {
            StatusCode::CREATED
        } else {
            StatusCode::FORBIDDEN
        };
        assert_eq!(status, want, "{who} creates for payments: {answer}");
        if want == StatusCode::FORBIDDEN {
            assert_eq!(app.snapshot().await?, before);
        }
    }
    // Reading: a request is seen by its requester, its reviewers and those who see
    // everything, not by a requester of another team (to whom it answers as a
    // missing one); the audit log by its roles.
    let id = request_in(app, "read", RequestState::InReview).await?;
    for (who, secret) in &callers {
        let (status, _) = api.get(&format!("/requests/{id}"), secret).await?;
        let want = if *who == "dave" {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::OK
        };
        assert_eq!(status, want, "{who} reads request #{id}");
        let (status, _) = api.get("/audit?limit=1", secret).await?;
        let want = if ["carol", "erin"].contains(who) {
            StatusCode::OK
        } else {
            StatusCode::FORBIDDEN
        };
        assert_eq!(status, want, "{who} reads the audit log");
        for path in [
            "/me",
            "/types",
            "/dictionaries",
            "/assets",
            "/requests",
            "/tokens",
        ] {
            assert_eq!(
                api.get(path, secret).await?.0,
                StatusCode::OK,
                "{who} GET {path}"
            );
        }
    }
    Ok(())
}

/// The shipped catalog without the namespace quota: the matrix needs more requests in
/// one team and environment than the quota allows.
async fn start_without_quota(
    engine: slipway_server::storage::Engine,
) -> TestResult<Option<TestApp>> {
    let dir = tempfile::tempdir()?;
    common::copy_dir(&common::shipped_catalog(), dir.path())?;
    let path = dir.path().join("types/k8s-namespace.yaml");
    let shipped = std::fs::read_to_string(&path)?;
    let start = shipped.find("\nquota:").ok_or("no quota block")?;
    let end = shipped[start + 1..]
        .find("\nreview:")
        .ok_or("no review block")?
        + start
        + 1;
    std::fs::write(&path, format!("{}{}", &shipped[..start], &shipped[end..]))?;
    TestApp::start_with_catalog(engine, Some(dir)).await
}

/// `slipway request create|get`: the same API, from a script.
async fn the_command_line_client_submits_and_reads(app: &TestApp) -> TestResult {
    use slipway_server::client::{self, ApiArgs, ClientError};
    let api = Api::start(app).await?;
    let args = ApiArgs {
        url: api.base.trim_end_matches("/api/v1").to_string(),
        token: token(app, "alice", ALL).await?,
    };
    let params = client::params_of(&[
        "name=cli".into(),
        "team=payments".into(),
        "environment=dev".into(),
        "cpu_limit=1".into(),
        "memory_limit_gi=1".into(),
    ])?;
    let created = client::create(&args, "k8s-namespace", params.clone(), "cli-key-1").await?;
    let id = created["summary"]["id"].as_i64().ok_or("no id")?;
    let again = client::create(&args, "k8s-namespace", params, "cli-key-1").await?;
    assert_eq!(
        again["summary"]["id"],
        json!(id),
        "a retry with the same key made a second request"
    );
    let read = client::get(&args, id).await?;
    assert_eq!(read["summary"]["resource_name"], "payments-cli-dev");

    let theirs = client::params_of(&[
        "name=x".into(),
        "team=search".into(),
        "environment=dev".into(),
        "cpu_limit=1".into(),
        "memory_limit_gi=1".into(),
    ])?;
    match client::create(&args, "k8s-namespace", theirs, "cli-key-2").await {
        Err(ClientError::Refused {
            status: 403,
            detail,
        }) => assert!(detail.contains("team search"), "{detail}"),
        other => panic!("expected a 403, got {other:?}"),
    }
    let bad = ApiArgs {
        token: "slw_nope".into(),
        ..args.clone()
    };
    assert!(matches!(
        client::get(&bad, id).await,
        Err(ClientError::Refused { status: 401, .. })
    ));
    Ok(())
}

/// A token with the admin scope makes and revokes tokens; a new one cannot hold a
/// scope its maker lacks; creation and revocation are audited.
async fn tokens_are_made_and_revoked_through_the_api(app: &TestApp) -> TestResult {
    let api = Api::start(app).await?;
    let admin = token(app, "alice", ALL).await?;
    let (status, made) = api
        .post(
            "/tokens",
            &admin,
            &json!({"name": "nightly job", "scopes": ["read"], "expires_in_days": 7}),
        )
        .await?;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let secret = made["secret"].as_str().ok_or("no secret")?.to_string();
    let id = made["token"]["id"].as_i64().ok_or("no id")?;
    assert_eq!(made["token"]["scopes"], json!(["read"]));
    assert_eq!(api.get("/me", &secret).await?.0, StatusCode::OK);
    let (_, listed) = api.get("/tokens", &admin).await?;
    assert!(listed.to_string().contains("nightly job"));
    assert!(
        !listed.to_string().contains(&secret),
        "a list shows a secret"
    );

    // The read-only token cannot make a token at all, let alone a wider one.
    let (status, _) = api
        .post(
            "/tokens",
            &secret,
            &json!({"name": "wider", "scopes": ["admin"]}),
        )
        .await?;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, _) = answer(api.call(Method::DELETE, &format!("/tokens/{id}"), &admin)).await?;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(api.get("/me", &secret).await?.0, StatusCode::UNAUTHORIZED);
    let (status, _) = answer(api.call(Method::DELETE, &format!("/tokens/{id}"), &admin)).await?;
    assert_eq!(status, StatusCode::NOT_FOUND, "revoking twice");
    // Another person's token is not found, not revoked.
    let bob = token(app, "bob", ALL).await?;
    let (status, _) = answer(api.call(Method::DELETE, &format!("/tokens/{id}"), &bob)).await?;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let actions: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM audit_events WHERE target_kind = 'token' AND target_id = $1 ORDER BY seq",
    )
    .bind(id.to_string())
    .fetch_all(&app.state.db.pool)
    .await?;
    // Each call the token made is a use, the refused one included.
    assert_eq!(
        actions,
        ["token.created", "token.used", "token.used", "token.revoked"]
    );

    // A replay of the same Idempotency-Key answers the token without its secret,
    // which is stored nowhere; the new token does not outlive the one that made it.
    let body = json!({"name": "replayed", "scopes": ["read"], "expires_in_days": 366});
    let first = api
        .post_with_key("/tokens", &admin, &body, "token-key-1")
        .await?;
    assert_eq!(first.0, StatusCode::CREATED, "{}", first.1);
    let secret = first.1["secret"].as_str().ok_or("no secret")?.to_string();
    let again = api
        .post_with_key("/tokens", &admin, &body, "token-key-1")
        .await?;
    assert_eq!(again.0, StatusCode::CREATED);
    assert_eq!(again.1["secret"], Value::Null, "{}", again.1);
    assert_eq!(again.1["token"], first.1["token"]);
    let admin_expiry: String = sqlx::query_scalar(
        "SELECT CAST(MAX(expires_at) AS TEXT) FROM api_tokens WHERE name = 'alice test token'",
    )
    .fetch_one(&app.state.db.pool)
    .await?;
    let new_expiry: String = sqlx::query_scalar(
        "SELECT CAST(expires_at AS TEXT) FROM api_tokens WHERE name = 'replayed'",
    )
    .fetch_one(&app.state.db.pool)
    .await?;
    assert!(new_expiry.parse::<i64>()? <= admin_expiry.parse::<i64>()?);
    // The audit says when it ends, and that its maker cut it short.
    let created: String = sqlx::query_scalar(
        "SELECT detail FROM audit_events WHERE action = 'token.created' AND after_value = 'replayed'",
    )
    .fetch_one(&app.state.db.pool)
    .await?;
    assert!(
        created.contains("with the token it was made with (366 days were asked)"),
        "{created}"
    );
    let stored = app.dump_database().await?;
    assert!(!stored.contains(&secret), "a token's secret is stored");
    assert!(!stored.contains(&secret[4..]), "a token's secret is stored");

    // A token made with a token goes when its maker is revoked, and so do the
    // ones made with it: a leaked admin token cannot leave a spare behind.
    let spare = |name: &str| json!({"name": name, "scopes": ["admin"], "expires_in_days": 30});
    let made = |answer: &Value| answer["secret"].as_str().map(str::to_string);
    let (_, child) = api.post("/tokens", &admin, &spare("spare")).await?;
    let child = made(&child).ok_or("no child secret")?;
    let (_, grandchild) = api
        .post("/tokens", &child, &spare("spare of the spare"))
        .await?;
    let grandchild = made(&grandchild).ok_or("no grandchild secret")?;
    let unrelated = token(app, "alice", ALL).await?;
    let admin_id: i64 =
        sqlx::query_scalar("SELECT MIN(id) FROM api_tokens WHERE name = 'alice test token'")
            .fetch_one(&app.state.db.pool)
            .await?;
    let (status, _) =
        answer(api.call(Method::DELETE, &format!("/tokens/{admin_id}"), &unrelated)).await?;
    assert_eq!(status, StatusCode::NO_CONTENT);
    for (which, secret) in [
        ("maker", &admin),
        ("child", &child),
        ("grandchild", &grandchild),
    ] {
        assert_eq!(
            api.get("/me", secret).await?.0,
            StatusCode::UNAUTHORIZED,
            "the {which} still works"
        );
    }
    assert_eq!(api.get("/me", &unrelated).await?.0, StatusCode::OK);
    let detail: String = sqlx::query_scalar(
        "SELECT detail FROM audit_events WHERE action = 'token.revoked' AND target_id = $1",
    )
    .bind(admin_id.to_string())
    .fetch_one(&app.state.db.pool)
    .await?;
    // The child, the grandchild, and the "replayed" token made above.
    assert_eq!(detail, "with the 3 tokens made with it");
    Ok(())
}

/// A leaked token let in before its revocation cannot mint a spare after it:
/// the token it calls with is checked again in the transaction that would make
/// the new one (before, the child was made, and the revocation had already
/// followed the chain). A child that got in all the same (a row inserted
/// meanwhile) never works: a token whose maker ended is refused. And a call let
/// in before its account was disabled makes no token either.
async fn a_token_revoked_or_an_account_disabled_mid_call_mints_nothing(
    app: &TestApp,
) -> TestResult {
    use sha2::Digest as _;
    let alice = app.user("alice").await?;
    let spare = |name: &str| TokenRequest {
        name: name.into(),
        scopes: vec![TokenScope::Admin],
        expires_in_days: Some(30),
    };
    let leaked = tokens::create(&app.state, &alice, &spare("leaked")).await?;
    let let_in = tokens::authenticate(&app.state, &leaked.secret, CallMeta::default()).await?;
    tokens::revoke(&app.state, &alice, leaked.token.id).await?;
    refused!(app, tokens::create(&app.state, &let_in, &spare("spare")),
        ServiceError::Forbidden(m) => assert!(m.contains("was revoked"), "{m}"));
    let live_children: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM api_tokens WHERE parent_id = $1 AND revoked_at IS NULL",
    )
    .bind(leaked.token.id)
    .fetch_one(&app.state.db.pool)
    .await?;
    assert_eq!(live_children, 0);

    // A live child of a revoked token (as the race left them) is refused.
    let secret = format!("{}{}", tokens::SECRET_PREFIX, "C".repeat(40));
    sqlx::query(
        "INSERT INTO api_tokens (user_id, name, prefix, secret_hash, scopes, created_at, \
         expires_at, parent_id) VALUES ($1, 'slipped in', 'slw_CCCC', $2, 'admin', $3, $4, $5)",
    )
    .bind(alice.id.0)
    .bind(hex::encode(sha2::Sha256::digest(secret.as_bytes())))
    .bind(slipway_server::storage::now_millis())
    .bind(slipway_server::storage::now_millis() + 86_400_000)
    .bind(leaked.token.id)
    .execute(&app.state.db.pool)
    .await?;
    let slipped = tokens::authenticate(&app.state, &secret, CallMeta::default()).await;
    assert!(
        matches!(slipped, Err(ServiceError::Unauthenticated)),
        "{:?}",
        slipped.map(|c| c.token_id)
    );

    // Disabled: neither its token nor its session let in before makes a token.
    let bob = app.user("bob").await?;
    let bobs = tokens::create(&app.state, &bob, &spare("bob's")).await?;
    let bob_api = tokens::authenticate(&app.state, &bobs.secret, CallMeta::default()).await?;
    auth::set_disabled(&app.state, "bob", true).await?;
    for caller in [&bob, &bob_api] {
        refused!(app, tokens::create(&app.state, caller, &spare("after")),
            ServiceError::Forbidden(m) => assert!(m.contains("disabled"), "{m}"));
    }
    let live: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM api_tokens WHERE user_id = $1 AND revoked_at IS NULL",
    )
    .bind(bob.id.0)
    .fetch_one(&app.state.db.pool)
    .await?;
    assert_eq!(live, 0);
    Ok(())
}

/// Every list endpoint — requests (and `mine`), the review queue, needing attention
/// and assets — takes the filters and both cursors, and names each bad parameter.
async fn lists_take_filters_both_cursors_and_name_bad_parameters(app: &TestApp) -> TestResult {
    let api = Api::start(app).await?;
    let alice = token(app, "alice", ALL).await?;
    let bob = token(app, "bob", ALL).await?;
    let carol = token(app, "carol", ALL).await?;
    let mut made = Vec::new();
    for (i, environment) in ["prod", "prod", "prod", "staging", "dev"]
        .iter()
        .enumerate()
    {
        let (status, created) = api
            .post(
                "/requests",
                &alice,
                &new_namespace(&format!("list{i}"), environment),
            )
            .await?;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        made.push(created["summary"]["id"].as_i64().ok_or("id")?);
    }
    let ids = |page: &Value| -> Vec<i64> {
        page["items"]
            .as_array()
            .map(|items| items.iter().filter_map(|r| r["id"].as_i64()).collect())
            .unwrap_or_default()
    };

    // Forwards with next_cursor, back with prev_cursor, or with the ids themselves.
    let (status, first) = api.get("/requests?mine=true&limit=2", &alice).await?;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(ids(&first), [made[4], made[3]]);
    assert_eq!(first["prev_cursor"], Value::Null);
    let next = first["next_cursor"].as_str().ok_or("next_cursor")?;
    let (_, second) = api
        .get(
            &format!("/requests?mine=true&limit=2&cursor={next}"),
            &alice,
        )
        .await?;
    assert_eq!(ids(&second), [made[2], made[1]]);
    let prev = second["prev_cursor"].as_str().ok_or("prev_cursor")?;
    let (_, back) = api
        .get(
            &format!("/requests?mine=true&limit=2&cursor={prev}"),
            &alice,
        )
        .await?;
    assert_eq!(ids(&back), [made[4], made[3]]);
    let before = second["before"].as_i64().ok_or("before")?;
    let (_, third) = api
        .get(
            &format!("/requests?mine=true&limit=2&before={before}"),
            &alice,
        )
        .await?;
    assert_eq!(ids(&third), [made[0]]);
    assert_eq!(third["next_cursor"], Value::Null);
    let after = third["after"].as_i64().ok_or("after")?;
    let (_, again) = api
        .get(
            &format!("/requests?mine=true&limit=2&after={after}"),
            &alice,
        )
        .await?;
    assert_eq!(ids(&again), [made[2], made[1]]);

    // Filters.
    let today = time_today();
    let (_, prod) = api
        .get(&format!("/requests?mine=true&type=k8s-namespace&team=payments&environment=prod&state=in_review&created_from={today}&created_to={today}"), &alice)
        .await?;
    assert_eq!(ids(&prod), [made[2], made[1], made[0]]);
    let (_, old) = api
        .get("/requests?mine=true&created_to=2001-01-01", &alice)
        .await?;
    assert_eq!(ids(&old), Vec::<i64>::new());

    // The review queue and needing attention, each for those who may read it.
    let (status, queue) = api.get("/reviews?environment=staging", &bob).await?;
    assert_eq!(status, StatusCode::OK, "{queue}");
    assert_eq!(ids(&queue), [made[3]]);
    assert_eq!(api.get("/reviews", &alice).await?.0, StatusCode::FORBIDDEN);
    let (status, attention) = api.get("/requests/attention?state=failed", &carol).await?;
    assert_eq!(status, StatusCode::OK, "{attention}");
    assert_eq!(ids(&attention), Vec::<i64>::new());
    assert_eq!(
        api.get("/requests/attention", &alice).await?.0,
        StatusCode::FORBIDDEN
    );

    // Assets, searched.
    app.run_jobs().await?;
    let (status, assets) = api
        .get("/assets?text=list4&environment=dev", &alice)
        .await?;
    assert_eq!(status, StatusCode::OK, "{assets}");
    assert_eq!(
        assets["items"].as_array().map(Vec::len),
        Some(1),
        "{assets}"
    );
    let (status, _) = api
        .get("/assets?text=%22NEAR(%27*%3A%26%7C!()", &alice)
        .await?;
    assert_eq!(status, StatusCode::OK);

    let long = "t".repeat(201);
    for (path, field) in [
        ("/requests?limit=101", "limit"),
        ("/requests?limit=0", "limit"),
        ("/requests?limit=many", "limit"),
        ("/requests?created_from=2026-13-01", "created_from"),
        (
            "/requests?created_from=2026-02-02&created_to=2026-02-01",
            "created_to",
        ),
        ("/requests?before=0", "before"),
        ("/requests?after=x", "after"),
        ("/requests?before=3&after=1", "after"),
        ("/requests?mine=perhaps", "mine"),
        ("/requests?team=a&team=b", "team"),
        (&format!("/requests?type={long}"), "type"),
        ("/requests?environment=%00", "environment"),
        ("/requests?text=x", "text"),
        ("/reviews?state=in_review", "state"),
        ("/requests/attention?state=draft", "state"),
        ("/assets?state=active", "state"),
        ("/assets?cursor=b", "cursor"),
        ("/assets?before=99999999999999999999", "before"),
        ("/audit?actor=%00", "actor"),
        (&format!("/audit?target={long}"), "target"),
        ("/audit/export?action=a%0Ab", "action"),
        // Queries read field by field: each refusal names its parameter.
        ("/audit?limit=many", "limit"),
        ("/audit?limit=0", "limit"),
        ("/audit?limit=201", "limit"),
        ("/audit?cursor=abc", "cursor"),
        ("/requests/1/events?after=abc", "after"),
        ("/audit?created_from=yesterday", "created_from"),
        ("/audit?actor=a&actor=b", "actor"),
        ("/audit?sort=newest", "sort"),
        ("/audit/export?limit=5", "limit"),
        ("/metrics/flow?weeks=x", "weeks"),
        ("/metrics/flow?weeks=99999999999999999999", "weeks"),
        ("/metrics/flow?color=red", "color"),
    ] {
        let who = if path.starts_with("/requests/attention")
            || path.starts_with("/audit")
            || path.starts_with("/metrics")
        {
            &carol
        } else if path.starts_with("/reviews") {
            &bob
        } else {
            &alice
        };
        let (status, problem) = api.get(path, who).await?;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{path}: {problem}"
        );
        assert_eq!(problem["errors"][0]["field"], field, "{path}: {problem}");
    }
    // The page before an empty one at the start of a list is the list's
    // oldest rows: its cursor, as given out, is taken back.
    let (status, empty) = api.get("/requests?before=1", &alice).await?;
    assert_eq!(status, StatusCode::OK, "{empty}");
    assert_eq!(empty["items"], serde_json::json!([]));
    assert_eq!(empty["prev_cursor"], "a0", "{empty}");
    let (status, back) = api.get("/requests?mine=true&cursor=a0", &alice).await?;
    assert_eq!(status, StatusCode::OK, "{back}");
    assert_eq!(ids(&back), made.iter().rev().copied().collect::<Vec<_>>());
    let (status, by_id) = api.get("/requests?mine=true&after=0", &alice).await?;
    assert_eq!(status, StatusCode::OK, "{by_id}");
    assert_eq!(back["items"], by_id["items"]);
    // Someone the call is not for is told that first, whatever the query.
    for path in [
        "/reviews?state=in_review",
        "/audit?limit=many",
        "/audit/export?limit=5",
    ] {
        let (status, problem) = api.get(path, &alice).await?;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {problem}");
    }

    // The document says so.
    let document = serde_json::to_value(slipway_server::api::openapi())?;
    for path in [
        "/api/v1/requests",
        "/api/v1/reviews",
        "/api/v1/requests/attention",
        "/api/v1/assets",
    ] {
        let operation = &document["paths"][path]["get"];
        let names: Vec<&str> = operation["parameters"]
            .as_array()
            .ok_or("parameters")?
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        for name in [
            "type",
            "team",
            "environment",
            "created_from",
            "created_to",
            "before",
            "after",
            "cursor",
            "limit",
        ] {
            assert!(
                names.contains(&name),
                "{path} does not document {name}: {names:?}"
            );
        }
        assert!(
            operation["responses"]["422"].is_object(),
            "{path} does not document 422"
        );
    }
    let created_from = document["paths"]["/api/v1/requests"]["get"]["parameters"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == "created_from"))
        .ok_or("created_from")?;
    assert_eq!(created_from["schema"]["format"], "date", "{created_from}");
    Ok(())
}

/// Today in UTC, `YYYY-MM-DD`.
fn time_today() -> String {
    chrono::Utc::now().format("%Y-%m-%d").to_string()
}

/// The shipped catalog with namespaces approved by the platform role instead of
/// the reviewer role.
async fn start_with_platform_approvers(
    engine: slipway_server::storage::Engine,
) -> TestResult<Option<TestApp>> {
    let dir = tempfile::tempdir()?;
    common::copy_dir(&common::shipped_catalog(), dir.path())?;
    let path = dir.path().join("types/k8s-namespace.yaml");
    let shipped = std::fs::read_to_string(&path)?;
    let reviewer = "approvers:\n    role: reviewer";
    if !shipped.contains(reviewer) {
        return Err("the namespace type has no reviewer approvers".into());
    }
    std::fs::write(
        &path,
        shipped.replace(reviewer, "approvers:\n    role: platform"),
    )?;
    TestApp::start_with_catalog(engine, Some(dir)).await
}

/// A type whose review asks for the platform role: a platform engineer of the
/// offering team opens the review queue (once a 403, as it asked for the reviewer
/// role), finds the request there and approves it; a reviewer no longer can.
async fn a_type_the_platform_role_approves_is_reviewed_from_the_platform_queue(
    app: &TestApp,
) -> TestResult {
    use slipway_core::listing::{ListFilter, PageRequest};
    use slipway_server::services::{catalog, reviews};
    let api = Api::start(app).await?;
    let alice = token(app, "alice", ALL).await?;
    let bob = token(app, "bob", ALL).await?;
    let pia = add_user(app, "pia", &[Role::Platform], "platform").await?;
    let (status, created) = api
        .post("/requests", &alice, &new_namespace("platformed", "prod"))
        .await?;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["summary"]["id"].as_i64().ok_or("id")?;
    assert_eq!(created["summary"]["state"], "in_review");

    // The portal offers pia the queue and lists the request in it.
    let pia_portal = app.user("pia").await?;
    assert!(catalog::menu(&app.state, &pia_portal).review_queue);
    let queue = reviews::queue(
        &app.state,
        &pia_portal,
        &ListFilter::default(),
        PageRequest::first(50),
    )
    .await?;
    assert_eq!(queue.items.iter().map(|r| r.id.0).collect::<Vec<_>>(), [id]);
    // So does the API.
    let (status, page) = api.get("/reviews", &pia).await?;
    assert_eq!(status, StatusCode::OK, "{page}");
    let listed: Vec<i64> = page["items"]
        .as_array()
        .ok_or("items")?
        .iter()
        .filter_map(|r| r["id"].as_i64())
        .collect();
    assert_eq!(listed, [id]);
    // bob (reviewer) still opens his queue, for the types reviewers approve, but
    // this request is not in it and he may not decide on it (nor see it: it
    // answers as a missing one).
    let (status, page) = api.get("/reviews", &bob).await?;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["items"], json!([]));
    let (_, detail) = api.get(&format!("/requests/{id}"), &pia).await?;
    let hash = detail["revisions"][0]["change_set_hash"].clone();
    let decision =
        json!({"decision": "approve", "revision": 1, "change_set_hash": hash, "comment": "ok"});
    let (status, refused) = api
        .post(&format!("/requests/{id}/reviews"), &bob, &decision)
        .await?;
    assert_eq!(status, StatusCode::NOT_FOUND, "{refused}");
    let (status, answer) = api
        .post(&format!("/requests/{id}/reviews"), &pia, &decision)
        .await?;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_ne!(
        app.request_state(RequestId(id)).await?,
        RequestState::InReview
    );
    Ok(())
}

/// An asset's history tells everyone who may read the CMDB what happened, when
/// and by whom; the client address and trace id of each event only the audit log's
/// readers see, on the API and in the portal alike.
async fn asset_history_shows_client_and_trace_only_to_audit_readers(app: &TestApp) -> TestResult {
    use slipway_core::ids::AssetId;
    use slipway_server::services::assets;
    let api = Api::start(app).await?;
    let id = request_in(app, "by-hand", RequestState::Manual).await?;
    let carol = token(app, "carol", ALL).await?;
    let (status, answer) = api
        .post(
            &format!("/requests/{id}/resolve"),
            &carol,
            &json!({"note": "made by hand"}),
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (_, detail) = api.get(&format!("/requests/{id}"), &carol).await?;
    let asset = detail["asset_id"]
        .as_i64()
        .ok_or("the request made an asset")?;
    let created = |history: &Value| {
        history
            .as_array()
            .and_then(|events| events.iter().find(|e| e["action"] == "asset.created"))
            .cloned()
            .ok_or("no asset.created event")
    };
    let readers = [
        ("alice", token(app, "alice", ALL).await?, false),
        ("carol", carol.clone(), true),
        (
            "erin",
            add_user(app, "erin", &[Role::Auditor], "platform").await?,
            true,
        ),
    ];
    for (who, secret, audit_reader) in &readers {
        let (status, history) = api.get(&format!("/assets/{asset}/history"), secret).await?;
        assert_eq!(status, StatusCode::OK, "{who}: {history}");
        let (status, detail) = api.get(&format!("/assets/{asset}"), secret).await?;
        assert_eq!(status, StatusCode::OK, "{who}: {detail}");
        for event in [created(&history)?, created(&detail["history"])?] {
            assert_eq!(event["actor"], "carol", "{who}: {event}");
            assert_eq!(event["channel"], "api", "{who}: {event}");
            assert!(event["detail"].as_str().is_some_and(|d| !d.is_empty()));
            if *audit_reader {
                assert_eq!(event["client_addr"], "127.0.0.1", "{who}: {event}");
                assert!(event["trace_id"].is_string(), "{who}: {event}");
            } else {
                assert!(event["client_addr"].is_null(), "{who}: {event}");
                assert!(event["trace_id"].is_null(), "{who}: {event}");
            }
        }
    }
    // The portal reads the same services.
    let alice = app.user("alice").await?;
    let seen = assets::detail(&app.state, &alice, AssetId(asset)).await?;
    assert!(!seen.history.is_empty());
    assert!(
        seen.history
            .iter()
            .all(|e| e.client_addr.is_none() && e.trace_id.is_none())
    );
    let carol = app.user("carol").await?;
    let seen = assets::history(&app.state, &carol, AssetId(asset)).await?;
    assert!(seen.iter().any(|e| e.client_addr.is_some()));
    Ok(())
}

async fn day_two_actions_through_the_api(app: &TestApp) -> TestResult {
    let api = Api::start(app).await?;
    let alice = token(app, "alice", ALL).await?;
    let (status, created) = api
        .post("/requests", &alice, &new_namespace("ops", "dev"))
        .await?;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    app.run_jobs().await?;
    let request = created["summary"]["id"].as_i64().ok_or("id")?;
    let (_, made) = api.get(&format!("/requests/{request}"), &alice).await?;
    let asset = made["asset_id"]
        .as_i64()
        .ok_or("the namespace is an asset")?;
    let (status, view) = api.get(&format!("/assets/{asset}"), &alice).await?;
    assert_eq!(status, StatusCode::OK);
    let offered: Vec<&str> = view["actions"]
        .as_array()
        .ok_or("actions")?
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert_eq!(offered, ["resize", "set-admins", "decommission"]);
    let (_, described) = api.get("/types/k8s-namespace", &alice).await?;
    assert_eq!(described["actions"][0]["name"], json!("resize"));
    assert_eq!(
        described["actions"][0]["schema"]["required"],
        json!(["cpu_limit", "memory_limit_gi"])
    );

    let path = format!("/assets/{asset}/actions/resize");
    let body = json!({"params": {"cpu_limit": 3, "memory_limit_gi": 6}});
    let reader = token(app, "alice", &[TokenScope::Read]).await?;
    let (status, _) = api.post(&path, &reader, &body).await?;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a read token asks for nothing"
    );
    let bob = token(app, "bob", ALL).await?;
    let (status, problem) = api.post(&path, &bob, &body).await?;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "another team's asset: {problem}"
    );

    let (status, first) = api
        .post_with_key(&path, &alice, &body, "resize-ops")
        .await?;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(first["action"]["action"]["name"], json!("resize"));
    assert_eq!(first["action"]["asset_id"], json!(asset));
    assert_eq!(
        first["summary"]["state"],
        json!("approved"),
        "dev: the policy approves"
    );
    let (status, again) = api
        .post_with_key(&path, &alice, &body, "resize-ops")
        .await?;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        again["summary"]["id"], first["summary"]["id"],
        "one request"
    );
    app.run_jobs().await?;
    let (_, resized) = api.get(&format!("/assets/{asset}"), &alice).await?;
    assert_eq!(resized["params"]["cpu_limit"], json!(3));

    let before = app.snapshot().await?;
    let (status, problem) = api
        .post(
            &format!("/assets/{asset}/actions/explode"),
            &alice,
            &json!({}),
        )
        .await?;
    assert_eq!(status, StatusCode::NOT_FOUND, "{problem}");
    let (status, problem) = api
        .post(
            &path,
            &alice,
            &json!({"params": {"cpu_limit": 0, "memory_limit_gi": 6}}),
        )
        .await?;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(
        problem["errors"][0]["field"],
        json!("cpu_limit"),
        "{problem}"
    );
    assert_eq!(
        problem["errors"][0]["message"],
        json!("must be at least 1"),
        "{problem}"
    );
    let (status, problem) = api.post(&path, &alice, &json!({"parameters": {}})).await?;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    let (status, _) = api
        .post("/assets/99999/actions/resize", &alice, &body)
        .await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(app.snapshot().await?, before, "refusals change nothing");

    let (status, retired) = api
        .post(
            &format!("/assets/{asset}/actions/decommission"),
            &alice,
            &json!({}),
        )
        .await?;
    assert_eq!(status, StatusCode::CREATED, "{retired}");
    app.run_jobs().await?;
    let (status, problem) = api.post(&path, &alice, &body).await?;
    assert_eq!(status, StatusCode::CONFLICT, "a retired asset: {problem}");
    Ok(())
}

/// Disabling an account ends its sessions and tokens and its chat link at once
/// and refuses its sign-in; enabling lets it sign in again, its old tokens
/// staying revoked. Both are audited.
async fn a_disabled_account_acts_nowhere(app: &TestApp) -> TestResult {
    use slipway_server::services::{CallMeta, Channel, auth, chat};
    let api = Api::start(app).await?;
    let state = &app.state;
    let secret = token(app, "alice", ALL).await?;
    let alice = app.user("alice").await?;
    let code = chat::issue_link_code(state, &alice).await?;
    chat::link(state, "@alice:chat.test", "!a:chat.test", &code.code, "$l").await?;
    assert_eq!(api.get("/me", &secret).await?.0, StatusCode::OK);

    auth::set_disabled(state, "alice", true).await?;
    assert_eq!(api.get("/me", &secret).await?.0, StatusCode::UNAUTHORIZED);
    assert_eq!(chat::linked_account(state, &alice).await?, None);
    assert_eq!(
        auth::user(state, alice.id).await?,
        None,
        "a session acts as no one"
    );
    let meta = CallMeta::default();
    let refused = auth::login(state, "alice", "alice-demo-pw", Channel::Portal, &meta).await;
    match refused {
        Err(ServiceError::Forbidden(m)) => assert!(m.contains("disabled"), "{m}"),
        other => panic!("a disabled account signed in: {other:?}"),
    }
    let detail: String =
        sqlx::query_scalar("SELECT detail FROM audit_events WHERE action = 'user.disabled'")
            .fetch_one(&state.db.pool)
            .await?;
    assert!(
        detail.contains("tokens, unlinked @alice:chat.test"),
        "{detail}"
    );
    assert!(matches!(
        auth::set_disabled(state, "nobody", true).await,
        Err(ServiceError::NotFound(_))
    ));

    auth::set_disabled(state, "alice", false).await?;
    assert!(
        auth::login(state, "alice", "alice-demo-pw", Channel::Portal, &meta)
            .await
            .is_ok()
    );
    assert_eq!(api.get("/me", &secret).await?.0, StatusCode::UNAUTHORIZED);
    let fresh = token(app, "alice", &[TokenScope::Read]).await?;
    assert_eq!(api.get("/me", &fresh).await?.0, StatusCode::OK);
    Ok(())
}

/// The roles and teams of an account from an identity provider hold for the
/// configured time after its last sign-in there: after it, its tokens are
/// refused with what to do, until the person signs in again. Local accounts
/// are not affected.
async fn provider_roles_lapse_without_a_new_sign_in(app: &TestApp) -> TestResult {
    use slipway_server::services::{CallMeta, Caller, Channel};
    use slipway_server::storage::users::{self, NewUser};
    let api = Api::start(app).await?;
    let state = &app.state;
    let teams = vec!["payments".to_string()];
    let id = {
        let mut tx = state.db.write().await?;
        let new = NewUser {
            username: "sso-dana",
            display_name: "Dana",
            password_hash: None,
            roles: &[Role::Requester],
            teams: &teams,
        };
        let id = users::insert_external(&mut tx, &new, "https://idp.test", "dana").await?;
        tx.commit().await?;
        id
    };
    let dana = {
        let mut conn = state.db.pool.acquire().await?;
        users::by_id(&mut conn, id).await?.ok_or("dana is stored")?
    };
    let caller = Caller::new(dana, Channel::System, CallMeta::default());
    let request = TokenRequest {
        name: "dana's ci".into(),
        scopes: vec![TokenScope::Read],
        expires_in_days: Some(90),
    };
    let secret = tokens::create(state, &caller, &request).await?.secret;
    assert_eq!(api.get("/me", &secret).await?.0, StatusCode::OK);
    let month = 31 * 86_400_000_i64;
    let stale = slipway_server::storage::now_millis() - month;
    app.exec(&format!("UPDATE users SET confirmed_at = {stale}"))
        .await?;
    let (status, problem) = api.get("/me", &secret).await?;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("sign in to the Slipway portal once")),
        "{problem}"
    );
    // A local account's roles are Slipway's own: no provider to confirm them.
    let alice = token(app, "alice", &[TokenScope::Read]).await?;
    assert_eq!(api.get("/me", &alice).await?.0, StatusCode::OK);
    // A sign-in at the provider confirms them again.
    {
        let mut tx = state.db.write().await?;
        users::update_from_provider(&mut tx, id, "Dana", &[Role::Requester], &teams).await?;
        tx.commit().await?;
    }
    assert_eq!(api.get("/me", &secret).await?.0, StatusCode::OK);
    Ok(())
}

/// Tokens that call faster than their person's pace are answered 429 with how
/// long to wait, and the refused calls write nothing to the audit log; a second
/// token of the same person shares the pace, another person keeps their own.
#[tokio::test]
async fn a_token_past_its_pace_waits_and_leaves_no_trail() -> TestResult {
    let app = TestApp::start_configured(slipway_server::storage::Engine::Sqlite, None, |s| {
        s.identity.token_calls_per_minute = 3;
    })
    .await?
    .ok_or("SQLite")?;
    let api = Api::start(&app).await?;
    let alice = token(&app, "alice", ALL).await?;
    for _ in 0..3 {
        assert_eq!(api.get("/me", &alice).await?.0, StatusCode::OK);
    }
    let response = api.call(Method::GET, "/me", &alice).send().await?;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .ok_or("a Retry-After in seconds")?;
    assert!((1..=20).contains(&wait), "{wait}");
    let body: Value = response.json().await?;
    assert_eq!(body["type"], "/api-docs#problem-too-many", "{body}");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("your API tokens made more than 3 calls in a minute")),
        "{body}"
    );
    let spare = token(&app, "alice", ALL).await?;
    for secret in [&alice, &spare, &alice] {
        assert_eq!(
            api.get("/me", secret).await?.0,
            StatusCode::TOO_MANY_REQUESTS
        );
    }
    let bob = token(&app, "bob", ALL).await?;
    assert_eq!(api.get("/me", &bob).await?.0, StatusCode::OK);
    let uses: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_events WHERE action = 'token.used' AND actor = 'alice'",
    )
    .fetch_one(&app.state.db.pool)
    .await?;
    assert_eq!(uses, 3, "refused calls leave no trail");
    Ok(())
}

/// The type a requester's form gets (the portal's form, the API's type detail)
/// holds what the form shows and checks, and none of how a request is carried out.
#[tokio::test]
async fn a_form_type_holds_what_its_form_checks_and_nothing_it_runs() -> TestResult {
    use slipway_core::validate::ParamValidator;
    use slipway_server::services::catalog;
    let app = TestApp::start(slipway_server::storage::Engine::Sqlite)
        .await?
        .ok_or("SQLite is always available")?;
    let alice = app.user("alice").await?;
    let names: Vec<String> = app.state.catalog.catalog.types.keys().cloned().collect();
    assert!(names.len() >= 3, "{names:?}");
    for name in &names {
        let full = catalog::resource_type(&app.state, &alice, name)?;
        let form = catalog::form_type(&app.state, &alice, name)?;
        assert!(
            !full.execute.is_empty(),
            "{name}: the catalog's type runs steps"
        );
        let request_types =
            std::iter::once(&form).chain(form.actions.iter().map(|a| &a.request_type));
        for ty in request_types {
            assert!(ty.execute.is_empty(), "{name}: {:?}", ty.execute);
            assert!(ty.checks.is_empty() && ty.monitoring.is_empty(), "{name}");
            assert!(ty.outputs.is_empty() && ty.removes.is_empty(), "{name}");
            assert!(ty.quota.is_empty() && ty.requires.is_empty(), "{name}");
            assert!(ty.review.approver_role.is_empty(), "{name}");
        }
        let text = serde_json::to_string(&form)?;
        for internal in ["ON_ERROR_STOP", "SELECT current_user", "cnpg_collector_up"] {
            assert!(!text.contains(internal), "{name} carries {internal}");
        }
        // The form keeps what it shows and checks.
        assert_eq!(
            (&form.parameters, &form.naming, &form.owner_param),
            (&full.parameters, &full.naming, &full.owner_param),
            "{name}"
        );
        let actions: Vec<(&str, &serde_json::Value)> = form
            .actions
            .iter()
            .map(|a| (a.name.as_str(), &a.parameters))
            .collect();
        let full_actions: Vec<(&str, &serde_json::Value)> = full
            .actions
            .iter()
            .map(|a| (a.name.as_str(), &a.parameters))
            .collect();
        assert_eq!(actions, full_actions, "{name}");
    }
    // The browser's checks find on the form's type what the server's find.
    let full = catalog::resource_type(&app.state, &alice, "k8s-namespace")?;
    let form = catalog::form_type(&app.state, &alice, "k8s-namespace")?;
    for params in [
        namespace_params("web", "payments", "dev", 2),
        namespace_params("Not A Name", "payments", "dev", 2),
        namespace_params("web", "payments", "dev", 100_000),
        json!({"name": "x"}),
    ] {
        assert_eq!(
            ParamValidator::new(&form)?.check(&params),
            ParamValidator::new(&full)?.check(&params),
            "{params}"
        );
    }
    Ok(())
}
