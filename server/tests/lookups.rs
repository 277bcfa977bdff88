//! The pre-check's quota and requirement lookups: answered by indexes that Slipway
//! derives from the catalog, with the same counts as the rows say, on SQLite and
//! (with `SLIPWAY_TEST_POSTGRES_URL`) on PostgreSQL.

// Each test binary uses a part of the shared harness.
#[allow(dead_code)]
#[macro_use]
mod common;

use common::{TestApp, TestResult, draft, namespace_params, postgres_params};
use slipway_server::services::requests;
use slipway_server::storage::{self, Engine};

on_both_engines!(
    every_lookup_is_served_by_its_index,
    usage_counts_assets_and_in_flight_requests_in_scope,
    requirement_finds_the_matching_namespace_only,
    indexes_follow_the_catalog,
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
