//! Sign-in through OpenID Connect against a fake provider on loopback (discovery,
//! keys, token endpoint), signing ID tokens with an RSA key made here; sign-in
//! throttling; the same-origin guard; session timeouts in the store.

// Each test binary uses a part of the shared harness.
#[allow(dead_code, unused_macros)]
#[macro_use]
mod common;

use slipway_server::services::{CallMeta, Channel};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Form, State};
use axum::http::{HeaderMap, Request, StatusCode, header};
use axum::response::Json;
use axum::routing::{get, post};
use common::{TestApp, TestResult};
use openidconnect::core::{
    CoreJsonWebKeySet, CoreJwsSigningAlgorithm, CoreProviderMetadata, CoreResponseType,
    CoreRsaPrivateSigningKey, CoreSubjectIdentifierType,
};
use openidconnect::url::Url;
use openidconnect::{
    Audience, AuthUrl, EmptyAdditionalProviderMetadata, EndUserName, EndUserUsername, IssuerUrl,
    JsonWebKeyId, JsonWebKeySetUrl, LocalizedClaim, Nonce, PkceCodeChallenge, PkceCodeVerifier,
    PrivateSigningKey, ResponseTypes, StandardClaims, SubjectIdentifier, TokenUrl,
};
use rsa::pkcs1::EncodeRsaPrivateKey;
use slipway_core::ids::UserId;
use slipway_core::views::{Role, UserView};
use slipway_server::config::{IdentityArgs, IdentitySettings, OidcSettings, Secret};
use slipway_server::services::auth;
use slipway_server::services::oidc::{ProviderClaims, SlipwayIdToken, SlipwayIdTokenClaims};
use slipway_server::storage::Engine;
use tower::ServiceExt;

const CLIENT_ID: &str = "slipway-test";

/// Two RSA keys, made once per run: the provider's, and a forger's (which also
/// serves as the provider's next key when a test rotates its keys).
fn keys() -> &'static (String, String) {
    static KEYS: OnceLock<(String, String)> = OnceLock::new();
    KEYS.get_or_init(|| {
        let make = || {
            rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048)
                .and_then(|k| {
                    k.to_pkcs1_pem(rsa::pkcs8::LineEnding::LF)
                        .map_err(rsa::Error::Pkcs1)
                })
                .map(|pem| pem.to_string())
                .unwrap_or_default()
        };
        (make(), make())
    })
}

fn signing_key(pem: &str, kid: &str) -> TestResult<CoreRsaPrivateSigningKey> {
    Ok(CoreRsaPrivateSigningKey::from_pem(
        pem,
        Some(JsonWebKeyId::new(kid.into())),
    )?)
}

const FIRST_KID: &str = "key-1";

#[derive(Default)]
struct ProviderState {
    issuer: String,
    /// What the token endpoint hands out next.
    id_token: Option<String>,
    /// The PKCE challenge the browser was sent with; the token request must prove it.
    challenge: Option<String>,
    verifier_ok: Option<bool>,
    /// The key the JWKS publishes (PEM and key id); the first key when unset.
    published: Option<(String, String)>,
    /// How often the JWKS was read.
    jwks_reads: usize,
    /// The token endpoint's answer while it fails: its status and body.
    outage: Option<(StatusCode, &'static str)>,
    /// Where discovery says the token endpoint is; `<issuer>/token` when unset.
    token_url: Option<String>,
}

type Shared = Arc<Mutex<ProviderState>>;

async fn discovery(State(shared): State<Shared>) -> Json<serde_json::Value> {
    let (issuer, token_url) = shared
        .lock()
        .map(|s| (s.issuer.clone(), s.token_url.clone()))
        .unwrap_or_default();
    let token_url = token_url.unwrap_or_else(|| format!("{issuer}/token"));
    let metadata = (|| -> TestResult<CoreProviderMetadata> {
        Ok(CoreProviderMetadata::new(
            IssuerUrl::new(issuer.clone())?,
            AuthUrl::new(format!("{issuer}/authorize"))?,
            JsonWebKeySetUrl::new(format!("{issuer}/jwks"))?,
            vec![ResponseTypes::new(vec![CoreResponseType::Code])],
            vec![CoreSubjectIdentifierType::Public],
            vec![CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256],
            EmptyAdditionalProviderMetadata {},
        )
        .set_token_endpoint(Some(TokenUrl::new(token_url)?)))
    })();
    Json(
        metadata
            .ok()
            .and_then(|m| serde_json::to_value(m).ok())
            .unwrap_or_default(),
    )
}

async fn jwks(State(shared): State<Shared>) -> Json<serde_json::Value> {
    let published = match shared.lock() {
        Ok(mut provider) => {
            provider.jwks_reads += 1;
            provider.published.clone()
        }
        Err(_) => None,
    };
    let (pem, kid) = published.unwrap_or_else(|| (keys().0.clone(), FIRST_KID.into()));
    let set = signing_key(&pem, &kid)
        .map(|k| CoreJsonWebKeySet::new(vec![k.as_verification_key()]))
        .ok()
        .and_then(|s| serde_json::to_value(s).ok())
        .unwrap_or_default();
    Json(set)
}

/// Hands out the ID token set for it; a code it has no token for is refused as
/// providers refuse one (`invalid_grant`); during an outage, the outage's answer.
async fn token(
    State(shared): State<Shared>,
    Form(form): Form<std::collections::HashMap<String, String>>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let Ok(mut provider) = shared.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    if let Some((status, body)) = provider.outage {
        let kind = if body.starts_with('{') {
            "application/json"
        } else {
            "text/html"
        };
        return (status, [(header::CONTENT_TYPE, kind)], body).into_response();
    }
    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
    let proven = PkceCodeChallenge::from_code_verifier_sha256(&PkceCodeVerifier::new(verifier));
    provider.verifier_ok = Some(provider.challenge.as_deref() == Some(proven.as_str()));
    match provider.id_token.take() {
        Some(id_token) => Json(serde_json::json!({
            "access_token": "access-token",
            "token_type": "Bearer",
            "expires_in": 300,
            "id_token": id_token,
        }))
        .into_response(),
        None => (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({ "error": "invalid_grant" })),
        )
            .into_response(),
    }
}

/// Starts the fake provider; returns its issuer URL and its state.
async fn start_provider() -> TestResult<(String, Shared)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let issuer = format!("http://{}", listener.local_addr()?);
    let shared: Shared = Arc::new(Mutex::new(ProviderState {
        issuer: issuer.clone(),
        ..ProviderState::default()
    }));
    let app = Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .route("/token", post(token))
        .with_state(shared.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((issuer, shared))
}

fn oidc_identity(issuer: &str) -> IdentitySettings {
    IdentitySettings {
        public_origin: Some("http://slipway.test".into()),
        oidc: Some(OidcSettings {
            issuer: issuer.to_string(),
            client_id: CLIENT_ID.into(),
            client_secret: Some(Secret::new("client-secret".into())),
            scopes: vec!["openid".into(), "profile".into()],
            redirect_url: "http://slipway.test/auth/oidc/callback".into(),
            name: "Test IdP".into(),
            roles_claim: "roles".into(),
            teams_claim: "groups".into(),
            role_map: None,
            team_map: None,
        }),
        ..IdentitySettings::default()
    }
}

/// A browser without script: follows nothing, keeps the session cookie.
struct Browser {
    router: Router,
    /// Cookies by name, as the server last set them.
    cookies: std::collections::BTreeMap<String, String>,
    /// The address the listener sees this browser at, if any.
    address: Option<std::net::SocketAddr>,
    /// Sent as `x-request-id`, which becomes the calls' trace id.
    request_id: Option<String>,
    /// Sent as `X-Forwarded-For`, as a proxy (or a client posing as one) would.
    forwarded_for: Option<String>,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

impl Browser {
    fn new(app: &TestApp) -> Browser {
        Browser {
            router: slipway_server::cli::router(&app.state, Router::new()),
            cookies: Default::default(),
            address: None,
            request_id: None,
            forwarded_for: None,
        }
    }

    /// A browser at `address` (`ip:port`), as the listener sees it.
    fn at(app: &TestApp, address: &str) -> TestResult<Browser> {
        let mut browser = Browser::new(app);
        browser.address = Some(address.parse()?);
        Ok(browser)
    }

