//! Secret parameters (`x-secret: true`): a password or an API key the requester
//! gives. Its value is split off before anything is stored, rendered or shown; the
//! parameters keep an explicit placeholder in its place, so every read model, diff,
//! hash and template sees that a value was given and never the value itself.
//!
//! This module only decides the shapes. Encryption at rest and handing the value to
//! a driver are the server's business (the core compiles to wasm and holds no keys).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::catalog::ResourceType;

/// The key that marks a placeholder object: `{"$secret": "<param>", "set": true}`.
pub const MARKER: &str = "$secret";

/// What the stored parameters hold instead of a secret's value.
pub fn placeholder(param: &str) -> Value {
    let mut map = Map::new();
    map.insert(MARKER.into(), Value::from(param));
    map.insert("set".into(), Value::Bool(true));
    Value::Object(map)
}

/// True for the placeholder of `param`, whatever else a client added to it.
pub fn is_placeholder_of(value: &Value, param: &str) -> bool {
    value.get(MARKER).and_then(Value::as_str) == Some(param)
        && value.get("set").and_then(Value::as_bool) == Some(true)
}

/// True for any placeholder, for pages that show parameters without their type.
pub fn is_placeholder(value: &Value) -> bool {
    value
        .get(MARKER)
        .and_then(Value::as_str)
        .is_some_and(|param| is_placeholder_of(value, param))
}

/// How pages show a stored secret: that it is set, never what it is.
pub const SHOWN_AS: &str = "•••••• (set; stored encrypted, never shown)";

/// What output templates, checks and monitoring see for a secret parameter: the name
/// of the Kubernetes Secret (or secret-store entry) that will hold it,
/// `<resource_name>-<param>` with `_` turned into `-` so it is a valid name.
pub fn reference(resource_name: &str, param: &str) -> String {
    format!("{resource_name}-{}", param.replace('_', "-"))
}

/// Secret values by parameter name. Debug shows the names only, so a value never
/// reaches a log through `{:?}`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretValues(BTreeMap<String, String>);

impl std::fmt::Debug for SecretValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|k| (k, "***")))
            .finish()
    }
}

impl SecretValues {
    pub fn new() -> SecretValues {
        SecretValues::default()
    }

    pub fn insert(&mut self, param: impl Into<String>, value: impl Into<String>) {
        self.0.insert(param.into(), value.into());
    }

    pub fn get(&self, param: &str) -> Option<&str> {
        self.0.get(param).map(String::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}

/// Parameters split into what may be stored and what must be encrypted.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// The parameters with a placeholder for every secret that is set.
    pub params: Value,
    /// Values given in this submission.
    pub given: SecretValues,
    /// Secrets not given again but set in the previous revision: they stay as they were.
    pub kept: Vec<String>,
}

/// Splits the secrets off `params`. A secret left empty (absent, null, "" or its
/// placeholder echoed back by a form) keeps the value of `previous` — the stored
/// parameters of the revision being revised — when it had one; otherwise it is
/// simply not given. A placeholder never counts as a value on its own: a client
/// cannot claim a secret is set without having set it. Integer parameters come
/// out canonical ([`crate::validate::canonical_integers`]), and a null is left
/// out: validation reads it as "not given", so what is counted, rendered and
/// stored must too (a null team or quota scope would otherwise reach them).
pub fn split(ty: &ResourceType, params: &Value, previous: Option<&Value>) -> Split {
    let mut out = match crate::validate::canonical_integers(ty, params) {
        Value::Object(mut map) => {
            map.retain(|_, value| !value.is_null());
            map
        }
        other => {
            return Split {
                params: other,
                given: SecretValues::new(),
                kept: Vec::new(),
            };
        }
    };
    let mut given = SecretValues::new();
    let mut kept = Vec::new();
    for param in ty.secret_params() {
        let had = previous
            .and_then(|p| p.get(&param))
            .is_some_and(|v| is_placeholder_of(v, &param));
        match out.remove(&param) {
            Some(Value::String(value)) if !value.is_empty() => {
                given.insert(param.clone(), value);
                out.insert(param.clone(), placeholder(&param));
            }
            // Not text: left as it is so the schema names the rule; nothing stores
            // parameters that fail it.
            Some(value)
                if !value.is_null() && !value.is_string() && !is_placeholder_of(&value, &param) =>
            {
                out.insert(param.clone(), value);
            }
            _ if had => {
                kept.push(param.clone());
                out.insert(param.clone(), placeholder(&param));
            }
            _ => {}
        }
    }
    Split {
        params: Value::Object(out),
        given,
        kept,
    }
}

/// The parameters with the given values in place of their placeholders: what the
/// schema checks, so a secret is validated on its real value. Kept secrets stay
/// placeholders, which validation accepts (they were checked when given).
pub fn reveal(params: &Value, secrets: &SecretValues) -> Value {
    let Value::Object(map) = params else {
        return params.clone();
    };
    let mut out = map.clone();
    for (param, value) in secrets.iter() {
        if out.get(param).is_some_and(|v| is_placeholder_of(v, param)) {
            out.insert(param.to_string(), Value::from(value));
        }
    }
    Value::Object(out)
}

/// Replaces every secret parameter of `params` by what a template may see: the
/// reference once the resource is named, the placeholder before. A real value that
/// reaches a template by mistake is masked just the same.
pub(crate) fn for_templates(
    ty: &ResourceType,
    map: &mut Map<String, Value>,
    resource_name: Option<&str>,
) {
    for param in ty.secret_params() {
        let Some(value) = map.get(&param) else {
            continue;
        };
        if value.is_null() {
            map.remove(&param);
            continue;
        }
        let shown = match resource_name {
            Some(name) => Value::from(reference(name, &param)),
            None => placeholder(&param),
        };
        map.insert(param, shown);
    }
}

#[cfg(test)]
mod tests;
