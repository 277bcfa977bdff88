//! The one form every resource type uses, generated from its parameter schema.
//! Validation runs in the browser with the same code the server runs.

use leptos::prelude::*;
use serde_json::{Map, Value};
use slipway_core::catalog::{FieldKind, FieldSpec};
use slipway_core::secret;
use slipway_core::validate::{FieldError, coerce_form_value};

/// The form's state: current values, which fields the user has left, and the errors.
#[derive(Clone, Copy)]
pub struct FormState {
    pub values: RwSignal<Map<String, Value>>,
    pub touched: RwSignal<Vec<String>>,
    /// Filled by the checks, which run in the background as values change.
    pub errors: RwSignal<Vec<FieldError>>,
    /// What the server refused on a submit that the checks here cannot know
    /// (a name taken, a quota, a rule against the asset). Each stays until its
    /// field changes; the checks' own results never replace them.
    pub refused: RwSignal<Vec<FieldError>>,
    /// Set on a submit attempt: from then on every error shows, touched or not.
    pub show_all: RwSignal<bool>,
    /// False until the island has taken in what was typed before it was live:
    /// until then the controls keep what the server rendered and the person
    /// typed, rather than be reset to the values the island started with.
    pub live: RwSignal<bool>,
    /// The field the person last left: the form's status line says its error
    /// (once on leaving, not at each keystroke), until that field changes.
    pub left: RwSignal<Option<String>>,
}

impl FormState {
    /// A form's state, starting from `values`; `refused` is a refusal the
    /// server sent back with the page, shown at once.
    pub fn new(values: Map<String, Value>, refused: Vec<FieldError>) -> FormState {
        FormState {
            values: RwSignal::new(values),
            touched: RwSignal::new(Vec::new()),
            errors: RwSignal::new(Vec::new()),
            show_all: RwSignal::new(!refused.is_empty()),
            refused: RwSignal::new(refused),
            live: RwSignal::new(false),
            left: RwSignal::new(None),
        }
    }

    /// The error shown beside `field`, if any.
    pub fn error_for(&self, field: &str) -> Option<String> {
        let visible = self.show_all.get() || self.touched.with(|t| t.iter().any(|f| f == field));
        if !visible {
            return None;
        }
        let first_for = |errors: &Vec<FieldError>| {
            errors
                .iter()
                .find(|e| e.field == field)
                .map(|e| e.message.clone())
        };
        self.errors
            .with(first_for)
            .or_else(|| self.refused.with(first_for))
    }

    fn touch(&self, field: &str) {
        if !self
            .touched
            .with_untracked(|t| t.iter().any(|f| f == field))
        {
            self.touched.update(|t| t.push(field.to_string()));
        }
    }

    /// The person left `field`: its error shows from now on, and the status
    /// line says it.
    fn leave(&self, field: &str) {
        self.touch(field);
        if self
            .left
            .with_untracked(|left| left.as_deref() != Some(field))
        {
            self.left.set(Some(field.to_string()));
        }
    }

    fn set(&self, field: &str, value: Value) {
        // Typing again in the field the status line speaks of: it falls silent
        // rather than follow each keystroke.
        if self
            .left
            .with_untracked(|left| left.as_deref() == Some(field))
        {
            self.left.set(None);
        }
        // The server judged the old value; its verdict does not hold for the new one.
        if self
            .refused
            .with_untracked(|r| r.iter().any(|e| e.field == field))
        {
            self.refused.update(|r| r.retain(|e| e.field != field));
        }
        self.values.update(|values| {
            if value.is_null() {
                values.remove(field);
            } else {
                values.insert(field.to_string(), value);
            }
        });
    }
}

fn text_of(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| text_of(Some(i)))
            .collect::<Vec<_>>()
            .join("\n"),
        Some(other) => other.to_string(),
    }
}

/// Whether a field's label carries the required mark.
fn marked_required(field: &FieldSpec) -> bool {
    field.required && !matches!(field.kind, FieldKind::Boolean)
}

/// The form's fields. A page sent back with a refusal starts with the focus on
/// the refusal's notice (see the request form), never on a field.
#[component]
pub fn SchemaForm(fields: Vec<FieldSpec>, form: FormState) -> impl IntoView {
    let any_required = fields.iter().any(marked_required);
    view! {
        <div class="schema-form">
            // What the mark beside a label means, said once. (Each required
            // control says so itself to a screen reader: the mark is hidden from it.)
            {any_required.then(|| view! {
                <p class="help required-note" aria-hidden="true"><span class="required">"*"</span>" required"</p>
            })}
            {fields.into_iter().map(|field| view! { <Field field form /> }).collect_view()}
        </div>
    }
}

