use serde_json::json;

use super::*;
use crate::test_support::{shipped_catalog, shipped_text, with_file};

fn errors_of(files: &[SourceFile]) -> Vec<CatalogError> {
    match Catalog::from_files(files) {
        Ok(_) => panic!("expected the catalog to be rejected"),
        Err(CatalogErrors(errors)) => errors,
    }
}

fn err(file: &str, path: &str, message: &str) -> (String, String, String) {
    (file.into(), path.into(), message.into())
}

fn triples(errors: &[CatalogError]) -> Vec<(String, String, String)> {
    errors
        .iter()
        .map(|e| (e.file.clone(), e.path.clone(), e.message.clone()))
        .collect()
}

/// A type file that is valid on its own, to break one thing at a time.
fn minimal_type(extra: &str) -> String {
    format!(
        r#"name: widget
title: Widget
description: A test type.
owner: platform
parameters:
  type: object
  required: [name]
  properties:
    name: {{ type: string, pattern: "^[a-z]+$" }}
    size: {{ type: integer, default: 1 }}
    team: {{ type: string, x-dictionary: teams }}
naming: {{ template: "{{{{ name }}}}" }}
review: {{ approvers: {{ role: reviewer }} }}
outputs:
  - {{ path: "w/{{{{ name }}}}.yaml", template: k8s-namespace/namespace.yaml.j2 }}
{extra}"#
    )
}

#[test]
fn shipped_catalog_loads() {
    let catalog = shipped_catalog();
    assert_eq!(
        catalog.types.keys().collect::<Vec<_>>(),
        ["k8s-namespace", "postgres-database", "shared-database"]
    );
    assert_eq!(
        catalog.dictionaries.keys().collect::<Vec<_>>(),
        ["environments", "teams"]
    );
    assert_eq!(catalog.templates.len(), 8);
    let teams = catalog.dictionary("teams").map(|d| d.terms.len());
    assert_eq!(teams, Some(4));
    assert!(catalog.resource_type("nope").is_none());
}

#[test]
fn dictionaries_resolve_into_enum_and_titles() {
    let catalog = shipped_catalog();
    let ty = catalog.resource_type("postgres-database").cloned();
    let params = ty.map(|t| t.parameters).unwrap_or_default();
    assert_eq!(
        params.pointer("/properties/team/enum"),
        Some(&json!(["payments", "search", "platform", "dba"]))
    );
    assert_eq!(
        params.pointer("/properties/environment/x-enum-titles"),
        Some(&json!(["Development", "Staging", "Production"]))
    );
}

#[test]
fn shipped_type_policies_are_read() {
    let catalog = shipped_catalog();
    let Some(ns) = catalog.resource_type("k8s-namespace") else {
        panic!("k8s-namespace missing")
    };
    assert_eq!(ns.naming.max_length, 63);
    assert_eq!(ns.review.approver_role, "reviewer");
    assert_eq!(ns.review.required, 1);
    assert_eq!(
        ns.review.auto_approve_when.as_deref(),
        Some("environment == 'dev'")
    );
    assert_eq!(ns.quota.len(), 2);
    assert_eq!(ns.quota[1].sum.as_deref(), Some("cpu_limit"));
    assert_eq!(ns.outputs.len(), 3);
    let Some(pg) = catalog.resource_type("postgres-database") else {
        panic!("postgres-database missing")
    };
    assert_eq!(pg.review.auto_approve_when, None);
    assert_eq!(pg.requires[0].type_name, "k8s-namespace");
    assert_eq!(pg.risk_hints.len(), 2);
}

#[test]
fn fields_follow_schema_order_with_kinds() {
    let catalog = shipped_catalog();
    let Some(pg) = catalog.resource_type("postgres-database") else {
        panic!("postgres-database missing")
    };
    let fields = pg.fields();
    let names: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "name",
            "team",
            "environment",
            "size",
            "storage_gb",
            "version",
            "high_availability",
            "extensions",
            "owner_password"
        ]
    );
    assert_eq!(
        fields[0].kind,
        FieldKind::Text {
            pattern: Some("^[a-z][a-z0-9-]{1,30}$".into()),
            min_length: None,
            max_length: None
        }
    );
    assert!(fields[0].required);
    let FieldKind::Choice { options } = &fields[1].kind else {
        panic!("team should be a choice")
    };
    assert_eq!(
        options[0],
        ChoiceOption {
            value: "payments".into(),
            label: "Payments".into()
        }
    );
    assert_eq!(
        fields[4].kind,
        FieldKind::Integer {
            minimum: Some(10),
            maximum: Some(500)
        }
    );
    assert_eq!(fields[4].title, "Storage (GB)");
    assert_eq!(fields[6].kind, FieldKind::Boolean);
    assert!(!fields[6].required);
    assert!(matches!(fields[7].kind, FieldKind::TextList { .. }));
}

#[test]
fn default_params_come_from_the_schema() {
    let catalog = shipped_catalog();
    let defaults = catalog
        .resource_type("postgres-database")
        .map(|t| t.default_params())
        .unwrap_or_default();
    assert_eq!(
        serde_json::Value::Object(defaults),
        json!({"size": "small", "storage_gb": 20, "version": "16", "high_availability": false})
    );
}

#[test]
fn other_files_are_ignored() {
    let files = with_file("notes/whatever.txt", "not: [yaml");
    assert!(Catalog::from_files(&files).is_ok());
}

#[test]
fn yaml_syntax_error_names_line_and_column() {
    let files = with_file("dictionaries/teams.yaml", "name: teams\ntitle: \"Teams\n");
    let errors = errors_of(&files);
    assert_eq!(errors.len(), 1 + 3, "{errors:?}");
    assert_eq!(errors[0].file, "dictionaries/teams.yaml");
    assert_eq!(errors[0].path, "title");
    assert!(
        errors[0].message.contains("line 2 column 8"),
        "{}",
        errors[0].message
    );
    // Without the dictionary, both shipped types' x-dictionary: teams are reported.
    assert!(
        errors[1..]
            .iter()
            .all(|e| e.message.starts_with("unknown dictionary \"teams\""))
    );
}

/// A file of deep brackets is refused before the parser (whose time grows with
/// the square of the depth) reads it, naming the file.
#[test]
fn a_file_nesting_too_deep_is_refused_before_it_is_parsed() {
    let text = format!(
        "{}x: {}{}\n",
        minimal_type(""),
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let errors = errors_of(&with_file("types/widget.yaml", &text));
    assert!(
        errors
            .iter()
            .any(|e| e.file == "types/widget.yaml" && e.message.contains("nests deeper than 256")),
        "{errors:?}"
    );
}

#[test]
fn a_key_repeated_in_any_mapping_is_refused() {
    // A parameter's schema is a free-form map to the typed structs: its
    // repeated key would silently drop the first rule.
    let text = minimal_type("").replace(
        "    size: { type: integer, default: 1 }\n",
        "    size: { type: integer, maximum: 64, default: 1 }\n    size: { type: integer }\n",
    );
    let errors = errors_of(&with_file("types/widget.yaml", &text));
    assert!(
        errors.iter().any(|e| e.file == "types/widget.yaml"
            && e.message.contains("duplicate entry")
            && e.message.contains("size")),
        "{errors:?}"
    );
    let env = minimal_type("").replace("title: Widget\n", "title: Widget\ntitle: Gadget\n");
    let errors = errors_of(&with_file("types/widget.yaml", &env));
    assert!(
        errors.iter().any(|e| e.message.contains("duplicate")),
        "{errors:?}"
    );
}

#[test]
fn a_default_that_fails_its_own_rule_is_refused() {
    let text = minimal_type("").replace(
        "    size: { type: integer, default: 1 }\n",
        "    size: { type: integer, minimum: 10, default: 5 }\n    tier: { type: string, enum: [a, b], default: c }\n",
    );
    let errors = errors_of(&with_file("types/widget.yaml", &text));
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert!(
        paths.contains(&"parameters.properties.size.default")
            && paths.contains(&"parameters.properties.tier.default"),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.message.starts_with("the default 5 fails its own rule")),
        "{errors:?}"
    );
    // A rule across parameters depends on values the defaults do not give: the
    // default 1 is fine for every team but payments.
    let across = minimal_type("").replace(
        "  required: [name]\n",
        "  required: [name]\n  if: { properties: { team: { const: payments } } }\n  then: { properties: { size: { minimum: 2 } } }\n",
    );
    let loaded = Catalog::from_files(&with_file("types/widget.yaml", &across));
    assert!(loaded.is_ok(), "{:?}", loaded.err());
}

