use serde_json::json;

use super::*;
use crate::test_support::shipped_catalog;

fn action(type_name: &str, name: &str) -> TypeAction {
    let catalog = shipped_catalog();
    match catalog
        .resource_type(type_name)
        .and_then(|t| t.action(name))
    {
        Some(a) => a.clone(),
        None => panic!("{type_name} has no action {name}"),
    }
}

fn postgres() -> ResourceType {
    match shipped_catalog().resource_type("postgres-database") {
        Some(ty) => ty.clone(),
        None => panic!("the shipped catalog has postgres-database"),
    }
}

fn database() -> serde_json::Value {
    json!({"name": "ledger", "team": "payments", "environment": "prod", "size": "small",
           "storage_gb": 20, "version": "16",
           "owner_password": {"$secret": "owner_password", "set": true}})
}

#[test]
fn the_form_starts_from_the_asset() {
    let scale = action("postgres-database", "scale");
    let values = prefill(&scale, &database());
    assert_eq!(values.get("size"), Some(&json!("small")));
    assert_eq!(values.get("storage_gb"), Some(&json!(20)));
    assert!(!values.contains_key("name"), "only the action's parameters");
}

#[test]
fn input_is_laid_over_the_asset_and_only_the_types_parameters_are_recorded() {
    let backup = action("postgres-database", "backup");
    let merged = request_params(
        &postgres(),
        &database(),
        &json!({"backup_name": "before-42"}),
    );
    assert_eq!(merged["backup_name"], json!("before-42"));
    assert_eq!(merged["size"], json!("small"));
    let catalog = shipped_catalog();
    let Some(ty) = catalog.resource_type("postgres-database") else {
        panic!("type")
    };
    let recorded = recorded_params(ty, &merged);
    assert!(recorded.get("backup_name").is_none());
    assert_eq!(recorded["owner_password"], database()["owner_password"]);
    assert_eq!(
        input_of(&backup, &merged).get("backup_name"),
        Some(&json!("before-42"))
    );
    let blank = request_params(&postgres(), &database(), &json!({"size": ""}));
    assert_eq!(
        blank["size"],
        json!("small"),
        "a blank value keeps the recorded one"
    );
}

/// A parameter the catalog dropped since the asset was recorded stays on the
/// asset, but an action's request does not carry it: it would be refused as
/// not a parameter of the type, and every action, the decommission and the
/// template upgrade with it, blocked for good.
#[test]
fn a_parameter_the_type_dropped_is_not_carried_into_an_action() {
    let mut recorded = database();
    recorded["replication_slots"] = json!(4);
    let merged = request_params(&postgres(), &recorded, &json!({"size": "large"}));
    assert!(merged.get("replication_slots").is_none(), "{merged}");
    assert_eq!(merged["size"], json!("large"));
    assert_eq!(merged["storage_gb"], json!(20));
}

#[test]
fn foreign_input_names_each_field() {
    let scale = action("postgres-database", "scale");
    let errors = foreign_input(&scale, &json!({"size": "large", "team": "search"}));
    assert_eq!(
        errors,
        [FieldError::new(
            "team",
            "is not a parameter of the action scale; it takes size, storage_gb, high_availability"
        )]
    );
    assert_eq!(foreign_input(&scale, &json!([1])).len(), 1);
    let decommission = action("postgres-database", "decommission");
    assert_eq!(
        foreign_input(&decommission, &json!({"size": "large"}))[0].message,
        "is not a parameter of the action decommission; it takes none"
    );
}

#[test]
fn secrets_recorded_on_the_asset_stay_with_it() {
    let scale = action("postgres-database", "scale");
    assert_eq!(inherited_secrets(&scale, &database()), ["owner_password"]);
    assert!(inherited_secrets(&scale, &json!({"name": "x"})).is_empty());
}

