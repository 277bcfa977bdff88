//! Keeps a request page current while the worker runs the request: a small island
//! that asks the server where the request stands and reloads the page once it moved.

use std::time::Duration;

use leptos::prelude::*;
use leptos::task::spawn_local;
use slipway_core::ids::RequestId;
use slipway_core::state::RequestState;

use crate::api::current_state;

/// How often a page watching the worker asks again.
const POLL_EVERY: Duration = Duration::from_secs(1);

/// States in which the worker is busy, so the page should follow by itself.
pub fn in_motion(state: RequestState) -> bool {
    matches!(
        state,
        RequestState::Approved | RequestState::Executing | RequestState::Verifying
    )
}

#[island]
pub fn LiveRefresh(id: RequestId, state: RequestState) -> impl IntoView {
    Effect::new(move |_| {
        let poll = move || {
            spawn_local(async move {
                if let Ok(now) = current_state(id).await
                    && now != state
                {
                    let _ = window().location().reload();
                }
            });
        };
        // The interval lives as long as the page: the reload ends it.
        let _ = set_interval_with_handle(poll, POLL_EVERY);
    });
    view! {
        <p class="notice live" role="status">
            {format!("{} — this page follows the worker by itself.", state.label())}
        </p>
    }
}