#[test]
fn unknown_fields_are_rejected_with_their_path() {
    let text = shipped_text("types/k8s-namespace.yaml")
        .replace("  required: 1\n", "  required: 1\n  quorum: 2\n");
    let errors = errors_of(&with_file("types/k8s-namespace.yaml", &text));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].file, "types/k8s-namespace.yaml");
    assert_eq!(errors[0].path, "review.quorum");
    assert_eq!(
        errors[0].message,
        "unknown field `quorum`, expected one of `approvers`, `required`, `auto_approve` at line 67 column 3"
    );
}

#[test]
fn error_display_omits_empty_path() {
    let with_path = CatalogError {
        file: "types/a.yaml".into(),
        path: "quota[0].sum".into(),
        message: "unknown parameter".into(),
    };
    let without = CatalogError {
        path: String::new(),
        ..with_path.clone()
    };
    assert_eq!(
        with_path.to_string(),
        "types/a.yaml: quota[0].sum: unknown parameter"
    );
    assert_eq!(without.to_string(), "types/a.yaml: unknown parameter");
    let all = CatalogErrors(vec![with_path, without]);
    assert_eq!(all.to_string().lines().count(), 2);
}

/// A quota's scope compared as text must be written one way, or every
/// spelling of a team would be a scope of its own.
#[test]
fn a_free_text_scope_or_match_is_refused_and_a_shaped_one_taken() {
    let free = minimal_type("quota:\n  - { per: [region], max_count: 2 }\n")
        .replace(
            "    team: { type: string, x-dictionary: teams }",
            "    team: { type: string, x-dictionary: teams }\n    region: { type: string }",
        )
        .replace("required: [name]", "required: [name, region]");
    let f = "types/widget.yaml";
    let errors = triples(&errors_of(&with_file(f, &free)));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].1, "quota[0].per[0]");
    assert!(errors[0].2.contains("is free text"), "{errors:?}");
    let patterned = free.replace(
        "region: { type: string }",
        "region: { type: string, pattern: \"^[a-z]+$\" }",
    );
    if let Err(errors) = Catalog::from_files(&with_file(f, &patterned)) {
        panic!("{errors}");
    }
    // Choices given through alternatives or a definition are choices too.
    for shaped in [
        "region: { type: string, oneOf: [{ const: eu }, { const: us }] }",
        "region: { type: string, $ref: \"#/$defs/region\" }\n  $defs:\n    region: { enum: [eu, us] }",
    ] {
        let text = free.replace("region: { type: string }", shaped);
        if let Err(errors) = Catalog::from_files(&with_file(f, &text)) {
            panic!("{shaped}: {errors}");
        }
    }
}

#[test]
fn semantic_errors_are_all_collected() {
    let broken = with_team_required(&minimal_type(
        r#"quota:
  - { per: [team, region], max_count: 2 }
  - { per: [team], sum: name, max: 10 }
  - { per: [team], sum: size }
  - { per: [team] }
requires:
  - { type: database, match: { team: "{{ team }}" } }
  - { type: k8s-namespace, match: { flavour: "{{ team }}", team: "{{ team" } }
risk_hints:
  - { when: "size >", message: "{% if %}" }
"#,
    ));
    let errors = errors_of(&with_file("types/widget.yaml", &broken));
    let f = "types/widget.yaml";
    let got = triples(&errors);
    let want = [
        err(f, "quota[0].per[1]", "unknown parameter \"region\""),
        err(
            f,
            "quota[1].sum",
            "parameter \"name\" must be of type integer to be summed",
        ),
        err(f, "quota[2]", "`sum` needs a `max`"),
        err(f, "quota[3]", "needs `max_count`, or `sum` with `max`"),
        err(f, "requires[0].type", "unknown resource type \"database\""),
        err(
            f,
            "requires[1].match.flavour",
            "type \"k8s-namespace\" has no parameter \"flavour\"",
        ),
    ];
    for w in &want {
        assert!(got.contains(w), "missing {w:?} in {got:#?}");
    }
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    for p in [
        "requires[1].match.team",
        "risk_hints[0].when",
        "risk_hints[0].message",
    ] {
        assert!(paths.contains(&p), "missing {p} in {paths:?}");
    }
    let when = errors.iter().find(|e| e.path == "risk_hints[0].when");
    assert!(when.is_some_and(|e| e.message.starts_with("invalid expression: ")));
    assert_eq!(errors.len(), want.len() + 3, "{got:#?}");
}

#[test]
fn type_name_must_match_file_stem() {
    let text = minimal_type("");
    let errors = errors_of(&with_file("types/gadget.yaml", &text));
    assert_eq!(
        triples(&errors),
        [err(
            "types/gadget.yaml",
            "name",
            "must match the file name \"gadget\""
        )]
    );
}

#[test]
fn missing_output_template_and_bad_templates() {
    let text = minimal_type(
        r#"checks:
  - { kind: gitops-file, path: "{{ name }" }
monitoring:
  - { name: "{{ name }}", kind: alert, target: "{% for %}" }
"#,
    )
    .replace("k8s-namespace/namespace.yaml.j2", "widget/missing.yaml.j2");
    let errors = errors_of(&with_file("types/widget.yaml", &text));
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "checks[0].path",
            "outputs[0].template",
            "monitoring[0].target"
        ]
    );
    assert_eq!(
        errors[1].message,
        "no file templates/widget/missing.yaml.j2 in the catalog"
    );
    assert!(errors[0].message.starts_with("invalid template: "));
}

#[test]
fn unknown_check_kind_is_rejected() {
    let text = minimal_type("checks:\n  - { kind: http-probe, path: x }\n");
    let errors = triples(&errors_of(&with_file("types/widget.yaml", &text)));
    assert_eq!(
        errors,
        [err(
            "types/widget.yaml",
            "checks[0].kind",
            r#"unknown check kind "http-probe"; the kinds are git-file, http, tcp, command, postgres"#
        )]
    );
}

