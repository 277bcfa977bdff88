//! A request being written: the generated form, its live checks (instant ones in the
//! browser, the server's pre-check a moment later) and the submit button. It is an
//! island: the only part of the new-request and revise pages that runs in the browser.

use std::time::Duration;

use leptos::prelude::*;
use leptos::server_fn::error::ServerFnUrlError;
use leptos::task::spawn_local;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use slipway_core::catalog::ResourceType;
use slipway_core::ids::{AssetId, RequestId};
use slipway_core::validate::{FieldError, values_from_text};
use slipway_core::views::{ActionDraft, RequestDraft};

use crate::api::{
    precheck_action, precheck_request, resubmit_request, submit_action, submit_request,
};
use crate::components::guidance::GuidancePanel;
use crate::components::param_checks::{ChecksUnavailable, check_params};
use crate::components::precheck::{PrecheckPanel, verdict_text};
use crate::components::schema_form::{
    FormState, SchemaForm, adopt_typed_values, focus_first_field,
};
use crate::components::{error_notice, error_words};
use crate::error::AppError;

/// How long typing must pause before the server pre-check runs.
const PRECHECK_DELAY: Duration = Duration::from_millis(250);

/// The id of the notice of a server's refusal, which takes the focus when the
/// refusal names no field to take it to.
const REFUSAL_ID: &str = "form-refusal";

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
    /// `revision` is the one the form was opened on: posted without script, a
    /// newer one in the meantime is found (a double post, or a stale form).
    Resubmit {
        id: RequestId,
        on: Option<ActionOn>,
        revision: i64,
    },
    /// A day-2 action on an asset: the form holds the action's parameters only.
    Act { on: ActionOn, submit_key: String },
}

/// The hidden field that carries the submit key in a post without script
/// (the server's `request_form_post::SUBMIT_KEY_FIELD`).
const SUBMIT_KEY_FIELD: &str = "__submit_key";
/// The hidden field that carries the revision a revise form was opened on
/// (the server's `request_form_post::REVISION_FIELD`).
const REVISION_FIELD: &str = "__revision";
/// The query key naming a secret field whose typed value the server dropped
/// on the way back (the server's `request_form_post::REENTER_KEY`).
const REENTER_KEY: &str = "__reenter";

impl FormMode {
    /// Where the form posts without script: its page's path with `/submit`
    /// after it. The same path names the form in a refusal (`__path`).
    pub fn action(&self, type_name: &str) -> String {
        match self {
            FormMode::New { .. } => format!("/requests/new/{type_name}/submit"),
            FormMode::Resubmit { id, .. } => format!("/requests/{id}/edit/submit"),
            FormMode::Act { on, .. } => {
                format!("/assets/{}/actions/{}/submit", on.asset_id, on.action)
            }
        }
    }

    fn submit_key(&self) -> Option<String> {
        match self {
            FormMode::New { submit_key } | FormMode::Act { submit_key, .. } => {
                Some(submit_key.clone())
            }
            FormMode::Resubmit { .. } => None,
        }
    }

    fn base_revision(&self) -> Option<i64> {
        match self {
            FormMode::Resubmit { revision, .. } => Some(*revision),
            FormMode::New { .. } | FormMode::Act { .. } => None,
        }
    }

    /// A revise form sent back with a refusal: the revision it was opened on,
    /// as posted (`__revision`), not the newest one, so a stale form stays
    /// refused instead of one click from overwriting the newer revision.
    pub fn opened_on(self, given: &[(String, String)]) -> FormMode {
        let posted = given
            .iter()
            .find(|(key, _)| key == REVISION_FIELD)
            .and_then(|(_, value)| value.trim().parse::<i64>().ok())
            .filter(|revision| *revision > 0);
        match (self, posted) {
            (FormMode::Resubmit { id, on, .. }, Some(revision)) => {
                FormMode::Resubmit { id, on, revision }
            }
            (mode, _) => mode,
        }
    }

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
            FormMode::Resubmit { id, revision, .. } => {
                resubmit_request(id, revision, params).await.map(|()| id)
            }
            FormMode::Act { on, submit_key } => {
                let draft = ActionDraft { params, submit_key };
                submit_action(on.asset_id, on.action, draft).await
            }
        }
    }
}

/// A refusal of the form that the server sent the browser back with, after a
/// post without script.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SentBack {
    pub error: AppError,
    /// Secret fields whose typed values were dropped rather than put in the URL.
    pub reenter: Vec<String>,
}

