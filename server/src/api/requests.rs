//! Requests: create, read, list, pre-check and dry-run, revise, cancel, review,
//! and the platform team's manual handling.

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use slipway_core::ids::RequestId;
use slipway_core::listing::ListQuery;
use slipway_core::precheck::PrecheckReport;
use slipway_core::state::RequestState;
use slipway_core::views::{
    DryRun, ProgressEvent, RequestDetail, RequestDraft, RequestSummary, ReviewDecision, TokenScope,
};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiJson, ApiPath, ApiQuery, problem};
use super::idempotency;
use super::listing::{self, ListAnswer, list_query_doc};
use super::problem::{ApiError, Problem};
use crate::services::{Caller, detail, operations, requests, reviews};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_request, list_requests))
        .routes(routes!(needing_attention))
        .routes(routes!(review_queue))
        .routes(routes!(get_request))
        .routes(routes!(request_events))
        .routes(routes!(precheck))
        .routes(routes!(dry_run))
        .routes(routes!(revise))
        .routes(routes!(cancel))
        .routes(routes!(review))
        .routes(routes!(claim))
        .routes(routes!(resolve))
        .routes(routes!(abandon))
        .routes(routes!(retry))
}

/// A request to make: a type and its parameters.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRequestBody {
    /// The resource type's name, e.g. `k8s-namespace`.
    #[serde(rename = "type")]
    pub type_name: String,
    /// The parameters, as the type's JSON Schema (`GET /api/v1/types/{name}/schema`) describes.
    pub params: Value,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PrecheckBody {
    #[serde(rename = "type")]
    pub type_name: String,
    pub params: Value,
    /// When re-checking a revision of an existing request, its id (it does not count
    /// against its own quota or name).
    #[serde(default)]
    pub request_id: Option<RequestId>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevisionBody {
    /// The complete new parameters.
    pub params: Value,
    /// The revision these parameters revise (`summary.revision` when read): a
    /// request revised since is a 409, never a quiet overwrite of the newer
    /// revision. Without it, the newest revision is revised.
    #[serde(default)]
    pub revision: Option<i64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewBody {
    pub decision: ReviewDecision,
    /// The revision you reviewed (`revisions[].revision`; `summary.revision` is
    /// the current one): a request that has moved on since is a 409, never a
    /// decision on unseen content, even when its files render the same (a
    /// revision may change only what a pipeline or command step is given).
    pub revision: i64,
    /// The change-set hash of that revision (`revisions[].change_set_hash`).
    pub change_set_hash: String,
    /// Required when rejecting or requesting changes.
    #[serde(default)]
    pub comment: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveBody {
    /// What was done by hand.
    pub note: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AbandonBody {
    /// Why nothing is left to record: nothing was made, or what was left was
    /// cleaned up by hand.
    pub note: String,
}

list_query_doc! {
    /// The query of a list of requests.
    RequestListQuery {
        /// Only the caller's own requests.
        mine: Option<bool>,
        state: Option<RequestState>,
    }
}

list_query_doc! {
    /// The query of needing attention.
    AttentionQuery {
        /// `failed` or `manual` (another state is a 422).
        state: Option<RequestState>,
    }
}

list_query_doc! {
    /// The query of the review queue (every request in it is in review).
    QueueQuery {}
}

/// A page of requests, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct RequestPage {
    pub items: Vec<RequestSummary>,
    /// Pass as `cursor` for the next (older) page; absent on the oldest page.
    pub next_cursor: Option<String>,
    /// Pass as `cursor` for the previous (newer) page; absent on the newest page.
    pub prev_cursor: Option<String>,
    /// The id to pass as `before` for the next (older) page.
    pub before: Option<i64>,
    /// The id to pass as `after` for the previous (newer) page.
    pub after: Option<i64>,
}

impl From<ListAnswer<RequestSummary>> for RequestPage {
    fn from(a: ListAnswer<RequestSummary>) -> Self {
        RequestPage {
            items: a.items,
            next_cursor: a.next_cursor,
            prev_cursor: a.prev_cursor,
            before: a.before,
            after: a.after,
        }
    }
}

pub(super) fn scoped(caller: &Caller, scope: TokenScope) -> Result<(), ApiError> {
    caller.require_scope(scope).map_err(|e| problem(caller, e))
}

pub(super) async fn detail_of(
    state: &AppState,
    caller: &Caller,
    id: RequestId,
) -> Result<Json<RequestDetail>, ApiError> {
    detail::request_detail(state, caller, id, detail::ReviewerRead::Counts)
        .await
        .map(Json)
        .map_err(|e| problem(caller, e))
}

/// The answer to a call whose change is committed: the request's detail (with
/// `Location` when it was created), or, when that cannot be read right now (the
/// database busy or away a moment), `303 See Other` to it. A 5xx would say the
/// call failed: the Idempotency-Key would be given back, and its retry would
/// meet the change the call made ("cannot revise a request in review").
pub(super) async fn after_change(
    state: &AppState,
    caller: &Caller,
    id: RequestId,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let location = HeaderValue::from_str(&format!("/api/v1/requests/{id}")).ok();
    let mut response = match detail::request_detail(state, caller, id, detail::ReviewerRead::Counts)
        .await
    {
        Ok(detail) => (status, Json(detail)).into_response(),
        Err(error) if error.is_transient() => {
            tracing::warn!(request_id = %id, %error, "changed, but its detail could not be read; answered with a link to it");
            StatusCode::SEE_OTHER.into_response()
        }
        Err(error) => return Err(problem(caller, error)),
    };
    let links = status == StatusCode::CREATED || response.status() == StatusCode::SEE_OTHER;
    if let Some(location) = location.filter(|_| links) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// The idempotency key doubles as the submit key, so even a crash between storing
/// the request and keeping the answer cannot make a retry create a second one.
pub(super) fn submit_key(headers: &HeaderMap) -> String {
    headers
        .get(idempotency::HEADER)
        .and_then(|v| v.to_str().ok())
        .map(|k| format!("{}{k}", requests::API_KEY_PREFIX))
        .unwrap_or_else(|| format!("api:{}", uuid::Uuid::new_v4()))
}

#[utoipa::path(post, path = "/api/v1/requests", tag = "requests",
    request_body = NewRequestBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry replay the first answer")),
    responses(
        (status = 303, description = "Done, but its detail could not be read just now: read it at Location"),
        (status = 201, description = "Created; Location names it", body = RequestDetail),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such type", body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The pre-check failed or the body is wrong", body = Problem, content_type = "application/problem+json"),
    ))]
/// Submit a request: pre-checked, rendered, then routed to review or approved by policy.
async fn create_request(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<NewRequestBody>,
) -> Result<Response, ApiError> {
    scoped(&caller, TokenScope::Request)?;
    let draft = RequestDraft {
        type_name: body.type_name,
        params: body.params,
        submit_key: submit_key(&headers),
    };
    let id = requests::submit(&state, &caller, &draft)
        .await
        .map_err(|e| problem(&caller, e))?;
    after_change(&state, &caller, id, StatusCode::CREATED).await
}

#[utoipa::path(get, path = "/api/v1/requests", tag = "requests",
    params(RequestListQuery),
    responses(
        (status = 200, description = "The requests the caller may see, newest first", body = RequestPage),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A query parameter is unknown or its value is wrong; `errors` names it", body = Problem, content_type = "application/problem+json"),
    ))]
