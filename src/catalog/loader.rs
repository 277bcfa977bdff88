//! Turns catalog files into a [`Catalog`], collecting every problem with the file
//! and the path inside it, so an author fixes them all in one pass.

use std::collections::{BTreeMap, BTreeSet};

use serde::de::DeserializeOwned;

use super::file::{DictionaryFile, GeneratedSecretFile, LimitsFile, StepFile, TypeFile};
use super::schema::{self, SchemaProblem};
use super::{
    Catalog, CatalogError, CatalogErrors, CommandStep, DEFAULT_MAX_NAME_LENGTH,
    DEFAULT_NAME_PATTERN, DEFAULT_NAME_PATTERN_DESCRIPTION, Dictionary, ExecutionLimits,
    ExecutionStep, GeneratedSecret, MonitoringSpec, Naming, OutputSpec, OwnerParam, QuotaRule,
    Requirement, ResourceType, ReviewPolicy, RiskHint, SourceFile, Term,
};
use crate::template;
use crate::views::Role;

mod actions;
mod checks;
mod pipeline;
mod splicing;

/// Errors found in one file, tagged with that file's path.
struct FileErrors<'a> {
    file: &'a str,
    errors: &'a mut Vec<CatalogError>,
}

impl FileErrors<'_> {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(CatalogError {
            file: self.file.to_string(),
            path: path.into(),
            message: message.into(),
        });
    }

    fn template(&mut self, path: impl Into<String>, source: &str) {
        if let Err(message) = template::check_template(source) {
            self.push(path, format!("invalid template: {message}"));
        }
    }

    /// A field its kind cannot do without, checked as a template; "" when absent.
    fn required(&mut self, path: String, value: Option<String>, what: &str) -> String {
        match value {
            Some(source) if !source.trim().is_empty() => {
                self.template(path, &source);
                source
            }
            _ => {
                self.push(path, format!("is required: {what}"));
                String::new()
            }
        }
    }

    fn expression(&mut self, path: impl Into<String>, source: &str) {
        if let Err(message) = template::check_expression(source) {
            self.push(path, format!("invalid expression: {message}"));
        }
    }
}

pub(super) fn load(files: &[SourceFile]) -> Result<Catalog, CatalogErrors> {
    let mut errors = Vec::new();
    let mut catalog = Catalog::default();
    let mut type_files = Vec::new();
    for file in files {
        let path = file.path.trim_start_matches("./");
        if let Some(name) = path.strip_prefix("templates/") {
            let mut fe = FileErrors {
                file: path,
                errors: &mut errors,
            };
            fe.template("", &file.content);
            catalog
                .templates
                .insert(name.to_string(), file.content.clone());
        } else if let Some(stem) = yaml_stem(path, "dictionaries/") {
            if let Some(dictionary) = load_dictionary(path, stem, &file.content, &mut errors) {
                catalog
                    .dictionaries
                    .insert(dictionary.name.clone(), dictionary);
            }
        } else if let Some(stem) = yaml_stem(path, "types/") {
            if is_type_name(stem) {
                type_files.push((path, stem, &file.content));
            } else {
                errors.push(CatalogError {
                    file: path.to_string(),
                    path: String::new(),
                    message: format!(
                        "{stem:?} is not a type name: the file's name is the type's name in addresses, \
                         the API and metrics; use 1 to 63 lowercase letters, digits, '-' and '_', starting with a letter"
                    ),
                });
            }
        }
    }
    let mut type_origin = BTreeMap::new();
    let mut unreadable = BTreeSet::new();
    for (path, stem, content) in type_files {
        match load_type(path, stem, content, &catalog, &mut errors) {
            Some(ty) => {
                type_origin.insert(ty.name.clone(), path);
                catalog.types.insert(ty.name.clone(), ty);
            }
            None => {
                unreadable.insert(stem);
            }
        }
    }
    check_requirements(&catalog, &type_origin, &unreadable, &mut errors);
    check_requirement_cycles(&catalog, &type_origin, &mut errors);
    for ty in catalog.types.values() {
        if let Some(file) = type_origin.get(&ty.name) {
            let mut fe = FileErrors {
                file,
                errors: &mut errors,
            };
            check_defaults(ty, &mut fe);
        }
    }
    if errors.is_empty() {
        Ok(catalog)
    } else {
        Err(CatalogErrors(errors))
    }
}

/// Every default must pass its own parameter's rule: a form opens with it, and a
/// chat request or a prefilled link that leaves the field out sends it, so a
/// requester would be refused over a value they never typed.
fn check_defaults(ty: &ResourceType, fe: &mut FileErrors<'_>) {
    let own = |name: &str| ty.has_param(name);
    report_failing_defaults(ty, "", &own, fe);
    for (i, action) in ty.actions.iter().enumerate() {
        let names = action.param_names();
        let own = |name: &str| names.iter().any(|n| n == name);
        let prefix = format!("actions[{i}].");
        report_failing_defaults(&action.request_type, &prefix, &own, fe);
    }
}

/// Reports each default of `ty` that its own parameter's rule refuses, at
/// `prefix` + its path, for the parameters `own` names (an action's type also
/// holds the asset's). Each is checked against its own property alone: a rule
/// that spans parameters (`if` one is `prod`, `then` another's minimum) depends
/// on values the defaults do not give.
fn report_failing_defaults(
    ty: &ResourceType,
    prefix: &str,
    own: &dyn Fn(&str) -> bool,
    fe: &mut FileErrors<'_>,
) {
    let Some(properties) = ty.parameters.get("properties").and_then(|p| p.as_object()) else {
        return;
    };
    for (param, value) in ty.default_params() {
        let Some(rule) = properties.get(&param).filter(|_| own(&param)) else {
            continue;
        };
        let schema = serde_json::json!({ "type": "object", "properties": { param.clone(): rule } });
        // An invalid schema is reported on its own.
        let Ok(validator) = crate::validate::compile_schema(&schema) else {
            continue;
        };
        let instance = serde_json::json!({ param.clone(): value });
        if let Some(error) = validator.iter_errors(&instance).next() {
            fe.push(
                format!("{prefix}parameters.properties.{param}.default"),
                format!("the default {value} fails its own rule: {error}"),
            );
        }
    }
}

