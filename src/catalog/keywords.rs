//! Every word a parameters schema uses must be one JSON Schema or Slipway reads.
//! JSON Schema ignores a word it does not know, so `x-secert: true` would leave
//! a password in plain text on every page and `maximun: 5` would bound nothing:
//! a misspelling is refused where it is written.

use serde_json::Value;

use super::schema::SchemaProblem;

/// The keywords of JSON Schema drafts 4 to 2020-12 (validation, applicators,
/// annotations and core).
const JSON_SCHEMA: &[&str] = &[
    "$anchor",
    "$comment",
    "$defs",
    "$dynamicAnchor",
    "$dynamicRef",
    "$id",
    "$recursiveAnchor",
    "$recursiveRef",
    "$ref",
    "$schema",
    "$vocabulary",
    "additionalItems",
    "additionalProperties",
    "allOf",
    "anyOf",
    "const",
    "contains",
    "contentEncoding",
    "contentMediaType",
    "contentSchema",
    "default",
    "definitions",
    "dependencies",
    "dependentRequired",
    "dependentSchemas",
    "deprecated",
    "description",
    "else",
    "enum",
    "examples",
    "exclusiveMaximum",
    "exclusiveMinimum",
    "format",
    "id",
    "if",
    "items",
    "maxContains",
    "maxItems",
    "maxLength",
    "maxProperties",
    "maximum",
    "minContains",
    "minItems",
    "minLength",
    "minProperties",
    "minimum",
    "multipleOf",
    "not",
    "oneOf",
    "pattern",
    "patternProperties",
    "prefixItems",
    "properties",
    "propertyNames",
    "readOnly",
    "required",
    "then",
    "title",
    "type",
    "unevaluatedItems",
    "unevaluatedProperties",
    "uniqueItems",
    "writeOnly",
];

/// Slipway's own marks (see the catalog's README).
const SLIPWAY: &[&str] = &["x-dictionary", "x-enum-titles", "x-secret"];

/// Keywords whose value is one schema.
const ONE_SCHEMA: &[&str] = &[
    "additionalItems",
    "additionalProperties",
    "contains",
    "contentSchema",
    "else",
    "if",
    "items",
    "not",
    "propertyNames",
    "then",
    "unevaluatedItems",
    "unevaluatedProperties",
];

/// Keywords whose value is a list of schemas.
const SCHEMA_LIST: &[&str] = &["allOf", "anyOf", "oneOf", "prefixItems", "items"];

/// Keywords whose value maps names to schemas.
const NAMED_SCHEMAS: &[&str] = &[
    "$defs",
    "definitions",
    "dependentSchemas",
    "patternProperties",
    "properties",
];

/// Refuses any word of the schema, at any depth, that neither JSON Schema nor
/// Slipway reads; values that are data (`enum`, `default`, `examples`, …) are
/// not looked into.
pub(super) fn check_keywords(schema: &Value, path: &str, problems: &mut Vec<SchemaProblem>) {
    let Value::Object(map) = schema else {
        return;
    };
    for (key, value) in map {
        let at = join(path, key);
        if !JSON_SCHEMA.contains(&key.as_str()) && !SLIPWAY.contains(&key.as_str()) {
            problems.push(SchemaProblem {
                path: at,
                message: unknown_keyword(key),
            });
            continue;
        }
        let key = key.as_str();
        if ONE_SCHEMA.contains(&key) && value.is_object() {
            check_keywords(value, &at, problems);
        }
        if let (true, Some(items)) = (SCHEMA_LIST.contains(&key), value.as_array()) {
            for (i, item) in items.iter().enumerate() {
                check_keywords(item, &format!("{at}[{i}]"), problems);
            }
        }
        if let (true, Some(named)) = (NAMED_SCHEMAS.contains(&key), value.as_object()) {
            for (name, child) in named {
                check_keywords(child, &join(&at, name), problems);
            }
        }
        if key == "dependencies"
            && let Some(named) = value.as_object()
        {
            // Draft 4 to 7: a list of names (data) or a schema.
            for (name, child) in named.iter().filter(|(_, c)| c.is_object()) {
                check_keywords(child, &join(&at, name), problems);
            }
        }
    }
}

fn unknown_keyword(key: &str) -> String {
    let near = JSON_SCHEMA
        .iter()
        .chain(SLIPWAY)
        .find(|known| strsim_close(key, known));
    match near {
        Some(known) => {
            format!("is not a JSON Schema keyword nor a mark of Slipway's: did you mean `{known}`?")
        }
        None if key.starts_with("x-") => format!(
            "is not a mark Slipway reads (it reads {}): JSON Schema would ignore it",
            SLIPWAY.join(", ")
        ),
        None => {
            "is not a JSON Schema keyword: JSON Schema would ignore it, so it would check nothing"
                .into()
        }
    }
}

/// Whether two words differ by at most two edits (a typo, a swapped pair, `_` for `-`).
fn strsim_close(a: &str, b: &str) -> bool {
    a.len().abs_diff(b.len()) <= 2 && a.len() <= 40 && strsim::osa_distance(a, b) <= 2
}

fn join(base: &str, key: &str) -> String {
    if base.is_empty() {
        key.to_string()
    } else {
        format!("{base}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn problems_of(schema: Value) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        check_keywords(&schema, "", &mut problems);
        problems.into_iter().map(|p| (p.path, p.message)).collect()
    }

    #[test]
    fn a_misspelled_secret_mark_is_refused_with_the_word_it_meant() {
        let found = problems_of(json!({
            "type": "object",
            "properties": { "password": { "type": "string", "x-secert": true } }
        }));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "properties.password.x-secert");
        assert!(found[0].1.contains("`x-secret`"), "{}", found[0].1);
    }

    #[test]
    fn misspelled_bounds_and_unknown_marks_are_refused_at_any_depth() {
        let found = problems_of(json!({
            "type": "object",
            "properties": {
                "replicas": { "type": "integer", "maximun": 5 },
                "tags": { "type": "array", "items": { "type": "string", "maxLenght": 3 } },
                "env": { "type": "string", "x_secret": true, "x-colour": "red" }
            },
            "allOf": [{ "if": { "properties": { "a": { "cost": 1 } } } }]
        }));
        let mut found = found;
        found.sort();
        let paths: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "allOf[0].if.properties.a.cost",
                "properties.env.x-colour",
                "properties.env.x_secret",
                "properties.replicas.maximun",
                "properties.tags.items.maxLenght",
            ]
        );
        assert!(found[1].1.contains("x-dictionary, x-enum-titles, x-secret"));
        assert!(found[3].1.contains("`maximum`"));
    }

    #[test]
    fn data_and_property_names_are_not_taken_for_keywords() {
        let found = problems_of(json!({
            "type": "object",
            "required": ["maximun"],
            "properties": {
                "maximun": { "type": "string", "enum": ["x-secert"], "default": "x-secert",
                             "examples": [{ "anything": 1 }], "x-enum-titles": ["X"] },
                "size": { "type": "string", "x-dictionary": "sizes", "$comment": "t-shirt" }
            },
            "dependencies": { "size": ["maximun"] },
            "$defs": { "small": { "type": "string", "minLength": 1 } }
        }));
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn close_words_are_those_within_two_edits() {
        assert!(strsim_close("maximun", "maximum"));
        assert!(strsim_close("x_secret", "x-secret"));
        assert!(strsim_close("tpye", "type"));
        assert!(!strsim_close("colour", "const"));
        assert!(!strsim_close(&"a".repeat(100), &"a".repeat(99)));
    }
}