    fn cookie_header(&self) -> Option<String> {
        (!self.cookies.is_empty()).then(|| {
            self.cookies
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    async fn send(
        &mut self,
        request: axum::http::request::Builder,
        body: Body,
    ) -> TestResult<Answer> {
        let request = match self.cookie_header() {
            Some(cookie) => request.header(header::COOKIE, cookie),
            None => request,
        };
        let request = match &self.request_id {
            Some(id) => request.header("x-request-id", id),
            None => request,
        };
        let request = match &self.forwarded_for {
            Some(chain) => request.header("x-forwarded-for", chain),
            None => request,
        };
        let mut request = request.body(body)?;
        if let Some(address) = self.address {
            request.extensions_mut().insert(ConnectInfo(address));
        }
        let response = self.router.clone().oneshot(request).await?;
        let status = response.status();
        let headers = response.headers().clone();
        for set in headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
        {
            let pair = set.split(';').next().unwrap_or_default();
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            if set.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_string(), value.to_string());
            }
        }
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await?;
        Ok(Answer {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        })
    }

    async fn get(&mut self, uri: &str) -> TestResult<Answer> {
        self.send(
            Request::get(uri).header(header::HOST, "slipway.test"),
            Body::empty(),
        )
        .await
    }
}

/// How the test provider should sign the next token.
struct Token {
    issuer: Option<String>,
    audience: String,
    expires_in: chrono::Duration,
    nonce: Option<String>,
    key: String,
    kid: &'static str,
    roles: Vec<&'static str>,
    groups: Vec<&'static str>,
}

impl Token {
    fn good() -> Token {
        Token {
            issuer: None,
            audience: CLIENT_ID.into(),
            expires_in: chrono::Duration::minutes(5),
            nonce: None,
            key: keys().0.clone(),
            kid: FIRST_KID,
            roles: vec!["requester"],
            groups: vec!["/payments"],
        }
    }

    fn sign(&self, issuer: &str, nonce: &str) -> TestResult<String> {
        let now = chrono::Utc::now();
        let mut extra = ProviderClaims::default();
        extra
            .other
            .insert("roles".into(), serde_json::json!(self.roles));
        extra
            .other
            .insert("groups".into(), serde_json::json!(self.groups));
        let claims = SlipwayIdTokenClaims::new(
            IssuerUrl::new(self.issuer.clone().unwrap_or_else(|| issuer.to_string()))?,
            vec![Audience::new(self.audience.clone())],
            now + self.expires_in,
            now - chrono::Duration::minutes(1),
            StandardClaims::new(SubjectIdentifier::new("subject-alice".into()))
                .set_preferred_username(Some(EndUserUsername::new("alice".into())))
                .set_name(Some(LocalizedClaim::from(EndUserName::new(
                    "Alice Provider".into(),
                )))),
            extra,
        )
        .set_nonce(Some(Nonce::new(
            self.nonce.clone().unwrap_or_else(|| nonce.to_string()),
        )));
        let token = SlipwayIdToken::new(
            claims,
            &signing_key(&self.key, self.kid)?,
            CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
            None,
            None,
        )?;
        Ok(token.to_string())
    }
}

fn query(url: &Url, name: &str) -> TestResult<String> {
    Ok(url
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| format!("{name} missing from {url}"))?)
}

/// Walks one sign-in: start, the provider signs `token`, callback. Returns the
/// callback's answer.
async fn sign_in_through_provider(
    browser: &mut Browser,
    issuer: &str,
    provider: &Shared,
    token: &Token,
) -> TestResult<Answer> {
    let started = browser
        .get("/auth/oidc/start?next=/requests%3Fmine%3D1")
        .await?;
    assert_eq!(started.status, StatusCode::SEE_OTHER, "{}", started.body);
    let to_provider = Url::parse(started.location())?;
    assert!(
        to_provider
            .as_str()
            .starts_with(&format!("{issuer}/authorize"))
    );
    assert_eq!(query(&to_provider, "client_id")?, CLIENT_ID);
    assert_eq!(query(&to_provider, "code_challenge_method")?, "S256");
    assert_eq!(query(&to_provider, "response_type")?, "code");
    assert!(query(&to_provider, "scope")?.contains("openid"));
    let state = query(&to_provider, "state")?;
    let nonce = query(&to_provider, "nonce")?;
    {
        let mut shared = provider.lock().map_err(|_| "poisoned")?;
        shared.challenge = Some(query(&to_provider, "code_challenge")?);
        shared.id_token = Some(token.sign(issuer, &nonce)?);
    }
    browser
        .get(&format!("/auth/oidc/callback?code=the-code&state={state}"))
        .await
}

async fn events(app: &TestApp, action: &str) -> TestResult<i64> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM audit_events WHERE action = $1")
            .bind(action)
            .fetch_one(&app.state.db.pool)
            .await?,
    )
}

async fn signed_in_sessions(app: &TestApp) -> TestResult<i64> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM sessions WHERE user_id IS NOT NULL")
            .fetch_one(&app.state.db.pool)
            .await?,
    )
}

async fn oidc_app(engine: Engine) -> TestResult<Option<(TestApp, String, Shared)>> {
    let (issuer, provider) = start_provider().await?;
    Ok(TestApp::start_with_identity(engine, oidc_identity(&issuer))
        .await?
        .map(|app| (app, issuer, provider)))
}

async fn a_valid_token_signs_in(engine: Engine) -> TestResult {
    let Some((app, issuer, provider)) = oidc_app(engine).await? else {
        eprintln!("note: {} is not set; skipping", common::POSTGRES_ENV);
        return Ok(());
    };
    let users_before = app.count("users").await?;
    let mut browser = Browser::new(&app);
    let answer = sign_in_through_provider(&mut browser, &issuer, &provider, &Token::good()).await?;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    assert_eq!(answer.location(), "/requests?mine=1");
    assert_eq!(
        provider.lock().map_err(|_| "poisoned")?.verifier_ok,
        Some(true),
        "the token request proves the PKCE challenge"
    );
    assert_eq!(app.count("users").await?, users_before + 1);
    // The demo user alice exists already: the provider's alice gets a name of her own.
    let (username, display, roles, teams, external): (String, String, String, String, String) =
        sqlx::query_as(
            "SELECT username, display_name, roles, teams, external_subject FROM users \
             WHERE external_issuer = $1",
        )
        .bind(&issuer)
        .fetch_one(&app.state.db.pool)
        .await?;
    assert_eq!(
        (
            username.as_str(),
            display.as_str(),
            roles.as_str(),
            teams.as_str()
        ),
        ("alice-2", "Alice Provider", "requester", "payments")
    );
    assert_eq!(external, "subject-alice");
    assert_eq!(events(&app, "user.sign_in").await?, 1);
    assert_eq!(
        events(&app, "user.created").await?,
        4,
        "three demo users and alice-2"
    );
    assert_eq!(signed_in_sessions(&app).await?, 1);

    // A later sign-in refreshes roles and teams from the claims; no second account.
    let mut later = Token::good();
    later.roles = vec!["reviewer", "no-such-role"];
    later.groups = vec!["platform", "not-a-team"];
    let mut second = Browser::new(&app);
    let answer = sign_in_through_provider(&mut second, &issuer, &provider, &later).await?;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    assert_eq!(app.count("users").await?, users_before + 1);
    let (roles, teams): (String, String) =
        sqlx::query_as("SELECT roles, teams FROM users WHERE username = 'alice-2'")
            .fetch_one(&app.state.db.pool)
            .await?;
    assert_eq!((roles.as_str(), teams.as_str()), ("reviewer", "platform"));
    assert_eq!(signed_in_sessions(&app).await?, 2);
    Ok(())
}

#[tokio::test]
async fn a_valid_token_signs_in_sqlite() -> TestResult {
    a_valid_token_signs_in(Engine::Sqlite).await
}

#[tokio::test]
async fn a_valid_token_signs_in_postgres() -> TestResult {
    a_valid_token_signs_in(Engine::Postgres).await
}

