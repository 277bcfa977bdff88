//! REST API v1: JSON over HTTP under `/api/v1`, a thin adapter over the same
//! services the portal calls. Authentication is a personal API token
//! (`Authorization: Bearer …`); errors are RFC 9457 problem documents; state
//! changes honour `Idempotency-Key`; the OpenAPI 3.1 document is generated from
//! the handlers and types below.

mod account;
mod assets;
mod audit;
mod backstage;
mod catalog;
pub(crate) mod extract;
mod guidance;
pub mod idempotency;
mod listing;
mod metrics;
mod paging;
pub mod problem;
mod requests;
mod stalled;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::services::{CallMeta, tokens};
use crate::state::AppState;
use problem::Problem;
use slipway_core::views::TokenScope;

pub const PREFIX: &str = "/api/v1";
/// Bodies larger than this are refused with 413 before they are parsed.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Slipway API",
        version = "1",
        description = "Everything the Slipway portal does, for pipelines, scripts and bots. \
Authenticate with a personal API token from the portal (Account → API tokens) sent as \
`Authorization: Bearer <token>`. Send an `Idempotency-Key` header on every POST so a retry \
never has a second effect. Errors are `application/problem+json` (RFC 9457)."
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "catalog", description = "Resource types and dictionaries"),
        (name = "requests", description = "Requests, their pre-check, revisions and cancellation"),
        (name = "reviews", description = "Review decisions"),
        (name = "operations", description = "Manual handling by the platform team"),
        (name = "assets", description = "The CMDB"),
        (name = "backstage", description = "Assets as Backstage catalog entities (`catalog-info.yaml`)"),
        (name = "audit", description = "The audit log"),
        (name = "metrics", description = "Flow metrics: where requests wait, and for how long"),
        (name = "account", description = "The caller and their API tokens"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A personal API token (slw_…)"))
                    .build(),
            ),
        );
    }
}

fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(catalog::routes())
        .merge(guidance::routes())
        .merge(requests::routes())
        .merge(assets::routes())
        .merge(backstage::routes())
        .merge(audit::routes())
        .merge(metrics::routes())
        .merge(account::routes())
}

/// The generated OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut document = api_routes().into_openapi();
    document_layer_answers(&mut document);
    document
}

/// The rule `idempotency::key_of` enforces, so a client can see it.
fn idempotency_key_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(idempotency::MAX_KEY_CHARS))
        .pattern(Some("^[!-~]+$"))
        .description(Some("1 to 90 printable ASCII characters, no spaces"))
        .into()
}

/// Adds, to every operation, the problems the layers around the handlers answer
/// with, so a client (and a schema fuzzer) finds each status it can get documented
/// beside the handler's own: the bearer check (401) on every call; a malformed
/// path, query or header (400) where there are parameters; the body limit (413),
/// a missing JSON content type (415), malformed JSON (400) and a body of the wrong
/// shape (422) where there is a body; the Idempotency-Key checks (400, 409, 422,
/// 413) on every POST and DELETE; and 500 everywhere, as a problem with a trace id.
fn document_layer_answers(document: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    let problem = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                problem::PROBLEM_JSON,
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Problem")))
                    .build(),
            )
            .build()
    };
    for (path, item) in document.paths.paths.iter_mut() {
        let keyed = !idempotency::computes_only(path);
        let operations = [
            (false, &mut item.get),
            (false, &mut item.put),
            (keyed, &mut item.post),
            (keyed, &mut item.delete),
            (false, &mut item.patch),
        ];
        for (idempotent_write, operation) in operations {
            let Some(operation) = operation.as_mut() else {
                continue;
            };
            for parameter in operation.parameters.iter_mut().flatten() {
                if parameter.name.eq_ignore_ascii_case(idempotency::HEADER) {
                    parameter.schema = Some(idempotency_key_schema());
                }
            }
            let has_params = operation.parameters.as_ref().is_some_and(|p| !p.is_empty());
            let has_body = operation.request_body.is_some();
            let mut wanted = vec![
                ("401", "No valid API token"),
                (
                    "403",
                    "The token lacks the scope this call needs (`read` for every GET), or the caller may not do this",
                ),
                (
                    "429",
                    "The caller's tokens called faster than their pace (--token-calls-per-minute); the Retry-After header says how many seconds to wait",
                ),
                ("500", "A fault on the server; quote the trace id"),
            ];
            if has_params || has_body || idempotent_write {
                wanted.push(("400", "A malformed path, query, header or body"));
            }
            if has_body || idempotent_write {
                wanted.push(("413", "The body is larger than the limit"));
                wanted.push((
                    "422",
                    "The body does not fit, or the Idempotency-Key was used for another request",
                ));
            }
            if has_body {
                wanted.push(("415", "The body is not sent as application/json"));
            }
            if idempotent_write {
                wanted.push((
                    "409",
                    "A request with this Idempotency-Key is still being processed",
                ));
            }
            for (status, description) in wanted {
                operation
                    .responses
                    .responses
                    .entry(status.to_string())
                    .or_insert_with(|| problem(description).into());
            }
        }
    }
}

