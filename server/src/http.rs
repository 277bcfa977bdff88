//! HTTP plumbing shared by every adapter: sessions, health, tracing, and the guards
//! in front of everything (same-origin posts, redirects that are redirects).

pub mod catalog_info;
pub mod chat_link;
pub mod deadline_body;
pub mod events;
pub mod form_errors;
pub mod listen;
pub mod new_token;
pub mod oidc;
pub mod page_path;
pub mod request_form_post;
pub mod reveal;
pub mod shown_once;
pub mod sign_in_cookie;

use std::net::{IpAddr, SocketAddr};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use ipnet::IpNet;
use slipway_core::views::UserView;
use subtle::ConstantTimeEq as _;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, Session, SessionManagerLayer};
use tracing::Instrument;

use crate::api::extract::{ApiPath, ApiQuery};
use crate::api::problem::Problem;
use crate::services::{CallMeta, Caller, Channel, ServiceError};
use crate::state::AppState;
use crate::storage::now_millis;
use crate::storage::sessions::{CREDENTIAL_KEY, DbSessionStore, USER_AGENT_KEY, USER_KEY};

/// The session cookie's name; with Secure cookies it takes the `__Host-` prefix, so
/// the browser only accepts it from this host, over TLS, for the whole site.
pub fn session_cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-slipway_session"
    } else {
        "slipway_session"
    }
}

/// Sessions in the database: HttpOnly, SameSite=Lax, Path=/, Secure behind TLS,
/// ending after the idle timeout (and, in the store, the absolute timeout).
pub fn session_layer(state: &AppState) -> SessionManagerLayer<DbSessionStore> {
    let identity = &state.settings.identity;
    SessionManagerLayer::new(DbSessionStore::new(
        &state.db,
        identity.session_absolute_timeout,
    ))
    .with_name(session_cookie_name(state.settings.secure_cookies))
    .with_path("/")
    .with_http_only(true)
    .with_same_site(SameSite::Lax)
    .with_secure(state.settings.secure_cookies)
    .with_expiry(signed_in_expiry(state))
}

/// A signed-in session ends after the idle timeout.
fn signed_in_expiry(state: &AppState) -> Expiry {
    let idle = state.settings.identity.session_idle_timeout;
    Expiry::OnInactivity(
        tower_sessions::cookie::time::Duration::try_from(idle)
            .unwrap_or(tower_sessions::cookie::time::Duration::hours(8)),
    )
}

/// Session data key: when the session was last stored, to push its idle expiry on.
const SEEN_KEY: &str = "seen_at";
/// How stale the stored last use may get: a write per minute, not per request.
const TOUCH_EVERY_MS: i64 = 60_000;

/// Makes the idle timeout count from the last request: tower-sessions stores (and
/// so extends) a session only when its data changes, so a signed-in session is
/// marked used at most once a minute.
pub async fn keep_session_alive(request: Request, next: Next) -> Response {
    let path = request.uri().path();
    // A page left open following a request reconnects its event stream every
    // minute: that is the browser's doing, not a person's, and must not keep a
    // session alive past its idle timeout.
    let skip = path.starts_with("/pkg/")
        || matches!(path, "/healthz" | "/readyz" | "/metrics")
        || is_event_stream(&request);
    if !skip && let Some(session) = request.extensions().get::<Session>().cloned() {
        let signed_in = matches!(session.get::<i64>(USER_KEY).await, Ok(Some(_)));
        let seen = session
            .get::<i64>(SEEN_KEY)
            .await
            .ok()
            .flatten()
            .unwrap_or(0);
        let now = now_millis();
        if signed_in
            && now - seen >= TOUCH_EVERY_MS
            && let Err(error) = session.insert(SEEN_KEY, now).await
        {
            tracing::warn!(%error, "could not mark the session used");
        }
    }
    next.run(request).await
}

/// Whether a request asks for a stream of server-sent events.
fn is_event_stream(request: &Request) -> bool {
    request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/event-stream"))
        || request.uri().path().ends_with("/events")
}

