//! The charts, each an SVG string drawn by `slipway_core::chart`, shown beside a
//! table of the same figures.

use leptos::prelude::*;
use slipway_core::chart::{Bar, Frame, Series, bar_chart, line_chart};
use slipway_core::flow::{
    FlowMetrics, FlowRates, StepKind, TypeFlow, TypeWaiting, WeekFlow, date_of,
};

use super::{hours, read_hours, read_percent};

/// Duration axes reach at least a minute: seconds-long steps still read.
const MIN_HOURS: f64 = 1.0 / 60.0;

/// The chart is our own markup with every text escaped, so it goes in as HTML.
/// A caption says in words what a chart without a heading of its own shows.
#[component]
fn Chart(svg: String, #[prop(optional)] caption: Option<&'static str>) -> impl IntoView {
    view! {
        <figure class="chart">
            {caption.map(|text| view! { <figcaption>{text}</figcaption> })}
            <div inner_html=svg></div>
        </figure>
    }
}

/// Wait or touch in words, not by a bar's colour alone.
fn kind_word(kind: StepKind) -> &'static str {
    match kind {
        StepKind::Touch => "touch",
        StepKind::Wait => "wait",
    }
}

fn steps_svg(flow: &TypeFlow, whose: &str) -> String {
    let bars: Vec<Bar> = flow
        .steps
        .iter()
        .map(|s| Bar {
            label: format!("{} ({})", s.step.label(), kind_word(s.kind)),
            value: s.durations.median_ms.map_or(0.0, hours),
            marker: s.durations.p90_ms.map(hours),
            colour: usize::from(s.kind == StepKind::Touch),
        })
        .collect();
    let desc = format!(
        "For {whose}: the median time a request spends in each step, as a bar labelled and coloured by wait or touch, with a tick at the 90th percentile. The table below holds the same figures."
    );
    let frame = Frame {
        id: "flow-steps",
        title: "Time per step",
        desc: &desc,
        format: &read_hours,
        min_top: MIN_HOURS,
    };
    bar_chart(
        &frame,
        &bars,
        &[(0, "wait (median)"), (1, "touch (median)")],
        Some("90th percentile"),
    )
}

#[component]
pub fn Steps(flow: TypeFlow, whose: String) -> impl IntoView {
    let svg = steps_svg(&flow, &whose);
    let title = format!("Time per step: {whose}");
    view! {
        <section aria-labelledby="flow-steps-h">
            <h2 id="flow-steps-h">{title}</h2>
            {if flow.steps.is_empty() {
                view! { <p class="empty">"No request moved in this window."</p> }.into_any()
            } else {
                view! {
                    <Chart svg />
                    <details>
                        <summary>"Table: time per step"</summary>
                        <super::tables::StepsTable flow whose />
                    </details>
                }.into_any()
            }}
        </section>
    }
}

fn waiting_svg(waiting: &TypeWaiting, whose: &str) -> String {
    let bars: Vec<Bar> = waiting
        .steps
        .iter()
        .filter(|s| s.requests > 0)
        .map(|s| Bar {
            label: format!("{} ({}): {}", s.step.label(), kind_word(s.kind), s.requests),
            value: s.median_ms.map_or(0.0, hours),
            marker: s.oldest_ms.map(hours),
            colour: usize::from(s.kind == StepKind::Touch),
        })
        .collect();
    let desc = format!(
        "For {}: each step holding requests now, labelled with wait or touch and how many requests, as a bar of the median time they have been in it so far, with a tick at the oldest. The table above holds the same figures.",
        whose
    );
    let frame = Frame {
        id: "flow-waiting",
        title: "Time in the step so far",
        desc: &desc,
        format: &read_hours,
        min_top: MIN_HOURS,
    };
    bar_chart(
        &frame,
        &bars,
        &[(0, "wait (median)"), (1, "touch (median)")],
        Some("oldest"),
    )
}

