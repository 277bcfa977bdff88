//! Settings from flags, each with an environment twin, checked before anything starts.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{ArgAction, Args, Parser, Subcommand};
use ipnet::IpNet;

use slipway_core::checks::{AllowedHosts, HostRule};
use slipway_core::views::Role;

use crate::drivers::command::CommandSettings;
use crate::drivers::gitops::{DEFAULT_BRANCH, GitOpsSettings, RemoteCredentials, RemoteSettings};
use crate::orchestrator::WorkerSettings;
use crate::secrets::SecretKey;

#[derive(Debug, Parser)]
#[command(
    name = "slipway",
    version,
    about = "Slipway: a self-service portal for platform resources"
)]
pub struct Cli {
    /// How log lines are written: `text` for people, `json` (one object a line)
    /// for a log collector.
    #[arg(long, env = "SLIPWAY_LOG_FORMAT", global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the portal, its API and the background worker.
    Serve(ServeArgs),
    /// Work with a catalog without starting the portal.
    #[command(subcommand)]
    Catalog(CatalogCommand),
    /// Work with the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Work with the secret key that seals secret parameters and signs audit
    /// checkpoints.
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// Work with personal API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Disable or enable an account (someone who left, an account taken over).
    #[command(subcommand)]
    User(UserCommand),
    /// Submit and read requests through a running Slipway's REST API, with a token.
    #[command(subcommand)]
    Request(RequestCommand),
    /// Tools for developing and measuring Slipway.
    #[command(subcommand)]
    Dev(DevCommand),
}

#[derive(Debug, Subcommand)]
pub enum DevCommand {
    /// Fill the database with a year of realistic use (requests over every type,
    /// team, environment and state, with revisions, decisions, assets and audit
    /// events), to measure with. Reads the same settings as `serve`.
    Seed {
        /// How many requests to add.
        #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
        requests: u32,
        /// Audit events to reach in all (sign-ins are added after the requests'
        /// own events until there are this many); 0 adds none.
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=100_000_000))]
        audit_events: u32,
        #[command(flatten)]
        settings: ServeArgs,
    },
    /// Measure the job queue alone: queue no-op jobs and run them through the
    /// orchestrator's own dispatcher (its claims, each job finished in its own
    /// transaction as a worker finishes it), as fast as the database allows. Run it on a scratch database: it needs
    /// one stored request to hang the jobs on (`dev seed --requests 1`) and must
    /// not share the database with a running `serve`.
    QueueBench {
        /// No-op jobs to queue and run.
        #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
        jobs: u32,
        /// Worker slots the dispatcher fills, as `serve --workers` sets them.
        #[arg(long = "slots", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=256))]
        slots: u16,
        #[command(flatten)]
        settings: ServeArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum RequestCommand {
    /// Submit a request and print it as JSON, e.g.
    /// `slipway request create --type k8s-namespace --param name=orders --param team=payments`.
    Create {
        #[command(flatten)]
        api: crate::client::ApiArgs,
        /// The resource type's name.
        #[arg(long = "type")]
        type_name: String,
        /// A parameter as KEY=VALUE (numbers, true/false and JSON lists read as such).
        #[arg(long = "param", value_name = "KEY=VALUE")]
        params: Vec<String>,
        /// Makes a retry of this command return the first request instead of a
        /// second one; a fresh key is used when none is given.
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Print one request as JSON.
    Get {
        #[command(flatten)]
        api: crate::client::ApiArgs,
        /// The request's number.
        id: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token for a user and print its secret (shown only this once) on
    /// standard output; for a first CI token or a script, where no browser is at hand.
    /// Reads the same settings as `serve`, so it finds the same database.
    Create {
        /// The user the token acts as.
        #[arg(long)]
        user: String,
        /// Comma-separated scopes: read, request, review, admin.
        #[arg(long, value_delimiter = ',', default_value = "read")]
        scopes: Vec<String>,
        /// What the token is for.
        #[arg(long, default_value = "created on the command line")]
        name: String,
        /// Days until it expires (1 to 366).
        #[arg(long, default_value_t = 90)]
        expires_in_days: u32,
        #[command(flatten)]
        settings: ServeArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Disable an account: its sessions end, its API tokens are revoked, its chat
    /// link is removed, and it can no longer sign in (by password or single
    /// sign-on) until enabled again. Its requests and history stay. Reads the same
    /// settings as `serve`, so it finds the same database.
    Disable {
        /// The account's user name.
        #[arg(id = ACCOUNT_ARG, value_name = "USERNAME")]
        username: String,
        #[command(flatten)]
        settings: ServeArgs,
    },
    /// Let a disabled account sign in again (its old tokens stay revoked).
    Enable {
        /// The account's user name.
        #[arg(id = ACCOUNT_ARG, value_name = "USERNAME")]
        username: String,
        #[command(flatten)]
        settings: ServeArgs,
    },
    /// Set a local account's password, read as one line from standard input
    /// (`printf '%s\n' "$NEW" | slipway user set-password admin`); at least 12
    /// characters. The account's sessions end; its API tokens stay. Refused for
    /// an account that signs in through single sign-on only.
    SetPassword {
        /// The account's user name.
        #[arg(id = ACCOUNT_ARG, value_name = "USERNAME")]
        username: String,
        #[command(flatten)]
        settings: ServeArgs,
    },
}

/// The id of the account a `user` command names: `username` is the id of
/// `--gitops-remote-username` among the settings the command also takes, and
/// two arguments with one id would share their value.
const ACCOUNT_ARG: &str = "account";

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Seal what is pending, then recompute the audit log's hash chain (streamed) and
    /// compare it with the newest signed checkpoint; exit status 1 naming the first
    /// event that was edited, removed, reordered or left unsealed, or a truncated tail.
    Verify {
        #[command(flatten)]
        args: AuditArgs,
        /// Start after the newest checkpoint in the GitOps repository (its signature
        /// checked, its event still holding its hash) instead of at genesis.
        #[arg(long)]
        from_checkpoint: bool,
        /// Read only: do not seal pending events first (for read-only database
        /// credentials); an event unsealed long after its neighbours is then a break.
        #[arg(long)]
        no_seal: bool,
        /// Check checkpoints with this verifying key (64 hex digits, from `slipway
        /// audit public-key`) instead of one derived from the secret key.
        #[arg(long, env = "SLIPWAY_AUDIT_PUBLIC_KEY")]
        public_key: Option<String>,
    },
    /// Seal what is pending, sign a checkpoint of the chain's head, store it and
    /// commit it to the GitOps repository (audit/checkpoint.json).
    Checkpoint {
        #[command(flatten)]
        args: AuditArgs,
    },
    /// Print the Ed25519 key that verifies audit checkpoints (derived from the
    /// secret key), as 64 hex digits.
    PublicKey {
        #[command(flatten)]
        args: AuditArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Re-encrypt every secret parameter under a new key and move the database to
    /// it; the audit chain is verified under the old key first and then vouched
    /// for by a checkpoint the new key signs. Stop every server first, then start
    /// them with the new key. The current key comes from the usual settings.
    RotateKey {
        #[command(flatten)]
        args: AuditArgs,
        /// A file holding the new 32-byte key (64 hex digits or base64), e.g.
        /// from `head -c 32 /dev/urandom | base64`.
        #[arg(long, value_name = "FILE")]
        new_key_file: PathBuf,
    },
}

/// What the audit commands read: the same database, repository and key as `serve`.
#[derive(Clone, Args)]
pub struct AuditArgs {
    /// Database URL: sqlite://… or postgres://…
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// The data directory whose SQLite database (and demo key) to use when no URL is given.
    #[arg(long, env = "SLIPWAY_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// The GitOps repository checkpoints are committed to; default: <data-dir>/gitops.git.
    #[arg(long, env = "SLIPWAY_GITOPS_REPO")]
    pub gitops_repo: Option<PathBuf>,
    /// The branch of the GitOps repository, as `serve` uses it.
    #[arg(long, env = "SLIPWAY_GITOPS_BRANCH", default_value = DEFAULT_BRANCH)]
    pub gitops_branch: String,
    /// A file holding the server's 32-byte secret key; default: <data-dir>/secret.key
    /// when it exists (demo mode).
    #[arg(long, env = "SLIPWAY_SECRET_KEY_FILE")]
    pub secret_key_file: Option<PathBuf>,
    /// The key itself, instead of a file.
    #[arg(long, env = "SLIPWAY_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,
}

impl std::fmt::Debug for AuditArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditArgs")
            .field(
                "database_url",
                &self.database_url.as_deref().map(redact_url),
            )
            .field("data_dir", &self.data_dir)
            .field("gitops_repo", &self.gitops_repo)
            .field("gitops_branch", &self.gitops_branch)
            .field("secret_key_file", &self.secret_key_file)
            .field("secret_key", &self.secret_key.as_ref().map(|_| "***"))
            .finish()
    }
}

impl AuditArgs {
    /// The local repository on the configured branch (checkpoints are not pushed
    /// from the command line; the server pushes its own).
    pub fn gitops_settings(&self) -> GitOpsSettings {
        GitOpsSettings {
            branch: self.gitops_branch.clone(),
            remote: None,
        }
    }

    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("slipway.db").display()))
    }

    pub fn gitops_repo(&self) -> PathBuf {
        self.gitops_repo
            .clone()
            .unwrap_or_else(|| self.data_dir.join("gitops.git"))
    }

    /// The configured key, or the demo key file in the data directory if there is one.
    pub fn secret_key(&self) -> Result<Option<SecretKey>, SettingError> {
        if let Some(key) = secret_key(self.secret_key_file.as_deref(), self.secret_key.as_deref())?
        {
            return Ok(Some(key));
        }
        let demo = self.data_dir.join(crate::secrets::DEMO_KEY_FILE);
        if !demo.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&demo).map_err(|e| {
            setting_error(
                "--secret-key-file (SLIPWAY_SECRET_KEY_FILE)",
                format!("cannot read {}: {e}", demo.display()),
            )
        })?;
        SecretKey::parse(&text).map(Some).map_err(|message| {
            setting_error(
                "--secret-key-file (SLIPWAY_SECRET_KEY_FILE)",
                format!("{}: {message}", demo.display()),
            )
        })
    }
}

#[derive(Subcommand)]
pub enum CatalogCommand {
    /// Load a catalog and report every problem in it; exit status 1 if there is one.
    Check {
        /// The catalog directory (default: ./catalog).
        #[arg(default_value = "catalog")]
        dir: PathBuf,
        /// A Slipway database (sqlite://… or postgres://…) to check the catalog
        /// against: what it would leave stranded there (types or actions gone
        /// while assets or open requests are of them, parameters now required
        /// with no default that active assets lack), each a problem. Only read,
        /// never migrated.
        #[arg(long, value_name = "DATABASE_URL")]
        against: Option<String>,
    },
}

impl std::fmt::Debug for CatalogCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CatalogCommand::Check { dir, against } => f
                .debug_struct("Check")
                .field("dir", dir)
                .field("against", &against.as_deref().map(redact_url))
                .finish(),
        }
    }
}

#[derive(Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "SLIPWAY_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,
    /// Directory for the embedded database and the GitOps repository; created if missing.
    #[arg(long, env = "SLIPWAY_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// The catalog directory: dictionaries/, types/ and templates/.
    #[arg(long, env = "SLIPWAY_CATALOG", default_value = "catalog")]
    pub catalog: PathBuf,
    /// Demo mode: seeds the demo users alice, bob and carol.
    #[arg(long, env = "SLIPWAY_DEMO", default_value_t = false)]
    pub demo: bool,
    /// Database URL: sqlite://… or postgres://…; default: a SQLite file in the data directory.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// The GitOps repository changes are committed to; default: a bare repository in the data directory.
    #[arg(long, env = "SLIPWAY_GITOPS_REPO")]
    pub gitops_repo: Option<PathBuf>,
    #[command(flatten)]
    pub gitops: GitOpsArgs,
    #[command(flatten)]
    pub command: CommandArgs,
    #[command(flatten)]
    pub workers: WorkerArgs,
    /// A bearer token `/metrics` asks for (`Authorization: Bearer …`); without it
    /// `/metrics` answers anyone who reaches the port.
    #[arg(long, env = "SLIPWAY_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    #[command(flatten)]
    pub outbound: OutboundArgs,
    /// The built site (wasm, JavaScript, CSS) that cargo-leptos writes.
    #[arg(long, env = "SLIPWAY_SITE_ROOT", default_value = "target/site")]
    pub site_root: PathBuf,
    /// Mark session cookies Secure (set this behind TLS); the cookie is then named
    /// `__Host-slipway_session`. An https:// --public-url turns this on by itself.
    #[arg(long, env = "SLIPWAY_SECURE_COOKIES", default_value_t = false)]
    pub secure_cookies: bool,
    /// A file holding the 32-byte key that encrypts secret parameters (64 hex digits
    /// or base64). Default in demo mode: <data-dir>/secret.key, generated on first start.
    #[arg(long, env = "SLIPWAY_SECRET_KEY_FILE")]
    pub secret_key_file: Option<PathBuf>,
    /// The key itself, instead of a file (prefer the environment: a flag shows in `ps`).
    #[arg(long, env = "SLIPWAY_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,
    /// How often the server signs an audit checkpoint (when events were sealed since
    /// the last) and commits it to the GitOps repository (s, m, h or d).
    #[arg(long, env = "SLIPWAY_AUDIT_CHECKPOINT_INTERVAL", default_value = "10m")]
    pub audit_checkpoint_interval: String,
    /// How often the server compares every asset with what its type's current
    /// templates render and opens the upgrade requests that are due (s, m, h or
    /// d; at least a minute). It also runs at every start.
    #[arg(long, env = "SLIPWAY_UPGRADE_SWEEP_INTERVAL", default_value = "1h")]
    pub upgrade_sweep_interval: String,
    /// A request sent back for changes and not revised for this long is
    /// cancelled, so it stops holding its name and its team's quota (s, m, h or
    /// d; at least an hour; `off` keeps it for ever).
    #[arg(long, env = "SLIPWAY_CLOSE_UNREVISED_AFTER", default_value = "30d")]
    pub close_unrevised_after: String,
    #[command(flatten)]
    pub identity: IdentityArgs,
    #[command(flatten)]
    pub chat: ChatArgs,
}

