//! One request: where it stands, its timeline, what it will change, and the actions
//! the viewer may take (review, revise, cancel, retry, take over, resolve).

use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_meta::Title;
use serde_json::Value;
use slipway_core::ids::RequestId;
use slipway_core::state::RequestState;
use slipway_core::validate::MAX_NOTE_CHARS;
use slipway_core::views::{ParamTitle, RequestDetail, in_schema_order, param_text, title_of};

use crate::api::{
    CancelRequest, Decide, ResolveRequest, RetryRequest, TakeOverRequest, fetch_request,
    request_drafts,
};
use crate::components::change_set::{ChangeSetView, DeployedDiffView, ReviewDiffView, short};
use crate::components::flow::FlowSteps;
use crate::components::live_progress::{LiveSteps, StepsList, in_motion};
use crate::components::precheck::PrecheckPanel;
use crate::components::{
    Loading, StateBadge, error_title, page_error_view, refusal_notice, sent_back_by,
};

#[component]
pub fn RequestPage() -> impl IntoView {
    let raw_id = crate::components::route_id();
    let draft_id = raw_id.clone();
    let detail = Resource::new(
        move || raw_id().map(RequestId),
        |id| async move {
            match id {
                Some(id) => fetch_request(id).await,
                None => Err(crate::components::unknown_id("request")),
            }
        },
    );
    // A refused review or resolution comes back here through a redirect: what was
    // typed is put back into its box.
    let drafts = Resource::new(
        move || draft_id().map(RequestId),
        |id| async move {
            match id {
                Some(id) => request_drafts(id).await.unwrap_or_default(),
                None => Drafts::default(),
            }
        },
    );
    view! {
        <Suspense fallback=|| view! { <Loading /> }>
            {move || Suspend::new(async move {
                let drafts = drafts.await;
                match detail.await {
                    Ok(detail) => view! { <RequestView detail drafts /> }.into_any(),
                    Err(e) => page_error_view(e),
                }
            })}
        </Suspense>
    }
}

/// The review comment and the resolution note a refused form held.
type Drafts = (String, String);

