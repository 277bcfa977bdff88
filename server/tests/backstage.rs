//! Assets as Backstage entities through the REST API, on SQLite and PostgreSQL: a
//! completed request's asset exports with its owner, lifecycle, dependency and
//! links; the feed holds every active asset as a multi-document YAML stream and
//! reads page by page; unknown ids, missing tokens and missing scopes are refused.

#[macro_use]
#[allow(dead_code, unused_macros)]
mod common;

use std::net::SocketAddr;

use common::{TestApp, TestResult, draft, postgres_params};
use reqwest::{Client, StatusCode, header};
use serde::Deserialize;
use slipway_core::backstage::Entity;
use slipway_core::ids::{AssetId, RequestId};
use slipway_core::state::RequestState;
use slipway_core::views::{ReviewDecision, TokenRequest, TokenScope};
use slipway_server::services::{assets, requests, reviews, tokens};
use slipway_server::storage;

on_both_engines!(
    a_completed_database_exports_with_owner_lifecycle_dependency_and_links,
    the_feed_holds_every_active_asset_page_by_page,
    unknown_assets_missing_tokens_and_scopes_are_refused,
    a_feed_stops_when_its_reader_is_disabled,
);

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
            base: format!("http://{addr}"),
            http: Client::new(),
        })
    }

    /// The status, content type and body of a GET, with `token` when given.
    async fn get(
        &self,
        path: &str,
        token: Option<&str>,
    ) -> TestResult<(StatusCode, String, String)> {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await?;
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        Ok((status, content_type, response.text().await?))
    }

    /// A YAML answer read as entities.
    async fn entities(&self, path: &str, token: &str) -> TestResult<Vec<Entity>> {
        let (status, content_type, body) = self.get(path, Some(token)).await?;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(content_type, "application/yaml");
        Ok(parse_stream(&body)?)
    }
}

/// The entities of a multi-document stream; an empty document (an empty stream
/// is one) holds none, as Backstage reads it.
fn parse_stream(text: &str) -> Result<Vec<Entity>, serde_norway::Error> {
    let documents: Result<Vec<Option<Entity>>, _> = serde_norway::Deserializer::from_str(text)
        .map(Option::<Entity>::deserialize)
        .collect();
    Ok(documents?.into_iter().flatten().collect())
}

async fn token(app: &TestApp, user: &str, scopes: &[TokenScope]) -> TestResult<String> {
    let caller = app.user(user).await?;
    let request = TokenRequest {
        name: format!("{user} backstage token"),
        scopes: scopes.to_vec(),
        expires_in_days: Some(1),
    };
    Ok(tokens::create(&app.state, &caller, &request).await?.secret)
}

async fn asset_of(app: &TestApp, request: RequestId) -> TestResult<AssetId> {
    let mut conn = app.state.db.pool.acquire().await?;
    let row = storage::assets::by_request(&mut conn, request).await?;
    Ok(row.ok_or("the request made no asset")?.summary.id)
}

/// A production namespace and the database that requires it, both completed.
async fn namespace_and_database(app: &TestApp) -> TestResult<(RequestId, RequestId)> {
    let (alice, bob) = (app.user("alice").await?, app.user("bob").await?);
    let namespace = app.namespace(&alice, "prod", "ledger").await?;
    let database = requests::submit(
        &app.state,
        &alice,
        &draft("postgres-database", postgres_params("ledger", "prod", 20)),
    )
    .await?;
    reviews::decide(&app.state, &bob, database, 1, ReviewDecision::Approve, "ok").await?;
    app.run_jobs().await?;
    assert_eq!(app.request_state(database).await?, RequestState::Completed);
    Ok((namespace, database))
}

