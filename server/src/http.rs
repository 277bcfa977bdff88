//! HTTP plumbing shared by every adapter: sessions, health, tracing.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};
use tracing::Instrument;

use crate::services::CallMeta;
use crate::state::AppState;
use crate::storage::sessions::DbSessionStore;

/// Sessions in the database: HttpOnly, SameSite=Lax, Secure behind TLS, ending after
/// eight idle hours.
pub fn session_layer(state: &AppState) -> SessionManagerLayer<DbSessionStore> {
    SessionManagerLayer::new(DbSessionStore::new(&state.db))
        .with_name("slipway_session")
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(state.settings.secure_cookies)
        .with_expiry(Expiry::OnInactivity(
            tower_sessions::cookie::time::Duration::hours(8),
        ))
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

pub fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz))
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

/// Gives every HTTP call a trace id (in its log lines, in the `x-trace-id` answer
/// header, and in the audit events it writes) and notes the client's address.
pub async fn call_meta(mut request: Request, next: Next) -> Response {
    let trace_id = usable_trace_id(request.headers().get("x-request-id"))
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let client_addr = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_string());
    request.extensions_mut().insert(CallMeta {
        trace_id: Some(trace_id.clone()),
        client_addr,
    });
    let span = tracing::info_span!("call", trace_id = %trace_id);
    let mut response = next.run(request).instrument(span).await;
    if let Ok(value) = HeaderValue::from_str(&trace_id) {
        response.headers_mut().insert(TRACE_HEADER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_request_ids_become_trace_ids() {
        let ok = HeaderValue::from_static("abc-123_X");
        assert_eq!(usable_trace_id(Some(&ok)), Some("abc-123_X".into()));
        for bad in ["", "a b", "a\nb", "<script>", &"x".repeat(65)] {
            let value = HeaderValue::from_str(bad).ok();
            assert_eq!(usable_trace_id(value.as_ref()), None, "{bad:?}");
        }
    }
}
