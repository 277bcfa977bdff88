//! Requesting: the pre-check, submitting, revising and cancelling a request, and
//! reading requests back.

use crate::services::Caller;
use serde_json::Value;
use slipway_core::catalog::{CheckKind, ExecutionStep, Lookup, ResourceType};
use slipway_core::ids::RequestId;
use slipway_core::listing::{ListFilter, ListPage, PageRequest};
use slipway_core::policy::{self, RequestFacts, Verb};
use slipway_core::precheck::{
    self, DependencyFound, DependencyQuery, PrecheckReport, QuotaQuery, QuotaUsage,
};
use slipway_core::render::{self, ChangeSet};
use slipway_core::secret::{self, Split};
use slipway_core::state::{Action, RequestState};
use slipway_core::validate::{FieldError, ParamValidator, holds_nul, whole_number};
use slipway_core::views::{DryRun, RequestDraft, RequestSummary};
use sqlx::AnyConnection;
use tracing::instrument;

use super::actions::ActingOn;
use super::{
    Actor, ServiceError, ServiceResult, authorize, load_request, secrets, transition, type_facts,
};
use crate::state::AppState;
use crate::storage::assets::AssetRow;
use crate::storage::requests::{
    ActionTarget, Approval, NewDecision, NewRequest, NewRevision, RequestList, RequestRow,
};
use crate::storage::{self, Engine, format_millis, jobs};

pub const APPLY_JOB: &str = "apply";

/// Queues the run of a request of this type, with the type's attempt limit.
pub(crate) async fn enqueue_apply(
    conn: &mut AnyConnection,
    ty: &ResourceType,
    id: RequestId,
) -> ServiceResult<()> {
    jobs::enqueue(conn, id, APPLY_JOB, i64::from(ty.limits.max_attempts)).await?;
    Ok(())
}

pub(crate) fn type_and_validator<'a>(
    state: &'a AppState,
    type_name: &str,
) -> ServiceResult<(&'a ResourceType, &'a ParamValidator)> {
    let ty = state.catalog.resource_type(type_name).ok_or_else(|| {
        ServiceError::NotFound(format!(
            "resource type {}",
            slipway_core::listing::quoted_briefly(type_name)
        ))
    })?;
    let validator = state
        .catalog
        .validator(type_name)
        .ok_or_else(|| ServiceError::Internal(format!("no validator for {type_name}")))?;
    Ok((ty, validator))
}

/// What a pre-check leaves out of the quota usage it reads.
#[derive(Clone, Copy)]
enum Besides<'a> {
    Nothing,
    /// The request being revised does not count against itself.
    Revised(&'a RequestRow),
    /// An action on an asset: the asset's own share, and what the action's request
    /// being revised (in flight with these parameters) holds already.
    Asset(ActingOn<'a>, Option<&'a Value>),
}

/// Quota usage of each rule in its scope, from the counters, in one read, with
/// what `besides` names left out.
async fn usages(
    conn: &mut AnyConnection,
    ty: &ResourceType,
    queries: &[QuotaQuery],
    params: &Value,
    besides: Besides<'_>,
) -> ServiceResult<Vec<QuotaUsage>> {
    let scopes: Vec<Option<String>> = queries
        .iter()
        .map(|q| storage::quota::scope_of(&ty.quota[q.rule_index], params))
        .collect();
    let asked: Vec<(usize, String)> = queries
        .iter()
        .zip(&scopes)
        .filter_map(|(q, scope)| Some((q.rule_index, scope.clone()?)))
        .collect();
    let mut read = storage::quota::usages(conn, ty, &asked).await?.into_iter();
    let mut used = Vec::with_capacity(queries.len());
    for (query, scope) in queries.iter().zip(&scopes) {
        let Some(scope) = scope else {
            used.push(QuotaUsage::default());
            continue;
        };
        let mut usage = read.next().unwrap_or_default();
        let rule = &ty.quota[query.rule_index];
        match besides {
            Besides::Nothing => {}
            Besides::Revised(own) => {
                if own.state.is_in_flight()
                    && storage::quota::scope_of(rule, &own.params).as_ref() == Some(scope)
                {
                    usage.count = usage.count.saturating_sub(1);
                    if let Some(sum) = &rule.sum {
                        usage.sum -= own.params.get(sum).and_then(whole_number).unwrap_or(0);
                    }
                }
            }
            Besides::Asset(on, reserved) => {
                let at = (query.rule_index, scope.as_str());
                usage = storage::quota::without_asset(ty, at, usage, &on.asset.params, reserved);
            }
        }
        used.push(usage);
    }
    Ok(used)
}

/// Counts one pre-check of the caller's; past `--checks-per-minute`, refused
/// with when to try again, having read nothing. A form checked as someone
/// types sends a few a second at most, while a script looping on the check
/// would take the database's connections from everyone else's pages and the
/// workers.
pub(crate) fn paced_check(state: &AppState, user: &Caller) -> ServiceResult<()> {
    state.check_pace.call(user.user.id.0).map_err(|wait| {
        ServiceError::TooMany(
            format!(
                "you ran more than {} pre-checks in a minute; wait {} s",
                state.check_pace.per_minute(),
                wait.as_secs().max(1)
            ),
            Some(wait),
        )
    })
}

