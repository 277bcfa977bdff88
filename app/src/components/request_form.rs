//! A request being written: the generated form, its live checks (instant ones in the
//! browser, the server's pre-check a moment later) and the submit button.

use std::time::Duration;

use leptos::prelude::*;
use serde_json::{Map, Value};
use slipway_core::catalog::ResourceType;
use slipway_core::ids::RequestId;
use slipway_core::validate::ParamValidator;

use crate::api::precheck_request;
use crate::components::precheck::PrecheckPanel;
use crate::components::schema_form::{FormState, SchemaForm};
use crate::error::AppError;

/// How long typing must pause before the server pre-check runs.
const PRECHECK_DELAY: Duration = Duration::from_millis(250);

#[component]
pub fn RequestForm(
    resource_type: ResourceType,
    initial: Map<String, Value>,
    /// The request being revised, left out of its own quota.
    exclude: Option<RequestId>,
    submit_label: &'static str,
    /// Called with the parameters once every check in the browser passes.
    on_submit: Callback<Value>,
    pending: Signal<bool>,
    server_error: Signal<Option<AppError>>,
) -> impl IntoView {
    let validator = ParamValidator::new(&resource_type).ok();
    let values = RwSignal::new(initial);
    let validator = StoredValue::new(validator);
    let errors = Signal::derive(move || {
        let params = Value::Object(values.get());
        validator.with_value(|v| v.as_ref().map(|v| v.check(&params)).unwrap_or_default())
    });
    let form = FormState {
        values,
        touched: RwSignal::new(Vec::new()),
        errors,
        show_all: RwSignal::new(false),
    };

    // The server pre-check follows the values after a short pause in typing.
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
    let type_name = resource_type.name.clone();
    let report = Resource::new(
        move || settled.get(),
        move |params| {
            let type_name = type_name.clone();
            async move { precheck_request(type_name, Value::Object(params), exclude).await }
        },
    );

    let live = RwSignal::new(false);
    Effect::new(move |_| live.set(true));
    let fields = resource_type.fields();
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        form.show_all.set(true);
        if errors.with_untracked(|e| e.is_empty()) {
            on_submit.run(Value::Object(values.get_untracked()));
        }
    };
    let blocked = move || pending.get() || (form.show_all.get() && !errors.with(|e| e.is_empty()));
    view! {
        <form class="request-form" on:submit=submit novalidate=true>
            <div class="form-columns">
                // Until the page is live, typed values would be lost and nothing checked.
                <fieldset class="plain" disabled=move || !live.get()>
                    <SchemaForm fields form />
                    {move || server_error.get().map(|e| server_error_view(&e))}
                    <div class="actions">
                        <button type="submit" class="primary" disabled=blocked aria-busy=move || pending.get().to_string()>
                            {move || if pending.get() { "Submitting…" } else { submit_label }}
                        </button>
                        {move || (form.show_all.get() && !errors.with(|e| e.is_empty()))
                            .then(|| view! { <span class="hint" role="status">"Fix the fields marked above to submit."</span> })}
                    </div>
                </fieldset>
                <aside>
                    <Transition fallback=|| view! { <p class="loading" role="status">"Checking…"</p> }>
                        {move || Suspend::new(async move {
                            match report.await {
                                Ok(report) => view! { <PrecheckPanel report /> }.into_any(),
                                Err(error) => crate::components::error_view(error),
                            }
                        })}
                    </Transition>
                </aside>
            </div>
        </form>
    }
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
        other => {
            view! { <div class="notice error" role="alert">{other.to_string()}</div> }.into_any()
        }
    }
}

/// The schema's defaults, as the form starts.
pub fn default_values(resource_type: &ResourceType) -> Map<String, Value> {
    resource_type.default_params()
}
