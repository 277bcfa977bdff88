//! A request's execution steps run through their drivers against real counterparts:
//! the GitOps driver pushing to a `git daemon` remote that is down at first.

#[allow(dead_code, unused_macros)]
mod common;

use common::git_server::{GitDaemon, git};
use common::{TestApp, TestResult, captured_logs, draft, namespace_params};
use slipway_core::state::RequestState;
use slipway_server::config::Secret;
use slipway_server::drivers::gitops::{GitOpsSettings, RemoteCredentials, RemoteSettings};
use slipway_server::services::{ServiceError, requests};
use slipway_server::storage::{self, Engine};

const PASSWORD: &str = "canary-pw-4b8f19";

#[tokio::test]
async fn a_remote_that_is_down_delays_the_job_which_lands_once_it_is_back_sqlite() -> TestResult {
    remote_down_then_back(Engine::Sqlite).await
}

#[tokio::test]
async fn a_remote_that_is_down_delays_the_job_which_lands_once_it_is_back_postgres() -> TestResult {
    remote_down_then_back(Engine::Postgres).await
}

async fn remote_down_then_back(engine: Engine) -> TestResult {
    let logs = captured_logs();
    let mut daemon = GitDaemon::new()?;
    let url = daemon.create_repo("platform.git", "main")?;
    let settings = GitOpsSettings {
        branch: "main".into(),
        remote: Some(RemoteSettings {
            url: url.clone(),
            credentials: Some(RemoteCredentials {
                username: "slipway".into(),
                password: Secret::new(PASSWORD.into()),
            }),
        }),
    };
    let Some(app) = TestApp::start_with_gitops(engine, settings).await? else {
        eprintln!(
            "note: {} is not set; skipping the PostgreSQL run",
            common::POSTGRES_ENV
        );
        return Ok(());
    };
    let alice = app.user("alice").await?;
    let id = requests::submit(
        &app.state,
        &alice,
        &draft(
            "k8s-namespace",
            namespace_params("web", "payments", "dev", 2),
        ),
    )
    .await?;
    assert_eq!(app.request_state(id).await?, RequestState::Approved);

    // The remote is down: the step fails, retryably; the request waits in executing.
    assert_eq!(app.run_jobs().await?, 1);
    assert_eq!(app.request_state(id).await?, RequestState::Executing);
    let job = {
        let mut conn = app.state.db.pool.acquire().await?;
        storage::jobs::latest_for_request(&mut conn, id)
            .await?
            .ok_or("a job")?
    };
    assert_eq!(job.state, "queued", "rescheduled, not failed");
    let error = job.last_error.unwrap_or_default();
    assert!(
        error.starts_with("step 1 (gitops): GitOps remote "),
        "{error}"
    );
    assert!(error.contains(&url), "{error}");

    // Back up: the job runs again and lands one commit with the files.
    daemon.start()?;
    app.exec("UPDATE jobs SET run_after = 0").await?;
    assert_eq!(app.run_jobs().await?, 1);
    let row = app.request(id).await?;
    assert_eq!(row.state, RequestState::Completed, "{:?}", row.last_error);
    let commit = row.applied_commit.ok_or("an applied commit")?;
    let log = daemon.log("platform.git", "main")?;
    assert_eq!(log.len(), 1, "{log:?}");
    assert!(log[0].starts_with(&commit));
    let checkout = tempfile::tempdir()?;
    git(checkout.path(), &["clone", "--quiet", &url, "work"])?;
    assert!(
        checkout
            .path()
            .join("work/dev/payments/k8s-namespace/web/namespace.yaml")
            .exists()
    );

    // The acceptance checks read the files as the remote publishes them.
    let shown = slipway_server::services::detail::request_detail(
        &app.state,
        &alice,
        id,
        slipway_server::services::detail::ReviewerRead::Counts,
    )
    .await?;
    assert!(!shown.checks.is_empty());
    for check in &shown.checks {
        assert!(check.passed, "{check:?}");
        assert_eq!(check.kind, "git-file");
        assert!(
            check
                .detail
                .contains(&format!(" present on main at {url} at {commit}")),
            "{check:?}"
        );
    }

    // Each attempt of the step is recorded: failed, then done with the commit.
    let steps = {
        let mut conn = app.state.db.pool.acquire().await?;
        storage::jobs::steps_for_request(&mut conn, id).await?
    };
    let seen: Vec<(i64, &str, &str, i64)> = steps
        .iter()
        .map(|s| (s.step_index, s.driver.as_str(), s.state.as_str(), s.attempt))
        .collect();
    assert_eq!(seen, [(0, "gitops", "failed", 1), (0, "gitops", "done", 2)]);
    assert_eq!(steps[1].commit_id.as_deref(), Some(commit.as_str()));
    assert!(
        steps[1]
            .summary
            .starts_with(&format!("committed {commit} to main at {url}"))
    );

    // A crash after the push landed but before the step was recorded: the next
    // run finds the remote already holding the files and commits nothing.
    let crashed = requests::submit(
        &app.state,
        &alice,
        &draft(
            "k8s-namespace",
            namespace_params("api", "payments", "dev", 2),
        ),
    )
    .await?;
    let change_set = {
        let mut conn = app.state.db.pool.acquire().await?;
        storage::requests::revisions(&mut conn, crashed)
            .await?
            .into_iter()
            .next()
            .ok_or("a revision")?
            .change_set
    };
    let landed = app
        .state
        .gitops
        .apply(&change_set.files, "pushed before the crash")?;
    assert!(landed.created);
    assert_eq!(app.run_jobs().await?, 1);
    let row = app.request(crashed).await?;
    assert_eq!(row.state, RequestState::Completed, "{:?}", row.last_error);
    assert_eq!(row.applied_commit.as_deref(), Some(landed.commit.as_str()));
    assert_eq!(
        daemon.log("platform.git", "main")?.len(),
        2,
        "no second commit"
    );

    // A duplicate delivery of the job: the step is already done, nothing new.
    let mut tx = app.state.db.write().await?;
    storage::jobs::enqueue(
        &mut tx,
        id,
        requests::APPLY_JOB,
        i64::from(slipway_core::catalog::ExecutionLimits::default().max_attempts),
    )
    .await?;
    tx.commit().await?;
    app.run_jobs().await?;
    assert_eq!(daemon.log("platform.git", "main")?.len(), 2);

    // The password is nowhere: not in the database's texts, not in any log line.
    for (table, column) in [
        ("jobs", "last_error"),
        ("job_steps", "summary"),
        ("job_steps", "log"),
        ("audit_events", "detail"),
        ("audit_events", "after_value"),
        ("requests", "last_error"),
    ] {
        // Bound, not inlined: the statement text itself is logged.
        let found: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM {table} WHERE {column} LIKE $1"
        ))
        .bind(format!("%{PASSWORD}%"))
        .fetch_one(&app.state.db.pool)
        .await?;
        assert_eq!(found, 0, "{table}.{column} holds the password");
    }
    let logged = logs.text();
    assert!(
        logged.contains("will retry"),
        "the retry was logged: {logged}"
    );
    let leaks: Vec<&str> = logged.lines().filter(|l| l.contains(PASSWORD)).collect();
    assert!(leaks.is_empty(), "log lines hold the password: {leaks:#?}");
    Ok(())
}

