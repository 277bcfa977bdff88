//! Secret parameters end to end: a canary value goes in through the form's door,
//! is reviewed, revised, approved and executed, and is then looked for in every
//! place Slipway writes to or answers from. It must be nowhere but in the driver's
//! hands. Run on SQLite and (with `SLIPWAY_TEST_POSTGRES_URL`) on PostgreSQL.

#[allow(dead_code, unused_macros)]
#[macro_use]
mod common;

use slipway_server::storage::Window;

use common::{
    TestApp, TestResult, captured_logs, draft, dump_repository, files_containing, postgres_params,
};
use serde_json::{Value, json};
use slipway_core::listing::{ListFilter, PageRequest};
use slipway_core::secret;
use slipway_core::state::RequestState;
use slipway_core::views::{AuditFilter, ReviewDecision};
use slipway_server::drivers::{StepContext, StepSessions};
use slipway_server::secrets::{SecretBox, SecretKey};
use slipway_server::services::{ServiceError, assets, audit, detail, requests, reviews, secrets};
use slipway_server::storage::Engine;

const CANARY: &str = "canary-5f1c2b9e-secret";

on_both_engines!(
    a_secret_reaches_the_driver_and_no_other_sink,
    a_secret_opens_only_with_its_key_and_request,
    a_server_with_another_key_refuses_to_start,
    a_rotated_key_opens_every_secret_and_carries_the_audit_chain,
);

/// `slipway secrets rotate-key`: every sealed value opens with the new key and
/// no longer with the old one; the database starts with the new key only; the
/// audit chain, checkpointed under the old key, verifies under the new one; a
/// server left running with the old key seals and signs nothing more, and says
/// a value it cannot open is its own fault; a refused rotation (the same key, a
/// key that is not the current one) changes nothing.
async fn a_rotated_key_opens_every_secret_and_carries_the_audit_chain(app: &TestApp) -> TestResult {
    use slipway_server::audit_chain::{self, AuditError, CheckpointSigner, VerifyOptions};
    use slipway_server::services::key_rotation::{RotateError, reseal, sign_over};
    use slipway_server::storage::audit::ChainStatus;
    let state = &app.state;
    let (alice, bob) = (app.user("alice").await?, app.user("bob").await?);
    app.namespace(&alice, "dev", "core").await?;
    let mut ids = Vec::new();
    for name in ["rota", "rotb"] {
        let params = with_password(postgres_params(name, "dev", 20), CANARY);
        ids.push(requests::submit(state, &alice, &draft("postgres-database", params)).await?);
    }
    // A second revision of the first: one request's values span several reads.
    reviews::decide(
        state,
        &bob,
        ids[0],
        1,
        ReviewDecision::RequestChanges,
        "more",
    )
    .await?;
    let revised = with_password(postgres_params("rota", "dev", 30), CANARY);
    requests::resubmit(state, &alice, ids[0], &revised).await?;
    let demo_key = app
        .settings
        .data_dir
        .join(slipway_server::secrets::DEMO_KEY_FILE);
    let old = SecretKey::read_file(&demo_key)?;
    let old_signer = CheckpointSigner::new(&old);
    audit_chain::checkpoint(&state.db, &state.gitops, &old_signer)
        .await?
        .ok_or("no checkpoint")?;
    let before = app.snapshot().await?;

    let same = reseal(&state.db, &state.gitops, (&old, &old), 1).await;
    assert!(matches!(same, Err(RotateError::SameKey)), "{same:?}");
    let (stranger, new) = (SecretKey::generate(), SecretKey::generate());
    let refused = reseal(&state.db, &state.gitops, (&stranger, &new), 1).await;
    assert!(
        matches!(refused, Err(RotateError::NotTheCurrentKey { .. })),
        "{refused:?}"
    );
    assert_eq!(
        app.snapshot().await?,
        before,
        "a refused rotation changed something"
    );

    // One value a read: the walk crosses requests, revisions and parameters.
    let rotated = reseal(&state.db, &state.gitops, (&old, &new), 1).await?;
    assert_eq!(rotated.resealed as i64, app.count("request_secrets").await?);
    assert!(rotated.resealed >= 3, "{rotated:?}");
    assert_eq!(rotated.new_check, new.check_value());
    let signed = sign_over(&state.db, &state.gitops, &new)
        .await?
        .ok_or("no checkpoint by the new key")?;
    let new_verifier = CheckpointSigner::new(&new).verifier();
    assert!(new_verifier.is_signed(&signed));

    // The database starts with the new key, and no longer with the old one.
    let mut with_new = app.settings.clone();
    with_new.secret_key = Some(new.clone());
    let fresh = slipway_server::cli::build_state(with_new).await?;
    let mut with_old = app.settings.clone();
    with_old.secret_key = Some(old.clone());
    assert!(
        slipway_server::cli::build_state(with_old).await.is_err(),
        "the old key still starts it"
    );
    for (id, revision) in [(ids[0], 1), (ids[0], 2), (ids[1], 1)] {
        let opened = secrets::open_revision(&fresh, id, revision).await?;
        assert_eq!(opened.get("owner_password"), Some(CANARY));
        // Not the value's fault: a server with the new key opens it.
        let stale = secrets::open_revision(state, id, revision).await;
        assert!(
            matches!(&stale, Err(ServiceError::Internal(m)) if m.contains("restart this server")),
            "{stale:?}"
        );
    }

    // A server left running with the old key seals and signs nothing more.
    let params = with_password(postgres_params("rotc", "dev", 20), CANARY);
    let refused = requests::submit(state, &alice, &draft("postgres-database", params)).await;
    assert!(
        matches!(&refused, Err(ServiceError::Internal(m)) if m.contains("rotated")),
        "{refused:?}"
    );
    let unsigned = audit_chain::checkpoint(&state.db, &state.gitops, &old_signer).await;
    assert!(
        matches!(unsigned, Err(AuditError::KeyRotated)),
        "{unsigned:?}"
    );
    let params = with_password(postgres_params("rotd", "dev", 20), CANARY);
    let sealed_anew = requests::submit(&fresh, &alice, &draft("postgres-database", params)).await?;
    let opened = secrets::open_revision(&fresh, sealed_anew, 1).await?;
    assert_eq!(opened.get("owner_password"), Some(CANARY));

    // The chain verifies under the new key up to the checkpoint it signed, and
    // no longer under the old one.
    let verified = audit_chain::verify(
        &fresh.db,
        Some(&fresh.gitops),
        Some(&new_verifier),
        VerifyOptions::default(),
    )
    .await?;
    assert!(
        matches!(verified.report.status, ChainStatus::Intact { .. }),
        "{:?}",
        verified.report
    );
    let (reached, _) = verified.reached.ok_or("no checkpoint reached")?;
    assert!(reached.position >= signed.position);
    let old_verifier = old_signer.verifier();
    let under_old = audit_chain::verify(
        &fresh.db,
        Some(&fresh.gitops),
        Some(&old_verifier),
        VerifyOptions::default(),
    )
    .await;
    assert!(under_old.is_err(), "the old key still vouches");
    let events = audit::list(
        &fresh,
        &app.user("carol").await?,
        &AuditFilter {
            action: Some("secrets.key_rotated".into()),
            ..AuditFilter::default()
        },
        Window::first(10),
    )
    .await?;
    assert_eq!(events.items.len(), 1);
    assert!(!events.items[0].detail.contains(CANARY));
    Ok(())
}

