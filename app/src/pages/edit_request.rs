use leptos::prelude::*;
use leptos_meta::Title;
use slipway_core::ids::RequestId;

use crate::api::{fetch_request, load_form_context};
use crate::components::request_form::{FormMode, RequestForm};
use crate::components::{Loading, error_view};
use crate::error::AppError;

/// The requester's side of "changes requested": the same form, filled with the last
/// revision, submitting a new one.
#[component]
pub fn EditRequestPage() -> impl IntoView {
    let raw_id = crate::components::route_id();
    let id = move || raw_id().map(RequestId);
    let loaded = Resource::new(id, |id| async move {
        let id = id.ok_or_else(|| AppError::NotFound("request".into()))?;
        let detail = fetch_request(id).await?;
        let ctx = load_form_context(detail.summary.type_name.clone()).await?;
        Ok::<_, AppError>((id, detail, ctx))
    });
    view! {
        <Suspense fallback=|| view! { <Loading /> }>
            {move || Suspend::new(async move {
                match loaded.await {
                    Ok((id, detail, ctx)) => {
                        let last = detail.revisions.last();
                        let initial = last.and_then(|r| r.params.as_object().cloned()).unwrap_or_default();
                        let feedback: Vec<_> = detail.decisions.iter().filter(|d| d.decision == "request_changes" && !d.voided).map(|d| (d.decided_by.clone(), d.comment.clone())).collect();
                        let next_revision = detail.summary.revision + 1;
                        view! {
                            <Title text=format!("Revise request #{id}") />
                            <h1>{format!("Revise request #{id}")}</h1>
                            {feedback.into_iter().map(|(who, comment)| view! {
                                <blockquote class="feedback"><p>{comment}</p><footer>{format!("— {who}, reviewer")}</footer></blockquote>
                            }).collect_view()}
                            <p class="muted">{format!("Submitting creates revision {next_revision}; the reviewer sees only what changed.")}</p>
                            {(!detail.permissions.resubmit).then(|| view! { <p class="notice">"This request is not waiting for changes; the server will refuse a new revision."</p> })}
                            <RequestForm
                                resource_type=ctx.resource_type
                                initial
                                mode=FormMode::Resubmit { id }
                                submit_label="Resubmit".to_string()
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