/// ChatOps: the Matrix homeserver and rooms the chat bot uses.
#[derive(Clone, Default, Args)]
pub struct ChatArgs {
    /// The Matrix homeserver the chat bot connects to, e.g. https://matrix.example.org;
    /// ChatOps is off without it.
    #[arg(long = "matrix-homeserver", env = "SLIPWAY_MATRIX_HOMESERVER")]
    pub homeserver: Option<String>,
    /// The bot account's access token (prefer the environment or a file: a flag
    /// shows in `ps`).
    #[arg(
        long = "matrix-token",
        env = "SLIPWAY_MATRIX_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// A file holding the bot account's access token.
    #[arg(long = "matrix-token-file", env = "SLIPWAY_MATRIX_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// The room (id `!…` or alias `#…`) where reviewers are asked to review.
    #[arg(long = "matrix-review-room", env = "SLIPWAY_MATRIX_REVIEW_ROOM")]
    pub review_room: Option<String>,
    /// The room (id or alias) where failures are posted for the platform team.
    #[arg(long = "matrix-platform-room", env = "SLIPWAY_MATRIX_PLATFORM_ROOM")]
    pub platform_room: Option<String>,
    /// Each team's own review room, as `team=room` pairs separated by spaces or
    /// commas: a request waiting for review is posted to the room of its team and
    /// of the team that offers its type (the review room hears every team's).
    #[arg(
        long = "matrix-team-review-rooms",
        env = "SLIPWAY_MATRIX_TEAM_REVIEW_ROOMS"
    )]
    pub team_review_rooms: Option<String>,
    /// Homeservers whose accounts may link to Slipway and give the bot
    /// commands besides the bot's own (always allowed), by server name
    /// (`partner.example`, `chat.example.org:8448`, `[2001:db8::1]:8448`),
    /// separated by spaces or commas.
    #[arg(
        long = "matrix-allowed-servers",
        env = "SLIPWAY_MATRIX_ALLOWED_SERVERS"
    )]
    pub allowed_servers: Option<String>,
}

const TEAM_REVIEW_ROOMS_SETTING: &str =
    "--matrix-team-review-rooms (SLIPWAY_MATRIX_TEAM_REVIEW_ROOMS)";

/// At most this many team rooms: the bot joins each at start.
const MAX_TEAM_REVIEW_ROOMS: usize = 200;

/// A room id (`!id:server`) or alias (`#name:server`), trimmed; `None` for nothing.
fn checked_room(
    value: Option<String>,
    setting: &'static str,
) -> Result<Option<String>, SettingError> {
    match value
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty())
    {
        Some(room)
            if !(room.starts_with('!') || room.starts_with('#'))
                || !room.contains(':')
                || room.len() > 255
                || room.chars().any(|c| c.is_control() || c.is_whitespace()) =>
        {
            Err(setting_error(
                setting,
                format!(
                    "{:?} is not a room id (!id:server) or alias (#name:server)",
                    shorten_setting(&room)
                ),
            ))
        }
        other => Ok(other),
    }
}

/// A setting's value as an error quotes it: at most 80 characters.
fn shorten_setting(value: &str) -> String {
    match value.char_indices().nth(80) {
        Some((end, _)) => format!("{}…", &value[..end]),
        None => value.to_string(),
    }
}

/// `team=room` pairs, each team once.
fn team_review_rooms(value: Option<String>) -> Result<BTreeMap<String, String>, SettingError> {
    let mut rooms = BTreeMap::new();
    let text = value.unwrap_or_default();
    for pair in text.split(|c: char| c == ',' || c.is_whitespace()) {
        if pair.is_empty() {
            continue;
        }
        let Some((team, room)) = pair.split_once('=') else {
            return Err(setting_error(
                TEAM_REVIEW_ROOMS_SETTING,
                format!("{:?} is not team=room", shorten_setting(pair)),
            ));
        };
        let team_ok = !team.is_empty()
            && team.len() <= 64
            && team
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !team_ok {
            return Err(setting_error(
                TEAM_REVIEW_ROOMS_SETTING,
                format!(
                    "{:?} is not a team name (letters, digits, '-', '_', '.')",
                    shorten_setting(team)
                ),
            ));
        }
        let room =
            checked_room(Some(room.to_string()), TEAM_REVIEW_ROOMS_SETTING)?.ok_or_else(|| {
                setting_error(
                    TEAM_REVIEW_ROOMS_SETTING,
                    format!("team {team} has no room"),
                )
            })?;
        if rooms.insert(team.to_string(), room).is_some() {
            return Err(setting_error(
                TEAM_REVIEW_ROOMS_SETTING,
                format!("team {team} is named twice"),
            ));
        }
        if rooms.len() > MAX_TEAM_REVIEW_ROOMS {
            return Err(setting_error(
                TEAM_REVIEW_ROOMS_SETTING,
                format!("at most {MAX_TEAM_REVIEW_ROOMS} team rooms"),
            ));
        }
    }
    Ok(rooms)
}

const ALLOWED_SERVERS_SETTING: &str = "--matrix-allowed-servers (SLIPWAY_MATRIX_ALLOWED_SERVERS)";

/// Server names (a host name or address, and a port), each once, lowercased.
fn allowed_servers(value: Option<String>) -> Result<Vec<String>, SettingError> {
    let mut servers: Vec<String> = Vec::new();
    let text = value.unwrap_or_default();
    for server in text.split(|c: char| c == ',' || c.is_whitespace()) {
        if server.is_empty() {
            continue;
        }
        if !is_server_name(server) {
            return Err(setting_error(
                ALLOWED_SERVERS_SETTING,
                format!(
                    "{:?} is not a server name (example.org, example.org:8448, 192.0.2.7 \
                     or [2001:db8::1]:8448)",
                    shorten_setting(server)
                ),
            ));
        }
        if !servers.iter().any(|s| s.eq_ignore_ascii_case(server)) {
            servers.push(server.to_ascii_lowercase());
        }
    }
    Ok(servers)
}

/// A Matrix server name: a DNS name, an IPv4 address or an IPv6 address in
/// brackets, with an optional port (1 to 65535), as user ids carry it after
/// their `:`.
fn is_server_name(server: &str) -> bool {
    let (host_ok, after_host) = match server.strip_prefix('[') {
        Some(bracketed) => match bracketed.split_once(']') {
            Some((address, rest)) => (address.parse::<std::net::Ipv6Addr>().is_ok(), rest),
            None => return false,
        },
        None => {
            let end = server.find(':').unwrap_or(server.len());
            let host = &server[..end];
            let ipv4 = host.parse::<std::net::Ipv4Addr>().is_ok();
            (ipv4 || is_dns_name(host), &server[end..])
        }
    };
    let port_ok = match after_host.strip_prefix(':') {
        Some(port) => {
            (1..=5).contains(&port.len())
                && port.bytes().all(|b| b.is_ascii_digit())
                && port.parse::<u16>().is_ok_and(|p| p > 0)
        }
        None => after_host.is_empty(),
    };
    host_ok && port_ok
}

/// Labels of letters, digits and inner hyphens, 1 to 63 characters each,
/// separated by dots; 255 characters at most.
fn is_dns_name(host: &str) -> bool {
    host.len() <= 255
        && host.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

const MATRIX_HOMESERVER_SETTING: &str = "--matrix-homeserver (SLIPWAY_MATRIX_HOMESERVER)";
const MATRIX_TOKEN_SETTING: &str = "--matrix-token (SLIPWAY_MATRIX_TOKEN)";

impl ChatArgs {
    /// `None` when ChatOps is off (no homeserver given).
    pub fn check(self) -> Result<Option<ChatSettings>, SettingError> {
        let Some(homeserver) = self.homeserver.filter(|h| !h.trim().is_empty()) else {
            return Ok(None);
        };
        let homeserver = homeserver.trim().trim_end_matches('/').to_string();
        if !(homeserver.starts_with("https://") || homeserver.starts_with("http://"))
            || url::Url::parse(&homeserver).is_err()
        {
            return Err(setting_error(
                MATRIX_HOMESERVER_SETTING,
                format!("{homeserver:?} is not an http(s) URL"),
            ));
        }
        let token = match (
            self.token.filter(|t| !t.trim().is_empty()),
            &self.token_file,
        ) {
            (Some(_), Some(_)) => {
                return Err(setting_error(
                    MATRIX_TOKEN_SETTING,
                    "give the token either in a file or in SLIPWAY_MATRIX_TOKEN, not both",
                ));
            }
            (Some(token), None) => token,
            (None, Some(path)) => std::fs::read_to_string(path).map_err(|e| {
                setting_error(
                    "--matrix-token-file (SLIPWAY_MATRIX_TOKEN_FILE)",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?,
            (None, None) => {
                return Err(setting_error(
                    MATRIX_TOKEN_SETTING,
                    "the bot needs an access token when --matrix-homeserver is set",
                ));
            }
        };
        let token = token.trim().to_string();
        if token.is_empty() || !token.chars().all(|c| c.is_ascii_graphic()) {
            return Err(setting_error(
                MATRIX_TOKEN_SETTING,
                "must be printable characters without spaces",
            ));
        }
        let room = checked_room;
        let mut settings = ChatSettings::new(homeserver, Secret::new(token));
        settings.review_room = room(
            self.review_room,
            "--matrix-review-room (SLIPWAY_MATRIX_REVIEW_ROOM)",
        )?;
        settings.platform_room = room(
            self.platform_room,
            "--matrix-platform-room (SLIPWAY_MATRIX_PLATFORM_ROOM)",
        )?;
        settings.team_review_rooms = team_review_rooms(self.team_review_rooms)?;
        settings.allowed_servers = allowed_servers(self.allowed_servers)?;
        Ok(Some(settings))
    }
}

/// ChatOps after checking.
#[derive(Debug, Clone)]
pub struct ChatSettings {
    /// `http(s)://host[:port]`, no trailing slash.
    pub homeserver: String,
    pub token: Secret,
    /// The room every request waiting for review is posted to: for reviewers of
    /// every team.
    pub review_room: Option<String>,
    pub platform_room: Option<String>,
    /// Team → that team's review room.
    pub team_review_rooms: BTreeMap<String, String>,
    /// How long one sync waits for new events.
    pub sync_wait: Duration,
    /// How often the notifier looks for requests to tell rooms about.
    pub notify_every: Duration,
    /// The longest pause between tries while the homeserver does not answer.
    pub max_backoff: Duration,
    /// The homeservers whose accounts may link and give commands besides the
    /// bot's own, which always may (server names, lowercased).
    pub allowed_servers: Vec<String>,
}

impl ChatSettings {
    /// Settings with the default timings and no rooms.
    pub fn new(homeserver: String, token: Secret) -> ChatSettings {
        ChatSettings {
            homeserver,
            token,
            review_room: None,
            platform_room: None,
            team_review_rooms: BTreeMap::new(),
            sync_wait: Duration::from_secs(30),
            notify_every: Duration::from_secs(2),
            max_backoff: Duration::from_secs(60),
            allowed_servers: Vec::new(),
        }
    }
}

/// Where approved changes are committed, and the remote they are pushed to.
#[derive(Clone, Args)]
pub struct GitOpsArgs {
    /// The branch changes are committed to (locally and on the remote); the local
    /// repository's HEAD names it, so a plain `git clone` checks it out.
    #[arg(long = "gitops-branch", env = "SLIPWAY_GITOPS_BRANCH", default_value = DEFAULT_BRANCH)]
    pub branch: String,
    /// A remote repository to push the branch to, e.g. the one Argo CD or Flux reads:
    /// git://host/repo.git, http://host/repo.git or a path. Each change is committed on
    /// top of the remote branch and pushed. Without it, commits stay in the local
    /// repository.
    #[arg(long = "gitops-remote", env = "SLIPWAY_GITOPS_REMOTE")]
    pub remote: Option<String>,
    /// The user name for the remote (default with a password or token: x-access-token).
    #[arg(
        long = "gitops-remote-username",
        env = "SLIPWAY_GITOPS_REMOTE_USERNAME"
    )]
    pub username: Option<String>,
    /// The password or access token for the remote; prefer the environment or the
    /// file setting, as command lines are visible to other users of the machine.
    #[arg(
        long = "gitops-remote-password",
        env = "SLIPWAY_GITOPS_REMOTE_PASSWORD",
        hide = true,
        hide_env_values = true
    )]
    pub password: Option<String>,
    /// A file holding the password or access token for the remote.
    #[arg(
        long = "gitops-remote-password-file",
        env = "SLIPWAY_GITOPS_REMOTE_PASSWORD_FILE"
    )]
    pub password_file: Option<PathBuf>,
}

impl Default for GitOpsArgs {
    fn default() -> Self {
        GitOpsArgs {
            branch: DEFAULT_BRANCH.into(),
            remote: None,
            username: None,
            password: None,
            password_file: None,
        }
    }
}

// The password never reaches a log.
impl std::fmt::Debug for GitOpsArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitOpsArgs")
            .field("branch", &self.branch)
            .field("remote", &self.remote)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("password_file", &self.password_file)
            .finish()
    }
}

