use super::*;
use crate::ids::RequestId;
use crate::test_support::shipped_catalog;

fn summary(id: i64, type_name: &str, name: &str, state: &str) -> AssetSummary {
    AssetSummary {
        id: AssetId(id),
        type_name: type_name.into(),
        name: name.into(),
        state: state.into(),
        request_id: RequestId(id + 100),
        created_at: "2026-12-04T06:00:00Z".into(),
    }
}

fn requires(id: i64, type_name: &str, name: &str) -> RelationView {
    RelationView {
        kind: REQUIRES.into(),
        asset_id: AssetId(id),
        asset_name: name.into(),
        type_name: type_name.into(),
        state: ACTIVE.into(),
    }
}

/// Backstage's own check of an entity name (`isValidObjectName`), read strictly:
/// 1 to 63 characters, letters and digits with one of `-_.` between them.
fn backstage_accepts(name: &str) -> bool {
    let bytes = name.as_bytes();
    let separator = |b: &u8| matches!(b, b'-' | b'_' | b'.');
    (1..=MAX_NAME).contains(&bytes.len())
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || separator(b))
        && !bytes
            .windows(2)
            .any(|w| separator(&w[0]) && separator(&w[1]))
}

const EXPECTED: &str = r#"apiVersion: backstage.io/v1alpha1
kind: Resource
metadata:
  name: postgres-database.payments-ledger-prod
  title: payments-ledger-prod
  description: 'PostgreSQL database of payments in prod, made by Slipway request #107.'
  annotations:
    backstage.io/view-url: https://slipway.example.com/assets/7
    slipway.dev/asset-id: '7'
    slipway.dev/commit: 0123abcd
    slipway.dev/request-id: '107'
    slipway.dev/type: postgres-database
  tags:
  - postgres-database
  - prod
  links:
  - url: https://slipway.example.com/assets/7
    title: 'Asset #7 in Slipway'
    icon: dashboard
  - url: https://slipway.example.com/requests/107
    title: 'Request #107 in Slipway'
spec:
  type: postgres-database
  owner: group:payments
  lifecycle: production
  dependsOn:
  - resource:k8s-namespace.payments-ledger-prod
"#;

#[test]
fn a_production_database_exports_with_owner_lifecycle_dependency_and_links() {
    let catalog = shipped_catalog();
    let asset = summary(7, "postgres-database", "payments-ledger-prod", ACTIVE);
    let relations = [
        requires(3, "k8s-namespace", "payments-ledger-prod"),
        RelationView {
            kind: "required by".into(),
            ..requires(9, "k8s-namespace", "not-a-dependency")
        },
        RelationView {
            state: crate::action::RETIRED.into(),
            ..requires(4, "k8s-namespace", "a-retired-one")
        },
    ];
    let exported = ExportedAsset {
        asset: &asset,
        commit_id: "0123abcd",
        team: Some("payments"),
        environment: Some("prod"),
        resource_type: catalog.resource_type("postgres-database"),
        relations: &relations,
    };
    let entity = entity(&exported, "https://slipway.example.com/");
    let yaml = to_yaml(&entity).unwrap_or_default();
    assert_eq!(yaml, EXPECTED);
    let back: Result<Entity, _> = serde_norway::from_str(&yaml);
    assert_eq!(back.ok(), Some(entity));
}

const HOSTILE: &[&str] = &[
    "plain-name",
    "with spaces and: colon # hash",
    "- dash first",
    "quotes ' and \" both",
    "{braces} [brackets] & *star !bang |pipe >fold",
    "Ünïcödé naïve café 日本語",
    "日本語",
    "",
    "---",
    "...",
    "a.b.c",
    "a__b--c",
    "trailing-",
    "_leading",
    "null",
    "true",
    "0x1F",
    "1e3",
    "~",
    "line\nbreak\ttab\r",
    "very-long-name-that-goes-on-and-on-and-on-well-past-the-sixty-three-character-limit",
    "x",
];

