//! Creating an API token from the portal: a plain form post answered with a page
//! that shows the secret this once (see [`super::shown_once`]), so the secret never
//! waits in a session or a database row to be shown later.

use axum::Form;
use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::response::Response;
use slipway_core::validate::FieldError;
use slipway_core::views::{TokenRequest, TokenScope};
use tower_sessions::Session;

use super::session_caller;
use super::shown_once::{self, Back, Shown};
use crate::services::{CallMeta, ServiceError, tokens};
use crate::state::AppState;

const ADVICE: &str = "Copy it now, into your pipeline's secret store: Slipway keeps only its \
                      hash and will not show it again.";

/// The token form's fields; a checkbox arrives only when ticked.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenForm {
    name: String,
    expires_in_days: String,
    scope_read: Option<String>,
    scope_request: Option<String>,
    scope_review: Option<String>,
    scope_admin: Option<String>,
}

impl TokenForm {
    fn request(self) -> Result<TokenRequest, ServiceError> {
        let days = self.expires_in_days.trim().parse::<u32>().map_err(|_| {
            ServiceError::Invalid(vec![FieldError::new(
                "expires_in_days",
                "must be a whole number of days",
            )])
        })?;
        let ticked = [
            (self.scope_read, TokenScope::Read),
            (self.scope_request, TokenScope::Request),
            (self.scope_review, TokenScope::Review),
            (self.scope_admin, TokenScope::Admin),
        ];
        Ok(TokenRequest {
            name: self.name,
            scopes: ticked
                .into_iter()
                .filter_map(|(ticked, scope)| ticked.map(|_| scope))
                .collect(),
            expires_in_days: Some(days),
        })
    }
}

/// `POST /account/tokens/new`, from the signed-in user's token page.
pub async fn create(
    State(state): State<AppState>,
    session: Session,
    meta: Option<axum::Extension<CallMeta>>,
    form: Result<Form<TokenForm>, FormRejection>,
) -> Response {
    let back = Back {
        href: "/account/tokens",
        text: "Back to your API tokens",
    };
    let created = async {
        let caller = session_caller(&state, &session, meta.map(|m| m.0)).await?;
        let Form(form) = form.map_err(|rejection| {
            ServiceError::Invalid(vec![FieldError::new(
                "form",
                format!(
                    "could not be read ({}); fill in a name, tick at least one scope and \
                     choose an expiry",
                    rejection.body_text()
                ),
            )])
        })?;
        tokens::create(&state, &caller, &form.request()?).await
    };
    match created.await {
        Ok(created) => shown_once::answer(
            &format!("Your new token \"{}\"", created.token.name),
            Ok(Shown {
                title: "Token",
                value: &created.secret,
                advice: ADVICE,
            }),
            back,
        ),
        Err(error) => shown_once::answer("API tokens", Err(error), back),
    }
}
