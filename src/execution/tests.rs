use serde_json::json;

use super::*;
use crate::catalog::Catalog;
use crate::render;
use crate::test_support::{shipped_catalog, with_file};

const RUN: RunInfo<'static> = RunInfo {
    request_id: 7,
    revision: 2,
    requester: "alice",
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