impl SentBack {
    /// The refusal in a page's query, when it is the refusal of the form that
    /// posts to `action`. (The server takes a refusal it did not sign out of a
    /// page's URL before the page is rendered.)
    pub fn from_query(query: &[(String, String)], action: &str) -> Option<SentBack> {
        let named = |key: &str| query.iter().find(|(k, _)| k == key).map(|(_, v)| v);
        if named("__path")?.as_str() != action {
            return None;
        }
        let error = ServerFnUrlError::<AppError>::decode_err(named("__err")?);
        let reenter = query
            .iter()
            .filter(|(key, _)| key == REENTER_KEY)
            .map(|(_, name)| name.clone())
            .collect();
        Some(SentBack { error, reenter })
    }

    /// The fields to mark: those the refusal names, and the secrets to type again.
    fn field_errors(&self, resource_type: &ResourceType) -> Vec<FieldError> {
        let mut errors = refused_fields(&self.error);
        errors.extend(self.to_type_again(resource_type));
        errors
    }

    /// The secret fields whose values were dropped on the way back.
    fn to_type_again(&self, resource_type: &ResourceType) -> Vec<FieldError> {
        self.reenter
            .iter()
            .filter(|name| resource_type.is_secret(name))
            .map(|name| {
                FieldError::new(
                    name.clone(),
                    "must be typed again: a secret is never sent back to the form",
                )
            })
            .collect()
    }
}

/// The fields a server's refusal names: a field rule, or a pre-check's.
fn refused_fields(error: &AppError) -> Vec<FieldError> {
    match error {
        AppError::Invalid(errors) => errors.clone(),
        AppError::PrecheckFailed(report) => report.field_errors.clone(),
        _ => Vec::new(),
    }
}

/// `base` with the values a page's query carries for the form's fields laid
/// over it (the values a refused form was posted with), read as the browser
/// reads them; a secret never comes from the query.
pub fn refilled(
    ty: &ResourceType,
    mut base: Map<String, Value>,
    given: &[(String, String)],
) -> Map<String, Value> {
    let fields: Vec<String> = ty.fields().into_iter().map(|f| f.name).collect();
    let known: Vec<(String, String)> = given
        .iter()
        .filter(|(key, _)| fields.contains(key))
        .cloned()
        .collect();
    let (read, secrets) = values_from_text(ty, &known);
    for (name, _) in known.iter().filter(|(name, _)| !secrets.contains(name)) {
        match read.get(name) {
            Some(value) => base.insert(name.clone(), value.clone()),
            None => base.remove(name),
        };
    }
    base
}

