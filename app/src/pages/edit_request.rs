use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;
use slipway_core::ids::RequestId;

use crate::api::{fetch_request, load_action_form, load_form_context};
use crate::components::request_form::{ActionOn, FormMode, RequestForm, SentBack, refilled};
use crate::components::{Loading, error_title, page_error_view};
use crate::error::AppError;

/// The requester's side of "changes requested": the same form, filled with the last
/// revision, submitting a new one.
#[component]
pub fn EditRequestPage() -> impl IntoView {
    let raw_id = crate::components::route_id();
    let id = move || raw_id().map(RequestId);
    let loaded = Resource::new(id, |id| async move {
        let id = id.ok_or_else(|| crate::components::unknown_id("request"))?;
        let detail = fetch_request(id).await?;
        let form = match &detail.action {
            // A day-2 action is revised on the action's own form.
            Some(on) => {
                let ctx = load_action_form(on.asset_id, on.action.name.clone()).await?;
                let last = detail.revisions.last().map(|r| r.params.clone());
                let initial = last.map(|p| {
                    let action_on = ActionOn {
                        asset_id: on.asset_id,
                        action: on.action.name.clone(),
                    };
                    (action_on, own_params(&ctx.form.form_type, &p))
                });
                (ctx.form.form_type, initial)
            }
            None => (
                load_form_context(detail.summary.type_name.clone())
                    .await?
                    .resource_type,
                None,
            ),
        };
        Ok::<_, AppError>((id, detail, form))
    });
    let query = use_query_map();
    view! {
        <Suspense fallback=|| view! { <Loading /> }>
            {move || Suspend::new(async move {
                match loaded.await {
                    Ok((id, detail, (resource_type, acting))) => {
                        let last = detail.revisions.last();
                        let (on, initial) = match acting {
                            Some((on, initial)) => (Some(on), initial),
                            None => (None, last.and_then(|r| r.params.as_object().cloned()).unwrap_or_default()),
                        };
                        let feedback: Vec<_> = detail.decisions.iter().filter(|d| d.decision == "request_changes" && !d.voided).map(|d| (d.decided_by.clone(), d.comment.clone())).collect();
                        let next_revision = detail.summary.revision + 1;
                        let mut mode = FormMode::Resubmit { id, on, revision: detail.summary.revision };
                        // Sent back with a refusal: the values it was posted with,
                        // over the last revision's (whose stored secrets stay).
                        let given: Vec<(String, String)> = query.with_untracked(|q| {
                            q.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
                        });
                        let sent_back = SentBack::from_query(&given, &mode.action(&resource_type.name));
                        // ...and the revision it was opened on: a stale form stays stale.
                        if sent_back.is_some() {
                            mode = mode.opened_on(&given);
                        }
                        let initial = match sent_back {
                            Some(_) => refilled(&resource_type, initial, &given),
                            None => initial,
                        };
                        let page_title = error_title(&format!("Revise request #{id}"), sent_back.is_some());
                        view! {
                            <Title text=page_title />
                            <h1>{format!("Revise request #{id}")}</h1>
                            {feedback.into_iter().map(|(who, comment)| view! {
                                <blockquote class="feedback"><p class="written">{comment}</p><footer>{format!("— {who}, reviewer")}</footer></blockquote>
                            }).collect_view()}
                            <p class="muted">{format!("Submitting creates revision {next_revision}; the reviewer sees only what changed.")}</p>
                            {(!detail.permissions.resubmit).then(|| view! { <p class="notice">"This request is not waiting for changes; the server will refuse a new revision."</p> })}
                            <RequestForm
                                resource_type
                                initial
                                mode
                                submit_label="Resubmit".to_string()
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

/// The parameters of a revision that the action's form has fields for.
fn own_params(
    form_type: &slipway_core::catalog::ResourceType,
    params: &serde_json::Value,
) -> serde_json::Map<String, serde_json::Value> {
    params
        .as_object()
        .map(|all| {
            all.iter()
                .filter(|(name, _)| form_type.has_param(name))
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect()
        })
        .unwrap_or_default()
}
