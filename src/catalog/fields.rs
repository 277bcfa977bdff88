//! The form's view of a parameters schema: one generic form serves every type.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldSpec {
    pub name: String,
    pub title: String,
    pub description: Option<String>,
    pub kind: FieldKind,
    pub required: bool,
    pub default: Option<Value>,
    /// `x-secret: true`: typed into a password field, never shown back.
    #[serde(default)]
    pub secret: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FieldKind {
    Text {
        pattern: Option<String>,
        min_length: Option<u64>,
        max_length: Option<u64>,
    },
    Integer {
        minimum: Option<i64>,
        maximum: Option<i64>,
    },
    Boolean,
    Choice {
        options: Vec<ChoiceOption>,
    },
    TextList {
        items_pattern: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChoiceOption {
    pub value: String,
    pub label: String,
}

pub(super) fn fields(schema: &Value) -> Vec<FieldSpec> {
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|names| names.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    properties
        .iter()
        .map(|(name, property)| FieldSpec {
            name: name.clone(),
            title: text(property, "title").unwrap_or_else(|| name.clone()),
            description: text(property, "description"),
            kind: kind(property),
            required: required.contains(&name.as_str()),
            default: property.get("default").cloned(),
            secret: property.get("x-secret").and_then(Value::as_bool) == Some(true),
        })
        .collect()
}

pub(super) fn default_params(schema: &Value) -> Map<String, Value> {
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return Map::new();
    };
    properties
        .iter()
        .filter_map(|(name, p)| Some((name.clone(), p.get("default")?.clone())))
        .collect()
}

fn text(property: &Value, key: &str) -> Option<String> {
    property
        .get(key)
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn unsigned(property: &Value, key: &str) -> Option<u64> {
    property.get(key).and_then(Value::as_u64)
}

fn signed(property: &Value, key: &str) -> Option<i64> {
    property.get(key).and_then(Value::as_i64)
}

fn kind(property: &Value) -> FieldKind {
    if let Some(values) = property.get("enum").and_then(Value::as_array) {
        return FieldKind::Choice {
            options: choice_options(property, values),
        };
    }
    match property.get("type").and_then(Value::as_str) {
        Some("integer") => FieldKind::Integer {
            minimum: signed(property, "minimum"),
            maximum: signed(property, "maximum"),
        },
        Some("boolean") => FieldKind::Boolean,
        Some("array") => FieldKind::TextList {
            items_pattern: property.get("items").and_then(|i| text(i, "pattern")),
        },
        _ => FieldKind::Text {
            pattern: text(property, "pattern"),
            min_length: unsigned(property, "minLength"),
            max_length: unsigned(property, "maxLength"),
        },
    }
}

/// Labels come from `x-enum-titles` (dictionaries fill it in), else the value
/// itself; titles that do not line up one to one with the values are not used.
fn choice_options(property: &Value, values: &[Value]) -> Vec<ChoiceOption> {
    let titles = property
        .get("x-enum-titles")
        .and_then(Value::as_array)
        .filter(|titles| titles.len() == values.len());
    values
        .iter()
        .enumerate()
        .map(|(i, value)| {
            let value = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let label = titles
                .and_then(|t| t.get(i))
                .and_then(Value::as_str)
                .map_or_else(|| value.clone(), str::to_string);
            ChoiceOption { value, label }
        })
        .collect()
}