/// A type's name, from its file's: it goes into URL paths, JSON, audit events and
/// metric labels unescaped.
fn is_type_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && name.len() <= 63
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// "types/x.yaml" -> "x"; nested folders are not part of the format.
fn yaml_stem<'a>(path: &'a str, folder: &str) -> Option<&'a str> {
    let stem = path.strip_prefix(folder)?.strip_suffix(".yaml")?;
    (!stem.contains('/')).then_some(stem)
}

fn parse_yaml<T: DeserializeOwned>(
    file: &str,
    content: &str,
    errors: &mut Vec<CatalogError>,
) -> Option<T> {
    // Deep brackets and aliases cost the parser far more than the file's size
    // (the duplicate-key pass below would expand every alias): refused unread.
    if let Some(why) = super::nesting::refusal(content) {
        errors.push(CatalogError {
            file: file.to_string(),
            path: String::new(),
            message: why,
        });
        return None;
    }
    // The typed structs take a repeated key in a map of their own (a parameter's
    // schema, `env`, `headers`) silently, the last one winning: a `maximum` lost
    // to a merge left-over would let values through unchecked. The plain YAML
    // value refuses repeated keys at any depth, so it is read first for that.
    if let Err(error) = serde_norway::from_str::<serde_norway::Value>(content)
        && error.to_string().contains("duplicate entry")
    {
        errors.push(CatalogError {
            file: file.to_string(),
            path: String::new(),
            message: format!("{error}: each key may appear once in a mapping"),
        });
        return None;
    }
    let deserializer = serde_norway::Deserializer::from_str(content);
    match serde_path_to_error::deserialize(deserializer) {
        Ok(value) => Some(value),
        Err(error) => {
            let path = error.path().to_string();
            let path = if path == "." { String::new() } else { path };
            let message = error.into_inner().to_string();
            // serde_norway repeats the path in front of its message; we report it apart.
            let message = match message.split_once(": ") {
                Some((head, rest)) if !head.is_empty() && path.starts_with(head) => {
                    rest.to_string()
                }
                _ => message,
            };
            errors.push(CatalogError {
                file: file.to_string(),
                path,
                message,
            });
            None
        }
    }
}

fn load_dictionary(
    file: &str,
    stem: &str,
    content: &str,
    errors: &mut Vec<CatalogError>,
) -> Option<Dictionary> {
    let raw: DictionaryFile = parse_yaml(file, content, errors)?;
    let mut fe = FileErrors { file, errors };
    if raw.name != stem {
        fe.push("name", format!("must match the file name {stem:?}"));
    }
    let mut seen = BTreeSet::new();
    for (i, term) in raw.terms.iter().enumerate() {
        if term.key.trim().is_empty() {
            fe.push(format!("terms[{i}].key"), "must not be empty");
        } else if !seen.insert(term.key.as_str()) {
            fe.push(
                format!("terms[{i}].key"),
                format!("duplicate key {:?}", term.key),
            );
        }
    }
    if raw.terms.is_empty() {
        fe.push("terms", "a dictionary needs at least one term");
    }
    let terms = raw.terms.into_iter().map(|t| Term {
        key: t.key,
        title: t.title,
        description: t.description,
    });
    Some(Dictionary {
        name: raw.name,
        title: raw.title,
        description: raw.description,
        terms: terms.collect(),
    })
}

fn load_type(
    file: &str,
    stem: &str,
    content: &str,
    catalog: &Catalog,
    errors: &mut Vec<CatalogError>,
) -> Option<ResourceType> {
    let mut raw: TypeFile = parse_yaml(file, content, errors)?;
    let mut fe = FileErrors { file, errors };
    if raw.name != stem {
        fe.push("name", format!("must match the file name {stem:?}"));
    }
    let declared = std::mem::take(&mut raw.actions);
    let before = fe.errors.len();
    let mut ty = build_type(raw.clone(), Vec::new(), catalog, &mut fe);
    // A type with problems of its own would report them again in every action.
    if fe.errors.len() == before {
        ty.actions = actions::load_actions(&raw, declared, catalog, &mut fe);
        ty.actions
            .extend(actions::template_upgrade(&raw, catalog, &mut fe));
        splicing::check_referred_free_text(&ty, catalog, &mut fe);
    }
    ty.version = super::version::type_version(content, &ty, &catalog.templates);
    for action in &mut ty.actions {
        action.request_type.version = ty.version.clone();
    }
    Some(ty)
}

/// A type from its file, checked: a type's creation, or an action's request type
/// (which may remove files instead of writing any).
fn build_type(
    raw: TypeFile,
    removes: Vec<String>,
    catalog: &Catalog,
    fe: &mut FileErrors<'_>,
) -> ResourceType {
    let owner_param = raw.owner_param.map(|param| {
        // The dictionary is read before resolution replaces `x-dictionary` by an enum.
        let dictionary = raw
            .parameters
            .get("properties")
            .and_then(|p| p.get(&param))
            .and_then(|p| p.get("x-dictionary"))
            .and_then(|d| d.as_str())
            .unwrap_or_default()
            .to_string();
        OwnerParam { param, dictionary }
    });
    let parameters = load_parameters(raw.parameters, catalog, fe);
    let naming = match raw.naming.pattern {
        Some(pattern) => Naming {
            pattern_description: raw
                .naming
                .pattern_description
                .unwrap_or_else(|| format!("matching {pattern}")),
            pattern,
            template: raw.naming.template,
            max_length: raw.naming.max_length.unwrap_or(DEFAULT_MAX_NAME_LENGTH),
        },
        None => Naming {
            pattern: DEFAULT_NAME_PATTERN.to_string(),
            pattern_description: raw
                .naming
                .pattern_description
                .unwrap_or_else(|| DEFAULT_NAME_PATTERN_DESCRIPTION.to_string()),
            template: raw.naming.template,
            max_length: raw.naming.max_length.unwrap_or(DEFAULT_MAX_NAME_LENGTH),
        },
    };
    let outputs: Vec<OutputSpec> = raw
        .outputs
        .into_iter()
        .map(|o| OutputSpec {
            name: o.name.unwrap_or_else(|| o.template.clone()),
            path: o.path,
            template: o.template,
        })
        .collect();
    let generated_secrets = load_generated_secrets(raw.generated_secrets, &parameters, fe);
    let secret_names: Vec<String> = schema::secret_params(&parameters)
        .into_iter()
        .chain(generated_secrets.iter().map(|g| g.name.clone()))
        .collect();
    let ty = ResourceType {
        name: raw.name,
        title: raw.title,
        description: raw.description,
        owner: raw.owner,
        owner_param,
        environment_param: raw.environment_param,
        search: raw.search,
        naming,
        quota: raw
            .quota
            .into_iter()
            .map(|q| QuotaRule {
                per: q.per,
                max_count: q.max_count,
                sum: q.sum,
                max: q.max,
            })
            .collect(),
        requires: raw
            .requires
            .into_iter()
            .map(|r| Requirement {
                type_name: r.type_name,
                r#match: r.match_,
                description: r.description,
            })
            .collect(),
        review: ReviewPolicy {
            approver_role: raw.review.approvers.role,
            required: raw.review.required.unwrap_or(1),
            auto_approve_when: raw.review.auto_approve.map(|a| a.when),
        },
        risk_hints: raw
            .risk_hints
            .into_iter()
            .map(|r| RiskHint {
                when: r.when,
                message: r.message,
            })
            .collect(),
        execute: load_execute(raw.execute, &outputs, &secret_names, fe),
        limits: load_limits(raw.execution_limits, fe),
        outputs,
        generated_secrets,
        checks: checks::load_checks(raw.checks, &secret_names, fe),
        monitoring: raw
            .monitoring
            .into_iter()
            .map(|m| MonitoringSpec {
                name: m.name,
                kind: m.kind,
                target: m.target,
            })
            .collect(),
        parameters,
        removes,
        actions: Vec::new(),
        version: String::new(),
    };
    check_type(&ty, catalog, fe);
    ty
}

