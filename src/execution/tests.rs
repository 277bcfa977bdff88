use serde_json::json;

use super::*;
use crate::catalog::Catalog;
use crate::render;
use crate::test_support::{shipped_catalog, with_file};

const RUN: RunInfo<'static> = RunInfo {
    request_id: 7,
    revision: 2,
    requester: "alice",
    round: 0,
};

fn ns_params() -> Value {
    json!({"name": "checkout", "team": "payments", "environment": "dev",
           "cpu_limit": 2, "memory_limit_gi": 4, "admins": []})
}

#[test]
fn the_default_step_commits_every_file_with_a_message_naming_the_request() {
    let catalog = shipped_catalog();
    let Some(ty) = catalog.resource_type("k8s-namespace") else {
        panic!("k8s-namespace is shipped");
    };
    let name = "payments-checkout-dev";
    let set =
        render::change_set(&catalog, ty, &ns_params(), name, &[]).unwrap_or_else(|e| panic!("{e}"));
    let steps = plan(ty, &ns_params(), name, &set, RUN).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        steps,
        [PlannedStep::Gitops {
            files: set.files.clone(),
            removed: Vec::new(),
            message: "k8s-namespace payments-checkout-dev (request #7, revision 2)\n\n\
                      Requested by alice through Slipway."
                .into(),
        }]
    );
}

#[test]
fn named_outputs_go_to_their_step_with_a_rendered_message() {
    let type_file = crate::test_support::shipped_text("types/k8s-namespace.yaml").replace(
        "    template: k8s-namespace/rolebinding.yaml.j2\n",
        "    template: k8s-namespace/rolebinding.yaml.j2\n    name: access\n",
    ) + "\nexecute:\n  - driver: gitops\n    outputs: [access]\n    message: \"access for {{ resource_name }} (#{{ request_id }} r{{ revision }} by {{ requester }})\"\n  - driver: gitops\n";
    let catalog = Catalog::from_files(&with_file("types/k8s-namespace.yaml", &type_file))
        .unwrap_or_else(|e| panic!("{e}"));
    let Some(ty) = catalog.resource_type("k8s-namespace") else {
        panic!("k8s-namespace is loaded");
    };
    let name = "payments-checkout-dev";
    let set =
        render::change_set(&catalog, ty, &ns_params(), name, &[]).unwrap_or_else(|e| panic!("{e}"));
    let steps = plan(ty, &ns_params(), name, &set, RUN).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(steps.len(), 2);
    let paths: Vec<&str> = steps[0].files().iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        ["dev/payments/k8s-namespace/checkout/rolebinding.yaml"]
    );
    assert_eq!(
        steps[0],
        PlannedStep::Gitops {
            files: steps[0].files().to_vec(),
            removed: Vec::new(),
            message: "access for payments-checkout-dev (#7 r2 by alice)".into()
        }
    );
    assert_eq!(
        steps[1].files().len(),
        3,
        "the second step commits everything"
    );

    // A change set stored before outputs were named cannot be split by name.
    let mut old = set.clone();
    old.outputs.clear();
    let refused = plan(ty, &ns_params(), name, &old, RUN).err();
    assert_eq!(
        refused.map(|e| e.what),
        Some("execute[0].outputs".to_string())
    );
}

const PIPELINE_TYPE: &str = r#"name: widget
title: Widget
description: A test type.
owner: platform
parameters:
  type: object
  required: [name]
  properties:
    name: { type: string, pattern: "^[a-z]+$" }
naming: { template: "{{ name }}" }
review: { approvers: { role: reviewer } }
outputs:
  - { path: "w/{{ name }}.yaml", template: k8s-namespace/namespace.yaml.j2 }
execute:
  - driver: pipeline
    url: "https://ci.example.com/run/{{ name }}"
    token: ci
    headers: { X-Resource: "{{ resource_name }}" }
    body: '{"name": "{{ name }}", "key": "{{ run_key }}"}'
    status_url: "{{ answer.links.status }}{{ location }}"
    status_pointer: /run/state
    success: [done]
    failure: [broken]
    poll_seconds: 2
