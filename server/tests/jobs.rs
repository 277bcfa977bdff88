//! Jobs under leases, as replicas share them: a heartbeat keeps a long step's
//! claim, a lapsed claim is taken over and the old worker writes nothing more, a
//! cancel stops a running step wherever it runs, a shutdown hands the job back,
//! a step past the type's timeout is retried with a pause and then fails.

#[allow(dead_code, unused_macros)]
mod common;

use std::time::{Duration, Instant};

use common::{TestApp, TestResult, draft};
use slipway_core::ids::RequestId;
use slipway_core::state::RequestState;
use slipway_server::orchestrator::{self, JobControl, LeaseKeeper, StopReason};
use slipway_server::services::{ServiceError, operations, requests};
use slipway_server::storage::jobs::{self, JobRow, StepRow};
use slipway_server::storage::{Engine, now_millis};
use tokio::sync::watch;

/// A type whose one step sleeps for as long as the request asks: a stand-in for a
/// long `tofu apply`, with a real process to stop.
const PAUSE_TYPE: &str = r#"name: pause
title: Pause
description: Sleeps for a while, as a long-running tool would.
owner: platform
owner_param: team
parameters:
  type: object
  additionalProperties: false
  required: [name, team, seconds]
  properties:
    name: { type: string, title: Name, pattern: "^[a-z][a-z0-9-]{1,20}$" }
    team: { type: string, title: Team, x-dictionary: teams }
    seconds: { type: integer, title: Seconds, minimum: 0, maximum: 600 }
naming:
  template: "{{ team }}-{{ name }}"
review:
  approvers: { role: reviewer }
  auto_approve: { when: "true" }
outputs:
  - name: plan
    path: "pauses/{{ team }}/{{ name }}.yaml"
    template: pause/plan.yaml.j2
execute:
  - driver: command
    program: sleep
    args: ["{{ seconds }}"]
execution_limits:
  max_attempts: 2
  step_timeout_seconds: TIMEOUT
"#;

fn pause_catalog(step_timeout_seconds: u64) -> TestResult<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    common::copy_dir(&common::shipped_catalog(), dir.path())?;
    std::fs::write(
        dir.path().join("types/pause.yaml"),
        PAUSE_TYPE.replace("TIMEOUT", &step_timeout_seconds.to_string()),
    )?;
    std::fs::create_dir_all(dir.path().join("templates/pause"))?;
    std::fs::write(
        dir.path().join("templates/pause/plan.yaml.j2"),
        "pause: {{ resource_name }}\n",
    )?;
    Ok(dir)
}

const LEASE: Duration = Duration::from_secs(3);

async fn pause_app(engine: Engine, step_timeout_seconds: u64) -> TestResult<Option<TestApp>> {
    let app = TestApp::start_configured(engine, Some(pause_catalog(step_timeout_seconds)?), |s| {
        s.command.allowed = vec!["sleep".into()];
        s.workers.lease = LEASE;
        s.workers.shutdown_grace = Duration::from_secs(1);
    })
    .await?;
    if app.is_none() {
        eprintln!(
            "note: {} is not set; skipping the PostgreSQL run",
            common::POSTGRES_ENV
        );
    }
    Ok(app)
}

async fn submit_pause(app: &TestApp, name: &str, seconds: u64) -> TestResult<RequestId> {
    let alice = app.user("alice").await?;
    let params = serde_json::json!({ "name": name, "team": "payments", "seconds": seconds });
    let id = requests::submit(&app.state, &alice, &draft("pause", params)).await?;
    assert_eq!(app.request_state(id).await?, RequestState::Approved);
    Ok(id)
}

async fn job_of(app: &TestApp, id: RequestId) -> TestResult<JobRow> {
    let mut conn = app.state.db.pool.acquire().await?;
    Ok(jobs::latest_for_request(&mut conn, id)
        .await?
        .ok_or("a job")?)
}

async fn steps_of(app: &TestApp, id: RequestId) -> TestResult<Vec<StepRow>> {
    let mut conn = app.state.db.pool.acquire().await?;
    Ok(jobs::steps_for_request(&mut conn, id).await?)
}

/// Waits until the request's step has started (its process runs).
async fn until_step_runs(app: &TestApp, id: RequestId) -> TestResult {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if steps_of(app, id)
            .await?
            .iter()
            .any(|s| s.state == "running")
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err("the step never started".into())
}

async fn claim_as(app: &TestApp, worker: &str) -> TestResult<Option<jobs::Claimed>> {
    let mut tx = app.state.db.write().await?;
    let claimed = jobs::claim(&mut tx, app.engine, worker, LEASE.as_millis() as i64).await?;
    tx.commit().await?;
    Ok(claimed)
}

