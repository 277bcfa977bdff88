//! RFC 9457 problem details: the one shape every API error takes. A validation
//! failure lists each field with the rule it broke; a server fault shows only a
//! trace id to quote, never its inside.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use slipway_core::precheck::PrecheckReport;
use slipway_core::validate::FieldError;
use utoipa::ToSchema;

use crate::services::ServiceError;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// Every kind of problem the API reports, and what to do about it. A problem's `type`
/// is `/api-docs#problem-<kind>`: the reference page lists these, so the URI leads
/// to its explanation on the same server.
pub const KINDS: &[(&str, &str)] = &[
    (
        "bad-request",
        "The call is malformed: JSON that does not parse, a bad cursor, limit, path or header. Fix the call.",
    ),
    (
        "body-unreadable",
        "The body could not be read. Send it again.",
    ),
    (
        "conflict",
        "The request moved on since you read it (another state, a newer revision, a different change set), or the record exists. Reload and decide again.",
    ),
    (
        "cross-origin",
        "A browser page of another site sent this call with a session cookie. Call the API with a token, or from this site's pages.",
    ),
    (
        "forbidden",
        "You may not do this: a role, a team or a token scope is missing. The detail names which.",
    ),
    (
        "idempotency-key-in-use",
        "A call with this Idempotency-Key is still running. Retry later with the same key.",
    ),
    (
        "idempotency-key-reused",
        "This Idempotency-Key was used with another request. Use a new key.",
    ),
    (
        "idempotency-key-rights-lost",
        "This Idempotency-Key's first call was made with a role or a team the caller no longer holds, so its answer is not shown again. Read the resource it made, if it may still be seen, or use a new key.",
    ),
    (
        "internal",
        "A fault on the server. Quote the trace id to the platform team.",
    ),
    (
        "invalid-input",
        "The body does not fit: `errors` names each field and the rule it broke.",
    ),
    (
        "method-not-allowed",
        "The path exists but not with this method.",
    ),
    ("not-found", "There is no such resource (or type)."),
    (
        "precheck-failed",
        "The pre-check did not pass: `errors` and `precheck` say which fields, quotas or dependencies.",
    ),
    ("too-large", "The body is over the size limit."),
    (
        "too-many",
        "Too much at once from you (or on this server): the detail says what. Close what you no longer use, or try again in a minute.",
    ),
    (
        "unauthenticated",
        "Send a valid, unexpired, unrevoked API token as `Authorization: Bearer <token>`.",
    ),
    (
        "unavailable",
        "The database cannot be reached right now (restarting, failing over, out of connections); nothing was changed. Try again after `Retry-After` seconds, with the same Idempotency-Key for a create.",
    ),
    (
        "unsupported-media-type",
        "Send the body as JSON with `Content-Type: application/json`.",
    ),
];

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URI reference naming the kind of problem: `/api-docs#problem-<kind>`, where
    /// the API reference explains it.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Each field that broke a rule, with the rule.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// A failed pre-check in full: quotas and dependencies as well as fields.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub precheck: Option<PrecheckReport>,
    /// Quote this to the platform team; the log line carries it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// Seconds to wait before trying again: the `Retry-After` header, not the body.
    #[serde(skip)]
    pub retry_after: Option<u64>,
}

impl Problem {
    pub fn new(status: StatusCode, kind: &str, detail: impl Into<String>) -> Problem {
        Problem {
            kind: {
                debug_assert!(
                    KINDS.iter().any(|(k, _)| *k == kind),
                    "problem kind {kind:?} is not listed in KINDS"
                );
                format!("/api-docs#problem-{kind}")
            },
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail: detail.into(),
            errors: Vec::new(),
            precheck: None,
            trace_id: None,
            retry_after: None,
        }
    }

    pub fn invalid(errors: Vec<FieldError>) -> Problem {
        let detail = slipway_core::validate::describe_all(&errors);
        Problem {
            errors,
            ..Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-input", detail)
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, "bad-request", detail)
    }

