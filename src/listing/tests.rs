use super::*;

const PORTAL: &[Param] = &[
    Param::Type,
    Param::Team,
    Param::Environment,
    Param::State,
    Param::CreatedFrom,
    Param::CreatedTo,
    Param::Text("q"),
    Param::Before,
    Param::After,
    Param::Limit,
];

fn parse(pairs: &[(&str, &str)], rule: SizeRule) -> Result<ListQuery, Vec<FieldError>> {
    ListQuery::parse(pairs.iter().copied(), PORTAL, rule)
}

fn fields(result: Result<ListQuery, Vec<FieldError>>) -> Vec<String> {
    match result {
        Ok(query) => panic!("accepted: {query:?}"),
        Err(errors) => errors.into_iter().map(|e| e.field).collect(),
    }
}

#[test]
fn days_parse_print_and_bound_their_milliseconds() {
    let day = Day::parse("2026-11-26").expect("a day");
    assert_eq!(day.to_string(), "2026-11-26");
    assert_eq!(Day::parse("1970-01-01").map(Day::start_millis), Ok(0));
    assert_eq!(
        Day::parse("1970-01-02").map(Day::start_millis),
        Ok(MILLIS_PER_DAY)
    );
    assert_eq!(day.end_millis() - day.start_millis(), MILLIS_PER_DAY);
    assert!(Day::parse("2024-02-29").is_ok());
    assert_eq!(
        Day::parse("1969-12-31").map(|d| d.to_string()).as_deref(),
        Ok("1969-12-31")
    );
    for bad in [
        "",
        "2023-02-29",
        "2026-13-01",
        "2026-00-10",
        "2026-1-1",
        "26-11-2026",
        "2026/11/26",
        "2026-11-26T00:00",
        "+026-11-26",
        "２０２６-11-26",
        "2026-11-32",
    ] {
        assert!(Day::parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn a_portal_query_reads_filters_and_a_cursor() {
    let query = parse(
        &[
            ("type", "k8s-namespace"),
            ("team", "payments"),
            ("environment", ""),
            ("state", "in_review"),
            ("created_from", "2026-01-01"),
            ("created_to", "2026-01-31"),
            ("q", " orders "),
            ("before", "42"),
        ],
        SizeRule::Clamp,
    )
    .expect("valid");
    assert_eq!(query.filter.type_name.as_deref(), Some("k8s-namespace"));
    assert_eq!(
        query.filter.environment, None,
        "an empty field is no filter"
    );
    assert_eq!(query.filter.state, Some(RequestState::InReview));
    assert_eq!(query.filter.text.as_deref(), Some("orders"));
    assert_eq!(query.page.cursor, Cursor::Before(42));
    assert_eq!(query.page.size, DEFAULT_PAGE_SIZE);
    let href = query.href("q", Cursor::After(7));
    assert_eq!(
        href,
        "type=k8s-namespace&team=payments&state=in_review&created_from=2026-01-01&created_to=2026-01-31&q=orders&after=7"
    );
    // A link reproduces the view.
    let again: Vec<(String, String)> = href
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let again = ListQuery::parse(
        again.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        PORTAL,
        SizeRule::Clamp,
    )
    .expect("its own link parses");
    assert_eq!(again.filter, query.filter);
    assert_eq!(again.page.cursor, Cursor::After(7));
}

#[test]
fn sizes_clamp_in_the_portal_and_are_refused_by_the_api() {
    let size = |limit: &str, rule| parse(&[("limit", limit)], rule).map(|q| q.page.size);
    assert_eq!(size("100000", SizeRule::Clamp), Ok(MAX_PAGE_SIZE));
    assert_eq!(size("0", SizeRule::Clamp), Ok(1));
    assert_eq!(size("-5", SizeRule::Clamp), Ok(1));
    assert_eq!(size("20", SizeRule::Refuse), Ok(20));
    assert_eq!(
        fields(size("101", SizeRule::Refuse).map(|_| ListQuery::default())),
        ["limit"]
    );
    assert_eq!(
        fields(parse(&[("limit", "0")], SizeRule::Refuse)),
        ["limit"]
    );
    assert_eq!(
        fields(parse(&[("limit", "ten")], SizeRule::Clamp)),
        ["limit"]
    );
    assert_eq!(PageRequest::first(5000).clamped_size(), MAX_PAGE_SIZE);
    assert_eq!(PageRequest::first(0).clamped_size(), 1);
}

#[test]
fn every_bad_value_is_named() {
    assert_eq!(
        fields(parse(&[("colour", "red")], SizeRule::Clamp)),
        ["colour"]
    );
    assert_eq!(
        fields(parse(&[("state", "sleeping")], SizeRule::Clamp)),
        ["state"]
    );
    assert_eq!(
        fields(parse(&[("created_from", "yesterday")], SizeRule::Clamp)),
        ["created_from"]
    );
    assert_eq!(
        fields(parse(
            &[("created_from", "2026-02-02"), ("created_to", "2026-02-01")],
            SizeRule::Clamp
        )),
        ["created_to"]
    );
    assert_eq!(
        fields(parse(&[("before", "0")], SizeRule::Clamp)),
        ["before"]
    );
    assert_eq!(fields(parse(&[("after", "x")], SizeRule::Clamp)), ["after"]);
    assert_eq!(
        fields(parse(&[("before", "3"), ("after", "9")], SizeRule::Clamp)),
        ["after"]
    );
    assert_eq!(
        fields(parse(&[("team", "a"), ("team", "b")], SizeRule::Clamp)),
        ["team"]
    );
    let long = "t".repeat(MAX_NAME_CHARS + 1);
    assert_eq!(fields(parse(&[("type", &long)], SizeRule::Clamp)), ["type"]);
    let only_types = ListQuery::parse([("state", "draft")], &[Param::Type], SizeRule::Clamp);
    assert_eq!(fields(only_types), ["state"]);
}

#[test]
fn search_words_are_only_words() {
    assert_eq!(search_words("Orders-DEV"), ["orders", "dev"]);
    assert_eq!(
        search_words("\"a\" OR b* NEAR(c) x:y &|!()"),
        ["a", "or", "b", "near", "c", "x", "y"]
    );
    assert!(search_words("*** ::: '\"").is_empty());
    assert_eq!(search_words("Ünïcödé 数据库"), ["unicode", "数据库"]);
    // Accents fold away, composed or not, so both engines find "Müller" by "muller".
    assert_eq!(search_words("Müller Mu\u{308}ller muller"), ["muller"; 3]);
    assert_eq!(search_words("São Paulo ñandú"), ["sao", "paulo", "nandu"]);
    let long = "w ".repeat(5000);
    assert_eq!(search_words(&long).len(), MAX_SEARCH_WORDS);
    let one = "x".repeat(5000);
    assert_eq!(search_words(&one)[0].chars().count(), MAX_WORD_CHARS);
    assert_eq!(encode("a b&c=ü"), "a%20b%26c%3D%C3%BC");
}

#[test]
fn an_empty_value_is_no_filter_in_a_form_but_an_error_in_the_api() {
    let typed = [
        "state",
        "created_from",
        "created_to",
        "before",
        "after",
        "limit",
    ];
    for name in typed {
        assert!(
            parse(&[(name, "")], SizeRule::Clamp).is_ok(),
            "{name} empty in a form"
        );
        assert_eq!(
            fields(parse(&[(name, " ")], SizeRule::Refuse)),
            [name],
            "{name} empty in the API"
        );
    }
    for name in ["type", "team", "environment", "q"] {
        let query = parse(&[(name, "")], SizeRule::Refuse).expect("an empty text");
        assert!(query.filter.is_empty(), "{name}");
    }
}

#[test]
fn a_flood_of_bad_pairs_gets_a_short_answer() {
    let pairs: Vec<(String, String)> = (0..100_000)
        .map(|i| (format!("k{i}"), "v".to_string()))
        .collect();
    let errors = ListQuery::parse(
        pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        PORTAL,
        SizeRule::Clamp,
    )
    .err()
    .unwrap_or_default();
    assert_eq!(errors.len(), MAX_QUERY_PROBLEMS + 1);
    assert_eq!(
        errors.last().map(|e| e.message.as_str()),
        Some("and 99990 more problems with the query")
    );
    // A megabyte-long key or value is not echoed whole.
    let long = "x".repeat(1_000_000);
    for pairs in [[(long.as_str(), "v")], [("state", long.as_str())]] {
        let errors = parse(&pairs, SizeRule::Clamp).err().unwrap_or_default();
        assert_eq!(errors.len(), 1);
        let shown = errors[0].field.len() + errors[0].message.len();
        assert!(shown < 400, "{shown} bytes: {:?}", errors[0]);
    }
}

#[test]
fn a_query_that_arrives_read_has_its_days_in_order() {
    let days = |from: &str, to: &str| ListQuery {
        filter: ListFilter {
            created_from: Day::parse(from).ok(),
            created_to: Day::parse(to).ok(),
            ..ListFilter::default()
        },
        ..ListQuery::default()
    };
    assert_eq!(
        fields(days("2025-02-01", "2025-01-01").checked()),
        ["created_to"]
    );
    assert!(days("2025-01-01", "2025-01-01").checked().is_ok());
}

/// A filter from a link is shown back as the list's selected choice: it may not
/// turn its reading direction round or draw as nothing.
#[test]
fn a_filter_may_not_hold_invisible_or_direction_changing_text() {
    for hostile in ["\u{202e}nimda", "pay\u{200b}ments", "a\u{2066}b", "x\u{7}"] {
        assert_eq!(
            fields(parse(&[("team", hostile)], SizeRule::Clamp)),
            ["team"],
            "{hostile:?}"
        );
    }
    assert!(parse(&[("team", "zahlungsverkehr-ä")], SizeRule::Clamp).is_ok());
}
