//! A type's `actions`: each is loaded as a small type of its own (its request
//! type) built from the type's file with the action's fields laid over it, so an
//! action is checked by exactly the rules a type's creation is.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::super::file::{ActionFile, ActionRuleFile, CheckFile, TypeFile};
use super::{FileErrors, build_type, load_parameters};
use crate::catalog::{ActionReference, ActionRule, Catalog, CatalogError, TypeAction};

pub(super) fn load_actions(
    base: &TypeFile,
    declared: Vec<ActionFile>,
    catalog: &Catalog,
    fe: &mut FileErrors<'_>,
) -> Vec<TypeAction> {
    if declared.len() > TypeAction::MAX_PER_TYPE {
        fe.push(
            "actions",
            format!(
                "declares {} actions; a type may declare at most {}",
                declared.len(),
                TypeAction::MAX_PER_TYPE
            ),
        );
        return Vec::new();
    }
    let mut names = BTreeSet::new();
    let retired = retired_paths(base, &declared);
    // An action may refer to another one declared beside it.
    let siblings = declared.clone();
    declared
        .into_iter()
        .enumerate()
        .filter_map(|(i, action)| {
            let removes = if action.retires {
                retired.clone()
            } else {
                Vec::new()
            };
            let building = (i, action, removes);
            load_action((base, &siblings), building, &mut names, catalog, fe)
        })
        .collect()
}

fn load_action(
    (base, siblings): (&TypeFile, &[ActionFile]),
    (i, action, removes): (usize, ActionFile, Vec<String>),
    names: &mut BTreeSet<String>,
    catalog: &Catalog,
    fe: &mut FileErrors<'_>,
) -> Option<TypeAction> {
    let at = |field: &str| format!("actions[{i}].{field}");
    check_words(&action, &at, names, fe);
    build_action((base, siblings), (i, action, removes), catalog, fe)
}

