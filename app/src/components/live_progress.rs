//! A request's execution steps, following the worker live. The server renders
//! the steps and their logs as stored (that is the page without script); while the
//! request is in motion an island opens an `EventSource` on
//! `/requests/{id}/events`, appends each log line to its step as it comes, updates
//! a step's state when it starts or ends, and at the `end` event says so and
//! offers a link to the result. It never reloads the page by itself: a reload
//! would throw a screen reader (or a reader's place) back to the page's top.
//! The browser reconnects by itself and resumes with `Last-Event-ID`.

use leptos::prelude::*;
use slipway_core::ids::RequestId;
use slipway_core::state::RequestState;
use slipway_core::views::StepView;

/// States in which the worker is busy, so the page should follow by itself.
pub fn in_motion(state: RequestState) -> bool {
    matches!(
        state,
        RequestState::Approved | RequestState::Executing | RequestState::Verifying
    )
}

/// The steps as stored, for a page that does not follow the worker.
#[component]
pub fn StepsList(steps: Vec<StepView>) -> impl IntoView {
    (!steps.is_empty()).then(|| {
        view! {
            <section aria-label="Execution steps">
                <h2>"Execution steps"</h2>
                <ul class="checks">
                    {steps.into_iter().map(|s| {
                        let head = step_head(s.step, &s.driver, s.attempt, &s.state, &s.summary, Some(&s.started_at));
                        let label = log_label(s.step, s.attempt);
                        let log = (!s.log.is_empty() && s.log != s.summary).then(|| view! {
                            // Scrolled with the arrow keys, so it takes the focus.
                            <details><summary>"Log"</summary><pre tabindex="0" role="region" aria-label=label>{s.log}</pre></details>
                        });
                        let omitted = s.log_omitted.then(|| view! {
                            <p class="muted">"Log not shown: a request's page carries the logs of its newest 20 step attempts."</p>
                        });
                        view! { <li class=state_class(&s.state)>{head}{log}{omitted}</li> }
                    }).collect_view()}
                </ul>
            </section>
        }
    })
}

fn state_class(state: &str) -> &'static str {
    match state {
        "done" => "ok",
        "failed" => "bad",
        _ => "",
    }
}

/// The name of a step's log, as a region of the page.
fn log_label(step: i64, attempt: i64) -> String {
    format!("Log of step {step}, attempt {attempt}")
}

fn step_head(
    step: i64,
    driver: &str,
    attempt: i64,
    state: &str,
    summary: &str,
    started_at: Option<&str>,
) -> String {
    let mut head = format!("Step {step} ({driver}), attempt {attempt}: {state}");
    if !summary.is_empty() {
        head.push_str(&format!(" — {summary}"));
    }
    if let Some(at) = started_at.filter(|at| !at.is_empty()) {
        head.push_str(&format!(" ({at})"));
    }
    head
}

/// One step attempt as the page shows it while following; each part changes on
/// its own, so a new line touches one text node and nothing flashes.
#[derive(Clone, Copy)]
struct LiveStep {
    id: i64,
    head: RwSignal<String>,
    /// The log's name (its step and attempt).
    label: RwSignal<String>,
    state: RwSignal<String>,
    log: RwSignal<String>,
}

impl LiveStep {
    fn stored(s: &StepView) -> LiveStep {
        let log = if s.log == s.summary {
            String::new()
        } else {
            s.log.clone()
        };
        LiveStep {
            id: s.id,
            head: RwSignal::new(step_head(
                s.step,
                &s.driver,
                s.attempt,
                &s.state,
                &s.summary,
                Some(&s.started_at),
            )),
            label: RwSignal::new(log_label(s.step, s.attempt)),
            state: RwSignal::new(s.state.clone()),
            log: RwSignal::new(log),
        }
    }
}

/// The steps of a request in motion, following its events; `after` is the last
/// event the stored steps already show.
#[island]
pub fn LiveSteps(
    id: RequestId,
    state: RequestState,
    steps: Vec<StepView>,
    after: i64,
) -> impl IntoView {
    let live = RwSignal::new(steps.iter().map(LiveStep::stored).collect::<Vec<_>>());
    let status = RwSignal::new(format!(
        "{} — this page follows the worker by itself.",
        state.label()
    ));
    let finished = RwSignal::new(false);
    Effect::new(move |_| follow(id, after, live, (status, finished)));
    view! {
        <section aria-label="Execution steps" class="live-steps">
            <h2>"Execution steps"</h2>
            <p class="notice live" role="status" aria-live="polite">{move || status.get()}</p>
            <Show when=move || finished.get()>
                <p><a href=format!("/requests/{id}")>"Show the result"</a></p>
            </Show>
            <ul class="checks">
                <For each=move || live.get() key=|step| step.id let:step>
                    <LiveStepItem step />
                </For>
            </ul>
        </section>
    }
}