/// Runs every rule of the pre-check against the current data. `exclude` leaves the
/// request being revised out of its own quota.
pub(crate) async fn compute_precheck(
    conn: &mut AnyConnection,
    state: &AppState,
    ty: &ResourceType,
    validator: &ParamValidator,
    params: &Value,
    exclude: Option<RequestId>,
    acting_on: Option<ActingOn<'_>>,
) -> ServiceResult<PrecheckReport> {
    // An action is checked against its asset's type's quota (one that retires the
    // asset only frees room).
    let counted = acting_on.filter(|on| !on.action.retires);
    let quota_ty = counted.map_or(ty, |on| on.ty);
    if holds_nul(params) {
        // Nothing stored holds a NUL (and PostgreSQL cannot compare one): no read,
        // and the report fails on the field's own error.
        return Ok(precheck::evaluate(validator, ty, params, &[], &[]));
    }
    let queries = precheck::quota_queries(quota_ty, params);
    let own = match exclude {
        Some(id) if !queries.is_empty() => storage::requests::get(conn, id).await?,
        _ => None,
    };
    let besides = match (counted, own.as_ref()) {
        (Some(on), own) => {
            let reserved = own.filter(|r| r.state.is_in_flight()).map(|r| &r.params);
            Besides::Asset(on, reserved)
        }
        (None, Some(own)) => Besides::Revised(own),
        (None, None) => Besides::Nothing,
    };
    let usages = usages(conn, quota_ty, &queries, params, besides).await?;
    // A requirement that cannot be evaluated while fields are still missing is normal;
    // with every field valid it must block, never pass unchecked.
    let (dependency_queries, dependency_error) = match precheck::dependency_queries(ty, params) {
        Ok(queries) => (queries, None),
        Err(error) => (Vec::new(), Some(error)),
    };
    let mut found = Vec::with_capacity(dependency_queries.len());
    for query in &dependency_queries {
        let hit = find_required_asset(conn, state.db.engine, query).await?;
        let retired_by = match &hit {
            Some(asset) => retiring(conn, state, &query.type_name, asset).await?,
            None => None,
        };
        found.push(DependencyFound {
            asset_name: hit.map(|a| a.summary.name),
            retired_by: retired_by.map(|id| id.0),
        });
    }
    let mut report = precheck::evaluate(validator, ty, params, &usages, &found);
    if let Some(on) = acting_on {
        let errors = std::mem::take(&mut report.field_errors);
        report.field_errors =
            slipway_core::action::own_errors(on.action, params, &on.asset.params, errors);
        // An action works on its asset under the name the asset has, even one
        // today's naming rule would no longer give (a shorter limit since).
        report.resource_name = Some(on.asset.summary.name.clone());
        if on.action.retires {
            // What an asset requires is needed to make or change it, not to
            // retire it: a namespace gone first must not keep its database for ever.
            report.dependencies.retain(|d| d.ok);
        }
    }
    if let Some(on) = counted {
        report.quotas = precheck::action_quota_report(
            on.ty,
            &on.asset.params,
            params,
            &usages,
            &report.field_errors,
        );
    }
    let retiring = acting_on.is_some_and(|on| on.action.retires);
    if let Some(error) = dependency_error
        && report.field_errors.is_empty()
        && !retiring
    {
        report.field_errors.push(FieldError {
            field: String::new(),
            message: format!("the requirements could not be checked: {error}"),
        });
    }
    if let Some(on) = acting_on {
        let problems =
            super::actions::asset_problems(conn, state, (validator, params), on, exclude).await?;
        report.field_errors.extend(problems);
        let refused = slipway_core::action::rule_errors(on.action, params, &on.asset.params);
        report.field_errors.extend(refused);
    } else if let Some(name) = &report.resource_name
        && let Some(taken_by) = name_taken(conn, &ty.name, name, exclude).await?
    {
        report.field_errors.push(FieldError {
            field: String::new(),
            message: name_taken_message(name, &taken_by),
        });
    }
    Ok(report)
}

fn name_taken_message(name: &str, taken_by: &str) -> String {
    format!("the resource name {name} is already taken by {taken_by}")
}

async fn name_taken(
    conn: &mut AnyConnection,
    type_name: &str,
    name: &str,
    exclude: Option<RequestId>,
) -> ServiceResult<Option<String>> {
    use storage::requests::NameHolder;
    Ok(
        match storage::requests::name_holder(conn, type_name, name, exclude).await? {
            Some(NameHolder::Asset { id, state }) if state == storage::assets::ACTIVE => {
                Some(format!("asset #{id}"))
            }
            Some(NameHolder::Asset { id, state }) => {
                Some(format!("asset #{id}, {state} (its history keeps the name)"))
            }
            Some(NameHolder::Request(id)) => Some(format!("request #{id}")),
            None => None,
        },
    )
}

/// The request in flight that retires `asset` (a decommission asked for,
/// approved or running), if any: the asset is leaving, and nothing new may come
/// to depend on it (the check that refuses to retire an asset still required
/// ran when the decommission was asked for).
async fn retiring(
    conn: &mut AnyConnection,
    state: &AppState,
    type_name: &str,
    asset: &AssetRow,
) -> ServiceResult<Option<RequestId>> {
    let actions: Vec<&str> = state
        .catalog
        .resource_type(type_name)
        .map(|t| {
            t.actions
                .iter()
                .filter(|a| a.retires)
                .map(|a| a.name.as_str())
                .collect()
        })
        .unwrap_or_default();
    if actions.is_empty() {
        return Ok(None);
    }
    Ok(storage::requests::retiring(conn, asset.summary.id, &actions).await?)
}