/// What retiring an asset removes from the repository: the type's outputs, and
/// what its other actions wrote at a place the type's own parameters name (a
/// restored cluster beside a database, which would otherwise run on unowned).
/// What an action wrote at a place its own parameters name (a backup named by
/// its `backup_name`) cannot be found again, and outlives the asset.
fn retired_paths(base: &TypeFile, actions: &[ActionFile]) -> Vec<String> {
    let mut known: BTreeSet<String> = base
        .parameters
        .get("properties")
        .and_then(serde_json::Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default();
    known.extend(["resource_name", "resource_type", "requires"].map(String::from));
    let mut paths: Vec<String> = base.outputs.iter().map(|o| o.path.clone()).collect();
    let written = actions
        .iter()
        .filter(|a| !a.retires)
        .flat_map(|a| a.outputs.iter().flatten());
    for output in written {
        let named_by_the_type = crate::template::variables_of(&output.path)
            .is_ok_and(|used| used.iter().all(|v| known.contains(v)));
        if named_by_the_type && !paths.contains(&output.path) {
            paths.push(output.path.clone());
        }
    }
    paths
}

/// The action's request type built from the type's file, its problems reported
/// at the action's path.
fn build_action(
    (base, siblings): (&TypeFile, &[ActionFile]),
    (i, action, removes): (usize, ActionFile, Vec<String>),
    catalog: &Catalog,
    fe: &mut FileErrors<'_>,
) -> Option<TypeAction> {
    let at = |field: &str| format!("actions[{i}].{field}");
    let own = action.parameters.clone().unwrap_or_else(no_parameters);
    check_own_parameters(base, &own, &at, fe);
    let file = request_file(base, &action, &own, &removes);
    // Problems are gathered apart so they are reported at the action's path, once
    // (the action's own schema is checked both alone and within the merged one).
    let mut found: Vec<CatalogError> = Vec::new();
    let mut inner = FileErrors {
        file: fe.file,
        errors: &mut found,
    };
    let rules = load_rules(&action.rules, &own, &mut inner);
    let unique_by = load_unique_by(&action.unique_by, &own, &mut inner);
    let refers_to = load_reference(siblings, &action, &own, &mut inner);
    let parameters = load_parameters(own, catalog, &mut inner);
    let request_type = build_type(file, removes, catalog, &mut inner);
    let mut reported: Vec<(String, String)> = Vec::new();
    for error in found {
        let path = if error.path.is_empty() {
            format!("actions[{i}]")
        } else {
            at(&error.path)
        };
        if !reported
            .iter()
            .any(|(p, m)| *p == path && *m == error.message)
        {
            reported.push((path, error.message));
        }
    }
    let clean = reported.is_empty();
    for (path, message) in reported {
        fe.push(path, message);
    }
    clean.then_some(TypeAction {
        name: action.name,
        title: action.title,
        description: action.description,
        retires: action.retires,
        parameters,
        request_type,
        rules,
        unique_by,
        refers_to,
    })
}

/// The completed request an action needs: another action of the type, found
/// by parameters both actions take (the other may take it as the type's).
fn load_reference(
    siblings: &[ActionFile],
    action: &ActionFile,
    own: &Value,
    fe: &mut FileErrors<'_>,
) -> Option<ActionReference> {
    let reference = action.refers_to.as_ref()?;
    let Some(referred) = siblings.iter().find(|a| a.name == reference.action) else {
        let names: Vec<&str> = siblings.iter().map(|a| a.name.as_str()).collect();
        fe.push(
            "refers_to.action",
            format!(
                "{:?} is not an action of the type (it has {})",
                reference.action,
                names.join(", ")
            ),
        );
        return None;
    };
    if referred.name == action.name || referred.retires {
        fe.push(
            "refers_to.action",
            format!(
                "{:?} cannot be referred to: an action refers to another one that leaves its asset in place",
                reference.action
            ),
        );
    }
    if reference.by.is_empty() {
        fe.push(
            "refers_to.by",
            "names no parameter: which request is meant?",
        );
    }
    let own_names = own_parameter_names(own);
    let theirs = referred.parameters.clone().unwrap_or_else(no_parameters);
    let required: Vec<&str> = own
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for (j, name) in reference.by.iter().enumerate() {
        let at = format!("refers_to.by[{j}]");
        let taken_by_both = own_names.contains(&name.as_str())
            && own_parameter_names(&theirs).contains(&name.as_str());
        let secret = |schema: &Value| super::super::schema::is_secret(schema, name);
        if !taken_by_both {
            fe.push(
                at,
                format!(
                    "{name:?} is not a parameter of both this action and {}",
                    reference.action
                ),
            );
        } else if secret(own) || secret(&theirs) {
            fe.push(
                at,
                format!("{name:?} is a secret: its value is not kept to compare with"),
            );
        } else if !required.contains(&name.as_str()) {
            // Left out, it would find no request and render no `referred`.
            fe.push(
                at,
                format!("{name:?} must be one of the action's required parameters"),
            );
        }
    }
    Some(ActionReference {
        action: reference.action.clone(),
        by: reference.by.clone(),
    })
}

/// The parameters a completed request may not have used already: each one of
/// the action's own, named once.
fn load_unique_by(names: &[String], own: &Value, fe: &mut FileErrors<'_>) -> Vec<String> {
    let own_names = own_parameter_names(own);
    for (j, name) in names.iter().enumerate() {
        if !own_names.contains(&name.as_str()) {
            fe.push(
                format!("unique_by[{j}]"),
                format!(
                    "{name:?} is not a parameter of the action (it takes {})",
                    own_names.join(", ")
                ),
            );
        } else if names[..j].contains(name) {
            fe.push(
                format!("unique_by[{j}]"),
                format!("{name:?} is named twice"),
            );
        } else if super::super::schema::is_secret(own, name) {
            fe.push(
                format!("unique_by[{j}]"),
                format!("{name:?} is a secret: its value is not kept to compare with"),
            );
        }
    }
    names.to_vec()
}

fn own_parameter_names(own: &Value) -> Vec<&str> {
    own.get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

/// The action's rules, each expression and message checked, each field one of
/// the action's own parameters (where its form shows the refusal).
fn load_rules(rules: &[ActionRuleFile], own: &Value, fe: &mut FileErrors<'_>) -> Vec<ActionRule> {
    if rules.len() > TypeAction::MAX_RULES {
        fe.push(
            "rules",
            format!(
                "declares {} rules; an action may declare at most {}",
                rules.len(),
                TypeAction::MAX_RULES
            ),
        );
        return Vec::new();
    }
    let own_names = own_parameter_names(own);
    rules
        .iter()
        .enumerate()
        .map(|(j, rule)| {
            fe.expression(format!("rules[{j}].when"), &rule.when);
            fe.template(format!("rules[{j}].message"), &rule.message);
            if rule.message.trim().is_empty() {
                fe.push(
                    format!("rules[{j}].message"),
                    "must not be empty: it is what the requester reads",
                );
            }
            let field = rule.field.clone().unwrap_or_default();
            if !field.is_empty() && !own_names.contains(&field.as_str()) {
                fe.push(
                    format!("rules[{j}].field"),
                    format!(
                        "{field:?} is not a parameter of the action (it takes {})",
                        own_names.join(", ")
                    ),
                );
            }
            ActionRule {
                when: rule.when.clone(),
                field,
                message: rule.message.clone(),
            }
        })
        .collect()
}

/// The template upgrade of a type whose outputs are what it deploys (files
/// committed to the GitOps repository, the default steps): no parameters of its
/// own, the outputs rendered again from the asset's recorded parameters, the
/// type's review and checks. A type with its own steps (a command, a pipeline)
/// gets none: running its creation again is not an upgrade, and what it made is
/// not in the repository to compare with.
pub(super) fn template_upgrade(
    base: &TypeFile,
    catalog: &Catalog,
    fe: &mut FileErrors<'_>,
) -> Option<TypeAction> {
    let own_steps = base.execute.as_ref().is_some_and(|steps| !steps.is_empty());
    if base.outputs.is_empty() || own_steps {
        return None;
    }
    let upgrade = ActionFile {
        name: TypeAction::UPGRADE.to_string(),
        title: "Upgrade to the current templates".to_string(),
        description: "Renders the asset again with the catalog's current templates; \
                      the review shows the file diff against what is deployed."
            .to_string(),
        retires: false,
        parameters: None,
        review: None,
        risk_hints: Vec::new(),
        outputs: None,
        execute: None,
        checks: None,
        rules: Vec::new(),
        unique_by: Vec::new(),
        refers_to: None,
    };
    let mut found: Vec<CatalogError> = Vec::new();
    let mut inner = FileErrors {
        file: fe.file,
        errors: &mut found,
    };
    let loaded = build_action((base, &[]), (0, upgrade, Vec::new()), catalog, &mut inner);
    // Only a fault of the type itself could fail it, and that is reported already.
    loaded.filter(|_| found.is_empty())
}

fn no_parameters() -> Value {
    json!({ "type": "object", "additionalProperties": false, "properties": {} })
}

/// The name (an id in URLs), title and description, within their limits.
fn check_words(
    action: &ActionFile,
    at: &impl Fn(&str) -> String,
    names: &mut BTreeSet<String>,
    fe: &mut FileErrors<'_>,
) {
    if action.name == TypeAction::UPGRADE {
        fe.push(
            at("name"),
            format!(
                "{:?} is Slipway's own action (it opens it when the type's templates change); name yours otherwise",
                action.name
            ),
        );
    } else if !TypeAction::is_valid_name(&action.name) {
        fe.push(
            at("name"),
            format!(
                "{:?} is not an action name: lowercase letters, digits and '-', starting with a letter and not ending with '-', at most {} characters",
                action.name,
                TypeAction::MAX_NAME
            ),
        );
    } else if !names.insert(action.name.clone()) {
        fe.push(
            at("name"),
            format!("another action is already named {:?}", action.name),
        );
    }
    let title = action.title.trim();
    if title.is_empty() {
        fe.push(at("title"), "must not be empty");
    } else if title.chars().count() > TypeAction::MAX_TITLE {
        fe.push(
            at("title"),
            format!("is longer than {} characters", TypeAction::MAX_TITLE),
        );
    }
    if action.description.chars().count() > TypeAction::MAX_DESCRIPTION {
        fe.push(
            at("description"),
            format!("is longer than {} characters", TypeAction::MAX_DESCRIPTION),
        );
    }
}

/// An action's form is an object schema, and cannot move the asset to another
/// team or environment: the team boundary and the lists rely on both.
fn check_own_parameters(
    base: &TypeFile,
    own: &Value,
    at: &impl Fn(&str) -> String,
    fe: &mut FileErrors<'_>,
) {
    if own.get("type").and_then(Value::as_str) != Some("object") {
        fe.push(at("parameters.type"), "must be \"object\"");
    }
    let Some(properties) = own.get("properties").and_then(Value::as_object) else {
        fe.push(
            at("parameters.properties"),
            "must be a map of the action's parameters",
        );
        return;
    };
    for name in properties.keys() {
        let fixed = [
            (base.owner_param.as_deref(), "owning team"),
            (base.environment_param.as_deref(), "environment"),
        ];
        for (param, what) in fixed {
            if param == Some(name.as_str()) {
                fe.push(
                    at(&format!("parameters.properties.{name}")),
                    format!("names the asset's {what}, which an action cannot change"),
                );
            }
        }
    }
}

/// The type's file as the action's request type: the action's parameters laid
/// over the type's, and its review, hints, outputs, steps and checks in place of
/// the type's. Quota belongs to creating an asset and generated secrets to the
/// request that made it; requirements stay (an action on a database still needs
/// its namespace, and its templates name it).
fn request_file(base: &TypeFile, action: &ActionFile, own: &Value, removes: &[String]) -> TypeFile {
    let mut file = base.clone();
    file.title = format!("{}: {}", base.title, action.title);
    file.description = action.description.clone();
    file.parameters = merged_schema(&base.parameters, own);
    file.quota = Vec::new();
    file.generated_secrets = Vec::new();
    file.actions = Vec::new();
    file.risk_hints = action.risk_hints.clone();
    if let Some(review) = &action.review {
        file.review = review.clone();
    }
    file.outputs = match &action.outputs {
        Some(outputs) => outputs.clone(),
        None if action.retires => Vec::new(),
        None => base.outputs.clone(),
    };
    file.execute = action.execute.clone();
    file.checks = match &action.checks {
        Some(checks) => checks.clone(),
        None if action.retires => removes.iter().map(|path| removal_check(path)).collect(),
        None => base.checks.clone(),
    };
    file
}

/// What proves a retired file is gone: a `git-file` check of a path the change
/// set removes passes when the repository no longer holds it.
fn removal_check(path: &str) -> CheckFile {
    CheckFile {
        kind: "git-file".into(),
        path: Some(path.to_string()),
        description: Some(format!("{path} is removed from the GitOps repository")),
        ..CheckFile::default()
    }
}

/// The type's schema with the action's properties in place of (or beside) the
/// type's, and the action's required parameters added to the type's.
fn merged_schema(base: &Value, own: &Value) -> Value {
    let mut merged = base.clone();
    let Some(object) = merged.as_object_mut() else {
        return merged;
    };
    let own_properties = own
        .get("properties")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let properties = object
        .entry("properties")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(properties) = properties.as_object_mut() {
        for (name, schema) in own_properties {
            properties.insert(name, schema);
        }
    }
    let own_required = own.get("required").and_then(Value::as_array).cloned();
    if let Some(own_required) = own_required {
        let required = object
            .entry("required")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Some(required) = required.as_array_mut() {
            for name in own_required {
                if !required.contains(&name) {
                    required.push(name);
                }
            }
        }
    }
    merged
}
