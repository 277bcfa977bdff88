use leptos::prelude::*;
use slipway_core::precheck::PrecheckReport;

/// The server's pre-check: the generated name, quota figures, dependencies, risks.
#[component]
pub fn PrecheckPanel(report: PrecheckReport) -> impl IntoView {
    let passed = report.passed();
    view! {
        <section class="precheck" aria-label="Pre-check" aria-live="polite">
            <h2>
                "Pre-check: "
                {if passed {
                    view! { <span class="ok" data-testid="precheck-verdict">"passed"</span> }.into_any()
                } else {
                    view! { <span class="bad" data-testid="precheck-verdict">"blocked"</span> }.into_any()
                }}
            </h2>
            {report.resource_name.clone().map(|name| view! { <p>"Resource name: " <code data-testid="resource-name">{name}</code></p> })}
            <ul class="checks">
                {fields_to_fix(&report).into_iter().map(|text| view! { <li class="bad">{text}</li> }).collect_view()}
                {report.field_errors.iter().filter(|e| e.field.is_empty()).map(|e| view! { <li class="bad">{e.message.clone()}</li> }).collect_view()}
                {report.quotas.iter().map(|q| {
                    let class = if q.ok { "ok" } else { "bad" };
                    let pct = if q.limit > 0 { ((q.used + q.requested) * 100 / q.limit).clamp(0, 100) } else { 100 };
                    view! {
                        <li class=class>
                            <span>{format!("Quota: {}", q.description)}</span>
                            <span class="meter" role="img" aria-label=format!("{} of {} {}", q.used + q.requested, q.limit, q.unit)>
                                <span class="fill" style=format!("width:{pct}%")></span>
                            </span>
                        </li>
                    }
                }).collect_view()}
                {report.dependencies.iter().map(|d| {
                    let class = if d.ok { "ok" } else { "bad" };
                    let text = match &d.found {
                        Some(asset) => format!("Requires {}: found {asset}", d.description),
                        None => format!("Requires {}: missing", d.description),
                    };
                    view! { <li class=class>{text}</li> }
                }).collect_view()}
                {report.risks.iter().map(|r| view! { <li class="risk">{format!("Risk: {r}")}</li> }).collect_view()}
            </ul>
        </section>
    }
}

/// Each field the server refused, with why: the form shows its own checks beside
/// their fields, but some rules only the server can judge (an action's rules
/// against its asset, the team boundary), so the verdict says them in full.
fn fields_to_fix(report: &PrecheckReport) -> Vec<String> {
    let mut seen: Vec<(&str, &str)> = Vec::new();
    for error in report.field_errors.iter().filter(|e| !e.field.is_empty()) {
        let line = (error.field.as_str(), error.message.as_str());
        if !seen.contains(&line) {
            seen.push(line);
        }
    }
    seen.into_iter()
        .map(|(field, message)| format!("To fix: {field} {message}"))
        .collect()
}
