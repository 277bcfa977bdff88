use serde_json::{Map, Value, json};

use super::*;
use crate::catalog::ResourceType;
use crate::test_support::shipped_catalog;

fn postgres() -> ResourceType {
    let catalog = shipped_catalog();
    match catalog.types.get("postgres-database") {
        Some(ty) => ty.clone(),
        None => panic!("the shipped catalog has postgres-database"),
    }
}

fn field(name: &str) -> FieldSpec {
    match postgres().fields().into_iter().find(|f| f.name == name) {
        Some(f) => f,
        None => panic!("postgres-database has no field {name}"),
    }
}

/// A request of the history, on top of the form's defaults.
fn request(extra: Value) -> Value {
    let mut params = json!({
        "name": "db", "team": "payments", "environment": "dev",
        "size": "small", "storage_gb": 20, "version": "16", "high_availability": false,
    });
    if let (Some(params), Value::Object(extra)) = (params.as_object_mut(), extra) {
        params.extend(extra);
    }
    params
}

fn history(params: Vec<Value>, sent_back: Vec<(i64, &str)>) -> History {
    History {
        team: "payments".into(),
        params,
        sent_back: sent_back
            .into_iter()
            .map(|(request_id, comment)| SentBack {
                request_id,
                comment: comment.into(),
            })
            .collect(),
    }
}

fn of_kind(guidance: &Guidance, kind: HintKind) -> Vec<&Hint> {
    guidance.hints.iter().filter(|h| h.kind == kind).collect()
}

fn params(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap_or_default()
}

#[test]
fn a_clear_majority_is_offered_with_its_source() {
    let mut past = vec![request(json!({"size": "medium"})); 3];
    past.push(request(json!({})));
    let guidance = compute(&postgres(), &history(past, vec![]));
    let hints: Vec<&Hint> = of_kind(&guidance, HintKind::MostChosen)
        .into_iter()
        .filter(|h| h.field == "size")
        .collect();
    assert_eq!(hints.len(), 1, "{hints:?}");
    assert_eq!(hints[0].value, Some(json!("medium")));
    assert!(hints[0].message.contains("3 of 4"), "{}", hints[0].message);
    assert!(hints[0].message.contains("Medium (2 CPU, 8 GiB)"));
    assert_eq!(
        hints[0].source,
        "from 4 payments requests for PostgreSQL database in the last 180 days"
    );
    assert_eq!(guidance.requests, 4);
    assert_eq!(guidance.team.as_deref(), Some("payments"));
}

#[test]
fn too_little_history_gives_no_default() {
    let past = vec![request(json!({"size": "large"})); 2];
    let guidance = compute(&postgres(), &history(past, vec![]));
    assert!(of_kind(&guidance, HintKind::MostChosen).is_empty());
    assert!(guidance.usual.is_empty());
}

#[test]
fn a_tie_or_a_bare_half_is_no_majority() {
    let past = vec![
        request(json!({"size": "large"})),
        request(json!({"size": "large"})),
        request(json!({"size": "medium"})),
        request(json!({"size": "medium"})),
    ];
    let guidance = compute(&postgres(), &history(past, vec![]));
    let sizes = of_kind(&guidance, HintKind::MostChosen);
    assert!(sizes.iter().all(|h| h.field != "size"), "{sizes:?}");
}

#[test]
fn the_catalog_default_and_the_team_field_are_not_repeated() {
    let past = vec![request(json!({})); 10];
    let guidance = compute(&postgres(), &history(past, vec![]));
    // environment has no default in the catalog: "dev" is a real suggestion.
    let fields: Vec<&str> = of_kind(&guidance, HintKind::MostChosen)
        .iter()
        .map(|h| h.field.as_str())
        .collect();
    assert_eq!(fields, ["environment"]);
}

