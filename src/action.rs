//! Day-2 actions on an asset: what a request for one is made of and what it leaves
//! in the asset's record. A request for an action gives only the action's own
//! parameters; it is checked, rendered and run with the asset's recorded
//! parameters under them, so its change set is the asset's as it will be.

use serde_json::{Map, Value};

use crate::catalog::{ExecutionStep, ResourceType, TypeAction};
use crate::render::{ChangeSet, RenderedFile};
use crate::secret;
use crate::template;
use crate::validate::{FieldError, ParamValidator};

/// Whether an asset in this state can still be acted on: a retired asset keeps
/// its history and nothing else.
pub fn is_actionable(asset_state: &str) -> bool {
    asset_state == ACTIVE
}

/// The state of an asset that exists; [`RETIRED`] once an action retired it.
pub const ACTIVE: &str = "active";
pub const RETIRED: &str = "retired";

/// Every key of `input` must be one of the action's parameters: an action that
/// could set any of the type's parameters would bypass its own schema.
pub fn foreign_input(action: &TypeAction, input: &Value) -> Vec<FieldError> {
    let Some(given) = input.as_object() else {
        return vec![FieldError::new(
            "",
            "the parameters must be a JSON object of the action's parameters",
        )];
    };
    let own = action.param_names();
    given
        .keys()
        .filter(|name| !own.contains(name))
        .map(|name| {
            FieldError::new(
                name.as_str(),
                format!(
                    "is not a parameter of the action {}; it takes {}",
                    action.name,
                    if own.is_empty() {
                        "none".to_string()
                    } else {
                        own.join(", ")
                    }
                ),
            )
        })
        .collect()
}

/// The asset's recorded parameters with the type's defaults under them. A
/// parameter the type gained after the asset was recorded (a new required one
/// with a default) takes its default, as a new request's form would give it;
/// without it every action on the asset, its decommission and template upgrade
/// too, would be refused on a field the asset never had. Secrets are left out:
/// a secret's value is given, never defaulted. A recorded parameter the type
/// no longer declares (removed or renamed since) is left out too: a request
/// takes only declared parameters, and the asset's past is not the
/// requester's to answer for.
pub fn with_type_defaults(ty: &ResourceType, asset_params: &Value) -> Value {
    let mut params = ty.default_params();
    params.retain(|name, _| !ty.is_secret(name));
    if let Some(recorded) = asset_params.as_object() {
        for (name, value) in recorded.iter().filter(|(name, _)| ty.has_param(name)) {
            params.insert(name.clone(), value.clone());
        }
    }
    Value::Object(params)
}

/// The parameters a request for an action is checked and rendered with: the
/// asset's recorded parameters, over the defaults of its type `ty` (see
/// [`with_type_defaults`]), with the action's input laid over them. An empty or
/// null input value leaves the recorded one (a form's untouched secret).
pub fn request_params(ty: &ResourceType, asset_params: &Value, input: &Value) -> Value {
    let base = with_type_defaults(ty, asset_params);
    let mut merged = base.as_object().cloned().unwrap_or_default();
    if let Some(given) = input.as_object() {
        for (name, value) in given {
            let blank = value.is_null() || value.as_str().is_some_and(str::is_empty);
            if blank && merged.contains_key(name) {
                continue;
            }
            merged.insert(name.clone(), value.clone());
        }
    }
    Value::Object(merged)
}

