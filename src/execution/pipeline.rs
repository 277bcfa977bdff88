//! A pipeline step ready for its driver, and the rules the driver asks while it
//! follows the run: where the run's status is, and what a status value means.

use serde_json::Value;

use crate::catalog::{PipelineStep, PipelineToken};
use crate::render::RenderError;
use crate::{checks, template};

/// A pipeline step with its request-side templates rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedPipeline {
    /// Which `execute` step this is, for messages.
    pub step_index: usize,
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    pub token: Option<PipelineToken>,
    /// Still a template: it reads the trigger's answer.
    pub status_url: String,
    pub status_pointer: String,
    pub success: Vec<String>,
    pub failure: Vec<String>,
    pub deadline_seconds: u64,
    pub poll_seconds: u64,
    /// The same for every attempt of this step of this revision: sent as the
    /// trigger's idempotency key so the CI/CD system can refuse a second run.
    pub run_key: String,
}

/// What a status answer says about the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PipelineVerdict {
    /// Still going, with the value read ("none yet" when there is none).
    Running(String),
    Succeeded(String),
    Failed(String),
}

/// The key of one step of one revision of one request, in one round of runs
/// (the first, or a retry's).
pub fn run_key(request_id: i64, revision: i64, step_index: usize, round: i64) -> String {
    match round {
        0 => format!("slipway-{request_id}-{revision}-{step_index}"),
        n => format!("slipway-{request_id}-{revision}-{step_index}-retry{n}"),
    }
}

pub(super) fn plan(
    step_index: usize,
    step: &PipelineStep,
    ctx: &minijinja::Value,
    run_key: String,
) -> Result<PlannedPipeline, RenderError> {
    let field = |name: &str| format!("execute[{step_index}].{name}");
    let render = |what: String, source: &str| {
        template::render_str(source, ctx).map_err(|message| RenderError { what, message })
    };
    // The token goes with this call: a value must not move it to another
    // endpoint of the same host, so values are percent-encoded as they go in.
    let url = template::render_url_str(&step.url, ctx)
        .map_err(|message| RenderError {
            what: field("url"),
            message,
        })?
        .trim()
        .to_string();
    checks::check_http_url(&url)
        .and_then(|()| refuse_dot_segments(&url))
        .map_err(|message| RenderError {
            what: field("url"),
            message,
        })?;
    let headers = step
        .headers
        .iter()
        .map(|(name, value)| {
            let what = field(&format!("headers.{name}"));
            let value = render(what.clone(), value)?;
            if value.chars().any(|c| c.is_control() && c != '\t') {
                return Err(RenderError {
                    what,
                    message: "the rendered value holds a line break or another control character, which no HTTP header may".into(),
                });
            }
            Ok((name.clone(), value))
        })
        .collect::<Result<Vec<_>, RenderError>>()?;
    let body = match &step.body {
        Some(source) => {
            let body = template::render_json_str(source, ctx).map_err(|message| RenderError {
                what: field("body"),
                message,
            })?;
            serde_json::from_str::<serde::de::IgnoredAny>(&body).map_err(|e| RenderError {
                what: field("body"),
                message: format!("the rendered body is not valid JSON: {e}"),
            })?;
            Some(body)
        }
        None => None,
    };
    Ok(PlannedPipeline {
        step_index,
        method: step.method.clone(),
        url,
        headers,
        body,
        token: step.token.clone(),
        status_url: step.status_url.clone(),
        status_pointer: step.status_pointer.clone(),
        success: step.success.clone(),
        failure: step.failure.clone(),
        deadline_seconds: step.deadline_seconds,
        poll_seconds: step.poll_seconds,
        run_key,
    })
}

/// A value of only dots passes percent-encoding as it is, and `%2e` is a dot to
/// a URL parser too: a rendered path with a `.` or `..` segment would be
/// resolved to another endpoint before it is sent, so it is refused.
fn refuse_dot_segments(url: &str) -> Result<(), String> {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let before_query = after_scheme.split(['?', '#']).next().unwrap_or_default();
    let path = before_query
        .split_once('/')
        .map_or("", |(_authority, path)| path);
    let dot_segment = path.split('/').find(|segment| {
        let dots = segment.to_ascii_lowercase().replace("%2e", ".");
        dots == "." || dots == ".."
    });
    match dot_segment {
        Some(segment) => Err(format!(
            "{url:?} has the path segment {segment:?}, which a URL resolves to another \
             path; a value in a URL may not be only dots"
        )),
        None => Ok(()),
    }
}