/// Puts a freshly authenticated user into the session: a new session id (a session
/// fixed before sign-in is worthless after it), the user, and the browser it is.
/// The session is bound to the account's password as it is now (see
/// [`start_signed_in_session`], which binds it to the one the sign-in checked).
pub async fn start_user_session(
    state: &AppState,
    session: &Session,
    user: &UserView,
    user_agent: Option<&str>,
) -> Result<(), tower_sessions::session::Error> {
    let store_error = |error: crate::storage::StorageError| {
        tower_sessions::session::Error::Store(tower_sessions::session_store::Error::Backend(
            error.to_string(),
        ))
    };
    let mut conn = state
        .db
        .pool
        .acquire()
        .await
        .map_err(|e| store_error(e.into()))?;
    let version = crate::storage::users::credential_version(&mut conn, user.id)
        .await
        .map_err(store_error)?
        .unwrap_or_default();
    drop(conn);
    start_session(state, session, user, version, user_agent).await
}

/// [`start_user_session`] for a password sign-in: the session keeps the version
/// of the password the sign-in checked, so a `slipway user set-password` that
/// ended the account's sessions while this sign-in was under way (after it read
/// the old password) leaves this one signing no one in either.
pub async fn start_signed_in_session(
    state: &AppState,
    session: &Session,
    signed_in: &crate::services::auth::SignedIn,
    user_agent: Option<&str>,
) -> Result<(), tower_sessions::session::Error> {
    start_session(
        state,
        session,
        &signed_in.user,
        signed_in.credential_version,
        user_agent,
    )
    .await
}

async fn start_session(
    state: &AppState,
    session: &Session,
    user: &UserView,
    credential_version: i64,
    user_agent: Option<&str>,
) -> Result<(), tower_sessions::session::Error> {
    forget_another_persons_data(session, user).await?;
    session.cycle_id().await?;
    // A session that waited for single sign-on had a short life; signed in, the
    // idle timeout applies.
    session.set_expiry(Some(signed_in_expiry(state)));
    session.insert(USER_KEY, user.id.0).await?;
    session.insert(CREDENTIAL_KEY, credential_version).await?;
    session.insert(SEEN_KEY, now_millis()).await?;
    if let Some(agent) = user_agent {
        session.insert(USER_AGENT_KEY, agent).await?;
    }
    Ok(())
}

/// A session in which someone else was signed in (a shared browser, nobody
/// signed out) starts empty: what that person kept in it (a refused comment's
/// text, say) is theirs, not the next person's.
async fn forget_another_persons_data(
    session: &Session,
    user: &UserView,
) -> Result<(), tower_sessions::session::Error> {
    let signed_in: Option<i64> = session.get(USER_KEY).await?;
    if signed_in.is_some_and(|id| id != user.id.0) {
        session.clear().await;
    }
    Ok(())
}

/// The request's `User-Agent`, if it is text.
pub fn user_agent(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
}

/// The client's address, which sign-in throttling counts against and the audit
/// records: the TCP peer's, unless the peer is one of the trusted proxies; then
/// the right-most `X-Forwarded-For` entry that is not itself a trusted proxy
/// (each proxy appends the address it was called from, so entries left of
/// that one are the client's to write). An entry that is not an address stops
/// the walk at the nearest hop known. `None` when the server was not started
/// with connection info (tests calling the router directly).
pub fn client_address(
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    trusted_proxies: &[IpNet],
) -> Option<IpAddr> {
    let trusted = |address: &IpAddr| trusted_proxies.iter().any(|net| net.contains(address));
    let mut client = peer?.to_canonical();
    if !trusted(&client) {
        return Some(client);
    }
    // A proxy appends to the last header line or adds one: read the lines in
    // order, their entries from the right. A line that is not text is an entry
    // that is not an address.
    let entries: Vec<Option<&str>> = headers
        .get_all(FORWARDED_FOR)
        .iter()
        .flat_map(|line| match line.to_str() {
            Ok(text) => text.split(',').map(Some).collect::<Vec<_>>(),
            Err(_) => vec![None],
        })
        .collect();
    for entry in entries.into_iter().rev() {
        match entry.and_then(forwarded_address) {
            Some(address) if trusted(&address) => client = address,
            Some(address) => return Some(address),
            None => break,
        }
    }
    Some(client)
}