/// List the requests the caller may see (or made, with `mine=true`), newest first.
async fn list_requests(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(pairs): ApiQuery<Vec<(String, String)>>,
) -> Result<Json<RequestPage>, ApiError> {
    let parsed = listing::parse(&pairs, listing::REQUEST_FILTERS, &["mine"])?;
    let ListQuery { filter, page } = &parsed.query;
    let found = if parsed.flag("mine") {
        requests::mine(&state, &caller, filter, *page).await
    } else {
        requests::list(&state, &caller, filter, *page).await
    };
    let found = found.map_err(|e| problem(&caller, e))?;
    Ok(Json(ListAnswer::from(found).into()))
}

#[utoipa::path(get, path = "/api/v1/requests/attention", tag = "operations",
    params(AttentionQuery),
    responses(
        (status = 200, description = "Failed requests and requests handled by hand, newest first", body = RequestPage),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller is not on the platform team", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A query parameter is unknown or its value is wrong; `errors` names it", body = Problem, content_type = "application/problem+json"),
    ))]
/// Requests needing the platform team's attention: failed, or handled by hand.
async fn needing_attention(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(pairs): ApiQuery<Vec<(String, String)>>,
) -> Result<Json<RequestPage>, ApiError> {
    let parsed = listing::parse(&pairs, listing::REQUEST_FILTERS, &[])?;
    let ListQuery { filter, page } = &parsed.query;
    let found = requests::needing_attention(&state, &caller, filter, *page)
        .await
        .map_err(|e| problem(&caller, e))?;
    Ok(Json(ListAnswer::from(found).into()))
}

