//! The pipeline driver: triggers a CI/CD run over HTTP (GitHub Actions
//! `workflow_dispatch`, a GitLab pipeline, an Argo Workflow, …) and follows its
//! status until it succeeds, fails or passes its deadline.
//!
//! Idempotence: the trigger carries an `Idempotency-Key` that is the same for
//! every attempt of the step (request, revision, step), which templates can also
//! put into the body (an Argo Workflow's name, a workflow input). The run's
//! status URL is recorded before anything is polled, so a job resumed after a
//! crash follows the run it started instead of starting another. The token comes
//! from the settings by name and is never written to a log, an error or the step.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::Method;
use serde_json::Value;
use slipway_core::execution::{PipelineVerdict, PlannedPipeline, PlannedStep};

use super::{Driver, DriverError, ExternalRun, StepContext, StepOutcome};
use crate::config::Secret;
use crate::outbound::{Outbound, OutboundError, OutboundRequest, OutboundResponse};

/// The header that carries the step's run key to the CI/CD system.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";
/// How pipeline tokens are named in messages.
pub const TOKENS_SETTING: &str = "--pipeline-tokens (SLIPWAY_PIPELINE_TOKENS)";
/// One call to the CI/CD system waits at most this long.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How much of an answer an error message quotes.
const QUOTED: usize = 300;

#[derive(Clone)]
pub struct PipelineDriver {
    outbound: Outbound,
    tokens: Arc<BTreeMap<String, Secret>>,
}

impl std::fmt::Debug for PipelineDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelineDriver")
            .field("tokens", &self.tokens.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Writes of a started run's record, at most, before the step gives up (about
/// six seconds in all): each failure left unrecorded means a second run later.
const REMEMBER_TRIES: u32 = 5;

#[async_trait]
impl Driver for PipelineDriver {
    fn name(&self) -> &'static str {
        "pipeline"
    }

    async fn run(
        &self,
        step: &PlannedStep,
        ctx: &StepContext<'_>,
    ) -> Result<StepOutcome, DriverError> {
        let PlannedStep::Pipeline(pipeline) = step else {
            return Err(DriverError::Permanent(format!(
                "the pipeline driver was handed a {} step",
                step.driver()
            )));
        };
        let headers = self.headers(pipeline)?;
        let run = Run {
            driver: self,
            pipeline,
            headers: &headers,
        };
        let mut log = Vec::new();
        let external = match ctx.journal.recall().await? {
            Some(recorded) => {
                log.push(format!(
                    "following the run an earlier attempt started: {}",
                    recorded.status_url
                ));
                recorded
            }
            None => {
                let (started, lines) = self
                    .trigger_and_remember(pipeline, &headers, ctx.journal.detached())
                    .await?;
                log.extend(lines);
                // Another worker's run may have been recorded first: that one is
                // followed (the first record stays), not this one.
                ctx.journal.recall().await?.unwrap_or(started)
            }
        };
        let verdict = run.follow(&external, &mut log).await;
        let log = log.into_iter().map(|line| self.scrub(&line)).collect();
        match verdict {
            Ok(value) => Ok(StepOutcome {
                summary: format!("pipeline run {} ended {value}", external.status_url),
                commit: None,
                log,
            }),
            Err(error) => Err(self.scrub_error(error)),
        }
    }
}

impl PipelineDriver {
    pub fn new(outbound: Outbound, tokens: BTreeMap<String, Secret>) -> PipelineDriver {
        PipelineDriver {
            outbound,
            tokens: Arc::new(tokens),
        }
    }

    /// The step's headers, the token's and the run key.
    fn headers(&self, pipeline: &PlannedPipeline) -> Result<Vec<(String, String)>, DriverError> {
        let mut headers = pipeline.headers.clone();
        headers.push((IDEMPOTENCY_HEADER.into(), pipeline.run_key.clone()));
        if let Some(token) = &pipeline.token {
            let value = self.tokens.get(&token.name).ok_or_else(|| {
                DriverError::Permanent(format!(
                    "no pipeline token is named {:?} in the server's {TOKENS_SETTING} setting",
                    token.name
                ))
            })?;
            headers.push((
                token.header.clone(),
                format!("{}{}", token.prefix, value.expose()),
            ));
        }
        Ok(headers)
    }