async fn a_completed_database_exports_with_owner_lifecycle_dependency_and_links(
    app: &TestApp,
) -> TestResult {
    let (namespace, database) = namespace_and_database(app).await?;
    let asset = asset_of(app, database).await?;
    let api = Api::start(app).await?;
    let secret = token(app, "alice", &[TokenScope::Read]).await?;
    let path = format!("/api/v1/assets/{asset}/catalog-info.yaml");
    let entities = api.entities(&path, &secret).await?;
    let [entity] = entities.as_slice() else {
        return Err(format!("one entity expected: {entities:?}").into());
    };
    assert_eq!(
        (entity.api_version.as_str(), entity.kind.as_str()),
        ("backstage.io/v1alpha1", "Resource")
    );
    assert_eq!(
        entity.metadata.name,
        "postgres-database.payments-ledger-prod"
    );
    assert_eq!(entity.metadata.title, "payments-ledger-prod");
    assert_eq!(entity.spec.resource_type, "postgres-database");
    assert_eq!(entity.spec.owner, "group:payments");
    assert_eq!(entity.spec.lifecycle, "production");
    assert_eq!(
        entity.spec.depends_on,
        ["resource:k8s-namespace.payments-ledger-prod"]
    );
    assert_eq!(entity.metadata.tags, ["postgres-database", "prod"]);
    let annotations = &entity.metadata.annotations;
    assert_eq!(annotations["slipway.dev/asset-id"], asset.to_string());
    assert_eq!(annotations["slipway.dev/request-id"], database.to_string());
    // Without a configured public URL the links use the host the call was made to.
    let asset_page = format!("{}/assets/{asset}", api.base);
    assert_eq!(annotations["backstage.io/view-url"], asset_page);
    let links: Vec<&str> = entity
        .metadata
        .links
        .iter()
        .map(|l| l.url.as_str())
        .collect();
    assert_eq!(
        links,
        [asset_page, format!("{}/requests/{database}", api.base)]
    );

    // The namespace it requires is exported under the name the database refers to.
    let namespace_asset = asset_of(app, namespace).await?;
    let path = format!("/api/v1/assets/{namespace_asset}/catalog-info.yaml");
    let namespace_entities = api.entities(&path, &secret).await?;
    assert_eq!(
        namespace_entities
            .first()
            .map(|e| format!("resource:{}", e.metadata.name)),
        entity.spec.depends_on.first().cloned()
    );
    Ok(())
}

async fn the_feed_holds_every_active_asset_page_by_page(app: &TestApp) -> TestResult {
    let (namespace, database) = namespace_and_database(app).await?;
    let alice = app.user("alice").await?;
    let dev = app.namespace(&alice, "dev", "sandbox").await?;
    let retired = app.namespace(&alice, "staging", "old").await?;
    let retired_asset = asset_of(app, retired).await?;
    app.exec(&format!(
        "UPDATE assets SET state = 'decommissioned' WHERE id = {retired_asset}"
    ))
    .await?;

    let api = Api::start(app).await?;
    let secret = token(app, "alice", &[TokenScope::Read]).await?;
    let feed = api
        .entities("/api/v1/backstage/catalog-info.yaml", &secret)
        .await?;
    let mut expected = Vec::new();
    for request in [namespace, database, dev] {
        expected.push(asset_of(app, request).await?.to_string());
    }
    let ids: Vec<&str> = feed
        .iter()
        .map(|e| e.metadata.annotations["slipway.dev/asset-id"].as_str())
        .collect();
    assert_eq!(
        ids, expected,
        "oldest first, the decommissioned one left out"
    );
    let lifecycles: Vec<&str> = feed.iter().map(|e| e.spec.lifecycle.as_str()).collect();
    assert_eq!(lifecycles, ["production", "production", "experimental"]);

    // A single download still answers for the retired asset, marked as such.
    let path = format!("/api/v1/assets/{retired_asset}/catalog-info.yaml");
    let retired_entity = api.entities(&path, &secret).await?;
    assert_eq!(
        retired_entity.first().map(|e| e.spec.lifecycle.as_str()),
        Some("deprecated")
    );

    // Pages of one give the same stream as the whole feed.
    let mut paged = String::new();
    let mut after = Some(AssetId(0));
    while let Some(from) = after {
        let page = assets::backstage_feed_page(&app.state, &alice, &api.base, from, 1).await?;
        paged.push_str(&page.yaml);
        after = page.next;
    }
    assert_eq!(parse_stream(&paged)?, feed);

    // Two feeds being sent to one person are all they get at once: a third
    // waits its turn (429), and a feed ended gives its place back.
    let state = &app.state;
    let first = assets::backstage_feed(state.clone(), alice.clone(), api.base.clone()).await?;
    let second = assets::backstage_feed(state.clone(), alice.clone(), api.base.clone()).await?;
    let (status, _, problem) = api
        .get("/api/v1/backstage/catalog-info.yaml", Some(&secret))
        .await?;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{problem}");
    assert!(problem.contains("at most 2 at once"), "{problem}");
    let carol = app.user("carol").await?;
    let others = assets::backstage_feed(state.clone(), carol, api.base.clone()).await;
    assert!(others.is_ok(), "another person is not held up");
    drop((first, second));
    assert_eq!(
        api.entities("/api/v1/backstage/catalog-info.yaml", &secret)
            .await?,
        feed
    );
    Ok(())
}