#[utoipa::path(get, path = "/api/v1/reviews", tag = "reviews",
    params(QueueQuery),
    responses(
        (status = 200, description = "Requests in review that the caller may decide on, newest first (never their own)", body = RequestPage),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller is not a reviewer", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A query parameter is unknown or its value is wrong; `errors` names it", body = Problem, content_type = "application/problem+json"),
    ))]
/// The caller's review queue.
async fn review_queue(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    query: Result<ApiQuery<Vec<(String, String)>>, ApiError>,
) -> Result<Json<RequestPage>, ApiError> {
    reviews::may_open_queue(&state, &caller).map_err(|e| problem(&caller, e))?;
    let ApiQuery(pairs) = query?;
    let parsed = listing::parse(&pairs, listing::QUEUE_FILTERS, &[])?;
    let ListQuery { filter, page } = &parsed.query;
    let found = reviews::queue(&state, &caller, filter, *page)
        .await
        .map_err(|e| problem(&caller, e))?;
    Ok(Json(ListAnswer::from(found).into()))
}

#[utoipa::path(get, path = "/api/v1/requests/{id}", tag = "requests",
    params(("id" = i64, Path, description = "The request's number")),
    responses(
        (status = 200, body = RequestDetail),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
/// One request: its revisions, decisions, timeline, checks, job and what the caller may do.
async fn get_request(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<RequestDetail>, ApiError> {
    detail_of(&state, &caller, RequestId(id)).await
}

/// Where a follower starts when it does not reconnect.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Start after this event id (e.g. after what `GET /api/v1/requests/{id}` showed);
    /// a `Last-Event-ID` header takes precedence.
    pub after: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/requests/{id}/events", tag = "requests",
    params(
        ("id" = i64, Path, description = "The request's number"),
        ("Last-Event-ID" = Option<i64>, Header, description = "Resume after this event (an EventSource sends it when it reconnects)"),
        EventsQuery,
    ),
    responses(
        (status = 200, content_type = "text/event-stream",
         description = "Server-sent events: `step` (a step attempt started or ended) and `line` \
            (a line of the driver's output, secrets blanked), each a ProgressEvent with its id as \
            the SSE `id`; then `end` (a ProgressEnd) once the request is completed, failed, manual, \
            cancelled or rejected and every event was sent. Comments keep the connection alive; \
            the stream also closes at server shutdown and after a minute: reconnect with \
            `Last-Event-ID`.",
         body = ProgressEvent),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A query parameter is unknown, given twice or not a whole number, or `Last-Event-ID` is not an event id; `errors` names it", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many streams open: eight per person, 256 per server",
         body = Problem, content_type = "application/problem+json"),
    ))]
/// Follow a request's execution live: each step and the driver's output as they happen.
async fn request_events(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(query): ApiQuery<EventsQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let after = crate::http::events::resume_point(&headers, query.after)
        .map_err(|e| problem(&caller, e))?;
    let stream = crate::http::events::progress_stream(state, caller.clone(), RequestId(id), after)
        .await
        .map_err(|e| problem(&caller, e))?;
    Ok(stream.into_response())
}