fn load_parameters(
    mut parameters: serde_json::Value,
    catalog: &Catalog,
    fe: &mut FileErrors<'_>,
) -> serde_json::Value {
    let mut problems: Vec<SchemaProblem> = Vec::new();
    super::keywords::check_keywords(&parameters, "", &mut problems);
    schema::check_secrets(&parameters, &mut problems);
    schema::resolve_dictionaries(&mut parameters, &catalog.dictionaries, "", &mut problems);
    schema::check_form_shape(&parameters, &mut problems);
    check_enum_titles(&parameters, "", &mut problems);
    schema::check_valid(&parameters, &mut problems);
    for p in problems {
        let path = if p.path.is_empty() {
            "parameters".to_string()
        } else if p.path.starts_with('[') {
            format!("parameters{}", p.path)
        } else {
            format!("parameters.{}", p.path)
        };
        fe.push(path, p.message);
    }
    parameters
}

/// `x-enum-titles` labels the choices of `enum` by position: the form shows the
/// title of one value for another if they do not line up one to one.
fn check_enum_titles(schema: &serde_json::Value, path: &str, problems: &mut Vec<SchemaProblem>) {
    let at = |key: &str| {
        if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        }
    };
    match schema {
        serde_json::Value::Object(map) => {
            if let Some(titles) = map.get("x-enum-titles") {
                let choices = map.get("enum").and_then(|e| e.as_array()).map(Vec::len);
                let message = match (titles.as_array(), choices) {
                    (_, None) => Some("needs an `enum` whose values it titles".to_string()),
                    (Some(titles), _) if !titles.iter().all(|t| t.is_string()) => {
                        Some("must be a list of texts".to_string())
                    }
                    (None, _) => Some("must be a list of texts".to_string()),
                    (Some(titles), Some(choices)) if titles.len() != choices => Some(format!(
                        "has {} titles for {choices} enum values; give one title per value, in order",
                        titles.len()
                    )),
                    _ => None,
                };
                if let Some(message) = message {
                    problems.push(SchemaProblem {
                        path: at("x-enum-titles"),
                        message,
                    });
                }
            }
            for (key, child) in map {
                check_enum_titles(child, &at(key), problems);
            }
        }
        serde_json::Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                check_enum_titles(child, &format!("{path}[{i}]"), problems);
            }
        }
        _ => {}
    }
}

fn check_type(ty: &ResourceType, catalog: &Catalog, fe: &mut FileErrors<'_>) {
    fe.template("naming.template", &ty.naming.template);
    if ty.naming.max_length == 0 {
        fe.push("naming.max_length", "must be at least 1");
    }
    if let Err(message) = crate::validate::NameRule::new(&ty.naming) {
        fe.push("naming.pattern", message);
    }
    check_parameter_names(ty, fe);
    check_required_names(ty, fe);
    check_owner(ty, catalog, fe);
    check_listing(ty, fe);
    if Role::parse(&ty.review.approver_role).is_none() {
        let roles: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
        fe.push(
            "review.approvers.role",
            format!(
                "{:?} is not a role; the roles are {}",
                ty.review.approver_role,
                roles.join(", ")
            ),
        );
    }
    for (i, rule) in ty.quota.iter().enumerate() {
        check_quota(ty, i, rule, fe);
    }
    for (i, req) in ty.requires.iter().enumerate() {
        for (param, source) in &req.r#match {
            fe.template(format!("requires[{i}].match.{param}"), source);
        }
    }
    if ty.review.required == 0 {
        fe.push(
            "review.required",
            "must be at least 1; use auto_approve for no review",
        );
    }
    if let Some(when) = &ty.review.auto_approve_when {
        fe.expression("review.auto_approve.when", when);
    }
    for (i, hint) in ty.risk_hints.iter().enumerate() {
        fe.expression(format!("risk_hints[{i}].when"), &hint.when);
        fe.template(format!("risk_hints[{i}].message"), &hint.message);
    }
    check_outputs(ty, catalog, fe);
    splicing::check_free_text(ty, catalog, fe);
    check_output_names(ty, fe);
    for (i, item) in ty.monitoring.iter().enumerate() {
        fe.template(format!("monitoring[{i}].name"), &item.name);
        fe.template(format!("monitoring[{i}].kind"), &item.kind);
        fe.template(format!("monitoring[{i}].target"), &item.target);
    }
}

/// The dictionary the offering team of a type without `owner_param` must be in.
const TEAMS_DICTIONARY: &str = "teams";

