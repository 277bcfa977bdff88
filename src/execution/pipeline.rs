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
    let url = render(field("url"), &step.url)?.trim().to_string();
    checks::check_http_url(&url).map_err(|message| RenderError {
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
        checks::check_http_url(&url).map_err(|message| RenderError {
            what,
            message: format!("rendered from the trigger's answer, {message}"),
        })?;
        Ok(url)
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
