//! First and later starts: what is seeded, and only once.

// Each test binary uses a part of the shared harness.
#[allow(dead_code, unused_macros)]
mod common;

use clap::Parser;
use common::{TestApp, TestResult, shipped_catalog};
use slipway_core::views::Role;
use slipway_core::views::TokenScope;
use slipway_server::config::{Cli, Command, Settings};
use slipway_server::services::{CallMeta, ServiceError, auth, tokens};
use slipway_server::storage::Engine;

#[tokio::test]
async fn a_second_start_seeds_nothing_twice() -> TestResult {
    let app = TestApp::start(Engine::Sqlite)
        .await?
        .ok_or("SQLite is always available")?;
    assert_eq!(app.count("users").await?, 3);
    let restarted = app.restart().await?;
    let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(&restarted.db.pool)
        .await?;
    assert_eq!(
        users, 3,
        "the demo users are seeded on the first start only"
    );
    let created: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM audit_events WHERE action = 'user.created'")
            .fetch_one(&restarted.db.pool)
            .await?;
    assert_eq!(created, 3);
    Ok(())
}

#[tokio::test]
async fn outside_demo_mode_the_first_start_creates_one_admin() -> TestResult {
    let dir = tempfile::tempdir()?;
    let settings = Settings {
        addr: "127.0.0.1:0".parse()?,
        data_dir: dir.path().to_path_buf(),
        catalog: shipped_catalog(),
        demo: false,
        database_url: format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("slipway.db").display()
        ),
        gitops_repo: dir.path().join("gitops.git"),
        gitops: Default::default(),
        command: Default::default(),
        workers: Default::default(),
        metrics_token: None,
        outbound: Default::default(),
        site_root: dir.path().to_path_buf(),
        secure_cookies: false,
        secret_key: Some(slipway_server::secrets::SecretKey::generate()),
        audit_checkpoint_interval: std::time::Duration::from_secs(600),
        upgrade_sweep_interval: std::time::Duration::from_secs(3600),
        close_unrevised_after: None,
        identity: Default::default(),
        chat: None,
    };
    let state = slipway_server::cli::build_state(settings.clone()).await?;
    let users: Vec<(String, String)> = sqlx::query_as("SELECT username, roles FROM users")
        .fetch_all(&state.db.pool)
        .await?;
    assert_eq!(
        users,
        vec![("admin".to_string(), Role::Admin.as_str().to_string())]
    );
    // The password is in a file only the server's user may read, not in the log.
    let file = dir.path().join(auth::INITIAL_ADMIN_PASSWORD_FILE);
    let written = std::fs::read_to_string(&file)?;
    let password = written.trim_end_matches('\n');
    assert_eq!(password.len(), 20, "{written:?}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file)?.permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    auth::login(
        &state,
        "admin",
        password,
        slipway_server::services::Channel::Portal,
        &Default::default(),
    )
    .await?;
    let refused = auth::login(
        &state,
        "alice",
        "alice-demo-pw",
        slipway_server::services::Channel::Portal,
        &Default::default(),
    )
    .await;
    assert!(
        matches!(refused, Err(ServiceError::Forbidden(_))),
        "no demo user outside demo mode: {refused:?}"
    );
    let again = slipway_server::cli::build_state(settings).await?;
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(&again.db.pool)
        .await?;
    assert_eq!(count, 1, "a second start creates no second admin");
    assert_eq!(
        std::fs::read_to_string(&file)?,
        written,
        "a second start writes no new password"
    );
    Ok(())
}

#[tokio::test]
async fn outside_demo_mode_a_catalog_with_secrets_needs_a_key() -> TestResult {
    let dir = tempfile::tempdir()?;
    let settings = Settings {
        addr: "127.0.0.1:0".parse()?,
        data_dir: dir.path().to_path_buf(),
        catalog: shipped_catalog(),
        demo: false,
        database_url: format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("slipway.db").display()
        ),
        gitops_repo: dir.path().join("gitops.git"),
        gitops: Default::default(),
        command: Default::default(),
        workers: Default::default(),
        metrics_token: None,
        outbound: Default::default(),
        site_root: dir.path().to_path_buf(),
        secure_cookies: false,
        secret_key: None,
        audit_checkpoint_interval: std::time::Duration::from_secs(600),
        upgrade_sweep_interval: std::time::Duration::from_secs(3600),
        close_unrevised_after: None,
        identity: Default::default(),
        chat: None,
    };
    let error = slipway_server::cli::build_state(settings)
        .await
        .err()
        .ok_or("a catalog with secrets and no key must not start")?
        .to_string();
    assert!(
        error.starts_with(
            "--secret-key-file (SLIPWAY_SECRET_KEY_FILE) or SLIPWAY_SECRET_KEY: the catalog has secret parameters in postgres-database (owner_password)"
        ),
        "{error}"
    );
    assert!(
        !dir.path().join("secret.key").exists(),
        "only demo mode generates a key"
    );
    Ok(())
}