const FORWARDED_FOR: &str = "x-forwarded-for";

/// One `X-Forwarded-For` entry: an address, or an address with a port (some
/// proxies write `192.0.2.1:4711` or `[2001:db8::1]:4711`).
fn forwarded_address(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    let address = entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()?;
    Some(address.to_canonical())
}

/// The `next` target of a sign-in, if it is a path on this site: one leading `/`,
/// no `//` or backslash (browsers read `/\host` as another host), no control
/// characters — also after one round of percent-decoding, since some front ends
/// decode again.
pub fn safe_next(candidate: &str) -> Option<String> {
    fn local_path(path: &str) -> bool {
        let mut chars = path.chars();
        chars.next() == Some('/')
            && !matches!(chars.next(), Some('/' | '\\'))
            && !path.contains('\\')
            && !path.chars().any(char::is_control)
            // A form's refusal travels in these; a `next` carrying one would have
            // the sign-in's redirect show words the link chose.
            && !path.contains("__err")
            && !path.contains("__path")
    }
    let decoded = percent_decode(candidate)?;
    (local_path(candidate) && local_path(&decoded)).then(|| candidate.to_string())
}

/// `%xx` escapes decoded once; `None` for text that does not decode to UTF-8 or
/// has a broken escape (not a path we wrote).
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Pages that want the browser elsewhere (sign in first; `/` → `/catalog`) set a
/// `Location` but keep the page's status (200, or 401 from the failed data load),
/// which browsers ignore, or answer 302. A GET answered so becomes a real
/// `303 See Other` with no body.
pub async fn see_other(request: Request, next: Next) -> Response {
    let is_read = matches!(*request.method(), Method::GET | Method::HEAD);
    let response = next.run(request).await;
    let status = response.status();
    if is_read
        && response.headers().contains_key(header::LOCATION)
        && matches!(
            status,
            StatusCode::OK | StatusCode::UNAUTHORIZED | StatusCode::FOUND
        )
    {
        let (mut parts, _) = response.into_parts();
        parts.status = StatusCode::SEE_OTHER;
        parts.headers.remove(header::CONTENT_TYPE);
        parts.headers.remove(header::CONTENT_LENGTH);
        return Response::from_parts(parts, Body::empty());
    }
    response
}