#[component]
fn LiveStepItem(step: LiveStep) -> impl IntoView {
    let has_log = Memo::new(move |_| !step.log.with(String::is_empty));
    let running = step.state.get_untracked() == "running";
    view! {
        <li class=move || state_class(&step.state.get())>
            {move || step.head.get()}
            <Show when=move || has_log.get()>
                <details open=running>
                    <summary>"Log"</summary>
                    <pre tabindex="0" role="region" aria-label=move || step.label.get()>{move || step.log.get()}</pre>
                </details>
            </Show>
        </li>
    }
}

/// What only runs in the browser: the stream and what its events change.
#[cfg(feature = "hydrate")]
mod browser {
    use leptos::prelude::*;
    use slipway_core::ids::RequestId;
    use slipway_core::views::{ProgressEvent, ProgressKind};

    use super::{LiveStep, log_label, step_head};

    /// Applies one event to the steps shown, and says in the status line what changed.
    fn apply(event: &ProgressEvent, live: RwSignal<Vec<LiveStep>>, status: RwSignal<String>) {
        let known =
            live.with_untracked(|steps| steps.iter().find(|s| s.id == event.step_id).copied());
        let step = known.unwrap_or_else(|| {
            // A step this page has not shown yet: its head comes with this event.
            let step = LiveStep {
                id: event.step_id,
                head: RwSignal::new(String::new()),
                label: RwSignal::new(log_label(event.step, event.attempt)),
                state: RwSignal::new(String::new()),
                log: RwSignal::new(String::new()),
            };
            live.update(|steps| steps.push(step));
            step
        });
        match event.kind {
            ProgressKind::Line => step.log.update(|log| {
                if !log.is_empty() {
                    log.push('\n');
                }
                log.push_str(&event.text);
            }),
            ProgressKind::Step => {
                let head = step_head(
                    event.step,
                    &event.driver,
                    event.attempt,
                    &event.text,
                    &event.summary,
                    None,
                );
                status.set(head.clone());
                step.head.set(head);
                step.state.set(event.text.clone());
            }
        }
    }

    /// Opens the event stream and wires its events to the page, until its `end`
    /// event: then the status line says the run has ended and a link offers the
    /// result. The page is never reloaded by itself: whoever reads it (a screen
    /// reader in browse mode included) keeps their place and goes on when ready.
    pub(super) fn follow(
        id: RequestId,
        after: i64,
        live: RwSignal<Vec<LiveStep>>,
        (status, finished): (RwSignal<String>, RwSignal<bool>),
    ) {
        use wasm_bindgen::JsCast as _;
        use wasm_bindgen::closure::Closure;
        use web_sys::{EventSource, MessageEvent};

        let Ok(source) = EventSource::new(&format!("/requests/{id}/events?after={after}")) else {
            status.set("Live updates are not available; reload the page to see progress.".into());
            return;
        };
        let on_progress = Closure::<dyn FnMut(MessageEvent)>::new(move |message: MessageEvent| {
            let event = message
                .data()
                .as_string()
                .and_then(|data| serde_json::from_str::<ProgressEvent>(&data).ok());
            if let Some(event) = event {
                apply(&event, live, status);
            }
        });
        let ended = source.clone();
        let on_end = Closure::<dyn FnMut(MessageEvent)>::new(move |_: MessageEvent| {
            ended.close();
            status.set("The run has ended: show the result to see its outcome.".into());
            finished.set(true);
        });
        let failed = source.clone();
        // The browser retries a dropped connection by itself; a refusal closes it for good.
        let on_error = Closure::<dyn FnMut(web_sys::Event)>::new(move |_: web_sys::Event| {
            if failed.ready_state() == EventSource::CLOSED {
                status.set("Live updates stopped; reload the page to see progress.".into());
            }
        });
        for kind in [ProgressKind::Step, ProgressKind::Line] {
            let _ = source.add_event_listener_with_callback(
                kind.as_str(),
                on_progress.as_ref().unchecked_ref(),
            );
        }
        let _ = source.add_event_listener_with_callback("end", on_end.as_ref().unchecked_ref());
        source.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        // The listeners live as long as the page.
        on_progress.forget();
        on_end.forget();
        on_error.forget();
    }
}

#[cfg(feature = "hydrate")]
use browser::follow;

/// On the server the island only renders; it follows in the browser.
#[cfg(not(feature = "hydrate"))]
fn follow(_: RequestId, _: i64, _: RwSignal<Vec<LiveStep>>, _: (RwSignal<String>, RwSignal<bool>)) {
}
