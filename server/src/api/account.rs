//! The caller: who they are, and their personal API tokens.

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use slipway_core::views::{NewToken, TokenRequest, TokenScope, TokenView, UserView};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiJson, ApiPath, problem};
use super::idempotency::ReplayBody;
use super::problem::{ApiError, Problem};
use crate::services::{Caller, tokens};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(me))
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(revoke_token))
}

#[utoipa::path(get, path = "/api/v1/me", tag = "account",
    responses((status = 200, description = "The caller, with roles and teams", body = UserView)))]
/// The caller, with roles and teams.
async fn me(Extension(caller): Extension<Caller>) -> Json<UserView> {
    Json(caller.user)
}

#[utoipa::path(get, path = "/api/v1/tokens", tag = "account",
    responses((status = 200, description = "The caller's tokens, never their secrets", body = [TokenView])))]
/// The caller's API tokens (never their secrets).
async fn list_tokens(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<TokenView>>, ApiError> {
    tokens::list(&state, &caller)
        .await
        .map(Json)
        .map_err(|e| problem(&caller, e))
}

#[utoipa::path(post, path = "/api/v1/tokens", tag = "account",
    request_body = TokenRequest,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 201, description = "The new token; its secret is shown this once (a replay of the same Idempotency-Key answers it as null)", body = NewToken),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
/// Create an API token; its secret is in this answer only.
async fn create_token(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<TokenRequest>,
) -> Result<Response, ApiError> {
    caller
        .require_scope(TokenScope::Admin)
        .map_err(|e| problem(&caller, e))?;
    let created = tokens::create(&state, &caller, &body)
        .await
        .map_err(|e| problem(&caller, e))?;
    let without_secret = NewToken {
        token: created.token.clone(),
        secret: None,
    };
    let replay = serde_json::to_string(&without_secret).map_err(|e| {
        problem(
            &caller,
            crate::services::ServiceError::Internal(e.to_string()),
        )
    })?;
    let answer = NewToken {
        token: created.token,
        secret: Some(created.secret),
    };
    let mut response = (StatusCode::CREATED, Json(answer)).into_response();
    response.extensions_mut().insert(ReplayBody(replay));
    Ok(response)
}

#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "account",
    params(("id" = i64, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses(
        (status = 204, description = "Revoked; it stops working at once"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
/// Revoke one of the caller's tokens; it stops working at once.
async fn revoke_token(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    caller
        .require_scope(TokenScope::Admin)
        .map_err(|e| problem(&caller, e))?;
    tokens::revoke(&state, &caller, id)
        .await
        .map(|()| StatusCode::NO_CONTENT)
        .map_err(|e| problem(&caller, e))
}
