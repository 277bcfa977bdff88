//! One request as a person sees it: every revision, decision, step and check, what
//! they may do next, and for a reviewer what changed since they last looked.

use crate::services::Caller;
use serde_json::Value;
use slipway_core::diff;
use slipway_core::ids::RequestId;
use slipway_core::policy::{self, Verb};
use slipway_core::state::RequestState;
use slipway_core::views::{
    CheckResultView, DecisionView, GeneratedSecretView, JobView, ProgressEvent, RequestDetail,
    RequestSummary, ReviewDiff, RevisionView, StepView, TimelineEntry,
};
use sqlx::AnyConnection;

use super::{ServiceResult, authorize, facts, load_request};
use crate::services::requests::summary;
use crate::state::AppState;
use crate::storage::requests::{RequestRow, RevisionRow};
use crate::storage::{self, format_millis};

/// Parameters in the order the type's form shows them, so every page reads alike.
fn in_form_order(state: &AppState, type_name: &str, params: &Value) -> Value {
    let (Some(ty), Some(values)) = (state.catalog.resource_type(type_name), params.as_object())
    else {
        return params.clone();
    };
    let mut ordered = serde_json::Map::new();
    for field in ty.fields() {
        if let Some(value) = values.get(&field.name) {
            ordered.insert(field.name, value.clone());
        }
    }
    for (name, value) in values {
        if !ordered.contains_key(name) {
            ordered.insert(name.clone(), value.clone());
        }
    }
    Value::Object(ordered)
}

fn revision_view(state: &AppState, type_name: &str, row: &RevisionRow) -> RevisionView {
    RevisionView {
        revision: row.revision,
        params: in_form_order(state, type_name, &row.params),
        precheck: row.precheck.clone(),
        change_set: row.change_set.clone(),
        change_set_hash: row.change_set_hash.clone(),
        catalog_version: row.catalog_version.clone(),
        author: row.author.clone(),
        created_at: format_millis(row.created_at),
    }
}

/// Whether showing a request to a reviewer counts as their having read its
/// current revision, so that their next diff starts from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewerRead {
    Counts,
    /// A page another site had the browser load (a link, a pop-up): the
    /// requester could otherwise mark a revision read for a reviewer who never
    /// looked, and hide it from their next diff.
    DoesNotCount,
}

/// The diff against the newest earlier revision this reviewer saw; records that they
/// have now seen the current one (a write only the first time).
async fn review_diff(
    state: &AppState,
    conn: &mut AnyConnection,
    (user, read): (&Caller, ReviewerRead),
    request: &RequestRow,
    revisions: &[RevisionRow],
) -> ServiceResult<Option<ReviewDiff>> {
    let (seen_current, base) =
        storage::requests::seen_by(conn, request.id, user.id, request.current_revision).await?;
    if !seen_current && read == ReviewerRead::Counts {
        let mut tx = state.db.write().await?;
        let revision = request.current_revision;
        storage::requests::mark_viewed(&mut tx, request.id, user.id, revision).await?;
        tx.commit().await?;
    }
    let (Some(base), Some(current)) = (
        base,
        revisions
            .iter()
            .find(|r| r.revision == request.current_revision),
    ) else {
        return Ok(None);
    };
    let Some(before) = revisions.iter().find(|r| r.revision == base) else {
        return Ok(None);
    };
    Ok(Some(ReviewDiff {
        base_revision: base,
        revision: current.revision,
        params: diff::param_changes(&before.params, &current.params),
        files: diff::change_set_diff(&before.change_set, &current.change_set),
    }))
}

/// The request, if this person may see it.
async fn viewable_request(
    state: &AppState,
    conn: &mut AnyConnection,
    user: &Caller,
    id: RequestId,
) -> ServiceResult<RequestRow> {
    let request = load_request(conn, id).await?;
    authorize(state, user, Verb::View, &request)?;
    Ok(request)
}

