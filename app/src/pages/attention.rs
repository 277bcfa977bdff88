use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::needing_attention;
use crate::components::tables::RequestTable;
use crate::components::{Loading, error_view};

/// The platform team's fallback queue: failed requests and those handled by hand.
#[component]
pub fn AttentionPage() -> impl IntoView {
    let requests = Resource::new(|| (), |_| needing_attention());
    view! {
        <Title text="Needs attention" />
        <h1>"Needs attention"</h1>
        <p class="muted">"Failed requests to retry or take over, and requests handled by hand."</p>
        <Suspense fallback=|| view! { <Loading /> }>
            {move || Suspend::new(async move {
                match requests.await {
                    Ok(requests) => view! { <RequestTable requests show_requester=true empty="Nothing has failed." /> }.into_any(),
                    Err(e) => error_view(e),
                }
            })}
        </Suspense>
    }
}