/// `/api/v1`, with its document at `/api/v1/openapi.json`.
pub fn router(state: &AppState) -> Router {
    let (routes, mut document) = api_routes().split_for_parts();
    document_layer_answers(&mut document);
    let document = std::sync::Arc::new(document);
    let authenticated = routes
        // Route layers, so a method a path does not have is a plain 405 rather than
        // whatever the token or Idempotency-Key checks would say first.
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            idempotency::middleware,
        ))
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .route_layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .method_not_allowed_fallback(method_not_allowed);
    Router::new()
        .route(
            &format!("{PREFIX}/openapi.json"),
            axum::routing::get(move || {
                let document = document.clone();
                async move { axum::Json(document.as_ref().clone()) }
            })
            .fallback(method_not_allowed),
        )
        .merge(authenticated)
        // Routes, not a fallback: the portal's router, merged beside this one, owns
        // the fallback for everything else.
        .route(PREFIX, axum::routing::any(unknown_route))
        .route(&format!("{PREFIX}/"), axum::routing::any(unknown_route))
        .route(
            &format!("{PREFIX}/{{*rest}}"),
            axum::routing::any(unknown_route),
        )
        .with_state(state.clone())
}

async fn method_not_allowed(request: Request) -> Response {
    Problem::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        format!(
            "{} does not take {}",
            request.uri().path(),
            request.method()
        ),
    )
    .into_response()
}

async fn unknown_route(request: Request) -> Response {
    Problem::new(
        axum::http::StatusCode::NOT_FOUND,
        "not-found",
        format!("there is no {} {}", request.method(), request.uri().path()),
    )
    .into_response()
}

/// Turns the bearer token into the [`Caller`](crate::services::Caller) every
/// handler acts as; without a valid one nothing else runs.
async fn authenticate(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let meta = request
        .extensions()
        .get::<CallMeta>()
        .cloned()
        .unwrap_or_default();
    let trace_id = meta.trace_id.clone();
    let secret = bearer(request.headers()).map(str::to_string);
    let Some(secret) = secret else {
        return Problem::from(crate::services::ServiceError::Unauthenticated)
            .with_trace(trace_id)
            .into_response();
    };
    let call = format!("{} {}", request.method(), request.uri().path());
    match tokens::authenticate_call(&state, &secret, meta, &call).await {
        Ok(caller) => {
            // Every read needs the `read` scope: a token made only to submit or to
            // review reads nothing beyond what its own calls answer.
            let reads = matches!(*request.method(), Method::GET | Method::HEAD);
            if reads && let Err(error) = caller.require_scope(TokenScope::Read) {
                return Problem::from(error).with_trace(trace_id).into_response();
            }
            tracing::info!(
                user = %caller.username,
                token_id = ?caller.token_id,
                method = %request.method(),
                path = %request.uri().path(),
                "API call"
            );
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(error) => Problem::from(error).with_trace(trace_id).into_response(),
    }
}

/// The credential of an `Authorization: Bearer …` header; the scheme's name is
/// read in any case, as HTTP defines it (RFC 9110, 11.1).
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, credential) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| credential.trim())
}
