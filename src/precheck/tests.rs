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

fn validator(t: &ResourceType) -> ParamValidator {
    match ParamValidator::new(t) {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    }
}

fn pg(environment: &str, ha: bool) -> Value {
    json!({
        "name": "orders", "team": "payments", "environment": environment, "size": "small",
        "storage_gb": 100, "version": "16", "high_availability": ha
    })
}

#[test]
fn quota_queries_carry_the_scope() {
    let queries = quota_queries(&ty("postgres-database"), &pg("prod", true));
    assert_eq!(
        queries,
        vec![
            QuotaQuery {
                rule_index: 0,
                scope: [
                    ("team".into(), "payments".into()),
                    ("environment".into(), "prod".into())
                ]
                .into_iter()
                .collect(),
                sum_param: None,
            },
            QuotaQuery {
                rule_index: 1,
                scope: [("team".into(), "payments".into())].into_iter().collect(),
                sum_param: Some("storage_gb".into()),
            },
        ]
    );
}

#[test]
fn rules_with_missing_parameters_are_skipped() {
    let queries = quota_queries(&ty("postgres-database"), &json!({"team": "payments"}));
    assert!(queries.is_empty(), "{queries:?}");
    let queries = quota_queries(
        &ty("postgres-database"),
        &json!({"team": "payments", "storage_gb": 20}),
    );
    assert_eq!(
        queries.iter().map(|q| q.rule_index).collect::<Vec<_>>(),
        [1]
    );
}

#[test]
fn quotas_are_evaluated_against_usage() {
    let t = ty("postgres-database");
    let usage = [
        QuotaUsage { count: 4, sum: 0 },
        QuotaUsage { count: 9, sum: 950 },
    ];
    let report = evaluate(
        &validator(&t),
        &t,
        &pg("prod", true),
        &usage,
        &[DependencyFound {
            asset_name: Some("payments-apps-prod".into()),
            retired_by: None,
        }],
    );
    assert_eq!(
        report.quotas,
        vec![
            QuotaCheck {
                description:
                    "team payments, environment prod: 4 of 5 requests used, this request makes 5"
                        .into(),
                used: 4,
                requested: 1,
                limit: 5,
                unit: "requests".into(),
                ok: true,
            },
            QuotaCheck {
                description:
                    "team payments: 950 of 1000 Storage (GB) used, this request makes 1050".into(),
                used: 950,
                requested: 100,
                limit: 1000,
                unit: "Storage (GB)".into(),
                ok: false,
            },
        ]
    );
    assert!(!report.passed());
}

/// A summed field with an error of its own (negative, or not a number) has no
/// quota line beside that error: the error blocks and says what is wrong, and a
/// line would count a value never stored (a negative size "freeing" quota).
#[test]
fn a_refused_field_is_not_counted_again() {
    let t = ty("postgres-database");
    let usage = [
        QuotaUsage { count: 4, sum: 0 },
        QuotaUsage { count: 9, sum: 950 },
    ];
    for storage in [json!(-500), json!("many"), json!(1.5)] {
        let mut params = pg("prod", true);
        params["storage_gb"] = storage.clone();
        let report = evaluate(&validator(&t), &t, &params, &usage, &[]);
        assert!(!report.passed(), "{storage}: {report:?}");
        assert!(
            report.field_errors.iter().any(|e| e.field == "storage_gb"),
            "{storage}: {report:?}"
        );
        let lines: Vec<&str> = report
            .quotas
            .iter()
            .map(|q| q.description.as_str())
            .collect();
        assert_eq!(
            lines,
            ["team payments, environment prod: 4 of 5 requests used, this request makes 5"],
            "{storage}"
        );
    }
}

#[test]
fn missing_usage_fails_closed() {
    let t = ty("postgres-database");
    let report = evaluate(&validator(&t), &t, &pg("dev", false), &[], &[]);
    assert_eq!(report.quotas.len(), 2);
    assert!(report.quotas.iter().all(|q| !q.ok));
}

#[test]
fn dependencies_are_rendered_and_decided() {
    let t = ty("postgres-database");
    let queries = dependency_queries(&t, &pg("staging", false));
    assert_eq!(
        queries,
        Ok(vec![DependencyQuery {
            type_name: "k8s-namespace".into(),
            r#match: [
                ("environment".into(), "staging".into()),
                ("team".into(), "payments".into())
            ]
            .into_iter()
            .collect(),
        }])
    );
    let usage = [QuotaUsage::default(), QuotaUsage::default()];
    let missing = evaluate(
        &validator(&t),
        &t,
        &pg("staging", false),
        &usage,
        &[DependencyFound::default()],
    );
    assert_eq!(
        missing.dependencies,
        vec![DependencyCheck {
            type_name: "k8s-namespace".into(),
            description: "the team's namespace in the same environment (a k8s-namespace with environment staging, team payments)".into(),
            found: None,
            ok: false,
        }]
    );
    assert!(!missing.passed());
    let found = [DependencyFound {
        asset_name: Some("payments-apps-staging".into()),
        retired_by: None,
    }];
    let report = evaluate(&validator(&t), &t, &pg("staging", false), &usage, &found);
    assert_eq!(
        report.dependencies[0].found.as_deref(),
        Some("payments-apps-staging")
    );
    assert!(report.passed(), "{report:?}");
    assert_eq!(
        report.resource_name.as_deref(),
        Some("payments-orders-staging")
    );
}

