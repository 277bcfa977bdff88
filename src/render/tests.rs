use serde_json::{Value, json};

use super::*;
use crate::catalog::{CheckKind, CheckSpec, ResourceType};
use crate::test_support::shipped_catalog;

fn ty(name: &str) -> ResourceType {
    match shipped_catalog().resource_type(name) {
        Some(t) => t.clone(),
        None => panic!("{name} missing"),
    }
}

fn ns_params() -> Value {
    json!({"name": "checkout", "team": "payments", "environment": "prod",
           "cpu_limit": 8, "memory_limit_gi": 16, "admins": ["alice", "bob"]})
}

fn pg_params(ha: bool) -> Value {
    json!({"name": "orders", "team": "payments", "environment": "prod", "size": "medium",
           "storage_gb": 50, "version": "17", "high_availability": ha, "extensions": ["pgcrypto"]})
}

fn render_ok(t: &str, params: &Value, name: &str) -> ChangeSet {
    let requires: Vec<String> = ty(t)
        .requires
        .iter()
        .map(|_| "payments-checkout-prod".to_string())
        .collect();
    match change_set(&shipped_catalog(), &ty(t), params, name, &requires) {
        Ok(set) => set,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn namespace_renders_three_sorted_files() {
    let set = render_ok("k8s-namespace", &ns_params(), "payments-checkout-prod");
    let paths: Vec<&str> = set.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "prod/payments/k8s-namespace/checkout/namespace.yaml",
            "prod/payments/k8s-namespace/checkout/resourcequota.yaml",
            "prod/payments/k8s-namespace/checkout/rolebinding.yaml",
        ]
    );
    assert!(
        set.files[0]
            .content
            .contains("  name: payments-checkout-prod\n")
    );
    assert!(
        set.files[0]
            .content
            .contains("slipway.io/resource-type: k8s-namespace")
    );
    assert!(set.files[1].content.contains("limits.memory: 16Gi"));
    // Quoted: an admin called `no` or `null` is still a name, not YAML's false.
    assert!(set.files[2].content.contains("    name: \"alice\"\n"));
    assert!(set.files[2].content.contains("    name: \"bob\"\n"));
}

#[test]
fn rendered_files_are_valid_yaml() {
    let sets = [
        render_ok("k8s-namespace", &ns_params(), "payments-checkout-prod"),
        render_ok(
            "postgres-database",
            &pg_params(true),
            "payments-orders-prod",
        ),
    ];
    for file in sets.iter().flat_map(|s| s.files.iter()) {
        let parsed: Result<serde_json::Value, _> = serde_norway::from_str(&file.content);
        assert!(
            parsed.is_ok(),
            "{}:\n{}\n{parsed:?}",
            file.path,
            file.content
        );
    }
}

#[test]
fn cnpg_cluster_follows_the_parameters() {
    let set = render_ok(
        "postgres-database",
        &pg_params(true),
        "payments-orders-prod",
    );
    assert_eq!(set.files.len(), 1);
    let parsed: Value = serde_norway::from_str(&set.files[0].content).unwrap_or_default();
    assert_eq!(parsed["apiVersion"], "postgresql.cnpg.io/v1");
    assert_eq!(parsed["kind"], "Cluster");
    // The namespace is the asset the pre-check found, not a guess from the parameters.
    assert_eq!(parsed["metadata"]["namespace"], "payments-checkout-prod");
    assert_eq!(parsed["spec"]["instances"], 3);
    assert_eq!(parsed["spec"]["storage"]["size"], "50Gi");
    assert_eq!(
        parsed["spec"]["imageName"],
        "ghcr.io/cloudnative-pg/postgresql:17"
    );
    assert_eq!(parsed["spec"]["resources"]["limits"]["memory"], "8Gi");
    let single = render_ok(
        "postgres-database",
        &pg_params(false),
        "payments-orders-prod",
    );
    let parsed: Value = serde_norway::from_str(&single.files[0].content).unwrap_or_default();
    assert_eq!(parsed["spec"]["instances"], 1);
}

#[test]
fn optional_parameters_may_be_absent() {
    let mut params = ns_params();
    if let Some(map) = params.as_object_mut() {
        map.remove("admins");
    }
    let set = render_ok("k8s-namespace", &params, "payments-checkout-prod");
    assert!(set.files[2].content.contains("subjects: []"));
}

