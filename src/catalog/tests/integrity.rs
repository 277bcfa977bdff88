//! Catalogs that load but could never work as written: anchors, requirement
//! circles, marks nothing reads, unchecked formats, limits past what is
//! counted, unknown offering teams and free text written into manifests.

use super::*;
use crate::validate::ParamValidator;

fn widget(extra: &str) -> Vec<SourceFile> {
    with_file("types/widget.yaml", &minimal_type(extra))
}

fn messages_at(errors: &[CatalogError], path: &str) -> Vec<String> {
    errors
        .iter()
        .filter(|e| e.path == path)
        .map(|e| e.message.clone())
        .collect()
}

#[test]
fn anchors_and_aliases_are_refused_in_catalog_files() {
    let anchored = minimal_type("").replace("owner: platform", "owner: &o platform");
    let errors = errors_of(&with_file("types/widget.yaml", &anchored));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].file, "types/widget.yaml");
    assert!(
        errors[0]
            .message
            .starts_with("sets the anchor `&o` (line 4)"),
        "{errors:?}"
    );
    let bomb = "name: teams\ntitle: Teams\nterms:\n  - &t { key: a, title: A }\n  - *t\n";
    let errors = errors_of(&with_file("dictionaries/teams.yaml", bomb));
    assert!(
        errors.iter().any(|e| e.file == "dictionaries/teams.yaml"
            && e.message.starts_with("sets the anchor `&t` (line 4)")),
        "{errors:?}"
    );
}

#[test]
fn requirements_round_a_circle_are_refused_with_the_circle() {
    let requires = |ty: &str| {
        format!("requires:\n  - type: {ty}\n    match: {{ name: \"{{{{ name }}}}\" }}\n")
    };
    let errors = errors_of(&widget(&requires("widget")));
    assert_eq!(
        messages_at(&errors, "requires[0].type"),
        [
            "type widget requires itself: no asset of it could ever be made, as the first \
          would need another to exist already"
        ]
    );

    let mut files = widget(&requires("gadget"));
    files.push(SourceFile {
        path: "types/gadget.yaml".into(),
        content: minimal_type(&requires("widget")).replace("name: widget", "name: gadget"),
    });
    let errors = errors_of(&files);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].file, "types/widget.yaml");
    assert!(
        errors[0]
            .message
            .starts_with("types gadget → widget → gadget require each other"),
        "{errors:?}"
    );
    // A chain that ends is fine: the shipped database requires its namespace.
    assert!(Catalog::from_files(&shipped_files_for_test()).is_ok());
}

fn shipped_files_for_test() -> Vec<SourceFile> {
    crate::test_support::shipped_files()
}

#[test]
fn a_secret_mark_below_a_parameter_is_refused_where_it_stands() {
    let nested = minimal_type("").replace(
        "    size: { type: integer, default: 1 }\n",
        "    size: { type: integer, default: 1 }\n    \
         keys: { type: array, items: { type: string, x-secret: true } }\n",
    );
    let errors = errors_of(&with_file("types/widget.yaml", &nested));
    let found = messages_at(&errors, "parameters.properties.keys.items.x-secret");
    assert_eq!(found.len(), 1, "{errors:?}");
    assert!(
        found[0].contains("read only directly on a parameter"),
        "{found:?}"
    );
}

#[test]
fn formats_are_checked_and_an_unknown_one_is_refused() -> Result<(), String> {
    let with_format = |format: &str| {
        minimal_type("").replace(
            "    size: { type: integer, default: 1 }\n",
            &format!("    size: {{ type: integer, default: 1 }}\n    contact: {{ type: string, format: {format} }}\n"),
        )
    };
    let files = with_file("types/widget.yaml", &with_format("email"));
    let catalog = Catalog::from_files(&files).map_err(|e| e.to_string())?;
    let ty = catalog.resource_type("widget").ok_or("no widget")?;
    let validator = ParamValidator::new(ty)?;
    let errors = validator.check(&json!({ "name": "abc", "contact": "not-an-email" }));
    assert_eq!(
        errors,
        [crate::validate::FieldError::new(
            "contact",
            "must be a valid email"
        )]
    );
    assert!(
        validator
            .check(&json!({ "name": "abc", "contact": "a@example.com" }))
            .is_empty()
    );

    let errors = errors_of(&with_file("types/widget.yaml", &with_format("colour")));
    let found = messages_at(&errors, "parameters.properties.contact.format");
    assert_eq!(found.len(), 1, "{errors:?}");
    assert!(
        found[0].starts_with("\"colour\" is not a format Slipway checks (it checks date,"),
        "{found:?}"
    );
    Ok(())
}