/// Headers every answer carries: no page of the portal may be framed (a hidden
/// frame could lead a reviewer's click to "Approve"), no answer is sniffed into
/// another type, and the address of a page does not travel to other sites. A
/// page (HTML), and any answer to a call with a cookie or a token, is not kept
/// by the browser's cache either: on a shared computer, Back after signing out
/// would show the last person's pages. Headers a handler set itself (the
/// show-once pages, the static files) stay.
///
/// Behind TLS (`secure_cookies`, which an https:// public URL turns on) the
/// browser is also told to come back over https only (HSTS, a year): a first
/// visit typed as `http://` on a hostile network would otherwise be the one a
/// man in the middle keeps in the clear.
pub async fn security_headers(
    axum::extract::State(behind_tls): axum::extract::State<bool>,
    request: Request,
    next: Next,
) -> Response {
    // What a person's session or token reads is theirs: not for a shared
    // computer's disk cache either (a YAML download, API JSON read in a tab).
    let authenticated = request.headers().contains_key(header::COOKIE)
        || request.headers().contains_key(header::AUTHORIZATION);
    let mut response = next.run(request).await;
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let is_page = content_type.starts_with("text/html");
    // The portal's scripts, styles and pictures are the same for everyone (a
    // browser sends its cookie with them too) and should stay cached.
    let is_static = ["javascript", "wasm", "text/css", "image/", "font/"]
        .iter()
        .any(|kind| content_type.contains(kind));
    let authenticated = authenticated && !is_static;
    let headers = response.headers_mut();
    let defaults = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            header::CONTENT_SECURITY_POLICY,
            "frame-ancestors 'none'; object-src 'none'; base-uri 'self'",
        ),
        (header::REFERRER_POLICY, "same-origin"),
    ];
    for (name, value) in defaults {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    if behind_tls {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    if (is_page || authenticated) && !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// Refuses a state-changing request that a browser sent from another site (login
/// CSRF, a forged form post riding on the session cookie): its `Origin` (or, when
/// absent, its `Referer`) must be this site, judged by the configured public URL or
/// the `Host` header. Requests without either header come from non-browser clients,
/// which cannot ride on a victim's cookie, and pass.
pub async fn refuse_cross_origin(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if let Err(reason) = same_origin_check(&state, &request) {
        tracing::warn!(method = %request.method(), path = request.uri().path(), reason, "cross-origin request refused");
        if request.uri().path().starts_with(crate::api::PREFIX) {
            return crate::api::problem::Problem::new(
                StatusCode::FORBIDDEN,
                "cross-origin",
                format!(
                    "refused: {reason}; a browser page may call the API with its session only \
                     from this site (a script elsewhere sends a token instead)"
                ),
            )
            .into_response();
        }
        let quote = current_trace_id()
            .map(|id| format!(" If it persists, quote trace {id} to the platform team."))
            .unwrap_or_default();
        return (
            StatusCode::FORBIDDEN,
            format!("Refused: {reason}. Reload the page from this site and try again.{quote}\n"),
        )
            .into_response();
    }
    next.run(request).await
}

fn same_origin_check(state: &AppState, request: &Request) -> Result<(), String> {
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    ) {
        return Ok(());
    }
    let path = request.uri().path();
    let headers = request.headers();
    // A token-bearing API call without a cookie carries its own credential, which a
    // foreign page cannot make a browser send: the site it came from is no matter.
    let token_only = path.starts_with(crate::api::PREFIX)
        && headers.contains_key(header::AUTHORIZATION)
        && !headers.contains_key(header::COOKIE);
    let guarded = !token_only
        && (headers.contains_key(header::COOKIE)
            || path.starts_with("/api/")
            || path.starts_with("/auth/"));
    if !guarded {
        return Ok(());
    }
    let claimed = match headers.get(header::ORIGIN) {
        Some(origin) => origin.to_str().unwrap_or("null").to_string(),
        None => match headers.get(header::REFERER).and_then(|r| r.to_str().ok()) {
            Some(referer) => match openidconnect::url::Url::parse(referer) {
                Ok(url) => url.origin().ascii_serialization(),
                Err(_) => "null".to_string(),
            },
            None => return Ok(()),
        },
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    if origin_allowed(
        &claimed,
        state.settings.identity.public_origin.as_deref(),
        host,
        state.settings.secure_cookies,
    ) {
        Ok(())
    } else {
        Err(format!(
            "the request came from {claimed}, not from this site"
        ))
    }
}

/// Same origin: the configured public origin exactly when there is one, else the
/// request's own host (over https when cookies are Secure, as the site is then
/// served over TLS). With a public origin the `Host` header is not trusted: a
/// page on a name rebound to this server's address (DNS rebinding) sends its own
/// name as both `Origin` and `Host`.
pub fn origin_allowed(
    claimed: &str,
    public_origin: Option<&str>,
    host: Option<&str>,
    secure: bool,
) -> bool {
    if claimed == "null" {
        return false;
    }
    if let Some(public) = public_origin {
        return public.eq_ignore_ascii_case(claimed);
    }
    let Some(host) = host else { return false };
    let (scheme, authority) = match claimed.split_once("://") {
        Some(parts) => parts,
        None => return false,
    };
    let scheme_ok = match scheme {
        "https" => true,
        "http" => !secure,
        _ => false,
    };
    scheme_ok && authority.eq_ignore_ascii_case(host)
}

async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    match state.db.ping().await {
        Ok(()) => (
            StatusCode::OK,
            Json(serde_json::json!({ "status": "ok", "database": "ok" })),
        ),
        Err(error) => {
            tracing::error!(%error, "health check: database unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({ "status": "unavailable", "database": "unreachable" })),
            )
        }
    }
}

/// Workers whose claims have failed this long count as not running (a claim
/// that fails once, a connection cut, is retried within the second).
const CLAIMS_FAILING_UNREADY: std::time::Duration = std::time::Duration::from_secs(10);

/// Ready for traffic: the database answers, its schema is the one this build
/// expects, and the configured workers are running. A load balancer or Kubernetes
/// takes a replica out of rotation on 503; the body says which part failed.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    // Anyone may ask: the answer names the part that failed, the log the error.
    let database = match state.db.ping().await {
        Ok(()) => Ok("ok".to_string()),
        Err(error) => {
            tracing::warn!(%error, "readyz: the database does not answer");
            Err("unreachable (see the log)".to_string())
        }
    };
    let migrations = match state.db.migration_status().await {
        Ok(status) if status.missing.is_empty() && status.unknown.is_empty() => {
            Ok("current".to_string())
        }
        Ok(status) if !status.missing.is_empty() => {
            Err(format!("not applied: {:?}", status.missing))
        }
        Ok(status) => Err(format!(
            "the database has migrations this build does not know (a newer version migrated it): {:?}",
            status.unknown
        )),
        Err(error) => {
            tracing::warn!(%error, "readyz: the migrations cannot be read");
            Err("unreadable (see the log)".to_string())
        }
    };
    let wanted = state.settings.workers.workers as i64;
    let alive = state.metrics.workers_alive();
    let workers = match state.metrics.claims_failing() {
        _ if alive < wanted => Err(format!("{alive} of {wanted} running")),
        Some((failing, error)) if failing >= CLAIMS_FAILING_UNREADY => {
            tracing::warn!(%error, "readyz: the workers cannot claim jobs");
            Err(format!(
                "{alive} of {wanted} running, but they could not claim jobs for {} s (see the log)",
                failing.as_secs()
            ))
        }
        _ => Ok(format!("{alive} of {wanted} running")),
    };
    let ready = database.is_ok() && migrations.is_ok() && workers.is_ok();
    let show = |check: Result<String, String>| match check {
        Ok(text) => serde_json::json!({ "ok": true, "detail": text }),
        Err(text) => serde_json::json!({ "ok": false, "detail": text }),
    };
    let body = serde_json::json!({
        "status": if ready { "ready" } else { "not ready" },
        "database": show(database),
        "migrations": show(migrations),
        "workers": show(workers),
    });
    if !ready {
        tracing::warn!(%body, "readiness check failed");
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

/// The Prometheus scrape. With a metrics token set, only a caller presenting it
/// gets an answer; the comparison takes the same time however much matches.
async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(token) = &state.settings.metrics_token {
        let given = crate::api::bearer(&headers).unwrap_or_default();
        let matches: bool = given.as_bytes().ct_eq(token.expose().as_bytes()).into();
        if !matches {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "the metrics need the token from --metrics-token\n",
            )
                .into_response();
        }
    }
    match state.metrics.render(&state.db).await {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(error) => {
            tracing::error!(%error, "metrics could not be read");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the metrics could not be read from the database\n",
            )
                .into_response()
        }
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/requests/{id}/events", get(portal_progress))
        .route(
            "/assets/{id}/catalog-info.yaml",
            get(catalog_info::download),
        )
        .route(
            "/requests/{id}/secrets/{name}/reveal",
            axum::routing::post(reveal::reveal),
        )
        .route(
            "/account/tokens/new",
            axum::routing::post(new_token::create),
        )
        .route(
            "/account/chat-link/new",
            axum::routing::post(chat_link::create),
        )
        .route(
            "/requests/new/{type_name}/submit",
            axum::routing::post(request_form_post::submit_new),
        )
        .route(
            "/requests/{id}/edit/submit",
            axum::routing::post(request_form_post::submit_revision),
        )
        .route(
            "/assets/{id}/actions/{action}/submit",
            axum::routing::post(request_form_post::submit_action),
        )
        // These forms hold a name and a few choices; their bodies are read
        // before the session is (axum's default would let 2 MiB through).
        .layer(axum::extract::DefaultBodyLimit::max(FORM_BODY_BYTES))
}

