//! Day-2 actions: a request against an existing asset (resize, upgrade, back up,
//! restore, decommission). It is a request like any other — pre-checked, reviewed
//! with its diff against what the asset has deployed, run by the drivers,
//! verified and audited — whose type is the action's request type, and whose
//! completion updates (or retires) the asset instead of recording a new one.

use serde_json::{Value, json};
use slipway_core::action;
use slipway_core::catalog::{ResourceType, TypeAction};
use slipway_core::diff;
use slipway_core::ids::{AssetId, RequestId};
use slipway_core::listing::indexed_words;
use slipway_core::policy::{self, AssetFacts, Verb};
use slipway_core::precheck::{self, PrecheckReport};
use slipway_core::render::{self, ChangeSet, RenderedFile};
use slipway_core::secret;
use slipway_core::state::RequestState;
use slipway_core::validate::{FieldError, ParamValidator};
use slipway_core::views::{ActionChoice, ActionContext, ActionDraft, ActionForm, DeployedDiff};
use sqlx::AnyConnection;
use tracing::instrument;

use super::requests::{
    Prepared, authorize_params, checked_submit_key, compute_precheck, prepare, store_submission,
};
use super::{Actor, Caller, ServiceError, ServiceResult, record};
use crate::state::AppState;
use crate::storage;
use crate::storage::assets::AssetRow;
use crate::storage::requests::{ActionTarget, RequestRow, RevisionRow};

/// The asset a request for an action acts on, and the action.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ActingOn<'a> {
    pub asset: &'a AssetRow,
    /// The asset's type, whose quota the action is checked against.
    pub ty: &'a ResourceType,
    pub action: &'a TypeAction,
}

/// An asset with its type and the named action of that type.
struct Target<'a> {
    asset: AssetRow,
    ty: &'a ResourceType,
    action: &'a TypeAction,
    validator: &'a ParamValidator,
}

impl Target<'_> {
    fn acting_on(&self) -> ActingOn<'_> {
        ActingOn {
            asset: &self.asset,
            ty: self.ty,
            action: self.action,
        }
    }
}

fn asset_type<'a>(state: &'a AppState, asset: &AssetRow) -> ServiceResult<&'a ResourceType> {
    state
        .catalog
        .resource_type(&asset.summary.type_name)
        .ok_or_else(|| {
            ServiceError::Conflict(format!(
                "asset #{}: its type {} is no longer in the catalog",
                asset.summary.id, asset.summary.type_name
            ))
        })
}

/// The action called `name` of the asset's type: an undeclared one is not found,
/// naming the ones there are.
fn declared<'a>(ty: &'a ResourceType, name: &str) -> ServiceResult<&'a TypeAction> {
    ty.action(name).ok_or_else(|| {
        let known: Vec<&str> = ty.actions.iter().map(|a| a.name.as_str()).collect();
        ServiceError::NotFound(format!(
            "action {name:?} of {} (its actions: {})",
            ty.name,
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        ))
    })
}

async fn target<'a>(
    state: &'a AppState,
    conn: &mut AnyConnection,
    asset_id: AssetId,
    name: &str,
) -> ServiceResult<Target<'a>> {
    let asset = storage::assets::get(conn, asset_id)
        .await?
        .ok_or_else(|| ServiceError::NotFound(format!("asset #{asset_id}")))?;
    let ty = asset_type(state, &asset)?;
    let action = declared(ty, name)?;
    let validator = state
        .catalog
        .request_validator(&ty.name, Some(name))
        .ok_or_else(|| ServiceError::Internal(format!("no validator for {}/{name}", ty.name)))?;
    Ok(Target {
        asset,
        ty,
        action,
        validator,
    })
}

/// An asset of a type with teams that names none (recorded before the catalog
/// required it) belongs to no team, not to everyone: as for a request.
fn facts<'a>(ty: &'a ResourceType, asset: &'a AssetRow) -> AssetFacts<'a> {
    let team = match (&ty.owner_param, ty.owning_team(&asset.params)) {
        (Some(_), None) => Some(policy::MISSING_TEAM),
        (_, team) => team,
    };
    AssetFacts {
        team,
        state: &asset.summary.state,
    }
}