/// A database whose secrets were sealed with one key is not served with another
/// (a rotated setting, a replica left behind): the start is refused, naming the
/// setting, before anything is sealed under the second key.
async fn a_server_with_another_key_refuses_to_start(app: &TestApp) -> TestResult {
    let mut other = app.settings.clone();
    other.secret_key = Some(SecretKey::generate());
    let refused = slipway_server::cli::build_state(other)
        .await
        .err()
        .ok_or("a second key was taken")?
        .to_string();
    assert!(
        refused.starts_with("--secret-key-file (SLIPWAY_SECRET_KEY_FILE) or SLIPWAY_SECRET_KEY: is not the key this database's secrets"),
        "{refused}"
    );
    // The key it was sealed with still starts it.
    app.restart().await?;
    Ok(())
}

fn with_password(mut params: Value, password: &str) -> Value {
    if let Some(map) = params.as_object_mut() {
        map.insert("owner_password".into(), json!(password));
    }
    params
}

fn assert_absent(sink: &str, text: &str) {
    assert_value_absent(sink, text, CANARY);
}

fn assert_value_absent(sink: &str, text: &str, value: &str) {
    assert!(
        !text.contains(value),
        "the secret leaked into {sink}:\n{}",
        text.lines()
            .filter(|l| l.contains(value))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

async fn a_secret_reaches_the_driver_and_no_other_sink(app: &TestApp) -> TestResult {
    let logs = captured_logs();
    let state = &app.state;
    let (alice, bob, carol) = (
        app.user("alice").await?,
        app.user("bob").await?,
        app.user("carol").await?,
    );
    app.namespace(&alice, "prod", "core").await?;
    let params = with_password(postgres_params("ledger", "prod", 20), CANARY);

    // The as-you-type pre-check sees the value and answers without it.
    let report = requests::precheck(state, &alice, "postgres-database", &params, None).await?;
    assert!(report.passed(), "{report:?}");
    let mut answers = vec![serde_json::to_string(&report)?];

    let id = requests::submit(state, &alice, &draft("postgres-database", params)).await?;
    assert_eq!(app.request_state(id).await?, RequestState::InReview);
    let first_look = detail::request_detail(
        state,
        &bob,
        id,
        slipway_server::services::detail::ReviewerRead::Counts,
    )
    .await?;
    assert_eq!(
        first_look.revisions[0].params["owner_password"],
        secret::placeholder("owner_password"),
        "reviewers see that a password was set"
    );
    let cluster = &first_look.revisions[0].change_set.files[0].content;
    assert!(
        cluster.contains("name: payments-ledger-prod-owner-password"),
        "the change set refers to the Secret: {cluster}"
    );
    answers.push(serde_json::to_string(&first_look)?);
    reviews::decide(state, &bob, id, 1, ReviewDecision::RequestChanges, "50 GB").await?;

    // A revise that leaves the password empty keeps it.
    let revised = with_password(postgres_params("ledger", "prod", 50), "");
    let report = requests::precheck(state, &alice, "postgres-database", &revised, Some(id)).await?;
    assert!(report.passed(), "{report:?}");
    requests::resubmit(state, &alice, id, &revised).await?;
    let second_look = detail::request_detail(
        state,
        &bob,
        id,
        slipway_server::services::detail::ReviewerRead::Counts,
    )
    .await?;
    let diff = second_look.review_diff.clone().ok_or("bob sees a diff")?;
    assert_eq!(
        diff.params
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>(),
        ["storage_gb"],
        "a kept secret is no change"
    );
    answers.push(serde_json::to_string(&second_look)?);
    // What the driver will be handed is the canary, decrypted for the run.
    let handed = secrets::open_revision(state, id, 2).await?;
    assert_eq!(handed.get("owner_password"), Some(CANARY));
    assert_eq!(handed.len(), 1);
    reviews::decide(state, &bob, id, 2, ReviewDecision::Approve, "").await?;
    assert_eq!(app.run_jobs().await?, 1);
    let row = app.request(id).await?;
    assert_eq!(row.state, RequestState::Completed, "{:?}", row.last_error);
    // Done, the request keeps nothing of it, in any revision.
    let kept: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM request_secrets WHERE request_id = $1")
            .bind(id.0)
            .fetch_one(&state.db.pool)
            .await?;
    assert_eq!(kept, 0, "a completed request's secrets are forgotten");
    let after = detail::request_detail(
        state,
        &alice,
        id,
        slipway_server::services::detail::ReviewerRead::Counts,
    )
    .await?;
    assert!(
        after
            .timeline
            .iter()
            .any(|e| e.action == "request.execution_succeeded"
                && e.detail.ends_with(
                    "secret parameters handed to the driver, not committed: owner_password"
                )),
        "{:?}",
        after.timeline
    );

    // Every read model, as each person sees it.
    for user in [&alice, &bob, &carol] {
        answers.push(serde_json::to_string(
            &detail::request_detail(
                state,
                user,
                id,
                slipway_server::services::detail::ReviewerRead::Counts,
            )
            .await?,
        )?);
    }
    let asset_id = after.asset_id.ok_or("the request recorded an asset")?;
    let asset = assets::detail(state, &alice, asset_id).await?;
    assert_eq!(
        asset.params["owner_password"],
        secret::placeholder("owner_password")
    );
    answers.push(serde_json::to_string(&asset)?);
    answers.push(serde_json::to_string(
        &assets::list(
            state,
            &alice,
            &ListFilter::default(),
            PageRequest::first(100),
        )
        .await?
        .items,
    )?);
    answers.push(serde_json::to_string(
        &audit::list(state, &carol, &AuditFilter::default(), Window::first(500))
            .await?
            .items,
    )?);
    answers.push(serde_json::to_string(
        &requests::mine(
            state,
            &alice,
            &ListFilter::default(),
            PageRequest::first(100),
        )
        .await?
        .items,
    )?);
    answers.push(serde_json::to_string(
        &reviews::queue(state, &bob, &ListFilter::default(), PageRequest::first(100))
            .await?
            .items,
    )?);
    answers.push(serde_json::to_string(
        &requests::needing_attention(
            state,
            &carol,
            &ListFilter::default(),
            PageRequest::first(100),
        )
        .await?
        .items,
    )?);
    for (i, answer) in answers.iter().enumerate() {
        assert_absent(&format!("read model #{i}"), answer);
    }

    let database = app.dump_database().await?;
    assert!(
        database.contains("owner_password"),
        "the dump reads the secrets table"
    );
    assert_absent("the database", &database);
    let raw = files_containing(&app.state.settings.data_dir, CANARY.as_bytes())?;
    assert!(raw.is_empty(), "the secret is in the raw files {raw:?}");

    let (repository, blobs) = dump_repository(state.gitops.path())?;
    assert!(blobs >= 4, "the walk read the committed files ({blobs})");
    assert!(repository.contains("payments-ledger-prod-owner-password"));
    assert_absent("the GitOps repository", &repository);

    let logged = logs.text();
    assert!(
        logged.contains(&format!("request_id={id}")) || logged.contains("request submitted"),
        "the log capture works"
    );
    assert_absent("the logs", &logged);
    Ok(())
}

async fn a_secret_opens_only_with_its_key_and_request(app: &TestApp) -> TestResult {
    let _ = captured_logs();
    let state = &app.state;
    let (alice, bob) = (app.user("alice").await?, app.user("bob").await?);
    app.namespace(&alice, "dev", "core").await?;

    // The schema runs on the real value, and its message does not repeat it.
    let short = with_password(postgres_params("short", "dev", 20), "short-pw");
    let report = requests::precheck(state, &alice, "postgres-database", &short, None).await?;
    assert_eq!(
        report
            .field_errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>(),
        ["owner_password must be at least 12 characters long"]
    );
    // A placeholder sent on its own claims a value nobody gave: it sets nothing.
    let claimed = {
        let mut params = postgres_params("claimed", "dev", 20);
        if let Some(map) = params.as_object_mut() {
            map.insert(
                "owner_password".into(),
                secret::placeholder("owner_password"),
            );
        }
        params
    };
    let claimed = requests::submit(state, &alice, &draft("postgres-database", claimed)).await?;
    assert_eq!(secrets::open_revision(state, claimed, 1).await?.len(), 0);
    let stored = app.request(claimed).await?;
    assert_eq!(stored.params.get("owner_password"), None);

    let with_secret = requests::submit(
        state,
        &alice,
        &draft(
            "postgres-database",
            with_password(postgres_params("keyed", "dev", 20), CANARY),
        ),
    )
    .await?;
    assert_eq!(
        secrets::open_revision(state, with_secret, 1)
            .await?
            .get("owner_password"),
        Some(CANARY)
    );

    // Another key than the database's does not open it, and the server says the
    // fault is its own key (a retry on a server with the right key will open it).
    let mut other = state.clone();
    other.secrets = Some(SecretBox::new(SecretKey::generate()));
    let refused = secrets::open_revision(&other, with_secret, 1).await;
    let Err(ServiceError::Internal(message)) = refused else {
        return Err(format!("expected the server's fault, got {refused:?}").into());
    };
    assert!(
        message.contains("restart this server with the new key"),
        "{message}"
    );

    // A ciphertext moved to another request does not open there; its job fails
    // once, with that message, and the request waits for people.
    app.exec(&format!(
        "UPDATE request_secrets SET request_id = {claimed} WHERE request_id = {with_secret}"
    ))
    .await?;
    let moved = secrets::open_revision(state, claimed, 1).await;
    assert!(
        matches!(&moved, Err(ServiceError::Conflict(m)) if m.contains(&format!("request #{claimed} cannot be decrypted"))),
        "{moved:?}"
    );
    reviews::decide(state, &bob, claimed, 1, ReviewDecision::Approve, "").await?;
    app.run_jobs().await?;
    let failed = app.request(claimed).await?;
    assert_eq!(failed.state, RequestState::Failed);
    assert!(
        failed
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("cannot be decrypted")),
        "{:?}",
        failed.last_error
    );
    assert_eq!(app.gitops_commits()?, 1, "only the namespace was committed");
    Ok(())
}

/// The shipped `shared-database` type on a Slipway whose shared PostgreSQL server
/// is the test server itself: psql may run, and the server is named `shared`.
async fn start_with_shared_server(engine: Engine) -> TestResult<Option<(TestApp, String)>> {
    let Some(admin_url) = common::postgres_admin_url()? else {
        eprintln!("note: {} is not set; skipping", common::POSTGRES_ENV);
        return Ok(None);
    };
    let servers =
        slipway_server::postgres_servers::parse_servers(&[format!("shared={admin_url}")])?;
    let app = TestApp::start_configured(engine, None, |settings| {
        settings.command.allowed = vec!["psql".into()];
        settings.command.postgres_servers = servers;
    })
    .await?;
    Ok(app.map(|app| (app, admin_url)))
}

#[tokio::test]
async fn a_generated_password_opens_the_new_database_once_on_sqlite() -> TestResult {
    match start_with_shared_server(Engine::Sqlite).await? {
        Some((app, admin)) => a_generated_password_opens_the_new_database_once(&app, &admin).await,
        None => Ok(()),
    }
}

#[tokio::test]
async fn a_generated_password_opens_the_new_database_once_on_postgres() -> TestResult {
    match start_with_shared_server(Engine::Postgres).await? {
        Some((app, admin)) => a_generated_password_opens_the_new_database_once(&app, &admin).await,
        None => Ok(()),
    }
}

/// A managed server's admin (RDS, Cloud SQL) is no superuser: with CREATEROLE
/// and CREATEDB alone it makes the role and its database all the same (before,
/// naming NOSUPERUSER needed a superuser and every request failed), and a role
/// of Slipway's that was given superuser since is left as it is.
#[tokio::test]
async fn a_least_privileged_admin_makes_the_role_and_its_database() -> TestResult {
    let Some(superuser_url) = common::postgres_admin_url()? else {
        return Ok(());
    };
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..12];
    let admin = format!("admin_{suffix}");
    let mut admin_url = url::Url::parse(&superuser_url)?;
    admin_url
        .set_username(&admin)
        .map_err(|()| "the test server's URL takes no user name")?;
    admin_url.set_password(None).map_err(|()| "no password")?;
    common::admin_sql_now(
        &superuser_url,
        vec![format!("CREATE ROLE {admin} LOGIN CREATEROLE CREATEDB")],
    )?;
    let name = format!("t{suffix}");
    let resource = format!("payments_{name}_dev");
    // Dropped in this order: the database, its role, then the admin.
    let _admin_cleanup = DroppedRole {
        admin_url: superuser_url.clone(),
        role: admin.clone(),
    };
    let _cleanup = SharedDatabase {
        admin_url: superuser_url.clone(),
        name: resource.clone(),
    };
    let servers =
        slipway_server::postgres_servers::parse_servers(&[format!("shared={admin_url}")])?;
    let Some(app) = TestApp::start_configured(Engine::Sqlite, None, |settings| {
        settings.command.allowed = vec!["psql".into()];
        settings.command.postgres_servers = servers;
    })
    .await?
    else {
        return Ok(());
    };
    let alice = app.user("alice").await?;
    let params =
        json!({"name": name, "team": "payments", "environment": "dev", "connection_limit": 5});
    let id = requests::submit(
        &app.state,
        &alice,
        &draft("shared-database", params.clone()),
    )
    .await?;
    app.run_jobs().await?;
    let row = app.request(id).await?;
    assert_eq!(row.state, RequestState::Completed, "{:?}", row.last_error);
    let exists = |kind: &'static str| {
        let (superuser_url, resource) = (superuser_url.clone(), resource.clone());
        async move {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&superuser_url).await?;
            let query = match kind {
                "database" => "SELECT COUNT(*) FROM pg_database WHERE datname = $1",
                _ => "SELECT COUNT(*) FROM pg_roles WHERE rolname = $1",
            };
            let found: i64 = sqlx::query_scalar(query)
                .bind(&resource)
                .fetch_one(&mut conn)
                .await?;
            Ok::<bool, sqlx::Error>(found == 1)
        }
    };
    assert!(exists("database").await? && exists("role").await?);

    // Decommissioned by the same admin: both dropped, the asset retired.
    let asset = {
        let mut conn = app.state.db.pool.acquire().await?;
        slipway_server::storage::assets::by_request(&mut conn, id)
            .await?
            .ok_or("an asset")?
    };
    let retire = slipway_core::views::ActionDraft {
        params: json!({}),
        submit_key: format!("retire-{suffix}"),
    };
    let retiring = slipway_server::services::actions::submit(
        &app.state,
        &alice,
        asset.summary.id,
        "decommission",
        &retire,
    )
    .await?;
    app.run_jobs().await?;
    let row = app.request(retiring).await?;
    assert_eq!(row.state, RequestState::Completed, "{:?}", row.last_error);
    assert!(!exists("database").await? && !exists("role").await?);

    // A role of Slipway's given superuser by hand since: a request of that name
    // stops before it changes the role.
    let elevated = format!("t{suffix}b");
    let elevated_resource = format!("payments_{elevated}_dev");
    let _elevated_cleanup = SharedDatabase {
        admin_url: superuser_url.clone(),
        name: elevated_resource.clone(),
    };
    common::admin_sql_now(
        &superuser_url,
        vec![
            format!("CREATE ROLE {elevated_resource} LOGIN SUPERUSER"),
            format!("COMMENT ON ROLE {elevated_resource} IS 'Made by Slipway'"),
        ],
    )?;
    let params =
        json!({"name": elevated, "team": "payments", "environment": "dev", "connection_limit": 5});
    let refused = requests::submit(&app.state, &alice, &draft("shared-database", params)).await?;
    app.run_jobs().await?;
    let row = app.request(refused).await?;
    assert_eq!(row.state, RequestState::Failed);
    let error = row.last_error.unwrap_or_default();
    assert!(error.contains("privileges Slipway never gives"), "{error}");
    Ok(())
}

