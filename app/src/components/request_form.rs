//! A request being written: the generated form, its live checks (instant ones in the
//! browser, the server's pre-check a moment later) and the submit button. It is an
//! island: the only part of the new-request and revise pages that runs in the browser.

use std::time::Duration;

use leptos::prelude::*;
use leptos::task::spawn_local;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use slipway_core::catalog::ResourceType;
use slipway_core::ids::{AssetId, RequestId};
use slipway_core::views::{ActionDraft, RequestDraft};

use crate::api::{
    precheck_action, precheck_request, resubmit_request, submit_action, submit_request,
};
use crate::components::error_notice;
use crate::components::guidance::GuidancePanel;
use crate::components::param_checks::{ChecksUnavailable, check_params};
use crate::components::precheck::PrecheckPanel;
use crate::components::schema_form::{FormState, SchemaForm, focus_first_field};
use crate::error::AppError;

/// How long typing must pause before the server pre-check runs.
const PRECHECK_DELAY: Duration = Duration::from_millis(250);

/// The asset and the day-2 action a form asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionOn {
    pub asset_id: AssetId,
    pub action: String,
}

/// What submitting the form does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FormMode {
    /// A new request; the key makes a double-clicked submit land once.
    New { submit_key: String },
    /// A new revision of a request whose reviewer asked for changes (of a day-2
    /// action on an asset, when `on` says so).
    Resubmit { id: RequestId, on: Option<ActionOn> },
    /// A day-2 action on an asset: the form holds the action's parameters only.
    Act { on: ActionOn, submit_key: String },
}

impl FormMode {
    /// The request left out of its own quota while it is revised.
    fn excluded(&self) -> Option<RequestId> {
        match self {
            FormMode::New { .. } | FormMode::Act { .. } => None,
            FormMode::Resubmit { id, .. } => Some(*id),
        }
    }

    /// The asset and action the form asks for, when it is a day-2 action.
    fn acting_on(&self) -> Option<ActionOn> {
        match self {
            FormMode::New { .. } => None,
            FormMode::Resubmit { on, .. } => on.clone(),
            FormMode::Act { on, .. } => Some(on.clone()),
        }
    }

    async fn send(self, type_name: String, params: Value) -> Result<RequestId, AppError> {
        match self {
            FormMode::New { submit_key } => {
                let draft = RequestDraft {
                    type_name,
                    params,
                    submit_key,
                };
                submit_request(draft).await
            }
            FormMode::Resubmit { id, .. } => resubmit_request(id, params).await.map(|()| id),
            FormMode::Act { on, submit_key } => {
                let draft = ActionDraft { params, submit_key };
                submit_action(on.asset_id, on.action, draft).await
            }
        }
    }
}

#[island]
pub fn RequestForm(
    resource_type: ResourceType,
    initial: Map<String, Value>,
    mode: FormMode,
    submit_label: String,
) -> impl IntoView {
    let values = RwSignal::new(initial);
    let form = FormState {
        values,
        touched: RwSignal::new(Vec::new()),
        errors: RwSignal::new(Vec::new()),
        show_all: RwSignal::new(false),
    };
    let fields = resource_type.fields();
    let (exclude, acting_on) = (mode.excluded(), mode.acting_on());
    // A day-2 action's form holds only the action's parameters: history guides
    // the forms that ask for a new resource (and their revisions).
    let guided = acting_on.is_none();
    let resource_type = StoredValue::new(resource_type);
    let checks_missing = RwSignal::new(false);
    follow_with_local_checks(resource_type, form, checks_missing);
    let report = server_precheck(resource_type, values, (exclude, acting_on));

    let send = Action::new(move |params: &Value| {
        let (mode, params) = (mode.clone(), params.clone());
        let type_name = resource_type.with_value(|t| t.name.clone());
        async move { mode.send(type_name, params).await }
    });
    // From the click until the server answered: a second click must not send twice.
    let submitting = RwSignal::new(false);
    Effect::new(move |_| match send.value().get() {
        Some(Ok(id)) => {
            let _ = window().location().set_href(&format!("/requests/{id}"));
        }
        Some(Err(_)) => submitting.set(false),
        None => {}
    });
    // The checks must have seen exactly these values, so run them once more.
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        form.show_all.set(true);
        if submitting.get_untracked() {
            return;
        }
        submitting.set(true);
        let params = Value::Object(values.get_untracked());
        let resource_type = resource_type.get_value();
        spawn_local(async move {
            // Without the browser's checks the server's are the only ones; let it judge.
            let clean = match check_params(resource_type, params.clone()).await {
                Ok(found) => {
                    let clean = found.is_empty();
                    focus_first_field(found.iter().map(|e| e.field.as_str()));
                    form.errors.set(found);
                    clean
                }
                Err(ChecksUnavailable) => {
                    checks_missing.set(true);
                    true
                }
            };
            if clean {
                send.dispatch(params);
            } else {
                submitting.set(false);
            }
        });
    };

    let live = RwSignal::new(false);
    Effect::new(move |_| live.set(true));
    let has_errors = move || form.show_all.get() && !form.errors.with(Vec::is_empty);
    let server_error = move || send.value().get().and_then(Result::err);
    view! {
        <form class="request-form" on:submit=submit novalidate=true>
            <div class="form-columns">
                // Until the page is live, typed values would be lost and nothing checked.
                <fieldset class="plain" disabled=move || !live.get()>
                    {move || checks_missing.get().then(|| view! {
                        <p class="notice" role="status">"The checks could not be loaded into this page; the server checks the request when you submit it."</p>
                    })}
                    <SchemaForm fields form />
                    {move || server_error().map(|e| server_error_view(&e))}
                    <div class="actions">
                        // Not `disabled`: a disabled button drops the keyboard's focus
                        // (to the page's top) the moment it is pressed; pressed again
                        // while sending it does nothing, and with errors it checks
                        // again and takes the focus to the first field to fix.
                        <button type="submit" class="primary" aria-disabled=move || (submitting.get() || has_errors()).to_string() aria-busy=move || submitting.get().to_string()>
                            {move || if submitting.get() { "Submitting…".to_string() } else { submit_label.clone() }}
                        </button>
                        // Always in the page, so that its text is announced when it changes.
                        <span class="hint" role="status">{move || errors_summary(has_errors(), form)}</span>
                    </div>
                </fieldset>
                <aside>
                    <Transition fallback=|| view! { <p class="loading" role="status">"Checking…"</p> }>
                        {move || Suspend::new(async move {
                            match report.await {
                                Ok(report) => view! { <PrecheckPanel report /> }.into_any(),
                                Err(error) => error_notice(&error),
                            }
                        })}
                    </Transition>
                    {guided.then(|| view! { <GuidancePanel resource_type values /> })}
                </aside>
            </div>
        </form>
    }
}

