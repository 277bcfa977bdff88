//! The service layer: every rule about who may do what, and every state change with
//! its audit event, lives here once. The portal's server functions (and later the
//! REST API and ChatOps) are thin adapters over these functions.

pub mod actions;
pub mod assets;
pub mod audit;
pub mod auth;
mod caller;
pub mod catalog;
pub mod chat;
pub mod deployed_paths;
pub mod detail;
mod error;
pub mod flow;
pub mod guidance;
pub mod key_rotation;
pub mod oidc;
pub mod operations;
mod quota_hold;
pub mod requests;
pub mod reviews;
pub mod secrets;
pub mod slots;
pub mod token_pace;
pub mod token_uses;
pub mod tokens;
pub mod upgrades;

pub use caller::{CallMeta, Caller, Channel};
pub use error::{DATABASE_UNAVAILABLE, ServiceError, ServiceResult};

use slipway_core::catalog::ResourceType;
use slipway_core::flow::{ActorKind, StepRecord, lead_time};
use slipway_core::ids::{RequestId, UserId};
use slipway_core::policy::{self, RequestFacts, TypeFacts, Verb};
use slipway_core::state::{Action, RequestState, next_state};
use slipway_core::views::UserView;
use sqlx::AnyConnection;

use crate::state::AppState;
use crate::storage::audit::{NewEvent, Origin};
use crate::storage::requests::{RequestRow, RevisionRow};
use crate::storage::{self, Engine, StorageError, Window};

/// One page of a list, and the key the next page starts before (none at the end).
#[derive(Debug, Clone, PartialEq)]
pub struct Paged<T> {
    pub items: Vec<T>,
    pub next_before: Option<i64>,
}

impl<T> Paged<T> {
    /// A page cut from `scanned` rows of a full-or-short window: a full window may
    /// have more behind it, a short one is the end.
    pub fn from_window(
        items: Vec<T>,
        scanned: usize,
        last_key: Option<i64>,
        window: Window,
    ) -> Self {
        let full = i64::try_from(scanned).is_ok_and(|n| n >= window.limit);
        Paged {
            items,
            next_before: if full { last_key } else { None },
        }
    }
}

/// Who acts: a person through one of the doors, a catalog policy, or the worker.
#[derive(Debug, Clone)]
pub enum Actor {
    User(Caller),
    /// A rule acting on its own (bootstrap, a background sweep).
    Policy(String),
    /// A rule acting within someone's call (a refused sign-in, an auto-approval):
    /// the event keeps that call's channel, client address and trace id.
    PolicyInCall {
        rule: String,
        origin: Origin,
    },
    Worker,
}

impl Actor {
    pub fn name(&self) -> String {
        match self {
            Actor::User(caller) => caller.username.clone(),
            Actor::Policy(rule) | Actor::PolicyInCall { rule, .. } => format!("policy:{rule}"),
            Actor::Worker => "worker".to_string(),
        }
    }

    /// Who acts, as the flow metrics count it.
    pub fn kind(&self) -> ActorKind {
        match self {
            Actor::User(_) => ActorKind::Person,
            Actor::Policy(_) | Actor::PolicyInCall { .. } => ActorKind::Policy,
            Actor::Worker => ActorKind::Worker,
        }
    }

    pub fn user_id(&self) -> Option<UserId> {
        match self {
            Actor::User(caller) => Some(caller.id),
            _ => None,
        }
    }

    /// Where the act came from, for its audit event.
    pub fn origin(&self) -> Origin {
        match self {
            Actor::User(caller) => caller.origin(),
            Actor::PolicyInCall { origin, .. } => origin.clone(),
            Actor::Policy(_) | Actor::Worker => Origin {
                channel: Channel::System.as_str().to_string(),
                ..Origin::default()
            },
        }
    }
}

/// The types of the catalog as the policy's list-level rules read them.
pub(crate) fn type_facts(state: &AppState) -> impl Iterator<Item = TypeFacts<'_>> {
    state.catalog.catalog.types.values().map(TypeFacts::new)
}

