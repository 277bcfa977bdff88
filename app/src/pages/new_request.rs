use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_navigate, use_params_map};
use serde_json::Value;
use slipway_core::views::RequestDraft;

use crate::api::{load_form_context, submit_request};
use crate::components::request_form::{RequestForm, default_values};
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
                        let submit_key = ctx.submit_key.clone();
                        let type_name = ctx.resource_type.name.clone();
                        let submit = Action::new(move |params: &Value| {
                            let draft = RequestDraft { type_name: type_name.clone(), params: params.clone(), submit_key: submit_key.clone() };
                            async move { submit_request(draft).await }
                        });
                        let navigate = use_navigate();
                        Effect::new(move |_| {
                            if let Some(Ok(id)) = submit.value().get() {
                                navigate(&format!("/requests/{id}"), Default::default());
                            }
                        });
                        let title = ctx.resource_type.title.clone();
                        view! {
                            <Title text=format!("Request a {title}") />
                            <h1>{format!("Request a {title}")}</h1>
                            <p class="muted">{ctx.resource_type.description.clone()}</p>
                            <RequestForm
                                initial=default_values(&ctx.resource_type)
                                resource_type=ctx.resource_type
                                exclude=None
                                submit_label="Submit request"
                                on_submit=Callback::new(move |params| { submit.dispatch(params); })
                                pending=submit.pending().into()
                                server_error=Signal::derive(move || submit.value().get().and_then(|r| r.err()))
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