#[utoipa::path(post, path = "/api/v1/requests/precheck", tag = "requests",
    request_body = PrecheckBody,
    responses(
        (status = 200, description = "The pre-check, passed or not; nothing is stored", body = PrecheckReport),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
/// Run the pre-check on parameters without storing anything.
async fn precheck(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<PrecheckBody>,
) -> Result<Json<PrecheckReport>, ApiError> {
    scoped(&caller, TokenScope::Request)?;
    requests::precheck(
        &state,
        &caller,
        &body.type_name,
        &body.params,
        body.request_id,
    )
    .await
    .map(Json)
    .map_err(|e| problem(&caller, e))
}

#[utoipa::path(post, path = "/api/v1/requests/dry-run", tag = "requests",
    request_body = NewRequestBody,
    responses(
        (status = 200, description = "The pre-check and, when it passes, the change set a reviewer would see; nothing is stored", body = DryRun),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
/// The pre-check and the change set a reviewer would see, without storing anything.
async fn dry_run(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<NewRequestBody>,
) -> Result<Json<DryRun>, ApiError> {
    scoped(&caller, TokenScope::Request)?;
    requests::dry_run(&state, &caller, &body.type_name, &body.params)
        .await
        .map(Json)
        .map_err(|e| problem(&caller, e))
}

#[utoipa::path(post, path = "/api/v1/requests/{id}/revisions", tag = "requests",
    params(("id" = i64, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body = RevisionBody,
    responses(
        (status = 303, description = "Done, but its detail could not be read just now: read it at Location"),
        (status = 200, description = "The new revision is in review again", body = RequestDetail),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
/// Answer "changes requested" with new parameters (a new revision).
async fn revise(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<RevisionBody>,
) -> Result<Response, ApiError> {
    scoped(&caller, TokenScope::Request)?;
    requests::resubmit_from(
        &state,
        &caller,
        (RequestId(id), body.revision),
        &body.params,
    )
    .await
    .map_err(|e| problem(&caller, e))?;
    after_change(&state, &caller, RequestId(id), StatusCode::OK).await
}

#[utoipa::path(post, path = "/api/v1/requests/{id}/cancel", tag = "requests",
    params(("id" = i64, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 303, description = "Done, but its detail could not be read just now: read it at Location"),
        (status = 200, body = RequestDetail),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
    ))]
/// Cancel a request that is not yet approved.
async fn cancel(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Response, ApiError> {
    scoped(&caller, TokenScope::Request)?;
    requests::cancel(&state, &caller, RequestId(id))
        .await
        .map_err(|e| problem(&caller, e))?;
    after_change(&state, &caller, RequestId(id), StatusCode::OK).await
}

#[utoipa::path(post, path = "/api/v1/requests/{id}/reviews", tag = "reviews",
    params(("id" = i64, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body = ReviewBody,
    responses(
        (status = 303, description = "Done, but its detail could not be read just now: read it at Location"),
        (status = 200, body = RequestDetail),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The request moved on, or the change set is not the one seen", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
/// Approve, reject or request changes on the change set the reviewer saw.
async fn review(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<ReviewBody>,
) -> Result<Response, ApiError> {
    scoped(&caller, TokenScope::Review)?;
    let id = RequestId(id);
    reviews::decide_on(
        &state,
        &caller,
        id,
        body.revision,
        body.decision,
        &body.comment,
        Some(&body.change_set_hash),
    )
    .await
    .map_err(|e| problem(&caller, e))?;
    after_change(&state, &caller, id, StatusCode::OK).await
}

#[utoipa::path(post, path = "/api/v1/requests/{id}/claim", tag = "operations",
    params(("id" = i64, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 303, description = "Done, but its detail could not be read just now: read it at Location"),
        (status = 200, description = "Taken over for manual handling", body = RequestDetail),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
    ))]
/// Take a failed request over for manual handling.
async fn claim(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Response, ApiError> {
    scoped(&caller, TokenScope::Admin)?;
    operations::take_over(&state, &caller, RequestId(id))
        .await
        .map_err(|e| problem(&caller, e))?;
    after_change(&state, &caller, RequestId(id), StatusCode::OK).await
}

#[utoipa::path(post, path = "/api/v1/requests/{id}/resolve", tag = "operations",
    params(("id" = i64, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body = ResolveBody,
    responses(
        (status = 303, description = "Done, but its detail could not be read just now: read it at Location"),
        (status = 200, description = "Completed by hand; the asset is recorded", body = RequestDetail),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
/// Close a manually handled request; its asset is recorded.
async fn resolve(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<ResolveBody>,
) -> Result<Response, ApiError> {
    scoped(&caller, TokenScope::Admin)?;
    operations::resolve(&state, &caller, RequestId(id), &body.note)
        .await
        .map_err(|e| problem(&caller, e))?;
    after_change(&state, &caller, RequestId(id), StatusCode::OK).await
}

#[utoipa::path(post, path = "/api/v1/requests/{id}/abandon", tag = "operations",
    params(("id" = i64, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body = AbandonBody,
    responses(
        (status = 303, description = "Done, but its detail could not be read just now: read it at Location"),
        (status = 200, description = "Closed without an asset; its quota and name are free again", body = RequestDetail),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
/// Close a manually handled request without an asset.
async fn abandon(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<AbandonBody>,
) -> Result<Response, ApiError> {
    scoped(&caller, TokenScope::Admin)?;
    operations::abandon(&state, &caller, RequestId(id), &body.note)
        .await
        .map_err(|e| problem(&caller, e))?;
    after_change(&state, &caller, RequestId(id), StatusCode::OK).await
}

#[utoipa::path(post, path = "/api/v1/requests/{id}/retry", tag = "operations",
    params(("id" = i64, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 303, description = "Done, but its detail could not be read just now: read it at Location"),
        (status = 200, description = "Queued for another attempt", body = RequestDetail),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
    ))]
/// Queue a failed request for another attempt.
async fn retry(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Response, ApiError> {
    scoped(&caller, TokenScope::Admin)?;
    operations::retry(&state, &caller, RequestId(id))
        .await
        .map_err(|e| problem(&caller, e))?;
    after_change(&state, &caller, RequestId(id), StatusCode::OK).await
}
