//! The command driver: runs a program the settings allow (think `psql`,
//! `tofu apply`, `ansible-playbook`, `kubectl apply`) on a step's rendered files
//! in a scratch directory. No shell: the program gets its arguments as a list,
//! so a parameter with spaces or quotes stays one argument. Secrets reach it
//! through the environment only; its output is captured into the step's log
//! with every secret value blanked out; a program that outlives its timeout is
//! killed.
//!
//! Idempotence is the program's part of the contract: choose commands that
//! converge (`kubectl apply`, `tofu apply`, SQL with `IF NOT EXISTS`). The
//! orchestrator does not run a step again once it is recorded done.

mod escaped;
pub(crate) mod scram;
mod server_sessions;
mod supervisor;

use std::collections::BTreeMap;
use std::io::{Read, Write as _};
use std::os::fd::OwnedFd;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use slipway_core::execution::{PlannedCommand, PlannedStep, is_pg_connection_variable};
use slipway_core::render;
use slipway_core::secret::SecretValues;
use tokio_util::sync::CancellationToken;

use super::progress::{ProgressLines, scrub_line};
use super::{Driver, DriverError, StepContext, StepOutcome};
use crate::postgres_servers::{self, PostgresServer};
use server_sessions::RunSessions;

/// What commands may run and with what, from the server's settings.
#[derive(Debug, Clone)]
pub struct CommandSettings {
    /// Programs a step may name, exactly as the step names them.
    pub allowed: Vec<String>,
    /// Variables of the server's own environment handed on to every command
    /// (e.g. `PGPASSWORD` for an admin connection), besides PATH, HOME and LANG.
    pub pass_env: Vec<String>,
    /// How long a program may run when its step gives no timeout.
    pub default_timeout: Duration,
    /// Where scratch directories are made (one per run, removed after).
    pub scratch_dir: PathBuf,
    /// PostgreSQL servers by the name steps and checks give them.
    pub postgres_servers: BTreeMap<String, PostgresServer>,
}

impl Default for CommandSettings {
    fn default() -> Self {
        CommandSettings {
            allowed: Vec::new(),
            pass_env: Vec::new(),
            default_timeout: DEFAULT_TIMEOUT,
            scratch_dir: std::env::temp_dir().join("slipway-scratch"),
            postgres_servers: BTreeMap::new(),
        }
    }
}

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// Variables every program gets from the server's environment so that it can
/// find its helpers and its configuration.
const BASE_ENV: &[&str] = &["PATH", "HOME", "LANG", "LC_ALL", "TZ"];

/// The log keeps the last this many bytes of each stream.
const MAX_CAPTURED: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub struct CommandDriver {
    settings: Arc<CommandSettings>,
}

impl CommandDriver {
    pub fn new(settings: CommandSettings) -> CommandDriver {
        CommandDriver {
            settings: Arc::new(settings),
        }
    }
}

#[async_trait]
impl Driver for CommandDriver {
    fn name(&self) -> &'static str {
        "command"
    }

    async fn run(
        &self,
        step: &PlannedStep,
        ctx: &StepContext<'_>,
    ) -> Result<StepOutcome, DriverError> {
        let PlannedStep::Command(command) = step else {
            return Err(DriverError::Permanent(format!(
                "the command driver was handed a {} step",
                step.driver()
            )));
        };
        self.run_command(command, ctx).await
    }
}

impl CommandDriver {
    /// Runs one command under the settings' allow-list, environment and timeout:
    /// an execution step's, or an acceptance check's (which has no files).
    pub async fn run_command(
        &self,
        command: &PlannedCommand,
        ctx: &StepContext<'_>,
    ) -> Result<StepOutcome, DriverError> {
        self.allows(&command.program)
            .map_err(DriverError::Permanent)?;
        for file in &command.files {
            render::check_syntax(file).map_err(|e| DriverError::Permanent(e.to_string()))?;
        }
        refuse_overriding_passed_environment(command, &self.settings.pass_env)?;
        let settings = self.settings.clone();
        let mut command = command.clone();
        let mut secrets = ctx.secrets.clone();
        let mut passfile = None;
        let mut pass_env = settings.pass_env.clone();
        let mut sessions = None;
        if let Some(name) = &command.postgres_server {
            let server = self.postgres_server(name).map_err(DriverError::Permanent)?;
            refuse_other_connections(&command, name)?;
            let passed_password = held_back_from_admin_connection(&mut pass_env);
            let run_sessions =
                RunSessions::of_step(server, passed_password.clone(), ctx.sessions, ctx.progress)
                    .await?;
            passfile = with_admin_connection(&mut command, &mut secrets, server, passed_password);
            let application_name = run_sessions.application_name().to_string();
            command.env.push(("PGAPPNAME".into(), application_name));
            sessions = Some(run_sessions);
        }
        hand_verifiers(&mut command, &mut secrets);
        blank_passed_environment(&settings.pass_env, &mut secrets);
        let stop = ctx.stop.clone();
        // Live lines are blanked of everything the program was handed, as its log is.
        let progress = ctx.progress.blanking(secrets.clone());
        let ran = tokio::task::spawn_blocking(move || {
            let handed = Handed {
                command: &command,
                passfile: passfile.as_deref(),
                pass_env: &pass_env,
            };
            run_blocking(&settings, &handed, &secrets, &stop, &progress)
        })
        .await
        .map_err(|e| DriverError::Retryable(format!("the command driver stopped: {e}")))?;
        match (ran, sessions) {
            (Err(Stopped::Killed(error)), Some(mut sessions)) => {
                Err(error.noted(&sessions.end().await))
            }
            (ran, sessions) => {
                // The program ended by itself: nothing of it is left to end.
                if let Some(mut sessions) = sessions {
                    sessions.disarm();
                }
                match ran {
                    Err(Stopped::Killed(error) | Stopped::Ended(error)) => Err(error),
                    Ok(outcome) => Ok(outcome),
                }
            }
        }
    }
}

impl CommandDriver {
    /// How long a program may run when its step or check gives no timeout.
    pub fn default_timeout(&self) -> Duration {
        self.settings.default_timeout
    }

    /// Whether the allow-list lets `program` run, or why not.
    pub fn allows(&self, program: &str) -> Result<(), String> {
        if self.settings.allowed.iter().any(|p| p == program) {
            return Ok(());
        }
        let allowed = if self.settings.allowed.is_empty() {
            "none".to_string()
        } else {
            self.settings.allowed.join(", ")
        };
        Err(format!(
            "the program {program:?} is not allowed by the server's --command-allow (SLIPWAY_COMMAND_ALLOW) setting; allowed: {allowed}"
        ))
    }

    /// The server a step or check names, or why there is none.
    pub fn postgres_server(&self, name: &str) -> Result<&PostgresServer, String> {
        self.settings.postgres_servers.get(name).ok_or_else(|| {
            let known: Vec<&str> = self
                .settings
                .postgres_servers
                .keys()
                .map(String::as_str)
                .collect();
            format!(
                "no PostgreSQL server is named {name:?} in the server's {} setting (configured: {})",
                postgres_servers::SETTING,
                if known.is_empty() { "none".to_string() } else { known.join(", ") }
            )
        })
    }
}

/// The server's admin connection goes in first, so the step's own `env` may name
/// a database of its own (PGDATABASE) or PGOPTIONS; where to connect and as whom
/// are the server's alone (the catalog loader refuses a step that sets them, and
/// they are dropped here too). The password is blanked in the output like a
/// secret, and it goes to libpq as a password file line (returned) naming the
/// server's host, port and user, not as `PGPASSWORD`: libpq sends it only to that
/// server as that user, so an argument or a `\connect` naming another host gets
/// no password.
///
/// `passed_password` is the operator's passed-on `PGPASSWORD`, held back from
/// the program: for a server whose URL has no password it goes into the
/// password file instead, bound to the server like one from the URL.
fn with_admin_connection(
    command: &mut PlannedCommand,
    secrets: &mut SecretValues,
    server: &PostgresServer,
    passed_password: Option<String>,
) -> Option<String> {
    const PASSWORD: &str = "postgres server password";
    let mut env = server.libpq_env();
    command
        .env
        .retain(|(name, _)| !is_pg_connection_variable(name));
    command
        .secret_env
        .retain(|(name, _)| !is_pg_connection_variable(name));
    env.append(&mut command.env);
    command.env = env;
    let password = server.password().map(str::to_string).or(passed_password)?;
    let password = password.as_str();
    secrets.insert(PASSWORD, password);
    let field = |text: &str| text.replace('\\', "\\\\").replace(':', "\\:");
    let escaped = field(password);
    if escaped != password {
        // A program that prints its password file shows it escaped.
        secrets.insert("postgres server password, escaped", escaped);
    }
    Some(format!(
        "{}:{}:*:{}:{}\n",
        field(&server.host),
        server.port,
        field(&server.user),
        field(password)
    ))
}

/// A step's own variable may not replace one the operator passes on
/// (`--command-pass-env`): those carry the operator's credentials and settings
/// (a kubeconfig, a cloud profile), which a step that set its own could point
/// elsewhere. The message names the variable, never a value.
fn refuse_overriding_passed_environment(
    command: &PlannedCommand,
    pass_env: &[String],
) -> Result<(), DriverError> {
    let names = command
        .env
        .iter()
        .map(|(name, _)| name)
        .chain(command.secret_env.iter().map(|(name, _)| name));
    for name in names {
        if pass_env.iter().any(|passed| passed == name) {
            return Err(DriverError::Permanent(format!(
                "the step sets {name}, which the server passes on from its own environment \
                 (--command-pass-env, SLIPWAY_COMMAND_PASS_ENV): a step may not replace the \
                 operator's value"
            )));
        }
    }
    Ok(())
}

/// Passed-on variables that libpq prefers to the server's password file, or
/// that choose another address or service for the connection: a step beside a
/// PostgreSQL server does not get them.
const HELD_FROM_ADMIN_CONNECTION: [&str; 6] = [
    "PGPASSWORD",
    "PGPASSFILE",
    "PGSERVICE",
    "PGSERVICEFILE",
    "PGSYSCONFDIR",
    "PGHOSTADDR",
];

/// Whether the operator has been told once that those variables are held back.
static HELD_BACK_WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Takes the variables of [`HELD_FROM_ADMIN_CONNECTION`] out of what a step
/// beside a PostgreSQL server is handed, and returns the operator's
/// `PGPASSWORD` when it was among them (for a server whose URL has none).
fn held_back_from_admin_connection(pass_env: &mut Vec<String>) -> Option<String> {
    let held: Vec<String> = pass_env
        .iter()
        .filter(|name| HELD_FROM_ADMIN_CONNECTION.contains(&name.as_str()))
        .cloned()
        .collect();
    if held.is_empty() {
        return None;
    }
    pass_env.retain(|name| !held.contains(name));
    if !HELD_BACK_WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        tracing::warn!(
            variables = %held.join(", "),
            "--command-pass-env (SLIPWAY_COMMAND_PASS_ENV) names variables that are not handed \
             to steps beside a PostgreSQL server (libpq would prefer them to the server's \
             password file); a PGPASSWORD among them goes into that file for a server whose \
             URL has no password"
        );
    }
    held.iter()
        .any(|name| name == "PGPASSWORD")
        .then(|| std::env::var("PGPASSWORD").ok())
        .flatten()
}

