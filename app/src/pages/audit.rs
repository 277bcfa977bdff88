use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::Form;
use leptos_router::hooks::use_query_map;
use slipway_core::views::AuditFilter;

use crate::api::audit_log;
use crate::components::{Loading, error_view};

#[component]
pub fn AuditPage() -> impl IntoView {
    let query = use_query_map();
    let filter = move || {
        query.with(|q| AuditFilter {
            actor: q.get("actor").filter(|s| !s.is_empty()),
            action: q.get("action").filter(|s| !s.is_empty()),
            target: q.get("target").filter(|s| !s.is_empty()),
        })
    };
    let events = Resource::new(filter, audit_log);
    view! {
        <Title text="Audit log" />
        <h1>"Audit log"</h1>
        <p class="muted">"Every decision and state change, newest first. Moments after it is written, each entry is sealed into the hash chain: its hash covers the one before it, so an edited or removed entry shows, and signed checkpoints kept outside the database show removed newest entries."</p>
        <Form method="GET" action="">
            <div class="filters">
                <div class="field"><label for="audit-actor">"Actor"</label><input id="audit-actor" name="actor" value=move || filter().actor.unwrap_or_default() /></div>
                <div class="field"><label for="audit-action">"Action"</label><input id="audit-action" name="action" placeholder="request.approve" value=move || filter().action.unwrap_or_default() /></div>
                <div class="field"><label for="audit-target">"Target"</label><input id="audit-target" name="target" placeholder="request:12" value=move || filter().target.unwrap_or_default() /></div>
                <button type="submit">"Filter"</button>
            </div>
        </Form>
        <Transition fallback=|| view! { <Loading /> }>
            {move || Suspend::new(async move {
                match events.await {
                    Ok(events) if events.is_empty() => view! { <p class="empty">"No events match."</p> }.into_any(),
                    Ok(events) => view! {
                        <table class="list audit">
                            <thead><tr><th scope="col">"#"</th><th scope="col">"Time"</th><th scope="col">"Actor"</th><th scope="col">"Via"</th><th scope="col">"Action"</th><th scope="col">"Target"</th><th scope="col">"Change"</th><th scope="col">"Detail"</th><th scope="col">"Hash"</th></tr></thead>
                            <tbody>
                                {events.into_iter().map(|e| view! {
                                    <tr>
                                        <td>{e.seq}</td>
                                        <td>{e.at.clone()}</td>
                                        <td>{e.actor.clone()}</td>
                                        <td title=e.trace_id.clone().map(|t| format!("trace {t}")).unwrap_or_default()>
                                            {e.channel.clone().unwrap_or_default()}
                                            {e.client_addr.clone().map(|a| view! { <br /><span class="muted">{a}</span> })}
                                        </td>
                                        <td><code>{e.action.clone()}</code></td>
                                        <td>{e.target.clone()}</td>
                                        <td>{match (e.before.clone(), e.after.clone()) { (Some(b), Some(a)) => format!("{b} → {a}"), (None, Some(a)) => a, (Some(b), None) => b, _ => String::new() }}</td>
                                        <td class="detail">{e.detail.clone()}</td>
                                        <td>{match e.hash.clone() {
                                            Some(hash) => view! { <code title=format!("position {}: {hash}", e.position.unwrap_or_default())>{hash.chars().take(10).collect::<String>()}</code> }.into_any(),
                                            None => view! { <span class="muted" title="written; its place in the hash chain follows in a moment">"sealing…"</span> }.into_any(),
                                        }}</td>
                                    </tr>
                                }).collect_view()}
                            </tbody>
                        </table>
                    }.into_any(),
                    Err(e) => error_view(e),
                }
            })}
        </Transition>
    }
}