#[test]
fn checks_of_every_kind_are_read_and_the_old_git_file_spelling_still_is() {
    let text = minimal_type(
        r#"checks:
  - { kind: gitops-file, path: "w/{{ name }}.yaml" }
  - kind: http
    url: "https://{{ name }}.apps.example.com/healthz"
    body_contains: ok
    body_matches: '"ready":\s*true'
    deadline_seconds: 30
  - { kind: tcp, address: "{{ name }}.db.internal:5432" }
  - { kind: command, program: pg_isready, args: ["-h", "{{ name }}"], timeout_seconds: 5 }
"#,
    );
    let catalog = match Catalog::from_files(&with_file("types/widget.yaml", &text)) {
        Ok(catalog) => catalog,
        Err(e) => panic!("{e}"),
    };
    let kinds: Vec<CheckKind> = catalog
        .resource_type("widget")
        .map(|t| t.checks.iter().map(|c| c.kind.clone()).collect())
        .unwrap_or_default();
    assert_eq!(
        kinds,
        [
            CheckKind::GitFile {
                path: "w/{{ name }}.yaml".into()
            },
            CheckKind::Http {
                url: "https://{{ name }}.apps.example.com/healthz".into(),
                status: 200,
                body_contains: Some("ok".into()),
                body_matches: Some(r#""ready":\s*true"#.into()),
                deadline_seconds: 30,
            },
            CheckKind::Tcp {
                address: "{{ name }}.db.internal:5432".into(),
                deadline_seconds: 60,
            },
            CheckKind::Command {
                program: "pg_isready".into(),
                args: vec!["-h".into(), "{{ name }}".into()],
                timeout_seconds: Some(5),
            },
        ]
    );
}

#[test]
fn each_check_kind_is_checked_field_by_field() {
    let text = minimal_type(
        r#"checks:
  - { kind: git-file, url: "http://x" }
  - { kind: http, url: "ftp://x", status: 42, body_matches: "(", deadline_seconds: 0 }
  - { kind: tcp, address: "db.internal", deadline_seconds: 7200 }
  - { kind: command, program: "sh -c", timeout_seconds: 0, path: x }
  - { kind: http, url: "http://{{ name }}/", address: "x:1" }
"#,
    );
    let errors = triples(&errors_of(&with_file("types/widget.yaml", &text)));
    let file = "types/widget.yaml";
    assert_eq!(
        errors,
        [
            err(
                file,
                "checks[0].url",
                "is a field of http checks, not of git-file"
            ),
            err(
                file,
                "checks[0].path",
                "is required: the file's path in the GitOps repository"
            ),
            err(
                file,
                "checks[1].url",
                r#""ftp://x" is not a URL starting with http:// or https://"#
            ),
            err(
                file,
                "checks[1].status",
                "must be an HTTP status from 100 to 599"
            ),
            err(
                file,
                "checks[1].body_matches",
                &match crate::checks::BodyPattern::new("(") {
                    Err(message) => message,
                    Ok(_) => panic!("\"(\" compiled"),
                }
            ),
            err(
                file,
                "checks[1].deadline_seconds",
                "must be between 1 and 3600 (an hour)"
            ),
            err(
                file,
                "checks[2].address",
                r#""db.internal" is not host:port"#
            ),
            err(
                file,
                "checks[2].deadline_seconds",
                "must be between 1 and 3600 (an hour)"
            ),
            err(
                file,
                "checks[3].path",
                "is a field of git-file checks, not of command"
            ),
            err(
                file,
                "checks[3].program",
                r#""sh -c" must be a plain program name or absolute path, without spaces or templates; give arguments in `args`"#
            ),
            err(
                file,
                "checks[3].timeout_seconds",
                "must be between 1 and 86400 (a day)"
            ),
            err(
                file,
                "checks[4].address",
                "is a field of tcp checks, not of http"
            ),
        ]
    );
}

#[test]
fn invalid_schema_is_reported_at_its_path() {
    let text = minimal_type("").replace(
        "size: { type: integer, default: 1 }",
        "size: { type: integer, minimum: \"ten\" }",
    );
    let errors = errors_of(&with_file("types/widget.yaml", &text));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].path, "parameters.properties.size.minimum");
    assert!(
        errors[0].message.starts_with("invalid JSON Schema: "),
        "{}",
        errors[0].message
    );
}

#[test]
fn invalid_regex_in_schema_is_reported() {
    let text = minimal_type("").replace("\"^[a-z]+$\"", "\"^[a-z+$\"");
    let errors = errors_of(&with_file("types/widget.yaml", &text));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].path.starts_with("parameters.properties.name"),
        "{}",
        errors[0].path
    );
}

#[test]
fn unknown_dictionary_and_unsupported_property_types() {
    let text = minimal_type("")
        .replace("x-dictionary: teams", "x-dictionary: squads")
        .replace(
            "size: { type: integer, default: 1 }",
            "size: { type: object }",
        );
    let errors = errors_of(&with_file("types/widget.yaml", &text));
    assert_eq!(
        triples(&errors),
        [
            err(
                "types/widget.yaml",
                "parameters.properties.team.x-dictionary",
                "unknown dictionary \"squads\" (known: environments, teams)"
            ),
            err(
                "types/widget.yaml",
                "parameters.properties.size.type",
                "must be one of string, integer, boolean or array (of strings)"
            ),
        ]
    );
}

/// The form sends a choice as text: an integer's or a boolean's choices are
/// refused at load, where they would have refused every request.
#[test]
fn choices_of_a_number_or_a_yes_no_are_refused() {
    for (size, kind) in [
        ("{ type: integer, enum: [1, 3, 5], default: 1 }", "integer"),
        ("{ type: boolean, enum: [true] }", "boolean"),
    ] {
        let text = minimal_type("").replace(
            "size: { type: integer, default: 1 }",
            &format!("size: {size}"),
        );
        let errors = errors_of(&with_file("types/widget.yaml", &text));
        let found: Vec<_> = triples(&errors)
            .into_iter()
            .filter(|(_, path, _)| path == "parameters.properties.size.enum")
            .collect();
        assert_eq!(found.len(), 1, "{kind}: {errors:?}");
        assert!(found[0].2.contains("`type: string`"), "{found:?}");
    }
}

#[test]
fn duplicate_dictionary_keys() {
    let text = "name: colours\ntitle: Colours\nterms:\n  - { key: red, title: Red }\n  - { key: red, title: Rouge }\n";
    let errors = errors_of(&with_file("dictionaries/colours.yaml", text));
    assert_eq!(
        triples(&errors),
        [err(
            "dictionaries/colours.yaml",
            "terms[1].key",
            "duplicate key \"red\""
        )]
    );
}

#[test]
fn broken_output_template_file_is_reported() {
    let errors = errors_of(&with_file("templates/extra.j2", "{% if x %}no end"));
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].file, "templates/extra.j2");
    assert_eq!(errors[0].path, "");
}

#[test]
fn model_round_trips_through_json() {
    let catalog = shipped_catalog();
    let text = serde_json::to_string(&catalog).unwrap_or_default();
    let back: Result<Catalog, _> = serde_json::from_str(&text);
    assert_eq!(back.ok(), Some(catalog));
}

#[test]
fn a_review_role_that_does_not_exist_is_refused() {
    let text = minimal_type("").replace("role: reviewer", "role: reviwer");
    let errors = errors_of(&with_file("types/widget.yaml", &text));
    assert_eq!(
        triples(&errors),
        [err(
            "types/widget.yaml",
            "review.approvers.role",
            "\"reviwer\" is not a role; the roles are requester, reviewer, platform, auditor, admin"
        )]
    );
}

/// The minimal type with `team` required too, as an owner or quota scope must be.
fn with_team_required(type_file: &str) -> String {
    type_file.replace("required: [name]", "required: [name, team]")
}

#[test]
fn the_owning_team_parameter_is_declared_and_checked() {
    let good = with_team_required(&minimal_type("owner_param: team\n"));
    let files = with_file("types/widget.yaml", &good);
    let catalog = Catalog::from_files(&files).ok();
    let owner = catalog.and_then(|c| {
        c.resource_type("widget")
            .and_then(|t| t.owner_param.clone())
    });
    assert_eq!(
        owner,
        Some(OwnerParam {
            param: "team".into(),
            dictionary: "teams".into()
        })
    );

    let missing = minimal_type("owner_param: squad\n");
    let errors = errors_of(&with_file("types/widget.yaml", &missing));
    assert_eq!(
        triples(&errors),
        [err(
            "types/widget.yaml",
            "owner_param",
            "names \"squad\", which is not a parameter of this type"
        )]
    );

    let not_a_dictionary =
        minimal_type("owner_param: size\n").replace("required: [name]", "required: [name, size]");
    let errors = errors_of(&with_file("types/widget.yaml", &not_a_dictionary));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].message.contains("dictionary of teams"),
        "{errors:?}"
    );

    let unknown_owner = with_team_required(&minimal_type("owner_param: team\n"))
        .replace("owner: platform", "owner: nobody");
    let errors = errors_of(&with_file("types/widget.yaml", &unknown_owner));
    assert_eq!(
        triples(&errors),
        [err(
            "types/widget.yaml",
            "owner",
            "\"nobody\" is not a team of the dictionary \"teams\""
        )]
    );
}

#[test]
fn a_naming_pattern_is_read_and_a_broken_one_refused() {
    let dotted = minimal_type("").replace(
        r#"naming: { template: "{{ name }}" }"#,
        r#"naming: { template: "{{ name }}.events", pattern: "^[a-z.]+$", pattern_description: "lowercase letters and dots", max_length: 249 }"#,
    );
    let catalog = Catalog::from_files(&with_file("types/widget.yaml", &dotted)).ok();
    let naming = catalog.and_then(|c| c.resource_type("widget").map(|t| t.naming.clone()));
    assert_eq!(
        naming.map(|n| (n.pattern, n.max_length)),
        Some(("^[a-z.]+$".into(), 249))
    );

    let broken = minimal_type("").replace(
        r#"naming: { template: "{{ name }}" }"#,
        r#"naming: { template: "{{ name }}", pattern: "^[a-z" }"#,
    );
    let errors = errors_of(&with_file("types/widget.yaml", &broken));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].path, "naming.pattern");
}

