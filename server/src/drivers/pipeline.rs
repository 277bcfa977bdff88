//! The pipeline driver: triggers a CI/CD run over HTTP (GitHub Actions
//! `workflow_dispatch`, a GitLab pipeline, an Argo Workflow, …) and follows its
//! status until it succeeds, fails or passes its deadline.
//!
//! Idempotence: the trigger carries an `Idempotency-Key` that is the same for
//! every attempt of the step (request, revision, step), which templates can also
//! put into the body (an Argo Workflow's name, a workflow input). Before the
//! trigger goes out, the attempt records that it is about to send it, in a
//! transaction that checks it still holds the job; the run's status URL is
//! recorded over that before anything is polled. A job resumed after a crash
//! follows the run it started instead of starting another, and one that finds
//! the intent without a run (a crash or a lost lease between the two) starts
//! none: a person looks for it, as GitHub and GitLab ignore the key. The token comes
//! from the settings by name and is never written to a log, an error or the step.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::Method;
use serde_json::Value;
use slipway_core::execution::{PipelineVerdict, PlannedPipeline, PlannedStep};

use super::{Driver, DriverError, ExternalRun, Recalled, StepContext, StepOutcome};
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
/// How much of a status value a line or an error shows: the value is the
/// CI/CD system's, and may be a megabyte or new at every poll.
const STATUS_SHOWN: usize = 200;
/// The status lines one step's log keeps from the start of its polling, and
/// from its end: a value that changes at every poll of a long deadline would
/// otherwise add a line each time.
const FIRST_STATUS_LINES: usize = 20;
const LAST_STATUS_LINES: usize = 179;

#[derive(Clone)]
pub struct PipelineDriver {
    outbound: Outbound,
    tokens: Arc<BTreeMap<String, Secret>>,
    /// Runs this process started whose record could not be written yet, by run
    /// key: a later attempt of the step records and follows one of these
    /// instead of triggering a second run.
    unrecorded: Arc<std::sync::Mutex<BTreeMap<String, ExternalRun>>>,
}

impl std::fmt::Debug for PipelineDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelineDriver")
            .field("tokens", &self.tokens.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// A started run's record that cannot be written is written again, with pauses
/// growing to this, for as long as the step runs: a run left unrecorded would be
/// started a second time by a later attempt.
const MAX_REMEMBER_PAUSE: Duration = Duration::from_secs(10);
/// Tries left once the step is stopped (a cancel, a shutdown, its timeout),
/// about a second and a half in all, before a person is asked to take over.
const REMEMBER_TRIES_AFTER_STOP: u32 = 3;

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
        // A CI/CD system may echo what it was sent (the token among it) in any
        // answer an error or a line quotes: nothing leaves here unscrubbed.
        match self.run_pipeline(pipeline, ctx).await {
            Ok(outcome) => Ok(StepOutcome {
                summary: self.scrub(&outcome.summary),
                commit: outcome.commit,
                log: outcome.log.iter().map(|line| self.scrub(line)).collect(),
            }),
            Err(error) => Err(self.scrub_error(error)),
        }
    }
}

impl PipelineDriver {
    async fn run_pipeline(
        &self,
        pipeline: &PlannedPipeline,
        ctx: &StepContext<'_>,
    ) -> Result<StepOutcome, DriverError> {
        let headers = self.headers(pipeline)?;
        let run = Run {
            driver: self,
            pipeline,
            headers: &headers,
        };
        let mut log = Vec::new();
        let recalled = ctx.journal.recall().await?;
        let external = match self.earlier_run(recalled, pipeline, ctx, &mut log).await? {
            Some(run) => run,
            // Intended while this attempt holds the job: no other attempt sends
            // the trigger, and one after it finds the intent if this one dies.
            None if ctx.journal.intend().await? => {
                let (started, lines) = self.trigger_and_remember(pipeline, &headers, ctx).await?;
                log.extend(lines);
                match ctx.journal.recall().await? {
                    Recalled::Started(recorded) => recorded,
                    _ => started,
                }
            }
            // Another attempt came as far meanwhile.
            None => {
                let recalled = ctx.journal.recall().await?;
                self.earlier_run(recalled, pipeline, ctx, &mut log)
                    .await?
                    .ok_or_else(|| may_have_started(&pipeline.run_key))?
            }
        };
        let ended = run.follow(&external, &mut log).await;
        // Seen to end, a run is not followed by a retry, which starts a new
        // one; one whose following a cancel cut short (this future dropped) is.
        ctx.journal.ended().await?;
        let value = ended?;
        Ok(StepOutcome {
            summary: format!(
                "pipeline run {} ended {value}",
                shown_url(&external.status_url)
            ),
            commit: None,
            log,
        })
    }

