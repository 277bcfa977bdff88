//! Checks and prepares a type's parameters schema: dictionary references are
//! resolved, the schema is compiled, and every property must be one the generic
//! form can show.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::Dictionary;

/// A problem at a path inside the schema, e.g. "properties.size.enum".
pub(super) struct SchemaProblem {
    pub path: String,
    pub message: String,
}

fn problem(path: String, message: impl Into<String>) -> SchemaProblem {
    SchemaProblem {
        path,
        message: message.into(),
    }
}

fn join(base: &str, key: &str) -> String {
    if base.is_empty() {
        key.to_string()
    } else {
        format!("{base}.{key}")
    }
}

/// Replaces each `x-dictionary: name` by `enum` + `x-enum-titles`, wherever it occurs.
pub(super) fn resolve_dictionaries(
    schema: &mut Value,
    dictionaries: &BTreeMap<String, Dictionary>,
    path: &str,
    problems: &mut Vec<SchemaProblem>,
) {
    match schema {
        Value::Object(map) => {
            if let Some(reference) = map.get("x-dictionary").cloned() {
                resolve_one(map, &reference, dictionaries, path, problems);
            }
            for (key, child) in map.iter_mut() {
                resolve_dictionaries(child, dictionaries, &join(path, key), problems);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter_mut().enumerate() {
                resolve_dictionaries(child, dictionaries, &format!("{path}[{i}]"), problems);
            }
        }
        _ => {}
    }
}

fn resolve_one(
    map: &mut Map<String, Value>,
    reference: &Value,
    dictionaries: &BTreeMap<String, Dictionary>,
    path: &str,
    problems: &mut Vec<SchemaProblem>,
) {
    let at = join(path, "x-dictionary");
    let Some(name) = reference.as_str() else {
        problems.push(problem(at, "must be the name of a dictionary"));
        return;
    };
    let Some(dictionary) = dictionaries.get(name) else {
        let known: Vec<&str> = dictionaries.keys().map(String::as_str).collect();
        problems.push(problem(
            at,
            format!("unknown dictionary {name:?} (known: {})", known.join(", ")),
        ));
        return;
    };
    if map.contains_key("enum") {
        problems.push(problem(at, "cannot be combined with enum"));
        return;
    }
    let keys = dictionary.terms.iter().map(|t| Value::from(t.key.clone()));
    let titles = dictionary
        .terms
        .iter()
        .map(|t| Value::from(t.title.clone()));
    map.insert("enum".into(), keys.collect());
    map.insert("x-enum-titles".into(), titles.collect());
}

/// Meta-schema errors, then compile errors (e.g. a bad regex the meta-schema accepts).
pub(super) fn check_valid(schema: &Value, problems: &mut Vec<SchemaProblem>) {
    if let Some(draft) = schema.get("$schema")
        && !draft.as_str().is_some_and(is_bundled_draft)
    {
        problems.push(problem(
            "$schema".into(),
            "only the JSON Schema drafts 4, 6, 7, 2019-09 and 2020-12 are supported",
        ));
        return;
    }
    let before = problems.len();
    match jsonschema::meta::validator_for(schema) {
        Ok(meta) => {
            for error in meta.iter_errors(schema) {
                let path = pointer_to_path(error.instance_path().as_str());
                problems.push(problem(path, format!("invalid JSON Schema: {error}")));
            }
        }
        Err(error) => problems.push(problem(String::new(), error.to_string())),
    }
    if problems.len() == before
        && let Err(error) = crate::validate::compile_schema(schema)
    {
        let pointer = error.schema_path().as_str();
        let message = match schema.pointer(pointer) {
            Some(format) if error.to_string().starts_with("Unknown format") => {
                unknown_format(format)
            }
            _ => format!("invalid JSON Schema: {error}"),
        };
        problems.push(problem(pointer_to_path(pointer), message));
    }
}

/// The formats the schema engine checks as Slipway builds it: without its
/// `idna` feature (for the server and the browser alike), so `idn-email` and
/// `idn-hostname` are not among them.
const KNOWN_FORMATS: &str = "date, date-time, duration, email, hostname, ipv4, ipv6, iri, \
     iri-reference, json-pointer, regex, relative-json-pointer, time, uri, uri-reference, \
     uri-template, uuid";

fn unknown_format(format: &Value) -> String {
    format!(
        "{format} is not a format Slipway checks (it checks {KNOWN_FORMATS}): the value \
         would be taken unchecked; use one of those, or a `pattern`"
    )
}

fn is_bundled_draft(uri: &str) -> bool {
    let uri = uri.trim_end_matches('#');
    [
        "http://json-schema.org/draft-04/schema",
        "http://json-schema.org/draft-06/schema",
        "http://json-schema.org/draft-07/schema",
        "https://json-schema.org/draft/2019-09/schema",
        "https://json-schema.org/draft/2020-12/schema",
    ]
    .contains(&uri)
}

/// "/properties/size/enum" -> "properties.size.enum"; "/required/0" -> "required[0]".
pub(super) fn pointer_to_path(pointer: &str) -> String {
    let mut out = String::new();
    for raw in pointer.split('/').skip(1) {
        let segment = raw.replace("~1", "/").replace("~0", "~");
        if !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{segment}]"));
        } else {
            out = join(&out, &segment);
        }
    }
    out
}