/// Drops a role the test made, after what it owns.
struct DroppedRole {
    admin_url: String,
    role: String,
}

impl Drop for DroppedRole {
    fn drop(&mut self) {
        let statements = vec![format!("DROP ROLE IF EXISTS {}", self.role)];
        if let Err(error) = common::admin_sql_now(&self.admin_url, statements) {
            eprintln!("note: could not drop {}: {error}", self.role);
        }
    }
}

/// Whether a SCRAM-SHA-256 verifier as PostgreSQL stores it
/// (`SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`) is one of
/// `password` (RFC 5802: StoredKey = H(HMAC(Hi(password, salt, i), "Client Key"))).
fn verifies(stored: &str, password: &str) -> TestResult<bool> {
    use base64::Engine as _;
    use hmac::Mac as _;
    use sha2::Digest as _;
    let engine = base64::engine::general_purpose::STANDARD;
    let rest = stored
        .strip_prefix("SCRAM-SHA-256$")
        .ok_or("not a SCRAM verifier")?;
    let (iterations_and_salt, keys) = rest.split_once('$').ok_or("no keys")?;
    let (iterations, salt) = iterations_and_salt.split_once(':').ok_or("no salt")?;
    let (stored_key, _) = keys.split_once(':').ok_or("no server key")?;
    let mut salted = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(
        password.as_bytes(),
        &engine.decode(salt)?,
        iterations.parse()?,
        &mut salted,
    );
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&salted)?;
    mac.update(b"Client Key");
    let client_key = mac.finalize().into_bytes();
    Ok(engine.encode(sha2::Sha256::digest(client_key)) == stored_key)
}

