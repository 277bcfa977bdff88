use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::review_queue;
use crate::components::tables::RequestTable;
use crate::components::{Loading, error_view};

#[component]
pub fn ReviewQueuePage() -> impl IntoView {
    let queue = Resource::new(|| (), |_| review_queue());
    view! {
        <Title text="Review queue" />
        <h1>"Review queue"</h1>
        <p class="muted">"Requests waiting for your decision, oldest first. Your own requests never appear here."</p>
        <Suspense fallback=|| view! { <Loading /> }>
            {move || Suspend::new(async move {
                match queue.await {
                    Ok(requests) => view! { <RequestTable requests show_requester=true empty="Nothing waits for you." /> }.into_any(),
                    Err(e) => error_view(e),
                }
            })}
        </Suspense>
    }
}