/// The form knows text, integers, booleans, choices and lists of text; anything
/// else would be a parameter nobody can fill in.
pub(super) fn check_form_shape(schema: &Value, problems: &mut Vec<SchemaProblem>) {
    if schema.get("type").and_then(Value::as_str) != Some("object") {
        problems.push(problem(
            "type".into(),
            "the parameters must be `type: object`",
        ));
    }
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        problems.push(problem(
            "properties".into(),
            "the parameters need a `properties` map",
        ));
        return;
    };
    // A request gives only declared parameters (the validator refuses others):
    // a schema that welcomes more promises what no form shows.
    let welcomes_more = |key: &str| match schema.get(key) {
        None | Some(Value::Bool(false)) => false,
        Some(Value::Object(map)) => key == "patternProperties" && !map.is_empty(),
        Some(_) => true,
    };
    for key in [
        "additionalProperties",
        "patternProperties",
        "unevaluatedProperties",
    ] {
        if welcomes_more(key) {
            problems.push(problem(
                key.into(),
                "a request gives only the parameters under `properties`: leave this out \
                 (or write `additionalProperties: false`)",
            ));
        }
    }
    for (name, property) in properties {
        let at = format!("properties.{name}");
        let kind = property.get("type").and_then(Value::as_str);
        let items = property.pointer("/items/type").and_then(Value::as_str);
        match (kind, items) {
            (Some("string" | "integer" | "boolean"), _) | (Some("array"), Some("string")) => {}
            (Some("array"), _) => problems.push(problem(
                format!("{at}.items.type"),
                "list parameters must be lists of strings",
            )),
            _ => problems.push(problem(
                format!("{at}.type"),
                "must be one of string, integer, boolean or array (of strings)",
            )),
        }
        // The form shows choices as a list of text and sends the one picked
        // as text: an integer's or a boolean's choices could never be sent.
        if matches!(kind, Some("integer" | "boolean")) && property.get("enum").is_some() {
            problems.push(problem(
                format!("{at}.enum"),
                "choices are for `type: string` parameters (the form sends the one picked \
                 as text); write the choices as strings, or use `minimum`/`maximum` for a number",
            ));
        }
    }
}

/// The JSON type a top-level property declares, if any.
pub(super) fn property_type<'a>(schema: &'a Value, name: &str) -> Option<&'a str> {
    schema.get("properties")?.get(name)?.get("type")?.as_str()
}

/// Whether a top-level property's values are held to a shape (choices or a
/// pattern), so that one value is written one way.
pub(super) fn is_shaped(schema: &Value, name: &str) -> bool {
    schema
        .get("properties")
        .and_then(|p| p.get(name))
        .is_some_and(|p| shaped(schema, p, 0))
}

/// A schema whose values are choices or follow a pattern: directly, through
/// every alternative of a `oneOf`/`anyOf`, or through a `$ref` into the
/// schema's own definitions (followed a few levels, never round a cycle).
fn shaped(root: &Value, property: &Value, depth: usize) -> bool {
    if depth > 8 {
        return false;
    }
    if ["enum", "const", "pattern", "x-dictionary"]
        .iter()
        .any(|k| property.get(k).is_some())
    {
        return true;
    }
    let alternatives = ["oneOf", "anyOf"].iter().any(|k| {
        property
            .get(*k)
            .and_then(Value::as_array)
            .is_some_and(|all| !all.is_empty() && all.iter().all(|a| shaped(root, a, depth + 1)))
    });
    let referred = property
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix('#'))
        .and_then(|pointer| root.pointer(pointer))
        .is_some_and(|target| shaped(root, target, depth + 1));
    alternatives || referred
}

/// The top-level properties marked `x-secret: true`.
pub(super) fn secret_params(schema: &Value) -> Vec<String> {
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    properties
        .iter()
        .filter(|(_, p)| p.get("x-secret").and_then(Value::as_bool) == Some(true))
        .map(|(name, _)| name.clone())
        .collect()
}

pub(super) fn is_secret(schema: &Value, name: &str) -> bool {
    schema
        .get("properties")
        .and_then(|p| p.get(name))
        .and_then(|p| p.get("x-secret"))
        .and_then(Value::as_bool)
        == Some(true)
}

/// A secret is free text the requester types: a choice would leak it through the
/// catalog, a default would make it known to everyone who reads the catalog.
pub(super) fn check_secrets(schema: &Value, problems: &mut Vec<SchemaProblem>) {
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    for (name, property) in properties {
        let Some(flag) = property.get("x-secret") else {
            continue;
        };
        let at = format!("properties.{name}.x-secret");
        if !flag.is_boolean() {
            problems.push(problem(at, "must be true or false"));
            continue;
        }
        if flag.as_bool() != Some(true) {
            continue;
        }
        if property.get("type").and_then(Value::as_str) != Some("string") {
            problems.push(problem(
                at.clone(),
                "only a `type: string` parameter can be secret",
            ));
        }
        for key in ["enum", "const", "x-dictionary", "default", "examples"] {
            if property.get(key).is_some() {
                problems.push(problem(
                    at.clone(),
                    format!(
                        "a secret parameter cannot have `{key}`: its values would be in the catalog"
                    ),
                ));
            }
        }
    }
}
