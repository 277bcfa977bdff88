//! Read models: what the services hand to the portal (and later the REST API).
//! Plain data so the browser can deserialize them too.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::diff::{FileDiff, ParamChange};
use crate::ids::{AssetId, RequestId, UserId};
use crate::listing::{Day, ListFilter};
use crate::precheck::PrecheckReport;
use crate::render::{ChangeSet, MonitoringItem};
use crate::state::RequestState;

/// What a person may do. Checked in the service layer, shown in the portal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Role {
    Requester,
    Reviewer,
    Platform,
    Auditor,
    Admin,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Requester,
        Role::Reviewer,
        Role::Platform,
        Role::Auditor,
        Role::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Requester => "requester",
            Role::Reviewer => "reviewer",
            Role::Platform => "platform",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == text)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserView {
    pub id: UserId,
    pub username: String,
    pub display_name: String,
    pub roles: Vec<Role>,
    pub teams: Vec<String>,
}

impl UserView {
    /// Admins hold every role implicitly.
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role) || self.roles.contains(&Role::Admin)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TypeSummary {
    pub name: String,
    pub title: String,
    pub description: String,
    pub owner: String,
    pub auto_approve_when: Option<String>,
    /// Why this server cannot carry out requests of the type (a setting it
    /// needs is missing), if it cannot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RequestSummary {
    pub id: RequestId,
    pub type_name: String,
    pub type_title: String,
    pub resource_name: String,
    pub state: RequestState,
    pub revision: i64,
    pub requester: String,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RevisionView {
    pub revision: i64,
    pub params: Value,
    pub precheck: PrecheckReport,
    pub change_set: ChangeSet,
    pub change_set_hash: String,
    /// The catalog version of the type that rendered the change set ('' when it
    /// was rendered before versions were recorded).
    #[serde(default)]
    pub catalog_version: String,
    pub author: String,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DecisionView {
    pub revision: i64,
    /// The reviewer's name, or the policy that decided.
    pub decided_by: String,
    pub decision: String,
    pub comment: String,
    pub change_set_hash: String,
    pub voided: bool,
    pub at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CheckResultView {
    pub revision: i64,
    /// The verification round of the revision: 1 first, one more after each retry.
    #[serde(default = "first_attempt")]
    pub attempt: i64,
    pub kind: String,
    /// What the check looked at: a path, URL, address or command line.
    #[serde(default)]
    pub target: String,
    pub description: String,
    pub passed: bool,
    pub detail: String,
    /// Tries within the check's deadline (`http` and `tcp` try until it passes).
    #[serde(default = "first_attempt")]
    pub tries: i64,
    #[serde(default)]
    pub duration_ms: i64,
    pub at: String,
}

fn first_attempt() -> i64 {
    1
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TimelineEntry {
    pub at: String,
    pub actor: String,
    pub action: String,
    pub from_state: Option<String>,
    pub to_state: Option<String>,
    pub detail: String,
}

/// One attempt of one execution step: which driver, how it ended, what it said.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StepView {
    /// The attempt's number, which its live progress events name as `step_id`.
    #[serde(default)]
    pub id: i64,
    pub revision: i64,
    /// 1 for the type's first `execute` step.
    pub step: i64,
    pub driver: String,
    /// The job attempt it ran in.
    pub attempt: i64,
    /// `running`, `done` or `failed`.
    pub state: String,
    pub summary: String,
    /// The driver's log lines (a command's output), secrets blanked.
    pub log: String,
    /// Whether the log was left out: a request's page carries the logs of its
    /// newest 20 step attempts only, the older ones with their summary.
    #[serde(default)]
    pub log_omitted: bool,
    pub commit: Option<String>,
    pub started_at: String,
}

/// One thing that happened while a request's job ran, as its live progress
/// (`GET …/requests/{id}/events`, server-sent events) reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProgressEvent {
    /// Increasing; also the event's SSE `id`, after which `Last-Event-ID` resumes.
    pub id: i64,
    pub kind: ProgressKind,
    /// The step attempt it belongs to (`steps[].id` of the request).
    pub step_id: i64,
    /// 1 for the type's first `execute` step.
    pub step: i64,
    pub attempt: i64,
    pub driver: String,
    /// For `step`: the step's new state (`running`, `done` or `failed`); for
    /// `line`: one line the driver reported, secrets blanked.
    pub text: String,
    /// For a step that ended: its summary.
    #[serde(default)]
    pub summary: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ProgressKind {
    /// A step attempt started or ended.
    Step,
    /// A line of the driver's output.
    Line,
}

impl ProgressKind {
    /// The SSE event name.
    pub fn as_str(self) -> &'static str {
        match self {
            ProgressKind::Step => "step",
            ProgressKind::Line => "line",
        }
    }

    pub fn parse(text: &str) -> Option<ProgressKind> {
        match text {
            "step" => Some(ProgressKind::Step),
            "line" => Some(ProgressKind::Line),
            _ => None,
        }
    }
}

/// The last event of a live progress stream: the request reached a state where
/// nothing more runs until a person acts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProgressEnd {
    pub state: RequestState,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobView {
    pub state: String,
    /// Runs started, including those taken over from a worker that died.
    pub attempts: i64,
    /// Runs that may end in a failure before the request fails; a run cut short
    /// by its worker's death does not count.
    pub max_attempts: i64,
    /// Runs taken over from a worker that stopped renewing its lease.
    #[serde(default)]
    pub takeovers: i64,
    pub last_error: Option<String>,
}

impl JobView {
    /// Whether a worker may still run it or is still stopping it.
    pub fn is_unfinished(&self) -> bool {
        matches!(self.state.as_str(), "queued" | "running")
    }

    /// One sentence for people: where the job stands, its runs against the type's
    /// limit, and the runs that were cut short by a worker that stopped (they do
    /// not count against the limit).
    pub fn summary(&self) -> String {
        let runs = match self.attempts {
            0 => "no run yet".to_string(),
            1 => "1 run".to_string(),
            n => format!("{n} runs"),
        };
        let mut text = format!("Execution job {}: {runs}", self.state);
        match self.takeovers {
            0 => {}
            1 => text.push_str(", 1 of them taken over after its worker stopped"),
            n => text.push_str(&format!(
                ", {n} of them taken over after their worker stopped"
            )),
        }
        let failing = self.attempts - self.takeovers;
        text.push_str(&format!(
            "; {failing} of at most {} counted against the type's limit.",
            self.max_attempts
        ));
        // A job waiting for its next run says why the last one failed; a job that
        // ended has its outcome on the request itself.
        let waiting = matches!(self.state.as_str(), "queued" | "running");
        if let Some(error) = self.last_error.as_deref().filter(|_| waiting) {
            text.push_str(&format!(" The last run failed: {error}"));
        }
        text
    }
}

#[cfg(test)]
mod job_view_tests {
    use super::JobView;

    fn job(state: &str, attempts: i64, takeovers: i64, error: Option<&str>) -> JobView {
        JobView {
            state: state.into(),
            attempts,
            max_attempts: 3,
            takeovers,
            last_error: error.map(str::to_string),
        }
    }

    #[test]
    fn a_summary_counts_runs_and_takeovers_apart() {
        assert_eq!(
            job("queued", 0, 0, None).summary(),
            "Execution job queued: no run yet; 0 of at most 3 counted against the type's limit."
        );
        assert_eq!(
            job("done", 1, 0, Some("stale")).summary(),
            "Execution job done: 1 run; 1 of at most 3 counted against the type's limit."
        );
        assert_eq!(
            job("running", 3, 2, None).summary(),
            "Execution job running: 3 runs, 2 of them taken over after their worker stopped; \
             1 of at most 3 counted against the type's limit."
        );
        assert_eq!(
            job("queued", 2, 1, Some("step 1 (gitops): the remote refused")).summary(),
            "Execution job queued: 2 runs, 1 of them taken over after its worker stopped; \
             1 of at most 3 counted against the type's limit. \
             The last run failed: step 1 (gitops): the remote refused"
        );
        assert_eq!(
            job("failed", 3, 0, Some("step 1 (gitops): the remote refused")).summary(),
            "Execution job failed: 3 runs; 3 of at most 3 counted against the type's limit."
        );
    }
}

/// What changed since the revision this reviewer last saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReviewDiff {
    pub base_revision: i64,
    pub revision: i64,
    pub params: Vec<ParamChange>,
    pub files: Vec<FileDiff>,
}

/// The actions the viewer may take now; the services check them again on use.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Permissions {
    /// Any review decision: approve, request changes or reject.
    pub review: bool,
    /// Approve (a request whose type left the catalog can only be rejected).
    pub approve: bool,
    /// Request changes.
    pub request_changes: bool,
    pub resubmit: bool,
    pub cancel: bool,
    pub retry: bool,
    pub take_over: bool,
    pub resolve: bool,
    /// Close a manually handled request without an asset.
    pub abandon: bool,
}