#[test]
fn numbers_and_yes_no_count_and_strings_differ_from_numbers() {
    let mut past = vec![request(json!({"storage_gb": 50, "high_availability": true})); 4];
    past.push(request(json!({"storage_gb": "50"})));
    let guidance = compute(&postgres(), &history(past, vec![]));
    let hints = of_kind(&guidance, HintKind::MostChosen);
    let storage = hints.iter().find(|h| h.field == "storage_gb");
    assert_eq!(storage.and_then(|h| h.value.clone()), Some(json!(50)));
    assert!(storage.is_some_and(|h| h.message.contains("4 of 5")));
    let ha = hints.iter().find(|h| h.field == "high_availability");
    assert!(
        ha.is_some_and(|h| h.message.contains("chose yes")),
        "{ha:?}"
    );
}

#[test]
fn free_text_lists_and_objects_are_never_counted() {
    let past = vec![request(json!({"name": "same", "extensions": ["x"], "size": {"a": 1}})); 5];
    let guidance = compute(&postgres(), &history(past, vec![]));
    assert!(
        guidance
            .hints
            .iter()
            .all(|h| !["name", "extensions", "size"].contains(&h.field.as_str()))
    );
}

#[test]
fn a_comment_naming_a_field_gives_a_sent_back_hint() {
    let past = vec![request(json!({})); 5];
    let comments = vec![
        (7, "Storage is far too large for dev, 20 GB will do."),
        (6, "please lower storage_gb"),
        (6, "STORAGE (GB) still too high"),
        (5, "Looks fine otherwise"),
    ];
    let guidance = compute(&postgres(), &history(past, comments));
    let hints = of_kind(&guidance, HintKind::SentBack);
    assert_eq!(hints.len(), 1, "{hints:?}");
    assert_eq!(hints[0].field, "storage_gb");
    assert!(
        hints[0]
            .message
            .starts_with("2 requests like this one were sent back for Storage (GB)."),
        "{}",
        hints[0].message
    );
    assert!(hints[0].message.contains("“Storage is far too large"));
    assert!(
        hints[0]
            .source
            .starts_with("review comments from 5 payments requests")
    );
}

#[test]
fn a_field_is_named_only_as_a_whole_word() {
    assert!(!names_field("the resize went well", &field("size")));
    assert!(!names_field("namespace is wrong", &field("name")));
    assert!(!names_field("storage_gbx", &field("storage_gb")));
    assert!(names_field("Size: medium please", &field("size")));
    assert!(names_field("(size)", &field("size")));
    assert!(names_field("the storage gb value", &field("storage_gb")));
    assert!(names_field(
        "PostgreSQL VERSION 15 is old",
        &field("version")
    ));
    assert!(!names_field("", &field("size")));
}

#[test]
fn hostile_comments_are_quoted_as_short_clean_text() {
    let huge = format!("size {}", "<script>alert(1)</script>".repeat(4_000));
    assert!(huge.len() > 100_000);
    let quote = excerpt(&huge, &field("size"));
    assert!(quote.chars().count() <= 202, "{}", quote.len());
    assert!(quote.ends_with('…'));
    // Markup stays text; escaping is the page's job.
    assert!(quote.contains("<script>"));
    let tricky = "a\u{202E}b\u{200B}c\n\n\tsize\u{0}\u{7}!";
    assert_eq!(excerpt(tricky, &field("size")), "abc size !");
}

#[test]
fn a_field_named_only_beyond_the_read_limit_is_missed() {
    let comment = format!("{} size", "x ".repeat(text::MAX_COMMENT_CHARS));
    assert!(!names_field(&comment, &field("size")));
}

#[test]
fn the_quote_starts_near_the_field_it_names() {
    let comment = format!("{} the size is wrong", "word ".repeat(100));
    let quote = excerpt(&comment, &field("size"));
    assert!(quote.starts_with('…'));
    assert!(quote.contains("the size is wrong"));
}

#[test]
fn unicode_case_folding_keeps_positions() {
    // 'İ' folds to two characters in full lowercasing; here it must stay one.
    let comment = "İİİİ size İİ";
    assert!(names_field(comment, &field("size")));
    assert_eq!(excerpt(comment, &field("size")), comment);
}