    /// Starts the run and records it, on a task of its own: a step stopped
    /// meanwhile (a cancel, a shutdown) must not leave a run started but not
    /// recorded, which the next attempt would start again. A record that fails
    /// for a moment is written again in place, for the same reason.
    async fn trigger_and_remember(
        &self,
        pipeline: &PlannedPipeline,
        headers: &[(String, String)],
        journal: Arc<dyn super::StepJournal>,
    ) -> Result<(ExternalRun, Vec<String>), DriverError> {
        let (driver, pipeline, headers) = (self.clone(), pipeline.clone(), headers.to_vec());
        let task = tokio::spawn(async move {
            let run = Run {
                driver: &driver,
                pipeline: &pipeline,
                headers: &headers,
            };
            let mut log = Vec::new();
            let started = run.trigger(&mut log).await?;
            let mut pause = Duration::from_millis(200);
            for tries_left in (0..REMEMBER_TRIES).rev() {
                match journal.remember(&started).await {
                    Ok(()) => break,
                    Err(error) if tries_left == 0 => return Err(error),
                    Err(_) => {
                        tokio::time::sleep(pause).await;
                        pause *= 2;
                    }
                }
            }
            Ok((started, log))
        });
        task.await
            .map_err(|e| DriverError::Retryable(format!("the trigger's task ended: {e}")))?
    }

    /// A CI/CD system may echo what it was sent; nothing stored holds a token.
    fn scrub(&self, text: &str) -> String {
        self.tokens
            .values()
            .filter(|t| !t.expose().is_empty())
            .fold(text.to_string(), |text, t| text.replace(t.expose(), "***"))
    }

    fn scrub_error(&self, error: DriverError) -> DriverError {
        match error {
            DriverError::Retryable(m) => DriverError::Retryable(self.scrub(&m)),
            DriverError::Permanent(m) => DriverError::Permanent(self.scrub(&m)),
        }
    }
}

/// One step's run, from trigger to verdict.
struct Run<'a> {
    driver: &'a PipelineDriver,
    pipeline: &'a PlannedPipeline,
    headers: &'a [(String, String)],
}