/// The lists the portal's menu offers the viewer (`policy::menu` decides); the
/// services check again when a list is opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Menu {
    pub review_queue: bool,
    pub needs_attention: bool,
    pub audit_log: bool,
    pub flow_metrics: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RequestDetail {
    pub summary: RequestSummary,
    pub type_title: String,
    pub revisions: Vec<RevisionView>,
    pub decisions: Vec<DecisionView>,
    pub timeline: Vec<TimelineEntry>,
    pub checks: Vec<CheckResultView>,
    /// Every attempt of every execution step, oldest first.
    #[serde(default)]
    pub steps: Vec<StepView>,
    /// The newest live progress event when this was read (0: none yet); a page
    /// follows the request's events from here.
    #[serde(default)]
    pub progress_cursor: i64,
    pub job: Option<JobView>,
    pub asset_id: Option<AssetId>,
    pub last_error: Option<String>,
    pub manual_owner: Option<String>,
    pub review_diff: Option<ReviewDiff>,
    pub permissions: Permissions,
    /// Each parameter's title from the type's schema, in the schema's order.
    #[serde(default)]
    pub param_titles: Vec<ParamTitle>,
    /// The secrets Slipway generated for this request: names and whether they were
    /// shown, never a value.
    #[serde(default)]
    pub generated_secrets: Vec<GeneratedSecretView>,
    /// For a day-2 action: the asset it acts on and its diff against what the
    /// asset had deployed; absent for a request that creates an asset.
    #[serde(default)]
    pub action: Option<ActionContext>,
    /// Sent back for changes: when the request is closed unless revised before
    /// (absent in other states, or where the server keeps such requests).
    #[serde(default)]
    pub closes_unrevised_at: Option<String>,
}