/// Drops what a test made on the shared server, even when it failed half-way.
struct SharedDatabase {
    admin_url: String,
    name: String,
}

impl Drop for SharedDatabase {
    fn drop(&mut self) {
        let statements = vec![
            format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            format!("DROP ROLE IF EXISTS {}", self.name),
        ];
        if let Err(error) = common::admin_sql_now(&self.admin_url, statements) {
            eprintln!("note: could not drop {}: {error}", self.name);
        }
    }
}

async fn a_generated_password_opens_the_new_database_once(
    app: &TestApp,
    admin_url: &str,
) -> TestResult {
    use sqlx::Connection;
    let logs = captured_logs();
    let state = &app.state;
    let (alice, bob, carol) = (
        app.user("alice").await?,
        app.user("bob").await?,
        app.user("carol").await?,
    );
    let name = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let resource = format!("payments_{name}_dev");
    let _cleanup = SharedDatabase {
        admin_url: admin_url.to_string(),
        name: resource.clone(),
    };
    let params =
        json!({"name": name, "team": "payments", "environment": "dev", "connection_limit": 5});
    // The form has no field for it: a value sent anyway is refused by the schema.
    let mut smuggled = params.clone();
    smuggled["owner_password"] = json!("chosen-by-the-requester");
    assert!(
        requests::submit(state, &alice, &draft("shared-database", smuggled))
            .await
            .is_err()
    );

    let id = requests::submit(state, &alice, &draft("shared-database", params)).await?;
    assert_eq!(
        app.request_state(id).await?,
        RequestState::Approved,
        "dev is approved by policy"
    );
    let early = secrets::reveal_once(state, &alice, id, "owner_password").await;
    assert!(
        matches!(&early, Err(ServiceError::Forbidden(m)) if m.contains("once the request is completed")),
        "{:?}",
        early.as_ref().map(|r| r.title.clone())
    );

    assert_eq!(app.run_jobs().await?, 1);
    let row = app.request(id).await?;
    assert_eq!(row.state, RequestState::Completed, "{:?}", row.last_error);
    // The psql step's sessions carried a name recorded for the step, by which
    // an attempt resumed on another replica would end what this one left.
    let mut conn = state.db.pool.acquire().await?;
    let named: Vec<String> =
        sqlx::query_scalar("SELECT name_prefix FROM step_sessions WHERE request_id = $1")
            .bind(id.0)
            .fetch_all(&mut *conn)
            .await?;
    assert!(
        named.len() == 1 && named[0].len() == 37 && named[0].starts_with("slipway-step-"),
        "{named:?}"
    );
    // A later attempt (a retry, a job resumed elsewhere) is handed the same
    // prefix, and told that an earlier attempt recorded it.
    let step_index: i64 =
        sqlx::query_scalar("SELECT step_index FROM step_sessions WHERE request_id = $1")
            .bind(id.0)
            .fetch_one(&mut *conn)
            .await?;
    let key = slipway_server::storage::pipeline_runs::StepKey {
        request_id: id,
        revision: 1,
        step_index,
    };
    let again =
        slipway_server::storage::pipeline_runs::session_prefix(&mut conn, key, "other").await?;
    assert_eq!(again, (named[0].clone(), true));
    drop(conn);
    let seen = detail::request_detail(
        state,
        &alice,
        id,
        slipway_server::services::detail::ReviewerRead::Counts,
    )
    .await?;
    let check = seen.checks.first().ok_or("the check ran")?;
    assert_eq!(
        (check.kind.as_str(), check.passed),
        ("postgres", true),
        "{check:?}"
    );
    assert!(
        check.detail.contains(&format!("read \"{resource}\""))
            && check
                .detail
                .contains("the stored password is the one given"),
        "{}",
        check.detail
    );
    let generated = seen
        .generated_secrets
        .first()
        .ok_or("the page lists the secret")?;
    assert_eq!(
        (generated.title.as_str(), &generated.unavailable),
        ("Owner password", &None)
    );
    let for_carol = detail::request_detail(
        state,
        &carol,
        id,
        slipway_server::services::detail::ReviewerRead::Counts,
    )
    .await?;
    assert_eq!(
        for_carol.generated_secrets[0].unavailable.as_deref(),
        Some("only the requester may see a generated secret of the request")
    );

    // Only the requester, only once, and every refusal leaves it unshown.
    for other in [&bob, &carol] {
        let refused = secrets::reveal_once(state, other, id, "owner_password").await;
        assert!(
            matches!(refused, Err(ServiceError::Forbidden(_))),
            "{}",
            other.username
        );
    }
    let unknown = secrets::reveal_once(state, &alice, id, "root_password").await;
    assert!(matches!(unknown, Err(ServiceError::NotFound(_))));
    // The credential is the team's: a requester who has since left the team
    // does not take it along (shown once, nobody in the team could get it).
    app.exec("UPDATE users SET teams = 'search' WHERE username = 'alice'")
        .await?;
    let left = app.user("alice").await?;
    let refused = secrets::reveal_once(state, &left, id, "owner_password").await;
    assert!(
        matches!(&refused, Err(ServiceError::Forbidden(m))
            if m.contains("no longer belongs to team payments") && m.contains("rotate the credential")),
        "{:?}",
        refused.as_ref().map(|r| r.title.clone())
    );
    app.exec("UPDATE users SET teams = 'payments' WHERE username = 'alice'")
        .await?;
    let alice = app.user("alice").await?;
    let revealed = secrets::reveal_once(state, &alice, id, "owner_password").await?;
    let password = revealed.value;
    assert_eq!(password.len(), 32);
    assert!(
        password.chars().all(|c| c.is_ascii_alphanumeric()),
        "{password}"
    );
    // psql was handed the verifier, never the password: what the server stores
    // is a verifier of exactly this password (a verifier read as a password
    // would store a verifier of the verifier).
    let stored: String = {
        let mut admin = sqlx::PgConnection::connect(admin_url).await?;
        sqlx::query_scalar("SELECT rolpassword FROM pg_authid WHERE rolname = $1")
            .bind(&resource)
            .fetch_one(&mut admin)
            .await?
    };
    assert!(verifies(&stored, &password)?, "{stored}");
    let kept: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM request_secrets WHERE request_id = $1")
            .bind(id.0)
            .fetch_one(&state.db.pool)
            .await?;
    assert_eq!(kept, 0, "shown once, the generated password is not kept");
    let again = secrets::reveal_once(state, &alice, id, "owner_password").await;
    assert!(
        matches!(&again, Err(ServiceError::Conflict(m)) if m.contains("was already shown to alice on")),
        "{:?}",
        again.as_ref().map(|r| r.title.clone())
    );
    let after = detail::request_detail(
        state,
        &alice,
        id,
        slipway_server::services::detail::ReviewerRead::Counts,
    )
    .await?;
    let shown_to = after.generated_secrets[0]
        .shown_to
        .clone()
        .ok_or("recorded")?;
    assert!(shown_to.starts_with("alice on "), "{shown_to}");

    // The database is real: the new role signs in with the password it was shown.
    let server = slipway_server::postgres_servers::parse_servers(&[format!("x={admin_url}")])?;
    let options = server["x"].connect_as(&resource, &password, &resource);
    let mut conn = sqlx::PgConnection::connect_with(&options).await?;
    let (user, owner): (String, String) = sqlx::query_as(
        "SELECT current_user::text, pg_get_userbyid(datdba)::text FROM pg_database WHERE datname = current_database()",
    )
    .fetch_one(&mut conn)
    .await?;
    assert_eq!(
        (user.as_str(), owner.as_str()),
        (resource.as_str(), resource.as_str())
    );
    conn.close().await?;
    // The test server trusts loopback, so signing in proves the role and its
    // database; that the role's password is the one shown, its verifier proves.
    let mut admin = sqlx::PgConnection::connect(admin_url).await?;
    let verifier: String =
        sqlx::query_scalar("SELECT rolpassword FROM pg_authid WHERE rolname = $1")
            .bind(&resource)
            .fetch_one(&mut admin)
            .await?;
    admin.close().await?;
    assert!(scram_verifies(&verifier, &password)?, "{verifier}");
    assert!(!scram_verifies(&verifier, "not-the-password")?);

    // And it is nowhere else: not in any read model, row, file or log line.
    let audit_items = audit::list(state, &carol, &AuditFilter::default(), Window::first(500))
        .await?
        .items;
    assert!(
        audit_items.iter().any(|e| e.action == "secret.revealed"),
        "the reveal is audited"
    );
    let answers = [
        serde_json::to_string(&after)?,
        serde_json::to_string(&for_carol)?,
        serde_json::to_string(&audit_items)?,
    ];
    for (i, answer) in answers.iter().enumerate() {
        assert_value_absent(&format!("read model #{i}"), answer, &password);
    }
    assert_value_absent("the database", &app.dump_database().await?, &password);
    let raw = files_containing(&state.settings.data_dir, password.as_bytes())?;
    assert!(raw.is_empty(), "the password is in the raw files {raw:?}");
    assert_value_absent("the logs", &logs.text(), &password);
    Ok(())
}

