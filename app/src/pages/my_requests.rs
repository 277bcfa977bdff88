use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::my_requests;
use crate::components::tables::RequestTable;
use crate::components::{Loading, error_view};

#[component]
pub fn MyRequestsPage() -> impl IntoView {
    let requests = Resource::new(|| (), |_| my_requests());
    view! {
        <Title text="My requests" />
        <h1>"My requests"</h1>
        <Suspense fallback=|| view! { <Loading /> }>
            {move || Suspend::new(async move {
                match requests.await {
                    Ok(requests) => view! { <RequestTable requests empty="You have no requests yet. Start from the catalog." /> }.into_any(),
                    Err(e) => error_view(e),
                }
            })}
        </Suspense>
    }
}