/// The largest body the hand-written forms above take.
pub const FORM_BODY_BYTES: usize = 16 * 1024;

/// A session that could not be read or written: the database out of reach is
/// said as such (503, try again); anything else is a fault.
pub fn session_failed(error: tower_sessions::session::Error) -> ServiceError {
    use tower_sessions::session::Error;
    use tower_sessions::session_store::Error as StoreError;
    if let Error::Store(StoreError::Backend(message)) = &error
        && let Some(cause) = message.strip_prefix(crate::storage::sessions::UNAVAILABLE_MARK)
    {
        return ServiceError::Unavailable(
            crate::services::DATABASE_UNAVAILABLE.into(),
            cause.to_string(),
        );
    }
    ServiceError::Internal(format!("session: {error}"))
}

/// The signed-in portal user behind a session, as a caller of the services.
pub(crate) async fn session_caller(
    state: &AppState,
    session: &Session,
    meta: Option<CallMeta>,
) -> Result<Caller, ServiceError> {
    let user_id = session
        .get::<i64>(USER_KEY)
        .await
        .map_err(session_failed)?
        .ok_or(ServiceError::Unauthenticated)?;
    let user = crate::services::auth::user(state, slipway_core::ids::UserId(user_id))
        .await?
        .ok_or(ServiceError::Unauthenticated)?;
    let mut caller = Caller::new(user, Channel::Portal, meta.unwrap_or_default());
    caller.session_key = session
        .id()
        .map(|id| crate::storage::sessions::stored_key(&id.to_string()));
    Ok(caller)
}