/// The type as the catalog version that rendered `revision` defined it, when
/// that is not today's and was recorded: a reviewed change is run, verified and
/// recorded by what was reviewed. `None` goes by today's catalog (a revision
/// from before versions were recorded, or one recorded by a build whose
/// definitions this one cannot read).
pub(crate) async fn reviewed_type(
    state: &AppState,
    conn: &mut AnyConnection,
    request: &RequestRow,
    revision: &RevisionRow,
) -> ServiceResult<Option<ResourceType>> {
    let current = request_type(state, request)?;
    let version = &revision.catalog_version;
    if *version == current.version || version.is_empty() {
        return Ok(None);
    }
    let why = match storage::type_versions::definition(conn, &request.type_name, version).await {
        Ok(Some(ty)) => return Ok(Some(ty)),
        Ok(None) => "was not recorded".to_string(),
        Err(StorageError::Corrupt(error)) => format!("cannot be read by this build ({error})"),
        Err(other) => return Err(other.into()),
    };
    tracing::warn!(
        request_id = %request.id,
        %version,
        "the catalog version that rendered this change {why}; it runs as today's catalog says"
    );
    Ok(None)
}

/// The catalog entry of a stored request; a type removed from the catalog since is a
/// conflict the platform team must resolve, not a crash.
pub(crate) fn request_type<'a>(
    state: &'a AppState,
    request: &RequestRow,
) -> ServiceResult<&'a ResourceType> {
    let action = request.action.as_deref();
    state
        .catalog
        .request_type(&request.type_name, action)
        .ok_or_else(|| {
            ServiceError::Conflict(match action {
                None => format!(
                    "resource type {} is no longer in the catalog",
                    request.type_name
                ),
                Some(action) => format!(
                    "the action {action} of {} is no longer in the catalog",
                    request.type_name
                ),
            })
        })
}

/// What the policy needs to know about a stored request. A request whose type has
/// left the catalog keeps no team and no reviewers: only its requester and the
/// roles that see everything can still reach it.
pub(crate) fn facts<'a>(state: &'a AppState, request: &'a RequestRow) -> RequestFacts<'a> {
    match state
        .catalog
        .request_type(&request.type_name, request.action.as_deref())
    {
        Some(ty) => RequestFacts::new(ty, &request.params, request.state, request.requester_id),
        None => RequestFacts {
            state: request.state,
            requester: request.requester_id,
            team: None,
            offering_team: "",
            approver_role: None,
        },
    }
}

/// The one authorisation every service asks before it touches a request.
pub(crate) fn authorize(
    state: &AppState,
    user: &UserView,
    verb: Verb,
    request: &RequestRow,
) -> ServiceResult<()> {
    let facts = facts(state, request);
    // Another team's request answers as a missing one does: a refusal would
    // tell that the id exists, and whose it is.
    if policy::may(user, Verb::View, &facts).is_err() {
        return Err(not_found(request.id));
    }
    policy::may(user, verb, &facts)
        .map_err(|refusal| ServiceError::from_refusal(refusal, &format!("request #{}", request.id)))
}

fn not_found(id: RequestId) -> ServiceError {
    ServiceError::NotFound(format!("request #{id}"))
}

pub(crate) async fn load_request(
    conn: &mut AnyConnection,
    id: RequestId,
) -> ServiceResult<RequestRow> {
    storage::requests::get(conn, id)
        .await?
        .ok_or_else(|| not_found(id))
}

