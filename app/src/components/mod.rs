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
use leptos_router::components::Redirect;
use leptos_router::hooks::use_location;
use slipway_core::state::RequestState;

use crate::error::AppError;

/// Shows an error where the data would be; a missing session goes to the sign-in page
/// and comes back here afterwards.
pub fn error_view(error: AppError) -> AnyView {
    match error {
        AppError::Unauthenticated => {
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
        other => error_notice(&other),
    }
}

/// An error as a notice, for places that cannot redirect (islands in the browser).
pub fn error_notice(error: &AppError) -> AnyView {
    match error {
        AppError::Unauthenticated => view! {
            <div class="notice error" role="alert">"Your session has ended. " <a href="/login">"Sign in again"</a></div>
        }
        .into_any(),
        AppError::Forbidden(message) => view! {
            <div class="notice error" role="alert"><strong>"Not allowed. "</strong>{message.clone()}</div>
        }
        .into_any(),
        // A mistyped or stale link: say what is missing and offer a way on.
        AppError::NotFound(_) => view! {
            <div class="notice error" role="alert">{error.to_string()} " " <a href="/catalog">"Go to the catalog"</a></div>
        }
        .into_any(),
        other => {
            view! { <div class="notice error" role="alert">{other.to_string()}</div> }.into_any()
        }
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

#[component]
pub fn StateBadge(state: RequestState) -> impl IntoView {
    view! { <span class=format!("badge state-{}", state.as_str()) data-testid="request-state">{state.label()}</span> }
}

#[component]
pub fn Loading() -> impl IntoView {
    view! { <p class="loading" role="status">"Loading…"</p> }
}
