//! A day-2 action on an asset: the generated form of the action's parameters,
//! first filled from the asset, submitting a request against it.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};
use slipway_core::ids::AssetId;

use crate::api::load_action_form;
use crate::components::request_form::{ActionOn, FormMode, RequestForm, SentBack, refilled};
use crate::components::{Loading, error_title, page_error_view};

#[component]
pub fn AssetActionPage() -> impl IntoView {
    let params = use_params_map();
    let target = move || {
        params.with(|p| {
            let id = p.get("id").and_then(|s| s.parse::<i64>().ok());
            (id.map(AssetId), p.get("action").unwrap_or_default())
        })
    };
    let context = Resource::new(target, |(id, action)| async move {
        let id = id.ok_or_else(|| crate::components::unknown_id("asset"))?;
        load_action_form(id, action).await
    });
    let query = use_query_map();
    view! {
        <Suspense fallback=|| view! { <Loading /> }>
            {move || Suspend::new(async move {
                match context.await {
                    Ok(ctx) => {
                        let form = ctx.form;
                        let heading = format!("{}: {}", form.action.title, form.asset.name);
                        let on = ActionOn {
                            asset_id: form.asset.id,
                            action: form.action.name.clone(),
                        };
                        let mode = FormMode::Act { on, submit_key: ctx.submit_key };
                        // Sent back with a refusal: the values it was posted with.
                        let given: Vec<(String, String)> = query.with_untracked(|q| {
                            q.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
                        });
                        let sent_back = SentBack::from_query(&given, &mode.action(&form.form_type.name));
                        let initial = match sent_back {
                            Some(_) => refilled(&form.form_type, form.initial, &given),
                            None => form.initial,
                        };
                        let page_title = error_title(&heading, sent_back.is_some());
                        view! {
                            <Title text=page_title />
                            <h1>{heading}</h1>
                            <p class="muted">{form.action.description.clone()}" "
                                <a href=format!("/assets/{}", form.asset.id)>{format!("Asset #{}", form.asset.id)}</a></p>
                            {form.action.retires.then(|| view! {
                                <p class="notice">"Completing this action removes the resource and retires the asset; its history is kept."</p>
                            })}
                            <RequestForm
                                initial
                                resource_type=form.form_type
                                mode
                                submit_label=format!("Ask for: {}", form.action.title)
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
