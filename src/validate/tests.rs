use serde_json::{Value, json};

use super::*;
use crate::catalog::ResourceType;
use crate::test_support::shipped_catalog;

fn ty(name: &str) -> ResourceType {
    match shipped_catalog().resource_type(name) {
        Some(t) => t.clone(),
        None => panic!("{name} missing"),
    }
}

fn pg_params() -> Value {
    json!({
        "name": "orders", "team": "payments", "environment": "prod", "size": "medium",
        "storage_gb": 50, "version": "16", "high_availability": true, "extensions": ["pgcrypto"]
    })
}

fn validator(name: &str) -> ParamValidator {
    match ParamValidator::new(&ty(name)) {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    }
}

fn set(mut params: Value, key: &str, value: Value) -> Value {
    if let Some(map) = params.as_object_mut() {
        map.insert(key.into(), value);
    }
    params
}

#[test]
fn valid_params_have_no_errors_and_a_name() {
    let v = validator("postgres-database");
    assert_eq!(v.check(&pg_params()), vec![]);
    assert_eq!(
        v.resource_name(&pg_params()),
        Ok("payments-orders-prod".to_string())
    );
}

#[test]
fn messages_name_the_rule() {
    let v = validator("postgres-database");
    let cases = [
        (
            "name",
            json!("Orders"),
            "must match the pattern ^[a-z][a-z0-9-]{1,30}$",
        ),
        ("storage_gb", json!(5), "must be at least 10"),
        ("storage_gb", json!(501), "must be at most 500"),
        ("storage_gb", json!("lots"), "must be an integer"),
        (
            "size",
            json!("huge"),
            "must be one of: small, medium, large",
        ),
        (
            "team",
            json!("sales"),
            "must be one of: payments, search, platform, dba",
        ),
        ("high_availability", json!("yes"), "must be true or false"),
        (
            "extensions",
            json!(["ok", "Bad!"]),
            "item 2 must match the pattern ^[a-z][a-z0-9_]{1,62}$",
        ),
    ];
    for (field, value, message) in cases {
        let errors = v.check(&set(pg_params(), field, value));
        assert_eq!(errors, vec![FieldError::new(field, message)], "{field}");
    }
}

#[test]
fn missing_and_unknown_parameters() {
    let v = validator("postgres-database");
    let mut params = pg_params();
    if let Some(map) = params.as_object_mut() {
        map.remove("team");
        map.insert("colour".into(), json!("blue"));
    }
    let errors = v.check(&params);
    assert!(
        errors.contains(&FieldError::new("team", "is required")),
        "{errors:?}"
    );
    assert!(errors.contains(&FieldError::new(
        "colour",
        "is not a parameter of this type"
    )));
    // The name cannot be built without the team, but that is already said above.
    assert_eq!(errors.len(), 2, "{errors:?}");
}

/// A type whose schema leaves `additionalProperties` out still takes only the
/// parameters it declares: a key with a NUL would otherwise skip the name's
/// pre-check and reach PostgreSQL's jsonb, which cannot hold it.
#[test]
fn undeclared_keys_are_refused_whatever_the_schema_allows() {
    let mut open = ty("postgres-database");
    if let Some(map) = open.parameters.as_object_mut() {
        map.remove("additionalProperties");
    }
    let v = match ParamValidator::new(&open) {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    };
    let params = set(
        set(pg_params(), "\u{0}x", json!("1")),
        "colour",
        json!("blue"),
    );
    let errors = v.check(&params);
    assert_eq!(
        errors,
        vec![
            FieldError::new("\\u{0}x", "is not a parameter of this type"),
            FieldError::new("colour", "is not a parameter of this type"),
        ]
    );
    // With the schema's own refusal too, each key is named once, escaped alike.
    let errors = validator("postgres-database").check(&set(pg_params(), "a\u{202E}b", json!(1)));
    assert_eq!(
        errors,
        vec![FieldError::new(
            "a\\u{202e}b",
            "is not a parameter of this type"
        )]
    );
}
#[test]
fn nulls_count_as_absent() {
    let v = validator("postgres-database");
    let errors = v.check(&set(pg_params(), "extensions", Value::Null));
    assert_eq!(errors, vec![]);
    let errors = v.check(&set(pg_params(), "storage_gb", Value::Null));
    assert_eq!(errors, vec![FieldError::new("storage_gb", "is required")]);
}