    /// The run an earlier attempt of the step started, to follow instead of
    /// triggering one; none when no attempt came as far as triggering. One that
    /// was about to and left no record may have started a run: unless this
    /// process knows it (its record failed), a person looks for it.
    async fn earlier_run(
        &self,
        recalled: Recalled,
        pipeline: &PlannedPipeline,
        ctx: &StepContext<'_>,
        log: &mut Vec<String>,
    ) -> Result<Option<ExternalRun>, DriverError> {
        match recalled {
            Recalled::Nothing => Ok(None),
            Recalled::Started(recorded) => {
                self.unrecorded_runs().remove(&pipeline.run_key);
                log.push(format!(
                    "following the run an earlier attempt started: {}",
                    shown_url(&recorded.status_url)
                ));
                Ok(Some(recorded))
            }
            Recalled::Intended => {
                let unrecorded = self.unrecorded_runs().get(&pipeline.run_key).cloned();
                let Some(started) = unrecorded else {
                    return Err(may_have_started(&pipeline.run_key));
                };
                // Started here, but its record could not be written then.
                log.push(format!(
                    "an earlier attempt started {} but could not record it; \
                     recording and following it",
                    shown_url(&started.status_url)
                ));
                let (driver, key, run) = (self.clone(), pipeline.run_key.clone(), started.clone());
                let (journal, stop) = (ctx.journal.detached(), ctx.stop.clone());
                tokio::spawn(async move { driver.remember(&key, &run, journal, &stop).await })
                    .await
                    .map_err(|e| {
                        DriverError::Permanent(format!(
                            "recording the pipeline run {} stopped ({e}); it is not \
                             started again by itself: follow it in the CI/CD system, \
                             then retry the request or take it over",
                            shown_url(&started.status_url)
                        ))
                    })??;
                Ok(Some(started))
            }
        }
    }