#[component]
fn Field(field: FieldSpec, form: FormState) -> impl IntoView {
    let id = format!("field-{}", field.name);
    let help_id = format!("{id}-help");
    let error_id = format!("{id}-error");
    let name = field.name.clone();
    let error = {
        let name = name.clone();
        Memo::new(move |_| form.error_for(&name))
    };
    let described_by = if field.description.is_some() {
        format!("{help_id} {error_id}")
    } else {
        error_id.clone()
    };
    let control = control(&field, &id, &described_by, form, error);
    let required = marked_required(&field);
    view! {
        <div class="field" class:has-error=move || error.get().is_some()>
            <label for=id.clone()>
                {field.title.clone()}
                {required.then(|| view! { <span class="required" aria-hidden="true">" *"</span> })}
            </label>
            {control}
            {field.description.clone().map(|d| view! { <p class="help" id=help_id.clone()>{d}</p> })}
            // No live role: the message changes as the person types, and an alert
            // would interrupt every keystroke. The field points at it
            // (`aria-describedby`), and the form's status line says when to look.
            <p class="field-error" id=error_id.clone()>{move || error.get()}</p>
        </div>
    }
}

/// A secret is typed, never shown: the field starts empty even when a value is
/// stored, and left empty it sends the stored value's placeholder, which the server
/// reads as "keep it".
fn secret_control(
    field: &FieldSpec,
    (id, described_by): (String, String),
    form: FormState,
    invalid: impl Fn() -> String + Send + Sync + 'static,
) -> AnyView {
    let name = field.name.clone();
    let stored = form
        .values
        .with_untracked(|v| v.get(&name).is_some_and(secret::is_placeholder));
    let on_input = {
        let name = name.clone();
        move |raw: String| {
            let value = if raw.is_empty() && stored {
                secret::placeholder(&name)
            } else {
                coerce_form_value(
                    &FieldKind::Text {
                        pattern: None,
                        min_length: None,
                        max_length: None,
                    },
                    &raw,
                )
            };
            form.set(&name, value);
        }
    };
    let on_blur = {
        let name = name.clone();
        move |_| form.leave(&name)
    };
    let hint = stored.then_some("Set; leave empty to keep it");
    view! {
        <input type="password" autocomplete="new-password" id=id name=name.clone()
            required=field.required && !stored placeholder=hint
            aria-describedby=described_by aria-invalid=invalid
            on:input=move |ev| on_input(event_target_value(&ev)) on:blur=on_blur />
    }
    .into_any()
}

/// One field's control. The server renders each with its first value as an
/// attribute (`value`, `checked`, `selected`, a text area's text), so the form
/// shows and posts it without script; the island then keeps the control's
/// property in step with the form's values.
fn control(
    field: &FieldSpec,
    id: &str,
    described_by: &str,
    form: FormState,
    error: Memo<Option<String>>,
) -> AnyView {
    let name = field.name.clone();
    let first = form.values.with_untracked(|v| text_of(v.get(&name)));
    let current = {
        let name = name.clone();
        move || {
            form.live
                .get()
                .then(|| form.values.with(|v| text_of(v.get(&name))))
        }
    };
    let on_input = {
        let (name, kind) = (name.clone(), field.kind.clone());
        move |raw: String| form.set(&name, coerce_form_value(&kind, &raw))
    };
    let on_blur = {
        let name = name.clone();
        move |_| form.leave(&name)
    };
    let invalid = move || error.get().is_some().to_string();
    let (id, described_by, required) = (id.to_string(), described_by.to_string(), field.required);
    if field.secret {
        return secret_control(field, (id, described_by), form, invalid);
    }
    match &field.kind {
        FieldKind::Text { max_length, .. } => view! {
            <input type="text" id=id name=name.clone() required=required autocomplete="off"
                maxlength=max_length.map(|m| m.to_string())
                aria-describedby=described_by aria-invalid=invalid
                value=first prop:value=current on:input=move |ev| on_input(event_target_value(&ev)) on:blur=on_blur />
        }
        .into_any(),
        FieldKind::Integer { minimum, maximum } => view! {
            <input type="number" inputmode="numeric" id=id name=name.clone() required=required
                min=minimum.map(|m| m.to_string()) max=maximum.map(|m| m.to_string())
                aria-describedby=described_by aria-invalid=invalid
                value=first prop:value=current on:input=move |ev| on_input(event_target_value(&ev)) on:blur=on_blur />
        }
        .into_any(),
        FieldKind::Boolean => {
            let is_checked = {
                let name = name.clone();
                move || form.values.with(|v| v.get(&name).and_then(Value::as_bool).unwrap_or(false))
            };
            let first_checked = is_checked();
            let checked = move || form.live.get().then(is_checked.clone());
            let name_for_set = name.clone();
            view! {
                <input type="checkbox" id=id name=name.clone() aria-describedby=described_by aria-invalid=invalid
                    checked=first_checked prop:checked=checked on:blur=on_blur
                    on:change=move |ev| { form.set(&name_for_set, Value::Bool(event_target_checked(&ev))); form.touch(&name_for_set); } />
            }
            .into_any()
        }
        FieldKind::Choice { options } => {
            let options = options.clone();
            let has_value = {
                let name = name.clone();
                move || form.values.with(|v| v.contains_key(&name))
            };
            let name_for_touch = name.clone();
            view! {
                <select id=id name=name.clone() required=required aria-describedby=described_by aria-invalid=invalid
                    prop:value=current on:change=move |ev| { on_input(event_target_value(&ev)); form.touch(&name_for_touch); } on:blur=on_blur>
                    <option value="" disabled=true selected=move || !has_value()>"Choose…"</option>
                    {options.into_iter().map(|o| {
                        let chosen = o.value == first;
                        view! { <option value=o.value.clone() selected=chosen>{o.label.clone()}</option> }
                    }).collect_view()}
                </select>
            }
            .into_any()
        }
        FieldKind::TextList { .. } => {
            // Said beside the box, not only as a placeholder, which a prefilled
            // box hides and not every screen reader reads.
            let lines_id = format!("{id}-lines");
            let described_by = format!("{lines_id} {described_by}");
            view! {
                <textarea id=id name=name.clone() rows="3" required=required aria-describedby=described_by aria-invalid=invalid
                    placeholder="One per line"
                    prop:value=current on:input=move |ev| on_input(event_target_value(&ev)) on:blur=on_blur>{first}</textarea>
                <p class="help" id=lines_id>"One per line."</p>
            }
            .into_any()
        }
    }
}