/// The one rule, with a retired asset a conflict (it exists; its state forbids).
fn authorize(user: &Caller, ty: &ResourceType, asset: &AssetRow) -> ServiceResult<()> {
    let refused =
        |refusal| ServiceError::from_refusal(refusal, &format!("asset #{}", asset.summary.id));
    if !action::is_actionable(&asset.summary.state) {
        // Whose asset it is comes first: another team's is refused as such,
        // retired or not.
        let as_active = AssetFacts {
            state: action::ACTIVE,
            ..facts(ty, asset)
        };
        policy::may_act_on(user, &as_active).map_err(refused)?;
        return Err(ServiceError::Conflict(format!(
            "asset #{} is {}: it keeps its history but takes no more actions",
            asset.summary.id, asset.summary.state
        )));
    }
    policy::may_act_on(user, &facts(ty, asset)).map_err(refused)
}

fn choice(action: &TypeAction) -> ActionChoice {
    ActionChoice {
        name: action.name.clone(),
        title: action.title.clone(),
        description: action.description.clone(),
        retires: action.retires,
    }
}

/// The actions this person may take on the asset now, for its page.
pub fn choices(state: &AppState, user: &Caller, asset: &AssetRow) -> Vec<ActionChoice> {
    let Some(ty) = state.catalog.resource_type(&asset.summary.type_name) else {
        return Vec::new();
    };
    if policy::may_act_on(user, &facts(ty, asset)).is_err() {
        return Vec::new();
    }
    // The template upgrade is offered only to an asset its type's templates left behind.
    let behind = asset.catalog_version != ty.version;
    ty.actions
        .iter()
        .filter(|a| behind || !a.is_upgrade())
        .map(choice)
        .collect()
}

/// The form of an action on an asset, first filled from the asset.
pub async fn form(
    state: &AppState,
    user: &Caller,
    asset_id: AssetId,
    name: &str,
) -> ServiceResult<ActionForm> {
    let mut conn = state.db.pool.acquire().await?;
    let target = target(state, &mut conn, asset_id, name).await?;
    authorize(user, target.ty, &target.asset)?;
    Ok(ActionForm {
        initial: action::prefill(target.action, &target.asset.params),
        form_type: target.action.form_type_for(&target.asset.summary.name),
        action: choice(target.action),
        asset: target.asset.summary.clone(),
    })
}

/// The action's input checked for parameters it does not take, then laid over
/// the asset's recorded parameters.
fn merged_input(target: &Target<'_>, input: &Value) -> ServiceResult<Value> {
    let foreign = action::foreign_input(target.action, input);
    if !foreign.is_empty() {
        return Err(ServiceError::Invalid(foreign));
    }
    Ok(action::request_params(
        target.ty,
        &target.asset.params,
        input,
    ))
}

/// The pre-check of an action on an asset, as the form shows it while typing;
/// `exclude` is the request being revised.
#[instrument(skip_all, fields(asset_id = %asset_id, action = %name))]
pub async fn precheck(
    state: &AppState,
    user: &Caller,
    asset_id: AssetId,
    name: &str,
    input: &Value,
    exclude: Option<RequestId>,
) -> ServiceResult<PrecheckReport> {
    super::requests::paced_check(state, user)?;
    let mut conn = state.db.pool.acquire().await?;
    let target = target(state, &mut conn, asset_id, name).await?;
    authorize(user, target.ty, &target.asset)?;
    // As for a new request: only a request the caller may see is left out, and
    // only this asset's request for this action (another's would take its
    // count out of scopes it is not in, and the answer would pass a request
    // the submit then refuses).
    let exclude = match exclude {
        Some(id) => {
            let revised = super::load_request(&mut conn, id).await?;
            super::authorize(state, user, Verb::View, &revised)?;
            let ours = revised.asset_id == Some(asset_id)
                && revised.action.as_deref() == Some(target.action.name.as_str());
            ours.then_some(id)
        }
        None => None,
    };
    let foreign = action::foreign_input(target.action, input);
    let merged = action::request_params(target.ty, &target.asset.params, input);
    let ty = &target.action.request_type;
    let split = secret::split(ty, &merged, Some(&target.asset.params));
    let checked = secret::reveal(&split.params, &split.given);
    let mut report = compute_precheck(
        &mut conn,
        state,
        ty,
        target.validator,
        &checked,
        exclude,
        Some(target.acting_on()),
    )
    .await?;
    report.field_errors.extend(foreign);
    report
        .field_errors
        .extend(super::requests::unavailable_error(state, ty));
    Ok(report)
}

