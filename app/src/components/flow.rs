//! The six steps every request walks, drawn as a row, so where a request stands is
//! seen rather than read.

use leptos::prelude::*;
use slipway_core::state::RequestState;

const STEPS: [&str; 6] = [
    "Request",
    "Pre-check",
    "Review",
    "Execute",
    "Verify",
    "Record",
];

/// Index of the step in progress, and whether the flow stopped there.
fn position(state: RequestState) -> (usize, bool) {
    match state {
        RequestState::Draft => (0, false),
        RequestState::Submitted => (1, false),
        RequestState::InReview | RequestState::ChangesRequested => (2, false),
        RequestState::Rejected | RequestState::Cancelled => (2, true),
        RequestState::Approved | RequestState::Executing => (3, false),
        RequestState::Verifying => (4, false),
        RequestState::Failed | RequestState::Manual => (4, true),
        RequestState::Completed => (6, false),
    }
}

#[component]
pub fn FlowSteps(state: RequestState) -> impl IntoView {
    let (current, stopped) = position(state);
    view! {
        <ol class="flow" aria-label="Progress">
            {STEPS
                .iter()
                .enumerate()
                .map(|(i, name)| {
                    let class = if i < current {
                        "done"
                    } else if i == current && stopped {
                        "stopped"
                    } else if i == current {
                        "current"
                    } else {
                        "todo"
                    };
                    let status = match class {
                        "done" => "done",
                        "stopped" => "stopped here",
                        "current" => "in progress",
                        _ => "to do",
                    };
                    view! {
                        <li class=class aria-current=(class == "current").then_some("step")>
                            <span class="dot" aria-hidden="true"></span>
                            <span class="name">{*name}</span>
                            <span class="sr-only">{format!(" ({status})")}</span>
                        </li>
                    }
                })
                .collect_view()}
        </ol>
    }
}