/// The active asset a requirement points at, if one exists.
pub(crate) async fn find_required_asset(
    conn: &mut AnyConnection,
    engine: Engine,
    query: &DependencyQuery,
) -> ServiceResult<Option<AssetRow>> {
    let lookup = Lookup {
        type_name: query.type_name.clone(),
        keys: query.r#match.keys().cloned().collect(),
    };
    let values: Vec<String> = query.r#match.values().cloned().collect();
    Ok(storage::lookup::find_asset(conn, engine, &lookup, &values).await?)
}

#[instrument(skip_all, fields(type_name = %type_name))]
pub async fn precheck(
    state: &AppState,
    user: &Caller,
    type_name: &str,
    params: &Value,
    exclude: Option<RequestId>,
) -> ServiceResult<PrecheckReport> {
    policy::may_request(user).map_err(ServiceError::refused)?;
    paced_check(state, user)?;
    let (ty, validator) = type_and_validator(state, type_name)?;
    let mut conn = state.db.pool.acquire().await?;
    // The request being revised must be one the caller may see: comparing answers
    // with and without it would tell another team's request's parameters.
    let revised = match exclude {
        Some(id) => {
            let request = load_request(&mut conn, id).await?;
            authorize(state, user, Verb::View, &request)?;
            Some(request).filter(|r| r.type_name == ty.name)
        }
        None => None,
    };
    // On a revise form an empty secret keeps the stored one; the check must know it.
    // Only a request of this type leaves its own quota: another type's request
    // named here would take its count out of a scope it is not in.
    let exclude = revised.as_ref().map(|r| r.id);
    let previous = revised
        .filter(|_| !ty.secret_params().is_empty())
        .map(|r| r.params);
    let split = secret::split(ty, params, previous.as_ref());
    let checked = secret::reveal(&split.params, &split.given);
    let mut report =
        compute_precheck(&mut conn, state, ty, validator, &checked, exclude, None).await?;
    if let Some(error) = team_error(ty, user, params) {
        // Another team's usage and requests in flight are theirs to see: the form
        // names the team rule, not which of their names are taken and by what.
        report.quotas.clear();
        if let Some(name) = &report.resource_name {
            let taken = name_taken_message(name, "");
            report
                .field_errors
                .retain(|e| !e.message.starts_with(&taken));
        }
        report.field_errors.push(error);
    }
    report.field_errors.extend(unavailable_error(state, ty));
    Ok(report)
}

/// The team boundary as the form shows it: on the field that names the team.
fn team_error(ty: &ResourceType, user: &Caller, params: &Value) -> Option<FieldError> {
    let owner = ty.owner_param.as_ref()?;
    let facts = RequestFacts::new(ty, params, RequestState::Draft, user.id);
    let refusal = policy::may(user, Verb::Submit, &facts).err()?;
    Some(FieldError::new(&owner.param, refusal.to_string()))
}

/// Whether this person may ask for a request with these parameters (a new one, or
/// a new revision of `request`).
pub(crate) fn authorize_params(
    ty: &ResourceType,
    user: &Caller,
    verb: Verb,
    params: &Value,
    request: Option<&RequestRow>,
) -> ServiceResult<()> {
    let facts = match request {
        Some(r) => RequestFacts::new(ty, params, r.state, r.requester_id),
        None => RequestFacts::new(ty, params, RequestState::Draft, user.id),
    };
    let what = request.map_or_else(
        || "a new request".to_string(),
        |r| format!("request #{}", r.id),
    );
    policy::may(user, verb, &facts).map_err(|refusal| ServiceError::from_refusal(refusal, &what))
}

/// The pre-check and the rendered change set of a request that is not made.
#[instrument(skip_all, fields(type_name = %type_name))]
pub async fn dry_run(
    state: &AppState,
    user: &Caller,
    type_name: &str,
    params: &Value,
) -> ServiceResult<DryRun> {
    let report = precheck(state, user, type_name, params, None).await?;
    if !report.passed() {
        return Ok(DryRun {
            precheck: report,
            change_set: None,
            change_set_hash: None,
        });
    }
    let (ty, validator) = type_and_validator(state, type_name)?;
    let mut conn = state.db.pool.acquire().await?;
    let prepared = prepare(&mut conn, state, ty, validator, params, None, None, None).await?;
    Ok(DryRun {
        precheck: report,
        change_set: Some(prepared.change_set),
        change_set_hash: Some(prepared.hash),
    })
}

pub(crate) struct Prepared {
    /// The parameters as stored: secrets split off, placeholders in their place.
    pub split: Split,
    pub report: PrecheckReport,
    pub resource_name: String,
    pub change_set: ChangeSet,
    pub hash: String,
}

/// A request that this server could never carry out is refused before it is
/// made, rather than failing after its review.
fn runs_here(state: &AppState, ty: &ResourceType) -> ServiceResult<()> {
    match unavailable_here(state, ty) {
        Some(why) => Err(ServiceError::Conflict(why)),
        None => Ok(()),
    }
}

