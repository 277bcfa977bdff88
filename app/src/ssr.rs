//! Server-only glue: the portal's router, and the helpers server functions use to
//! reach the application state and the signed-in user.

use axum::Router;
use leptos::prelude::*;
use leptos_axum::{LeptosRoutes, ResponseOptions, generate_route_list};
use slipway_core::ids::UserId;
use slipway_core::views::UserView;
use slipway_server::AppState;
use slipway_server::services::{self, CallMeta, Caller, Channel, ServiceError};
use tower_sessions::Session;

use crate::app::{App, shell};
use crate::error::AppError;

pub const SESSION_USER: &str = slipway_server::storage::sessions::USER_KEY;

/// Mounts the pages and server functions, with the application state in context.
pub fn portal_router(state: AppState) -> Router {
    let options = LeptosOptions::builder()
        .output_name("slipway")
        .site_root(state.settings.site_root.display().to_string())
        .site_pkg_dir("pkg")
        .site_addr(state.settings.addr)
        .build();
    let routes = generate_route_list(App);
    let context_state = state.clone();
    let provide = move || provide_context(context_state.clone());
    Router::new()
        .leptos_routes_with_context(&options, routes, provide.clone(), {
            let options = options.clone();
            move || shell(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler_with_context(
            provide, shell,
        ))
        .with_state(options)
        // The API's limit: server functions read their body into arguments
        // before they know who calls (axum's default would let 2 MiB through).
        .layer(axum::extract::DefaultBodyLimit::max(
            slipway_server::api::MAX_BODY_BYTES,
        ))
        .layer(axum::middleware::from_fn(
            unreadable_calls_are_client_errors,
        ))
        .layer(axum::middleware::from_fn(render_to_the_end))
        .layer(axum::middleware::from_fn(no_file_has_such_a_name))
}

/// The longest file name the site's files may have (the file system's limit).
const LONGEST_FILE_NAME: usize = 255;

/// A path with a part longer than any file name names no page and no file: it
/// is answered as missing before the static files are looked in, where the file
/// system's "file name too long" would be logged as a server error at every
/// call anyone cares to make.
async fn no_file_has_such_a_name(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let too_long = request
        .uri()
        .path()
        .split('/')
        .any(|part| part.len() > LONGEST_FILE_NAME);
    if too_long {
        return slipway_server::http::page_path::not_found();
    }
    next.run(request).await
}

/// A page's content security policy: only scripts that carry this render's nonce
/// run (Leptos gives it to its hydration scripts, and the modules they import
/// inherit it), with the WebAssembly they compile; everything else comes from
/// this site alone. A script that markup injection slipped into a page would
/// not run. Inline style attributes stay allowed: they cannot run code.
pub fn content_security_policy() {
    let (Some(nonce), Some(response)) =
        (leptos::nonce::use_nonce(), use_context::<ResponseOptions>())
    else {
        return;
    };
    let policy = format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'strict-dynamic' 'wasm-unsafe-eval'; \
         style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
         frame-ancestors 'none'; object-src 'none'; base-uri 'self'; form-action 'self'"
    );
    if let Ok(value) = axum::http::HeaderValue::from_str(&policy) {
        response.insert_header(axum::http::header::CONTENT_SECURITY_POLICY, value);
    }
}

/// The largest page or server-function answer rendered to its end before sending.
const RENDERED_BODY_LIMIT: usize = 64 << 20;

/// Every page and server function runs to its end in a task of its own, whatever
/// the client does. Leptos 0.8's reactive graph (reactive_graph 0.2.16) can
/// deadlock a runtime thread when a page's owner tree is dropped while one of its
/// suspended parts still runs on another thread: `with_context` holds a read lock
/// on an owner while the last reference to an ancestor drops there, and the
/// ancestor's cleanup waits for a write lock on that same owner forever. A client
/// that hangs up mid-render dropped the response future and did exactly that (a
/// benchmark's connections closing left a thread blocked and the server unable to
/// shut down). Pages render with `SsrMode::Async`, so nothing is sent before the
/// end anyway; static files under `/pkg/` are served directly.
async fn render_to_the_end(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if request.uri().path().starts_with("/pkg/") {
        return next.run(request).await;
    }
    let rendering = tokio::spawn(async move {
        let (parts, body) = next.run(request).await.into_parts();
        match axum::body::to_bytes(body, RENDERED_BODY_LIMIT).await {
            Ok(bytes) => Ok(axum::response::Response::from_parts(
                parts,
                axum::body::Body::from(bytes),
            )),
            Err(error) => Err(error.to_string()),
        }
    });
    match rendering.await {
        Ok(Ok(response)) => response,
        Ok(Err(message)) => {
            tracing::error!(%message, "a page could not be rendered to its end");
            axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
        Err(error) => {
            tracing::error!(%error, "a page's rendering task failed");
            axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// The largest server-function answer body this layer reads to classify an error.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// The server-function machinery answers 500 when it cannot read a call's arguments
/// (malformed JSON, a missing field, a value of the wrong kind, a body over the limit).
/// That is the caller's mistake, never the server's: it becomes 400 (413 for size).
async fn unreadable_calls_are_client_errors(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::StatusCode;
    let server_fn =
        request.uri().path().starts_with("/api/") && !request.uri().path().starts_with("/api/v1/");
    let response = next.run(request).await;
    if !server_fn || response.status() != StatusCode::INTERNAL_SERVER_ERROR {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, ERROR_BODY_LIMIT)
        .await
        .unwrap_or_default();
    if let Ok(AppError::Transport(message)) = serde_json::from_slice::<AppError>(&bytes) {
        parts.status =
            if message == crate::error::FORM_TOO_LARGE || message.contains("length limit") {
                StatusCode::PAYLOAD_TOO_LARGE
            } else {
                StatusCode::BAD_REQUEST
            };
    }
    axum::response::Response::from_parts(parts, axum::body::Body::from(bytes))
}

fn status_for(error: &ServiceError) -> u16 {
    match error {
        ServiceError::Unauthenticated => 401,
        ServiceError::Forbidden(_) => 403,
        ServiceError::NotFound(_) => 404,
        ServiceError::Invalid(_) | ServiceError::PrecheckFailed(_) => 422,
        ServiceError::Conflict(_) => 409,
        ServiceError::TooMany(..) => 429,
        ServiceError::Unavailable(..) => 503,
        ServiceError::Internal(_) => 500,
    }
}

/// Maps a service error to what the user sees, once. Internal errors are logged here
/// with a reference the user can quote; their text never leaves the server.
pub fn user_error(error: ServiceError) -> AppError {
    if let Some(response) = use_context::<ResponseOptions>()
        && !is_plain_form_post()
        && let Ok(status) = axum::http::StatusCode::from_u16(status_for(&error))
    {
        response.set_status(status);
    }
    match error {
        ServiceError::Unauthenticated => AppError::Unauthenticated,
        ServiceError::Forbidden(m) => AppError::Forbidden(m),
        ServiceError::NotFound(m) => AppError::NotFound(m),
        ServiceError::Invalid(fields) => AppError::Invalid(fields),
        ServiceError::PrecheckFailed(report) => AppError::PrecheckFailed(report),
        ServiceError::Conflict(m)
        | ServiceError::TooMany(m, _)
        | ServiceError::Unavailable(m, _) => AppError::Conflict(m),
        ServiceError::Internal(message) => {
            let reference = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
            tracing::error!(reference, %message, "internal error");
            AppError::Internal(reference)
        }
    }
}

/// A form posted without script: the answer must stay the redirect back to the page,
/// which then shows the error (an error status would stop the browser there).
fn is_plain_form_post() -> bool {
    use_context::<axum::http::request::Parts>().is_some_and(|parts| {
        parts.uri.path().starts_with("/api/")
            && parts
                .headers
                .get(axum::http::header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains("text/html"))
    })
}

pub fn app_state() -> Result<AppState, AppError> {
    use_context::<AppState>().ok_or_else(|| {
        user_error(ServiceError::Internal(
            "application state missing from context".into(),
        ))
    })
}

pub async fn session() -> Result<Session, AppError> {
    leptos_axum::extract::<Session>()
        .await
        .map_err(|e| user_error(ServiceError::Internal(format!("session: {e}"))))
}

/// The most of a refused text box kept for the page the browser returns to.
const MAX_DRAFT_CHARS: usize = 2 * slipway_core::validate::MAX_NOTE_CHARS;

/// Whether this call may count as a reviewer having read the request it shows:
/// not when another site had the browser load the page (a link or a pop-up of
/// theirs; the browser says so in `Sec-Fetch-Site`). A browser too old to say,
/// and a call from the portal's own pages, count.
pub async fn reviewer_read() -> services::detail::ReviewerRead {
    use services::detail::ReviewerRead;
    let Ok(headers) = leptos_axum::extract::<axum::http::HeaderMap>().await else {
        return ReviewerRead::Counts;
    };
    match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        Some("cross-site" | "same-site") => ReviewerRead::DoesNotCount,
        _ => ReviewerRead::Counts,
    }
}

/// The session key of the one kept draft.
const DRAFT: &str = "draft";

/// Keeps what a refused form had in a text box, for the page the browser is sent
/// back to: a form posted without script loses its input in that redirect, and
/// a reviewer's long comment must not be lost to a refusal. Taken once. One
/// draft is kept, the last refused: a draft per key would let one person grow
/// their session without end (a refused call for every request number), and
/// every later call reads and writes the session whole.
pub async fn keep_draft(key: &str, text: &str) {
    let kept: String = text.chars().take(MAX_DRAFT_CHARS).collect();
    if let Ok(session) = session().await
        && let Err(error) = session.insert(DRAFT, (key, kept)).await
    {
        tracing::warn!(%error, "a refused form's text could not be kept");
    }
}

/// The text [`keep_draft`] kept under `key`, removed from the session. Read
/// first: a removal marks the session changed, and a page view without a draft
/// for it must not write the session back.
pub async fn take_draft(key: &str) -> Option<String> {
    let session = session().await.ok()?;
    let (kept_for, _) = session
        .get::<(String, String)>(DRAFT)
        .await
        .ok()
        .flatten()?;
    if kept_for != key {
        return None;
    }
    let (_, text) = session
        .remove::<(String, String)>(DRAFT)
        .await
        .ok()
        .flatten()?;
    Some(text)
}

/// The signed-in user, if any; a session whose user no longer exists counts as none.
pub async fn optional_user(state: &AppState) -> Result<Option<UserView>, AppError> {
    let session = session().await?;
    let id: Option<i64> = session
        .get(SESSION_USER)
        .await
        .map_err(|e| user_error(slipway_server::http::session_failed(e)))?;
    let Some(id) = id else { return Ok(None) };
    services::auth::user(state, UserId(id))
        .await
        .map_err(user_error)
}

/// What the HTTP layer noted about this call: its trace id and the client's address.
pub fn call_meta() -> CallMeta {
    use_context::<axum::http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<CallMeta>().cloned())
        .unwrap_or_default()
}

/// The application state and the signed-in user calling through the portal, or
/// `Unauthenticated`.
pub async fn signed_in() -> Result<(AppState, Caller), AppError> {
    let state = app_state()?;
    let user = optional_user(&state)
        .await?
        .ok_or_else(|| user_error(ServiceError::Unauthenticated))?;
    Ok((state, Caller::new(user, Channel::Portal, call_meta())))
}
