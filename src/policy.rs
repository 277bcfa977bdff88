//! Who may do what to a request: the one rule every service authorises with and
//! every view asks to show the allowed actions. It stands on the state machine (is
//! the step possible now?), a role table (who may take it) and the team boundary
//! (for which team).
//!
//! Beside `may` stand the list-level rules built from the same table: who may open
//! the review queue, the list needing attention and the audit log, which rows a list
//! may hold (`Reach`, turned into SQL by the storage), what the menu offers, and how
//! much of an audit history a person reads. No service or view names a role itself.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::catalog::ResourceType;
use crate::ids::UserId;
use crate::state::{Action, RequestState, TransitionError, next_state};
use crate::views::{AuditEntry, Menu, Permissions, Role, UserView};

/// The roles that see every request, and every list of requests unnarrowed.
const SEE_ALL_REQUESTS: [Role; 3] = [Role::Platform, Role::Auditor, Role::Admin];
/// The roles that read and verify the audit log, client addresses and trace ids
/// included.
const READ_AUDIT: [Role; 3] = [Role::Platform, Role::Auditor, Role::Admin];
/// The roles that read the flow metrics: the platform team that runs the flow,
/// and the auditors who examine it.
const READ_FLOW_METRICS: [Role; 3] = [Role::Platform, Role::Auditor, Role::Admin];
/// The role that asks for requests: the form's pre-check, a dry run, submitting
/// and revising.
const REQUEST: Role = Role::Requester;
/// The role that handles failed requests by hand: retry, take over, resolve.
const HANDLE_MANUALLY: Role = Role::Platform;
/// The role that cancels anyone's request and reviews for every team.
const ADMIN: Role = Role::Admin;

/// The states of the requests that wait for the platform team's hands (the list
/// needing attention): those in which retry, take-over or resolve can be taken.
pub const NEEDS_ATTENTION: [RequestState; 2] = [RequestState::Failed, RequestState::Manual];

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
    Abandon,
}

impl Verb {
    pub const ALL: [Verb; 11] = [
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
        Verb::Abandon,
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
            Verb::Abandon => Some(Action::Abandon),
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
            Verb::Abandon => "abandon",
        }
    }

    fn is_review(self) -> bool {
        matches!(self, Verb::Approve | Verb::Reject | Verb::RequestChanges)
    }
}

/// The team of a request whose type has an owning-team parameter the request
/// leaves out (or gives empty): no one belongs to it, so nobody may ask for it and
/// only the roles that see everything see it.
pub const MISSING_TEAM: &str = "";

/// What the rule needs to know about a request (or about one about to be made).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestFacts<'a> {
    pub state: RequestState,
    pub requester: UserId,
    /// The team the request is for; `None` when its type names no owning team,
    /// [`MISSING_TEAM`] when its type names one and the request gives none.
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
        let of_type = TypeFacts::new(ty);
        // A type with teams whose request names none must not pass for a type
        // without teams, which has no team boundary.
        let team = match (&ty.owner_param, ty.owning_team(params)) {
            (Some(_), None) => Some(MISSING_TEAM),
            (_, team) => team,
        };
        RequestFacts {
            state,
            requester,
            team,
            offering_team: of_type.offering_team,
            approver_role: of_type.approver_role,
        }
    }
}

/// What the rule needs to know about a type of the catalog, for the list-level rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypeFacts<'a> {
    pub name: &'a str,
    /// The team that offers the type.
    pub offering_team: &'a str,
    /// The role the type's review policy asks for (`None`: a role that does not exist).
    pub approver_role: Option<Role>,
}

