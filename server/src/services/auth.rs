//! Local accounts. Passwords are argon2id hashes; the user model also carries an
//! external issuer/subject pair so OIDC accounts can sit beside local ones.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::Rng;
use slipway_core::ids::UserId;
use slipway_core::views::{Role, UserView};

use std::net::IpAddr;

use super::{Actor, CallMeta, Caller, Channel, ServiceError, ServiceResult, record};
use crate::state::AppState;
use crate::storage::audit::Origin;
use crate::storage::now_millis;
use crate::storage::throttle;
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

const MAX_USERNAME_CHARS: usize = 200;
const MAX_PASSWORD_BYTES: usize = 1024;

const WRONG_CREDENTIALS: &str = "the user name or the password is wrong";

/// Checks a password and records the sign-in. The message never says which part was wrong.
pub async fn login(
    state: &AppState,
    username: &str,
    password: &str,
    channel: Channel,
    meta: &CallMeta,
) -> ServiceResult<UserView> {
    Ok(sign_in(state, username, password, channel, meta)
        .await?
        .user)
}

/// A password sign-in that succeeded: the account, and the version of its
/// password that was checked, for the session to keep (see
/// [`crate::http::start_signed_in_session`]).
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub user: UserView,
    pub credential_version: i64,
}

/// Who signs in before anyone is known: failed attempts are recorded under this
/// actor, since the claimed user name is exactly what is in doubt, with the door,
/// client address and trace id of the attempt.
pub(crate) fn sign_in_actor(channel: Channel, meta: &CallMeta) -> Actor {
    Actor::PolicyInCall {
        rule: "sign-in".into(),
        origin: Origin {
            channel: channel.as_str().to_string(),
            client_addr: meta.client_addr.clone(),
            trace_id: meta.trace_id.clone(),
            token_id: None,
            channel_user: meta.channel_user.clone(),
        },
    }
}

/// Free attempts per user name from one client address before a lock, per user
/// name from anywhere (higher: five guesses from one address no longer lock the
/// account for everyone, which let anyone keep any account, an admin's too,
/// locked with a few requests an hour, while guesses spread over many
/// addresses still meet a limit), and per client address (higher: many people
/// may share one address behind a NAT or proxy).
const USER_FREE_FAILURES: i64 = 5;
const USER_ANYWHERE_FREE_FAILURES: i64 = 50;
const ADDRESS_FREE_FAILURES: i64 = 20;
/// Failures older than this are forgotten.
const FAILURE_WINDOW_MS: i64 = 30 * 60 * 1000;
const FIRST_LOCK_MS: i64 = 60 * 1000;
const LONGEST_LOCK_MS: i64 = 15 * 60 * 1000;

/// How long a subject is locked after its `failures`-th failure in a row: nothing
/// while free attempts remain, then one minute, doubling up to fifteen.
pub fn lock_after(failures: i64, free: i64) -> i64 {
    if failures < free {
        return 0;
    }
    let doublings = u32::try_from((failures - free).min(10)).unwrap_or(10);
    (FIRST_LOCK_MS << doublings).min(LONGEST_LOCK_MS)
}

fn wait_message(wait_ms: i64) -> String {
    let seconds = (wait_ms + 999) / 1000;
    let wait = if seconds < 60 {
        format!("{seconds} second{}", if seconds == 1 { "" } else { "s" })
    } else {
        let minutes = (seconds + 59) / 60;
        format!("{minutes} minute{}", if minutes == 1 { "" } else { "s" })
    };
    format!(
        "too many failed sign-ins for this user name or from this address; wait {wait} and try again"
    )
}

fn throttle_subjects(username: &str, client: Option<IpAddr>) -> Vec<(String, i64)> {
    let name = username.to_lowercase();
    let user = format!("user:{name}");
    let Some(address) = client else {
        return vec![(user, USER_FREE_FAILURES)];
    };
    let group = address_group(address);
    // A prefix of its own, the group first (it never holds a `|`): no user
    // name can make another's subject (`alice@10.0.0.1` was `user:` too).
    vec![
        (format!("user-at:{group}|{name}"), USER_FREE_FAILURES),
        (user, USER_ANYWHERE_FREE_FAILURES),
        (format!("addr:{group}"), ADDRESS_FREE_FAILURES),
    ]
}