#[test]
fn an_action_keeps_its_assets_name() {
    let scale = action("postgres-database", "scale");
    let Ok(validator) = crate::validate::ParamValidator::new(&scale.request_type) else {
        panic!("validator")
    };
    let asset = database();
    let same = request_params(&postgres(), &asset, &json!({"size": "medium"}));
    assert!(rename_error(&validator, ("payments-ledger-prod", &asset), &same).is_none());
    // Named long ago under another template: today's template makes the same
    // name of the asset's parameters and of the action's, so nothing is renamed.
    assert!(rename_error(&validator, ("ledger-old-style", &asset), &same).is_none());
    let mut moved = same.clone();
    moved["name"] = json!("books");
    let Some(error) = rename_error(&validator, ("payments-ledger-prod", &asset), &moved) else {
        panic!("a rename is refused")
    };
    assert!(
        error
            .message
            .contains("from payments-ledger-prod to payments-books-prod"),
        "{error:?}"
    );
    assert!(is_actionable("active") && !is_actionable("retired"));
}

#[test]
fn the_forms_own_checks_pass_what_the_asset_and_the_action_allow() {
    // The browser checks an action's form with the form's type: it holds the
    // action's parameters only, so the name comes from the asset, not the
    // type's naming template (which needs name, team and environment).
    for (type_name, name) in [
        ("postgres-database", "scale"),
        ("postgres-database", "decommission"),
        ("k8s-namespace", "resize"),
    ] {
        let act = action(type_name, name);
        let form = act.form_type_for("payments-books-dev");
        let validator = match crate::validate::ParamValidator::new(&form) {
            Ok(v) => v,
            Err(e) => panic!("{type_name}/{name}: {e}"),
        };
        let values = serde_json::Value::Object(prefill(&act, &database()));
        let mut values = values;
        if name == "resize" {
            values = json!({"cpu_limit": 2, "memory_limit_gi": 4});
        }
        assert_eq!(validator.check(&values), [], "{type_name}/{name}");
        assert_eq!(
            validator.resource_name(&values).ok().as_deref(),
            Some("payments-books-dev")
        );
    }
    let scale = action("postgres-database", "scale").form_type_for("x-y-z");
    let Ok(validator) = crate::validate::ParamValidator::new(&scale) else {
        panic!("validator")
    };
    assert!(
        validator
            .check(&json!({"size": "huge", "storage_gb": 20}))
            .iter()
            .any(|e| e.field == "size"),
        "the action's own rules still hold"
    );
    // A name holding template syntax stays text.
    let odd = action("postgres-database", "scale").form_type_for("{{ 7 * 7 }}");
    let Ok(validator) = crate::validate::ParamValidator::new(&odd) else {
        panic!("validator")
    };
    assert_eq!(
        validator
            .resource_name(&json!({"size": "small", "storage_gb": 20}))
            .ok(),
        None,
        "rendered as text, then refused by the naming rule"
    );
}

#[test]
fn rules_read_the_asset_as_it_is() {
    let scale = action("postgres-database", "scale");
    let asked = |storage: i64| {
        request_params(
            &postgres(),
            &database(),
            &json!({"size": "small", "storage_gb": storage}),
        )
    };
    let refused = rule_errors(&scale, &asked(10), &database());
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].field, "storage_gb");
    assert!(
        refused[0].message.contains("the 20 GB the cluster has"),
        "{}",
        refused[0].message
    );
    assert!(
        rule_errors(&scale, &asked(20), &database()).is_empty(),
        "the same size is no shrink"
    );
    assert!(rule_errors(&scale, &asked(40), &database()).is_empty());

    let upgrade = action("postgres-database", "upgrade");
    let to = |v: &str| request_params(&postgres(), &database(), &json!({"version": v}));
    assert!(rule_errors(&upgrade, &to("17"), &database()).is_empty());
    for back in ["16", "15"] {
        let refused = rule_errors(&upgrade, &to(back), &database());
        assert_eq!(
            refused.iter().map(|e| e.field.as_str()).collect::<Vec<_>>(),
            ["version"],
            "{back}"
        );
    }
}

#[test]
fn a_rule_that_cannot_be_evaluated_refuses_nothing() {
    let scale = action("postgres-database", "scale");
    // A hostile or broken asset record: no storage, a string, a huge number.
    for current in [
        json!({}),
        json!({"storage_gb": "lots"}),
        json!(null),
        json!({"storage_gb": u64::MAX}),
    ] {
        let params = json!({"storage_gb": 20});
        let errors = rule_errors(&scale, &params, &current);
        assert!(errors.len() <= 1, "{current}: {errors:?}");
    }
    assert!(rule_errors(&scale, &json!({"storage_gb": 20}), &json!({})).is_empty());
}