    pub fn with_trace(mut self, trace_id: Option<String>) -> Problem {
        self.trace_id = trace_id;
        self
    }

    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

/// The seconds a client is asked to wait while the database cannot answer.
const UNAVAILABLE_RETRY_AFTER: u64 = 5;

/// What a handler fails with: a problem document, boxed so results stay small.
#[derive(Debug)]
pub struct ApiError(pub Box<Problem>);

impl<T: Into<Problem>> From<T> for ApiError {
    fn from(value: T) -> Self {
        ApiError(Box::new(value.into()))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (*self.0).into_response()
    }
}

impl IntoResponse for Problem {
    fn into_response(mut self) -> Response {
        // Every problem names its call's trace, also one made before a handler
        // had the call's metadata (a body or query that did not parse).
        if self.trace_id.is_none() {
            self.trace_id = crate::http::current_trace_id();
        }
        let status = self.status_code();
        let retry_after = self.retry_after;
        let mut response = (status, Json(self)).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"slipway\""),
            );
        }
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<ServiceError> for Problem {
    fn from(error: ServiceError) -> Problem {
        match error {
            ServiceError::Unauthenticated => Problem::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "send a valid API token as 'Authorization: Bearer <token>'",
            ),
            ServiceError::Forbidden(m) => Problem::new(StatusCode::FORBIDDEN, "forbidden", m),
            ServiceError::NotFound(m) => {
                Problem::new(StatusCode::NOT_FOUND, "not-found", format!("{m} not found"))
            }
            ServiceError::Invalid(fields) => Problem::invalid(fields),
            ServiceError::PrecheckFailed(report) => {
                let detail = ServiceError::PrecheckFailed(report.clone()).to_string();
                Problem {
                    errors: report.field_errors.clone(),
                    precheck: Some(*report),
                    ..Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "precheck-failed", detail)
                }
            }
            ServiceError::Conflict(m) => Problem::new(StatusCode::CONFLICT, "conflict", m),
            ServiceError::TooMany(m, wait) => Problem {
                retry_after: wait.map(|w| w.as_secs().max(1)),
                ..Problem::new(StatusCode::TOO_MANY_REQUESTS, "too-many", m)
            },
            ServiceError::Unavailable(m, _) => Problem {
                retry_after: Some(UNAVAILABLE_RETRY_AFTER),
                ..Problem::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", m)
            },
            ServiceError::Internal(message) => {
                // Logged once here, inside the call's span (which carries the trace id).
                tracing::error!(%message, "internal error in an API call");
                Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "something went wrong on our side; quote the trace id to the platform team",
                )
            }
        }
    }
}

/// The characters of a parser's message kept in an answer: serde quotes the
/// unknown key or variant it met, which may be as long as the body.
const PARSER_MESSAGE_CHARS: usize = 300;

/// A parser's message cut to its first characters.
fn briefly(text: &str) -> String {
    match text.char_indices().nth(PARSER_MESSAGE_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

/// Body, query and path errors from axum's extractors, said plainly.
impl From<JsonRejection> for Problem {
    fn from(rejection: JsonRejection) -> Problem {
        match rejection {
            JsonRejection::JsonDataError(e) => {
                let (field, reason) = field_of(&e);
                Problem::invalid(vec![FieldError::new(briefly(&field), briefly(&reason))])
            }
            JsonRejection::JsonSyntaxError(e) => match out_of_range_number(&e) {
                Some(field) => Problem::invalid(vec![FieldError::new(
                    briefly(&field),
                    "is a number too large to hold (at most about 1.8e308)",
                )]),
                None => Problem::bad_request(format!(
                    "the body is not valid JSON: {}",
                    briefly(&e.body_text())
                )),
            },
            JsonRejection::MissingJsonContentType(_) => Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "send the body as JSON with 'Content-Type: application/json'",
            ),
            // The same answer as the Idempotency-Key layer gives a body too large.
            JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Problem::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too-large",
                    format!("the body must be at most {} bytes", super::MAX_BODY_BYTES),
                )
            }
            JsonRejection::BytesRejection(e) => Problem::new(
                e.status(),
                "body-unreadable",
                format!("the body could not be read: {}", e.body_text()),
            ),
            other => Problem::bad_request(other.body_text()),
        }
    }
}

/// The field a body failed on (its path, `params.replicas`, empty for the body as
/// a whole) and serde's reason, without axum's preamble.
fn field_of(error: &axum::extract::rejection::JsonDataError) -> (String, String) {
    match cause_of::<serde_path_to_error::Error<serde_json::Error>>(error) {
        Some(located) => {
            let path = located.path().to_string();
            let path = if path == "." { String::new() } else { path };
            let reason = located.inner().to_string();
            // serde names a missing field in its message, and the path stops at
            // the object that lacks it: the field is the one to name.
            let named = |field: &str| {
                if path.is_empty() {
                    field.to_string()
                } else {
                    format!("{path}.{field}")
                }
            };
            if let Some(missing) = missing_field(&reason) {
                (named(missing), "is required".into())
            } else if let Some(twice) = quoted_after(&reason, "duplicate field `") {
                (
                    named(twice),
                    "is given twice: each key may appear once in an object".into(),
                )
            } else {
                (path, reason)
            }
        }
        None => (
            String::new(),
            format!("the body does not fit: {}", error.body_text()),
        ),
    }
}