    fn unrecorded_runs(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, ExternalRun>> {
        // The map is only read and written whole: a panic elsewhere leaves it sound.
        self.unrecorded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records a run this process started, trying again with growing pauses while
    /// the step runs, and a few times more once it is stopped. A run that still
    /// cannot be recorded is a person's to follow: the error is permanent and
    /// names its status URL, and it stays known to this process, whose later
    /// attempts record it instead of triggering another.
    async fn remember(
        &self,
        run_key: &str,
        run: &ExternalRun,
        journal: Arc<dyn super::StepJournal>,
        stop: &tokio_util::sync::CancellationToken,
    ) -> Result<(), DriverError> {
        let mut pause = Duration::from_millis(200);
        let mut tries_after_stop = 0;
        loop {
            let error = match journal.remember(run).await {
                Ok(()) => {
                    self.unrecorded_runs().remove(run_key);
                    return Ok(());
                }
                Err(error) => error,
            };
            tracing::warn!(%error, run_key, "could not record a started pipeline run; trying again");
            if stop.is_cancelled() {
                tries_after_stop += 1;
                if tries_after_stop >= REMEMBER_TRIES_AFTER_STOP {
                    return Err(DriverError::Permanent(format!(
                        "the pipeline run {} was started under the key {run_key} but could not be \
                         recorded ({error}); it is not followed, nor started again, by itself: \
                         follow it in the CI/CD system, then retry the request or take it over",
                        shown_url(&run.status_url)
                    )));
                }
                tokio::time::sleep(pause).await;
                pause *= 2;
            } else {
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    // Stopped: the tries after the stop start with short pauses.
                    () = stop.cancelled() => pause = Duration::from_millis(200),
                }
                pause = (pause * 2).min(MAX_REMEMBER_PAUSE);
            }
        }
    }
}

impl PipelineDriver {
    pub fn new(outbound: Outbound, tokens: BTreeMap<String, Secret>) -> PipelineDriver {
        PipelineDriver {
            outbound,
            tokens: Arc::new(tokens),
            unrecorded: Arc::default(),
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
    /// is written again in place for as long as the step runs, for the same
    /// reason (see [`Self::remember`]); once the trigger went out, no error is
    /// one to retry.
    async fn trigger_and_remember(
        &self,
        pipeline: &PlannedPipeline,
        headers: &[(String, String)],
        ctx: &StepContext<'_>,
    ) -> Result<(ExternalRun, Vec<String>), DriverError> {
        let (driver, pipeline, headers) = (self.clone(), pipeline.clone(), headers.to_vec());
        let (journal, stop) = (ctx.journal.detached(), ctx.stop.clone());
        let run_key = pipeline.run_key.clone();
        let task = tokio::spawn(async move {
            // A cancel that came as the intent was written sends nothing.
            if stop.is_cancelled() {
                journal.withdraw().await?;
                return Err(DriverError::Retryable(
                    "the step was stopped before its trigger went out".into(),
                ));
            }
            let run = Run {
                driver: &driver,
                pipeline: &pipeline,
                headers: &headers,
            };
            let mut log = Vec::new();
            let started = match run.trigger(&mut log).await {
                Ok(started) => started,
                // Only a trigger that never went out (no connection) or that the
                // system rate-limited is one to retry: the intent goes,
                // or the next attempt would take it for a run that may have
                // started.
                Err(DriverError::Retryable(why)) => {
                    journal.withdraw().await?;
                    return Err(DriverError::Retryable(why));
                }
                Err(error) => return Err(error),
            };
            driver
                .unrecorded_runs()
                .insert(pipeline.run_key.clone(), started.clone());
            driver
                .remember(&pipeline.run_key, &started, journal, &stop)
                .await?;
            Ok((started, log))
        });
        task.await.map_err(|e| {
            DriverError::Permanent(format!(
                "the trigger's task ended ({e}): a run may have started under the key {run_key}. \
                 It is not sent again by itself; look for that run in the CI/CD system, then \
                 retry the request or take it over"
            ))
        })?
    }

    /// A CI/CD system may echo what it was sent; nothing stored holds a token.
    fn scrub(&self, text: &str) -> String {
        self.tokens
            .values()
            .filter(|t| !t.expose().is_empty())
            .fold(text.to_string(), |text, t| text.replace(t.expose(), "***"))
    }

    /// The start of a remote's answer for a message, scrubbed before it is cut:
    /// a token that straddles the cut would leave its first part behind.
    fn quote_answer(&self, body: &str) -> String {
        quote(&self.scrub(body))
    }

    /// A status value as a line or an error shows it: scrubbed, then cut.
    fn shown_status(&self, value: &str) -> String {
        let line = one_line(&self.scrub(value));
        cut(&line, STATUS_SHOWN)
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
                self.driver.quote_answer(&answer.body)
            );
            // A rate limit (429) is a CI/CD system's own "not now": nothing
            // started, and it may take the trigger later; a refusal will not.
            // Any 5xx may come from a gateway or proxy that passed the trigger
            // on before giving up (a 503 "upstream reset", a 504), or from a
            // system that broke after starting the run (500): sending it again
            // could start a second run.
            return Err(match answer.status {
                429 => DriverError::Retryable(message),
                500.. => self.maybe_started(&message),
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
                    self.driver.quote_answer(&answer.body)
                ))
            })?;
        log.push(format!(
            "triggered {method} {place}: {}; following {}",
            answer.status,
            shown_url(&status_url)
        ));
        Ok(ExternalRun {
            status_url,
            started_at,
        })
    }

    /// Polls the run's status until it reads a success or failure value, or the
    /// deadline (counted from the trigger) passes. A status URL that does not
    /// answer for a while is asked again; the deadline bounds it. The lines it
    /// adds to `log` are bounded (see [`StatusLines`]).
    async fn follow(
        &self,
        run: &ExternalRun,
        log: &mut Vec<String>,
    ) -> Result<String, DriverError> {
        let mut lines = StatusLines::default();
        let ended = self.poll_until_done(run, &mut lines).await;
        lines.append_to(log);
        ended
    }