/// Asks for a day-2 action on an asset: a request of the action's request type,
/// pre-checked against the asset, its diff base (what the asset has deployed)
/// kept beside it. The same submit key twice returns the first request.
#[instrument(skip_all, fields(asset_id = %asset_id, action = %name))]
pub async fn submit(
    state: &AppState,
    user: &Caller,
    asset_id: AssetId,
    name: &str,
    draft: &ActionDraft,
) -> ServiceResult<RequestId> {
    let key = checked_submit_key(&draft.submit_key)?;
    let mut tx = state.db.write().await?;
    let type_name = storage::assets::get(&mut tx, asset_id)
        .await?
        .map(|a| a.summary.type_name)
        .ok_or_else(|| ServiceError::NotFound(format!("asset #{asset_id}")))?;
    storage::requests::serialize_submissions(&mut tx, state.db.engine, &type_name).await?;
    let asked = super::requests::Asked::Action {
        asset_id,
        name,
        ty: state
            .catalog
            .resource_type(&type_name)
            .and_then(|t| t.action(name))
            .map(|a| &a.request_type),
        params: &draft.params,
    };
    if let Some(existing) = super::requests::earlier_submission(&mut tx, user, key, asked).await? {
        return Ok(existing);
    }
    let target = target(state, &mut tx, asset_id, name).await?;
    authorize(user, target.ty, &target.asset)?;
    let merged = merged_input(&target, &draft.params)?;
    let ty = &target.action.request_type;
    authorize_params(ty, user, Verb::Submit, &merged, None)?;
    let mut prepared = prepare(
        &mut tx,
        state,
        ty,
        target.validator,
        &merged,
        None,
        Some(&target.asset.params),
        Some(target.acting_on()),
    )
    .await?;
    if target.action.covers_every_output() {
        remove_unwritten(&mut tx, ty, &target.asset, &mut prepared).await?;
    }
    let files = deployed_files(state, &prepared.change_set).await?;
    refuse_changing_nothing(target.acting_on(), &merged, &prepared.change_set, &files)?;
    let deployed = json!({ "params": target.asset.params, "files": files });
    let on = ActionTarget {
        asset_id,
        action: name,
        deployed: &deployed,
    };
    let actor = Actor::User(user.clone());
    let id = store_submission(
        &mut tx,
        state,
        (user, &actor),
        (ty, key),
        &prepared,
        Some(on),
    )
    .await?;
    record(
        &mut tx,
        state.db.engine,
        &actor,
        "asset.action_requested",
        ("asset", asset_id.to_string()),
        Some(name.to_string()),
        format!("{} asked for in request #{id}", target.action.title),
    )
    .await?;
    tx.commit().await?;
    state.jobs_ready.notify_one();
    Ok(id)
}

