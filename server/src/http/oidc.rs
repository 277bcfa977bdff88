//! The browser's side of OpenID Connect sign-in: `/auth/oidc/start` sends people to
//! the provider, `/auth/oidc/callback` brings them back signed in. Every failure
//! ends on the sign-in page with a message, never on an error status.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;
use tower_sessions::Session;
use url::form_urlencoded;

use super::sign_in_cookie::SignInCookie;
use super::{safe_next, start_user_session, user_agent};
use crate::audit_budget::AuditBudget;
use crate::services::auth::provider_sign_in_wait;
use crate::services::oidc::{Blame, Oidc, OidcError, record_failure, sign_in};
use crate::state::AppState;
use crate::storage::now_millis;

const DEFAULT_NEXT: &str = "/catalog";
/// A longer `next` is not kept: the sign-in goes on to the default page. It
/// travels in a cookie, which has room for a few kilobytes only.
const MAX_NEXT_LEN: usize = 1_000;

#[derive(Clone)]
struct OidcRoutes {
    app: AppState,
    oidc: Arc<Oidc>,
    cookie: Arc<SignInCookie>,
    unblamed_audits: Arc<AuditBudget>,
}

/// Refused callbacks that count against no one, audited per minute at most:
/// any page can send browsers here, and each would otherwise add a row to an
/// audit trail that is never pruned. Beyond the budget they are only logged.
const UNBLAMED_AUDITS_PER_MINUTE: u32 = 60;

/// The OIDC routes when a provider is configured (none otherwise). Discovery starts
/// in the background now, so the first person to sign in does not wait for it.
pub fn router(state: &AppState) -> Router {
    let Some(settings) = state.settings.identity.oidc.clone() else {
        return Router::new();
    };
    let oidc = match Oidc::new(settings) {
        Ok(oidc) => Arc::new(oidc),
        Err(error) => {
            tracing::error!(%error, "OIDC sign-in unavailable");
            return Router::new();
        }
    };
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        let warm = oidc.clone();
        runtime.spawn(async move {
            if warm.provider().await.is_ok() {
                tracing::info!(issuer = %warm.settings().issuer, "OIDC provider discovered");
            }
        });
    }
    Router::new()
        .route("/auth/oidc/start", get(start))
        .route("/auth/oidc/callback", get(callback))
        .with_state(OidcRoutes {
            app: state.clone(),
            oidc,
            cookie: Arc::new(SignInCookie::new(
                state.settings.secret_key.as_ref(),
                state.settings.secure_cookies,
            )),
            unblamed_audits: Arc::new(AuditBudget::per_minute(UNBLAMED_AUDITS_PER_MINUTE)),
        })
}

/// Back to the sign-in page with one of the messages it knows (never free text from
/// the request, which would let a link put words on our page).
fn to_login(error: &str, next: &str) -> Response {
    let next: String = form_urlencoded::byte_serialize(next.as_bytes()).collect();
    Redirect::to(&format!("/login?error={error}&next={next}")).into_response()
}

#[derive(Deserialize)]
struct StartQuery {
    next: Option<String>,
}