/// What is in the flow at this moment, whatever the window: the figures below
/// count a step only once a request leaves it, so a request stuck in review
/// shows here first.
#[component]
pub fn Waiting(waiting: TypeWaiting, whose: String) -> impl IntoView {
    let title = format!("Waiting now: {whose}");
    let total = waiting.requests();
    let body = if total == 0 {
        view! { <p class="empty">"No request is in the flow now."</p> }.into_any()
    } else {
        let svg = waiting_svg(&waiting, &whose);
        let count = if total == 1 {
            "1 request is in the flow now.".to_string()
        } else {
            format!("{total} requests are in the flow now.")
        };
        view! {
            <p>{count}</p>
            <super::tables::WaitingTable waiting whose />
            <Chart svg />
        }
        .into_any()
    };
    view! {
        <section aria-labelledby="flow-waiting-h">
            <h2 id="flow-waiting-h">{title}</h2>
            <p class="muted">"The requests in each step at this moment and how long they have been in it. Not of the window: read afresh at every view. The figures further down count a step's time only once a request leaves it."</p>
            {body}
        </section>
    }
}

fn week_labels(m: &FlowMetrics) -> Vec<String> {
    m.trend
        .iter()
        .map(|w| {
            let date = date_of(w.week_start_ms);
            date.get(5..).unwrap_or(&date).to_string()
        })
        .collect()
}

fn series(m: &FlowMetrics, name: &str, value: impl Fn(&FlowRates) -> Option<f64>) -> Series {
    Series {
        name: name.to_string(),
        values: m
            .trend
            .iter()
            .map(|w| value(&w.rates).map(|v| v * 100.0))
            .collect(),
    }
}

fn lead_svg(m: &FlowMetrics, labels: &[String]) -> String {
    let lead = Series {
        name: "median lead time".into(),
        values: m
            .trend
            .iter()
            .map(|w| w.lead_median_ms.map(hours))
            .collect(),
    };
    let frame = Frame {
        id: "flow-lead",
        title: "Lead time by week",
        desc: "The median time from submit to completed of the requests completed each week; a week without completions has no point.",
        format: &read_hours,
        min_top: MIN_HOURS,
    };
    line_chart(&frame, labels, &[lead])
}

fn time_svg(m: &FlowMetrics, labels: &[String]) -> String {
    let of = |f: fn(&WeekFlow) -> i64| m.trend.iter().map(|w| Some(hours(f(w)))).collect();
    let lines = [
        Series {
            name: "wait".into(),
            values: of(|w| w.wait_ms),
        },
        Series {
            name: "touch".into(),
            values: of(|w| w.touch_ms),
        },
    ];
    let frame = Frame {
        id: "flow-time",
        title: "Wait and touch time by week",
        desc: "Hours all requests spent waiting, and being worked on, in the steps that ended each week.",
        format: &read_hours,
        min_top: MIN_HOURS,
    };
    line_chart(&frame, labels, &lines)
}

fn rates_svg(m: &FlowMetrics, labels: &[String]) -> String {
    let lines = [
        series(m, "sent back", |r| r.rework_rate),
        series(m, "auto-approved", |r| r.auto_approval_share),
        series(m, "failed", |r| r.failure_rate),
        series(m, "by hand", |r| r.manual_rate),
    ];
    let frame = Frame {
        id: "flow-rates",
        title: "Rework, auto-approval, failure and manual handling by week",
        desc: "Per week: the share of reviewed requests sent back for changes, of approvals made by a policy, and of executions that failed or were handled by hand.",
        format: &read_percent,
        min_top: 100.0,
    };
    line_chart(&frame, labels, &lines)
}

#[component]
pub fn Trend(m: FlowMetrics) -> impl IntoView {
    let labels = week_labels(&m);
    let whose = super::whose(m.trend_type.as_deref(), m.action.as_deref());
    // The wait and touch lines add up every request's hours, so a week's
    // figure reads far above the median lead time beside it: the caption says so.
    let charts = [
        ("Median lead time, by week", lead_svg(&m, &labels)),
        (
            "Wait and touch, by week: the hours of all requests added up",
            time_svg(&m, &labels),
        ),
        (
            "Sent back, auto-approved, failed and handled by hand, by week",
            rates_svg(&m, &labels),
        ),
    ];
    view! {
        <section aria-labelledby="flow-trend-h">
            <h2 id="flow-trend-h">{format!("Trend by week: {whose}")}</h2>
            <div class="charts">
                {charts.into_iter().map(|(caption, svg)| view! { <Chart svg caption /> }).collect_view()}
            </div>
            <details>
                <summary>"Table: the trend by week"</summary>
                <super::tables::TrendTable m />
            </details>
        </section>
    }
}
