//! The verify phase of the apply job: run the type's acceptance checks for real,
//! record each result with its verification round, and complete the request or
//! leave it failed with the reasons.

use std::time::Duration;

use futures_util::future::join_all;
use slipway_core::catalog::CheckKind;
use slipway_core::render::{self, RenderedCheck};
use slipway_core::secret::SecretValues;
use slipway_core::state::Action;

use super::{Approved, Done, JobError, Run};
use crate::checks::{CheckOutcome, Checker, RETRY_INTERVAL, time_limit};
use crate::services::assets::record_asset;
use crate::services::{Actor, transition};
use crate::storage;
use crate::storage::jobs;
use crate::storage::requests::{NewCheckResult, RequestRow};

/// Runs the type's acceptance checks side by side (each `http` or `tcp` check may
/// wait for its deadline) and records each result; all passing completes the
/// request and records the asset. A check that could not run at all (the GitOps
/// remote is down) makes the job try again later instead.
///
/// The transaction that records the outcome also closes the job, so a finished
/// job costs the writer one transaction less.
pub(super) async fn verify(
    run: &Run<'_>,
    request: &mut RequestRow,
    approved: &Approved,
) -> Result<Done, JobError> {
    let state = run.state;
    let ty = approved.request_type(state, request)?;
    let checks = render::checks(ty, &approved.revision.params, &request.resource_name)
        .map_err(|e| JobError::Permanent(format!("acceptance checks: {e}")))?;
    // Opened only when a check signs in with one, and only for this run.
    let secrets = if checks
        .iter()
        .any(|c| matches!(c.kind, CheckKind::Postgres { .. }))
    {
        super::secrets_for_run(state, request).await?
    } else {
        SecretValues::new()
    };
    let checker = Checker {
        gitops: &state.drivers.gitops,
        command: &state.drivers.command,
        outbound: &state.outbound,
        interval: RETRY_INTERVAL,
    };
    // Each check keeps to its own deadline; this bounds the phase whatever a check
    // meets (a remote that trickles, a program whose end is not seen), and a
    // phase past it runs again later (checks only read).
    let limit = verify_limit(&checks, state.drivers.command.default_timeout());
    let all = join_all(
        checks
            .iter()
            .map(|c| checker.run(c, &approved.revision.change_set, &secrets)),
    );
    let outcomes: Vec<CheckOutcome> = tokio::time::timeout(limit, all)
        .await
        .map_err(|_| {
            JobError::Retryable(format!(
                "acceptance checks: not all of them ended within {} s; they run again",
                limit.as_secs()
            ))
        })?
        .into_iter()
        .collect::<Result<_, _>>()
        .map_err(|e| JobError::Retryable(format!("acceptance checks: {e}")))?;
    let mut tx = run.fenced().await?;
    let attempt =
        storage::requests::next_check_attempt(&mut tx, request.id, request.current_revision)
            .await?;
    let results: Vec<NewCheckResult> = checks
        .iter()
        .zip(&outcomes)
        .map(|(check, outcome)| NewCheckResult {
            request_id: request.id,
            revision: request.current_revision,
            attempt,
            kind: check.kind.name(),
            target: check.kind.target(),
            description: &check.description,
            passed: outcome.passed,
            detail: &outcome.detail,
            tries: i64::from(outcome.tries),
            duration_ms: i64::try_from(outcome.duration.as_millis()).unwrap_or(i64::MAX),
        })
        .collect();
    storage::requests::insert_checks(&mut tx, &results).await?;
    let failed: Vec<String> = checks
        .iter()
        .zip(&outcomes)
        .filter(|(_, outcome)| !outcome.passed)
        .map(|(check, outcome)| {
            format!(
                "{} ({}): {}",
                check.description,
                check.kind.name(),
                outcome.detail
            )
        })
        .collect();
    if failed.is_empty() {
        // Empty when no step of the type commits to the GitOps repository.
        let commit = request.applied_commit.clone().unwrap_or_default();
        record_asset(
            state,
            &mut tx,
            (request, &approved.revision, approved.reviewed.as_ref()),
            &commit,
            &Actor::Worker,
        )
        .await?;
        transition(
            &mut tx,
            state,
            request,
            Action::VerificationPassed,
            &Actor::Worker,
            format!(
                "{} check(s) passed (verification {attempt})",
                outcomes.len()
            ),
        )
        .await?;
    } else {
        let message = format!("acceptance checks failed: {}", failed.join("; "));
        transition(
            &mut tx,
            state,
            request,
            Action::Fail,
            &Actor::Worker,
            message.clone(),
        )
        .await?;
        storage::requests::set_error(&mut tx, request.id, Some(&message)).await?;
    }
    // The fence above holds the job for this transaction.
    jobs::finish(&mut tx, run.job.id, run.worker, jobs::DONE, None).await?;
    tx.commit().await?;
    Ok(Done::Closed)
}

/// Beyond the longest of the checks' own limits, before the phase gives up.
const VERIFY_MARGIN: Duration = Duration::from_secs(30);

/// How long the verify phase may take: its checks run side by side, so the
/// longest of their own limits, and a margin.
fn verify_limit(checks: &[RenderedCheck], command_default: Duration) -> Duration {
    checks
        .iter()
        .map(|c| time_limit(&c.kind, command_default))
        .max()
        .unwrap_or_default()
        + VERIFY_MARGIN
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_phase_gets_its_longest_check_and_a_margin() {
        let check = |kind: CheckKind| RenderedCheck {
            kind,
            description: String::new(),
        };
        let checks = [
            check(CheckKind::Tcp {
                address: "db:5432".into(),
                deadline_seconds: 120,
            }),
            check(CheckKind::Command {
                program: "true".into(),
                args: Vec::new(),
                timeout_seconds: None,
            }),
        ];
        let default = Duration::from_secs(600);
        assert_eq!(
            verify_limit(&checks, default),
            default + crate::drivers::command::OUTPUT_GRACE + VERIFY_MARGIN
        );
        assert_eq!(
            verify_limit(&checks[..1], default),
            Duration::from_secs(120 + 10 + 30)
        );
        assert_eq!(verify_limit(&[], default), VERIFY_MARGIN);
    }
}