#[component]
fn RequestView(detail: RequestDetail, drafts: Drafts) -> impl IntoView {
    let s = detail.summary.clone();
    let current = detail.revisions.last().cloned();
    let params = current
        .as_ref()
        .map(|r| r.params.clone())
        .unwrap_or(Value::Null);
    // Came back with a refusal of one of its forms (posted without script).
    let refused = sent_back_by(&[
        Decide::PATH,
        CancelRequest::PATH,
        RetryRequest::PATH,
        TakeOverRequest::PATH,
        ResolveRequest::PATH,
    ]);
    view! {
        <Title text=error_title(&format!("Request #{}", s.id), refused) />
        <div class="request-head">
            <h1>{format!("Request #{}: {} ", s.id, detail.type_title)}<code>{s.resource_name.clone()}</code></h1>
            <StateBadge state=s.state />
        </div>
        <p class="muted">{format!("Requested by {} on {} · revision {}", s.requester, s.created_at, s.revision)}</p>
        <FlowSteps state=s.state />
        {detail.last_error.clone().map(|e| view! { <div class="notice error" role="alert"><strong>"Failed: "</strong>{e}</div> })}
        {detail.manual_owner.clone().map(|o| view! { <div class="notice">{format!("Handled by hand by {o}.")}</div> })}
        {detail.closes_unrevised_at.clone().map(|at| view! { <div class="notice" data-testid="closes-unrevised">{format!("Changes were requested. Unless it is revised by {at}, this request is closed then, and its name and quota are freed.")}</div> })}
        {match &detail.action {
            Some(on) => view! { <div class="notice" data-testid="acts-on">{format!("{}: a day-2 action on ", on.action.title)}<a href=format!("/assets/{}", on.asset_id)>{format!("asset #{} {}", on.asset_id, on.asset_name)}</a></div> }.into_any(),
            None => detail.asset_id.map(|a| view! { <div class="notice ok">"Recorded as " <a href=format!("/assets/{a}")>{format!("asset #{a}")}</a></div> }).into_any(),
        }}
        <Actions detail=detail.clone() drafts />
        {detail.review_diff.clone().map(|diff| view! { <ReviewDiffView diff titles=detail.param_titles.clone() /> })}
        {detail.action.clone().and_then(|on| on.deployed_diff.map(|diff| view! { <DeployedDiffView diff asset_name=on.asset_name titles=detail.param_titles.clone() /> }))}
        <div class="two-columns">
            <section aria-label="Parameters">
                <h2>"Parameters"</h2>
                <ParamsTable params titles=detail.param_titles.clone() caption="The request's parameters".to_string() />
            </section>
            {current.as_ref().map(|r| view! { <PrecheckPanel report=r.precheck.clone() /> })}
        </div>
        {current.map(|r| view! {
            <ChangeSetView change_set=r.change_set hash=r.change_set_hash />
            {(!r.catalog_version.is_empty()).then(|| view! {
                <p class="muted" data-testid="catalog-version">"Rendered by catalog version " <code>{r.catalog_version}</code></p>
            })}
        })}
        // A cancelled request's job may still be stopping: the page follows it.
        {if in_motion(s.state) || detail.job.as_ref().is_some_and(|job| job.is_unfinished()) {
            view! { <LiveSteps id=s.id state=s.state steps=detail.steps.clone() after=detail.progress_cursor /> }.into_any()
        } else {
            view! { <StepsList steps=detail.steps.clone() /> }.into_any()
        }}
        {detail.job.as_ref().map(|job| view! { <p class="muted" data-testid="job-runs">{job.summary()}</p> })}
        <Checks detail=detail.clone() />
        <GeneratedSecrets detail=detail.clone() />
        <Revisions detail=detail.clone() />
        <Decisions detail=detail.clone() />
        <Timeline detail />
    }
}

/// A request's parameters, each under its title from the schema; `caption` names
/// the table (a page may show several: the current ones, each revision's).
#[component]
pub fn ParamsTable(params: Value, titles: Vec<ParamTitle>, caption: String) -> impl IntoView {
    let rows: Vec<(String, String)> = params
        .as_object()
        .map(|m| {
            in_schema_order(&titles, m)
                .into_iter()
                .map(|(k, v)| (title_of(&titles, k).to_string(), param_text(v)))
                .collect()
        })
        .unwrap_or_default();
    view! {
        <table class="kv">
            <caption class="sr-only">{caption}</caption>
            <tbody>
                {rows.into_iter().map(|(k, v)| view! { <tr><th scope="row">{k}</th><td>{v}</td></tr> }).collect_view()}
            </tbody>
        </table>
    }
}