/// A role or a database of the wanted name that Slipway did not make (made by
/// hand, or by another tool) is not taken over: the run stops before it sets a
/// password, strips attributes or revokes anyone's access, and says why.
#[tokio::test]
async fn a_role_or_database_slipway_did_not_make_is_not_taken_over() -> TestResult {
    use sqlx::Connection;
    let Some((app, admin_url)) = start_with_shared_server(Engine::Sqlite).await? else {
        return Ok(());
    };
    let alice = app.user("alice").await?;
    let mut cleanups = Vec::new();
    let mut names = Vec::new();
    for _ in 0..2 {
        let name = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let resource = format!("payments_{name}_dev");
        cleanups.push(SharedDatabase {
            admin_url: admin_url.clone(),
            name: resource.clone(),
        });
        names.push((name, resource));
    }
    let (role_name, role) = &names[0];
    let (database_name, database) = &names[1];
    common::admin_sql_now(
        &admin_url,
        vec![
            format!("CREATE ROLE {role} LOGIN SUPERUSER PASSWORD 'made-by-hand'"),
            format!("CREATE DATABASE {database}"),
        ],
    )?;
    let cases = [
        (role_name, "the role", role),
        (database_name, "the database", database),
    ];
    for (name, what, resource) in cases {
        let params =
            json!({"name": name, "team": "payments", "environment": "dev", "connection_limit": 5});
        let id = requests::submit(&app.state, &alice, &draft("shared-database", params)).await?;
        app.run_jobs().await?;
        let row = app.request(id).await?;
        assert_eq!(row.state, RequestState::Failed, "{what}");
        let error = row.last_error.unwrap_or_default();
        assert!(
            error.contains(&format!("{what} {resource} exists"))
                && error.contains("not taken over"),
            "{error}"
        );
    }
    // The hand-made role keeps its password and its attributes.
    let mut admin = sqlx::PgConnection::connect(&admin_url).await?;
    let (verifier, superuser): (String, bool) =
        sqlx::query_as("SELECT rolpassword, rolsuper FROM pg_authid WHERE rolname = $1")
            .bind(role)
            .fetch_one(&mut admin)
            .await?;
    let made: Option<String> =
        sqlx::query_scalar("SELECT rolname::text FROM pg_roles WHERE rolname = $1")
            .bind(database)
            .fetch_optional(&mut admin)
            .await?;
    admin.close().await?;
    assert!(scram_verifies(&verifier, "made-by-hand")?, "{verifier}");
    assert!(superuser);
    assert_eq!(
        made, None,
        "no role was made beside a database it cannot own"
    );
    Ok(())
}

