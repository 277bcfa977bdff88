use leptos::prelude::*;
use leptos_meta::Title;
use slipway_core::listing::{ListQuery, Param};
use slipway_core::views::AuditEntry;

use crate::api::audit_log;
use crate::components::listing::{Pager, empty_text, load_list, url_query_of};
use crate::components::{Loading, error_view};

const AUDIT_PARAMS: &[Param] = &[
    Param::Actor,
    Param::Action,
    Param::Target,
    Param::CreatedFrom,
    Param::CreatedTo,
    Param::Before,
    Param::After,
    Param::Limit,
];

#[component]
pub fn AuditPage() -> impl IntoView {
    let query = url_query_of(AUDIT_PARAMS.to_vec());
    let events = Resource::new(query.clone(), |query| load_list(query, audit_log));
    let form_query = query.clone();
    view! {
        <Title text="Audit log" />
        <h1>"Audit log"</h1>
        <p class="muted">"Every decision and state change, newest first. Moments after it is written, each entry is sealed into the hash chain: its hash covers the one before it, so an edited or removed entry shows, and signed checkpoints kept outside the database show removed newest entries."</p>
        {move || view! { <AuditFilters query=form_query().unwrap_or_default() /> }}
        <Transition fallback=|| view! { <Loading /> }>
            {move || {
                let query = query();
                Suspend::new(async move {
                    match (events.await, query) {
                        (Ok(page), Ok(query)) if page.items.is_empty() => {
                            let empty = empty_text(&query, "No events yet.");
                            view! {
                                <p class="empty">{empty}</p>
                                <Pager query newer=page.newer older=page.older what="the audit log" />
                            }.into_any()
                        }
                        (Ok(page), Ok(query)) => view! {
                            <AuditTable events=page.items />
                            <Pager query newer=page.newer older=page.older what="the audit log" />
                        }.into_any(),
                        (Err(e), _) | (_, Err(e)) => error_view(e),
                    }
                })
            }}
        </Transition>
    }
}

/// The audit log's filters: a GET form, so they land in the URL.
#[component]
fn AuditFilters(query: ListQuery) -> impl IntoView {
    let f = query.filter.clone();
    let text = |value: &Option<String>| value.clone().unwrap_or_default();
    let day = |value: Option<slipway_core::listing::Day>| {
        value.map(|d| d.to_string()).unwrap_or_default()
    };
    view! {
        <form method="get" action="" class="filters" role="search" aria-label="Filters">
            <div class="field"><label for="audit-actor">"Actor"</label><input id="audit-actor" name="actor" value=text(&f.actor) /></div>
            <div class="field"><label for="audit-action">"Action"</label><input id="audit-action" name="action" placeholder="request.approve" aria-describedby="audit-action-help" value=text(&f.action) /><span class="help" id="audit-action-help">"e.g. request.approve"</span></div>
            <div class="field"><label for="audit-target">"Target"</label><input id="audit-target" name="target" placeholder="request:12" aria-describedby="audit-target-help" value=text(&f.target) /><span class="help" id="audit-target-help">"kind:id, e.g. request:12"</span></div>
            <div class="field"><label for="audit-from">"From"</label><input id="audit-from" type="date" name="created_from" value=day(f.created_from) /></div>
            <div class="field"><label for="audit-to">"To"</label><input id="audit-to" type="date" name="created_to" value=day(f.created_to) /></div>
            <button type="submit">"Filter"</button>
            {(!query.filter.is_empty()).then(|| view! { <a class="clear" href="?">"Clear filters"</a> })}
        </form>
    }
}

#[component]
fn AuditTable(events: Vec<AuditEntry>) -> impl IntoView {
    view! {
        // Keyboard users scroll a table wider than the screen with the arrow keys.
        <div class="table-scroll" tabindex="0" role="region" aria-label="Audit events">
        <table class="list audit">
            <caption class="sr-only">"Audit events, newest first"</caption>
            <thead><tr><th scope="col">"#"</th><th scope="col">"Time"</th><th scope="col">"Actor"</th><th scope="col">"Via"</th><th scope="col">"Action"</th><th scope="col">"Target"</th><th scope="col">"Change"</th><th scope="col">"Detail"</th><th scope="col">"Hash"</th></tr></thead>
            <tbody>
                {events.into_iter().map(|e| view! {
                    <tr>
                        <td>{e.seq}</td>
                        <td>{e.at.clone()}</td>
                        <td>{e.actor.clone()}</td>
                        <td>
                            {e.channel.clone().unwrap_or_default()}
                            {e.channel_user.clone().or(e.client_addr.clone()).map(|a| view! { <br /><span class="muted">{a}</span> })}
                            // As text, not in a tooltip that neither a keyboard nor a touch reaches.
                            {e.trace_id.clone().map(|t| view! {
                                <details class="cell-more"><summary>"Trace"</summary><code>{t}</code></details>
                            })}
                        </td>
                        <td><code>{e.action.clone()}</code></td>
                        <td>{e.target.clone()}</td>
                        <td>{match (e.before.clone(), e.after.clone()) { (Some(b), Some(a)) => format!("{b} → {a}"), (None, Some(a)) => a, (Some(b), None) => b, _ => String::new() }}</td>
                        <td class="detail">{e.detail.clone()}</td>
                        <td>{match e.hash.clone() {
                            Some(hash) => view! {
                                <details class="cell-more">
                                    <summary><code>{hash.chars().take(10).collect::<String>()}</code><span class="sr-only">" (the full hash)"</span></summary>
                                    <span>{format!("Position {} in the chain: ", e.position.unwrap_or_default())}</span><code>{hash}</code>
                                </details>
                            }.into_any(),
                            None => view! {
                                <span class="muted">"sealing…"<span class="sr-only">" written; its place in the hash chain follows in a moment"</span></span>
                            }.into_any(),
                        }}</td>
                    </tr>
                }).collect_view()}
            </tbody>
        </table>
        </div>
    }
}