impl<'a> TypeFacts<'a> {
    pub fn new(ty: &'a ResourceType) -> Self {
        TypeFacts {
            name: &ty.name,
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

fn holds_any(user: &UserView, roles: &[Role]) -> bool {
    roles.iter().any(|r| user.has(*r))
}

/// A refusal unless the person holds one of `roles`, saying what `doing` needs.
fn needs_any(user: &UserView, roles: &[Role], doing: &str) -> Result<(), Refusal> {
    if holds_any(user, roles) {
        return Ok(());
    }
    let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
    let needs = match names.as_slice() {
        [] => "a role".to_string(),
        [one] => format!("the {one} role"),
        many => format!("one of the roles {}", many.join(", ")),
    };
    no(format!(
        "{doing} needs {needs}, which {} does not have",
        user.username
    ))
}

fn acts_for_team(user: &UserView, team: Option<&str>) -> bool {
    // Fails closed: not even an admin asks for a team that is not named.
    if team == Some(MISSING_TEAM) {
        return false;
    }
    team.is_none_or(|team| {
        requestable_teams(user).is_none_or(|teams| teams.iter().any(|t| t == team))
    })
}

fn in_team(user: &UserView, team: Option<&str>) -> bool {
    team.is_some_and(|team| team != MISSING_TEAM && user.teams.iter().any(|t| t == team))
}

/// An admin reviews for every team.
fn reviews_every_team(user: &UserView) -> bool {
    user.has(ADMIN)
}

/// Whether one of the person's teams offers the type.
fn offers(user: &UserView, offering_team: &str) -> bool {
    user.teams.iter().any(|t| t == offering_team)
}

/// A reviewer reviews the requests of the offerings their team runs and the requests
/// of their own team; an admin reviews any. (`review_reach` is this, as rows.)
fn reviews_for(user: &UserView, request: &RequestFacts<'_>) -> bool {
    reviews_every_team(user) || offers(user, request.offering_team) || in_team(user, request.team)
}

/// May this person take this step on this request now? Every service asks this
/// before it changes anything; the portal and the API ask it to show what is allowed.
pub fn may(user: &UserView, verb: Verb, request: &RequestFacts<'_>) -> Result<(), Refusal> {
    // Whoever may not see a request learns nothing more of it from a refusal
    // (which teams review it, who may act on it) than that it is not theirs.
    if verb != Verb::View {
        who_may(user, Verb::View, request)?;
    }
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
            let reviewer =
                may_review_type(user, request.approver_role) && reviews_for(user, request);
            if own || sees_all_requests(user) || reviewer || in_team(user, request.team) {
                Ok(())
            } else {
                no("this request belongs to another team".into())
            }
        }
        Verb::Submit | Verb::Revise => {
            needs_role(user, REQUEST, verb)?;
            if !own {
                return no(format!(
                    "only the requester can {} their request",
                    verb.phrase()
                ));
            }
            // A draft without its team is the form's to refuse: the loader makes an
            // owner parameter required, so validation names the missing field (a
            // 422, not a 403 that would blame the person's rights).
            if request.team == Some(MISSING_TEAM) {
                return Ok(());
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
            if user.has(ADMIN) {
                return Ok(());
            }
            if !own {
                return no("only the requester or an admin can cancel a request".into());
            }
            // Someone who left the team could otherwise stop a change of the
            // team's asset half way (a cancel while it runs leaves it failed).
            if request.team != Some(MISSING_TEAM) && !acts_for_team(user, request.team) {
                return no(format!(
                    "{} is no longer a member of team {}: an admin cancels it",
                    user.username,
                    request.team.unwrap_or_default()
                ));
            }
            Ok(())
        }
        Verb::Approve | Verb::Reject | Verb::RequestChanges => {
            let Some(role) = request.approver_role else {
                // No role reviews it any more (its type or action left the
                // catalog; the loader refuses an unknown role): it would wait
                // in review for ever. An admin may turn it down, which needs
                // nothing of the type.
                if verb == Verb::Reject && user.has(ADMIN) && !own {
                    return Ok(());
                }
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
        Verb::Retry | Verb::TakeOver | Verb::Resolve | Verb::Abandon => {
            needs_role(user, HANDLE_MANUALLY, verb)
        }
    }
}

/// What the rule needs to know about an asset a day-2 action would act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AssetFacts<'a> {
    /// The asset's owning team; `None` when its type names no owning team.
    pub team: Option<&'a str>,
    /// `active`, or `retired` once an action retired it.
    pub state: &'a str,
}

/// May this person ask for a day-2 action on this asset? A requester of the
/// asset's team (an admin for any team), on an asset that is still active. The
/// asset page offers the actions this allows; the service asks it again on submit.
pub fn may_act_on(user: &UserView, asset: &AssetFacts<'_>) -> Result<(), Refusal> {
    needs_role(user, REQUEST, Verb::Submit)?;
    if asset.team == Some(MISSING_TEAM) {
        return no(
            "the asset names no team, though assets of its type belong to one: \
             nobody acts on it until its team is recorded"
                .into(),
        );
    }
    if !acts_for_team(user, asset.team) {
        return no(format!(
            "{} is not a member of team {}: only the asset's team acts on it",
            user.username,
            asset.team.unwrap_or_default()
        ));
    }
    if !crate::action::is_actionable(asset.state) {
        return no(format!(
            "the asset is {}: it keeps its history but takes no more actions",
            asset.state
        ));
    }
    Ok(())
}

/// Everything the person may do with the request now, for the views.
pub fn permissions(user: &UserView, request: &RequestFacts<'_>) -> Permissions {
    let can = |verb| may(user, verb, request).is_ok();
    Permissions {
        review: Verb::ALL.into_iter().filter(|v| v.is_review()).any(can),
        approve: can(Verb::Approve),
        request_changes: can(Verb::RequestChanges),
        resubmit: can(Verb::Revise),
        cancel: can(Verb::Cancel),
        retry: can(Verb::Retry),
        take_over: can(Verb::TakeOver),
        resolve: can(Verb::Resolve),
        abandon: can(Verb::Abandon),
    }
}

/// The teams a person may ask for, for narrowing a form's choices; `None` means any.
pub fn requestable_teams(user: &UserView) -> Option<&[String]> {
    if user.has(ADMIN) {
        None
    } else {
        Some(&user.teams)
    }
}

/// Whether a generated secret of the request may be shown to this person now: only
/// to its requester (the one it was made for, not a reviewer nor an admin), only
/// while they still act for the request's team (the credential is the team's: one
/// who left must not take it along, and once shown nobody in the team can get it;
/// a requester who is an admin acts for every team and keeps it, as they could
/// reach the team's resources anyway),
/// only once the request completed (the resource it opens exists). That it is
/// shown only once the caller checks with the record of reveals.
pub fn may_reveal_secret(user: &UserView, request: &RequestFacts<'_>) -> Result<(), Refusal> {
    if request.requester != user.id {
        return no("only the requester may see a generated secret of the request".into());
    }
    if !acts_for_team(user, request.team) {
        let team = request.team.unwrap_or_default();
        return no(if team == MISSING_TEAM {
            "the request names no team, though requests of its type belong to one: \
             its generated secret is shown to no one"
                .into()
        } else {
            format!(
                "{} no longer belongs to team {team}, so the generated secret is not shown; \
                 the team should rotate the credential",
                user.username
            )
        });
    }
    if request.state != RequestState::Completed {
        return no(format!(
            "a generated secret can be shown once the request is completed; it is {}",
            request.state.as_str()
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// List-level rules: who may open which list, and which rows a list may hold.

/// Whether the person sees every request (and every list of requests unnarrowed).
pub fn sees_all_requests(user: &UserView) -> bool {
    holds_any(user, &SEE_ALL_REQUESTS)
}

/// May this person ask for requests at all: the form's pre-check and a dry run
/// (submitting and revising also ask `may` about the team).
pub fn may_request(user: &UserView) -> Result<(), Refusal> {
    needs_any(user, &[REQUEST], "asking for a request")
}

/// May this person read the audit log (and verify its chain), client addresses and
/// trace ids included?
pub fn may_see_audit(user: &UserView) -> Result<(), Refusal> {
    needs_any(user, &READ_AUDIT, "reading the audit log")
}

/// May this person read the flow metrics: wait, touch and lead times, rework and
/// failure rates over every team's requests.
pub fn may_see_flow_metrics(user: &UserView) -> Result<(), Refusal> {
    needs_any(user, &READ_FLOW_METRICS, "reading the flow metrics")
}

/// May this person handle failed requests by hand: open the list needing attention
/// (each retry, take-over and resolve asks `may` again).
pub fn may_handle_manually(user: &UserView) -> Result<(), Refusal> {
    needs_any(user, &[HANDLE_MANUALLY], "handling failed requests")
}

/// Whether the person holds the role a type's review asks for. Which of its
/// requests they review is `may`'s team rule.
pub fn may_review_type(user: &UserView, approver_role: Option<Role>) -> bool {
    approver_role.is_some_and(|role| user.has(role))
}

/// May this person open a review queue: they hold the role that the review of some
/// type of the catalog asks for, whichever role that is.
pub fn may_open_review_queue<'a>(
    user: &UserView,
    types: impl IntoIterator<Item = TypeFacts<'a>>,
) -> Result<(), Refusal> {
    if reviews_every_team(user) {
        return Ok(());
    }
    let mut roles: Vec<Role> = types.into_iter().filter_map(|t| t.approver_role).collect();
    roles.sort();
    roles.dedup();
    if roles.is_empty() {
        return no("no type of the catalog names a review role: there is nothing to review".into());
    }
    needs_any(user, &roles, "the review queue")
}

/// What a list of requests may hold for a person, as the storage narrows it in SQL:
/// a row that any part reaches is read, and `may` still decides on each one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// The person's own requests.
    Requester(UserId),
    /// Requests for one of these teams.
    Teams(Vec<String>),
    /// Requests of one of these types.
    Types(Vec<String>),
    /// Requests for one of these teams and of one of these types.
    TeamsOfTypes(Vec<String>, Vec<String>),
}

/// The types whose reviews ask for a role this person holds.
fn reviewable<'a>(
    user: &UserView,
    types: impl IntoIterator<Item = TypeFacts<'a>>,
) -> Vec<TypeFacts<'a>> {
    types
        .into_iter()
        .filter(|t| may_review_type(user, t.approver_role))
        .collect()
}

fn names(types: &[TypeFacts<'_>], keep: impl Fn(&TypeFacts<'_>) -> bool) -> Vec<String> {
    types
        .iter()
        .filter(|t| keep(t))
        .map(|t| t.name.to_string())
        .collect()
}

/// The rows a list of every visible request may hold (`None`: all of them): the
/// same reach as `may(View)`: their own, their teams', and those of the types their
/// teams offer and they review.
pub fn view_reach<'a>(
    user: &UserView,
    types: impl IntoIterator<Item = TypeFacts<'a>>,
) -> Option<Vec<Reach>> {
    if sees_all_requests(user) {
        return None;
    }
    let reviewable = reviewable(user, types);
    Some(vec![
        Reach::Requester(user.id),
        Reach::Teams(user.teams.clone()),
        Reach::Types(names(&reviewable, |t| offers(user, t.offering_team))),
    ])
}

/// The rows of a person's review queue (`None`: all of them): `reviews_for` as rows,
/// among the types whose review asks for a role they hold.
pub fn review_reach<'a>(
    user: &UserView,
    types: impl IntoIterator<Item = TypeFacts<'a>>,
) -> Option<Vec<Reach>> {
    if reviews_every_team(user) {
        return None;
    }
    let reviewable = reviewable(user, types);
    Some(vec![
        Reach::Types(names(&reviewable, |t| offers(user, t.offering_team))),
        Reach::TeamsOfTypes(user.teams.clone(), names(&reviewable, |_| true)),
    ])
}

/// Which lists the portal's menu offers this person.
pub fn menu<'a>(user: &UserView, types: impl IntoIterator<Item = TypeFacts<'a>>) -> Menu {
    Menu {
        review_queue: may_open_review_queue(user, types).is_ok(),
        needs_attention: may_handle_manually(user).is_ok(),
        audit_log: may_see_audit(user).is_ok(),
        flow_metrics: may_see_flow_metrics(user).is_ok(),
    }
}

/// An audit history (an asset's) as this person may read it. The audit log's
/// readers see every field; everyone else sees what happened, when and by whom,
/// but not the client address, chat user id and trace id that point at a person's
/// machine and call.
pub fn history_for(user: &UserView, mut entries: Vec<AuditEntry>) -> Vec<AuditEntry> {
    if may_see_audit(user).is_err() {
        for entry in &mut entries {
            entry.client_addr = None;
            entry.trace_id = None;
            entry.channel_user = None;
        }
    }
    entries
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.phrase())
    }
}

#[cfg(test)]
mod tests;