/// The first cause of `error` that is a `T` (axum wraps serde's error twice: its
/// own error type, then the rejection).
fn cause_of<T: std::error::Error + 'static>(error: &dyn std::error::Error) -> Option<&T> {
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(found) = cause.downcast_ref::<T>() {
            return Some(found);
        }
        source = cause.source();
    }
    None
}

/// Where a body holds a number JSON allows but no float can (`1e400`): it is
/// well-formed JSON with a value out of range, which serde counts as syntax.
fn out_of_range_number(error: &axum::extract::rejection::JsonSyntaxError) -> Option<String> {
    let located = cause_of::<serde_path_to_error::Error<serde_json::Error>>(error)?;
    if !located
        .inner()
        .to_string()
        .starts_with("number out of range")
    {
        return None;
    }
    let path = located.path().to_string();
    Some(if path == "." { "body".into() } else { path })
}

/// The field serde's "missing field `x`" names.
fn missing_field(reason: &str) -> Option<&str> {
    quoted_after(reason, "missing field `")
}

/// A query that did not read is a 422 naming its parameter, as a list's query
/// is; only a query axum could not even split is a 400.
impl From<QueryRejection> for Problem {
    fn from(rejection: QueryRejection) -> Problem {
        match query_field_of(&rejection) {
            Some((field, reason)) => {
                Problem::invalid(vec![FieldError::new(briefly(&field), briefly(&reason))])
            }
            None => Problem::bad_request(format!(
                "bad query parameters: {}",
                briefly(&rejection.body_text())
            )),
        }
    }
}

/// The query parameter a query failed on, and the rule it broke in words.
fn query_field_of(rejection: &QueryRejection) -> Option<(String, String)> {
    type Located = serde_path_to_error::Error<serde_urlencoded::de::Error>;
    let QueryRejection::FailedToDeserializeQueryString(failed) = rejection else {
        return None;
    };
    let located = cause_of::<Located>(failed)?;
    let path = located.path().to_string();
    let reason = located.inner().to_string();
    if let Some(missing) = quoted_after(&reason, "missing field `") {
        return Some((missing.to_string(), "is required".into()));
    }
    if let Some(unknown) = quoted_after(&reason, "unknown field `") {
        let known = reason
            .split_once(", expected ")
            .map(|(_, known)| format!(" (it takes {})", known.replace("one of ", "")))
            .unwrap_or_default();
        return Some((
            unknown.to_string(),
            format!("is not a parameter of this call{known}"),
        ));
    }
    if let Some(twice) = quoted_after(&reason, "duplicate field `") {
        return Some((twice.to_string(), "is given more than once".into()));
    }
    let reason = match reason.as_str() {
        "invalid digit found in string" => "is not a whole number".to_string(),
        "number too large to fit in target type" => "is too large".to_string(),
        "number too small to fit in target type" => "is too small".to_string(),
        "cannot parse integer from empty string" => "is empty; give a whole number".to_string(),
        _ => reason,
    };
    // An error about the query as a whole names no parameter: a plain 400 then.
    (path != ".").then_some((path, reason))
}

/// The name serde quotes right after `prefix` ("unknown field `x`, …").
fn quoted_after<'a>(reason: &'a str, prefix: &str) -> Option<&'a str> {
    let (name, _) = reason.strip_prefix(prefix)?.split_once('`')?;
    Some(name)
}

impl From<PathRejection> for Problem {
    fn from(rejection: PathRejection) -> Problem {
        Problem::bad_request(format!("bad path: {}", briefly(&rejection.body_text())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parsers_message_is_cut_at_a_character() {
        assert_eq!(briefly("short"), "short");
        let long = "é".repeat(PARSER_MESSAGE_CHARS + 50);
        let cut = briefly(&long);
        assert_eq!(cut.chars().count(), PARSER_MESSAGE_CHARS + 1);
        assert!(cut.ends_with('…'));
    }
}
