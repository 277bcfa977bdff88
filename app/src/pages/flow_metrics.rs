//! The flow metrics page: where requests wait and for how long, drawn on the server
//! as SVG (no chart code in the browser), each chart with its figures as a table.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;
use slipway_core::flow::{
    DEFAULT_WEEKS, EVERY, FlowMetrics, FlowQuery, TypeFlow, date_of, human_duration, label_of,
    percent,
};

use crate::api::flow_metrics;
use crate::components::{Loading, error_view};
use crate::error::AppError;
use slipway_core::validate::FieldError;

const HOUR_MS: f64 = 3_600_000.0;

fn hours(ms: i64) -> f64 {
    ms as f64 / HOUR_MS
}

fn read_hours(h: f64) -> String {
    human_duration((h * HOUR_MS) as i64)
}

fn read_percent(share: f64) -> String {
    format!("{share:.0}%")
}

fn optional_ms(ms: Option<i64>) -> String {
    ms.map_or_else(|| "–".to_string(), human_duration)
}

/// The query in the address: `?weeks=12&type=k8s-namespace&action=backup`, or
/// why it does not read (a `weeks` that is not a whole number, named as the API
/// names it). The type and the action are checked by the service, as the API's.
fn query_from_url() -> Memo<Result<FlowQuery, AppError>> {
    let map = use_query_map();
    Memo::new(move |_| {
        map.with(|m| {
            let weeks = match m.get("weeks") {
                None => None,
                Some(w) => Some(w.parse().map_err(|_| {
                    AppError::Invalid(vec![FieldError::new("weeks", "is not a whole number")])
                })?),
            };
            Ok(FlowQuery {
                weeks,
                type_name: m.get("type").filter(|t| !t.is_empty()),
                action: m.get("action").filter(|a| !a.is_empty()),
            })
        })
    })
}

/// The figures the query asks for. A query that does not read is named (422)
/// only to someone the page is for: the service's gate is asked first.
async fn figures_for(query: Result<FlowQuery, AppError>) -> Result<FlowMetrics, AppError> {
    match query {
        Ok(query) => flow_metrics(query).await,
        Err(refusal) => {
            flow_metrics(FlowQuery::default()).await?;
            Err(crate::components::unreadable_query(refusal))
        }
    }
}

#[component]
pub fn FlowMetricsPage() -> impl IntoView {
    let query = query_from_url();
    let metrics = Resource::new(move || query.get(), figures_for);
    view! {
        <Title text="Flow metrics" />
        <h1>"Flow metrics"</h1>
        <p class="muted">"Where requests spend their time, from submit to completed. "
            <strong>"Wait"</strong>" is time queued or waiting for a person (submitted, in review, changes requested, approved, failed); "
            <strong>"touch"</strong>" is time someone or something works on it (executing, verifying, handled by hand). Weeks start on Monday, UTC."</p>
        <Transition fallback=|| view! { <Loading /> }>
            {move || Suspend::new(async move {
                let figures = metrics.await;
                // The filters stay when the figures do not come: a refused window
                // or type is corrected from the same form (by those who may read them).
                let refused = matches!(figures, Err(AppError::Unauthenticated | AppError::Forbidden(_)));
                let seen = figures.as_ref().map_or_else(|_| Seen::default(), Seen::of);
                let filters = (!refused).then(|| view! { <Filters query=query.get_untracked().unwrap_or_default() seen /> });
                let shown = match figures {
                    Ok(m) => view! { <FlowView m /> }.into_any(),
                    Err(e) => error_view(e),
                };
                view! { {filters} {shown} }
            })}
        </Transition>
    }
}

/// What a heading says the figures are of: a type (or all types) and what its
/// requests do.
fn whose(type_name: Option<&str>, action: Option<&str>) -> String {
    format!("{}, {}", type_name.unwrap_or("all types"), label_of(action))
}

#[component]
fn FlowView(m: FlowMetrics) -> impl IntoView {
    let window = format!(
        "{} weeks, {} to {}",
        m.weeks,
        date_of(m.since_ms),
        date_of(m.until_ms - 1)
    );
    let waiting = m.waiting.of_type(m.trend_type.as_deref());
    // Waiting now counts what the rest of the page counts (creations, an
    // action or every request), of the type followed or of all.
    let focus_whose = whose(m.trend_type.as_deref(), m.action.as_deref());
    view! {
        <Waiting waiting whose=focus_whose.clone() />
        <p class="muted">{window}</p>
        <Summary flow=m.all.clone() />
        <Steps flow=m.focus.clone() whose=focus_whose />
        <Trend m=m.clone() />
        <TypesTable types=m.types.clone() weeks=m.weeks />
    }
}