#[test]
fn dependency_queries_fail_on_missing_parameters() {
    let result = dependency_queries(&ty("postgres-database"), &json!({"team": "payments"}));
    assert!(result.is_err_and(|e| e.starts_with("requirement k8s-namespace: environment:")));
}

#[test]
fn risk_hints_fire_on_their_conditions() {
    let t = ty("postgres-database");
    assert_eq!(risk_hints(&t, &pg("dev", false)), Vec::<String>::new());
    assert_eq!(
        risk_hints(&t, &pg("prod", true)),
        vec!["Production database: backups and on-call apply".to_string()]
    );
    assert_eq!(risk_hints(&t, &pg("prod", false)).len(), 2);
    assert_eq!(
        risk_hints(
            &ty("k8s-namespace"),
            &json!({"team": "search", "environment": "prod"})
        ),
        vec!["Production namespace for search: workloads here are paged on.".to_string()]
    );
    assert!(risk_hints(&t, &json!({})).is_empty());
}

#[test]
fn risks_never_block() {
    let t = ty("postgres-database");
    let usage = [QuotaUsage::default(), QuotaUsage::default()];
    let found = [DependencyFound {
        asset_name: Some("ns".into()),
        retired_by: None,
    }];
    let report = evaluate(&validator(&t), &t, &pg("prod", false), &usage, &found);
    assert_eq!(report.risks.len(), 2);
    assert!(report.passed());
}

#[test]
fn field_errors_block_but_other_rules_still_run() {
    let t = ty("postgres-database");
    let mut params = pg("prod", true);
    if let Some(map) = params.as_object_mut() {
        map.insert("storage_gb".into(), json!(5));
    }
    let usage = [QuotaUsage::default(), QuotaUsage::default()];
    let report = evaluate(
        &validator(&t),
        &t,
        &params,
        &usage,
        &[DependencyFound::default()],
    );
    assert_eq!(report.field_errors.len(), 1);
    // The count rule still runs; the storage sum, over a refused value, does not.
    assert_eq!(report.quotas.len(), 1);
    assert_eq!(report.quotas[0].unit, "requests");
    assert_eq!(report.dependencies.len(), 1);
    assert!(!report.passed());
}

#[test]
fn auto_approve_policy() {
    let ns = ty("k8s-namespace");
    assert!(auto_approves(&ns, &json!({"environment": "dev"})));
    assert!(!auto_approves(&ns, &json!({"environment": "prod"})));
    assert!(
        !auto_approves(&ns, &json!({})),
        "an undefined parameter never approves"
    );
    assert!(
        !auto_approves(&ty("postgres-database"), &pg("dev", false)),
        "no policy, no approval"
    );
    let mut broken = ns.clone();
    broken.review.auto_approve_when = Some("environment ==".into());
    assert!(!auto_approves(&broken, &json!({"environment": "dev"})));
}

#[test]
fn an_action_is_checked_by_what_it_adds() {
    let t = ty("k8s-namespace");
    let ns = |cpu: i64| {
        json!({"name": "web", "team": "payments", "environment": "dev",
               "cpu_limit": cpu, "memory_limit_gi": 4})
    };
    // Besides the asset, its team holds 100 of 128 cores and 2 of 3 namespaces.
    let besides = [
        QuotaUsage { count: 2, sum: 0 },
        QuotaUsage { count: 5, sum: 100 },
    ];
    let grow = action_quota_report(&t, &ns(20), &ns(29), &besides, &[]);
    assert_eq!(
        grow.iter().map(|q| q.ok).collect::<Vec<_>>(),
        [true, false],
        "{grow:?}"
    );
    assert_eq!(
        grow[1].description,
        "team payments: 100 of 128 CPU limit (cores) used besides this asset, this change makes 129"
    );
    // Over the limits already (lowered since): a shrink, or an action that adds
    // nothing, is not held up; growing further is.
    let over = [
        QuotaUsage { count: 3, sum: 0 },
        QuotaUsage { count: 5, sum: 120 },
    ];
    let shrink = action_quota_report(&t, &ns(20), &ns(10), &over, &[]);
    assert!(shrink.iter().all(|q| q.ok), "{shrink:?}");
    let same = action_quota_report(&t, &ns(20), &ns(20), &over, &[]);
    assert!(same.iter().all(|q| q.ok), "{same:?}");
    let grows = action_quota_report(&t, &ns(20), &ns(21), &over, &[]);
    assert!(!grows[1].ok, "{grows:?}");
    // A usage the server did not send still fails closed.
    let unknown = action_quota_report(&t, &ns(20), &ns(10), &[], &[]);
    assert!(unknown.iter().all(|q| !q.ok), "{unknown:?}");
}

