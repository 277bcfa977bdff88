//! The YAML shape of catalog files. Kept apart from the model so the file format
//! can stay friendly (`approvers: { role: reviewer }`) while the model stays flat.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DictionaryFile {
    pub name: String,
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
    pub terms: Vec<TermFile>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TermFile {
    pub key: String,
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TypeFile {
    pub name: String,
    pub title: String,
    pub description: String,
    pub owner: String,
    #[serde(default)]
    pub owner_param: Option<String>,
    #[serde(default)]
    pub environment_param: Option<String>,
    #[serde(default)]
    pub search: Vec<String>,
    pub parameters: serde_json::Value,
    pub naming: NamingFile,
    #[serde(default)]
    pub quota: Vec<QuotaFile>,
    #[serde(default)]
    pub requires: Vec<RequirementFile>,
    pub review: ReviewFile,
    #[serde(default)]
    pub risk_hints: Vec<RiskHintFile>,
    pub outputs: Vec<OutputFile>,
    #[serde(default)]
    pub execute: Option<Vec<StepFile>>,
    #[serde(default)]
    pub execution_limits: Option<LimitsFile>,
    #[serde(default)]
    pub generated_secrets: Vec<GeneratedSecretFile>,
    #[serde(default)]
    pub checks: Vec<CheckFile>,
    #[serde(default)]
    pub monitoring: Vec<MonitoringFile>,
    #[serde(default)]
    pub actions: Vec<ActionFile>,
}

/// A day-2 action: a small type bound to an existing asset. Every field a type
/// has for its creation it may give again; what it leaves out it takes from the
/// type (review, outputs, checks) or goes without (quota, requirements).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ActionFile {
    pub name: String,
    pub title: String,
    pub description: String,
    /// Completing the action retires the asset: the type's outputs are removed.
    #[serde(default)]
    pub retires: bool,
    /// The action's own form; absent: no parameters.
    #[serde(default)]
    pub parameters: Option<serde_json::Value>,
    #[serde(default)]
    pub review: Option<ReviewFile>,
    #[serde(default)]
    pub risk_hints: Vec<RiskHintFile>,
    #[serde(default)]
    pub outputs: Option<Vec<OutputFile>>,
    #[serde(default)]
    pub execute: Option<Vec<StepFile>>,
    #[serde(default)]
    pub checks: Option<Vec<CheckFile>>,
    /// Conditions that refuse the request, read against the asset as it is.
    #[serde(default)]
    pub rules: Vec<ActionRuleFile>,
    /// Parameters whose values a completed request of the action on the same
    /// asset may not have used already (a backup's name).
    #[serde(default)]
    pub unique_by: Vec<String>,
    /// A completed request of another action on the same asset that this one
    /// needs, found by the values of `by` (a restore needs its backup).
    #[serde(default)]
    pub refers_to: Option<ReferenceFile>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReferenceFile {
    pub action: String,
    pub by: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ActionRuleFile {
    pub when: String,
    #[serde(default)]
    pub field: Option<String>,
    pub message: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct GeneratedSecretFile {
    pub name: String,
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub length: Option<usize>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NamingFile {
    pub template: String,
    #[serde(default)]
    pub pattern: Option<String>,
    #[serde(default)]
    pub pattern_description: Option<String>,
    #[serde(default)]
    pub max_length: Option<usize>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct QuotaFile {
    pub per: Vec<String>,
    #[serde(default)]
    pub max_count: Option<u64>,
    #[serde(default)]
    pub sum: Option<String>,
    #[serde(default)]
    pub max: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RequirementFile {
    #[serde(rename = "type")]
    pub type_name: String,
    #[serde(rename = "match")]
    pub match_: BTreeMap<String, String>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReviewFile {
    pub approvers: ApproversFile,
    #[serde(default)]
    pub required: Option<u32>,
    #[serde(default)]
    pub auto_approve: Option<AutoApproveFile>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ApproversFile {
    pub role: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AutoApproveFile {
    pub when: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RiskHintFile {
    pub when: String,
    pub message: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct OutputFile {
    #[serde(default)]
    pub name: Option<String>,
    pub path: String,
    pub template: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LimitsFile {
    #[serde(default)]
    pub max_attempts: Option<u32>,
    #[serde(default)]
    pub step_timeout_seconds: Option<u64>,
}

/// One `execute` step. Flat rather than tagged by driver, so that an unknown driver
/// or a field given to the wrong driver is reported in words the author can act on
/// instead of serde's "unknown variant".
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StepFile {
    pub driver: String,
    /// gitops: the outputs to commit, by name.
    #[serde(default)]
    pub outputs: Option<Vec<String>>,
    /// gitops: the commit message template.
    #[serde(default)]
    pub message: Option<String>,
    /// command: the program to run.
    #[serde(default)]
    pub program: Option<String>,
    /// command: its arguments, each a template.
    #[serde(default)]
    pub args: Option<Vec<String>>,
    /// command: the outputs written into its working directory, by name.
    #[serde(default)]
    pub inputs: Option<Vec<String>>,
    /// command: environment variables, each a template.
    #[serde(default)]
    pub env: Option<BTreeMap<String, String>>,
    /// command: environment variables holding a secret parameter's value.
    #[serde(default)]
    pub secret_env: Option<BTreeMap<String, String>>,
    /// command: environment variables holding a secret's SCRAM-SHA-256 verifier.
    #[serde(default)]
    pub secret_env_scram: Option<BTreeMap<String, String>>,
    /// command: seconds before the program is stopped.
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
    /// command: a PostgreSQL server of the settings, passed as libpq variables.
    #[serde(default)]
    pub postgres_server: Option<String>,
    /// command: exit statuses that mean "try again later" rather than "failed".
    #[serde(default)]
    pub retry_exit_codes: Option<Vec<i32>>,
    /// pipeline: the trigger's HTTP method (default POST).
    #[serde(default)]
    pub method: Option<String>,
    /// pipeline: the trigger URL.
    #[serde(default)]
    pub url: Option<String>,
    /// pipeline: extra headers, each a template.
    #[serde(default)]
    pub headers: Option<BTreeMap<String, String>>,
    /// pipeline: the trigger's JSON body, a template.
    #[serde(default)]
    pub body: Option<String>,
    /// pipeline: the name of a token in the server's settings.
    #[serde(default)]
    pub token: Option<String>,
    /// pipeline: the header carrying the token (default Authorization).
    #[serde(default)]
    pub token_header: Option<String>,
    /// pipeline: put before the token (default "Bearer " in Authorization).
    #[serde(default)]
    pub token_prefix: Option<String>,
    /// pipeline: the URL to poll, a template over the trigger's answer.
    #[serde(default)]
    pub status_url: Option<String>,
    /// pipeline: a JSON pointer into the status answer.
    #[serde(default)]
    pub status_pointer: Option<String>,
    /// pipeline: status values meaning success.
    #[serde(default)]
    pub success: Option<Vec<String>>,
    /// pipeline: status values meaning failure.
    #[serde(default)]
    pub failure: Option<Vec<String>>,
    /// pipeline: seconds the run may take from its trigger.
    #[serde(default)]
    pub deadline_seconds: Option<u64>,
    /// pipeline: seconds between polls.
    #[serde(default)]
    pub poll_seconds: Option<u64>,
}

/// One acceptance check. Flat rather than tagged by kind, for the same reason as
/// [`StepFile`]: a field of another kind is reported in the author's words.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CheckFile {
    pub kind: String,
    #[serde(default)]
    pub description: Option<String>,
    /// git-file: the path in the repository.
    #[serde(default)]
    pub path: Option<String>,
    /// http: the URL to ask.
    #[serde(default)]
    pub url: Option<String>,
    /// http: the status expected (default 200).
    #[serde(default)]
    pub status: Option<u16>,
    /// http: a text the body must contain.
    #[serde(default)]
    pub body_contains: Option<String>,
    /// http: a pattern the body must match.
    #[serde(default)]
    pub body_matches: Option<String>,
    /// tcp: host:port.
    #[serde(default)]
    pub address: Option<String>,
    /// http, tcp: seconds to keep trying.
    #[serde(default)]
    pub deadline_seconds: Option<u64>,
    /// command: the program to run.
    #[serde(default)]
    pub program: Option<String>,
    /// command: its arguments, each a template.
    #[serde(default)]
    pub args: Option<Vec<String>>,
    /// command: seconds before the program is stopped.
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
    /// postgres: the server of the settings to connect to.
    #[serde(default)]
    pub server: Option<String>,
    /// postgres: the database to connect to.
    #[serde(default)]
    pub database: Option<String>,
    /// postgres: the role to connect as.
    #[serde(default)]
    pub user: Option<String>,
    /// postgres: the secret holding the role's password.
    #[serde(default)]
    pub password_secret: Option<String>,
    /// postgres: the query to run (not a template).
    #[serde(default)]
    pub query: Option<String>,
    /// postgres: what the first column of the first row must read.
    #[serde(default)]
    pub expect: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MonitoringFile {
    pub name: String,
    pub kind: String,
    pub target: String,
}