/// Each bad token is refused: back to the sign-in page, no account, no signed-in
/// session, one audited failure.
#[tokio::test]
async fn bad_tokens_are_refused_and_write_nothing() -> TestResult {
    let (app, issuer, provider) = oidc_app(Engine::Sqlite)
        .await?
        .ok_or("SQLite is always available")?;
    let cases: Vec<(&str, Token)> = vec![
        (
            "forged signature",
            Token {
                key: keys().1.clone(),
                ..Token::good()
            },
        ),
        (
            "expired",
            Token {
                expires_in: chrono::Duration::minutes(-10),
                ..Token::good()
            },
        ),
        (
            "wrong audience",
            Token {
                audience: "another-client".into(),
                ..Token::good()
            },
        ),
        (
            "wrong issuer",
            Token {
                issuer: Some("http://127.0.0.1:9/evil".into()),
                ..Token::good()
            },
        ),
        (
            "wrong nonce",
            Token {
                nonce: Some("a-replayed-nonce".into()),
                ..Token::good()
            },
        ),
    ];
    let users = app.count("users").await?;
    for (n, (case, token)) in cases.iter().enumerate() {
        let mut browser = Browser::new(&app);
        let answer = sign_in_through_provider(&mut browser, &issuer, &provider, token).await?;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{case}");
        assert!(
            answer.location().starts_with("/login?error=sign_in_failed"),
            "{case}: {}",
            answer.location()
        );
        assert_eq!(app.count("users").await?, users, "{case}: no account");
        assert_eq!(signed_in_sessions(&app).await?, 0, "{case}: no session");
        assert_eq!(
            app.count("sessions").await?,
            0,
            "{case}: the attempt's session is gone"
        );
        assert_eq!(events(&app, "user.sign_in").await?, 0, "{case}");
        assert_eq!(
            events(&app, "user.sign_in_failed").await?,
            i64::try_from(n)? + 1,
            "{case}: the failure is audited"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_callback_without_a_started_sign_in_or_with_a_wrong_state_is_refused() -> TestResult {
    let (app, issuer, provider) = oidc_app(Engine::Sqlite)
        .await?
        .ok_or("SQLite is always available")?;
    let mut stranger = Browser::new(&app);
    let answer = stranger.get("/auth/oidc/callback?code=x&state=y").await?;
    assert!(
        answer
            .location()
            .starts_with("/login?error=sign_in_expired"),
        "{}",
        answer.location()
    );

    let mut browser = Browser::new(&app);
    let started = browser.get("/auth/oidc/start").await?;
    let url = Url::parse(started.location())?;
    provider.lock().map_err(|_| "poisoned")?.id_token =
        Some(Token::good().sign(&issuer, &query(&url, "nonce")?)?);
    let answer = browser
        .get("/auth/oidc/callback?code=x&state=forged")
        .await?;
    assert!(
        answer.location().starts_with("/login?error=sign_in_failed"),
        "{}",
        answer.location()
    );
    // A sign-in answers once: the right state after a wrong one finds none.
    let state = query(&url, "state")?;
    let again = browser
        .get(&format!("/auth/oidc/callback?code=x&state={state}"))
        .await?;
    assert!(
        again.location().starts_with("/login?error=sign_in_expired"),
        "{}",
        again.location()
    );
    assert_eq!(signed_in_sessions(&app).await?, 0);
    assert_eq!(events(&app, "user.sign_in_failed").await?, 3);
    // A `next` too long for a cookie goes to the default page.
    let long = format!("/assets?q={}", "a".repeat(5_000));
    let started = Browser::new(&app)
        .get(&format!("/auth/oidc/start?next={long}"))
        .await?;
    assert!(
        started.location().starts_with(&issuer),
        "{}",
        started.location()
    );
    Ok(())
}

/// A sign-in whose code the provider refuses: started, then called back with
/// its own state and a code the provider has no token for.
async fn refused_code(browser: &mut Browser) -> TestResult<Answer> {
    let started = browser.get("/auth/oidc/start").await?;
    let url = Url::parse(started.location())?;
    let state = query(&url, "state")?;
    browser
        .get(&format!("/auth/oidc/callback?code=refused&state={state}"))
        .await
}

async fn throttled_subjects(app: &TestApp) -> TestResult<Vec<String>> {
    Ok(
        sqlx::query_scalar("SELECT subject FROM sign_in_failures ORDER BY subject")
            .fetch_all(&app.state.db.pool)
            .await?,
    )
}

async fn audited_addresses(app: &TestApp) -> TestResult<Vec<Option<String>>> {
    Ok(sqlx::query_scalar(
        "SELECT DISTINCT client_addr FROM audit_events WHERE action = 'user.sign_in_failed'",
    )
    .fetch_all(&app.state.db.pool)
    .await?)
}

/// A callback whose code goes to the provider costs a call with Slipway's
/// credentials: an address whose codes keep being refused is held back like
/// one whose passwords do, without more rows or calls, while another address
/// still signs in.
#[tokio::test]
async fn an_address_whose_callbacks_keep_failing_is_held_back() -> TestResult {
    let (app, issuer, provider) = oidc_app(Engine::Sqlite)
        .await?
        .ok_or("SQLite is always available")?;
    let mut flood = Browser::at(&app, "198.51.100.7:40000")?;
    let mut refused = Vec::new();
    for _ in 0..40 {
        let answer = refused_code(&mut flood).await?;
        refused.push(answer.location().to_string());
    }
    let audited = events(&app, "user.sign_in_failed").await?;
    assert_eq!(audited, 20, "failures audited of 40: {refused:?}");
    assert!(
        refused[..20]
            .iter()
            .all(|l| l.starts_with("/login?error=sign_in_failed")),
        "{refused:?}"
    );
    assert!(
        refused[20..]
            .iter()
            .all(|l| l.starts_with("/login?error=too_many")),
        "{refused:?}"
    );
    // A sign-in under way from that address gets no call to the provider.
    let started = flood.get("/auth/oidc/start").await?;
    let url = Url::parse(started.location())?;
    provider.lock().map_err(|_| "poisoned")?.id_token =
        Some(Token::good().sign(&issuer, &query(&url, "nonce")?)?);
    let state = query(&url, "state")?;
    let held = flood
        .get(&format!("/auth/oidc/callback?code=x&state={state}"))
        .await?;
    assert!(held.location().starts_with("/login?error=too_many"));
    assert!(
        provider.lock().map_err(|_| "poisoned")?.id_token.is_some(),
        "the provider was not asked"
    );
    assert_eq!(events(&app, "user.sign_in_failed").await?, audited);
    // The password form stays the way in from that address.
    let meta = CallMeta {
        client_addr: Some("198.51.100.7".into()),
        ..CallMeta::default()
    };
    auth::login(&app.state, "carol", "carol-demo-pw", Channel::Portal, &meta).await?;
    // Another address signs in.
    let mut browser = Browser::at(&app, "203.0.113.20:40000")?;
    let started = browser.get("/auth/oidc/start").await?;
    let url = Url::parse(started.location())?;
    provider.lock().map_err(|_| "poisoned")?.id_token =
        Some(Token::good().sign(&issuer, &query(&url, "nonce")?)?);
    let state = query(&url, "state")?;
    let answer = browser
        .get(&format!("/auth/oidc/callback?code=x&state={state}"))
        .await?;
    assert_eq!(answer.location(), "/catalog");
    Ok(())
}

/// Callbacks that never reach the provider (no sign-in under way in this
/// browser, a state that does not match, the provider's error in the query)
/// are audited but count against no one: any page can send a browser to the
/// callback with an `<img>`, and behind a proxy every caller shares one address.
#[tokio::test]
async fn bare_callbacks_lock_no_one() -> TestResult {
    let (app, issuer, provider) = oidc_app(Engine::Sqlite)
        .await?
        .ok_or("SQLite is always available")?;
    let mut proxy = Browser::at(&app, "10.0.0.5:40000")?;
    for n in 0..25 {
        let bare = proxy.get("/auth/oidc/callback?code=x&state=y").await?;
        assert!(
            bare.location().starts_with("/login?error=sign_in_expired"),
            "{n}: {}",
            bare.location()
        );
        proxy.get("/auth/oidc/start").await?;
        let forged = proxy.get("/auth/oidc/callback?code=x&state=forged").await?;
        assert!(
            forged.location().starts_with("/login?error=sign_in_failed"),
            "{n}: {}",
            forged.location()
        );
        proxy.get("/auth/oidc/start").await?;
        let denied = proxy.get("/auth/oidc/callback?error=access_denied").await?;
        assert!(
            denied
                .location()
                .starts_with("/login?error=provider_refused"),
            "{n}: {}",
            denied.location()
        );
    }
    // Audited up to a budget of 60 a minute (any page can send browsers here,
    // and the audit trail is never pruned); 75 in one minute, or across two.
    let audited = events(&app, "user.sign_in_failed").await?;
    assert!((60..=75).contains(&audited), "{audited} audited");
    assert_eq!(throttled_subjects(&app).await?, Vec::<String>::new());
    // Someone else behind the same address signs in.
    let mut colleague = Browser::at(&app, "10.0.0.5:40001")?;
    let answer =
        sign_in_through_provider(&mut colleague, &issuer, &provider, &Token::good()).await?;
    assert_eq!(answer.location(), "/requests?mine=1", "{}", answer.body);
    Ok(())
}

/// An app behind a proxy on 10.0.0.0/8.
async fn app_behind_proxy() -> TestResult<(TestApp, String, Shared)> {
    let (issuer, provider) = start_provider().await?;
    let identity = IdentitySettings {
        trusted_proxies: vec!["10.0.0.0/8".parse()?],
        ..oidc_identity(&issuer)
    };
    let app = TestApp::start_with_identity(Engine::Sqlite, identity)
        .await?
        .ok_or("SQLite is always available")?;
    Ok((app, issuer, provider))
}

/// Behind a trusted proxy each client is counted (and audited) under its own
/// address, the one the proxy appended: a client that keeps failing is held
/// back, and a colleague behind the same proxy still signs in.
#[tokio::test]
async fn behind_a_trusted_proxy_two_clients_are_counted_apart() -> TestResult {
    let (app, issuer, provider) = app_behind_proxy().await?;
    let mut guesser = Browser::at(&app, "10.0.0.5:40000")?;
    // The first entry is the client's own invention; the proxy appended the second.
    guesser.forwarded_for = Some("192.0.2.1, 198.51.100.7".into());
    for n in 0..20 {
        let refused = refused_code(&mut guesser).await?;
        assert!(
            refused
                .location()
                .starts_with("/login?error=sign_in_failed"),
            "{n}: {}",
            refused.location()
        );
    }
    let held = refused_code(&mut guesser).await?;
    assert!(
        held.location().starts_with("/login?error=too_many"),
        "{}",
        held.location()
    );
    assert_eq!(throttled_subjects(&app).await?, ["sso-addr:198.51.100.7"]);
    assert_eq!(
        audited_addresses(&app).await?,
        [Some("198.51.100.7".to_string())]
    );
    let mut colleague = Browser::at(&app, "10.0.0.5:40001")?;
    colleague.forwarded_for = Some("203.0.113.20".into());
    let answer =
        sign_in_through_provider(&mut colleague, &issuer, &provider, &Token::good()).await?;
    assert_eq!(answer.location(), "/requests?mine=1", "{}", answer.body);
    Ok(())
}

/// A peer that is not a trusted proxy is counted under its own address,
/// whatever `X-Forwarded-For` it sends.
#[tokio::test]
async fn an_untrusted_peers_x_forwarded_for_is_ignored() -> TestResult {
    let (app, _, _) = app_behind_proxy().await?;
    let mut direct = Browser::at(&app, "203.0.113.50:40000")?;
    for n in 0..20 {
        direct.forwarded_for = Some(format!("198.51.100.{n}"));
        refused_code(&mut direct).await?;
    }
    direct.forwarded_for = Some("198.51.100.200".into());
    let held = refused_code(&mut direct).await?;
    assert!(
        held.location().starts_with("/login?error=too_many"),
        "{}",
        held.location()
    );
    assert_eq!(throttled_subjects(&app).await?, ["sso-addr:203.0.113.50"]);
    assert_eq!(
        audited_addresses(&app).await?,
        [Some("203.0.113.50".to_string())]
    );
    Ok(())
}

/// A token endpoint that cannot be reached, fails or answers what is not a
/// token response is the provider's failure: everyone signing in meanwhile is
/// told so, and nobody is counted for it, however often they try.
#[tokio::test]
async fn a_provider_whose_token_endpoint_fails_counts_against_no_one() -> TestResult {
    let (app, issuer, provider) = oidc_app(Engine::Sqlite)
        .await?
        .ok_or("SQLite is always available")?;
    let outages = [
        (Some((StatusCode::SERVICE_UNAVAILABLE, "")), None),
        (
            Some((StatusCode::BAD_GATEWAY, "<html>Bad Gateway</html>")),
            None,
        ),
        (
            Some((
                StatusCode::BAD_REQUEST,
                r#"{"error":"temporarily_unavailable"}"#,
            )),
            None,
        ),
        (
            Some((
                StatusCode::INTERNAL_SERVER_ERROR,
                r#"{"error":"server_error"}"#,
            )),
            None,
        ),
        // Nothing listens on port 9 of loopback.
        (None, Some("http://127.0.0.1:9/token".into())),
    ];
    for (outage, token_url) in outages {
        let case = format!("{outage:?} {token_url:?}");
        {
            let mut shared = provider.lock().map_err(|_| "poisoned")?;
            shared.outage = outage;
            shared.token_url = token_url;
        }
        // A new router reads the provider's discovery document afresh.
        let mut browser = Browser::at(&app, "198.51.100.7:40000")?;
        for n in 0..21 {
            let answer = refused_code(&mut browser).await?;
            assert!(
                answer
                    .location()
                    .starts_with("/login?error=provider_unavailable"),
                "{case}, attempt {n}: {}",
                answer.location()
            );
        }
        assert_eq!(
            throttled_subjects(&app).await?,
            Vec::<String>::new(),
            "{case}"
        );
    }
    {
        let mut shared = provider.lock().map_err(|_| "poisoned")?;
        shared.outage = None;
        shared.token_url = None;
    }
    let mut browser = Browser::at(&app, "198.51.100.7:40000")?;
    let answer = sign_in_through_provider(&mut browser, &issuer, &provider, &Token::good()).await?;
    assert_eq!(answer.location(), "/requests?mine=1", "{}", answer.body);
    Ok(())
}

/// The sessions table holds the SHA-256 of each session id, never the id the
/// browser presents; the session loads, is listed as the caller's own, and
/// ends on sign-out all the same.
async fn a_session_id_is_stored_only_as_its_hash(engine: Engine) -> TestResult {
    use sha2::Digest as _;
    let Some((app, issuer, provider)) = oidc_app(engine).await? else {
        eprintln!("note: {} is not set; skipping", common::POSTGRES_ENV);
        return Ok(());
    };
    let mut browser = Browser::new(&app);
    let answer = sign_in_through_provider(&mut browser, &issuer, &provider, &Token::good()).await?;
    assert_eq!(answer.location(), "/requests?mine=1", "{}", answer.body);
    let raw = browser
        .cookies
        .get("slipway_session")
        .cloned()
        .ok_or("no session cookie")?;
    let stored: Vec<(String, i64)> = sqlx::query_as("SELECT id, user_id FROM sessions")
        .fetch_all(&app.state.db.pool)
        .await?;
    let [(key, user_id)] = stored.as_slice() else {
        return Err(format!("one session expected: {stored:?}").into());
    };
    assert_eq!(*key, hex::encode(sha2::Sha256::digest(raw.as_bytes())));
    let dump = app.dump_database().await?;
    assert!(!dump.contains(&raw), "the session id is stored somewhere");

    // A request missing from the database: signed in, the answer is 404, not 401.
    let signed_in = browser.get("/requests/999999/events").await?;
    assert_eq!(
        signed_in.status,
        StatusCode::NOT_FOUND,
        "{}",
        signed_in.body
    );
    let user = auth::user(&app.state, UserId(*user_id))
        .await?
        .ok_or("the user")?;
    let listed = auth::sessions(&app.state, &user, Some(&raw)).await?;
    assert_eq!(listed.len(), 1);
    assert!(listed[0].current, "the caller's own session is marked");
    let caller = slipway_server::services::Caller::new(user, Channel::Portal, CallMeta::default());
    auth::sign_out(&app.state, &caller, &raw).await?;
    assert_eq!(app.count("sessions").await?, 0);
    let signed_out = browser.get("/requests/999999/events").await?;
    assert_eq!(
        signed_out.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        signed_out.body
    );
    Ok(())
}

#[tokio::test]
async fn a_session_id_is_stored_only_as_its_hash_sqlite() -> TestResult {
    a_session_id_is_stored_only_as_its_hash(Engine::Sqlite).await
}

#[tokio::test]
async fn a_session_id_is_stored_only_as_its_hash_postgres() -> TestResult {
    a_session_id_is_stored_only_as_its_hash(Engine::Postgres).await
}

#[tokio::test]
async fn a_provider_that_is_down_gives_a_message_not_an_error() -> TestResult {
    // Nothing listens on port 9 of loopback.
    let app = TestApp::start_with_identity(Engine::Sqlite, oidc_identity("http://127.0.0.1:9"))
        .await?
        .ok_or("SQLite is always available")?;
    let mut browser = Browser::new(&app);
    let answer = browser.get("/auth/oidc/start?next=/assets").await?;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    assert_eq!(
        answer.location(),
        "/login?error=provider_unavailable&next=%2Fassets"
    );
    Ok(())
}

#[tokio::test]
async fn an_unsafe_next_is_replaced() -> TestResult {
    let (app, issuer, provider) = oidc_app(Engine::Sqlite)
        .await?
        .ok_or("SQLite is always available")?;
    let mut browser = Browser::new(&app);
    let started = browser
        .get("/auth/oidc/start?next=/%5Cevil.example")
        .await?;
    let url = Url::parse(started.location())?;
    provider.lock().map_err(|_| "poisoned")?.id_token =
        Some(Token::good().sign(&issuer, &query(&url, "nonce")?)?);
    let state = query(&url, "state")?;
    let answer = browser
        .get(&format!("/auth/oidc/callback?code=x&state={state}"))
        .await?;
    assert_eq!(answer.location(), "/catalog");
    Ok(())
}

on_both_engines!(repeated_wrong_passwords_lock_the_user_name);

async fn repeated_wrong_passwords_lock_the_user_name(app: &TestApp) -> TestResult {
    for _ in 0..5 {
        let refused = auth::login(
            &app.state,
            "alice",
            "guess",
            Channel::Portal,
            &CallMeta::default(),
        )
        .await;
        assert!(refused.is_err());
    }
    // Now even the right password waits, and the message says so.
    let refused = auth::login(
        &app.state,
        "alice",
        "alice-demo-pw",
        Channel::Portal,
        &CallMeta::default(),
    )
    .await;
    let message = refused.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("wait 1 minute"), "{message}");
    // The lock is in the database, so a second replica sees it too.
    let restarted = app.restart().await?;
    let refused = auth::login(
        &restarted,
        "ALICE",
        "alice-demo-pw",
        Channel::Portal,
        &CallMeta::default(),
    )
    .await;
    assert!(refused.is_err(), "the user name is matched without case");
    // The five failures are audited, the last saying it starts the lock; the two
    // attempts refused unchecked during it are counted, not audited one by one.
    assert_eq!(events(app, "user.sign_in_failed").await?, 5);
    let last: String = sqlx::query_scalar(
        "SELECT detail FROM audit_events WHERE action = 'user.sign_in_failed' ORDER BY seq DESC LIMIT 1",
    )
    .fetch_one(&app.state.db.pool)
    .await?;
    assert!(
        last.ends_with("; further attempts refused for 60 s"),
        "{last}"
    );
    assert_eq!(app.state.metrics.sign_ins_throttled.get(), 1);
    assert_eq!(restarted.metrics.sign_ins_throttled.get(), 1);
    // Another user is not affected.
    auth::login(
        &app.state,
        "bob",
        "bob-demo-pw",
        Channel::Portal,
        &CallMeta::default(),
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn the_lock_lifts_and_a_success_clears_the_count() -> TestResult {
    let app = TestApp::start(Engine::Sqlite)
        .await?
        .ok_or("SQLite is always available")?;
    for _ in 0..5 {
        assert!(
            auth::login(
                &app.state,
                "alice",
                "guess",
                Channel::Portal,
                &CallMeta::default()
            )
            .await
            .is_err()
        );
    }
    app.exec("UPDATE sign_in_failures SET locked_until = 0")
        .await?;
    auth::login(
        &app.state,
        "alice",
        "alice-demo-pw",
        Channel::Portal,
        &CallMeta::default(),
    )
    .await?;
    assert_eq!(app.count("sign_in_failures").await?, 0);
    Ok(())
}

#[tokio::test]
async fn password_sign_in_can_be_turned_off() -> TestResult {
    let identity = IdentitySettings {
        local_accounts: false,
        ..oidc_identity("http://127.0.0.1:9")
    };
    let app = TestApp::start_with_identity(Engine::Sqlite, identity)
        .await?
        .ok_or("SQLite is always available")?;
    let refused = auth::login(
        &app.state,
        "alice",
        "alice-demo-pw",
        Channel::Portal,
        &CallMeta::default(),
    )
    .await;
    let message = refused.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        message.contains("password sign-in is turned off"),
        "{message}"
    );
    Ok(())
}

#[tokio::test]
async fn posts_from_another_site_are_refused() -> TestResult {
    let app = TestApp::start(Engine::Sqlite)
        .await?
        .ok_or("SQLite is always available")?;
    let mut browser = Browser::new(&app);
    let post = |origin: Option<&str>, referer: Option<&str>| {
        let mut request = Request::post("/api/anything").header(header::HOST, "slipway.test");
        if let Some(origin) = origin {
            request = request.header(header::ORIGIN, origin);
        }
        if let Some(referer) = referer {
            request = request.header(header::REFERER, referer);
        }
        request
    };
    for (origin, referer) in [
        (Some("http://evil.example"), None),
        (Some("null"), None),
        (None, Some("http://evil.example/page")),
        (Some("http://slipway.test.evil.example"), None),
    ] {
        let answer = browser.send(post(origin, referer), Body::empty()).await?;
        assert_eq!(
            answer.status,
            StatusCode::FORBIDDEN,
            "{origin:?} {referer:?}"
        );
    }
    for (origin, referer) in [
        (Some("http://slipway.test"), None),
        (None, Some("http://slipway.test/login")),
        (None, None),
    ] {
        let answer = browser.send(post(origin, referer), Body::empty()).await?;
        assert_ne!(
            answer.status,
            StatusCode::FORBIDDEN,
            "{origin:?} {referer:?}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn sessions_end_at_the_absolute_timeout_and_stay_ended() -> TestResult {
    use tower_sessions::SessionStore;
    use tower_sessions::session::{Id, Record};
    let app = TestApp::start(Engine::Sqlite)
        .await?
        .ok_or("SQLite is always available")?;
    let store = slipway_server::storage::sessions::DbSessionStore::new(
        &app.state.db,
        Duration::from_millis(300),
    );
    let mut record = Record {
        id: Id::default(),
        data: [("user_id".to_string(), serde_json::json!(1))]
            .into_iter()
            .collect(),
        expiry_date: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
    };
    store.create(&mut record).await?;
    assert!(store.load(&record.id).await?.is_some());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        store.load(&record.id).await?.is_none(),
        "past the absolute timeout, however recently used"
    );
    // Data past the cap is refused, and what was stored stays.
    let mut grown = record.clone();
    grown.data.insert(
        "draft".into(),
        serde_json::json!("x".repeat(slipway_server::storage::sessions::MAX_SESSION_BYTES)),
    );
    assert!(store.save(&grown).await.is_err(), "a session past the cap");
    assert!(store.create(&mut grown.clone()).await.is_err());
    // A session deleted (signed out) while a request of it runs is not written back.
    store.delete(&record.id).await?;
    store.save(&record).await?;
    assert_eq!(app.count("sessions").await?, 0);
    Ok(())
}

/// The settings `serve` reads for a provider whose `groups` claim carries both
/// roles and teams, through the role and team maps.
fn mapped_identity(issuer: &str, team_map: &[&str]) -> TestResult<IdentitySettings> {
    Ok(IdentityArgs {
        public_url: Some("http://slipway.test".into()),
        oidc_issuer: Some(issuer.into()),
        oidc_client_id: Some(CLIENT_ID.into()),
        oidc_client_secret: Some("client-secret".into()),
        oidc_roles_claim: "groups".into(),
        oidc_role_map: vec!["slipway-admins=admin,platform-ops=platform".into()],
        oidc_team_map: team_map.iter().map(|p| p.to_string()).collect(),
        ..IdentityArgs::default()
    }
    .check()?)
}

async fn mapped_user(app: &TestApp, issuer: &str) -> TestResult<UserView> {
    let id: i64 = sqlx::query_scalar("SELECT id FROM users WHERE external_issuer = $1")
        .bind(issuer)
        .fetch_one(&app.state.db.pool)
        .await?;
    Ok(auth::user(&app.state, UserId(id))
        .await?
        .ok_or("the user is missing")?)
}

async fn group_claims_map_to_roles_and_teams(engine: Engine) -> TestResult {
    let (issuer, provider) = start_provider().await?;
    let identity = mapped_identity(&issuer, &["grp-payments=payments,grp-platform=platform"])?;
    let Some(app) = TestApp::start_with_identity(engine, identity).await? else {
        eprintln!("note: {} is not set; skipping", common::POSTGRES_ENV);
        return Ok(());
    };
    let mut browser = Browser::new(&app);
    let first = Token {
        // `reviewer` and `search` are Slipway names, but the maps do not list them.
        groups: vec!["slipway-admins", "/grp-payments", "reviewer", "search"],
        ..Token::good()
    };
    let answer = sign_in_through_provider(&mut browser, &issuer, &provider, &first).await?;
    assert_eq!(answer.location(), "/requests?mine=1", "{}", answer.body);
    let user = mapped_user(&app, &issuer).await?;
    assert_eq!(user.roles, vec![Role::Admin]);
    assert_eq!(user.teams, vec!["payments".to_string()]);

    // The provider moved her: the next sign-in takes the roles and teams away.
    let later = Token {
        groups: vec!["platform-ops", "grp-platform", "unmapped"],
        ..Token::good()
    };
    let mut second = Browser::new(&app);
    let answer = sign_in_through_provider(&mut second, &issuer, &provider, &later).await?;
    assert_eq!(answer.location(), "/requests?mine=1", "{}", answer.body);
    let again = mapped_user(&app, &issuer).await?;
    assert_eq!(again.id, user.id, "the same account");
    assert_eq!(again.roles, vec![Role::Platform]);
    assert_eq!(again.teams, vec!["platform".to_string()]);
    Ok(())
}

#[tokio::test]
async fn group_claims_map_to_roles_and_teams_sqlite() -> TestResult {
    group_claims_map_to_roles_and_teams(Engine::Sqlite).await
}

#[tokio::test]
async fn group_claims_map_to_roles_and_teams_postgres() -> TestResult {
    group_claims_map_to_roles_and_teams(Engine::Postgres).await
}

#[tokio::test]
async fn a_team_map_naming_a_team_the_catalog_lacks_stops_the_start() -> TestResult {
    let identity = mapped_identity("http://127.0.0.1:9", &["grp-ghosts=ghosts"])?;
    let error = TestApp::start_with_identity(Engine::Sqlite, identity)
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        error.starts_with(
            "--oidc-team-map (SLIPWAY_OIDC_TEAM_MAP): grp-ghosts=ghosts: the catalog's teams dictionary has no team \"ghosts\""
        ),
        "{error}"
    );
    Ok(())
}

#[tokio::test]
async fn a_rotated_signing_key_is_read_at_once() -> TestResult {
    let (app, issuer, provider) = oidc_app(Engine::Sqlite)
        .await?
        .ok_or("SQLite is always available")?;
    let mut browser = Browser::new(&app);
    // The first sign-in reads the keys, which are then cached for 15 minutes.
    let answer = sign_in_through_provider(&mut browser, &issuer, &provider, &Token::good()).await?;
    assert_eq!(answer.location(), "/requests?mine=1");
    let reads = |provider: &Shared| provider.lock().map(|p| p.jwks_reads).unwrap_or(0);
    let before = reads(&provider);

    // The provider rotates: it publishes, and signs with, a new key only.
    provider.lock().map_err(|_| "poisoned")?.published = Some((keys().1.clone(), "key-2".into()));
    let rotated = Token {
        key: keys().1.clone(),
        kid: "key-2",
        ..Token::good()
    };
    let answer = sign_in_through_provider(&mut browser, &issuer, &provider, &rotated).await?;
    assert_eq!(
        answer.location(),
        "/requests?mine=1",
        "signed in without waiting for the cache to expire"
    );
    assert_eq!(reads(&provider), before + 1, "the keys were read once more");

    // A token naming a key nobody published is refused, and does not send Slipway
    // back to the provider so soon after the last read.
    let unknown = Token {
        key: keys().1.clone(),
        kid: "key-made-up",
        ..Token::good()
    };
    let answer = sign_in_through_provider(&mut browser, &issuer, &provider, &unknown).await?;
    assert!(
        answer.location().starts_with("/login?error=sign_in_failed"),
        "{}",
        answer.location()
    );
    assert_eq!(reads(&provider), before + 1, "no second read within 30 s");
    assert_eq!(events(&app, "user.sign_in").await?, 2);
    Ok(())
}

#[tokio::test]
async fn a_refused_sign_in_is_audited_with_its_address_and_trace_id() -> TestResult {
    let (issuer, provider) = start_provider().await?;
    let identity = IdentitySettings {
        trusted_proxies: vec!["10.0.0.0/8".parse()?],
        ..oidc_identity(&issuer)
    };
    let app = TestApp::start_with_identity(Engine::Sqlite, identity)
        .await?
        .ok_or("SQLite is always available")?;
    // Through the proxy, which names the client and the call's trace id.
    let mut browser = Browser::new(&app);
    browser.address = Some("10.1.2.3:50000".parse()?);
    browser.forwarded_for = Some("203.0.113.9".into());
    browser.request_id = Some("trace-refused-oidc".into());
    let expired = Token {
        expires_in: chrono::Duration::minutes(-10),
        ..Token::good()
    };
    let answer = sign_in_through_provider(&mut browser, &issuer, &provider, &expired).await?;
    assert!(
        answer.location().starts_with("/login?error=sign_in_failed"),
        "{}",
        answer.location()
    );
    let row: (String, String, Option<String>, Option<String>, String) = sqlx::query_as(
        "SELECT actor, channel, client_addr, trace_id, detail FROM audit_events \
         WHERE action = 'user.sign_in_failed'",
    )
    .fetch_one(&app.state.db.pool)
    .await?;
    assert_eq!(
        (
            row.0.as_str(),
            row.1.as_str(),
            row.2.as_deref(),
            row.3.as_deref()
        ),
        (
            "policy:sign-in",
            "portal",
            Some("203.0.113.9"),
            Some("trace-refused-oidc")
        )
    );
    assert!(row.4.starts_with("oidc: "), "{}", row.4);

    // A client that reaches the server itself does not choose its trace id: it
    // would file its calls under another call's.
    let mut direct = Browser::new(&app);
    direct.address = Some("203.0.113.10:50000".parse()?);
    direct.request_id = Some("trace-refused-oidc".into());
    sign_in_through_provider(&mut direct, &issuer, &provider, &expired).await?;
    let traces: Vec<Option<String>> = sqlx::query_scalar(
        "SELECT trace_id FROM audit_events WHERE action = 'user.sign_in_failed' \
         AND client_addr = '203.0.113.10'",
    )
    .fetch_all(&app.state.db.pool)
    .await?;
    assert_eq!(traces.len(), 1, "{traces:?}");
    assert_ne!(traces[0].as_deref(), Some("trace-refused-oidc"));
    Ok(())
}

on_both_engines!(failed_passwords_throttle_the_address_and_the_user_name);

/// Twenty wrong passwords from one address lock that address for every user name;
/// other addresses still get through. Five for one user name from one address
/// lock that name there only (before, everywhere: anyone could keep any
/// account locked); fifty from anywhere lock it everywhere.
async fn failed_passwords_throttle_the_address_and_the_user_name(app: &TestApp) -> TestResult {
    let from = |address: &str| CallMeta {
        trace_id: None,
        client_addr: Some(address.into()),
        channel_user: None,
    };
    let login = |user: String, password: String, meta: CallMeta| async move {
        auth::login(&app.state, &user, &password, Channel::Portal, &meta)
            .await
            .map_err(|e| e.to_string())
    };
    let attacker = from("198.51.100.7");
    // Each guess for another name, so no user name reaches its own limit.
    for n in 0..20 {
        let refused = login(format!("guess-{n}"), "guess".into(), attacker.clone()).await;
        let message = refused.err().unwrap_or_default();
        assert!(message.contains("wrong"), "guess {n}: {message}");
    }
    for user in ["bob", "carol"] {
        let refused = login(user.into(), format!("{user}-demo-pw"), attacker.clone()).await;
        let message = refused.err().unwrap_or_default();
        assert!(
            message.contains("too many failed sign-ins"),
            "{user} from the guessing address: {message}"
        );
    }
    login("bob".into(), "bob-demo-pw".into(), from("198.51.100.8")).await?;

    for n in 0..5 {
        let refused = login("alice".into(), "guess".into(), from("192.0.2.1")).await;
        assert!(refused.is_err(), "guess {n} for alice");
    }
    let refused = login("alice".into(), "alice-demo-pw".into(), from("192.0.2.1")).await;
    let message = refused.err().unwrap_or_default();
    assert!(
        message.contains("too many failed sign-ins"),
        "alice from the guessing address: {message}"
    );
    login("alice".into(), "alice-demo-pw".into(), from("192.0.2.200")).await?;
    for n in 5..50 {
        let refused = login(
            "alice".into(),
            "guess".into(),
            from(&format!("192.0.2.{n}")),
        )
        .await;
        assert!(refused.is_err(), "guess {n} for alice");
    }
    let refused = login("alice".into(), "alice-demo-pw".into(), from("192.0.2.201")).await;
    let message = refused.err().unwrap_or_default();
    assert!(
        message.contains("too many failed sign-ins"),
        "alice from a fresh address: {message}"
    );
    // Those addresses are not locked: bob signs in from one of them.
    login("bob".into(), "bob-demo-pw".into(), from("192.0.2.0")).await?;
    Ok(())
}

on_both_engines!(an_administrator_sets_a_password_and_the_accounts_sessions_end);

/// `slipway user set-password`: a short or empty password is refused, the new
/// one replaces the old, every session of the account ends, and the change is
/// audited; an account from the identity provider has no password to set.
async fn an_administrator_sets_a_password_and_the_accounts_sessions_end(
    app: &TestApp,
) -> TestResult {
    use slipway_server::storage::sessions::{DbSessionStore, USER_KEY};
    use tower_sessions::SessionStore as _;
    use tower_sessions::cookie::time::{Duration as SessionDuration, OffsetDateTime};
    use tower_sessions::session::{Id, Record};
    let nobody_in_particular = CallMeta::default();
    let login = |user: &'static str, password: &'static str| {
        auth::login(
            &app.state,
            user,
            password,
            Channel::Portal,
            &nobody_in_particular,
        )
    };
    let alice = login("alice", "alice-demo-pw").await?;
    // Alice is signed in in some browser.
    let store = DbSessionStore::new(&app.state.db, Duration::from_secs(3600));
    let mut record = Record {
        id: Id::default(),
        data: [(USER_KEY.to_string(), serde_json::json!(alice.id.0))]
            .into_iter()
            .collect(),
        expiry_date: OffsetDateTime::now_utc() + SessionDuration::hours(1),
    };
    store.create(&mut record).await?;
    assert!(store.load(&record.id).await?.is_some());

    for (given, says) in [
        ("", "is empty"),
        ("short-pw", "at least 12 characters"),
        ("eleven-char", "at least 12 characters"),
    ] {
        let refused = auth::set_password(&app.state, "alice", given)
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            refused.starts_with("password is ") && refused.contains(says),
            "{given:?}: {refused}"
        );
    }
    let refused = auth::set_password(&app.state, "nobody", "long enough, surely")
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert_eq!(refused, "an account called \"nobody\" not found");
    login("alice", "alice-demo-pw").await?;

    let ended = auth::set_password(&app.state, "alice", "twelve chars").await?;
    assert_eq!(ended, 1);
    assert!(login("alice", "alice-demo-pw").await.is_err());
    login("alice", "twelve chars").await?;
    assert!(
        store.load(&record.id).await?.is_none(),
        "her sessions ended"
    );
    let audited: Vec<(String, Option<String>, String)> = sqlx::query_as(
        "SELECT actor, after_value, detail FROM audit_events WHERE action = 'user.password_set'",
    )
    .fetch_all(&app.state.db.pool)
    .await?;
    assert_eq!(
        audited,
        [(
            "policy:admin-command".to_string(),
            Some("alice".to_string()),
            "ended 1 sessions".to_string()
        )]
    );

    let mut conn = app.state.db.pool.acquire().await?;
    slipway_server::storage::users::insert_external(
        &mut conn,
        &slipway_server::storage::users::NewUser {
            username: "sso-person",
            display_name: "From the provider",
            password_hash: None,
            roles: &[Role::Requester],
            teams: &[],
        },
        "https://id.example",
        "subject-1",
    )
    .await?;
    drop(conn);
    let refused = auth::set_password(&app.state, "sso-person", "long enough, surely")
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        refused.contains("signs in through single sign-on only"),
        "{refused}"
    );
    let hash: Option<String> =
        sqlx::query_scalar("SELECT password_hash FROM users WHERE username = 'sso-person'")
            .fetch_one(&app.state.db.pool)
            .await?;
    assert_eq!(hash, None);
    Ok(())
}

on_both_engines!(a_sign_in_under_way_when_the_password_is_set_signs_no_one_in);

/// Starts a browser session from a sign-in, stores it as the end of the
/// response would, and answers who a later request of that browser is.
async fn session_user(
    app: &TestApp,
    store: &Arc<slipway_server::storage::sessions::DbSessionStore>,
    signed_in: Option<&auth::SignedIn>,
    user: &UserView,
) -> TestResult<Option<i64>> {
    use slipway_server::storage::sessions::USER_KEY;
    use tower_sessions::Session;
    let session = Session::new(None, store.clone(), None);
    match signed_in {
        Some(signed_in) => {
            slipway_server::http::start_signed_in_session(&app.state, &session, signed_in, None)
                .await?
        }
        None => slipway_server::http::start_user_session(&app.state, &session, user, None).await?,
    }
    session.save().await?;
    let id = session.id().ok_or("the session was stored")?;
    let later = Session::new(Some(id), store.clone(), None);
    Ok(later.get::<i64>(USER_KEY).await?)
}

/// A sign-in that read the old password before `slipway user set-password`
/// changed it, and stores its session after that command ended the account's
/// sessions, signs no one in: the session keeps the version of the password
/// its sign-in checked. Sign-ins with the new password work.
async fn a_sign_in_under_way_when_the_password_is_set_signs_no_one_in(app: &TestApp) -> TestResult {
    use slipway_server::storage::sessions::DbSessionStore;
    let store = Arc::new(DbSessionStore::new(
        &app.state.db,
        Duration::from_secs(3600),
    ));
    let meta = CallMeta::default();
    let read = auth::sign_in(&app.state, "alice", "alice-demo-pw", Channel::Portal, &meta).await?;
    assert_eq!(
        session_user(app, &store, Some(&read), &read.user).await?,
        Some(read.user.id.0),
        "a session from a sign-in signs in"
    );
    let ended = auth::set_password(&app.state, "alice", "a brand new password").await?;
    assert_eq!(ended, 1);
    assert_eq!(
        session_user(app, &store, Some(&read), &read.user).await?,
        None,
        "a sign-in that checked the old password signs no one in"
    );
    let now = auth::sign_in(
        &app.state,
        "alice",
        "a brand new password",
        Channel::Portal,
        &meta,
    )
    .await?;
    assert_eq!(
        session_user(app, &store, Some(&now), &now.user).await?,
        Some(now.user.id.0)
    );
    // Single sign-on starts sessions bound to the account as it is.
    assert_eq!(
        session_user(app, &store, None, &now.user).await?,
        Some(now.user.id.0)
    );
    Ok(())
}

on_both_engines!(
    guesses_sent_at_once_get_no_more_tries_than_one_by_one,
    an_ipv6_host_counts_as_its_whole_64
);

/// Twenty wrong passwords for one user name sent at once from one address:
/// each is counted before its password is checked, so five are checked and the
/// rest are turned away as throttled (before, every one of them was checked, as
/// none had failed yet when the others looked).
async fn guesses_sent_at_once_get_no_more_tries_than_one_by_one(app: &TestApp) -> TestResult {
    let guesses = (0..20).map(|_| {
        let state = app.state.clone();
        tokio::spawn(async move {
            let meta = CallMeta {
                trace_id: None,
                client_addr: Some("203.0.113.9".into()),
                channel_user: None,
            };
            auth::login(&state, "alice", "guess", Channel::Api, &meta)
                .await
                .map_err(|e| e.to_string())
        })
    });
    let mut checked = 0;
    for guess in guesses.collect::<Vec<_>>() {
        let message = guess.await?.err().unwrap_or_default();
        if message.contains("wrong") {
            checked += 1;
        } else {
            assert!(message.contains("too many failed sign-ins"), "{message}");
        }
    }
    assert_eq!(
        checked, 5,
        "the free attempts of one user name at one address"
    );
    let recorded: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_events WHERE action = 'user.sign_in_failed'",
    )
    .fetch_one(&app.state.db.pool)
    .await?;
    assert_eq!(
        recorded, 5,
        "a throttled attempt is not written to the audit log"
    );
    Ok(())
}