fn storage_history(values: &[Value]) -> Guidance {
    let past = values
        .iter()
        .map(|v| request(json!({ "storage_gb": v })))
        .collect();
    compute(&postgres(), &history(past, vec![]))
}

#[test]
fn ten_times_the_usual_is_flagged_with_the_rule_and_numbers() {
    let guidance = storage_history(&[json!(20), json!(20), json!(30), json!(10), json!(20)]);
    assert_eq!(guidance.usual.len(), 1);
    assert_eq!(guidance.usual[0].median, 20.0);
    let found = unusual_values(&postgres(), &guidance, &params(json!({"storage_gb": 200})));
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0].message,
        "Storage (GB) 200 is unusual: 10 times your team's usual 20 (values 10× above or below it are flagged)."
    );
    assert!(
        found[0]
            .source
            .starts_with("the median from 5 payments requests")
    );
    let ok = unusual_values(&postgres(), &guidance, &params(json!({"storage_gb": 199})));
    assert!(ok.is_empty());
}

#[test]
fn a_tenth_of_the_usual_zero_and_negatives_are_flagged() {
    let guidance = storage_history(&vec![json!(100); 5]);
    for low in [json!(10), json!(0), json!(-5)] {
        let found = unusual_values(&postgres(), &guidance, &params(json!({"storage_gb": low})));
        assert_eq!(found.len(), 1, "{low}");
        assert!(found[0].message.contains("less than a tenth of"));
    }
    let ok = unusual_values(&postgres(), &guidance, &params(json!({"storage_gb": 11})));
    assert!(ok.is_empty());
}

#[test]
fn a_usual_value_of_zero_or_below_flags_nothing() {
    for usual in [json!(0), json!(-3)] {
        let guidance = storage_history(&vec![usual.clone(); 5]);
        let found = unusual_values(&postgres(), &guidance, &params(json!({"storage_gb": 1e9})));
        assert!(found.is_empty(), "{usual}: {found:?}");
    }
}

#[test]
fn non_numeric_history_and_values_are_ignored() {
    let mixed = [json!("20"), json!(null), json!([1]), json!(20), json!(20)];
    assert!(storage_history(&mixed).usual.is_empty());
    let guidance = storage_history(&vec![json!(20); 5]);
    let typed = params(json!({"storage_gb": "2000"}));
    assert!(unusual_values(&postgres(), &guidance, &typed).is_empty());
    assert!(unusual_values(&postgres(), &guidance, &Map::new()).is_empty());
}

#[test]
fn huge_numbers_neither_overflow_nor_print_pages_of_digits() {
    let guidance = storage_history(&vec![json!(1e308); 6]);
    assert_eq!(guidance.usual[0].median, 1e308);
    let guidance = storage_history(&vec![json!(20); 5]);
    let found = unusual_values(
        &postgres(),
        &guidance,
        &params(json!({"storage_gb": u64::MAX})),
    );
    assert_eq!(found.len(), 1);
    assert!(found[0].message.len() < 200, "{}", found[0].message);
    assert!(found[0].message.contains("e"), "{}", found[0].message);
}

#[test]
fn the_median_of_an_even_count_is_the_middle_pair_mean() {
    let guidance = storage_history(&[
        json!(10),
        json!(20),
        json!(30),
        json!(40),
        json!(1),
        json!(1000),
    ]);
    assert_eq!(guidance.usual[0].median, 25.0);
}

#[test]
fn no_team_flags_nothing() {
    let mut guidance = storage_history(&vec![json!(20); 5]);
    guidance.team = None;
    let found = unusual_values(&postgres(), &guidance, &params(json!({"storage_gb": 5000})));
    assert!(found.is_empty());
}

#[test]
fn numbers_read_as_people_write_them() {
    assert_eq!(number(20.0), "20");
    assert_eq!(number(12.345), "12.3");
    assert_eq!(number(-4.0), "-4");
    assert_eq!(number(1.8e19), "1.80e19");
}
