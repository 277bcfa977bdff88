use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};
use slipway_core::catalog::ResourceType;
use slipway_core::validate::values_from_text;

use crate::api::load_form_context;
use crate::components::request_form::{FormMode, RequestForm, SentBack};
use crate::components::{Loading, error_title, page_error_view};

#[component]
pub fn NewRequestPage() -> impl IntoView {
    let params = use_params_map();
    let type_name = move || params.with(|p| p.get("type_name").unwrap_or_default());
    let context = Resource::new(type_name, load_form_context);
    let query = use_query_map();
    view! {
        <Suspense fallback=|| view! { <Loading /> }>
            {move || Suspend::new(async move {
                match context.await {
                    Ok(ctx) => {
                        let title = ctx.resource_type.title.clone();
                        let given: Vec<(String, String)> = query.with_untracked(|q| {
                            q.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
                        });
                        let mode = FormMode::New { submit_key: ctx.submit_key };
                        let sent_back = SentBack::from_query(&given, &mode.action(&ctx.resource_type.name));
                        let page_title = error_title(&format!("Request a {title}"), sent_back.is_some());
                        let from_link = (sent_back.is_none())
                            .then(|| from_link_notice(&ctx.resource_type, &given))
                            .flatten();
                        view! {
                            <Title text=page_title />
                            <h1>{format!("Request a {title}")}</h1>
                            <p class="muted">{ctx.resource_type.description.clone()}</p>
                            {from_link.map(|text| view! { <p class="notice" data-testid="filled-from-link">{text}</p> })}
                            <RequestForm
                                initial=prefilled(&ctx.resource_type, &given)
                                resource_type=ctx.resource_type
                                mode
                                submit_label="Submit request".to_string()
                                sent_back
                            />
                        }
                        .into_any()
                    }
                    Err(e) => page_error_view(e),
                }
            })}
        </Suspense>
    }
}

/// The form's first values: the type's defaults, and what a link carries for
/// its fields (`/requests/new/k8s-namespace?name=web&team=payments`, as the chat
/// bot sends, or as a refused post comes back). A secret or a key the form has
/// no field for is never taken.
fn prefilled(
    ty: &ResourceType,
    given: &[(String, String)],
) -> serde_json::Map<String, serde_json::Value> {
    let fields: Vec<String> = ty.fields().into_iter().map(|f| f.name).collect();
    let known: Vec<(String, String)> = given
        .iter()
        .filter(|(key, _)| fields.contains(key))
        .cloned()
        .collect();
    values_from_text(ty, &known).0
}

/// Says which fields a link filled in: anyone can make such a link (the chat
/// bot does, and so could someone who wants an admin of their choosing in a
/// colleague's request), so the person submitting is told to check them.
fn from_link_notice(ty: &ResourceType, given: &[(String, String)]) -> Option<String> {
    let fields = ty.fields();
    let linked: Vec<(String, String)> = given
        .iter()
        .filter(|(key, value)| {
            !value.trim().is_empty() && fields.iter().any(|f| !f.secret && f.name == *key)
        })
        .cloned()
        .collect();
    // Only what the form took: a value it could not read is not filled in.
    let taken = values_from_text(ty, &linked).0;
    let labels: Vec<String> = fields
        .iter()
        .filter(|f| linked.iter().any(|(key, _)| *key == f.name) && taken.contains_key(&f.name))
        .map(|f| f.title.clone())
        .collect();
    (!labels.is_empty()).then(|| {
        format!(
            "The link you followed filled in {}; check {} before you submit.",
            labels.join(", "),
            if labels.len() == 1 { "it" } else { "them" }
        )
    })
}