impl GitOpsArgs {
    pub fn check(self) -> Result<GitOpsSettings, SettingError> {
        const BRANCH: &str = "--gitops-branch (SLIPWAY_GITOPS_BRANCH)";
        const REMOTE: &str = "--gitops-remote (SLIPWAY_GITOPS_REMOTE)";
        const USERNAME: &str = "--gitops-remote-username (SLIPWAY_GITOPS_REMOTE_USERNAME)";
        const PASSWORD: &str = "--gitops-remote-password (SLIPWAY_GITOPS_REMOTE_PASSWORD)";
        const PASSWORD_FILE: &str =
            "--gitops-remote-password-file (SLIPWAY_GITOPS_REMOTE_PASSWORD_FILE)";
        let branch = self.branch.trim().to_string();
        if branch.is_empty() || !git2::Reference::is_valid_name(&format!("refs/heads/{branch}")) {
            return Err(setting_error(
                BRANCH,
                format!("{branch:?} is not a valid branch name"),
            ));
        }
        let password = match (self.password.filter(|p| !p.is_empty()), self.password_file) {
            (Some(_), Some(_)) => {
                return Err(setting_error(
                    PASSWORD_FILE,
                    "give the password either in a file or in SLIPWAY_GITOPS_REMOTE_PASSWORD, not both",
                ));
            }
            (Some(password), None) => Some(password),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    setting_error(
                        PASSWORD_FILE,
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?;
                Some(text.trim_end_matches(['\r', '\n']).to_string())
            }
            (None, None) => None,
        };
        let username = self.username.filter(|u| !u.trim().is_empty());
        let Some(url) = self.remote.filter(|r| !r.trim().is_empty()) else {
            if password.is_some() {
                return Err(setting_error(
                    PASSWORD,
                    "a password is set but no --gitops-remote (SLIPWAY_GITOPS_REMOTE) to use it for",
                ));
            }
            return Ok(GitOpsSettings {
                branch,
                remote: None,
            });
        };
        let url = url.trim().to_string();
        check_remote_url(REMOTE, &url)?;
        let credentials = match (username, password) {
            (Some(_), None) => {
                return Err(setting_error(
                    USERNAME,
                    "a user name needs a password or token (--gitops-remote-password or its file)",
                ));
            }
            (username, Some(password)) => Some(RemoteCredentials {
                username: username.unwrap_or_else(|| "x-access-token".into()),
                password: Secret::new(password),
            }),
            (None, None) => None,
        };
        Ok(GitOpsSettings {
            branch,
            remote: Some(RemoteSettings { url, credentials }),
        })
    }
}

/// The transports this build speaks: git:// and http:// (libgit2 without TLS or
/// SSH), and a path. Credentials inside the URL are refused, a user name too (it
/// is often the token itself), as a URL ends up in logs, step summaries and
/// check details.
fn check_remote_url(setting: &'static str, url: &str) -> Result<(), SettingError> {
    match openidconnect::url::Url::parse(url) {
        Ok(parsed) => {
            if parsed.password().is_some() || !parsed.username().is_empty() {
                let mut shown = parsed.clone();
                // Neither can fail on a URL that has a host to hold them.
                let _ = shown.set_username("");
                let _ = shown.set_password(None);
                return Err(setting_error(
                    setting,
                    format!(
                        "{shown} holds credentials before its host; give them in --gitops-remote-username and --gitops-remote-password (or its file) instead, to keep them out of logs"
                    ),
                ));
            }
            match parsed.scheme() {
                "git" | "http" | "file" => Ok(()),
                "https" | "ssh" => Err(setting_error(
                    setting,
                    format!(
                        "{url:?}: {}:// is not supported by this build (its git library has no TLS or SSH); use git://, http:// (e.g. to a TLS-terminating proxy on loopback) or a path",
                        parsed.scheme()
                    ),
                )),
                other => Err(setting_error(
                    setting,
                    format!("{url:?}: unknown transport {other}://; use git://, http:// or a path"),
                )),
            }
        }
        // scp-like `user@host:path` means SSH.
        Err(_) if url.contains('@') && url.contains(':') => {
            // Without the part before `@`: it may be a token given as a user name.
            let host_and_path = url.rsplit_once('@').map_or(url, |(_, rest)| rest);
            Err(setting_error(
                setting,
                format!(
                    "\"…@{host_and_path}\" looks like an SSH address, which this build does not support; use git://, http:// or a path"
                ),
            ))
        }
        Err(_) => Ok(()),
    }
}

/// What the command driver may run.
#[derive(Clone, Args)]
pub struct CommandArgs {
    /// Programs a type's `command` step may run, comma-separated, exactly as steps
    /// name them (e.g. psql,tofu,/usr/local/bin/kubectl); none by default.
    #[arg(
        long = "command-allow",
        env = "SLIPWAY_COMMAND_ALLOW",
        value_delimiter = ','
    )]
    pub allow: Vec<String>,
    /// Variables of the server's environment handed on to every command, comma-
    /// separated (e.g. PGPASSWORD,KUBECONFIG); PATH, HOME, LANG, LC_ALL and TZ always are.
    #[arg(
        long = "command-pass-env",
        env = "SLIPWAY_COMMAND_PASS_ENV",
        value_delimiter = ','
    )]
    pub pass_env: Vec<String>,
    /// How long a command may run when its step gives no timeout (s, m, h or d).
    #[arg(
        long = "command-timeout",
        env = "SLIPWAY_COMMAND_TIMEOUT",
        default_value = "10m"
    )]
    pub timeout: String,
    /// PostgreSQL servers that types create databases on, comma-separated
    /// `name=postgres://admin:password@host:port/database` pairs; `command` steps
    /// naming one get its admin connection as PGHOST, PGPORT, PGUSER, PGPASSWORD
    /// and PGDATABASE, and `postgres` checks connect to it. Prefer the environment:
    /// a flag shows in `ps`.
    #[arg(
        long = "postgres-servers",
        env = "SLIPWAY_POSTGRES_SERVERS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub postgres_servers: Vec<String>,
}

impl Default for CommandArgs {
    fn default() -> Self {
        CommandArgs {
            allow: Vec::new(),
            pass_env: Vec::new(),
            timeout: "10m".into(),
            postgres_servers: Vec::new(),
        }
    }
}

impl CommandArgs {
    pub fn check(self, data_dir: &Path) -> Result<CommandSettings, SettingError> {
        const ALLOW: &str = "--command-allow (SLIPWAY_COMMAND_ALLOW)";
        const PASS_ENV: &str = "--command-pass-env (SLIPWAY_COMMAND_PASS_ENV)";
        let allowed: Vec<String> = self
            .allow
            .iter()
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect();
        for program in &allowed {
            if program.contains(char::is_whitespace) {
                return Err(setting_error(
                    ALLOW,
                    format!("{program:?}: name a program, without arguments"),
                ));
            }
        }
        let pass_env: Vec<String> = self
            .pass_env
            .iter()
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect();
        for name in &pass_env {
            if name.contains(['=', ' ']) {
                return Err(setting_error(
                    PASS_ENV,
                    format!(
                        "{name:?}: give variable names only; their values stay in the environment"
                    ),
                ));
            }
            // The step's supervisor is a POSIX shell, which passes on no other
            // name: such a variable would silently never arrive.
            if !is_portable_variable_name(name) {
                return Err(setting_error(
                    PASS_ENV,
                    format!(
                        "{name:?} is not a name a program can be handed: letters, digits and '_', not starting with a digit"
                    ),
                ));
            }
        }
        let default_timeout = parse_duration(&self.timeout)
            .map_err(|m| setting_error("--command-timeout (SLIPWAY_COMMAND_TIMEOUT)", m))?;
        let postgres_servers = crate::postgres_servers::parse_servers(&self.postgres_servers)
            .map_err(|m| setting_error(crate::postgres_servers::SETTING, m))?;
        Ok(CommandSettings {
            allowed,
            pass_env,
            default_timeout,
            scratch_dir: data_dir.join("scratch"),
            postgres_servers,
        })
    }
}

/// How this process runs jobs.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// Jobs this process runs at once; 0 runs none (a replica that only serves).
    #[arg(long = "workers", env = "SLIPWAY_WORKERS", default_value_t = 4)]
    pub workers: usize,
    /// How long a worker's claim on a job lasts without a heartbeat; a replica that
    /// dies loses its jobs to the others after this long (s, m, h).
    #[arg(long = "job-lease", env = "SLIPWAY_JOB_LEASE", default_value = "30s")]
    pub lease: String,
    /// At shutdown, how long running jobs may take to finish before they are
    /// stopped and handed back to the queue (s, m, h).
    #[arg(
        long = "shutdown-grace",
        env = "SLIPWAY_SHUTDOWN_GRACE",
        default_value = "20s"
    )]
    pub shutdown_grace: String,
}

impl Default for WorkerArgs {
    fn default() -> Self {
        WorkerArgs {
            workers: 4,
            lease: "30s".into(),
            shutdown_grace: "20s".into(),
        }
    }
}

impl WorkerArgs {
    pub fn check(self) -> Result<WorkerSettings, SettingError> {
        const WORKERS: &str = "--workers (SLIPWAY_WORKERS)";
        const LEASE: &str = "--job-lease (SLIPWAY_JOB_LEASE)";
        const GRACE: &str = "--shutdown-grace (SLIPWAY_SHUTDOWN_GRACE)";
        if self.workers > MAX_WORKERS {
            return Err(setting_error(
                WORKERS,
                format!("{} is more than {MAX_WORKERS}", self.workers),
            ));
        }
        let lease = parse_duration(&self.lease).map_err(|m| setting_error(LEASE, m))?;
        // A heartbeat every third of the lease must fit a slow database round trip.
        if lease < Duration::from_secs(3) || lease > Duration::from_secs(3600) {
            return Err(setting_error(LEASE, "must be from 3s to 1h"));
        }
        let shutdown_grace =
            parse_duration(&self.shutdown_grace).map_err(|m| setting_error(GRACE, m))?;
        if shutdown_grace > Duration::from_secs(3600) {
            return Err(setting_error(GRACE, "must be at most 1h"));
        }
        Ok(WorkerSettings {
            workers: self.workers,
            lease,
            shutdown_grace,
        })
    }
}

/// Where acceptance checks and pipeline calls may connect to.
#[derive(Clone, Default, Args)]
pub struct OutboundArgs {
    /// Hosts that `http` and `tcp` checks and pipeline steps may reach, comma-
    /// separated, each a host or host:port (e.g. grafana.internal,10.0.0.5:5432);
    /// none by default. A name resolving to a link-local address (a cloud's
    /// metadata service) is refused unless that address is listed itself.
    #[arg(
        long = "check-allow-hosts",
        env = "SLIPWAY_CHECK_ALLOW_HOSTS",
        value_delimiter = ','
    )]
    pub allow_hosts: Vec<String>,
    /// Tokens that `pipeline` steps name, comma-separated `name=token` pairs (e.g.
    /// github=ghp_…,argo=…); prefer the environment, a flag shows in `ps`.
    #[arg(
        long = "pipeline-tokens",
        env = "SLIPWAY_PIPELINE_TOKENS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub pipeline_tokens: Vec<String>,
}

impl OutboundArgs {
    pub fn check(self) -> Result<OutboundSettings, SettingError> {
        let rules = self
            .allow_hosts
            .iter()
            .map(String::as_str)
            .filter(|h| !h.trim().is_empty())
            .map(HostRule::parse)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|m| setting_error(crate::outbound::ALLOW_SETTING, m))?;
        let mut pipeline_tokens = BTreeMap::new();
        for pair in self.pipeline_tokens.iter().filter(|p| !p.trim().is_empty()) {
            let setting = crate::drivers::pipeline::TOKENS_SETTING;
            let Some((name, token)) = pair.split_once('=') else {
                // The text may be a token itself: never repeat it.
                return Err(setting_error(
                    setting,
                    "give each token as name=token, separated by commas",
                ));
            };
            let name = name.trim();
            if name.is_empty() || token.trim().is_empty() {
                return Err(setting_error(
                    setting,
                    "a name=token pair lacks its name or its token",
                ));
            }
            if pipeline_tokens
                .insert(name.to_string(), Secret::new(token.trim().to_string()))
                .is_some()
            {
                return Err(setting_error(
                    setting,
                    format!("the token {name:?} is given twice"),
                ));
            }
        }
        Ok(OutboundSettings {
            allowed_hosts: AllowedHosts::new(rules),
            pipeline_tokens,
        })
    }
}

const MAX_WORKERS: usize = 64;

/// Outbound connections after checking.
#[derive(Debug, Clone, Default)]
pub struct OutboundSettings {
    pub allowed_hosts: AllowedHosts,
    /// By name, as `pipeline` steps name them; `Debug` shows stars.
    pub pipeline_tokens: BTreeMap<String, Secret>,
}