"#;

fn planned_pipeline(name: &str) -> PlannedPipeline {
    let catalog = Catalog::from_files(&with_file("types/widget.yaml", PIPELINE_TYPE))
        .unwrap_or_else(|e| panic!("{e}"));
    let Some(ty) = catalog.resource_type("widget") else {
        panic!("widget is loaded");
    };
    let params = json!({ "name": name });
    let steps =
        plan(ty, &params, name, &ChangeSet::default(), RUN).unwrap_or_else(|e| panic!("{e}"));
    match steps.as_slice() {
        [PlannedStep::Pipeline(pipeline)] => pipeline.clone(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_pipeline_step_is_planned_with_its_run_key_and_a_json_body() {
    let pipeline = planned_pipeline("web");
    assert_eq!(pipeline.url, "https://ci.example.com/run/web");
    assert_eq!(pipeline.run_key, "slipway-7-2-0");
    assert_eq!(
        pipeline.body.as_deref(),
        Some(r#"{"name": "web", "key": "slipway-7-2-0"}"#)
    );
    assert_eq!(
        pipeline.headers,
        [("X-Resource".to_string(), "web".to_string())]
    );
    assert_eq!(pipeline.method, "POST");
    assert_eq!(pipeline.deadline_seconds, 3600);
    assert_eq!(pipeline.poll_seconds, 2);
    assert_eq!(
        run_key(7, 2, 0, 1),
        "slipway-7-2-0-retry1",
        "a retry starts a run under a key of its own"
    );
    let token = pipeline
        .token
        .as_ref()
        .map(|t| (t.name.as_str(), t.header.as_str(), t.prefix.as_str()));
    assert_eq!(token, Some(("ci", "Authorization", "Bearer ")));
}

#[test]
fn the_status_url_comes_from_the_answer_or_its_location_and_values_decide() {
    let pipeline = planned_pipeline("web");
    let answer = json!({"links": {"status": "https://ci.example.com/runs/9"}});
    assert_eq!(
        pipeline.status_url(&answer, None),
        Ok("https://ci.example.com/runs/9".to_string())
    );
    let mut by_location = pipeline.clone();
    by_location.status_url = "{{ location }}".into();
    assert_eq!(
        by_location.status_url(&Value::Null, Some("https://ci.example.com/runs/10")),
        Ok("https://ci.example.com/runs/10".to_string())
    );
    match by_location.status_url(&Value::Null, None) {
        Ok(url) => panic!("{url:?}"),
        Err(e) => {
            assert_eq!(e.what, "execute[0].status_url");
            assert!(
                e.message
                    .starts_with("rendered from the trigger's answer, "),
                "{e}"
            );
        }
    }
    match pipeline.status_url(&json!({"id": 3}), None) {
        Ok(url) => panic!("{url:?}"),
        Err(e) => assert!(
            e.message
                .starts_with("cannot be rendered from the trigger's answer: "),
            "{e}"
        ),
    }
    for (answer, verdict) in [
        (json!({}), PipelineVerdict::Running("none yet".into())),
        (
            json!({"run": {"state": null}}),
            PipelineVerdict::Running("none yet".into()),
        ),
        (
            json!({"run": {"state": "queued"}}),
            PipelineVerdict::Running("queued".into()),
        ),
        (
            json!({"run": {"state": "done"}}),
            PipelineVerdict::Succeeded("done".into()),
        ),
        (
            json!({"run": {"state": "broken"}}),
            PipelineVerdict::Failed("broken".into()),
        ),
        (
            json!({"run": {"state": 3}}),
            PipelineVerdict::Running("3".into()),
        ),
    ] {
        assert_eq!(pipeline.verdict(&answer), verdict, "{answer}");
    }
}

#[test]
fn a_pipeline_body_that_renders_broken_json_names_the_field() {
    let text = PIPELINE_TYPE.replace(
        r#"body: '{"name": "{{ name }}", "key": "{{ run_key }}"}'"#,
        r#"body: '{"name": {{ name }}}'"#,
    );
    let catalog = Catalog::from_files(&with_file("types/widget.yaml", &text))
        .unwrap_or_else(|e| panic!("{e}"));
    let Some(ty) = catalog.resource_type("widget") else {
        panic!("widget is loaded");
    };
    match plan(
        ty,
        &json!({"name": "web"}),
        "web",
        &ChangeSet::default(),
        RUN,
    ) {
        Ok(steps) => panic!("{steps:?}"),
        Err(e) => {
            assert_eq!(e.what, "execute[0].body");
            assert!(
                e.message.starts_with("the rendered body is not valid JSON"),
                "{e}"
            );
        }
    }
}

#[test]
fn a_value_with_quotes_stays_inside_its_json_string_and_a_header_takes_no_line_break() {
    let text = PIPELINE_TYPE.replace("/run/{{ name }}", "/run").replace(
        r#"body: '{"name": "{{ name }}", "key": "{{ run_key }}"}'"#,
        r#"body: '{"name": "{{ name }}", "key": "{{ run_key }}", "as_json": {{ name | tojson }}, "len": {{ name | length }}, "labels": { {% for k, v in {name: 1} | items %}"{{ k }}": {{ v }}{% endfor %} } }'"#,
    );
    let catalog = Catalog::from_files(&with_file("types/widget.yaml", &text))
        .unwrap_or_else(|e| panic!("{e}"));
    let Some(ty) = catalog.resource_type("widget") else {
        panic!("widget is loaded");
    };
    let hostile = "x\", \"ref\": \"evil\\\u{1}";
    let steps = plan(
        ty,
        &json!({ "name": hostile }),
        "web",
        &ChangeSet::default(),
        RUN,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let [PlannedStep::Pipeline(pipeline)] = steps.as_slice() else {
        panic!("{steps:?}");
    };
    let body: Value = serde_json::from_str(pipeline.body.as_deref().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        body,
        json!({
            "name": hostile,
            "key": "slipway-7-2-0",
            "as_json": hostile,
            "len": hostile.chars().count(),
            "labels": { hostile: 1 },
        }),
        "strings are escaped as they go out; tojson's output is JSON already"
    );

    match plan(
        ty,
        &json!({ "name": "web" }),
        "web\r\nX-Injected: yes",
        &ChangeSet::default(),
        RUN,
    ) {
        Ok(steps) => panic!("{steps:?}"),
        Err(e) => {
            assert_eq!(e.what, "execute[0].headers.X-Resource");
            assert!(e.message.contains("line break"), "{e}");
        }
    }
}

#[test]
fn a_value_the_program_would_read_as_an_option_is_refused() {
    let texts = |values: &[&str]| values.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let templates = texts(&["--quiet", "-f", "{{ file }}", "{{ name }}"]);
    let fine = texts(&["--quiet", "-f", "a.sql", "web"]);
    assert!(crate::render::refuse_smuggled_options("execute[0]", &templates, &fine).is_ok());
    let smuggled = texts(&["--quiet", "-f", "a.sql", "--file=/etc/shadow"]);
    let refused = crate::render::refuse_smuggled_options("execute[1]", &templates, &smuggled).err();
    assert_eq!(
        refused.map(|e| e.what),
        Some("execute[1].args[3]".to_string())
    );
    let after_the_end = texts(&["--", "{{ name }}"]);
    assert!(
        crate::render::refuse_smuggled_options(
            "execute[0]",
            &after_the_end,
            &texts(&["--", "-rf"])
        )
        .is_ok()
    );
    let before_the_end = texts(&["{{ name }}", "--"]);
    assert!(
        crate::render::refuse_smuggled_options(
            "execute[0]",
            &before_the_end,
            &texts(&["-rf", "--"])
        )
        .is_err()
    );
}