/// Single sign-on's failures count against the client's address as failed
/// passwords do, on a count of their own (a lock of one never holds the other
/// back: the password form stays the way in for an admin while single sign-on
/// fails). Only a code the provider refused (or an ID token that failed the
/// checks) counts: it cost a call to the provider's token endpoint with
/// Slipway's own credentials, which providers rate-limit per client, so a flood
/// of them from one address could lock the whole company out. No address, no
/// count.
fn provider_subjects(meta: &CallMeta) -> Vec<(String, i64)> {
    meta.client_addr
        .as_deref()
        .and_then(|a| a.parse::<IpAddr>().ok())
        .map(|address| {
            vec![(
                format!("sso-addr:{}", address_group(address)),
                ADDRESS_FREE_FAILURES,
            )]
        })
        .unwrap_or_default()
}

/// How long sign-ins through the provider from this caller's address are held
/// back (0: not at all), read without the writer. A refusal is counted in
/// the throttled sign-ins' metric.
pub async fn provider_sign_in_wait(state: &AppState, meta: &CallMeta) -> ServiceResult<i64> {
    let wait = locked_now(state, &provider_subjects(meta)).await?;
    if wait > 0 {
        state.metrics.sign_ins_throttled.inc();
    }
    Ok(wait)
}

/// Counts a failed sign-in through the provider against the caller's address.
/// False when the address is locked already (nothing counted).
pub async fn count_provider_failure(state: &AppState, meta: &CallMeta) -> ServiceResult<bool> {
    let subjects = provider_subjects(meta);
    if subjects.is_empty() {
        return Ok(true);
    }
    Ok(count_attempt(state, &subjects).await?.is_ok())
}