/// Makes a change that renders the asset again from the current templates (its
/// template upgrade), or retires it, also remove the files the asset was last
/// written at that the change does not write: the GitOps driver only writes and
/// removes what a change set names, so a file the templates no longer make
/// would stay deployed, unowned, even after the asset is retired. An asset
/// recorded before its paths were kept, and not recovered yet, has them read
/// from its history.
pub(crate) async fn remove_unwritten(
    conn: &mut AnyConnection,
    ty: &ResourceType,
    asset: &AssetRow,
    prepared: &mut Prepared,
) -> ServiceResult<()> {
    let Some(recorded) = super::deployed_paths::last_written(conn, ty, asset).await? else {
        return Ok(());
    };
    let mut unwritten = action::unwritten_paths(&recorded, &prepared.change_set);
    // A path recorded before the path rules held it (in Slipway's own
    // directory, at one of git's files) is left where it is: the driver
    // refuses to touch it, and the change would fail after its review.
    unwritten.retain(|path| match render::check_deployable_path(path) {
        Ok(()) => true,
        Err(why) => {
            tracing::warn!(asset_id = %asset.summary.id, %why, "a recorded file is not removed");
            false
        }
    });
    if unwritten.is_empty() {
        return Ok(());
    }
    let removed = &mut prepared.change_set.removed;
    removed.extend(unwritten);
    removed.sort();
    removed.dedup();
    // A file recorded here that another asset has written since stays theirs.
    super::deployed_paths::keep_to_own_paths(
        conn,
        ty,
        Some(asset.summary.id),
        &mut prepared.change_set,
    )
    .await?;
    // The approval binds this hash: it must name the removals too.
    prepared.hash = prepared.change_set.hash();
    Ok(())
}

/// What the asset has deployed now, for the files the change touches: the base
/// of the action's review diff. Read from the GitOps repository's branch, where
/// the reconcilers read it.
pub(crate) async fn deployed_state(
    state: &AppState,
    asset: &AssetRow,
    change_set: &ChangeSet,
) -> ServiceResult<Value> {
    let files = deployed_files(state, change_set).await?;
    Ok(json!({ "params": asset.params, "files": files }))
}

/// An action asked for that would change nothing is refused: the template
/// upgrade of an asset its templates did not leave behind, or the values the
/// asset has already (see [`action::changes_nothing`]).
pub(crate) fn refuse_changing_nothing(
    target: ActingOn<'_>,
    request_params: &Value,
    change_set: &ChangeSet,
    deployed: &[RenderedFile],
) -> ServiceResult<()> {
    let asset = target.asset;
    let asked = (target.ty, target.action);
    let nothing = if target.action.is_upgrade() && asset.catalog_version == target.ty.version {
        format!(
            "asset #{} is rendered by the current templates of {} already: there is nothing to upgrade",
            asset.summary.id, target.ty.name
        )
    } else if action::changes_nothing(asked, (&asset.params, request_params), change_set, deployed)
    {
        format!(
            "{} would leave asset #{} as it is (it has these values, and every file is deployed as it would be written): change a value",
            target.action.title, asset.summary.id
        )
    } else {
        return Ok(());
    };
    Err(ServiceError::Invalid(vec![FieldError::new("", nothing)]))
}

/// The files at the paths a change set writes or removes, as the GitOps
/// repository's branch holds them now.
pub(crate) async fn deployed_files(
    state: &AppState,
    change_set: &ChangeSet,
) -> ServiceResult<Vec<RenderedFile>> {
    let paths: Vec<String> = change_set
        .files
        .iter()
        .map(|f| f.path.clone())
        .chain(change_set.removed.iter().cloned())
        .collect();
    let repo = state.drivers.gitops.clone();
    tokio::task::spawn_blocking(move || {
        let mut files = Vec::new();
        for path in paths {
            if let Some(content) = repo.read_head_file(&path)? {
                files.push(RenderedFile { path, content });
            }
        }
        Ok::<_, crate::drivers::gitops::GitOpsError>(files)
    })
    .await
    .map_err(|e| ServiceError::Internal(format!("reading the GitOps repository stopped: {e}")))?
    .map_err(|e| ServiceError::Internal(e.to_string()))
}

/// The most completed requests of one action on one asset read for its
/// `unique_by` or `refers_to` rule once the database has matched the values:
/// more only where a value is one it cannot match (a list).
const UNIQUE_BY_LOOKBACK: i64 = 20_000;

