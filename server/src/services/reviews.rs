//! The review queue and review decisions, with segregation of duties.

use crate::services::Caller;
use slipway_core::ids::RequestId;
use slipway_core::listing::{ListFilter, ListPage, PageRequest};
use slipway_core::policy::{self, Verb};
use slipway_core::state::{Action, RequestState};
use slipway_core::validate::FieldError;
use slipway_core::views::{RequestSummary, ReviewDecision};
use tracing::instrument;

use super::{
    Actor, ServiceError, ServiceResult, authorize, load_request, record, request_type, transition,
    type_facts,
};
use crate::services::requests::{approve_and_enqueue, visible_page};
use crate::state::AppState;
use crate::storage::requests::{NewDecision, RequestList};
use crate::storage::{self};

/// Whether `user` reviews anything here: asked first, so that someone who
/// does not is told so before anything about the query they sent.
pub fn may_open_queue(state: &AppState, user: &Caller) -> ServiceResult<()> {
    policy::may_open_review_queue(user, type_facts(state)).map_err(ServiceError::refused)
}

/// Requests waiting for this reviewer, newest first: in review, of a type they may
/// approve, not their own. Whoever holds the role some type's review asks for opens
/// it. The SQL reads only requests in review that their teams offer or ask for; the
/// policy decides on each.
pub async fn queue(
    state: &AppState,
    user: &Caller,
    filter: &ListFilter,
    page: PageRequest,
) -> ServiceResult<ListPage<RequestSummary>> {
    may_open_queue(state, user)?;
    let list = RequestList {
        filter: ListFilter {
            state: None,
            ..filter.clone()
        },
        not_requester: Some(user.id),
        states: &[RequestState::InReview],
        reach: policy::review_reach(user, type_facts(state)),
        ..RequestList::default()
    };
    // Whoever may approve a request may reject it; an admin may also reject
    // one that no role reviews any more (its type left the catalog), which the
    // queue shows them rather than leave it waiting where no one looks.
    visible_page(state, user, Verb::Reject, &list, page).await
}

fn verb_and_action(decision: ReviewDecision) -> (Verb, Action) {
    match decision {
        ReviewDecision::Approve => (Verb::Approve, Action::Approve),
        ReviewDecision::Reject => (Verb::Reject, Action::Reject),
        ReviewDecision::RequestChanges => (Verb::RequestChanges, Action::RequestChanges),
    }
}

/// Records a reviewer's decision on the revision they looked at (and, when given,
/// the change-set hash they saw). An approval names the change-set hash it approves; enough approvals move the request on and queue
/// its execution in the same transaction.
pub async fn decide(
    state: &AppState,
    user: &Caller,
    id: RequestId,
    revision: i64,
    decision: ReviewDecision,
    comment: &str,
) -> ServiceResult<()> {
    decide_on(state, user, id, revision, decision, comment, None).await
}

/// Whether `user` may make `decision` on the request now, without making it: a
/// channel that asks before it decides (chat) refuses with the policy's words.
pub async fn may_decide(
    state: &AppState,
    user: &Caller,
    id: RequestId,
    decision: ReviewDecision,
) -> ServiceResult<()> {
    let mut conn = state.db.pool.acquire().await?;
    let request = load_request(&mut conn, id).await?;
    refused_for_a_type_gone(state, user, decision, &request)?;
    authorize(state, user, verb_and_action(decision).0, &request)?;
    if decision == ReviewDecision::Approve
        && let Some(reviewed) =
            storage::requests::revision(&mut conn, id, request.current_revision).await?
    {
        refused_for_a_version_left(state, &request, &reviewed)?;
    }
    Ok(())
}

/// Before anything of the request is read for an answer (its type, say); a
/// type gone from the catalog is then said as such, not as a missing role. A
/// rejection needs nothing of the type: an admin turns down a request whose
/// type left the catalog.
fn refused_for_a_type_gone(
    state: &AppState,
    user: &Caller,
    decision: ReviewDecision,
    request: &storage::requests::RequestRow,
) -> ServiceResult<()> {
    authorize(state, user, Verb::View, request)?;
    if decision != ReviewDecision::Reject {
        request_type(state, request)?;
    }
    Ok(())
}