    async fn poll_until_done(
        &self,
        run: &ExternalRun,
        lines: &mut StatusLines,
    ) -> Result<String, DriverError> {
        let pipeline = self.pipeline;
        let place = shown_url(&run.status_url);
        // The outbound layer's own refusal of a URL it cannot parse quotes it
        // whole, credentials and all.
        if let Err(e) = url::Url::parse(&run.status_url) {
            return Err(DriverError::Permanent(format!(
                "the status URL {place} is not a URL: {e}"
            )));
        }
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
                            let value = self.driver.shown_status(&value);
                            lines.push(format!("status {value}: succeeded"));
                            return Ok(value);
                        }
                        PipelineVerdict::Failed(value) => {
                            let value = self.driver.shown_status(&value);
                            lines.push(format!("status {value}: failed"));
                            return Err(DriverError::Permanent(format!(
                                "pipeline run {place} ended {value}"
                            )));
                        }
                        PipelineVerdict::Running(value) => {
                            format!("status {}", self.driver.shown_status(&value))
                        }
                    }
                }
                Ok(answer) if answer.status >= 500 || answer.status == 429 => {
                    format!("status URL answered {}", answer.status)
                }
                Ok(answer) => {
                    return Err(DriverError::Permanent(format!(
                        "the status URL {place} answered {}: {}",
                        answer.status,
                        self.driver.quote_answer(&answer.body)
                    )));
                }
            };
            if seen != last_seen {
                lines.push(seen.clone());
                last_seen = seen;
            }
            let elapsed = crate::storage::now_millis() - run.started_at;
            if elapsed >= deadline_ms {
                return Err(DriverError::Permanent(format!(
                    "pipeline run {place} did not finish within {} s (last: {last_seen})",
                    pipeline.deadline_seconds
                )));
            }
            let left = Duration::from_millis(u64::try_from(deadline_ms - elapsed).unwrap_or(0));
            tokio::time::sleep(Duration::from_secs(pipeline.poll_seconds).min(left)).await;
        }
    }
}

/// The status lines of one run's polling: the first few and the latest, with
/// how many between were left out, at most 200 in all.
#[derive(Default)]
struct StatusLines {
    first: Vec<String>,
    last: VecDeque<String>,
    left_out: usize,
}

impl StatusLines {
    fn push(&mut self, line: String) {
        if self.first.len() < FIRST_STATUS_LINES {
            self.first.push(line);
            return;
        }
        if self.last.len() == LAST_STATUS_LINES {
            self.last.pop_front();
            self.left_out += 1;
        }
        self.last.push_back(line);
    }

    fn append_to(self, log: &mut Vec<String>) {
        log.extend(self.first);
        if self.left_out > 0 {
            log.push(format!("… {} status lines left out …", self.left_out));
        }
        log.extend(self.last);
    }
}

/// An attempt was about to trigger the run and left no record of one: its
/// process ended, or another worker took the job over, between the two. The
/// CI/CD system may have started a run (GitHub and GitLab start a second one
/// for the same key), so none is triggered again by itself.
fn may_have_started(run_key: &str) -> DriverError {
    DriverError::Permanent(format!(
        "an earlier attempt of this step was about to trigger its run under the key {run_key} \
         when it stopped (its process ended, or another worker took the job over), and no run \
         was recorded: one may have started. It is not sent again by itself; look for that run \
         in the CI/CD system, then retry the request or take it over"
    ))
}