/// The types and the actions the window's figures have, for the filters.
#[derive(Debug, Clone, Default)]
struct Seen {
    types: Vec<String>,
    actions: Vec<String>,
}

impl Seen {
    fn of(m: &FlowMetrics) -> Seen {
        let mut seen = Seen::default();
        for t in &m.types {
            // The actions of the chosen type only, when one is: another type's
            // action would show nothing.
            let of_chosen = m
                .trend_type
                .as_ref()
                .is_none_or(|chosen| chosen == &t.type_name);
            if let (Some(action), true) = (&t.action, of_chosen) {
                seen.actions.push(action.clone());
            }
            seen.types.push(t.type_name.clone());
        }
        for list in [&mut seen.types, &mut seen.actions] {
            list.sort_unstable();
            list.dedup();
        }
        seen
    }
}

/// A GET form, so the window, the type and what its requests do land in the
/// address: as the address asks, with the types and actions the figures have
/// (and the ones asked for, had they none).
#[component]
fn Filters(query: FlowQuery, seen: Seen) -> impl IntoView {
    let weeks = query.weeks.unwrap_or(DEFAULT_WEEKS);
    let chosen = query.type_name.unwrap_or_default();
    let Seen {
        mut types,
        mut actions,
    } = seen;
    if !chosen.is_empty() && !types.contains(&chosen) {
        types.push(chosen.clone());
    }
    let action = query.action.unwrap_or_default();
    if !action.is_empty() && action != EVERY && !actions.contains(&action) {
        actions.push(action.clone());
    }
    view! {
        <form method="get" action="" class="filters" aria-label="Window and type">
            <div class="field"><label for="flow-weeks">"Weeks"</label>
                <select id="flow-weeks" name="weeks">
                    {[4, DEFAULT_WEEKS, 26, 52].into_iter().map(|w| view! {
                        <option value=w.to_string() selected=w == weeks>{w}</option>
                    }).collect_view()}
                </select></div>
            <div class="field"><label for="flow-type">"Type"</label>
                <select id="flow-type" name="type">
                    <option value="" selected=chosen.is_empty()>"All types"</option>
                    {types.into_iter().map(|name| {
                        let selected = name == chosen;
                        view! { <option value=name.clone() selected=selected>{name.clone()}</option> }
                    }).collect_view()}
                </select></div>
            <div class="field"><label for="flow-action">"What"</label>
                <select id="flow-action" name="action">
                    <option value="" selected=action.is_empty()>"Creations"</option>
                    {actions.into_iter().map(|name| {
                        let selected = name == action;
                        view! { <option value=name.clone() selected=selected>{name.clone()}</option> }
                    }).collect_view()}
                    <option value=EVERY selected=action == EVERY>"Every request (creations and actions)"</option>
                </select></div>
            <button type="submit">"Show"</button>
        </form>
    }
}

#[component]
fn Summary(flow: TypeFlow) -> impl IntoView {
    let r = flow.rates;
    let figures = [
        ("Submitted", r.submitted.to_string()),
        ("Completed", r.completed.to_string()),
        ("Median lead time", optional_ms(flow.lead.median_ms)),
        ("Lead time, 90th percentile", optional_ms(flow.lead.p90_ms)),
        (
            "Flow efficiency (touch ÷ (wait + touch))",
            percent(flow.flow_efficiency),
        ),
        ("Sent back for changes", percent(r.rework_rate)),
        ("Auto-approved", percent(r.auto_approval_share)),
        ("Failed", percent(r.failure_rate)),
        ("Handled by hand", percent(r.manual_rate)),
    ];
    let heading = format!("All types, {}", label_of(flow.action.as_deref()));
    view! {
        <section aria-labelledby="flow-summary">
            <h2 id="flow-summary">{heading}</h2>
            <dl class="figures">
                {figures.into_iter().map(|(name, value)| view! {
                    <div><dt>{name}</dt><dd>{value}</dd></div>
                }).collect_view()}
            </dl>
        </section>
    }
}

mod charts;
mod tables;
use charts::{Steps, Trend, Waiting};
use tables::TypesTable;
