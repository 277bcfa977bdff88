//! Personal API tokens: created and revoked by their owner, shown once, stored only
//! as a hash, with an expiry and scopes. A bearer token becomes a [`Caller`] on the
//! API channel whose every audited act names the token.

use rand::Rng;
use sha2::{Digest, Sha256};
use slipway_core::validate::{self, FieldError};
use slipway_core::views::{TokenRequest, TokenScope, TokenView};

use super::{Actor, CallMeta, Caller, Channel, ServiceError, ServiceResult, record};
use crate::state::AppState;
use crate::storage::tokens::{NewTokenRow, TokenRow};
use crate::storage::{self, format_millis, now_millis};

/// Every secret starts so, which lets secret scanners recognise a leaked one.
pub const SECRET_PREFIX: &str = "slw_";
const SECRET_RANDOM_CHARS: usize = 40;
const SHOWN_PREFIX_CHARS: usize = 8;
const MAX_NAME_CHARS: usize = 100;
const MAX_DAYS: u32 = 366;
const DEFAULT_DAYS: u32 = 90;
const DAY_MILLIS: i64 = 86_400_000;
/// Tokens that ended (revoked or expired) this many days ago or less are listed.
pub const LISTED_DAYS: u32 = 30;
/// Live tokens one person may hold: enough for every script and pipeline, few
/// enough that a loop creating one per run is stopped early.
pub const MAX_LIVE_TOKENS: i64 = 100;
/// The most tokens a list shows: every live one, then the newest that ended.
pub const LISTED_TOKENS: i64 = 150;

fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn new_secret() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let random: String = (0..SECRET_RANDOM_CHARS)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{SECRET_PREFIX}{random}")
}

fn view(row: TokenRow) -> TokenView {
    TokenView {
        id: row.id,
        name: row.name,
        prefix: row.prefix,
        scopes: row.scopes,
        created_at: format_millis(row.created_at),
        expires_at: format_millis(row.expires_at),
        last_used_at: row.last_used_at.map(format_millis),
        revoked: row.revoked_at.is_some(),
    }
}

fn check_request(caller: &Caller, request: &TokenRequest) -> ServiceResult<(String, u32)> {
    let mut errors = Vec::new();
    let name = request.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        errors.push(FieldError::new(
            "name",
            format!("must be 1 to {MAX_NAME_CHARS} characters"),
        ));
    } else if name
        .chars()
        .any(|c| c.is_control() || validate::unfit_in_text(c))
    {
        errors.push(FieldError::new("name", validate::UNFIT_TEXT));
    }
    if request.scopes.is_empty() {
        errors.push(FieldError::new("scopes", "must name at least one scope"));
    }
    let days = request.expires_in_days.unwrap_or(DEFAULT_DAYS);
    if !(1..=MAX_DAYS).contains(&days) {
        errors.push(FieldError::new(
            "expires_in_days",
            format!("must be from 1 to {MAX_DAYS}"),
        ));
    }
    if let Some(extra) = request
        .scopes
        .iter()
        .find(|s| caller.require_scope(**s).is_err())
    {
        errors.push(FieldError::new(
            "scopes",
            format!(
                "the token you call with lacks the {} scope, so it cannot grant it",
                extra.as_str()
            ),
        ));
    }
    if errors.is_empty() {
        Ok((name.to_string(), days))
    } else {
        Err(ServiceError::Invalid(errors))
    }
}

/// When a new token expires: after `days`, but never after the token that makes it
/// (a token must not mint a longer-lived one). Also whether that cut it short.
fn expiry(caller: &Caller, days: u32) -> (i64, bool) {
    let asked = now_millis() + i64::from(days) * DAY_MILLIS;
    match caller.token_expires_at {
        Some(cap) if cap < asked => (cap, true),
        _ => (asked, false),
    }
}

/// How the audit records a new token's end: what it is, not only what was asked.
fn expiry_text(days: u32, (expires_at, capped): (i64, bool)) -> String {
    let at = storage::format_millis(expires_at);
    if capped {
        format!("expires {at}, with the token it was made with ({days} days were asked)")
    } else {
        format!("expires in {days} days, {at}")
    }
}