/// Why requests of this type cannot be carried out by this server, if they cannot:
/// the type runs a program the allow-list does not let run, names a PostgreSQL
/// server or a pipeline token the settings do not have, or generates a secret
/// without a key to keep it. The catalog, the pre-check and the submit all say
/// it in these words.
pub(crate) fn unavailable_here(state: &AppState, ty: &ResourceType) -> Option<String> {
    let title = &ty.title;
    let command = &state.drivers.command;
    let steps = ty.execute.iter().filter_map(|step| match step {
        ExecutionStep::Command(step) => Some(step),
        _ => None,
    });
    // Each program a step or a check runs, then each server one names.
    let programs = steps
        .clone()
        .map(|step| command.allows(&step.program))
        .chain(ty.checks.iter().filter_map(|check| match &check.kind {
            CheckKind::Command { program, .. } => Some(command.allows(program)),
            _ => None,
        }));
    let servers = steps
        .filter_map(|step| step.postgres_server.as_deref())
        .chain(ty.checks.iter().filter_map(|check| match &check.kind {
            CheckKind::Postgres { server, .. } => Some(server.as_str()),
            _ => None,
        }))
        .map(|server| command.postgres_server(server).map(drop));
    let unknown = programs.chain(servers).find_map(Result::err);
    if let Some(why) = unknown.or_else(|| missing_pipeline_token(state, ty)) {
        return Some(format!(
            "{title} cannot be requested on this Slipway yet: {why}; ask the platform team"
        ));
    }
    if !ty.generated_secrets.is_empty() && state.secrets.is_none() {
        return Some(format!(
            "{title} cannot be requested on this Slipway yet: it generates secrets, which need a key ({}); ask the platform team",
            crate::secrets::KEY_SETTING
        ));
    }
    None
}

/// A `pipeline` step's token the settings do not name: the step would fail
/// when it runs, after the request's review, instead of before it.
fn missing_pipeline_token(state: &AppState, ty: &ResourceType) -> Option<String> {
    let tokens = &state.settings.outbound.pipeline_tokens;
    ty.execute
        .iter()
        .filter_map(|step| match step {
            ExecutionStep::Pipeline(step) => step.token.as_ref(),
            _ => None,
        })
        .find(|token| !tokens.contains_key(&token.name))
        .map(|token| {
            format!(
                "its pipeline step sends the token {:?}, which the server's {} setting does not name",
                token.name,
                crate::drivers::pipeline::TOKENS_SETTING
            )
        })
}

/// The same refusal as a line of the pre-check, so the form says it before the
/// submit does.
pub(crate) fn unavailable_error(state: &AppState, ty: &ResourceType) -> Option<FieldError> {
    unavailable_here(state, ty).map(|message| FieldError {
        field: String::new(),
        message,
    })
}

/// Splits the secrets off, pre-checks (secrets on their real values), then renders
/// from the split parameters: a request is stored only when all succeed. `previous`
/// is the stored parameters of the revision being revised, whose secrets an empty
/// field keeps; `acting_on` the asset a day-2 action acts on.
#[expect(
    clippy::too_many_arguments,
    reason = "the pre-check's inputs, each named at the call"
)]
pub(crate) async fn prepare(
    conn: &mut AnyConnection,
    state: &AppState,
    ty: &ResourceType,
    validator: &ParamValidator,
    params: &Value,
    exclude: Option<RequestId>,
    previous: Option<&Value>,
    acting_on: Option<ActingOn<'_>>,
) -> ServiceResult<Prepared> {
    runs_here(state, ty)?;
    let mut split = secret::split(ty, params, previous);
    if let Some(on) = acting_on {
        // Secrets given when the asset was made stay with that request.
        let inherited = slipway_core::action::inherited_secrets(on.action, &on.asset.params);
        split.kept.retain(|name| !inherited.contains(name));
    }
    let checked = secret::reveal(&split.params, &split.given);
    let report = compute_precheck(conn, state, ty, validator, &checked, exclude, acting_on).await?;
    if !report.passed() {
        return Err(ServiceError::PrecheckFailed(Box::new(report)));
    }
    let resource_name = report
        .resource_name
        .clone()
        .ok_or_else(|| ServiceError::Internal("a passing pre-check has no resource name".into()))?;
    let required_assets: Vec<String> = report
        .dependencies
        .iter()
        .filter_map(|d| d.found.clone())
        .collect();
    let referred = match acting_on {
        Some(on) => super::actions::referred_request(conn, on, &split.params)
            .await?
            .map(|(_, params)| params),
        None => None,
    };
    let mut change_set = render::change_set_referring(
        &state.catalog.catalog,
        ty,
        &split.params,
        &resource_name,
        (&required_assets, referred.as_ref()),
    )
    .map_err(|e| {
        let mut message = format!("the change could not be rendered: {e}");
        // An upgrade or a retirement renders what the asset lacks without
        // asking for it (see `own_errors`): name it, and whose fix it is.
        let lacked = match acting_on {
            Some(_) => slipway_core::action::lacked_required(validator, &checked),
            None => Vec::new(),
        };
        for param in &lacked {
            message.push_str(&format!(
                "; the asset has no {param} ({})",
                slipway_core::action::lacked_since(ty, param)
            ));
        }
        ServiceError::Invalid(vec![FieldError {
            field: String::new(),
            message,
        }])
    })?;
    let acting_on_asset = acting_on.map(|on| on.asset.summary.id);
    super::deployed_paths::keep_to_own_paths(conn, ty, acting_on_asset, &mut change_set).await?;
    let hash = change_set.hash();
    Ok(Prepared {
        split,
        report,
        resource_name,
        change_set,
        hash,
    })
}

