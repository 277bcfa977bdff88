use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

use crate::api::load_form_context;
use crate::components::request_form::{FormMode, RequestForm};
use crate::components::{Loading, error_view};

#[component]
pub fn NewRequestPage() -> impl IntoView {
    let params = use_params_map();
    let type_name = move || params.with(|p| p.get("type_name").unwrap_or_default());
    let context = Resource::new(type_name, load_form_context);
    view! {
        <Suspense fallback=|| view! { <Loading /> }>
            {move || Suspend::new(async move {
                match context.await {
                    Ok(ctx) => {
                        let title = ctx.resource_type.title.clone();
                        view! {
                            <Title text=format!("Request a {title}") />
                            <h1>{format!("Request a {title}")}</h1>
                            <p class="muted">{ctx.resource_type.description.clone()}</p>
                            <RequestForm
                                initial=ctx.resource_type.default_params()
                                resource_type=ctx.resource_type
                                mode=FormMode::New { submit_key: ctx.submit_key }
                                submit_label="Submit request".to_string()
                            />
                        }
                        .into_any()
                    }
                    Err(e) => error_view(e),
                }
            })}
        </Suspense>
    }
}
