//! The specification of who may do what: every role × relationship × verb × state,
//! written as tables independently of `may`'s code.

use super::*;
use RequestState as S;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rel {
    /// The requester, a member of the request's team.
    OwnInTeam,
    /// The requester, not (or no longer) a member of the team asked for.
    OwnOutsideTeam,
    /// Someone else of the request's team.
    TeamMate,
    /// Someone of the team that offers the type.
    OfferingTeam,
    /// Someone of neither team.
    Stranger,
}

const RELS: [Rel; 5] = [
    Rel::OwnInTeam,
    Rel::OwnOutsideTeam,
    Rel::TeamMate,
    Rel::OfferingTeam,
    Rel::Stranger,
];
const EVERYONE: &[Rel] = &RELS;
const OWN: &[Rel] = &[Rel::OwnInTeam, Rel::OwnOutsideTeam];

/// Which states each verb may be taken in.
fn states_for(verb: Verb) -> &'static [RequestState] {
    match verb {
        Verb::View => &RequestState::ALL,
        Verb::Submit => &[S::Draft],
        Verb::Revise => &[S::ChangesRequested],
        Verb::Cancel => &[
            S::Draft,
            S::Submitted,
            S::InReview,
            S::ChangesRequested,
            S::Approved,
            S::Executing,
            S::Verifying,
        ],
        Verb::Approve | Verb::Reject | Verb::RequestChanges => &[S::InReview],
        Verb::Retry | Verb::TakeOver => &[S::Failed],
        Verb::Resolve => &[S::Manual],
    }
}

/// Which relationships a person holding only `role` needs for `verb`
/// (the type's review asks for the reviewer role).
fn relations_for(verb: Verb, role: Role) -> &'static [Rel] {
    use Role as R;
    match (verb, role) {
        (Verb::View, R::Platform | R::Auditor | R::Admin) => EVERYONE,
        (Verb::View, R::Reviewer) => &[
            Rel::OwnInTeam,
            Rel::OwnOutsideTeam,
            Rel::TeamMate,
            Rel::OfferingTeam,
        ],
        (Verb::View, R::Requester) => &[Rel::OwnInTeam, Rel::OwnOutsideTeam, Rel::TeamMate],
        (Verb::Submit | Verb::Revise, R::Requester) => &[Rel::OwnInTeam],
        (Verb::Submit | Verb::Revise, R::Admin) => OWN,
        (Verb::Cancel, R::Admin) => EVERYONE,
        (Verb::Cancel, _) => OWN,
        (Verb::Approve | Verb::Reject | Verb::RequestChanges, R::Reviewer) => {
            &[Rel::TeamMate, Rel::OfferingTeam]
        }
        (Verb::Approve | Verb::Reject | Verb::RequestChanges, R::Admin) => {
            &[Rel::TeamMate, Rel::OfferingTeam, Rel::Stranger]
        }
        (Verb::Retry | Verb::TakeOver | Verb::Resolve, R::Platform | R::Admin) => EVERYONE,
        _ => &[],
    }
}

const ME: UserId = UserId(1);
const SOMEONE_ELSE: UserId = UserId(2);

fn person(role: Role, rel: Rel) -> UserView {
    let team = match rel {
        Rel::OwnInTeam | Rel::TeamMate => "payments",
        Rel::OfferingTeam => "dba",
        Rel::OwnOutsideTeam | Rel::Stranger => "search",
    };
    UserView {
        id: ME,
        username: "pat".into(),
        display_name: "Pat".into(),
        roles: vec![role],
        teams: vec![team.into()],
    }
}

fn request(state: RequestState, rel: Rel) -> RequestFacts<'static> {
    RequestFacts {
        state,
        requester: if matches!(rel, Rel::OwnInTeam | Rel::OwnOutsideTeam) {
            ME
        } else {
            SOMEONE_ELSE
        },
        team: Some("payments"),
        offering_team: "dba",
        approver_role: Some(Role::Reviewer),
    }
}

#[test]
fn every_role_relationship_verb_and_state_follows_the_table() {
    let (mut allowed, mut refused) = (0, 0);
    for role in Role::ALL {
        for rel in RELS {
            for verb in Verb::ALL {
                for state in RequestState::ALL {
                    let want = relations_for(verb, role).contains(&rel)
                        && states_for(verb).contains(&state);
                    let got = may(&person(role, rel), verb, &request(state, rel));
                    assert_eq!(
                        got.is_ok(),
                        want,
                        "{} ({rel:?}) {verb:?} in {state}: {got:?}",
                        role.as_str()
                    );
                    if want { allowed += 1 } else { refused += 1 }
                }
            }
        }
    }
    assert_eq!(allowed + refused, 5 * 5 * 10 * 12);
    assert!(allowed > 100, "the table allows {allowed}");
}

#[test]
fn a_refusal_in_the_wrong_state_is_a_transition_error() {
    let user = person(Role::Reviewer, Rel::OfferingTeam);
    let got = may(
        &user,
        Verb::Approve,
        &request(S::Completed, Rel::OfferingTeam),
    );
    assert!(matches!(got, Err(Refusal::WrongState(_))), "{got:?}");
}

#[test]
fn a_requester_cannot_ask_for_another_team() {
    let alice = person(Role::Requester, Rel::OwnOutsideTeam);
    let got = may(
        &alice,
        Verb::Submit,
        &request(S::Draft, Rel::OwnOutsideTeam),
    );
    let message = got.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        message.contains("not a member of team payments"),
        "{message}"
    );
}

#[test]
fn a_type_without_an_owning_team_has_no_team_boundary() {
    let user = person(Role::Requester, Rel::Stranger);
    let facts = RequestFacts {
        team: None,
        ..request(S::Draft, Rel::OwnInTeam)
    };
    assert_eq!(may(&user, Verb::Submit, &facts), Ok(()));
}

#[test]
fn a_review_policy_with_an_unknown_role_lets_nobody_review() {
    let admin = person(Role::Admin, Rel::Stranger);
    let facts = RequestFacts {
        approver_role: None,
        ..request(S::InReview, Rel::Stranger)
    };
    assert!(may(&admin, Verb::Approve, &facts).is_err());
}

#[test]
fn permissions_follow_may() {
    let reviewer = person(Role::Reviewer, Rel::OfferingTeam);
    let p = permissions(&reviewer, &request(S::InReview, Rel::OfferingTeam));
    assert!(p.review && !p.cancel && !p.resubmit && !p.retry);
    let own = person(Role::Requester, Rel::OwnInTeam);
    let p = permissions(&own, &request(S::ChangesRequested, Rel::OwnInTeam));
    assert!(p.resubmit && p.cancel && !p.review);
}
