//! Generated parameter sets thrown at the pre-check and at submit for the shipped
//! types: strings with any character (control characters, huge ones), numbers far
//! out of range, wrong types, nested objects, missing and extra fields. Whatever
//! comes in, the answer is a 4xx-class error or a request, never an internal
//! error; and every request that is stored has current parameters its type's
//! schema accepts. On SQLite and (with `SLIPWAY_TEST_POSTGRES_URL`) PostgreSQL,
//! with case counts that keep it to seconds.

#[allow(dead_code, unused_macros)]
#[macro_use]
mod common;

use common::{TestApp, TestResult, draft, namespace_params, postgres_params};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Map, Number, Value, json};
use slipway_core::validate::ParamValidator;
use slipway_server::services::{Caller, ServiceError, requests};
use slipway_server::storage::Engine;

/// Enough to run in seconds; `PROPTEST_CASES=1000` for a deeper look.
const CASES: u32 = 256;
const SHIPPED_TYPES: [&str; 3] = ["k8s-namespace", "postgres-database", "shared-database"];

/// Strings a form or a script could send: ordinary, any Unicode, control
/// characters, and a few far longer than any limit.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z][a-z0-9-]{0,20}",
        2 => any::<String>(),
        2 => "[\\x00-\\x1f\\x7f\u{202e}\u{feff}\u{200b}a-z]{0,16}",
        1 => (1usize..200_000).prop_map(|n| "x".repeat(n)),
        1 => Just(String::new()),
    ]
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e300f64..1e300).prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop::sample::select(vec![
            json!(0),
            json!(-1),
            json!(1.5),
            json!(i64::MAX),
            json!(i64::MIN),
            json!(u64::MAX),
            json!(1e308),
        ]),
    ]
}

/// Any JSON value, nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(text(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// One change to a valid parameter set.
#[derive(Debug, Clone)]
enum Mutation {
    Set(String, Value),
    Remove(String),
    Extra(String, Value),
}

fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "name", "team", "environment", "cpu_limit", "memory_limit_gi", "admins",
            "size", "storage_gb", "version", "high_availability", "extensions",
            "owner_password",
        ])
        .prop_map(str::to_string),
        1 => text(),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (field_name(), json_value()).prop_map(|(f, v)| Mutation::Set(f, v)),
        2 => field_name().prop_map(Mutation::Remove),
        1 => (text(), json_value()).prop_map(|(f, v)| Mutation::Extra(f, v)),
    ]
}

/// A type name (mostly a shipped one) and its parameters: a valid set with a few
/// mutations, or now and then something that is not a parameter set at all.
fn case() -> impl Strategy<Value = (String, Value)> {
    let type_name = prop_oneof![
        8 => prop::sample::select(SHIPPED_TYPES.to_vec()).prop_map(str::to_string),
        1 => text(),
    ];
    let params = prop_oneof![
        6 => (
            "[a-z][a-z0-9-]{1,12}",
            prop::sample::select(vec!["dev", "staging", "prod"]),
            0..3u8,
            prop::collection::vec(mutation(), 0..4),
        )
            .prop_map(|(name, environment, kind, mutations)| {
                let mut params = match kind {
                    0 => namespace_params(&name, "payments", environment, 2),
                    1 => postgres_params(&name, environment, 20),
                    _ => json!({
                        "name": name.replace('-', "_"),
                        "team": "payments",
                        "environment": environment,
                        "connection_limit": 20,
                    }),
                };
                if let Some(map) = params.as_object_mut() {
                    for mutation in mutations {
                        match mutation {
                            Mutation::Set(field, value) | Mutation::Extra(field, value) => {
                                map.insert(field, value);
                            }
                            Mutation::Remove(field) => {
                                map.remove(&field);
                            }
                        }
                    }
                }
                params
            }),
        1 => json_value(),
    ];
    (type_name, params)
}