/// The values `params` gives for `names`, as the database is asked to match them.
fn given_values<'a>(names: &'a [String], params: &'a Value) -> Vec<(&'a str, &'a Value)> {
    names
        .iter()
        .filter_map(|name| params.get(name).map(|value| (name.as_str(), value)))
        .collect()
}

/// A completed request of the action on this asset that used the values of the
/// action's `unique_by` parameters that `params` gives again.
async fn used_before(
    conn: &mut AnyConnection,
    on: ActingOn<'_>,
    params: &Value,
) -> ServiceResult<Option<FieldError>> {
    let Some(field) = on.action.unique_by.first() else {
        return Ok(None);
    };
    let asset = on.asset.summary.id;
    let values = given_values(&on.action.unique_by, params);
    // Only a request giving every one of them can use them again (a form
    // still being filled in gives none): no need to read the history.
    if values.len() < on.action.unique_by.len() {
        return Ok(None);
    }
    let earlier = storage::requests::completed_actions(
        conn,
        asset,
        &on.action.name,
        &values,
        UNIQUE_BY_LOOKBACK,
    )
    .await?;
    let Some((id, _)) = earlier
        .iter()
        .find(|(_, earlier)| action::uses_same_unique_values(on.action, params, earlier))
    else {
        return Ok(None);
    };
    let values: Vec<String> = on
        .action
        .unique_by
        .iter()
        .map(|name| format!("{name} {}", params.get(name).unwrap_or(&Value::Null)))
        .collect();
    Ok(Some(FieldError::new(
        field,
        format!(
            "request #{id} ({}) already used {} on asset #{asset}; each request of this action needs its own",
            on.action.title,
            values.join(" and ")
        ),
    )))
}

/// The completed request a request for the action refers to (see
/// `TypeAction::refers_to`), with its parameters: the newest that matches.
pub(crate) async fn referred_request(
    conn: &mut AnyConnection,
    on: ActingOn<'_>,
    params: &Value,
) -> ServiceResult<Option<(RequestId, Value)>> {
    let Some(reference) = &on.action.refers_to else {
        return Ok(None);
    };
    let asset = on.asset.summary.id;
    let values = given_values(&reference.by, params);
    let earlier = storage::requests::completed_actions(
        conn,
        asset,
        &reference.action,
        &values,
        UNIQUE_BY_LOOKBACK,
    )
    .await?;
    Ok(earlier
        .into_iter()
        .find(|(_, earlier)| action::is_referred(on.action, params, earlier)))
}

/// A request that refers to an earlier one that is not there: a restore of a
/// backup never taken, or one that failed, would recover from nothing.
async fn missing_reference(
    conn: &mut AnyConnection,
    on: ActingOn<'_>,
    params: &Value,
) -> ServiceResult<Option<FieldError>> {
    let Some(reference) = &on.action.refers_to else {
        return Ok(None);
    };
    // A value still missing is reported as required.
    let given = |name: &String| params.get(name).is_some_and(|v| !v.is_null());
    if !reference.by.iter().all(given) || referred_request(conn, on, params).await?.is_some() {
        return Ok(None);
    }
    let title = on
        .ty
        .action(&reference.action)
        .map_or(reference.action.as_str(), |a| a.title.as_str());
    let values: Vec<String> = reference
        .by
        .iter()
        .map(|name| format!("{name} {}", params.get(name).unwrap_or(&Value::Null)))
        .collect();
    let field = reference.by.first().map_or("", String::as_str);
    Ok(Some(FieldError::new(
        field,
        format!(
            "no completed request of {title} on asset #{} has {}: only one that completed can be used",
            on.asset.summary.id,
            values.join(" and ")
        ),
    )))
}

