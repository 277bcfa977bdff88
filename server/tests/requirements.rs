//! A requirement the pre-check cannot evaluate blocks the request instead of letting
//! it pass unchecked.

// Each test binary uses a part of the shared harness.
#[allow(dead_code, unused_macros)]
mod common;

use common::{TestApp, TestResult, draft};
use serde_json::json;
use slipway_server::services::{ServiceError, requests};
use slipway_server::storage::Engine;

/// The requirement names the namespace through an optional parameter.
const QUEUE_TYPE: &str = r#"name: queue
title: Queue
description: A message queue in a namespace the requester names.
owner: platform
parameters:
  type: object
  additionalProperties: false
  required: [name, team, environment]
  properties:
    name: { type: string, title: Name, pattern: "^[a-z][a-z0-9-]{1,30}$" }
    team: { type: string, title: Team, x-dictionary: teams }
    environment: { type: string, title: Environment, x-dictionary: environments }
    namespace_name: { type: string, title: Namespace }
naming:
  template: "{{ team }}-{{ name }}-{{ environment }}"
requires:
  - type: k8s-namespace
    match: { name: "{{ namespace_name }}" }
review:
  approvers: { role: reviewer }
outputs:
  - path: "{{ environment }}/{{ team }}/queue/{{ name }}.yaml"
    template: queue/queue.yaml.j2
"#;

#[tokio::test]
async fn an_unevaluable_requirement_blocks_the_request() -> TestResult {
    let dir = tempfile::tempdir()?;
    common::copy_dir(&common::shipped_catalog(), dir.path())?;
    std::fs::write(dir.path().join("types/queue.yaml"), QUEUE_TYPE)?;
    std::fs::create_dir_all(dir.path().join("templates/queue"))?;
    std::fs::write(
        dir.path().join("templates/queue/queue.yaml.j2"),
        "name: {{ resource_name }}\n",
    )?;
    let app = TestApp::start_with_catalog(Engine::Sqlite, Some(dir))
        .await?
        .ok_or("SQLite is always available")?;
    let alice = app.user("alice").await?;
    let params = json!({"name": "jobs", "team": "payments", "environment": "dev"});

    let report = requests::precheck(&app.state, &alice, "queue", &params, None).await?;
    assert!(!report.passed(), "{report:?}");
    assert!(
        report
            .field_errors
            .iter()
            .any(|e| e.message.contains("requirements could not be checked")),
        "{report:?}"
    );
    let refused = requests::submit(&app.state, &alice, &draft("queue", params)).await;
    assert!(
        matches!(refused, Err(ServiceError::PrecheckFailed(_))),
        "{refused:?}"
    );
    assert_eq!(app.count("requests").await?, 0);
    Ok(())
}
