//! OpenID Connect sign-in: authorization code with PKCE, state and nonce, the ID
//! token verified against the provider's keys (issuer, audience, signature,
//! expiry, nonce); accounts created on first sign-in and their roles and teams
//! refreshed from the token's claims on every later one.

use std::collections::HashMap;

use sha2::Digest as _;
use std::time::{Duration, Instant};

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreErrorResponseType, CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm, CoreProviderMetadata,
};
use openidconnect::{
    AdditionalClaims, AsyncHttpClient as _, AuthorizationCode, ClaimsVerificationError, ClientId,
    ClientSecret, CsrfToken, HttpClientError, HttpRequest, HttpResponse, IdToken, IdTokenClaims,
    IssuerUrl, Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope,
    SignatureVerificationError, StandardErrorResponse, TokenResponse, reqwest,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use slipway_core::views::{Role, UserView};
use tokio::sync::{Mutex, RwLock};

use super::{Actor, CallMeta, Caller, Channel, ServiceError, ServiceResult, record};
use crate::config::OidcSettings;
use crate::state::AppState;
use crate::storage::users::{self, NewUser};

/// Every claim of the ID token beyond the standard ones, so the role and team
/// claims can be any name the settings give.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProviderClaims {
    #[serde(flatten)]
    pub other: HashMap<String, Value>,
}

impl AdditionalClaims for ProviderClaims {}

pub type SlipwayIdToken = IdToken<
    ProviderClaims,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
pub type SlipwayIdTokenClaims = IdTokenClaims<ProviderClaims, CoreGenderClaim>;

/// What the browser holds (sealed, in a cookie) between leaving for the provider
/// and coming back.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingSignIn {
    state: String,
    nonce: String,
    pkce_verifier: String,
    pub next: String,
}

impl PendingSignIn {
    #[cfg(test)]
    pub fn new(state: &str, nonce: &str, pkce_verifier: &str, next: &str) -> PendingSignIn {
        PendingSignIn {
            state: state.into(),
            nonce: nonce.into(),
            pkce_verifier: pkce_verifier.into(),
            next: next.into(),
        }
    }
}

/// Why a sign-in through the provider did not happen.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// The provider cannot be reached or answers nonsense: nobody can sign in now.
    #[error("the sign-in provider cannot be reached: {0}")]
    Unavailable(String),
    /// The provider refused the code, or its ID token failed the checks.
    #[error("sign-in refused: {0}")]
    Refused(String),
    /// The state the browser came back with is not the one its sign-in sent:
    /// refused before anything was asked of the provider.
    #[error(
        "sign-in refused: the state returned by the provider does not match this browser's sign-in"
    )]
    StateMismatch,
    #[error(transparent)]
    Service(#[from] ServiceError),
}

/// Provider metadata (with its keys) is read again after this long, so rotated
/// signing keys are picked up.
const METADATA_MAX_AGE: Duration = Duration::from_secs(15 * 60);
/// An ID token signed with a key the cached set lacks (the provider rotated its
/// keys) has the keys read again at once, but no more often than this: tokens
/// naming made-up keys must not turn into a stream of requests to the provider.
const KEY_REFETCH_INTERVAL: Duration = Duration::from_secs(30);

/// The client for the provider, with the endpoints its metadata gives.
type ProviderClient = CoreClient<
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

pub struct Oidc {
    settings: OidcSettings,
    http: reqwest::Client,
    /// The metadata and keys, with when they were read.
    metadata: RwLock<Option<(CoreProviderMetadata, Instant)>>,
    /// When the keys were last read again for an unknown key.
    last_key_refetch: Mutex<Option<Instant>>,
    /// Held while the discovery document is read, so that one caller reads it
    /// and the others use the copy they have (or wait for it); it keeps the
    /// last failure, which spares the provider for [`DISCOVERY_FAILURE_MEMORY`].
    discovering: Mutex<Option<(Instant, String)>>,
}

/// How long a failed discovery is taken as the answer: a provider that is down
/// is not asked again by every sign-in (each waits up to ten seconds).
const DISCOVERY_FAILURE_MEMORY: Duration = Duration::from_secs(30);

