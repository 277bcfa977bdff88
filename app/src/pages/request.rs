//! One request: where it stands, its timeline, what it will change, and the actions
//! the viewer may take (review, revise, cancel, retry, take over, resolve).

use std::time::Duration;

use leptos::prelude::*;
use leptos_meta::Title;
use serde_json::Value;
use slipway_core::ids::RequestId;
use slipway_core::state::RequestState;
use slipway_core::views::{RequestDetail, ReviewDecision};

use crate::api::{
    cancel_request, decide, fetch_request, resolve_request, retry_request, take_over_request,
};
use crate::components::change_set::{ChangeSetView, ReviewDiffView, short};
use crate::components::flow::FlowSteps;
use crate::components::precheck::PrecheckPanel;
use crate::components::{Loading, StateBadge, error_view};
use crate::error::AppError;

/// States in which the worker is busy and the page refreshes itself.
fn in_motion(state: RequestState) -> bool {
    matches!(
        state,
        RequestState::Approved | RequestState::Executing | RequestState::Verifying
    )
}

#[component]
pub fn RequestPage() -> impl IntoView {
    let raw_id = crate::components::route_id();
    let id = move || raw_id().map(RequestId);
    let version = RwSignal::new(0u32);
    let detail = Resource::new(
        move || (id(), version.get()),
        |(id, _)| async move {
            match id {
                Some(id) => fetch_request(id).await,
                None => Err(AppError::NotFound("request".into())),
            }
        },
    );
    // While the worker runs the request, look again every second.
    Effect::new(move |_| {
        if let Some(Ok(d)) = detail.get()
            && in_motion(d.summary.state)
        {
            set_timeout(move || version.update(|v| *v += 1), Duration::from_secs(1));
        }
    });
    let refresh = Callback::new(move |_: ()| version.update(|v| *v += 1));
    view! {
        <Transition fallback=|| view! { <Loading /> }>
            {move || Suspend::new(async move {
                match detail.await {
                    Ok(detail) => view! { <RequestView detail refresh /> }.into_any(),
                    Err(e) => error_view(e),
                }
            })}
        </Transition>
    }
}

#[component]
fn RequestView(detail: RequestDetail, refresh: Callback<()>) -> impl IntoView {
    let s = detail.summary.clone();
    let current = detail.revisions.last().cloned();
    let params = current
        .as_ref()
        .map(|r| r.params.clone())
        .unwrap_or(Value::Null);
    view! {
        <Title text=format!("Request #{}", s.id) />
        <div class="request-head">
            <h1>{format!("Request #{}: {} ", s.id, detail.type_title)}<code>{s.resource_name.clone()}</code></h1>
            <StateBadge state=s.state />
        </div>
        <p class="muted">{format!("Requested by {} on {} · revision {}", s.requester, s.created_at, s.revision)}</p>
        <FlowSteps state=s.state />
        {detail.last_error.clone().map(|e| view! { <div class="notice error" role="alert"><strong>"Failed: "</strong>{e}</div> })}
        {detail.manual_owner.clone().map(|o| view! { <div class="notice">{format!("Handled by hand by {o}.")}</div> })}
        {detail.asset_id.map(|a| view! { <div class="notice ok">"Recorded as " <a href=format!("/assets/{a}")>{format!("asset #{a}")}</a></div> })}
        <Actions detail=detail.clone() refresh />
        {detail.review_diff.clone().map(|diff| view! { <ReviewDiffView diff /> })}
        <div class="two-columns">
            <section aria-label="Parameters">
                <h2>"Parameters"</h2>
                <ParamsTable params />
            </section>
            {current.as_ref().map(|r| view! { <PrecheckPanel report=r.precheck.clone() /> })}
        </div>
        {current.map(|r| view! { <ChangeSetView change_set=r.change_set hash=r.change_set_hash /> })}
        <Checks detail=detail.clone() />
        <Revisions detail=detail.clone() />
        <Decisions detail=detail.clone() />
        <Timeline detail />
    }
}

#[component]
fn ParamsTable(params: Value) -> impl IntoView {
    let rows: Vec<(String, String)> = params
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        match v {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        },
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    view! {
        <table class="kv">
            <tbody>
                {rows.into_iter().map(|(k, v)| view! { <tr><th scope="row">{k}</th><td>{v}</td></tr> }).collect_view()}
            </tbody>
        </table>
    }
}

