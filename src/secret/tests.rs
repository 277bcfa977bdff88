use serde_json::{Value, json};

use super::*;
use crate::catalog::{Catalog, CatalogError, CatalogErrors, ResourceType};
use crate::render;
use crate::test_support::{shipped_catalog, shipped_text, with_file};
use crate::validate::ParamValidator;

const CANARY: &str = "canary-5f1c2b9e-secret";

fn postgres() -> ResourceType {
    match shipped_catalog().resource_type("postgres-database") {
        Some(t) => t.clone(),
        None => panic!("postgres-database missing"),
    }
}

fn params(password: Value) -> Value {
    json!({"name": "ledger", "team": "payments", "environment": "prod", "size": "small",
           "storage_gb": 20, "version": "16", "owner_password": password})
}

fn validator() -> ParamValidator {
    match ParamValidator::new(&postgres()) {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn the_shipped_database_type_declares_one_secret() {
    let ty = postgres();
    assert_eq!(ty.secret_params(), ["owner_password"]);
    let field = ty.fields().into_iter().find(|f| f.name == "owner_password");
    assert!(field.is_some_and(|f| f.secret && !f.required && f.default.is_none()));
    assert!(ty.fields().iter().filter(|f| f.secret).count() == 1);
}

#[test]
fn a_given_secret_is_split_off_and_replaced_by_its_placeholder() {
    let split = split(&postgres(), &params(json!(CANARY)), None);
    assert_eq!(
        split.params["owner_password"],
        json!({"$secret": "owner_password", "set": true})
    );
    assert_eq!(split.given.get("owner_password"), Some(CANARY));
    assert!(split.kept.is_empty());
    assert!(!split.params.to_string().contains(CANARY));
    assert_eq!(
        split.params["storage_gb"],
        json!(20),
        "other parameters stay"
    );
}

#[test]
fn an_empty_secret_on_a_revise_keeps_the_earlier_one() {
    let ty = postgres();
    let first = split(&ty, &params(json!(CANARY)), None);
    for empty in [json!(null), json!(""), placeholder("owner_password")] {
        let again = split(&ty, &params(empty.clone()), Some(&first.params));
        assert_eq!(again.kept, ["owner_password"], "{empty}");
        assert!(again.given.is_empty());
        assert_eq!(
            again.params["owner_password"],
            placeholder("owner_password")
        );
    }
    let mut absent = params(json!(null));
    if let Some(map) = absent.as_object_mut() {
        map.remove("owner_password");
    }
    let again = split(&ty, &absent, Some(&first.params));
    assert_eq!(again.kept, ["owner_password"]);
    let replaced = split(
        &ty,
        &params(json!("another-password-1")),
        Some(&first.params),
    );
    assert_eq!(
        replaced.given.get("owner_password"),
        Some("another-password-1")
    );
    assert!(replaced.kept.is_empty());
}

#[test]
fn a_placeholder_without_an_earlier_secret_sets_nothing() {
    let split = split(&postgres(), &params(placeholder("owner_password")), None);
    assert!(split.given.is_empty() && split.kept.is_empty());
    assert_eq!(split.params.get("owner_password"), None);
}

#[test]
fn a_secret_that_is_not_text_is_left_for_the_schema_to_refuse() {
    let split = split(&postgres(), &params(json!(12345)), None);
    assert_eq!(split.params["owner_password"], json!(12345));
    let errors = validator().check(&split.params);
    assert!(
        errors
            .iter()
            .any(|e| e.field == "owner_password" && e.message == "must be a text"),
        "{errors:?}"
    );
}

#[test]
fn the_schema_checks_the_real_value_and_accepts_a_kept_placeholder() {
    let ty = postgres();
    let short = split(&ty, &params(json!("short")), None);
    let errors = validator().check(&reveal(&short.params, &short.given));
    assert!(
        errors
            .iter()
            .any(|e| e.field == "owner_password" && e.message.contains("at least 12")),
        "{errors:?}"
    );
    let good = split(&ty, &params(json!(CANARY)), None);
    assert_eq!(validator().check(&reveal(&good.params, &good.given)), []);
    assert_eq!(
        validator().check(&good.params),
        [],
        "a stored placeholder is valid"
    );
}

#[test]
fn a_message_about_a_secret_never_quotes_it() {
    let ty = postgres();
    let error = crate::validate::FieldError::new("owner_password", format!("{CANARY:?} is bad"));
    let shown = crate::validate::without_secret_value(&ty, &params(json!(CANARY)), error);
    assert!(!shown.message.contains(CANARY), "{shown:?}");
}

#[test]
fn debug_shows_names_not_values() {
    let mut values = SecretValues::new();
    values.insert("owner_password", CANARY);
    let shown = format!("{values:?}");
    assert!(!shown.contains(CANARY), "{shown}");
    assert!(shown.contains("owner_password"), "{shown}");
}

#[test]
fn templates_see_the_reference_never_the_value() {
    let catalog = shipped_catalog();
    let ty = postgres();
    let requires = vec!["payments-core-prod".to_string()];
    // Even the unsplit parameters (a bug upstream) render only the reference.
    for given in [
        params(json!(CANARY)),
        split(&ty, &params(json!(CANARY)), None).params,
    ] {
        let set = match render::change_set(&catalog, &ty, &given, "payments-ledger-prod", &requires)
        {
            Ok(set) => set,
            Err(e) => panic!("{e}"),
        };
        let cluster = &set.files[0].content;
        assert!(!cluster.contains(CANARY), "{cluster}");
        assert!(
            cluster.contains("      secret:\n        name: payments-ledger-prod-owner-password\n"),
            "{cluster}"
        );
    }
    let without = render::change_set(
        &catalog,
        &ty,
        &params(json!(null)),
        "payments-ledger-prod",
        &requires,
    );
    assert!(without.is_ok_and(|set| !set.files[0].content.contains("secret:")));
}

#[test]
fn names_hints_and_policies_never_see_the_value() {
    let ty = postgres();
    let masked = crate::template::context(&ty, &params(json!(CANARY)), None);
    assert!(!format!("{masked:?}").contains(CANARY));
    assert_eq!(
        reference("payments-ledger-prod", "owner_password"),
        "payments-ledger-prod-owner-password"
    );
}

fn catalog_errors(type_yaml: &str) -> Vec<CatalogError> {
    match Catalog::from_files(&with_file("types/postgres-database.yaml", type_yaml)) {
        Ok(_) => panic!("expected the catalog to be rejected"),
        Err(CatalogErrors(errors)) => errors,
    }
}

#[test]
fn the_catalog_refuses_a_secret_that_is_not_free_text() {
    let original = shipped_text("types/postgres-database.yaml");
    let on_integer = original.replace(
        "      maximum: 500\n      default: 20\n",
        "      maximum: 500\n      default: 20\n      x-secret: true\n",
    );
    assert_ne!(on_integer, original);
    let errors = catalog_errors(&on_integer);
    assert!(
        errors
            .iter()
            .any(|e| e.path == "parameters.properties.storage_gb.x-secret"
                && e.message == "only a `type: string` parameter can be secret"),
        "{errors:?}"
    );
    let with_default = original.replace(
        "      x-secret: true\n",
        "      x-secret: true\n      default: hunter2hunter2\n",
    );
    let errors = catalog_errors(&with_default);
    assert!(
        errors.iter().any(
            |e| e.path == "parameters.properties.owner_password.x-secret"
                && e.message.contains("cannot have `default`")
        ),
        "{errors:?}"
    );
    let not_bool = original.replace("      x-secret: true\n", "      x-secret: yes please\n");
    let errors = catalog_errors(&not_bool);
    assert!(
        errors.iter().any(
            |e| e.path == "parameters.properties.owner_password.x-secret"
                && e.message == "must be true or false"
        ),
        "{errors:?}"
    );
}

#[test]
fn the_catalog_refuses_a_secret_quota_scope() {
    let original = shipped_text("types/postgres-database.yaml");
    let scoped = original.replace("  - per: [team]\n", "  - per: [team, owner_password]\n");
    assert_ne!(scoped, original);
    let errors = catalog_errors(&scoped);
    assert!(
        errors.iter().any(|e| e.path == "quota[1].per[1]"
            && e.message == "parameter \"owner_password\" is secret and cannot scope a quota"),
        "{errors:?}"
    );
}

#[test]
fn a_null_is_left_out_as_validation_leaves_it_out() {
    let ty = postgres();
    let mut given = params(json!(CANARY));
    if let Some(map) = given.as_object_mut() {
        map.insert("team".into(), Value::Null);
        map.insert("high_availability".into(), Value::Null);
    }
    let out = split(&ty, &given, None);
    assert_eq!(out.params.get("team"), None, "{:?}", out.params);
    assert_eq!(out.params.get("high_availability"), None);
    assert_eq!(out.params.get("name"), Some(&json!("ledger")));
    assert!(out.given.iter().any(|(name, _)| name == "owner_password"));
}