#[test]
fn a_type_without_execute_commits_every_output_in_one_gitops_step() {
    let catalog = shipped_catalog();
    for name in ["k8s-namespace", "postgres-database"] {
        let ty = catalog.resource_type(name).expect("shipped");
        assert_eq!(ty.execute, [ExecutionStep::commit_all()], "{name}");
    }
    let ns = catalog.resource_type("k8s-namespace").cloned();
    let names: Vec<String> = ns
        .map(|t| t.outputs.into_iter().map(|o| o.name).collect())
        .unwrap_or_default();
    assert_eq!(
        names,
        [
            "k8s-namespace/namespace.yaml.j2",
            "k8s-namespace/resourcequota.yaml.j2",
            "k8s-namespace/rolebinding.yaml.j2"
        ],
        "an output is named after its template unless it says otherwise"
    );
}

#[test]
fn execute_steps_are_read_in_order() {
    let files = with_file(
        "types/widget.yaml",
        &minimal_type(
            r#"  - { name: extra, path: "w/{{ name }}-extra.yaml", template: k8s-namespace/namespace.yaml.j2 }
execute:
  - driver: gitops
    outputs: [extra]
    message: "widget {{ resource_name }} for request #{{ request_id }}"
  - driver: gitops
"#,
        ),
    );
    let catalog = match Catalog::from_files(&files) {
        Ok(catalog) => catalog,
        Err(errors) => panic!("{errors}"),
    };
    let ty = catalog.resource_type("widget").cloned();
    assert_eq!(
        ty.map(|t| t.execute).unwrap_or_default(),
        [
            ExecutionStep::Gitops {
                outputs: Some(vec!["extra".into()]),
                message: Some("widget {{ resource_name }} for request #{{ request_id }}".into()),
            },
            ExecutionStep::commit_all(),
        ]
    );
}

#[test]
fn an_unknown_driver_or_output_in_execute_is_refused() {
    let files = with_file(
        "types/widget.yaml",
        &minimal_type(
            r#"execute:
  - driver: helm
  - driver: gitops
    outputs: [k8s-namespace/namespace.yaml.j2, nope]
  - driver: gitops
    outputs: []
  - driver: gitops
    message: "{{ broken"
"#,
        ),
    );
    let errors = triples(&errors_of(&files));
    let file = "types/widget.yaml";
    assert_eq!(errors.len(), 4, "{errors:#?}");
    assert_eq!(
        errors[0],
        err(
            file,
            "execute[0].driver",
            r#"unknown driver "helm"; the drivers are gitops, command, pipeline"#
        )
    );
    assert_eq!(
        errors[1],
        err(
            file,
            "execute[1].outputs[1]",
            r#"no output is named "nope"; the outputs are "k8s-namespace/namespace.yaml.j2""#
        )
    );
    assert_eq!(
        errors[2],
        err(
            file,
            "execute[2].outputs",
            "names no output; leave it out to commit every output"
        )
    );
    assert_eq!(errors[3].1, "execute[3].message");
    assert!(
        errors[3].2.starts_with("invalid template"),
        "{:?}",
        errors[3]
    );
}

#[test]
fn an_empty_execute_and_duplicate_output_names_are_refused() {
    let files = with_file(
        "types/widget.yaml",
        &minimal_type(
            r#"  - { path: "w/{{ name }}-2.yaml", template: k8s-namespace/namespace.yaml.j2 }
execute: []
"#,
        ),
    );
    let errors = triples(&errors_of(&files));
    let file = "types/widget.yaml";
    assert_eq!(
        errors,
        [
            err(
                file,
                "execute",
                "needs at least one step; leave `execute` out to commit every output in one gitops step"
            ),
            err(
                file,
                "outputs[1].name",
                r#"another output is already named "k8s-namespace/namespace.yaml.j2"; give each output its own `name`"#
            ),
        ]
    );
}

#[test]
fn a_command_step_is_read_with_its_arguments_and_environment() {
    let files = with_file(
        "types/widget.yaml",
        &minimal_type(
            r#"execute:
  - driver: gitops
  - driver: command
    program: psql
    args: ["-v", "ON_ERROR_STOP=1", "-f", "w/{{ name }}.yaml"]
    inputs: [k8s-namespace/namespace.yaml.j2]
    env: { PGDATABASE: "{{ name }}" }
    timeout_seconds: 60
"#,
        ),
    );
    let catalog = match Catalog::from_files(&files) {
        Ok(catalog) => catalog,
        Err(errors) => panic!("{errors}"),
    };
    let execute = catalog
        .resource_type("widget")
        .map(|t| t.execute.clone())
        .unwrap_or_default();
    assert_eq!(execute.len(), 2);
    assert_eq!(
        execute[1],
        ExecutionStep::Command(CommandStep {
            program: "psql".into(),
            args: vec![
                "-v".into(),
                "ON_ERROR_STOP=1".into(),
                "-f".into(),
                "w/{{ name }}.yaml".into()
            ],
            inputs: Some(vec!["k8s-namespace/namespace.yaml.j2".into()]),
            env: [("PGDATABASE".to_string(), "{{ name }}".to_string())].into(),
            secret_env: BTreeMap::new(),
            secret_env_scram: BTreeMap::new(),
            timeout_seconds: Some(60),
            postgres_server: None,
            retry_exit_codes: Vec::new(),
        })
    );
}

#[test]
fn a_command_step_is_checked_field_by_field() {
    let files = with_file(
        "types/widget.yaml",
        &minimal_type(
            r#"execute:
  - driver: command
    program: "psql -f x.sql"
    inputs: [nope]
    env: { "1BAD": "x" }
    secret_env: { PASSWORD: name }
    secret_env_scram: { VERIFIER: name, PASSWORD: name }
    timeout_seconds: 0
    retry_exit_codes: [2, 0, 256]
    message: "hi"
  - driver: gitops
    program: psql
"#,
        ),
    );
    let errors = triples(&errors_of(&files));
    let file = "types/widget.yaml";
    assert_eq!(
        errors,
        [
            err(
                file,
                "execute[0].message",
                "is a field of the gitops driver, not of command"
            ),
            err(
                file,
                "execute[0].program",
                r#""psql -f x.sql" must be a plain program name or absolute path, without spaces or templates; give arguments in `args`"#
            ),
            err(
                file,
                "execute[0].inputs[0]",
                r#"no output is named "nope"; the outputs are "k8s-namespace/namespace.yaml.j2""#
            ),
            err(
                file,
                "execute[0].env.1BAD",
                "is not a valid environment variable name (letters, digits and '_', not starting with a digit)"
            ),
            err(
                file,
                "execute[0].secret_env.PASSWORD",
                r#""name" is neither a secret parameter (x-secret: true) nor a generated secret of this type"#
            ),
            err(
                file,
                "execute[0].secret_env_scram.PASSWORD",
                "is also set in `secret_env`; give each variable once"
            ),
            err(
                file,
                "execute[0].secret_env_scram.PASSWORD",
                r#""name" is neither a secret parameter (x-secret: true) nor a generated secret of this type"#
            ),
            err(
                file,
                "execute[0].secret_env_scram.VERIFIER",
                r#""name" is neither a secret parameter (x-secret: true) nor a generated secret of this type"#
            ),
            err(
                file,
                "execute[0].timeout_seconds",
                "must be between 1 and 86400 (a day)"
            ),
            err(
                file,
                "execute[0].retry_exit_codes",
                "must list at most 16 exit statuses from 1 to 255 (0 is success)"
            ),
            err(
                file,
                "execute[1].program",
                "is a field of the command driver, not of gitops"
            ),
        ]
    );
}