/// The type's generated secrets with who was shown them; `unavailable` says why
/// this viewer cannot be shown one now.
async fn generated_secret_views(
    state: &AppState,
    conn: &mut AnyConnection,
    user: &Caller,
    request: &RequestRow,
) -> ServiceResult<Vec<GeneratedSecretView>> {
    let Some(ty) = state
        .catalog
        .request_type(&request.type_name, request.action.as_deref())
    else {
        return Ok(Vec::new());
    };
    if ty.generated_secrets.is_empty() {
        return Ok(Vec::new());
    }
    let reveals = storage::secrets::reveals(conn, request.id).await?;
    let allowed = policy::may_reveal_secret(user, &facts(state, request));
    Ok(ty
        .generated_secrets
        .iter()
        .map(|g| {
            let shown_to = reveals
                .iter()
                .find(|(param, _, _)| param == &g.name)
                .map(|(_, by, at)| format!("{by} on {}", format_millis(*at)));
            let unavailable = match (&shown_to, &allowed) {
                (Some(shown), _) => Some(format!("it was shown to {shown}; it is shown only once")),
                (None, Err(why)) => Some(why.to_string()),
                (None, Ok(())) => None,
            };
            GeneratedSecretView {
                name: g.name.clone(),
                title: g.title.clone(),
                description: g.description.clone(),
                shown_to,
                unavailable,
            }
        })
        .collect())
}

/// Where a request stands, cheaply: what a page watching the worker asks every second.
pub async fn request_state(
    state: &AppState,
    user: &Caller,
    id: RequestId,
) -> ServiceResult<RequestState> {
    let mut conn = state.db.pool.acquire().await?;
    let request = viewable_request(state, &mut conn, user, id).await?;
    Ok(request.state)
}

/// A request at a glance, for a short answer (chat): where it stands, why it
/// failed, and the change set of its current revision. Unlike [`request_detail`] it
/// does not count as the reviewer having seen the revision.
#[derive(Debug, Clone)]
pub struct Glance {
    pub summary: RequestSummary,
    pub last_error: Option<String>,
    pub change_set_hash: Option<String>,
}

pub async fn request_glance(
    state: &AppState,
    user: &Caller,
    id: RequestId,
) -> ServiceResult<Glance> {
    let mut conn = state.db.pool.acquire().await?;
    let request = viewable_request(state, &mut conn, user, id).await?;
    let change_set_hash = storage::requests::revision(&mut conn, id, request.current_revision)
        .await?
        .map(|r| r.change_set_hash);
    Ok(Glance {
        summary: summary(state, &request),
        last_error: request.last_error,
        change_set_hash,
    })
}

/// A request's live progress after event `after`: at most `limit` events, and
/// the state it settled in once nothing more will come.
#[derive(Debug, Clone, PartialEq)]
pub struct ProgressPage {
    pub events: Vec<ProgressEvent>,
    /// Set when the request is in a state where its worker is idle and every
    /// event was read: a follower can stop.
    pub settled: Option<RequestState>,
}

/// What happened to a request since event `after`, for someone who may view it.
pub async fn progress_after(
    state: &AppState,
    user: &Caller,
    id: RequestId,
    after: i64,
    limit: i64,
) -> ServiceResult<ProgressPage> {
    let mut conn = state.db.pool.acquire().await?;
    // The state is read first: every event written before it settled is then
    // among the events read next.
    let request = viewable_request(state, &mut conn, user, id).await?;
    // A cancel settles the request at once, but its running job writes on until
    // it stops (at its next lease renewal): the stream follows it to the end.
    let idle = request.state.worker_is_idle()
        && storage::jobs::unfinished_for_request(&mut conn, id)
            .await?
            .is_none();
    let events = storage::progress::after(&mut conn, id, after, limit).await?;
    let settled = (idle && (events.len() as i64) < limit).then_some(request.state);
    Ok(ProgressPage { events, settled })
}

/// The stored steps, a running one with the lines it reported up to event
/// `cursor` (its own log is written when it ends), so a page shows them without
/// script and a page following from `cursor` shows no line twice.
async fn step_views(
    conn: &mut AnyConnection,
    id: RequestId,
    cursor: i64,
    steps: Vec<storage::jobs::StepRow>,
) -> ServiceResult<Vec<StepView>> {
    let mut views = Vec::with_capacity(steps.len());
    for s in steps {
        let log = if s.state == storage::jobs::STEP_RUNNING {
            let limit = crate::drivers::progress::MAX_LIVE_LINES as i64 + 1;
            storage::progress::lines_of_step(conn, id, s.id, cursor, limit)
                .await?
                .join("\n")
        } else {
            s.log
        };
        views.push(StepView {
            id: s.id,
            revision: s.revision,
            step: s.step_index + 1,
            driver: s.driver,
            attempt: s.attempt,
            state: s.state,
            summary: s.summary,
            log,
            log_omitted: s.log_omitted,
            commit: s.commit_id,
            started_at: format_millis(s.started_at),
        });
    }
    Ok(views)
}

