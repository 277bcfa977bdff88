//! A `pipeline` step as a type declares it: how to trigger a CI/CD run over HTTP
//! and how to follow it. Texts are templates; the token is named, never given.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Triggers a CI/CD run (GitHub Actions `workflow_dispatch`, a GitLab pipeline,
/// an Argo Workflow, …) and follows its status to an end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineStep {
    /// The trigger's HTTP method, e.g. POST.
    pub method: String,
    /// Template: the trigger URL.
    pub url: String,
    /// Templates: extra headers (never a credential: use `token`).
    pub headers: BTreeMap<String, String>,
    /// Template rendering the JSON body of the trigger; `None`: no body.
    pub body: Option<String>,
    /// The settings' token sent with every call, when the system needs one.
    pub token: Option<PipelineToken>,
    /// Template over the trigger's answer: `answer` (its JSON body) and
    /// `location` (its `Location` header), giving the URL to poll.
    pub status_url: String,
    /// A JSON pointer into the status answer, e.g. `/status`.
    pub status_pointer: String,
    /// Values at the pointer meaning the run succeeded.
    pub success: Vec<String>,
    /// Values meaning it failed; any other value means it is still going.
    pub failure: Vec<String>,
    /// How long the run may take, from its trigger.
    pub deadline_seconds: u64,
    /// The pause between two polls.
    pub poll_seconds: u64,
}

/// A token from the server's settings and the header that carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineToken {
    /// The token's name in the settings.
    pub name: String,
    /// The header, e.g. `Authorization` or `PRIVATE-TOKEN`.
    pub header: String,
    /// Put before the token, e.g. `Bearer `.
    pub prefix: String,
}

impl PipelineStep {
    pub const DEFAULT_DEADLINE_SECONDS: u64 = 3600;
    pub const MAX_DEADLINE_SECONDS: u64 = 86_400;
    pub const DEFAULT_POLL_SECONDS: u64 = 10;
    pub const MAX_POLL_SECONDS: u64 = 600;
    pub const METHODS: &'static [&'static str] = &["POST", "PUT", "PATCH", "GET"];
}
