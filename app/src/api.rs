//! Server functions: the portal's only way to the server. Each one is a thin adapter:
//! find the signed-in user, call one service, map its error.

use leptos::prelude::*;
use leptos::server_fn::codec::Json;
use serde_json::Value;
use slipway_core::catalog::ResourceType;
use slipway_core::ids::{AssetId, RequestId};
use slipway_core::listing::{ListPage, ListQuery};
use slipway_core::precheck::PrecheckReport;
use slipway_core::views::{
    ActionDraft, ActionForm, AssetDetail, AssetSummary, AuditEntry, FilterChoices, Menu,
    RequestDetail, RequestDraft, RequestSummary, ReviewDecision, TokenView, TypeSummary, UserView,
};

use crate::error::AppError;
#[cfg(feature = "ssr")]
use crate::ssr::{
    app_state, keep_draft, optional_user, reviewer_read, session, signed_in, take_draft, user_error,
};
#[cfg(feature = "ssr")]
use slipway_server::services;

/// A list's query as the portal's page sent it (JSON, read in the browser),
/// held to the rules the REST API reads a query string by.
#[cfg(feature = "ssr")]
fn checked(query: ListQuery) -> Result<ListQuery, AppError> {
    query
        .checked()
        .map_err(|errors| user_error(services::ServiceError::Invalid(errors)))
}

/// The signed-in person and the lists the menu offers them.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SignedIn {
    pub user: UserView,
    pub menu: Menu,
}

#[server]
pub async fn current_user() -> Result<Option<SignedIn>, AppError> {
    let state = app_state()?;
    Ok(optional_user(&state).await?.map(|user| SignedIn {
        menu: services::catalog::menu(&state, &user),
        user,
    }))
}

/// How people may sign in here, for the sign-in page.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SignInChoices {
    pub local_accounts: bool,
    /// The single sign-on provider's name, when one is configured.
    pub provider: Option<String>,
}

#[server]
pub async fn sign_in_options() -> Result<SignInChoices, AppError> {
    let state = app_state()?;
    let identity = &state.settings.identity;
    Ok(SignInChoices {
        local_accounts: identity.local_accounts,
        provider: identity.oidc.as_ref().map(|o| o.name.clone()),
    })
}

/// Signs in with a local account; the session id is replaced so a session fixed
/// before sign-in is worthless after it.
#[server]
pub async fn login(
    username: String,
    password: String,
    next: Option<String>,
) -> Result<(), AppError> {
    let state = app_state()?;
    // The session carries the version of the password checked: one set
    // meanwhile (`slipway user set-password`) leaves it signed out.
    let signed_in = services::auth::sign_in(
        &state,
        &username,
        &password,
        services::Channel::Portal,
        &crate::ssr::call_meta(),
    )
    .await
    .map_err(user_error)?;
    let session = session().await?;
    let parts = use_context::<axum::http::request::Parts>();
    let agent = parts
        .as_ref()
        .and_then(|p| slipway_server::http::user_agent(&p.headers));
    slipway_server::http::start_signed_in_session(&state, &session, &signed_in, agent)
        .await
        .map_err(|e| user_error(slipway_server::http::session_failed(e)))?;
    // Only paths on this site: an open redirect would let a link send people elsewhere.
    let target = next
        .as_deref()
        .and_then(slipway_server::http::safe_next)
        .unwrap_or_else(|| "/catalog".into());
    leptos_axum::redirect(&target);
    Ok(())
}

/// Signs out: the session is deleted on the server, not only forgotten by the browser.
#[server]
pub async fn logout() -> Result<(), AppError> {
    let state = app_state()?;
    let user = optional_user(&state).await?;
    let session = session().await?;
    if let (Some(user), Some(id)) = (user, session.id()) {
        let caller =
            services::Caller::new(user, services::Channel::Portal, crate::ssr::call_meta());
        services::auth::sign_out(&state, &caller, &id.to_string())
            .await
            .map_err(user_error)?;
    }
    session
        .flush()
        .await
        .map_err(|e| user_error(slipway_server::http::session_failed(e)))?;
    leptos_axum::redirect("/login");
    Ok(())
}