#[test]
fn a_whole_number_written_as_a_decimal_is_summed() {
    let t = ty("k8s-namespace");
    let params = json!({"name": "web", "team": "payments", "environment": "dev",
                        "cpu_limit": 64.0, "memory_limit_gi": 4});
    let sums: Vec<_> = quota_queries(&t, &params)
        .into_iter()
        .filter_map(|q| q.sum_param)
        .collect();
    assert_eq!(sums, ["cpu_limit"], "the sum rule is not skipped");
    let usage = [QuotaUsage::default(), QuotaUsage { count: 1, sum: 100 }];
    let report = quota_report(&t, &params, &usage, &[]);
    assert_eq!(report[1].requested, 64);
    assert!(!report[1].ok);
}

#[test]
fn nothing_new_may_depend_on_an_asset_being_retired() {
    let t = ty("postgres-database");
    let usage = [QuotaUsage::default(), QuotaUsage::default()];
    let found = [DependencyFound {
        asset_name: Some("payments-apps-staging".into()),
        retired_by: Some(41),
    }];
    let report = evaluate(&validator(&t), &t, &pg("staging", false), &usage, &found);
    assert!(!report.passed());
    let check = &report.dependencies[0];
    assert!(!check.ok);
    assert!(
        check
            .description
            .ends_with(": payments-apps-staging is being retired by request #41"),
        "{}",
        check.description
    );
}

#[test]
fn a_rule_whose_value_cannot_be_read_fails_instead_of_being_skipped() {
    // A type written in code, past the loader: the summed parameter has no maximum.
    let mut t = ty("k8s-namespace");
    if let Some(cpu) = t
        .parameters
        .pointer_mut("/properties/cpu_limit")
        .and_then(Value::as_object_mut)
    {
        cpu.remove("maximum");
    }
    let usage = [QuotaUsage::default(), QuotaUsage::default()];
    for too_large in [json!(9_223_372_036_854_775_808_u64), json!(1e300)] {
        let params = json!({"name": "web", "team": "payments", "environment": "dev",
                            "cpu_limit": too_large, "memory_limit_gi": 4});
        let report = quota_report(&t, &params, &usage, &[]);
        let failing: Vec<&QuotaCheck> = report.iter().filter(|q| !q.ok).collect();
        assert_eq!(failing.len(), 1, "{report:?}");
        assert_eq!(
            failing[0].description,
            "cpu_limit is not a whole number the quota can count (at most 9223372036854775807): \
             the quota on it cannot be checked"
        );
        assert_eq!(failing[0].limit, 128);
        let asset = json!({"name": "web", "team": "payments", "environment": "dev",
                           "cpu_limit": 4, "memory_limit_gi": 4});
        let action = action_quota_report(&t, &asset, &params, &usage, &[]);
        assert!(action.iter().any(|q| !q.ok), "{action:?}");
        let report = evaluate(&validator(&t), &t, &params, &usage, &[]);
        assert!(!report.passed(), "{report:?}");
    }
    let listed_team = json!({"name": "web", "team": ["payments"], "environment": "dev",
                             "cpu_limit": 4, "memory_limit_gi": 4});
    let report = quota_report(&t, &listed_team, &usage, &[]);
    let failing: Vec<&str> = report
        .iter()
        .filter(|q| !q.ok)
        .map(|q| q.description.as_str())
        .collect();
    assert_eq!(
        failing,
        ["team holds a list or an object, which cannot scope a quota: the quota on it cannot be checked";
            2]
    );
}

/// A total past what 64 bits hold is past the limit, even a limit of
/// i64::MAX (a saturated sum would equal it and pass).
#[test]
fn a_total_that_overflows_is_over_the_limit() {
    let over = quota_check(
        "overall",
        (Some(i64::MAX - 1), 5),
        i64::MAX,
        "GB".into(),
        false,
    );
    assert!(!over.ok, "{over:?}");
    assert_eq!(
        over.description,
        "overall: 9223372036854775806 of 9223372036854775807 GB used, this request makes more \
         than 9223372036854775807"
    );
    let exact = quota_check(
        "overall",
        (Some(i64::MAX - 5), 5),
        i64::MAX,
        "GB".into(),
        false,
    );
    assert!(exact.ok, "{exact:?}");
}

/// Parameters over the size limit get one error and nothing else: no quota
/// lookups, no requirement lookups, no rendered name, hint or policy.
#[test]
fn oversized_parameters_reach_no_rule() {
    let t = ty("postgres-database");
    let mut params = pg("prod", true);
    if let Some(map) = params.as_object_mut() {
        map.insert(
            "name".into(),
            json!("a".repeat(crate::validate::MAX_PARAMS_BYTES)),
        );
    }
    assert!(quota_queries(&t, &params).is_empty());
    assert!(dependency_queries(&t, &params).is_err());
    assert!(risk_hints(&t, &params).is_empty());
    assert!(!auto_approves(&t, &params));
    let report = evaluate(&validator(&t), &t, &params, &[], &[]);
    assert_eq!(report.field_errors.len(), 1, "{report:?}");
    assert!(
        report.field_errors[0]
            .message
            .starts_with("the parameters take")
    );
    assert!(report.quotas.is_empty() && report.dependencies.is_empty());
    assert!(report.risks.is_empty() && report.resource_name.is_none());
}