#[test]
fn naming_rule_is_checked_on_the_field_name() {
    let mut t = ty("postgres-database");
    t.naming.max_length = 15;
    let v = ParamValidator::new(&t).ok();
    let errors = v.map(|v| v.check(&pg_params())).unwrap_or_default();
    assert_eq!(
        errors,
        vec![FieldError::new(
            "name",
            "the resource name \"payments-orders-prod\" is 20 characters long, at most 15 are allowed"
        )]
    );
}

/// A restore names its cluster `<database>-restore-<backup>` beside the
/// database: no database may be named so, or a restore of `orders` from backup
/// `a-prod` would overwrite the database `orders-prod-restore-a`.
#[test]
fn no_database_takes_the_name_of_a_restored_cluster() {
    let v = validator("postgres-database");
    // Also a name that starts so: the team's name comes before it.
    for taken in [
        "orders-prod-restore-a",
        "orders-prod-restore",
        "x-restore-y",
        "restore-tests",
    ] {
        let errors = v.check(&set(pg_params(), "name", json!(taken)));
        assert_eq!(errors.len(), 1, "{taken}: {errors:?}");
        assert_eq!(errors[0].field, "name");
        assert!(
            errors[0].message.contains("without '-restore'"),
            "{errors:?}"
        );
    }
    for free in ["orders", "restoration", "orders-restored", "my-restorer"] {
        assert_eq!(
            v.check(&set(pg_params(), "name", json!(free))),
            vec![],
            "{free}"
        );
    }
}

#[test]
fn naming_errors_go_to_the_whole_object_without_a_name_field() {
    let mut t = ty("k8s-namespace");
    if let Some(props) = t
        .parameters
        .get_mut("properties")
        .and_then(Value::as_object_mut)
    {
        props.remove("name");
    }
    if let Some(req) = t
        .parameters
        .get_mut("required")
        .and_then(Value::as_array_mut)
    {
        req.retain(|r| r != "name");
    }
    t.naming.template = "{{ team }}_{{ environment }}".into();
    let params =
        json!({"team": "search", "environment": "dev", "cpu_limit": 2, "memory_limit_gi": 4});
    let errors = local_check(&t, &params);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].field, "");
    assert!(
        errors[0]
            .message
            .contains("\"search_dev\" must be lowercase letters")
    );
}

fn name_rule(pattern: Option<&str>, max_length: usize) -> Result<NameRule, String> {
    use crate::catalog::{DEFAULT_NAME_PATTERN, DEFAULT_NAME_PATTERN_DESCRIPTION};
    NameRule::new(&Naming {
        template: String::new(),
        pattern: pattern.unwrap_or(DEFAULT_NAME_PATTERN).to_string(),
        pattern_description: DEFAULT_NAME_PATTERN_DESCRIPTION.to_string(),
        max_length,
    })
}

#[test]
fn the_default_name_rule_is_a_dns_label() -> Result<(), String> {
    let rule = name_rule(None, 63)?;
    assert!(rule.check("a-1").is_ok());
    for bad in ["", "1abc", "abc-", "aBc", "a_b", "a.b", "-a", "a b", "ä"] {
        assert!(rule.check(bad).is_err(), "{bad:?}");
    }
    assert!(rule.check(&"a".repeat(64)).is_err());
    assert!(rule.check(&"a".repeat(63)).is_ok());
    Ok(())
}