#[component]
fn Actions(detail: RequestDetail, refresh: Callback<()>) -> impl IntoView {
    let id = detail.summary.id;
    let revision = detail.summary.revision;
    let p = detail.permissions.clone();
    let comment = RwSignal::new(String::new());
    let note = RwSignal::new(String::new());
    let review = Action::new(move |decision: &ReviewDecision| {
        let decision = *decision;
        async move { decide(id, revision, decision, comment.get_untracked()).await }
    });
    let operate = Action::new(move |op: &&'static str| {
        let op = *op;
        async move {
            match op {
                "cancel" => cancel_request(id).await,
                "retry" => retry_request(id).await,
                "take_over" => take_over_request(id).await,
                _ => resolve_request(id, note.get_untracked()).await,
            }
        }
    });
    Effect::new(move |_| {
        if matches!(review.value().get(), Some(Ok(())))
            || matches!(operate.value().get(), Some(Ok(())))
        {
            refresh.run(());
        }
    });
    let error = move || {
        review
            .value()
            .get()
            .and_then(|r| r.err())
            .or_else(|| operate.value().get().and_then(|r| r.err()))
    };
    let busy = move || review.pending().get() || operate.pending().get();
    let any = p.review || p.resubmit || p.cancel || p.retry || p.take_over || p.resolve;
    view! {
        <Show when=move || any>
            <section class="actions-panel" aria-label="Actions">
                {p.review.then(|| view! {
                    <div class="review-box">
                        <h2>"Your review"</h2>
                        <p class="muted">{format!("You approve exactly revision {revision}, change set {}.", short(&detail.revisions.last().map(|r| r.change_set_hash.clone()).unwrap_or_default()))}</p>
                        <label for="review-comment">"Comment"</label>
                        <textarea id="review-comment" rows="3" aria-describedby="review-comment-help" prop:value=move || comment.get()
                            on:input=move |ev| comment.set(event_target_value(&ev))></textarea>
                        <p class="help" id="review-comment-help">"Required when you request changes or reject."</p>
                        <p class="field-error" role="alert">{move || error().and_then(|e| e.field("comment"))}</p>
                        <div class="buttons">
                            <button class="primary" disabled=busy on:click=move |_| { review.dispatch(ReviewDecision::Approve); }>"Approve"</button>
                            <button disabled=busy on:click=move |_| { review.dispatch(ReviewDecision::RequestChanges); }>"Request changes"</button>
                            <button class="danger" disabled=busy on:click=move |_| { review.dispatch(ReviewDecision::Reject); }>"Reject"</button>
                        </div>
                    </div>
                })}
                {p.resubmit.then(|| view! { <a class="button primary" href=format!("/requests/{id}/edit")>"Edit and resubmit"</a> })}
                {p.retry.then(|| view! { <button class="primary" disabled=busy on:click=move |_| { operate.dispatch("retry"); }>"Retry"</button> })}
                {p.take_over.then(|| view! { <button disabled=busy on:click=move |_| { operate.dispatch("take_over"); }>"Take over by hand"</button> })}
                {p.resolve.then(|| view! {
                    <div class="resolve-box">
                        <label for="resolve-note">"Resolution note"</label>
                        <textarea id="resolve-note" rows="3" prop:value=move || note.get() on:input=move |ev| note.set(event_target_value(&ev))></textarea>
                        <button class="primary" disabled=busy on:click=move |_| { operate.dispatch("resolve"); }>"Resolve"</button>
                    </div>
                })}
                {p.cancel.then(|| view! { <button class="danger" disabled=busy on:click=move |_| { operate.dispatch("cancel"); }>"Cancel request"</button> })}
                {move || error().filter(|e| e.field("comment").is_none()).map(|e| view! { <p class="notice error" role="alert">{e.to_string()}</p> })}
            </section>
        </Show>
    }
}

#[component]
fn Checks(detail: RequestDetail) -> impl IntoView {
    (!detail.checks.is_empty()).then(|| view! {
        <section aria-label="Acceptance checks">
            <h2>"Acceptance checks"</h2>
            <ul class="checks">
                {detail.checks.into_iter().map(|c| view! {
                    <li class=if c.passed { "ok" } else { "bad" }>
                        {format!("{} — {} ({})", c.description, if c.passed { "passed" } else { "failed" }, c.detail)}
                    </li>
                }).collect_view()}
            </ul>
        </section>
    })
}

/// Every revision the requester submitted, newest first, each with what it asked for.
#[component]
fn Revisions(detail: RequestDetail) -> impl IntoView {
    (detail.revisions.len() > 1).then(|| view! {
        <section aria-label="Revisions">
            <h2>"Revisions"</h2>
            <ul class="revisions">
                {detail.revisions.into_iter().rev().map(|r| view! {
                    <li>
                        <details>
                            <summary>
                                {format!("Revision {} by {} on {} · change set ", r.revision, r.author, r.created_at)}
                                <code>{short(&r.change_set_hash)}</code>
                            </summary>
                            <ParamsTable params=r.params />
                        </details>
                    </li>
                }).collect_view()}
            </ul>
        </section>
    })
}

#[component]
fn Decisions(detail: RequestDetail) -> impl IntoView {
    (!detail.decisions.is_empty()).then(|| view! {
        <section aria-label="Decisions">
            <h2>"Decisions"</h2>
            <ul class="decisions">
                {detail.decisions.into_iter().map(|d| view! {
                    <li class:voided=d.voided>
                        <strong>{d.decided_by.clone()}</strong>{format!(" · {} · revision {} · {}", d.decision.replace('_', " "), d.revision, d.at)}
                        {d.voided.then(|| view! { <span class="muted">" (void: a newer revision replaced it)"</span> })}
                        {(!d.comment.is_empty()).then(|| view! { <p>{d.comment.clone()}</p> })}
                    </li>
                }).collect_view()}
            </ul>
        </section>
    })
}

#[component]
fn Timeline(detail: RequestDetail) -> impl IntoView {
    view! {
        <section aria-label="Timeline">
            <h2>"Timeline"</h2>
            <ol class="timeline">
                {detail.timeline.into_iter().map(|e| view! {
                    <li>
                        <time>{e.at.clone()}</time>
                        <span class="what">{format!("{} by {}", e.action.trim_start_matches("request.").replace('_', " "), e.actor)}</span>
                        {e.from_state.clone().zip(e.to_state.clone()).map(|(f, t)| view! { <span class="muted">{format!(" ({f} → {t})")}</span> })}
                        {(!e.detail.is_empty()).then(|| view! { <p class="detail">{e.detail.clone()}</p> })}
                    </li>
                }).collect_view()}
            </ol>
        </section>
    }
}