#[tokio::test]
async fn a_type_whose_server_is_not_configured_is_refused_at_submit() -> TestResult {
    // psql may run: what is missing is the server.
    let app = TestApp::start_configured(Engine::Sqlite, None, |settings| {
        settings.command.allowed = vec!["psql".into()];
    })
    .await?
    .ok_or("SQLite")?;
    let alice = app.user("alice").await?;
    let params =
        json!({"name": "orders", "team": "payments", "environment": "dev", "connection_limit": 5});
    let expected = "Database on the shared PostgreSQL server cannot be requested on this Slipway yet: no PostgreSQL server is named \"shared\"";
    // The catalog and the pre-check say so before anyone fills the form in vain.
    let listed = slipway_server::services::catalog::list_types(&app.state, &alice);
    let shared = listed
        .iter()
        .find(|t| t.name == "shared-database")
        .ok_or("shared-database is listed")?;
    let why = shared.unavailable.as_deref().unwrap_or_default();
    assert!(why.starts_with(expected), "{why}");
    assert!(
        listed
            .iter()
            .filter(|t| t.name != "shared-database")
            .all(|t| t.unavailable.is_none()),
        "the other types run here: {listed:?}"
    );
    let report = requests::precheck(&app.state, &alice, "shared-database", &params, None).await?;
    assert!(!report.passed(), "{report:?}");
    assert!(
        report
            .field_errors
            .iter()
            .any(|e| e.field.is_empty() && e.message.starts_with(expected)),
        "{report:?}"
    );
    let refused = requests::submit(&app.state, &alice, &draft("shared-database", params)).await;
    let Err(ServiceError::Conflict(message)) = refused else {
        return Err(format!("expected a conflict, got {refused:?}").into());
    };
    assert!(
        message.starts_with("Database on the shared PostgreSQL server cannot be requested on this Slipway yet: no PostgreSQL server is named \"shared\" in the server's --postgres-servers"),
        "{message}"
    );
    assert_eq!(app.count("requests").await?, 0);
    Ok(())
}