/// A day-2 action a person may take on an asset, as the asset page offers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActionChoice {
    /// The action's id: `POST /api/v1/assets/{id}/actions/{name}`.
    pub name: String,
    pub title: String,
    pub description: String,
    /// Completing it retires the asset.
    pub retires: bool,
}

/// What a request for a day-2 action acts on, and what it changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActionContext {
    pub asset_id: AssetId,
    pub asset_name: String,
    pub action: ActionChoice,
    /// The current revision against what the asset had deployed when the action
    /// was asked for: its parameters and the files the action touches.
    pub deployed_diff: Option<DeployedDiff>,
}

/// A change against what is deployed: the parameters the asset records and the
/// files in the GitOps repository.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeployedDiff {
    pub params: Vec<ParamChange>,
    pub files: Vec<FileDiff>,
}

/// The form of a day-2 action on an asset: the action's parameters as a type
/// (for the generated form and its checks), first filled from the asset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionForm {
    pub asset: AssetSummary,
    pub action: ActionChoice,
    pub form_type: crate::catalog::ResourceType,
    pub initial: serde_json::Map<String, Value>,
}

/// A request for a day-2 action on an asset: the action's own parameters only
/// (the asset's recorded ones fill in the rest).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionDraft {
    pub params: Value,
    /// As for a new request: the same key twice finds the first request.
    pub submit_key: String,
}

