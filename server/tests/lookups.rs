//! The pre-check's quota and requirement lookups: answered by indexes that Slipway
//! derives from the catalog, with the same counts as the rows say, on SQLite and
//! (with `SLIPWAY_TEST_POSTGRES_URL`) on PostgreSQL.

// Each test binary uses a part of the shared harness.
#[allow(dead_code)]
#[macro_use]
mod common;

use common::{TestApp, TestResult, draft, namespace_params, postgres_params};
use slipway_core::views::ReviewDecision;
use slipway_server::services::{requests, reviews};
use slipway_server::storage::quota::Recount;
use slipway_server::storage::{self, Engine};

on_both_engines!(
    every_lookup_is_served_by_its_index,
    usage_counts_assets_and_in_flight_requests_in_scope,
    requirement_finds_the_matching_namespace_only,
    indexes_follow_the_catalog,
    counters_agree_with_a_recount_after_every_kind_of_change,
    rules_that_share_a_counter_count_each_holder_once,
    seeded_data_spans_every_state_and_counts_right,
);

async fn lookup_indexes(app: &TestApp) -> TestResult<Vec<String>> {
    let sql = match app.engine {
        Engine::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'lookup_%' ORDER BY name"
        }
        Engine::Postgres => {
            "SELECT indexname::text AS name FROM pg_indexes WHERE indexname LIKE 'lookup_%' ORDER BY indexname"
        }
    };
    Ok(sqlx::query_scalar(sql)
        .fetch_all(&app.state.db.pool)
        .await?)
}

async fn every_lookup_is_served_by_its_index(app: &TestApp) -> TestResult {
    let mut conn = app.state.db.pool.acquire().await?;
    if app.engine == Engine::Postgres {
        // An empty table is read faster without an index; ask what the plan would be
        // when reading the table is not an option.
        sqlx::query("SET enable_seqscan = off")
            .execute(&mut *conn)
            .await?;
    }
    let catalog = &app.state.catalog.catalog;
    let plans = storage::lookup::plans(&mut conn, app.engine, catalog).await?;
    // Two holders (assets, requests) per lookup; the shipped catalog's database
    // requires its team's namespace in the same environment.
    assert_eq!(plans.len(), 2 * catalog.lookups().len());
    assert!(!catalog.lookups().is_empty(), "{:?}", catalog.lookups());
    for (lookup, plan) in &plans {
        assert!(
            plan.contains("lookup_"),
            "{lookup:?} is not answered by its index:\n{plan}"
        );
        // The oldest match is the index's first entry: nothing read whole and sorted.
        assert!(
            !plan.contains("Sort") && !plan.contains("TEMP B-TREE"),
            "{lookup:?} sorts its matches:\n{plan}"
        );
    }
    Ok(())
}

async fn usage_counts_assets_and_in_flight_requests_in_scope(app: &TestApp) -> TestResult {
    let alice = app.user("alice").await?;
    // One completed namespace (an asset) and one in flight (prod waits for review),
    // both payments; and one in another environment, out of the prod scope.
    app.namespace(&alice, "dev", "one").await?;
    let two = requests::submit(
        &app.state,
        &alice,
        &draft(
            "k8s-namespace",
            namespace_params("two", "payments", "prod", 8),
        ),
    )
    .await?;
    requests::submit(
        &app.state,
        &alice,
        &draft(
            "k8s-namespace",
            namespace_params("three", "payments", "prod", 2),
        ),
    )
    .await?;
    let next = namespace_params("four", "payments", "prod", 4);
    let report = requests::precheck(&app.state, &alice, "k8s-namespace", &next, None).await?;
    let per_env = &report.quotas[0];
    assert_eq!((per_env.used, per_env.limit), (2, 3), "{report:?}");
    let cpu = &report.quotas[1];
    // dev's asset (2 cores, as the harness asks) + 8 + 2 in flight, all payments.
    assert_eq!(cpu.used, 2 + 8 + 2, "{report:?}");
    assert!(report.passed(), "{report:?}");
    // A request being revised does not count against itself.
    let revised = namespace_params("two", "payments", "prod", 8);
    let report =
        requests::precheck(&app.state, &alice, "k8s-namespace", &revised, Some(two)).await?;
    assert_eq!(report.quotas[0].used, 1, "{report:?}");
    assert_eq!(report.quotas[1].used, 2 + 2, "{report:?}");
    Ok(())
}

async fn requirement_finds_the_matching_namespace_only(app: &TestApp) -> TestResult {
    let alice = app.user("alice").await?;
    let db = postgres_params("ledger", "dev", 20);
    let report = requests::precheck(&app.state, &alice, "postgres-database", &db, None).await?;
    assert_eq!(report.dependencies[0].found, None, "{report:?}");
    app.namespace(&alice, "staging", "apps").await?;
    let report = requests::precheck(&app.state, &alice, "postgres-database", &db, None).await?;
    assert_eq!(
        report.dependencies[0].found, None,
        "staging is not dev: {report:?}"
    );
    app.namespace(&alice, "dev", "apps").await?;
    let report = requests::precheck(&app.state, &alice, "postgres-database", &db, None).await?;
    assert_eq!(
        report.dependencies[0].found.as_deref(),
        Some("payments-apps-dev"),
        "{report:?}"
    );
    Ok(())
}