/// Whether `password` matches a PostgreSQL SCRAM-SHA-256 verifier
/// (`SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`, RFC 5802/7677).
fn scram_verifies(verifier: &str, password: &str) -> TestResult<bool> {
    use base64::Engine as _;
    use hmac::{Hmac, Mac};
    use sha2::{Digest, Sha256};
    type HmacSha256 = Hmac<Sha256>;
    let b64 = base64::engine::general_purpose::STANDARD;
    let rest = verifier
        .strip_prefix("SCRAM-SHA-256$")
        .ok_or("not a SCRAM-SHA-256 verifier")?;
    let (params, keys) = rest.split_once('$').ok_or("no keys")?;
    let (iterations, salt) = params.split_once(':').ok_or("no salt")?;
    let (stored_key, _server_key) = keys.split_once(':').ok_or("no server key")?;
    let (iterations, salt) = (iterations.parse::<u32>()?, b64.decode(salt)?);
    let hmac = |key: &[u8], data: &[u8]| -> TestResult<Vec<u8>> {
        let mut mac = HmacSha256::new_from_slice(key)?;
        mac.update(data);
        Ok(mac.finalize().into_bytes().to_vec())
    };
    // Hi(): PBKDF2 with HMAC-SHA-256 and one block.
    let mut block = hmac(
        password.as_bytes(),
        &[salt.as_slice(), &1u32.to_be_bytes()].concat(),
    )?;
    let mut salted = block.clone();
    for _ in 1..iterations {
        block = hmac(password.as_bytes(), &block)?;
        salted.iter_mut().zip(&block).for_each(|(s, b)| *s ^= b);
    }
    let client_key = hmac(&salted, b"Client Key")?;
    Ok(Sha256::digest(&client_key).as_slice() == b64.decode(stored_key)?.as_slice())
}

