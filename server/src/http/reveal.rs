//! The one time a generated secret is shown: a plain form post from the request
//! page answered with a page of its own, so it works without script and the value
//! is in exactly one response, which no cache keeps.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use slipway_core::ids::RequestId;
use tower_sessions::Session;

use super::session_caller;
use crate::services::{CallMeta, ServiceError, secrets};
use crate::state::AppState;

const PAGE: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{{ heading }} · Slipway</title>
<link rel="stylesheet" href="/pkg/slipway.css">
</head>
<body>
<main class="page reveal-page">
<h1>{{ heading }}</h1>
{% if value is defined %}
<p class="notice">Shown this once: copy it now, into a password manager or the secret store your service reads. Slipway will not show it again.</p>
<label for="secret-value">{{ title }}</label>
<input id="secret-value" class="secret-value" type="text" readonly value="{{ value }}" autocomplete="off" spellcheck="false" autofocus>
{% else %}
<p class="notice error" role="alert">{{ error }}</p>
{% endif %}
<p><a href="/requests/{{ id }}">Back to request #{{ id }}</a></p>
</main>
</body>
</html>
"#;

/// `POST /requests/{id}/secrets/{name}/reveal`, from the signed-in requester.
pub async fn reveal(
    State(state): State<AppState>,
    session: Session,
    Path((id, name)): Path<(i64, String)>,
    meta: Option<axum::Extension<CallMeta>>,
) -> Response {
    let id = RequestId(id);
    let answer = async {
        let caller = session_caller(&state, &session, meta.map(|m| m.0)).await?;
        secrets::reveal_once(&state, &caller, id, &name).await
    };
    let (status, page) = match answer.await {
        Ok(revealed) => (
            StatusCode::OK,
            render(minijinja::context! {
                heading => format!("{} of request #{id}", revealed.title),
                title => revealed.title,
                value => revealed.value,
                id => id.0,
            }),
        ),
        Err(error) => {
            let (status, message) = refusal(error);
            (
                status,
                render(minijinja::context! {
                    heading => format!("Request #{id}"),
                    error => message,
                    id => id.0,
                }),
            )
        }
    };
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        page,
    )
        .into_response()
}

/// The status and the sentence a refused reveal shows; an internal error is
/// logged, not shown.
fn refusal(error: ServiceError) -> (StatusCode, String) {
    let status = match &error {
        ServiceError::Unauthenticated => StatusCode::UNAUTHORIZED,
        ServiceError::Forbidden(_) => StatusCode::FORBIDDEN,
        ServiceError::NotFound(_) => StatusCode::NOT_FOUND,
        ServiceError::Conflict(_) => StatusCode::CONFLICT,
        ServiceError::Invalid(_) | ServiceError::PrecheckFailed(_) => StatusCode::BAD_REQUEST,
        ServiceError::Internal(message) => {
            tracing::error!(%message, "a generated secret could not be shown");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong on our side; the secret was not shown. Tell the platform team.".into(),
            );
        }
    };
    (status, error.to_string())
}

fn render(ctx: minijinja::Value) -> String {
    let mut env = minijinja::Environment::new();
    // The `.html` name turns on HTML escaping of every value.
    env.add_template("reveal.html", PAGE)
        .and_then(|()| env.get_template("reveal.html"))
        .and_then(|page| page.render(ctx))
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "the reveal page did not render");
            "the page could not be shown".to_string()
        })
}
