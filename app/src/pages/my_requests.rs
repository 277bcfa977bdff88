use leptos::prelude::*;
use leptos_meta::Title;
use slipway_core::state::RequestState;

use crate::api::my_requests;
use crate::components::listing::{FilterSet, ListFilters, Pager, empty_text, load_list, url_query};
use crate::components::tables::RequestTable;
use crate::components::{Loading, error_view};

const FILTERS: FilterSet = FilterSet {
    states: &RequestState::ALL,
    search: false,
};

#[component]
pub fn MyRequestsPage() -> impl IntoView {
    let query = url_query(FILTERS);
    let requests = Resource::new(query.clone(), |query| load_list(query, my_requests));
    let form_query = query.clone();
    view! {
        <Title text="My requests" />
        <h1>"My requests"</h1>
        <p class="muted">"Everything you asked for, newest first."</p>
        {move || view! { <ListFilters id="mine" filters=FILTERS query={form_query().unwrap_or_default()} /> }}
        <Transition fallback=|| view! { <Loading /> }>
            {move || {
                let query = query();
                Suspend::new(async move {
                    match (requests.await, query) {
                        (Ok(page), Ok(query)) => {
                            let empty = empty_text(&query, "You have no requests yet. Start from the catalog.");
                            view! {
                                <RequestTable requests=page.items empty caption="My requests" />
                                <Pager query newer=page.newer older=page.older what="requests" />
                            }.into_any()
                        }
                        (Err(e), _) | (_, Err(e)) => error_view(e),
                    }
                })
            }}
        </Transition>
    }
}