/// Sign-in and session settings.
#[derive(Clone, Args)]
pub struct IdentityArgs {
    /// The address people use to reach Slipway, e.g. https://slipway.example.com; the
    /// OIDC redirect URL and the same-origin check of form posts are derived from it.
    #[arg(long, env = "SLIPWAY_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Allow sign-in with a local user name and password (`false` leaves OIDC only).
    #[arg(long, env = "SLIPWAY_LOCAL_ACCOUNTS", default_value_t = true, action = ArgAction::Set)]
    pub local_accounts: bool,
    /// A session ends after this long without a request (s, m, h or d: 30m, 8h).
    #[arg(long, env = "SLIPWAY_SESSION_IDLE_TIMEOUT", default_value = "8h")]
    pub session_idle_timeout: String,
    /// A session ends this long after sign-in, however active (s, m, h or d).
    #[arg(long, env = "SLIPWAY_SESSION_ABSOLUTE_TIMEOUT", default_value = "12h")]
    pub session_absolute_timeout: String,
    /// How long the roles and teams an identity provider gave an account hold
    /// without a new sign-in there (s, m, h or d). After it, the account's API
    /// tokens and chat stop working until the person signs in once: someone the
    /// provider removed from a team keeps nothing of it for longer.
    #[arg(long, env = "SLIPWAY_PROVIDER_CONFIRMATION", default_value = "30d")]
    pub provider_confirmation: String,
    /// API calls one person's tokens may make in a minute (all at once, if they come so);
    /// past it the token is answered 429 with Retry-After and the call writes
    /// nothing. Per process. 0: no limit.
    #[arg(long, env = "SLIPWAY_TOKEN_CALLS_PER_MINUTE", default_value_t = 600)]
    pub token_calls_per_minute: u32,
    /// Pre-checks one person may run in a minute (the form's live check, the
    /// API's, chat's; all at once, if they come so); past it a check is answered
    /// 429 with Retry-After and reads nothing. Per process. 0: no limit.
    #[arg(long, env = "SLIPWAY_CHECKS_PER_MINUTE", default_value_t = 600)]
    pub checks_per_minute: u32,
    /// The reverse proxies in front of Slipway, as comma-separated addresses or
    /// networks (10.0.0.0/8, 2001:db8::/32, 192.0.2.10). A call whose TCP peer is
    /// one of them is counted for sign-in throttling (and audited) under the
    /// right-most `X-Forwarded-For` address that is not itself a listed proxy;
    /// from any other peer that header is ignored.
    #[arg(long, env = "SLIPWAY_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<String>,
    /// OpenID Connect issuer URL; turns on "Sign in with …". Discovery is read from
    /// <issuer>/.well-known/openid-configuration.
    #[arg(long, env = "SLIPWAY_OIDC_ISSUER")]
    pub oidc_issuer: Option<String>,
    /// The client id Slipway is registered with at the OIDC provider.
    #[arg(long, env = "SLIPWAY_OIDC_CLIENT_ID")]
    pub oidc_client_id: Option<String>,
    /// A file holding the OIDC client secret (for confidential clients).
    #[arg(long, env = "SLIPWAY_OIDC_CLIENT_SECRET_FILE")]
    pub oidc_client_secret_file: Option<PathBuf>,
    /// The OIDC client secret itself; prefer the environment or the file setting, as
    /// command lines are visible to other users of the machine.
    #[arg(
        long,
        env = "SLIPWAY_OIDC_CLIENT_SECRET",
        hide = true,
        hide_env_values = true
    )]
    pub oidc_client_secret: Option<String>,
    /// Scopes asked for at sign-in, separated by spaces.
    #[arg(
        long,
        env = "SLIPWAY_OIDC_SCOPES",
        default_value = "openid profile email"
    )]
    pub oidc_scopes: String,
    /// Where the provider sends people back; default: <public URL>/auth/oidc/callback.
    #[arg(long, env = "SLIPWAY_OIDC_REDIRECT_URL")]
    pub oidc_redirect_url: Option<String>,
    /// The provider's name on the sign-in button ("Sign in with …"); default: its host.
    #[arg(long, env = "SLIPWAY_OIDC_NAME")]
    pub oidc_name: Option<String>,
    /// The ID-token claim whose values that are Slipway role names become roles.
    #[arg(long, env = "SLIPWAY_OIDC_ROLES_CLAIM", default_value = "roles")]
    pub oidc_roles_claim: String,
    /// The ID-token claim whose values become teams (a leading `/` is dropped).
    #[arg(long, env = "SLIPWAY_OIDC_TEAMS_CLAIM", default_value = "groups")]
    pub oidc_teams_claim: String,
    /// Roles granted by values of the roles claim, comma-separated
    /// `claim-value=role` pairs (e.g. slipway-admins=admin,platform-ops=platform; a
    /// value may be listed for several roles). When given, only listed values grant
    /// roles: a value named like a Slipway role grants nothing unless listed
    /// (`admin=admin`).
    #[arg(long, env = "SLIPWAY_OIDC_ROLE_MAP", value_delimiter = ',')]
    pub oidc_role_map: Vec<String>,
    /// Teams granted by values of the teams claim, comma-separated
    /// `claim-value=team` pairs (e.g. grp-payments=payments); each team must be in
    /// the catalog's teams dictionary. When given, only listed values grant teams.
    #[arg(long, env = "SLIPWAY_OIDC_TEAM_MAP", value_delimiter = ',')]
    pub oidc_team_map: Vec<String>,
    /// Without a team map, take the teams claim's values as team names: only
    /// where nobody but the provider's administrators makes its groups (where
    /// people make their own, as on GitLab or Entra ID, anyone could name a group
    /// `payments` and join that team).
    #[arg(long, env = "SLIPWAY_OIDC_TEAMS_AS_NAMED", default_value_t = false, action = clap::ArgAction::Set)]
    pub oidc_teams_as_named: bool,
}

impl Default for IdentityArgs {
    fn default() -> Self {
        IdentityArgs {
            public_url: None,
            local_accounts: true,
            session_idle_timeout: "8h".into(),
            session_absolute_timeout: "12h".into(),
            provider_confirmation: "30d".into(),
            token_calls_per_minute: 600,
            checks_per_minute: 600,
            trusted_proxies: Vec::new(),
            oidc_issuer: None,
            oidc_client_id: None,
            oidc_client_secret_file: None,
            oidc_client_secret: None,
            oidc_scopes: "openid profile email".into(),
            oidc_redirect_url: None,
            oidc_name: None,
            oidc_roles_claim: "roles".into(),
            oidc_teams_claim: "groups".into(),
            oidc_role_map: Vec::new(),
            oidc_team_map: Vec::new(),
            oidc_teams_as_named: false,
        }
    }
}

// The client secret never reaches a log.
impl std::fmt::Debug for IdentityArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityArgs")
            .field("public_url", &self.public_url)
            .field("local_accounts", &self.local_accounts)
            .field("session_idle_timeout", &self.session_idle_timeout)
            .field("session_absolute_timeout", &self.session_absolute_timeout)
            .field("provider_confirmation", &self.provider_confirmation)
            .field("token_calls_per_minute", &self.token_calls_per_minute)
            .field("checks_per_minute", &self.checks_per_minute)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("oidc_issuer", &self.oidc_issuer)
            .field("oidc_client_id", &self.oidc_client_id)
            .field("oidc_client_secret_file", &self.oidc_client_secret_file)
            .field(
                "oidc_client_secret",
                &self.oidc_client_secret.as_ref().map(|_| "***"),
            )
            .field("oidc_scopes", &self.oidc_scopes)
            .field("oidc_redirect_url", &self.oidc_redirect_url)
            .field("oidc_name", &self.oidc_name)
            .field("oidc_roles_claim", &self.oidc_roles_claim)
            .field("oidc_teams_claim", &self.oidc_teams_claim)
            .field("oidc_role_map", &self.oidc_role_map)
            .field("oidc_team_map", &self.oidc_team_map)
            .field("oidc_teams_as_named", &self.oidc_teams_as_named)
            .finish()
    }
}

// Keeps credentials in a database URL out of logs.
impl std::fmt::Debug for ServeArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeArgs")
            .field("addr", &self.addr)
            .field("data_dir", &self.data_dir)
            .field("catalog", &self.catalog)
            .field("demo", &self.demo)
            .field(
                "database_url",
                &self.database_url.as_deref().map(redact_url),
            )
            .field("gitops_repo", &self.gitops_repo)
            .field("gitops", &self.gitops)
            .field("command", &self.command)
            .field("workers", &self.workers)
            .field("metrics_token", &self.metrics_token.as_ref().map(|_| "***"))
            .field("outbound", &self.outbound)
            .field("site_root", &self.site_root)
            .field("secure_cookies", &self.secure_cookies)
            .field("secret_key_file", &self.secret_key_file)
            .field("secret_key", &self.secret_key.as_ref().map(|_| "***"))
            .field("audit_checkpoint_interval", &self.audit_checkpoint_interval)
            .field("upgrade_sweep_interval", &self.upgrade_sweep_interval)
            .field("close_unrevised_after", &self.close_unrevised_after)
            .field("identity", &self.identity)
            .field("chat", &self.chat)
            .finish()
    }
}

// The settings that hold secrets show them as stars: a `Debug` of the whole
// command line (a panic message, a trace) must not carry a token.

impl std::fmt::Debug for ChatArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatArgs")
            .field("homeserver", &self.homeserver)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("token_file", &self.token_file)
            .field("review_room", &self.review_room)
            .field("platform_room", &self.platform_room)
            .field("team_review_rooms", &self.team_review_rooms)
            .field("allowed_servers", &self.allowed_servers)
            .finish()
    }
}

impl std::fmt::Debug for CommandArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let servers: Vec<String> = self
            .postgres_servers
            .iter()
            .map(|s| redact_pair(s))
            .collect();
        f.debug_struct("CommandArgs")
            .field("allow", &self.allow)
            .field("pass_env", &self.pass_env)
            .field("timeout", &self.timeout)
            .field("postgres_servers", &servers)
            .finish()
    }
}

impl std::fmt::Debug for OutboundArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tokens: Vec<String> = self
            .pipeline_tokens
            .iter()
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) => format!("{name}=***"),
                None => "***".to_string(),
            })
            .collect();
        f.debug_struct("OutboundArgs")
            .field("allow_hosts", &self.allow_hosts)
            .field("pipeline_tokens", &tokens)
            .finish()
    }
}

/// `name=postgres://user:secret@host/db` → `name=postgres://user:***@host/db`.
fn redact_pair(pair: &str) -> String {
    match pair.split_once('=') {
        Some((name, url)) => format!("{name}={}", redact_url(url)),
        None => redact_url(pair),
    }
}