/// After (re)submission within `caller`'s call: the type's policy approves it, or it
/// waits for a reviewer. The policy's events keep the call's origin.
async fn route_for_review(
    conn: &mut AnyConnection,
    state: &AppState,
    (request, caller): (&mut RequestRow, &Caller),
    ty: &ResourceType,
    params: &Value,
    hash: &str,
) -> ServiceResult<()> {
    let policy = |rule: String| Actor::PolicyInCall {
        rule,
        origin: caller.origin(),
    };
    if precheck::auto_approves(ty, params) {
        let policy = policy(format!("{}.auto_approve", ty.name));
        let rule = ty.review.auto_approve_when.clone().unwrap_or_default();
        storage::requests::insert_decision(
            conn,
            &NewDecision {
                request_id: request.id,
                revision: request.current_revision,
                reviewer_id: None,
                decision: "auto_approve",
                comment: &format!("auto-approved by the catalog policy: {rule}"),
                change_set_hash: hash,
            },
        )
        .await?;
        transition(
            conn,
            state,
            request,
            Action::AutoApprove,
            &policy,
            format!("policy {rule}; change set {hash}"),
        )
        .await?;
        approve_and_enqueue(conn, ty, request, hash, params).await
    } else {
        transition(
            conn,
            state,
            request,
            Action::EnterReview,
            &policy("review".into()),
            format!("waits for the {} role", ty.review.approver_role),
        )
        .await?;
        Ok(())
    }
}

/// Binds the approval to the exact change set and parameters, and queues the
/// execution, in the caller's transaction.
pub(crate) async fn approve_and_enqueue(
    conn: &mut AnyConnection,
    ty: &ResourceType,
    request: &RequestRow,
    hash: &str,
    params: &Value,
) -> ServiceResult<()> {
    let params_hash = render::params_hash(params);
    let approval = Approval {
        revision: request.current_revision,
        change_set_hash: hash,
        params_hash: &params_hash,
    };
    storage::requests::set_approval(conn, request.id, Some(approval)).await?;
    enqueue_apply(conn, ty, request.id).await?;
    Ok(())
}

const MAX_SUBMIT_KEY: usize = 100;

/// A form's submit key, trimmed, within its length and printable (PostgreSQL
/// cannot even compare a text holding NUL), and not one of the keys the template
/// upgrades are opened under: those keys are all visible, and a request of
/// someone's under one, cancelled, would read as the team declining the upgrade.
pub(crate) fn checked_submit_key(key: &str) -> ServiceResult<&str> {
    let key = key.trim();
    if key.is_empty() || key.len() > MAX_SUBMIT_KEY || key.chars().any(char::is_control) {
        return Err(ServiceError::Invalid(vec![FieldError {
            field: "submit_key".into(),
            message: format!(
                "must be 1 to {MAX_SUBMIT_KEY} characters, none of them a control character"
            ),
        }]));
    }
    let prefix = super::upgrades::SUBMIT_KEY_PREFIX;
    if key.starts_with(prefix) {
        return Err(ServiceError::Invalid(vec![FieldError {
            field: "submit_key".into(),
            message: format!(
                "must not start with {prefix:?}: Slipway opens the template upgrades under such keys"
            ),
        }]));
    }
    Ok(key)
}

/// Submits a new request. The same submit key twice returns the first request, so a
/// double-clicked button creates one request.
#[instrument(skip_all, fields(type_name = %draft.type_name))]
pub async fn submit(
    state: &AppState,
    user: &Caller,
    draft: &RequestDraft,
) -> ServiceResult<RequestId> {
    let (ty, validator) = type_and_validator(state, &draft.type_name)?;
    authorize_params(ty, user, Verb::Submit, &draft.params, None)?;
    let key = checked_submit_key(&draft.submit_key)?;
    let mut tx = state.db.write().await?;
    storage::requests::serialize_submissions_of(&mut tx, state.db.engine, &turns_of(ty)).await?;
    let asked = Asked::New {
        ty,
        params: &draft.params,
    };
    if let Some(existing) = earlier_submission(&mut tx, user, key, asked).await? {
        return Ok(existing);
    }
    let prepared = prepare(
        &mut tx,
        state,
        ty,
        validator,
        &draft.params,
        None,
        None,
        None,
    )
    .await?;
    let actor = Actor::User(user.clone());
    let id = store_submission(&mut tx, state, (user, &actor), (ty, key), &prepared, None).await?;
    tx.commit().await?;
    state.jobs_ready.notify_one();
    Ok(id)
}

/// The submission turns a creation of `ty` takes: its own, and those of the
/// types it requires.
fn turns_of(ty: &ResourceType) -> Vec<&str> {
    std::iter::once(ty.name.as_str())
        .chain(ty.requires.iter().map(|r| r.type_name.as_str()))
        .collect()
}

/// What a submission asks for, to tell a retry from a key used again.
pub(crate) enum Asked<'a> {
    New {
        ty: &'a ResourceType,
        params: &'a Value,
    },
    Action {
        asset_id: slipway_core::ids::AssetId,
        name: &'a str,
        /// The action's request type, when the catalog still has it.
        ty: Option<&'a ResourceType>,
        params: &'a Value,
    },
}

