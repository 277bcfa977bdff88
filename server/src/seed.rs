//! `slipway dev seed`: fills a database with a year of realistic use, through the
//! storage layer, so that hot paths can be measured at the size they will reach.
//! Requests are spread over every type, team and environment of the catalog and
//! over the states a year leaves them in, with revisions (some sent back once),
//! decisions, assets for the completed ones and their audit events.

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use slipway_core::catalog::ResourceType;
use slipway_core::flow;
use slipway_core::ids::{RequestId, UserId};
use slipway_core::precheck;
use slipway_core::render;
use slipway_core::state::{Action, RequestState, next_state};
use slipway_core::views::Role;

use crate::state::AppState;
use crate::storage::assets::NewAsset;
use crate::storage::audit::{NewEvent, Origin};
use crate::storage::quota::Recount;
use crate::storage::requests::{NewDecision, NewRequest, NewRevision};
use crate::storage::users::NewUser;
use crate::storage::{self, StorageError, Tx};

/// Requests per transaction: large enough to be fast, small enough to show progress.
const BATCH: usize = 1_000;
const DAY_MILLIS: i64 = 86_400_000;

/// Days before now that the seeded year ends: longer than any request's path.
const SETTLED_DAYS: i64 = 7;

/// Where a year of requests ends up, in per mille.
const STATE_MIX: [(RequestState, u32); 10] = [
    (RequestState::Completed, 700),
    (RequestState::Rejected, 60),
    (RequestState::Cancelled, 60),
    (RequestState::InReview, 80),
    (RequestState::ChangesRequested, 40),
    (RequestState::Approved, 10),
    (RequestState::Executing, 10),
    (RequestState::Verifying, 10),
    (RequestState::Failed, 20),
    (RequestState::Manual, 10),
];

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("resource type {type_name}: the seed cannot make valid parameters: {problem}")]
    Parameters { type_name: String, problem: String },
    #[error("the catalog has {0}")]
    Catalog(String),
}