#[test]
fn hash_is_stable_and_content_sensitive() {
    let a = render_ok("k8s-namespace", &ns_params(), "payments-checkout-prod");
    let b = render_ok("k8s-namespace", &ns_params(), "payments-checkout-prod");
    assert_eq!(a.hash(), b.hash());
    assert_eq!(a.hash().len(), 64);
    let mut reversed = a.clone();
    reversed.files.reverse();
    assert_eq!(
        reversed.hash(),
        a.hash(),
        "the hash does not depend on file order"
    );
    let mut params = ns_params();
    params["cpu_limit"] = json!(9);
    let c = render_ok("k8s-namespace", &params, "payments-checkout-prod");
    assert_ne!(a.hash(), c.hash());
    // Pinned: changing the hash scheme would void every recorded approval.
    let tiny = ChangeSet {
        files: vec![RenderedFile {
            path: "a".into(),
            content: "b".into(),
        }],
        ..ChangeSet::default()
    };
    assert_eq!(
        tiny.hash(),
        "8fb20ef63ced4145fc2e983ffe597d1dcff39154c3bf21f0fa9dde6a0c50fdc9"
    );
    let empty = ChangeSet::default();
    assert_eq!(
        empty.hash(),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

#[test]
fn undefined_variables_and_escaping_paths_are_errors() {
    let catalog = shipped_catalog();
    let mut t = ty("k8s-namespace");
    let err = change_set(&catalog, &t, &json!({"name": "x"}), "x", &[]).err();
    assert_eq!(
        err.as_ref().map(|e| e.what.as_str()),
        Some("outputs[0].path")
    );
    t.outputs[0].path = "../{{ name }}.yaml".into();
    let err = change_set(&catalog, &t, &ns_params(), "n", &[]).err();
    assert_eq!(
        err.map(|e| e.to_string()),
        Some("outputs[0].path: the path \"../checkout.yaml\" must not contain '..'".into())
    );
    t.outputs[0].path = "/{{ name }}.yaml".into();
    assert!(change_set(&catalog, &t, &ns_params(), "n", &[]).is_err());
}

#[test]
fn duplicate_output_paths_are_errors() {
    let mut t = ty("k8s-namespace");
    t.outputs[1].path = t.outputs[0].path.clone();
    let err = change_set(&shipped_catalog(), &t, &ns_params(), "n", &[]).err();
    assert_eq!(err.map(|e| e.what), Some("outputs".to_string()));
}

#[test]
fn output_paths_differing_only_in_case_are_errors() {
    let mut t = ty("k8s-namespace");
    t.outputs[0].path = "dev/A.yaml".into();
    t.outputs[1].path = "dev/a.yaml".into();
    let err = change_set(&shipped_catalog(), &t, &ns_params(), "n", &[]).err();
    assert_eq!(
        err.map(|e| e.to_string()),
        Some(
            "outputs: two outputs render to dev/A.yaml and dev/a.yaml, one file where case is not told apart"
                .to_string()
        )
    );
}

#[test]
fn an_output_template_stops_at_the_size_of_a_file() {
    let mut catalog = shipped_catalog();
    let huge = r#"{% for i in range(100) %}{{ "x" * 50000000 }}{% endfor %}"#;
    catalog
        .templates
        .insert("k8s-namespace/namespace.yaml.j2".into(), huge.into());
    let err = change_set(&catalog, &ty("k8s-namespace"), &ns_params(), "n", &[]).err();
    assert_eq!(
        err.map(|e| e.to_string()),
        Some(
            "templates/k8s-namespace/namespace.yaml.j2: the rendered text is longer than the 1 MiB a rendering may be"
                .to_string()
        )
    );
}

#[test]
fn checks_render_paths_and_descriptions() {
    let checks = match checks(
        &ty("postgres-database"),
        &pg_params(false),
        "payments-orders-prod",
    ) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(
        checks,
        vec![RenderedCheck {
            kind: CheckKind::GitFile {
                path: "prod/payments/postgres-database/orders/cluster.yaml".into()
            },
            description:
                "The CloudNativePG Cluster for payments-orders-prod is in the GitOps repository"
                    .into(),
        }]
    );
    let ns = checks_or_panic("k8s-namespace", &ns_params());
    assert_eq!(ns.len(), 3);
    assert_eq!(
        ns[1].description,
        "prod/payments/k8s-namespace/checkout/resourcequota.yaml is in the GitOps repository"
    );
}

fn checks_or_panic(t: &str, params: &Value) -> Vec<RenderedCheck> {
    checks(&ty(t), params, "payments-checkout-prod").unwrap_or_default()
}

#[test]
fn monitoring_items_render() {
    let items = monitoring(
        &ty("postgres-database"),
        &pg_params(true),
        "payments-orders-prod",
    )
    .unwrap_or_default();
    assert_eq!(
        items[0],
        MonitoringItem {
            name: "payments-orders-prod availability".into(),
            kind: "prometheus-rule".into(),
            target: "cnpg_collector_up{cluster=\"payments-orders-prod\"} == 0".into(),
        }
    );
    assert_eq!(items[1].kind, "grafana-dashboard");
    let ns = monitoring(&ty("k8s-namespace"), &ns_params(), "payments-checkout-prod")
        .unwrap_or_default();
    assert_eq!(ns.len(), 2);
    assert!(
        ns[0]
            .target
            .contains("namespace=\"payments-checkout-prod\"")
    );
}

#[test]
fn params_hash_ignores_key_order_but_not_values() {
    let a = json!({"name": "orders", "storage_gb": 20, "tags": ["x", "y"]});
    let b = json!({"tags": ["x", "y"], "storage_gb": 20, "name": "orders"});
    let c = json!({"name": "orders", "storage_gb": 21, "tags": ["x", "y"]});
    assert_eq!(params_hash(&a), params_hash(&b));
    assert_ne!(params_hash(&a), params_hash(&c));
    assert_eq!(params_hash(&a).len(), 64);
}

fn file(path: &str, content: &str) -> RenderedFile {
    RenderedFile {
        path: path.into(),
        content: content.into(),
    }
}

#[test]
fn yaml_and_json_files_must_parse_and_others_are_taken_as_they_are() {
    assert_eq!(
        check_syntax(&file("a/b.yaml", "a: 1\n---\nb: [2]\n")),
        Ok(())
    );
    assert_eq!(check_syntax(&file("a/b.json", "{\"a\": [1]}")), Ok(()));
    assert_eq!(check_syntax(&file("a/b.txt", "a: : [")), Ok(()));
    let yaml = check_syntax(&file("a/b.yml", "a: 1\n---\nb: [2\n")).err();
    let yaml = yaml.map(|e| e.to_string()).unwrap_or_default();
    assert!(
        yaml.starts_with("a/b.yml: is not valid YAML (document 2): "),
        "{yaml}"
    );
    let json = check_syntax(&file("x/Y.JSON", "{\"a\": }")).err();
    let json = json.map(|e| e.to_string()).unwrap_or_default();
    assert!(json.starts_with("x/Y.JSON: is not valid JSON: "), "{json}");
}

/// A manifest may use anchors as CI and Compose files do, within bounds: an
/// alias repeats its anchor's whole value, so a chain of anchored values
/// holding aliases of each other (a few lines standing for millions of values
/// in every reader of the manifest, Slipway's own parse first) and more than
/// 32 aliases are refused, with the line, before the parser reads them.
#[test]
fn a_rendered_manifest_bounds_its_aliases() {
    let bomb = "a: &a [x, x, x]\nb: &b [*a, *a, *a]\nc: &c [*b, *b, *b]\nd: [*c, *c, *c]\n";
    let error = check_syntax(&file("a/b.yaml", bomb)).err();
    let error = error.map(|e| e.to_string()).unwrap_or_default();
    assert!(
        error.starts_with("a/b.yaml: is not YAML to apply: it sets the anchor `&c` (line 3)"),
        "{error}"
    );
    let ci = ".defaults: &defaults\n  image: alpine\n  tags: [k8s]\nbuild:\n  <<: *defaults\n  \
              script: [make]\ntest:\n  <<: *defaults\n  script: [make test]\n";
    assert_eq!(check_syntax(&file("ci.yaml", ci)), Ok(()));
    let many: String = std::iter::once("a: &a [x]\n".to_string())
        .chain((0..=crate::catalog::nesting::MAX_ALIASES).map(|i| format!("k{i}: *a\n")))
        .collect();
    let error = check_syntax(&file("a/b.yaml", &many)).err();
    let error = error.map(|e| e.to_string()).unwrap_or_default();
    assert!(error.contains("more than 32 aliases"), "{error}");
    let quoted = "cmd: \"a && b\"\nglob: '*.txt'\nscript: |\n  ls *.txt && echo done\n";
    assert_eq!(check_syntax(&file("a/b.yaml", quoted)), Ok(()));
}

#[test]
fn a_template_rendering_broken_yaml_is_refused_before_it_is_stored() {
    let files = crate::test_support::with_file(
        "templates/k8s-namespace/namespace.yaml.j2",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: [{{ resource_name }}\n",
    );
    let catalog = Catalog::from_files(&files).unwrap_or_else(|e| panic!("{e}"));
    let Some(ty) = catalog.resource_type("k8s-namespace") else {
        panic!("k8s-namespace is loaded");
    };
    let error = change_set(&catalog, ty, &ns_params(), "payments-checkout-prod", &[]).err();
    let error = error.map(|e| e.to_string()).unwrap_or_default();
    assert!(
        error.starts_with(
            "templates/k8s-namespace/namespace.yaml.j2: the rendered \
             prod/payments/k8s-namespace/checkout/namespace.yaml is not valid YAML (document 1): "
        ),
        "{error}"
    );
    let reported = check_samples(&catalog);
    // The type, and each action that renders the type's outputs again.
    let paths: Vec<&str> = reported.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "templates/k8s-namespace/namespace.yaml.j2",
            "actions[0].templates/k8s-namespace/namespace.yaml.j2",
            "actions[1].templates/k8s-namespace/namespace.yaml.j2",
            "actions[3].templates/k8s-namespace/namespace.yaml.j2",
        ],
        "{reported:?}"
    );
    assert_eq!(reported[0].file, "types/k8s-namespace.yaml");
    assert_eq!(
        reported[0].path,
        "templates/k8s-namespace/namespace.yaml.j2"
    );
    assert!(
        reported[0].message.contains("is not valid YAML"),
        "{}",
        reported[0].message
    );
}

#[test]
fn a_broken_branch_behind_an_optional_parameter_is_found_before_a_request_takes_it() {
    // Defaults leave `admins` out; the branch that lists them breaks the YAML.
    let files = crate::test_support::with_file(
        "templates/k8s-namespace/namespace.yaml.j2",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {{ resource_name }}\n\
         {% if admins | default([]) %}  annotations: [{{ admins | join(',') }}\n{% endif %}",
    );
    let catalog = Catalog::from_files(&files).unwrap_or_else(|e| panic!("{e}"));
    let reported = check_samples(&catalog);
    let first = reported
        .first()
        .map(|r| (r.path.as_str(), r.message.as_str()));
    let Some((path, message)) = first else {
        panic!("the broken branch is reported");
    };
    assert_eq!(path, "templates/k8s-namespace/namespace.yaml.j2");
    assert!(
        message.starts_with("rendered with every optional parameter given a value {")
            && message.contains(r#""admins":["sample"]"#)
            && message.contains("is not valid YAML"),
        "{message}"
    );
}

#[test]
fn the_shipped_types_render_with_their_defaults() {
    assert_eq!(check_samples(&shipped_catalog()), []);
}

#[test]
fn checks_of_every_kind_render_and_a_broken_rendering_names_its_field() {
    let mut t = ty("k8s-namespace");
    t.checks = vec![
        CheckSpec {
            kind: CheckKind::Http {
                url: "https://{{ name }}.{{ environment }}.example.com/healthz".into(),
                status: 204,
                body_contains: Some(" {{ team }} ".into()),
                body_matches: Some("^{{ name }}$".into()),
                deadline_seconds: 5,
            },
            description: None,
        },
        CheckSpec {
            kind: CheckKind::Tcp {
                address: "{{ name }}.db:5432".into(),
                deadline_seconds: 5,
            },
            description: None,
        },
        CheckSpec {
            kind: CheckKind::Command {
                program: "pg_isready".into(),
                args: vec!["-d".into(), "{{ resource_name }}".into()],
                timeout_seconds: None,
            },
            description: None,
        },
    ];
    let rendered = match checks(&t, &ns_params(), "payments-checkout-prod") {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    let seen: Vec<(String, String)> = rendered
        .iter()
        .map(|c| (c.kind.target(), c.description.clone()))
        .collect();
    assert_eq!(
        seen,
        [
            (
                "https://checkout.prod.example.com/healthz".to_string(),
                "https://checkout.prod.example.com/healthz answers 204".to_string()
            ),
            (
                "checkout.db:5432".into(),
                "checkout.db:5432 accepts connections".into()
            ),
            (
                "pg_isready -d payments-checkout-prod".into(),
                "`pg_isready -d payments-checkout-prod` succeeds".into()
            ),
        ]
    );
    let CheckKind::Http { body_contains, .. } = &rendered[0].kind else {
        panic!("not http: {:?}", rendered[0]);
    };
    assert_eq!(body_contains.as_deref(), Some(" payments "));

    // A parameter can break what the template builds: each failure names its field.
    for (kind, what, says) in [
        (
            CheckKind::Http {
                url: "https://{{ name }}.example.com/".into(),
                status: 200,
                body_contains: None,
                body_matches: None,
                deadline_seconds: 5,
            },
            "checks[0].url",
            r#""https://a%20b.example.com/" names a host with an encoded character"#,
        ),
        (
            CheckKind::Http {
                url: "http://x/".into(),
                status: 200,
                body_contains: None,
                body_matches: Some("{{ name }}(".into()),
                deadline_seconds: 5,
            },
            "checks[0].body_matches",
            "is not a valid pattern",
        ),
        (
            CheckKind::Tcp {
                address: "{{ name }}".into(),
                deadline_seconds: 5,
            },
            "checks[0].address",
            r#""a b" is not host:port"#,
        ),
    ] {
        t.checks = vec![CheckSpec {
            kind,
            description: None,
        }];
        let params = json!({"name": "a b", "team": "payments", "environment": "prod"});
        match checks(&t, &params, "x") {
            Ok(c) => panic!("rendered {c:?}"),
            Err(e) => {
                assert_eq!(e.what, what);
                assert!(e.message.contains(says), "{e}");
            }
        }
    }
    // A value cannot move an HTTP check to another host the outbound rule
    // allows: it is encoded, and a host holding it is refused.
    t.checks = vec![CheckSpec {
        kind: CheckKind::Http {
            url: "https://{{ name }}.apps.internal/healthz".into(),
            status: 200,
            body_contains: None,
            body_matches: None,
            deadline_seconds: 5,
        },
        description: None,
    }];
    for name in [
        "grafana.internal/api/health#",
        "grafana.internal?",
        "x@grafana.internal:443/",
    ] {
        let params = json!({"name": name, "team": "payments", "environment": "prod"});
        match checks(&t, &params, "x") {
            Ok(c) => panic!("{name}: rendered {c:?}"),
            Err(e) => assert!(e.message.contains("encoded character"), "{name}: {e}"),
        }
    }
    // In the path a value stays inside its segment.
    t.checks[0].kind = CheckKind::Http {
        url: "https://status.internal/{{ name }}".into(),
        status: 200,
        body_contains: None,
        body_matches: None,
        deadline_seconds: 5,
    };
    let params = json!({"name": "a/../admin?x", "team": "payments", "environment": "prod"});
    let rendered = checks(&t, &params, "x").map_err(|e| e.to_string());
    assert_eq!(
        rendered.map(|c| c[0].kind.target()),
        Ok("https://status.internal/a%2F..%2Fadmin%3Fx".to_string())
    );
    // A command check's argument from a parameter is never read as an option.
    t.checks = vec![CheckSpec {
        kind: CheckKind::Command {
            program: "pg_isready".into(),
            args: vec!["-d".into(), "{{ name }}".into()],
            timeout_seconds: None,
        },
        description: None,
    }];
    let params = json!({"name": "--host=elsewhere", "team": "payments", "environment": "prod"});
    match checks(&t, &params, "x") {
        Ok(c) => panic!("rendered {c:?}"),
        Err(e) => {
            assert_eq!(e.what, "checks[0].args[1]");
            assert!(e.message.contains("starts with '-'"), "{e}");
        }
    }
}

/// A removal is held to the rules of a written file: one rendered into
/// Slipway's own directory (a team called `audit`) or at one of git's files is
/// refused, naming the entry (before, only its syntax was checked, and a
/// retirement could delete the audit checkpoint).
#[test]
fn a_removal_of_slipways_or_gits_own_files_is_refused() {
    let catalog = shipped_catalog();
    let mut t = ty("k8s-namespace");
    for (i, path) in [
        "{{ team }}/checkpoint.json",
        "{{ environment }}/.gitattributes",
    ]
    .into_iter()
    .enumerate()
    {
        t.removes = vec!["dev/kept.yaml".into(), path.into()];
        let params = json!({"name": "checkout", "team": "audit", "environment": "prod",
               "cpu_limit": 8, "memory_limit_gi": 16, "admins": ["alice"]});
        let err = change_set(&catalog, &t, &params, "n", &[]).err();
        assert_eq!(
            err.as_ref().map(|e| e.what.as_str()),
            Some("removes[1]"),
            "case {i}: {err:?}"
        );
    }
    assert!(check_deployable_path("audit/checkpoint.json").is_err());
    assert!(check_deployable_path("../x.yaml").is_err());
    assert!(check_deployable_path("prod/payments/x.yaml").is_ok());
}