/// The request an earlier call with this submit key made: a retry gets it back.
/// A key sent again with something else (a client with a fixed key, or a key
/// reused once its idempotency record was forgotten) is refused rather than
/// answered with the old request as if it were the new one.
pub(crate) async fn earlier_submission(
    tx: &mut AnyConnection,
    user: &Caller,
    key: &str,
    asked: Asked<'_>,
) -> ServiceResult<Option<RequestId>> {
    let Some(id) = storage::requests::by_submit_key(tx, user.id, key).await? else {
        return Ok(None);
    };
    let request = load_request(tx, id).await?;
    let first = storage::requests::revision(tx, id, 1).await?;
    let stored = first.as_ref().map_or(&Value::Null, |r| &r.params);
    let same = match asked {
        Asked::New { ty, params } => {
            request.asset_id.is_none()
                && request.type_name == ty.name
                && asks_no_more_than(&secret::split(ty, params, None).params, stored)
        }
        Asked::Action {
            asset_id,
            name,
            ty,
            params,
        } => {
            let given = ty.map_or_else(
                || params.clone(),
                |ty| secret::split(ty, params, None).params,
            );
            request.asset_id == Some(asset_id)
                && request.action.as_deref() == Some(name)
                && asks_no_more_than(&given, stored)
        }
    };
    if !same {
        return Err(ServiceError::Invalid(vec![FieldError::new(
            "submit_key",
            format!(
                "was used for request #{id}, which asked for something else; a new request needs a new key"
            ),
        )]));
    }
    // An API client's Idempotency-Key stands for one call's retries, which the
    // API keeps answering for two days; after that the same key is not taken for
    // a retry (a client that makes its keys from the body would otherwise get
    // its first backup back for ever, as if made now).
    let api_key_expired = key.starts_with(API_KEY_PREFIX)
        && storage::now_millis() - request.created_at > API_KEY_KEPT_MS;
    if api_key_expired {
        return Err(ServiceError::Invalid(vec![FieldError::new(
            "Idempotency-Key",
            format!(
                "was used for request #{id} more than two days ago; a new request needs a new key"
            ),
        )]));
    }
    Ok(Some(id))
}

/// How the API marks a submit key that is a client's Idempotency-Key.
pub const API_KEY_PREFIX: &str = "idem:";
/// How long the API answers a retry with an Idempotency-Key: two days.
pub const API_KEY_KEPT_MS: i64 = 48 * 60 * 60 * 1000;

/// Whether every parameter given is stored with the same value (what was stored
/// also holds the defaults the first call left out).
fn asks_no_more_than(given: &Value, stored: &Value) -> bool {
    given
        .as_object()
        .is_some_and(|given| given.iter().all(|(k, v)| stored.get(k) == Some(v)))
}

/// Stores a prepared request (a new one, or a day-2 action on `action`'s asset)
/// with its first revision and secrets, submits it and routes it to review, in
/// the caller's transaction.
pub(crate) async fn store_submission(
    tx: &mut AnyConnection,
    state: &AppState,
    (user, actor): (&Caller, &Actor),
    (ty, key): (&ResourceType, &str),
    prepared: &Prepared,
    action: Option<ActionTarget<'_>>,
) -> ServiceResult<RequestId> {
    let id = storage::requests::insert(
        tx,
        &NewRequest {
            type_name: &ty.name,
            resource_name: &prepared.resource_name,
            requester_id: user.id,
            state: RequestState::Draft,
            submit_key: key,
            action,
        },
    )
    .await?;
    storage::requests::insert_revision(
        tx,
        &NewRevision {
            request_id: id,
            revision: 1,
            params: &prepared.split.params,
            team: ty.owning_team(&prepared.split.params),
            environment: ty.environment(&prepared.split.params),
            precheck: &prepared.report,
            change_set: &prepared.change_set,
            change_set_hash: &prepared.hash,
            catalog_version: &ty.version,
            author_id: user.id,
        },
    )
    .await?;
    secrets::store(tx, state, id, 1, &prepared.split, None).await?;
    secrets::store_generated(tx, state, ty, id, 1, None).await?;
    let mut request = load_request(tx, id).await?;
    transition(
        tx,
        state,
        &mut request,
        Action::Submit,
        actor,
        format!("revision 1, change set {}", prepared.hash),
    )
    .await?;
    route_for_review(
        tx,
        state,
        (&mut request, user),
        ty,
        &prepared.split.params,
        &prepared.hash,
    )
    .await?;
    tracing::info!(request_id = %id, state = request.state.as_str(), "request submitted");
    Ok(id)
}

/// The requester's answer to "changes requested": a new revision, earlier approvals void.
#[instrument(skip_all, fields(request_id = %id))]
/// A new revision of request `id`, of its newest revision whichever it is.
pub async fn resubmit(
    state: &AppState,
    user: &Caller,
    id: RequestId,
    params: &Value,
) -> ServiceResult<()> {
    resubmit_from(state, user, (id, None), params).await
}

