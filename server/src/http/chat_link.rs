//! A chat link code from the portal: a plain form post answered with a page that
//! shows the one-time code (see [`super::shown_once`]); only its hash is kept.

use axum::extract::State;
use axum::response::Response;
use tower_sessions::Session;

use super::session_caller;
use super::shown_once::{self, Back, Shown};
use crate::services::{CallMeta, chat};
use crate::state::AppState;

/// `POST /account/chat-link/new`, from the signed-in user's account page.
pub async fn create(
    State(state): State<AppState>,
    session: Session,
    meta: Option<axum::Extension<CallMeta>>,
) -> Response {
    let back = Back {
        href: "/account/sessions",
        text: "Back to your account",
    };
    let issued = async {
        let caller = session_caller(&state, &session, meta.map(|m| m.0)).await?;
        chat::issue_link_code(&state, &caller).await
    };
    match issued.await {
        Ok(issued) => {
            let advice = format!(
                "Send the Slipway bot, in a direct chat, the message: link {} — within {} \
                 minutes. The code works once; your chat messages then act as you.",
                issued.code,
                chat::CODE_LIFETIME_MILLIS / 60_000
            );
            shown_once::answer(
                "Link your chat account",
                Ok(Shown {
                    title: "Link code",
                    value: &issued.code,
                    advice: &advice,
                }),
                back,
            )
        }
        Err(error) => shown_once::answer("Link your chat account", Err(error), back),
    }
}