#[test]
fn execution_limits_default_and_stay_in_range() {
    let catalog = shipped_catalog();
    for name in ["k8s-namespace", "postgres-database"] {
        let ty = catalog.resource_type(name).expect("shipped");
        assert_eq!(ty.limits, ExecutionLimits::default(), "{name}");
    }
    let files = with_file(
        "types/widget.yaml",
        &minimal_type("execution_limits:\n  max_attempts: 3\n  step_timeout_seconds: 90\n"),
    );
    let catalog = match Catalog::from_files(&files) {
        Ok(catalog) => catalog,
        Err(errors) => panic!("{errors}"),
    };
    assert_eq!(
        catalog.resource_type("widget").map(|t| t.limits),
        Some(ExecutionLimits {
            max_attempts: 3,
            step_timeout_seconds: 90,
        })
    );
    let files = with_file(
        "types/widget.yaml",
        &minimal_type("execution_limits:\n  max_attempts: 0\n  step_timeout_seconds: 86401\n"),
    );
    assert_eq!(
        triples(&errors_of(&files)),
        [
            err(
                "types/widget.yaml",
                "execution_limits.max_attempts",
                "must be from 1 to 25"
            ),
            err(
                "types/widget.yaml",
                "execution_limits.step_timeout_seconds",
                "must be from 1 to 86400 (a day)"
            ),
        ]
    );
    let files = with_file(
        "types/widget.yaml",
        &minimal_type("execution_limits:\n  retries: 3\n"),
    );
    let errors = triples(&errors_of(&files));
    assert!(
        errors
            .iter()
            .any(|(_, _, m)| m.contains("unknown field `retries`")),
        "{errors:?}"
    );
}

/// A header the HTTP client owns (the virtual host, the framing, a proxy's) is
/// refused in `headers` and as the token's header: from a template, a
/// requester's value would pick another host behind the allowed address, the
/// token going with it.
#[test]
fn a_pipeline_step_may_not_set_what_http_owns() {
    for (headers, token_header, field) in [
        (
            r#"{ Host: "{{ resource_name }}.ci" }"#,
            "Authorization",
            "headers.Host",
        ),
        (
            r#"{ "Transfer-Encoding": chunked }"#,
            "Authorization",
            "headers.Transfer-Encoding",
        ),
        (
            r#"{ "X-Forwarded-Host": ci }"#,
            "Authorization",
            "headers.X-Forwarded-Host",
        ),
        (
            r#"{ connection: close }"#,
            "Authorization",
            "headers.connection",
        ),
        ("{}", "Host", "token_header"),
        ("{}", "Content-Length", "token_header"),
        ("{}", "bad header", "token_header"),
        ("{}", "Cookie", "token_header"),
    ] {
        let files = with_file(
            "types/widget.yaml",
            &minimal_type(&format!(
                r#"execute:
  - driver: pipeline
    url: "https://ci.example/dispatch"
    headers: {headers}
    token: ci
    token_header: "{token_header}"
    status_url: "{{{{ location }}}}"
    status_pointer: /status
    success: [success]
    failure: [failure]
"#
            )),
        );
        let errors = triples(&errors_of(&files));
        let path = format!("execute[0].{field}");
        assert!(
            errors.len() == 1 && errors[0].1 == path,
            "{headers} / {token_header}: {errors:?}"
        );
    }
}

#[test]
fn a_pipeline_step_is_checked_field_by_field() {
    let files = with_file(
        "types/widget.yaml",
        &minimal_type(
            r#"execute:
  - driver: pipeline
    method: DELETE
    url: "ftp://ci"
    headers: { Authorization: "Bearer abc", "bad header": x }
    token: "{{ secret }}"
    status_pointer: status
    success: []
    failure: [done]
    deadline_seconds: 0
    program: psql
"#,
        ),
    );
    let errors = triples(&errors_of(&files));
    let file = "types/widget.yaml";
    assert_eq!(
        errors,
        [
            err(
                file,
                "execute[0].program",
                "is a field of the command driver, not of pipeline"
            ),
            err(
                file,
                "execute[0].method",
                r#""DELETE" is not one of POST, PUT, PATCH, GET"#
            ),
            err(
                file,
                "execute[0].url",
                r#""ftp://ci" is not a URL starting with http:// or https://"#
            ),
            err(
                file,
                "execute[0].headers.Authorization",
                "is set by the driver"
            ),
            err(
                file,
                "execute[0].headers.bad header",
                "is not a valid HTTP header name"
            ),
            err(
                file,
                "execute[0].token",
                "names a token of the server's --pipeline-tokens setting: a plain name, never the token itself"
            ),
            err(
                file,
                "execute[0].status_url",
                r#"is required: a template over the trigger's `answer` (its JSON) or `location` (its Location header) giving the URL to poll, e.g. "{{ answer.run_url }}" or "{{ location }}""#
            ),
            err(
                file,
                "execute[0].status_pointer",
                "is required: a JSON pointer into the status answer, starting with '/', e.g. /status"
            ),
            err(
                file,
                "execute[0].success",
                "is required: the status values that mean the run succeeded, e.g. [success]"
            ),
            err(
                file,
                "execute[0].deadline_seconds",
                "must be between 1 and 86400"
            ),
        ]
    );
}

#[test]
fn generated_secrets_are_named_apart_from_parameters_and_sized() {
    let files = with_file(
        "types/widget.yaml",
        &minimal_type(
            r#"generated_secrets:
  - name: owner_password
    title: Owner password
  - name: owner_password
    title: Again
  - name: name
    title: Clash
  - name: "1st"
    title: ""
    length: 8
execute:
  - driver: command
    program: psql
    postgres_server: "{{ team }}"
    secret_env: { OWNER_PASSWORD: owner_password, OTHER: nope }
"#,
        ),
    );
    let errors = triples(&errors_of(&files));
    let file = "types/widget.yaml";
    assert_eq!(
        errors,
        [
            err(
                file,
                "generated_secrets[1].name",
                r#""owner_password" is generated twice"#
            ),
            err(
                file,
                "generated_secrets[2].name",
                r#""name" is also a parameter; a generated secret needs its own name"#
            ),
            err(
                file,
                "generated_secrets[3].name",
                r#""1st" must be letters, digits and '_', starting with a letter"#
            ),
            err(
                file,
                "generated_secrets[3].title",
                "must not be empty: the requester sees it"
            ),
            err(
                file,
                "generated_secrets[3].length",
                "must be from 16 to 128 characters"
            ),
            err(
                file,
                "execute[0].secret_env.OTHER",
                r#""nope" is neither a secret parameter (x-secret: true) nor a generated secret of this type"#
            ),
            err(
                file,
                "execute[0].postgres_server",
                r#""{{ team }}" is not a server name of the settings (letters, digits, '-' and '_')"#
            ),
        ]
    );
}

#[test]
fn a_command_cannot_choose_its_loader_or_redirect_the_admin_connection() {
    let files = with_file(
        "types/widget.yaml",
        &minimal_type(
            r#"execute:
  - driver: command
    program: psql
    postgres_server: shared
    env: { PGHOST: "{{ name }}", PGDATABASE: "{{ name }}", LD_PRELOAD: /tmp/x.so, PATH: /tmp, PGCHANNELBINDING: disable, PGSSLMINPROTOCOLVERSION: TLSv1, PGSSLNEGOTIATION: direct, PGSYSCONFDIR: /tmp, PGAPPNAME: x, SLIPWAY_STEP_RUN: mine, PSQLRC: /tmp/rc, PAGER: less }
    secret_env: { PGPASSWORD: secret }
"#,
        ),
    );
    let mut fields: Vec<String> = errors_of(&files).into_iter().map(|e| e.path).collect();
    fields.dedup();
    assert_eq!(
        fields,
        [
            "execute[0].env.LD_PRELOAD",
            "execute[0].env.PAGER",
            "execute[0].env.PATH",
            "execute[0].env.PGAPPNAME",
            "execute[0].env.PGCHANNELBINDING",
            "execute[0].env.PGHOST",
            "execute[0].env.PGSSLMINPROTOCOLVERSION",
            "execute[0].env.PGSSLNEGOTIATION",
            "execute[0].env.PGSYSCONFDIR",
            "execute[0].env.PSQLRC",
            "execute[0].env.SLIPWAY_STEP_RUN",
            "execute[0].secret_env.PGPASSWORD",
        ],
        "PGDATABASE stays the step's own"
    );
}

