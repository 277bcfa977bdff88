//! Audit benchmarks, run by hand (`./bench/audit`): the cost of an audit append
//! against a plain insert of the same row, PostgreSQL throughput with concurrent
//! writers under the old global-lock chain and the new sealed chain, and
//! `audit verify` over a million events, on SQLite and (with a URL) PostgreSQL.
//! Prints figures; asserts nothing.
//!
//! The old scheme (every writer takes one advisory lock, reads the last hash and
//! inserts the chained row) lives only here, as SQL against a table of the old
//! shape, so the comparison stays reproducible without it being a product path.

use std::error::Error;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use slipway_server::audit_chain;
use slipway_server::storage::audit::{self, NewEvent, Origin, VerifyFrom};
use slipway_server::storage::{Db, Engine};
use sqlx::{AnyConnection, Connection};

type BenchResult<T = ()> = Result<T, Box<dyn Error + Send + Sync>>;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const COLUMNS: &str = "at BIGINT NOT NULL, actor_id BIGINT, actor TEXT NOT NULL, \
    action TEXT NOT NULL, target_kind TEXT NOT NULL, target_id TEXT NOT NULL, \
    before_value TEXT, after_value TEXT, detail TEXT NOT NULL DEFAULT '', channel TEXT, \
    client_addr TEXT, trace_id TEXT, token_id BIGINT";

/// A bare table of the same row (primary key only), a plain one with the audit
/// list's three indexes, and one of the old chained shape (prev_hash and hash NOT
/// NULL, written by each writer) with the same indexes.
async fn create_tables(db: &Db) -> BenchResult {
    let serial = match db.engine {
        Engine::Sqlite => "seq INTEGER PRIMARY KEY AUTOINCREMENT",
        Engine::Postgres => "seq BIGSERIAL PRIMARY KEY",
    };
    sqlx::query(&format!("CREATE TABLE bench_bare ({serial}, {COLUMNS})"))
        .execute(&db.pool)
        .await?;
    for (table, extra) in [
        ("bench_plain", ""),
        (
            "bench_old_chain",
            ", prev_hash TEXT NOT NULL, hash TEXT NOT NULL",
        ),
    ] {
        sqlx::query(&format!(
            "CREATE TABLE {table} ({serial}, {COLUMNS}{extra})"
        ))
        .execute(&db.pool)
        .await?;
        for (name, cols) in [
            ("target", "target_kind, target_id, seq"),
            ("actor", "actor, seq"),
            ("action", "action, seq"),
        ] {
            sqlx::query(&format!("CREATE INDEX {table}_{name} ON {table} ({cols})"))
                .execute(&db.pool)
                .await?;
        }
    }
    Ok(())
}

struct Row {
    at: i64,
    target_id: String,
    trace_id: String,
}

