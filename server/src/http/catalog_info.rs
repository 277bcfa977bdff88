//! Assets as Backstage `catalog-info.yaml`: the portal's download (the session's
//! user), and the pieces the REST API's export shares with it.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use slipway_core::ids::AssetId;
use tower_sessions::Session;

use super::page_path::PagePath;
use super::session_caller;
use crate::services::{CallMeta, ServiceError, assets};
use crate::state::AppState;

pub const YAML: &str = "application/yaml";

/// Where the exported links point: the configured public URL, else the host this
/// call was made to (over https when cookies are Secure, so the site is on TLS).
pub fn slipway_url(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(origin) = &state.settings.identity.public_origin {
        return origin.clone();
    }
    let scheme = if state.settings.secure_cookies {
        "https"
    } else {
        "http"
    };
    // The Host header is the caller's own word; only a plain host[:port] is echoed
    // into the links, so nothing else can be smuggled into the document.
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        })
        .unwrap_or("localhost");
    format!("{scheme}://{host}")
}

/// A YAML answer; `attachment` makes a browser save it as `catalog-info.yaml`.
pub fn yaml_answer(body: impl Into<axum::body::Body>, attachment: bool) -> Response {
    let mut response = body.into().into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(YAML));
    if attachment {
        headers.insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_static("attachment; filename=\"catalog-info.yaml\""),
        );
    }
    response
}

/// `GET /assets/{id}/catalog-info.yaml`, the download link of the asset page. A
/// visitor without a session is sent to sign in and brought back.
pub async fn download(
    State(state): State<AppState>,
    session: Session,
    PagePath(id): PagePath<i64>,
    headers: HeaderMap,
    meta: Option<axum::Extension<CallMeta>>,
) -> Response {
    let meta = meta.map(|m| m.0).unwrap_or_default();
    let trace_id = meta.trace_id.clone();
    let answer = async {
        let caller = session_caller(&state, &session, Some(meta)).await?;
        let url = slipway_url(&state, &headers);
        assets::backstage_entity(&state, &caller, AssetId(id), &url).await
    };
    match answer.await {
        Ok(yaml) => yaml_answer(yaml, true),
        Err(ServiceError::Unauthenticated) => {
            let next = format!("%2Fassets%2F{id}%2Fcatalog-info.yaml");
            Redirect::to(&format!("/login?next={next}")).into_response()
        }
        Err(error) => crate::api::problem::Problem::from(error)
            .with_trace(trace_id)
            .into_response(),
    }
}