#[tokio::test]
async fn demo_mode_generates_the_key_once_and_reuses_it() -> TestResult {
    let dir = tempfile::tempdir()?;
    let settings = Settings {
        addr: "127.0.0.1:0".parse()?,
        data_dir: dir.path().to_path_buf(),
        catalog: shipped_catalog(),
        demo: true,
        database_url: format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("slipway.db").display()
        ),
        gitops_repo: dir.path().join("gitops.git"),
        gitops: Default::default(),
        command: Default::default(),
        workers: Default::default(),
        metrics_token: None,
        outbound: Default::default(),
        site_root: dir.path().to_path_buf(),
        secure_cookies: false,
        secret_key: None,
        audit_checkpoint_interval: std::time::Duration::from_secs(600),
        upgrade_sweep_interval: std::time::Duration::from_secs(3600),
        close_unrevised_after: None,
        identity: Default::default(),
        chat: None,
    };
    let first = slipway_server::cli::build_state(settings.clone()).await?;
    assert!(first.secrets.is_some());
    let key_file = dir.path().join("secret.key");
    let written = std::fs::read_to_string(&key_file)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key_file)?.permissions().mode() & 0o777,
            0o600
        );
    }
    drop(first);
    let second = slipway_server::cli::build_state(settings).await?;
    assert!(second.secrets.is_some());
    assert_eq!(
        std::fs::read_to_string(&key_file)?,
        written,
        "the key is reused"
    );
    Ok(())
}

#[tokio::test]
async fn the_command_line_creates_a_token_that_authenticates() -> TestResult {
    let dir = tempfile::tempdir()?;
    let data_dir = dir.path().join("data");
    let catalog = shipped_catalog();
    let token_command = |user: &str, scopes: &str| -> TestResult<_> {
        let cli = Cli::try_parse_from([
            "slipway",
            "token",
            "create",
            "--user",
            user,
            "--scopes",
            scopes,
            "--demo",
            "--data-dir",
            data_dir.to_str().ok_or("path")?,
            "--catalog",
            catalog.to_str().ok_or("path")?,
        ])?;
        match cli.command {
            Command::Token(command) => Ok(command),
            other => Err(format!("parsed as {other:?}").into()),
        }
    };
    let secret = slipway_server::cli::create_token(token_command("carol", "read,request")?).await?;
    assert!(secret.starts_with(tokens::SECRET_PREFIX));

    let Command::Serve(serve) = Cli::try_parse_from([
        "slipway",
        "serve",
        "--demo",
        "--data-dir",
        data_dir.to_str().ok_or("path")?,
        "--catalog",
        catalog.to_str().ok_or("path")?,
    ])?
    .command
    else {
        return Err("not a serve command".into());
    };
    let state = slipway_server::cli::build_state(serve.check()?).await?;
    let caller = tokens::authenticate(&state, &secret, CallMeta::default()).await?;
    assert_eq!(caller.user.username, "carol");
    assert_eq!(
        caller.scopes,
        Some(vec![TokenScope::Read, TokenScope::Request])
    );

    let unknown = slipway_server::cli::create_token(token_command("mallory", "read")?).await;
    assert!(
        unknown.is_err_and(|e| e.to_string().contains("--user mallory")),
        "an unknown user is named"
    );
    let bad_scope = slipway_server::cli::create_token(token_command("carol", "read,root")?).await;
    assert!(
        bad_scope.is_err_and(|e| e.to_string().contains("--scopes: unknown scope 'root'")),
        "an unknown scope is named"
    );
    Ok(())
}
