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
                {fields_to_fix(&report).map(|text| view! { <li class="bad">{text}</li> })}
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

/// One line for the form's field errors, which show in full beside their fields.
fn fields_to_fix(report: &PrecheckReport) -> Option<String> {
    let mut fields: Vec<&str> = report
        .field_errors
        .iter()
        .map(|e| e.field.as_str())
        .filter(|f| !f.is_empty())
        .collect();
    fields.dedup();
    (!fields.is_empty()).then(|| format!("Fields to complete or fix: {}", fields.join(", ")))
}
