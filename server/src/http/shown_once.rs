//! A page that shows a secret exactly once: the answer to a plain form post, so it
//! works without script and the value is in one response only, which no cache
//! keeps and no session or database row holds.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::services::ServiceError;

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
<p class="notice" id="secret-advice">{{ advice }}</p>
<label for="secret-value">{{ title }}</label>
<input id="secret-value" class="secret-value" type="text" readonly value="{{ value }}" autocomplete="off" spellcheck="false" autofocus aria-describedby="secret-advice" data-testid="shown-once">
{% else %}
<p class="notice error" role="alert">{{ error }}</p>
{% endif %}
<p><a href="{{ back_href }}">{{ back_text }}</a></p>
</main>
</body>
</html>
"#;

/// Where the page leads back to.
pub struct Back<'a> {
    pub href: &'a str,
    pub text: &'a str,
}

/// The secret itself, with what it is and what to do with it.
pub struct Shown<'a> {
    pub title: &'a str,
    pub value: &'a str,
    pub advice: &'a str,
}

/// The page showing `shown`, or the refusal when the service said no.
pub fn answer(heading: &str, outcome: Result<Shown<'_>, ServiceError>, back: Back<'_>) -> Response {
    let (status, page) = match outcome {
        Ok(shown) => (
            StatusCode::OK,
            render(minijinja::context! {
                heading, title => shown.title, value => shown.value, advice => shown.advice,
                back_href => back.href, back_text => back.text,
            }),
        ),
        Err(error) => {
            let (status, message) = refusal(error);
            (
                status,
                render(minijinja::context! {
                    heading, error => message, back_href => back.href, back_text => back.text,
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
            // A page that shows a secret runs no script at all.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'self'; img-src 'self'; script-src 'none'; \
                 frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
            ),
        ],
        page,
    )
        .into_response()
}

/// The status and the sentence a refusal shows; an internal error is logged, not
/// shown.
fn refusal(error: ServiceError) -> (StatusCode, String) {
    let status = match &error {
        ServiceError::Unauthenticated => StatusCode::UNAUTHORIZED,
        ServiceError::Forbidden(_) => StatusCode::FORBIDDEN,
        ServiceError::NotFound(_) => StatusCode::NOT_FOUND,
        ServiceError::Conflict(_) => StatusCode::CONFLICT,
        ServiceError::TooMany(..) => StatusCode::TOO_MANY_REQUESTS,
        ServiceError::Unavailable(..) => StatusCode::SERVICE_UNAVAILABLE,
        ServiceError::Invalid(_) | ServiceError::PrecheckFailed(_) => StatusCode::BAD_REQUEST,
        ServiceError::Internal(message) => {
            tracing::error!(%message, "a secret could not be shown");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong on our side; nothing was shown. Tell the platform team."
                    .into(),
            );
        }
    };
    (status, error.to_string())
}

fn render(ctx: minijinja::Value) -> String {
    let mut env = minijinja::Environment::new();
    // The `.html` name turns on HTML escaping of every value.
    env.add_template("shown-once.html", PAGE)
        .and_then(|()| env.get_template("shown-once.html"))
        .and_then(|page| page.render(ctx))
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "the page did not render");
            "the page could not be shown".to_string()
        })
}
