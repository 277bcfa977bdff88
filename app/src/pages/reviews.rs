use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::review_queue;
use crate::components::listing::{FilterSet, ListFilters, Pager, empty_text, load_list, url_query};
use crate::components::tables::RequestTable;
use crate::components::{Loading, error_view};

const FILTERS: FilterSet = FilterSet {
    states: &[],
    search: false,
};

#[component]
pub fn ReviewQueuePage() -> impl IntoView {
    let query = url_query(FILTERS);
    let queue = Resource::new(query.clone(), |query| load_list(query, review_queue));
    let form_query = query.clone();
    view! {
        <Title text="Review queue" />
        <h1>"Review queue"</h1>
        <p class="muted">"Requests waiting for your decision, newest first. Your own requests never appear here."</p>
        {move || view! { <ListFilters id="queue" filters=FILTERS query={form_query().unwrap_or_default()} /> }}
        <Transition fallback=|| view! { <Loading /> }>
            {move || {
                let query = query();
                Suspend::new(async move {
                    match (queue.await, query) {
                        (Ok(page), Ok(query)) => {
                            let empty = empty_text(&query, "Nothing waits for you.");
                            view! {
                                <RequestTable requests=page.items show_requester=true empty caption="Requests waiting for review" />
                                <Pager query newer=page.newer older=page.older what="the review queue" />
                            }.into_any()
                        }
                        (Err(e), _) | (_, Err(e)) => error_view(e),
                    }
                })
            }}
        </Transition>
    }
}