macro_rules! on_both_engines {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $name() -> super::TestResult {
                super::$name(super::Engine::Sqlite).await
            })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $name() -> super::TestResult {
                super::$name(super::Engine::Postgres).await
            })*
        }
    };
}

on_both_engines!(
    old_step_logs_are_emptied_and_their_summaries_kept,
    a_request_page_carries_the_logs_of_its_newest_attempts_only,
    a_long_step_keeps_its_lease,
    a_lapsed_lease_is_taken_over_and_the_old_worker_writes_nothing,
    cancel_stops_a_running_step_and_fails_the_request,
    cancel_before_the_job_runs_ends_it_quietly,
    shutdown_hands_a_running_job_back,
    a_step_past_its_timeout_is_retried_after_a_pause_then_fails,
    a_run_cut_short_by_its_workers_death_is_not_a_failed_attempt,
    a_job_whose_workers_keep_dying_fails_after_as_many_takeovers_as_attempts,
    one_claim_fills_each_free_slot_oldest_first_under_its_own_owner,
    the_dispatcher_runs_a_burst_of_jobs_each_once,
    one_process_renews_every_lease_it_holds_and_tells_each_job_its_news,
    a_process_that_cannot_renew_stops_its_jobs_before_their_leases_lapse,
    one_renewal_answers_for_more_owners_than_one_statement_takes,
    a_job_claimed_again_here_stops_its_older_run_and_keeps_its_renewals,
    a_process_without_workers_leaves_running_jobs_alone,
    a_cancelled_run_that_fails_is_not_queued_again,
);

async fn claim_into(app: &TestApp, owners: &[&str]) -> TestResult<Vec<jobs::Claimed>> {
    let owners: Vec<String> = owners.iter().map(|o| o.to_string()).collect();
    let mut tx = app.state.db.write().await?;
    let claimed = jobs::claim_due(&mut tx, app.engine, &owners, LEASE.as_millis() as i64).await?;
    tx.commit().await?;
    Ok(claimed)
}