/// A status URL for a line, a summary or an error: the CI/CD system chose it,
/// and its query (`?private_token=…`) or its user part may hold a credential.
fn shown_url(url: &str) -> String {
    if let Ok(parsed) = url::Url::parse(url) {
        return crate::outbound::redacted(&parsed);
    }
    // Not a URL to the parser: it is refused before it is polled.
    PlannedPipeline::redacted_url_text(url)
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

/// The start of an answer, on one line, for an error message. Scrub it first
/// (see [`PipelineDriver::quote_answer`]).
fn quote(body: &str) -> String {
    let line = one_line(body);
    if line.is_empty() {
        return "(empty)".into();
    }
    cut(&line, QUOTED)
}

/// A remote's text on one line: a line break in it would start a log line of
/// its own.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// At most `max_chars` characters of `text`, cut on a character's boundary,
/// with "…" where it was cut.
fn cut(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::http::{HeaderMap, StatusCode};
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::drivers::{NoJournal, ProgressLines, StepJournal};

    const TOKEN: &str = "ci-canary-token-40c2";

    /// A CI/CD system on loopback that answers every trigger with `status` and
    /// the Authorization header it was sent, and counts the triggers.
    async fn ci(status: StatusCode) -> Result<(String, Arc<AtomicUsize>), std::io::Error> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let triggers = Arc::new(AtomicUsize::new(0));
        let counted = triggers.clone();
        let app = axum::Router::new()
            .route(
                "/runs",
                axum::routing::post(move |headers: HeaderMap| async move {
                    counted.fetch_add(1, Ordering::SeqCst);
                    let sent = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    (
                        status,
                        format!("{{\"id\": 7, \"message\": \"you sent Authorization: {sent}\"}}"),
                    )
                }),
            )
            .route(
                "/runs/7",
                axum::routing::get(|| async { "{\"status\": \"success\"}" }),
            );
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok((base, triggers))
    }

    fn driver_for(base: &str) -> Result<PipelineDriver, String> {
        let host = base.trim_start_matches("http://");
        let allowed =
            slipway_core::checks::AllowedHosts::new(vec![slipway_core::checks::HostRule::parse(
                host,
            )?]);
        Ok(PipelineDriver::new(
            Outbound::new(allowed),
            BTreeMap::from([("ci".to_string(), Secret::new(TOKEN.into()))]),
        ))
    }

    fn step_for(base: &str) -> PlannedStep {
        PlannedStep::Pipeline(PlannedPipeline {
            step_index: 0,
            method: "POST".into(),
            url: format!("{base}/runs"),
            headers: Vec::new(),
            body: Some("{}".into()),
            token: Some(slipway_core::catalog::PipelineToken {
                name: "ci".into(),
                header: "Authorization".into(),
                prefix: "Bearer ".into(),
            }),
            status_url: format!("{base}/runs/{{{{ answer.id }}}}"),
            status_pointer: "/status".into(),
            success: vec!["success".into()],
            failure: vec!["failure".into()],
            deadline_seconds: 10,
            poll_seconds: 1,
            run_key: "slipway-1-1-0".into(),
        })
    }

    async fn run_once(
        driver: &PipelineDriver,
        step: &PlannedStep,
        journal: &dyn StepJournal,
        stop: &CancellationToken,
    ) -> Result<StepOutcome, DriverError> {
        let secrets = slipway_core::secret::SecretValues::new();
        let ctx = StepContext {
            secrets: &secrets,
            stop,
            progress: &ProgressLines::discard(),
            journal,
            sessions: None,
        };
        driver.run(step, &ctx).await
    }

    /// A journal whose database went down after the intent was written: no
    /// run is ever recorded.
    struct Unwritable {
        tries: Arc<Mutex<u32>>,
        intended: Arc<Mutex<bool>>,
    }

    #[async_trait]
    impl StepJournal for Unwritable {
        async fn recall(&self) -> Result<Recalled, DriverError> {
            match self.intended.lock().map(|i| *i) {
                Ok(true) => Ok(Recalled::Intended),
                _ => Ok(Recalled::Nothing),
            }
        }

        async fn intend(&self) -> Result<bool, DriverError> {
            let mut intended = self
                .intended
                .lock()
                .map_err(|_| DriverError::Retryable("lock".into()))?;
            let first = !*intended;
            *intended = true;
            Ok(first)
        }

        async fn withdraw(&self) -> Result<(), DriverError> {
            if let Ok(mut intended) = self.intended.lock() {
                *intended = false;
            }
            Ok(())
        }

        async fn remember(&self, _run: &ExternalRun) -> Result<(), DriverError> {
            if let Ok(mut tries) = self.tries.lock() {
                *tries += 1;
            }
            Err(DriverError::Retryable("the database is down".into()))
        }

        async fn ended(&self) -> Result<(), DriverError> {
            Ok(())
        }

        fn detached(&self) -> Arc<dyn StepJournal> {
            Arc::new(Unwritable {
                tries: self.tries.clone(),
                intended: self.intended.clone(),
            })
        }
    }

    /// An attempt that finds an earlier one's intent and no run (that one died,
    /// or lost its job, between the two) triggers none: a person looks for it.
    #[tokio::test]
    async fn an_intent_left_without_a_run_triggers_none() -> Result<(), Box<dyn std::error::Error>>
    {
        let (base, triggers) = ci(StatusCode::OK).await?;
        let driver = driver_for(&base)?;
        let step = step_for(&base);
        let journal = Unwritable {
            tries: Arc::default(),
            intended: Arc::new(Mutex::new(true)),
        };
        let failed = run_once(&driver, &step, &journal, &CancellationToken::new()).await;
        let Err(DriverError::Permanent(message)) = &failed else {
            return Err(format!("{failed:?}").into());
        };
        assert!(
            message.contains("one may have started") && message.contains("slipway-1-1-0"),
            "{message}"
        );
        assert_eq!(triggers.load(Ordering::SeqCst), 0);
        Ok(())
    }

    /// A run started but never recorded is not started again by a later attempt
    /// of the step, and the step fails for a person to follow the run.
    #[tokio::test]
    async fn a_run_that_cannot_be_recorded_is_triggered_once_and_handed_to_a_person()
    -> Result<(), Box<dyn std::error::Error>> {
        let (base, triggers) = ci(StatusCode::OK).await?;
        let driver = driver_for(&base)?;
        let step = step_for(&base);
        let journal = Unwritable {
            tries: Arc::default(),
            intended: Arc::default(),
        };
        let status_url = format!("{base}/runs/7");
        for attempt in 0..2 {
            let stop = CancellationToken::new();
            let stopper = stop.clone();
            // The step is stopped after a while (its timeout, a shutdown).
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(700)).await;
                stopper.cancel();
            });
            let tries_before = *journal.tries.lock().map_err(|_| "lock")?;
            let failed = run_once(&driver, &step, &journal, &stop).await;
            let Err(DriverError::Permanent(message)) = &failed else {
                return Err(format!("attempt {attempt}: {failed:?}").into());
            };
            assert!(
                message.starts_with(&format!(
                    "the pipeline run {status_url} was started under the key slipway-1-1-0 but \
                     could not be recorded (the database is down)"
                )),
                "{message}"
            );
            let tries = *journal.tries.lock().map_err(|_| "lock")? - tries_before;
            assert!(
                tries > REMEMBER_TRIES_AFTER_STOP,
                "tried again while the step ran: {tries}"
            );
        }
        assert_eq!(triggers.load(Ordering::SeqCst), 1, "one run in all");
        Ok(())
    }

    /// An answer that may mean the trigger was passed on (any 5xx: a proxy's
    /// 503 may come after it passed the trigger on) is not sent again; a rate
    /// limit (429) is worth another attempt.
    #[tokio::test]
    async fn a_trigger_that_may_have_been_passed_on_is_not_retried()
    -> Result<(), Box<dyn std::error::Error>> {
        for status in [
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::BAD_GATEWAY,
            StatusCode::SERVICE_UNAVAILABLE,
            StatusCode::GATEWAY_TIMEOUT,
        ] {
            let (base, _) = ci(status).await?;
            let failed = run_once(
                &driver_for(&base)?,
                &step_for(&base),
                &NoJournal,
                &CancellationToken::new(),
            )
            .await;
            let Err(DriverError::Permanent(message)) = &failed else {
                return Err(format!("{status}: {failed:?}").into());
            };
            assert!(
                message.starts_with("the trigger's answer was lost (triggering POST"),
                "{message}"
            );
        }
        let (base, _) = ci(StatusCode::TOO_MANY_REQUESTS).await?;
        let failed = run_once(
            &driver_for(&base)?,
            &step_for(&base),
            &NoJournal,
            &CancellationToken::new(),
        )
        .await;
        assert!(
            matches!(failed, Err(DriverError::Retryable(_))),
            "{failed:?}"
        );
        Ok(())
    }

    /// A CI/CD system that echoes the token in a refusal: the error the request
    /// keeps (its last error, the audit) holds no token.
    #[tokio::test]
    async fn a_refusal_echoing_the_token_is_scrubbed() -> Result<(), Box<dyn std::error::Error>> {
        let (base, _) = ci(StatusCode::BAD_REQUEST).await?;
        let failed = run_once(
            &driver_for(&base)?,
            &step_for(&base),
            &NoJournal,
            &CancellationToken::new(),
        )
        .await;
        let Err(DriverError::Permanent(message)) = &failed else {
            return Err(format!("{failed:?}").into());
        };
        assert!(message.contains("400"), "{message}");
        assert!(message.contains("Authorization: Bearer ***"), "{message}");
        assert!(!message.contains(TOKEN), "{message}");
        Ok(())
    }

    /// Serves `app` on loopback; its base URL.
    async fn serve(app: axum::Router) -> Result<String, std::io::Error> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(base)
    }

    /// A CI/CD system that starts run 7 and answers its status with `status`,
    /// given how many polls came before.
    async fn polled_ci(
        trigger_answer: impl FnOnce(&str) -> String,
        status: impl Fn(usize) -> String + Clone + Send + Sync + 'static,
    ) -> Result<String, std::io::Error> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let polls = Arc::new(AtomicUsize::new(0));
        let answer = trigger_answer(&base);
        let app = axum::Router::new()
            .route("/runs", axum::routing::post(move || async move { answer }))
            .route(
                "/runs/7",
                axum::routing::get(move || async move {
                    let value = status(polls.fetch_add(1, Ordering::SeqCst));
                    serde_json::json!({ "status": value }).to_string()
                }),
            );
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(base)
    }

    fn changed(step: PlannedStep, change: impl FnOnce(&mut PlannedPipeline)) -> PlannedStep {
        match step {
            PlannedStep::Pipeline(mut pipeline) => {
                change(&mut pipeline);
                PlannedStep::Pipeline(pipeline)
            }
            other => other,
        }
    }

    async fn run_to_an_end(base: &str, step: &PlannedStep) -> Result<StepOutcome, DriverError> {
        let driver = driver_for(base).map_err(DriverError::Permanent)?;
        run_once(&driver, step, &NoJournal, &CancellationToken::new()).await
    }

    /// Every 8 characters of the token in turn: none may be left in `text`.
    fn assert_no_part_of_the_token(text: &str) {
        for (start, _) in TOKEN.char_indices() {
            if let Some(part) = TOKEN.get(start..start + 8) {
                assert!(!text.contains(part), "{part:?} is left in {text}");
            }
        }
    }

    /// The token echoed where the quote is cut: scrubbed before the cut, so not
    /// even its first characters stay in the error.
    #[tokio::test]
    async fn a_token_echoed_across_the_quoting_cut_leaves_no_part_behind()
    -> Result<(), Box<dyn std::error::Error>> {
        let body = format!("{}{TOKEN}{}", "x".repeat(QUOTED - 10), "y".repeat(50));
        let app = axum::Router::new().route(
            "/runs",
            axum::routing::post(move || async move { (StatusCode::BAD_REQUEST, body) }),
        );
        let base = serve(app).await?;
        let failed = run_to_an_end(&base, &step_for(&base)).await;
        let Err(DriverError::Permanent(message)) = &failed else {
            return Err(format!("{failed:?}").into());
        };
        assert!(message.contains("answered 400: xxx"), "{message}");
        assert_no_part_of_the_token(message);
        Ok(())
    }

    /// A status value of half a megabyte is cut in the error that names it.
    #[tokio::test]
    async fn a_huge_status_value_is_cut_where_it_is_shown() -> Result<(), Box<dyn std::error::Error>>
    {
        let huge = "x".repeat(512 * 1024);
        let base = polled_ci(|_| r#"{"id": 7}"#.to_string(), move |_| huge.clone()).await?;
        let step = changed(step_for(&base), |p| p.deadline_seconds = 1);
        let failed = run_to_an_end(&base, &step).await;
        let Err(DriverError::Permanent(message)) = &failed else {
            return Err(format!("{failed:?}").into());
        };
        let shown = format!("(last: status {}…)", "x".repeat(STATUS_SHOWN));
        assert!(message.ends_with(&shown), "{}", cut(message, 1000));
        assert!(message.chars().count() < 400, "{} chars", message.len());
        Ok(())
    }

    /// A status value new at every poll adds a line each time: the log keeps the
    /// first lines and the latest, each cut, and says how many it left out.
    #[tokio::test]
    async fn status_lines_are_cut_and_bounded() -> Result<(), Box<dyn std::error::Error>> {
        const RUNNING_POLLS: usize = 400;
        let base = polled_ci(
            |_| r#"{"id": 7}"#.to_string(),
            |poll| match poll {
                n if n < RUNNING_POLLS => format!("{n}-{}", "é".repeat(1000)),
                _ => "success".to_string(),
            },
        )
        .await?;
        // Polls as fast as they are answered; the catalog's minimum is a second.
        let step = changed(step_for(&base), |p| {
            p.poll_seconds = 0;
            p.deadline_seconds = 120;
        });
        let outcome = run_to_an_end(&base, &step).await?;
        let log = &outcome.log;
        let status_lines = FIRST_STATUS_LINES + 1 + LAST_STATUS_LINES;
        assert_eq!(log.len(), 1 + status_lines, "the trigger's line and 200");
        let left_out = RUNNING_POLLS + 1 - FIRST_STATUS_LINES - LAST_STATUS_LINES;
        assert_eq!(
            log[1 + FIRST_STATUS_LINES],
            format!("… {left_out} status lines left out …")
        );
        assert_eq!(
            log[1],
            format!("status 0-{}…", "é".repeat(STATUS_SHOWN - 2))
        );
        assert!(
            log[log.len() - 2].starts_with(&format!("status {}-", RUNNING_POLLS - 1)),
            "{}",
            log[log.len() - 2]
        );
        assert_eq!(
            log.last().map(String::as_str),
            Some("status success: succeeded")
        );
        for line in log {
            assert!(line.chars().count() <= 300, "{line}");
        }
        Ok(())
    }

    /// A status URL the trigger answered with a token in its query, or a user
    /// and password in it, is shown without them.
    #[tokio::test]
    async fn a_status_url_is_shown_without_its_query_or_user()
    -> Result<(), Box<dyn std::error::Error>> {
        let secret = "glpat-query-secret";
        let base = polled_ci(
            move |base| format!(r#"{{"run_url": "{base}/runs/7?private_token={secret}&x=1"}}"#),
            |_| "success".to_string(),
        )
        .await?;
        let step = changed(step_for(&base), |p| {
            p.status_url = "{{ answer.run_url }}".into();
        });
        let outcome = run_to_an_end(&base, &step).await?;
        assert_eq!(
            outcome.summary,
            format!("pipeline run {base}/runs/7?… ended success")
        );
        assert!(
            outcome.log[0].ends_with(&format!("; following {base}/runs/7?…")),
            "{:?}",
            outcome.log
        );
        for line in outcome.log.iter().chain([&outcome.summary]) {
            assert!(!line.contains(secret), "{line}");
        }

        let with_user = polled_ci(
            move |base| {
                let at = base.replace("http://", "http://deploy:s3cret-pass@");
                format!(r#"{{"run_url": "{at}/runs/7?private_token={secret}"}}"#)
            },
            |_| "success".to_string(),
        )
        .await?;
        let step = changed(step_for(&with_user), |p| {
            p.status_url = "{{ answer.run_url }}".into();
        });
        let failed = run_to_an_end(&with_user, &step).await;
        let Err(DriverError::Permanent(message)) = &failed else {
            return Err(format!("{failed:?}").into());
        };
        assert!(message.contains("holds credentials"), "{message}");
        for hidden in ["deploy", "s3cret-pass", secret] {
            assert!(!message.contains(hidden), "{message}");
        }

        // Shown without being parsed when it does not parse.
        let unparsable = "http://deploy:s3cret-pass@ci.example:99999/runs/7?private_token=x";
        assert_eq!(shown_url(unparsable), "http://ci.example:99999/runs/7…");
        Ok(())
    }

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