/// The address a failure counts against: an IPv4 address, or an IPv6 address's
/// /64 (one host is commonly given a whole /64 and may send from any address in
/// it, each of which would otherwise start with free attempts).
fn address_group(address: IpAddr) -> String {
    match address {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// An attempt counted as a failure before its check: when, what each subject
/// held before, and how long the failure locks the subjects if it is one.
struct Counted {
    at: i64,
    previous: Vec<Option<throttle::FailureCount>>,
    locked_for: i64,
}

/// How long a subject of the attempt is locked now, read without the writer: a
/// flood of refused attempts must not queue every other write behind it.
async fn locked_now(state: &AppState, subjects: &[(String, i64)]) -> ServiceResult<i64> {
    let now = now_millis();
    let mut conn = state.db.pool.acquire().await?;
    let mut wait = 0;
    for (subject, _) in subjects {
        if let Some(count) = throttle::get(&mut conn, subject).await? {
            wait = wait.max(count.locked_until - now);
        }
    }
    Ok(wait)
}

/// Counts this attempt as a failure of each subject before its password is
/// checked (a success, or an attempt never checked, takes it back), in one
/// transaction holding the subjects' turns: attempts made at once see each
/// other, so guesses sent in parallel get no more tries than guesses sent one by
/// one. `Err(wait)` when a subject is locked: then nothing is counted and no
/// password is checked.
async fn count_attempt(
    state: &AppState,
    subjects: &[(String, i64)],
) -> ServiceResult<Result<Counted, i64>> {
    let now = now_millis();
    let mut tx = state.db.write().await?;
    throttle::forget_stale(&mut tx, now - FAILURE_WINDOW_MS, now).await?;
    let mut previous = Vec::with_capacity(subjects.len());
    for (subject, _) in subjects {
        throttle::take_turn(&mut tx, state.db.engine, subject).await?;
        previous.push(throttle::get(&mut tx, subject).await?);
    }
    let wait = previous
        .iter()
        .flatten()
        .map(|count| count.locked_until - now)
        .max()
        .unwrap_or(0);
    if wait > 0 {
        tx.rollback().await?;
        return Ok(Err(wait));
    }
    let mut locked_for = 0;
    for ((subject, free), previous) in subjects.iter().zip(&previous) {
        let failures = match previous {
            Some(previous) if now - previous.last_failure_at < FAILURE_WINDOW_MS => {
                previous.failures + 1
            }
            _ => 1,
        };
        let lock = lock_after(failures, *free);
        locked_for = locked_for.max(lock);
        let count = throttle::FailureCount {
            failures,
            last_failure_at: now,
            locked_until: if lock > 0 { now + lock } else { 0 },
        };
        throttle::put(&mut tx, subject, count).await?;
    }
    tx.commit().await?;
    Ok(Ok(Counted {
        at: now,
        previous,
        locked_for,
    }))
}

/// Takes back an attempt counted before its check, in the caller's transaction:
/// each subject as it was before (its last failure's time too, so the failures
/// of a shared address still age out), unless other failures came meanwhile.
/// `clear_user` also forgets the user name's earlier failures (a success).
async fn take_back(
    conn: &mut sqlx::AnyConnection,
    state: &AppState,
    (subjects, counted): (&[(String, i64)], &Counted),
    clear_user: bool,
) -> ServiceResult<()> {
    for (index, ((subject, free), previous)) in subjects.iter().zip(&counted.previous).enumerate() {
        throttle::take_turn(conn, state.db.engine, subject).await?;
        if index == 0 && clear_user {
            throttle::clear(conn, subject).await?;
            continue;
        }
        let before = previous.map_or(0, |p| p.last_failure_at);
        throttle::take_back_one(conn, subject, (counted.at, before), *free).await?;
    }
    Ok(())
}

/// Takes back an attempt that was never checked (no check's turn came, the
/// database failed), in a transaction of its own.
async fn take_back_unchecked(
    state: &AppState,
    subjects: &[(String, i64)],
    counted: &Counted,
) -> ServiceResult<()> {
    let mut tx = state.db.write().await?;
    take_back(&mut tx, state, (subjects, counted), false).await?;
    tx.commit().await?;
    Ok(())
}

/// How long a sign-in waits for a free password check before it is turned away.
const PASSWORD_CHECK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// A turn at checking a password: at most one check per core runs at once (each
/// costs tens of milliseconds of CPU: run on the runtime's threads, a burst of
/// guesses stalled every other answer). Taken before the attempt is counted, so
/// a sign-in turned away for want of one was never tried and counts nothing.
async fn password_check_turn(state: &AppState) -> ServiceResult<tokio::sync::OwnedSemaphorePermit> {
    let busy = || {
        ServiceError::TooMany(
            "too many sign-ins at once; try again in a moment".into(),
            Some(std::time::Duration::from_secs(1)),
        )
    };
    tokio::time::timeout(
        PASSWORD_CHECK_WAIT,
        state.password_checks.clone().acquire_owned(),
    )
    .await
    .map_err(|_| busy())?
    .map_err(|_| busy())
}

/// Checks a password against a stored hash on a blocking thread, in its turn.
/// Without a hash (no such account, or one that signs in only through single
/// sign-on) the check runs against a dummy hash all the same, so the time taken
/// tells none of them apart.
async fn check_password(
    turn: tokio::sync::OwnedSemaphorePermit,
    password: &str,
    hash: Option<String>,
) -> ServiceResult<bool> {
    let password = password.to_string();
    tokio::task::spawn_blocking(move || {
        let _turn = turn;
        match hash {
            Some(hash) => password_matches(&password, &hash),
            None => {
                let _ = password_matches(&password, &DUMMY_HASH);
                false
            }
        }
    })
    .await
    .map_err(|error| ServiceError::Internal(format!("the password check: {error}")))
}

/// Records a refused sign-in in the audit log (its failure was counted before
/// the check), with the lock it started.
async fn refuse(
    state: &AppState,
    username: &str,
    attempt: (Channel, &CallMeta),
    why: &str,
    locked_for: i64,
) -> ServiceResult<()> {
    let (channel, meta) = attempt;
    let client: Option<IpAddr> = meta.client_addr.as_deref().and_then(|a| a.parse().ok());
    let mut tx = state.db.write().await?;
    let from = client.map(|a| format!(" from {a}")).unwrap_or_default();
    record(
        &mut tx,
        state.db.engine,
        &sign_in_actor(channel, meta),
        "user.sign_in_failed",
        ("user", username.to_string()),
        None,
        format!("password{from}: {why}{}", lock_note(locked_for)),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// What the audit says of a lock a failure starts: the attempts refused while it
/// lasts are not recorded one by one (they are counted in the metrics), so a
/// flood of them cannot grow the audit trail.
fn lock_note(locked_for: i64) -> String {
    if locked_for > 0 {
        format!(
            "; further attempts refused for {} s",
            (locked_for + 999) / 1000
        )
    } else {
        String::new()
    }
}

/// [`login`], answering with the version of the password it checked: a session
/// started with it signs no one in once `slipway user set-password` changed the
/// password, however late the session is stored. Counts failures per user name
/// and per client address (kept in the database, so the limit holds across
/// replicas): after a few failures the next attempts are refused, unchecked,
/// for a growing while.
pub async fn sign_in(
    state: &AppState,
    username: &str,
    password: &str,
    channel: Channel,
    meta: &CallMeta,
) -> ServiceResult<SignedIn> {
    let client: Option<IpAddr> = meta.client_addr.as_deref().and_then(|a| a.parse().ok());
    if !state.settings.identity.local_accounts {
        return Err(ServiceError::Forbidden(
            "password sign-in is turned off here; use single sign-on".into(),
        ));
    }
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
    // Hashing a megabyte-long guess would cost far more than any real password.
    if username.chars().count() > MAX_USERNAME_CHARS || password.len() > MAX_PASSWORD_BYTES {
        return Err(ServiceError::Invalid(vec![
            slipway_core::validate::FieldError {
                field: if password.len() > MAX_PASSWORD_BYTES {
                    "password"
                } else {
                    "username"
                }
                .into(),
                message: format!(
                    "is too long (user names up to {MAX_USERNAME_CHARS} characters, passwords up to {MAX_PASSWORD_BYTES} bytes)"
                ),
            },
        ]));
    }
    // No user name holds one (PostgreSQL could not even compare it).
    if username.chars().any(char::is_control) {
        return Err(ServiceError::Invalid(vec![
            slipway_core::validate::FieldError::new(
                "username",
                "must not contain control characters",
            ),
        ]));
    }
    let subjects = throttle_subjects(username, client);
    let throttled = |wait: i64| {
        tracing::info!(username, "sign-in refused: throttled");
        state.metrics.sign_ins_throttled.inc();
        ServiceError::Forbidden(wait_message(wait))
    };
    let wait = locked_now(state, &subjects).await?;
    if wait > 0 {
        return Err(throttled(wait));
    }
    let turn = password_check_turn(state).await?;
    let counted = match count_attempt(state, &subjects).await? {
        Ok(counted) => counted,
        Err(wait) => return Err(throttled(wait)),
    };
    let looked_up = async {
        let mut conn = state.db.pool.acquire().await?;
        let stored = users::by_username(&mut conn, username).await?;
        drop(conn);
        let hash = stored.as_ref().and_then(|u| u.password_hash.clone());
        Ok::<_, ServiceError>((stored, check_password(turn, password, hash).await?))
    };
    let (stored, verified) = match looked_up.await {
        Ok(checked) => checked,
        Err(error) => {
            // Never checked: the attempt counts for nothing.
            if let Err(error) = take_back_unchecked(state, &subjects, &counted).await {
                tracing::warn!(%error, "could not take back a sign-in attempt that was not checked");
            }
            return Err(error);
        }
    };
    let attempt = (channel, meta);
    let locked_for = counted.locked_for;
    if stored.as_ref().is_some_and(|u| verified && u.disabled) {
        tracing::info!(username, "sign-in refused: the account is disabled");
        refuse(
            state,
            username,
            attempt,
            "the account is disabled",
            locked_for,
        )
        .await?;
        return Err(ServiceError::Forbidden(
            "this account is disabled; ask the platform team".into(),
        ));
    }
    let Some(user) = stored.filter(|_| verified) else {
        tracing::info!(username, "sign-in refused");
        let why = "wrong user name or password";
        refuse(state, username, attempt, why, locked_for).await?;
        return Err(ServiceError::Forbidden(WRONG_CREDENTIALS.into()));
    };
    let mut tx = state.db.write().await?;
    // `slipway user set-password` ran since the password was read: the one
    // checked is no longer the account's (and its sessions were just ended).
    if users::credential_version(&mut tx, user.view.id).await? != Some(user.credential_version) {
        tx.rollback().await?;
        tracing::info!(username, "sign-in refused: the password changed meanwhile");
        let why = "the password was changed during the sign-in";
        refuse(state, username, attempt, why, locked_for).await?;
        return Err(ServiceError::Forbidden(WRONG_CREDENTIALS.into()));
    }
    // The attempt counted as a failure is taken back: the user name's count starts
    // again; the address (which others may share) keeps its earlier failures.
    take_back(&mut tx, state, (&subjects, &counted), true).await?;
    let actor = Actor::User(Caller::new(user.view.clone(), channel, meta.clone()));
    record(
        &mut tx,
        state.db.engine,
        &actor,
        "user.sign_in",
        ("user", user.view.id.to_string()),
        None,
        "password".into(),
    )
    .await?;
    tx.commit().await?;
    Ok(SignedIn {
        user: user.view,
        credential_version: user.credential_version,
    })
}

/// Signs out: deletes the session `session_id` on the server and records it, in one
/// transaction (the caller then clears the browser's cookie).
pub async fn sign_out(state: &AppState, user: &Caller, session_id: &str) -> ServiceResult<()> {
    let mut tx = state.db.write().await?;
    crate::storage::sessions::end_by_id(&mut tx, session_id).await?;
    record(
        &mut tx,
        state.db.engine,
        &Actor::User(user.clone()),
        "user.sign_out",
        ("user", user.id.to_string()),
        None,
        String::new(),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

// Verifying against a real hash costs what checking a real user costs.
static DUMMY_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| hash_password("no such user").unwrap_or_default());

/// The signed-in user of a session, if the account may still act: a session of
/// a disabled or unconfirmed account counts as signed out.
/// A database that cannot answer is an error, not a signed-out visitor: people
/// sent to sign in while the database blinks would drop what they typed.
pub async fn user(state: &AppState, id: UserId) -> ServiceResult<Option<UserView>> {
    let mut conn = state.db.pool.acquire().await?;
    match acting_user(state, &mut conn, id).await {
        Ok(user) => Ok(Some(user)),
        Err(ServiceError::Unauthenticated | ServiceError::Forbidden(_)) => Ok(None),
        Err(error) => Err(error),
    }
}

/// The account as it may act now through a session, a token or chat: refused
/// when an administrator disabled it, when it is a local account and local
/// accounts were turned off (a move to single sign-on must not leave the
/// bootstrap admin's tokens working), or when its roles come from an identity
/// provider that has not confirmed them within the configured time.
pub(crate) async fn acting_user(
    state: &AppState,
    conn: &mut sqlx::AnyConnection,
    id: UserId,
) -> ServiceResult<UserView> {
    let window = state.settings.identity.provider_confirmation;
    // `as` would wrap a window past i64::MAX milliseconds to a negative one,
    // which would move the cut-off into the future and refuse everyone.
    let window_millis = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
    let confirmed_after = now_millis().saturating_sub(window_millis);
    let local_accounts = state.settings.identity.local_accounts;
    match users::standing(conn, id, (confirmed_after, local_accounts)).await? {
        users::Standing::Acting(user) => Ok(user),
        users::Standing::Missing => Err(ServiceError::Unauthenticated),
        users::Standing::Disabled => Err(ServiceError::Forbidden(
            "this account is disabled; ask the platform team".into(),
        )),
        users::Standing::LocalTurnedOff => Err(ServiceError::Forbidden(
            "local accounts are turned off here (--local-accounts false): this account's \
             sessions, tokens and chat link act no more; sign in through single sign-on"
                .into(),
        )),
        users::Standing::Unconfirmed => Err(ServiceError::Forbidden(format!(
            "your roles and teams come from the identity provider, which has not confirmed them \
             in the last {} days: sign in to the Slipway portal once to confirm them",
            window.as_secs() / 86_400
        ))),
    }
}

/// Disables (`disabled`) or enables an account, for an administrator at the
/// command line (a person who left, an account taken over). Disabling ends at
/// once everything that acts as the account: its sessions, its live tokens, its
/// chat link; sign-in is refused until it is enabled again.
pub async fn set_disabled(state: &AppState, username: &str, disabled: bool) -> ServiceResult<()> {
    let mut tx = state.db.write().await?;
    let id = users::set_disabled(&mut tx, username, disabled)
        .await?
        .ok_or_else(|| ServiceError::NotFound(format!("an account called {username:?}")))?;
    let mut ended = String::new();
    if disabled {
        let sessions = crate::storage::sessions::end_all_for_user(&mut tx, id).await?;
        let tokens = crate::storage::tokens::revoke_all(&mut tx, id).await?;
        let chat = crate::storage::chat::unlink_user(&mut tx, id).await?;
        ended = format!(
            "ended {sessions} sessions and {tokens} tokens{}",
            chat.map(|c| format!(", unlinked {c}")).unwrap_or_default()
        );
    }
    let action = if disabled {
        "user.disabled"
    } else {
        "user.enabled"
    };
    record(
        &mut tx,
        state.db.engine,
        // Whoever runs the command is the machine's administrator, not a user here.
        &Actor::Policy("admin-command".into()),
        action,
        ("user", id.to_string()),
        Some(username.to_string()),
        ended,
    )
    .await?;
    tx.commit().await?;
    Ok(())
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
/// password written to [`INITIAL_ADMIN_PASSWORD_FILE`] in the data directory.
/// Later starts find users and do nothing.
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
    } else if !state.settings.identity.local_accounts {
        // Password sign-in is off: the first person through single sign-on must be
        // given the admin role by the provider's role claim.
        tracing::info!("first start without local accounts: no admin account created");
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
        // A log is read by many and kept long: the password goes to a file only
        // the server's user can read. It is written before the account is
        // committed: if the write fails, no admin is made and the next start
        // tries again.
        let path = state.settings.data_dir.join(INITIAL_ADMIN_PASSWORD_FILE);
        write_private_file(&path, &password).map_err(|error| {
            ServiceError::Internal(format!(
                "cannot write the first admin password to {}: {error}",
                path.display()
            ))
        })?;
        tracing::warn!(
            path = %path.display(),
            "first start: created user admin; its password is in this file (readable by this \
             user only). Sign in, then set another with `slipway user set-password admin` \
             and delete the file"
        );
    }
    tx.commit().await?;
    Ok(())
}

/// The file in the data directory that holds the first admin's password.
pub const INITIAL_ADMIN_PASSWORD_FILE: &str = "initial-admin-password";

/// Writes `text` (and a newline) to a new file that only this process's user may
/// read. A file left there before (an earlier start whose set-up failed) is
/// replaced, not reused: its permissions could be anyone's.
fn write_private_file(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(error),
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    writeln!(file, "{text}")?;
    file.sync_all()
}

/// The shortest password `slipway user set-password` takes.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// Whether a new password may be set; the refusal says why.
fn check_new_password(password: &str) -> ServiceResult<()> {
    let refuse = |message: String| {
        Err(ServiceError::Invalid(vec![
            slipway_core::validate::FieldError::new("password", message),
        ]))
    };
    if password.is_empty() {
        return refuse("is empty; give the new password on one line".into());
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return refuse(format!(
            "is too short: at least {MIN_PASSWORD_CHARS} characters"
        ));
    }
    // Sign-in refuses longer ones unchecked: such a password could never be used.
    if password.len() > MAX_PASSWORD_BYTES {
        return refuse(format!("is too long: at most {MAX_PASSWORD_BYTES} bytes"));
    }
    if password.chars().any(char::is_control) {
        return refuse("must not contain control characters".into());
    }
    Ok(())
}

/// Sets a local account's password, for an administrator at the command line
/// (a forgotten password, the generated first one). Every session of the
/// account ends, so whoever knew the old password is signed out too; its API
/// tokens stay (revoke them with `user disable` if the account was taken over).
/// Refused for an account that signs in only through single sign-on: its
/// password is the provider's business. Answers how many sessions ended.
pub async fn set_password(state: &AppState, username: &str, password: &str) -> ServiceResult<u64> {
    check_new_password(password)?;
    let hash = hash_password(password)?;
    let mut tx = state.db.write().await?;
    let id = match users::set_password(&mut tx, username, &hash).await? {
        users::PasswordChange::Changed(id) => id,
        users::PasswordChange::SingleSignOnOnly => {
            return Err(ServiceError::Forbidden(format!(
                "{username:?} signs in through single sign-on only and has no password here; \
                 change it at the identity provider"
            )));
        }
        users::PasswordChange::Missing => {
            return Err(ServiceError::NotFound(format!(
                "an account called {username:?}"
            )));
        }
    };
    let sessions = crate::storage::sessions::end_all_for_user(&mut tx, id).await?;
    record(
        &mut tx,
        state.db.engine,
        // Whoever runs the command is the machine's administrator, not a user here.
        &Actor::Policy("admin-command".into()),
        "user.password_set",
        ("user", id.to_string()),
        Some(username.to_string()),
        format!("ended {sessions} sessions"),
    )
    .await?;
    tx.commit().await?;
    Ok(sessions)
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

/// The user's live sessions; `current_id` (the caller's own session) is marked.
pub async fn sessions(
    state: &AppState,
    user: &UserView,
    current_id: Option<&str>,
) -> ServiceResult<Vec<crate::storage::sessions::SessionRow>> {
    Ok(crate::storage::sessions::for_user(
        &state.db.pool,
        user.id,
        current_id,
        state.settings.identity.session_absolute_timeout,
    )
    .await?)
}

/// Ends one of the user's own sessions (another browser, a lost laptop).
pub async fn end_session(state: &AppState, user: &Caller, handle: &str) -> ServiceResult<()> {
    let gone = || ServiceError::NotFound("that session (it may have ended already)".into());
    // Handles are 32 hex digits; anything else names no session (and a NUL in it
    // is not even comparable on PostgreSQL).
    if !is_session_handle(handle) {
        return Err(gone());
    }
    let mut tx = state.db.write().await?;
    if !crate::storage::sessions::end_for_user(&mut tx, user.id, handle).await? {
        return Err(gone());
    }
    record(
        &mut tx,
        state.db.engine,
        &Actor::User(user.clone()),
        "session.ended",
        ("user", user.id.to_string()),
        None,
        "ended from the sessions page".into(),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// What a session's handle looks like (a UUID without dashes).
fn is_session_handle(handle: &str) -> bool {
    handle.len() == 32 && handle.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_handle_is_32_hex_digits() {
        assert!(is_session_handle(
            &uuid::Uuid::new_v4().simple().to_string()
        ));
        for bad in ["", "abc", "a\u{0}", &"g".repeat(32), &"a".repeat(33)] {
            assert!(!is_session_handle(bad), "{bad:?}");
        }
    }

    #[test]
    fn locks_grow_after_the_free_attempts_and_stop_at_fifteen_minutes() {
        assert_eq!(lock_after(4, 5), 0);
        assert_eq!(lock_after(5, 5), 60_000);
        assert_eq!(lock_after(6, 5), 120_000);
        assert_eq!(lock_after(8, 5), 480_000);
        assert_eq!(lock_after(9, 5), LONGEST_LOCK_MS);
        assert_eq!(lock_after(500, 5), LONGEST_LOCK_MS);
    }

    #[test]
    fn the_wait_is_said_in_whole_units_rounded_up() {
        assert!(wait_message(1).contains("wait 1 second "));
        assert!(wait_message(58_001).contains("wait 59 seconds"));
        assert!(wait_message(59_001).contains("wait 1 minute "));
        assert!(wait_message(60_001).contains("wait 2 minutes"));
    }
}
