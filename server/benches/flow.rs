//! Flow benchmarks, run by hand (`./bench/run`): server pre-check latency and
//! throughput with a warm database, and submit-to-asset time for an auto-approved
//! request on SQLite. Prints figures; asserts nothing.

use std::error::Error;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::json;
use slipway_core::views::RequestDraft;
use slipway_server::cli::build_state;
use slipway_server::config::Settings;
use slipway_server::services;
use slipway_server::state::AppState;

const PRECHECK_CALLS: usize = 2000;
const SUBMIT_RUNS: usize = 30;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

async fn state_in(dir: &std::path::Path) -> Result<AppState, Box<dyn Error>> {
    let settings = Settings {
        addr: "127.0.0.1:0".parse()?,
        data_dir: dir.to_path_buf(),
        catalog: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../catalog")),
        demo: true,
        database_url: format!("sqlite://{}?mode=rwc", dir.join("bench.db").display()),
        gitops_repo: dir.join("gitops.git"),
        gitops: Default::default(),
        command: Default::default(),
        workers: Default::default(),
        metrics_token: None,
        outbound: Default::default(),
        site_root: dir.to_path_buf(),
        secure_cookies: false,
        secret_key: None,
        audit_checkpoint_interval: std::time::Duration::from_secs(600),
        upgrade_sweep_interval: std::time::Duration::from_secs(3600),
        close_unrevised_after: None,
        // The pre-checks are measured, not paced.
        identity: slipway_server::config::IdentitySettings {
            checks_per_minute: 0,
            ..Default::default()
        },
        chat: None,
    };
    Ok(build_state(settings).await?)
}

async fn drain(state: &AppState) -> Result<(), Box<dyn Error>> {
    while slipway_server::orchestrator::run_once(state, "bench").await? {}
    Ok(())
}

async fn namespace(
    state: &AppState,
    alice: &services::Caller,
    name: &str,
    key: &str,
) -> Result<(), Box<dyn Error>> {
    let draft = RequestDraft {
        type_name: "k8s-namespace".into(),
        params: json!({ "name": name, "team": "payments", "environment": "dev", "cpu_limit": 1, "memory_limit_gi": 1 }),
        submit_key: key.into(),
    };
    services::requests::submit(state, alice, &draft).await?;
    Ok(())
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    let dir = tempfile::tempdir()?;
    let state = state_in(dir.path()).await?;
    let channel = services::Channel::Portal;
    let meta = services::CallMeta::default();
    let alice = services::auth::login(&state, "alice", "alice-demo-pw", channel, &meta).await?;
    let alice = services::Caller::new(alice, channel, meta);

    // Warm: the namespace the database depends on, and some data to count against.
    namespace(&state, &alice, "bench", "warm-ns").await?;
    drain(&state).await?;

    let params = json!({ "name": "orders", "team": "payments", "environment": "dev", "size": "small", "storage_gb": 20, "version": "16" });
    for _ in 0..50 {
        services::requests::precheck(&state, &alice, "postgres-database", &params, None).await?;
    }
    let mut samples = Vec::with_capacity(PRECHECK_CALLS);
    let started = Instant::now();
    for _ in 0..PRECHECK_CALLS {
        let t = Instant::now();
        let report =
            services::requests::precheck(&state, &alice, "postgres-database", &params, None)
                .await?;
        samples.push(t.elapsed());
        if !report.passed() {
            return Err(format!("pre-check unexpectedly failed: {report:?}").into());
        }
    }
    let total = started.elapsed();
    samples.sort();
    println!("pre-check (postgres-database, SQLite, warm, {PRECHECK_CALLS} sequential calls):");
    println!(
        "  p50 {:.3} ms   p99 {:.3} ms   max {:.3} ms",
        ms(percentile(&samples, 0.5)),
        ms(percentile(&samples, 0.99)),
        ms(samples[samples.len() - 1])
    );
    println!(
        "  {:.0} checks/second",
        PRECHECK_CALLS as f64 / total.as_secs_f64()
    );

    let mut submit = Vec::with_capacity(SUBMIT_RUNS);
    for i in 0..SUBMIT_RUNS {
        let t = Instant::now();
        // Names differ so quota (3 per team and environment) is not what is measured: retire earlier ones.
        namespace(&state, &alice, &format!("n{i}"), &format!("submit-{i}")).await?;
        drain(&state).await?;
        submit.push(t.elapsed());
        sqlx::query("UPDATE assets SET state = 'retired' WHERE type_name = 'k8s-namespace' AND name <> 'payments-bench-dev'")
            .execute(&state.db.pool)
            .await?;
    }
    submit.sort();
    println!(
        "submit → asset (auto-approved k8s-namespace, SQLite, worker in-process, {SUBMIT_RUNS} runs):"
    );
    println!(
        "  p50 {:.1} ms   p99 {:.1} ms   min {:.1} ms",
        ms(percentile(&submit, 0.5)),
        ms(percentile(&submit, 0.99)),
        ms(submit[0])
    );
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
