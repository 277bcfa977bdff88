//! A `pipeline` step as written: each field checked as far as a template allows.

use std::collections::BTreeMap;

use super::super::file::StepFile;
use super::super::{PipelineStep, PipelineToken};
use super::FileErrors;
use crate::checks;

pub(super) fn load_pipeline(i: usize, step: StepFile, fe: &mut FileErrors<'_>) -> PipelineStep {
    let field = |name: &str| format!("execute[{i}].{name}");
    let method = step
        .method
        .unwrap_or_else(|| "POST".into())
        .to_ascii_uppercase();
    if !PipelineStep::METHODS.contains(&method.as_str()) {
        fe.push(
            field("method"),
            format!(
                "{method:?} is not one of {}",
                PipelineStep::METHODS.join(", ")
            ),
        );
    }
    let url = fe.required(field("url"), step.url, "the URL that triggers the run");
    if !url.contains("{{")
        && !url.contains("{%")
        && let Err(message) = checks::check_http_url(&url)
    {
        fe.push(field("url"), message);
    }
    let headers = step.headers.unwrap_or_default();
    check_headers(i, &headers, step.token.is_some(), fe);
    if let Some(body) = &step.body {
        fe.template(field("body"), body);
    }
    let token = step.token.map(|name| {
        if name.trim().is_empty() || name.contains(['{', '}', ',', '=']) {
            fe.push(
                field("token"),
                "names a token of the server's --pipeline-tokens setting: a plain name, never the token itself",
            );
        }
        let header = step.token_header.unwrap_or_else(|| "Authorization".into());
        if !is_header_name(&header) {
            fe.push(field("token_header"), "is not a valid HTTP header name");
        } else if let Some(why) = owned_by_http(&header) {
            fe.push(field("token_header"), why);
        } else if ["cookie", "idempotency-key"].contains(&header.to_ascii_lowercase().as_str()) {
            fe.push(field("token_header"), "is set by the driver");
        }
        let prefix = step.token_prefix.unwrap_or_else(|| {
            if header.eq_ignore_ascii_case("authorization") {
                "Bearer ".into()
            } else {
                String::new()
            }
        });
        PipelineToken {
            name,
            header,
            prefix,
        }
    });
    let status_url = fe.required(field("status_url"),
        step.status_url,
        "a template over the trigger's `answer` (its JSON) or `location` (its Location header) giving the URL to poll, e.g. \"{{ answer.run_url }}\" or \"{{ location }}\"");
    let status_pointer = step.status_pointer.unwrap_or_default();
    if !status_pointer.starts_with('/') {
        fe.push(
            field("status_pointer"),
            "is required: a JSON pointer into the status answer, starting with '/', e.g. /status",
        );
    }
    let success = step.success.unwrap_or_default();
    if success.is_empty() {
        fe.push(
            field("success"),
            "is required: the status values that mean the run succeeded, e.g. [success]",
        );
    }
    let failure = step.failure.unwrap_or_default();
    if let Some(both) = success.iter().find(|v| failure.contains(v)) {
        fe.push(
            field("failure"),
            format!("{both:?} is also a success value"),
        );
    }
    PipelineStep {
        method,
        url,
        headers,
        body: step.body,
        token,
        status_url,
        status_pointer,
        success,
        failure,
        deadline_seconds: bounded(
            field("deadline_seconds"),
            step.deadline_seconds,
            PipelineStep::DEFAULT_DEADLINE_SECONDS,
            PipelineStep::MAX_DEADLINE_SECONDS,
            fe,
        ),
        poll_seconds: bounded(
            field("poll_seconds"),
            step.poll_seconds,
            PipelineStep::DEFAULT_POLL_SECONDS,
            PipelineStep::MAX_POLL_SECONDS,
            fe,
        ),
    }
}

/// Header names as HTTP allows them; credentials only through `token`, so that a
/// secret never sits in the catalog.
fn check_headers(
    i: usize,
    headers: &BTreeMap<String, String>,
    has_token: bool,
    fe: &mut FileErrors<'_>,
) {
    for (name, value) in headers {
        let path = format!("execute[{i}].headers.{name}");
        if !is_header_name(name) {
            fe.push(path, "is not a valid HTTP header name");
        } else if let Some(why) = owned_by_http(name) {
            fe.push(path, why);
        } else if [
            "authorization",
            "private-token",
            "cookie",
            "idempotency-key",
        ]
        .contains(&name.to_ascii_lowercase().as_str())
        {
            let why = if has_token || name.eq_ignore_ascii_case("idempotency-key") {
                "is set by the driver"
            } else {
                "would put a credential in the catalog; name a token of the server's settings in `token` instead"
            };
            fe.push(path, why);
        } else {
            fe.template(path, value);
        }
    }
}

fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c))
}

/// Headers the HTTP client sets from the URL and the body, or that steer a
/// proxy or the connection: set from a template, a requester's value could
/// pick another virtual host behind the allowed address (the token going with
/// it) or split the request.
fn owned_by_http(name: &str) -> Option<&'static str> {
    const OWNED: [&str; 15] = [
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "expect",
        "proxy-authorization",
        "proxy-connection",
        "forwarded",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
    ];
    OWNED
        .contains(&name.to_ascii_lowercase().as_str())
        .then_some(
            "is set by the HTTP client from the URL and the body (or steers a proxy or the \
         connection); it cannot be set here",
        )
}

fn bounded(
    path: String,
    value: Option<u64>,
    default: u64,
    max: u64,
    fe: &mut FileErrors<'_>,
) -> u64 {
    let value = value.unwrap_or(default);
    if !(1..=max).contains(&value) {
        fe.push(path, format!("must be between 1 and {max}"));
    }
    value
}