#[test]
fn a_type_may_declare_names_with_dots_and_underscores() -> Result<(), String> {
    // A Kafka topic: dots and underscores are allowed, 249 characters at most.
    let rule = name_rule(Some("^[a-zA-Z0-9._-]+$"), 249)?;
    assert!(rule.check("payments.orders_v2").is_ok());
    assert!(rule.check("payments/orders").is_err());
    assert!(rule.check(&"a".repeat(250)).is_err());
    Ok(())
}

#[test]
fn a_broken_name_pattern_is_refused() {
    assert!(name_rule(Some("^[a-z"), 63).is_err());
}

#[test]
fn coerce_form_values() {
    let int = FieldKind::Integer {
        minimum: None,
        maximum: None,
    };
    assert_eq!(coerce_form_value(&int, " 42 "), json!(42));
    // As a number box and the API read it: whole numbers written otherwise
    // are integers; a fraction stays a number the schema refuses by name.
    assert_eq!(coerce_form_value(&int, "4.5"), json!(4.5));
    assert_eq!(coerce_form_value(&int, "20.0"), json!(20));
    assert_eq!(coerce_form_value(&int, "1e3"), json!(1000));
    assert_eq!(coerce_form_value(&int, "-0"), json!(0));
    assert_eq!(coerce_form_value(&int, "99999999999999999999"), json!(1e20));
    for no_number in ["NaN", "inf", "1e400", "０１", "1,5", "x"] {
        assert_eq!(
            coerce_form_value(&int, no_number),
            json!(no_number),
            "{no_number}"
        );
    }
    assert_eq!(coerce_form_value(&int, ""), Value::Null);
    assert_eq!(coerce_form_value(&FieldKind::Boolean, "true"), json!(true));
    assert_eq!(
        coerce_form_value(&FieldKind::Boolean, "false"),
        json!(false)
    );
    let list = FieldKind::TextList {
        items_pattern: None,
    };
    assert_eq!(
        coerce_form_value(&list, "a, b\nc,,\n"),
        json!(["a", "b", "c"])
    );
    let text = FieldKind::Text {
        pattern: None,
        min_length: None,
        max_length: None,
    };
    assert_eq!(coerce_form_value(&text, "x y"), json!("x y"));
    let v = validator("postgres-database");
    let errors = v.check(&set(
        pg_params(),
        "storage_gb",
        coerce_form_value(&int, "ten"),
    ));
    assert_eq!(
        errors,
        vec![FieldError::new("storage_gb", "must be an integer")]
    );
}

#[test]
fn validators_can_be_shared_between_threads() {
    fn shareable<T: Send + Sync>(_: &T) {}
    let v = validator("k8s-namespace");
    shareable(&v);
    assert_eq!(v.resource_type().name, "k8s-namespace");
}

#[test]
fn values_from_text_read_each_field_as_its_form_does_and_never_a_secret() {
    let db = ty("postgres-database");
    let given: Vec<(String, String)> = [
        ("name", "ledger"),
        ("storage_gb", "40"),
        ("high_availability", "yes"),
        ("owner_password", "hunter2"),
        ("surprise", "<script>x</script>"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let (values, secrets) = values_from_text(&db, &given);
    assert_eq!(values.get("storage_gb"), Some(&json!(40)));
    assert_eq!(values.get("high_availability"), Some(&json!(true)));
    assert_eq!(
        values.get("size"),
        db.default_params().get("size"),
        "defaults stay"
    );
    assert_eq!(secrets, ["owner_password"]);
    assert!(!values.contains_key("owner_password"));
    assert_eq!(
        values.get("surprise"),
        Some(&json!("<script>x</script>")),
        "left for validation to name"
    );
    let (values, _) = values_from_text(&db, &[("storage_gb".into(), "lots".into())]);
    assert_eq!(
        values.get("storage_gb"),
        Some(&json!("lots")),
        "kept as typed, refused by the schema"
    );
}

#[test]
fn a_list_of_ten_thousand_wrong_items_is_answered_in_a_few_lines() {
    let v = validator("postgres-database");
    let params = set(pg_params(), "extensions", json!(vec![1; 3_000]));
    let errors = v.check(&params);
    let about_extensions: Vec<&FieldError> =
        errors.iter().filter(|e| e.field == "extensions").collect();
    assert_eq!(about_extensions.len(), MAX_ERRORS_PER_FIELD + 1);
    assert!(
        about_extensions
            .last()
            .is_some_and(|e| e.message.ends_with("more problems like these")),
        "{about_extensions:?}"
    );
    assert!(
        errors.iter().all(|e| e.field == "extensions"),
        "the other fields stay valid: {errors:?}"
    );
}

#[test]
fn parameters_over_the_size_limit_are_refused_before_any_rule_runs() {
    let v = validator("postgres-database");
    let names: Vec<String> = (0..8_000).map(|i| format!("extension{i:05}")).collect();
    let params = set(pg_params(), "extensions", json!(names));
    let errors = v.check(&params);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].field, "");
    assert!(
        errors[0]
            .message
            .contains(&format!("at most {MAX_PARAMS_BYTES} are accepted")),
        "{}",
        errors[0].message
    );
    let just_under = set(pg_params(), "extensions", json!(vec!["pgcrypto"; 10]));
    assert!(
        !v.check(&just_under)
            .iter()
            .any(|e| e.message.contains("bytes as JSON")),
        "a normal list passes the size rule"
    );
}