/// The most audit events a request's page shows.
const REQUEST_PAGE_HISTORY: i64 = 500;

pub async fn request_detail(
    state: &AppState,
    user: &Caller,
    id: RequestId,
    read: ReviewerRead,
) -> ServiceResult<RequestDetail> {
    // One moment of the database: a step that ends between reading the cursor
    // and reading the steps would otherwise show its lines twice.
    let mut conn = state.db.snapshot().await?;
    let request = viewable_request(state, &mut conn, user, id).await?;
    let revisions = storage::requests::revisions(&mut conn, id).await?;
    let decisions = storage::requests::decisions(&mut conn, id).await?;
    // A request retried and revised for months still shows a page: its newest
    // events (the audit log has them all).
    let timeline = storage::audit::newest_for_target(
        &mut conn,
        ("request", &id.to_string()),
        REQUEST_PAGE_HISTORY,
    )
    .await?;
    let checks = storage::requests::checks(&mut conn, id).await?;
    let job = storage::jobs::latest_for_request(&mut conn, id).await?;
    // Read before the steps, so that a page following from here misses nothing.
    let progress_cursor = storage::progress::last_id(&mut conn, id).await?;
    let steps = storage::jobs::steps_for_request(&mut conn, id).await?;
    let steps = step_views(&mut conn, id, progress_cursor, steps).await?;
    let asset = match request.asset_id {
        Some(acted_on) => Some(acted_on),
        None => storage::assets::by_request(&mut conn, id)
            .await?
            .map(|a| a.summary.id),
    };
    let action = super::actions::context(state, &mut conn, &request, &revisions).await?;
    let permissions = policy::permissions(user, &facts(state, &request));
    let generated_secrets = generated_secret_views(state, &mut conn, user, &request).await?;
    let review_diff = if permissions.review {
        review_diff(state, &mut conn, (user, read), &request, &revisions).await?
    } else {
        None
    };
    conn.commit().await?;
    Ok(RequestDetail {
        summary: summary(state, &request),
        type_title: state
            .catalog
            .request_type(&request.type_name, request.action.as_deref())
            .map(|t| t.title.clone())
            .unwrap_or_else(|| request.type_name.clone()),
        revisions: revisions
            .iter()
            .map(|r| revision_view(state, &request.type_name, r))
            .collect(),
        decisions: decisions
            .into_iter()
            .map(|d| DecisionView {
                revision: d.revision,
                decided_by: d.decided_by,
                decision: d.decision,
                comment: d.comment,
                change_set_hash: d.change_set_hash,
                voided: d.voided,
                at: format_millis(d.created_at),
            })
            .collect(),
        timeline: timeline
            .into_iter()
            .map(|e| TimelineEntry {
                at: e.at,
                actor: e.actor,
                action: e.action,
                from_state: e.before,
                to_state: e.after,
                detail: e.detail,
            })
            .collect(),
        checks: checks
            .into_iter()
            .map(|c| CheckResultView {
                revision: c.revision,
                attempt: c.attempt,
                kind: c.kind,
                target: c.target,
                description: c.description,
                passed: c.passed,
                detail: c.detail,
                tries: c.tries,
                duration_ms: c.duration_ms,
                at: format_millis(c.created_at),
            })
            .collect(),
        steps,
        progress_cursor,
        job: job.map(|j| JobView {
            state: j.state,
            attempts: j.attempts,
            max_attempts: j.max_attempts,
            takeovers: j.takeovers,
            last_error: j.last_error,
        }),
        asset_id: asset,
        last_error: request.last_error.clone(),
        manual_owner: request.manual_owner.clone(),
        review_diff,
        permissions,
        param_titles: state
            .catalog
            .request_type(&request.type_name, request.action.as_deref())
            .map(|t| t.param_titles())
            .unwrap_or_default(),
        generated_secrets,
        action,
        closes_unrevised_at: closes_unrevised_at(state, &request),
    })
}

/// When a request waiting for its revision is closed (see
/// [`super::requests::close_unrevised`]), in the page's words.
fn closes_unrevised_at(state: &AppState, request: &RequestRow) -> Option<String> {
    let after = state.settings.close_unrevised_after?;
    let upgrade = request.action.as_deref() == Some(slipway_core::catalog::TypeAction::UPGRADE);
    (request.state == RequestState::ChangesRequested && !upgrade).then(|| {
        let after = i64::try_from(after.as_millis()).unwrap_or(i64::MAX);
        format_millis(request.updated_at.saturating_add(after))
    })
}