#[test]
fn a_quota_limit_past_64_bits_is_refused() {
    let errors = errors_of(&widget(
        "quota:\n  - per: [name]\n    max_count: 9223372036854775808\n",
    ));
    assert_eq!(
        messages_at(&errors, "quota[0].max_count"),
        ["must be at most 9223372036854775807: usage is counted in 64-bit integers"]
    );
    assert!(
        Catalog::from_files(&widget(
            "quota:\n  - per: [name]\n    max_count: 9223372036854775807\n"
        ))
        .is_ok()
    );
}

#[test]
fn the_offering_team_must_be_a_team_without_an_owner_parameter_too() {
    let unknown = minimal_type("").replace("owner: platform", "owner: platfrom");
    let errors = errors_of(&with_file("types/widget.yaml", &unknown));
    assert_eq!(
        messages_at(&errors, "owner"),
        [
            "\"platfrom\" is not a team of the dictionary \"teams\" (its teams: payments, \
          search, platform, dba): the offering team's reviewers review the type's requests"
        ]
    );
    let files: Vec<SourceFile> = widget("")
        .into_iter()
        .filter(|f| f.path != "dictionaries/teams.yaml")
        .collect();
    // Without a teams dictionary (teams named by the identity provider's
    // groups) there is nothing to check the owner against.
    let errors = Catalog::from_files(&files).err();
    let found = errors
        .as_ref()
        .map(|e| messages_at(&e.0, "owner"))
        .unwrap_or_default();
    assert!(found.is_empty(), "{errors:?}");
}

/// A type whose `note` parameter is written by `template` into `out`.
fn noting(note: &str, template: &str, out: &str) -> Vec<SourceFile> {
    let ty = minimal_type("")
        .replace(
            "    size: { type: integer, default: 1 }\n",
            &format!("    size: {{ type: integer, default: 1 }}\n    note: {note}\n"),
        )
        .replace(
            "  - { path: \"w/{{ name }}.yaml\", template: k8s-namespace/namespace.yaml.j2 }\n",
            &format!("  - {{ path: \"w/{{{{ name }}}}.{out}\", template: widget/w.{out}.j2 }}\n"),
        );
    let mut files = with_file("types/widget.yaml", &ty);
    files.push(SourceFile {
        path: format!("templates/widget/w.{out}.j2"),
        content: template.into(),
    });
    files
}

#[test]
fn free_text_written_into_yaml_or_sql_is_refused() {
    let free = "{ type: string }";
    for (template, out) in [
        ("name: \"{{ note }}\"\n", "yaml"),
        ("{% for n in [note] %}- {{ n }}\n{% endfor %}", "yaml"),
        ("{\"note\": \"{{ note }}\"}\n", "json"),
        ("\\set owner {{ note | tojson }}\n", "sql"),
    ] {
        let errors = errors_of(&noting(free, template, out));
        let found = messages_at(&errors, "parameters.properties.note");
        assert_eq!(found.len(), 1, "{template}: {errors:?}");
        assert!(
            found[0].starts_with(&format!(
                "is free text (no `pattern`, `enum`, `x-dictionary` or plain `format`) and \
                 templates/widget/w.{out}.j2 writes it"
            )),
            "{found:?}"
        );
    }
    for (note, template, out) in [
        (free, "note: {{ note | tojson }}\n", "yaml"),
        (free, "{% if note %}noted: true{% endif %}\n", "yaml"),
        (free, "{{ note }}\n", "txt"),
        (
            "{ type: string, pattern: \"^[a-z]+$\" }",
            "note: \"{{ note }}\"\n",
            "yaml",
        ),
        (
            "{ type: string, enum: [a, b] }",
            "\\set note {{ note }}\n",
            "sql",
        ),
        (
            "{ type: string, format: date }",
            "note: {{ note }}\n",
            "yaml",
        ),
        (
            "{ type: string, minLength: 12, x-secret: true }",
            "ref: {{ note }}\n",
            "yaml",
        ),
    ] {
        let files = noting(note, template, out);
        assert!(Catalog::from_files(&files).is_ok(), "{note} {template}");
    }
}