/// Where a page starts following a request's events (see [`events::resume_point`]).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FollowQuery {
    pub after: Option<i64>,
}

/// A request's live progress for the signed-in portal user: the same stream and
/// the same rule as the REST API's, the caller taken from the session.
async fn portal_progress(
    State(state): State<AppState>,
    session: Session,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(query): ApiQuery<FollowQuery>,
    headers: HeaderMap,
    meta: Option<axum::Extension<CallMeta>>,
) -> Response {
    let meta = meta.map(|m| m.0).unwrap_or_default();
    let trace_id = meta.trace_id.clone();
    let answer = async {
        let caller = session_caller(&state, &session, Some(meta)).await?;
        let after = events::resume_point(&headers, query.after)?;
        events::progress_stream(state, caller, slipway_core::ids::RequestId(id), after).await
    };
    let problem = match answer.await {
        Ok(stream) => return stream.into_response(),
        // A browser follows with its session cookie: the API's advice (send
        // a token) would be wrong here.
        Err(ServiceError::Unauthenticated) => Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "sign in to follow this request",
        ),
        Err(error) => Problem::from(error),
    };
    problem.with_trace(trace_id).into_response()
}

pub const TRACE_HEADER: &str = "x-trace-id";

/// A caller's own request id is kept when it is a plain token; anything else could
/// smuggle text into logs and the audit log, so it is replaced.
fn usable_trace_id(given: Option<&HeaderValue>) -> Option<String> {
    let text = given?.to_str().ok()?;
    let plain = !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    plain.then(|| text.to_string())
}

tokio::task_local! {
    /// The trace id of the HTTP call being answered.
    static CALL_TRACE: String;
}

/// The trace id of the HTTP call this code answers, if it answers one.
pub fn current_trace_id() -> Option<String> {
    CALL_TRACE.try_with(Clone::clone).ok()
}

