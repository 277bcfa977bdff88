//! Who may do what to a request: the one rule every service authorises with and
//! every view asks to show the allowed actions. It stands on the state machine (is
//! the step possible now?), a role table (who may take it) and the team boundary
//! (for which team).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::catalog::ResourceType;
use crate::ids::UserId;
use crate::state::{Action, RequestState, TransitionError, next_state};
use crate::views::{Permissions, Role, UserView};

/// What a person can ask to do with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verb {
    View,
    Submit,
    Revise,
    Cancel,
    Approve,
    Reject,
    RequestChanges,
    Retry,
    TakeOver,
    Resolve,
}

impl Verb {
    pub const ALL: [Verb; 10] = [
        Verb::View,
        Verb::Submit,
        Verb::Revise,
        Verb::Cancel,
        Verb::Approve,
        Verb::Reject,
        Verb::RequestChanges,
        Verb::Retry,
        Verb::TakeOver,
        Verb::Resolve,
    ];

    /// The state-machine step this verb takes; viewing takes none.
    pub fn action(self) -> Option<Action> {
        match self {
            Verb::View => None,
            Verb::Submit => Some(Action::Submit),
            Verb::Revise => Some(Action::Resubmit),
            Verb::Cancel => Some(Action::Cancel),
            Verb::Approve => Some(Action::Approve),
            Verb::Reject => Some(Action::Reject),
            Verb::RequestChanges => Some(Action::RequestChanges),
            Verb::Retry => Some(Action::Retry),
            Verb::TakeOver => Some(Action::TakeOver),
            Verb::Resolve => Some(Action::ResolveManually),
        }
    }

    fn phrase(self) -> &'static str {
        match self {
            Verb::View => "see",
            Verb::Submit => "submit",
            Verb::Revise => "revise",
            Verb::Cancel => "cancel",
            Verb::Approve => "approve",
            Verb::Reject => "reject",
            Verb::RequestChanges => "request changes on",
            Verb::Retry => "retry",
            Verb::TakeOver => "take over",
            Verb::Resolve => "resolve",
        }
    }

    fn is_review(self) -> bool {
        matches!(self, Verb::Approve | Verb::Reject | Verb::RequestChanges)
    }
}

/// What the rule needs to know about a request (or about one about to be made).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestFacts<'a> {
    pub state: RequestState,
    pub requester: UserId,
    /// The team the request is for; `None` when its type names no owning team.
    pub team: Option<&'a str>,
    /// The team that offers the type (its reviewers review every request of it).
    pub offering_team: &'a str,
    /// The role the type's review policy asks for.
    pub approver_role: Option<Role>,
}

impl<'a> RequestFacts<'a> {
    pub fn new(
        ty: &'a ResourceType,
        params: &'a serde_json::Value,
        state: RequestState,
        requester: UserId,
    ) -> Self {
        RequestFacts {
            state,
            requester,
            team: ty.owning_team(params),
            offering_team: &ty.owner,
            approver_role: Role::parse(&ty.review.approver_role),
        }
    }
}

/// Why the answer is no, in words for the person who asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Refusal {
    /// The person may not do this at all (a role or a relationship is missing).
    #[error("{0}")]
    NotAllowed(String),
    /// The step is not possible in the request's state; a reload may show why.
    #[error(transparent)]
    WrongState(#[from] TransitionError),
}

fn no(message: String) -> Result<(), Refusal> {
    Err(Refusal::NotAllowed(message))
}

fn needs_role(user: &UserView, role: Role, verb: Verb) -> Result<(), Refusal> {
    if user.has(role) {
        Ok(())
    } else {
        no(format!(
            "to {} a request needs the {} role, which {} does not have",
            verb.phrase(),
            role.as_str(),
            user.username
        ))
    }
}

fn acts_for_team(user: &UserView, team: Option<&str>) -> bool {
    team.is_none_or(|team| user.has(Role::Admin) || user.teams.iter().any(|t| t == team))
}

fn in_team(user: &UserView, team: Option<&str>) -> bool {
    team.is_some_and(|team| user.teams.iter().any(|t| t == team))
}

/// A reviewer reviews the requests of the offerings their team runs and the requests
/// of their own team; an admin reviews any.
fn reviews_for(user: &UserView, request: &RequestFacts<'_>) -> bool {
    user.has(Role::Admin)
        || user.teams.iter().any(|t| t == request.offering_team)
        || in_team(user, request.team)
}

/// May this person take this step on this request now? Every service asks this
/// before it changes anything; the portal and the API ask it to show what is allowed.
pub fn may(user: &UserView, verb: Verb, request: &RequestFacts<'_>) -> Result<(), Refusal> {
    who_may(user, verb, request)?;
    if let Some(action) = verb.action() {
        next_state(request.state, action)?;
    }
    Ok(())
}

fn who_may(user: &UserView, verb: Verb, request: &RequestFacts<'_>) -> Result<(), Refusal> {
    let own = request.requester == user.id;
    match verb {
        Verb::View => {
            let sees_all = [Role::Platform, Role::Auditor, Role::Admin]
                .iter()
                .any(|r| user.has(*r));
            let reviewer =
                request.approver_role.is_some_and(|r| user.has(r)) && reviews_for(user, request);
            if own || sees_all || reviewer || in_team(user, request.team) {
                Ok(())
            } else {
                no("this request belongs to another team".into())
            }
        }
        Verb::Submit | Verb::Revise => {
            needs_role(user, Role::Requester, verb)?;
            if !own {
                return no(format!(
                    "only the requester can {} their request",
                    verb.phrase()
                ));
            }
            if !acts_for_team(user, request.team) {
                return no(format!(
                    "{} is not a member of team {}: you can only ask for your own teams",
                    user.username,
                    request.team.unwrap_or_default()
                ));
            }
            Ok(())
        }
        Verb::Cancel => {
            if own || user.has(Role::Admin) {
                Ok(())
            } else {
                no("only the requester or an admin can cancel a request".into())
            }
        }
        Verb::Approve | Verb::Reject | Verb::RequestChanges => {
            let Some(role) = request.approver_role else {
                return no("the type's review policy names no known role".into());
            };
            needs_role(user, role, verb)?;
            if own {
                return no("nobody reviews their own request: another reviewer must decide".into());
            }
            if !reviews_for(user, request) {
                return no(format!(
                    "{} reviews neither for team {} nor for team {}",
                    user.username,
                    request.offering_team,
                    request.team.unwrap_or("(none)")
                ));
            }
            Ok(())
        }
        Verb::Retry | Verb::TakeOver | Verb::Resolve => needs_role(user, Role::Platform, verb),
    }
}

/// Everything the person may do with the request now, for the views.
pub fn permissions(user: &UserView, request: &RequestFacts<'_>) -> Permissions {
    let can = |verb| may(user, verb, request).is_ok();
    Permissions {
        review: Verb::ALL.into_iter().filter(|v| v.is_review()).any(can),
        resubmit: can(Verb::Revise),
        cancel: can(Verb::Cancel),
        retry: can(Verb::Retry),
        take_over: can(Verb::TakeOver),
        resolve: can(Verb::Resolve),
    }
}

/// The teams a person may ask for, for narrowing a form's choices; `None` means any.
pub fn requestable_teams(user: &UserView) -> Option<&[String]> {
    if user.has(Role::Admin) {
        None
    } else {
        Some(&user.teams)
    }
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.phrase())
    }
}

#[cfg(test)]
mod tests;