/// What the viewer may do now. Plain forms: they work before (and without) any
/// script, and the server sends the browser back here, where a refused action shows
/// its error.
#[component]
fn Actions(detail: RequestDetail, drafts: Drafts) -> impl IntoView {
    let (comment_draft, note_draft) = drafts;
    let id = detail.summary.id;
    let revision = detail.summary.revision;
    let p = detail.permissions.clone();
    let review = ServerAction::<Decide>::new();
    let cancel = ServerAction::<CancelRequest>::new();
    let retry = ServerAction::<RetryRequest>::new();
    let take_over = ServerAction::<TakeOverRequest>::new();
    let resolve = ServerAction::<ResolveRequest>::new();
    let refused = [
        review.value(),
        cancel.value(),
        retry.value(),
        take_over.value(),
        resolve.value(),
    ]
    .into_iter()
    .find_map(|value| value.get_untracked().and_then(Result::err));
    let comment_error = refused.as_ref().and_then(|e| e.field("comment"));
    let note_error = refused.as_ref().and_then(|e| e.field("note"));
    let other_error = refused.filter(|e| e.field("comment").is_none() && e.field("note").is_none());
    // A refused form comes back as a new page: the focus starts at the field to
    // fix, whose error it then reads out with it.
    let (comment_invalid, note_invalid) = (comment_error.is_some(), note_error.is_some());
    let hash = detail
        .revisions
        .last()
        .map(|r| r.change_set_hash.clone())
        .unwrap_or_default();
    // A refusal shows even when nothing is left to do (a request cancelled meanwhile).
    let any = p.review
        || p.resubmit
        || p.cancel
        || p.retry
        || p.take_over
        || p.resolve
        || p.abandon
        || other_error.is_some();
    any.then(|| view! {
        <section class="actions-panel" aria-label="Actions">
            // A refusal that names neither box: first in the panel, and where the
            // focus starts on the page it came back to.
            {other_error.map(|e| refusal_notice(&e, "actions-error"))}
            {p.review.then(|| view! {
                <ActionForm action=review attr:class="review-box">
                    <h2>"Your review"</h2>
                    <p class="muted">{if p.approve {
                        format!("You approve exactly revision {revision}, change set {}.", short(&hash))
                    } else {
                        "No role reviews this request any more (its type or action left the catalog): it can only be rejected.".to_string()
                    }}</p>
                    {hidden_id(id)}
                    <input type="hidden" name="revision" value=revision.to_string() />
                    <label for="review-comment">"Comment"</label>
                    <textarea id="review-comment" name="comment" rows="3" maxlength=MAX_NOTE_CHARS aria-describedby="review-comment-help review-comment-error" aria-invalid=comment_invalid.then_some("true") autofocus=comment_invalid>{comment_draft}</textarea>
                    <p class="help" id="review-comment-help">"Required when you request changes or reject."</p>
                    <p class="field-error" id="review-comment-error" role="alert">{comment_error}</p>
                    <div class="buttons">
                        {p.approve.then(|| view! { <button type="submit" class="primary" name="decision" value="approve">"Approve"</button> })}
                        {p.request_changes.then(|| view! { <button type="submit" name="decision" value="request_changes">"Request changes"</button> })}
                        <button type="submit" class="danger" name="decision" value="reject">"Reject"</button>
                    </div>
                </ActionForm>
            })}
            {p.resubmit.then(|| view! { <a class="button primary" href=format!("/requests/{id}/edit")>"Edit and resubmit"</a> })}
            {p.retry.then(|| view! { <ActionForm action=retry>{hidden_id(id)}<button type="submit" class="primary">"Retry"</button></ActionForm> })}
            {p.take_over.then(|| view! { <ActionForm action=take_over>{hidden_id(id)}<button type="submit">"Take over by hand"</button></ActionForm> })}
            {(p.resolve || p.abandon).then(|| view! {
                <ActionForm action=resolve attr:class="resolve-box">
                    {hidden_id(id)}
                    <label for="resolve-note">"Resolution note"</label>
                    <textarea id="resolve-note" name="note" rows="3" maxlength=MAX_NOTE_CHARS required=true aria-describedby="resolve-note-help resolve-note-error" aria-invalid=note_invalid.then_some("true") autofocus=note_invalid>{note_draft}</textarea>
                    <p class="help" id="resolve-note-help">
                        "Required: what was done by hand. Resolve when the resource exists now: it is recorded as an asset. Close without an asset when nothing was made, or what a failed run left is cleaned up: its quota and name are freed."
                    </p>
                    <p class="field-error" id="resolve-note-error" role="alert">{note_error}</p>
                    <div class="buttons">
                        {p.resolve.then(|| view! { <button type="submit" class="primary" name="outcome" value="resolve">"Resolve"</button> })}
                        {p.abandon.then(|| view! { <button type="submit" class="danger" name="outcome" value="abandon">"Close without an asset"</button> })}
                    </div>
                </ActionForm>
            })}
            {p.cancel.then(|| cancel_form(cancel, id, detail.summary.state))}
        </section>
    })
}

