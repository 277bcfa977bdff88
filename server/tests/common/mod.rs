//! The test harness: a real `AppState` built by `cli::build_state` on a fresh
//! database (SQLite always, PostgreSQL when `SLIPWAY_TEST_POSTGRES_URL` is set) and a
//! fresh temporary directory holding the data directory and the GitOps repository.

use std::error::Error;
use std::path::{Path, PathBuf};

use serde_json::Value;
use slipway_core::ids::RequestId;
use slipway_core::state::RequestState;
use slipway_core::views::{RequestDraft, ReviewDecision};
use slipway_server::AppState;
use slipway_server::config::{ChatSettings, IdentitySettings, Secret, Settings};
use slipway_server::drivers::gitops::GitOpsSettings;
use slipway_server::services::{CallMeta, Caller, Channel, auth, requests, reviews};
use slipway_server::storage::requests::RequestRow;
use slipway_server::storage::{self, Engine};
use sqlx::Connection;
use tempfile::TempDir;

#[allow(dead_code, reason = "each test binary uses a part of the harness")]
pub mod git_server;

pub type TestResult<T = ()> = Result<T, Box<dyn Error>>;

pub const POSTGRES_ENV: &str = "SLIPWAY_TEST_POSTGRES_URL";

/// The repository's shipped catalog.
pub fn shipped_catalog() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../catalog"))
}

/// A PostgreSQL database made for one test, dropped (best effort) when the test ends.
struct ScratchDatabase {
    admin_url: String,
    name: String,
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        let dropped = admin_sql_now(
            &self.admin_url,
            vec![format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            )],
        );
        if let Err(error) = dropped {
            eprintln!(
                "note: could not drop the test database {}: {error}",
                self.name
            );
        }
    }
}

/// Runs admin statements from anywhere, also from `Drop` inside a test's runtime:
/// on a thread with a runtime of its own.
pub fn admin_sql_now(admin_url: &str, statements: Vec<String>) -> Result<(), String> {
    let admin_url = admin_url.to_string();
    std::thread::spawn(move || -> Result<(), String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(async {
            let mut conn = sqlx::AnyConnection::connect(&admin_url)
                .await
                .map_err(|e| e.to_string())?;
            for sql in &statements {
                sqlx::query(sql)
                    .execute(&mut conn)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            conn.close().await.map_err(|e| e.to_string())
        })
    })
    .join()
    .map_err(|_| "panicked".to_string())?
}