/// A new revision of request `id`; with `base`, only while `base` is its
/// newest revision (the one the form was opened on): a form gone stale is
/// refused, never a quiet overwrite of the revision made since.
pub async fn resubmit_from(
    state: &AppState,
    user: &Caller,
    (id, base): (RequestId, Option<i64>),
    params: &Value,
) -> ServiceResult<()> {
    let mut tx = state.db.write().await?;
    let type_name = load_request(&mut tx, id).await?.type_name;
    let turns = match state.catalog.catalog.types.get(&type_name) {
        Some(ty) => turns_of(ty),
        None => vec![type_name.as_str()],
    };
    storage::requests::serialize_submissions_of(&mut tx, state.db.engine, &turns).await?;
    // Read again under the turn: another writer may have moved it meanwhile.
    let mut request = load_request(&mut tx, id).await?;
    // Before the request's type or action says anything in an answer: a stranger
    // learns only that the request is not theirs.
    super::authorize(state, user, Verb::Revise, &request)?;
    if let Some(base) = base
        && base != request.current_revision
    {
        return Err(ServiceError::Conflict(format!(
            "request #{id} is at revision {} now, not {base}, which this revision was made \
             from; open it again to revise its newest revision",
            request.current_revision
        )));
    }
    let ty = super::request_type(state, &request)?;
    let validator = state
        .catalog
        .request_validator(&request.type_name, request.action.as_deref())
        .ok_or_else(|| ServiceError::Internal(format!("no validator for {}", ty.name)))?;
    // A day-2 action's revision gives the action's parameters; the asset fills in the rest.
    let (params, asset) = match request.asset_id {
        Some(asset_id) => {
            let (merged, asset) =
                super::actions::revision_params(&mut tx, state, &request, asset_id, params).await?;
            (merged, Some(asset))
        }
        None => (params.clone(), None),
    };
    let action = request.action.as_deref().and_then(|name| {
        state
            .catalog
            .resource_type(&request.type_name)
            .and_then(|t| t.action(name))
    });
    let base = state.catalog.resource_type(&request.type_name);
    let acting_on = match (asset.as_ref(), base, action) {
        (Some(asset), Some(ty), Some(action)) => Some(ActingOn { asset, ty, action }),
        _ => None,
    };
    authorize_params(ty, user, Verb::Revise, &params, Some(&request))?;
    let previous_revision = request.current_revision;
    let mut prepared = prepare(
        &mut tx,
        state,
        ty,
        validator,
        &params,
        Some(id),
        Some(&request.params),
        acting_on,
    )
    .await?;
    // A revised retirement or upgrade removes what its first revision removed.
    if let (Some(asset), Some(action)) = (asset.as_ref(), action)
        && action.covers_every_output()
    {
        super::actions::remove_unwritten(&mut tx, ty, asset, &mut prepared).await?;
    }
    // Revised back to what the asset has, an action would change nothing.
    if let Some(on) = acting_on {
        let files = super::actions::deployed_files(state, &prepared.change_set).await?;
        super::actions::refuse_changing_nothing(on, &params, &prepared.change_set, &files)?;
    }
    let revision = previous_revision + 1;
    storage::requests::insert_revision(
        &mut tx,
        &NewRevision {
            request_id: id,
            revision,
            params: &prepared.split.params,
            team: ty.owning_team(&prepared.split.params),
            environment: ty.environment(&prepared.split.params),
            precheck: &prepared.report,
            change_set: &prepared.change_set,
            change_set_hash: &prepared.hash,
            catalog_version: &ty.version,
            author_id: user.id,
        },
    )
    .await?;
    secrets::store(
        &mut tx,
        state,
        id,
        revision,
        &prepared.split,
        Some(previous_revision),
    )
    .await?;
    secrets::store_generated(&mut tx, state, ty, id, revision, Some(previous_revision)).await?;
    storage::requests::set_revision(&mut tx, id, revision, &prepared.resource_name).await?;
    super::quota_hold::on_revision(&mut tx, state, &request, &prepared.split.params).await?;
    request.params = prepared.split.params.clone();
    let voided = storage::requests::void_decisions(&mut tx, id).await?;
    storage::requests::set_approval(&mut tx, id, None).await?;
    request.current_revision = revision;
    let actor = Actor::User(user.clone());
    transition(
        &mut tx,
        state,
        &mut request,
        Action::Resubmit,
        &actor,
        format!(
            "revision {revision}, change set {}; {voided} earlier decision(s) voided",
            prepared.hash
        ),
    )
    .await?;
    route_for_review(
        &mut tx,
        state,
        (&mut request, user),
        ty,
        &prepared.split.params,
        &prepared.hash,
    )
    .await?;
    tx.commit().await?;
    state.jobs_ready.notify_one();
    Ok(())
}