impl Run<'_> {
    async fn call(
        &self,
        method: Method,
        url: &str,
        body: Option<String>,
    ) -> Result<OutboundResponse, OutboundError> {
        let token_header = self.pipeline.token.as_ref().map(|t| t.header.as_str());
        let headers = headers_for(self.headers, token_header, &self.pipeline.url, url);
        self.driver
            .outbound
            .send(OutboundRequest {
                method,
                url,
                headers: &headers,
                body,
                timeout: CALL_TIMEOUT,
            })
            .await
    }

    /// A trigger that went out without an answer may have started a run, and the
    /// CI/CD systems Slipway speaks to do not all refuse a repeated key: sending it
    /// again could start a second one. The request fails instead, for a person to
    /// look (a retry is a new round with a key of its own; taking it over records
    /// what was done by hand).
    fn maybe_started(&self, why: &str) -> DriverError {
        DriverError::Permanent(format!(
            "the trigger's answer was lost ({why}): a run may have started under the key {}. \
             It is not sent again by itself; look for that run in the CI/CD system, then retry \
             the request or take it over",
            self.pipeline.run_key
        ))
    }

    /// Starts the run and reads where its status is, from the answer's body or
    /// its `Location` header.
    async fn trigger(&self, log: &mut Vec<String>) -> Result<ExternalRun, DriverError> {
        let pipeline = self.pipeline;
        let method = Method::from_bytes(pipeline.method.as_bytes()).map_err(|_| {
            DriverError::Permanent(format!("{:?} is not an HTTP method", pipeline.method))
        })?;
        let started_at = crate::storage::now_millis();
        let answer = self
            .call(method.clone(), &pipeline.url, pipeline.body.clone())
            .await
            .map_err(|e| match e {
                OutboundError::Refused(m) => DriverError::Permanent(m),
                OutboundError::Unreachable(m) => DriverError::Retryable(m),
                OutboundError::Lost(m) => self.maybe_started(&m),
            })?;
        let place = crate::outbound::redacted(&answer.url);
        if !(200..300).contains(&answer.status) {
            let message = format!(
                "triggering {method} {place} answered {}: {}",
                answer.status,
                quote(&answer.body)
            );
            // A busy or broken CI/CD system may take it later; a refusal will not.
            // A gateway that gave up waiting may have passed the trigger on.
            return Err(match answer.status {
                504 => self.maybe_started(&message),
                429 | 500.. => DriverError::Retryable(message),
                _ => DriverError::Permanent(message),
            });
        }
        let body: Value = serde_json::from_str(&answer.body).unwrap_or(Value::Null);
        let location = answer
            .headers
            .get(reqwest::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .and_then(|l| answer.url.join(l).ok())
            .map(|l| l.to_string());
        let status_url = pipeline
            .status_url(&body, location.as_deref())
            .map_err(|e| {
                DriverError::Permanent(format!(
                    "triggered {method} {place} ({}), but {e}; its answer: {}",
                    answer.status,
                    quote(&answer.body)
                ))
            })?;
        log.push(format!(
            "triggered {method} {place}: {}; following {status_url}",
            answer.status
        ));
        Ok(ExternalRun {
            status_url,
            started_at,
        })
    }

    /// Polls the run's status until it reads a success or failure value, or the
    /// deadline (counted from the trigger) passes. A status URL that does not
    /// answer for a while is asked again; the deadline bounds it.
    async fn follow(
        &self,
        run: &ExternalRun,
        log: &mut Vec<String>,
    ) -> Result<String, DriverError> {
        let pipeline = self.pipeline;
        let deadline_ms =
            i64::try_from(pipeline.deadline_seconds.saturating_mul(1000)).unwrap_or(i64::MAX);
        let mut last_seen = String::new();
        loop {
            let seen = match self.call(Method::GET, &run.status_url, None).await {
                Err(OutboundError::Refused(m)) => return Err(DriverError::Permanent(m)),
                Err(OutboundError::Unreachable(m) | OutboundError::Lost(m)) => {
                    format!("no answer: {m}")
                }
                Ok(answer) if (200..300).contains(&answer.status) => {
                    let body: Value = serde_json::from_str(&answer.body).unwrap_or(Value::Null);
                    match pipeline.verdict(&body) {
                        PipelineVerdict::Succeeded(value) => {
                            log.push(format!("status {value}: succeeded"));
                            return Ok(value);
                        }
                        PipelineVerdict::Failed(value) => {
                            log.push(format!("status {value}: failed"));
                            return Err(DriverError::Permanent(format!(
                                "pipeline run {} ended {value}",
                                run.status_url
                            )));
                        }
                        PipelineVerdict::Running(value) => format!("status {value}"),
                    }
                }
                Ok(answer) if answer.status >= 500 || answer.status == 429 => {
                    format!("status URL answered {}", answer.status)
                }
                Ok(answer) => {
                    return Err(DriverError::Permanent(format!(
                        "the status URL {} answered {}: {}",
                        run.status_url,
                        answer.status,
                        quote(&answer.body)
                    )));
                }
            };
            if seen != last_seen {
                log.push(seen.clone());
                last_seen = seen;
            }
            let elapsed = crate::storage::now_millis() - run.started_at;
            if elapsed >= deadline_ms {
                return Err(DriverError::Permanent(format!(
                    "pipeline run {} did not finish within {} s (last: {last_seen})",
                    run.status_url, pipeline.deadline_seconds
                )));
            }
            let left = Duration::from_millis(u64::try_from(deadline_ms - elapsed).unwrap_or(0));
            tokio::time::sleep(Duration::from_secs(pipeline.poll_seconds).min(left)).await;
        }
    }
}

/// The headers of a call to `url`. The token goes only where the run is
/// triggered (same scheme, host and port): a status URL is what the CI/CD system
/// answered, and may point at another allowed host, or at plain http.
fn headers_for(
    headers: &[(String, String)],
    token_header: Option<&str>,
    trigger_url: &str,
    url: &str,
) -> Vec<(String, String)> {
    let same_origin = match (url::Url::parse(url), url::Url::parse(trigger_url)) {
        (Ok(to), Ok(trigger)) => to.origin() == trigger.origin(),
        _ => false,
    };
    headers
        .iter()
        .filter(|(name, _)| same_origin || Some(name.as_str()) != token_header)
        .cloned()
        .collect()
}

/// The start of an answer, on one line, for an error message.
fn quote(body: &str) -> String {
    let line: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(QUOTED) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None if line.is_empty() => "(empty)".into(),
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_goes_only_where_the_run_was_triggered() {
        let headers = vec![
            ("accept".to_string(), "application/json".to_string()),
            ("authorization".to_string(), "Bearer canary".to_string()),
        ];
        let trigger = "https://ci.example/api/runs";
        let names = |url: &str| -> Vec<String> {
            headers_for(&headers, Some("authorization"), trigger, url)
                .into_iter()
                .map(|(name, _)| name)
                .collect()
        };
        assert_eq!(
            names("https://ci.example/api/runs/7"),
            ["accept", "authorization"]
        );
        for elsewhere in [
            "http://ci.example/api/runs/7",
            "https://ci.example:8443/api/runs/7",
            "https://other.example/runs/7",
            "not a url",
        ] {
            assert_eq!(names(elsewhere), ["accept"], "{elsewhere}");
        }
    }
}
