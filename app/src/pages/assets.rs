use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::Form;
use leptos_router::hooks::use_query_map;
use slipway_core::views::AssetFilter;

use crate::api::{list_assets, list_types};
use crate::components::{Loading, error_view};

#[component]
pub fn AssetsPage() -> impl IntoView {
    let query = use_query_map();
    let filter = move || {
        query.with(|q| AssetFilter {
            type_name: q.get("type").filter(|t| !t.is_empty()),
            text: q.get("q").filter(|t| !t.is_empty()),
        })
    };
    let assets = Resource::new(filter, list_assets);
    let types = Resource::new(|| (), |_| list_types());
    view! {
        <Title text="Assets" />
        <h1>"Assets"</h1>
        <Form method="GET" action="">
            <div class="filters">
                <div class="field">
                    <label for="asset-type">"Type"</label>
                    <select id="asset-type" name="type">
                        <option value="">"All types"</option>
                        <Suspense fallback=|| ()>
                            {move || Suspend::new(async move {
                                let selected = filter().type_name.unwrap_or_default();
                                types.await.unwrap_or_default().into_iter().map(|t| {
                                    let is_selected = t.name == selected;
                                    view! { <option value=t.name.clone() selected=is_selected>{t.title.clone()}</option> }
                                }).collect_view()
                            })}
                        </Suspense>
                    </select>
                </div>
                <div class="field">
                    <label for="asset-q">"Name or parameter contains"</label>
                    <input id="asset-q" type="search" name="q" value=move || filter().text.unwrap_or_default() />
                </div>
                <button type="submit">"Filter"</button>
            </div>
        </Form>
        <Transition fallback=|| view! { <Loading /> }>
            {move || Suspend::new(async move {
                match assets.await {
                    Ok(assets) if assets.is_empty() => view! { <p class="empty">"No assets match."</p> }.into_any(),
                    Ok(assets) => view! {
                        <table class="list">
                            <thead><tr><th scope="col">"Asset"</th><th scope="col">"Type"</th><th scope="col">"Name"</th><th scope="col">"State"</th><th scope="col">"Request"</th><th scope="col">"Created"</th></tr></thead>
                            <tbody>
                                {assets.into_iter().map(|a| view! {
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
                    }.into_any(),
                    Err(e) => error_view(e),
                }
            })}
        </Transition>
    }
}