/// A step stopped while its statement runs on the PostgreSQL server (here it
/// waits for a lock) has that statement ended there too: killing psql alone
/// leaves the server to finish it once the lock is free, long after the step
/// was reported stopped (a cancelled decommission dropping the database anyway).
#[tokio::test]
async fn a_stopped_psql_step_ends_what_it_sent_to_the_server() -> TestResult {
    use slipway_server::drivers::progress::ProgressLines;
    use sqlx::Connection as _;

    let Some(admin_url) = common::postgres_admin_url()? else {
        return Ok(());
    };
    let table = format!(
        "stop_probe_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let mut holder = sqlx::PgConnection::connect(&admin_url).await?;
    sqlx::query(&format!("CREATE TABLE {table} (n int)"))
        .execute(&mut holder)
        .await?;
    let mut lock = holder.begin().await?;
    sqlx::query(&format!("LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
        .execute(&mut *lock)
        .await?;

    let scratch = tempfile::tempdir()?;
    let driver = psql_driver(scratch.path(), &admin_url)?;
    let command = psql_beside_shared(&format!("INSERT INTO {table} VALUES (1);\n"));
    let stop = tokio_util::sync::CancellationToken::new();
    let cancel = stop.clone();
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        cancel.cancel();
    });
    let sessions = first_attempt();
    let stopped = driver
        .run_command(
            &command,
            &StepContext {
                sessions: Some(&sessions),
                ..StepContext::outside_a_job(
                    &secret::SecretValues::new(),
                    &stop,
                    &ProgressLines::discard(),
                )
            },
        )
        .await
        .err()
        .ok_or("the insert waits for the lock until the step is stopped")?
        .to_string();
    assert!(stopped.contains("was stopped after"), "{stopped}");
    assert!(
        stopped.contains("1 session(s) it had opened on the PostgreSQL server were ended"),
        "{stopped}"
    );

    // The lock is free now: an insert left waiting on the server would run.
    lock.commit().await?;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let rows: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(&mut holder)
        .await?;
    let left: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1")
            .bind(sessions.application_name())
            .fetch_one(&mut holder)
            .await?;
    sqlx::query(&format!("DROP TABLE {table}"))
        .execute(&mut holder)
        .await?;
    holder.close().await?;
    assert_eq!(rows, 0, "the stopped step's insert never ran");
    assert_eq!(left, 0, "no session of a step is left on the server");
    Ok(())
}

fn psql_driver(
    scratch: &std::path::Path,
    admin_url: &str,
) -> TestResult<slipway_server::drivers::command::CommandDriver> {
    use slipway_server::drivers::command::{CommandDriver, CommandSettings};
    Ok(CommandDriver::new(CommandSettings {
        allowed: vec!["psql".into()],
        pass_env: Vec::new(),
        default_timeout: std::time::Duration::from_secs(60),
        scratch_dir: scratch.to_path_buf(),
        postgres_servers: slipway_server::postgres_servers::parse_servers(&[format!(
            "shared={admin_url}"
        )])?,
    }))
}

/// A psql step beside the server named `shared`, running `sql` from a file.
fn psql_beside_shared(sql: &str) -> slipway_core::execution::PlannedCommand {
    slipway_core::execution::PlannedCommand {
        program: "psql".into(),
        args: [
            "--no-psqlrc",
            "--quiet",
            "-v",
            "ON_ERROR_STOP=1",
            "-f",
            "step.sql",
        ]
        .map(String::from)
        .to_vec(),
        files: vec![slipway_core::render::RenderedFile {
            path: "step.sql".into(),
            content: sql.to_string(),
        }],
        env: Vec::new(),
        secret_env: Vec::new(),
        secret_env_scram: Vec::new(),
        timeout_seconds: None,
        postgres_server: Some("shared".into()),
        retry_exit_codes: Vec::new(),
    }
}

/// A first attempt of a step run beside a server, as a job names it.
fn first_attempt() -> StepSessions {
    StepSessions {
        prefix: StepSessions::fresh_prefix(),
        attempt: 1,
        earlier: false,
    }
}

/// A replica killed mid-step cannot end what its psql sent: the server runs the
/// statement on once it can (here once a lock is free). The attempt that
/// resumes the job ends the sessions of the step's name first, so the two runs
/// never overlap and what the dead one had not committed is rolled back.
#[tokio::test]
async fn a_resumed_psql_step_first_ends_what_the_killed_attempt_left_running() -> TestResult {
    use slipway_server::drivers::progress::ProgressLines;
    use sqlx::Connection as _;
    use sqlx::postgres::PgConnectOptions;

    let Some(admin_url) = common::postgres_admin_url()? else {
        return Ok(());
    };
    let table = format!(
        "resume_probe_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let mut holder = sqlx::PgConnection::connect(&admin_url).await?;
    sqlx::query(&format!("CREATE TABLE {table} (n int)"))
        .execute(&mut holder)
        .await?;
    let mut lock = holder.begin().await?;
    sqlx::query(&format!("LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
        .execute(&mut *lock)
        .await?;
    // The killed attempt's statement, still waiting on the server.
    let killed = first_attempt();
    let resumed = StepSessions {
        attempt: 2,
        earlier: true,
        ..killed.clone()
    };
    let options: PgConnectOptions = admin_url.parse()?;
    let mut orphan = sqlx::PgConnection::connect_with(
        &options.clone().application_name(&killed.application_name()),
    )
    .await?;
    let insert = format!("INSERT INTO {table} VALUES (1)");
    let orphaned = tokio::spawn(async move { sqlx::query(&insert).execute(&mut orphan).await });
    // A later attempt's session (the one that took over a stalled attempt's
    // lease) is not the resumed attempt's to end.
    let later = StepSessions {
        attempt: 3,
        ..killed.clone()
    };
    let mut newer =
        sqlx::PgConnection::connect_with(&options.application_name(&later.application_name()))
            .await?;
    let mut watcher = sqlx::PgConnection::connect(&admin_url).await?;
    let waiting = "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1";
    for _ in 0..100 {
        let seen: i64 = sqlx::query_scalar(waiting)
            .bind(killed.application_name())
            .fetch_one(&mut watcher)
            .await?;
        if seen == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    let scratch = tempfile::tempdir()?;
    let driver = psql_driver(scratch.path(), &admin_url)?;
    let stop = tokio_util::sync::CancellationToken::new();
    let (progress, mut lines) = ProgressLines::channel(secret::SecretValues::new());
    let outcome = driver
        .run_command(
            &psql_beside_shared("SELECT 1;\n"),
            &StepContext {
                sessions: Some(&resumed),
                ..StepContext::outside_a_job(&secret::SecretValues::new(), &stop, &progress)
            },
        )
        .await?;
    let live: Vec<String> = std::iter::from_fn(|| lines.try_recv().ok()).collect();
    assert!(
        live.iter().any(|line| line
            == "ended 1 session(s) an earlier attempt of this step left on the PostgreSQL \
                server (what they had not committed was rolled back)"),
        "{live:?} {outcome:?}"
    );
    let ended = orphaned.await?;
    assert!(ended.is_err(), "the orphaned insert was ended: {ended:?}");
    let alive: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&mut newer).await?;
    assert_eq!(alive, 1, "a later attempt's session stays");
    newer.close().await?;

    lock.commit().await?;
    let rows: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(&mut holder)
        .await?;
    let left: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE $1")
            .bind(format!("{}-%", killed.prefix))
            .fetch_one(&mut watcher)
            .await?;
    sqlx::query(&format!("DROP TABLE {table}"))
        .execute(&mut holder)
        .await?;
    holder.close().await?;
    watcher.close().await?;
    assert_eq!(rows, 0, "the killed attempt's insert never ran");
    assert_eq!(left, 0, "no session of the step is left on the server");
    Ok(())
}

/// A job does not await a step it stops: the orchestrator drops the step's
/// future on a cancel, the type's step timeout or a lost lease. What the
/// step's psql sent is ended on the server all the same (before, only a step
/// that ran into the command's own timeout ended it, and a cancelled request
/// let its statement run on once the lock was free).
#[tokio::test]
async fn a_psql_step_its_job_stops_has_what_it_sent_ended() -> TestResult {
    use slipway_server::drivers::progress::ProgressLines;
    use sqlx::Connection as _;

    let Some(admin_url) = common::postgres_admin_url()? else {
        return Ok(());
    };
    let table = format!(
        "drop_probe_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let mut holder = sqlx::PgConnection::connect(&admin_url).await?;
    sqlx::query(&format!("CREATE TABLE {table} (n int)"))
        .execute(&mut holder)
        .await?;
    let mut lock = holder.begin().await?;
    sqlx::query(&format!("LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
        .execute(&mut *lock)
        .await?;

    let scratch = tempfile::tempdir()?;
    let driver = psql_driver(scratch.path(), &admin_url)?;
    let command = psql_beside_shared(&format!("INSERT INTO {table} VALUES (1);\n"));
    let sessions = first_attempt();
    let stop = tokio_util::sync::CancellationToken::new();
    let secrets = secret::SecretValues::new();
    let progress = ProgressLines::discard();
    let ctx = StepContext {
        sessions: Some(&sessions),
        ..StepContext::outside_a_job(&secrets, &stop, &progress)
    };
    // As the orchestrator runs a step: raced against its stop, and dropped.
    let raced = tokio::select! {
        ran = driver.run_command(&command, &ctx) => Err(format!("the step ended by itself: {ran:?}")),
        () = tokio::time::sleep(std::time::Duration::from_millis(1500)) => Ok(()),
    };
    stop.cancel();
    raced?;
    let mut watcher = sqlx::PgConnection::connect(&admin_url).await?;
    let mut left: i64 = -1;
    for _ in 0..200 {
        left =
            sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1")
                .bind(sessions.application_name())
                .fetch_one(&mut watcher)
                .await?;
        if left == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    lock.commit().await?;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let rows: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(&mut holder)
        .await?;
    sqlx::query(&format!("DROP TABLE {table}"))
        .execute(&mut holder)
        .await?;
    holder.close().await?;
    watcher.close().await?;
    assert_eq!(left, 0, "the dropped step's session was ended");
    assert_eq!(rows, 0, "the dropped step's insert never ran");
    Ok(())
}