/// Wrong passwords from ever new addresses of one IPv6 /64 lock that /64: a host
/// given the whole prefix gets the free attempts of one address, not of 2^64.
async fn an_ipv6_host_counts_as_its_whole_64(app: &TestApp) -> TestResult {
    let from = |address: String| CallMeta {
        trace_id: None,
        client_addr: Some(address),
        channel_user: None,
    };
    for n in 0..20 {
        let meta = from(format!("2001:db8:7:1::{n:x}"));
        let refused = auth::login(
            &app.state,
            &format!("guess-{n}"),
            "guess",
            Channel::Api,
            &meta,
        )
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(refused.contains("wrong"), "guess {n}: {refused}");
    }
    let meta = from("2001:db8:7:1:ffff::1".into());
    let refused = auth::login(&app.state, "bob", "bob-demo-pw", Channel::Api, &meta)
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(refused.contains("too many failed sign-ins"), "{refused}");
    let elsewhere = from("2001:db8:7:2::1".into());
    auth::login(&app.state, "bob", "bob-demo-pw", Channel::Api, &elsewhere).await?;
    // A success takes back its own attempt: bob's right password from a counted
    // address does not bring it nearer to its lock.
    let shared = from("192.0.2.77".into());
    for _ in 0..19 {
        let _ = auth::login(&app.state, "carol", "guess", Channel::Api, &shared).await;
        auth::login(&app.state, "carol", "carol-demo-pw", Channel::Api, &shared).await?;
    }
    auth::login(&app.state, "bob", "bob-demo-pw", Channel::Api, &shared).await?;
    // ...nor keeps its earlier failures from ageing out: the count keeps the time
    // of the last failure, not of the success.
    let twenty_nine_minutes = 29 * 60 * 1000;
    app.exec(&format!(
        "UPDATE sign_in_failures SET last_failure_at = last_failure_at - {twenty_nine_minutes} \
         WHERE subject = 'addr:192.0.2.77'"
    ))
    .await?;
    auth::login(&app.state, "bob", "bob-demo-pw", Channel::Api, &shared).await?;
    let (failures, last): (i64, i64) = sqlx::query_as(
        "SELECT failures, last_failure_at FROM sign_in_failures WHERE subject = 'addr:192.0.2.77'",
    )
    .fetch_one(&app.state.db.pool)
    .await?;
    assert_eq!(failures, 19);
    let age = slipway_server::storage::now_millis() - last;
    assert!(age > twenty_nine_minutes - 60_000, "aged {age} ms");

    // An attempt turned away before its check (every check busy) counts nothing.
    let checks = &app.state.password_checks;
    let busy = checks
        .clone()
        .acquire_many_owned(u32::try_from(checks.available_permits())?)
        .await?;
    let refused = auth::login(
        &app.state,
        "alice",
        "guess",
        Channel::Api,
        &from("192.0.2.99".into()),
    )
    .await
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(refused.contains("too many sign-ins at once"), "{refused}");
    drop(busy);
    let counted: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM sign_in_failures \
         WHERE subject IN ('user:alice', 'user-at:192.0.2.99|alice', 'addr:192.0.2.99')",
    )
    .fetch_one(&app.state.db.pool)
    .await?;
    assert_eq!(counted, 0, "an attempt never checked is not counted");
    Ok(())
}