/// Beside a PostgreSQL server, libpq must connect where the settings say and
/// nowhere else, or the admin's password goes with it: the password file names
/// the server's host, but a connection string (`host=db.internal
/// hostaddr=203.0.113.5`, a `postgres://` URI) given as an argument makes libpq
/// match the file on `host` while it connects to `hostaddr`, and a psql file can
/// `\connect` elsewhere, start another program that does, or read and write
/// files on Slipway's host. Such an argument or file is refused before anything
/// runs; the message names the argument's position or the file's line, never
/// its text (it may hold a secret).
fn refuse_other_connections(command: &PlannedCommand, server: &str) -> Result<(), DriverError> {
    let psql = Path::new(&command.program)
        .file_name()
        .is_some_and(|name| name == "psql");
    if psql && let Some((i, path)) = psql_path_outside_scratch(&command.args) {
        return Err(DriverError::Permanent(format!(
            "args[{i}] of the step has psql read or write {path:?}; beside the PostgreSQL \
             server {server:?} psql reads and writes only the step's own files, by a relative \
             path inside its scratch directory (no '/' in front, no '..', no '|' program)"
        )));
    }
    // psql's own variables (`-v ON_ERROR_STOP=1`) are assignments, not connections.
    let mut variable_next = false;
    let mut options_over = false;
    for (i, arg) in command.args.iter().enumerate() {
        let lower = arg.to_ascii_lowercase();
        let assignment = (psql && !options_over)
            .then(|| psql_assignment(arg, variable_next))
            .flatten();
        let was_variable = variable_next;
        variable_next = psql
            && !options_over
            && !was_variable
            && ["-v", "--set", "--variable"].contains(&arg.as_str());
        options_over |= !was_variable && arg == "--";
        let connection = lower.starts_with("postgres:")
            || lower.starts_with("postgresql:")
            || lower.contains("hostaddr")
            || (arg.contains('=') && assignment.is_none());
        if connection {
            return Err(DriverError::Permanent(format!(
                "args[{i}] of the step reads as a libpq connection string (it holds '=' or \
                 'hostaddr', or is a postgres: URI); beside the PostgreSQL server {server:?} only \
                 the server's settings choose where to connect: name the database with `-d NAME` \
                 or PGDATABASE"
            )));
        }
        // A variable's value lands in the file's text wherever it is used.
        if assignment.is_some_and(|a| a.contains(['\\', '`', '|'])) {
            return Err(DriverError::Permanent(format!(
                "args[{i}] of the step sets a psql variable to a value holding a backslash, a \
                 backquote or '|'; beside the PostgreSQL server {server:?} a variable holds plain \
                 text, never what could become a meta-command, a shell command or a pipe"
            )));
        }
    }
    // psql runs `-c '\! cmd'` as a meta-command: an argument with a backslash is
    // read as meta-commands, whatever option it belongs to.
    for (i, arg) in command.args.iter().enumerate() {
        if let Some(refused) = refused_in_psql_text(arg, false) {
            return Err(DriverError::Permanent(format!(
                "args[{i}] of the step holds {}; beside the PostgreSQL server {server:?} {}",
                refused.what, refused.why
            )));
        }
    }
    for file in &command.files {
        if let Some(refused) = refused_in_psql_text(&file.content, true) {
            return Err(DriverError::Permanent(format!(
                "the rendered file {} holds {} on line {}; beside the PostgreSQL server \
                 {server:?} {}",
                file.path, refused.what, refused.line, refused.why
            )));
        }
    }
    Ok(())
}

/// psql's short options that take a value (`psql --help`): in a cluster such as
/// `-qf x`, the first of them takes the rest of the argument or the next one.
const PSQL_SHORT_WITH_VALUE: &str = "cdfhLoPpRTUvF";
/// The options whose value psql opens as a file, or as a program after `|`.
const PSQL_FILE_SHORT: &str = "foL";
const PSQL_FILE_LONG: [&str; 3] = ["file", "output", "log-file"];
/// psql's other long options that take a value (as the next argument when not
/// joined by `=`).
const PSQL_VALUE_LONG: [&str; 11] = [
    "command",
    "dbname",
    "set",
    "variable",
    "field-separator",
    "pset",
    "record-separator",
    "table-attr",
    "host",
    "port",
    "username",
];

/// Whether a long option as written names one of `names`: psql (getopt_long)
/// takes any unambiguous start of a name (`--outp` is `--output`), and one that
/// could start a file option is read as one (psql refuses the ambiguous ones).
fn long_option_is(written: &str, names: &[&str]) -> bool {
    !written.is_empty() && names.iter().any(|name| name.starts_with(written))
}

/// The first file option (`-f`, `-o`, `-L`, joined, clustered or long) whose
/// path leaves the scratch directory: absolute (`/proc/self/environ`, the
/// server's files), with a `..` segment, or a `|program`.
fn psql_path_outside_scratch(args: &[String]) -> Option<(usize, String)> {
    let outside = |path: &str| {
        path.starts_with(['/', '|', '~']) || path.split('/').any(|segment| segment == "..")
    };
    let mut value_of_file_option = false;
    let mut value_of_other_option = false;
    for (i, arg) in args.iter().enumerate() {
        if std::mem::take(&mut value_of_file_option) {
            if outside(arg) {
                return Some((i, arg.clone()));
            }
            continue;
        }
        if std::mem::take(&mut value_of_other_option) {
            continue;
        }
        // After `--` come the database and user names, never a file.
        if arg == "--" {
            return None;
        }
        if let Some(long) = arg.strip_prefix("--") {
            let (name, joined) = long
                .split_once('=')
                .map_or((long, None), |(n, v)| (n, Some(v)));
            let file = long_option_is(name, &PSQL_FILE_LONG);
            match joined {
                Some(value) if file && outside(value) => return Some((i, value.to_string())),
                Some(_) => {}
                None if file => value_of_file_option = true,
                None => value_of_other_option = long_option_is(name, &PSQL_VALUE_LONG),
            }
            continue;
        }
        let Some(cluster) = arg.strip_prefix('-') else {
            continue;
        };
        if let Some(at) = cluster.find(|c| PSQL_SHORT_WITH_VALUE.contains(c)) {
            let option = cluster[at..].chars().next().unwrap_or_default();
            let rest = &cluster[at + option.len_utf8()..];
            let file = PSQL_FILE_SHORT.contains(option);
            if rest.is_empty() {
                value_of_file_option = file;
                value_of_other_option = !file;
            } else if file && outside(rest) {
                return Some((i, rest.to_string()));
            }
        }
    }
    None
}

/// The `NAME=VALUE` a psql argument sets as a variable, if it is one: the
/// argument after `-v`/`--set`/`--variable` (`variable_next`) or one joined to
/// them.
fn psql_assignment(arg: &str, variable_next: bool) -> Option<&str> {
    let joined = arg
        .strip_prefix("--set=")
        .or_else(|| arg.strip_prefix("--variable="))
        .or_else(|| arg.strip_prefix("-v").filter(|_| !arg.starts_with("--")));
    [variable_next.then_some(arg), joined]
        .into_iter()
        .flatten()
        .find(|assignment| is_psql_assignment(assignment))
}

/// libpq's connection keywords: a connection string names only these, so an
/// assignment to one is read as a connection string, never as a psql variable
/// (`-f -v service=x` gives psql the file `-v` and the connection `service=x`).
const LIBPQ_KEYWORDS: [&str; 46] = [
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "passfile",
    "require_auth",
    "channel_binding",
    "connect_timeout",
    "client_encoding",
    "options",
    "application_name",
    "fallback_application_name",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
    "replication",
    "gssencmode",
    "sslmode",
    "sslnegotiation",
    "requiressl",
    "sslcompression",
    "sslcert",
    "sslkey",
    "sslkeylogfile",
    "sslpassword",
    "sslcertmode",
    "sslrootcert",
    "sslcrl",
    "sslcrldir",
    "sslsni",
    "requirepeer",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "min_protocol_version",
    "max_protocol_version",
    "krbsrvname",
    "gsslib",
    "gssdelegation",
    "scram_client_key",
    "service",
    "target_session_attrs",
    "load_balance_hosts",
];

/// `NAME=VALUE` with a plain variable name, as psql's `-v` takes it, and no
/// libpq keyword.
fn is_psql_assignment(text: &str) -> bool {
    text.split_once('=').is_some_and(|(name, _)| {
        !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !LIBPQ_KEYWORDS.contains(&name.to_ascii_lowercase().as_str())
            && !name.to_ascii_lowercase().starts_with("oauth_")
    })
}

/// The meta-commands a psql file or argument beside a server may use: they
/// set, show and test psql's own variables and branch on them, `\gexec` runs
/// a query's results as SQL on the same connection, `\pset` and `\timing`
/// only shape what psql prints (but `\pset pager`: a pager is a program) and
/// `\conninfo` prints where psql is connected, never the password. Every
/// other one is refused: they connect (`\c`), run programs (`\!`, `\g |cmd`),
/// read or write files on Slipway's host (`\i`, `\o`, `\w`, `\copy`,
/// `\lo_import`, `\s`), set the environment (`\setenv`) or copy query results
/// into variables (`\gset`), which may then hold a meta-command.
const ALLOWED_META_COMMANDS: [&str; 14] = [
    "set", "unset", "getenv", "gexec", "if", "elif", "else", "endif", "echo", "qecho", "warn",
    "pset", "timing", "conninfo",
];

/// Why a psql text is refused: what it holds, on which line (from 1), and the
/// rule it breaks.
#[derive(Debug, PartialEq)]
struct PsqlRefusal {
    line: usize,
    what: String,
    why: String,
}

/// The first thing in a psql text that a step beside a server may not run: a
/// meta-command off the allow-list or with arguments it may not take, an
/// unquoted interpolation, or text psql may read otherwise than the lexer
/// does. `sql` is false for a program's argument, which psql reads as SQL
/// without interpolating (`-c 'select 1'`) or as a meta-command if it starts
/// with a backslash: there every backslash starts one.
fn refused_in_psql_text(text: &str, sql: bool) -> Option<PsqlRefusal> {
    if !sql && !text.contains('\\') {
        return None;
    }
    psql_items(text, sql).into_iter().find_map(|(line, item)| {
        let (what, why) = match item {
            PsqlItem::Meta { name, args } => refused_meta_command(name, args)?,
            PsqlItem::Unquoted(name) => (
                format!("the variable :{name} unquoted"),
                "interpolate variables quoted, :'name' or :\"name\"; an unquoted value is read \
                 as psql text and may hold a backslash command (a cast is ::, a plain colon \\:)"
                    .to_string(),
            ),
            PsqlItem::Hazard(hazard) => (hazard.what.to_string(), hazard.why.to_string()),
        };
        Some(PsqlRefusal { line, what, why })
    })
}

/// What is wrong with a meta-command and why, if anything: its name must be
/// on the allow-list exactly (psql's names are case-sensitive), its arguments
/// may run nothing, and a variable's name and value are plain text.
fn refused_meta_command(name: &str, args: &str) -> Option<(String, String)> {
    if !ALLOWED_META_COMMANDS.contains(&name) {
        let what = if name.is_empty() {
            "a backslash with no meta-command name after it".to_string()
        } else {
            let shown: String = name.chars().take(24).collect();
            format!("the psql meta-command \\{shown}")
        };
        let allowed: Vec<String> = ALLOWED_META_COMMANDS
            .iter()
            .map(|name| format!("\\{name}"))
            .collect();
        let why = format!(
            "a step may not connect elsewhere, start other programs or use files on Slipway's \
             host; it may use {}",
            allowed.join(", ")
        );
        return Some((what, why));
    }
    let what = |detail: &str| format!("the psql meta-command \\{name} {detail}");
    if args.contains('`') {
        let why = "psql runs backquoted text as a shell command on Slipway's host";
        return Some((what("with a `backquoted` command"), why.to_string()));
    }
    // Any option but the pager, named plainly (`:x` could name the pager).
    let plain_option = |option: &str| {
        option
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !option.to_ascii_lowercase().starts_with("pager")
    };
    match name {
        "set" | "unset" | "getenv" if args.contains(['\\', '|', ':']) => Some((
            what("with a backslash, '|' or ':' in its arguments"),
            "a variable holds plain text: a backslash or '|' in its value could become a \
             meta-command or a pipe where it is used, and ':' interpolates another variable"
                .to_string(),
        )),
        "pset"
            if !args
                .split_ascii_whitespace()
                .next()
                .is_none_or(plain_option) =>
        {
            Some((
                what("with the option pager, or one not named plainly"),
                "a pager is a program; name another option plainly (\\pset format csv)".to_string(),
            ))
        }
        _ => None,
    }
}