/// A batch claim takes the jobs due longest, one per owner, and a lapsed one among
/// them is a takeover; what is held stays held.
async fn one_claim_fills_each_free_slot_oldest_first_under_its_own_owner(
    engine: Engine,
) -> TestResult {
    let Some(app) = pause_app(engine, 60).await? else {
        return Ok(());
    };
    let mut ids = Vec::new();
    for name in ["first", "second", "third"] {
        ids.push(submit_pause(&app, name, 0).await?);
    }
    let claimed = claim_into(&app, &["slot-a", "slot-b"]).await?;
    let seen: Vec<(RequestId, Option<&str>, i64, &str)> = claimed
        .iter()
        .map(|c| {
            let job = &c.job;
            (
                job.request_id,
                job.lease_owner.as_deref(),
                job.attempts,
                job.state.as_str(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (ids[0], Some("slot-a"), 1, jobs::RUNNING),
            (ids[1], Some("slot-b"), 1, jobs::RUNNING),
        ]
    );
    assert!(claimed.iter().all(|c| c.taken_over_from.is_none()));

    // The first claim lapses; the next batch takes it over and the third job, and
    // leaves the second, whose lease holds.
    app.exec(&format!(
        "UPDATE jobs SET lease_until = 0, run_after = 0 WHERE id = {}",
        claimed[0].job.id
    ))
    .await?;
    let again = claim_into(&app, &["slot-c", "slot-d", "slot-e"]).await?;
    let seen: Vec<(RequestId, Option<&str>, Option<&str>)> = again
        .iter()
        .map(|c| {
            (
                c.job.request_id,
                c.job.lease_owner.as_deref(),
                c.taken_over_from.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (ids[0], Some("slot-c"), Some("slot-a")),
            (ids[2], Some("slot-d"), None),
        ]
    );
    assert!(claim_into(&app, &["slot-f"]).await?.is_empty());
    assert!(claim_into(&app, &[]).await?.is_empty());
    Ok(())
}

/// More jobs than slots, queued at once: every one runs to its end exactly once.
async fn the_dispatcher_runs_a_burst_of_jobs_each_once(engine: Engine) -> TestResult {
    let Some(app) = pause_app(engine, 60).await? else {
        return Ok(());
    };
    let mut ids = Vec::new();
    for n in 0..7 {
        ids.push(submit_pause(&app, &format!("burst{n}"), 0).await?);
    }
    let (stop, stopped) = watch::channel(false);
    let workers = orchestrator::spawn(app.state.clone(), stopped);
    let deadline = Instant::now() + Duration::from_secs(60);
    for id in &ids {
        while app.request_state(*id).await? != RequestState::Completed {
            assert!(Instant::now() < deadline, "request {id} did not complete");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    stop.send(true)?;
    tokio::time::timeout(Duration::from_secs(15), workers).await??;
    for id in ids {
        let job = job_of(&app, id).await?;
        assert_eq!((job.state.as_str(), job.attempts), (jobs::DONE, 1), "{id}");
        assert_eq!(steps_of(&app, id).await?.len(), 1, "{id}: one step run");
    }
    Ok(())
}

async fn a_long_step_keeps_its_lease(engine: Engine) -> TestResult {
    let Some(app) = pause_app(engine, 60).await? else {
        return Ok(());
    };
    // Twice the lease: without heartbeats the claim would lapse half-way.
    let id = submit_pause(&app, "long", 2 * LEASE.as_secs()).await?;
    let state = app.state.clone();
    let worker = tokio::spawn(async move { orchestrator::run_once(&state, "first").await });
    until_step_runs(&app, id).await?;
    let until = Instant::now() + LEASE + LEASE / 2;
    while Instant::now() < until {
        assert!(
            claim_as(&app, "second").await?.is_none(),
            "a renewed lease holds"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(worker.await??);
    assert_eq!(app.request_state(id).await?, RequestState::Completed);
    let job = job_of(&app, id).await?;
    assert_eq!((job.state.as_str(), job.attempts), (jobs::DONE, 1));
    assert_eq!(app.state.metrics.lease_takeovers.get(), 0);
    Ok(())
}

async fn a_lapsed_lease_is_taken_over_and_the_old_worker_writes_nothing(
    engine: Engine,
) -> TestResult {
    let Some(app) = pause_app(engine, 60).await? else {
        return Ok(());
    };
    let id = submit_pause(&app, "ghost", 0).await?;
    // A worker claims the job and stalls (a GC pause, a lost network): no heartbeat.
    let stale = claim_as(&app, "stalled").await?.ok_or("a job")?.job;
    assert!(
        claim_as(&app, "other").await?.is_none(),
        "a live lease holds"
    );
    lapse_leases(&app).await?;
    // Another worker takes the job over and completes it.
    assert!(orchestrator::run_once(&app.state, "rescuer").await?);
    assert_eq!(app.request_state(id).await?, RequestState::Completed);
    assert_eq!(app.state.metrics.lease_takeovers.get(), 1);
    let job = job_of(&app, id).await?;
    assert_eq!((job.state.as_str(), job.attempts), (jobs::DONE, 2));
    let takeovers: i64 = sqlx::query_scalar("SELECT takeovers FROM jobs WHERE id = $1")
        .bind(job.id)
        .fetch_one(&app.state.db.pool)
        .await?;
    assert_eq!(takeovers, 1);

    // The stalled worker wakes and carries on with its old claim: fenced out.
    let before = app.snapshot().await?;
    let audit_before = app.count("audit_events").await?;
    orchestrator::run_job(&app.state, &stale, "stalled", &JobControl::default()).await?;
    assert_eq!(app.snapshot().await?, before, "nothing was written");
    assert_eq!(app.count("audit_events").await?, audit_before);
    assert_eq!(app.request_state(id).await?, RequestState::Completed);
    assert_eq!(job_of(&app, id).await?.state, jobs::DONE);
    Ok(())
}

async fn cancel_stops_a_running_step_and_fails_the_request(engine: Engine) -> TestResult {
    let Some(app) = pause_app(engine, 600).await? else {
        return Ok(());
    };
    let id = submit_pause(&app, "stuck", 300).await?;
    let state = app.state.clone();
    let started = Instant::now();
    let worker = tokio::spawn(async move { orchestrator::run_once(&state, "busy").await });
    until_step_runs(&app, id).await?;
    let alice = app.user("alice").await?;
    requests::cancel(&app.state, &alice, id).await?;
    // Until the worker has stopped, a retry would run the step twice at once,
    // and a person taking over would work beside it.
    let carol = app.user("carol").await?;
    let retried = operations::retry(&app.state, &carol, id).await;
    let taken = operations::take_over(&app.state, &carol, id).await;
    for refused in [retried, taken] {
        assert!(
            matches!(&refused, Err(ServiceError::Conflict(m)) if m.contains("still stopping")),
            "{refused:?}"
        );
    }
    // The worker learns it at its next heartbeat (a third of the lease).
    tokio::time::timeout(LEASE * 2, worker).await???;
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the sleep was killed"
    );
    let row = app.request(id).await?;
    assert_eq!(row.state, RequestState::Failed);
    let error = row.last_error.unwrap_or_default();
    assert!(
        error.starts_with("cancelled by alice while it ran"),
        "{error}"
    );
    let job = job_of(&app, id).await?;
    assert_eq!(job.state, jobs::CANCELLED);
    assert_eq!(job.last_error.as_deref(), Some("cancelled by alice"));
    let steps = steps_of(&app, id).await?;
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0].state, "failed");
    assert_eq!(
        steps[0].summary,
        "stopped: the request was cancelled by alice"
    );
    // Failed, so the platform team sees it and may retry or take it over.
    let shown = slipway_server::services::detail::request_detail(
        &app.state,
        &carol,
        id,
        slipway_server::services::detail::ReviewerRead::Counts,
    )
    .await?;
    assert!(shown.permissions.retry && shown.permissions.take_over);
    operations::retry(&app.state, &carol, id).await?;
    assert_eq!(app.request_state(id).await?, RequestState::Executing);
    Ok(())
}

/// A run that fails for a passing reason after its request was cancelled is not
/// put back in the queue: it ends cancelled, so it never runs beside a retry.
async fn a_cancelled_run_that_fails_is_not_queued_again(engine: Engine) -> TestResult {
    let Some(app) = pause_app(engine, 60).await? else {
        return Ok(());
    };
    let id = submit_pause(&app, "cancel-then-blip", 60).await?;
    let claimed = claim_into(&app, &["blip"]).await?;
    let job = &claimed.first().ok_or("a job")?.job;
    let mut tx = app.state.db.write().await?;
    jobs::stop_for_request(&mut tx, id, "alice").await?;
    assert!(jobs::reschedule(&mut tx, job.id, "blip", 1_000, "the database blinked").await?);
    tx.commit().await?;
    assert_eq!(job_of(&app, id).await?.state, jobs::CANCELLED);
    Ok(())
}

async fn cancel_before_the_job_runs_ends_it_quietly(engine: Engine) -> TestResult {
    let Some(app) = pause_app(engine, 60).await? else {
        return Ok(());
    };
    let id = submit_pause(&app, "early", 0).await?;
    let alice = app.user("alice").await?;
    requests::cancel(&app.state, &alice, id).await?;
    assert_eq!(app.request_state(id).await?, RequestState::Cancelled);
    assert_eq!(job_of(&app, id).await?.state, jobs::CANCELLED);
    assert!(!orchestrator::run_once(&app.state, "idle").await?);
    assert!(steps_of(&app, id).await?.is_empty(), "nothing ran");
    Ok(())
}

async fn shutdown_hands_a_running_job_back(engine: Engine) -> TestResult {
    let Some(app) = pause_app(engine, 600).await? else {
        return Ok(());
    };
    let id = submit_pause(&app, "handback", 300).await?;
    let (stop, stopped) = watch::channel(false);
    let workers = orchestrator::spawn(app.state.clone(), stopped);
    until_step_runs(&app, id).await?;
    let asked = Instant::now();
    stop.send(true)?;
    // The grace (1 s) runs out, the sleep is stopped, the job goes back.
    tokio::time::timeout(Duration::from_secs(15), workers).await??;
    assert!(asked.elapsed() < Duration::from_secs(15));
    let job = job_of(&app, id).await?;
    assert_eq!(
        (job.state.as_str(), job.attempts, job.lease_owner.as_deref()),
        (jobs::QUEUED, 0, None),
        "queued again, the interrupted run not counted"
    );
    let due: i64 = sqlx::query_scalar("SELECT run_after FROM jobs WHERE id = $1")
        .bind(job.id)
        .fetch_one(&app.state.db.pool)
        .await?;
    assert!(due <= now_millis(), "due at once for the next replica");
    let steps = steps_of(&app, id).await?;
    assert_eq!(steps.len(), 1);
    assert!(
        steps[0].summary.contains("server shut down"),
        "{:?}",
        steps[0]
    );
    assert_eq!(app.request_state(id).await?, RequestState::Executing);
    Ok(())
}

async fn a_step_past_its_timeout_is_retried_after_a_pause_then_fails(engine: Engine) -> TestResult {
    let Some(app) = pause_app(engine, 1).await? else {
        return Ok(());
    };
    let id = submit_pause(&app, "slow", 30).await?;
    let started = Instant::now();
    assert!(orchestrator::run_once(&app.state, "w").await?);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "stopped at 1 s"
    );
    let job = job_of(&app, id).await?;
    assert_eq!((job.state.as_str(), job.attempts), (jobs::QUEUED, 1));
    let error = job.last_error.unwrap_or_default();
    assert_eq!(
        error,
        "step 1 (command): did not finish within the type's step timeout of 1 s and was stopped"
    );
    // The first pause is two seconds with up to half of it taken off at random.
    let due: i64 = sqlx::query_scalar("SELECT run_after FROM jobs WHERE id = $1")
        .bind(job.id)
        .fetch_one(&app.state.db.pool)
        .await?;
    let wait = due - now_millis();
    assert!((0..=2_000).contains(&wait), "{wait} ms");
    assert!(
        !orchestrator::run_once(&app.state, "w").await?,
        "not due yet"
    );
    app.exec("UPDATE jobs SET run_after = 0 WHERE state = 'queued'")
        .await?;
    assert!(orchestrator::run_once(&app.state, "w").await?);
    // Two attempts, the type's limit: the request fails into manual handling.
    let row = app.request(id).await?;
    assert_eq!(row.state, RequestState::Failed);
    assert_eq!(row.last_error.as_deref(), Some(error.as_str()));
    let job = job_of(&app, id).await?;
    assert_eq!((job.state.as_str(), job.attempts), (jobs::FAILED, 2));
    Ok(())
}

/// Ends the lease of every running job, as if its worker had died.
async fn lapse_leases(app: &TestApp) -> TestResult {
    app.exec("UPDATE jobs SET lease_until = 0, run_after = 0 WHERE state = 'running'")
        .await?;
    Ok(())
}

async fn a_run_cut_short_by_its_workers_death_is_not_a_failed_attempt(
    engine: Engine,
) -> TestResult {
    let Some(app) = pause_app(engine, 1).await? else {
        return Ok(());
    };
    // The type allows two attempts; each run times out.
    let id = submit_pause(&app, "orphan", 30).await?;
    claim_as(&app, "died").await?.ok_or("a job")?;
    lapse_leases(&app).await?;
    assert!(orchestrator::run_once(&app.state, "w").await?);
    let job = job_of(&app, id).await?;
    assert_eq!(
        (job.state.as_str(), job.attempts, job.takeovers),
        (jobs::QUEUED, 2, 1),
        "one failed run of two allowed: tried again"
    );
    assert_eq!(app.request_state(id).await?, RequestState::Executing);
    app.exec("UPDATE jobs SET run_after = 0 WHERE state = 'queued'")
        .await?;
    assert!(orchestrator::run_once(&app.state, "w").await?);
    let job = job_of(&app, id).await?;
    assert_eq!((job.state.as_str(), job.failing_runs()), (jobs::FAILED, 2));
    assert_eq!(app.request_state(id).await?, RequestState::Failed);
    Ok(())
}

async fn a_job_whose_workers_keep_dying_fails_after_as_many_takeovers_as_attempts(
    engine: Engine,
) -> TestResult {
    let Some(app) = pause_app(engine, 60).await? else {
        return Ok(());
    };
    let id = submit_pause(&app, "crasher", 0).await?;
    // Claimed, then taken over twice (the type's two attempts), each time dying.
    for worker in ["first", "second", "third"] {
        claim_as(&app, worker).await?.ok_or("a job")?;
        lapse_leases(&app).await?;
    }
    assert_eq!(job_of(&app, id).await?.takeovers, 2);
    // The third takeover is one too many: the request fails with the reason.
    assert!(orchestrator::run_once(&app.state, "w").await?);
    let job = job_of(&app, id).await?;
    assert_eq!((job.state.as_str(), job.takeovers), (jobs::FAILED, 3));
    let row = app.request(id).await?;
    assert_eq!(row.state, RequestState::Failed);
    assert_eq!(
        row.last_error.as_deref(),
        Some("its worker stopped 3 times while running it; it is not run again")
    );
    Ok(())
}

/// A process renews the leases of all the jobs it runs together: each job hears
/// what concerns it (a cancel, a takeover by another replica) and the others keep
/// their leases past their length.
async fn one_process_renews_every_lease_it_holds_and_tells_each_job_its_news(
    engine: Engine,
) -> TestResult {
    let Some(app) = pause_app(engine, 60).await? else {
        return Ok(());
    };
    let kept = submit_pause(&app, "kept", 60).await?;
    let cancelled = submit_pause(&app, "cancelled", 60).await?;
    let taken = submit_pause(&app, "taken", 60).await?;
    let claimed = claim_into(&app, &["here-1", "here-2", "here-3"]).await?;
    assert_eq!(claimed.len(), 3);
    let mut held = Vec::new();
    for claim in &claimed {
        let control = JobControl::default();
        let owner = claim.job.lease_owner.clone().ok_or("an owner")?;
        let guard = app.state.leases.hold(claim.job.id, &owner, control.clone());
        held.push((claim.job.request_id, control, guard));
    }
    let alice = app.user("alice").await?;
    requests::cancel(&app.state, &alice, cancelled).await?;
    // Another replica takes one job over, as if this process had stalled on it.
    app.exec(&format!(
        "UPDATE jobs SET lease_until = 0, run_after = 0 WHERE request_id = {}",
        taken.0
    ))
    .await?;
    let other = claim_as(&app, "elsewhere").await?.ok_or("a takeover")?;
    assert_eq!(other.job.request_id, taken);

    // Twice the lease: without renewals every lease would have lapsed.
    tokio::time::sleep(LEASE * 2).await;
    let reason_of = |id: RequestId| {
        held.iter()
            .find(|(request, _, _)| *request == id)
            .and_then(|(_, control, _)| control.reason())
    };
    assert_eq!(reason_of(kept), None, "a held lease goes on");
    assert_eq!(
        reason_of(cancelled),
        Some(StopReason::Cancelled { by: "alice".into() })
    );
    assert_eq!(reason_of(taken), Some(StopReason::LeaseLost));
    for id in [kept, cancelled] {
        let lease_until: i64 =
            sqlx::query_scalar("SELECT lease_until FROM jobs WHERE request_id = $1")
                .bind(id.0)
                .fetch_one(&app.state.db.pool)
                .await?;
        assert!(lease_until > now_millis(), "{id}: the lease was renewed");
    }
    assert_eq!(app.state.leases.held_count(), 2, "the lost one is let go");
    drop(held);
    assert_eq!(app.state.leases.held_count(), 0);
    Ok(())
}

/// A process that cannot reach the database stops its jobs before their leases
/// can lapse: another replica may take them over then, and two workers must not
/// run one job's steps at once.
async fn a_process_that_cannot_renew_stops_its_jobs_before_their_leases_lapse(
    engine: Engine,
) -> TestResult {
    let Some(app) = pause_app(engine, 60).await? else {
        return Ok(());
    };
    submit_pause(&app, "cut-off", 60).await?;
    let claimed = claim_into(&app, &["cut-off"]).await?;
    let claimed_at = Instant::now();
    let job = &claimed.first().ok_or("a job")?.job;
    let keeper = LeaseKeeper::new(app.state.db.clone(), LEASE);
    let control = JobControl::default();
    let _held = keeper.hold(job.id, "cut-off", control.clone());
    app.state.db.pool.close().await;
    app.state.db.writer.close().await;
    tokio::time::timeout(LEASE * 2, control.stopped()).await?;
    assert_eq!(control.reason(), Some(StopReason::LeaseLost));
    assert!(
        claimed_at.elapsed() < LEASE,
        "stopped {:?} after the claim, before its lease of {LEASE:?} could lapse",
        claimed_at.elapsed()
    );
    assert_eq!(keeper.held_count(), 0);
    Ok(())
}

/// When this process claims a job again (its earlier run's lease lapsed while
/// that run was stuck), the earlier run hears that it lost the lease, and its
/// guard, dropped when it ends, leaves the newer run's renewals in place.
async fn a_job_claimed_again_here_stops_its_older_run_and_keeps_its_renewals(
    engine: Engine,
) -> TestResult {
    let Some(app) = pause_app(engine, 60).await? else {
        return Ok(());
    };
    submit_pause(&app, "twice-here", 60).await?;
    let claimed = claim_into(&app, &["first-run"]).await?;
    let job = &claimed.first().ok_or("a job")?.job;
    let (older, newer) = (JobControl::default(), JobControl::default());
    let older_guard = app.state.leases.hold(job.id, "first-run", older.clone());
    let newer_guard = app.state.leases.hold(job.id, "second-run", newer.clone());
    assert_eq!(older.reason(), Some(StopReason::LeaseLost));
    assert_eq!(newer.reason(), None);
    drop(older_guard);
    assert_eq!(
        app.state.leases.held_count(),
        1,
        "the newer run is still renewed"
    );
    drop(newer_guard);
    assert_eq!(app.state.leases.held_count(), 0);
    Ok(())
}

/// A process started with no workers (pages only, beside the one that runs
/// them) leaves the leases of running jobs alone: on SQLite the worker process
/// releases the leases a crashed run left, not every process that starts.
async fn a_process_without_workers_leaves_running_jobs_alone(engine: Engine) -> TestResult {
    let Some(app) = pause_app(engine, 60).await? else {
        return Ok(());
    };
    submit_pause(&app, "running-elsewhere", 60).await?;
    let claimed = claim_into(&app, &["worker-process"]).await?;
    let job = &claimed.first().ok_or("a job")?.job;
    let mut settings = (*app.state.settings).clone();
    settings.workers.workers = 0;
    let pages_only = slipway_server::AppState {
        settings: std::sync::Arc::new(settings),
        ..app.state.clone()
    };
    let lease = || async {
        sqlx::query_scalar::<_, i64>("SELECT lease_until FROM jobs WHERE id = $1")
            .bind(job.id)
            .fetch_one(&app.state.db.pool)
            .await
    };
    let before = lease().await?;
    let (_stop, shutdown) = watch::channel(false);
    orchestrator::spawn(pages_only, shutdown).await?;
    assert_eq!(
        lease().await?,
        before,
        "the running job's lease is untouched"
    );
    Ok(())
}

/// A process with more jobs than one statement's parameters renews them in
/// chunks, and hears only about the owners that hold a running job.
async fn one_renewal_answers_for_more_owners_than_one_statement_takes(
    engine: Engine,
) -> TestResult {
    let Some(app) = pause_app(engine, 60).await? else {
        return Ok(());
    };
    submit_pause(&app, "first", 60).await?;
    submit_pause(&app, "second", 60).await?;
    let mut owners: Vec<String> = (0..1200).map(|n| format!("gone-{n}")).collect();
    owners[3] = "holder-a".into();
    owners[1100] = "holder-b".into();
    assert_eq!(claim_into(&app, &["holder-a", "holder-b"]).await?.len(), 2);
    let mut tx = app.state.db.write().await?;
    let beats = jobs::heartbeat(&mut tx, app.engine, &owners, LEASE.as_millis() as i64).await?;
    tx.commit().await?;
    let mut heard: Vec<&String> = beats.keys().collect();
    heard.sort();
    assert_eq!(heard, ["holder-a", "holder-b"]);
    assert!(beats.values().all(|beat| *beat == jobs::Heartbeat::Held));
    Ok(())
}

/// Replicas measure leases by the database's clock, not their own: one whose
/// clock runs behind would otherwise take over jobs whose workers are alive. Here
/// the database's clock is an hour ahead of this process's (a `clock_timestamp()`
/// earlier on the search path), and the lease a claim and a renewal write ends an
/// hour after this process's now.
#[tokio::test]
async fn leases_run_on_the_database_clock_on_postgres() -> TestResult {
    let Some(app) = pause_app(Engine::Postgres, 60).await? else {
        return Ok(());
    };
    submit_pause(&app, "first", 60).await?;
    sqlx::raw_sql(
        "CREATE SCHEMA skewed; \
         CREATE FUNCTION skewed.clock_timestamp() RETURNS timestamptz LANGUAGE sql \
         AS $$ SELECT pg_catalog.clock_timestamp() + interval '1 hour' $$",
    )
    .execute(&app.state.db.pool)
    .await?;
    let ahead = |at: i64| at - slipway_server::storage::now_millis();
    let skewed = "SET LOCAL search_path = skewed, pg_catalog, public";
    let mut tx = app.state.db.write().await?;
    sqlx::query(skewed).execute(&mut *tx).await?;
    let claimed = jobs::claim(&mut tx, app.engine, "holder", LEASE.as_millis() as i64)
        .await?
        .ok_or("the job is claimed")?;
    tx.commit().await?;
    let lease_until: i64 = sqlx::query_scalar("SELECT lease_until FROM jobs WHERE id = $1")
        .bind(claimed.job.id)
        .fetch_one(&app.state.db.pool)
        .await?;
    assert!(
        ahead(lease_until) > 50 * 60 * 1000,
        "{}",
        ahead(lease_until)
    );

    let mut tx = app.state.db.write().await?;
    sqlx::query(skewed).execute(&mut *tx).await?;
    let owners = ["holder".to_string()];
    let beats = jobs::heartbeat(&mut tx, app.engine, &owners, LEASE.as_millis() as i64).await?;
    tx.commit().await?;
    assert_eq!(beats.get("holder"), Some(&jobs::Heartbeat::Held));
    let renewed: i64 = sqlx::query_scalar("SELECT lease_until FROM jobs WHERE id = $1")
        .bind(claimed.job.id)
        .fetch_one(&app.state.db.pool)
        .await?;
    assert!(renewed >= lease_until && ahead(renewed) > 50 * 60 * 1000);

    // A job put back for later is due by the same clock.
    let mut tx = app.state.db.write().await?;
    sqlx::query(skewed).execute(&mut *tx).await?;
    assert!(jobs::reschedule(&mut tx, claimed.job.id, "holder", 2_000, "a blink").await?);
    tx.commit().await?;
    let run_after: i64 = sqlx::query_scalar("SELECT run_after FROM jobs WHERE id = $1")
        .bind(claimed.job.id)
        .fetch_one(&app.state.db.pool)
        .await?;
    assert!(ahead(run_after) > 50 * 60 * 1000, "{}", ahead(run_after));
    Ok(())
}

/// Half a year on, a step's log is emptied (its state and summary stay); a
/// newer step keeps its log, and a second sweep has nothing left to do.
/// A request retried for months keeps every attempt's state and summary on its
/// page, but only the newest attempts' logs (up to 128 KiB each): 60 attempts
/// carry 20 logs, the newest.
async fn a_request_page_carries_the_logs_of_its_newest_attempts_only(engine: Engine) -> TestResult {
    let Some(app) = TestApp::start(engine).await? else {
        return Ok(());
    };
    let alice = app.user("alice").await?;
    let id = app.namespace(&alice, "dev", "retried").await?;
    for _ in 0..20 {
        app.exec(&format!(
            "INSERT INTO job_steps (job_id, request_id, revision, step_index, driver, attempt, \
             state, summary, log, started_at) SELECT job_id, request_id, revision, step_index, \
             driver, attempt, state, summary, 'an attempt''s output', started_at FROM job_steps \
             WHERE request_id = {id} AND id = (SELECT MIN(id) FROM job_steps WHERE request_id = {id})"
        ))
        .await?;
    }
    app.exec(&format!(
        "UPDATE job_steps SET log = 'an attempt''s output' WHERE request_id = {id}"
    ))
    .await?;
    let all: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM job_steps WHERE request_id = $1")
        .bind(id.0)
        .fetch_one(&app.state.db.pool)
        .await?;
    assert!(all > jobs::STEPS_WITH_LOGS, "{all}");
    let steps = steps_of(&app, id).await?;
    assert_eq!(steps.len() as i64, all, "every attempt is listed");
    let cut = steps.len() - jobs::STEPS_WITH_LOGS as usize;
    assert!(
        steps[..cut]
            .iter()
            .all(|s| s.log.is_empty() && s.log_omitted && !s.summary.is_empty())
    );
    assert!(
        steps[cut..]
            .iter()
            .all(|s| s.log == "an attempt's output" && !s.log_omitted)
    );
    assert!(steps.windows(2).all(|w| w[0].id < w[1].id), "oldest first");
    Ok(())
}

async fn old_step_logs_are_emptied_and_their_summaries_kept(engine: Engine) -> TestResult {
    let Some(app) = TestApp::start(engine).await? else {
        return Ok(());
    };
    let alice = app.user("alice").await?;
    let (old, new) = (
        app.namespace(&alice, "dev", "old-one").await?,
        app.namespace(&alice, "dev", "new-one").await?,
    );
    let half_a_year = slipway_server::housekeeping::KEEP_STEP_LOGS_MS;
    app.exec(&format!(
        "UPDATE job_steps SET started_at = started_at - {half_a_year} - 1000, \
         log = 'committed 3 files' WHERE request_id = {old}"
    ))
    .await?;
    app.exec(&format!(
        "UPDATE job_steps SET log = 'committed 3 files' WHERE request_id = {new}"
    ))
    .await?;
    let trimmed = jobs::trim_logs_before(&app.state.db, now_millis() - half_a_year).await?;
    assert!(trimmed >= 1, "{trimmed}");
    let logs: Vec<(i64, String, String, String)> =
        sqlx::query_as("SELECT request_id, state, summary, log FROM job_steps ORDER BY id")
            .fetch_all(&app.state.db.pool)
            .await?;
    for (request, state, summary, log) in &logs {
        assert!(!summary.is_empty() && !state.is_empty());
        let expected_empty = *request == old.0;
        assert_eq!(log.is_empty(), expected_empty, "#{request}: {log:?}");
    }
    assert_eq!(
        jobs::trim_logs_before(&app.state.db, now_millis() - half_a_year).await?,
        0
    );
    Ok(())
}
