//! The request state machine: every request, day-1 or day-2, walks these states,
//! and every transition is decided here and nowhere else.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum RequestState {
    Draft,
    Submitted,
    InReview,
    ChangesRequested,
    Approved,
    Rejected,
    Cancelled,
    Executing,
    Verifying,
    Completed,
    Failed,
    Manual,
}

impl RequestState {
    pub const ALL: [RequestState; 12] = [
        RequestState::Draft,
        RequestState::Submitted,
        RequestState::InReview,
        RequestState::ChangesRequested,
        RequestState::Approved,
        RequestState::Rejected,
        RequestState::Cancelled,
        RequestState::Executing,
        RequestState::Verifying,
        RequestState::Completed,
        RequestState::Failed,
        RequestState::Manual,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RequestState::Draft => "draft",
            RequestState::Submitted => "submitted",
            RequestState::InReview => "in_review",
            RequestState::ChangesRequested => "changes_requested",
            RequestState::Approved => "approved",
            RequestState::Rejected => "rejected",
            RequestState::Cancelled => "cancelled",
            RequestState::Executing => "executing",
            RequestState::Verifying => "verifying",
            RequestState::Completed => "completed",
            RequestState::Failed => "failed",
            RequestState::Manual => "manual",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            RequestState::Draft => "Draft",
            RequestState::Submitted => "Submitted",
            RequestState::InReview => "In review",
            RequestState::ChangesRequested => "Changes requested",
            RequestState::Approved => "Approved",
            RequestState::Rejected => "Rejected",
            RequestState::Cancelled => "Cancelled",
            RequestState::Executing => "Executing",
            RequestState::Verifying => "Verifying",
            RequestState::Completed => "Completed",
            RequestState::Failed => "Failed",
            RequestState::Manual => "Manual handling",
        }
    }

    /// No action leaves these states.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RequestState::Completed | RequestState::Rejected | RequestState::Cancelled
        )
    }

    /// Nothing runs for the request now and nothing will until a person acts: a
    /// page following its progress can stop listening.
    pub fn worker_is_idle(self) -> bool {
        matches!(
            self,
            RequestState::Completed
                | RequestState::Failed
                | RequestState::Manual
                | RequestState::Cancelled
                | RequestState::Rejected
        )
    }

    /// Requests that may still become an asset hold their share of the quota,
    /// so two concurrent requests cannot both squeeze under the limit.
    pub fn is_in_flight(self) -> bool {
        matches!(
            self,
            RequestState::Submitted
                | RequestState::InReview
                | RequestState::ChangesRequested
                | RequestState::Approved
                | RequestState::Executing
                | RequestState::Verifying
                | RequestState::Failed
                | RequestState::Manual
        )
    }
}

impl fmt::Display for RequestState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RequestState {
    type Err = UnknownName;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        RequestState::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| UnknownName {
                what: "request state",
                name: text.to_string(),
            })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Submit,
    EnterReview,
    AutoApprove,
    Approve,
    Reject,
    RequestChanges,
    Resubmit,
    Cancel,
    StartExecution,
    ExecutionSucceeded,
    VerificationPassed,
    Fail,
    Retry,
    TakeOver,
    ResolveManually,
    Abandon,
}

impl Action {
    pub const ALL: [Action; 16] = [
        Action::Submit,
        Action::EnterReview,
        Action::AutoApprove,
        Action::Approve,
        Action::Reject,
        Action::RequestChanges,
        Action::Resubmit,
        Action::Cancel,
        Action::StartExecution,
        Action::ExecutionSucceeded,
        Action::VerificationPassed,
        Action::Fail,
        Action::Retry,
        Action::TakeOver,
        Action::ResolveManually,
        Action::Abandon,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Submit => "submit",
            Action::EnterReview => "enter_review",
            Action::AutoApprove => "auto_approve",
            Action::Approve => "approve",
            Action::Reject => "reject",
            Action::RequestChanges => "request_changes",
            Action::Resubmit => "resubmit",
            Action::Cancel => "cancel",
            Action::StartExecution => "start_execution",
            Action::ExecutionSucceeded => "execution_succeeded",
            Action::VerificationPassed => "verification_passed",
            Action::Fail => "fail",
            Action::Retry => "retry",
            Action::TakeOver => "take_over",
            Action::ResolveManually => "resolve_manually",
            Action::Abandon => "abandon",
        }
    }

    /// The verb phrase used in messages: "cannot request changes on ...".
    fn phrase(self) -> &'static str {
        match self {
            Action::Submit => "submit",
            Action::EnterReview => "start reviewing",
            Action::AutoApprove => "auto-approve",
            Action::Approve => "approve",
            Action::Reject => "reject",
            Action::RequestChanges => "request changes on",
            Action::Resubmit => "resubmit",
            Action::Cancel => "cancel",
            Action::StartExecution => "start executing",
            Action::ExecutionSucceeded => "finish executing",
            Action::VerificationPassed => "pass verification of",
            Action::Fail => "fail",
            Action::Retry => "retry",
            Action::TakeOver => "take over",
            Action::ResolveManually => "resolve manually",
            Action::Abandon => "abandon",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Action {
    type Err = UnknownName;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == text)
            .ok_or_else(|| UnknownName {
                what: "action",
                name: text.to_string(),
            })
    }
}

/// A state or action name that is not one of ours (e.g. read from an old database row).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {name:?}")]
pub struct UnknownName {
    pub what: &'static str,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("cannot {} a request that is {}", .action.phrase(), .from.label().to_lowercase())]
pub struct TransitionError {
    pub from: RequestState,
    pub action: Action,
}

pub fn next_state(from: RequestState, action: Action) -> Result<RequestState, TransitionError> {
    use Action as A;
    use RequestState as S;
    let to = match (from, action) {
        (S::Draft, A::Submit) => S::Submitted,
        (S::Submitted, A::EnterReview) => S::InReview,
        (S::Submitted, A::AutoApprove) => S::Approved,
        (S::InReview, A::Approve) => S::Approved,
        (S::InReview, A::Reject) => S::Rejected,
        (S::InReview, A::RequestChanges) => S::ChangesRequested,
        (S::ChangesRequested, A::Resubmit) => S::Submitted,
        // Before anything ran, cancelling ends the request: nothing to undo.
        (S::Draft | S::Submitted | S::InReview | S::ChangesRequested | S::Approved, A::Cancel) => {
            S::Cancelled
        }
        // While it runs, cancelling stops the job; steps that already took effect
        // stay, so the request fails into manual handling instead of vanishing.
        (S::Executing | S::Verifying, A::Cancel) => S::Failed,
        (S::Approved, A::StartExecution) => S::Executing,
        (S::Executing, A::ExecutionSucceeded) => S::Verifying,
        (S::Verifying, A::VerificationPassed) => S::Completed,
        (S::Executing | S::Verifying, A::Fail) => S::Failed,
        (S::Failed, A::Retry) => S::Executing,
        (S::Failed, A::TakeOver) => S::Manual,
        (S::Manual, A::ResolveManually) => S::Completed,
        // The person handling it closes it without an asset: nothing was made, or
        // what a failed run left was cleaned up by hand. Its quota and name free up.
        (S::Manual, A::Abandon) => S::Cancelled,
        _ => return Err(TransitionError { from, action }),
    };
    Ok(to)
}

#[cfg(test)]
mod tests;
