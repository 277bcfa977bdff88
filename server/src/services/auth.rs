//! Local accounts. Passwords are argon2id hashes; the user model also carries an
//! external issuer/subject pair so OIDC accounts can sit beside local ones.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::Rng;
use slipway_core::ids::UserId;
use slipway_core::views::{Role, UserView};

use super::{Actor, CallMeta, Caller, Channel, ServiceError, ServiceResult, record};
use crate::state::AppState;
use crate::storage::users::{self, NewUser};

pub fn hash_password(password: &str) -> ServiceResult<String> {
    let mut salt = [0u8; 16];
    rand::rng().fill(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| ServiceError::Internal(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ServiceError::Internal(e.to_string()))
}

fn password_matches(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

const WRONG_CREDENTIALS: &str = "the user name or the password is wrong";

/// Checks a password and records the sign-in. The message never says which part was wrong.
pub async fn login(
    state: &AppState,
    username: &str,
    password: &str,
    channel: Channel,
    meta: &CallMeta,
) -> ServiceResult<UserView> {
    let username = username.trim();
    if username.is_empty() || password.is_empty() {
        return Err(ServiceError::Invalid(vec![
            slipway_core::validate::FieldError {
                field: if username.is_empty() {
                    "username"
                } else {
                    "password"
                }
                .into(),
                message: "is required".into(),
            },
        ]));
    }
    let mut conn = state.db.pool.acquire().await?;
    let stored = users::by_username(&mut conn, username).await?;
    let verified = match &stored {
        Some(user) => user
            .password_hash
            .as_deref()
            .is_some_and(|h| password_matches(password, h)),
        None => {
            // Spend the same time as a real check so timing does not reveal user names.
            let _ = password_matches(password, &DUMMY_HASH);
            false
        }
    };
    let Some(user) = stored.filter(|_| verified) else {
        tracing::info!(username, "sign-in refused");
        return Err(ServiceError::Forbidden(WRONG_CREDENTIALS.into()));
    };
    let mut tx = state.db.write().await?;
    let actor = Actor::User(Caller::new(user.view.clone(), channel, meta.clone()));
    record(
        &mut tx,
        state.db.engine,
        &actor,
        "user.sign_in",
        ("user", user.view.id.to_string()),
        None,
        String::new(),
    )
    .await?;
    tx.commit().await?;
    Ok(user.view)
}

// Verifying against a real hash costs what checking a real user costs.
static DUMMY_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| hash_password("no such user").unwrap_or_default());

pub async fn user(state: &AppState, id: UserId) -> ServiceResult<Option<UserView>> {
    let mut conn = state.db.pool.acquire().await?;
    Ok(users::by_id(&mut conn, id).await?)
}

struct DemoUser {
    username: &'static str,
    display_name: &'static str,
    password: &'static str,
    roles: &'static [Role],
    teams: &'static [&'static str],
}

/// The demo accounts the README lists.
const DEMO_USERS: [DemoUser; 3] = [
    DemoUser {
        username: "alice",
        display_name: "Alice (payments)",
        password: "alice-demo-pw",
        roles: &[Role::Requester],
        teams: &["payments"],
    },
    DemoUser {
        username: "bob",
        display_name: "Bob (reviewer)",
        password: "bob-demo-pw",
        roles: &[Role::Reviewer, Role::Requester],
        teams: &["platform", "dba"],
    },
    DemoUser {
        username: "carol",
        display_name: "Carol (platform admin)",
        password: "carol-demo-pw",
        roles: &[Role::Admin, Role::Platform],
        teams: &["platform"],
    },
];

/// First start only: demo users in demo mode, otherwise one admin with a generated
/// password printed once. Later starts find users and do nothing.
pub async fn ensure_initial_users(state: &AppState) -> ServiceResult<()> {
    let mut tx = state.db.write().await?;
    if users::count(&mut tx).await? > 0 {
        return Ok(());
    }
    if state.settings.demo {
        for demo in &DEMO_USERS {
            let teams: Vec<String> = demo.teams.iter().map(|t| t.to_string()).collect();
            let user = NewUser {
                username: demo.username,
                display_name: demo.display_name,
                password_hash: None,
                roles: demo.roles,
                teams: &teams,
            };
            create_user(state, &mut tx, user, demo.password, "demo user").await?;
        }
        tracing::info!("demo mode: created users alice, bob and carol (passwords in the README)");
    } else {
        let password = generate_password();
        let admin = NewUser {
            username: "admin",
            display_name: "Administrator",
            password_hash: None,
            roles: &[Role::Admin],
            teams: &[],
        };
        create_user(state, &mut tx, admin, &password, "first start").await?;
        // Printed once, on the first start only; the hash is all that is stored.
        tracing::warn!(
            "first start: created user admin with password {password} (shown once; change it after signing in)"
        );
    }
    tx.commit().await?;
    Ok(())
}

/// Stores a local account with its password hashed, and audits its creation.
async fn create_user(
    state: &AppState,
    conn: &mut sqlx::AnyConnection,
    user: NewUser<'_>,
    password: &str,
    why: &str,
) -> ServiceResult<()> {
    let hash = hash_password(password)?;
    let id = users::insert(
        conn,
        &NewUser {
            password_hash: Some(&hash),
            ..user
        },
    )
    .await?;
    let system = Actor::Policy("bootstrap".into());
    let target = ("user", id.to_string());
    record(
        conn,
        state.db.engine,
        &system,
        "user.created",
        target,
        Some(user.username.into()),
        why.into(),
    )
    .await
}

fn generate_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    (0..20)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}