#[test]
fn a_postgres_check_needs_its_connection_and_plain_sql() {
    let files = with_file(
        "types/widget.yaml",
        &minimal_type(
            r#"checks:
  - kind: postgres
    server: shared
    database: "{{ name }}"
    user: "{{ name }}"
    password_secret: nope
    query: "SELECT '{{ name }}'"
    url: "http://x"
  - kind: postgres
    server: shared
    database: db
    user: u
    password_secret: nope
    query: "SELECT 1; DROP TABLE t"
    deadline_seconds: 0
  - kind: tcp
    address: "db:5432"
    expect: "1"
"#,
        ),
    );
    let errors = triples(&errors_of(&files));
    let file = "types/widget.yaml";
    assert_eq!(
        errors,
        [
            err(
                file,
                "checks[0].url",
                "is a field of http checks, not of postgres"
            ),
            err(
                file,
                "checks[0].password_secret",
                r#""nope" is neither a secret parameter nor a generated secret of this type"#
            ),
            err(
                file,
                "checks[0].query",
                "is plain SQL, not a template: compare with `expect`, which may be one"
            ),
            err(
                file,
                "checks[1].password_secret",
                r#""nope" is neither a secret parameter nor a generated secret of this type"#
            ),
            err(
                file,
                "checks[1].query",
                "must be one SQL statement, without ';'"
            ),
            err(
                file,
                "checks[1].deadline_seconds",
                "must be between 1 and 3600 (an hour)"
            ),
            err(
                file,
                "checks[2].expect",
                "is a field of postgres checks, not of tcp"
            ),
        ]
    );
}

#[test]
fn the_shipped_shared_database_generates_its_owner_password() {
    let catalog = shipped_catalog();
    let ty = catalog
        .resource_type("shared-database")
        .expect("the shipped catalog has shared-database");
    assert_eq!(ty.generated_secrets.len(), 1);
    assert_eq!(ty.generated_secrets[0].name, "owner_password");
    assert!(ty.has_secret_value("owner_password"));
    assert!(
        !ty.fields().iter().any(|f| f.name == "owner_password"),
        "never a form field"
    );
    assert!(matches!(
        &ty.checks[0].kind,
        CheckKind::Postgres { server, password_secret, .. } if server == "shared" && password_secret == "owner_password"
    ));
}

/// A widget with one action, `extra_action` appended to its declaration.
fn widget_with_actions(actions: &str) -> Vec<SourceFile> {
    with_file(
        "types/widget.yaml",
        &with_team_required(&minimal_type(&format!(
            "owner_param: team\nactions:\n{actions}"
        ))),
    )
}

fn action_errors(actions: &str) -> Vec<(String, String, String)> {
    triples(&errors_of(&widget_with_actions(actions)))
}

#[test]
fn shipped_types_declare_their_day_two_actions() {
    let catalog = shipped_catalog();
    let names = |t: &str| -> Vec<String> {
        catalog
            .resource_type(t)
            .map(|t| t.actions.iter().map(|a| a.name.clone()).collect())
            .unwrap_or_default()
    };
    assert_eq!(
        names("postgres-database"),
        [
            "scale",
            "upgrade",
            "backup",
            "restore",
            "decommission",
            "upgrade-templates"
        ]
    );
    assert_eq!(
        names("k8s-namespace"),
        ["resize", "set-admins", "decommission", "upgrade-templates"]
    );
    let Some(decommission) = catalog.request_type("k8s-namespace", Some("decommission")) else {
        panic!("the decommission action is loaded");
    };
    assert_eq!(decommission.outputs.len(), 0);
    assert_eq!(decommission.removes.len(), 3, "every output is removed");
    assert_eq!(decommission.checks.len(), 3, "one removal check per file");
    assert!(decommission.quota.is_empty());
    let Some(scale) = catalog.request_type("postgres-database", Some("scale")) else {
        panic!("the scale action is loaded");
    };
    assert_eq!(
        scale.outputs.len(),
        1,
        "scale re-renders the type's outputs"
    );
    assert_eq!(scale.requires.len(), 1, "the namespace is still required");
    assert!(scale.has_param("name") && scale.has_param("storage_gb"));
    assert!(
        catalog
            .request_type("postgres-database", Some("nope"))
            .is_none()
    );
}

#[test]
fn an_action_is_loaded_from_yaml_alone() {
    let files = widget_with_actions(
        r#"  - name: grow
    title: Grow
    description: Make it bigger.
    parameters:
      type: object
      additionalProperties: false
      required: [size]
      properties:
        size: { type: integer, minimum: 2, maximum: 9 }
        reason: { type: string, maxLength: 40 }
    review: { approvers: { role: platform }, auto_approve: { when: "size < 3" } }
"#,
    );
    let catalog = Catalog::from_files(&files).unwrap_or_else(|e| panic!("{e}"));
    let Some(widget) = catalog.resource_type("widget") else {
        panic!("widget is loaded")
    };
    let Some(grow) = widget.action("grow") else {
        panic!("grow is loaded")
    };
    assert_eq!(grow.param_names(), ["size", "reason"]);
    assert_eq!(grow.request_type.review.approver_role, "platform");
    assert_eq!(grow.request_type.title, "Widget: Grow");
    let size = grow
        .request_type
        .parameters
        .pointer("/properties/size/minimum");
    assert_eq!(
        size,
        Some(&json!(2)),
        "the action's rule replaces the type's"
    );
    assert!(grow.request_type.has_param("reason"));
    assert_eq!(grow.form_type().fields().len(), 2);
}

#[test]
fn malformed_actions_are_reported_at_their_path() {
    let errors = action_errors(
        r#"  - name: Grow_Big
    title: ""
    description: x
  - name: shrink
    title: Shrink
    description: x
    outputs:
      - { path: "w/{{ name }}.yaml", template: widget/missing.j2 }
    execute:
      - { driver: gitops, outputs: [nope] }
  - name: move
    title: Move
    description: x
    parameters:
      type: object
      properties:
        team: { type: string, x-dictionary: teams }
        size: { type: integer, minimum: "big" }
    review: { approvers: { role: overlord } }
  - name: shrink
    title: Shrink again
    description: x
"#,
    );
    let file = "types/widget.yaml";
    let expected = [
        err(
            file,
            "actions[0].name",
            "\"Grow_Big\" is not an action name: lowercase letters, digits and '-', starting with a letter and not ending with '-', at most 32 characters",
        ),
        err(file, "actions[0].title", "must not be empty"),
        err(
            file,
            "actions[1].execute[0].outputs[0]",
            "no output is named \"nope\"; the outputs are \"widget/missing.j2\"",
        ),
        err(
            file,
            "actions[1].outputs[0].template",
            "no file templates/widget/missing.j2 in the catalog",
        ),
        err(
            file,
            "actions[3].name",
            "another action is already named \"shrink\"",
        ),
    ];
    for e in &expected {
        assert!(errors.contains(e), "missing {e:?} in {errors:#?}");
    }
    let moving: Vec<&(String, String, String)> = errors
        .iter()
        .filter(|(_, path, _)| path.starts_with("actions[2]"))
        .collect();
    assert!(
        moving
            .iter()
            .any(|(_, p, m)| p == "actions[2].parameters.properties.team"
                && m == "names the asset's owning team, which an action cannot change"),
        "{moving:#?}"
    );
    assert!(
        moving
            .iter()
            .any(|(_, p, _)| p.starts_with("actions[2].parameters.properties.size")),
        "{moving:#?}"
    );
    assert!(
        moving
            .iter()
            .any(|(_, p, m)| p == "actions[2].review.approvers.role" && m.contains("overlord")),
        "{moving:#?}"
    );
    let reported = errors.iter().filter(|(_, p, m)| {
        p.starts_with("actions[2].parameters.properties.size")
            && m == &moving
                .iter()
                .find(|(_, q, _)| q.starts_with("actions[2].parameters.properties.size"))
                .map(|(_, _, m)| m.clone())
                .unwrap_or_default()
    });
    assert_eq!(reported.count(), 1, "an action's problem is reported once");
}