/// A generated secret on a request page: what it is, whether it was shown, and
/// whether the viewer may be shown it now (once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GeneratedSecretView {
    pub name: String,
    pub title: String,
    pub description: Option<String>,
    /// "alice on 2026-12-03 21:10 UTC" once it was shown.
    pub shown_to: Option<String>,
    /// Why the viewer cannot be shown it now, when they cannot.
    pub unavailable: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RelationView {
    pub kind: String,
    pub asset_id: AssetId,
    pub asset_name: String,
    pub type_name: String,
    /// The other asset's state (`active`, `retired`): a relation outlives the
    /// asset it names.
    #[serde(default)]
    pub state: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AssetSummary {
    pub id: AssetId,
    pub type_name: String,
    pub name: String,
    pub state: String,
    pub request_id: RequestId,
    pub created_at: String,
}

/// The newest events an asset's page shows of its history (the history endpoint
/// and the audit log have them all).
pub const ASSET_PAGE_HISTORY: usize = 100;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AssetDetail {
    pub summary: AssetSummary,
    pub params: Value,
    pub commit_id: String,
    pub monitoring: Vec<MonitoringItem>,
    pub relations: Vec<RelationView>,
    pub history: Vec<AuditEntry>,
    /// Each parameter's title from the type's schema, in the schema's order.
    #[serde(default)]
    pub param_titles: Vec<ParamTitle>,
    /// The day-2 actions this viewer may take on the asset now.
    #[serde(default)]
    pub actions: Vec<ActionChoice>,
    /// Its templates: the catalog version that last rendered it, the type's
    /// version now, and the upgrade request that waits when they differ.
    #[serde(default)]
    pub templates: AssetTemplates,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AssetTemplates {
    /// '' when the asset was made before versions were recorded.
    pub rendered_by: String,
    pub current: String,
    pub upgrade_request: Option<RequestId>,
    /// When the templates moved on and no upgrade waits: why not.
    #[serde(default)]
    pub no_upgrade: Option<NoUpgrade>,
}

/// Why an asset whose templates moved on has no upgrade request waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum NoUpgrade {
    /// The type is no longer in the catalog.
    TypeRemoved,
    /// The asset is retired: nothing renders it again.
    Retired,
    /// The type has no template upgrade action: an action that renders the
    /// asset anew brings it to the current templates.
    NotOffered,
    /// The team cancelled, or a reviewer rejected, this very upgrade: it is
    /// asked again when the templates or the asset change.
    Declined { request: RequestId },
    /// No one who asked for the asset may ask for it now (they left its team,
    /// their account was disabled, local accounts were turned off): the sweep
    /// opens the upgrade for one of them only. Someone of the team asks for it.
    NoOwner,
    /// The next sweep opens one (another request of the asset may be in flight).
    NotYet,
}

impl AssetTemplates {
    pub fn is_current(&self) -> bool {
        self.rendered_by == self.current
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    pub seq: i64,
    /// The event's place in the hash chain; none until the sealer has chained it
    /// (moments after its commit).
    pub position: Option<i64>,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub before: Option<String>,
    pub after: Option<String>,
    pub detail: String,
    /// The chain hash over the previous event's and this one's content; none until sealed.
    pub hash: Option<String>,
    /// portal, api, chat or system; absent on events from before it was recorded.
    pub channel: Option<String>,
    pub client_addr: Option<String>,
    pub trace_id: Option<String>,
    /// The caller's identity on the channel where it is not an account: the chat
    /// user id of a chat message.
    #[serde(default)]
    pub channel_user: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub target: Option<String>,
    /// Written on or after this day (UTC).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Date))]
    pub created_from: Option<Day>,
    /// Written on or before this day (UTC).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Date))]
    pub created_to: Option<Day>,
}

impl From<&AuditFilter> for ListFilter {
    fn from(filter: &AuditFilter) -> ListFilter {
        ListFilter {
            actor: filter.actor.clone(),
            action: filter.action.clone(),
            target: filter.target.clone(),
            created_from: filter.created_from,
            created_to: filter.created_to,
            ..ListFilter::default()
        }
    }
}

/// A parameter's title from its type's schema ("Memory limit (GiB)" for
/// `memory_limit_gi`), for pages that list parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ParamTitle {
    pub name: String,
    pub title: String,
}

/// The title of `name` among `titles`, or the name itself.
pub fn title_of<'a>(titles: &'a [ParamTitle], name: &'a str) -> &'a str {
    titles
        .iter()
        .find(|t| t.name == name)
        .map_or(name, |t| t.title.as_str())
}

/// A request's or an asset's parameters in the order of its type's schema (the
/// order the form asked for them), whatever order they were stored in; names the
/// schema does not know (an older type's) come last, as stored.
pub fn in_schema_order<'a>(
    titles: &[ParamTitle],
    params: &'a serde_json::Map<String, serde_json::Value>,
) -> Vec<(&'a str, &'a serde_json::Value)> {
    let mut rows: Vec<(&str, &serde_json::Value)> =
        params.iter().map(|(k, v)| (k.as_str(), v)).collect();
    rows.sort_by_key(|(name, _)| {
        titles
            .iter()
            .position(|t| t.name == *name)
            .unwrap_or(titles.len())
    });
    rows
}