const REPORT_TYPE: &str = r#"name: report
title: Report
description: A rendered report, committed, then read back by a command.
owner: platform
owner_param: team
parameters:
  type: object
  additionalProperties: false
  required: [name, team]
  properties:
    name: { type: string, title: Name, pattern: "^[a-z][a-z0-9-]{1,20}$" }
    team: { type: string, title: Team, x-dictionary: teams }
naming:
  template: "{{ team }}-{{ name }}"
review:
  approvers: { role: reviewer }
  auto_approve: { when: "true" }
outputs:
  - name: report
    path: "reports/{{ team }}/{{ name }}.yaml"
    template: report/report.yaml.j2
execute:
  - driver: gitops
    message: "report {{ resource_name }} for {{ requester }}"
  - driver: command
    program: PROGRAM
    args: ["{{ inputs[0] }}"]
    env: { REPORT: "{{ resource_name }}" }
checks:
  - kind: gitops-file
    path: "reports/{{ team }}/{{ name }}.yaml"
"#;

/// The shipped catalog plus `report` (whose command step runs `cat`) and
/// `shredder` (the same with `shred`, which the settings do not allow).
fn report_catalog() -> TestResult<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    common::copy_dir(&common::shipped_catalog(), dir.path())?;
    std::fs::write(
        dir.path().join("types/report.yaml"),
        REPORT_TYPE.replace("PROGRAM", "cat"),
    )?;
    std::fs::write(
        dir.path().join("types/shredder.yaml"),
        REPORT_TYPE
            .replace("name: report\n", "name: shredder\n")
            // A file is one asset's: the shredder's own directory.
            .replace("reports/", "shredded/")
            .replace("PROGRAM", "shred"),
    )?;
    std::fs::create_dir_all(dir.path().join("templates/report"))?;
    std::fs::write(
        dir.path().join("templates/report/report.yaml.j2"),
        "report: {{ resource_name }}\nteam: {{ team }}\n",
    )?;
    Ok(dir)
}