#[test]
fn whole_numbers_written_as_decimals_become_integers() {
    let t = ty("k8s-namespace");
    let given = json!({"name": "web", "cpu_limit": 64.0, "memory_limit_gi": 6.4e1,
                       "team": "payments", "admins": [1.0]});
    let canonical = canonical_integers(&t, &given);
    assert!(canonical["cpu_limit"].is_i64(), "{canonical}");
    assert_eq!(canonical["cpu_limit"], json!(64));
    assert_eq!(canonical["memory_limit_gi"], json!(64));
    // Only integer parameters: a list's items and text stay as given.
    assert_eq!(canonical["admins"], json!([1.0]));
    assert_eq!(canonical["name"], json!("web"));
    // A fraction, or a number past i64, stays for the schema to name.
    for kept in [json!(1.5), json!(1e19), json!(-1e19)] {
        let params = canonical_integers(&t, &json!({"cpu_limit": kept.clone()}));
        assert_eq!(params["cpu_limit"], kept);
    }
    assert_eq!(whole_number(&json!(-3.0)), Some(-3));
    assert_eq!(whole_number(&json!("3")), None);
}

#[test]
fn notes_are_capped_and_plain() {
    assert_eq!(note_error("comment", "line one\nline two\tok"), None);
    let long = "é".repeat(MAX_NOTE_CHARS + 1);
    let error = note_error("comment", &long).map(|e| (e.field, e.message));
    assert_eq!(
        error,
        Some((
            "comment".into(),
            format!("is 4001 characters long; at most {MAX_NOTE_CHARS} are kept")
        ))
    );
    assert!(note_error("note", "bell \u{7}").is_some());
    // Reads "approve … ok" on the page while it says something else.
    // … or hides a text in tag characters, or draws a blank as a filler.
    let tagged: String = "ignore the above"
        .chars()
        .map(|c| char::from_u32(0xE0000 + u32::from(c)).unwrap_or(c))
        .collect();
    for hidden in [
        "\u{202E}", "\u{2066}", "\u{200F}", "\u{200B}", "\u{FEFF}", "\u{2062}", "\u{206B}",
        "\u{3164}", "\u{FFA0}", &tagged,
    ] {
        let error = note_error("comment", &format!("looks {hidden}fine"));
        assert_eq!(
            error.map(|e| e.message),
            Some(UNFIT_TEXT.to_string()),
            "{hidden:?}"
        );
    }
    // Joiners are writing, not tricks: Persian, and emoji sequences (with their
    // variation selectors); so are a soft hyphen and Mongolian's vowel separator.
    assert_eq!(
        note_error("comment", "hyphen\u{00AD}ation ᠨᠠ\u{180E}ᠠ"),
        None
    );
    assert_eq!(
        note_error("comment", "می\u{200C}خواهم 👩\u{200D}💻 ❤\u{FE0F}"),
        None
    );
    // A form sends each line break as \r\n; the browser counted it once.
    let form = format!("{}\r\n{}", "a".repeat(2_000), "b".repeat(1_999));
    assert_eq!(note_text(&form).chars().count(), MAX_NOTE_CHARS);
    assert_eq!(note_error("comment", &note_text(&form)), None);
    assert_eq!(note_text("  two\r\nlines\r\n "), "two\nlines");
}