/// The team offering the type (`owner`) must be one the catalog knows: its
/// reviewers review the type's requests, so a misspelled team would leave them
/// to no one. With an owning-team parameter, the parameter must exist and draw
/// from a dictionary of teams that knows the offering team; without one, the
/// `teams` dictionary must know it.
fn check_owner(ty: &ResourceType, catalog: &Catalog, fe: &mut FileErrors<'_>) {
    let Some(owner) = &ty.owner_param else {
        // A catalog without a teams dictionary (teams taken from the identity
        // provider's groups as named) has nothing to check the owner against.
        if catalog.dictionary(TEAMS_DICTIONARY).is_some() {
            check_offering_team(ty, catalog, TEAMS_DICTIONARY, fe);
        }
        return;
    };
    if !ty.has_param(&owner.param) {
        fe.push(
            "owner_param",
            format!(
                "names {:?}, which is not a parameter of this type",
                owner.param
            ),
        );
        return;
    }
    if !ty.is_required(&owner.param) {
        fe.push(
            "owner_param",
            format!(
                "the parameter {:?} must be listed in parameters.required: a request without \
                 a team would belong to no team and pass the team boundary",
                owner.param
            ),
        );
    }
    if owner.dictionary.is_empty() {
        fe.push(
            "owner_param",
            format!(
                "the parameter {:?} must take its values from a dictionary of teams (x-dictionary)",
                owner.param
            ),
        );
        return;
    }
    // An unknown dictionary is reported where the parameter names it.
    if catalog.dictionary(&owner.dictionary).is_some() {
        check_offering_team(ty, catalog, &owner.dictionary, fe);
    }
}

/// `owner` must be a term of the dictionary `name`.
fn check_offering_team(ty: &ResourceType, catalog: &Catalog, name: &str, fe: &mut FileErrors<'_>) {
    let Some(teams) = catalog.dictionary(name) else {
        return;
    };
    if teams.terms.iter().any(|t| t.key == ty.owner) {
        return;
    }
    let mut message = format!("{:?} is not a team of the dictionary {name:?}", ty.owner);
    if ty.owner_param.is_none() {
        // Beside an owner parameter the dictionary is the author's own choice;
        // here it is implied, so say which teams it has and why it matters.
        let mut known: Vec<&str> = teams
            .terms
            .iter()
            .map(|t| t.key.as_str())
            .take(20)
            .collect();
        if teams.terms.len() > known.len() {
            known.push("…");
        }
        message.push_str(&format!(
            " (its teams: {}): the offering team's reviewers review the type's requests",
            known.join(", ")
        ));
    }
    fe.push("owner", message);
}

/// Names templates are given beside the parameters (`template::context`,
/// `template::render_context`, `template::action_context`, `execution::plan`):
/// a parameter of the same name would be hidden by them, or hide them.
const RESERVED_TEMPLATE_NAMES: [&str; 9] = [
    "resource_type",
    "resource_name",
    "requires",
    "current",
    "request_id",
    "revision",
    "requester",
    "run_key",
    "inputs",
];

/// Words a template reads as literals or operators, never as a variable.
const TEMPLATE_KEYWORDS: [&str; 13] = [
    "true", "false", "none", "True", "False", "None", "and", "or", "not", "in", "is", "if", "else",
];

/// Every parameter is a variable of the templates: its name must be one a
/// template can write, and not one the templates already use.
fn check_parameter_names(ty: &ResourceType, fe: &mut FileErrors<'_>) {
    let Some(properties) = ty.parameters.get("properties").and_then(|p| p.as_object()) else {
        return;
    };
    for name in properties.keys() {
        let at = format!("parameters.properties.{name}");
        if RESERVED_TEMPLATE_NAMES.contains(&name.as_str()) {
            fe.push(
                at,
                format!(
                    "{name:?} is a name templates are given by Slipway ({}); call the parameter otherwise",
                    RESERVED_TEMPLATE_NAMES.join(", ")
                ),
            );
        } else if !super::is_plain_name(name) || TEMPLATE_KEYWORDS.contains(&name.as_str()) {
            fe.push(
                at,
                format!(
                    "{name:?} cannot be read by a template: use letters, digits and '_', \
                     not starting with a digit, and not a word like true, none, and or not"
                ),
            );
        }
    }
}

/// A `required` entry that names no property is a typo that leaves the property
/// it meant optional (`[name, taem]`): the schema engine accepts it silently.
fn check_required_names(ty: &ResourceType, fe: &mut FileErrors<'_>) {
    let Some(required) = ty.parameters.get("required").and_then(|r| r.as_array()) else {
        return;
    };
    for (i, entry) in required.iter().enumerate() {
        match entry.as_str() {
            Some(name) if ty.has_param(name) => {}
            Some(name) => fe.push(
                format!("parameters.required[{i}]"),
                format!("names {name:?}, which is not a property of the parameters"),
            ),
            None => fe.push(
                format!("parameters.required[{i}]"),
                "must be the name of a property",
            ),
        }
    }
}

/// A quota counts a request in the scope its parameters name: a parameter the
/// request may leave out would let it escape the rule.
fn must_be_required(ty: &ResourceType, param: &str, role: &str) -> Option<String> {
    (!ty.is_required(param)).then(|| {
        format!(
            "parameter {param:?} {role} and must be listed in parameters.required: \
             a request without it would escape the quota"
        )
    })
}

/// A summed parameter's values must add up without overflow and never lower a
/// sum: a `minimum` of 0 or more and a `maximum` that fits a 64-bit integer.
fn summed_bounds_problem(ty: &ResourceType, sum: &str) -> Option<String> {
    let property = ty.parameters.get("properties")?.get(sum)?;
    let bound = |key: &str| property.get(key).and_then(crate::validate::whole_number);
    match (bound("minimum"), bound("maximum")) {
        (Some(minimum), Some(_)) if minimum >= 0 => None,
        _ => Some(format!(
            "parameter {sum:?} is summed, so it needs a whole-number `minimum` of 0 or more and \
             a whole-number `maximum` of at most {}: otherwise a value can be too large to count",
            i64::MAX
        )),
    }
}