/// What the form's status line says when fields need fixing: how many, and
/// which (by their parameters' names).
fn errors_summary(has_errors: bool, form: FormState) -> String {
    if !has_errors {
        return String::new();
    }
    form.errors.with(|errors| {
        let mut fields: Vec<&str> = errors
            .iter()
            .map(|e| e.field.as_str())
            .filter(|f| !f.is_empty())
            .collect();
        fields.dedup();
        match fields.len() {
            0 => "Fix what is marked above to submit.".to_string(),
            1 => format!("1 field needs fixing: {}.", fields[0]),
            n => format!("{n} fields need fixing: {}.", fields.join(", ")),
        }
    })
}

/// Field errors follow every change. The newest check wins: an older one that
/// finishes late must not bring back errors the user has fixed since.
fn follow_with_local_checks(
    resource_type: StoredValue<ResourceType>,
    form: FormState,
    checks_missing: RwSignal<bool>,
) {
    let generation = StoredValue::new(0u64);
    Effect::new(move |_| {
        let params = Value::Object(form.values.get());
        generation.update_value(|g| *g += 1);
        let mine = generation.get_value();
        let resource_type = resource_type.get_value();
        spawn_local(async move {
            let outcome = check_params(resource_type, params).await;
            if generation.get_value() != mine {
                return;
            }
            checks_missing.set(outcome.is_err());
            form.errors.set(outcome.unwrap_or_default());
        });
    });
}

/// The server pre-check follows the values after a short pause in typing.
fn server_precheck(
    resource_type: StoredValue<ResourceType>,
    values: RwSignal<Map<String, Value>>,
    (exclude, acting_on): (Option<RequestId>, Option<ActionOn>),
) -> Resource<Result<slipway_core::precheck::PrecheckReport, AppError>> {
    let settled = RwSignal::new(values.get_untracked());
    let pending_timer = StoredValue::new(None::<TimeoutHandle>);
    Effect::new(move |_| {
        let current = values.get();
        if let Some(handle) = pending_timer.get_value() {
            handle.clear();
        }
        let handle = set_timeout_with_handle(move || settled.set(current), PRECHECK_DELAY).ok();
        pending_timer.set_value(handle);
    });
    Resource::new(
        move || settled.get(),
        move |params| {
            let type_name = resource_type.with_value(|t| t.name.clone());
            let acting_on = acting_on.clone();
            async move {
                let params = Value::Object(params);
                match acting_on {
                    Some(on) => precheck_action(on.asset_id, on.action, params, exclude).await,
                    None => precheck_request(type_name, params, exclude).await,
                }
            }
        },
    )
}

fn server_error_view(error: &AppError) -> AnyView {
    match error {
        AppError::PrecheckFailed(report) => view! {
            <div class="notice error" role="alert">
                <p>"The server refused the request: its pre-check did not pass."</p>
                <PrecheckPanel report=(**report).clone() />
            </div>
        }
        .into_any(),
        other => error_notice(other),
    }
}