/// What an action's pre-check adds about its asset: it keeps the asset's name,
/// waits for another request on the asset to finish, gives values of its own
/// where the action asks for them, and retires nothing another active asset
/// still requires.
pub(crate) async fn asset_problems(
    conn: &mut AnyConnection,
    state: &AppState,
    (validator, params): (&ParamValidator, &Value),
    on: ActingOn<'_>,
    exclude: Option<RequestId>,
) -> ServiceResult<Vec<FieldError>> {
    let asset = on.asset;
    let named = (asset.summary.name.as_str(), &asset.params);
    let mut problems: Vec<FieldError> = action::rename_error(validator, named, params)
        .into_iter()
        .collect();
    let type_name = &asset.summary.type_name;
    let busy =
        storage::requests::in_flight_named(conn, type_name, &asset.summary.name, exclude).await?;
    if let Some(other) = busy {
        problems.push(busy_error(conn, asset, other).await?);
    }
    problems.extend(used_before(conn, on, params).await?);
    problems.extend(missing_reference(conn, on, params).await?);
    if on.action.retires {
        let dependents = storage::assets::active_dependents(conn, asset.summary.id).await?;
        if !dependents.is_empty() {
            problems.push(FieldError::new(
                "",
                format!(
                    "{} is still required by {}: retire those first",
                    asset.summary.name,
                    dependents.join(", ")
                ),
            ));
        }
        let waiting = creations_requiring(conn, state, asset).await?;
        if !waiting.is_empty() {
            let ids: Vec<String> = waiting.iter().map(|id| format!("#{id}")).collect();
            problems.push(FieldError::new(
                "",
                format!(
                    "{} is required by request {} in flight: wait until it is done or cancelled",
                    asset.summary.name,
                    ids.join(", ")
                ),
            ));
        }
    }
    Ok(problems)
}

/// Why an action waits: which request holds the asset, what it does, where it
/// stands and who may withdraw it.
async fn busy_error(
    conn: &mut AnyConnection,
    asset: &AssetRow,
    other: RequestId,
) -> ServiceResult<FieldError> {
    let holder = storage::requests::get(conn, other).await?;
    let what = match &holder {
        Some(r) => format!(
            " ({} by {}, {})",
            r.action.as_deref().unwrap_or("its creation"),
            r.requester,
            r.state.label()
        ),
        None => String::new(),
    };
    // A failed or manual request is no longer the requester's to cancel.
    let way_out = match &holder {
        Some(r) if matches!(r.state, RequestState::Failed | RequestState::Manual) => {
            "the platform team retries, resolves or abandons it".to_string()
        }
        Some(r) => format!(
            "wait for it to finish, or ask {} or an admin to cancel it",
            r.requester
        ),
        None => "wait for it to finish".to_string(),
    };
    Ok(FieldError::new(
        "",
        format!(
            "asset #{} already has request #{other} in flight{what}; one action at a time: {way_out}",
            asset.summary.id
        ),
    ))
}