/// A restored cluster is named after its backup (CloudNativePG reads a
/// cluster's bootstrap only when it creates it), within the 47 characters
/// CloudNativePG allows a cluster whose recovery job must fit in 63.
#[test]
fn a_restore_whose_cluster_name_would_be_too_long_is_refused() {
    let restore = action("postgres-database", "restore");
    let mut asset = database();
    asset["name"] = json!("a-database-name-of-thirty-chars");
    let params = request_params(
        &postgres(),
        &asset,
        &json!({"backup_name": "nightly-2026-12-06"}),
    );
    let errors = rule_errors(&restore, &params, &asset);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].field, "backup_name");
    assert!(errors[0].message.contains("47 characters"), "{errors:?}");
    let params = request_params(
        &postgres(),
        &database(),
        &json!({"backup_name": "nightly-2026-12-06"}),
    );
    assert_eq!(rule_errors(&restore, &params, &database()), Vec::new());
}

#[test]
fn a_backup_name_is_unique_per_database_and_other_actions_repeat_freely() {
    let backup = action("postgres-database", "backup");
    let first = request_params(
        &postgres(),
        &database(),
        &json!({"backup_name": "before-42"}),
    );
    let same = request_params(
        &postgres(),
        &database(),
        &json!({"backup_name": "before-42"}),
    );
    let other = request_params(
        &postgres(),
        &database(),
        &json!({"backup_name": "before-43"}),
    );
    assert!(uses_same_unique_values(&backup, &same, &first));
    assert!(!uses_same_unique_values(&backup, &other, &first));
    let scale = action("postgres-database", "scale");
    assert!(!uses_same_unique_values(&scale, &database(), &database()));
    // A number given as 1 and as 1.0 is one value.
    let mut by_number = backup.clone();
    by_number.unique_by = vec!["storage_gb".into()];
    let whole = json!({"storage_gb": 20});
    let float = json!({"storage_gb": 20.0});
    assert!(uses_same_unique_values(&by_number, &whole, &float));
}

/// An asset made before a rule existed (a mark pasted into a list long ago)
/// still takes actions: what it has is not the request's to fix, unless the
/// action changes it.
#[test]
fn an_assets_own_values_do_not_fail_its_actions() {
    let scale = action("postgres-database", "scale");
    let mut asset = database();
    asset["extensions"] = json!(["pg\u{200B}crypto"]);
    let params = request_params(
        &postgres(),
        &asset,
        &json!({"size": "medium", "storage_gb": 40}),
    );
    let validator = match crate::validate::ParamValidator::new(&scale.request_type) {
        Ok(v) => v,
        Err(e) => panic!("validator: {e}"),
    };
    let errors = validator.check(&params);
    assert!(
        errors.iter().any(|e| e.field == "extensions"),
        "the rule sees it: {errors:?}"
    );
    assert_eq!(own_errors(&scale, &params, &asset, errors), Vec::new());
    // A value the action gives is judged.
    let mut bad = params.clone();
    bad["size"] = json!("huge");
    let errors = own_errors(&scale, &bad, &asset, validator.check(&bad));
    assert!(errors.iter().any(|e| e.field == "size"), "{errors:?}");
}

/// k8s-namespace as a later catalog has it: `cost_center` added to the
/// required parameters, with `default` as its default (`None`: none).
fn namespace_requiring_cost_center(default: Option<&str>) -> crate::catalog::Catalog {
    let path = "types/k8s-namespace.yaml";
    let default = default.map_or(String::new(), |d| format!("\n      default: {d:?}"));
    let text = crate::test_support::shipped_text(path)
        .replace(
            "required: [name, team, environment, cpu_limit, memory_limit_gi]",
            "required: [name, team, environment, cpu_limit, memory_limit_gi, cost_center]",
        )
        .replace(
            "  properties:\n    name:\n",
            &format!("  properties:\n    cost_center:\n      type: string{default}\n    name:\n"),
        );
    match crate::catalog::Catalog::from_files(&crate::test_support::with_file(path, &text)) {
        Ok(catalog) => catalog,
        Err(errors) => panic!("the edited catalog does not load:\n{errors}"),
    }
}

fn namespace_asset() -> serde_json::Value {
    json!({"name": "web", "team": "payments", "environment": "prod",
           "cpu_limit": 4, "memory_limit_gi": 8})
}

