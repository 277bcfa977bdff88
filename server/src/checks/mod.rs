//! Acceptance checks, run for real: a file at the GitOps remote, an HTTP answer,
//! a TCP connection, a command's exit status, a sign-in to a new database. Outbound ones reach only the hosts
//! the settings allow (see [`crate::outbound`]); `http` and `tcp` keep trying
//! until their deadline, since a resource that was just applied takes a moment
//! to come up.

mod postgres;
mod probe;

use std::time::{Duration, Instant};

use slipway_core::catalog::CheckKind;
use slipway_core::execution::PlannedCommand;
use slipway_core::render::{ChangeSet, RenderedCheck};
use slipway_core::secret::SecretValues;

use crate::drivers::command::CommandDriver;
use crate::drivers::gitops::GitOpsRepo;
use crate::drivers::{ProgressLines, StepContext};
use crate::outbound::Outbound;
use tokio_util::sync::CancellationToken;

/// What one run of one check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckOutcome {
    pub passed: bool,
    /// What was found, for people: the reason when it failed.
    pub detail: String,
    /// How many times it tried within its deadline.
    pub tries: u32,
    pub duration: Duration,
}

impl CheckOutcome {
    /// A check whose settings or secrets are missing: trying again would not help.
    fn failed_at_once(detail: String, started: Instant) -> CheckOutcome {
        CheckOutcome {
            passed: false,
            detail,
            tries: 0,
            duration: started.elapsed(),
        }
    }
}

/// The check could not be run at all, for a reason worth another attempt of the
/// job (the GitOps remote was down), not a verdict on the resource.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CheckUnavailable(pub String);

/// What checks run with.
#[derive(Clone, Copy)]
pub struct Checker<'a> {
    pub gitops: &'a GitOpsRepo,
    pub command: &'a CommandDriver,
    pub outbound: &'a Outbound,
    /// The pause between two tries of an `http` or `tcp` check.
    pub interval: Duration,
}

/// A short pause between tries: a service that comes up is seen soon after.
pub const RETRY_INTERVAL: Duration = Duration::from_millis(500);

/// How long a `git-file` check may take: reading the GitOps remote has
/// connection and idle timeouts of its own, but no overall one.
const GIT_FILE_LIMIT: Duration = Duration::from_secs(300);

/// The longest one check can take by its own limits: its deadline (or a
/// command's timeout) and what a last try (every hop of its redirects), or a
/// program's output, may add to it. The verify phase gives all its checks,
/// which run side by side, the longest of these (and a margin) in all.
pub fn time_limit(kind: &CheckKind, command_default: Duration) -> Duration {
    match kind {
        CheckKind::GitFile { .. } => GIT_FILE_LIMIT,
        CheckKind::Http {
            deadline_seconds, ..
        } => Duration::from_secs(*deadline_seconds) + probe::MAX_TRY * (probe::MAX_REDIRECTS + 1),
        CheckKind::Tcp {
            deadline_seconds, ..
        }
        | CheckKind::Postgres {
            deadline_seconds, ..
        } => Duration::from_secs(*deadline_seconds) + probe::MAX_TRY,
        CheckKind::Command {
            timeout_seconds, ..
        } => {
            timeout_seconds.map_or(command_default, Duration::from_secs)
                + crate::drivers::command::OUTPUT_GRACE
        }
    }
}