impl Oidc {
    pub fn new(settings: OidcSettings) -> Result<Oidc, String> {
        let http = reqwest::ClientBuilder::new()
            // Following redirects here would let a provider bounce requests elsewhere (SSRF).
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("HTTP client for OIDC: {e}"))?;
        Ok(Oidc {
            settings,
            http,
            metadata: RwLock::new(None),
            last_key_refetch: Mutex::new(None),
            discovering: Mutex::new(None),
        })
    }

    pub fn settings(&self) -> &OidcSettings {
        &self.settings
    }

    /// The provider's discovery document and keys, cached; a stale copy serves while
    /// the provider is down.
    pub async fn provider(&self) -> Result<CoreProviderMetadata, OidcError> {
        self.cached_provider().await.map(|(metadata, _)| metadata)
    }

    /// [`Oidc::provider`], with when that copy was read.
    async fn cached_provider(&self) -> Result<(CoreProviderMetadata, Instant), OidcError> {
        let cached = self.metadata.read().await.clone();
        if let Some((metadata, fetched)) = &cached
            && fetched.elapsed() < METADATA_MAX_AGE
        {
            return Ok((metadata.clone(), *fetched));
        }
        // One caller reads the document; with a stale copy at hand the others
        // go on with it instead of waiting.
        let mut discovering = match (self.discovering.try_lock(), &cached) {
            (Ok(guard), _) => guard,
            (Err(_), Some(stale)) => return Ok(stale.clone()),
            (Err(_), None) => self.discovering.lock().await,
        };
        if let Some(fresh) = self.metadata.read().await.clone()
            && fresh.1.elapsed() < METADATA_MAX_AGE
        {
            return Ok(fresh);
        }
        let failed_lately = discovering
            .as_ref()
            .filter(|(at, _)| at.elapsed() < DISCOVERY_FAILURE_MEMORY)
            .map(|(_, message)| message.clone());
        let message = match failed_lately {
            Some(message) => message,
            None => match self.discover().await {
                Ok(fresh) => {
                    *discovering = None;
                    return Ok(fresh);
                }
                Err(message) => {
                    *discovering = Some((Instant::now(), message.clone()));
                    message
                }
            },
        };
        match cached {
            Some(stale) => Ok(stale),
            None => Err(OidcError::Unavailable(message)),
        }
    }

    /// Reads the discovery document and keys from the provider and caches them.
    async fn discover(&self) -> Result<(CoreProviderMetadata, Instant), String> {
        let issuer =
            IssuerUrl::new(self.settings.issuer.clone()).map_err(|e| format!("issuer URL: {e}"))?;
        match CoreProviderMetadata::discover_async(issuer, &self.http).await {
            Ok(metadata) => {
                let fetched = Instant::now();
                *self.metadata.write().await = Some((metadata.clone(), fetched));
                Ok((metadata, fetched))
            }
            Err(error) => {
                let message = error_chain(&error);
                tracing::warn!(issuer = %self.settings.issuer, error = %message, "OIDC discovery failed");
                Err(message)
            }
        }
    }

    /// Keys newer than the copy read at `used`, for a token signed with a key that
    /// copy lacks: another sign-in's newer copy if there is one, else the provider's
    /// keys read again (at most once per [`KEY_REFETCH_INTERVAL`]); `None` when
    /// there is nothing newer to try.
    async fn newer_keys(&self, used: Instant) -> Option<CoreProviderMetadata> {
        // Held while reading, so sign-ins arriving together read the keys once.
        let mut last = self.last_key_refetch.lock().await;
        if let Some((metadata, fetched)) = self.metadata.read().await.as_ref()
            && *fetched > used
        {
            return Some(metadata.clone());
        }
        if last.is_some_and(|at| at.elapsed() < KEY_REFETCH_INTERVAL) {
            tracing::info!(issuer = %self.settings.issuer, "an ID token names an unknown signing key; the keys were read again moments ago");
            return None;
        }
        *last = Some(Instant::now());
        tracing::info!(issuer = %self.settings.issuer, "an ID token names an unknown signing key; reading the provider's keys again");
        self.discover().await.ok().map(|(metadata, _)| metadata)
    }

    fn client(&self, metadata: CoreProviderMetadata) -> Result<ProviderClient, OidcError> {
        let redirect = RedirectUrl::new(self.settings.redirect_url.clone())
            .map_err(|e| OidcError::Unavailable(format!("redirect URL: {e}")))?;
        Ok(CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.settings.client_id.clone()),
            self.settings
                .client_secret
                .as_ref()
                .map(|s| ClientSecret::new(s.expose().to_string())),
        )
        .set_redirect_uri(redirect))
    }

    /// The provider's authorization URL for a new sign-in, and what the session must
    /// keep until the browser comes back.
    pub async fn begin(&self, next: String) -> Result<(String, PendingSignIn), OidcError> {
        let client = self.client(self.provider().await?)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .set_pkce_challenge(challenge);
        for scope in self.settings.scopes.iter().filter(|s| *s != "openid") {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.url();
        Ok((
            url.to_string(),
            PendingSignIn {
                state: state.secret().clone(),
                nonce: nonce.secret().clone(),
                pkce_verifier: verifier.secret().clone(),
                next,
            },
        ))
    }

    /// Exchanges the code and verifies the ID token; nothing is written here.
    pub async fn verified_claims(
        &self,
        pending: &PendingSignIn,
        code: &str,
        returned_state: &str,
    ) -> Result<SlipwayIdTokenClaims, OidcError> {
        if !constant_time_eq(returned_state.as_bytes(), pending.state.as_bytes()) {
            return Err(OidcError::StateMismatch);
        }
        let (metadata, fetched) = self.cached_provider().await?;
        let client = self.client(metadata)?;
        let http = self.http.clone();
        let token_call = move |request: HttpRequest| {
            let http = http.clone();
            async move {
                let response = http.call(request).await?;
                if response.status().is_server_error() {
                    return Err(TokenCallError::ServerError(response.status()));
                }
                Ok::<HttpResponse, TokenCallError>(response)
            }
        };
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| OidcError::Unavailable(format!("token endpoint: {e}")))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.clone()))
            .request_async(&token_call)
            .await
            .map_err(code_exchange_error)?;
        let id_token = response
            .id_token()
            .ok_or_else(|| OidcError::Refused("the provider sent no ID token".into()))?;
        // Read with our claim type (the standard client type knows no extra claims).
        let id_token: SlipwayIdToken = id_token
            .to_string()
            .parse()
            .map_err(|e| OidcError::Refused(format!("ID token: {e}")))?;
        let nonce = Nonce::new(pending.nonce.clone());
        let verify = |client: &ProviderClient| {
            id_token
                .claims(&client.id_token_verifier(), &nonce)
                .cloned()
        };
        let mut verified = verify(&client);
        // Signed with a key these keys lack: the provider may have rotated its keys.
        if matches!(
            verified,
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey
            ))
        ) && let Some(newer) = self.newer_keys(fetched).await
        {
            verified = verify(&self.client(newer)?);
        }
        verified.map_err(|e| OidcError::Refused(format!("ID token: {}", error_chain(&e))))
    }
}