/// What a psql text holds outside its SQL text, as psql's own lexer reads it.
/// SQL text is strings (`'…'`, `E'…'`), quoted identifiers, dollar-quoted
/// bodies and comments: a backslash or a colon in it is just a character.
#[derive(Debug, Clone, Copy, PartialEq)]
enum PsqlItem<'a> {
    /// A meta-command: its name as psql reads it (up to a blank or a
    /// backslash) and its arguments' text (up to an unquoted backslash or the
    /// line's end).
    Meta { name: &'a str, args: &'a str },
    /// `:name` in SQL: psql reads the variable's value as more psql text,
    /// meta-commands and all.
    Unquoted(&'a str),
    /// Text psql may read otherwise than this lexer does (or a backquote, of
    /// no use but to run a shell command); the lexing stops there.
    Hazard(Hazard),
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Hazard {
    what: &'static str,
    why: &'static str,
}

/// The step's PGCLIENTENCODING or SQL (`SET client_encoding`) may switch psql
/// to SJIS, BIG5, GBK or GB18030, where a byte of a UTF-8 character starts a
/// two- or four-byte character that takes the ASCII after it, a quote or
/// backslash included. A `--` comment is safe: it runs to the line's end either
/// way.
const NON_ASCII: Hazard = Hazard {
    what: "a non-ASCII character outside a -- comment",
    why: "psql reads the text in the session's client encoding, which may make the quote or \
          backslash after such a character part of it; write it as an escape (U&'caf\\00E9') \
          or keep it in a -- comment",
};
/// `'a\'` ends at the second quote as psql reads it by default, but goes on in
/// an `E''` string or with standard_conforming_strings off (the step's
/// PGOPTIONS or a `SET` may turn it off).
const ESCAPED_QUOTE: Hazard = Hazard {
    what: "a backslash right before a quote in a string",
    why: "whether it escapes the quote depends on E'' and on standard_conforming_strings, so \
          where the string ends is unclear; write a quote in a string as ''",
};
/// `1$a$`, `0x1$a$`, `$1_0$a$`: one psql version reads a dollar quote there,
/// another a number followed by an identifier.
const DOLLAR_AFTER_NUMBER: Hazard = Hazard {
    what: "a $ right after a number",
    why: "psql versions disagree on whether it starts a dollar-quoted string; put a blank \
          before it",
};
/// psql drops the rest of a line after a meta-command that fails (a bad
/// variable name, a stray `\endif`), so SQL there would be read from another
/// place than here.
const SQL_AFTER_META: Hazard = Hazard {
    what: "SQL after a meta-command on its line",
    why: "psql drops the rest of the line when a meta-command fails, so where that SQL's \
          strings start and end is unclear; start it on a new line",
};
const BACKQUOTE: Hazard = Hazard {
    what: "a backquote outside quotes and comments",
    why: "psql runs backquoted text as a shell command on Slipway's host",
};
/// psql reads a line as a C string (a NUL ends it) and its lexer ends a `--`
/// comment at a carriage return.
const CONTROL: Hazard = Hazard {
    what: "a NUL or a carriage return that does not end a line",
    why: "psql splits or cuts the line there otherwise than this check reads it",
};

/// psql's blanks: they end a meta-command's name and separate its arguments.
fn is_psql_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c')
}

/// A character of a psql variable's name (psql also takes non-ASCII ones,
/// refused here anyway).
fn is_variable_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The meta-commands and unquoted interpolations of a psql text with their
/// lines (from 1), ended by a hazard if one stops the lexing. With `sql` false
/// (a program's argument) there is no SQL text: every backslash starts
/// meta-commands.
fn psql_items(text: &str, sql: bool) -> Vec<(usize, PsqlItem<'_>)> {
    let mut lexer = PsqlLexer {
        text,
        at: 0,
        line: 1,
        items: Vec::new(),
    };
    let lexed = if sql { lexer.sql() } else { lexer.argument() };
    if let Err(hazard) = lexed {
        lexer.items.push((lexer.line, PsqlItem::Hazard(hazard)));
    }
    lexer.items
}

/// psql's lexer (src/fe_utils/psqlscan.l, src/bin/psql/psqlscanslash.l) as far
/// as it decides what is SQL text and what a meta-command. `at` is a byte
/// offset, always at an ASCII character or the end: only a `--` comment skips
/// other characters, and it ends at a line's end.
struct PsqlLexer<'a> {
    text: &'a str,
    at: usize,
    line: usize,
    items: Vec<(usize, PsqlItem<'a>)>,
}

impl<'a> PsqlLexer<'a> {
    fn peek(&self, ahead: usize) -> Option<u8> {
        self.text.as_bytes().get(self.at + ahead).copied()
    }

    fn rest_starts_with(&self, prefix: &[u8]) -> bool {
        self.text.as_bytes()[self.at..].starts_with(prefix)
    }

    /// Moves past one character (none at the end), stopping at one psql may
    /// read otherwise.
    fn advance(&mut self) -> Result<(), Hazard> {
        match self.peek(0) {
            None => Ok(()),
            Some(0) => Err(CONTROL),
            Some(b'\r') if self.peek(1) != Some(b'\n') => Err(CONTROL),
            Some(b) if !b.is_ascii() => Err(NON_ASCII),
            Some(b) => {
                self.line += usize::from(b == b'\n');
                self.at += 1;
                Ok(())
            }
        }
    }

    fn advance_by(&mut self, count: usize) -> Result<(), Hazard> {
        (0..count).try_for_each(|_| self.advance())
    }

    /// A file: SQL with meta-commands, as psql's main lexer reads it.
    fn sql(&mut self) -> Result<(), Hazard> {
        while let Some(b) = self.peek(0) {
            match b {
                b'-' if self.peek(1) == Some(b'-') => self.line_comment()?,
                b'/' if self.peek(1) == Some(b'*') => self.block_comment()?,
                b'\'' => self.quoted()?,
                b'"' => self.double_quoted()?,
                b'$' => self.dollar()?,
                b':' => self.colon()?,
                b'\\' => self.backslash()?,
                b'`' => return Err(BACKQUOTE),
                b if b.is_ascii_alphanumeric() || b == b'_' => self.word()?,
                _ => self.advance()?,
            }
        }
        Ok(())
    }

    /// A program's argument: no SQL text, every backslash starts meta-commands.
    fn argument(&mut self) -> Result<(), Hazard> {
        while let Some(b) = self.peek(0) {
            if b == b'\\' {
                self.backslash()?;
            } else {
                self.advance()?;
            }
        }
        Ok(())
    }

    /// `--` to the end of the line, which psql's lexer sees at a line feed or a
    /// carriage return.
    fn line_comment(&mut self) -> Result<(), Hazard> {
        while let Some(b) = self.peek(0)
            && b != b'\n'
            && b != b'\r'
        {
            if b == 0 {
                return Err(CONTROL);
            }
            // Past any character: it cannot take the line's end with it.
            self.at += 1;
        }
        Ok(())
    }

    /// `/* … */`, nested as PostgreSQL nests them.
    fn block_comment(&mut self) -> Result<(), Hazard> {
        let mut depth = 0usize;
        while self.peek(0).is_some() {
            if self.rest_starts_with(b"/*") {
                depth += 1;
                self.advance_by(2)?;
            } else if self.rest_starts_with(b"*/") {
                depth -= 1;
                self.advance_by(2)?;
                if depth == 0 {
                    break;
                }
            } else {
                self.advance()?;
            }
        }
        Ok(())
    }

    /// A string in single quotes, whatever its prefix (E, B, X, N, U&): `''` is
    /// a quote in it. A backslash escapes the quote after it only in an `E''`
    /// string or with standard_conforming_strings off, so an odd run of
    /// backslashes before a quote is refused: refusing it, the string ends in
    /// the same place however psql reads it, and the prefix need not be known.
    fn quoted(&mut self) -> Result<(), Hazard> {
        self.advance()?;
        let mut backslashes = 0;
        while let Some(b) = self.peek(0) {
            if b == b'\'' {
                if backslashes % 2 == 1 {
                    return Err(ESCAPED_QUOTE);
                }
                self.advance()?;
                if self.peek(0) != Some(b'\'') {
                    return Ok(());
                }
            }
            backslashes = if b == b'\\' { backslashes + 1 } else { 0 };
            self.advance()?;
        }
        Ok(())
    }

    /// A quoted identifier (`""` in it lexes as an end and a new start).
    fn double_quoted(&mut self) -> Result<(), Hazard> {
        self.advance()?;
        while let Some(b) = self.peek(0) {
            self.advance()?;
            if b == b'"' {
                break;
            }
        }
        Ok(())
    }

    /// A dollar-quoted body, opaque up to the same `$tag$`; or a `$1`
    /// parameter; or a lone `$`.
    fn dollar(&mut self) -> Result<(), Hazard> {
        let rest = &self.text.as_bytes()[self.at + 1..];
        let tag = rest
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
            .count();
        let parameter = rest.first().is_some_and(u8::is_ascii_digit);
        if parameter {
            return self.word();
        }
        if rest.get(tag) != Some(&b'$') {
            return self.advance();
        }
        let delimiter = &self.text.as_bytes()[self.at..self.at + tag + 2];
        self.advance_by(delimiter.len())?;
        while self.peek(0).is_some() && !self.rest_starts_with(delimiter) {
            self.advance()?;
        }
        self.advance_by(delimiter.len())
    }

    /// `::` is a cast; `:name` is an unquoted interpolation. (`:'name'` and
    /// `:"name"` lex as a colon and a quoted string or identifier, which is
    /// where they end as psql reads them too.)
    fn colon(&mut self) -> Result<(), Hazard> {
        match self.peek(1) {
            Some(b':') => self.advance_by(2),
            Some(b) if is_variable_char(b) => {
                let rest = &self.text[self.at + 1..];
                let length = rest.bytes().take_while(|b| is_variable_char(*b)).count();
                self.items
                    .push((self.line, PsqlItem::Unquoted(&rest[..length])));
                self.advance_by(1 + length)
            }
            _ => self.advance(),
        }
    }

    /// An identifier or keyword (which may hold `$`), or a number or a `$1`
    /// parameter: no quote starts inside one. psql versions split `1$a$`,
    /// `0x1$a$` or `$1_0$a$` differently, one of them starting a dollar quote,
    /// so a `$` inside a number or parameter is refused.
    fn word(&mut self) -> Result<(), Hazard> {
        let identifier = self
            .peek(0)
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
        self.advance()?;
        while let Some(b) = self.peek(0)
            && (is_variable_char(b) || b == b'$')
        {
            if b == b'$' && !identifier {
                return Err(DOLLAR_AFTER_NUMBER);
            }
            self.advance()?;
        }
        Ok(())
    }

    /// `\;` and `\:` put a plain `;` or `:` into the SQL; any other backslash
    /// starts meta-commands.
    fn backslash(&mut self) -> Result<(), Hazard> {
        if matches!(self.peek(1), Some(b';' | b':')) {
            return self.advance_by(2);
        }
        self.meta_commands()
    }

    /// The rest of a line from a meta-command's backslash: more meta-commands,
    /// each from the unquoted backslash that ends the one before (`\\` between
    /// two is a mere separator). SQL after them is refused (SQL_AFTER_META).
    fn meta_commands(&mut self) -> Result<(), Hazard> {
        loop {
            self.meta_command()?;
            if self.rest_starts_with(b"\\\\") {
                self.advance_by(2)?;
                while self.peek(0).is_some_and(|b| b != b'\n' && is_psql_blank(b)) {
                    self.advance()?;
                }
            }
            match (self.peek(0), self.peek(1)) {
                (None | Some(b'\n'), _) => return Ok(()),
                (Some(b'\\'), next) if !matches!(next, Some(b';' | b':')) => {}
                _ => return Err(SQL_AFTER_META),
            }
        }
    }