/// `postgres://u@h:5432/db?x=y` with the database replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (without_query, query) = match url.split_once('?') {
        Some((u, q)) => (u, Some(q)),
        None => (url, None),
    };
    let scheme_end = without_query.find("://").map_or(0, |i| i + 3);
    let base = match without_query[scheme_end..].find('/') {
        Some(slash) => &without_query[..scheme_end + slash],
        None => without_query,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

/// The PostgreSQL server to test on. Without one the PostgreSQL twin of a test
/// passes as skipped, except under `CI=true`, where a green run must mean that both
/// engines were tested.
pub fn postgres_admin_url() -> TestResult<Option<String>> {
    let url = std::env::var(POSTGRES_ENV)
        .ok()
        .filter(|u| !u.trim().is_empty());
    if url.is_none() && std::env::var("CI").is_ok_and(|v| v == "true") {
        return Err(
            format!("CI=true but {POSTGRES_ENV} is not set: PostgreSQL must be tested").into(),
        );
    }
    Ok(url)
}

pub struct TestApp {
    pub state: AppState,
    pub engine: Engine,
    pub settings: Settings,
    // Dropped after `state` (fields drop in order): the database, then the files.
    _database: Option<ScratchDatabase>,
    _dir: TempDir,
    _catalog_dir: Option<TempDir>,
}

impl TestApp {
    /// A fresh app on the shipped catalog; `None` when the engine is not available.
    pub async fn start(engine: Engine) -> TestResult<Option<TestApp>> {
        TestApp::start_with_catalog(engine, None).await
    }

    /// A fresh app on the given catalog directory (kept alive as long as the app).
    pub async fn start_with_catalog(
        engine: Engine,
        catalog: Option<TempDir>,
    ) -> TestResult<Option<TestApp>> {
        TestApp::start_with(engine, catalog, IdentitySettings::default(), |_| {}).await
    }

    /// A fresh app on the given catalog (or the shipped one) with settings changed
    /// by `configure` before it starts.
    #[allow(dead_code, reason = "each test binary uses a part of the harness")]
    pub async fn start_configured(
        engine: Engine,
        catalog: Option<TempDir>,
        configure: impl FnOnce(&mut Settings),
    ) -> TestResult<Option<TestApp>> {
        TestApp::start_with(engine, catalog, IdentitySettings::default(), configure).await
    }

    /// A fresh app on the shipped catalog whose GitOps driver commits to this branch
    /// and pushes to this remote.
    #[allow(dead_code, reason = "each test binary uses a part of the harness")]
    pub async fn start_with_gitops(
        engine: Engine,
        gitops: GitOpsSettings,
    ) -> TestResult<Option<TestApp>> {
        TestApp::start_with(engine, None, IdentitySettings::default(), |settings| {
            settings.gitops = gitops;
        })
        .await
    }

    /// A fresh app on the shipped catalog with these sign-in settings.
    #[allow(dead_code, reason = "each test binary uses a part of the harness")]
    pub async fn start_with_identity(
        engine: Engine,
        identity: IdentitySettings,
    ) -> TestResult<Option<TestApp>> {
        TestApp::start_with(engine, None, identity, |_| {}).await
    }

    async fn start_with(
        engine: Engine,
        catalog: Option<TempDir>,
        identity: IdentitySettings,
        configure: impl FnOnce(&mut Settings),
    ) -> TestResult<Option<TestApp>> {
        let dir = tempfile::tempdir()?;
        let data_dir = dir.path().join("data");
        std::fs::create_dir_all(&data_dir)?;
        let (database_url, database) = match engine {
            Engine::Sqlite => (
                format!(
                    "sqlite://{}?mode=rwc",
                    data_dir.join("slipway.db").display()
                ),
                None,
            ),
            Engine::Postgres => {
                let Some(admin_url) = postgres_admin_url()? else {
                    return Ok(None);
                };
                sqlx::any::install_default_drivers();
                let name = format!("slipway_t_{}", uuid::Uuid::new_v4().simple());
                let mut conn = sqlx::AnyConnection::connect(&admin_url).await?;
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await?;
                conn.close().await?;
                let url = with_database(&admin_url, &name);
                (url, Some(ScratchDatabase { admin_url, name }))
            }
        };
        let catalog_path = catalog
            .as_ref()
            .map_or_else(shipped_catalog, |d| d.path().to_path_buf());
        let mut settings = Settings {
            addr: "127.0.0.1:0".parse()?,
            data_dir: data_dir.clone(),
            catalog: catalog_path,
            demo: true,
            database_url,
            gitops_repo: data_dir.join("gitops.git"),
            gitops: GitOpsSettings::default(),
            command: Default::default(),
            workers: Default::default(),
            metrics_token: None,
            outbound: Default::default(),
            site_root: dir.path().join("site"),
            secure_cookies: false,
            secret_key: None,
            audit_checkpoint_interval: std::time::Duration::from_secs(600),
            upgrade_sweep_interval: std::time::Duration::from_secs(3600),
            close_unrevised_after: None,
            identity,
            // Set up as on a server with a homeserver (no bot runs in a test), so
            // chat link codes are offered; a test of ChatOps off sets `None`.
            chat: Some(ChatSettings::new(
                "http://127.0.0.1:9".into(),
                Secret::new("test-bot-token".into()),
            )),
        };
        configure(&mut settings);
        let state = slipway_server::cli::build_state(settings.clone()).await?;
        if state.db.engine != engine {
            return Err(format!("asked for {engine:?}, got {:?}", state.db.engine).into());
        }
        Ok(Some(TestApp {
            state,
            engine,
            settings,
            _database: database,
            _dir: dir,
            _catalog_dir: catalog,
        }))
    }

    /// A second state on the same database, data directory and repository, as a
    /// restarted process builds it.
    pub async fn restart(&self) -> TestResult<AppState> {
        Ok(slipway_server::cli::build_state(self.settings.clone()).await?)
    }

    /// Commits on the GitOps branch.
    pub fn gitops_commits(&self) -> TestResult<usize> {
        Ok(self.state.gitops.commit_count()?)
    }

    /// Signs a demo user in with the demo password.
    /// A demo user signed in, calling through the portal.
    pub async fn user(&self, name: &str) -> TestResult<Caller> {
        let meta = CallMeta {
            trace_id: Some(format!("test-{name}")),
            client_addr: Some("127.0.0.1".into()),
            channel_user: None,
        };
        let view = auth::login(
            &self.state,
            name,
            &format!("{name}-demo-pw"),
            Channel::Portal,
            &meta,
        )
        .await?;
        Ok(Caller::new(view, Channel::Portal, meta))
    }

    /// Runs due jobs until none is left; returns how many ran.
    pub async fn run_jobs(&self) -> TestResult<usize> {
        run_jobs_on(&self.state).await
    }

    pub async fn request(&self, id: RequestId) -> TestResult<RequestRow> {
        let mut conn = self.state.db.pool.acquire().await?;
        Ok(storage::requests::get(&mut conn, id)
            .await?
            .ok_or_else(|| format!("request #{id} is missing"))?)
    }

    pub async fn request_state(&self, id: RequestId) -> TestResult<RequestState> {
        Ok(self.request(id).await?.state)
    }

    pub async fn count(&self, table: &str) -> TestResult<i64> {
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(&self.state.db.pool)
            .await?;
        Ok(n)
    }

    /// Row counts of every table a request touches, to prove a refused call changed nothing.
    pub async fn snapshot(&self) -> TestResult<Vec<(&'static str, i64)>> {
        let mut counts = Vec::new();
        for table in [
            "requests",
            "request_revisions",
            "decisions",
            "jobs",
            "check_results",
            "assets",
            "audit_events",
            "flow_steps",
        ] {
            // A token's hourly `token.used` records that it was used, not a change
            // the call made: a refused call with a fresh token still writes it.
            let n = if table == "audit_events" {
                sqlx::query_scalar("SELECT COUNT(*) FROM audit_events WHERE action <> 'token.used'")
                    .fetch_one(&self.state.db.pool)
                    .await?
            } else {
                self.count(table).await?
            };
            counts.push((table, n));
        }
        Ok(counts)
    }

    /// Every row of every table, every column as text.
    pub async fn dump_database(&self) -> TestResult<String> {
        use sqlx::Row as _;
        let pool = &self.state.db.pool;
        let mut out = String::new();
        match self.engine {
            Engine::Postgres => {
                let tables: Vec<String> = sqlx::query_scalar(
                    "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema()",
                )
                .fetch_all(pool)
                .await?;
                assert!(tables.iter().any(|t| t == "requests"), "{tables:?}");
                for table in tables {
                    let rows: Vec<String> =
                        sqlx::query_scalar(&format!("SELECT row_to_json(t)::text FROM {table} t"))
                            .fetch_all(pool)
                            .await?;
                    out.push_str(&format!("== {table}\n{}\n", rows.join("\n")));
                }
            }
            Engine::Sqlite => {
                let tables: Vec<String> =
                    sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
                        .fetch_all(pool)
                        .await?;
                assert!(tables.iter().any(|t| t == "requests"), "{tables:?}");
                for table in tables {
                    out.push_str(&format!("== {table}\n"));
                    let columns: Vec<String> =
                        sqlx::query_scalar("SELECT name FROM pragma_table_info($1)")
                            .bind(&table)
                            .fetch_all(pool)
                            .await?;
                    // hex() reads any storage class (text, integer, blob, date) as its bytes.
                    let select: Vec<String> =
                        columns.iter().map(|c| format!("hex(\"{c}\")")).collect();
                    let rows =
                        sqlx::query(&format!("SELECT {} FROM \"{table}\"", select.join(", ")))
                            .fetch_all(pool)
                            .await?;
                    for row in rows {
                        for (i, column) in columns.iter().enumerate() {
                            let bytes = hex::decode(row.try_get::<String, _>(i)?)?;
                            out.push_str(&format!("{column}={} ", String::from_utf8_lossy(&bytes)));
                        }
                        out.push('\n');
                    }
                }
            }
        }
        Ok(out)
    }

    pub async fn exec(&self, sql: &str) -> TestResult<u64> {
        Ok(sqlx::query(sql)
            .execute(&self.state.db.pool)
            .await?
            .rows_affected())
    }

    /// Submits a k8s-namespace for alice's team in `environment`, has bob approve it
    /// when the policy does not, runs the jobs and checks it completed.
    pub async fn namespace(
        &self,
        requester: &Caller,
        environment: &str,
        name: &str,
    ) -> TestResult<RequestId> {
        let id = requests::submit(
            &self.state,
            requester,
            &draft(
                "k8s-namespace",
                namespace_params(name, "payments", environment, 2),
            ),
        )
        .await?;
        if self.request_state(id).await? == RequestState::InReview {
            let bob = self.user("bob").await?;
            reviews::decide(&self.state, &bob, id, 1, ReviewDecision::Approve, "ok").await?;
        }
        self.run_jobs().await?;
        let state = self.request_state(id).await?;
        if state != RequestState::Completed {
            return Err(format!("namespace request #{id} ended {state}, not completed").into());
        }
        Ok(id)
    }
}

pub async fn run_jobs_on(state: &AppState) -> TestResult<usize> {
    let mut ran = 0;
    while slipway_server::orchestrator::run_once(state, "test-worker").await? {
        ran += 1;
        if ran > 100 {
            return Err("more than 100 jobs ran: the queue does not drain".into());
        }
    }
    Ok(ran)
}

/// A draft with a fresh submit key.
pub fn draft(type_name: &str, params: Value) -> RequestDraft {
    RequestDraft {
        type_name: type_name.into(),
        params,
        submit_key: uuid::Uuid::new_v4().to_string(),
    }
}

pub fn namespace_params(name: &str, team: &str, environment: &str, cpu: i64) -> Value {
    serde_json::json!({
        "name": name, "team": team, "environment": environment,
        "cpu_limit": cpu, "memory_limit_gi": 4, "admins": ["alice"],
    })
}

pub fn postgres_params(name: &str, environment: &str, storage_gb: i64) -> Value {
    serde_json::json!({
        "name": name, "team": "payments", "environment": environment,
        "size": "small", "storage_gb": storage_gb, "version": "16",
    })
}

/// Copies a directory tree.
pub fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// Generates `<scenario>::sqlite` and `<scenario>::postgres` tests from one
/// `async fn scenario(app: &TestApp) -> TestResult`. The PostgreSQL twin says so and
/// passes when `SLIPWAY_TEST_POSTGRES_URL` is unset.
macro_rules! on_both_engines {
    ($($scenario:ident),* $(,)?) => {
        $( on_both_engines!(@one $scenario, $crate::common::TestApp::start); )*
    };
    (@one $scenario:ident, $start:path) => {
        mod $scenario {
            use $crate::common::TestResult;
            use slipway_server::storage::Engine;

            #[tokio::test]
            async fn sqlite() -> TestResult {
                let app = $start(Engine::Sqlite).await?.ok_or("SQLite is always available")?;
                super::$scenario(&app).await
            }

            #[tokio::test]
            async fn postgres() -> TestResult {
                let Some(app) = $start(Engine::Postgres).await? else {
                    eprintln!("note: {} is not set; skipping the PostgreSQL run", $crate::common::POSTGRES_ENV);
                    return Ok(());
                };
                super::$scenario(&app).await
            }
        }
    };
}

/// Every path, blob and commit message reachable from any reference.
pub fn dump_repository(path: &Path) -> TestResult<(String, usize)> {
    let repo = git2::Repository::open(path)?;
    let mut out = String::new();
    let mut blobs = 0;
    let mut walk = repo.revwalk()?;
    for reference in repo.references()? {
        if let Some(target) = reference?.target() {
            walk.push(target)?;
        }
    }
    for oid in walk {
        let commit = repo.find_commit(oid?)?;
        out.push_str(&String::from_utf8_lossy(commit.message_bytes()));
        let mut failed = None;
        commit
            .tree()?
            .walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
                out.push_str(&format!("{dir}{}\n", entry.name().unwrap_or_default()));
                if entry.kind() == Some(git2::ObjectType::Blob) {
                    match repo.find_blob(entry.id()) {
                        Ok(blob) => {
                            blobs += 1;
                            out.push_str(&String::from_utf8_lossy(blob.content()));
                        }
                        Err(e) => {
                            failed = Some(e);
                            return git2::TreeWalkResult::Abort;
                        }
                    }
                }
                git2::TreeWalkResult::Ok
            })?;
        if let Some(error) = failed {
            return Err(error.into());
        }
    }
    Ok((out, blobs))
}