#[instrument(skip_all, fields(request_id = %id))]
pub async fn cancel(state: &AppState, user: &Caller, id: RequestId) -> ServiceResult<()> {
    let mut tx = state.db.write().await?;
    let mut request = load_request(&mut tx, id).await?;
    authorize(state, user, Verb::Cancel, &request)?;
    let running = matches!(
        request.state,
        RequestState::Executing | RequestState::Verifying
    );
    let note = if running {
        format!(
            "cancelled by {} while it ran: the job is stopped; steps that already took effect stay, so retry it or take it over and clean up",
            user.username
        )
    } else {
        String::new()
    };
    transition(
        &mut tx,
        state,
        &mut request,
        Action::Cancel,
        &Actor::User(user.clone()),
        note.clone(),
    )
    .await?;
    // A queued job ends now; a running one stops at its worker's next heartbeat,
    // whichever replica runs it.
    jobs::stop_for_request(&mut tx, id, &user.username).await?;
    if running {
        storage::requests::set_error(&mut tx, id, Some(&note)).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The policy that closes a request nobody revised, as the audit and the
/// request's history name it.
pub const CLOSE_UNREVISED_RULE: &str = "close-unrevised";

/// Requests closed per pass of [`close_unrevised`]; the next pass, ten
/// minutes on, closes more.
const CLOSE_UNREVISED_BATCH: i64 = 200;

/// Cancels the requests sent back for changes and not revised since `before`
/// (milliseconds): each held its name and its team's quota while nobody meant
/// to finish it. Template upgrades wait on (see
/// [`storage::requests::unrevised_since`]). Each in a transaction of its own,
/// as a policy: the requester reads why in the request's history (and in chat,
/// when linked), and submits it again when ready. A request revised or cancelled meanwhile (here or by
/// another replica) is left as it is. Returns how many were closed.
pub async fn close_unrevised(state: &AppState, before: i64) -> ServiceResult<u64> {
    let candidates = {
        let mut conn = state.db.pool.acquire().await?;
        let kept = slipway_core::catalog::TypeAction::UPGRADE;
        storage::requests::unrevised_since(&mut conn, before, (kept, CLOSE_UNREVISED_BATCH)).await?
    };
    let actor = Actor::Policy(CLOSE_UNREVISED_RULE.to_string());
    let mut closed = 0;
    for id in candidates {
        let mut tx = state.db.write().await?;
        let mut request = load_request(&mut tx, id).await?;
        if request.state != RequestState::ChangesRequested || request.updated_at >= before {
            continue;
        }
        let waited = (storage::now_millis() - request.updated_at) / 86_400_000;
        let note = format!(
            "closed: changes were requested {waited} days ago and no revision came; \
             submit it again when it is ready"
        );
        match transition(&mut tx, state, &mut request, Action::Cancel, &actor, note).await {
            Ok(_) => {
                tx.commit().await?;
                closed += 1;
            }
            Err(ServiceError::Conflict(_)) => {}
            Err(error) if error.is_transient() => return Err(error),
            // One that cannot be closed must not hold up the others behind it.
            Err(error) => {
                tracing::warn!(%error, request_id = %id, "could not close a request left unrevised")
            }
        }
    }
    Ok(closed)
}

pub(crate) fn summary(state: &AppState, row: &RequestRow) -> RequestSummary {
    RequestSummary {
        id: row.id,
        type_name: row.type_name.clone(),
        type_title: state
            .catalog
            .request_type(&row.type_name, row.action.as_deref())
            .map(|t| t.title.clone())
            .unwrap_or_else(|| row.type_name.clone()),
        resource_name: row.resource_name.clone(),
        state: row.state,
        revision: row.current_revision,
        requester: row.requester.clone(),
        created_at: format_millis(row.created_at),
        updated_at: format_millis(row.updated_at),
    }
}

/// Reads a page of requests and keeps those the policy lets this person `verb`.
pub(crate) async fn visible_page(
    state: &AppState,
    user: &Caller,
    verb: Verb,
    list: &RequestList<'_>,
    page: PageRequest,
) -> ServiceResult<ListPage<RequestSummary>> {
    let mut conn = state.db.pool.acquire().await?;
    let rows = storage::requests::list(&mut conn, list, page).await?;
    Ok(ListPage {
        items: rows
            .items
            .iter()
            .filter(|r| policy::may(user, verb, &super::facts(state, r)).is_ok())
            .map(|r| summary(state, r))
            .collect(),
        newer: rows.newer,
        older: rows.older,
    })
}

/// The requests this person may see, narrowed by the filter, newest first.
pub async fn list(
    state: &AppState,
    user: &Caller,
    filter: &ListFilter,
    page: PageRequest,
) -> ServiceResult<ListPage<RequestSummary>> {
    let list = RequestList {
        filter: filter.clone(),
        reach: policy::view_reach(user, type_facts(state)),
        ..RequestList::default()
    };
    visible_page(state, user, Verb::View, &list, page).await
}

/// The requests this person made, narrowed by the filter, newest first.
pub async fn mine(
    state: &AppState,
    user: &Caller,
    filter: &ListFilter,
    page: PageRequest,
) -> ServiceResult<ListPage<RequestSummary>> {
    let list = RequestList {
        filter: filter.clone(),
        requester: Some(user.id),
        ..RequestList::default()
    };
    visible_page(state, user, Verb::View, &list, page).await
}

/// Requests the platform team must look at: failed or under manual handling,
/// newest first.
pub async fn needing_attention(
    state: &AppState,
    user: &Caller,
    filter: &ListFilter,
    page: PageRequest,
) -> ServiceResult<ListPage<RequestSummary>> {
    policy::may_handle_manually(user).map_err(ServiceError::refused)?;
    if let Some(wanted) = filter.state
        && !policy::NEEDS_ATTENTION.contains(&wanted)
    {
        return Err(ServiceError::Invalid(vec![FieldError::new(
            "state",
            format!(
                "needing attention holds only failed and manual requests, not {}",
                wanted.as_str()
            ),
        )]));
    }
    let list = RequestList {
        filter: filter.clone(),
        states: &policy::NEEDS_ATTENTION,
        ..RequestList::default()
    };
    visible_page(state, user, Verb::View, &list, page).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_submit_key_is_printable_and_bounded() {
        assert_eq!(checked_submit_key("  k-1  ").ok(), Some("k-1"));
        for bad in [
            "",
            "   ",
            "a\u{0}",
            "a\u{1b}[2J",
            &"k".repeat(MAX_SUBMIT_KEY + 1),
        ] {
            match checked_submit_key(bad) {
                Err(ServiceError::Invalid(errors)) => assert_eq!(errors[0].field, "submit_key"),
                other => panic!("{bad:?} was taken: {other:?}"),
            }
        }
    }
}
