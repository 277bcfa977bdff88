//! The figures as tables: beside each chart for screen readers and for copying, and
//! the per-type comparison.

use leptos::prelude::*;
use slipway_core::flow::{
    FlowMetrics, StepKind, TypeFlow, TypeWaiting, date_of, human_duration, label_of, percent,
};
use slipway_core::listing::encode;

use super::optional_ms;

fn ratio(value: Option<f64>) -> String {
    value.map_or_else(|| "–".to_string(), |v| format!("{v:.2}"))
}

#[component]
pub fn StepsTable(flow: TypeFlow, whose: String) -> impl IntoView {
    view! {
        <table class="list flow-steps">
            <caption class="sr-only">{format!("Time per step for {whose}")}</caption>
            <thead><tr><th scope="col">"Step"</th><th scope="col">"Kind"</th><th scope="col">"Times left in the window"</th><th scope="col">"Median"</th><th scope="col">"90th percentile"</th><th scope="col">"Mean"</th><th scope="col">"Total"</th></tr></thead>
            <tbody>
                {flow.steps.into_iter().map(|s| view! {
                    <tr>
                        <th scope="row">{s.step.label()}</th>
                        <td>{kind(s.kind)}</td>
                        <td>{s.durations.count}</td>
                        <td>{optional_ms(s.durations.median_ms)}</td>
                        <td>{optional_ms(s.durations.p90_ms)}</td>
                        <td>{optional_ms(s.durations.mean_ms)}</td>
                        <td>{human_duration(s.durations.total_ms)}</td>
                    </tr>
                }).collect_view()}
            </tbody>
        </table>
    }
}

fn kind(kind: StepKind) -> &'static str {
    match kind {
        StepKind::Wait => "wait",
        StepKind::Touch => "touch",
    }
}

/// Every step of the flow, empty ones too: "none in review" is news as well.
#[component]
pub fn WaitingTable(waiting: TypeWaiting, whose: String) -> impl IntoView {
    view! {
        <table class="list flow-waiting">
            <caption class="sr-only">{format!("Requests in each step now, and how long they have been in it, for {whose}")}</caption>
            <thead><tr><th scope="col">"Step"</th><th scope="col">"Kind"</th><th scope="col">"Requests now"</th><th scope="col">"Oldest"</th><th scope="col">"Median"</th></tr></thead>
            <tbody>
                {waiting.steps.into_iter().map(|s| view! {
                    <tr>
                        <th scope="row">{s.step.label()}</th>
                        <td>{kind(s.kind)}</td>
                        <td>{s.requests}</td>
                        <td>{optional_ms(s.oldest_ms)}</td>
                        <td>{optional_ms(s.median_ms)}</td>
                    </tr>
                }).collect_view()}
            </tbody>
        </table>
    }
}

#[component]
pub fn TrendTable(m: FlowMetrics) -> impl IntoView {
    view! {
        <table class="list flow-trend">
            <caption class="sr-only">"The trend by week"</caption>
            <thead><tr><th scope="col">"Week of"</th><th scope="col">"Submitted"</th><th scope="col">"Completed"</th><th scope="col">"Median lead time"</th><th scope="col">"Wait (all requests)"</th><th scope="col">"Touch (all requests)"</th><th scope="col">"Sent back"</th><th scope="col">"Auto-approved"</th><th scope="col">"Failed"</th><th scope="col">"By hand"</th></tr></thead>
            <tbody>
                {m.trend.into_iter().map(|w| view! {
                    <tr>
                        <th scope="row">{date_of(w.week_start_ms)}</th>
                        <td>{w.rates.submitted}</td>
                        <td>{w.rates.completed}</td>
                        <td>{optional_ms(w.lead_median_ms)}</td>
                        <td>{human_duration(w.wait_ms)}</td>
                        <td>{human_duration(w.touch_ms)}</td>
                        <td>{percent(w.rates.rework_rate)}</td>
                        <td>{percent(w.rates.auto_approval_share)}</td>
                        <td>{percent(w.rates.failure_rate)}</td>
                        <td>{percent(w.rates.manual_rate)}</td>
                    </tr>
                }).collect_view()}
            </tbody>
        </table>
    }
}

/// The page narrowed to one type's trend, of its creations (the default, so no
/// `action`) or of one of its actions, in the same window.
fn type_link(weeks: i64, type_name: &str, action: Option<&str>) -> String {
    let what = action.map_or_else(String::new, |a| format!("&action={}", encode(a)));
    format!("?weeks={weeks}&type={}{what}", encode(type_name))
}

#[component]
pub fn TypesTable(types: Vec<TypeFlow>, weeks: i64) -> impl IntoView {
    view! {
        <section aria-labelledby="flow-types-h">
            <h2 id="flow-types-h">"By type"</h2>
            // A type's creations and each of its day-2 actions have a row of
            // their own: a backup done in seconds says nothing of how long a
            // new database takes, and counted together it would hide it.
            <p class="muted">"Each type's creations, and each action on its assets (resize, backup…), counted apart."</p>
            // Keyboard users scroll a table wider than the screen with the arrow keys.
            <div class="table-scroll" tabindex="0" role="region" aria-label="Flow by type">
            <table class="list flow-types">
                <caption class="sr-only">"Flow figures by type and by what its requests do"</caption>
                <thead><tr><th scope="col">"Type"</th><th scope="col">"What"</th><th scope="col">"Submitted"</th><th scope="col">"Completed"</th><th scope="col">"Lead time (median / p90)"</th><th scope="col">"Wait (all requests)"</th><th scope="col">"Touch (all requests)"</th><th scope="col">"Flow efficiency"</th><th scope="col">"Sent back"</th><th scope="col">"Rounds per reviewed request"</th><th scope="col">"Auto-approved"</th><th scope="col">"Failed"</th><th scope="col">"By hand"</th></tr></thead>
                <tbody>
                    {types.into_iter().map(|t| view! {
                        <tr>
                            // Each of a type's rows links elsewhere: its name says which.
                            <th scope="row"><a href=type_link(weeks, &t.type_name, t.action.as_deref()) aria-label=format!("{}, {}", t.type_name, label_of(t.action.as_deref()))>{t.type_name.clone()}</a></th>
                            <td>{label_of(t.action.as_deref())}</td>
                            <td>{t.rates.submitted}</td>
                            <td>{t.rates.completed}</td>
                            <td>{format!("{} / {}", optional_ms(t.lead.median_ms), optional_ms(t.lead.p90_ms))}</td>
                            <td>{human_duration(t.wait_ms)}</td>
                            <td>{human_duration(t.touch_ms)}</td>
                            <td>{percent(t.flow_efficiency)}</td>
                            <td>{percent(t.rates.rework_rate)}</td>
                            <td>{ratio(t.rates.rounds_per_request)}</td>
                            <td>{percent(t.rates.auto_approval_share)}</td>
                            <td>{percent(t.rates.failure_rate)}</td>
                            <td>{percent(t.rates.manual_rate)}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
            </div>
        </section>
    }
}