/// A session that only waits for single sign-on to finish lives minutes (anyone
/// may start one); signed in, it gets the idle timeout. An account disabled
/// here is not signed in however good the provider's answer.
#[tokio::test]
async fn a_pending_sign_in_is_short_lived_and_a_disabled_account_stays_out() -> TestResult {
    let (app, issuer, provider) = oidc_app(Engine::Sqlite)
        .await?
        .ok_or("SQLite is always available")?;
    let expiries = |signed_in: bool| {
        let sql = format!(
            "SELECT expires_at FROM sessions WHERE user_id IS {} NULL",
            if signed_in { "NOT" } else { "" }
        );
        let pool = app.state.db.pool.clone();
        async move { sqlx::query_scalar::<_, i64>(&sql).fetch_all(&pool).await }
    };
    // Anyone may start a sign-in as often as they like: it stores nothing here,
    // and its sealed cookie lives ten minutes.
    for _ in 0..50 {
        let started = Browser::new(&app).get("/auth/oidc/start").await?;
        assert_eq!(started.status, StatusCode::SEE_OTHER, "{}", started.body);
    }
    assert!(
        expiries(false).await?.is_empty(),
        "no session row for a start"
    );
    let mut browser = Browser::new(&app);
    let started = browser.get("/auth/oidc/start").await?;
    let set = started
        .headers
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        set.contains("Max-Age=600") && set.contains("HttpOnly"),
        "{set}"
    );
    let now = slipway_server::storage::now_millis();
    let answer = sign_in_through_provider(&mut browser, &issuer, &provider, &Token::good()).await?;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    let signed_in = expiries(true).await?;
    assert_eq!(signed_in.len(), 1);
    assert!(
        signed_in[0] >= now + 7 * 3_600_000,
        "a signed-in session lives the idle timeout (8 h)"
    );

    let username: String =
        sqlx::query_scalar("SELECT username FROM users WHERE external_issuer = $1")
            .bind(&issuer)
            .fetch_one(&app.state.db.pool)
            .await?;
    slipway_server::services::auth::set_disabled(&app.state, &username, true).await?;
    assert_eq!(
        signed_in_sessions(&app).await?,
        0,
        "disabling ends the session"
    );
    let mut again = Browser::new(&app);
    let answer = sign_in_through_provider(&mut again, &issuer, &provider, &Token::good()).await?;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    assert!(
        answer
            .location()
            .starts_with("/login?error=account_disabled"),
        "{}",
        answer.location()
    );
    assert_eq!(signed_in_sessions(&app).await?, 0);
    Ok(())
}

