//! Guidance from history beside the request form: what the team usually chooses,
//! what past reviews sent requests back for, and a number far from the team's
//! usual. Fetched once per team; the unusual-value rule is the core's and re-runs
//! in the browser as the requester types. Each hint names its source, is labelled
//! in words (not by colour alone) and never blocks the submit.

use crate::components::schema_form::focus_first_field;
use leptos::prelude::*;
use serde_json::{Map, Value};
use slipway_core::catalog::ResourceType;
use slipway_core::guidance::{Guidance, Hint, HintKind, unusual_values};

use crate::api::load_guidance;

/// `live`: whether the form's island is live; until then (and without script)
/// a button would do nothing, so none is shown.
#[component]
pub fn GuidancePanel(
    resource_type: StoredValue<ResourceType>,
    values: RwSignal<Map<String, Value>>,
    live: RwSignal<bool>,
) -> impl IntoView {
    // Only a change of team fetches again: the rest of the history does not move
    // while the form is being filled in.
    let team = Memo::new(move |_| {
        let param = resource_type.with_value(|t| t.owner_param.as_ref().map(|o| o.param.clone()));
        param.and_then(|p| values.with(|v| v.get(&p).and_then(Value::as_str).map(str::to_string)))
    });
    let guidance = Resource::new(
        move || team.get(),
        move |team| {
            let type_name = resource_type.with_value(|t| t.name.clone());
            load_guidance(type_name, team)
        },
    );
    view! {
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                match guidance.await {
                    Ok(guidance) => view! { <GuidanceList guidance resource_type values live /> }.into_any(),
                    // Guidance is a courtesy: without it the form works as before.
                    Err(_) => ().into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn GuidanceList(
    guidance: Guidance,
    resource_type: StoredValue<ResourceType>,
    values: RwSignal<Map<String, Value>>,
    live: RwSignal<bool>,
) -> impl IntoView {
    if guidance.hints.is_empty() && guidance.usual.is_empty() {
        return ().into_any();
    }
    let fixed = guidance.hints.clone();
    let guidance = StoredValue::new(guidance);
    let unusual = move || {
        let found = resource_type
            .with_value(|ty| guidance.with_value(|g| values.with(|v| unusual_values(ty, g, v))));
        found
            .into_iter()
            .map(|hint| hint_view(hint, values, live))
            .collect_view()
    };
    // The hints quote the value being typed, so a live list would speak at every
    // keystroke: only a change in how many values are unusual is read out.
    let unusual_count = Memo::new(move |_| {
        resource_type.with_value(|ty| {
            guidance.with_value(|g| values.with(|v| unusual_values(ty, g, v).len()))
        })
    });
    let announced = move || match unusual_count.get() {
        0 => String::new(),
        1 => "1 unusual value: see the guidance from history".to_string(),
        n => format!("{n} unusual values: see the guidance from history"),
    };
    view! {
        <section class="guidance" aria-label="Guidance from history" data-testid="guidance">
            <h2>"Guidance from history"</h2>
            <p class="help">"From your team's past requests of this type. Suggestions only: none of them stops you submitting."</p>
            <p class="sr-only" role="status">{announced}</p>
            <ul class="guidance-hints">{unusual}</ul>
            <ul class="guidance-hints">
                {fixed.into_iter().map(|hint| hint_view(hint, values, live)).collect_view()}
            </ul>
        </section>
    }
    .into_any()
}

fn label(kind: HintKind) -> &'static str {
    match kind {
        HintKind::MostChosen => "Usually chosen",
        HintKind::SentBack => "Sent back before",
        HintKind::Unusual => "Unusual value",
    }
}

fn slug(kind: HintKind) -> &'static str {
    match kind {
        HintKind::MostChosen => "most-chosen",
        HintKind::SentBack => "sent-back",
        HintKind::Unusual => "unusual",
    }
}

fn hint_view(
    hint: Hint,
    values: RwSignal<Map<String, Value>>,
    live: RwSignal<bool>,
) -> impl IntoView {
    // The button's own words are short; the hint it belongs to says what it sets.
    let text_id = format!("guidance-{}-{}", slug(hint.kind), hint.field);
    let described_by = text_id.clone();
    let use_it = hint.value.clone().map(|value| {
        let field = hint.field.clone();
        let differs = {
            let (field, value) = (field.clone(), value.clone());
            move || values.with(|v| v.get(&field) != Some(&value))
        };
        // The button goes once its value is in: the focus goes to the field,
        // which reads out its label and its new value.
        let apply = move |_| {
            values.update(|v| {
                v.insert(field.clone(), value.clone());
            });
            focus_first_field([field.as_str()]);
        };
        // Only once the form is live: before (or without) its script, a button
        // here would do nothing when pressed.
        move || {
            (live.get() && differs()).then(|| {
                view! { <button type="button" aria-describedby=described_by.clone() on:click=apply.clone()>"Use this value"</button> }
            })
        }
    });
    view! {
        <li class=format!("guidance-hint {}", slug(hint.kind)) data-field=hint.field.clone()>
            <span id=text_id><strong>{label(hint.kind)}": "</strong>{hint.message.clone()}</span>
            <small class="source">{format!("Source: {}", hint.source)}</small>
            {use_it}
        </li>
    }
}