/// One of the signed-in user's sessions. `handle` names it; the session id itself
/// is the credential and never leaves the server.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SessionView {
    pub handle: String,
    pub created: String,
    pub last_seen: String,
    pub user_agent: String,
    pub current: bool,
}

/// The most sessions the account page lists: the newest used. The storage
/// reads one more, to tell whether there are more.
pub const SESSIONS_SHOWN: usize = 100;

/// Who the signed-in person is and their sessions, newest used first.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SessionsPageData {
    pub user: UserView,
    pub sessions: Vec<SessionView>,
    /// More sessions are live than the [`SESSIONS_SHOWN`] listed.
    pub more: bool,
}

#[server]
pub async fn my_sessions() -> Result<SessionsPageData, AppError> {
    let (state, user) = signed_in().await?;
    let current = session().await?.id().map(|id| id.to_string());
    let mut rows = services::auth::sessions(&state, &user, current.as_deref())
        .await
        .map_err(user_error)?;
    let more = rows.len() > SESSIONS_SHOWN;
    rows.truncate(SESSIONS_SHOWN);
    let format = slipway_server::storage::format_millis;
    let sessions = rows
        .into_iter()
        .map(|row| SessionView {
            handle: row.handle,
            created: format(row.created_at),
            last_seen: format(row.last_seen_at),
            user_agent: row.user_agent,
            current: row.current,
        })
        .collect();
    Ok(SessionsPageData {
        user: user.user,
        sessions,
        more,
    })
}

/// Whether ChatOps is set up here, and the chat account linked to the user.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ChatLinkView {
    pub chat_on: bool,
    pub account: Option<String>,
}

/// The chat account linked to the signed-in user, if any.
#[server]
pub async fn my_chat_link() -> Result<ChatLinkView, AppError> {
    let (state, user) = signed_in().await?;
    let account = services::chat::linked_account(&state, &user)
        .await
        .map_err(user_error)?;
    Ok(ChatLinkView {
        chat_on: services::chat::chat_is_on(&state),
        account,
    })
}

#[server]
pub async fn unlink_chat() -> Result<(), AppError> {
    let (state, user) = signed_in().await?;
    services::chat::unlink(&state, &user)
        .await
        .map_err(user_error)
}

#[server]
pub async fn end_session(handle: String) -> Result<(), AppError> {
    let (state, user) = signed_in().await?;
    services::auth::end_session(&state, &user, &handle)
        .await
        .map_err(user_error)
}

#[server]
pub async fn list_types() -> Result<Vec<TypeSummary>, AppError> {
    let (state, user) = signed_in().await?;
    Ok(services::catalog::list_types(&state, &user))
}

/// Everything the request form needs: the type as a form shows it (its
/// dictionaries already resolved into its fields), and a fresh key that makes a
/// double-clicked submit land once.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FormContext {
    pub resource_type: ResourceType,
    pub submit_key: String,
}

#[server]
pub async fn load_form_context(type_name: String) -> Result<FormContext, AppError> {
    let (state, user) = signed_in().await?;
    let resource_type =
        services::catalog::form_type(&state, &user, &type_name).map_err(user_error)?;
    Ok(FormContext {
        resource_type,
        submit_key: uuid::Uuid::new_v4().to_string(),
    })
}

#[server(input = Json)]
pub async fn precheck_request(
    type_name: String,
    params: Value,
    exclude: Option<RequestId>,
) -> Result<PrecheckReport, AppError> {
    let (state, user) = signed_in().await?;
    services::requests::precheck(&state, &user, &type_name, &params, exclude)
        .await
        .map_err(user_error)
}

/// Hints from the team's history of the type, for the request form; `team` is the
/// form's team (by default the caller's only one). Never a reason to refuse.
#[server]
pub async fn load_guidance(
    type_name: String,
    team: Option<String>,
) -> Result<slipway_core::guidance::Guidance, AppError> {
    let (state, user) = signed_in().await?;
    services::guidance::for_form(&state, &user, &type_name, team.as_deref())
        .await
        .map_err(user_error)
}

/// The form of a day-2 action on an asset, first filled from the asset, with a
/// fresh key that makes a double-clicked submit land once.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ActionFormContext {
    pub form: ActionForm,
    pub submit_key: String,
}