/// Sends the browser to the provider, the sign-in's state sealed in a cookie:
/// nothing is stored here, so anyone may call it as often as they like.
async fn start(State(routes): State<OidcRoutes>, Query(query): Query<StartQuery>) -> Response {
    let next = query
        .next
        .as_deref()
        .filter(|next| next.len() <= MAX_NEXT_LEN)
        .and_then(safe_next)
        .unwrap_or_else(|| DEFAULT_NEXT.into());
    match routes.oidc.begin(next.clone()).await {
        Ok((url, pending)) => match routes.cookie.set(&pending, now_millis()) {
            Some(cookie) => {
                let mut response = Redirect::to(&url).into_response();
                response.headers_mut().append(header::SET_COOKIE, cookie);
                response
            }
            None => {
                tracing::error!("the OIDC sign-in state does not fit in a cookie");
                to_login("sign_in_failed", &next)
            }
        },
        Err(error) => {
            tracing::warn!(%error, "OIDC sign-in cannot start");
            to_login("provider_unavailable", &next)
        }
    }
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// The error codes of OAuth 2.0 (RFC 6749, 4.1.2.1) and OpenID Connect Core
/// (3.1.2.6) a provider sends back to the callback.
const PROVIDER_ERRORS: &[&str] = &[
    "invalid_request",
    "unauthorized_client",
    "access_denied",
    "unsupported_response_type",
    "invalid_scope",
    "server_error",
    "temporarily_unavailable",
    "interaction_required",
    "login_required",
    "account_selection_required",
    "consent_required",
    "invalid_request_uri",
    "invalid_request_object",
    "request_not_supported",
    "request_uri_not_supported",
    "registration_not_supported",
];

/// The provider's error as the audit trail records it: one of the standard
/// codes, or a note that it was none. Anyone can open the callback with an
/// `error` of their own after starting a sign-in, so its text is never
/// recorded: it would read as an event of the audit trail's own.
fn provider_error(error: &str) -> String {
    match PROVIDER_ERRORS.iter().find(|code| **code == error) {
        Some(code) => (*code).to_string(),
        None => "an error code that is not OAuth's or OpenID Connect's".to_string(),
    }
}

/// The provider's answer; whatever it is, the sign-in's cookie is used up.
async fn callback(
    State(routes): State<OidcRoutes>,
    session: Session,
    headers: HeaderMap,
    meta: Option<axum::Extension<crate::services::CallMeta>>,
    Query(query): Query<CallbackQuery>,
) -> Response {
    let meta = meta.map(|axum::Extension(m)| m).unwrap_or_default();
    let mut response = finish(&routes, &session, &headers, &meta, query).await;
    response
        .headers_mut()
        .append(header::SET_COOKIE, routes.cookie.clear());
    response
}

async fn finish(
    routes: &OidcRoutes,
    session: &Session,
    headers: &HeaderMap,
    meta: &crate::services::CallMeta,
    query: CallbackQuery,
) -> Response {
    let app = &routes.app;
    let fail = |reason: String, error: &'static str, next: String, blame: Blame| async move {
        tracing::info!(%reason, "OIDC sign-in refused");
        if blame == Blame::Nobody && !routes.unblamed_audits.take(now_millis()) {
            tracing::warn!(%reason, "more refused sign-ins this minute than are audited; this one is only logged");
            return to_login(error, &next);
        }
        if let Err(audit) = record_failure(app, &reason, meta, blame).await {
            tracing::error!(%audit, "could not audit a refused sign-in");
        }
        to_login(error, &next)
    };
    // An address locked by its failures gets no call to the provider, nor an
    // audit row, until its lock ends.
    match provider_sign_in_wait(app, meta).await {
        Ok(0) => {}
        Ok(_) => return to_login("too_many", DEFAULT_NEXT),
        Err(error) => {
            tracing::error!(%error, "could not read the sign-in throttle");
            return to_login("sign_in_failed", DEFAULT_NEXT);
        }
    }
    // Until the code goes to the provider, a refusal costs nothing but its
    // audit row and counts against no one: any page can send a browser here.
    let Some(pending) = routes.cookie.read(headers, now_millis()) else {
        return fail(
            "no sign-in was under way in this browser".into(),
            "sign_in_expired",
            DEFAULT_NEXT.into(),
            Blame::Nobody,
        )
        .await;
    };
    let next = pending.next.clone();
    if let Some(error) = query.error {
        return fail(
            format!("the provider answered {}", provider_error(&error)),
            "provider_refused",
            next,
            Blame::Nobody,
        )
        .await;
    }
    let (Some(code), Some(state)) = (query.code, query.state) else {
        return fail(
            "the provider's answer has no code or state".into(),
            "sign_in_failed",
            next,
            Blame::Nobody,
        )
        .await;
    };
    let claims = match routes.oidc.verified_claims(&pending, &code, &state).await {
        Ok(claims) => claims,
        Err(OidcError::Unavailable(reason)) => {
            return fail(reason, "provider_unavailable", next, Blame::Provider).await;
        }
        Err(error @ OidcError::StateMismatch) => {
            return fail(error.to_string(), "sign_in_failed", next, Blame::Nobody).await;
        }
        Err(error @ OidcError::Refused(_)) => {
            return fail(error.to_string(), "sign_in_failed", next, Blame::Caller).await;
        }
        Err(error @ OidcError::Service(_)) => {
            return fail(error.to_string(), "sign_in_failed", next, Blame::Nobody).await;
        }
    };
    let user = match sign_in(app, routes.oidc.settings(), &claims, meta).await {
        Ok(user) => user,
        Err(crate::services::ServiceError::Forbidden(reason)) => {
            tracing::info!(%reason, "OIDC sign-in refused: the account is disabled");
            return to_login("account_disabled", &next);
        }
        Err(error) => {
            tracing::error!(%error, "OIDC sign-in could not be stored");
            return to_login("sign_in_failed", &next);
        }
    };
    if let Err(error) = start_user_session(app, session, &user, user_agent(headers)).await {
        tracing::error!(%error, "could not start the session");
        return to_login("sign_in_failed", &next);
    }
    tracing::info!(username = %user.username, "signed in through OIDC");
    let target = safe_next(&next).unwrap_or_else(|| DEFAULT_NEXT.into());
    Redirect::to(&target).into_response()
}

#[cfg(test)]
mod tests {
    use super::provider_error;

    #[test]
    fn only_a_standard_error_code_reaches_the_audit_trail() {
        assert_eq!(provider_error("access_denied"), "access_denied");
        for hostile in [
            "access_denied\u{202e}nimda",
            "x; user.sign_in alice succeeded",
            "ACCESS_DENIED",
            "",
        ] {
            let recorded = provider_error(hostile);
            assert_eq!(
                recorded,
                "an error code that is not OAuth's or OpenID Connect's"
            );
        }
    }
}