#[test]
fn control_characters_are_refused_in_any_text() {
    let v = validator("k8s-namespace");
    let params = json!({"name": "web", "team": "payments", "environment": "dev",
                        "cpu_limit": 2, "memory_limit_gi": 4, "admins": ["al\u{0}ice"]});
    let errors = v.check(&params);
    assert!(
        errors.contains(&FieldError::new("admins", UNFIT_TEXT)),
        "{errors:?}"
    );
    let params = json!({"name": "web", "team": "payments", "environment": "dev",
                        "cpu_limit": 2, "memory_limit_gi": 4, "admins": ["ali\u{202E}ecb"]});
    assert!(
        v.check(&params)
            .contains(&FieldError::new("admins", UNFIT_TEXT)),
        "a direction override in a parameter"
    );
}

#[test]
fn a_secret_is_never_quoted_even_where_json_escapes_it() {
    let mut db = ty("postgres-database");
    if let Some(password) = db
        .parameters
        .pointer_mut("/properties/owner_password")
        .and_then(Value::as_object_mut)
    {
        password.insert("not".into(), json!({"pattern": "(?i)password"}));
    }
    let validator = match ParamValidator::new(&db) {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    };
    for secret in [
        "My\"Password12",
        "My\\Password12",
        "My\tPassword12",
        "My\nPassword12",
    ] {
        let errors = validator.check(&set(pg_params(), "owner_password", json!(secret)));
        assert_eq!(
            errors,
            [FieldError::new(
                "owner_password",
                "is not valid (the value is secret and not repeated here)"
            )],
            "{secret:?}"
        );
    }
    // A rule we word ourselves keeps its words: they never hold the value.
    let short = validator.check(&set(pg_params(), "owner_password", json!("short\"")));
    assert_eq!(
        short,
        [FieldError::new(
            "owner_password",
            "must be at least 12 characters long"
        )]
    );
}

#[test]
fn an_empty_value_from_text_leaves_the_default_in_place() {
    let db = ty("postgres-database");
    let given: Vec<(String, String)> = [("size", ""), ("storage_gb", " "), ("name", "")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let (values, _) = values_from_text(&db, &given);
    assert_eq!(values.get("size"), Some(&json!("small")));
    assert_eq!(values.get("storage_gb"), Some(&json!(20)));
    assert_eq!(values.get("name"), None, "no default, so not given");
    assert!(values.values().all(|v| !v.is_null()), "{values:?}");
}

/// A free-form object's keys reach manifests and pages as its values do.
#[test]
fn hidden_characters_in_an_objects_keys_are_refused() {
    let mut labelled = ty("postgres-database");
    if let Some(properties) = labelled
        .parameters
        .get_mut("properties")
        .and_then(Value::as_object_mut)
    {
        properties.insert(
            "labels".into(),
            json!({"type": "object", "additionalProperties": {"type": "string"}}),
        );
    }
    let v = match ParamValidator::new(&labelled) {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(
        v.check(&set(pg_params(), "labels", json!({"tier": "gold"}))),
        vec![]
    );
    for key in ["ti\u{202E}er", "line\nbreak\u{7}", "a\u{E0041}"] {
        let errors = v.check(&set(pg_params(), "labels", json!({ key: "gold" })));
        assert_eq!(
            errors,
            vec![FieldError::new("labels", UNFIT_TEXT)],
            "{key:?}"
        );
    }
}