/// The errors a request for `action_name` on [`namespace_asset`] still has to
/// fix, with no input of its own.
fn errors_acting(catalog: &crate::catalog::Catalog, action_name: &str) -> Vec<FieldError> {
    let Some(ty) = catalog.resource_type("k8s-namespace") else {
        panic!("k8s-namespace")
    };
    let Some(act) = ty.action(action_name) else {
        panic!("k8s-namespace has no action {action_name}")
    };
    let validator = match crate::validate::ParamValidator::new(&act.request_type) {
        Ok(v) => v,
        Err(e) => panic!("validator: {e}"),
    };
    let input = if action_name == "resize" {
        json!({"cpu_limit": 2, "memory_limit_gi": 4})
    } else {
        json!({})
    };
    let asset = namespace_asset();
    let params = request_params(ty, &asset, &input);
    own_errors(act, &params, &asset, validator.check(&params))
}

/// A parameter the type made required after the asset was recorded takes its
/// default: every action on the asset still runs (before, each one, the
/// decommission and the template upgrade too, was refused with
/// "cost_center: is required").
#[test]
fn a_parameter_required_since_takes_its_default() {
    let catalog = namespace_requiring_cost_center(Some("none"));
    for name in ["decommission", TypeAction::UPGRADE, "resize"] {
        assert_eq!(errors_acting(&catalog, name), [], "{name}");
    }
    let Some(ty) = catalog.resource_type("k8s-namespace") else {
        panic!("k8s-namespace")
    };
    let params = request_params(ty, &namespace_asset(), &json!({}));
    assert_eq!(params["cost_center"], json!("none"));
    assert_eq!(
        recorded_params(ty, &params)["cost_center"],
        json!("none"),
        "the asset records the default once the action completes"
    );
    let mut recorded = namespace_asset();
    recorded["cost_center"] = json!("cc-42");
    assert_eq!(
        request_params(ty, &recorded, &json!({}))["cost_center"],
        json!("cc-42"),
        "a recorded value stays"
    );
}

/// Without a default, retiring the asset or upgrading its templates is not
/// held up by a field neither can ask for; an action that changes the asset
/// still names it.
#[test]
fn a_parameter_required_since_without_default_blocks_no_retirement_or_upgrade() {
    let catalog = namespace_requiring_cost_center(None);
    assert_eq!(errors_acting(&catalog, "decommission"), []);
    assert_eq!(errors_acting(&catalog, TypeAction::UPGRADE), []);
    let errors = errors_acting(&catalog, "resize");
    assert_eq!(
        errors,
        [FieldError::new(
            "cost_center",
            format!("is required ({LACKED_SINCE})")
        )]
    );
}

fn written(paths: &[&str], removed: &[&str]) -> crate::render::ChangeSet {
    crate::render::ChangeSet {
        files: paths
            .iter()
            .map(|path| crate::render::RenderedFile {
                path: path.to_string(),
                content: String::new(),
            })
            .collect(),
        removed: removed.iter().map(|p| p.to_string()).collect(),
        ..Default::default()
    }
}

/// A file the templates wrote at `a/` and now write at `b/`: the change removes
/// `a/`, and the asset's files are then at `b/` alone; a path the change neither
/// writes nor removes stays the asset's.
#[test]
fn paths_the_templates_no_longer_write_are_removed() {
    let recorded = ["a/web.yaml".to_string(), "kept.yaml".to_string()];
    let upgrade = written(&["b/web.yaml", "kept.yaml"], &[]);
    assert_eq!(unwritten_paths(&recorded, &upgrade), ["a/web.yaml"]);
    let mut applied = upgrade.clone();
    applied.removed = unwritten_paths(&recorded, &upgrade);
    assert_eq!(
        deployed_after(&recorded, &applied),
        ["b/web.yaml", "kept.yaml"]
    );
    // A change that only adds keeps what was there.
    assert_eq!(
        deployed_after(&recorded, &written(&["b/web.yaml"], &[])),
        ["a/web.yaml", "b/web.yaml", "kept.yaml"]
    );
    // A retirement removes every recorded path it does not remove already.
    let retire = written(&[], &["kept.yaml"]);
    assert_eq!(unwritten_paths(&recorded, &retire), ["a/web.yaml"]);
}