/// Takes into the form's values what was typed or chosen in `fields` before the
/// island was live (the page works, and posts, before its script has loaded),
/// then lets the island drive the controls. Only in the browser.
pub fn adopt_typed_values(fields: &[FieldSpec], form: FormState) {
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast as _;
        for field in fields {
            let Some(element) = document().get_element_by_id(&format!("field-{}", field.name))
            else {
                continue;
            };
            let shown = form.values.with_untracked(|v| text_of(v.get(&field.name)));
            if let Some(input) = element.dyn_ref::<web_sys::HtmlInputElement>() {
                if input.type_() == "checkbox" {
                    let was = form.values.with_untracked(|v| {
                        v.get(&field.name).and_then(Value::as_bool).unwrap_or(false)
                    });
                    if input.checked() != was {
                        form.set(&field.name, Value::Bool(input.checked()));
                    }
                    continue;
                }
                let typed = input.value();
                // A secret field starts empty whatever is stored: only typing counts.
                let changed = if field.secret {
                    !typed.is_empty()
                } else {
                    typed != shown
                };
                if changed {
                    form.set(&field.name, coerce_form_value(&field.kind, &typed));
                }
            } else if let Some(select) = element.dyn_ref::<web_sys::HtmlSelectElement>() {
                if select.value() != shown {
                    form.set(&field.name, coerce_form_value(&field.kind, &select.value()));
                }
            } else if let Some(area) = element.dyn_ref::<web_sys::HtmlTextAreaElement>()
                && area.value() != shown
            {
                form.set(&field.name, coerce_form_value(&field.kind, &area.value()));
            }
        }
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (fields, form);
    form.live.set(true);
}

/// Moves the keyboard's focus to the first of `fields` the page shows, in the
/// page's order (each control's id is `field-{name}`): after a refused submit or
/// an applied suggestion, a keyboard or screen-reader user lands where the fix
/// is, and hears its label, value and error. Only in the browser.
/// Says whether it found one to focus.
pub fn focus_first_field<'a>(fields: impl IntoIterator<Item = &'a str>) -> bool {
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast as _;
        let wanted: Vec<String> = fields.into_iter().map(|f| format!("field-{f}")).collect();
        let Ok(controls) = document().query_selector_all("[id^='field-']") else {
            return false;
        };
        let first = (0..controls.length())
            .filter_map(|i| controls.item(i))
            .filter_map(|node| node.dyn_into::<web_sys::HtmlElement>().ok())
            .find(|element| wanted.contains(&element.id()));
        // Focused at the next frame, once the errors set beside this call are
        // drawn: focused now, a screen reader would read the field as valid,
        // without the error it is there for.
        match first {
            Some(element) => {
                request_animation_frame(move || {
                    let _ = element.focus();
                });
                true
            }
            None => false,
        }
    }
    #[cfg(not(feature = "hydrate"))]
    {
        drop(fields.into_iter());
        false
    }
}