/// A template upgrade brings an asset to the catalog version that rendered it;
/// once the catalog has left that version (rolled back, or replaced by a fix)
/// approving it would deploy templates no longer wanted. The sweep cancels it
/// and opens the upgrade to today's version.
fn refused_for_a_version_left(
    state: &AppState,
    request: &storage::requests::RequestRow,
    reviewed: &storage::requests::RevisionRow,
) -> ServiceResult<()> {
    if request.action.as_deref() != Some(slipway_core::catalog::TypeAction::UPGRADE) {
        return Ok(());
    }
    let ty = request_type(state, request)?;
    if reviewed.catalog_version == ty.version {
        return Ok(());
    }
    Err(ServiceError::Conflict(format!(
        "request #{} upgrades {} to catalog version {}, which the catalog has left (it is at {} now); \
         the template upgrade sweep cancels it and opens the upgrade to the current version",
        request.id, request.resource_name, reviewed.catalog_version, ty.version
    )))
}

/// [`decide`], bound to the change set the reviewer saw: a different one is a conflict.
#[instrument(skip_all, fields(request_id = %id, decision = decision.as_str()))]
pub async fn decide_on(
    state: &AppState,
    user: &Caller,
    id: RequestId,
    revision: i64,
    decision: ReviewDecision,
    comment: &str,
    seen_hash: Option<&str>,
) -> ServiceResult<()> {
    let mut tx = state.db.write().await?;
    // Two approvals by one reviewer sent at once must not both count.
    storage::requests::lock(&mut tx, state.db.engine, id).await?;
    let mut request = load_request(&mut tx, id).await?;
    let (verb, action) = verb_and_action(decision);
    refused_for_a_type_gone(state, user, decision, &request)?;
    authorize(state, user, verb, &request)?;
    if revision != request.current_revision {
        return Err(ServiceError::Conflict(format!(
            "request #{id} is now at revision {}; you reviewed revision {revision}. Reload and review the new revision",
            request.current_revision
        )));
    }
    let comment = &slipway_core::validate::note_text(comment);
    if let Some(error) = slipway_core::validate::note_error("comment", comment) {
        return Err(ServiceError::Invalid(vec![error]));
    }
    if decision != ReviewDecision::Approve && comment.is_empty() {
        return Err(ServiceError::Invalid(vec![FieldError {
            field: "comment".into(),
            message: "is required: tell the requester what to change or why".into(),
        }]));
    }
    let reviewed = storage::requests::revision(&mut tx, id, revision)
        .await?
        .ok_or_else(|| {
            ServiceError::Internal(format!("request #{id} has no revision {revision}"))
        })?;
    let hash = reviewed.change_set_hash.clone();
    // A caller that names the change set it saw decides on exactly that one.
    // The hash it should have named is not told: a caller that may decide but
    // not read (a review-only token) would send it back unseen.
    if let Some(seen) = seen_hash
        && seen != hash
    {
        return Err(ServiceError::Conflict(format!(
            "revision {revision} of request #{id} has another change set than {}; reload and review what is there now",
            slipway_core::listing::quoted_briefly(seen)
        )));
    }
    if decision == ReviewDecision::Approve {
        refused_for_a_version_left(state, &request, &reviewed)?;
    }
    let earlier = storage::requests::decisions(&mut tx, id).await?;
    if decision == ReviewDecision::Approve
        && earlier.iter().any(|d| {
            !d.voided
                && d.revision == revision
                && d.decision == "approve"
                && d.decided_by == user.username
        })
    {
        return Err(ServiceError::Conflict(format!(
            "you already approved revision {revision} of request #{id}"
        )));
    }
    storage::requests::insert_decision(
        &mut tx,
        &NewDecision {
            request_id: id,
            revision,
            reviewer_id: Some(user.id),
            decision: decision.as_str(),
            comment,
            change_set_hash: &hash,
        },
    )
    .await?;
    let actor = Actor::User(user.clone());
    if decision == ReviewDecision::Approve {
        let ty = request_type(state, &request)?;
        let approvals = 1 + earlier
            .iter()
            .filter(|d| !d.voided && d.revision == revision && d.decision == "approve")
            .count();
        if (approvals as u32) < ty.review.required {
            record(
                &mut tx,
                state.db.engine,
                &actor,
                "request.approval_recorded",
                ("request", id.to_string()),
                Some(hash.clone()),
                format!("{approvals} of {} approvals", ty.review.required),
            )
            .await?;
        } else {
            transition(
                &mut tx,
                state,
                &mut request,
                action,
                &actor,
                format!("approved change set {hash}. {comment}"),
            )
            .await?;
            approve_and_enqueue(&mut tx, ty, &request, &hash, &reviewed.params).await?;
        }
    } else {
        transition(
            &mut tx,
            state,
            &mut request,
            action,
            &actor,
            comment.to_string(),
        )
        .await?;
    }
    tx.commit().await?;
    state.jobs_ready.notify_one();
    Ok(())
}