impl From<sqlx::Error> for SeedError {
    fn from(error: sqlx::Error) -> Self {
        SeedError::Storage(error.into())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedPlan {
    pub requests: usize,
    pub audit_events: usize,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Seeded {
    pub requests: usize,
    pub assets: usize,
    pub audit_events: usize,
}

struct People {
    /// Requesters per team.
    requesters: BTreeMap<String, Vec<UserId>>,
    /// A reviewer of each team, for the types it offers.
    reviewers: BTreeMap<String, UserId>,
    everyone: Vec<UserId>,
    /// Each one's username: the audit log names its actors.
    names: BTreeMap<UserId, String>,
}

impl People {
    fn name(&self, id: UserId) -> &str {
        self.names.get(&id).map_or("seed", String::as_str)
    }
}

/// Fills the database behind `state` and prints progress to standard error.
pub async fn seed(state: &AppState, plan: SeedPlan) -> Result<Seeded, SeedError> {
    let catalog = &state.catalog.catalog;
    let types: Vec<&ResourceType> = catalog.types.values().collect();
    if types.is_empty() {
        return Err(SeedError::Catalog("no resource types".into()));
    }
    let people = people(state).await?;
    let mut rng = StdRng::seed_from_u64(2026);
    let mut seeded = Seeded::default();
    // The year ends a week ago: a request's steps take up to a few days after
    // its submit, and none may end after now.
    let year_ago = storage::now_millis() - (365 + SETTLED_DAYS) * DAY_MILLIS;
    let step = (365 * DAY_MILLIS) / plan.requests.max(1) as i64;
    let mut last_reported = 0;
    while seeded.requests < plan.requests {
        let mut tx = state.db.write().await?;
        let batch_end = (seeded.requests + BATCH).min(plan.requests);
        while seeded.requests < batch_end {
            let i = seeded.requests;
            let ty = types[i % types.len()];
            let at = year_ago + i as i64 * step;
            let one = seed_request(state, &mut tx, &people, &mut rng, ty, i, at).await?;
            seeded.assets += one.assets;
            seeded.audit_events += one.audit_events;
            seeded.requests += 1;
        }
        tx.commit().await?;
        last_reported = progress("requests", seeded.requests, plan.requests, last_reported);
    }
    let total = plan.audit_events;
    last_reported = 0;
    while seeded.audit_events < total {
        let mut tx = state.db.write().await?;
        let batch_end = (seeded.audit_events + 10 * BATCH).min(total);
        while seeded.audit_events < batch_end {
            sign_in_event(&mut tx, state, &people, &mut rng).await?;
            seeded.audit_events += 1;
        }
        tx.commit().await?;
        last_reported = progress("audit events", seeded.audit_events, total, last_reported);
    }
    // The rows went in beside the services: rebuild what is derived from them, and
    // let the planner see the tables as they now are (as autovacuum or
    // `PRAGMA optimize` would, some time later).
    storage::lookup::sync(&state.db, catalog, Recount::All).await?;
    storage::search::sync(&state.db, catalog).await?;
    // A year-old log is sealed: seal now, so a server started on the seeded data
    // measures its steady state, not a million events being chained at start.
    eprintln!("seed: sealing the audit log");
    crate::audit_chain::seal_backlog(&state.db).await?;
    // Sealing rewrote every event: on PostgreSQL a dead row version each, which
    // autovacuum clears within its next round (see the audit autovacuum
    // migration). A year-old database has had that round; vacuum now.
    let settle = match state.db.engine {
        storage::Engine::Postgres => "VACUUM (ANALYZE)",
        storage::Engine::Sqlite => "ANALYZE",
    };
    sqlx::query(settle).execute(&state.db.pool).await?;
    Ok(seeded)
}

/// Prints a line every tenth of the way; returns the tenth reached.
fn progress(what: &str, done: usize, total: usize, reported: usize) -> usize {
    let tenth = done * 10 / total.max(1);
    if tenth > reported {
        eprintln!("seed: {done} of {total} {what}");
    }
    tenth.max(reported)
}

/// Five requesters and a reviewer per team of the owning-team dictionary (or of
/// the teams offering types, when no type names one), plus alice when she exists,
/// so a demo user has a long history to page through.
async fn people(state: &AppState) -> Result<People, SeedError> {
    let catalog = &state.catalog.catalog;
    let mut teams: Vec<String> = catalog
        .types
        .values()
        .filter_map(|t| t.owner_param.as_ref())
        .filter_map(|o| catalog.dictionaries.get(&o.dictionary))
        .flat_map(|d| d.terms.iter().map(|t| t.key.clone()))
        .chain(catalog.types.values().map(|t| t.owner.clone()))
        .collect();
    teams.sort();
    teams.dedup();
    let mut tx = state.db.write().await?;
    let mut people = People {
        requesters: BTreeMap::new(),
        reviewers: BTreeMap::new(),
        everyone: Vec::new(),
        names: BTreeMap::new(),
    };
    let run = uuid::Uuid::new_v4().simple().to_string();
    let run = &run[..6];
    for team in &teams {
        let team_list = [team.clone()];
        for k in 1..=5 {
            let name = format!("seed-{run}-{team}-{k}");
            let id =
                storage::users::insert(&mut tx, &seed_user(&name, &[Role::Requester], &team_list))
                    .await?;
            people.requesters.entry(team.clone()).or_default().push(id);
            people.names.insert(id, name);
        }
        let name = format!("seed-{run}-{team}-reviewer");
        let roles = [Role::Reviewer, Role::Requester];
        let id = storage::users::insert(&mut tx, &seed_user(&name, &roles, &team_list)).await?;
        people.reviewers.insert(team.clone(), id);
        people.names.insert(id, name);
    }
    if let Some(alice) = storage::users::by_username(&mut tx, "alice").await? {
        people.names.insert(alice.view.id, "alice".to_string());
        for team in &alice.view.teams {
            if let Some(list) = people.requesters.get_mut(team) {
                // Half of her team's requests are hers.
                let others = list.len();
                list.extend(std::iter::repeat_n(alice.view.id, others));
            }
        }
    }
    tx.commit().await?;
    people.everyone = people.requesters.values().flatten().copied().collect();
    Ok(people)
}

fn seed_user<'a>(name: &'a str, roles: &'a [Role], teams: &'a [String]) -> NewUser<'a> {
    NewUser {
        username: name,
        display_name: name,
        password_hash: None,
        roles,
        teams,
    }
}

#[derive(Default)]
struct OneSeeded {
    assets: usize,
    audit_events: usize,
}

fn pick<'a, T>(rng: &mut StdRng, items: &'a [T]) -> Option<&'a T> {
    if items.is_empty() {
        None
    } else {
        items.get(rng.random_range(0..items.len()))
    }
}