/// `postgres://user:secret@host/db?password=secret` →
/// `postgres://user:***@host/db?password=***`: the URL's password and the query
/// options a client reads a password from.
pub fn redact_url(text: &str) -> String {
    const SECRET_OPTIONS: [&str; 2] = ["password", "sslpassword"];
    let Ok(mut url) = url::Url::parse(text) else {
        return redact_unparsed(text);
    };
    if url.password().is_some() && url.set_password(Some("***")).is_err() {
        return redact_unparsed(text);
    }
    let secret_query = url
        .query_pairs()
        .any(|(key, _)| SECRET_OPTIONS.contains(&key.as_ref()));
    if secret_query {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(key, value)| {
                let value = if SECRET_OPTIONS.contains(&key.as_ref()) {
                    "***".to_string()
                } else {
                    value.into_owned()
                };
                (key.into_owned(), value)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    // The pairs' encoder writes `***` as `%2A%2A%2A`.
    url.to_string().replace("%2A%2A%2A", "***")
}

/// A text no URL parser reads: whatever stands before the last `@` (after a
/// scheme) goes, and so does any query.
fn redact_unparsed(text: &str) -> String {
    let without_query = text.split('?').next().unwrap_or_default();
    match without_query.rfind('@') {
        Some(at) => {
            let start = without_query.find("://").map_or(0, |i| i + 3).min(at);
            format!("{}***{}", &without_query[..start], &without_query[at..])
        }
        None => without_query.to_string(),
    }
}

/// A setting that stops start-up, named the way the operator wrote it.
#[derive(Debug, thiserror::Error)]
#[error("{setting}: {message}")]
pub struct SettingError {
    pub setting: &'static str,
    pub message: String,
}

/// Settings after checking: directories exist, URLs are complete.
#[derive(Clone)]
pub struct Settings {
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    pub catalog: PathBuf,
    pub demo: bool,
    pub database_url: String,
    pub gitops_repo: PathBuf,
    /// The branch and the remote the GitOps driver commits and pushes to.
    pub gitops: GitOpsSettings,
    /// What the command driver may run.
    pub command: CommandSettings,
    /// How many jobs run at once, and how claims are kept and handed back.
    pub workers: WorkerSettings,
    /// What `/metrics` asks a scraper for.
    pub metrics_token: Option<Secret>,
    /// Where checks and pipeline calls may connect to.
    pub outbound: OutboundSettings,
    pub site_root: PathBuf,
    pub secure_cookies: bool,
    /// The key that encrypts secret parameters, when one was configured.
    pub secret_key: Option<SecretKey>,
    /// How often the server writes an audit checkpoint.
    pub audit_checkpoint_interval: Duration,
    /// How often the server looks for assets whose templates changed.
    pub upgrade_sweep_interval: Duration,
    /// How long a request sent back for changes waits for a revision before it
    /// is cancelled; `None`: for ever.
    pub close_unrevised_after: Option<Duration>,
    pub identity: IdentitySettings,
    /// The chat bot's homeserver and rooms; `None` when ChatOps is off.
    pub chat: Option<ChatSettings>,
}

/// A secret from the settings; `Debug` shows stars.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// Sign-in and sessions after checking.
#[derive(Debug, Clone)]
pub struct IdentitySettings {
    /// `scheme://host[:port]` without a trailing slash, when configured.
    pub public_origin: Option<String>,
    pub local_accounts: bool,
    pub session_idle_timeout: Duration,
    pub session_absolute_timeout: Duration,
    /// How long an identity provider's roles and teams hold without a sign-in there.
    pub provider_confirmation: Duration,
    /// API calls per minute and token; 0 for no limit.
    pub token_calls_per_minute: u32,
    /// Pre-checks per minute and person; 0 for no limit.
    pub checks_per_minute: u32,
    /// The networks of the reverse proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    pub oidc: Option<OidcSettings>,
}

impl Default for IdentitySettings {
    fn default() -> Self {
        IdentitySettings {
            public_origin: None,
            local_accounts: true,
            session_idle_timeout: Duration::from_secs(8 * 3600),
            session_absolute_timeout: Duration::from_secs(12 * 3600),
            provider_confirmation: Duration::from_secs(30 * 86_400),
            token_calls_per_minute: 600,
            checks_per_minute: 600,
            trusted_proxies: Vec::new(),
            oidc: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct OidcSettings {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<Secret>,
    pub scopes: Vec<String>,
    pub redirect_url: String,
    /// Shown on the sign-in button.
    pub name: String,
    pub roles_claim: String,
    pub teams_claim: String,
    /// Claim values and the roles they grant; without a map, values that are role
    /// names grant that role.
    pub role_map: Option<ClaimMap<Role>>,
    /// Claim values (without a leading `/`) and the teams they grant; without a
    /// map, each value is a team key.
    pub team_map: Option<ClaimMap<String>>,
}

/// What each claim value grants.
pub type ClaimMap<T> = BTreeMap<String, Vec<T>>;

pub const ROLE_MAP_SETTING: &str = "--oidc-role-map (SLIPWAY_OIDC_ROLE_MAP)";
pub const TEAM_MAP_SETTING: &str = "--oidc-team-map (SLIPWAY_OIDC_TEAM_MAP)";

impl OidcSettings {
    /// Every team the team map grants must be a key of the catalog's teams
    /// dictionary (`known`); checked once the catalog is loaded.
    pub fn check_team_map(&self, known: &[String]) -> Result<(), SettingError> {
        let Some(map) = &self.team_map else {
            return Ok(());
        };
        for (value, teams) in map {
            if let Some(team) = teams.iter().find(|t| !known.contains(t)) {
                return Err(setting_error(
                    TEAM_MAP_SETTING,
                    format!(
                        "{value}={team}: the catalog's teams dictionary has no team {team:?} (it has {})",
                        known.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// `value=target` pairs (each item may hold several, separated by commas), a value
/// listed once per target it grants; `None` when no pair is given. Claim values are kept as `claim_value` gives them; targets are
/// read by `target`, which says why one is refused.
fn parse_claim_map<T: PartialEq>(
    setting: &'static str,
    pairs: &[String],
    claim_value: fn(&str) -> &str,
    target: fn(&str) -> Result<T, String>,
) -> Result<Option<ClaimMap<T>>, SettingError> {
    let mut map: ClaimMap<T> = BTreeMap::new();
    let pairs = pairs.iter().flat_map(|p| p.split(',')).map(str::trim);
    for pair in pairs.filter(|p| !p.is_empty()) {
        let Some((value, granted)) = pair.split_once('=') else {
            return Err(setting_error(
                setting,
                format!("{pair:?} is not claim-value=target; separate pairs with commas"),
            ));
        };
        let (value, granted) = (claim_value(value.trim()), granted.trim());
        if value.is_empty() || granted.is_empty() {
            return Err(setting_error(
                setting,
                format!("{pair:?} lacks its claim value or what it grants"),
            ));
        }
        let granted =
            target(granted).map_err(|m| setting_error(setting, format!("{pair:?}: {m}")))?;
        let targets = map.entry(value.to_string()).or_default();
        if !targets.contains(&granted) {
            targets.push(granted);
        }
    }
    Ok((!map.is_empty()).then_some(map))
}

fn any_text(items: &[String]) -> bool {
    items.iter().any(|i| !i.trim().is_empty())
}

fn role_target(text: &str) -> Result<Role, String> {
    Role::parse(text).ok_or_else(|| {
        let names: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
        format!("{text:?} is not a Slipway role ({})", names.join(", "))
    })
}

fn team_target(text: &str) -> Result<String, String> {
    if text.contains(|c: char| c.is_whitespace() || c == '=') {
        return Err(format!("{text:?} is not a team key"));
    }
    Ok(text.to_string())
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("addr", &self.addr)
            .field("data_dir", &self.data_dir)
            .field("catalog", &self.catalog)
            .field("demo", &self.demo)
            .field("database_url", &redact_url(&self.database_url))
            .field("gitops_repo", &self.gitops_repo)
            .field("gitops", &self.gitops)
            .field("command", &self.command)
            .field("site_root", &self.site_root)
            .field("secure_cookies", &self.secure_cookies)
            .field("secret_key", &self.secret_key)
            .field("audit_checkpoint_interval", &self.audit_checkpoint_interval)
            .field("upgrade_sweep_interval", &self.upgrade_sweep_interval)
            .field("close_unrevised_after", &self.close_unrevised_after)
            .field("identity", &self.identity)
            .field("chat", &self.chat)
            .finish()
    }
}

impl ServeArgs {
    pub fn check(self) -> Result<Settings, SettingError> {
        std::fs::create_dir_all(&self.data_dir).map_err(|e| SettingError {
            setting: "--data-dir (SLIPWAY_DATA_DIR)",
            message: format!("cannot create {}: {e}", self.data_dir.display()),
        })?;
        if !self.catalog.is_dir() {
            return Err(SettingError {
                setting: "--catalog (SLIPWAY_CATALOG)",
                message: format!("{} is not a directory", self.catalog.display()),
            });
        }
        let database_url = match self.database_url.filter(|u| !u.trim().is_empty()) {
            Some(url)
                if url.starts_with("sqlite:")
                    || url.starts_with("postgres:")
                    || url.starts_with("postgresql:") =>
            {
                url
            }
            Some(url) => {
                return Err(SettingError {
                    setting: "--database-url (DATABASE_URL)",
                    message: format!(
                        "must start with sqlite: or postgres:, got {:?}",
                        redact_url(&url)
                    ),
                });
            }
            None => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("slipway.db").display()
            ),
        };
        let command_settings = self.command.check(&self.data_dir)?;
        let gitops_repo = self
            .gitops_repo
            .unwrap_or_else(|| self.data_dir.join("gitops.git"));
        let secret_key = secret_key(self.secret_key_file.as_deref(), self.secret_key.as_deref())?;
        let audit_checkpoint_interval =
            parse_duration(&self.audit_checkpoint_interval).map_err(|message| {
                setting_error(
                    "--audit-checkpoint-interval (SLIPWAY_AUDIT_CHECKPOINT_INTERVAL)",
                    message,
                )
            })?;
        let upgrade_sweep_interval = parse_duration(&self.upgrade_sweep_interval)
            .and_then(|every| {
                (every >= MIN_UPGRADE_SWEEP_INTERVAL)
                    .then_some(every)
                    .ok_or_else(|| {
                        format!(
                            "{:?} is too often: a sweep reads every asset, so at least 1m",
                            self.upgrade_sweep_interval
                        )
                    })
            })
            .map_err(|message| {
                setting_error(
                    "--upgrade-sweep-interval (SLIPWAY_UPGRADE_SWEEP_INTERVAL)",
                    message,
                )
            })?;
        let close_unrevised_after =
            close_unrevised_after(&self.close_unrevised_after).map_err(|message| {
                setting_error(
                    "--close-unrevised-after (SLIPWAY_CLOSE_UNREVISED_AFTER)",
                    message,
                )
            })?;
        let identity = self.identity.check()?;
        // People reach an https:// public URL over TLS (maybe through a proxy that
        // ends it): the cookie must then never travel in the clear.
        let secure_cookies = self.secure_cookies
            || identity
                .public_origin
                .as_deref()
                .is_some_and(|origin| origin.starts_with("https://"));
        Ok(Settings {
            addr: self.addr,
            data_dir: self.data_dir,
            catalog: self.catalog,
            demo: self.demo,
            database_url,
            gitops_repo,
            gitops: self.gitops.check()?,
            command: command_settings,
            workers: self.workers.check()?,
            metrics_token: metrics_token(self.metrics_token)?,
            outbound: self.outbound.check()?,
            site_root: self.site_root,
            secure_cookies,
            secret_key,
            audit_checkpoint_interval,
            upgrade_sweep_interval,
            close_unrevised_after,
            identity,
            chat: self.chat.check()?,
        })
    }
}

/// The configured key, from its file or the environment; never both, so nobody
/// wonders which one encrypts.
/// The key opens every stored secret: a file others may read is said loudly (not
/// refused: a Kubernetes secret volume mounts files 0644 unless told otherwise).
fn warn_if_others_may_read(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            path = %path.display(),
            mode = format!("{:o}", meta.permissions().mode() & 0o777),
            "the secret key file may be read by other users; make it readable by the server's user only (chmod 600, or defaultMode: 0400 on a Kubernetes secret volume)"
        );
    }
}

pub(crate) fn secret_key(
    file: Option<&Path>,
    text: Option<&str>,
) -> Result<Option<SecretKey>, SettingError> {
    let text = text.filter(|t| !t.trim().is_empty());
    match (file, text) {
        (Some(_), Some(_)) => Err(SettingError {
            setting: "--secret-key-file (SLIPWAY_SECRET_KEY_FILE)",
            message: "give the key either in a file or in SLIPWAY_SECRET_KEY, not both".into(),
        }),
        (Some(path), None) => {
            let setting = "--secret-key-file (SLIPWAY_SECRET_KEY_FILE)";
            let content = std::fs::read_to_string(path).map_err(|e| SettingError {
                setting,
                message: format!("cannot read {}: {e}", path.display()),
            })?;
            warn_if_others_may_read(path);
            SecretKey::parse(&content)
                .map(Some)
                .map_err(|message| SettingError {
                    setting,
                    message: format!("{}: {message}", path.display()),
                })
        }
        (None, Some(text)) => SecretKey::parse(text)
            .map(Some)
            .map_err(|message| SettingError {
                setting: "--secret-key (SLIPWAY_SECRET_KEY)",
                message,
            }),
        (None, None) => Ok(None),
    }
}

fn metrics_token(token: Option<String>) -> Result<Option<Secret>, SettingError> {
    match token
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
    {
        Some(token) if token.len() < 16 || !token.chars().all(|c| c.is_ascii_graphic()) => {
            Err(setting_error(
                "--metrics-token (SLIPWAY_METRICS_TOKEN)",
                "must be at least 16 printable characters without spaces",
            ))
        }
        token => Ok(token.map(Secret::new)),
    }
}

fn setting_error(setting: &'static str, message: impl Into<String>) -> SettingError {
    SettingError {
        setting,
        message: message.into(),
    }
}

/// `30s`, `15m`, `8h`, `2d`: a positive whole number and one unit.
/// A sweep reads every asset of every type: more often than this is a load, not
/// a faster upgrade.
const MIN_UPGRADE_SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// Shorter, and a request sent back for changes would be closed before its
/// requester had a working day to read the comment.
const MIN_CLOSE_UNREVISED_AFTER: Duration = Duration::from_secs(3600);

/// `--close-unrevised-after`: a duration of at least an hour, or `off`.
fn close_unrevised_after(text: &str) -> Result<Option<Duration>, String> {
    if text.trim().eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let after = parse_duration(text)?;
    if after < MIN_CLOSE_UNREVISED_AFTER {
        return Err(format!(
            "{text:?} is too short: a requester needs time to revise, so at least 1h (or off)"
        ));
    }
    Ok(Some(after))
}

pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{text:?} has no unit; write e.g. 30m, 8h or 1d"))?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|e: std::num::ParseIntError| {
        if matches!(e.kind(), std::num::IntErrorKind::PosOverflow) {
            format!(
                "{text:?} is longer than the {MAX_DURATION_DAYS} days (ten years) a duration may be"
            )
        } else {
            format!("{text:?} does not start with a whole number")
        }
    })?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{text:?}: the unit must be s, m, h or d")),
    };
    if number == 0 {
        return Err(format!("{text:?} must be longer than zero"));
    }
    match number.checked_mul(seconds) {
        Some(total) if total <= MAX_DURATION_SECONDS => Ok(Duration::from_secs(total)),
        _ => Err(format!(
            "{text:?} is longer than the {MAX_DURATION_DAYS} days (ten years) a duration may be"
        )),
    }
}

/// The longest duration a setting takes. Durations are added to and subtracted
/// from timestamps in milliseconds (an `i64`); anything longer than ten years is
/// a typo, and far beyond it the arithmetic would wrap.
const MAX_DURATION_DAYS: u64 = 3650;
const MAX_DURATION_SECONDS: u64 = MAX_DURATION_DAYS * 86_400;

/// An http(s) URL reduced to its origin; anything after the host is refused, as the
/// portal serves from the root.
fn parse_origin(setting: &'static str, text: &str) -> Result<String, SettingError> {
    let url = openidconnect::url::Url::parse(text.trim())
        .map_err(|e| setting_error(setting, format!("{text:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(setting_error(
            setting,
            format!("{text:?} must be an http:// or https:// URL with a host"),
        ));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(setting_error(
            setting,
            format!("{text:?} must be the bare address, without a path or query"),
        ));
    }
    Ok(url.origin().ascii_serialization())
}

/// An IPv4 network written the IPv6 way (`::ffff:10.0.0.0/104`), as the IPv4
/// network it is: a peer's address is compared in its IPv4 form.
fn as_peers_are_seen(network: IpNet) -> IpNet {
    if let IpNet::V6(v6) = network
        && v6.prefix_len() >= 96
        && let Some(v4) = v6.addr().to_ipv4_mapped()
        && let Ok(v4) = ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96)
    {
        return IpNet::V4(v4.trunc());
    }
    network
}

/// The proxies' networks: each entry a network in CIDR form or a single address
/// (empty entries, as a trailing comma leaves, are skipped).
fn trusted_proxies(entries: &[String]) -> Result<Vec<IpNet>, SettingError> {
    const TRUSTED_PROXIES: &str = "--trusted-proxies (SLIPWAY_TRUSTED_PROXIES)";
    let mut networks = Vec::new();
    for entry in entries.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
        let network = match entry.parse::<IpNet>() {
            Ok(network) => as_peers_are_seen(network.trunc()),
            Err(_) => match entry.parse::<IpAddr>() {
                Ok(address) => IpNet::from(address.to_canonical()),
                Err(_) => {
                    return Err(setting_error(
                        TRUSTED_PROXIES,
                        format!(
                            "{entry:?} is neither an address nor a network in CIDR form \
                             (write e.g. 10.0.0.0/8, 2001:db8::/32 or 192.0.2.10)"
                        ),
                    ));
                }
            },
        };
        // Every peer a proxy: any client could then name the address it is
        // counted under, and the throttle would hold back nobody.
        if network.prefix_len() == 0 {
            return Err(setting_error(
                TRUSTED_PROXIES,
                format!(
                    "{entry:?} trusts every address, which would let any client choose the \
                     address it is counted under; list the proxies' own networks"
                ),
            ));
        }
        networks.push(network);
    }
    Ok(networks)
}

impl IdentityArgs {
    pub fn check(self) -> Result<IdentitySettings, SettingError> {
        const PUBLIC_URL: &str = "--public-url (SLIPWAY_PUBLIC_URL)";
        const IDLE: &str = "--session-idle-timeout (SLIPWAY_SESSION_IDLE_TIMEOUT)";
        const ABSOLUTE: &str = "--session-absolute-timeout (SLIPWAY_SESSION_ABSOLUTE_TIMEOUT)";
        let public_origin = self
            .public_url
            .as_deref()
            .filter(|u| !u.trim().is_empty())
            .map(|u| parse_origin(PUBLIC_URL, u))
            .transpose()?;
        let idle =
            parse_duration(&self.session_idle_timeout).map_err(|m| setting_error(IDLE, m))?;
        let absolute = parse_duration(&self.session_absolute_timeout)
            .map_err(|m| setting_error(ABSOLUTE, m))?;
        if absolute < idle {
            return Err(setting_error(
                ABSOLUTE,
                format!(
                    "{} is shorter than the idle timeout {}; it must be at least as long",
                    self.session_absolute_timeout, self.session_idle_timeout
                ),
            ));
        }
        const CONFIRMATION: &str = "--provider-confirmation (SLIPWAY_PROVIDER_CONFIRMATION)";
        let provider_confirmation = parse_duration(&self.provider_confirmation)
            .map_err(|m| setting_error(CONFIRMATION, m))?;
        if provider_confirmation < absolute {
            return Err(setting_error(
                CONFIRMATION,
                format!(
                    "{} is shorter than a session lasts ({}): a session would outlive its confirmation",
                    self.provider_confirmation, self.session_absolute_timeout
                ),
            ));
        }
        let trusted_proxies = trusted_proxies(&self.trusted_proxies)?;
        let oidc = self.check_oidc(public_origin.as_deref())?;
        if !self.local_accounts && oidc.is_none() {
            return Err(setting_error(
                "--local-accounts (SLIPWAY_LOCAL_ACCOUNTS)",
                "password sign-in is off and no --oidc-issuer (SLIPWAY_OIDC_ISSUER) is set: nobody could sign in",
            ));
        }
        Ok(IdentitySettings {
            public_origin,
            local_accounts: self.local_accounts,
            session_idle_timeout: idle,
            session_absolute_timeout: absolute,
            provider_confirmation,
            token_calls_per_minute: self.token_calls_per_minute,
            checks_per_minute: self.checks_per_minute,
            trusted_proxies,
            oidc,
        })
    }

    fn check_oidc(
        &self,
        public_origin: Option<&str>,
    ) -> Result<Option<OidcSettings>, SettingError> {
        const ISSUER: &str = "--oidc-issuer (SLIPWAY_OIDC_ISSUER)";
        const CLIENT_ID: &str = "--oidc-client-id (SLIPWAY_OIDC_CLIENT_ID)";
        const SECRET_FILE: &str = "--oidc-client-secret-file (SLIPWAY_OIDC_CLIENT_SECRET_FILE)";
        const REDIRECT: &str = "--oidc-redirect-url (SLIPWAY_OIDC_REDIRECT_URL)";
        const SCOPES: &str = "--oidc-scopes (SLIPWAY_OIDC_SCOPES)";
        let Some(issuer) = self.oidc_issuer.as_deref().filter(|i| !i.trim().is_empty()) else {
            for (setting, given) in [
                (CLIENT_ID, self.oidc_client_id.is_some()),
                (ROLE_MAP_SETTING, any_text(&self.oidc_role_map)),
                (TEAM_MAP_SETTING, any_text(&self.oidc_team_map)),
            ] {
                if given {
                    return Err(setting_error(
                        setting,
                        "is set but --oidc-issuer (SLIPWAY_OIDC_ISSUER) is not",
                    ));
                }
            }
            return Ok(None);
        };
        let issuer = issuer.trim().to_string();
        let parsed = openidconnect::url::Url::parse(&issuer)
            .map_err(|e| setting_error(ISSUER, format!("{issuer:?} is not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(setting_error(
                ISSUER,
                format!("{issuer:?} must be an http:// or https:// URL"),
            ));
        }
        let client_id = self
            .oidc_client_id
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .ok_or_else(|| setting_error(CLIENT_ID, "is required with --oidc-issuer"))?
            .to_string();
        let from_env = self.oidc_client_secret.as_deref().filter(|s| !s.is_empty());
        let client_secret = match (&self.oidc_client_secret_file, from_env) {
            (Some(_), Some(_)) => {
                return Err(setting_error(
                    SECRET_FILE,
                    "and SLIPWAY_OIDC_CLIENT_SECRET are both set; keep one",
                ));
            }
            (Some(path), None) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    setting_error(SECRET_FILE, format!("cannot read {}: {e}", path.display()))
                })?;
                let secret = text.trim().to_string();
                if secret.is_empty() {
                    return Err(setting_error(
                        SECRET_FILE,
                        format!("{} is empty", path.display()),
                    ));
                }
                Some(Secret::new(secret))
            }
            (None, Some(secret)) => Some(Secret::new(secret.to_string())),
            (None, None) => None,
        };
        let scopes: Vec<String> = self
            .oidc_scopes
            .split_whitespace()
            .map(str::to_string)
            .collect();
        if !scopes.iter().any(|s| s == "openid") {
            return Err(setting_error(
                SCOPES,
                format!("{:?} must include openid", self.oidc_scopes),
            ));
        }
        let redirect_url = match (&self.oidc_redirect_url, public_origin) {
            (Some(url), _) if !url.trim().is_empty() => {
                let parsed = openidconnect::url::Url::parse(url.trim())
                    .map_err(|e| setting_error(REDIRECT, format!("{url:?} is not a URL: {e}")))?;
                if !matches!(parsed.scheme(), "http" | "https") {
                    return Err(setting_error(
                        REDIRECT,
                        format!("{url:?} must be an http:// or https:// URL"),
                    ));
                }
                parsed.to_string()
            }
            (_, Some(origin)) => format!("{origin}/auth/oidc/callback"),
            _ => {
                return Err(setting_error(
                    REDIRECT,
                    "is required with --oidc-issuer unless --public-url (SLIPWAY_PUBLIC_URL) is set",
                ));
            }
        };
        let name = self
            .oidc_name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .or_else(|| parsed.host_str().map(str::to_string))
            .unwrap_or_else(|| "single sign-on".into());
        for (setting, claim) in [
            (
                "--oidc-roles-claim (SLIPWAY_OIDC_ROLES_CLAIM)",
                &self.oidc_roles_claim,
            ),
            (
                "--oidc-teams-claim (SLIPWAY_OIDC_TEAMS_CLAIM)",
                &self.oidc_teams_claim,
            ),
        ] {
            if claim.trim().is_empty() {
                return Err(setting_error(setting, "must name a claim"));
            }
        }
        let role_map = parse_claim_map(ROLE_MAP_SETTING, &self.oidc_role_map, |v| v, role_target)?;
        // Unmapped, a claim value that is a role's name grants it. Teams and
        // groups are often made by their members (GitLab, Entra ID): from the
        // claim that names them, a group someone calls `admin` must not make
        // them Slipway's admin.
        if role_map.is_none() && self.oidc_roles_claim.trim() == self.oidc_teams_claim.trim() {
            return Err(setting_error(
                ROLE_MAP_SETTING,
                format!(
                    "is required when roles come from the teams' claim ({:?}): list the values that grant each role, e.g. slipway-admins=admin",
                    self.oidc_teams_claim.trim()
                ),
            ));
        }
        // Group paths come with and without their leading `/`: both match.
        let team_map = parse_claim_map(
            TEAM_MAP_SETTING,
            &self.oidc_team_map,
            |v| v.trim_start_matches('/'),
            team_target,
        )?;
        if team_map.is_none() && !self.oidc_teams_as_named {
            return Err(setting_error(
                TEAM_MAP_SETTING,
                format!(
                    "is required: list the values of the {:?} claim that grant each team, e.g. grp-payments=payments; or, where only the provider's administrators make its groups, take them as team names with --oidc-teams-as-named true (SLIPWAY_OIDC_TEAMS_AS_NAMED)",
                    self.oidc_teams_claim.trim()
                ),
            ));
        }
        Ok(Some(OidcSettings {
            issuer,
            client_id,
            client_secret,
            scopes,
            redirect_url,
            name,
            roles_claim: self.oidc_roles_claim.trim().to_string(),
            teams_claim: self.oidc_teams_claim.trim().to_string(),
            role_map,
            team_map,
        }))
    }
}