async fn indexes_follow_the_catalog(app: &TestApp) -> TestResult {
    let before = lookup_indexes(app).await?;
    assert_eq!(
        before.len(),
        2 * app.state.catalog.catalog.lookups().len(),
        "{before:?}"
    );
    // An index left by an older catalog is dropped at the next start; the current
    // ones are kept, not rebuilt under a new name.
    let stale = "lookup_assets_0000000000000000";
    app.exec(&format!("CREATE INDEX {stale} ON assets (name)"))
        .await?;
    let restarted = app.restart().await?;
    let after = lookup_indexes(app).await?;
    assert_eq!(after, before);
    drop(restarted);
    Ok(())
}

/// The quota counters as stored, in a stable order.
async fn counters(app: &TestApp) -> TestResult<Vec<(String, String, String, i64, i64)>> {
    let rows = sqlx::query_as::<_, (String, String, String, i64, i64)>(
        "SELECT type_name, rule, scope, holders, total FROM quota_usage \
         WHERE holders <> 0 OR total <> 0 ORDER BY type_name, rule, scope",
    )
    .fetch_all(&app.state.db.pool)
    .await?;
    Ok(rows)
}

async fn counters_agree_with_a_recount_after_every_kind_of_change(app: &TestApp) -> TestResult {
    let alice = app.user("alice").await?;
    let bob = app.user("bob").await?;
    // Completed (an asset), rejected, cancelled, revised with a new size, waiting.
    app.namespace(&alice, "dev", "done").await?;
    let submit = |name: &str, env: &str, cpu: i64| {
        draft(
            "k8s-namespace",
            namespace_params(name, "payments", env, cpu),
        )
    };
    let rejected = requests::submit(&app.state, &alice, &submit("no", "prod", 3)).await?;
    reviews::decide(&app.state, &bob, rejected, 1, ReviewDecision::Reject, "no").await?;
    let cancelled = requests::submit(&app.state, &alice, &submit("gone", "prod", 5)).await?;
    requests::cancel(&app.state, &alice, cancelled).await?;
    let revised = requests::submit(&app.state, &alice, &submit("grow", "staging", 2)).await?;
    reviews::decide(
        &app.state,
        &bob,
        revised,
        1,
        ReviewDecision::RequestChanges,
        "more",
    )
    .await?;
    let bigger = namespace_params("grow", "payments", "staging", 7);
    requests::resubmit(&app.state, &alice, revised, &bigger).await?;
    requests::submit(&app.state, &alice, &submit("wait", "prod", 1)).await?;
    let db = postgres_params("ledger", "dev", 30);
    app.namespace(&alice, "dev", "apps").await?;
    requests::submit(&app.state, &alice, &draft("postgres-database", db)).await?;
    app.run_jobs().await?;

    let kept = counters(app).await?;
    assert!(!kept.is_empty());
    let cpu_total: i64 = kept
        .iter()
        .filter(|c| c.0 == "k8s-namespace" && c.1 == "team|cpu_limit")
        .map(|c| c.4)
        .sum();
    // done 2 + grow 7 + wait 1 + apps 2; the rejected and cancelled ones left.
    assert_eq!(cpu_total, 2 + 7 + 1 + 2, "{kept:?}");
    // A start with the same rules leaves the counters; a recount from the rows
    // must find exactly what the changes kept.
    assert_eq!(
        storage::lookup::sync(&app.state.db, &app.state.catalog.catalog, Recount::Changed).await?,
        0
    );
    assert_eq!(counters(app).await?, kept);
    storage::lookup::sync(&app.state.db, &app.state.catalog.catalog, Recount::All).await?;
    assert_eq!(
        counters(app).await?,
        kept,
        "the counters drifted from the rows"
    );
    // A changed rule recounts its type only; a type gone from the catalog takes
    // its counters along.
    let mut changed = app.state.catalog.catalog.clone();
    let namespace = changed
        .types
        .get_mut("k8s-namespace")
        .ok_or("no namespace type")?;
    let dropped = namespace.quota.pop().ok_or("no quota rule")?;
    let dropped = format!(
        "{}|{}",
        dropped.per.join(","),
        dropped.sum.unwrap_or_default()
    );
    changed.types.remove("postgres-database");
    assert_eq!(
        storage::lookup::sync(&app.state.db, &changed, Recount::Changed).await?,
        1
    );
    let expected: Vec<_> = kept
        .iter()
        .filter(|c| c.0 == "k8s-namespace" && c.1 != dropped)
        .cloned()
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(counters(app).await?, expected);
    assert_eq!(
        storage::lookup::sync(&app.state.db, &app.state.catalog.catalog, Recount::Changed).await?,
        2,
        "both types are counted again under the shipped rules"
    );
    assert_eq!(counters(app).await?, kept);
    Ok(())
}