/// A widget with a `snap` action writing `snap` and a `back` action, which
/// refers to it, writing `back` (both YAML templates).
fn snapping(snap: &str, back: &str) -> Vec<SourceFile> {
    let actions = "actions:\n  - name: snap\n    title: Snap\n    description: d\n    parameters:\n      type: object\n      required: [label]\n      properties:\n        label: { type: string }\n        kind: { type: string, enum: [full, quick] }\n    outputs:\n      - { name: snap, path: \"w/{{ name }}/snap.yaml\", template: widget/snap.yaml.j2 }\n  - name: back\n    title: Back\n    description: d\n    parameters:\n      type: object\n      required: [label]\n      properties:\n        label: { type: string, pattern: \"^[a-z]+$\" }\n    refers_to: { action: snap, by: [label] }\n    outputs:\n      - { name: back, path: \"w/{{ name }}/back.yaml\", template: widget/back.yaml.j2 }\n";
    let mut files = widget(actions);
    for (name, content) in [("snap", snap), ("back", back)] {
        files.push(SourceFile {
            path: format!("templates/widget/{name}.yaml.j2"),
            content: content.into(),
        });
    }
    files
}

#[test]
fn actions_and_what_they_refer_to_are_held_to_the_same() {
    let safe_snap = "label: {{ label | tojson }}\n";
    let errors = errors_of(&snapping("label: \"{{ label }}\"\n", "kind: x\n"));
    let found = messages_at(&errors, "actions[0].parameters.properties.label");
    assert_eq!(found.len(), 1, "{errors:?}");
    assert!(
        found[0].contains("templates/widget/snap.yaml.j2 writes it"),
        "{found:?}"
    );
    // The restore reads the backup's label, free text there, as it is.
    let errors = errors_of(&snapping(safe_snap, "from: {{ referred.label }}\n"));
    let found = messages_at(&errors, "actions[0].parameters.properties.label");
    assert_eq!(found.len(), 1, "{errors:?}");
    assert!(
        found[0].contains("templates/widget/back.yaml.j2 writes it as `referred.label`")
            && found[0].contains("`{{ referred.label | tojson }}`"),
        "{found:?}"
    );
    for back in [
        "from: {{ referred.label | tojson }}\nkind: {{ referred.kind }}\n",
        "{% if referred.label %}labelled: true{% endif %}\n",
        "all: {{ referred | tojson }}\nown: {{ label }}\n",
    ] {
        let files = snapping(safe_snap, back);
        assert!(Catalog::from_files(&files).is_ok(), "{back}");
    }
    for back in [
        "from: {{ referred['label'] }}\n",
        "{% set r = referred %}from: {{ r.label }}\n",
    ] {
        let errors = errors_of(&snapping(safe_snap, back));
        let found = messages_at(&errors, "actions[0].parameters.properties.label");
        assert_eq!(found.len(), 1, "{back}: {errors:?}");
    }
}

#[test]
fn a_pattern_must_keep_a_value_to_what_its_file_may_hold() {
    for (note, template, out, says) in [
        (
            "{ type: string, pattern: \"[a-z]+\" }",
            "note: \"{{ note }}\"\n",
            "yaml",
            "does not hold the whole value",
        ),
        (
            "{ type: string, pattern: \"^[^\\\"]*$\" }",
            "note: \"{{ note }}\"\n",
            "yaml",
            "lets through",
        ),
        (
            "{ type: string, pattern: \"^[a-z ]+$\" }",
            "CREATE ROLE {{ note }};\n",
            "sql",
            "lets through ' '",
        ),
        (
            "{ type: string }",
            "echo {{ note | tojson }}\n",
            "sh",
            "into a script or settings file",
        ),
        (
            "{ type: string, pattern: \"^[a-z$(){}]+$\" }",
            "name = \"{{ note }}\"\n",
            "tf",
            "lets through '$'",
        ),
        (
            "{ type: string, pattern: \"^-?[a-z]+$\" }",
            "tool {{ note }}\n",
            "sh",
            "start with '-'",
        ),
    ] {
        let errors = errors_of(&noting(note, template, out));
        let found = messages_at(&errors, "parameters.properties.note");
        assert_eq!(found.len(), 1, "{note} {out}: {errors:?}");
        assert!(found[0].contains(says), "{note} {out}: {found:?}");
    }
    for (note, template, out) in [
        ("{ type: string }", "name = {{ note | tojson }}\n", "toml"),
        (
            "{ type: string, pattern: \"^[a-z][a-z0-9-]*$\" }",
            "resource \"x\" \"{{ note }}\" {}\n",
            "tf",
        ),
        ("{ type: string }", "Note: {{ note }}\n", "md"),
    ] {
        let files = noting(note, template, out);
        assert!(Catalog::from_files(&files).is_ok(), "{note} {out}");
    }
}