#[island]
pub fn RequestForm(
    resource_type: ResourceType,
    initial: Map<String, Value>,
    mode: FormMode,
    submit_label: String,
    /// A refusal the page was sent back with, shown until the next submit.
    sent_back: Option<SentBack>,
) -> impl IntoView {
    let refused = sent_back
        .as_ref()
        .map(|s| s.field_errors(&resource_type))
        .unwrap_or_default();
    // The refusal the page came back with, and the secrets to type again.
    let earlier = sent_back.map(|s| {
        let again = s.to_type_again(&resource_type);
        (s.error, again)
    });
    let form = FormState::new(initial, refused);
    let values = form.values;
    let fields = resource_type.fields();
    let titles: Vec<(String, String)> = fields
        .iter()
        .map(|f| (f.name.clone(), f.title.clone()))
        .collect();
    let action = mode.action(&resource_type.name);
    let submit_key = mode.submit_key();
    let base_revision = mode.base_revision();
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
        Some(Err(error)) => {
            // What only the server can judge (a name taken, a quota, a rule
            // against the asset) marks its fields as the browser's checks do.
            // A refusal that names no field of the form takes the focus to its
            // notice, which says it (and is in view to a sighted keyboard user).
            let refused = refused_fields(&error);
            if !focus_first_field(refused.iter().map(|e| e.field.as_str())) {
                focus_refusal();
            }
            form.refused.set(refused);
            form.show_all.set(true);
            submitting.set(false);
        }
        None => {}
    });
    // The checks must have seen exactly these values, so run them once more.
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        form.show_all.set(true);
        form.left.set(None);
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

    {
        let fields = fields.clone();
        Effect::new(move |_| adopt_typed_values(&fields, form));
    }
    // A page that came back refused starts with the focus on the notice.
    let came_back = earlier.is_some();
    let server_error = move || match send.value().get() {
        Some(outcome) => outcome.err().map(|e| (e, Vec::new())),
        None => earlier.clone(),
    };
    let notice_titles = titles.clone();
    // The status line: the error of the field just left, else (after a submit)
    // which fields need fixing. A memo, so that it changes (and is read out)
    // only when what it says does.
    let status = Memo::new(move |_| {
        if let Some(name) = form.left.get()
            && let Some(message) = form.error_for(&name)
        {
            return left_field_status(&titles, &name, &message);
        }
        if !form.show_all.get() {
            return String::new();
        }
        let local = form.errors.get();
        let refused = form.refused.get();
        errors_summary(&titles, local.iter().chain(&refused))
    });
    let verdict = precheck_announcement(report);
    // Without script the form posts to the server, which answers with the
    // request's page or this page again with the refusal; the island, once
    // live, submits through its server functions instead (`submit` stops the post).
    view! {
        <form class="request-form" method="post" action=action on:submit=submit novalidate=true>
            {submit_key.map(|key| view! { <input type="hidden" name=SUBMIT_KEY_FIELD value=key /> })}
            {base_revision.map(|revision| view! { <input type="hidden" name=REVISION_FIELD value=revision.to_string() /> })}
            <div class="form-columns">
                <fieldset class="plain">
                    // First, before the fields: a refusal is the first thing read.
                    {move || server_error().map(|(e, again)| server_error_view(&e, &again, &notice_titles, came_back))}
                    {move || checks_missing.get().then(|| view! {
                        <p class="notice" role="status">"The checks could not be loaded into this page; the server checks the request when you submit it."</p>
                    })}
                    <SchemaForm fields form />
                    <div class="actions">
                        // Not `disabled`: a disabled button drops the keyboard's focus
                        // (to the page's top) the moment it is pressed. Unavailable
                        // only while sending (pressed again, it does nothing); with
                        // errors it still works: it checks again and takes the focus
                        // to the first field to fix, and the status line says which.
                        <button type="submit" class="primary" aria-disabled=move || submitting.get().to_string() aria-busy=move || submitting.get().to_string()>
                            {move || if submitting.get() { "Submitting…".to_string() } else { submit_label.clone() }}
                        </button>
                        // Always in the page, so that its text is announced when it changes.
                        <span class="hint" role="status">{move || status.get()}</span>
                    </div>
                </fieldset>
                <aside>
                    // The pre-check's verdict for a screen reader, said when it
                    // changes; the panel itself is re-drawn after each pause in
                    // typing, which would be read out in pieces.
                    <p class="sr-only" role="status" data-testid="precheck-status">{move || verdict.get()}</p>
                    <Transition fallback=|| view! { <p class="loading" role="status">"Checking…"</p> }>
                        {move || Suspend::new(async move {
                            match report.await {
                                Ok(report) => view! { <PrecheckPanel report /> }.into_any(),
                                Err(error) => error_notice(&error),
                            }
                        })}
                    </Transition>
                    {guided.then(|| view! { <GuidancePanel resource_type values live=form.live /> })}
                </aside>
            </div>
        </form>
    }
}

/// What the form's status line says when fields need fixing: how many, and
/// which, by the titles their labels show, in the page's order (`titles` holds
/// each field's name and title in that order). A refusal of the whole form, or
/// of something it does not show (its key), is said in the notice above.
fn errors_summary<'a>(
    titles: &[(String, String)],
    errors: impl Iterator<Item = &'a FieldError>,
) -> String {
    let errors: Vec<&FieldError> = errors.collect();
    if errors.is_empty() {
        return String::new();
    }
    let shown: Vec<&str> = titles
        .iter()
        .filter(|(name, _)| errors.iter().any(|e| &e.field == name))
        .map(|(_, title)| title.as_str())
        .collect();
    match shown.as_slice() {
        [] => "Fix what is marked above to submit.".to_string(),
        [one] => format!("1 field needs fixing: {one}."),
        all => format!("{} fields need fixing: {}.", all.len(), all.join(", ")),
    }
}

/// What the status line says when the person leaves a field with an error:
/// the field's label, then the error, as beside the field.
fn left_field_status(titles: &[(String, String)], name: &str, message: &str) -> String {
    let title = titles
        .iter()
        .find(|(field, _)| field == name)
        .map_or(name, |(_, title)| title.as_str());
    format!("{title}: {message}")
}

/// The pre-check's verdict in words, said only when it changes: not the first
/// one (the panel shows it with the page), nor the same one again after each
/// pause in typing.
fn precheck_announcement(
    report: Resource<Result<slipway_core::precheck::PrecheckReport, AppError>>,
) -> RwSignal<String> {
    let said = RwSignal::new(String::new());
    let verdict = Memo::new(move |_| {
        report
            .get()
            .and_then(Result::ok)
            .map(|report| verdict_text(&report))
    });
    Effect::new(move |before: Option<Option<String>>| {
        let before = before.flatten();
        let now = verdict.get();
        if let (Some(before), Some(now)) = (&before, &now)
            && before != now
        {
            said.set(now.clone());
        }
        now.or(before)
    });
    said
}