/// The one place a request changes state: the state machine decides, the row moves
/// only from the state we read (so a concurrent change loses cleanly), and the audit
/// event is written in the same transaction.
pub(crate) async fn transition(
    conn: &mut AnyConnection,
    state: &AppState,
    request: &mut RequestRow,
    action: Action,
    actor: &Actor,
    detail: String,
) -> ServiceResult<RequestState> {
    let from = request.state;
    let to = next_state(from, action)?;
    let at = storage::now_millis();
    if !storage::requests::set_state(conn, request.id, (from, to), at).await? {
        return Err(ServiceError::Conflict(format!(
            "request #{} changed while you were working on it; reload and try again",
            request.id
        )));
    }
    // A request holds quota while in flight; the counters move in this transaction.
    if from.is_in_flight() != to.is_in_flight() {
        let sign = if to.is_in_flight() { 1 } else { -1 };
        quota_hold::on_transition(conn, state, request, to, sign).await?;
    }
    record_flow_step(conn, request, (action, to), actor, at).await?;
    if to.is_terminal() {
        secrets::forget_given(conn, state, request, to).await?;
    }
    append_event(
        conn,
        state.db.engine,
        actor,
        &format!("request.{}", action.as_str()),
        ("request", request.id.to_string()),
        (
            Some(from.as_str().to_string()),
            Some(to.as_str().to_string()),
        ),
        detail,
    )
    .await?;
    tracing::info!(request_id = %request.id, from = from.as_str(), to = to.as_str(), actor = %actor.name(), "request transition");
    request.state = to;
    request.updated_at = at;
    Ok(to)
}

/// The flow's own record of the transition, for the flow metrics: how long the
/// request spent in the state it leaves (since the row's `updated_at`, which only
/// a state change moves), who moved it, and on completion its lead time since the
/// first submit (the one transition that asks `flow_steps`).
async fn record_flow_step(
    conn: &mut AnyConnection,
    request: &RequestRow,
    (action, to): (Action, RequestState),
    actor: &Actor,
    at: i64,
) -> ServiceResult<()> {
    let first_submit = match (action, to) {
        (Action::Submit, _) => Some(at),
        (_, RequestState::Completed) => storage::flow::first_submit(conn, request.id.0).await?,
        _ => None,
    };
    storage::flow::record(
        conn,
        &StepRecord {
            request_id: request.id.0,
            type_name: request.type_name.clone(),
            from: request.state,
            to,
            action,
            actor: actor.kind(),
            entered_at: request.updated_at,
            at,
            lead_ms: lead_time(to, first_submit, at),
        },
    )
    .await?;
    Ok(())
}

/// An audit event that is not a state change (an asset recorded, a sign-in).
pub(crate) async fn record(
    conn: &mut AnyConnection,
    engine: Engine,
    actor: &Actor,
    action: &str,
    target: (&str, String),
    after: Option<String>,
    detail: String,
) -> ServiceResult<()> {
    append_event(conn, engine, actor, action, target, (None, after), detail).await
}

/// Several audit events of one kind by different actors, in one statement.
pub(crate) async fn record_many(
    conn: &mut AnyConnection,
    engine: Engine,
    action: &str,
    events: &[(&Actor, (&str, String), String)],
) -> ServiceResult<()> {
    let named: Vec<(String, Origin)> = events
        .iter()
        .map(|(actor, _, _)| (actor.name(), actor.origin()))
        .collect();
    let rows: Vec<NewEvent<'_>> = events
        .iter()
        .zip(&named)
        .map(|((actor, target, detail), (name, origin))| NewEvent {
            origin,
            actor_id: actor.user_id(),
            actor: name,
            action,
            target_kind: target.0,
            target_id: target.1.clone(),
            before: None,
            after: None,
            detail: detail.clone(),
        })
        .collect();
    storage::audit::append_many(conn, engine, &rows).await?;
    Ok(())
}

async fn append_event(
    conn: &mut AnyConnection,
    engine: Engine,
    actor: &Actor,
    action: &str,
    target: (&str, String),
    (before, after): (Option<String>, Option<String>),
    detail: String,
) -> ServiceResult<()> {
    let actor_name = actor.name();
    let origin = actor.origin();
    storage::audit::append(
        conn,
        engine,
        &NewEvent {
            origin: &origin,
            actor_id: actor.user_id(),
            actor: &actor_name,
            action,
            target_kind: target.0,
            target_id: target.1,
            before,
            after,
            detail,
        },
    )
    .await?;
    Ok(())
}