    /// One meta-command from its backslash. Its name runs to a blank or a
    /// backslash; its arguments to an unquoted backslash or the line's end,
    /// where `'…'` quotes (a backslash in them escaping the next character) and
    /// `"…"` quotes, so a quoted backslash does not end them.
    fn meta_command(&mut self) -> Result<(), Hazard> {
        let line = self.line;
        self.advance()?;
        let name_start = self.at;
        while let Some(b) = self.peek(0)
            && !is_psql_blank(b)
            && b != b'\\'
        {
            self.advance()?;
        }
        let name = &self.text[name_start..self.at];
        let args_start = self.at;
        let mut quote = None;
        while let Some(b) = self.peek(0)
            && b != b'\n'
            && (quote.is_some() || b != b'\\')
        {
            self.advance()?;
            match quote {
                None if b == b'\'' || b == b'"' => quote = Some(b),
                Some(q) if b == q => quote = None,
                Some(b'\'') if b == b'\\' && self.peek(0) != Some(b'\n') => self.advance()?,
                _ => {}
            }
        }
        let args = &self.text[args_start..self.at];
        self.items.push((line, PsqlItem::Meta { name, args }));
        Ok(())
    }
}
/// Each `secret_env_scram` variable becomes a secret of the run holding the
/// secret's SCRAM-SHA-256 verifier: set like `secret_env`, and blanked in the
/// output like the secret itself (a verifier is what an offline guess needs).
/// A secret that was not given leaves its variable unset.
fn hand_verifiers(command: &mut PlannedCommand, secrets: &mut SecretValues) {
    for (name, secret) in std::mem::take(&mut command.secret_env_scram) {
        let Some(password) = secrets.get(&secret) else {
            continue;
        };
        let verifier = scram::verifier(password);
        let held_as = format!("{secret} (SCRAM verifier)");
        secrets.insert(held_as.clone(), verifier);
        command.secret_env.push((name, held_as));
    }
}

/// The shortest value of a passed-on variable that is blanked in output: shorter
/// ones ("1", "dev") would blank ordinary words, and a secret that short is no
/// secret.
const MIN_BLANKED_VALUE: usize = 6;

/// The variables of the server's environment handed on to every command
/// (`--command-pass-env`) are there for credentials (a kubeconfig, a cloud key):
/// their values are blanked in the output like the request's own secrets.
fn blank_passed_environment(pass_env: &[String], secrets: &mut SecretValues) {
    for name in pass_env {
        if let Ok(value) = std::env::var(name)
            && value.chars().count() >= MIN_BLANKED_VALUE
        {
            secrets.insert(format!("environment variable {name}"), value);
        }
    }
}

/// A scratch directory removed when the run ends, however it ends.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(error) = remove_tree(&self.0) {
            tracing::warn!(%error, dir = %self.0.display(), "could not remove a scratch directory");
        }
    }
}

/// Removes a run's directory, also where its program took the write
/// permission off a directory inside it (`chmod -w`, a tool's cache): without
/// it nothing in there could be unlinked, and the sweep would warn about the
/// same directory every round for ever. Links are not followed: a symbolic
/// link is removed, never what it points to.
fn remove_tree(dir: &Path) -> std::io::Result<()> {
    if std::fs::remove_dir_all(dir).is_ok() {
        return Ok(());
    }
    make_writable(dir);
    std::fs::remove_dir_all(dir)
}

/// Gives the owner full rights on `dir` and every directory under it.
fn make_writable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    let Ok(meta) = std::fs::symlink_metadata(dir) else {
        return;
    };
    if !meta.is_dir() {
        return;
    }
    let mode = meta.permissions().mode() | 0o700;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode));
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            make_writable(&entry.path());
        }
    }
}

/// Scratch directories older than this are left over from a process that was
/// killed mid-step (a run's own is removed when it ends): longer than any step
/// may run.
pub const SCRATCH_LEFT_OVER_AFTER: Duration = Duration::from_secs(2 * 24 * 60 * 60);

/// Removes the scratch directories of runs that ended long ago without removing
/// their own (their process was killed); returns how many.
pub fn sweep_scratch(scratch_dir: &Path, older_than: Duration) -> std::io::Result<usize> {
    let entries = match std::fs::read_dir(scratch_dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(error) => return Err(error),
    };
    let mut removed = 0;
    // One directory that cannot be removed (a program left a file it made
    // read-only, say) is logged and passed over: the others still go.
    for entry in entries.flatten() {
        match sweep_one(&entry, older_than) {
            Ok(true) => removed += 1,
            Ok(false) => {}
            Err(error) => {
                tracing::warn!(path = %entry.path().display(), %error, "a left-over scratch directory could not be removed");
            }
        }
    }
    Ok(removed)
}

/// Removes one left-over run directory; false when the entry is not one.
fn sweep_one(entry: &std::fs::DirEntry, older_than: Duration) -> std::io::Result<bool> {
    let is_run = entry.file_name().to_string_lossy().starts_with("run-");
    let age = entry.metadata()?.modified()?.elapsed().unwrap_or_default();
    if is_run && entry.file_type()?.is_dir() && age > older_than {
        remove_tree(&entry.path())?;
        return Ok(true);
    }
    Ok(false)
}

fn prepare_scratch(
    settings: &CommandSettings,
    command: &PlannedCommand,
) -> Result<Scratch, DriverError> {
    let dir = settings
        .scratch_dir
        .join(format!("run-{}", uuid::Uuid::new_v4().simple()));
    let io = |what: &str, path: &Path, e: std::io::Error| {
        DriverError::Retryable(format!("could not {what} {}: {e}", path.display()))
    };
    let scratch_dir = &settings.scratch_dir;
    std::fs::create_dir_all(scratch_dir).map_err(|e| io("create", scratch_dir, e))?;
    // The run's files (rendered SQL, a state file the program writes) are this
    // user's alone, whatever the process's umask.
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(|e| io("create", &dir, e))?;
    let scratch = Scratch(dir);
    for file in &command.files {
        // Rendered paths are relative without `..`, so they stay inside the
        // scratch directory. The renderer checks; checked again here, as the
        // GitOps driver does, because what is stored may be older than the
        // check (and an absolute path would replace the directory).
        render::check_relative_path(&file.path).map_err(|why| {
            DriverError::Permanent(format!("the file {:?} cannot be written: {why}", file.path))
        })?;
        let path = scratch.0.join(&file.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io("create", parent, e))?;
        }
        std::fs::write(&path, &file.content).map_err(|e| io("write", &path, e))?;
    }
    Ok(scratch)
}

/// The admin's password file, in memory only (a `memfd`): nothing is on disk for a
/// crash to leave behind. The program alone inherits it (every other process
/// started meanwhile closes it at exec) and finds it as `PGPASSFILE=/dev/fd/<n>`;
/// libpq wants it readable by its owner only.
fn hand_password_file(process: &mut Command, line: &str) -> Result<OwnedFd, DriverError> {
    use rustix::fs::{MemfdFlags, Mode};
    use std::os::fd::AsRawFd as _;
    use std::os::unix::process::CommandExt as _;
    let failed = |e: rustix::io::Errno| {
        DriverError::Retryable(format!("could not make the password file: {e}"))
    };
    let memfd = rustix::fs::memfd_create("slipway-pgpass", MemfdFlags::CLOEXEC).map_err(failed)?;
    rustix::fs::fchmod(&memfd, Mode::RUSR | Mode::WUSR).map_err(failed)?;
    std::fs::File::from(
        memfd.try_clone().map_err(|e| {
            DriverError::Retryable(format!("could not make the password file: {e}"))
        })?,
    )
    .write_all(line.as_bytes())
    .map_err(|e| DriverError::Retryable(format!("could not write the password file: {e}")))?;
    let fd = memfd.as_raw_fd();
    process.env("PGPASSFILE", format!("/dev/fd/{fd}"));
    // SAFETY: in the child, between fork and exec, one fcntl on an inherited,
    // open descriptor: async-signal-safe, no allocation.
    unsafe {
        process.pre_exec(move || {
            let inherited = std::os::fd::BorrowedFd::borrow_raw(fd);
            rustix::io::fcntl_setfd(inherited, rustix::io::FdFlags::empty())?;
            Ok(())
        });
    }
    Ok(memfd)
}

/// What a program is handed: the command, the admin's password file line (beside
/// a PostgreSQL server) and the names of the operator's variables it gets.
struct Handed<'a> {
    command: &'a PlannedCommand,
    passfile: Option<&'a str>,
    pass_env: &'a [String],
}

/// How long the output streams are still read once the program has ended (and
/// its process group with it): a process it started that left the group
/// (`setsid`, `ssh -f`) may hold them open for ever.
pub const OUTPUT_GRACE: Duration = Duration::from_secs(2);

/// How a run that did not succeed ended: its program was killed (past its
/// time, the job stopped, or it could not be waited for), or it ended of
/// itself or never started.
enum Stopped {
    Killed(DriverError),
    Ended(DriverError),
}

impl From<DriverError> for Stopped {
    fn from(error: DriverError) -> Stopped {
        Stopped::Ended(error)
    }
}