/// Minimal failing inputs the generator found, kept as fixed cases.
fn found_before() -> Vec<(&'static str, Value)> {
    vec![
        // A NUL reached a requirement's lookup, which PostgreSQL cannot compare.
        (
            "postgres-database",
            json!({"name": "a0", "team": "\u{0}", "environment": "dev",
                   "cpu_limit": 2, "memory_limit_gi": 4, "admins": ["alice"]}),
        ),
        (
            "k8s-namespace",
            namespace_params("a0", "pay\u{0}ments", "dev", 2),
        ),
    ]
}

fn not_internal<T>(what: &str, result: &Result<T, ServiceError>) -> Result<(), TestCaseError> {
    if let Err(ServiceError::Internal(message)) = result {
        return Err(TestCaseError::fail(format!(
            "{what} answered an internal error: {message}"
        )));
    }
    Ok(())
}

async fn check_case(
    app: &TestApp,
    alice: &Caller,
    type_name: &str,
    params: &Value,
) -> Result<(), TestCaseError> {
    let state = &app.state;
    let checked = requests::precheck(state, alice, type_name, params, None).await;
    not_internal("the pre-check", &checked)?;
    let submitted = requests::submit(state, alice, &draft(type_name, params.clone())).await;
    not_internal("submit", &submitted)?;
    let Ok(id) = submitted else { return Ok(()) };
    let row = app
        .request(id)
        .await
        .map_err(|e| TestCaseError::fail(format!("request #{id} cannot be read: {e}")))?;
    let ty = state
        .catalog
        .resource_type(&row.type_name)
        .ok_or_else(|| TestCaseError::fail(format!("#{id} has unknown type {}", row.type_name)))?;
    let validator = ParamValidator::new(ty).map_err(TestCaseError::fail)?;
    let errors = validator.check(&row.params);
    prop_assert!(
        errors.is_empty(),
        "request #{id} was stored with parameters its schema refuses: {errors:?}\n{}",
        row.params
    );
    // Frees the quota, so later cases can be accepted too.
    let cancelled = requests::cancel(state, alice, id).await;
    not_internal("cancel", &cancelled)?;
    Ok(())
}

#[test]
fn precheck_and_submit_never_fail_inside_and_store_only_valid_params() -> TestResult {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    for engine in [Engine::Sqlite, Engine::Postgres] {
        match runtime.block_on(TestApp::start(engine))? {
            Some(app) => run_cases(&runtime, &app)?,
            None => eprintln!("{engine:?} SKIPPED: set SLIPWAY_TEST_POSTGRES_URL to run it"),
        }
    }
    Ok(())
}

fn run_cases(runtime: &tokio::runtime::Runtime, app: &TestApp) -> TestResult {
    let alice = runtime.block_on(app.user("alice"))?;
    // The namespaces the databases require, so some cases get past the dependency rule.
    for environment in ["dev", "staging"] {
        runtime.block_on(app.namespace(&alice, environment, &format!("base-{environment}")))?;
    }
    // Cases the generator once found, run every time.
    for (type_name, params) in found_before() {
        runtime
            .block_on(check_case(app, &alice, type_name, &params))
            .map_err(|e| format!("{:?}: {type_name} {params}: {e}", app.engine))?;
    }
    let accepted = std::sync::atomic::AtomicUsize::new(0);
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(CASES);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&case(), |(type_name, params)| {
            let before = runtime
                .block_on(app.count("requests"))
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            runtime.block_on(check_case(app, &alice, &type_name, &params))?;
            let after = runtime
                .block_on(app.count("requests"))
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            if after > before {
                accepted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Ok(())
        })
        .map_err(|e| format!("{:?}: {e}", app.engine))?;
    // Not vacuous: some generated sets are good enough to become requests.
    let accepted = accepted.into_inner();
    assert!(
        accepted > 0,
        "{:?}: no generated case was accepted",
        app.engine
    );
    eprintln!(
        "{:?}: {cases} cases, {accepted} accepted as requests",
        app.engine
    );
    Ok(())
}
