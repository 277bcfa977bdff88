//! Settings from flags, each with an environment twin, checked before anything starts.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};

use crate::secrets::SecretKey;

#[derive(Debug, Parser)]
#[command(
    name = "slipway",
    version,
    about = "Slipway: a self-service portal for platform resources"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
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
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute the audit log's hash chain; exit status 1 if an event was edited or removed.
    Verify {
        /// Database URL: sqlite://… or postgres://…
        #[arg(long, env = "DATABASE_URL")]
        database_url: Option<String>,
        /// The data directory whose SQLite database to check when no URL is given.
        #[arg(long, env = "SLIPWAY_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// Load a catalog and report every problem in it; exit status 1 if there is one.
    Check {
        /// The catalog directory (default: ./catalog).
        #[arg(default_value = "catalog")]
        dir: PathBuf,
    },
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
    /// The built site (wasm, JavaScript, CSS) that cargo-leptos writes.
    #[arg(long, env = "SLIPWAY_SITE_ROOT", default_value = "target/site")]
    pub site_root: PathBuf,
    /// Mark session cookies Secure (set this behind TLS).
    #[arg(long, env = "SLIPWAY_SECURE_COOKIES", default_value_t = false)]
    pub secure_cookies: bool,
    /// A file holding the 32-byte key that encrypts secret parameters (64 hex digits
    /// or base64). Default in demo mode: <data-dir>/secret.key, generated on first start.
    #[arg(long, env = "SLIPWAY_SECRET_KEY_FILE")]
    pub secret_key_file: Option<PathBuf>,
    /// The key itself, instead of a file (prefer the environment: a flag shows in `ps`).
    #[arg(long, env = "SLIPWAY_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,
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
            .field("site_root", &self.site_root)
            .field("secure_cookies", &self.secure_cookies)
            .field("secret_key_file", &self.secret_key_file)
            .field("secret_key", &self.secret_key.as_ref().map(|_| "***"))
            .finish()
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..scheme_end + 3], user, &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
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
    pub site_root: PathBuf,
    pub secure_cookies: bool,
    /// The key that encrypts secret parameters, when one was configured.
    pub secret_key: Option<SecretKey>,
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
            .field("site_root", &self.site_root)
            .field("secure_cookies", &self.secure_cookies)
            .field("secret_key", &self.secret_key)
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
        let gitops_repo = self
            .gitops_repo
            .unwrap_or_else(|| self.data_dir.join("gitops.git"));
        let secret_key = secret_key(self.secret_key_file.as_deref(), self.secret_key.as_deref())?;
        Ok(Settings {
            addr: self.addr,
            data_dir: self.data_dir,
            catalog: self.catalog,
            demo: self.demo,
            database_url,
            gitops_repo,
            site_root: self.site_root,
            secure_cookies: self.secure_cookies,
            secret_key,
        })
    }
}

/// The configured key, from its file or the environment; never both, so nobody
/// wonders which one encrypts.
fn secret_key(file: Option<&Path>, text: Option<&str>) -> Result<Option<SecretKey>, SettingError> {
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
    }

    #[test]
    fn a_bad_database_url_names_the_setting() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let args = ServeArgs {
            addr: "127.0.0.1:0".parse()?,
            data_dir: dir.path().join("data"),
            catalog: dir.path().to_path_buf(),
            demo: false,
            database_url: Some("mysql://x".into()),
            gitops_repo: None,
            site_root: dir.path().to_path_buf(),
            secure_cookies: false,
            secret_key_file: None,
            secret_key: None,
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
            addr: "127.0.0.1:0".parse()?,
            data_dir: dir.path().join("data"),
            catalog: dir.path().join("nope"),
            demo: false,
            database_url: None,
            gitops_repo: None,
            site_root: dir.path().to_path_buf(),
            secure_cookies: false,
            secret_key_file: None,
            secret_key: None,
        };
        let error = args.check().err().ok_or("expected an error")?;
        assert!(
            error.to_string().starts_with("--catalog (SLIPWAY_CATALOG)"),
            "{error}"
        );
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
            site_root: dir.to_path_buf(),
            secure_cookies: false,
            secret_key_file: None,
            secret_key: None,
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
}