/// Moves the keyboard's focus to the notice of a refusal, once it is drawn.
fn focus_refusal() {
    #[cfg(feature = "hydrate")]
    request_animation_frame(|| {
        use wasm_bindgen::JsCast as _;
        if let Some(notice) = document()
            .get_element_by_id(REFUSAL_ID)
            .and_then(|element| element.dyn_into::<web_sys::HtmlElement>().ok())
        {
            let _ = notice.focus();
        }
    });
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

/// The notice of a server's refusal: what was refused and, field by field,
/// what to fix (each a link to its field), with the secrets to type again.
/// `focus`: the page came back with it, so the focus starts on it.
fn server_error_view(
    error: &AppError,
    again: &[FieldError],
    titles: &[(String, String)],
    focus: bool,
) -> AnyView {
    let content = match error {
        AppError::PrecheckFailed(report) => view! {
            <p>"The server refused the request: its pre-check did not pass."</p>
            <PrecheckPanel report=(**report).clone() />
            {fields_to_fix(again, titles)}
        }
        .into_any(),
        AppError::Invalid(errors) => {
            let all: Vec<FieldError> = errors.iter().chain(again).cloned().collect();
            view! {
                <p>"The server refused the request. To fix:"</p>
                {fields_to_fix(&all, titles)}
            }
            .into_any()
        }
        other => view! { {error_words(other)} {fields_to_fix(again, titles)} }.into_any(),
    };
    view! {
        <div class="notice error" role="alert" id=REFUSAL_ID tabindex="-1" autofocus=focus>{content}</div>
    }
    .into_any()
}

/// A list of field errors, each under its field's title and a link to the
/// field; one the form has no field for is said as the server said it.
fn fields_to_fix(errors: &[FieldError], titles: &[(String, String)]) -> Option<AnyView> {
    (!errors.is_empty()).then(|| {
        let items = errors
            .iter()
            .map(|error| {
                match titles.iter().find(|(name, _)| *name == error.field) {
                    Some((name, title)) => view! {
                        <li><a href=format!("#field-{name}")>{format!("{title}: {}", error.message)}</a></li>
                    }
                    .into_any(),
                    None => view! { <li>{error.to_string()}</li> }.into_any(),
                }
            })
            .collect_view();
        view! { <ul class="to-fix">{items}</ul> }.into_any()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn titles() -> Vec<(String, String)> {
        [("name", "Name"), ("team", "Team"), ("replicas", "Replicas")]
            .iter()
            .map(|(name, title)| (name.to_string(), title.to_string()))
            .collect()
    }

    #[test]
    fn the_status_line_names_each_field_once_by_its_title_in_page_order() {
        let errors = [
            FieldError::new("replicas", "must be at least 1"),
            FieldError::new("name", "must match the pattern"),
            FieldError::new("replicas", "must be at most 9"),
            FieldError::new("name", "is taken"),
        ];
        assert_eq!(
            errors_summary(&titles(), errors.iter()),
            "2 fields need fixing: Name, Replicas."
        );
        let one = [FieldError::new("team", "is required")];
        assert_eq!(
            errors_summary(&titles(), one.iter()),
            "1 field needs fixing: Team."
        );
    }

    #[test]
    fn the_status_line_says_something_for_every_error_and_nothing_without() {
        assert_eq!(errors_summary(&titles(), [].iter()), "");
        let whole = [FieldError::new("", "the quota is used up")];
        assert_eq!(
            errors_summary(&titles(), whole.iter()),
            "Fix what is marked above to submit."
        );
        let unknown = [FieldError::new("colour", "is not a field of this form")];
        assert_eq!(
            errors_summary(&titles(), unknown.iter()),
            "Fix what is marked above to submit."
        );
    }

    #[test]
    fn leaving_a_field_says_its_label_and_its_error() {
        assert_eq!(
            left_field_status(&titles(), "replicas", "must be at least 1"),
            "Replicas: must be at least 1"
        );
        // A field without a title in the list is named as the form names it.
        assert_eq!(
            left_field_status(&titles(), "colour", "is not known"),
            "colour: is not known"
        );
    }

    #[test]
    fn a_refusal_is_read_only_for_its_own_form() {
        let error = AppError::Invalid(vec![FieldError::new("name", "is taken")]);
        // Encoded as Leptos encodes a server function's refusal, which the
        // server's plain handler writes the same way.
        let mut query: Vec<(String, String)> = ServerFnUrlError::new("/x", error.clone())
            .to_url("http://portal.test/requests/new/t")
            .map(|url| {
                url.query_pairs()
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        query.push((REENTER_KEY.into(), "password".into()));
        let read = SentBack::from_query(&query, "/x");
        assert_eq!(
            read,
            Some(SentBack {
                error,
                reenter: vec!["password".into()]
            })
        );
        assert_eq!(SentBack::from_query(&query, "/another-form"), None);
        assert_eq!(SentBack::from_query(&[], "/x"), None);
    }
}