/// A token just made, with its secret: the caller shows it once and keeps it nowhere.
#[derive(Debug, Clone)]
pub struct CreatedToken {
    pub token: TokenView,
    pub secret: String,
}

/// Creates a token for the caller; the secret is in the answer and nowhere else.
pub async fn create(
    state: &AppState,
    caller: &Caller,
    request: &TokenRequest,
) -> ServiceResult<CreatedToken> {
    let (name, days) = check_request(caller, request)?;
    let mut scopes = request.scopes.clone();
    scopes.sort();
    scopes.dedup();
    let secret = new_secret();
    let prefix: String = secret.chars().take(SHOWN_PREFIX_CHARS).collect();
    let mut tx = state.db.write().await?;
    storage::tokens::take_turn(&mut tx, state.db.engine, caller.id).await?;
    // What let the caller in may have ended since they were let in: the account
    // disabled, the token they call with revoked (a leaked one). Checked holding
    // the rows in this transaction, so a disabling or a revocation that runs now
    // either ends this token with the others or comes first and refuses it.
    if !storage::users::lock_enabled(&mut tx, state.db.engine, caller.id).await? {
        return Err(ServiceError::Forbidden(
            "this account is disabled; ask the platform team".into(),
        ));
    }
    if let Some(parent) = caller.token_id
        && !storage::tokens::lock_live(&mut tx, state.db.engine, parent).await?
    {
        return Err(ServiceError::Forbidden(
            "the token you call with was revoked or has expired, so it cannot make another".into(),
        ));
    }
    if storage::tokens::live_count(&mut tx, caller.id, now_millis()).await? >= MAX_LIVE_TOKENS {
        return Err(ServiceError::Invalid(vec![FieldError::new(
            "",
            format!(
                "you hold {MAX_LIVE_TOKENS} live tokens, the most one person may; revoke one you no longer use first"
            ),
        )]));
    }
    let expires = expiry(caller, days);
    let id = storage::tokens::insert(
        &mut tx,
        &NewTokenRow {
            user_id: caller.id,
            name: &name,
            prefix: &prefix,
            secret_hash: &secret_hash(&secret),
            scopes: &scopes,
            expires_at: expires.0,
            parent_id: caller.token_id,
        },
    )
    .await?;
    let scope_names: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
    record(
        &mut tx,
        state.db.engine,
        &Actor::User(caller.clone()),
        "token.created",
        ("token", id.to_string()),
        Some(name),
        format!(
            "{prefix}…, scopes {}, {}",
            scope_names.join(","),
            expiry_text(days, expires)
        ),
    )
    .await?;
    let row = storage::tokens::get(&mut tx, id)
        .await?
        .ok_or_else(|| ServiceError::Internal(format!("token {id} vanished")))?;
    tx.commit().await?;
    Ok(CreatedToken {
        token: view(row),
        secret,
    })
}

/// The caller's live tokens and those that ended in the last [`LISTED_DAYS`].
pub async fn list(state: &AppState, caller: &Caller) -> ServiceResult<Vec<TokenView>> {
    let mut conn = state.db.pool.acquire().await?;
    let ended_after = now_millis() - i64::from(LISTED_DAYS) * DAY_MILLIS;
    let rows = storage::tokens::by_user(
        &mut conn,
        caller.id,
        (ended_after, now_millis()),
        LISTED_TOKENS,
    )
    .await?;
    Ok(rows.into_iter().map(view).collect())
}