/// Quota scopes and requirements are answered by indexes over the stored
/// parameters, compared as text: the parameter must be a plain identifier and hold
/// a string or an integer.
fn lookup_key_problem(ty: &ResourceType, param: &str) -> Option<String> {
    if !super::is_plain_name(param) {
        return Some(plain_name_rule(param));
    }
    match schema::property_type(&ty.parameters, param) {
        Some("integer") => None,
        Some("string") if schema::is_shaped(&ty.parameters, param) => None,
        Some("string") => Some(format!(
            "parameter {param:?} is free text: `Payments`, `payments` and `payments ` would be \
             three scopes (or miss a match); give it choices (`enum` or `x-dictionary`) or a `pattern`"
        )),
        other => Some(format!(
            "parameter {param:?} of type {:?} cannot be matched on; use a string or integer parameter",
            other.unwrap_or("unknown")
        )),
    }
}

fn plain_name_rule(param: &str) -> String {
    format!(
        "parameter {param:?} cannot be looked up: use letters, digits and '_', not starting with a digit"
    )
}

/// The environment parameter and the searchable ones must exist and be readable
/// as text; a secret is never indexed.
fn check_listing(ty: &ResourceType, fe: &mut FileErrors<'_>) {
    if let Some(param) = &ty.environment_param {
        if !ty.has_param(param) {
            fe.push(
                "environment_param",
                format!("names {param:?}, which is not a parameter of this type"),
            );
        } else if schema::property_type(&ty.parameters, param) != Some("string") {
            fe.push(
                "environment_param",
                format!("parameter {param:?} must be of type string"),
            );
        }
    }
    for (i, param) in ty.search.iter().enumerate() {
        if !ty.has_param(param) {
            fe.push(
                format!("search[{i}]"),
                format!("unknown parameter {param:?}"),
            );
        } else if ty.is_secret(param) {
            fe.push(
                format!("search[{i}]"),
                format!("parameter {param:?} is secret and is never indexed"),
            );
        }
    }
}

/// Usage is counted in signed 64-bit integers: a larger limit could never be
/// told apart from a total that overflowed.
fn check_quota_limits(i: usize, rule: &QuotaRule, fe: &mut FileErrors<'_>) {
    for (field, limit) in [("max_count", rule.max_count), ("max", rule.max)] {
        if limit.is_some_and(|limit| i64::try_from(limit).is_err()) {
            fe.push(
                format!("quota[{i}].{field}"),
                format!(
                    "must be at most {}: usage is counted in 64-bit integers",
                    i64::MAX
                ),
            );
        }
    }
}

fn check_quota(ty: &ResourceType, i: usize, rule: &QuotaRule, fe: &mut FileErrors<'_>) {
    check_quota_limits(i, rule, fe);
    for (j, param) in rule.per.iter().enumerate() {
        if !ty.has_param(param) {
            fe.push(
                format!("quota[{i}].per[{j}]"),
                format!("unknown parameter {param:?}"),
            );
        } else if ty.is_secret(param) {
            // Scopes are compared as stored, and a secret is stored as a placeholder.
            fe.push(
                format!("quota[{i}].per[{j}]"),
                format!("parameter {param:?} is secret and cannot scope a quota"),
            );
        } else if let Some(problem) = lookup_key_problem(ty, param) {
            fe.push(format!("quota[{i}].per[{j}]"), problem);
        } else if let Some(problem) = must_be_required(ty, param, "scopes the quota") {
            fe.push(format!("quota[{i}].per[{j}]"), problem);
        }
    }
    match (&rule.sum, rule.max) {
        (Some(sum), Some(_)) => {
            if !ty.has_param(sum) {
                fe.push(
                    format!("quota[{i}].sum"),
                    format!("unknown parameter {sum:?}"),
                );
            } else if schema::property_type(&ty.parameters, sum) != Some("integer") {
                fe.push(
                    format!("quota[{i}].sum"),
                    format!("parameter {sum:?} must be of type integer to be summed"),
                );
            } else if !super::is_plain_name(sum) {
                fe.push(format!("quota[{i}].sum"), plain_name_rule(sum));
            } else if let Some(problem) = must_be_required(ty, sum, "is summed by the quota") {
                fe.push(format!("quota[{i}].sum"), problem);
            } else if let Some(problem) = summed_bounds_problem(ty, sum) {
                fe.push(format!("quota[{i}].sum"), problem);
            }
        }
        (Some(_), None) => fe.push(format!("quota[{i}]"), "`sum` needs a `max`"),
        (None, Some(_)) => fe.push(format!("quota[{i}]"), "`max` needs a `sum`"),
        (None, None) if rule.max_count.is_none() => {
            fe.push(
                format!("quota[{i}]"),
                "needs `max_count`, or `sum` with `max`",
            );
        }
        (None, None) => {}
    }
}

fn check_outputs(ty: &ResourceType, catalog: &Catalog, fe: &mut FileErrors<'_>) {
    if ty.outputs.is_empty() && ty.removes.is_empty() {
        fe.push("outputs", "a type needs at least one output");
    }
    for (i, output) in ty.outputs.iter().enumerate() {
        fe.template(format!("outputs[{i}].path"), &output.path);
        if !catalog.templates.contains_key(&output.template) {
            fe.push(
                format!("outputs[{i}].template"),
                format!("no file templates/{} in the catalog", output.template),
            );
        }
    }
}

/// The worker's limits for the type, each within its range; unset ones default.
fn load_limits(raw: Option<LimitsFile>, fe: &mut FileErrors<'_>) -> ExecutionLimits {
    let mut limits = ExecutionLimits::default();
    let Some(raw) = raw else { return limits };
    if let Some(attempts) = raw.max_attempts {
        let range = ExecutionLimits::MAX_ATTEMPTS;
        if range.contains(&attempts) {
            limits.max_attempts = attempts;
        } else {
            fe.push(
                "execution_limits.max_attempts",
                format!("must be from {} to {}", range.start(), range.end()),
            );
        }
    }
    if let Some(seconds) = raw.step_timeout_seconds {
        let range = ExecutionLimits::STEP_TIMEOUT_SECONDS;
        if range.contains(&seconds) {
            limits.step_timeout_seconds = seconds;
        } else {
            fe.push(
                "execution_limits.step_timeout_seconds",
                format!("must be from {} to {} (a day)", range.start(), range.end()),
            );
        }
    }
    limits
}

