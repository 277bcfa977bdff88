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

/// Slipway's marks that only a parameter itself carries: the form, the
/// secret store and the pages read them on a top-level property, nowhere else.
const ON_PARAMETERS_ONLY: &[&str] = &["x-enum-titles", "x-secret"];

/// Where in the parameters schema a word stands.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    /// The parameters object itself.
    Root,
    /// A parameter: a property directly under the root's `properties`.
    Parameter,
    /// Anywhere deeper (`items`, `allOf`, `$defs`, a nested property, …).
    Within,
}

/// Refuses any word of the schema, at any depth, that neither JSON Schema nor
/// Slipway reads, and a mark of Slipway's where nothing reads it; values that
/// are data (`enum`, `default`, `examples`, …) are not looked into.
pub(super) fn check_keywords(schema: &Value, path: &str, problems: &mut Vec<SchemaProblem>) {
    check_at(schema, path, Place::Root, problems);
}

fn check_at(schema: &Value, path: &str, place: Place, problems: &mut Vec<SchemaProblem>) {
    let Value::Object(map) = schema else {
        return;
    };
    for (key, value) in map {
        let at = join(path, key);
        if let Some(message) = misplaced(key, place) {
            problems.push(SchemaProblem { path: at, message });
            continue;
        }
        let key = key.as_str();
        let within = |child: &Value, at: &str, problems: &mut Vec<SchemaProblem>| {
            // Only the root's own `properties` hold parameters.
            let place = match (place, key) {
                (Place::Root, "properties") => Place::Parameter,
                _ => Place::Within,
            };
            check_at(child, at, place, problems);
        };
        if ONE_SCHEMA.contains(&key) && value.is_object() {
            within(value, &at, problems);
        }
        if let (true, Some(items)) = (SCHEMA_LIST.contains(&key), value.as_array()) {
            for (i, item) in items.iter().enumerate() {
                within(item, &format!("{at}[{i}]"), problems);
            }
        }
        if let (true, Some(named)) = (NAMED_SCHEMAS.contains(&key), value.as_object()) {
            for (name, child) in named {
                within(child, &join(&at, name), problems);
            }
        }
        if key == "dependencies"
            && let Some(named) = value.as_object()
        {
            // Draft 4 to 7: a list of names (data) or a schema.
            for (name, child) in named.iter().filter(|(_, c)| c.is_object()) {
                within(child, &join(&at, name), problems);
            }
        }
    }
}

/// Why `key` may not stand at `place`: a word nothing reads, or a mark that is
/// read on a parameter only (a nested `x-secret: true` would leave the value it
/// means to hide in plain text on every page).
fn misplaced(key: &str, place: Place) -> Option<String> {
    if !JSON_SCHEMA.contains(&key) && !SLIPWAY.contains(&key) {
        return Some(unknown_keyword(key));
    }
    (ON_PARAMETERS_ONLY.contains(&key) && place != Place::Parameter).then(|| {
        format!(
            "`{key}` is read only directly on a parameter (parameters.properties.<name>), \
             not inside `items`, `allOf`, definitions or nested properties: here it would do \
             nothing; put it on the parameter itself"
        )
    })
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

    /// `x-secret` and `x-enum-titles` are read on a parameter only: deeper, a
    /// "secret" would be shown and stored in plain text.
    #[test]
    fn parameter_marks_are_refused_anywhere_but_on_a_parameter() {
        let mut found = problems_of(json!({
            "type": "object",
            "x-secret": true,
            "properties": {
                "password": { "type": "string", "x-secret": true },
                "tokens": { "type": "array", "items": { "type": "string", "x-secret": true } },
                "key": { "type": "string", "allOf": [{ "x-secret": true }] },
                "size": { "type": "string", "enum": ["s"], "x-enum-titles": ["Small"] },
                "sizes": { "type": "array", "items": { "enum": ["s"], "x-enum-titles": ["S"] } }
            },
            "$defs": { "hidden": { "type": "string", "x-secret": true } },
            "if": { "properties": { "size": { "x-secret": true } } }
        }));
        found.sort();
        let paths: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "$defs.hidden.x-secret",
                "if.properties.size.x-secret",
                "properties.key.allOf[0].x-secret",
                "properties.sizes.items.x-enum-titles",
                "properties.tokens.items.x-secret",
                "x-secret",
            ]
        );
        assert!(
            found[0]
                .1
                .starts_with("`x-secret` is read only directly on a parameter"),
            "{}",
            found[0].1
        );
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