/// Revokes one of the caller's tokens, and every token made with it (a leaked
/// admin token's children go with it); they stop working at once.
pub async fn revoke(state: &AppState, caller: &Caller, id: i64) -> ServiceResult<()> {
    let mut tx = state.db.write().await?;
    let ended = storage::tokens::revoke(&mut tx, id, caller.id).await?;
    if ended == 0 {
        return Err(ServiceError::NotFound(format!(
            "live token {id} of {}",
            caller.username
        )));
    }
    record(
        &mut tx,
        state.db.engine,
        &Actor::User(caller.clone()),
        "token.revoked",
        ("token", id.to_string()),
        None,
        match ended {
            1 => String::new(),
            n => format!("with the {} tokens made with it", n - 1),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The caller a bearer secret stands for, or `Unauthenticated` for a secret that is
/// unknown, revoked or expired (the answer never says which).
pub async fn authenticate(state: &AppState, secret: &str, meta: CallMeta) -> ServiceResult<Caller> {
    authenticate_call(state, secret, meta, "").await
}

/// [`authenticate`] for an API call, `call` being its method and path: every call
/// a token makes is in the audit log as `token.used` (see [`super::token_uses`]).
pub async fn authenticate_call(
    state: &AppState,
    secret: &str,
    meta: CallMeta,
    call: &str,
) -> ServiceResult<Caller> {
    let plausible = secret.starts_with(SECRET_PREFIX)
        && secret.len() == SECRET_PREFIX.len() + SECRET_RANDOM_CHARS
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !plausible {
        return Err(ServiceError::Unauthenticated);
    }
    let mut conn = state.db.pool.acquire().await?;
    let Some(token) = storage::tokens::usable_by_hash(&mut conn, &secret_hash(secret)).await?
    else {
        tracing::info!(trace_id = ?meta.trace_id, "API call with an unknown, revoked or expired token");
        return Err(ServiceError::Unauthenticated);
    };
    let user = super::auth::acting_user(state, &mut conn, token.user_id).await?;
    drop(conn);
    let caller = Caller {
        user,
        channel: Channel::Api,
        meta,
        token_id: Some(token.id),
        scopes: Some(token.scopes),
        token_expires_at: Some(token.expires_at),
        session_key: None,
    };
    if !call.is_empty() {
        super::token_uses::room_for_a_use(state)?;
        // Per person, not per token: one person may hold many tokens.
        if let Err(wait) = state.token_pace.call(caller.user.id.0) {
            tracing::warn!(token_id = token.id, user = %caller.user.username, "API calls faster than their pace");
            return Err(ServiceError::TooMany(
                format!(
                    "your API tokens made more than {} calls in a minute; wait {} s and spread the calls out",
                    state.token_pace.per_minute(),
                    wait.as_secs().max(1)
                ),
                Some(wait),
            ));
        }
        super::token_uses::record_use(state, &caller, token.id, call).await?;
    }
    Ok(caller)
}

/// The caller as they stand now, for a call that outlives a moment (an export
/// streamed batch after batch): the token they came with still usable (see
/// [`storage::tokens::usable_by_id`]) or the portal session still signed in,
/// the account still allowed to act, with its roles and teams as they are now.
/// `Unauthenticated` once the token or the session ended; the account's refusal
/// once it may no longer act.
pub async fn still_standing(state: &AppState, caller: &Caller) -> ServiceResult<Caller> {
    let mut conn = state.db.pool.acquire().await?;
    let mut now = caller.clone();
    if let Some(key) = &caller.session_key {
        let absolute = state.settings.identity.session_absolute_timeout;
        if !storage::sessions::still_signed_in(&mut conn, key, caller.user.id, absolute).await? {
            return Err(ServiceError::Unauthenticated);
        }
    }
    if let Some(id) = caller.token_id {
        let token = storage::tokens::usable_by_id(&mut conn, id)
            .await?
            .filter(|token| token.user_id == caller.user.id)
            .ok_or(ServiceError::Unauthenticated)?;
        now.scopes = Some(token.scopes);
        now.token_expires_at = Some(token.expires_at);
    }
    now.user = super::auth::acting_user(state, &mut conn, caller.user.id).await?;
    Ok(now)
}

impl Caller {
    /// Whether the call's credentials allow this kind of act (a session allows all).
    pub fn require_scope(&self, scope: TokenScope) -> ServiceResult<()> {
        match &self.scopes {
            Some(held) if !held.contains(&scope) && !held.contains(&TokenScope::Admin) => Err(
                ServiceError::Forbidden(format!("this token lacks the {} scope", scope.as_str())),
            ),
            _ => Ok(()),
        }
    }
}