#[test]
fn oversized_action_declarations_are_refused() {
    let many: String = (0..=TypeAction::MAX_PER_TYPE)
        .map(|i| format!("  - {{ name: a{i}, title: A, description: x }}\n"))
        .collect();
    assert_eq!(
        action_errors(&many),
        [err(
            "types/widget.yaml",
            "actions",
            "declares 17 actions; a type may declare at most 16"
        )]
    );
    let long_title = "t".repeat(TypeAction::MAX_TITLE + 1);
    let long_name = format!("a{}", "b".repeat(TypeAction::MAX_NAME));
    let errors = action_errors(&format!(
        "  - {{ name: {long_name}, title: {long_title}, description: x }}\n"
    ));
    assert!(
        errors.iter().any(|(_, p, _)| p == "actions[0].name"),
        "{errors:?}"
    );
    assert!(
        errors.contains(&err(
            "types/widget.yaml",
            "actions[0].title",
            "is longer than 60 characters"
        )),
        "{errors:?}"
    );
    let unknown = action_errors("  - { name: a, title: A, description: x, colour: red }\n");
    assert_eq!(unknown.len(), 1, "{unknown:?}");
    assert!(
        unknown[0].2.contains("unknown field `colour`"),
        "{unknown:?}"
    );
}

#[test]
fn action_names_are_url_safe() {
    for good in ["scale", "set-admins", "v2", "a"] {
        assert!(TypeAction::is_valid_name(good), "{good}");
    }
    for bad in ["", "Scale", "-a", "a-", "a_b", "a b", "1a", &"a".repeat(33)] {
        assert!(!TypeAction::is_valid_name(bad), "{bad}");
    }
}

fn version_of(files: &[SourceFile], type_name: &str) -> String {
    match Catalog::from_files(files) {
        Ok(catalog) => catalog
            .resource_type(type_name)
            .map(|t| t.version.clone())
            .unwrap_or_default(),
        Err(errors) => panic!("the catalog does not load:\n{errors}"),
    }
}

#[test]
fn a_type_version_follows_its_file_and_the_templates_it_uses() {
    let shipped = shipped_catalog();
    let ns = "k8s-namespace";
    let version = shipped.resource_type(ns).map(|t| t.version.clone());
    assert_eq!(version.as_ref().map(String::len), Some(12));
    assert_ne!(
        version,
        shipped
            .resource_type("postgres-database")
            .map(|t| t.version.clone())
    );
    // Every action's request type carries the type's version.
    for ty in shipped.types.values() {
        assert!(
            ty.actions
                .iter()
                .all(|a| a.request_type.version == ty.version)
        );
    }
    let template = "templates/k8s-namespace/namespace.yaml.j2";
    let changed = shipped_text(template) + "# a new line\n";
    assert_ne!(
        Some(version_of(&with_file(template, &changed), ns)),
        version
    );
    let retitled = shipped_text("types/k8s-namespace.yaml").replacen("title:", "title: New", 1);
    assert_ne!(
        Some(version_of(
            &with_file("types/k8s-namespace.yaml", &retitled),
            ns
        )),
        version
    );
    // Another type's template, or a template nobody uses, leaves it alone.
    let other = "templates/postgres-database/cluster.yaml.j2";
    let other_changed = shipped_text(other) + "# elsewhere\n";
    assert_eq!(
        Some(version_of(&with_file(other, &other_changed), ns)),
        version
    );
    assert_eq!(
        Some(version_of(&with_file("templates/unused.j2", "x"), ns)),
        version
    );
}

/// A type's version hashes only the templates its outputs name, which holds
/// because a template cannot take in another: the engine is built without
/// `include`, `import` and `extends`, and a catalog using them does not load.
#[test]
fn a_template_cannot_take_in_another() {
    let template = "templates/k8s-namespace/namespace.yaml.j2";
    for tag in [
        "{% include 'common/labels.j2' %}",
        "{% import 'common/labels.j2' as labels %}",
        "{% from 'common/labels.j2' import team %}",
        "{% extends 'common/labels.j2' %}",
    ] {
        let mut files = with_file(template, &(shipped_text(template) + tag + "\n"));
        files.push(SourceFile {
            path: "templates/common/labels.j2".into(),
            content: "# labels\n".into(),
        });
        let errors = errors_of(&files);
        assert!(
            errors
                .iter()
                .any(|e| e.file == template && e.message.contains("unknown statement")),
            "{tag}: {errors:?}"
        );
    }
}

#[test]
fn types_deploying_files_get_the_template_upgrade_and_none_may_declare_it() {
    let shipped = shipped_catalog();
    let upgradable = |name: &str| {
        shipped
            .resource_type(name)
            .and_then(|t| t.action(TypeAction::UPGRADE))
            .is_some()
    };
    assert!(upgradable("k8s-namespace") && upgradable("postgres-database"));
    // Its own command runs SQL: there is no deployed file to compare with.
    assert!(!upgradable("shared-database"));
    for ty in shipped.types.values() {
        let upgrade = ty.action(TypeAction::UPGRADE);
        if let Some(upgrade) = upgrade {
            assert!(!upgrade.retires && upgrade.param_names().is_empty());
            assert_eq!(upgrade.request_type.outputs, ty.outputs);
            assert_eq!(upgrade.request_type.review, ty.review);
        }
    }
    let errors =
        action_errors("  - name: upgrade-templates\n    title: Mine\n    description: d\n");
    assert!(
        errors
            .iter()
            .any(|(_, path, message)| path == "actions[0].name"
                && message.contains("Slipway's own action")),
        "{errors:?}"
    );
}

#[test]
fn action_rules_are_checked_where_they_are_written() {
    let errors = action_errors(
        "  - name: grow\n    title: Grow\n    description: d\n    parameters:\n      type: object\n      properties:\n        size: { type: integer }\n    rules:\n      - when: \"size <\"\n        field: nope\n        message: \"{{ unclosed\"\n      - when: \"true\"\n        message: \"\"\n",
    );
    let paths: Vec<&str> = errors.iter().map(|(_, p, _)| p.as_str()).collect();
    for wanted in [
        "actions[0].rules[0].when",
        "actions[0].rules[0].field",
        "actions[0].rules[0].message",
        "actions[0].rules[1].message",
    ] {
        assert!(paths.contains(&wanted), "{wanted} in {errors:?}");
    }
    let many: String = (0..17)
        .map(|_| "      - when: \"true\"\n        message: no\n")
        .collect();
    let errors = action_errors(&format!(
        "  - name: grow\n    title: Grow\n    description: d\n    rules:\n{many}"
    ));
    assert!(
        errors
            .iter()
            .any(|(_, p, m)| p == "actions[0].rules" && m.contains("at most 16")),
        "{errors:?}"
    );
}

#[test]
fn unique_by_names_the_actions_own_parameters_once() {
    let errors = action_errors(
        "  - name: snap\n    title: Snap\n    description: d\n    parameters:\n      type: object\n      properties:\n        label: { type: string }\n        token: { type: string, x-secret: true }\n    unique_by: [label, nope, label, token]\n",
    );
    let found: Vec<(&str, &str)> = errors
        .iter()
        .map(|(_, p, m)| (p.as_str(), m.as_str()))
        .collect();
    assert!(
        found.iter().any(|(p, m)| *p == "actions[0].unique_by[1]"
            && m.contains("\"nope\" is not a parameter of the action")),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|(p, m)| *p == "actions[0].unique_by[2]" && m.contains("named twice")),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|(p, m)| *p == "actions[0].unique_by[3]" && m.contains("is a secret")),
        "{found:?}"
    );
    assert_eq!(found.len(), 3, "{found:?}");
}