/// Cancelling before anything ran simply ends the request; while it runs, it stops
/// the job, and the form says what that leaves behind.
fn cancel_form(
    cancel: ServerAction<CancelRequest>,
    id: RequestId,
    state: RequestState,
) -> impl IntoView {
    let running = matches!(state, RequestState::Executing | RequestState::Verifying);
    view! {
        <ActionForm action=cancel>
            {hidden_id(id)}
            {running.then(|| view! {
                <p class="help" id="cancel-help">
                    "Stops the running step now. Steps that already ran stay in place, so the request fails into manual handling, where the platform team retries it or cleans up."
                </p>
            })}
            <button type="submit" class="danger" aria-describedby=running.then_some("cancel-help")>
                {if running { "Stop and cancel" } else { "Cancel request" }}
            </button>
        </ActionForm>
    }
}

/// Names the request in an action's form.
fn hidden_id(id: RequestId) -> impl IntoView {
    view! { <input type="hidden" name="id" value=id.to_string() /> }
}

#[component]
fn Checks(detail: RequestDetail) -> impl IntoView {
    (!detail.checks.is_empty()).then(|| view! {
        <section aria-label="Acceptance checks">
            <h2>"Acceptance checks"</h2>
            <ul class="checks">
                {detail.checks.into_iter().map(|c| {
                    let verdict = if c.passed { "passed" } else { "failed" };
                    let tries = if c.tries == 1 { "1 try".to_string() } else { format!("{} tries", c.tries) };
                    let when = format!(
                        "Revision {}, verification {}: {} check · {} in {:.1} s · {}",
                        c.revision, c.attempt, c.kind, tries, c.duration_ms as f64 / 1000.0, c.at
                    );
                    view! {
                        <li class=if c.passed { "ok" } else { "bad" }>
                            {format!("{} — {verdict} ({})", c.description, c.detail)}
                            <br/><small>{when}</small>
                            {(!c.target.is_empty()).then(|| view! { <br/><small><code>{c.target}</code></small> })}
                        </li>
                    }
                }).collect_view()}
            </ul>
        </section>
    })
}

/// Secrets Slipway made for the request, each shown once to its requester: a
/// plain form whose answer is a page of its own (see the server's reveal page).
#[component]
fn GeneratedSecrets(detail: RequestDetail) -> impl IntoView {
    let id = detail.summary.id;
    (!detail.generated_secrets.is_empty()).then(|| view! {
        <section aria-label="Generated secrets">
            <h2>"Generated secrets"</h2>
            <ul class="generated-secrets">
                {detail.generated_secrets.into_iter().map(|g| {
                    let help = format!("reveal-{}-help", g.name);
                    view! {
                        <li>
                            <strong>{g.title.clone()}</strong>
                            {g.description.map(|d| view! { <p class="help">{d}</p> })}
                            {match g.unavailable {
                                Some(why) => view! { <p class="muted">{why}</p> }.into_any(),
                                None => view! {
                                    <form method="post" action=format!("/requests/{id}/secrets/{}/reveal", g.name)>
                                        <p class="help" id=help.clone()>"Shown one time only, on a page of its own: have your password manager ready."</p>
                                        <button type="submit" class="primary" aria-describedby=help>{format!("Show the {} once", g.title.to_lowercase())}</button>
                                    </form>
                                }.into_any(),
                            }}
                        </li>
                    }
                }).collect_view()}
            </ul>
        </section>
    })
}

/// Every revision the requester submitted, newest first, each with what it asked for.
#[component]
fn Revisions(detail: RequestDetail) -> impl IntoView {
    let titles = detail.param_titles.clone();
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
                            <ParamsTable params=r.params titles=titles.clone() caption=format!("Parameters of revision {}", r.revision) />
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
                        {(!d.comment.is_empty()).then(|| view! { <p class="written">{d.comment.clone()}</p> })}
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