/// The raw bytes of every file under a directory: the SQLite database and its WAL.
pub fn files_containing(dir: &Path, needle: &[u8]) -> TestResult<Vec<String>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            found.extend(files_containing(&path, needle)?);
        } else if std::fs::read(&path)?
            .windows(needle.len())
            .any(|w| w == needle)
        {
            found.push(path.display().to_string());
        }
    }
    Ok(found)
}

/// Asserts a call failed the way `check` expects and left every table as it was.
#[allow(unused_macros)]
macro_rules! refused {
    ($app:expr, $call:expr, $pattern:pat => $check:expr) => {{
        let before = $app.snapshot().await?;
        match $call.await {
            Err($pattern) => $check,
            other => panic!(
                "{} should have been refused, got {other:?}",
                stringify!($call)
            ),
        }
        assert_eq!(
            $app.snapshot().await?,
            before,
            "{} changed stored data",
            stringify!($call)
        );
    }};
}

#[cfg(test)]
mod tests {
    #[test]
    fn replaces_the_database_in_a_url() {
        assert_eq!(
            super::with_database("postgres://p@h:5432/test", "x"),
            "postgres://p@h:5432/x"
        );
        assert_eq!(
            super::with_database("postgres://p@h/test?sslmode=disable", "x"),
            "postgres://p@h/x?sslmode=disable"
        );
        assert_eq!(
            super::with_database("postgres://p@h", "x"),
            "postgres://p@h/x"
        );
    }
}

/// Log lines written into a buffer, for tests that check what was (or was
/// never) logged. A clone writes into the same buffer.
#[derive(Clone, Default)]
pub struct CapturedLogs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLogs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let mut buffer = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        buffer.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLogs {
    pub fn text(&self) -> String {
        let buffer = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        String::from_utf8_lossy(&buffer).into_owned()
    }

    /// A subscriber that writes every event at `level` and above here.
    pub fn subscriber(&self, level: tracing::Level) -> impl tracing::Subscriber + Send + Sync {
        let writer = self.clone();
        tracing_subscriber::fmt()
            .with_max_level(level)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish()
    }
}

/// Everything the test binary logs, at every level, from every thread (the
/// process's subscriber, set by the first test that asks).
pub fn captured_logs() -> CapturedLogs {
    static LOGS: std::sync::OnceLock<CapturedLogs> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = CapturedLogs::default();
        if let Err(error) =
            tracing::subscriber::set_global_default(logs.subscriber(tracing::Level::TRACE))
        {
            eprintln!("note: could not capture logs: {error}");
        }
        logs
    })
    .clone()
}