/// A feed is read page by page under its reader's rights as they are when each
/// page is read: an account disabled while its feed is being sent gets no page
/// after that (before, the stream ran on to its last page).
async fn a_feed_stops_when_its_reader_is_disabled(app: &TestApp) -> TestResult {
    use futures_util::StreamExt as _;
    let (namespace, _) = namespace_and_database(app).await?;
    let asset = asset_of(app, namespace).await?;
    // A second page's worth of copies of one asset, each under its own name.
    app.exec(&format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {}) \
         INSERT INTO assets (type_name, name, params, request_id, commit_id, state, \
         created_at, updated_at, team, environment, catalog_version) \
         SELECT a.type_name, a.name || '-copy-' || CAST(n.i AS TEXT), a.params, a.request_id, \
         a.commit_id, a.state, a.created_at, a.updated_at, a.team, a.environment, \
         a.catalog_version FROM assets a, n WHERE a.id = {asset}",
        assets::FEED_PAGE
    ))
    .await?;
    let alice = app.user("alice").await?;
    let base = "http://slipway.example".to_string();
    let mut feed = Box::pin(assets::backstage_feed(app.state.clone(), alice, base).await?);
    let first = feed.next().await.ok_or("a first page")??;
    assert!(first.contains("slipway.dev/asset-id"), "{first}");
    app.exec("UPDATE users SET disabled_at = 1 WHERE username = 'alice'")
        .await?;
    let second = feed
        .next()
        .await
        .ok_or("an answer where the second page was")?;
    let refused = second.expect_err("no page for a disabled account");
    assert!(refused.to_string().contains("disabled"), "{refused}");
    assert!(feed.next().await.is_none(), "the stream ends there");
    Ok(())
}

async fn unknown_assets_missing_tokens_and_scopes_are_refused(app: &TestApp) -> TestResult {
    let api = Api::start(app).await?;
    let secret = token(app, "alice", &[TokenScope::Read]).await?;
    let (status, content_type, body) = api
        .get("/api/v1/assets/987654/catalog-info.yaml", Some(&secret))
        .await?;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(content_type, "application/problem+json");

    let writer = token(app, "alice", &[TokenScope::Request]).await?;
    for path in [
        "/api/v1/assets/1/catalog-info.yaml",
        "/api/v1/backstage/catalog-info.yaml",
    ] {
        let (status, content_type, body) = api.get(path, None).await?;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {body}");
        assert_eq!(content_type, "application/problem+json");
        let (status, _, body) = api.get(path, Some(&writer)).await?;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
    }

    // An empty CMDB is an empty stream: no documents, still YAML.
    let (status, content_type, body) = api
        .get("/api/v1/backstage/catalog-info.yaml", Some(&secret))
        .await?;
    assert_eq!(
        (status, content_type.as_str()),
        (StatusCode::OK, "application/yaml")
    );
    assert_eq!(parse_stream(&body)?, []);
    Ok(())
}
