//! The one time a generated secret is shown: a plain form post from the request
//! page, answered with a page of its own.

use axum::extract::State;
use axum::response::Response;
use slipway_core::ids::RequestId;
use tower_sessions::Session;

use super::page_path::PagePath;
use super::session_caller;
use super::shown_once::{self, Back, Shown};
use crate::services::{CallMeta, secrets};
use crate::state::AppState;

const ADVICE: &str = "Shown this once: copy it now, into a password manager or the secret \
                      store your service reads. Slipway will not show it again.";

/// `POST /requests/{id}/secrets/{name}/reveal`, from the signed-in requester.
pub async fn reveal(
    State(state): State<AppState>,
    session: Session,
    PagePath((id, name)): PagePath<(i64, String)>,
    meta: Option<axum::Extension<CallMeta>>,
) -> Response {
    let id = RequestId(id);
    let answer = async {
        let caller = session_caller(&state, &session, meta.map(|m| m.0)).await?;
        secrets::reveal_once(&state, &caller, id, &name).await
    };
    let href = format!("/requests/{id}");
    let back = Back {
        href: &href,
        text: &format!("Back to request #{id}"),
    };
    match answer.await {
        Ok(revealed) => shown_once::answer(
            &format!("{} of request #{id}", revealed.title),
            Ok(Shown {
                title: &revealed.title,
                value: &revealed.value,
                advice: ADVICE,
            }),
            back,
        ),
        Err(error) => shown_once::answer(&format!("Request #{id}"), Err(error), back),
    }
}