/// Why a call to the token endpoint brought no answer to read.
#[derive(Debug, thiserror::Error)]
enum TokenCallError {
    #[error(transparent)]
    Http(#[from] HttpClientError<reqwest::Error>),
    /// Whatever the body of a 5xx says, the provider (or a gateway before it)
    /// failed, not the person signing in.
    #[error("the token endpoint answered {0}")]
    ServerError(openidconnect::http::StatusCode),
}

/// A failed code exchange, told apart by whose failure it is. Only a refusal of
/// the code itself (`invalid_grant`: used, expired, made up) is the caller's.
/// Everything else is not theirs to count: a provider that cannot be reached,
/// answers a server error or what is not a token response, or refuses Slipway
/// itself (`invalid_client` after a secret was rotated at the provider, a rate
/// limit or a gateway's 4xx without a body); it is logged for the platform team.
fn code_exchange_error<E: std::error::Error + 'static>(
    error: RequestTokenError<E, StandardErrorResponse<CoreErrorResponseType>>,
) -> OidcError {
    let message = format!("code exchange: {}", error_chain(&error));
    let code_refused = matches!(
        &error,
        RequestTokenError::ServerResponse(response)
            if *response.error() == CoreErrorResponseType::InvalidGrant
    );
    if code_refused {
        OidcError::Refused(message)
    } else {
        tracing::error!(%message, "the provider did not exchange a sign-in code for a reason that is not the person's; check the client's settings at the provider");
        OidcError::Unavailable(message)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// Values of a claim that is a list of strings, one string, or space-separated text.
fn claim_values(claims: &ProviderClaims, name: &str) -> Vec<String> {
    match claims.other.get(name) {
        Some(Value::Array(values)) => values
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        Some(Value::String(text)) => text.split_whitespace().map(str::to_string).collect(),
        _ => Vec::new(),
    }
}

/// Roles and teams from the token. Roles: with a role map, what the map grants
/// the role-claim values (values it does not list grant nothing); without one,
/// values that name a Slipway role; requester when nothing is granted. Teams:
/// team-claim values with a leading `/` dropped (group paths), put through the
/// team map when there is one, kept when the catalog's teams dictionary lists them.
pub fn roles_and_teams(
    settings: &OidcSettings,
    claims: &ProviderClaims,
    known_teams: Option<&[String]>,
) -> (Vec<Role>, Vec<String>) {
    let role_values = claim_values(claims, &settings.roles_claim);
    let mut roles: Vec<Role> = match &settings.role_map {
        Some(map) => role_values
            .iter()
            .filter_map(|v| map.get(v))
            .flatten()
            .copied()
            .collect(),
        None => role_values.iter().filter_map(|v| Role::parse(v)).collect(),
    };
    roles.sort_by_key(|r| r.as_str());
    roles.dedup();
    if roles.is_empty() {
        roles.push(Role::Requester);
    }
    let team_values = claim_values(claims, &settings.teams_claim)
        .into_iter()
        .map(|t| t.trim_start_matches('/').to_string());
    let team_values: Vec<String> = match &settings.team_map {
        Some(map) => team_values
            .filter_map(|v| map.get(&v))
            .flatten()
            .cloned()
            .collect(),
        None => team_values.collect(),
    };
    let mut teams: Vec<String> = team_values
        .into_iter()
        .filter(|t| !t.is_empty() && !t.contains(','))
        .filter(|t| known_teams.is_none_or(|known| known.contains(t)))
        .collect();
    teams.sort();
    teams.dedup();
    (roles, teams)
}

/// A user name from the token: the first of `preferred_username`, the e-mail's
/// local part and the subject that still holds a letter or a digit once reduced
/// to the characters user names use elsewhere (`иван` reduces to nothing, and
/// its owner's `ivan@…` is a better name than `user`).
fn base_username(claims: &SlipwayIdTokenClaims) -> String {
    first_fit_username([
        claims.preferred_username().map(|u| u.to_string()),
        claims
            .email()
            .and_then(|e| e.as_str().split('@').next().map(str::to_string)),
        Some(claims.subject().to_string()),
    ])
}

fn first_fit_username(candidates: [Option<String>; 3]) -> String {
    candidates
        .into_iter()
        .flatten()
        .map(|raw| reduced_username(&raw))
        .find(|name| name.chars().any(|c| c.is_ascii_alphanumeric()))
        .unwrap_or_else(|| "user".into())
}

fn reduced_username(raw: &str) -> String {
    raw.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(40)
        .collect::<String>()
        .to_lowercase()
}

/// The longest display name kept from a provider's `name` claim.
const MAX_DISPLAY_NAME_CHARS: usize = 100;

/// The provider's `name` claim as shown on pages and in the audit trail: without
/// control characters or invisible direction marks, at most 100 characters.
fn display_name_from(name: Option<String>, base: &str) -> String {
    let cleaned: String = name
        .unwrap_or_default()
        .chars()
        .filter(|c| !slipway_core::validate::unfit_in_text(*c) && !c.is_control())
        .take(MAX_DISPLAY_NAME_CHARS)
        .collect();
    match cleaned.trim() {
        "" => base.to_string(),
        trimmed => trimmed.to_string(),
    }
}

/// Numbered names tried before one is made from the subject: a company whose
/// logins all reduce to one name must not cost a query per account made before.
const NUMBERED_NAMES: u32 = 20;

/// `base`, else `base-2` … `base-20`, else `base-` and eight hex digits of the
/// subject's hash (and a counter, should even that be taken).
async fn free_username(
    tx: &mut sqlx::AnyConnection,
    base: &str,
    subject: &str,
) -> ServiceResult<String> {
    let mut numbered = (1..=NUMBERED_NAMES).map(|n| match n {
        1 => base.to_string(),
        n => format!("{base}-{n}"),
    });
    let digest = format!("{:x}", sha2::Sha256::digest(subject.as_bytes()));
    let hashed = format!("{base}-{}", digest.get(..8).unwrap_or(&digest));
    let mut hashed_numbered = (1_u64..).map(|n| match n {
        1 => hashed.clone(),
        n => format!("{hashed}-{n}"),
    });
    loop {
        let candidate = match numbered.next() {
            Some(name) => name,
            None => hashed_numbered.next().unwrap_or_else(|| hashed.clone()),
        };
        if !users::username_taken(tx, &candidate).await? {
            return Ok(candidate);
        }
    }
}

fn team_terms(state: &AppState) -> Option<Vec<String>> {
    state
        .catalog
        .catalog
        .dictionaries
        .get("teams")
        .map(|d| d.terms.iter().map(|t| t.key.clone()).collect())
}

/// Creates the account on first sign-in (the user name made unique), or refreshes
/// its name, roles and teams from the claims; audits the sign-in.
pub async fn sign_in(
    state: &AppState,
    settings: &OidcSettings,
    claims: &SlipwayIdTokenClaims,
    meta: &CallMeta,
) -> ServiceResult<UserView> {
    let issuer = claims.issuer().to_string();
    let subject = claims.subject().to_string();
    let (roles, teams) = roles_and_teams(
        settings,
        claims.additional_claims(),
        team_terms(state).as_deref(),
    );
    let base = base_username(claims);
    let display_name = display_name_from(
        claims
            .name()
            .and_then(|n| n.get(None))
            .map(|n| n.to_string()),
        &base,
    );
    let mut tx = state.db.write().await?;
    let (id, created) = match users::by_external(&mut tx, &issuer, &subject).await? {
        Some(user) => {
            users::update_from_provider(&mut tx, user.id, &display_name, &roles, &teams).await?;
            (user.id, None)
        }
        None => {
            let username = free_username(&mut tx, &base, &subject).await?;
            let new = NewUser {
                username: &username,
                display_name: &display_name,
                password_hash: None,
                roles: &roles,
                teams: &teams,
            };
            let id = users::insert_external(&mut tx, &new, &issuer, &subject).await?;
            (id, Some(username))
        }
    };
    // The provider vouches for the person, not for an account the platform team
    // disabled here.
    let user = match super::auth::acting_user(state, &mut tx, id).await {
        Ok(user) => user,
        Err(ServiceError::Unauthenticated) => {
            return Err(ServiceError::Internal(
                "the user just written is missing".into(),
            ));
        }
        Err(refused) => return Err(refused),
    };
    let actor = Actor::User(Caller::new(user.clone(), Channel::Portal, meta.clone()));
    if let Some(username) = created {
        record(
            &mut tx,
            state.db.engine,
            &actor,
            "user.created",
            ("user", id.to_string()),
            Some(username),
            format!("first sign-in through {issuer}"),
        )
        .await?;
    }
    let roles_text: Vec<&str> = user.roles.iter().map(|r| r.as_str()).collect();
    record(
        &mut tx,
        state.db.engine,
        &actor,
        "user.sign_in",
        ("user", id.to_string()),
        None,
        format!(
            "oidc {issuer}; roles {}; teams {}",
            roles_text.join(","),
            user.teams.join(",")
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(user)
}

/// Whose a refused single sign-on is, which decides whether it counts against
/// the caller's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    /// The provider refused the code, or its ID token failed the checks: the
    /// attempt cost a call to the provider with Slipway's credentials, and is
    /// counted against the address.
    Caller,
    /// Refused before the provider was asked anything (no sign-in under way in
    /// this browser, a state that does not match, the provider's own error in
    /// the query): counted against no one, since any page can send a browser
    /// here (an `<img>` is enough) and behind a proxy everyone shares an address.
    Nobody,
    /// The provider cannot be reached or failed: nobody's failure.
    Provider,
}

/// Audits a sign-in through the provider that did not happen, with the call's
/// client address and trace id. Nobody is known yet, so the sign-in policy is the
/// actor; the call came through the portal.
pub async fn record_failure(
    state: &AppState,
    reason: &str,
    meta: &CallMeta,
    blame: Blame,
) -> ServiceResult<()> {
    // Counted against the address first; one that is locked by now is not
    // audited again (the throttled sign-ins' metric counts it). Only a refusal
    // that cost the provider a call counts (see [`Blame`]).
    if blame == Blame::Caller && !super::auth::count_provider_failure(state, meta).await? {
        state.metrics.sign_ins_throttled.inc();
        return Ok(());
    }
    let mut tx = state.db.write().await?;
    super::record(
        &mut tx,
        state.db.engine,
        &super::auth::sign_in_actor(Channel::Portal, meta),
        "user.sign_in_failed",
        ("user", String::new()),
        None,
        format!("oidc: {reason}"),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> OidcSettings {
        OidcSettings {
            issuer: "https://id.example".into(),
            client_id: "slipway".into(),
            client_secret: None,
            scopes: vec!["openid".into()],
            redirect_url: "https://slipway.example/auth/oidc/callback".into(),
            name: "Example".into(),
            roles_claim: "roles".into(),
            teams_claim: "groups".into(),
            role_map: None,
            team_map: None,
        }
    }

    /// A provider that is down is asked once, whoever signs in meanwhile: each
    /// ask can wait ten seconds, and a flood of sign-ins must not become a
    /// flood of requests to the provider.
    #[tokio::test]
    async fn a_provider_that_failed_is_not_asked_again_by_every_sign_in()
    -> Result<(), Box<dyn std::error::Error>> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let asked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = asked.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                // Not an HTTP answer: the discovery fails.
                drop(stream);
            }
        });
        let oidc = Oidc::new(OidcSettings {
            issuer: format!("http://127.0.0.1:{port}"),
            ..settings()
        })?;
        let attempts = futures_util::future::join_all((0..20).map(|_| oidc.provider())).await;
        assert!(attempts.iter().all(Result::is_err));
        for _ in 0..20 {
            assert!(oidc.provider().await.is_err());
        }
        assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 1);
        Ok(())
    }

    #[test]
    fn a_token_endpoint_that_fails_is_unavailable_and_a_refused_code_is_refused()
    -> Result<(), Box<dyn std::error::Error>> {
        type ExchangeError =
            RequestTokenError<std::io::Error, StandardErrorResponse<CoreErrorResponseType>>;
        let answered = |code: CoreErrorResponseType| -> ExchangeError {
            RequestTokenError::ServerResponse(StandardErrorResponse::new(code, None, None))
        };
        let not_json = serde_path_to_error::deserialize::<_, serde_json::Value>(
            &mut serde_json::Deserializer::from_str("<html>Bad Gateway</html>"),
        )
        .err()
        .ok_or("HTML is not JSON")?;
        let unavailable: Vec<ExchangeError> = vec![
            RequestTokenError::Request(std::io::Error::other("connection refused")),
            RequestTokenError::Parse(not_json, b"<html>Bad Gateway</html>".to_vec()),
            answered(CoreErrorResponseType::Extension(
                "temporarily_unavailable".into(),
            )),
            answered(CoreErrorResponseType::Extension("server_error".into())),
            answered(CoreErrorResponseType::InvalidClient),
            answered(CoreErrorResponseType::UnauthorizedClient),
            RequestTokenError::Other("server returned empty error response".into()),
        ];
        for error in unavailable {
            let shown = format!("{error:?}");
            assert!(
                matches!(code_exchange_error(error), OidcError::Unavailable(_)),
                "{shown}"
            );
        }
        let refused: Vec<ExchangeError> = vec![answered(CoreErrorResponseType::InvalidGrant)];
        for error in refused {
            let shown = format!("{error:?}");
            assert!(
                matches!(code_exchange_error(error), OidcError::Refused(_)),
                "{shown}"
            );
        }
        Ok(())
    }

    fn mapped() -> OidcSettings {
        let team = |t: &str| t.to_string();
        OidcSettings {
            roles_claim: "groups".into(),
            teams_claim: "groups".into(),
            role_map: Some(
                [
                    ("slipway-admins".into(), vec![Role::Admin, Role::Platform]),
                    ("platform-ops".into(), vec![Role::Platform]),
                ]
                .into_iter()
                .collect(),
            ),
            team_map: Some(
                [
                    ("grp-payments".into(), vec![team("payments")]),
                    ("org/ops".into(), vec![team("platform"), team("dba")]),
                ]
                .into_iter()
                .collect(),
            ),
            ..settings()
        }
    }

    #[test]
    fn a_user_name_comes_from_the_first_claim_that_has_letters_left() {
        let some = |s: &str| Some(s.to_string());
        assert_eq!(
            first_fit_username([some("Ivan.P"), some("ivan"), some("s")]),
            "ivan.p"
        );
        // Cyrillic reduces to nothing, and punctuation alone is no name.
        assert_eq!(
            first_fit_username([some("иван.петров"), some("ivan.petrov"), some("s")]),
            "ivan.petrov"
        );
        assert_eq!(
            first_fit_username([some("иван"), None, some("a1b2-c3")]),
            "a1b2-c3"
        );
        assert_eq!(first_fit_username([some("..."), None, some("--")]), "user");
    }

    #[test]
    fn a_display_name_is_cleaned_and_capped() {
        assert_eq!(
            display_name_from(Some("Eve \u{202E}nimda".into()), "eve"),
            "Eve nimda"
        );
        assert_eq!(display_name_from(Some(" \u{200B} ".into()), "eve"), "eve");
        assert_eq!(display_name_from(None, "eve"), "eve");
        let long = display_name_from(Some("é".repeat(500)), "eve");
        assert_eq!(long.chars().count(), MAX_DISPLAY_NAME_CHARS);
    }

    fn claims(value: Value) -> ProviderClaims {
        serde_json::from_value(value).unwrap_or_default()
    }

    #[test]
    fn claim_values_become_roles_and_known_teams() {
        let known = vec!["payments".to_string(), "platform".to_string()];
        let (roles, teams) = roles_and_teams(
            &settings(),
            &claims(serde_json::json!({
                "roles": ["reviewer", "superuser", "requester"],
                "groups": ["/payments", "marketing", "platform"],
            })),
            Some(&known),
        );
        assert_eq!(roles, vec![Role::Requester, Role::Reviewer]);
        assert_eq!(teams, vec!["payments".to_string(), "platform".to_string()]);
    }

    #[test]
    fn with_maps_claim_values_grant_what_the_maps_list() {
        let known = vec![
            "payments".to_string(),
            "platform".to_string(),
            "dba".to_string(),
        ];
        let (roles, teams) = roles_and_teams(
            &mapped(),
            &claims(serde_json::json!({
                "groups": ["slipway-admins", "/grp-payments", "/org/ops", "unmapped"],
            })),
            Some(&known),
        );
        assert_eq!(roles, vec![Role::Admin, Role::Platform]);
        assert_eq!(
            teams,
            vec![
                "dba".to_string(),
                "payments".to_string(),
                "platform".to_string()
            ]
        );
    }

    #[test]
    fn with_maps_slipway_names_alone_grant_nothing() {
        let (roles, teams) = roles_and_teams(
            &mapped(),
            &claims(serde_json::json!({ "groups": ["admin", "payments", "unmapped"] })),
            None,
        );
        assert_eq!(roles, vec![Role::Requester], "admin is not in the role map");
        assert!(
            teams.is_empty(),
            "payments is not in the team map: {teams:?}"
        );
    }

    #[test]
    fn a_mapped_team_the_catalog_lacks_is_dropped() {
        let known = vec!["payments".to_string()];
        let (_, teams) = roles_and_teams(
            &mapped(),
            &claims(serde_json::json!({ "groups": ["org/ops", "grp-payments"] })),
            Some(&known),
        );
        assert_eq!(teams, vec!["payments".to_string()]);
    }

    #[test]
    fn no_role_claim_means_requester() {
        let (roles, teams) = roles_and_teams(
            &settings(),
            &claims(serde_json::json!({ "groups": "payments" })),
            None,
        );
        assert_eq!(roles, vec![Role::Requester]);
        assert_eq!(teams, vec!["payments".to_string()]);
    }
}