fn run_blocking(
    settings: &CommandSettings,
    handed: &Handed<'_>,
    secrets: &SecretValues,
    stop: &CancellationToken,
    progress: &ProgressLines,
) -> Result<StepOutcome, Stopped> {
    let Handed {
        command,
        passfile,
        pass_env,
    } = *handed;
    let scratch = prepare_scratch(settings, command)?;
    // The PATH the program is looked up in: the step's, else the server's.
    let path = command
        .env
        .iter()
        .find(|(name, _)| name == "PATH")
        .map(|(_, value)| std::ffi::OsString::from(value))
        .or_else(|| std::env::var_os("PATH"));
    supervisor::locate(&command.program, path.as_deref()).map_err(|why| {
        DriverError::Permanent(format!(
            "could not start the program {:?}: {why}",
            command.program
        ))
    })?;
    // Its own process group, led by a supervisor: whatever it starts (a shell's
    // children, ansible's workers) ends with it and with the server, and no
    // orphan keeps its output pipes open.
    let mut process = supervisor::command(&command.program);
    process
        .args(&command.args)
        .current_dir(&scratch.0)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // The operator's own variables pass as set (beside a PostgreSQL server, but
    // for those libpq would prefer to its password file).
    for name in BASE_ENV
        .iter()
        .copied()
        .chain(pass_env.iter().map(String::as_str))
    {
        if let Some(value) = std::env::var_os(name) {
            process.env(name, value);
        }
    }
    // Held until the program has started: its copy of the file is its own.
    let _passfile = match passfile {
        Some(line) => Some(hand_password_file(&mut process, line)?),
        None => None,
    };
    for (name, value) in &command.env {
        process.env(name, value);
    }
    // A secret that was not given (an optional one) leaves its variable unset.
    for (name, param) in &command.secret_env {
        if let Some(value) = secrets.get(param) {
            process.env(name, value);
        }
    }
    let mark = escaped::RunMark::new();
    process.env(slipway_core::execution::STEP_RUN_ENV, mark.value());
    let program = &command.program;
    let retry_exit_codes = &command.retry_exit_codes;
    let started = Instant::now();
    let mut child = process.spawn().map_err(|e| {
        DriverError::Permanent(format!("could not start the program {program:?}: {e}"))
    })?;
    // Both pipes are drained while the program runs, so a chatty program never
    // blocks on a full pipe, and each line is reported live as it comes. They are
    // read without blocking, so that the readers can stop once the program is
    // over even if something it started still holds them open.
    let pipes = [
        child.stdout.take().map(OwnedFd::from),
        child.stderr.take().map(OwnedFd::from),
    ];
    if let Err(error) = pipes.iter().flatten().try_for_each(read_without_blocking) {
        end_group(&child);
        let _ = child.kill();
        let _ = child.wait();
        mark.end_escaped();
        return Err(Stopped::Killed(DriverError::Retryable(format!(
            "could not read the output of {program:?}: {error}"
        ))));
    }
    let ended = Arc::new(std::sync::OnceLock::new());
    let [stdout, stderr] = pipes;
    let stdout = stdout.map(|pipe| drain(pipe, "stdout", progress.clone(), ended.clone()));
    let stderr = stderr.map(|pipe| drain(pipe, "stderr", progress.clone(), ended.clone()));
    let timeout = command
        .timeout_seconds
        .map(Duration::from_secs)
        .unwrap_or(settings.default_timeout);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                end_group(&child);
                group_gone(&child);
                break Some(status);
            }
            Ok(None) if started.elapsed() >= timeout || stop.is_cancelled() => {
                end_group(&child);
                if let Err(error) = child.kill() {
                    tracing::warn!(%error, program, "could not kill a command past its timeout");
                }
                let _ = child.wait();
                group_gone(&child);
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                end_group(&child);
                let _ = child.kill();
                mark.end_escaped();
                return Err(Stopped::Killed(DriverError::Retryable(format!(
                    "could not wait for {program:?}: {e}"
                ))));
            }
        }
    };
    let elapsed = started.elapsed().as_secs_f64();
    let left_running = mark.end_escaped();
    // The readers stop at the end of their stream, or at this.
    let _ = ended.set(Instant::now() + OUTPUT_GRACE);
    let stdout = stdout
        .map(|h| h.join().unwrap_or_default())
        .unwrap_or_default();
    let stderr = stderr
        .map(|h| h.join().unwrap_or_default())
        .unwrap_or_default();
    let mut log = Vec::new();
    for (stream, drained) in [("stdout", &stdout), ("stderr", &stderr)] {
        let text = String::from_utf8_lossy(&drained.kept);
        log.extend(
            text.lines()
                .map(|line| format!("{stream}: {}", scrub_line(line, secrets))),
        );
    }
    if left_running > 0 {
        tracing::warn!(
            program,
            left_running,
            "ended processes a command left running"
        );
        log.push(format!(
            "note: ended {left_running} process(es) that {program} started and left running"
        ));
    }
    for (stream, drained) in [("stdout", &stdout), ("stderr", &stderr)] {
        if drained.cut {
            tracing::warn!(
                program,
                stream,
                "a process a command started outlived it, holding its output open"
            );
            log.push(format!(
                "note: {stream} was still open {} s after {program} ended (a process it started \
                 left its process group and holds it): what came after was dropped",
                OUTPUT_GRACE.as_secs()
            ));
        }
    }
    let Some(status) = status else {
        if stop.is_cancelled() {
            return Err(Stopped::Killed(DriverError::Retryable(format!(
                "{program:?} was stopped after {elapsed:.1} s{}",
                tail(&log)
            ))));
        }
        return Err(Stopped::Killed(DriverError::Retryable(format!(
            "{program:?} did not finish within {} s and was stopped{}",
            timeout.as_secs(),
            tail(&log)
        ))));
    };
    if !status.success() {
        use std::os::unix::process::ExitStatusExt as _;
        // A signal reads as a shell reports it (128 + its number), so that a
        // step may list it as transient as a wrapper script's status would be.
        let (code, as_status) = match (status.code(), status.signal()) {
            (Some(c), _) => (format!("status {c}"), Some(c)),
            (None, Some(signal)) => (
                format!("signal {signal} (status {})", 128 + signal),
                Some(128 + signal),
            ),
            (None, None) => ("a signal".to_string(), None),
        };
        // The step says which statuses mean "not now" (psql's 2: no connection).
        if as_status.is_some_and(|c| retry_exit_codes.contains(&c)) {
            return Err(DriverError::Retryable(format!(
                "{program:?} exited with {code} after {elapsed:.1} s, which the step lists as \
                 transient (retry_exit_codes); it runs again{}",
                tail(&log)
            ))
            .into());
        }
        return Err(DriverError::Permanent(format!(
            "{program:?} exited with {code} after {elapsed:.1} s{}",
            tail(&log)
        ))
        .into());
    }
    Ok(StepOutcome {
        summary: format!("{program} exited 0 after {elapsed:.1} s"),
        commit: None,
        log,
    })
}

/// Kills what is left of the program's process group (the program itself, when
/// it is past its time; what it started in the background, when it is done).
fn end_group(child: &std::process::Child) {
    let group = i32::try_from(child.id())
        .ok()
        .and_then(rustix::process::Pid::from_raw);
    if let Some(group) = group {
        // A group already gone answers ESRCH: nothing was left to end.
        let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
    }
}

/// How long the group's killed processes are waited for.
const GROUP_DEATH_WAIT: Duration = Duration::from_secs(2);