#[tokio::test]
async fn a_cancel_while_a_push_is_on_its_way_records_the_commit_that_landed_sqlite() -> TestResult {
    cancel_during_a_push(Engine::Sqlite).await
}

#[tokio::test]
async fn a_cancel_while_a_push_is_on_its_way_records_the_commit_that_landed_postgres() -> TestResult
{
    cancel_during_a_push(Engine::Postgres).await
}

/// A push cannot be called back once sent: a cancel (or a timeout) while it is
/// on its way must not record the step as stopped with nothing made while the
/// commit lands a moment later for a reconciler to apply.
async fn cancel_during_a_push(engine: Engine) -> TestResult {
    use std::os::unix::fs::PermissionsExt;
    let daemon = GitDaemon::running()?;
    let url = daemon.create_repo("slow.git", "main")?;
    let hook = daemon.repo_path("slow.git").join("hooks/pre-receive");
    std::fs::write(&hook, "#!/bin/sh\nsleep 4\n")?;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755))?;
    let gitops = GitOpsSettings {
        branch: "main".into(),
        remote: Some(RemoteSettings {
            url: url.clone(),
            credentials: None,
        }),
    };
    let Some(app) = TestApp::start_configured(engine, None, |settings| {
        settings.gitops = gitops;
        // A heartbeat every half second: the worker hears of the cancel mid-push.
        settings.workers.lease = std::time::Duration::from_millis(1_500);
    })
    .await?
    else {
        return Ok(());
    };
    let alice = app.user("alice").await?;
    let params = namespace_params("slow", "payments", "dev", 2);
    let id = requests::submit(&app.state, &alice, &draft("k8s-namespace", params)).await?;
    let state = app.state.clone();
    let worker =
        tokio::spawn(async move { slipway_server::orchestrator::run_once(&state, "w").await });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let mut conn = app.state.db.pool.acquire().await?;
        let steps = storage::jobs::steps_for_request(&mut conn, id).await?;
        if steps.iter().any(|s| s.state == "running") {
            break;
        }
        if std::time::Instant::now() > deadline {
            return Err("the push never started".into());
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(1_000)).await;
    requests::cancel(&app.state, &alice, id).await?;
    tokio::time::timeout(std::time::Duration::from_secs(60), worker).await???;

    let landed = daemon.log("slow.git", "main")?;
    assert_eq!(landed.len(), 1, "the push was on its way: {landed:?}");
    let mut conn = app.state.db.pool.acquire().await?;
    let steps = storage::jobs::steps_for_request(&mut conn, id).await?;
    let recorded: Vec<_> = steps.iter().filter_map(|s| s.commit_id.clone()).collect();
    assert!(
        recorded.iter().any(|c| landed[0].starts_with(c.as_str())),
        "the step records the commit that landed: {steps:?}"
    );
    Ok(())
}