impl PlannedPipeline {
    /// The URL to poll, from the trigger's answer (its JSON body, `Null` when it
    /// had none) and its `Location` header.
    pub fn status_url(
        &self,
        answer: &Value,
        location: Option<&str>,
    ) -> Result<String, RenderError> {
        let what = format!("execute[{}].status_url", self.step_index);
        let ctx = minijinja::context! {
            answer => minijinja::Value::from_serialize(answer),
            location => location.unwrap_or_default(),
        };
        let url = template::render_str(&self.status_url, &ctx)
            .map_err(|message| RenderError {
                what: what.clone(),
                message: format!("cannot be rendered from the trigger's answer: {message}"),
            })?
            .trim()
            .to_string();
        checks::check_http_url(&url).map_err(|message| {
            // The message quotes the URL, which the CI/CD system chose and
            // which may carry a credential in its query or its user part.
            let shown = Self::redacted_url_text(&url);
            let message = message.replace(&format!("{url:?}"), &format!("{shown:?}"));
            RenderError {
                what,
                message: format!("rendered from the trigger's answer, {message}"),
            }
        })?;
        Ok(url)
    }

    /// A URL's text for a message without parsing it (it may not parse): only
    /// up to where a query or a fragment starts, without a user part, with "…"
    /// where something was left out. A query (`?private_token=…`) or a user part
    /// may hold a credential.
    pub fn redacted_url_text(url: &str) -> String {
        let before_query = url.split(['?', '#']).next().unwrap_or_default();
        let (scheme, rest) = match before_query.split_once("://") {
            Some((scheme, rest)) => (format!("{scheme}://"), rest),
            None => (String::new(), before_query),
        };
        let authority_end = rest.find('/').unwrap_or(rest.len());
        let (authority, path) = rest.split_at(authority_end);
        let host = authority
            .rsplit_once('@')
            .map_or(authority, |(_user, host)| host);
        let left_out = if host.len() < authority.len() || before_query.len() < url.len() {
            "…"
        } else {
            ""
        };
        format!("{scheme}{host}{path}{left_out}")
    }

