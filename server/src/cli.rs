//! The `slipway` binary's commands. The binary itself lives beside the portal (it
//! must link the pages); everything it does is here.

use std::process::ExitCode;
use std::sync::Arc;

use axum::Router;
use clap::Parser;
use slipway_core::views::{TokenRequest, TokenScope};
use tokio::sync::{Notify, watch};
use tower_http::trace::TraceLayer;

use crate::catalog_source;
use crate::config::{
    AuditArgs, AuditCommand, CatalogCommand, Cli, Command, LogFormat, Settings, TokenCommand,
};
use crate::drivers::gitops::GitOpsRepo;
use crate::orchestrator;
use crate::services::auth::ensure_initial_users;
use crate::services::{CallMeta, Caller, Channel};
use crate::state::AppState;
use crate::storage::Db;
use crate::storage::quota::Recount;
use crate::storage::sessions::DbSessionStore;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Setting(#[from] crate::config::SettingError),
    #[error(transparent)]
    Catalog(#[from] catalog_source::CatalogLoadError),
    #[error("database ({url}): {source}")]
    Database {
        url: String,
        source: crate::storage::StorageError,
    },
    #[error(transparent)]
    GitOps(#[from] crate::drivers::gitops::GitOpsError),
    #[error("first-start set-up: {0}")]
    Seed(crate::services::ServiceError),
    #[error("cannot run the workers ({}): {reason}", .path.display())]
    WorkersLock {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error("--addr (SLIPWAY_ADDR) {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
}

/// The log target of sqlx's PostgreSQL URL parsing, kept to errors.
const QUIET_URL_PARSE: &str = "sqlx_postgres::options::parse=error";

/// What is logged: `RUST_LOG`'s filter when set, else ours. Either way sqlx's
/// note of a connection URL's parameter it does not know is not, since it
/// carries the value (`sslpassword=…`).
fn log_filter(from_env: Option<tracing_subscriber::EnvFilter>) -> tracing_subscriber::EnvFilter {
    let filter = from_env.unwrap_or_else(|| {
        tracing_subscriber::EnvFilter::new("info,sqlx=warn,tower_sessions=warn")
    });
    match QUIET_URL_PARSE.parse() {
        Ok(quiet) => filter.add_directive(quiet),
        Err(_) => filter,
    }
}

/// The teams an OIDC team map grants must be terms of the catalog's `teams`
/// dictionary; beside a catalog without one, a map would grant teams that no
/// type, quota or review knows.
fn check_team_map(
    oidc: Option<&crate::config::OidcSettings>,
    catalog_dir: &std::path::Path,
    catalog: &slipway_core::catalog::Catalog,
) -> Result<(), StartError> {
    let Some(oidc) = oidc else {
        return Ok(());
    };
    match catalog.dictionary("teams") {
        Some(teams) => {
            let known: Vec<String> = teams.terms.iter().map(|t| t.key.clone()).collect();
            Ok(oidc.check_team_map(&known)?)
        }
        None if oidc.team_map.is_some() => Err(StartError::Setting(crate::config::SettingError {
            setting: crate::config::TEAM_MAP_SETTING,
            message: format!(
                "the catalog {} has no teams dictionary (dictionaries/teams.yaml) to hold \
                 the teams this map grants",
                catalog_dir.display()
            ),
        })),
        None => Ok(()),
    }
}

/// `to_stderr` keeps standard output clean for a command whose output is read by a
/// script (a token's secret).
fn init_tracing(to_stderr: bool, format: LogFormat) {
    let filter = log_filter(tracing_subscriber::EnvFilter::try_from_default_env().ok());
    let fmt = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match (format, to_stderr) {
        (LogFormat::Text, false) => fmt.try_init(),
        (LogFormat::Text, true) => fmt.with_writer(std::io::stderr).try_init(),
        // The span fields (request id, job id, trace id) ride along on each line.
        (LogFormat::Json, false) => fmt.json().with_current_span(true).try_init(),
        (LogFormat::Json, true) => fmt
            .json()
            .with_current_span(true)
            .with_writer(std::io::stderr)
            .try_init(),
    };
}

/// Builds everything a server needs from checked settings: catalog, database with
/// migrations, GitOps repository, first users.
pub async fn build_state(settings: Settings) -> Result<AppState, StartError> {
    // What `catalog check`'s sample render finds is logged here too.
    let (catalog, _) = catalog_source::load_and_render(&settings.catalog)?;
    check_team_map(
        settings.identity.oidc.as_ref(),
        &settings.catalog,
        &catalog.catalog,
    )?;
    let secret_key = crate::secrets::resolve_key(
        settings.secret_key.as_ref(),
        settings.demo,
        &settings.data_dir,
        &catalog.catalog,
    )?;
    let db = Db::connect(&settings.database_url)
        .await
        .map_err(|source| StartError::Database {
            url: crate::config::redact_url(&settings.database_url),
            source,
        })?;
    if let Some(key) = &secret_key {
        let shown_url = crate::config::redact_url(&settings.database_url);
        crate::secrets::check_key_matches(&db, key, shown_url).await?;
    }
    crate::storage::lookup::sync(&db, &catalog.catalog, Recount::Changed)
        .await
        .map_err(|source| StartError::Database {
            url: crate::config::redact_url(&settings.database_url),
            source,
        })?;
    crate::storage::search::sync(&db, &catalog.catalog)
        .await
        .map_err(|source| StartError::Database {
            url: crate::config::redact_url(&settings.database_url),
            source,
        })?;
    crate::storage::type_versions::record(&db, &catalog.catalog)
        .await
        .map_err(|source| StartError::Database {
            url: crate::config::redact_url(&settings.database_url),
            source,
        })?;
    let gitops = with_push_turns(
        GitOpsRepo::open_with(&settings.gitops_repo, &settings.gitops)?,
        &db,
        &settings,
    );
    let leases = crate::orchestrator::LeaseKeeper::new(db.clone(), settings.workers.lease);
    let token_pace = Arc::new(crate::services::token_pace::TokenPace::new(
        settings.identity.token_calls_per_minute,
    ));
    let check_pace = Arc::new(crate::services::token_pace::TokenPace::new(
        settings.identity.checks_per_minute,
    ));
    let state = AppState {
        db,
        leases,
        catalog: Arc::new(catalog),
        drivers: crate::drivers::Drivers {
            gitops: gitops.clone(),
            command: crate::drivers::command::CommandDriver::new(settings.command.clone()),
            pipeline: crate::drivers::pipeline::PipelineDriver::new(
                crate::outbound::Outbound::new(settings.outbound.allowed_hosts.clone()),
                settings.outbound.pipeline_tokens.clone(),
            ),
        },
        gitops,
        outbound: crate::outbound::Outbound::new(settings.outbound.allowed_hosts.clone()),
        settings: Arc::new(settings),
        audit_signer: secret_key
            .as_ref()
            .map(crate::audit_chain::CheckpointSigner::new),
        secrets: secret_key.map(crate::secrets::SecretBox::new),
        jobs_ready: Arc::new(Notify::new()),
        audit_pending: Arc::new(Notify::new()),
        token_uses: Arc::default(),
        token_pace,
        check_pace,
        metrics: Arc::new(crate::metrics::Metrics::new()),
        shutdown: tokio_util::sync::CancellationToken::new(),
        streams: crate::services::slots::Slots::new(&crate::services::slots::PROGRESS_STREAMS),
        downloads: crate::services::slots::Slots::new(&crate::services::slots::DOWNLOADS),
        flow_figures: Arc::default(),
        password_checks: Arc::new(tokio::sync::Semaphore::new(
            std::thread::available_parallelism().map_or(2, usize::from),
        )),
    };
    ensure_initial_users(&state)
        .await
        .map_err(StartError::Seed)?;
    Ok(state)
}

/// The full router: the portal (built by the caller), health, OIDC sign-in,
/// sessions, the same-origin guard, real redirects, tracing.
pub fn router(state: &AppState, portal: Router) -> Router {
    use axum::middleware::{from_fn, from_fn_with_state};
    portal
        .merge(crate::api::router(state))
        .merge(crate::http::router().with_state(state.clone()))
        .merge(crate::http::oidc::router(state))
        .layer(from_fn(crate::http::keep_session_alive))
        .layer(from_fn_with_state(
            state.clone(),
            crate::audit_chain::nudge_sealer,
        ))
        .layer(crate::http::session_layer(state))
        // Inside the call's trace, so a refusal names the trace id to quote.
        .layer(from_fn_with_state(
            state.clone(),
            crate::http::refuse_cross_origin,
        ))
        .layer(from_fn_with_state(state.clone(), crate::http::call_meta))
        .layer(from_fn(crate::http::see_other))
        .layer(from_fn_with_state(
            std::sync::Arc::new(crate::http::form_errors::FormErrorSeal::new(
                state.settings.secret_key.as_ref(),
            )),
            crate::http::form_errors::seal_form_errors,
        ))
        .layer(from_fn_with_state(
            state.settings.secure_cookies,
            crate::http::security_headers,
        ))
        .layer(TraceLayer::new_for_http())
}

/// The programs the command driver starts run as this process's user: without
/// this, any of them (a module `tofu` fetched, a playbook) could read the
/// server's environment and memory through `/proc` (the secret key, the tokens,
/// the database URLs, other runs' passwords). A core dump would hold the same,
/// so none is written either.
fn keep_memory_private() {
    use rustix::process::{DumpableBehavior, set_dumpable_behavior};
    if let Err(error) = set_dumpable_behavior(DumpableBehavior::NotDumpable) {
        tracing::warn!(%error, "could not keep this process's memory from other processes of its user");
    }
}

/// A command's output line: a reader that went away (`| head`) ends the output
/// quietly instead of the panic `println!` makes of a closed pipe; any other
/// failure to write (a full disk under `> token.txt`) ends the command with a
/// failure, never a success whose output was lost.
pub(crate) fn say(line: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    match writeln!(std::io::stdout().lock(), "{line}") {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(e) => {
            eprintln!("slipway: cannot write the output: {e}");
            std::process::exit(1);
        }
    }
}

/// Everything Slipway writes is its own: the SQLite database and its journal
/// (password hashes, every request's parameters, the audit trail), the GitOps
/// repository, the command driver's scratch runs, and what the programs it starts
/// write there (a `terraform.tfstate` holding its variables' secrets) are made
/// readable by this user only, whatever umask the process was started with.
fn keep_new_files_private() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

async fn serve(
    settings: Settings,
    portal: impl FnOnce(AppState) -> Router,
) -> Result<(), StartError> {
    tracing::info!(?settings, "starting");
    if rustix::process::getpid().is_init() {
        // Orphans come to PID 1 to be reaped: a command step's program whose
        // supervisor was killed at its timeout would stay a zombie here.
        tracing::warn!(
            "running as PID 1: run Slipway under an init (docker run --init, tini) so that              the programs of command steps that were stopped are reaped"
        );
    }
    keep_memory_private();
    let state = build_state(settings).await?;
    let _workers_lock = lock_sqlite_workers(&state)?;
    let (stop, stopped) = watch::channel(false);
    let worker = orchestrator::spawn(state.clone(), stopped.clone());
    crate::housekeeping::spawn(state.clone(), stopped.clone());
    let token_uses = crate::services::token_uses::spawn_writer(state.clone(), stopped.clone());
    let audit = crate::audit_chain::spawn(state.clone(), stopped.clone());
    crate::services::upgrades::spawn(
        state.clone(),
        state.settings.upgrade_sweep_interval,
        stopped.clone(),
    );
    let chat = state
        .settings
        .chat
        .clone()
        .map(|chat| crate::chat::spawn(state.clone(), chat, stopped.clone()));
    DbSessionStore::new(&state.db, state.settings.identity.session_absolute_timeout)
        .spawn_cleanup(stopped.clone());
    let app = router(&state, portal(state.clone()));
    let addr = state.settings.addr;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Listen {
            addr: addr.to_string(),
            source,
        })?;
    tracing::info!("Slipway listens on http://{addr}");
    // The signal stops the workers from claiming at once, while the listener
    // finishes the calls in flight: both wind down side by side.
    let streams_stop = state.shutdown.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
        streams_stop.cancel();
    });
    // The peer address (for the per-address sign-in throttle) is each
    // connection's; the calls in flight at a shutdown get the workers' grace.
    let limits = crate::http::listen::Limits::serving(state.settings.workers.shutdown_grace);
    crate::http::listen::serve(listener, app, stopped.clone(), limits).await;
    let _ = worker.await;
    let _ = token_uses.await;
    let _ = audit.await;
    // The bot stops between messages; one that waits out a homeserver's rate
    // limit (minutes) must not hold the shutdown past what an orchestrator
    // grants before it kills the process: what it has not done is redone from
    // the stored sync token and audit position by the next bot.
    if let Some(chat) = chat {
        let abort = chat.abort_handle();
        if tokio::time::timeout(CHAT_STOP_GRACE, chat).await.is_err() {
            tracing::warn!("the chat bot did not stop within its grace; it is stopped");
            abort.abort();
        }
    }
    Ok(())
}

/// How long a shutdown waits for the chat bot to finish what it is doing.
const CHAT_STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Replicas on one PostgreSQL that push to one remote take turns at it (see
/// `drivers::gitops::turns`); on SQLite one process pushes.
fn with_push_turns(gitops: GitOpsRepo, db: &Db, settings: &Settings) -> GitOpsRepo {
    let Some(remote) = &settings.gitops.remote else {
        if db.engine == crate::storage::Engine::Postgres && settings.workers.workers > 0 {
            // Nothing tells this process that others share its database: each
            // would commit to a repository of its own, and compare a change
            // with files another replica's repository holds.
            tracing::warn!(
                repository = %settings.gitops_repo.display(),
                "commits go to this process's own repository: replicas that share this \
                 PostgreSQL database need one --gitops-remote (SLIPWAY_GITOPS_REMOTE)"
            );
        }
        return gitops;
    };
    if db.engine != crate::storage::Engine::Postgres {
        return gitops;
    }
    let place = format!("{} {}", remote.url, settings.gitops.branch);
    match crate::storage::push_turns::PgPushTurns::start(&settings.database_url, &place) {
        Ok(turns) => gitops.with_turns(Arc::new(turns)),
        Err(error) => {
            tracing::warn!(%error, "GitOps pushes do not take turns with other replicas");
            gitops
        }
    }
}

/// On SQLite one process runs the jobs: a second `slipway serve` on the same
/// database file would claim them too, which SQLite's single-writer design cannot
/// fence like PostgreSQL's row locks do. The lock file beside the database is held
/// for the life of the process (the OS drops it when the process dies).
pub fn lock_sqlite_workers(state: &AppState) -> Result<Option<std::fs::File>, StartError> {
    if state.db.engine != crate::storage::Engine::Sqlite || state.settings.workers.workers == 0 {
        return Ok(None);
    }
    lock_sqlite_file_workers(&state.settings.database_url)
}

/// The workers' lock of the SQLite file a `sqlite://` URL names (none for an
/// in-memory database).
pub fn lock_sqlite_file_workers(database_url: &str) -> Result<Option<std::fs::File>, StartError> {
    let Some(db_path) = crate::storage::sqlite_file(database_url) else {
        return Ok(None);
    };
    // The file itself, not the name it was given by: a second process that names it
    // through a symbolic link or another relative path finds the same lock.
    let db_path = std::fs::canonicalize(&db_path).unwrap_or(db_path);
    let path = std::path::PathBuf::from(format!("{}.workers.lock", db_path.display()));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| StartError::WorkersLock {
            path: path.clone(),
            reason: source.to_string(),
        })?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Err(StartError::WorkersLock {
            path,
            reason: "another slipway process already runs the workers on this SQLite database. \
                     SQLite serves one process: stop the other one, start this one with --workers 0 \
                     to serve pages without running jobs, or move to PostgreSQL (DATABASE_URL=postgres://…) \
                     to run several replicas"
                .into(),
        }),
        Err(std::fs::TryLockError::Error(source)) => Err(StartError::WorkersLock {
            path,
            reason: source.to_string(),
        }),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}

/// `slipway catalog check`: the catalog alone, then, when `against` names a
/// database, what it would leave stranded there.
pub async fn check_catalog(dir: &std::path::Path, against: Option<&str>) -> ExitCode {
    let loaded = match catalog_source::load(dir) {
        Ok(loaded) => loaded,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    // Loading checks each file; rendering every type shows what its templates
    // make of real values.
    let broken = slipway_core::render::check_samples(&loaded.catalog);
    if !broken.is_empty() {
        for error in &broken {
            eprintln!("{error}");
        }
        return ExitCode::FAILURE;
    }
    say!(
        "{}: a valid catalog with {} dictionaries, {} resource types and {} templates",
        dir.display(),
        loaded.catalog.dictionaries.len(),
        loaded.catalog.types.len(),
        loaded.catalog.templates.len()
    );
    match against {
        Some(url) => check_against(&loaded, url).await,
        None => ExitCode::SUCCESS,
    }
}

/// What `loaded` would strand in the database at `url`, read over one
/// read-only connection that runs no migration.
async fn check_against(loaded: &catalog_source::LoadedCatalog, url: &str) -> ExitCode {
    use sqlx::Connection as _;
    let shown = crate::config::redact_url(url);
    let found = async {
        sqlx::any::install_default_drivers();
        let mut conn = read_only_connection(url, &shown).await?;
        // One snapshot: counts and assets read from a live database agree.
        let begin = if url.starts_with("sqlite:") {
            "BEGIN"
        } else {
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
        };
        let mut snapshot = conn.begin_with(begin).await?;
        let found = crate::stranded::stranded(&mut snapshot, loaded).await?;
        snapshot.rollback().await?;
        let _ = conn.close().await;
        Ok::<_, crate::storage::StorageError>(found)
    };
    match found.await {
        Ok(found) if found.is_empty() => {
            say!("against {shown}: this catalog leaves nothing recorded there stranded");
            ExitCode::SUCCESS
        }
        Ok(found) => {
            for finding in &found {
                eprintln!("against {shown}: {finding}");
            }
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("against {shown}: the database could not be read: {error}");
            ExitCode::FAILURE
        }
    }
}

/// A connection that cannot write: SQLite opened read-only whatever mode the
/// URL asks for (a server's `mode=rwc` would create a missing file), and
/// PostgreSQL with every transaction read-only (the check's own transaction
/// says so too, for a pooler that does not keep a session's settings).
async fn read_only_connection(
    url: &str,
    shown: &str,
) -> Result<sqlx::AnyConnection, crate::storage::StorageError> {
    use sqlx::Connection as _;
    if url.starts_with("sqlite:") {
        let file = url.split('?').next().unwrap_or(url);
        return Ok(sqlx::AnyConnection::connect(&format!("{file}?mode=ro")).await?);
    }
    if !(url.starts_with("postgres:") || url.starts_with("postgresql:")) {
        return Err(crate::storage::StorageError::UnsupportedUrl(
            shown.to_string(),
        ));
    }
    let mut conn = sqlx::AnyConnection::connect(url).await?;
    sqlx::query("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        .execute(&mut conn)
        .await?;
    Ok(conn)
}

/// The database, the GitOps repository (when it exists) and the key the audit
/// commands work with.
struct AuditTools {
    db: Db,
    gitops: Option<GitOpsRepo>,
    key: Option<crate::secrets::SecretKey>,
}

async fn audit_tools(args: &AuditArgs) -> Result<AuditTools, String> {
    let url = args.database_url();
    let key = args.secret_key().map_err(|e| e.to_string())?;
    let db = Db::connect(&url)
        .await
        .map_err(|e| format!("database ({}): {e}", crate::config::redact_url(&url)))?;
    let path = args.gitops_repo();
    let gitops = if path.exists() {
        Some(GitOpsRepo::open_with(&path, &args.gitops_settings()).map_err(|e| e.to_string())?)
    } else {
        None
    };
    Ok(AuditTools { db, gitops, key })
}

/// `slipway secrets rotate-key`: see [`crate::services::key_rotation`]. Up to
/// the database's commit nothing has changed; after it, the database opens with
/// the new key only, and a step that fails then is said as such.
async fn rotate_key(args: &AuditArgs, new_key_file: &std::path::Path) -> ExitCode {
    use crate::services::key_rotation::{RESEAL_BATCH, RotateError, reseal, sign_over};
    let not_rotated = |error: String| {
        eprintln!("slipway: the key was NOT rotated; nothing changed: {error}");
        ExitCode::FAILURE
    };
    let url = args.database_url();
    // A server running the workers on a SQLite file holds this lock.
    let _workers = match lock_sqlite_file_workers(&url) {
        Ok(lock) => lock,
        Err(StartError::WorkersLock { reason, .. }) if reason.starts_with("another slipway") => {
            return not_rotated(
                "a slipway server runs on this SQLite database: stop every server first".into(),
            );
        }
        Err(error) => return not_rotated(error.to_string()),
    };
    let tools = match audit_tools(args).await {
        Ok(tools) => tools,
        Err(error) => return not_rotated(error),
    };
    let Some(old) = tools.key else {
        return not_rotated(
            "no current key: give the one in use with --secret-key-file or SLIPWAY_SECRET_KEY"
                .into(),
        );
    };
    let new = match crate::secrets::SecretKey::read_file(new_key_file) {
        Ok(new) => new,
        Err(error) => return not_rotated(error),
    };
    let gitops = match tools.gitops {
        Some(gitops) => Ok(gitops),
        None => GitOpsRepo::open_with(&args.gitops_repo(), &args.gitops_settings())
            .map_err(|e| e.to_string()),
    };
    let gitops = match gitops {
        Ok(gitops) => gitops,
        Err(error) => return not_rotated(error),
    };
    // Demo mode reads its key from the data directory: the new key is written
    // beside it first (an unwritable directory stops here) and moved in at once
    // after the commit.
    let configured = args.secret_key_file.is_some()
        || args
            .secret_key
            .as_deref()
            .is_some_and(|k| !k.trim().is_empty());
    let demo_file = (!configured)
        .then(|| args.data_dir.join(crate::secrets::DEMO_KEY_FILE))
        .filter(|file| file.exists());
    let staged = match demo_file
        .as_deref()
        .map(|f| crate::secrets::stage_key_file(f, &new))
    {
        Some(Err(error)) => return not_rotated(error),
        Some(Ok(staged)) => Some(staged),
        None => None,
    };
    match reseal(&tools.db, &gitops, (&old, &new), RESEAL_BATCH).await {
        Ok(resealed) => say!(
            "secret key rotated: {} sealed values re-encrypted; key check value {} → {}",
            resealed.resealed,
            resealed.old_check,
            resealed.new_check
        ),
        // A run that stopped after its commit, run again: the rest is finished.
        Err(RotateError::NotTheCurrentKey { recorded, .. }) if recorded == new.check_value() => {
            say!("the database is on the new key already; finishing the rotation")
        }
        Err(error) => {
            if let Some(staged) = &staged {
                let _ = std::fs::remove_file(staged);
            }
            return not_rotated(error.to_string());
        }
    }
    let mut failed = false;
    match (&staged, &demo_file) {
        (Some(staged), Some(file)) => match crate::secrets::put_staged_key(staged, file) {
            Ok(()) => say!("{} now holds the new key", file.display()),
            Err(error) => {
                failed = true;
                eprintln!(
                    "slipway: {error}; do it by hand: the database opens with the new key only"
                );
            }
        },
        _ => say!("start every server with the new key (--secret-key-file or SLIPWAY_SECRET_KEY)"),
    }
    let signer = crate::audit_chain::CheckpointSigner::new(&new);
    match sign_over(&tools.db, &gitops, &new).await {
        Ok(Some(c)) => say!(
            "the new key signed the audit chain at position {} (hash {}); its public key: {}",
            c.position,
            c.hash,
            signer.verifier().to_hex()
        ),
        Ok(None) => say!("checkpoint public key now {}", signer.verifier().to_hex()),
        Err(error) => {
            failed = true;
            eprintln!(
                "slipway: the key WAS rotated, but the new key's audit checkpoint failed: {error}; \
                 finish with `slipway audit checkpoint` given the new key"
            );
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

async fn audit_command(command: AuditCommand) -> ExitCode {
    use crate::audit_chain::{self, CheckpointSigner, CheckpointVerifier};
    use crate::storage::audit::ChainStatus;
    let fail = |message: String| {
        eprintln!("slipway: {message}");
        ExitCode::FAILURE
    };
    match command {
        AuditCommand::PublicKey { args } => match args.secret_key() {
            Ok(Some(key)) => {
                say!("{}", CheckpointSigner::new(&key).verifier().to_hex());
                ExitCode::SUCCESS
            }
            Ok(None) => fail(audit_chain::AuditError::NoKey.to_string()),
            Err(error) => fail(error.to_string()),
        },
        AuditCommand::Checkpoint { args } => {
            let tools = match audit_tools(&args).await {
                Ok(tools) => tools,
                Err(error) => return fail(error),
            };
            let Some(key) = tools.key else {
                return fail(audit_chain::AuditError::NoKey.to_string());
            };
            let gitops = match tools.gitops {
                Some(gitops) => gitops,
                None => match GitOpsRepo::open_with(&args.gitops_repo(), &args.gitops_settings()) {
                    Ok(gitops) => gitops,
                    Err(error) => return fail(error.to_string()),
                },
            };
            match audit_chain::checkpoint(&tools.db, &gitops, &CheckpointSigner::new(&key)).await {
                Ok(Some(c)) => {
                    say!(
                        "audit checkpoint: position {}, hash {}, signed {}; in the database and {} ({})",
                        c.position,
                        c.hash,
                        crate::storage::format_millis(c.at),
                        audit_chain::CHECKPOINT_FILE,
                        gitops.path().display()
                    );
                    ExitCode::SUCCESS
                }
                Ok(None) => {
                    say!("the audit log is empty: nothing to checkpoint");
                    ExitCode::SUCCESS
                }
                Err(error) => fail(format!("cannot write the checkpoint: {error}")),
            }
        }
        AuditCommand::Verify {
            args,
            from_checkpoint,
            no_seal,
            public_key,
        } => {
            let tools = match audit_tools(&args).await {
                Ok(tools) => tools,
                Err(error) => return fail(error),
            };
            let verifier = match public_key.filter(|k| !k.trim().is_empty()) {
                Some(text) => match CheckpointVerifier::parse(&text) {
                    Ok(verifier) => Some(verifier),
                    Err(error) => return fail(format!("--public-key: {error}")),
                },
                None => tools
                    .key
                    .as_ref()
                    .map(|key| CheckpointSigner::new(key).verifier()),
            };
            let verified = match audit_chain::verify(
                &tools.db,
                tools.gitops.as_ref(),
                verifier.as_ref(),
                audit_chain::VerifyOptions {
                    from_checkpoint,
                    seal: !no_seal,
                },
            )
            .await
            {
                Ok(verified) => verified,
                Err(error) => return fail(format!("audit log NOT verified: {error}")),
            };
            for note in &verified.notes {
                eprintln!("note: {note}");
            }
            if verified.sealed > 0 {
                say!("sealed {} pending events first", verified.sealed);
            }
            match &verified.report.status {
                ChainStatus::Intact { events } => {
                    let from = verified
                        .started_from
                        .as_ref()
                        .map_or("genesis".to_string(), |c| {
                            format!("the checkpoint at position {}", c.position)
                        });
                    let head = verified.report.head.as_ref().map_or(0, |h| h.position);
                    say!(
                        "audit log intact: {events} events read from {from} to position {head} in {:.2} s ({:.0} events/s), every hash matches",
                        verified.elapsed.as_secs_f64(),
                        verified.rate()
                    );
                    if let Some((c, source)) = &verified.reached {
                        say!(
                            "it reaches the newest signed checkpoint (position {}, {}, in {source})",
                            c.position,
                            crate::storage::format_millis(c.at)
                        );
                    }
                    ExitCode::SUCCESS
                }
                ChainStatus::Broken {
                    position,
                    seq,
                    reason,
                } => {
                    let seq = seq.map(|s| format!(" (seq {s})")).unwrap_or_default();
                    eprintln!("audit log BROKEN at position {position}{seq}: {reason}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("--user {0}: no such user")]
    NoSuchUser(String),
    #[error("--scopes: unknown scope '{0}' (scopes: read, request, review, admin)")]
    UnknownScope(String),
    #[error("{0}")]
    Service(crate::services::ServiceError),
    #[error("database: {0}")]
    Storage(#[from] crate::storage::StorageError),
}

/// `slipway token create`: the token's secret, for the caller to print.
pub async fn create_token(command: TokenCommand) -> Result<String, TokenError> {
    let TokenCommand::Create {
        user,
        scopes,
        name,
        expires_in_days,
        settings,
    } = command;
    let scopes = scopes
        .iter()
        .map(|s| TokenScope::parse(s.trim()).ok_or_else(|| TokenError::UnknownScope(s.clone())))
        .collect::<Result<Vec<_>, _>>()?;
    let settings = settings.check().map_err(StartError::from)?;
    let state = build_state(settings).await?;
    let view = {
        let mut conn = state
            .db
            .pool
            .acquire()
            .await
            .map_err(crate::storage::StorageError::from)?;
        let stored = crate::storage::users::by_username(&mut conn, &user)
            .await?
            .ok_or_else(|| TokenError::NoSuchUser(user.clone()))?;
        // A token of an account that may not act (disabled, a local one while
        // local accounts are off) would answer 403 to its every call: refused
        // here, saying why.
        crate::services::auth::acting_user(&state, &mut conn, stored.view.id)
            .await
            .map_err(TokenError::Service)?
    };
    // The command line is its own door: the audit event says so.
    let caller = Caller::new(view, Channel::System, CallMeta::default());
    let request = TokenRequest {
        name,
        scopes,
        expires_in_days: Some(expires_in_days),
    };
    let created = crate::services::tokens::create(&state, &caller, &request)
        .await
        .map_err(TokenError::Service)?;
    Ok(created.secret)
}

async fn user_command(command: crate::config::UserCommand) -> ExitCode {
    use crate::config::UserCommand;
    let (username, settings, change) = match command {
        UserCommand::Disable { username, settings } => (username, settings, AccountChange::Disable),
        UserCommand::Enable { username, settings } => (username, settings, AccountChange::Enable),
        UserCommand::SetPassword { username, settings } => {
            if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                eprint!(
                    "New password for {username} (one line, at least {} characters; it shows as \
                     you type, so pipe it in to keep it off the screen): ",
                    crate::services::auth::MIN_PASSWORD_CHARS
                );
            }
            match read_password_line(std::io::stdin().lock()) {
                Ok(password) => (username, settings, AccountChange::SetPassword(password)),
                Err(error) => {
                    eprintln!("slipway: {error}");
                    return ExitCode::FAILURE;
                }
            }
        }
    };
    let done = async {
        let settings = settings.check().map_err(|e| e.to_string())?;
        let state = build_state(settings).await.map_err(|e| e.to_string())?;
        let said = match &change {
            AccountChange::Disable | AccountChange::Enable => {
                let disabled = matches!(change, AccountChange::Disable);
                crate::services::auth::set_disabled(&state, &username, disabled)
                    .await
                    .map_err(|e| e.to_string())?;
                if disabled { "disabled" } else { "enabled" }.to_string()
            }
            AccountChange::SetPassword(password) => {
                let ended = crate::services::auth::set_password(&state, &username, password)
                    .await
                    .map_err(|e| e.to_string())?;
                format!("password set; {ended} sessions ended")
            }
        };
        Ok::<_, String>(said)
    };
    match done.await {
        Ok(said) => {
            say!("{username}: {said}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("slipway: {error}");
            ExitCode::FAILURE
        }
    }
}

/// What `slipway user …` does to the account.
enum AccountChange {
    Disable,
    Enable,
    SetPassword(String),
}

/// The longest line read as a password: sign-in takes at most 1024 bytes, and
/// a line longer than this is no password typed or piped on purpose.
const MAX_PASSWORD_LINE: u64 = 4096;

/// A new password as one line of `input`, without its line ending (`\n` or
/// `\r\n`); its length is judged where it is set.
pub fn read_password_line(input: impl std::io::BufRead) -> Result<String, String> {
    use std::io::BufRead as _;
    let mut line = String::new();
    input
        .take(MAX_PASSWORD_LINE)
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the new password from standard input: {e}"))?;
    let password = line
        .strip_suffix('\n')
        .map(|rest| rest.strip_suffix('\r').unwrap_or(rest))
        .unwrap_or(&line);
    if password.is_empty() {
        return Err(
            "no password on standard input: give the new password as one line, e.g. \
             printf '%s\\n' \"$NEW_PASSWORD\" | slipway user set-password NAME"
                .into(),
        );
    }
    Ok(password.to_string())
}

async fn request_command(command: crate::config::RequestCommand) -> ExitCode {
    use crate::client;
    use crate::config::RequestCommand;
    let answer = match command {
        RequestCommand::Create {
            api,
            type_name,
            params,
            idempotency_key,
        } => match client::params_of(&params) {
            Ok(params) => {
                let key = idempotency_key.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
                client::create(&api, &type_name, params, &key).await
            }
            Err(error) => Err(error),
        },
        RequestCommand::Get { api, id } => client::get(&api, id).await,
    };
    match answer {
        Ok(value) => {
            say!("{}", client::terminal_json(&value));
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("slipway: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn dev_command(command: crate::config::DevCommand) -> ExitCode {
    let (requests, audit_events, settings) = match command {
        crate::config::DevCommand::Seed {
            requests,
            audit_events,
            settings,
        } => (requests, audit_events, settings),
        crate::config::DevCommand::QueueBench {
            jobs,
            slots,
            settings,
        } => return crate::queue_bench::run(settings, jobs, slots).await,
    };
    let seeded = async {
        let settings = settings.check().map_err(|e| e.to_string())?;
        let state = build_state(settings).await.map_err(|e| e.to_string())?;
        let plan = crate::seed::SeedPlan {
            requests: requests as usize,
            audit_events: audit_events as usize,
        };
        let started = std::time::Instant::now();
        let seeded = crate::seed::seed(&state, plan)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>((seeded, started.elapsed()))
    };
    match seeded.await {
        Ok((seeded, took)) => {
            say!(
                "seeded {} requests, {} assets and {} audit events in {:.1} s",
                seeded.requests,
                seeded.assets,
                seeded.audit_events,
                took.as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("slipway: cannot seed: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Entry point of the `slipway` binary; `portal` mounts the web pages on the state.
pub async fn main(portal: impl FnOnce(AppState) -> Router) -> ExitCode {
    use crate::drivers::gitops;
    // SAFETY: nothing has used libgit2 yet; every repository is opened below.
    let limited = unsafe {
        gitops::limit_network_waits(
            gitops::NETWORK_CONNECT_TIMEOUT,
            gitops::NETWORK_IDLE_TIMEOUT,
        )
    };
    if let Err(error) = limited {
        eprintln!("slipway: cannot limit how long git waits for a remote: {error}");
        return ExitCode::FAILURE;
    }
    keep_new_files_private();
    let cli = Cli::parse();
    init_tracing(
        matches!(
            cli.command,
            Command::Token(_)
                | Command::User(_)
                | Command::Request(_)
                | Command::Audit(_)
                | Command::Secrets(_)
        ),
        cli.log_format,
    );
    match cli.command {
        Command::Token(command) => match create_token(command).await {
            Ok(secret) => {
                say!("{secret}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("slipway: cannot create the token: {error}");
                ExitCode::FAILURE
            }
        },
        Command::User(command) => user_command(command).await,
        Command::Request(command) => request_command(command).await,
        Command::Dev(command) => dev_command(command).await,
        Command::Catalog(CatalogCommand::Check { dir, against }) => {
            check_catalog(&dir, against.as_deref()).await
        }
        Command::Audit(command) => audit_command(command).await,
        Command::Secrets(crate::config::SecretsCommand::RotateKey { args, new_key_file }) => {
            rotate_key(&args, &new_key_file).await
        }
        Command::Serve(args) => {
            let result = match args.check() {
                Ok(settings) => serve(settings, portal).await,
                Err(error) => Err(error.into()),
            };
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("slipway: cannot start: {error}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_database_urls_unknown_parameter_is_never_logged_with_its_value() {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Lines(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Lines {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                if let Ok(mut lines) = self.0.lock() {
                    lines.extend_from_slice(bytes);
                }
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        for from_env in [None, Some("trace")] {
            let lines = Lines::default();
            let writer = lines.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_env_filter(super::log_filter(
                    from_env.map(tracing_subscriber::EnvFilter::new),
                ))
                .with_writer(move || writer.clone())
                .finish();
            tracing::subscriber::with_default(subscriber, || {
                tracing::warn!(target: "sqlx_postgres::options::parse", key = "sslpassword", value = "KeyPass2", "ignoring unrecognized connect parameter");
                tracing::warn!(target: "sqlx_postgres::other", "kept");
            });
            let logged = lines.0.lock().map(|l| l.clone()).unwrap_or_default();
            let logged = String::from_utf8_lossy(&logged);
            assert!(!logged.contains("KeyPass2"), "{from_env:?}: {logged}");
            assert!(logged.contains("kept"), "{from_env:?}: {logged}");
        }
    }

    use super::*;

    #[test]
    fn a_new_password_is_one_line_of_standard_input() {
        assert_eq!(
            read_password_line("correct horse battery\nrest".as_bytes()).as_deref(),
            Ok("correct horse battery")
        );
        assert_eq!(
            read_password_line("from windows  \r\n".as_bytes()).as_deref(),
            Ok("from windows  "),
            "only the line ending is taken off"
        );
        assert_eq!(
            read_password_line("no newline".as_bytes()).as_deref(),
            Ok("no newline")
        );
        for empty in ["", "\n", "\r\n"] {
            let refused = read_password_line(empty.as_bytes())
                .err()
                .unwrap_or_default();
            assert!(
                refused.contains("no password on standard input"),
                "{empty:?}: {refused}"
            );
        }
    }

    #[test]
    fn the_servers_memory_is_kept_from_its_users_other_processes() -> rustix::io::Result<()> {
        use rustix::process::{DumpableBehavior, dumpable_behavior};
        keep_memory_private();
        assert_eq!(dumpable_behavior()?, DumpableBehavior::NotDumpable);
        Ok(())
    }

    fn copy_dir(from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
        std::fs::create_dir_all(to)?;
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            let target = to.join(entry.file_name());
            if entry.file_type()?.is_dir() {
                copy_dir(&entry.path(), &target)?;
            } else {
                std::fs::copy(entry.path(), target)?;
            }
        }
        Ok(())
    }

    /// A team map beside a catalog without a teams dictionary would grant
    /// teams nothing knows: the start stops, naming the setting.
    #[test]
    fn a_team_map_needs_the_catalogs_teams() -> Result<(), Box<dyn std::error::Error>> {
        let identity = |map: &[&str]| {
            crate::config::IdentityArgs {
                public_url: Some("http://slipway.test".into()),
                oidc_issuer: Some("http://127.0.0.1:9".into()),
                oidc_client_id: Some("slipway".into()),
                oidc_client_secret: Some("client-secret".into()),
                oidc_team_map: map.iter().map(|p| p.to_string()).collect(),
                oidc_teams_as_named: map.is_empty(),
                ..crate::config::IdentityArgs::default()
            }
            .check()
        };
        let bare = slipway_core::catalog::Catalog::default();
        let dir = std::path::Path::new("/srv/catalog");
        let mapped = identity(&["grp-payments=payments"])?;
        let error = check_team_map(mapped.oidc.as_ref(), dir, &bare).err();
        assert_eq!(
            error.map(|e| e.to_string()).unwrap_or_default(),
            "--oidc-team-map (SLIPWAY_OIDC_TEAM_MAP): the catalog /srv/catalog has no teams \
             dictionary (dictionaries/teams.yaml) to hold the teams this map grants"
        );
        let unmapped = identity(&[])?;
        assert!(check_team_map(unmapped.oidc.as_ref(), dir, &bare).is_ok());
        let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../catalog");
        let loaded = catalog_source::load(&shipped)?;
        assert!(check_team_map(mapped.oidc.as_ref(), dir, &loaded.catalog).is_ok());
        Ok(())
    }

    #[tokio::test]
    async fn catalog_check_renders_every_type_and_refuses_broken_output()
    -> Result<(), Box<dyn std::error::Error>> {
        let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../catalog");
        assert_eq!(check_catalog(&shipped, None).await, ExitCode::SUCCESS);
        let dir = tempfile::tempdir()?;
        copy_dir(&shipped, dir.path())?;
        // Loads fine (the template compiles), but renders YAML that does not parse.
        std::fs::write(
            dir.path().join("templates/k8s-namespace/namespace.yaml.j2"),
            "kind: Namespace\nmetadata: {name: {{ resource_name }}\n",
        )?;
        assert!(catalog_source::load(dir.path()).is_ok());
        assert_eq!(check_catalog(dir.path(), None).await, ExitCode::FAILURE);
        Ok(())
    }
}