impl Checker<'_> {
    /// Runs one rendered check. `approved` holds the files the reviewer approved,
    /// which a `git-file` check compares with what the repository publishes.
    /// `secrets` holds the request's secrets when a check signs in with one.
    pub async fn run(
        &self,
        check: &RenderedCheck,
        approved: &ChangeSet,
        secrets: &SecretValues,
    ) -> Result<CheckOutcome, CheckUnavailable> {
        let started = Instant::now();
        let (passed, detail, tries) = match &check.kind {
            CheckKind::GitFile { path } => {
                let (passed, detail) = self.git_file(path, approved).await?;
                (passed, detail, 1)
            }
            CheckKind::Http {
                url,
                status,
                body_contains,
                body_matches,
                deadline_seconds,
            } => {
                let expected = probe::HttpCheck {
                    url,
                    status: *status,
                    body_contains: body_contains.as_deref(),
                    body_matches: body_matches.as_deref(),
                    deadline: Duration::from_secs(*deadline_seconds),
                };
                probe::http(self.outbound, &expected, self.interval).await
            }
            CheckKind::Tcp {
                address,
                deadline_seconds,
            } => {
                let deadline = Duration::from_secs(*deadline_seconds);
                probe::tcp(self.outbound, address, deadline, self.interval).await
            }
            CheckKind::Command {
                program,
                args,
                timeout_seconds,
            } => {
                let (passed, detail) = self.command(program, args, *timeout_seconds).await;
                (passed, detail, 1)
            }
            CheckKind::Postgres {
                server,
                database,
                user,
                password_secret,
                query,
                expect,
                deadline_seconds,
            } => {
                let server = match self.command.postgres_server(server) {
                    Ok(server) => server,
                    Err(why) => return Ok(CheckOutcome::failed_at_once(why, started)),
                };
                let Some(password) = secrets.get(password_secret) else {
                    let why =
                        format!("the request holds no secret {password_secret:?} to sign in with");
                    return Ok(CheckOutcome::failed_at_once(why, started));
                };
                let check = postgres::PostgresCheck {
                    server,
                    database,
                    user,
                    password,
                    query,
                    expect: expect.as_deref(),
                    deadline: Duration::from_secs(*deadline_seconds),
                };
                postgres::postgres(&check, self.interval).await
            }
        };
        Ok(CheckOutcome {
            passed,
            detail,
            tries,
            duration: started.elapsed(),
        })
    }

    async fn git_file(
        &self,
        path: &str,
        approved: &ChangeSet,
    ) -> Result<(bool, String), CheckUnavailable> {
        let repo = self.gitops.clone();
        let owned = path.to_string();
        let published = tokio::task::spawn_blocking(move || repo.read_published(&owned))
            .await
            .map_err(|e| CheckUnavailable(format!("reading the GitOps repository stopped: {e}")))?
            .map_err(|e| CheckUnavailable(e.to_string()))?;
        let expected = approved
            .files
            .iter()
            .find(|f| f.path == path)
            .map(|f| f.content.as_str());
        let place = &published.place;
        let at = published.commit.as_deref().unwrap_or("no commit yet");
        // A file the change removes (a retired asset's) passes when it is gone.
        if approved.removed.iter().any(|p| p == path) {
            return Ok(match published.content {
                None => (true, format!("{path} is gone from {place} at {at}")),
                Some(_) => (false, format!("{path} is still on {place} ({at})")),
            });
        }
        Ok(match (published.content.as_deref(), expected) {
            (None, _) => (false, format!("{path} is missing on {place} ({at})")),
            (Some(actual), Some(expected)) if actual != expected => (
                false,
                format!("{path} on {place} ({at}) differs from the approved content"),
            ),
            (Some(_), Some(_)) => (true, format!("{path} present on {place} at {at}")),
            // Written by a later step or by someone else: there is no content
            // to compare, and the result says only what was checked.
            (Some(_), None) => (
                true,
                format!(
                    "{path} present on {place} at {at} (this change does not write it: only its presence was checked)"
                ),
            ),
        })
    }

    async fn command(
        &self,
        program: &str,
        args: &[String],
        timeout_seconds: Option<u64>,
    ) -> (bool, String) {
        let command = PlannedCommand {
            program: program.to_string(),
            args: args.to_vec(),
            files: Vec::new(),
            env: Vec::new(),
            secret_env: Vec::new(),
            secret_env_scram: Vec::new(),
            timeout_seconds,
            postgres_server: None,
            retry_exit_codes: Vec::new(),
        };
        // A job stopped while its checks run drops this future: the guard then
        // ends the program too, instead of leaving it to its own timeout.
        let stop = CancellationToken::new();
        let _stop_when_dropped = stop.clone().drop_guard();
        match self
            .command
            .run_command(
                &command,
                &StepContext::outside_a_job(&SecretValues::new(), &stop, &ProgressLines::discard()),
            )
            .await
        {
            Ok(outcome) => (true, outcome.summary),
            Err(error) => (false, error.to_string()),
        }
    }
}
