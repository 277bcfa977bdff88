use leptos::prelude::*;
use slipway_core::views::RequestSummary;

use crate::components::StateBadge;

/// A list of requests; `caption` names the table (visually, the page's heading
/// does), so that a screen reader's list of tables tells them apart.
#[component]
pub fn RequestTable(
    requests: Vec<RequestSummary>,
    #[prop(optional)] show_requester: bool,
    empty: String,
    #[prop(into)] caption: String,
) -> impl IntoView {
    if requests.is_empty() {
        return view! { <p class="empty">{empty}</p> }.into_any();
    }
    view! {
        <table class="list">
            <caption class="sr-only">{caption}</caption>
            <thead>
                <tr>
                    <th scope="col">"Request"</th>
                    <th scope="col">"Type"</th>
                    <th scope="col">"Resource"</th>
                    {show_requester.then(|| view! { <th scope="col">"Requester"</th> })}
                    <th scope="col">"Revision"</th>
                    <th scope="col">"State"</th>
                    <th scope="col">"Updated"</th>
                </tr>
            </thead>
            <tbody>
                {requests.into_iter().map(|r| view! {
                    <tr>
                        <td><a href=format!("/requests/{}", r.id)>{format!("#{}", r.id)}</a></td>
                        <td>{r.type_title.clone()}</td>
                        <td><code>{r.resource_name.clone()}</code></td>
                        {show_requester.then(|| view! { <td>{r.requester.clone()}</td> })}
                        <td>{r.revision}</td>
                        <td><StateBadge state=r.state /></td>
                        <td>{r.updated_at.clone()}</td>
                    </tr>
                }).collect_view()}
            </tbody>
        </table>
    }
    .into_any()
}