#[tokio::test]
async fn steps_of_two_drivers_run_in_order_and_are_recorded_sqlite() -> TestResult {
    gitops_then_command(Engine::Sqlite).await
}

#[tokio::test]
async fn steps_of_two_drivers_run_in_order_and_are_recorded_postgres() -> TestResult {
    gitops_then_command(Engine::Postgres).await
}

async fn gitops_then_command(engine: Engine) -> TestResult {
    let Some(app) = TestApp::start_configured(engine, Some(report_catalog()?), |settings| {
        settings.command.allowed = vec!["cat".into()];
    })
    .await?
    else {
        eprintln!(
            "note: {} is not set; skipping the PostgreSQL run",
            common::POSTGRES_ENV
        );
        return Ok(());
    };
    let alice = app.user("alice").await?;
    let params = serde_json::json!({"name": "q3", "team": "payments"});
    let id = requests::submit(&app.state, &alice, &draft("report", params.clone())).await?;
    app.run_jobs().await?;
    let row = app.request(id).await?;
    assert_eq!(row.state, RequestState::Completed, "{:?}", row.last_error);
    let steps = {
        let mut conn = app.state.db.pool.acquire().await?;
        storage::jobs::steps_for_request(&mut conn, id).await?
    };
    let seen: Vec<(i64, &str, &str)> = steps
        .iter()
        .map(|s| (s.step_index, s.driver.as_str(), s.state.as_str()))
        .collect();
    assert_eq!(seen, [(0, "gitops", "done"), (1, "command", "done")]);
    assert_eq!(steps[0].commit_id, row.applied_commit);
    assert_eq!(
        steps[1].log,
        "stdout: report: payments-q3\nstdout: team: payments"
    );
    assert!(steps[1].summary.starts_with("cat exited 0 after "));
    // The request's page and API show them.
    let shown = slipway_server::services::detail::request_detail(
        &app.state,
        &alice,
        id,
        slipway_server::services::detail::ReviewerRead::Counts,
    )
    .await?;
    let shown: Vec<(i64, &str, &str)> = shown
        .steps
        .iter()
        .map(|s| (s.step, s.driver.as_str(), s.state.as_str()))
        .collect();
    assert_eq!(shown, [(1, "gitops", "done"), (2, "command", "done")]);

    // A program the settings do not allow: the type cannot be requested here,
    // in the pre-check's words, before any review.
    let refused = requests::submit(&app.state, &alice, &draft("shredder", params.clone())).await;
    assert!(
        matches!(&refused, Err(ServiceError::Conflict(m))
            if m.contains("cannot be requested on this Slipway yet")
                && m.contains("\"shred\" is not allowed")),
        "{refused:?}"
    );
    let report = requests::precheck(&app.state, &alice, "shredder", &params, None).await?;
    assert!(!report.passed(), "{report:?}");
    // One asked for while the allow-list still had it (the setting changed since):
    // the commit lands, the command step fails for good, the request fails with
    // the reason.
    let mut allowing = app.state.clone();
    let mut command = app.settings.command.clone();
    command.allowed.push("shred".into());
    allowing.drivers.command = slipway_server::drivers::command::CommandDriver::new(command);
    let id = requests::submit(&allowing, &alice, &draft("shredder", params)).await?;
    app.run_jobs().await?;
    let row = app.request(id).await?;
    assert_eq!(row.state, RequestState::Failed);
    let reason = row.last_error.unwrap_or_default();
    assert!(
        reason.starts_with(
            "step 2 (command): the program \"shred\" is not allowed by the server's --command-allow"
        ),
        "{reason}"
    );
    let steps = {
        let mut conn = app.state.db.pool.acquire().await?;
        storage::jobs::steps_for_request(&mut conn, id).await?
    };
    let seen: Vec<(i64, &str, &str)> = steps
        .iter()
        .map(|s| (s.step_index, s.driver.as_str(), s.state.as_str()))
        .collect();
    assert_eq!(seen, [(0, "gitops", "done"), (1, "command", "failed")]);
    Ok(())
}