#[server]
pub async fn load_action_form(
    asset_id: AssetId,
    action: String,
) -> Result<ActionFormContext, AppError> {
    let (state, user) = signed_in().await?;
    let mut form = services::actions::form(&state, &user, asset_id, &action)
        .await
        .map_err(user_error)?;
    form.form_type = services::catalog::form_view(form.form_type);
    Ok(ActionFormContext {
        form,
        submit_key: uuid::Uuid::new_v4().to_string(),
    })
}

#[server(input = Json)]
pub async fn precheck_action(
    asset_id: AssetId,
    action: String,
    params: Value,
    exclude: Option<RequestId>,
) -> Result<PrecheckReport, AppError> {
    let (state, user) = signed_in().await?;
    services::actions::precheck(&state, &user, asset_id, &action, &params, exclude)
        .await
        .map_err(user_error)
}

#[server(input = Json)]
pub async fn submit_action(
    asset_id: AssetId,
    action: String,
    draft: ActionDraft,
) -> Result<RequestId, AppError> {
    let (state, user) = signed_in().await?;
    services::actions::submit(&state, &user, asset_id, &action, &draft)
        .await
        .map_err(user_error)
}

#[server(input = Json)]
pub async fn submit_request(draft: RequestDraft) -> Result<RequestId, AppError> {
    let (state, user) = signed_in().await?;
    services::requests::submit(&state, &user, &draft)
        .await
        .map_err(user_error)
}

#[server(input = Json)]
pub async fn resubmit_request(id: RequestId, revision: i64, params: Value) -> Result<(), AppError> {
    let (state, user) = signed_in().await?;
    services::requests::resubmit_from(&state, &user, (id, Some(revision)), &params)
        .await
        .map_err(user_error)
}

#[server]
pub async fn cancel_request(id: RequestId) -> Result<(), AppError> {
    let (state, user) = signed_in().await?;
    services::requests::cancel(&state, &user, id)
        .await
        .map_err(user_error)
}

/// The signed-in person's requests: one page, narrowed as the page's URL says.
#[server(input = Json)]
pub async fn my_requests(query: ListQuery) -> Result<ListPage<RequestSummary>, AppError> {
    let (state, user) = signed_in().await?;
    let query = checked(query)?;
    services::requests::mine(&state, &user, &query.filter, query.page)
        .await
        .map_err(user_error)
}

/// What the lists' filters offer.
#[server]
pub async fn list_filter_choices() -> Result<FilterChoices, AppError> {
    let (state, user) = signed_in().await?;
    Ok(services::catalog::filter_choices(&state, &user))
}

#[server]
pub async fn fetch_request(id: RequestId) -> Result<RequestDetail, AppError> {
    let (state, user) = signed_in().await?;
    let read = reviewer_read().await;
    services::detail::request_detail(&state, &user, id, read)
        .await
        .map_err(user_error)
}

#[server(input = Json)]
pub async fn review_queue(query: ListQuery) -> Result<ListPage<RequestSummary>, AppError> {
    let (state, user) = signed_in().await?;
    let query = checked(query)?;
    services::reviews::queue(&state, &user, &query.filter, query.page)
        .await
        .map_err(user_error)
}

#[server]
pub async fn decide(
    id: RequestId,
    revision: i64,
    decision: ReviewDecision,
    comment: String,
) -> Result<(), AppError> {
    let (state, user) = signed_in().await?;
    let decided = services::reviews::decide(&state, &user, id, revision, decision, &comment).await;
    if decided.is_err() {
        keep_draft(&format!("review:{id}"), &comment).await;
    }
    decided.map_err(user_error)
}

/// What the viewer had typed into the review comment and the resolution note
/// of this request when the form was refused (empty when nothing was).
#[server]
pub async fn request_drafts(id: RequestId) -> Result<(String, String), AppError> {
    let comment = take_draft(&format!("review:{id}")).await;
    let note = take_draft(&format!("resolve:{id}")).await;
    Ok((comment.unwrap_or_default(), note.unwrap_or_default()))
}

