//! The audit log: filtered pages, and an export as JSON Lines.

use axum::Json;
use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use slipway_core::listing::Day;
use slipway_core::views::{AuditEntry, AuditFilter};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiQuery, problem};
use super::paging::{Page, PageParams};
use super::problem::{ApiError, Problem};
use crate::services::{Caller, audit};
use crate::state::AppState;
use crate::storage::Window;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_events))
        .routes(routes!(export_events))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// A user name, or `worker`, or `policy:<name>`.
    pub actor: Option<String>,
    /// e.g. `request.approve`
    pub action: Option<String>,
    /// `kind:id` (e.g. `request:12`) or just the kind.
    pub target: Option<String>,
    /// Written on or after this day (UTC), `YYYY-MM-DD`.
    #[param(value_type = Option<String>, format = Date)]
    pub created_from: Option<Day>,
    /// Written on or before this day (UTC), `YYYY-MM-DD`.
    #[param(value_type = Option<String>, format = Date)]
    pub created_to: Option<Day>,
    pub cursor: Option<String>,
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
}

impl AuditQuery {
    fn filter(&self) -> AuditFilter {
        AuditFilter {
            actor: self.actor.clone(),
            action: self.action.clone(),
            target: self.target.clone(),
            created_from: self.created_from,
            created_to: self.created_to,
        }
    }
}

/// The export takes the list's filters but no paging: it streams every match.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditExportQuery {
    /// A user name, or `worker`, or `policy:<name>`.
    pub actor: Option<String>,
    /// e.g. `request.approve`
    pub action: Option<String>,
    /// `kind:id` (e.g. `request:12`) or just the kind.
    pub target: Option<String>,
    /// Written on or after this day (UTC), `YYYY-MM-DD`.
    #[param(value_type = Option<String>, format = Date)]
    pub created_from: Option<Day>,
    /// Written on or before this day (UTC), `YYYY-MM-DD`.
    #[param(value_type = Option<String>, format = Date)]
    pub created_to: Option<Day>,
}

impl AuditExportQuery {
    fn filter(&self) -> AuditFilter {
        AuditFilter {
            actor: self.actor.clone(),
            action: self.action.clone(),
            target: self.target.clone(),
            created_from: self.created_from,
            created_to: self.created_to,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditEntry>,
    pub next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/audit", tag = "audit",
    params(AuditQuery),
    responses(
        (status = 200, description = "Events, newest first", body = AuditPage),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A filter breaks its rule (control characters, too long)", body = Problem, content_type = "application/problem+json"),
    ))]
/// List audit events, newest first.
async fn list_events(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    let window = PageParams {
        cursor: query.cursor.clone(),
        limit: query.limit,
    }
    .window()?;
    let page: Page<AuditEntry> = audit::list(&state, &caller, &query.filter(), window)
        .await
        .map_err(|e| problem(&caller, e))?
        .into();
    Ok(Json(AuditPage {
        items: page.items,
        next_cursor: page.next_cursor,
    }))
}

const EXPORT_BATCH: i64 = 500;

#[utoipa::path(get, path = "/api/v1/audit/export", tag = "audit",
    params(AuditExportQuery),
    responses(
        (status = 200, description = "Every matching event, newest first, one JSON object per line", content_type = "application/x-ndjson", body = String),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A filter breaks its rule (control characters, too long)", body = Problem, content_type = "application/problem+json"),
    ))]
/// Export every matching audit event as JSON Lines.
async fn export_events(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(query): ApiQuery<AuditExportQuery>,
) -> Result<Response, ApiError> {
    let filter = query.filter();
    // The first batch is read before answering, so a refusal is a proper 403.
    let first = audit::list(&state, &caller, &filter, Window::first(EXPORT_BATCH))
        .await
        .map_err(|e| problem(&caller, e))?;
    let stream = futures_util::stream::unfold(Some(first), move |page| {
        let (state, caller, filter) = (state.clone(), caller.clone(), filter.clone());
        async move {
            let page = page?;
            let lines = to_lines(&page.items);
            let next = match page.next_before {
                Some(before) => {
                    let window = Window {
                        before: Some(before),
                        limit: EXPORT_BATCH,
                    };
                    match audit::list(&state, &caller, &filter, window).await {
                        Ok(next) => Some(next),
                        Err(error) => {
                            tracing::error!(%error, "audit export stopped early");
                            return Some((Err(std::io::Error::other(error.to_string())), None));
                        }
                    }
                }
                None => None,
            };
            Some((Ok::<_, std::io::Error>(lines), next))
        }
    });
    let mut response = Body::from_stream(stream).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(response)
}

fn to_lines(events: &[AuditEntry]) -> String {
    let mut out = String::new();
    for event in events {
        if let Ok(line) = serde_json::to_string(event) {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}
