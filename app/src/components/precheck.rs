use leptos::prelude::*;
use slipway_core::precheck::PrecheckReport;

/// The server's pre-check: the generated name, quota figures, dependencies, risks.
/// No live region: the request form re-draws it after each pause in typing, and
/// says its verdict in a status line of its own when that changes.
#[component]
pub fn PrecheckPanel(report: PrecheckReport) -> impl IntoView {
    let passed = report.passed();
    view! {
        <section class="precheck" aria-label="Pre-check">
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
                            <span>{format!("Quota: {}: {}", q.description, if q.ok { "within quota" } else { "over quota" })}</span>
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

/// The verdict in a few words: passed, or blocked and by how many problems.
pub fn verdict_text(report: &PrecheckReport) -> String {
    if report.passed() {
        return "Pre-check passed".to_string();
    }
    let problems = fields_to_fix(report).len()
        + report
            .field_errors
            .iter()
            .filter(|e| e.field.is_empty())
            .count()
        + report.quotas.iter().filter(|q| !q.ok).count()
        + report.dependencies.iter().filter(|d| !d.ok).count();
    match problems {
        1 => "Pre-check blocked: 1 problem".to_string(),
        n => format!("Pre-check blocked: {n} problems"),
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

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_core::validate::FieldError;

    #[test]
    fn the_verdict_says_passed_or_how_many_problems_block_it() {
        let mut report = PrecheckReport {
            resource_name: None,
            field_errors: Vec::new(),
            quotas: Vec::new(),
            dependencies: Vec::new(),
            risks: vec!["a risk never blocks".into()],
        };
        assert_eq!(verdict_text(&report), "Pre-check passed");
        report
            .field_errors
            .push(FieldError::new("name", "is taken"));
        assert_eq!(verdict_text(&report), "Pre-check blocked: 1 problem");
        // The same problem twice is listed, and counted, once.
        report
            .field_errors
            .push(FieldError::new("name", "is taken"));
        report
            .field_errors
            .push(FieldError::new("", "the quota is used up"));
        assert_eq!(verdict_text(&report), "Pre-check blocked: 2 problems");
    }
}