/// The action's own parameters taken back out of a request's parameters: what a
/// revision's form starts from.
pub fn input_of(action: &TypeAction, request_params: &Value) -> Map<String, Value> {
    let own = action.param_names();
    request_params
        .as_object()
        .map(|params| {
            params
                .iter()
                .filter(|(name, _)| own.contains(name))
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// The form's first values: each of the action's parameters as the asset has it,
/// else its default. Secrets start empty (an empty secret keeps the recorded one).
pub fn prefill(action: &TypeAction, asset_params: &Value) -> Map<String, Value> {
    let form = action.form_type();
    let mut values = form.default_params();
    for name in action.param_names() {
        if form.is_secret(&name) {
            values.remove(&name);
            continue;
        }
        if let Some(value) = asset_params.get(&name) {
            values.insert(name, value.clone());
        }
    }
    values
}

/// The asset's parameters after the action: the type's own parameters as the
/// request set them. What only the action takes (a backup's name) is not part of
/// the asset.
pub fn recorded_params(ty: &ResourceType, request_params: &Value) -> Value {
    let kept = request_params
        .as_object()
        .map(|params| {
            params
                .iter()
                .filter(|(name, _)| ty.has_param(name))
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect::<Map<String, Value>>()
        })
        .unwrap_or_default();
    Value::Object(kept)
}

/// Whether a completed request of `action` renders the asset of type `ty` anew:
/// it writes the type's own outputs (a resize, the template upgrade), so the
/// asset's files are the ones its templates make of the request's parameters.
/// A backup writes a file beside the asset and leaves its files as they were;
/// a retirement removes them.
pub fn renders_asset(ty: &ResourceType, action: &TypeAction) -> bool {
    !action.retires && action.request_type.outputs == ty.outputs
}

/// Whether a request for `action` would leave the asset as it is: the action
/// neither retires the asset nor upgrades its templates (that records the new
/// version), asks for the values the asset has (`asset_params`, over the type's
/// defaults, against the request's; the action's inputs that are not the
/// type's parameters, as a restore's backup, count by the files they
/// render alone: restoring the backup restored last again), its steps only commit files to the GitOps
/// repository (no command or pipeline that acts beyond them), it removes nothing,
/// and every file it writes is deployed with that content already. Such a
/// request would be reviewed and run for nothing, and hold the asset from its
/// other actions meanwhile.
pub fn changes_nothing(
    (ty, action): (&ResourceType, &TypeAction),
    (asset_params, request_params): (&Value, &Value),
    change_set: &ChangeSet,
    deployed: &[RenderedFile],
) -> bool {
    if action.retires || action.is_upgrade() {
        return false;
    }
    // Only the asset's own parameters are recorded on it: an action's own input
    // (which backup to restore) changes the asset through its files alone.
    let has = with_type_defaults(ty, asset_params);
    let same_values = input_of(action, request_params)
        .iter()
        .filter(|(name, _)| ty.has_param(name))
        .all(|(name, value)| has.get(name) == Some(value));
    let steps = &action.request_type.execute;
    let only_commits = !steps.is_empty()
        && steps
            .iter()
            .all(|step| matches!(step, ExecutionStep::Gitops { .. }));
    same_values
        && only_commits
        && change_set.removed.is_empty()
        && change_set.files.iter().all(|file| {
            deployed
                .iter()
                .any(|d| d.path == file.path && d.content == file.content)
        })
}

/// The paths an asset's files were last written at (`recorded`) that a change
/// rendering or retiring it neither writes nor already removes: files the
/// current templates no longer name, which would otherwise stay in the
/// repository for good, even after the asset is retired.
pub fn unwritten_paths(recorded: &[String], change_set: &ChangeSet) -> Vec<String> {
    recorded
        .iter()
        .filter(|path| !change_set.files.iter().any(|f| &f.path == *path))
        .filter(|path| !change_set.removed.contains(path))
        .cloned()
        .collect()
}

/// Where an asset's files are once a change set that rendered it anew is
/// applied: every path it wrote, and those of `before` it neither wrote nor
/// removed (still there, so still the asset's to remove one day).
pub fn deployed_after(before: &[String], change_set: &ChangeSet) -> Vec<String> {
    let mut paths: Vec<String> = change_set.files.iter().map(|f| f.path.clone()).collect();
    paths.extend(
        before
            .iter()
            .filter(|path| !change_set.removed.contains(path))
            .cloned(),
    );
    paths.sort();
    paths.dedup();
    paths
}

/// Secrets the asset holds as placeholders and the action does not take: their
/// values stay with the request that gave them, so a request for the action
/// neither keeps nor needs them.
pub fn inherited_secrets(action: &TypeAction, asset_params: &Value) -> Vec<String> {
    let own = action.param_names();
    action
        .request_type
        .secret_params()
        .into_iter()
        .filter(|name| !own.contains(name))
        .filter(|name| {
            asset_params
                .get(name)
                .is_some_and(|v| secret::is_placeholder_of(v, name))
        })
        .collect()
}

/// The action's rules that refuse these parameters given the asset's recorded
/// ones (`current`). A rule whose expression does not evaluate cleanly refuses
/// nothing, as a risk hint warns of nothing: the catalog check renders every
/// rule, and a parameter the form has not filled yet is not a reason to refuse.
pub fn rule_errors(action: &TypeAction, params: &Value, current: &Value) -> Vec<FieldError> {
    let ctx = template::action_context(&action.request_type, params, current);
    action
        .rules
        .iter()
        .filter(|rule| template::eval_bool(&rule.when, &ctx) == Ok(true))
        .map(|rule| {
            let message =
                template::render_str(&rule.message, &ctx).unwrap_or_else(|_| rule.message.clone());
            FieldError::new(rule.field.as_str(), message)
        })
        .collect()
}

/// Whether an earlier request of the action, with `earlier` parameters, used the
/// same values of the action's `unique_by` parameters as `params` (none named:
/// never).
pub fn uses_same_unique_values(action: &TypeAction, params: &Value, earlier: &Value) -> bool {
    !action.unique_by.is_empty()
        && action.unique_by.iter().all(|name| {
            params
                .get(name)
                .zip(earlier.get(name))
                .is_some_and(|(given, used)| same_value(given, used))
        })
}

/// Whether an earlier request, with `earlier` parameters, is the one a request
/// for `action` with `params` refers to (see [`TypeAction::refers_to`]).
pub fn is_referred(action: &TypeAction, params: &Value, earlier: &Value) -> bool {
    action.refers_to.as_ref().is_some_and(|reference| {
        reference.by.iter().all(|name| {
            params
                .get(name)
                .zip(earlier.get(name))
                .is_some_and(|(given, used)| same_value(given, used))
        })
    })
}

/// JSON values compared as values: the numbers `1` and `1.0` are one.
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => a == b,
    }
}

/// The errors of a request for `action` that are this request's to fix: one on
/// a parameter the action does not take, whose value is the asset's as
/// recorded, is the asset's (a value a rule added since refuses, a mark pasted
/// in long ago), and would otherwise keep every action, a decommission too,
/// from the asset, naming a field its form does not even show. So is one on a
/// parameter the asset lacks (the type required it since, with no default)
/// for an action that retires the asset or upgrades its templates: neither can
/// ask for it, and refusing them would leave the asset stuck as it is.
pub fn own_errors(
    action: &TypeAction,
    params: &Value,
    asset_params: &Value,
    errors: Vec<FieldError>,
) -> Vec<FieldError> {
    let own = action.param_names();
    let asks_for_nothing_new = action.retires || action.is_upgrade();
    errors
        .into_iter()
        .filter_map(|e| {
            let not_shown = !e.field.is_empty() && !own.contains(&e.field);
            let inherited = not_shown
                && params.get(&e.field).is_some()
                && params.get(&e.field) == asset_params.get(&e.field);
            let lacked_by_the_asset = not_shown && asset_params.get(&e.field).is_none();
            if inherited || (lacked_by_the_asset && asks_for_nothing_new) {
                return None;
            }
            // The requester cannot fix a field the action's form does not
            // show: say whose fix it is.
            Some(if lacked_by_the_asset && e.message == "is required" {
                let message = format!("{} ({LACKED_SINCE})", e.message);
                FieldError::new(e.field, message)
            } else {
                e
            })
        })
        .collect()
}

/// What is said of a parameter the type asks for since the asset was recorded.
pub const LACKED_SINCE: &str = "the type asks for it since this asset was recorded, with no \
    default, and this action's form cannot give it: the platform team must give it a default \
    in the catalog";

/// The same of a secret, which takes no default.
pub const LACKED_SECRET_SINCE: &str = "the type asks for this secret since this asset was \
    recorded, and this action's form cannot give it: a secret takes no default, so the \
    platform team must make it optional in the catalog";

/// What is said of `param`, which `ty` asks for since an asset was recorded.
pub fn lacked_since(ty: &ResourceType, param: &str) -> &'static str {
    if ty.is_secret(param) {
        LACKED_SECRET_SINCE
    } else {
        LACKED_SINCE
    }
}

/// The parameters the type requires with no default that `params` lacks:
/// what a request on an asset recorded before they were asked for cannot
/// render, for an action whose form cannot give them (see [`own_errors`]).
pub fn lacked_required(validator: &ParamValidator, params: &Value) -> Vec<String> {
    validator
        .check(params)
        .into_iter()
        .filter(|e| {
            e.message == "is required" && !e.field.is_empty() && params.get(&e.field).is_none()
        })
        .map(|e| e.field)
        .collect()
}

/// An action works on the asset it names: its parameters must render the same
/// name as the asset's own do under today's naming template. (The asset keeps
/// the name it was given, even when the template or the naming rule changed since.)
pub fn rename_error(
    validator: &ParamValidator,
    asset: (&str, &Value),
    params: &Value,
) -> Option<FieldError> {
    let (asset_name, asset_params) = asset;
    let before = validator.rendered_name(asset_params)?;
    let after = validator.rendered_name(params)?;
    (before != after).then(|| {
        FieldError::new(
            "",
            format!(
                "the action would rename the resource from {asset_name} to {after}; an action keeps its asset's name"
            ),
        )
    })
}

#[cfg(test)]
mod tests;
