use serde_json::json;

use super::*;

fn of(property: Value, holds: Holds) -> Option<String> {
    free_text(&json!({ "properties": { "p": property } }), "p", holds)
}

fn pattern(pattern: &str, holds: Holds) -> Option<String> {
    of(json!({ "type": "string", "pattern": pattern }), holds)
}

#[test]
fn a_pattern_that_keeps_to_safe_characters_is_safe() {
    for (p, holds) in [
        ("^[a-z][a-z0-9-]{1,30}$", Holds::Data),
        ("^[a-z0-9.]+@example\\.com$", Holds::Data),
        ("^(small|large)$", Holds::Data),
        ("^\\d+$", Holds::Data),
        ("^[A-Za-z ]+$", Holds::Data),
        ("^[a-z][a-z0-9_]*$", Holds::Sql),
        ("^\\w+$", Holds::Sql),
        ("^[a-z][a-z0-9-]*$", Holds::Script),
        ("^v[0-9]+\\.[0-9]+$", Holds::Script),
        ("^a$|^b$", Holds::Sql),
    ] {
        assert_eq!(pattern(p, holds), None, "{p} {holds:?}");
    }
}

#[test]
fn a_pattern_found_anywhere_in_a_value_is_free_text() {
    for p in ["[a-z]+", "^[a-z]+", "[a-z]+$", "^a$|b", "^(?:^)*a"] {
        let why = pattern(p, Holds::Data).unwrap_or_default();
        assert!(why.contains("does not hold the whole value"), "{p}: {why}");
    }
}

#[test]
fn a_pattern_names_the_first_character_it_lets_through() {
    for (p, holds, shown) in [
        ("^[a-z ']+$", Holds::Data, "'\\''"),
        ("^[^\"]*$", Holds::Data, "'\\0'"),
        ("^.*$", Holds::Data, "'\\0'"),
        ("^[a-z\\\\]+$", Holds::Data, "'\\\\'"),
        ("^[a-z,]+$", Holds::Data, "','"),
        ("^[a-z\u{2028}]+$", Holds::Data, "'\\u{2028}'"),
        ("^[a-z][a-z0-9-]*$", Holds::Sql, "'-'"),
        ("^[a-z ]+$", Holds::Sql, "' '"),
        ("^[a-z$]+$", Holds::Script, "'$'"),
        ("^[a-z/]+$", Holds::Script, "'/'"),
        // The validator reads `--` in a class as ECMA-262 does (two
        // hyphens), not as Rust's class difference: so does the check.
        ("^[a-z--x]$", Holds::Sql, "'-'"),
    ] {
        let why = pattern(p, holds).unwrap_or_default();
        assert!(
            why.contains(&format!("lets through {shown}")),
            "{p} {holds:?}: {why}"
        );
    }
}

#[test]
fn a_value_may_not_start_where_its_file_reads_a_sign() {
    let why = pattern("^[*a-z]+$", Holds::Data).unwrap_or_default();
    assert!(why.contains("start with '*'"), "{why}");
    assert_eq!(pattern("^a[*&!a-z]*$", Holds::Data), None);
    let why = pattern("^-?[a-z]+$", Holds::Script).unwrap_or_default();
    assert!(why.contains("start with '-'"), "{why}");
    assert!(why.contains("option"), "{why}");
    assert_eq!(pattern("^(x-)?[a-z]+$", Holds::Script), None);
}

#[test]
fn a_pattern_beyond_the_check_counts_as_free_text() {
    // Under `(?x)` this parser takes `#` in a class for a comment; the
    // validator's does not, and lets `"` and a line break through.
    for p in [
        "^(?!admin)[a-z]+$",
        "^(a)\\1$",
        "(?x)^[a-z#\"\n]+$",
        "(?i)^[a-z]+$",
        "(?m)^[a-z]+$",
        "^(?s:.)$",
    ] {
        let why = pattern(p, Holds::Data).unwrap_or_default();
        assert!(why.contains("cannot read"), "{p}: {why}");
    }
}

#[test]
fn choices_formats_alternatives_and_references_are_read() {
    let string = |extra: Value| {
        let mut p = json!({ "type": "string" });
        if let (Some(p), Some(extra)) = (p.as_object_mut(), extra.as_object()) {
            p.extend(extra.clone());
        }
        p
    };
    assert_eq!(of(string(json!({ "enum": ["a\"b"] })), Holds::Sql), None);
    assert_eq!(of(string(json!({ "format": "date" })), Holds::Sql), None);
    assert_eq!(
        of(string(json!({ "format": "hostname" })), Holds::Data),
        None
    );
    assert!(of(string(json!({ "format": "hostname" })), Holds::Sql).is_some());
    assert!(
        of(string(json!({ "format": "email" })), Holds::Data)
            .is_some_and(|why| why.starts_with("is free text"))
    );
    // One keyword that keeps every value safe is enough.
    let both = string(json!({ "format": "uuid", "pattern": "^.*$" }));
    assert_eq!(of(both, Holds::Data), None);
    let one_of = |second: &str| {
        string(json!({ "oneOf": [{ "pattern": "^[a-z]+$" }, { "pattern": second }] }))
    };
    assert_eq!(of(one_of("^[0-9]+$"), Holds::Data), None);
    let why = of(one_of("^[0-9\"]+$"), Holds::Data).unwrap_or_default();
    assert!(why.contains("lets through '\"'"), "{why}");
    let list = json!({ "type": "array", "items": { "type": "string", "pattern": "^[a-z]+$" } });
    assert_eq!(of(list, Holds::Sql), None);
    let schema = json!({
        "$defs": { "slug": { "type": "string", "pattern": "^[a-z]+$" } },
        "properties": { "p": { "type": "string", "$ref": "#/$defs/slug" } }
    });
    assert_eq!(free_text(&schema, "p", Holds::Sql), None);
    // Followed only as the validator follows it: `%61` is `a` there, and an
    // `$id` moves where a pointer starts.
    for (property, defs) in [
        (
            json!({ "type": "string", "$ref": "#/$defs/%61" }),
            json!({ "%61": { "pattern": "^[a-z]+$" }, "a": {} }),
        ),
        (
            json!({ "type": "string", "$id": "urn:x", "$ref": "#/$defs/a" }),
            json!({ "a": { "pattern": "^[a-z]+$" } }),
        ),
    ] {
        let schema = json!({ "$defs": defs, "properties": { "p": property } });
        assert!(free_text(&schema, "p", Holds::Sql).is_some(), "{schema}");
    }
    assert_eq!(of(json!({ "type": "integer" }), Holds::Sql), None);
}

/// What the check names is what the validator lets through.
#[test]
fn the_character_named_is_one_a_request_may_send() {
    for (p, holds, value) in [
        ("^[a-z ']+$", Holds::Data, "a'"),
        ("^[a-z][a-z0-9-]*$", Holds::Sql, "a--"),
        ("^[a-z--x]$", Holds::Sql, "-"),
    ] {
        assert!(pattern(p, holds).is_some(), "{p}");
        let schema = json!({ "type": "string", "pattern": p });
        let validator = jsonschema::validator_for(&schema);
        assert!(
            validator.is_ok_and(|v| v.is_valid(&json!(value))),
            "{p} {value}"
        );
    }
}
