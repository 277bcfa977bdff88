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
use crate::services::{Caller, ServiceError, audit, tokens};
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
        (status = 422, description = "A query parameter is unknown, given twice or of the wrong kind, a filter breaks its rule (control characters, too long), or the limit or cursor is out of range; `errors` names it", body = Problem, content_type = "application/problem+json"),
    ))]
/// List audit events, newest first.
async fn list_events(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    query: Result<ApiQuery<AuditQuery>, ApiError>,
) -> Result<Json<AuditPage>, ApiError> {
    audit::may_read(&caller).map_err(|e| problem(&caller, e))?;
    let ApiQuery(query) = query?;
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
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many exports being sent: two per person, six per server (the Backstage feed counts too)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A query parameter is unknown, given twice or of the wrong kind, a filter breaks its rule (control characters, too long), or the limit or cursor is out of range; `errors` names it", body = Problem, content_type = "application/problem+json"),
    ))]
/// Export every matching audit event as JSON Lines.
async fn export_events(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    query: Result<ApiQuery<AuditExportQuery>, ApiError>,
) -> Result<Response, ApiError> {
    audit::may_read(&caller).map_err(|e| problem(&caller, e))?;
    let ApiQuery(query) = query?;
    let filter = query.filter();
    // Held until the last batch is sent (or the client goes away).
    let slot = state
        .downloads
        .take(&caller.username)
        .map_err(|e| problem(&caller, e))?;
    // The first batch is read before answering, so a refusal is a proper 403.
    let first = audit::list(&state, &caller, &filter, Window::first(EXPORT_BATCH))
        .await
        .map_err(|e| problem(&caller, e))?;
    // Each later batch is read only when the client takes it, and only after
    // the caller is found standing again: a token revoked, an account disabled
    // or an auditor role taken away while the export runs stops it at the next
    // batch (the answer is cut off: the client sees an incomplete body, not a
    // short log that looks whole).
    let stream = futures_util::stream::unfold(Some(Batch::Read(first)), move |batch| {
        let (state, caller, filter) = (state.clone(), caller.clone(), filter.clone());
        let _held = &slot;
        async move {
            let page = match batch? {
                Batch::Read(page) => page,
                Batch::Before(before) => {
                    let window = Window {
                        before: Some(before),
                        limit: EXPORT_BATCH,
                    };
                    let next = async {
                        let caller = tokens::still_standing(&state, &caller).await?;
                        audit::list(&state, &caller, &filter, window).await
                    };
                    match next.await {
                        Ok(page) => page,
                        Err(error) => {
                            if matches!(
                                error,
                                ServiceError::Unauthenticated | ServiceError::Forbidden(_)
                            ) {
                                tracing::info!(%error, user = %caller.username, "audit export cut off: the caller no longer stands");
                            } else {
                                tracing::error!(%error, "audit export stopped early");
                            }
                            return Some((Err(std::io::Error::other(error.to_string())), None));
                        }
                    }
                }
            };
            let lines = to_lines(&page.items);
            Some((
                Ok::<_, std::io::Error>(lines),
                page.next_before.map(Batch::Before),
            ))
        }
    });
    let mut response =
        Body::from_stream(super::stalled::ending_when_stalled(stream)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(response)
}

/// Where an export stands: a batch read and not yet sent, or the point the next
/// batch starts before.
enum Batch {
    Read(crate::services::Paged<AuditEntry>),
    Before(i64),
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