    /// What the status answer says, read at the step's pointer.
    pub fn verdict(&self, answer: &Value) -> PipelineVerdict {
        let value = match answer.pointer(&self.status_pointer) {
            None | Some(Value::Null) => return PipelineVerdict::Running("none yet".into()),
            Some(Value::String(text)) => text.clone(),
            Some(other) => other.to_string(),
        };
        if self.success.contains(&value) {
            PipelineVerdict::Succeeded(value)
        } else if self.failure.contains(&value) {
            PipelineVerdict::Failed(value)
        } else {
            PipelineVerdict::Running(value)
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::{PlannedStep, RunInfo, plan as plan_steps};
    use super::*;
    use crate::catalog::{Catalog, SourceFile};
    use crate::render::ChangeSet;
    use crate::test_support::with_file;

    const WIDGET: &str = r#"name: widget
title: Widget
description: A test type.
owner: platform
parameters:
  type: object
  required: [name, branch]
  properties:
    name: { type: string }
    branch: { type: string }
naming: { template: "widget" }
review: { approvers: { role: reviewer } }
outputs:
  - { path: "w/widget.yaml", template: widget/widget.yaml.j2 }
execute:
  - driver: pipeline
    url: "https://ci.example.com/api/v4/projects/{{ name }}/pipeline?ref={{ branch }}"
    token: ci
    body: '{}'
    status_url: "{{ answer.run_url }}"
    status_pointer: /status
    success: [success]
"#;

    fn widget_catalog() -> Catalog {
        let mut files = with_file("types/widget.yaml", WIDGET);
        files.push(SourceFile {
            path: "templates/widget/widget.yaml.j2".into(),
            content: "widget: {{ resource_name }}\n".into(),
        });
        Catalog::from_files(&files).unwrap_or_else(|e| panic!("{e}"))
    }

    fn planned_url(name: &str, branch: &str) -> Result<String, RenderError> {
        let catalog = widget_catalog();
        let Some(ty) = catalog.resource_type("widget") else {
            panic!("widget is loaded");
        };
        let run = RunInfo {
            request_id: 7,
            revision: 1,
            requester: "alice",
            round: 0,
        };
        let params = json!({ "name": name, "branch": branch });
        let steps = plan_steps(ty, &params, "widget", &ChangeSet::default(), run)?;
        match steps.as_slice() {
            [PlannedStep::Pipeline(pipeline)] => Ok(pipeline.url.clone()),
            other => panic!("{other:?}"),
        }
    }

    /// `catalog check` plans a pipeline step with sample values: its URL renders.
    #[test]
    fn catalog_check_renders_a_pipeline_url_from_sample_values() {
        assert_eq!(crate::render::check_samples(&widget_catalog()), []);
    }

    #[test]
    fn a_status_url_that_is_refused_is_quoted_without_its_query_or_user() {
        for (url, shown) in [
            (
                "https://deploy:s3cret@ci.example.com/runs/7?private_token=glpat-x#f",
                "https://ci.example.com/runs/7…",
            ),
            (
                "https://ci.example.com/runs/7",
                "https://ci.example.com/runs/7",
            ),
            ("ci.example.com?token=x", "ci.example.com…"),
        ] {
            assert_eq!(PlannedPipeline::redacted_url_text(url), shown, "{url}");
        }
        let pipeline = PlannedPipeline {
            step_index: 0,
            method: "POST".into(),
            url: "https://ci.example.com/runs".into(),
            headers: Vec::new(),
            body: None,
            token: None,
            status_url: "{{ answer.run_url }}".into(),
            status_pointer: "/status".into(),
            success: vec!["success".into()],
            failure: Vec::new(),
            deadline_seconds: 10,
            poll_seconds: 1,
            run_key: "slipway-1-1-0".into(),
        };
        let answer =
            json!({"run_url": "ftp://deploy:s3cret@ci.example.com/runs/7?private_token=glpat-x"});
        let refused = pipeline.status_url(&answer, None);
        let Err(error) = &refused else {
            panic!("{refused:?}");
        };
        assert!(
            error.message.contains("\"ftp://ci.example.com/runs/7…\""),
            "{error}"
        );
        for hidden in ["deploy", "s3cret", "glpat-x"] {
            assert!(!error.message.contains(hidden), "{error}");
        }
    }

    /// The platform's token goes with the trigger: a parameter must not move the
    /// call to another endpoint of the same host.
    #[test]
    fn a_value_in_the_trigger_url_stays_in_its_segment() {
        assert_eq!(
            planned_url("42", "main"),
            Ok("https://ci.example.com/api/v4/projects/42/pipeline?ref=main".to_string())
        );
        assert_eq!(
            planned_url("x/../../other/dispatches?", "main#x&token=@evil"),
            Ok(
                "https://ci.example.com/api/v4/projects/x%2F..%2F..%2Fother%2Fdispatches%3F\
                /pipeline?ref=main%23x%26token%3D%40evil"
                    .to_string()
            )
        );
        // An encoded dot is a dot to a URL parser, but a value's `%` is encoded too.
        assert_eq!(
            planned_url("%2e%2E", "main"),
            Ok("https://ci.example.com/api/v4/projects/%252e%252E/pipeline?ref=main".to_string())
        );
        for dots in ["..", "."] {
            let refused = planned_url(dots, "main");
            let Err(error) = &refused else {
                panic!("{dots:?}: {refused:?}");
            };
            assert_eq!(error.what, "execute[0].url");
            assert!(error.message.contains("path segment"), "{error}");
        }
        // Dots in a query are only text.
        assert!(planned_url("42", "..").is_ok());
        for resolved in [
            "https://ci.example.com/a/%2E%2e/b",
            "https://ci.example.com/a/.%2e",
            "http://ci.example.com/./b?x=1",
        ] {
            assert!(refuse_dot_segments(resolved).is_err(), "{resolved}");
        }
        for kept in [
            "https://ci.example.com/a/.../b",
            "https://ci.example.com/a/.github/b",
            "https://ci.example.com",
            "https://ci.example.com?x=..",
            "https://ci.example.com/a#/../b",
        ] {
            assert_eq!(refuse_dot_segments(kept), Ok(()), "{kept}");
        }
    }
}