/// The `execute` steps as written, each checked for its driver's fields against the
/// type's outputs; a type that declares none commits every output in one GitOps step.
fn load_execute(
    steps: Option<Vec<StepFile>>,
    outputs: &[OutputSpec],
    secret_names: &[String],
    fe: &mut FileErrors<'_>,
) -> Vec<ExecutionStep> {
    let Some(steps) = steps else {
        return vec![ExecutionStep::commit_all()];
    };
    if steps.is_empty() {
        fe.push(
            "execute",
            "needs at least one step; leave `execute` out to commit every output in one gitops step",
        );
    }
    let known = || {
        outputs
            .iter()
            .map(|o| format!("{:?}", o.name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut loaded = Vec::with_capacity(steps.len());
    for (i, step) in steps.into_iter().enumerate() {
        refuse_foreign_fields(i, &step, fe);
        match step.driver.as_str() {
            "command" => {
                if let Some(command) = load_command(i, step, outputs, secret_names, fe) {
                    loaded.push(ExecutionStep::Command(command));
                }
            }
            "pipeline" => loaded.push(ExecutionStep::Pipeline(pipeline::load_pipeline(
                i, step, fe,
            ))),
            "gitops" => {
                if let Some(names) = &step.outputs {
                    if names.is_empty() {
                        fe.push(
                            format!("execute[{i}].outputs"),
                            "names no output; leave it out to commit every output",
                        );
                    }
                    let mut seen = BTreeSet::new();
                    for (j, name) in names.iter().enumerate() {
                        if !outputs.iter().any(|o| &o.name == name) {
                            fe.push(
                                format!("execute[{i}].outputs[{j}]"),
                                format!("no output is named {name:?}; the outputs are {}", known()),
                            );
                        } else if !seen.insert(name.as_str()) {
                            fe.push(
                                format!("execute[{i}].outputs[{j}]"),
                                format!("output {name:?} is named twice"),
                            );
                        }
                    }
                }
                if let Some(message) = &step.message {
                    fe.template(format!("execute[{i}].message"), message);
                }
                loaded.push(ExecutionStep::Gitops {
                    outputs: step.outputs,
                    message: step.message,
                });
            }
            other => fe.push(
                format!("execute[{i}].driver"),
                format!(
                    "unknown driver {other:?}; the drivers are {}",
                    ExecutionStep::DRIVERS.join(", ")
                ),
            ),
        }
    }
    loaded
}

/// A field of another driver is a mistake the author should hear about, not a
/// setting silently ignored.
fn refuse_foreign_fields(i: usize, step: &StepFile, fe: &mut FileErrors<'_>) {
    let given: [(&str, bool, &str); 24] = [
        ("outputs", step.outputs.is_some(), "gitops"),
        ("message", step.message.is_some(), "gitops"),
        ("program", step.program.is_some(), "command"),
        ("args", step.args.is_some(), "command"),
        ("inputs", step.inputs.is_some(), "command"),
        ("env", step.env.is_some(), "command"),
        ("secret_env", step.secret_env.is_some(), "command"),
        (
            "secret_env_scram",
            step.secret_env_scram.is_some(),
            "command",
        ),
        ("timeout_seconds", step.timeout_seconds.is_some(), "command"),
        ("postgres_server", step.postgres_server.is_some(), "command"),
        (
            "retry_exit_codes",
            step.retry_exit_codes.is_some(),
            "command",
        ),
        ("method", step.method.is_some(), "pipeline"),
        ("url", step.url.is_some(), "pipeline"),
        ("headers", step.headers.is_some(), "pipeline"),
        ("body", step.body.is_some(), "pipeline"),
        ("token", step.token.is_some(), "pipeline"),
        ("token_header", step.token_header.is_some(), "pipeline"),
        ("token_prefix", step.token_prefix.is_some(), "pipeline"),
        ("status_url", step.status_url.is_some(), "pipeline"),
        ("status_pointer", step.status_pointer.is_some(), "pipeline"),
        ("success", step.success.is_some(), "pipeline"),
        ("failure", step.failure.is_some(), "pipeline"),
        (
            "deadline_seconds",
            step.deadline_seconds.is_some(),
            "pipeline",
        ),
        ("poll_seconds", step.poll_seconds.is_some(), "pipeline"),
    ];
    if !ExecutionStep::DRIVERS.contains(&step.driver.as_str()) {
        return;
    }
    for (field, present, owner) in given {
        if present && owner != step.driver {
            fe.push(
                format!("execute[{i}].{field}"),
                format!("is a field of the {owner} driver, not of {}", step.driver),
            );
        }
    }
}

/// An environment variable name as a shell would accept it.
fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Variables that make a program load code of someone else's choosing, or send
/// its traffic and the credentials in it elsewhere, or trust another
/// certificate authority: a step that set one could take the operator's
/// credentials (a passed-on token, a kubeconfig) where they do not belong.
const REDIRECTING_ENV: [&str; 18] = [
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
    "GIT_SSL_CAINFO",
    "PYTHONPATH",
    "PYTHONSTARTUP",
    "NODE_OPTIONS",
    "PERL5OPT",
    "PERL5LIB",
    "RUBYOPT",
    "GIT_SSH",
    "GIT_SSH_COMMAND",
    "GIT_ASKPASS",
    "SSH_ASKPASS",
    "KUBECONFIG",
    "HOME",
];

/// Why a step may not set this variable: the server's settings choose the
/// programs a command finds and loads, where its traffic goes and what it
/// trusts, and, beside a PostgreSQL server, where and as whom it connects (the
/// admin's password goes with the connection).
fn reserved_env(name: &str, beside_postgres_server: bool) -> Option<&'static str> {
    let loader = ["PATH", "IFS", "BASH_ENV", "ENV"].contains(&name)
        || name.starts_with("LD_")
        || name.starts_with("DYLD_");
    if loader {
        return Some("is the server's to set: it chooses which programs run and what they load");
    }
    if name == crate::execution::STEP_RUN_ENV {
        return Some("is the server's to set: it marks the processes of one run, to end them all");
    }
    // Programs read both spellings of the proxy variables.
    let upper = name.to_ascii_uppercase();
    let proxy = ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"].contains(&upper.as_str());
    if proxy || REDIRECTING_ENV.contains(&name) || name.starts_with("GIT_CONFIG") {
        return Some(
            "is the server's to set: it chooses where programs send their traffic, which \
             certificates they trust and what code and credentials they load",
        );
    }
    (beside_postgres_server && crate::execution::is_pg_connection_variable(name)).then_some(
        "is the PostgreSQL server's to set: where and as whom to connect, and what psql loads or starts, come from the server's settings",
    )
}

/// The longest a command may be given, in seconds: a day.
const MAX_COMMAND_SECONDS: u64 = 86_400;

fn load_command(
    i: usize,
    step: StepFile,
    outputs: &[OutputSpec],
    secret_names: &[String],
    fe: &mut FileErrors<'_>,
) -> Option<CommandStep> {
    let program = step.program.unwrap_or_default();
    check_program(
        format!("execute[{i}].program"),
        "a command step",
        &program,
        fe,
    );
    let args = step.args.unwrap_or_default();
    for (j, arg) in args.iter().enumerate() {
        fe.template(format!("execute[{i}].args[{j}]"), arg);
    }
    if let Some(names) = &step.inputs {
        for (j, name) in names.iter().enumerate() {
            if !outputs.iter().any(|o| &o.name == name) {
                let known: Vec<String> = outputs.iter().map(|o| format!("{:?}", o.name)).collect();
                fe.push(
                    format!("execute[{i}].inputs[{j}]"),
                    format!(
                        "no output is named {name:?}; the outputs are {}",
                        known.join(", ")
                    ),
                );
            }
        }
    }
    let env = step.env.unwrap_or_default();
    for (name, value) in &env {
        if !is_env_name(name) {
            fe.push(
                format!("execute[{i}].env.{name}"),
                "is not a valid environment variable name (letters, digits and '_', not starting with a digit)",
            );
        } else if let Some(why) = reserved_env(name, step.postgres_server.is_some()) {
            fe.push(format!("execute[{i}].env.{name}"), why);
        }
        fe.template(format!("execute[{i}].env.{name}"), value);
    }
    let secret_env = step.secret_env.unwrap_or_default();
    let secret_env_scram = step.secret_env_scram.unwrap_or_default();
    let secret_maps = [
        ("secret_env", &secret_env, &secret_env_scram),
        ("secret_env_scram", &secret_env_scram, &secret_env),
    ];
    for (field, map, other) in secret_maps {
        for (name, param) in map {
            let at = format!("execute[{i}].{field}.{name}");
            if !is_env_name(name) {
                fe.push(
                    at.clone(),
                    "is not a valid environment variable name (letters, digits and '_', not starting with a digit)",
                );
            } else if let Some(why) = reserved_env(name, step.postgres_server.is_some()) {
                fe.push(at.clone(), why);
            } else if env.contains_key(name) {
                fe.push(at.clone(), "is also set in `env`; give each variable once");
            } else if field == "secret_env_scram" && other.contains_key(name) {
                fe.push(
                    at.clone(),
                    "is also set in `secret_env`; give each variable once",
                );
            }
            if !secret_names.contains(param) {
                fe.push(
                    at,
                    format!(
                        "{param:?} is neither a secret parameter (x-secret: true) nor a generated secret of this type"
                    ),
                );
            }
        }
    }
    if let Some(server) = &step.postgres_server
        && !is_setting_name(server)
    {
        fe.push(
            format!("execute[{i}].postgres_server"),
            format!(
                "{server:?} is not a server name of the settings (letters, digits, '-' and '_')"
            ),
        );
    }
    if let Some(seconds) = step.timeout_seconds
        && !(1..=MAX_COMMAND_SECONDS).contains(&seconds)
    {
        fe.push(
            format!("execute[{i}].timeout_seconds"),
            format!("must be between 1 and {MAX_COMMAND_SECONDS} (a day)"),
        );
    }
    let retry_exit_codes = step.retry_exit_codes.unwrap_or_default();
    if retry_exit_codes.len() > MAX_RETRY_EXIT_CODES
        || retry_exit_codes
            .iter()
            .any(|code| !(1..=255).contains(code))
    {
        fe.push(
            format!("execute[{i}].retry_exit_codes"),
            format!(
                "must list at most {MAX_RETRY_EXIT_CODES} exit statuses from 1 to 255 (0 is success)"
            ),
        );
    }
    Some(CommandStep {
        program,
        args,
        inputs: step.inputs,
        env,
        secret_env,
        secret_env_scram,
        timeout_seconds: step.timeout_seconds,
        postgres_server: step.postgres_server,
        retry_exit_codes,
    })
}

/// The most exit statuses a command step may list as passing failures.
const MAX_RETRY_EXIT_CODES: usize = 16;

/// A name the server's settings give a server or a token: plain, never a template.
pub(super) fn is_setting_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Generated secrets: named like parameters but never one of them, each once.
fn load_generated_secrets(
    raw: Vec<GeneratedSecretFile>,
    parameters: &serde_json::Value,
    fe: &mut FileErrors<'_>,
) -> Vec<GeneratedSecret> {
    let mut seen = BTreeSet::new();
    raw.into_iter()
        .enumerate()
        .map(|(i, file)| {
            let at = |field: &str| format!("generated_secrets[{i}].{field}");
            if !is_env_name(&file.name) || file.name.starts_with('_') {
                fe.push(
                    at("name"),
                    format!(
                        "{:?} must be letters, digits and '_', starting with a letter",
                        file.name
                    ),
                );
            } else if parameters
                .get("properties")
                .and_then(|p| p.get(&file.name))
                .is_some()
            {
                fe.push(
                    at("name"),
                    format!(
                        "{:?} is also a parameter; a generated secret needs its own name",
                        file.name
                    ),
                );
            } else if !seen.insert(file.name.clone()) {
                fe.push(at("name"), format!("{:?} is generated twice", file.name));
            }
            if file.title.trim().is_empty() {
                fe.push(at("title"), "must not be empty: the requester sees it");
            }
            let length = file.length.unwrap_or(GeneratedSecret::DEFAULT_LENGTH);
            if !GeneratedSecret::LENGTH.contains(&length) {
                fe.push(
                    at("length"),
                    format!(
                        "must be from {} to {} characters",
                        GeneratedSecret::LENGTH.start(),
                        GeneratedSecret::LENGTH.end()
                    ),
                );
            }
            GeneratedSecret {
                name: file.name,
                title: file.title,
                description: file.description,
                length,
            }
        })
        .collect()
}

/// A program is named as the server's allow-list names it: no arguments, no
/// templates, so the allow-list decides exactly what runs.
fn check_program(path: String, what: &str, program: &str, fe: &mut FileErrors<'_>) {
    let trimmed = program.trim();
    if trimmed.is_empty() {
        fe.push(
            path,
            format!("{what} needs a program (a name on the server's PATH or an absolute path) that the server's --command-allow setting allows"),
        );
    } else if trimmed != program
        || program.contains(['{', '}'])
        || program.contains(char::is_whitespace)
    {
        fe.push(
            path,
            format!(
                "{program:?} must be a plain program name or absolute path, without spaces or templates; give arguments in `args`"
            ),
        );
    }
}

/// Steps refer to outputs by name, so names are unique.
fn check_output_names(ty: &ResourceType, fe: &mut FileErrors<'_>) {
    let mut names = BTreeSet::new();
    for (i, output) in ty.outputs.iter().enumerate() {
        if output.name.trim().is_empty() {
            fe.push(format!("outputs[{i}].name"), "must not be empty");
        } else if !names.insert(output.name.as_str()) {
            fe.push(
                format!("outputs[{i}].name"),
                format!(
                    "another output is already named {:?}; give each output its own `name`",
                    output.name
                ),
            );
        }
    }
}

/// Needs every type loaded, so it runs last.
fn check_requirements(
    catalog: &Catalog,
    origin: &BTreeMap<String, &str>,
    unreadable: &BTreeSet<&str>,
    errors: &mut Vec<CatalogError>,
) {
    for (name, ty) in &catalog.types {
        let file = origin.get(name).copied().unwrap_or_default();
        let mut fe = FileErrors { file, errors };
        for (i, req) in ty.requires.iter().enumerate() {
            // A type file that failed to parse is already reported; don't cascade.
            if unreadable.contains(req.type_name.as_str()) {
                continue;
            }
            let Some(target) = catalog.resource_type(&req.type_name) else {
                fe.push(
                    format!("requires[{i}].type"),
                    format!("unknown resource type {:?}", req.type_name),
                );
                continue;
            };
            for param in req.r#match.keys() {
                if !target.has_param(param) {
                    fe.push(
                        format!("requires[{i}].match.{param}"),
                        format!("type {:?} has no parameter {param:?}", target.name),
                    );
                } else if let Some(problem) = lookup_key_problem(target, param) {
                    fe.push(format!("requires[{i}].match.{param}"), problem);
                }
            }
        }
    }
}

/// Types that require each other round a circle (or a type that requires
/// itself) can never be made: each needs an asset of the next to exist first.
/// Each circle is reported once, at the requirement that closes it, with the
/// types in order. A depth-first walk with its own stack: a catalog of many
/// types in a chain must not overflow the thread's.
fn check_requirement_cycles(
    catalog: &Catalog,
    origin: &BTreeMap<String, &str>,
    errors: &mut Vec<CatalogError>,
) {
    // Types on the walk's current path, and types whose walk is over.
    let mut open: Vec<(&str, usize)> = Vec::new();
    let mut done: BTreeSet<&str> = BTreeSet::new();
    for start in catalog.types.keys() {
        if done.contains(start.as_str()) {
            continue;
        }
        open.push((start.as_str(), 0));
        while let Some(&(name, next)) = open.last() {
            let required = catalog.types.get(name).and_then(|t| t.requires.get(next));
            let Some(requirement) = required else {
                done.insert(name);
                open.pop();
                continue;
            };
            if let Some(last) = open.last_mut() {
                last.1 += 1;
            }
            let target = requirement.type_name.as_str();
            if let Some(at) = open.iter().position(|(n, _)| *n == target) {
                let circle: Vec<&str> = open[at..].iter().map(|(n, _)| *n).collect();
                let file = origin.get(name).copied().unwrap_or_default();
                let mut fe = FileErrors { file, errors };
                fe.push(format!("requires[{next}].type"), circle_message(&circle));
            } else if !done.contains(target) && catalog.types.contains_key(target) {
                open.push((target, 0));
            }
        }
    }
}

/// "types a → b → a require each other: …", or the same of one type.
fn circle_message(circle: &[&str]) -> String {
    match circle {
        [only] => format!(
            "type {only} requires itself: no asset of it could ever be made, as the first \
             would need another to exist already"
        ),
        _ => {
            let round: Vec<&str> = circle.iter().chain(circle.first()).copied().collect();
            format!(
                "types {} require each other: no asset of them could ever be made, as each \
                 needs an asset of the next to exist first",
                round.join(" → ")
            )
        }
    }
}

#[cfg(test)]
mod reserved_env_tests {
    use super::reserved_env;

    #[test]
    fn variables_that_redirect_credentials_or_code_are_the_servers() {
        for name in [
            "PATH",
            "LD_PRELOAD",
            "HTTP_PROXY",
            "https_proxy",
            "All_Proxy",
            "no_proxy",
            "NO_PROXY",
            "SSL_CERT_FILE",
            "SSL_CERT_DIR",
            "REQUESTS_CA_BUNDLE",
            "CURL_CA_BUNDLE",
            "NODE_EXTRA_CA_CERTS",
            "GIT_SSL_CAINFO",
            "PYTHONPATH",
            "PYTHONSTARTUP",
            "NODE_OPTIONS",
            "PERL5OPT",
            "PERL5LIB",
            "RUBYOPT",
            "GIT_CONFIG",
            "GIT_CONFIG_GLOBAL",
            "GIT_CONFIG_COUNT",
            "GIT_CONFIG_KEY_0",
            "GIT_SSH",
            "GIT_SSH_COMMAND",
            "GIT_ASKPASS",
            "SSH_ASKPASS",
            "KUBECONFIG",
            "HOME",
        ] {
            assert!(reserved_env(name, false).is_some(), "{name}");
        }
        for name in [
            "STAGE",
            "TF_VAR_name",
            "KUBE_NAMESPACE",
            "HOMEPAGE",
            "PGHOST",
        ] {
            assert_eq!(reserved_env(name, false), None, "{name}");
        }
        assert!(reserved_env("PGHOST", true).is_some());
        assert_eq!(reserved_env("PGDATABASE", true), None);
    }
}