/// Requests in flight (in review, approved, running, failed) that would create
/// an asset requiring `asset`: retiring it under them would leave them to run
/// against something gone, and their asset without its relation.
async fn creations_requiring(
    conn: &mut AnyConnection,
    state: &AppState,
    asset: &AssetRow,
) -> ServiceResult<Vec<RequestId>> {
    let dependent_types: Vec<&str> = state
        .catalog
        .catalog
        .types
        .values()
        .filter(|t| {
            t.requires
                .iter()
                .any(|r| r.type_name == asset.summary.type_name)
        })
        .map(|t| t.name.as_str())
        .collect();
    let mut requiring = Vec::new();
    // Requests of one team and environment ask the same question: each distinct
    // one is asked of the database once (at 100k requests, thousands are in
    // flight, and this runs on every keystroke of a decommission's pre-check).
    let mut answers: std::collections::HashMap<String, bool> = std::collections::HashMap::new();
    let in_flight = storage::requests::in_flight_creations_of(conn, &dependent_types).await?;
    for (id, type_name, params) in in_flight {
        let Some(request_ty) = state.catalog.catalog.types.get(&type_name) else {
            continue;
        };
        let Ok(queries) = precheck::dependency_queries(request_ty, &params) else {
            continue;
        };
        for query in queries
            .iter()
            .filter(|q| q.type_name == asset.summary.type_name)
        {
            let key = format!("{}\u{0}{:?}", query.type_name, query.r#match);
            let is_this = match answers.get(&key) {
                Some(known) => *known,
                None => {
                    let found =
                        super::requests::find_required_asset(conn, state.db.engine, query).await?;
                    let is_this = found.is_some_and(|a| a.summary.id == asset.summary.id);
                    answers.insert(key, is_this);
                    is_this
                }
            };
            if is_this {
                requiring.push(id);
                break;
            }
        }
    }
    Ok(requiring)
}

/// A revision of a request for an action: the action's parameters, checked, laid
/// over its asset's recorded parameters.
pub(crate) async fn revision_params(
    conn: &mut AnyConnection,
    state: &AppState,
    request: &RequestRow,
    asset_id: AssetId,
    input: &Value,
) -> ServiceResult<(Value, AssetRow)> {
    let name = request.action.as_deref().unwrap_or_default();
    let target = target(state, conn, asset_id, name).await?;
    let merged = merged_input(&target, input)?;
    Ok((merged, target.asset))
}

/// Completes a request for an action on its asset: the asset records the
/// parameters and commit it now has (or is retired), its quota and search words
/// follow, and its history says what happened. Runs in the verification's
/// transaction, so it happens once.
pub(crate) async fn record_outcome(
    state: &AppState,
    conn: &mut AnyConnection,
    (request, revision, reviewed): (&RequestRow, &RevisionRow, Option<&ResourceType>),
    commit: &str,
    actor: &Actor,
) -> ServiceResult<AssetId> {
    let asset_id = request.asset_id.ok_or_else(|| {
        ServiceError::Internal(format!("request #{} acts on no asset", request.id))
    })?;
    let asset = storage::assets::get(conn, asset_id)
        .await?
        .ok_or_else(|| ServiceError::NotFound(format!("asset #{asset_id}")))?;
    // What ran, by the version that rendered it; quota counters by today's rules.
    let today = asset_type(state, &asset)?;
    let ty = reviewed.unwrap_or(today);
    let action = declared(ty, request.action.as_deref().unwrap_or_default())?;
    let recorded = action::recorded_params(ty, &revision.params);
    let (new_state, event) = if action.retires {
        (action::RETIRED, "asset.retired")
    } else {
        (asset.summary.state.as_str(), "asset.updated")
    };
    let commit = if commit.is_empty() {
        asset.commit_id.as_str()
    } else {
        commit
    };
    // Only an action that writes the type's own outputs renders the asset anew (a
    // backup writes a file beside it): the others leave its catalog version.
    let catalog_version = if action::renders_asset(ty, action) {
        revision.catalog_version.as_str()
    } else {
        asset.catalog_version.as_str()
    };
    let after = storage::assets::AfterAction {
        params: &recorded,
        commit_id: commit,
        state: new_state,
        catalog_version,
        team: ty.owning_team(&recorded),
        environment: ty.environment(&recorded),
    };
    storage::assets::update_after_action(conn, asset_id, &after).await?;
    if action::renders_asset(ty, action) {
        let before = super::deployed_paths::last_written(conn, ty, &asset)
            .await?
            .unwrap_or_default();
        let now = action::deployed_after(&before, &revision.change_set);
        storage::assets::set_deployed_paths(conn, asset_id, &now, ty.commits_to_gitops()).await?;
    }
    // An active asset left behind the type's templates (the action was reviewed
    // before they changed) must be reached by a sweep that may already have
    // marked the type done.
    if !action.retires && catalog_version != today.version {
        storage::assets::reopen_sweep(conn, &ty.name).await?;
    }
    // The counters move as today's rules count them (a recount at start
    // follows today's catalog, whether the action retires among it).
    let retires_today = today.action(&action.name).is_some_and(|a| a.retires);
    if retires_today {
        storage::quota::adjust(conn, today, &asset.params, -1).await?;
    } else {
        // What the request held of the increase passes to the asset itself.
        storage::quota::reserve(conn, today, (&asset.params, &request.params), -1).await?;
        storage::quota::replace(conn, today, &asset.params, &recorded).await?;
    }
    // A retired asset is no longer watched; a changed one is watched as it is now.
    let monitoring = if action.retires {
        Vec::new()
    } else {
        render::monitoring(ty, &recorded, &asset.summary.name)
            .map_err(|e| ServiceError::Internal(format!("monitoring items: {e}")))?
    };
    storage::assets::replace_monitoring(conn, asset_id, &monitoring).await?;
    // Indexed as today's catalog says what is searched (as `search::sync` does).
    let words = indexed_words(
        Some(today),
        &asset.summary.name,
        today.owning_team(&recorded),
        &recorded,
    );
    storage::search::index_asset(conn, state.db.engine, asset_id, &words).await?;
    let changed = changed_params(&asset.params, &recorded);
    record(
        conn,
        state.db.engine,
        actor,
        event,
        ("asset", asset_id.to_string()),
        Some(new_state.to_string()),
        format!(
            "{} by request #{} at commit {commit}; {changed}",
            action.title, request.id
        ),
    )
    .await?;
    Ok(asset_id)
}

/// What an action changed in the asset's record, in one line for its history.
fn changed_params(before: &Value, after: &Value) -> String {
    let shown = |v: Option<Value>| v.map_or_else(|| "(none)".to_string(), |v| v.to_string());
    let changes: Vec<String> = diff::param_changes(before, after)
        .into_iter()
        .map(|c| format!("{}: {} → {}", c.name, shown(c.before), shown(c.after)))
        .collect();
    if changes.is_empty() {
        "no recorded parameter changed".to_string()
    } else {
        changes.join(", ")
    }
}

/// A request for an action as its page shows it: the asset, the action, and the
/// current revision against what the asset had deployed when it was asked for.
pub(crate) async fn context(
    state: &AppState,
    conn: &mut AnyConnection,
    request: &RequestRow,
    revisions: &[RevisionRow],
) -> ServiceResult<Option<ActionContext>> {
    let (Some(asset_id), Some(name)) = (request.asset_id, request.action.as_deref()) else {
        return Ok(None);
    };
    let asset = storage::assets::get(conn, asset_id)
        .await?
        .ok_or_else(|| ServiceError::NotFound(format!("asset #{asset_id}")))?;
    let action = asset_type(state, &asset)
        .ok()
        .and_then(|ty| ty.action(name))
        .map(choice)
        .unwrap_or_else(|| ActionChoice {
            name: name.to_string(),
            title: name.to_string(),
            description: String::new(),
            retires: false,
        });
    let current = revisions
        .iter()
        .find(|r| r.revision == request.current_revision);
    let deployed = storage::requests::deployed(conn, request.id).await?;
    let deployed_diff = match (current, deployed) {
        (Some(current), Some(deployed)) => Some(diff_against(&deployed, current)),
        _ => None,
    };
    Ok(Some(ActionContext {
        asset_id,
        asset_name: asset.summary.name,
        action,
        deployed_diff,
    }))
}

fn diff_against(deployed: &Value, current: &RevisionRow) -> DeployedDiff {
    let before_files: Vec<RenderedFile> = deployed
        .get("files")
        .cloned()
        .and_then(|f| serde_json::from_value(f).ok())
        .unwrap_or_default();
    let before = ChangeSet {
        files: before_files,
        ..ChangeSet::default()
    };
    let after = ChangeSet {
        files: current.change_set.files.clone(),
        ..ChangeSet::default()
    };
    DeployedDiff {
        params: diff::param_changes(
            deployed.get("params").unwrap_or(&Value::Null),
            &current.params,
        ),
        files: diff::change_set_diff(&before, &after),
    }
}