/// How long a seeded request sent back for changes may have waited: the
/// default of `--close-unrevised-after`, less a margin for its revision time.
const UNREVISED_KEPT_MS: i64 = 25 * 24 * 60 * 60 * 1000;

fn pick_state(rng: &mut StdRng) -> RequestState {
    let mut roll = rng.random_range(0..1000u32);
    for (state, share) in STATE_MIX {
        if roll < share {
            return state;
        }
        roll -= share;
    }
    RequestState::Completed
}

/// The type's defaults with a name, a team and an environment filled in.
fn params_for(
    state: &AppState,
    ty: &ResourceType,
    rng: &mut StdRng,
    i: usize,
) -> Result<(Value, String), SeedError> {
    let catalog = &state.catalog.catalog;
    let mut params = ty.default_params();
    if ty.has_param("name") {
        params.insert("name".into(), Value::String(format!("s{i:07}")));
    }
    let mut team = ty.owner.clone();
    if let Some(owner) = &ty.owner_param
        && let Some(dictionary) = catalog.dictionaries.get(&owner.dictionary)
        && let Some(term) = pick(rng, &dictionary.terms)
    {
        team = term.key.clone();
        params.insert(owner.param.clone(), Value::String(team.clone()));
    }
    if let Some(param) = &ty.environment_param {
        let choices: Vec<Value> = ty
            .parameters
            .pointer(&format!("/properties/{param}/enum"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if let Some(env) = pick(rng, &choices) {
            params.insert(param.clone(), env.clone());
        }
    }
    Ok((Value::Object(params), team))
}

#[allow(clippy::too_many_arguments)]
async fn seed_request(
    state: &AppState,
    tx: &mut Tx,
    people: &People,
    rng: &mut StdRng,
    ty: &ResourceType,
    i: usize,
    at: i64,
) -> Result<OneSeeded, SeedError> {
    let (params, team) = params_for(state, ty, rng, i)?;
    let validator = state
        .catalog
        .validator(&ty.name)
        .ok_or_else(|| SeedError::Catalog(format!("no validator for {}", ty.name)))?;
    // As the pre-check read it when the request was made: room in every quota
    // (the seed keeps within them only loosely) and what it requires in place.
    let room = vec![precheck::QuotaUsage::default(); precheck::quota_queries(ty, &params).len()];
    let in_place: Vec<precheck::DependencyFound> = precheck::dependency_queries(ty, &params)
        .unwrap_or_default()
        .into_iter()
        .map(|_| precheck::DependencyFound {
            asset_name: Some(format!("{team}-seeded")),
            retired_by: None,
        })
        .collect();
    let report = precheck::evaluate(validator, ty, &params, &room, &in_place);
    let invalid = |problem: String| SeedError::Parameters {
        type_name: ty.name.clone(),
        problem,
    };
    if let Some(error) = report.field_errors.first() {
        return Err(invalid(format!("{}: {}", error.field, error.message)));
    }
    let resource_name = report
        .resource_name
        .clone()
        .ok_or_else(|| invalid("no resource name".into()))?;
    let requires = vec![format!("{team}-seeded"); ty.requires.len()];
    let change_set = render::change_set(
        &state.catalog.catalog,
        ty,
        &params,
        &resource_name,
        &requires,
    )
    .map_err(|e| invalid(e.to_string()))?;
    let hash = change_set.hash();
    let requester = people
        .requesters
        .get(&team)
        .and_then(|list| pick(rng, list))
        .copied()
        .ok_or_else(|| SeedError::Catalog(format!("no requester for team {team}")))?;
    let reviewer = people.reviewers.get(&ty.owner).copied();
    let final_state = match pick_state(rng) {
        // What a year of use leaves: one sent back long ago was closed by the
        // housekeeping (`--close-unrevised-after`), not left waiting.
        RequestState::ChangesRequested if storage::now_millis() - at > UNREVISED_KEPT_MS => {
            RequestState::Cancelled
        }
        picked => picked,
    };
    let id = storage::requests::insert(
        tx,
        &NewRequest {
            type_name: &ty.name,
            resource_name: &resource_name,
            requester_id: requester,
            state: final_state,
            submit_key: &format!("seed-{i}-{}", uuid::Uuid::new_v4().simple()),
            action: None,
        },
    )
    .await?;
    let revision = NewRevision {
        request_id: id,
        revision: 1,
        params: &params,
        team: ty.owning_team(&params),
        environment: ty.environment(&params),
        precheck: &report,
        change_set: &change_set,
        change_set_hash: &hash,
        catalog_version: &ty.version,
        author_id: requester,
    };
    storage::requests::insert_revision(tx, &revision).await?;
    let mut one = OneSeeded::default();
    let mut events = vec![("request.submit", format!("revision 1, change set {hash}"))];
    // One in six reviewed requests was sent back once before its outcome.
    let reviewed = !matches!(final_state, RequestState::Cancelled);
    let reworked =
        reviewed && rng.random_range(0..6) == 0 || final_state == RequestState::ChangesRequested;
    if reworked {
        decide(tx, id, 1, reviewer, "request_changes", &hash).await?;
        events.push(("request.request_changes", "please size it down".into()));
        if final_state != RequestState::ChangesRequested {
            storage::requests::insert_revision(
                tx,
                &NewRevision {
                    revision: 2,
                    ..revision
                },
            )
            .await?;
            storage::requests::set_revision(tx, id, 2, &resource_name).await?;
            events.push(("request.resubmit", format!("revision 2, change set {hash}")));
        }
    }
    let outcome = match final_state {
        RequestState::Rejected => Some("reject"),
        RequestState::InReview | RequestState::ChangesRequested | RequestState::Cancelled => None,
        _ => Some("approve"),
    };
    if let Some(decision) = outcome {
        let revision = if reworked { 2 } else { 1 };
        decide(tx, id, revision, reviewer, decision, &hash).await?;
        events.push((
            if decision == "reject" {
                "request.reject"
            } else {
                "request.approve"
            },
            String::new(),
        ));
    }
    let mut created = None;
    if final_state == RequestState::Completed {
        let commit = format!("{:040x}", rng.random::<u128>());
        let asset = storage::assets::insert(
            tx,
            &NewAsset {
                type_name: &ty.name,
                name: &resource_name,
                params: &params,
                team: ty.owning_team(&params),
                environment: ty.environment(&params),
                request_id: id,
                commit_id: &commit,
                catalog_version: &ty.version,
                search_text: None,
            },
        )
        .await?;
        // As the orchestrator records them: a year of seeded assets leaves the
        // housekeeping nothing to recover.
        let written: Vec<String> = change_set.files.iter().map(|f| f.path.clone()).collect();
        storage::assets::set_deployed_paths(tx, asset, &written, ty.commits_to_gitops()).await?;
        events.push(("request.execution_succeeded", format!("committed {commit}")));
        // As the orchestrator records it: on the asset, so its page shows it.
        created = Some((
            asset,
            format!("{} from request #{id} at commit {commit}", ty.name),
        ));
        one.assets += 1;
    }
    storage::requests::backdate(tx, id, at, at + rng.random_range(1..72) * 3_600_000).await?;
    let auto = precheck::auto_approves(ty, &params);
    seed_flow_steps(
        tx,
        id,
        &ty.name,
        flow_path(final_state, reworked, auto),
        at,
        rng,
    )
    .await?;
    let actor = (requester, people.name(requester));
    for (action, detail) in &events {
        let target = ("request", id.to_string());
        append(tx, state, actor, (action, target), detail).await?;
        one.audit_events += 1;
    }
    if let Some((asset, detail)) = created {
        let target = ("asset", asset.to_string());
        append(tx, state, actor, ("asset.created", target), &detail).await?;
        one.audit_events += 1;
    }
    Ok(one)
}

/// The actions that bring a seeded request to its final state, as the flow takes them.
fn flow_path(final_state: RequestState, reworked: bool, auto: bool) -> Vec<Action> {
    use Action as A;
    use RequestState as S;
    let mut path = vec![A::Submit];
    if final_state == S::Cancelled {
        path.push(A::Cancel);
        return path;
    }
    if auto && !reworked {
        path.push(A::AutoApprove);
    } else {
        path.push(A::EnterReview);
        if reworked {
            path.extend([A::RequestChanges, A::Resubmit, A::EnterReview]);
        }
        match final_state {
            S::InReview => return path,
            S::ChangesRequested => {
                path.truncate(3);
                return path;
            }
            S::Rejected => {
                path.push(A::Reject);
                return path;
            }
            _ => path.push(A::Approve),
        }
    }
    let rest: &[A] = match final_state {
        S::Executing => &[A::StartExecution],
        S::Verifying => &[A::StartExecution, A::ExecutionSucceeded],
        S::Completed => &[
            A::StartExecution,
            A::ExecutionSucceeded,
            A::VerificationPassed,
        ],
        S::Failed => &[A::StartExecution, A::Fail],
        S::Manual => &[A::StartExecution, A::Fail, A::TakeOver],
        _ => &[],
    };
    path.extend_from_slice(rest);
    path
}

/// Records a seeded request's transitions for the flow metrics, with plausible
/// times: people take hours, the worker minutes.
async fn seed_flow_steps(
    tx: &mut Tx,
    id: RequestId,
    type_name: &str,
    path: Vec<Action>,
    at: i64,
    rng: &mut StdRng,
) -> Result<(), StorageError> {
    const MINUTE: i64 = 60_000;
    let (mut from, mut entered, mut now) = (RequestState::Draft, at, at);
    for action in path {
        // A path that the state machine refuses is a bug in `flow_path`: stop there.
        let Ok(to) = next_state(from, action) else {
            break;
        };
        now += match flow::step_kind(from) {
            Some(flow::StepKind::Wait) => rng.random_range(5..600) * MINUTE,
            Some(flow::StepKind::Touch) => rng.random_range(1..20) * MINUTE,
            None => 0,
        };
        let actor = match action {
            Action::AutoApprove => flow::ActorKind::Policy,
            Action::StartExecution
            | Action::ExecutionSucceeded
            | Action::VerificationPassed
            | Action::Fail => flow::ActorKind::Worker,
            _ => flow::ActorKind::Person,
        };
        let step = flow::StepRecord {
            request_id: id.0,
            type_name: type_name.to_string(),
            from,
            to,
            action,
            actor,
            entered_at: entered,
            at: now,
            lead_ms: flow::lead_time(to, Some(at), now),
        };
        storage::flow::record(tx, &step).await?;
        (from, entered) = (to, now);
    }
    Ok(())
}

async fn decide(
    tx: &mut Tx,
    id: RequestId,
    revision: i64,
    reviewer: Option<UserId>,
    decision: &str,
    hash: &str,
) -> Result<(), StorageError> {
    storage::requests::insert_decision(
        tx,
        &NewDecision {
            request_id: id,
            revision,
            reviewer_id: reviewer,
            decision,
            comment: "seeded",
            change_set_hash: hash,
        },
    )
    .await
}

async fn append(
    tx: &mut Tx,
    state: &AppState,
    (actor_id, actor): (UserId, &str),
    (action, (target_kind, target_id)): (&str, (&str, String)),
    detail: &str,
) -> Result<(), StorageError> {
    let origin = Origin {
        channel: "seed".into(),
        ..Origin::default()
    };
    storage::audit::append(
        tx,
        state.db.engine,
        &NewEvent {
            origin: &origin,
            actor_id: Some(actor_id),
            actor,
            action,
            target_kind,
            target_id,
            before: None,
            after: None,
            detail: detail.to_string(),
        },
    )
    .await
}

async fn sign_in_event(
    tx: &mut Tx,
    state: &AppState,
    people: &People,
    rng: &mut StdRng,
) -> Result<(), StorageError> {
    let user = pick(rng, &people.everyone).copied().unwrap_or(UserId(0));
    let origin = Origin {
        channel: "portal".into(),
        client_addr: Some(format!(
            "10.0.{}.{}",
            rng.random_range(0..255),
            rng.random_range(1..255)
        )),
        ..Origin::default()
    };
    storage::audit::append(
        tx,
        state.db.engine,
        &NewEvent {
            origin: &origin,
            actor_id: Some(user),
            actor: people.name(user),
            action: "user.sign_in",
            target_kind: "user",
            target_id: user.0.to_string(),
            before: None,
            after: None,
            detail: "password".into(),
        },
    )
    .await
}
