use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::list_assets;
use crate::components::listing::{FilterSet, ListFilters, Pager, empty_text, load_list, url_query};
use crate::components::{Loading, error_view};

const FILTERS: FilterSet = FilterSet {
    states: &[],
    search: true,
};

#[component]
pub fn AssetsPage() -> impl IntoView {
    let query = url_query(FILTERS);
    let assets = Resource::new(query.clone(), |query| load_list(query, list_assets));
    let form_query = query.clone();
    view! {
        <Title text="Assets" />
        <h1>"Assets"</h1>
        <p class="muted">"Every resource Slipway made, newest first."</p>
        {move || view! { <ListFilters id="assets" filters=FILTERS query={form_query().unwrap_or_default()} /> }}
        <Transition fallback=|| view! { <Loading /> }>
            {move || {
                let query = query();
                Suspend::new(async move {
                    match (assets.await, query) {
                        (Ok(page), Ok(query)) if page.items.is_empty() => {
                            let empty = empty_text(&query, "No assets yet.");
                            view! {
                                <p class="empty">{empty}</p>
                                <Pager query newer=page.newer older=page.older what="assets" />
                            }.into_any()
                        }
                        (Ok(page), Ok(query)) => view! {
                            <table class="list">
                                <caption class="sr-only">"Assets"</caption>
                                <thead><tr><th scope="col">"Asset"</th><th scope="col">"Type"</th><th scope="col">"Name"</th><th scope="col">"State"</th><th scope="col">"Request"</th><th scope="col">"Created"</th></tr></thead>
                                <tbody>
                                    {page.items.into_iter().map(|a| view! {
                                        <tr>
                                            <td><a href=format!("/assets/{}", a.id)>{format!("#{}", a.id)}</a></td>
                                            <td>{a.type_name.clone()}</td>
                                            <td><code>{a.name.clone()}</code></td>
                                            <td>{a.state.clone()}</td>
                                            <td><a href=format!("/requests/{}", a.request_id)>{format!("#{}", a.request_id)}</a></td>
                                            <td>{a.created_at.clone()}</td>
                                        </tr>
                                    }).collect_view()}
                                </tbody>
                            </table>
                            <Pager query newer=page.newer older=page.older what="assets" />
                        }.into_any(),
                        (Err(e), _) | (_, Err(e)) => error_view(e),
                    }
                })
            }}
        </Transition>
    }
}