/// A parameter's value as a page shows it: text as it is, a secret as its
/// placeholder, yes or no, a list as its items.
pub fn param_text(value: &serde_json::Value) -> String {
    use serde_json::Value;
    match value {
        Value::String(s) => s.clone(),
        v if crate::secret::is_placeholder(v) => crate::secret::SHOWN_AS.to_string(),
        Value::Bool(true) => "Yes".to_string(),
        Value::Bool(false) => "No".to_string(),
        Value::Null => "–".to_string(),
        Value::Array(items) if items.is_empty() => "–".to_string(),
        Value::Array(items) if items.iter().all(|i| !i.is_array() && !i.is_object()) => {
            items.iter().map(param_text).collect::<Vec<_>>().join(", ")
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod param_order_tests {
    use super::{ParamTitle, in_schema_order};

    #[test]
    fn parameters_are_listed_in_the_schema_order() {
        let titles: Vec<ParamTitle> = ["name", "team", "environment"]
            .iter()
            .map(|n| ParamTitle {
                name: n.to_string(),
                title: n.to_uppercase(),
            })
            .collect();
        let stored = serde_json::json!({"legacy": 1, "environment": "dev", "team": "payments", "name": "orders"});
        let map = stored.as_object().cloned().unwrap_or_default();
        let order: Vec<&str> = in_schema_order(&titles, &map)
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        assert_eq!(order, ["name", "team", "environment", "legacy"]);
    }

    #[test]
    fn values_read_as_words() {
        use super::param_text;
        use serde_json::json;
        assert_eq!(param_text(&json!("orders")), "orders");
        assert_eq!(param_text(&json!(true)), "Yes");
        assert_eq!(param_text(&json!(false)), "No");
        assert_eq!(param_text(&json!(20)), "20");
        assert_eq!(param_text(&json!(null)), "–");
        assert_eq!(param_text(&json!([])), "–");
        assert_eq!(
            param_text(&json!(["pgcrypto", "postgis"])),
            "pgcrypto, postgis"
        );
        assert_eq!(param_text(&json!([{"a": 1}])), r#"[{"a":1}]"#);
    }
}

/// One value a list filter offers, with its title.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Choice {
    pub key: String,
    pub title: String,
}

/// What the lists' filters offer: the catalog's types, teams and environments.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilterChoices {
    pub types: Vec<Choice>,
    pub teams: Vec<Choice>,
    pub environments: Vec<Choice>,
}

/// A request as the requester edits it: the form's values and a key that makes a
/// double-clicked submit land once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RequestDraft {
    pub type_name: String,
    pub params: Value,
    pub submit_key: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ReviewDecision {
    Approve,
    Reject,
    RequestChanges,
}

impl ReviewDecision {
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewDecision::Approve => "approve",
            ReviewDecision::Reject => "reject",
            ReviewDecision::RequestChanges => "request_changes",
        }
    }
}

/// What a personal API token may be used for. Its owner's roles still decide each
/// action; a scope only narrows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum TokenScope {
    /// Read the catalog, requests, assets and (with the role) the audit log.
    Read,
    /// Check, submit, revise and cancel requests.
    Request,
    /// Decide on requests in review.
    Review,
    /// Manual handling (retry, take over, resolve) and managing tokens.
    Admin,
}

impl TokenScope {
    pub const ALL: [TokenScope; 4] = [
        TokenScope::Read,
        TokenScope::Request,
        TokenScope::Review,
        TokenScope::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TokenScope::Read => "read",
            TokenScope::Request => "request",
            TokenScope::Review => "review",
            TokenScope::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<TokenScope> {
        TokenScope::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// A personal API token as its owner sees it: never the secret, which is shown once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenView {
    pub id: i64,
    pub name: String,
    /// The first characters of the secret, to tell tokens apart.
    pub prefix: String,
    pub scopes: Vec<TokenScope>,
    pub created_at: String,
    pub expires_at: String,
    pub last_used_at: Option<String>,
    pub revoked: bool,
}

/// A token just created: the only time its secret is shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewToken {
    pub token: TokenView,
    /// The secret to send as `Authorization: Bearer`, in the first answer only: a
    /// replay of the same Idempotency-Key answers `null`, because Slipway keeps
    /// nothing but the token's hash.
    pub secret: Option<String>,
}

/// What a person asks for when creating a token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenRequest {
    /// What the token is for, e.g. "CI pipeline of payments-api".
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 100))]
    pub name: String,
    #[cfg_attr(feature = "openapi", schema(min_items = 1))]
    pub scopes: Vec<TokenScope>,
    /// Days until it expires (1 to 366); 90 when not given.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 366))]
    pub expires_in_days: Option<u32>,
}

/// What a submit would do, without doing it: the pre-check, and when it passes, the
/// change set a reviewer would see.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DryRun {
    pub precheck: PrecheckReport,
    pub change_set: Option<ChangeSet>,
    pub change_set_hash: Option<String>,
}