/// A variable name every POSIX shell passes on to the programs it starts.
fn is_portable_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_the_password_only() {
        assert_eq!(
            redact_url("postgres://u:pw@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite://data/x.db"), "sqlite://data/x.db");
        assert_eq!(
            redact_url("sqlite://data/x.db?mode=rwc"),
            "sqlite://data/x.db?mode=rwc"
        );
    }

    /// sqlx also reads a password from the query, and a password may hold an `@`.
    #[test]
    fn a_password_in_the_query_or_holding_an_at_is_redacted_too() {
        for (given, shown) in [
            (
                "postgres://slipway@db/slipway?password=hunter2&sslmode=require",
                "postgres://slipway@db/slipway?password=***&sslmode=require",
            ),
            (
                "postgres://u:p%40ss@db/x?sslpassword=hunter2",
                "postgres://u:***@db/x?sslpassword=***",
            ),
            (
                "postgres://u:hunter2@db/x?application_name=a@b",
                "postgres://u:***@db/x?application_name=a@b",
            ),
            ("postgres://u:hun ter2@db/x", "postgres://u:***@db/x"),
            ("not a url u:hunter2@db?password=hunter2", "***@db"),
            ("postgres://u:hunter2@[::1/x", "postgres://***@[::1/x"),
        ] {
            let redacted = redact_url(given);
            assert!(!redacted.contains("hunter2"), "{redacted}");
            assert_eq!(redacted, shown, "{given}");
        }
    }

    #[test]
    fn allowed_check_hosts_are_read_and_a_url_among_them_names_the_setting() {
        let args = OutboundArgs {
            allow_hosts: vec![
                "grafana.internal".into(),
                " db.internal:5432".into(),
                "".into(),
            ],
            pipeline_tokens: vec!["github=ghp_x".into()],
        };
        match args.check() {
            Ok(settings) => {
                assert!(settings.allowed_hosts.allows("grafana.internal", 443));
                assert!(settings.allowed_hosts.allows("db.internal", 5432));
                assert!(!settings.allowed_hosts.allows("db.internal", 5433));
            }
            Err(e) => panic!("{e}"),
        }
        let args = OutboundArgs {
            allow_hosts: vec!["https://grafana.internal/".into()],
            pipeline_tokens: Vec::new(),
        };
        match args.check() {
            Ok(_) => panic!("a URL was taken for a host"),
            Err(e) => {
                assert_eq!(e.setting, crate::outbound::ALLOW_SETTING);
                assert!(e.message.contains("not a URL"), "{e}");
            }
        }
    }

    #[test]
    fn a_bad_database_url_names_the_setting() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let args = ServeArgs {
            database_url: Some("mysql://x".into()),
            ..args(dir.path())?
        };
        let error = args.check().err().ok_or("expected an error")?;
        assert!(
            error
                .to_string()
                .starts_with("--database-url (DATABASE_URL)"),
            "{error}"
        );
        Ok(())
    }

    #[test]
    fn a_missing_catalog_names_the_setting() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let args = ServeArgs {
            catalog: dir.path().join("nope"),
            ..args(dir.path())?
        };
        let error = args.check().err().ok_or("expected an error")?;
        assert!(
            error.to_string().starts_with("--catalog (SLIPWAY_CATALOG)"),
            "{error}"
        );
        Ok(())
    }

    #[test]
    fn the_upgrade_sweep_interval_is_checked() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let with = |every: &str| -> Result<Result<Duration, String>, Box<dyn std::error::Error>> {
            let mut serve = args(dir.path())?;
            serve.upgrade_sweep_interval = every.into();
            Ok(serve
                .check()
                .map(|settings| settings.upgrade_sweep_interval)
                .map_err(|e| e.to_string()))
        };
        assert_eq!(with("15m")?, Ok(Duration::from_secs(900)));
        assert_eq!(with("1m")?, Ok(Duration::from_secs(60)));
        for (bad, says) in [
            ("30s", "too often"),
            ("0h", "longer than zero"),
            ("hourly", "does not start with a whole number"),
            ("5", "no unit"),
            ("99999999999999999d", "longer than the 3650 days"),
        ] {
            let error = with(bad)?.err().ok_or(bad)?;
            assert!(
                error.starts_with("--upgrade-sweep-interval (SLIPWAY_UPGRADE_SWEEP_INTERVAL)")
                    && error.contains(says),
                "{bad}: {error}"
            );
        }
        Ok(())
    }

    #[test]
    fn the_gitops_remote_settings_are_checked_and_never_print_the_password()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let refused = |gitops: GitOpsArgs| -> Result<String, Box<dyn std::error::Error>> {
            let mut serve = args(dir.path())?;
            serve.gitops = gitops;
            Ok(serve.check().err().ok_or("expected a refusal")?.to_string())
        };
        let remote = |url: &str| GitOpsArgs {
            remote: Some(url.into()),
            ..GitOpsArgs::default()
        };
        let held = "holds credentials before its host; give them in --gitops-remote-username \
             and --gitops-remote-password (or its file) instead, to keep them out of logs";
        assert_eq!(
            refused(remote("http://bot:tok-canary@git.example/platform.git"))?,
            format!(
                "--gitops-remote (SLIPWAY_GITOPS_REMOTE): http://git.example/platform.git {held}"
            )
        );
        // A token given as the user name is as secret as a password.
        assert_eq!(
            refused(remote("git://ghp_tok-canary@git.example:9418/platform.git"))?,
            format!(
                "--gitops-remote (SLIPWAY_GITOPS_REMOTE): git://git.example:9418/platform.git {held}"
            )
        );
        assert!(
            refused(remote("https://github.com/acme/platform.git"))?
                .contains("https:// is not supported by this build"),
        );
        assert!(refused(remote("git@github.com:acme/platform.git"))?.contains("SSH address"));
        let ssh = refused(remote("ghp_tok-canary@github.com:acme/platform.git"))?;
        assert!(
            ssh.contains("\"…@github.com:acme/platform.git\" looks like an SSH address")
                && !ssh.contains("canary"),
            "{ssh}"
        );
        assert!(
            refused(GitOpsArgs {
                branch: "bad..name".into(),
                ..GitOpsArgs::default()
            })?
            .starts_with(
                "--gitops-branch (SLIPWAY_GITOPS_BRANCH): \"bad..name\" is not a valid branch name"
            )
        );
        assert!(
            refused(GitOpsArgs {
                password: Some("tok-canary".into()),
                ..GitOpsArgs::default()
            })?
            .contains("no --gitops-remote")
        );

        let mut serve = args(dir.path())?;
        serve.gitops = GitOpsArgs {
            branch: "deploy".into(),
            remote: Some("git://127.0.0.1:9418/platform.git".into()),
            password: Some("tok-canary".into()),
            ..GitOpsArgs::default()
        };
        assert!(!format!("{serve:?}").contains("tok-canary"));
        let settings = serve.check()?;
        assert!(!format!("{settings:?}").contains("tok-canary"));
        let remote = settings.gitops.remote.ok_or("a remote")?;
        assert_eq!(settings.gitops.branch, "deploy");
        let credentials = remote.credentials.ok_or("credentials")?;
        assert_eq!(credentials.username, "x-access-token");
        assert_eq!(credentials.password.expose(), "tok-canary");
        Ok(())
    }

    #[test]
    fn the_command_settings_are_read_from_lists() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let mut serve = args(dir.path())?;
        serve.command = CommandArgs {
            allow: vec!["psql".into(), " tofu ".into(), String::new()],
            pass_env: vec!["PGPASSWORD".into()],
            timeout: "2m".into(),
            postgres_servers: vec!["shared=postgres://admin:pw@db.internal/postgres".into()],
        };
        let settings = serve.check()?;
        assert_eq!(settings.command.allowed, ["psql", "tofu"]);
        assert_eq!(settings.command.pass_env, ["PGPASSWORD"]);
        assert_eq!(settings.command.default_timeout, Duration::from_secs(120));
        assert_eq!(
            settings.command.scratch_dir,
            dir.path().join("data/scratch")
        );
        assert_eq!(
            settings
                .command
                .postgres_servers
                .get("shared")
                .map(|s| s.host.as_str()),
            Some("db.internal")
        );
        let mut serve = args(dir.path())?;
        serve.command.postgres_servers = vec!["shared=mysql://root:pw@h".into()];
        let error = serve.check().err().ok_or("expected a refusal")?.to_string();
        assert!(
            error.starts_with("--postgres-servers (SLIPWAY_POSTGRES_SERVERS): ")
                && !error.contains(":pw@"),
            "{error}"
        );
        let mut serve = args(dir.path())?;
        serve.command.pass_env = vec!["PGPASSWORD=x".into()];
        let error = serve.check().err().ok_or("expected a refusal")?.to_string();
        assert!(
            error.starts_with("--command-pass-env (SLIPWAY_COMMAND_PASS_ENV): "),
            "{error}"
        );
        Ok(())
    }

    #[test]
    fn pass_env_names_are_ones_a_shell_passes_on() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        for bad in ["MY-TOKEN", "a.b", "1ST", "ÄPFEL"] {
            let mut serve = args(dir.path())?;
            serve.command.pass_env = vec![bad.into()];
            let error = serve.check().err().ok_or("expected a refusal")?.to_string();
            assert!(
                error.contains("is not a name a program can be handed"),
                "{error}"
            );
        }
        let mut serve = args(dir.path())?;
        serve.command.pass_env = vec!["KUBECONFIG".into(), "_X1".into()];
        assert!(serve.check().is_ok());
        Ok(())
    }

    fn args(dir: &Path) -> Result<ServeArgs, Box<dyn std::error::Error>> {
        Ok(ServeArgs {
            addr: "127.0.0.1:0".parse()?,
            data_dir: dir.join("data"),
            catalog: dir.to_path_buf(),
            demo: false,
            database_url: None,
            gitops_repo: None,
            gitops: GitOpsArgs::default(),
            command: CommandArgs::default(),
            workers: WorkerArgs::default(),
            metrics_token: None,
            outbound: OutboundArgs::default(),
            site_root: dir.to_path_buf(),
            secure_cookies: false,
            secret_key_file: None,
            secret_key: None,
            audit_checkpoint_interval: "10m".into(),
            upgrade_sweep_interval: "1h".into(),
            close_unrevised_after: "30d".into(),
            identity: IdentityArgs::default(),
            chat: ChatArgs::default(),
        })
    }

    #[test]
    fn the_secret_key_comes_from_a_file_or_the_environment_and_never_prints()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let hex_key = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        let mut from_env = args(dir.path())?;
        from_env.secret_key = Some(hex_key.into());
        assert!(!format!("{from_env:?}").contains(hex_key));
        let settings = from_env.check()?;
        assert!(settings.secret_key.is_some());
        assert!(!format!("{settings:?}").contains("0011"), "{settings:?}");

        let file = dir.path().join("key");
        std::fs::write(&file, "too short")?;
        let mut from_file = args(dir.path())?;
        from_file.secret_key_file = Some(file.clone());
        let error = from_file.check().err().ok_or("expected an error")?;
        assert!(
            error
                .to_string()
                .starts_with("--secret-key-file (SLIPWAY_SECRET_KEY_FILE): "),
            "{error}"
        );

        let mut both = args(dir.path())?;
        both.secret_key_file = Some(file);
        both.secret_key = Some(hex_key.into());
        let error = both.check().err().ok_or("expected an error")?;
        assert!(error.to_string().contains("not both"), "{error}");
        Ok(())
    }
    fn identity() -> IdentityArgs {
        IdentityArgs {
            oidc_issuer: Some("https://id.example.com/realms/main".into()),
            oidc_client_id: Some("slipway".into()),
            public_url: Some("https://slipway.example.com".into()),
            oidc_teams_as_named: true,
            ..IdentityArgs::default()
        }
    }

    fn refusal(args: IdentityArgs) -> String {
        args.check()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn a_complete_oidc_setting_derives_the_redirect_url() -> Result<(), SettingError> {
        let checked = identity().check()?;
        let oidc = checked
            .oidc
            .ok_or_else(|| setting_error("test", "no oidc"))?;
        assert_eq!(
            oidc.redirect_url,
            "https://slipway.example.com/auth/oidc/callback"
        );
        assert_eq!(oidc.name, "id.example.com");
        assert_eq!(oidc.scopes, vec!["openid", "profile", "email"]);
        assert_eq!(
            checked.public_origin.as_deref(),
            Some("https://slipway.example.com")
        );
        Ok(())
    }

    #[test]
    fn each_bad_identity_setting_is_named() {
        let cases: Vec<(IdentityArgs, &str)> = vec![
            (
                IdentityArgs {
                    oidc_client_id: None,
                    ..identity()
                },
                "--oidc-client-id (SLIPWAY_OIDC_CLIENT_ID)",
            ),
            (
                IdentityArgs {
                    oidc_issuer: Some("id.example.com".into()),
                    ..identity()
                },
                "--oidc-issuer (SLIPWAY_OIDC_ISSUER)",
            ),
            (
                IdentityArgs {
                    public_url: None,
                    ..identity()
                },
                "--oidc-redirect-url (SLIPWAY_OIDC_REDIRECT_URL)",
            ),
            (
                IdentityArgs {
                    public_url: Some("https://slipway.example.com/portal".into()),
                    ..identity()
                },
                "--public-url (SLIPWAY_PUBLIC_URL)",
            ),
            (
                IdentityArgs {
                    oidc_scopes: "profile email".into(),
                    ..identity()
                },
                "--oidc-scopes (SLIPWAY_OIDC_SCOPES)",
            ),
            (
                IdentityArgs {
                    oidc_client_secret_file: Some("/no/such/secret".into()),
                    ..identity()
                },
                "--oidc-client-secret-file (SLIPWAY_OIDC_CLIENT_SECRET_FILE)",
            ),
            (
                IdentityArgs {
                    local_accounts: false,
                    ..IdentityArgs::default()
                },
                "--local-accounts (SLIPWAY_LOCAL_ACCOUNTS)",
            ),
            (
                IdentityArgs {
                    session_idle_timeout: "8 hours".into(),
                    ..IdentityArgs::default()
                },
                "--session-idle-timeout (SLIPWAY_SESSION_IDLE_TIMEOUT)",
            ),
            (
                IdentityArgs {
                    session_absolute_timeout: "1h".into(),
                    ..IdentityArgs::default()
                },
                "--session-absolute-timeout (SLIPWAY_SESSION_ABSOLUTE_TIMEOUT)",
            ),
            (
                IdentityArgs {
                    provider_confirmation: "a month".into(),
                    ..IdentityArgs::default()
                },
                "--provider-confirmation (SLIPWAY_PROVIDER_CONFIRMATION)",
            ),
            (
                IdentityArgs {
                    provider_confirmation: "1h".into(),
                    ..IdentityArgs::default()
                },
                "--provider-confirmation (SLIPWAY_PROVIDER_CONFIRMATION)",
            ),
        ];
        for (args, setting) in cases {
            let message = refusal(args);
            assert!(message.starts_with(setting), "{setting}: {message}");
        }
    }

    #[test]
    fn role_and_team_maps_are_read_and_each_bad_pair_is_named() -> Result<(), SettingError> {
        let checked = IdentityArgs {
            oidc_role_map: vec![
                "slipway-admins=admin".into(),
                " platform-ops = platform ".into(),
                "slipway-admins=platform".into(),
                "slipway-admins=admin".into(),
                String::new(),
            ],
            oidc_team_map: vec!["grp-payments=payments".into(), "/org/ops=platform".into()],
            ..identity()
        }
        .check()?;
        let oidc = checked
            .oidc
            .ok_or_else(|| setting_error("test", "no oidc"))?;
        let roles = oidc
            .role_map
            .ok_or_else(|| setting_error("test", "no role map"))?;
        assert_eq!(
            roles.get("slipway-admins"),
            Some(&vec![Role::Admin, Role::Platform])
        );
        assert_eq!(roles.get("platform-ops"), Some(&vec![Role::Platform]));
        let teams = oidc
            .team_map
            .ok_or_else(|| setting_error("test", "no team map"))?;
        assert_eq!(
            teams.get("grp-payments"),
            Some(&vec!["payments".to_string()])
        );
        assert_eq!(
            teams.get("org/ops"),
            Some(&vec!["platform".to_string()]),
            "a leading / is dropped, as from the claim's values"
        );

        let unmapped = identity().check()?;
        let oidc = unmapped
            .oidc
            .ok_or_else(|| setting_error("test", "no oidc"))?;
        assert!(oidc.role_map.is_none() && oidc.team_map.is_none());

        for (args, setting, says) in [
            (
                IdentityArgs {
                    oidc_role_map: vec!["slipway-admins=superuser".into()],
                    ..identity()
                },
                ROLE_MAP_SETTING,
                "\"superuser\" is not a Slipway role (requester, reviewer, platform, auditor, admin)",
            ),
            (
                IdentityArgs {
                    oidc_role_map: vec!["slipway-admins".into()],
                    ..identity()
                },
                ROLE_MAP_SETTING,
                "is not claim-value=target",
            ),
            (
                IdentityArgs {
                    oidc_role_map: vec!["=admin".into()],
                    ..identity()
                },
                ROLE_MAP_SETTING,
                "lacks its claim value",
            ),
            (
                IdentityArgs {
                    oidc_team_map: vec!["grp-payments=".into()],
                    ..identity()
                },
                TEAM_MAP_SETTING,
                "lacks its claim value or what it grants",
            ),
            (
                IdentityArgs {
                    oidc_team_map: vec!["grp=pay ments".into()],
                    ..identity()
                },
                TEAM_MAP_SETTING,
                "is not a team key",
            ),
            (
                IdentityArgs {
                    oidc_role_map: vec!["slipway-admins=admin".into()],
                    ..IdentityArgs::default()
                },
                ROLE_MAP_SETTING,
                "--oidc-issuer (SLIPWAY_OIDC_ISSUER) is not",
            ),
            (
                IdentityArgs {
                    oidc_roles_claim: "groups".into(),
                    ..identity()
                },
                ROLE_MAP_SETTING,
                "is required when roles come from the teams' claim (\"groups\")",
            ),
            (
                IdentityArgs {
                    oidc_teams_as_named: false,
                    ..identity()
                },
                TEAM_MAP_SETTING,
                "is required: list the values of the \"groups\" claim",
            ),
        ] {
            let message = refusal(args);
            assert!(
                message.starts_with(setting) && message.contains(says),
                "{setting} / {says}: {message}"
            );
        }
        Ok(())
    }

    #[test]
    fn no_secret_setting_shows_in_the_debug_of_the_command_line()
    -> Result<(), Box<dyn std::error::Error>> {
        let secrets = [
            "metrics-canary-1",
            "matrix-canary-2",
            "pipeline-canary-3",
            "pgadmin-canary-4",
            "git-canary-5",
            "oidc-canary-6",
            "db-canary-7",
        ];
        let cli = Cli::try_parse_from([
            "slipway",
            "serve",
            "--metrics-token",
            secrets[0],
            "--matrix-token",
            secrets[1],
            "--pipeline-tokens",
            &format!("github={}", secrets[2]),
            "--postgres-servers",
            &format!(
                "shared=postgres://admin:{}@127.0.0.1:5432/postgres",
                secrets[3]
            ),
            "--gitops-remote-password",
            secrets[4],
            "--oidc-client-secret",
            secrets[5],
            "--database-url",
            &format!("postgres://slipway:{}@db/slipway", secrets[6]),
        ])?;
        let shown = format!("{cli:?}");
        for secret in secrets {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("github=***"), "{shown}");
        Ok(())
    }

    #[test]
    fn trusted_proxies_are_networks_or_addresses() -> Result<(), Box<dyn std::error::Error>> {
        let cli = Cli::try_parse_from([
            "slipway",
            "serve",
            "--trusted-proxies",
            "10.0.0.0/8, 192.0.2.10,2001:db8::1/32,::ffff:172.16.0.0/108,",
        ])?;
        let Command::Serve(serve) = cli.command else {
            return Err("not parsed as serve".into());
        };
        let checked = serve.identity.check()?;
        let shown: Vec<String> = checked
            .trusted_proxies
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            shown,
            [
                "10.0.0.0/8",
                "192.0.2.10/32",
                "2001:db8::/32",
                "172.16.0.0/12"
            ],
            "an IPv4 network written the IPv6 way is compared as IPv4"
        );
        for (given, says) in [
            ("10.0.0.0/33", "is neither an address nor a network"),
            ("proxy.internal", "is neither an address nor a network"),
            ("0.0.0.0/0", "trusts every address"),
            ("::/0", "trusts every address"),
        ] {
            let message = refusal(IdentityArgs {
                trusted_proxies: vec!["10.0.0.1".into(), given.into()],
                ..IdentityArgs::default()
            });
            assert!(
                message.starts_with("--trusted-proxies (SLIPWAY_TRUSTED_PROXIES): ")
                    && message.contains(given)
                    && message.contains(says),
                "{given}: {message}"
            );
        }
        Ok(())
    }

    #[test]
    fn a_user_command_names_its_account_apart_from_the_remotes_user_name()
    -> Result<(), Box<dyn std::error::Error>> {
        for command in ["disable", "enable", "set-password"] {
            let cli = Cli::try_parse_from([
                "slipway",
                "user",
                command,
                "admin",
                "--gitops-remote-username",
                "bot",
            ])?;
            let Command::User(
                UserCommand::Disable { username, settings }
                | UserCommand::Enable { username, settings }
                | UserCommand::SetPassword { username, settings },
            ) = cli.command
            else {
                return Err(format!("{command}: not parsed as a user command").into());
            };
            assert_eq!(username, "admin", "{command}");
            assert_eq!(
                settings.gitops.username.as_deref(),
                Some("bot"),
                "{command}"
            );
        }
        let cli = Cli::try_parse_from(["slipway", "user", "set-password", "admin"])?;
        assert!(matches!(
            cli.command,
            Command::User(UserCommand::SetPassword { .. })
        ));
        Ok(())
    }

    #[test]
    fn the_map_flags_take_comma_separated_pairs() -> Result<(), Box<dyn std::error::Error>> {
        let cli = Cli::try_parse_from([
            "slipway",
            "serve",
            "--oidc-role-map",
            "slipway-admins=admin,platform-ops=platform",
            "--oidc-team-map",
            "grp-payments=payments",
        ])?;
        let Command::Serve(serve) = cli.command else {
            return Err("not parsed as serve".into());
        };
        assert_eq!(
            serve.identity.oidc_role_map,
            ["slipway-admins=admin", "platform-ops=platform"]
        );
        assert_eq!(serve.identity.oidc_team_map, ["grp-payments=payments"]);
        Ok(())
    }

    #[test]
    fn the_team_map_names_only_teams_of_the_catalog() -> Result<(), SettingError> {
        let oidc = IdentityArgs {
            oidc_team_map: vec!["grp-payments=payments,grp-ghost=ghosts".into()],
            ..identity()
        }
        .check()?
        .oidc
        .ok_or_else(|| setting_error("test", "no oidc"))?;
        let known = vec!["payments".to_string(), "platform".to_string()];
        let message = oidc
            .check_team_map(&known)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(
            message,
            "--oidc-team-map (SLIPWAY_OIDC_TEAM_MAP): grp-ghost=ghosts: the catalog's teams \
             dictionary has no team \"ghosts\" (it has payments, platform)"
        );
        let known = vec!["payments".to_string(), "ghosts".to_string()];
        oidc.check_team_map(&known)
    }

    #[test]
    fn an_https_public_url_makes_cookies_secure() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let settings = |public_url: Option<&str>, flag: bool| {
            let mut serve = args(dir.path())?;
            serve.secure_cookies = flag;
            serve.identity.public_url = public_url.map(str::to_string);
            serve
                .check()
                .map(|s| s.secure_cookies)
                .map_err(Box::<dyn std::error::Error>::from)
        };
        assert!(settings(Some("https://slipway.example.com"), false)?);
        assert!(!settings(Some("http://slipway.example.com"), false)?);
        assert!(!settings(None, false)?);
        assert!(settings(Some("http://127.0.0.1:3000"), true)?);
        assert!(settings(None, true)?);
        Ok(())
    }

    #[test]
    fn the_client_secret_never_shows_in_debug() -> Result<(), SettingError> {
        let args = IdentityArgs {
            oidc_client_secret: Some("hunter2-very-secret".into()),
            ..identity()
        };
        assert!(!format!("{args:?}").contains("hunter2"));
        let checked = args.check()?;
        assert!(!format!("{checked:?}").contains("hunter2"));
        Ok(())
    }

    #[test]
    fn durations_take_one_unit() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("8h"), Ok(Duration::from_secs(8 * 3600)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        for bad in ["", "8", "h", "0m", "8 h", "8w", "-1h"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn unrevised_requests_close_after_an_hour_at_the_soonest_or_never() {
        assert_eq!(
            close_unrevised_after("30d"),
            Ok(Some(Duration::from_secs(30 * 86_400)))
        );
        assert_eq!(
            close_unrevised_after("1h"),
            Ok(Some(Duration::from_secs(3600)))
        );
        assert_eq!(close_unrevised_after(" OFF "), Ok(None));
        for bad in ["59m", "1s", "0d", "never", "", "-1d", "3651d"] {
            assert!(close_unrevised_after(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn durations_stop_at_ten_years() {
        assert_eq!(
            parse_duration("3650d"),
            Ok(Duration::from_secs(3650 * 86_400))
        );
        for too_long in [
            "3651d",
            "999999999999d",
            "18446744073709551615s",
            "99999999999999999999h",
        ] {
            assert_eq!(
                parse_duration(too_long),
                Err(format!(
                    "{too_long:?} is longer than the 3650 days (ten years) a duration may be"
                ))
            );
        }
    }
}

#[cfg(test)]
mod chat_settings_tests {
    use super::*;

    fn args(homeserver: &str, token: Option<&str>) -> ChatArgs {
        ChatArgs {
            homeserver: Some(homeserver.into()),
            token: token.map(str::to_string),
            ..ChatArgs::default()
        }
    }

    #[test]
    fn the_servers_allowed_to_command_the_bot_are_server_names()
    -> Result<(), Box<dyn std::error::Error>> {
        let with = |servers: &str| ChatArgs {
            allowed_servers: Some(servers.into()),
            ..args("https://m.example.org", Some("t"))
        };
        let settings = with("example.org, Chat.Example.org:8448 example.org")
            .check()?
            .ok_or("chat is on")?;
        assert_eq!(
            settings.allowed_servers,
            ["example.org", "chat.example.org:8448"]
        );
        let default = args("https://m.example.org", Some("t"))
            .check()?
            .ok_or("on")?;
        assert!(default.allowed_servers.is_empty(), "the bot's own server");
        let error = with("example.org, @eve:evil.org")
            .check()
            .err()
            .ok_or("refused")?;
        assert_eq!(error.setting, ALLOWED_SERVERS_SETTING);
        Ok(())
    }

    #[test]
    fn a_server_name_is_a_host_name_or_an_address_with_an_optional_port() {
        for good in [
            "example.org",
            "chat.example.org:8448",
            "localhost",
            "xn--bcher-kva.example",
            "192.0.2.7",
            "192.0.2.7:8448",
            "[2001:db8::1]",
            "[2001:db8::1]:8448",
            "[::1]:1",
            "a1.b-c.d:65535",
        ] {
            assert!(is_server_name(good), "{good}");
        }
        for bad in [
            ":::",
            "[",
            "]",
            "[]",
            "[::1",
            "[::1]x",
            "[::1]:",
            "[example.org]",
            "[::1]:99999",
            "example.org:",
            "example.org:0",
            "example.org:65536",
            "example.org:80:80",
            "example.org:+80",
            ".example.org",
            "example.org.",
            "exa..mple.org",
            "-example.org",
            "example-.org",
            "ex_ample.org",
            "example.org/path",
            &format!("{}.org", "a".repeat(64)),
            &"a.".repeat(130),
        ] {
            assert!(!is_server_name(bad), "{bad}");
        }
    }

    #[test]
    fn chat_is_off_without_a_homeserver() -> Result<(), SettingError> {
        assert!(ChatArgs::default().check()?.is_none());
        assert!(args("  ", None).check()?.is_none());
        Ok(())
    }

    #[test]
    fn a_homeserver_needs_a_url_a_token_and_real_rooms() -> Result<(), Box<dyn std::error::Error>> {
        let error = args("matrix.example.org", Some("t"))
            .check()
            .err()
            .ok_or("url")?;
        assert_eq!(error.setting, MATRIX_HOMESERVER_SETTING);
        let error = args("https://m.example.org", None)
            .check()
            .err()
            .ok_or("token")?;
        assert_eq!(error.setting, MATRIX_TOKEN_SETTING);
        let error = args("https://m.example.org", Some("a b"))
            .check()
            .err()
            .ok_or("spaces")?;
        assert!(!error.message.contains("a b"), "a token is never repeated");
        let mut bad_room = args("https://m.example.org", Some("syt_x"));
        bad_room.review_room = Some("reviews".into());
        let error = bad_room.check().err().ok_or("room")?;
        assert!(error.setting.contains("review-room"), "{error}");

        let mut good = args("https://m.example.org/", Some(" syt_token \n"));
        good.review_room = Some("#reviews:example.org".into());
        good.platform_room = Some("!abc:example.org".into());
        let settings = good.check()?.ok_or("on")?;
        assert_eq!(settings.homeserver, "https://m.example.org");
        assert_eq!(settings.token.expose(), "syt_token");
        assert_eq!(format!("{:?}", settings.token), "***");
        assert_eq!(
            settings.review_room.as_deref(),
            Some("#reviews:example.org")
        );
        Ok(())
    }

    #[test]
    fn team_review_rooms_are_team_room_pairs() -> Result<(), Box<dyn std::error::Error>> {
        let with = |rooms: &str| {
            let mut chat = args("https://m.example.org", Some("syt_x"));
            chat.team_review_rooms = Some(rooms.to_string());
            chat.check()
        };
        let settings =
            with(" payments=#pay-reviews:example.org,\n search=!abc:example.org ")?.ok_or("on")?;
        let rooms: Vec<(&str, &str)> = settings
            .team_review_rooms
            .iter()
            .map(|(t, r)| (t.as_str(), r.as_str()))
            .collect();
        assert_eq!(
            rooms,
            [
                ("payments", "#pay-reviews:example.org"),
                ("search", "!abc:example.org")
            ]
        );
        let long = format!("payments=#{}:example.org", "x".repeat(300));
        let many: Vec<String> = (0..=MAX_TEAM_REVIEW_ROOMS)
            .map(|i| format!("t{i}=#r{i}:example.org"))
            .collect();
        for bad in [
            "payments",
            "=#r:example.org",
            "payments=",
            "payments=reviews",
            "pay ments=#r:example.org",
            "pay/ments=#r:example.org",
            "payments=#r:example.org payments=#s:example.org",
            "payments=#r\u{7}:example.org",
            long.as_str(),
            many.join(",").as_str(),
        ] {
            let error = with(bad).err().ok_or(format!("{bad:?} is refused"))?;
            assert_eq!(error.setting, TEAM_REVIEW_ROOMS_SETTING, "{bad:?}");
            assert!(error.message.chars().count() < 200, "{bad:?}: {error}");
        }
        Ok(())
    }
}