/// A move to single sign-on turns local accounts off: what a local account
/// already holds (the bootstrap admin's API token, a demo user's session) acts
/// no more.
#[tokio::test]
async fn local_accounts_turned_off_act_no_more() -> TestResult {
    use slipway_core::views::{TokenRequest, TokenScope};
    use slipway_server::services::{ServiceError, tokens};
    let (app, _issuer, _provider) = oidc_app(Engine::Sqlite)
        .await?
        .ok_or("SQLite is always available")?;
    let alice = app.user("alice").await?;
    let request = TokenRequest {
        name: "before the move".into(),
        scopes: vec![TokenScope::Read],
        expires_in_days: Some(30),
    };
    let made = tokens::create(&app.state, &alice, &request).await?;
    let meta = CallMeta::default();
    assert!(
        tokens::authenticate(&app.state, &made.secret, meta.clone())
            .await
            .is_ok()
    );

    let mut settings = app.settings.clone();
    settings.identity.local_accounts = false;
    let moved = slipway_server::cli::build_state(settings).await?;
    let refused = tokens::authenticate(&moved, &made.secret, meta).await;
    assert!(
        matches!(&refused, Err(ServiceError::Forbidden(why)) if why.contains("local accounts are turned off")),
        "{refused:?}"
    );
    assert!(
        auth::user(&moved, alice.id).await?.is_none(),
        "a session of alice's"
    );
    Ok(())
}
