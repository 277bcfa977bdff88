//! Read models: what the services hand to the portal (and later the REST API).
//! Plain data so the browser can deserialize them too.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::diff::{FileDiff, ParamChange};
use crate::ids::{AssetId, RequestId, UserId};
use crate::precheck::PrecheckReport;
use crate::render::{ChangeSet, MonitoringItem};
use crate::state::RequestState;

/// What a person may do. Checked in the service layer, shown in the portal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
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
pub struct TypeSummary {
    pub name: String,
    pub title: String,
    pub description: String,
    pub owner: String,
    pub auto_approve_when: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
pub struct RevisionView {
    pub revision: i64,
    pub params: Value,
    pub precheck: PrecheckReport,
    pub change_set: ChangeSet,
    pub change_set_hash: String,
    pub author: String,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
pub struct CheckResultView {
    pub revision: i64,
    pub kind: String,
    pub description: String,
    pub passed: bool,
    pub detail: String,
    pub at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub at: String,
    pub actor: String,
    pub action: String,
    pub from_state: Option<String>,
    pub to_state: Option<String>,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobView {
    pub state: String,
    pub attempts: i64,
    pub max_attempts: i64,
    pub last_error: Option<String>,
}

/// What changed since the revision this reviewer last saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewDiff {
    pub base_revision: i64,
    pub revision: i64,
    pub params: Vec<ParamChange>,
    pub files: Vec<FileDiff>,
}

/// The actions the viewer may take now; the services check them again on use.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Permissions {
    pub review: bool,
    pub resubmit: bool,
    pub cancel: bool,
    pub retry: bool,
    pub take_over: bool,
    pub resolve: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestDetail {
    pub summary: RequestSummary,
    pub type_title: String,
    pub revisions: Vec<RevisionView>,
    pub decisions: Vec<DecisionView>,
    pub timeline: Vec<TimelineEntry>,
    pub checks: Vec<CheckResultView>,
    pub job: Option<JobView>,
    pub asset_id: Option<AssetId>,
    pub last_error: Option<String>,
    pub manual_owner: Option<String>,
    pub review_diff: Option<ReviewDiff>,
    pub permissions: Permissions,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelationView {
    pub kind: String,
    pub asset_id: AssetId,
    pub asset_name: String,
    pub type_name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssetSummary {
    pub id: AssetId,
    pub type_name: String,
    pub name: String,
    pub state: String,
    pub request_id: RequestId,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssetDetail {
    pub summary: AssetSummary,
    pub params: Value,
    pub commit_id: String,
    pub monitoring: Vec<MonitoringItem>,
    pub relations: Vec<RelationView>,
    pub history: Vec<AuditEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub before: Option<String>,
    pub after: Option<String>,
    pub detail: String,
    pub hash: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub target: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AssetFilter {
    pub type_name: Option<String>,
    pub text: Option<String>,
}

/// A request as the requester edits it: the form's values and a key that makes a
/// double-clicked submit land once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestDraft {
    pub type_name: String,
    pub params: Value,
    pub submit_key: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
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
