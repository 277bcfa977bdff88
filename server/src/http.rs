//! HTTP plumbing shared by every adapter: sessions, health, tracing.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};

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