fn row(i: usize) -> Row {
    Row {
        at: 1_790_000_000_000 + i as i64,
        target_id: (i % 50_000).to_string(),
        trace_id: format!("{:032x}", (i as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
    }
}

const DETAIL: &str = "revision 2, change set 3f9a1c0e7d2b4a6f8e1d0c9b7a6f5e4d3c2b1a09";

fn origin(row: &Row) -> Origin {
    Origin {
        channel: "portal".into(),
        client_addr: Some("10.20.30.40".into()),
        trace_id: Some(row.trace_id.clone()),
        token_id: None,
        channel_user: None,
    }
}

async fn append_new(conn: &mut AnyConnection, engine: Engine, i: usize) -> BenchResult {
    let r = row(i);
    let origin = origin(&r);
    audit::append(
        conn,
        engine,
        &NewEvent {
            origin: &origin,
            actor_id: Some(slipway_core::ids::UserId(2)),
            actor: "bob",
            action: "request.approve",
            target_kind: "request",
            target_id: r.target_id,
            before: Some("in_review".into()),
            after: Some("approved".into()),
            detail: DETAIL.into(),
        },
    )
    .await?;
    Ok(())
}

async fn insert_plain(conn: &mut AnyConnection, table: &str, i: usize) -> BenchResult {
    let r = row(i);
    sqlx::query(&format!(
        "INSERT INTO {table} (at, actor_id, actor, action, target_kind, target_id, \
         before_value, after_value, detail, channel, client_addr, trace_id, token_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
    ))
    .bind(r.at)
    .bind(2i64)
    .bind("bob")
    .bind("request.approve")
    .bind("request")
    .bind(&r.target_id)
    .bind("in_review")
    .bind("approved")
    .bind(DETAIL)
    .bind("portal")
    .bind("10.20.30.40")
    .bind(&r.trace_id)
    .bind(None::<i64>)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The scheme this work replaced, kept as SQL for the comparison: one advisory lock
/// for every writer, read the last hash, insert the chained row.
async fn append_old(conn: &mut AnyConnection, engine: Engine, i: usize) -> BenchResult {
    if engine == Engine::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock(7105099)")
            .execute(&mut *conn)
            .await?;
    }
    let prev: Option<String> =
        sqlx::query_scalar("SELECT hash FROM bench_old_chain ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *conn)
            .await?;
    let prev = prev.unwrap_or_else(|| "genesis".into());
    let r = row(i);
    let content = serde_json::json!({
        "at": r.at, "actor": "bob", "action": "request.approve", "target_kind": "request",
        "target_id": r.target_id, "before": "in_review", "after": "approved", "detail": DETAIL,
        "channel": "portal", "client_addr": "10.20.30.40", "trace_id": r.trace_id,
    });
    let mut hasher = Sha256::new();
    hasher.update(prev.as_bytes());
    hasher.update(b"\n");
    hasher.update(content.to_string().as_bytes());
    let hash = hex::encode(hasher.finalize());
    sqlx::query(
        "INSERT INTO bench_old_chain (at, actor_id, actor, action, target_kind, target_id, \
         before_value, after_value, detail, channel, client_addr, trace_id, token_id, \
         prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
    )
    .bind(r.at)
    .bind(2i64)
    .bind("bob")
    .bind("request.approve")
    .bind("request")
    .bind(&r.target_id)
    .bind("in_review")
    .bind("approved")
    .bind(DETAIL)
    .bind("portal")
    .bind("10.20.30.40")
    .bind(&r.trace_id)
    .bind(None::<i64>)
    .bind(&prev)
    .bind(&hash)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Writer {
    Bare,
    Plain,
    New,
    Old,
}

async fn write_one(db: &Db, writer: Writer, i: usize) -> BenchResult {
    let mut tx = db.write().await?;
    match writer {
        Writer::Bare => insert_plain(&mut tx, "bench_bare", i).await?,
        Writer::Plain => insert_plain(&mut tx, "bench_plain", i).await?,
        Writer::New => append_new(&mut tx, db.engine, i).await?,
        Writer::Old => append_old(&mut tx, db.engine, i).await?,
    }
    tx.commit().await?;
    Ok(())
}

/// Microseconds per write, each in its own transaction, interleaved in rounds so
/// drift hits all alike; and per insert inside one big transaction.
async fn append_cost(db: &Db, n: usize) -> BenchResult<[(f64, f64); 4]> {
    let writers = [Writer::Bare, Writer::Plain, Writer::New, Writer::Old];
    let mut own = [Duration::ZERO; 4];
    let mut inside = [Duration::ZERO; 4];
    let rounds = 10;
    let per = n / rounds;
    for round in 0..rounds {
        for (k, writer) in writers.iter().enumerate() {
            let began = Instant::now();
            for i in 0..per {
                write_one(db, *writer, round * per + i).await?;
            }
            own[k] += began.elapsed();
            let mut tx = db.write().await?;
            let began = Instant::now();
            for i in 0..per {
                let i = 10_000_000 + round * per + i;
                match writer {
                    Writer::Bare => insert_plain(&mut tx, "bench_bare", i).await?,
                    Writer::Plain => insert_plain(&mut tx, "bench_plain", i).await?,
                    Writer::New => append_new(&mut tx, db.engine, i).await?,
                    Writer::Old => append_old(&mut tx, db.engine, i).await?,
                }
            }
            inside[k] += began.elapsed();
            tx.commit().await?;
        }
    }
    audit_chain::seal_pending(db).await?;
    let us = |d: Duration| d.as_secs_f64() * 1e6 / (per * rounds) as f64;
    Ok([0, 1, 2, 3].map(|k| (us(own[k]), us(inside[k]))))
}

/// Events per second with `writers` concurrent writers for `seconds`; for the new
/// scheme a sealer runs beside them, as in the server.
async fn concurrent(
    db: &Db,
    writer: Writer,
    writers: usize,
    seconds: u64,
) -> BenchResult<(f64, u64)> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for w in 0..writers {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            let mut done = 0usize;
            while Instant::now() < deadline {
                write_one(&db, writer, 20_000_000 + w * 10_000_000 + done).await?;
                done += 1;
            }
            Ok::<usize, Box<dyn Error + Send + Sync>>(done)
        }));
    }
    let sealer = (writer == Writer::New).then(|| {
        let db = db.clone();
        tokio::spawn(async move {
            while Instant::now() < deadline {
                audit_chain::seal_pending(&db).await?;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok::<(), Box<dyn Error + Send + Sync>>(())
        })
    });
    let began = Instant::now();
    let mut total = 0;
    for task in tasks {
        total += task.await??;
    }
    let elapsed = began.elapsed();
    if let Some(sealer) = sealer {
        sealer.await??;
    }
    // What the sealer had left when the writers stopped, then drain it.
    let pending: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM audit_events WHERE position IS NULL")
            .fetch_one(&db.pool)
            .await?;
    audit_chain::seal_pending(db).await?;
    Ok((total as f64 / elapsed.as_secs_f64(), pending as u64))
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

struct VerifyFigures {
    events: i64,
    fill: Duration,
    seal: Duration,
    verify: Duration,
    rss_before: f64,
    rss_after: f64,
}

/// Fills `n` events through `storage::audit::append` in big transactions, seals
/// them, then verifies the whole chain streaming.
async fn verify_volume(db: &Db, n: usize) -> BenchResult<VerifyFigures> {
    let chunk = 10_000;
    let began = Instant::now();
    let mut written = 0;
    while written < n {
        let mut tx = db.write().await?;
        for i in written..(written + chunk).min(n) {
            append_new(&mut tx, db.engine, 30_000_000 + i).await?;
        }
        tx.commit().await?;
        written = (written + chunk).min(n);
    }
    let fill = began.elapsed();
    let began = Instant::now();
    audit_chain::seal_pending(db).await?;
    let seal = began.elapsed();
    let rss_before = peak_rss_mib();
    let began = Instant::now();
    let report = audit::verify(db, &VerifyFrom::default()).await?;
    let verify = began.elapsed();
    let events = match report.status {
        audit::ChainStatus::Intact { events } => events,
        broken => return Err(format!("the bench chain is broken: {broken:?}").into()),
    };
    Ok(VerifyFigures {
        events,
        fill,
        seal,
        verify,
        rss_before,
        rss_after: peak_rss_mib(),
    })
}

struct Scratch {
    admin_url: String,
    name: String,
}

async fn open(engine: Engine, dir: &std::path::Path) -> BenchResult<Option<(Db, Option<Scratch>)>> {
    match engine {
        Engine::Sqlite => {
            let url = format!("sqlite://{}?mode=rwc", dir.join("audit-bench.db").display());
            Ok(Some((Db::connect(&url).await?, None)))
        }
        Engine::Postgres => {
            let Some(admin_url) = std::env::var("BENCH_POSTGRES_URL")
                .ok()
                .filter(|u| !u.trim().is_empty())
            else {
                return Ok(None);
            };
            sqlx::any::install_default_drivers();
            let name = format!("slipway_audit_bench_{}", std::process::id());
            let mut conn = AnyConnection::connect(&admin_url).await?;
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .await?;
            conn.close().await?;
            let base = admin_url
                .rsplit_once('/')
                .map_or(admin_url.as_str(), |(b, _)| b);
            let db = Db::connect(&format!("{base}/{name}")).await?;
            Ok(Some((db, Some(Scratch { admin_url, name }))))
        }
    }
}

async fn drop_scratch(db: Db, scratch: Option<Scratch>) -> BenchResult {
    db.pool.close().await;
    if let Some(scratch) = scratch {
        let mut conn = AnyConnection::connect(&scratch.admin_url).await?;
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            scratch.name
        ))
        .execute(&mut conn)
        .await?;
        conn.close().await?;
    }
    Ok(())
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> BenchResult {
    let appends = env_usize("BENCH_AUDIT_APPENDS", 5_000);
    let events = env_usize("BENCH_AUDIT_EVENTS", 1_000_000);
    let writers = env_usize("BENCH_AUDIT_WRITERS", 8);
    let seconds = env_usize("BENCH_AUDIT_SECONDS", 10) as u64;
    let mut table = Vec::new();
    for engine in [Engine::Sqlite, Engine::Postgres] {
        let dir = tempfile::tempdir()?;
        let Some((db, scratch)) = open(engine, dir.path()).await? else {
            eprintln!("note: BENCH_POSTGRES_URL is not set; PostgreSQL skipped");
            continue;
        };
        let name = match engine {
            Engine::Sqlite => "SQLite",
            Engine::Postgres => "PostgreSQL",
        };
        create_tables(&db).await?;
        eprintln!("{name}: append cost, {appends} writes each…");
        let [bare, plain, new, old] = append_cost(&db, appends).await?;
        table.push(format!(
            "| {name} | append, each in its own transaction (µs/event) | bare table {:.0} · plain with the list indexes {:.0} · **new {:.0}** · old chain {:.0} | new/plain **{:.2}×** (new/bare {:.2}×) |",
            bare.0, plain.0, new.0, old.0, new.0 / plain.0, new.0 / bare.0
        ));
        table.push(format!(
            "| {name} | append, inside a transaction (µs/event) | bare table {:.1} · plain with the list indexes {:.1} · **new {:.1}** · old chain {:.1} | new/plain **{:.2}×** (new/bare {:.2}×) |",
            bare.1, plain.1, new.1, old.1, new.1 / plain.1, new.1 / bare.1
        ));
        if engine == Engine::Postgres {
            eprintln!("{name}: {writers} concurrent writers, {seconds} s each scheme…");
            let (old_rate, _) = concurrent(&db, Writer::Old, writers, seconds).await?;
            let (new_rate, pending) = concurrent(&db, Writer::New, writers, seconds).await?;
            let (plain_rate, _) = concurrent(&db, Writer::Plain, writers, seconds).await?;
            table.push(format!(
                "| {name} | {writers} concurrent writers (events/s) | old global lock {old_rate:.0} · new {new_rate:.0} (sealer beside them, {pending} unsealed at the stop) · plain {plain_rate:.0} | new/old {:.2}× |",
                new_rate / old_rate
            ));
        }
        eprintln!("{name}: filling {events} events, sealing, verifying…");
        let v = verify_volume(&db, events).await?;
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_events")
            .fetch_one(&db.pool)
            .await?;
        table.push(format!(
            "| {name} | fill {events} events through append (10k per transaction) | {:.1} s ({:.0} events/s) | |",
            v.fill.as_secs_f64(),
            events as f64 / v.fill.as_secs_f64()
        ));
        table.push(format!(
            "| {name} | seal them | {:.1} s ({:.0} events/s) | |",
            v.seal.as_secs_f64(),
            events as f64 / v.seal.as_secs_f64()
        ));
        table.push(format!(
            "| {name} | verify {} events (all {total} in the log), streamed | {:.1} s, **{:.0} events/s**; peak RSS {:.0} → {:.0} MiB | aim ≥ 100,000/s |",
            v.events,
            v.verify.as_secs_f64(),
            v.events as f64 / v.verify.as_secs_f64(),
            v.rss_before,
            v.rss_after
        ));
        drop_scratch(db, scratch).await?;
    }
    println!("| engine | figure | measured | |");
    println!("|---|---|---|---|");
    for line in table {
        println!("{line}");
    }
    Ok(())
}