/// Two rules with the same scope and sum (a catalog may state one limit for
/// several reasons) read one counter; a holder moves it once, in one statement.
async fn rules_that_share_a_counter_count_each_holder_once(app: &TestApp) -> TestResult {
    let mut ty = app
        .state
        .catalog
        .catalog
        .types
        .get("k8s-namespace")
        .ok_or("no namespace type")?
        .clone();
    let first = ty.quota.first().ok_or("no quota rule")?.clone();
    ty.quota.push(first.clone());
    let twin = ty.quota.len() - 1;
    let params = namespace_params("twin", "payments", "dev", 3);
    let scope = storage::quota::scope_of(&first, &params).ok_or("no scope")?;
    let mut tx = app.state.db.write().await?;
    let before = storage::quota::usage(&mut tx, &ty, twin, &scope).await?;
    storage::quota::adjust(&mut tx, &ty, &params, 1).await?;
    for rule in [0, twin] {
        let after = storage::quota::usage(&mut tx, &ty, rule, &scope).await?;
        assert_eq!(after.count, before.count + 1, "rule {rule}");
    }
    storage::quota::adjust(&mut tx, &ty, &params, -1).await?;
    let back = storage::quota::usage(&mut tx, &ty, twin, &scope).await?;
    assert_eq!((back.count, back.sum), (before.count, before.sum));
    tx.rollback().await?;
    Ok(())
}

async fn seeded_data_spans_every_state_and_counts_right(app: &TestApp) -> TestResult {
    let plan = slipway_server::seed::SeedPlan {
        requests: 400,
        audit_events: 3_000,
    };
    let seeded = slipway_server::seed::seed(&app.state, plan).await?;
    assert_eq!(seeded.requests, 400);
    assert!(seeded.audit_events >= 3_000, "{seeded:?}");
    assert_eq!(app.count("requests").await?, 400);
    assert_eq!(app.count("assets").await?, seeded.assets as i64);
    let states: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT state FROM requests ORDER BY state")
            .fetch_all(&app.state.db.pool)
            .await?;
    assert!(states.len() >= 8, "{states:?}");
    let unlabelled: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM requests WHERE team IS NULL OR environment IS NULL OR params IS NULL",
    )
    .fetch_one(&app.state.db.pool)
    .await?;
    assert_eq!(unlabelled, 0);
    // A year of use lies in the past: no step of it ends after now.
    let now = slipway_server::storage::now_millis();
    let future: i64 = sqlx::query_scalar(
        "SELECT (SELECT COUNT(*) FROM requests WHERE updated_at > $1) \
         + (SELECT COUNT(*) FROM flow_steps WHERE at > $1)",
    )
    .bind(now)
    .fetch_one(&app.state.db.pool)
    .await?;
    assert_eq!(future, 0, "seeded rows dated after now");
    // Every revision went in on a pre-check that passed, as a real one does.
    let reports: Vec<String> = sqlx::query_scalar("SELECT precheck FROM request_revisions")
        .fetch_all(&app.state.db.pool)
        .await?;
    for report in &reports {
        let report: slipway_core::precheck::PrecheckReport = serde_json::from_str(report)?;
        assert!(report.passed(), "{report:?}");
    }
    // Every seeded event names the person it is about, as the audit filter reads it
    // (alice's history included), never a placeholder.
    let misnamed: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_events e JOIN users u ON u.id = e.actor_id \
         WHERE e.actor <> u.username",
    )
    .fetch_one(&app.state.db.pool)
    .await?;
    assert_eq!(misnamed, 0);
    let by_alice: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM audit_events WHERE actor = 'alice'")
            .fetch_one(&app.state.db.pool)
            .await?;
    assert!(by_alice > 100, "alice acted {by_alice} times");
    // Each asset's history starts with its creation, as the orchestrator records it.
    let without_history: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM assets a WHERE NOT EXISTS (SELECT 1 FROM audit_events e \
         WHERE e.target_kind = 'asset' AND e.target_id = CAST(a.id AS TEXT) \
         AND e.action = 'asset.created')",
    )
    .fetch_one(&app.state.db.pool)
    .await?;
    assert_eq!(without_history, 0);
    // The seed indexed the assets for search before the planner counted them.
    let unindexed: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM assets WHERE search_text IS NULL")
            .fetch_one(&app.state.db.pool)
            .await?;
    assert_eq!(unindexed, 0);
    // Each seeded asset holds its files, as one the orchestrator recorded.
    let pathless: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM assets WHERE deployed_paths IS NULL")
            .fetch_one(&app.state.db.pool)
            .await?;
    assert_eq!(pathless, 0);
    assert!(app.count("deployed_files").await? > 0);
    // The seed sealed what it wrote, as a year-old log is.
    let mut conn = app.state.db.pool.acquire().await?;
    assert!(!storage::audit::has_unsealed(&mut conn).await?);
    drop(conn);
    // The seed rebuilt the counters from what it wrote.
    let kept = counters(app).await?;
    storage::lookup::sync(&app.state.db, &app.state.catalog.catalog, Recount::All).await?;
    assert_eq!(counters(app).await?, kept);
    Ok(())
}