/// Waits (a while) until no process is left in the program's group once it
/// was killed and its supervisor collected: a process killed a moment ago
/// still shows its environment, and would be counted as one that escaped.
fn group_gone(child: &std::process::Child) {
    let Some(group) = i32::try_from(child.id())
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return;
    };
    let deadline = Instant::now() + GROUP_DEATH_WAIT;
    while rustix::process::test_kill_process_group(group).is_ok() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Makes reads of a pipe return at once when it holds nothing (the writer's end
/// is not touched).
fn read_without_blocking(pipe: &OwnedFd) -> std::io::Result<()> {
    let flags = rustix::fs::fcntl_getfl(pipe)?;
    rustix::fs::fcntl_setfl(pipe, flags | rustix::fs::OFlags::NONBLOCK)?;
    Ok(())
}

/// What was read of one output stream.
#[derive(Default)]
struct Drained {
    /// The last `MAX_CAPTURED` bytes, from a line's start.
    kept: Vec<u8>,
    /// The stream was still open when the reader stopped waiting for its end.
    cut: bool,
}

/// The longest pause of a reader between two looks at an idle pipe.
const MAX_READ_PAUSE: Duration = Duration::from_millis(100);

/// Reads a (non-blocking) pipe to its end on a thread of its own, keeping the
/// last `MAX_CAPTURED` bytes for the log and reporting each line as it
/// completes. Once `ended` holds a time (the program is over) and that time has
/// passed, it stops waiting for an end that may never come.
fn drain(
    pipe: OwnedFd,
    stream: &'static str,
    progress: ProgressLines,
    ended: Arc<std::sync::OnceLock<Instant>>,
) -> std::thread::JoinHandle<Drained> {
    std::thread::spawn(move || {
        let mut pipe = std::fs::File::from(pipe);
        let mut drained = Drained::default();
        let mut lines = LineSplitter::default();
        let mut chunk = [0_u8; 8192];
        let mut pause = Duration::from_millis(5);
        loop {
            // Checked at every read, not only when the pipe is empty: an escaped
            // process that writes without pause must not hold the step either.
            let grace_over = || ended.get().is_some_and(|at| Instant::now() >= *at);
            match pipe.read(&mut chunk) {
                Ok(0) => break,
                Ok(_) if grace_over() => {
                    drained.cut = true;
                    break;
                }
                Ok(n) => {
                    pause = Duration::from_millis(5);
                    lines.push(&chunk[..n], |line| {
                        progress.line(&format!("{stream}: {line}"))
                    });
                    drained.kept.extend_from_slice(&chunk[..n]);
                    if drained.kept.len() > MAX_CAPTURED {
                        keep_last_lines(&mut drained.kept, MAX_CAPTURED);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if grace_over() {
                        drained.cut = true;
                        break;
                    }
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(MAX_READ_PAUSE);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        lines.finish(|line| progress.line(&format!("{stream}: {line}")));
        drained
    })
}

/// Keeps the last `max` bytes of output, from the start of a line: secrets are
/// blanked line by line, and a line cut at its front could begin with the end of
/// a secret that no longer matches. With no line end in the tail, nothing is kept.
fn keep_last_lines(kept: &mut Vec<u8>, max: usize) {
    let excess = kept.len().saturating_sub(max);
    let start = kept[excess..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(kept.len(), |at| excess + at + 1);
    kept.drain(..start);
}

/// The longest unfinished line held back waiting for its end. A program that
/// writes more without a newline has that much reported live (cut to the live
/// line length anyway) and the rest of the line dropped: reported in pieces, a
/// secret split between two pieces would match in neither.
const MAX_PENDING_LINE: usize = 8 * 1024;

/// Splits a byte stream into lines as chunks arrive.
#[derive(Default)]
struct LineSplitter {
    pending: Vec<u8>,
    /// The rest of an overlong line, up to its end, is being skipped.
    skipping: bool,
}

impl LineSplitter {
    fn push(&mut self, bytes: &[u8], mut line: impl FnMut(&str)) {
        for &byte in bytes {
            if byte == b'\n' {
                if !std::mem::take(&mut self.skipping) {
                    self.emit(&mut line);
                }
            } else if !self.skipping {
                self.pending.push(byte);
                if self.pending.len() >= MAX_PENDING_LINE {
                    self.emit(&mut line);
                    self.skipping = true;
                }
            }
        }
    }

    fn finish(&mut self, mut line: impl FnMut(&str)) {
        if !self.pending.is_empty() {
            self.emit(&mut line);
        }
    }

    fn emit(&mut self, line: &mut impl FnMut(&str)) {
        let text = String::from_utf8_lossy(&self.pending);
        line(text.trim_end_matches('\r'));
        self.pending.clear();
    }
}

/// The last lines of output, for an error message.
/// The last lines of a program's output for its error, each cut to a few hundred
/// characters: the error is copied into the request, its job and the audit log,
/// and a program printing one long line must not put 64 KiB in each.
fn tail(log: &[String]) -> String {
    const LINES: usize = 5;
    const LINE_CHARS: usize = 300;
    if log.is_empty() {
        return String::new();
    }
    let start = log.len().saturating_sub(LINES);
    let lines: Vec<String> = log[start..]
        .iter()
        .map(|line| match line.char_indices().nth(LINE_CHARS) {
            Some((end, _)) => format!("{}…", &line[..end]),
            None => line.clone(),
        })
        .collect();
    format!("; last output: {}", lines.join(" | "))
}

#[cfg(test)]
mod tests {
    use slipway_core::render::RenderedFile;

    use super::*;

    #[test]
    fn left_over_scratch_directories_are_swept_and_current_ones_kept()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let (old, new, other) = (
            dir.path().join("run-old"),
            dir.path().join("run-new"),
            dir.path().join("keep"),
        );
        for path in [&old, &new, &other] {
            std::fs::create_dir_all(path.join("sub"))?;
        }
        let long_ago = std::time::SystemTime::now() - Duration::from_secs(3 * 24 * 60 * 60);
        for path in [&old, &other] {
            std::fs::File::open(path)?.set_modified(long_ago)?;
        }
        assert_eq!(sweep_scratch(dir.path(), SCRATCH_LEFT_OVER_AFTER)?, 1);
        assert!(!old.exists() && new.exists() && other.exists());
        assert_eq!(
            sweep_scratch(&dir.path().join("none"), SCRATCH_LEFT_OVER_AFTER)?,
            0
        );
        Ok(())
    }

    #[test]
    fn an_error_quotes_the_last_lines_cut_short() {
        let log: Vec<String> = (0..8)
            .map(|n| format!("{n}{}", "x".repeat(70_000)))
            .collect();
        let quoted = tail(&log);
        assert!(quoted.len() < 5 * 310 + 40, "{}", quoted.len());
        assert!(
            quoted.contains("| 7x") && !quoted.contains("2x"),
            "the last five"
        );
        assert_eq!(tail(&["done".to_string()]), "; last output: done");
    }

    fn driver(dir: &Path) -> CommandDriver {
        CommandDriver::new(CommandSettings {
            allowed: ["cat", "printf", "env", "sleep", "false", "sh"]
                .map(String::from)
                .to_vec(),
            pass_env: Vec::new(),
            default_timeout: Duration::from_secs(30),
            scratch_dir: dir.to_path_buf(),
            postgres_servers: BTreeMap::new(),
        })
    }

    fn step(program: &str, args: &[&str]) -> PlannedStep {
        PlannedStep::Command(PlannedCommand {
            program: program.into(),
            args: args.iter().map(|a| a.to_string()).collect(),
            files: vec![RenderedFile {
                path: "dev/payments/db/create.yaml".into(),
                content: "database: orders\n".into(),
            }],
            env: vec![("STAGE".into(), "dev".into())],
            secret_env: vec![("DB_PASSWORD".into(), "owner_password".into())],
            secret_env_scram: Vec::new(),
            timeout_seconds: None,
            postgres_server: None,
            retry_exit_codes: vec![75],
        })
    }

    fn secrets() -> SecretValues {
        let mut secrets = SecretValues::new();
        secrets.insert("owner_password", "s3cret-canary-91ab");
        secrets
    }

    /// A stored change set older than the renderer's checks (or altered in the
    /// database) cannot write outside the run's scratch directory.
    #[tokio::test]
    async fn a_file_path_leaving_the_scratch_directory_is_refused()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let outside = dir.path().join("outside.sql");
        for path in [
            outside.display().to_string(),
            "../outside.sql".into(),
            "a/../../x".into(),
        ] {
            let PlannedStep::Command(mut command) = step("cat", &["dev/payments/db/create.yaml"])
            else {
                return Err("a command step".into());
            };
            command.files[0].path = path.clone();
            let refused = run(&dir.path().join("scratch"), &PlannedStep::Command(command)).await;
            let Err(DriverError::Permanent(message)) = &refused else {
                return Err(format!("{path}: {refused:?}").into());
            };
            assert!(message.contains("cannot be written"), "{message}");
        }
        assert!(!outside.exists());
        Ok(())
    }

    async fn run(dir: &Path, step: &PlannedStep) -> Result<StepOutcome, DriverError> {
        let secrets = secrets();
        let stop = CancellationToken::new();
        driver(dir)
            .run(
                step,
                &StepContext {
                    secrets: &secrets,
                    stop: &stop,
                    progress: &ProgressLines::discard(),
                    journal: &super::super::NoJournal,
                    sessions: None,
                },
            )
            .await
    }

    #[tokio::test]
    async fn the_program_reads_the_rendered_files_in_its_scratch_directory()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let outcome = run(dir.path(), &step("cat", &["dev/payments/db/create.yaml"])).await?;
        assert_eq!(outcome.log, ["stdout: database: orders"]);
        assert!(
            outcome.summary.starts_with("cat exited 0 after "),
            "{}",
            outcome.summary
        );
        assert_eq!(outcome.commit, None);
        assert_eq!(
            std::fs::read_dir(dir.path())?.count(),
            0,
            "the scratch directory is removed"
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_runs_scratch_directory_is_its_users_alone() -> Result<(), Box<dyn std::error::Error>>
    {
        let dir = tempfile::tempdir()?;
        let outcome = run(dir.path(), &step("sh", &["-c", "stat -c %a ."])).await?;
        assert_eq!(outcome.log, ["stdout: 700"]);
        Ok(())
    }

    #[tokio::test]
    async fn arguments_are_a_list_never_a_shell_line() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let outcome = run(
            dir.path(),
            &step("printf", &["%s|\\n", "a b; echo injected", "$(id)"]),
        )
        .await?;
        assert_eq!(
            outcome.log,
            ["stdout: a b; echo injected|", "stdout: $(id)|"]
        );
        Ok(())
    }

    #[tokio::test]
    async fn secrets_arrive_in_the_environment_and_never_in_the_log()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let outcome = run(dir.path(), &step("env", &[])).await?;
        assert!(
            outcome.log.contains(&"stdout: DB_PASSWORD=***".to_string()),
            "{:?}",
            outcome.log
        );
        assert!(outcome.log.contains(&"stdout: STAGE=dev".to_string()));
        assert!(!outcome.log.iter().any(|l| l.contains("s3cret-canary-91ab")));
        // Nothing of the server's environment but the basics (and the run's mark).
        let step_run = slipway_core::execution::STEP_RUN_ENV;
        for line in &outcome.log {
            let name = line
                .trim_start_matches("stdout: ")
                .split('=')
                .next()
                .unwrap_or_default();
            assert!(
                ["DB_PASSWORD", "STAGE", step_run].contains(&name) || BASE_ENV.contains(&name),
                "{line}"
            );
        }
        Ok(())
    }

    #[tokio::test]
    async fn output_is_reported_line_by_line_with_secrets_blanked()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let secrets = secrets();
        let stop = CancellationToken::new();
        let (progress, mut lines) = ProgressLines::channel(secrets.clone());
        let ctx = StepContext {
            secrets: &secrets,
            stop: &stop,
            progress: &progress,
            journal: &super::super::NoJournal,
            sessions: None,
        };
        let outcome = driver(dir.path()).run(&step("env", &[]), &ctx).await?;
        let mut live = Vec::new();
        while let Ok(line) = lines.try_recv() {
            live.push(line);
        }
        let mut final_log = outcome.log.clone();
        final_log.sort();
        live.sort();
        assert_eq!(live, final_log, "the live lines are the log's lines");
        assert!(live.contains(&"stdout: DB_PASSWORD=***".to_string()));
        assert!(!live.iter().any(|l| l.contains("s3cret-canary-91ab")));
        Ok(())
    }

    /// A `secret_env_scram` variable holds the verifier, never the password,
    /// and is blanked in the output like the password.
    #[tokio::test]
    async fn a_verifier_is_handed_in_place_of_the_password()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let mut handed = step(
            "sh",
            &[
                "-c",
                "case \"$V\" in SCRAM-SHA-256\\$4096:*) echo scram;; esac; echo \"$V\"",
            ],
        );
        if let PlannedStep::Command(command) = &mut handed {
            command.secret_env_scram = vec![("V".into(), "owner_password".into())];
        }
        let outcome = run(dir.path(), &handed).await?;
        assert_eq!(
            outcome.log,
            ["stdout: scram", "stdout: ***"],
            "{:?}",
            outcome.log
        );
        Ok(())
    }

    /// A step beside a server's admin connection, and the passed-on environment:
    /// every credential the program was handed is blanked live as in the log, and
    /// the admin's password reaches libpq only through a password file naming the
    /// server (removed with the run), never as `PGPASSWORD`.
    #[tokio::test]
    async fn the_admin_password_and_passed_environment_are_blanked_live_and_stay_with_their_server()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let server =
            PostgresServer::parse("postgres://admin:admin-canary:pw@127.0.0.1:5999/postgres")?;
        let mut driver = driver(dir.path());
        let settings = Arc::make_mut(&mut driver.settings);
        settings.postgres_servers.insert("shared".into(), server);
        settings.pass_env = vec!["PATH".into()];
        let PlannedStep::Command(mut command) = step(
            "sh",
            &[
                "-c",
                "env; cat \"$PGPASSFILE\"; echo \"passfile: $PGPASSFILE\"",
            ],
        ) else {
            return Err("not a command step".into());
        };
        command.postgres_server = Some("shared".into());
        command
            .env
            .push(("PGSSLNEGOTIATION".into(), "direct".into()));
        let secrets = secrets();
        let stop = CancellationToken::new();
        let (progress, mut lines) = ProgressLines::channel(secrets.clone());
        let outcome = driver
            .run_command(
                &command,
                &StepContext::outside_a_job(&secrets, &stop, &progress),
            )
            .await?;
        let live: Vec<String> = std::iter::from_fn(|| lines.try_recv().ok()).collect();
        let path = std::env::var("PATH")?;
        for line in live.iter().chain(&outcome.log) {
            assert!(!line.contains("admin-canary"), "{line}");
            assert!(!line.contains(&path), "{line}");
            assert!(!line.starts_with("stdout: PGPASSWORD="), "{line}");
            assert!(!line.starts_with("stdout: PGSSLNEGOTIATION="), "{line}");
        }
        assert!(live.contains(&"stdout: PATH=***".to_string()), "{live:?}");
        assert!(
            live.contains(&"stdout: 127.0.0.1:5999:*:admin:***".to_string()),
            "one line naming the server, its password escaped and blanked: {live:?}"
        );
        assert!(live.contains(&"stdout: PGHOST=127.0.0.1".to_string()));
        let passfile = live
            .iter()
            .find_map(|l| l.strip_prefix("stdout: passfile: "))
            .ok_or("no password file was named")?;
        assert!(
            passfile.starts_with("/dev/fd/"),
            "in memory, nothing on disk: {passfile}"
        );
        assert_eq!(std::fs::read_dir(dir.path())?.count(), 0);
        Ok(())
    }

    #[test]
    fn an_overlong_line_is_reported_once_and_its_rest_dropped() {
        let mut splitter = LineSplitter::default();
        let mut seen = Vec::new();
        let secret_across_the_cut = "SECRET-TAIL";
        let long = format!(
            "{}{secret_across_the_cut}\nnext\n",
            "x".repeat(MAX_PENDING_LINE - 6)
        );
        // In two chunks, as a pipe delivers them.
        let (first, second) = long.as_bytes().split_at(100);
        splitter.push(first, |l| seen.push(l.to_string()));
        splitter.push(second, |l| seen.push(l.to_string()));
        splitter.finish(|l| seen.push(l.to_string()));
        assert_eq!(
            seen.len(),
            2,
            "one piece of the long line, then the next line"
        );
        assert_eq!(seen[0].len(), MAX_PENDING_LINE);
        assert_eq!(seen[1], "next");
        assert!(!seen.iter().any(|l| l.contains("TAIL")), "{:?}", seen[1]);
    }

    #[test]
    fn the_kept_tail_starts_at_a_line() {
        let mut kept = b"hunter2-canary\nsecond line\nthird\n".to_vec();
        // Cutting 8 bytes from the front would start mid-secret ("canary").
        let max = kept.len() - 8;
        keep_last_lines(&mut kept, max);
        assert_eq!(kept, b"second line\nthird\n");
        let mut one_line = vec![b'x'; 100];
        keep_last_lines(&mut one_line, 10);
        assert!(
            one_line.is_empty(),
            "no line start in the tail: nothing kept"
        );
    }

    #[tokio::test]
    async fn a_program_not_allowed_never_runs() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let refused = run(dir.path(), &step("rm", &["-rf", "/"])).await.err();
        assert_eq!(
            refused,
            Some(DriverError::Permanent(
                "the program \"rm\" is not allowed by the server's --command-allow \
                 (SLIPWAY_COMMAND_ALLOW) setting; allowed: cat, printf, env, sleep, false, sh"
                    .into()
            ))
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_failing_program_is_permanent_and_a_slow_one_is_stopped()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let failed = run(dir.path(), &step("false", &[])).await.err();
        let Some(DriverError::Permanent(message)) = failed else {
            return Err(format!("expected a permanent error, got {failed:?}").into());
        };
        assert!(
            message.starts_with("\"false\" exited with status 1 after "),
            "{message}"
        );
        // A status the step lists as passing (75 here) is tried again.
        let passing = run(dir.path(), &step("sh", &["-c", "exit 75"])).await.err();
        let Some(DriverError::Retryable(message)) = passing else {
            return Err(format!("expected a retryable error, got {passing:?}").into());
        };
        assert!(message.contains("status 75") && message.contains("retry_exit_codes"));

        let mut slow = step("sleep", &["20"]);
        if let PlannedStep::Command(command) = &mut slow {
            command.timeout_seconds = Some(1);
        }
        let started = Instant::now();
        let stopped = run(dir.path(), &slow).await.err();
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "killed at the timeout"
        );
        assert_eq!(
            stopped,
            Some(DriverError::Retryable(
                "\"sleep\" did not finish within 1 s and was stopped".into()
            ))
        );
        assert_eq!(std::fs::read_dir(dir.path())?.count(), 0);
        Ok(())
    }

    #[tokio::test]
    async fn what_a_program_starts_ends_with_it() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        // Done at once, but its background child holds the output pipe for 30 s.
        let started = Instant::now();
        let outcome = run(dir.path(), &step("sh", &["-c", "sleep 30 & echo started"])).await?;
        assert!(
            outcome.log.contains(&"stdout: started".to_string()),
            "{:?}",
            outcome.log
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the orphan was ended"
        );
        // Past its time, with a grandchild: both end.
        let mut slow = step("sh", &["-c", "sleep 30 & sleep 30"]);
        if let PlannedStep::Command(command) = &mut slow {
            command.timeout_seconds = Some(1);
        }
        let started = Instant::now();
        assert!(run(dir.path(), &slow).await.is_err());
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "stopped with its group"
        );
        Ok(())
    }

    /// A process that leaves the program's group (`setsid`) and keeps its
    /// output open does not hold the step until its timeout, and does not run
    /// on after it.
    #[tokio::test]
    async fn an_escaped_process_holding_the_output_does_not_hold_the_step()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        // The pause lets `setsid` leave the group before the program ends (its
        // group is killed then), also on a loaded machine.
        let mut escaped = step("sh", &["-c", "setsid sleep 29.71 & sleep 1; echo ok"]);
        if let PlannedStep::Command(command) = &mut escaped {
            command.timeout_seconds = Some(15);
        }
        let started = Instant::now();
        let outcome = run(dir.path(), &escaped).await?;
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "returned after {:?}",
            started.elapsed()
        );
        assert!(
            outcome.log.contains(&"stdout: ok".to_string()),
            "{:?}",
            outcome.log
        );
        assert!(
            outcome
                .log
                .iter()
                .any(|l| l.starts_with("note: ended 1 process(es) that sh started")),
            "{:?}",
            outcome.log
        );
        assert!(
            !running("sleep\x0029.71\x00"),
            "the escaped sleeper runs on"
        );
        Ok(())
    }

    /// Whether a process with this command line (arguments NUL-terminated) runs.
    fn running(cmdline: &str) -> bool {
        std::fs::read_dir("/proc").is_ok_and(|proc| {
            proc.flatten().any(|dir| {
                std::fs::read(dir.path().join("cmdline")).is_ok_and(|c| c == cmdline.as_bytes())
            })
        })
    }

    /// ...nor does one that keeps writing to it without a pause.
    #[tokio::test]
    async fn an_escaped_process_writing_without_pause_does_not_hold_the_step()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        // `timeout` ends the flood by itself after 12 s, whatever the test does;
        // `env -i` drops the run's mark, so the flood is not found and ended
        // (only the readers' grace ends the step).
        let script = "setsid env -i timeout 12 yes flood & sleep 1; echo ok";
        let mut escaped = step("sh", &["-c", script]);
        if let PlannedStep::Command(command) = &mut escaped {
            command.timeout_seconds = Some(15);
        }
        let started = Instant::now();
        let outcome = run(dir.path(), &escaped).await;
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "returned after {:?}",
            started.elapsed()
        );
        assert!(outcome.is_ok(), "{outcome:?}");
        Ok(())
    }

    fn beside_shared_server(program: &str, args: &[&str]) -> Result<PlannedCommand, String> {
        let PlannedStep::Command(mut command) = step(program, args) else {
            return Err("not a command step".into());
        };
        command.postgres_server = Some("shared".into());
        Ok(command)
    }

    #[test]
    fn psql_reads_and_writes_only_files_of_its_scratch_directory() -> Result<(), String> {
        for (args, refused_at) in [
            (&["-f", "/proc/self/environ"][..], 1),
            (&["-X", "-f/etc/passwd"][..], 1),
            (&["-qXf", "../../data/slipway.db"][..], 1),
            (&["--file=/proc/self/environ"][..], 0),
            (&["--output", "|sh -c id"][..], 1),
            (&["-o|cat"][..], 0),
            (&["-L", "/tmp/psql.log"][..], 1),
            (&["-f", "create.sql", "--log-file=x/../../y"][..], 2),
            // getopt_long takes the start of a long option's name.
            (&["--outp", "|sh -c id"][..], 1),
            (&["--log", "/tmp/l"][..], 1),
            (&["--fil", "/proc/self/environ"][..], 1),
            (&["--fi=/proc/self/environ"][..], 0),
        ] {
            let command = beside_shared_server("psql", args)?;
            let Err(DriverError::Permanent(message)) = refuse_other_connections(&command, "shared")
            else {
                return Err(format!("{args:?} was not refused"));
            };
            assert!(
                message.starts_with(&format!(
                    "args[{refused_at}] of the step has psql read or write"
                )),
                "{args:?}: {message}"
            );
        }
        for fine in [
            &["-X", "-f", "w/create.sql", "-v", "ON_ERROR_STOP=1"][..],
            &["-c", "select 1", "-o", "out/result.txt"][..],
            &["-d", "/not/a/file", "-f", "a.sql"][..],
            &["-f", "a.sql", "--", "/odd-database-name"][..],
            &[
                "--command",
                "select 1",
                "--dbname",
                "/odd",
                "--file",
                "a.sql",
            ][..],
        ] {
            let command = beside_shared_server("psql", fine)?;
            assert_eq!(
                refuse_other_connections(&command, "shared"),
                Ok(()),
                "{fine:?}"
            );
        }
        Ok(())
    }

    #[test]
    fn connection_strings_beside_a_postgres_server_are_refused_by_position() -> Result<(), String> {
        for (args, refused_at) in [
            (
                &["-d", "host=db.internal hostaddr=203.0.113.5 dbname=x"][..],
                1,
            ),
            (&["-f", "create.sql", "postgres://db.internal/x"][..], 2),
            (&["POSTGRESQL://db.internal/x"][..], 0),
            (&["--dbname=x"][..], 0),
            (&["-v", "ON_ERROR_STOP=1", "hostaddr"][..], 2),
            (&["-c", "select 1", "-v", "x=1", "dbname=x"][..], 4),
            (&["--", "-v", "host=evil"][..], 2),
            (&["-f", "-v", "service=evil"][..], 2),
            (&["-v", "dbname=x host=evil"][..], 1),
        ] {
            let command = beside_shared_server("psql", args)?;
            let Err(DriverError::Permanent(message)) = refuse_other_connections(&command, "shared")
            else {
                return Err(format!("{args:?} was not refused"));
            };
            assert!(
                message.starts_with(&format!("args[{refused_at}] of the step reads as a libpq")),
                "{args:?}: {message}"
            );
            assert!(!message.contains("203.0.113.5") && !message.contains("db.internal"));
        }
        // psql's own variables, and a plain database name, are not connections.
        for args in [
            &["--no-psqlrc", "-v", "ON_ERROR_STOP=1", "-f", "create.sql"][..],
            &[
                "--set=ON_ERROR_STOP=1",
                "--variable=A=b",
                "-vQUIET=on",
                "-d",
                "orders",
            ][..],
        ] {
            let command = beside_shared_server("psql", args)?;
            assert_eq!(
                refuse_other_connections(&command, "shared"),
                Ok(()),
                "{args:?}"
            );
        }
        // Another program's `-v` is no variable: what follows may be its database.
        let command = beside_shared_server("pg_dump", &["-v", "x=y"])?;
        assert!(refuse_other_connections(&command, "shared").is_err());
        Ok(())
    }

    /// What the guard says of a file `create.sql` beside the server `shared`
    /// whose second line on is `content`.
    fn file_beside_shared_server(content: &str) -> Result<Result<(), DriverError>, String> {
        let mut command = beside_shared_server("psql", &["-f", "create.sql"])?;
        command.files = vec![RenderedFile {
            path: "create.sql".into(),
            content: format!("create table t (a int);\n{content}"),
        }];
        Ok(refuse_other_connections(&command, "shared"))
    }

    #[test]
    fn psql_files_that_connect_elsewhere_or_run_programs_are_refused() -> Result<(), String> {
        for (content, meta) in [
            ("\\c other\n", "c"),
            (
                "  \\connect -reuse-previous=off host=x hostaddr=y\n",
                "connect",
            ),
            ("\\CONNECT db\n", "CONNECT"),
            ("select 1; \\c db\n", "c"),
            ("\\! psql 'hostaddr=203.0.113.5'\n", "!"),
            ("\\!psql\n", "!psql"),
            ("\\setenv PGHOSTADDR 203.0.113.5\n", "setenv"),
            ("select 1 \\g |sh\n", "g"),
            ("\\o | psql\n", "o"),
            ("\\copy t from program 'psql'\n", "copy"),
            ("select 1 \\g (format=csv) |sh\n", "g"),
            ("\\o '|cat'\n", "o"),
            ("\\i /tmp/other.sql\n", "i"),
            // Files on Slipway's host, and results copied into variables.
            ("\\o out.txt\n", "o"),
            ("\\copy t from 'data.csv'\n", "copy"),
            ("\\lo_import '/etc/passwd'\n", "lo_import"),
            ("\\lo_export 16401 '/tmp/x'\n", "lo_export"),
            ("\\w /tmp/query.sql\n", "w"),
            ("\\s /tmp/history\n", "s"),
            ("\\cd /tmp\n", "cd"),
            ("select '\\! id' as x \\gset\n", "gset"),
            ("\\set x 1 \\gset\n", "gset"),
            ("\\echo ok \\\\ \\! id\n", "!"),
            ("\\set x `id`\n", "set with a `backquoted` command"),
            ("\\if `id`\n", "if with a `backquoted` command"),
            (
                "\\set x '\\134! env'\n",
                "set with a backslash, '|' or ':' in its arguments",
            ),
            (
                "\\set t '|sh'\n",
                "set with a backslash, '|' or ':' in its arguments",
            ),
            (
                "\\set t :other\n",
                "set with a backslash, '|' or ':' in its arguments",
            ),
            (
                "\\getenv v:x HOME\n",
                "getenv with a backslash, '|' or ':' in its arguments",
            ),
            (
                "\\pset pager on\n",
                "pset with the option pager, or one not named plainly",
            ),
            (
                "\\pset :opt on\n",
                "pset with the option pager, or one not named plainly",
            ),
        ] {
            let Err(DriverError::Permanent(message)) = file_beside_shared_server(content)? else {
                return Err(format!("{content:?} was not refused"));
            };
            let expected = format!(
                "the rendered file create.sql holds the psql meta-command \\{meta} on line 2; \
                 beside the PostgreSQL server \"shared\" "
            );
            assert!(message.starts_with(&expected), "{content:?}: {message}");
        }
        assert_eq!(
            file_beside_shared_server("\\c other\n")?,
            Err(DriverError::Permanent(
                "the rendered file create.sql holds the psql meta-command \\c on line 2; beside \
                 the PostgreSQL server \"shared\" a step may not connect elsewhere, start other \
                 programs or use files on Slipway's host; it may use \\set, \\unset, \\getenv, \
                 \\gexec, \\if, \\elif, \\else, \\endif, \\echo, \\qecho, \\warn, \\pset, \
                 \\timing, \\conninfo"
                    .into()
            ))
        );
        let command = beside_shared_server("psql", &["-c", "\\! id"])?;
        assert!(
            refuse_other_connections(&command, "shared").is_err(),
            "a -c command is read like a file"
        );
        Ok(())
    }

    /// What psql would read otherwise than the guard, or as more psql text.
    #[test]
    fn psql_text_read_otherwise_or_interpolated_unquoted_is_refused() -> Result<(), String> {
        for (content, line, what) in [
            // A pipe through a variable, a backslash command in one.
            ("\\o :t\nselect 1;\n", 2, "the psql meta-command \\o"),
            ("select 1;\n:x\n", 3, "the variable :x unquoted"),
            ("\\getenv v SOME_ENV\n:v\n", 3, "the variable :v unquoted"),
            ("select :x;\n", 2, "the variable :x unquoted"),
            ("select a[1:2] from t;\n", 2, "the variable :2 unquoted"),
            ("select 1:::x;\n", 2, "the variable :x unquoted"),
            (
                "select\n'a'\n, 1 \\; select :x;\n",
                4,
                "the variable :x unquoted",
            ),
            (
                "select 1 \\\\ \\c db\n",
                2,
                "a backslash with no meta-command name after it",
            ),
            (
                "\\ \\ connect db\n",
                2,
                "a backslash with no meta-command name after it",
            ),
            (
                "select 1;\n\\\n",
                3,
                "a backslash with no meta-command name after it",
            ),
            // psql drops the rest of the line after a failing meta-command.
            (
                "\\set 1-bad x \\\\ select '\n\\! id\n';\n",
                2,
                "SQL after a meta-command on its line",
            ),
            (
                "\\set x 1 \\; select 1;\n",
                2,
                "SQL after a meta-command on its line",
            ),
            // In E'' strings or with standard_conforming_strings off, \' escapes.
            (
                "select 'a\\' \\! id --';\n",
                2,
                "a backslash right before a quote in a string",
            ),
            (
                "select E'it\\'s';\n",
                2,
                "a backslash right before a quote in a string",
            ),
            (
                "select 'a\\\\\\'';\n",
                2,
                "a backslash right before a quote in a string",
            ),
            // In SJIS, the byte 0x81 of 'ā' takes the backslash after it.
            (
                "select E'ā\\' \\! id --';\n",
                2,
                "a non-ASCII character outside a -- comment",
            ),
            (
                "select 'café';\n",
                2,
                "a non-ASCII character outside a -- comment",
            ),
            (
                "\\echo café\n",
                2,
                "a non-ASCII character outside a -- comment",
            ),
            ("select 1$a$ ' $a$;\n", 2, "a $ right after a number"),
            ("select $1$a$;\n", 2, "a $ right after a number"),
            (
                "select `id`;\n",
                2,
                "a backquote outside quotes and comments",
            ),
            (
                "select 1; -- x\r\\! id\n",
                2,
                "a NUL or a carriage return that does not end a line",
            ),
            (
                "select 1;\0\n",
                2,
                "a NUL or a carriage return that does not end a line",
            ),
            // Comments nest; a dollar body ends at its own tag only.
            ("/* /* */ */ \\! id\n", 2, "the psql meta-command \\!"),
            ("$a$ x $a$ \\! id\n", 2, "the psql meta-command \\!"),
            ("do $a$ $b$ $a$;\n\\! id\n", 3, "the psql meta-command \\!"),
        ] {
            let Err(DriverError::Permanent(message)) = file_beside_shared_server(content)? else {
                return Err(format!("{content:?} was not refused"));
            };
            let expected = format!("the rendered file create.sql holds {what} on line {line}; ");
            assert!(message.starts_with(&expected), "{content:?}: {message}");
        }
        Ok(())
    }

    #[test]
    fn psql_text_with_backslashes_in_sql_text_and_allowed_meta_commands_is_fine()
    -> Result<(), String> {
        for fine in [
            "\\set ON_ERROR_STOP on\n\\conninfo\n\\timing on\n\\pset format csv\n",
            "select 'C:\\config';\n\\gexec\n\\echo connect\n",
            "select E'a\\nb', E'C:\\\\', 'C:\\\\', 'it''s', U&'caf\\00E9', x'1F', b'01';\n",
            "select \"a\\b\" from t; -- \\! id, :x, 'café' and `id`\r\n",
            "/* \\! id /* nested \\c x */ :x ' still */ select 1;\n",
            "do $body$ begin raise notice '\\! % :x', 1; end $body$;\ndo $$ select '\\c' $$;\n",
            "select :'owner', :\"owner\", x::text, \\:name, 1 \\; select a$b$c, $1, $$\\!$$;\n",
            "select 1 \\gexec\n\\if :{?owner}\n\\echo :owner\n\\elif :flag\n\\else\n\\endif\n",
            "\\set a 1 \\\\ \\set b 'two words' \\\\\n\\unset a\n\\warn done\n\\qecho done\n",
            "\\getenv v SOME_ENV\nselect :'v';\n\\echo 'a\\\\' \\\\ \\echo \"b\\\"\n",
            "select 1.5, 1e3, 1..2, x.$y from t;\n",
            "select 'a\n\\! in a string\n';\n",
        ] {
            assert_eq!(file_beside_shared_server(fine)?, Ok(()), "{fine:?}");
        }
        Ok(())
    }

    /// The shipped `shared-database` type's psql files, rendered, pass the
    /// guard with the arguments the type gives psql.
    #[test]
    fn the_shipped_shared_database_files_pass_the_guard() -> Result<(), Box<dyn std::error::Error>>
    {
        let dir =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../catalog/templates/shared-database");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if !path.to_string_lossy().ends_with(".sql.j2") {
                continue;
            }
            let content = std::fs::read_to_string(&path)?
                .replace("{{ resource_name }}", "orders_db")
                .replace("{{ connection_limit }}", "20");
            let mut command = beside_shared_server(
                "psql",
                &[
                    "--no-psqlrc",
                    "--quiet",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-f",
                    "create.sql",
                ],
            )?;
            command.files = vec![RenderedFile {
                path: "create.sql".into(),
                content,
            }];
            assert_eq!(
                refuse_other_connections(&command, "shared"),
                Ok(()),
                "{}",
                path.display()
            );
            checked += 1;
        }
        assert!(checked >= 1, "no psql file in {}", dir.display());
        Ok(())
    }

    /// The lexer yields what lies outside SQL text, with its line.
    #[test]
    fn the_psql_lexer_finds_meta_commands_and_unquoted_interpolations() {
        let text = "select 1 \\gexec\n-- \\c x\nselect :a, ':b', \"c:d\";\n\
                    \\set x 'y\\\\z' \\\\ \\echo z\n/* :e\n*/ \\endif\n";
        assert_eq!(
            psql_items(text, true),
            vec![
                (
                    1,
                    PsqlItem::Meta {
                        name: "gexec",
                        args: ""
                    }
                ),
                (3, PsqlItem::Unquoted("a")),
                (
                    4,
                    PsqlItem::Meta {
                        name: "set",
                        args: " x 'y\\\\z' "
                    }
                ),
                (
                    4,
                    PsqlItem::Meta {
                        name: "echo",
                        args: " z"
                    }
                ),
                (
                    6,
                    PsqlItem::Meta {
                        name: "endif",
                        args: ""
                    }
                ),
            ]
        );
        // An argument has no SQL text: every backslash starts a meta-command.
        assert_eq!(
            psql_items("select ':a' \\gexec", false),
            vec![(
                1,
                PsqlItem::Meta {
                    name: "gexec",
                    args: ""
                }
            )]
        );
    }

    #[test]
    fn psql_arguments_hold_no_meta_command_or_variable_off_the_rules() -> Result<(), String> {
        for (args, refused_at) in [
            (&["-c", "\\! id"][..], 1),
            (&["--command=\\! id"][..], 0),
            (&["-X", "-c\\o /tmp/x"][..], 1),
            (&["-c", "\\set x '\\134! env'"][..], 1),
            (&["-v", "t=|sh -c id"][..], 1),
            (&["--set=x=\\! id"][..], 0),
            (&["-vx=`id`"][..], 0),
        ] {
            let command = beside_shared_server("psql", args)?;
            let Err(DriverError::Permanent(message)) = refuse_other_connections(&command, "shared")
            else {
                return Err(format!("{args:?} was not refused"));
            };
            assert!(
                message.starts_with(&format!("args[{refused_at}] of the step ")),
                "{args:?}: {message}"
            );
            assert!(!message.contains(args[refused_at]), "{message}");
        }
        for args in [
            &["-v", "t=12:30", "-c", "select 1"][..],
            &["-c", "\\set ON_ERROR_STOP on"][..],
            &["-c", "select ':x'"][..],
        ] {
            let command = beside_shared_server("psql", args)?;
            assert_eq!(
                refuse_other_connections(&command, "shared"),
                Ok(()),
                "{args:?}"
            );
        }
        Ok(())
    }

    /// The refusals happen in the driver, before anything runs, and only beside
    /// a server.
    #[tokio::test]
    async fn a_step_beside_a_server_with_a_connection_string_never_runs()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let mut driver = driver(dir.path());
        let server = PostgresServer::parse("postgres://admin:pw-canary-1@127.0.0.1:5999/postgres")?;
        Arc::make_mut(&mut driver.settings)
            .postgres_servers
            .insert("shared".into(), server);
        let command = beside_shared_server("printf", &["%s", "host=x hostaddr=y"])?;
        let stop = CancellationToken::new();
        let refused = driver
            .run_command(
                &command,
                &StepContext::outside_a_job(&secrets(), &stop, &ProgressLines::discard()),
            )
            .await;
        assert!(
            matches!(&refused, Err(DriverError::Permanent(m)) if m.starts_with("args[1] ")),
            "{refused:?}"
        );
        let mut elsewhere = command.clone();
        elsewhere.postgres_server = None;
        let outcome = driver
            .run_command(
                &elsewhere,
                &StepContext::outside_a_job(&secrets(), &stop, &ProgressLines::discard()),
            )
            .await?;
        assert_eq!(outcome.log, ["stdout: host=x hostaddr=y"]);
        Ok(())
    }

    #[tokio::test]
    async fn a_step_may_not_replace_a_passed_on_variable() -> Result<(), Box<dyn std::error::Error>>
    {
        let dir = tempfile::tempdir()?;
        let mut driver = driver(dir.path());
        Arc::make_mut(&mut driver.settings).pass_env = vec!["KUBE_TOKEN".into(), "STAGE".into()];
        let stop = CancellationToken::new();
        let refused = driver
            .run(
                &step("env", &[]),
                &StepContext {
                    secrets: &secrets(),
                    stop: &stop,
                    progress: &ProgressLines::discard(),
                    journal: &super::super::NoJournal,
                    sessions: None,
                },
            )
            .await;
        assert_eq!(
            refused,
            Err(DriverError::Permanent(
                "the step sets STAGE, which the server passes on from its own environment \
                 (--command-pass-env, SLIPWAY_COMMAND_PASS_ENV): a step may not replace the \
                 operator's value"
                    .into()
            ))
        );
        let PlannedStep::Command(mut command) = step("env", &[]) else {
            return Err("not a command step".into());
        };
        command.env.clear();
        command.secret_env = vec![("KUBE_TOKEN".into(), "owner_password".into())];
        let refused = driver
            .run_command(
                &command,
                &StepContext::outside_a_job(&secrets(), &stop, &ProgressLines::discard()),
            )
            .await;
        assert!(
            matches!(&refused, Err(DriverError::Permanent(m)) if m.starts_with("the step sets KUBE_TOKEN,")),
            "{refused:?}"
        );
        Ok(())
    }

    #[test]
    fn libpq_password_and_service_variables_are_held_back_beside_a_server() {
        let mut pass_env: Vec<String> = ["KUBECONFIG", "PGPASSWORD", "PGSERVICEFILE", "PGHOSTADDR"]
            .map(String::from)
            .to_vec();
        // Whether the test's environment has a PGPASSWORD or not.
        let password = held_back_from_admin_connection(&mut pass_env);
        assert_eq!(password, std::env::var("PGPASSWORD").ok());
        assert_eq!(pass_env, ["KUBECONFIG"]);
        let mut without: Vec<String> = vec!["PGSERVICE".into()];
        assert_eq!(held_back_from_admin_connection(&mut without), None);
        assert!(without.is_empty());
    }

    #[tokio::test]
    async fn broken_yaml_is_refused_before_the_program_runs()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let mut broken = step("cat", &["dev/payments/db/create.yaml"]);
        if let PlannedStep::Command(command) = &mut broken {
            command.files[0].content = "database: [orders\n".into();
        }
        let refused = run(dir.path(), &broken).await.err();
        let Some(DriverError::Permanent(message)) = refused else {
            return Err(format!("expected a permanent error, got {refused:?}").into());
        };
        assert!(
            message.starts_with("dev/payments/db/create.yaml: is not valid YAML"),
            "{message}"
        );
        Ok(())
    }
}
