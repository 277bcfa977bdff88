//! An approval binds exactly what will run: the change set and the parameters that
//! become the CMDB record.

// Each test binary uses a part of the shared harness.
#[allow(dead_code, unused_macros)]
#[macro_use]
mod common;

use common::{TestApp, TestResult, draft, namespace_params};
use slipway_core::state::RequestState;
use slipway_core::views::ReviewDecision;
use slipway_server::services::{requests, reviews};

on_both_engines!(parameters_changed_after_approval_are_refused);

async fn parameters_changed_after_approval_are_refused(app: &TestApp) -> TestResult {
    let alice = app.user("alice").await?;
    let bob = app.user("bob").await?;
    let id = requests::submit(
        &app.state,
        &alice,
        &draft(
            "k8s-namespace",
            namespace_params("ledger", "payments", "prod", 2),
        ),
    )
    .await?;
    reviews::decide(&app.state, &bob, id, 1, ReviewDecision::Approve, "fine").await?;
    let approved = app.request(id).await?;
    assert_eq!(
        approved.approved_params_hash.as_deref().map(str::len),
        Some(64)
    );

    // Someone edits the stored parameters after the approval: the change set is untouched.
    let forged = namespace_params("ledger", "payments", "prod", 64).to_string();
    app.exec(&format!(
        "UPDATE request_revisions SET params = '{forged}' WHERE request_id = {id}"
    ))
    .await?;
    let commits_before = app.gitops_commits()?;
    app.run_jobs().await?;

    let failed = app.request(id).await?;
    assert_eq!(failed.state, RequestState::Failed);
    let error = failed.last_error.unwrap_or_default();
    assert!(error.contains("parameters' hash"), "{error}");
    assert_eq!(
        app.gitops_commits()?,
        commits_before,
        "nothing was committed"
    );
    assert_eq!(app.count("assets").await?, 0, "nothing entered the CMDB");
    Ok(())
}