/// Gives every HTTP call a trace id (in its log lines, in the `x-trace-id` answer
/// header, and in the audit events it writes) and notes the client's address
/// (see [`client_address`]).
pub async fn call_meta(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    // A trusted proxy's id ties its log to ours; anyone else's would let a client
    // file its calls under another call's trace in the audit log.
    let trusted_proxies = &state.settings.identity.trusted_proxies;
    let from_proxy = peer
        .map(|peer| peer.to_canonical())
        .is_some_and(|peer| trusted_proxies.iter().any(|net| net.contains(&peer)));
    let trace_id = from_proxy
        .then(|| usable_trace_id(request.headers().get("x-request-id")))
        .flatten()
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let client_addr = client_address(
        peer,
        request.headers(),
        &state.settings.identity.trusted_proxies,
    )
    .map(|address| address.to_string());
    request.extensions_mut().insert(CallMeta {
        trace_id: Some(trace_id.clone()),
        client_addr,
        channel_user: None,
    });
    let span = tracing::info_span!("call", trace_id = %trace_id);
    let mut response = CALL_TRACE
        .scope(trace_id.clone(), next.run(request))
        .instrument(span)
        .await;
    if let Ok(value) = HeaderValue::from_str(&trace_id) {
        response.headers_mut().insert(TRACE_HEADER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// HSTS only where the portal is reached over TLS: sent over plain http
    /// (a demo on a laptop) it would lock the browser out of that host.
    #[tokio::test]
    async fn https_only_is_asked_behind_tls_alone() -> Result<(), axum::Error> {
        use tower::ServiceExt;
        for behind_tls in [false, true] {
            let app = axum::Router::new()
                .route("/", axum::routing::get(|| async { "ok" }))
                .layer(axum::middleware::from_fn_with_state(
                    behind_tls,
                    security_headers,
                ));
            let request = Request::builder()
                .uri("/")
                .body(axum::body::Body::empty())
                .map_err(axum::Error::new)?;
            let response = app.oneshot(request).await.map_err(axum::Error::new)?;
            let hsts = response.headers().get(header::STRICT_TRANSPORT_SECURITY);
            assert_eq!(
                hsts.and_then(|v| v.to_str().ok()),
                behind_tls.then_some("max-age=31536000")
            );
            assert_eq!(
                response.headers().get(header::X_FRAME_OPTIONS),
                Some(&HeaderValue::from_static("DENY"))
            );
        }
        Ok(())
    }

    fn person(id: i64) -> UserView {
        UserView {
            id: slipway_core::ids::UserId(id),
            username: format!("user{id}"),
            display_name: String::new(),
            roles: Vec::new(),
            teams: Vec::new(),
        }
    }

    #[tokio::test]
    async fn another_person_signing_in_finds_nothing_of_the_last_one()
    -> Result<(), tower_sessions::session::Error> {
        let store = std::sync::Arc::new(tower_sessions::MemoryStore::default());
        let session = Session::new(None, store, None);
        session.insert(USER_KEY, 1_i64).await?;
        session
            .insert("draft:review:5", "a refused comment")
            .await?;
        forget_another_persons_data(&session, &person(1)).await?;
        let kept: Option<String> = session.get("draft:review:5").await?;
        assert!(kept.is_some(), "the same person keeps what they kept");
        forget_another_persons_data(&session, &person(2)).await?;
        let kept: Option<String> = session.get("draft:review:5").await?;
        assert_eq!(kept, None);
        Ok(())
    }

    fn forwarded(entries: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for entry in entries {
            if let Ok(value) = HeaderValue::from_str(entry) {
                headers.append(FORWARDED_FOR, value);
            }
        }
        headers
    }

    fn address(text: &str) -> Option<IpAddr> {
        text.parse().ok()
    }

    #[test]
    fn behind_a_trusted_proxy_the_client_is_the_last_untrusted_hop() {
        let proxies: Vec<IpNet> = ["10.0.0.0/8", "2001:db8:ff::/48"]
            .iter()
            .filter_map(|n| n.parse().ok())
            .collect();
        let through_proxy =
            |entries: &[&str]| client_address(address("10.0.0.5"), &forwarded(entries), &proxies);
        assert_eq!(through_proxy(&["198.51.100.7"]), address("198.51.100.7"));
        // Whatever the client wrote to the left is not believed.
        assert_eq!(
            through_proxy(&["1.2.3.4, 198.51.100.7"]),
            address("198.51.100.7")
        );
        // A chain of trusted proxies is walked through, over several lines.
        assert_eq!(
            through_proxy(&["6.6.6.6, 198.51.100.7", "10.1.1.1, 2001:db8:ff::3"]),
            address("198.51.100.7")
        );
        assert_eq!(
            through_proxy(&["[2001:db8:1::9]:4711"]),
            address("2001:db8:1::9")
        );
        assert_eq!(
            through_proxy(&["198.51.100.9:4711"]),
            address("198.51.100.9")
        );
        // Garbage stops the walk at the nearest hop known; no header, the proxy.
        assert_eq!(
            through_proxy(&["198.51.100.7, unknown, 10.2.2.2"]),
            address("10.2.2.2")
        );
        assert_eq!(through_proxy(&[]), address("10.0.0.5"));
        // A proxy reached over IPv6 with a mapped IPv4 address is still the proxy.
        assert_eq!(
            client_address(
                address("::ffff:10.0.0.5"),
                &forwarded(&["198.51.100.7"]),
                &proxies
            ),
            address("198.51.100.7")
        );
    }

    #[test]
    fn from_any_other_peer_x_forwarded_for_is_ignored() {
        let proxies: Vec<IpNet> = "10.0.0.0/8".parse().into_iter().collect();
        let headers = forwarded(&["10.0.0.1, 198.51.100.7"]);
        assert_eq!(
            client_address(address("203.0.113.20"), &headers, &proxies),
            address("203.0.113.20")
        );
        assert_eq!(
            client_address(address("10.0.0.5"), &headers, &[]),
            address("10.0.0.5"),
            "no trusted proxies, no header believed"
        );
        assert_eq!(client_address(None, &headers, &proxies), None);
    }

    #[test]
    fn only_plain_request_ids_become_trace_ids() {
        let ok = HeaderValue::from_static("abc-123_X");
        assert_eq!(usable_trace_id(Some(&ok)), Some("abc-123_X".into()));
        for bad in ["", "a b", "a\nb", "<script>", &"x".repeat(65)] {
            let value = HeaderValue::from_str(bad).ok();
            assert_eq!(usable_trace_id(value.as_ref()), None, "{bad:?}");
        }
    }

    #[test]
    fn local_paths_survive() {
        for path in [
            "/",
            "/catalog",
            "/requests/12?tab=x",
            "/a%20b",
            "/login?next=%2Fcatalog",
        ] {
            assert_eq!(safe_next(path).as_deref(), Some(path), "{path}");
        }
    }

    #[test]
    fn anything_that_leaves_the_site_is_refused() {
        for path in [
            "/\\evil.example",
            "\\\\evil.example",
            "//evil",
            "///evil",
            "/%5Cevil",
            "/%5cevil",
            "/%2Fevil",
            "https://evil",
            "http:/evil",
            "javascript:alert(1)",
            "evil.example",
            "",
            "/\tevil",
            "/\n/evil",
            "/%09/evil",
            "/%0a/evil",
            "/ok\r\nSet-Cookie: x=y",
            "/%zz",
            "/catalog?__path=/api/login&__err=eyJ4Ijoi",
            "/catalog?%5F%5Ferr=eyJ4Ijoi",
        ] {
            assert_eq!(safe_next(path), None, "{path:?}");
        }
    }

    #[test]
    fn secure_cookies_take_the_host_prefix() {
        assert_eq!(session_cookie_name(true), "__Host-slipway_session");
        assert_eq!(session_cookie_name(false), "slipway_session");
    }

    #[test]
    fn origins_are_judged_by_host_or_public_url() {
        let host = Some("portal.example:3000");
        assert!(origin_allowed(
            "http://portal.example:3000",
            None,
            host,
            false
        ));
        assert!(origin_allowed(
            "https://portal.example:3000",
            None,
            host,
            true
        ));
        assert!(!origin_allowed(
            "http://portal.example:3000",
            None,
            host,
            true
        ));
        assert!(!origin_allowed("http://evil.example", None, host, false));
        assert!(!origin_allowed("null", None, host, false));
        assert!(!origin_allowed("http://portal.example", None, host, false));
        assert!(origin_allowed(
            "https://slipway.example",
            Some("https://slipway.example"),
            Some("10.0.0.5:3000"),
            true
        ));
        // A rebound name sends itself as Origin and Host alike.
        assert!(!origin_allowed(
            "http://evil.example:3000",
            Some("https://slipway.example"),
            Some("evil.example:3000"),
            false
        ));
    }
}
