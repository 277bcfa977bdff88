use leptos::prelude::*;
use leptos_meta::Title;
use slipway_core::policy::NEEDS_ATTENTION;

use crate::api::needing_attention;
use crate::components::listing::{FilterSet, ListFilters, Pager, empty_text, load_list, url_query};
use crate::components::tables::RequestTable;
use crate::components::{Loading, error_view};

const FILTERS: FilterSet = FilterSet {
    states: &NEEDS_ATTENTION,
    search: false,
};

/// The platform team's fallback queue: failed requests and those handled by hand.
#[component]
pub fn AttentionPage() -> impl IntoView {
    let query = url_query(FILTERS);
    let requests = Resource::new(query.clone(), |query| load_list(query, needing_attention));
    let form_query = query.clone();
    view! {
        <Title text="Needs attention" />
        <h1>"Needs attention"</h1>
        <p class="muted">"Failed requests to retry or take over, and requests handled by hand, newest first."</p>
        {move || view! { <ListFilters id="attention" filters=FILTERS query={form_query().unwrap_or_default()} /> }}
        <Transition fallback=|| view! { <Loading /> }>
            {move || {
                let query = query();
                Suspend::new(async move {
                    match (requests.await, query) {
                        (Ok(page), Ok(query)) => {
                            let empty = empty_text(&query, "Nothing has failed.");
                            view! {
                                <RequestTable requests=page.items show_requester=true empty caption="Requests that need attention" />
                                <Pager query newer=page.newer older=page.older what="requests needing attention" />
                            }.into_any()
                        }
                        (Err(e), _) | (_, Err(e)) => error_view(e),
                    }
                })
            }}
        </Transition>
    }
}