#[server(input = Json)]
pub async fn needing_attention(query: ListQuery) -> Result<ListPage<RequestSummary>, AppError> {
    let (state, user) = signed_in().await?;
    let query = checked(query)?;
    services::requests::needing_attention(&state, &user, &query.filter, query.page)
        .await
        .map_err(user_error)
}

#[server]
pub async fn retry_request(id: RequestId) -> Result<(), AppError> {
    let (state, user) = signed_in().await?;
    services::operations::retry(&state, &user, id)
        .await
        .map_err(user_error)
}

#[server]
pub async fn take_over_request(id: RequestId) -> Result<(), AppError> {
    let (state, user) = signed_in().await?;
    services::operations::take_over(&state, &user, id)
        .await
        .map_err(user_error)
}

/// Closes a manually handled request: resolved (its asset recorded), or with
/// `outcome` `abandon`, closed without an asset.
#[server]
pub async fn resolve_request(
    id: RequestId,
    note: String,
    outcome: Option<String>,
) -> Result<(), AppError> {
    let (state, user) = signed_in().await?;
    let resolved = match outcome.as_deref() {
        None | Some("resolve") => services::operations::resolve(&state, &user, id, &note).await,
        Some("abandon") => services::operations::abandon(&state, &user, id, &note).await,
        Some(_) => Err(services::ServiceError::Invalid(vec![
            slipway_core::validate::FieldError::new("outcome", "must be resolve or abandon"),
        ])),
    };
    if resolved.is_err() {
        keep_draft(&format!("resolve:{id}"), &note).await;
    }
    resolved.map_err(user_error)
}

#[server(input = Json)]
pub async fn list_assets(query: ListQuery) -> Result<ListPage<AssetSummary>, AppError> {
    let (state, user) = signed_in().await?;
    let query = checked(query)?;
    services::assets::list(&state, &user, &query.filter, query.page)
        .await
        .map_err(user_error)
}

#[server]
pub async fn fetch_asset(id: AssetId) -> Result<AssetDetail, AppError> {
    let (state, user) = signed_in().await?;
    services::assets::detail(&state, &user, id)
        .await
        .map_err(user_error)
}

#[server(input = Json)]
pub async fn audit_log(query: ListQuery) -> Result<ListPage<AuditEntry>, AppError> {
    let (state, user) = signed_in().await?;
    let query = checked(query)?;
    services::audit::page(&state, &user, &query)
        .await
        .map_err(user_error)
}

/// The flow metrics of the window the page's query asks for.
#[server(input = Json)]
pub async fn flow_metrics(
    query: slipway_core::flow::FlowQuery,
) -> Result<slipway_core::flow::FlowMetrics, AppError> {
    let (state, user) = signed_in().await?;
    services::flow::flow_metrics(&state, &user, &query)
        .await
        .map_err(user_error)
}

/// The caller's API tokens. A new token's secret is shown by the page that answers
/// the token form (`/account/tokens/new`), never kept to be shown here.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TokensPageData {
    pub tokens: Vec<ListedToken>,
}

/// A token as its page lists it: one past its expiry stays listed for a while,
/// but nothing can revoke it any more.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ListedToken {
    pub token: TokenView,
    pub expired: bool,
}

#[server]
pub async fn tokens_page() -> Result<TokensPageData, AppError> {
    let (state, user) = signed_in().await?;
    let tokens = services::tokens::list(&state, &user)
        .await
        .map_err(user_error)?;
    // Both times read `YYYY-MM-DD hh:mm:ss UTC`, all digits in fixed places:
    // as text, they sort as the moments do.
    let now = slipway_server::storage::format_millis(slipway_server::storage::now_millis());
    let tokens = tokens
        .into_iter()
        .map(|token| ListedToken {
            expired: !token.revoked && token.expires_at <= now,
            token,
        })
        .collect();
    Ok(TokensPageData { tokens })
}

#[server]
pub async fn revoke_token(id: i64) -> Result<(), AppError> {
    let (state, user) = signed_in().await?;
    services::tokens::revoke(&state, &user, id)
        .await
        .map_err(user_error)?;
    leptos_axum::redirect("/account/tokens");
    Ok(())
}