#[test]
fn refers_to_names_another_action_and_parameters_both_take() {
    let snap = "  - name: snap\n    title: Snap\n    description: d\n    parameters:\n      type: object\n      properties:\n        label: { type: string }\n";
    let back = |refers: &str| {
        format!(
            "{snap}  - name: back\n    title: Back\n    description: d\n    parameters:\n      type: object\n      required: [label]\n      properties:\n        label: {{ type: string }}\n        other: {{ type: string }}\n        token: {{ type: string, x-secret: true }}\n    refers_to: {refers}\n"
        )
    };
    let found = |refers: &str| -> Vec<(String, String)> {
        action_errors(&back(refers))
            .into_iter()
            .map(|(_, p, m)| (p, m))
            .collect()
    };
    let loaded = Catalog::from_files(&widget_with_actions(&back("{ action: snap, by: [label] }")));
    let reference = loaded
        .ok()
        .and_then(|c| c.resource_type("widget")?.action("back")?.refers_to.clone());
    assert_eq!(
        reference,
        Some(ActionReference {
            action: "snap".into(),
            by: vec!["label".into()]
        })
    );
    let wrong = found("{ action: nope, by: [label] }");
    assert!(
        wrong.iter().any(|(p, m)| p == "actions[1].refers_to.action"
            && m.contains("\"nope\" is not an action of the type (it has snap, back)")),
        "{wrong:?}"
    );
    let itself = found("{ action: back, by: [label] }");
    assert!(
        itself
            .iter()
            .any(|(p, m)| p == "actions[1].refers_to.action" && m.contains("cannot be referred to")),
        "{itself:?}"
    );
    let by = found("{ action: snap, by: [other, token] }");
    assert!(
        by.iter().any(|(p, m)| p == "actions[1].refers_to.by[0]"
            && m.contains("not a parameter of both this action and snap")),
        "{by:?}"
    );
    assert!(
        by.iter().any(|(p, _)| p == "actions[1].refers_to.by[1]"),
        "{by:?}"
    );
    let optional = action_errors(
        &back("{ action: snap, by: [label] }").replace("      required: [label]\n", ""),
    );
    assert!(
        optional
            .iter()
            .any(|(_, p, m)| p == "actions[1].refers_to.by[0]" && m.contains("required")),
        "{optional:?}"
    );
    let none = found("{ action: snap, by: [] }");
    assert!(
        none.iter().any(|(p, _)| p == "actions[1].refers_to.by"),
        "{none:?}"
    );
}

#[test]
fn a_type_file_name_that_is_no_type_name_is_refused() {
    for stem in ["Widget", "wid\"get", "wid get", "1widget", "wid.get"] {
        let text = minimal_type("").replacen("name: widget", &format!("name: {stem:?}"), 1);
        let errors = errors_of(&with_file(&format!("types/{stem}.yaml"), &text));
        assert!(
            errors
                .iter()
                .any(|e| e.message.contains("is not a type name") && e.path.is_empty()),
            "{stem}: {errors:?}"
        );
    }
}

#[test]
fn an_owner_parameter_or_quota_parameter_must_be_required() {
    let f = "types/widget.yaml";
    let optional_owner = minimal_type("owner_param: team\n");
    let errors = errors_of(&with_file(f, &optional_owner));
    assert_eq!(
        triples(&errors),
        [err(
            f,
            "owner_param",
            "the parameter \"team\" must be listed in parameters.required: a request without \
             a team would belong to no team and pass the team boundary"
        )]
    );

    let misspelled =
        minimal_type("owner_param: team\n").replace("required: [name]", "required: [name, taem]");
    let errors = errors_of(&with_file(f, &misspelled));
    let got = triples(&errors);
    assert!(
        got.contains(&err(
            f,
            "parameters.required[1]",
            "names \"taem\", which is not a property of the parameters"
        )),
        "{got:#?}"
    );
    assert!(
        got.iter().any(|(_, path, _)| path == "owner_param"),
        "{got:#?}"
    );

    let optional_scope_and_sum = minimal_type(
        "quota:\n  - { per: [team], max_count: 2 }\n  - { per: [], sum: size, max: 10 }\n",
    )
    .replace(
        "size: { type: integer, default: 1 }",
        "size: { type: integer, minimum: 0, maximum: 9 }",
    );
    let errors = errors_of(&with_file(f, &optional_scope_and_sum));
    assert_eq!(
        triples(&errors),
        [
            err(
                f,
                "quota[0].per[0]",
                "parameter \"team\" scopes the quota and must be listed in parameters.required: \
                 a request without it would escape the quota"
            ),
            err(
                f,
                "quota[1].sum",
                "parameter \"size\" is summed by the quota and must be listed in parameters.required: \
                 a request without it would escape the quota"
            ),
        ]
    );
}

#[test]
fn a_summed_parameter_declares_bounds_a_sum_can_count() {
    let f = "types/widget.yaml";
    let summed = |size: &str| {
        minimal_type("quota:\n  - { per: [], sum: size, max: 10 }\n")
            .replace("required: [name]", "required: [name, size]")
            .replace("size: { type: integer, default: 1 }", size)
    };
    let bounded = summed("size: { type: integer, minimum: 0, maximum: 9 }");
    assert!(Catalog::from_files(&with_file(f, &bounded)).is_ok());
    for unbounded in [
        "size: { type: integer }",
        "size: { type: integer, minimum: 0 }",
        "size: { type: integer, maximum: 9 }",
        "size: { type: integer, minimum: -1, maximum: 9 }",
        "size: { type: integer, minimum: 0, maximum: 9223372036854775808 }",
        "size: { type: integer, minimum: 0, maximum: 1e300 }",
    ] {
        let errors = errors_of(&with_file(f, &summed(unbounded)));
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["quota[0].sum"], "{unbounded}: {errors:?}");
        assert!(
            errors[0]
                .message
                .contains("needs a whole-number `minimum` of 0 or more"),
            "{errors:?}"
        );
    }
}

#[test]
fn enum_titles_are_texts_one_per_enum_value() {
    let f = "types/widget.yaml";
    let with_flavour = |flavour: &str| {
        minimal_type("").replace(
            "    team: {",
            &format!("    flavour: {flavour}\n    team: {{"),
        )
    };
    let lined_up = with_flavour(r#"{ type: string, enum: [a, b], x-enum-titles: ["A", "B"] }"#);
    assert!(Catalog::from_files(&with_file(f, &lined_up)).is_ok());
    for (flavour, message) in [
        (
            r#"{ type: string, enum: [a, b], x-enum-titles: ["A"] }"#,
            "has 1 titles for 2 enum values; give one title per value, in order",
        ),
        (
            r#"{ type: string, enum: [a], x-enum-titles: ["A", "B"] }"#,
            "has 2 titles for 1 enum values; give one title per value, in order",
        ),
        (
            r#"{ type: string, enum: [a, b], x-enum-titles: ["A", 2] }"#,
            "must be a list of texts",
        ),
        (
            r#"{ type: string, enum: [a], x-enum-titles: "A" }"#,
            "must be a list of texts",
        ),
        (
            r#"{ type: string, x-enum-titles: ["A"] }"#,
            "needs an `enum` whose values it titles",
        ),
    ] {
        let errors = errors_of(&with_file(f, &with_flavour(flavour)));
        assert_eq!(
            triples(&errors),
            [err(
                f,
                "parameters.properties.flavour.x-enum-titles",
                message
            )],
            "{flavour}"
        );
    }
}

#[test]
fn a_parameter_may_not_take_a_template_name_or_be_no_identifier() {
    let f = "types/widget.yaml";
    let with_property = |name: &str| {
        minimal_type("").replace(
            "    team: {",
            &format!("    {name}: {{ type: string }}\n    team: {{"),
        )
    };
    for reserved in [
        "resource_type",
        "resource_name",
        "requires",
        "current",
        "request_id",
        "revision",
        "requester",
        "run_key",
        "inputs",
    ] {
        let errors = errors_of(&with_file(f, &with_property(reserved)));
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [format!("parameters.properties.{reserved}")],
            "{errors:?}"
        );
        assert!(
            errors[0]
                .message
                .contains("is a name templates are given by Slipway"),
            "{errors:?}"
        );
    }
    for unreadable in ["\"db-size\"", "\"2fa\"", "\"size gb\"", "none", "\"not\""] {
        let errors = errors_of(&with_file(f, &with_property(unreadable)));
        assert_eq!(errors.len(), 1, "{unreadable}: {errors:?}");
        assert!(
            errors[0].message.contains("cannot be read by a template"),
            "{errors:?}"
        );
    }
    let fine = with_property("_internal_note2");
    assert!(Catalog::from_files(&with_file(f, &fine)).is_ok());
}

mod integrity;
