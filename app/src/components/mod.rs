//! Components shared by the pages.

pub mod change_set;
pub mod flow;
pub mod guidance;
pub mod listing;
pub mod live_progress;
pub mod param_checks;
pub mod precheck;
pub mod request_form;
pub mod schema_form;
pub mod tables;

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::Redirect;
use leptos_router::hooks::use_location;
use slipway_core::state::RequestState;

use crate::error::AppError;

/// Shows an error where the data would be; a missing session goes to the sign-in page
/// and comes back here afterwards.
pub fn error_view(error: AppError) -> AnyView {
    match error {
        AppError::Unauthenticated => sign_in_redirect(),
        other => error_notice(&other),
    }
}

/// A page that could not be loaded at all: it still has a title and a heading
/// (as the page for an unknown address does), which say what went wrong, then
/// the notice. A missing session goes to the sign-in page.
pub fn page_error_view(error: AppError) -> AnyView {
    match error {
        AppError::Unauthenticated => sign_in_redirect(),
        other => {
            let heading = error_heading(&other);
            view! {
                <Title text=heading />
                <h1>{heading}</h1>
                {error_notice(&other)}
            }
            .into_any()
        }
    }
}

/// What a page that failed to load is titled: the kind of error, in words.
pub fn error_heading(error: &AppError) -> &'static str {
    match error {
        AppError::Unauthenticated => "Signed out",
        AppError::Forbidden(_) => "Not allowed",
        AppError::NotFound(_) => "Not found",
        AppError::Invalid(_) => "Not valid",
        AppError::PrecheckFailed(_) => "Pre-check failed",
        AppError::Conflict(_) => "Conflict",
        AppError::Internal(_) | AppError::Transport(_) => "Something went wrong",
    }
}

/// A page's title when it came back with a refusal: said first, so that the
/// title a screen reader reads on arrival already tells that something failed.
pub fn error_title(title: &str, refused: bool) -> String {
    if refused {
        format!("Error: {title}")
    } else {
        title.to_string()
    }
}

/// Whether the page came back, after a post without script, with a refusal of
/// one of the server functions at `paths` (the router reads it from the URL).
pub fn sent_back_by(paths: &[&str]) -> bool {
    use_context::<leptos::server::ServerActionError>()
        .is_some_and(|refusal| paths.contains(&refusal.path()))
}

fn sign_in_redirect() -> AnyView {
    let location = use_location();
    let mut here = location.pathname.get_untracked();
    let search = location.search.get_untracked();
    let search = search.trim_start_matches('?');
    if !search.is_empty() {
        here = format!("{here}?{search}");
    }
    let target = format!("/login?next={}", encode_path(&here));
    view! { <Redirect path=target /> }.into_any()
}

/// An error as a notice, for places that cannot redirect (islands in the browser).
pub fn error_notice(error: &AppError) -> AnyView {
    view! { <div class="notice error" role="alert">{error_words(error)}</div> }.into_any()
}

/// The notice of a refusal a page came back with (a form posted without
/// script): the first thing of its form, and where the keyboard's focus starts,
/// so that a screen reader reads it on arrival rather than the first field's
/// label. `id` lets a field point at it.
pub fn refusal_notice(error: &AppError, id: &'static str) -> AnyView {
    view! {
        <div class="notice error" role="alert" id=id tabindex="-1" autofocus=true>{error_words(error)}</div>
    }
    .into_any()
}

/// What a notice says about an error.
pub fn error_words(error: &AppError) -> AnyView {
    match error {
        AppError::Unauthenticated => {
            view! { "Your session has ended. " <a href="/login">"Sign in again"</a> }.into_any()
        }
        AppError::Forbidden(message) => {
            view! { <strong>"Not allowed. "</strong>{message.clone()} }.into_any()
        }
        // A mistyped or stale link: say what is missing and offer a way on.
        AppError::NotFound(_) => {
            view! { {error.to_string()} " " <a href="/catalog">"Go to the catalog"</a> }.into_any()
        }
        other => other.to_string().into_any(),
    }
}

/// Percent-encodes the few characters that would break a query string.
fn encode_path(path: &str) -> String {
    path.chars()
        .map(|c| match c {
            '&' => "%26".to_string(),
            '?' => "%3F".to_string(),
            '#' => "%23".to_string(),
            '%' => "%25".to_string(),
            '+' => "%2B".to_string(),
            ' ' => "%20".to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// The numeric `:id` of the current route, if it is one.
pub fn route_id() -> impl Fn() -> Option<i64> + Clone + Send + Sync + 'static {
    let params = leptos_router::hooks::use_params_map();
    move || params.with(|p| p.get("id").and_then(|s| s.parse::<i64>().ok()))
}

/// A query in the address that does not read, answered 422 as the API answers
/// it (asked only once the page's own gate let the caller in).
pub fn unreadable_query(refusal: AppError) -> AppError {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(axum::http::StatusCode::UNPROCESSABLE_ENTITY);
    }
    refusal
}

/// What a page asked for by an id that cannot be one (`/requests/abc`) shows:
/// "not found", answered with the 404 a missing id gets.
pub fn unknown_id(what: &str) -> AppError {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(axum::http::StatusCode::NOT_FOUND);
    }
    AppError::NotFound(what.into())
}

#[component]
pub fn StateBadge(state: RequestState) -> impl IntoView {
    view! { <span class=format!("badge state-{}", state.as_str()) data-testid="request-state">{state.label()}</span> }
}

#[component]
pub fn Loading() -> impl IntoView {
    view! { <p class="loading" role="status">"Loading…"</p> }
}