#[test]
fn hostile_names_make_valid_unique_names_and_yaml_that_reads_back_equal() {
    let catalog = shipped_catalog();
    let mut names = std::collections::BTreeSet::new();
    for (i, name) in HOSTILE.iter().enumerate() {
        let id = i as i64 + 1;
        for type_name in ["k8s-namespace", "weird type: {x}"] {
            let asset = summary(id, type_name, name, ACTIVE);
            let relations = [requires(9_999_999_999_999, type_name, name)];
            let exported = ExportedAsset {
                asset: &asset,
                commit_id: "c0ffee",
                team: Some(name),
                environment: Some(name),
                resource_type: catalog.resource_type(type_name),
                relations: &relations,
            };
            let entity = entity(&exported, "http://localhost:3000");
            let n = &entity.metadata.name;
            assert!(backstage_accepts(n), "{name:?} became {n:?}");
            assert!(names.insert(n.clone()), "{n:?} is made twice");
            assert_eq!(entity.metadata.title, *name);
            let dependency = entity.spec.depends_on[0].trim_start_matches("resource:");
            assert!(backstage_accepts(dependency), "{dependency:?}");
            assert!(backstage_accepts(
                entity.spec.owner.trim_start_matches("group:")
            ));
            for tag in &entity.metadata.tags {
                assert!(
                    backstage_accepts(tag) && !tag.contains(['_', '.']),
                    "{tag:?}"
                );
                assert_eq!(*tag, tag.to_ascii_lowercase());
            }
            let yaml = to_yaml(&entity).unwrap_or_default();
            let back: Result<Entity, _> = serde_norway::from_str(&yaml);
            assert_eq!(back.ok().as_ref(), Some(&entity), "{yaml}");
        }
    }
}

#[test]
fn clean_names_stay_readable_and_cleaned_ones_carry_the_id() {
    fn name(id: i64, ty: &str, n: &str) -> String {
        entity_name(AssetId(id), ty, n)
    }
    assert_eq!(
        name(1, "k8s-namespace", "payments-a-dev"),
        "k8s-namespace.payments-a-dev"
    );
    assert_eq!(
        name(2, "shared-database", "payments_a_dev"),
        "shared-database.payments_a_dev"
    );
    assert_eq!(name(3, "k8s-namespace", "a b"), "k8s-namespace.a-b.3");
    assert_eq!(name(4, "k8s-namespace", "a.b"), "k8s-namespace.a-b.4");
    assert_eq!(
        name(5, "k8s-namespace", "日本語"),
        "k8s-namespace.unnamed.5"
    );
    assert_eq!(name(6, "", "x"), "asset.x.6");
    // A clean name holds one `.`, a cleaned one two: "a.7" made clean can never
    // meet "a"'s asset 7 made clean.
    assert_ne!(name(7, "t", "a b"), name(8, "t", "a-b.7"));
    let long = "n".repeat(100);
    let made = name(i64::MAX, &"t".repeat(100), &long);
    assert_eq!(made.len(), MAX_NAME, "{made}");
    assert!(made.ends_with(&format!(".{}", i64::MAX)));
    assert!(backstage_accepts(&name(-1, "t", "a b")));
}

#[test]
fn lifecycle_follows_environment_and_state() {
    assert_eq!(lifecycle(ACTIVE, Some("prod")), "production");
    assert_eq!(lifecycle(ACTIVE, Some("Production")), "production");
    assert_eq!(lifecycle(ACTIVE, Some("dev")), "experimental");
    assert_eq!(lifecycle(ACTIVE, Some("sandbox")), "experimental");
    assert_eq!(lifecycle(ACTIVE, Some("staging")), "staging");
    assert_eq!(lifecycle(ACTIVE, Some("QA 2")), "qa-2");
    assert_eq!(lifecycle(ACTIVE, Some("日本")), "production");
    assert_eq!(lifecycle(ACTIVE, None), "production");
    assert_eq!(lifecycle("decommissioned", Some("prod")), "deprecated");
}

#[test]
fn owner_falls_back_to_the_type_then_unknown() {
    let catalog = shipped_catalog();
    let asset = summary(1, "postgres-database", "x", ACTIVE);
    let mut exported = ExportedAsset {
        asset: &asset,
        commit_id: "c",
        team: None,
        environment: None,
        resource_type: catalog.resource_type("postgres-database"),
        relations: &[],
    };
    assert_eq!(entity(&exported, "http://s").spec.owner, "group:dba");
    exported.resource_type = None;
    let e = entity(&exported, "http://s");
    assert_eq!(e.spec.owner, "group:unknown");
    assert_eq!(e.spec.lifecycle, "production");
    assert!(e.spec.depends_on.is_empty());
    assert_eq!(
        e.metadata.description.as_deref(),
        Some("postgres-database, made by Slipway request #101.")
    );
}

#[test]
fn a_feed_is_a_multi_document_stream_that_reads_back() {
    let entities: Vec<Entity> = ["a", "b: {c}", "- d"]
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let asset = summary(i as i64 + 1, "k8s-namespace", n, ACTIVE);
            let exported = ExportedAsset {
                asset: &asset,
                commit_id: "c",
                team: Some("payments"),
                environment: Some("dev"),
                resource_type: None,
                relations: &[],
            };
            entity(&exported, "http://s")
        })
        .collect();
    let stream: String = entities
        .iter()
        .map(|e| feed_document(e).unwrap_or_default())
        .collect();
    let read: Result<Vec<Entity>, _> = serde_norway::Deserializer::from_str(&stream)
        .map(Entity::deserialize)
        .collect();
    assert_eq!(read.ok(), Some(entities));
}
