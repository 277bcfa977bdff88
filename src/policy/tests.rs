//! The specification of who may do what: every role × relationship × verb × state
//! (for a type reviewed by the reviewer role and one the platform role approves),
//! and the list-level rules beside it, written as tables independently of the code.

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
        Verb::Resolve | Verb::Abandon => &[S::Manual],
    }
}

/// Which relationships a person holding only `role` needs for `verb`, when the
/// type's review asks for the `approver` role.
fn relations_for(verb: Verb, role: Role, approver: Role) -> &'static [Rel] {
    use Role as R;
    let approves = role == approver;
    match (verb, role) {
        (Verb::View, R::Platform | R::Auditor | R::Admin) => EVERYONE,
        (Verb::View, _) if approves => &[
            Rel::OwnInTeam,
            Rel::OwnOutsideTeam,
            Rel::TeamMate,
            Rel::OfferingTeam,
        ],
        (Verb::View, _) => &[Rel::OwnInTeam, Rel::OwnOutsideTeam, Rel::TeamMate],
        (Verb::Submit | Verb::Revise, R::Requester) => &[Rel::OwnInTeam],
        (Verb::Submit | Verb::Revise, R::Admin) => OWN,
        (Verb::Cancel, R::Admin) => EVERYONE,
        (Verb::Cancel, _) => &[Rel::OwnInTeam],
        (Verb::Approve | Verb::Reject | Verb::RequestChanges, R::Admin) => {
            &[Rel::TeamMate, Rel::OfferingTeam, Rel::Stranger]
        }
        (Verb::Approve | Verb::Reject | Verb::RequestChanges, _) if approves => {
            &[Rel::TeamMate, Rel::OfferingTeam]
        }
        (Verb::Retry | Verb::TakeOver | Verb::Resolve | Verb::Abandon, R::Platform | R::Admin) => {
            EVERYONE
        }
        _ => &[],
    }
}

/// The roles a type's review asks for in these tables: the usual reviewer, and the
/// platform role (a type the platform team approves itself).
const APPROVERS: [Role; 2] = [Role::Reviewer, Role::Platform];

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
    request_approved_by(state, rel, Role::Reviewer)
}

/// A request for team payments of a type that team dba offers and `approver` reviews.
fn request_approved_by(state: RequestState, rel: Rel, approver: Role) -> RequestFacts<'static> {
    RequestFacts {
        state,
        requester: if matches!(rel, Rel::OwnInTeam | Rel::OwnOutsideTeam) {
            ME
        } else {
            SOMEONE_ELSE
        },
        team: Some("payments"),
        offering_team: "dba",
        approver_role: Some(approver),
    }
}

#[test]
fn every_role_relationship_verb_and_state_follows_the_table() {
    let (mut allowed, mut refused) = (0, 0);
    for approver in APPROVERS {
        for role in Role::ALL {
            for rel in RELS {
                for verb in Verb::ALL {
                    for state in RequestState::ALL {
                        let want = relations_for(verb, role, approver).contains(&rel)
                            && states_for(verb).contains(&state);
                        let facts = request_approved_by(state, rel, approver);
                        let got = may(&person(role, rel), verb, &facts);
                        assert_eq!(
                            got.is_ok(),
                            want,
                            "{} ({rel:?}) {verb:?} in {state}, reviewed by {}: {got:?}",
                            role.as_str(),
                            approver.as_str()
                        );
                        if want { allowed += 1 } else { refused += 1 }
                    }
                }
            }
        }
    }
    assert_eq!(allowed + refused, 2 * 5 * 5 * 11 * 12);
    assert!(allowed > 200, "the table allows {allowed}");
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
    assert!(may(&admin, Verb::RequestChanges, &facts).is_err());
    // Left in review for ever otherwise: an admin turns it down, and only an admin.
    assert_eq!(may(&admin, Verb::Reject, &facts), Ok(()));
    for role in [
        Role::Reviewer,
        Role::Platform,
        Role::Requester,
        Role::Auditor,
    ] {
        let other = person(role, Rel::OfferingTeam);
        assert!(may(&other, Verb::Reject, &facts).is_err(), "{role:?}");
    }
    let own = RequestFacts {
        approver_role: None,
        ..request(S::InReview, Rel::OwnInTeam)
    };
    let admin_requester = person(Role::Admin, Rel::OwnInTeam);
    assert!(may(&admin_requester, Verb::Reject, &own).is_err());
    let offered = permissions(&admin, &facts);
    assert!(offered.review && !offered.approve && !offered.request_changes);
}

#[test]
fn permissions_follow_may() {
    let reviewer = person(Role::Reviewer, Rel::OfferingTeam);
    let p = permissions(&reviewer, &request(S::InReview, Rel::OfferingTeam));
    assert!(p.review && p.approve && p.request_changes && !p.cancel && !p.resubmit && !p.retry);
    let own = person(Role::Requester, Rel::OwnInTeam);
    let p = permissions(&own, &request(S::ChangesRequested, Rel::OwnInTeam));
    assert!(p.resubmit && p.cancel && !p.review);
}

// ---------------------------------------------------------------------------
// The list-level rules: who opens which list, which rows it holds, what the menu
// offers and how much of an audit history a person reads.

/// What a person holding only `role` may open, written down independently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Areas {
    /// Every request, and every list unnarrowed.
    sees_all: bool,
    /// The audit log, client addresses and trace ids included.
    audit: bool,
    /// Failed requests by hand, and the list needing attention.
    manual: bool,
    /// The flow metrics of every team's requests.
    metrics: bool,
    /// The request form's pre-check and a dry run.
    request: bool,
}

fn areas_for(role: Role) -> Areas {
    let (sees_all, audit, manual, metrics, request) = match role {
        Role::Requester => (false, false, false, false, true),
        Role::Reviewer => (false, false, false, false, false),
        Role::Platform => (true, true, true, true, false),
        Role::Auditor => (true, true, false, true, false),
        Role::Admin => (true, true, true, true, true),
    };
    Areas {
        sees_all,
        audit,
        manual,
        metrics,
        request,
    }
}

/// Two offerings: one of team dba reviewed by `approver`, one of team search
/// reviewed by the reviewer role.
fn catalog_of(approver: Role) -> [TypeFacts<'static>; 2] {
    [
        TypeFacts {
            name: "ns",
            offering_team: "dba",
            approver_role: Some(approver),
        },
        TypeFacts {
            name: "topic",
            offering_team: "search",
            approver_role: Some(Role::Reviewer),
        },
    ]
}

#[test]
fn every_role_opens_the_lists_of_the_table() {
    for role in Role::ALL {
        let want = areas_for(role);
        let user = person(role, Rel::Stranger);
        let got = Areas {
            sees_all: sees_all_requests(&user),
            audit: may_see_audit(&user).is_ok(),
            manual: may_handle_manually(&user).is_ok(),
            metrics: may_see_flow_metrics(&user).is_ok(),
            request: may_request(&user).is_ok(),
        };
        assert_eq!(got, want, "{}", role.as_str());
        // The same answers as `may` gives on one request.
        let stranger = request(S::Failed, Rel::Stranger);
        assert_eq!(
            want.sees_all,
            may(&user, Verb::View, &stranger).is_ok(),
            "{}",
            role.as_str()
        );
        assert_eq!(
            want.manual,
            may(&user, Verb::Retry, &stranger).is_ok(),
            "{}",
            role.as_str()
        );
        let own = request(S::Draft, Rel::OwnInTeam);
        assert_eq!(
            want.request,
            may(&person(role, Rel::OwnInTeam), Verb::Submit, &own).is_ok(),
            "{}",
            role.as_str()
        );
        let menu = menu(&user, catalog_of(Role::Reviewer));
        assert_eq!(
            menu,
            Menu {
                review_queue: matches!(role, Role::Reviewer | Role::Admin),
                needs_attention: want.manual,
                audit_log: want.audit,
                flow_metrics: want.metrics,
            },
            "{}",
            role.as_str()
        );
    }
}

#[test]
fn the_review_queue_opens_for_whoever_a_types_review_asks_for() {
    for role in Role::ALL {
        let user = person(role, Rel::OfferingTeam);
        for approver in Role::ALL {
            let ty = TypeFacts {
                name: "ns",
                offering_team: "dba",
                approver_role: Some(approver),
            };
            let want = role == approver || role == Role::Admin;
            let what = format!(
                "{} for a type {} approves",
                role.as_str(),
                approver.as_str()
            );
            assert_eq!(may_review_type(&user, Some(approver)), want, "{what}");
            assert_eq!(may_open_review_queue(&user, [ty]).is_ok(), want, "{what}");
            assert_eq!(menu(&user, [ty]).review_queue, want, "{what}");
        }
        // A review naming no known role (a catalog check refuses it) lets nobody review.
        let unknown = TypeFacts {
            name: "ns",
            offering_team: "dba",
            approver_role: None,
        };
        assert!(!may_review_type(&user, None));
        assert_eq!(
            may_open_review_queue(&user, [unknown]).is_ok(),
            role == Role::Admin
        );
    }
    let alice = person(Role::Requester, Rel::OwnInTeam);
    let refused = may_open_review_queue(&alice, catalog_of(Role::Platform));
    let message = refused.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        message.contains("needs one of the roles reviewer, platform"),
        "{message}"
    );
}

#[test]
fn a_platform_user_reviews_a_type_the_platform_role_approves() {
    let pat = person(Role::Platform, Rel::OfferingTeam);
    let types = catalog_of(Role::Platform);
    assert_eq!(may_open_review_queue(&pat, types), Ok(()));
    let facts = request_approved_by(S::InReview, Rel::OfferingTeam, Role::Platform);
    assert_eq!(may(&pat, Verb::Approve, &facts), Ok(()));
    let row = Row {
        requester: SOMEONE_ELSE,
        team: "payments",
        type_name: "ns",
    };
    assert!(reaches(review_reach(&pat, types).as_deref(), &row));
}

/// A stored request as a list's SQL sees it.
struct Row {
    requester: UserId,
    team: &'static str,
    type_name: &'static str,
}

/// Whether a reach holds the row, as `storage::requests` writes it in SQL.
fn reaches(reach: Option<&[Reach]>, row: &Row) -> bool {
    let Some(reach) = reach else { return true };
    let team = |teams: &[String]| teams.iter().any(|t| t == row.team);
    let of_type = |types: &[String]| types.iter().any(|t| t == row.type_name);
    reach.iter().any(|r| match r {
        Reach::Requester(id) => row.requester == *id,
        Reach::Teams(teams) => team(teams),
        Reach::Types(types) => of_type(types),
        Reach::TeamsOfTypes(teams, types) => team(teams) && of_type(types),
    })
}

#[test]
fn every_list_reaches_exactly_the_rows_may_allows() {
    for approver in APPROVERS {
        let types = catalog_of(approver);
        for role in Role::ALL {
            for rel in RELS {
                let user = person(role, rel);
                let own = matches!(rel, Rel::OwnInTeam | Rel::OwnOutsideTeam);
                let row = Row {
                    requester: if own { ME } else { SOMEONE_ELSE },
                    team: "payments",
                    type_name: "ns",
                };
                let seen = reaches(view_reach(&user, types).as_deref(), &row);
                let queued = reaches(review_reach(&user, types).as_deref(), &row);
                for state in RequestState::ALL {
                    let facts = request_approved_by(state, rel, approver);
                    let what = format!(
                        "{} ({rel:?}) in {state}, reviewed by {}",
                        role.as_str(),
                        approver.as_str()
                    );
                    assert_eq!(seen, may(&user, Verb::View, &facts).is_ok(), "{what}");
                    // The queue's SQL also keeps to requests in review, not one's own.
                    let in_queue = queued && !own && state == S::InReview;
                    assert_eq!(
                        in_queue,
                        may(&user, Verb::Approve, &facts).is_ok(),
                        "{what}"
                    );
                }
            }
        }
    }
}

#[test]
fn needing_attention_holds_the_states_of_manual_handling() {
    let mut want: Vec<RequestState> = [Verb::Retry, Verb::TakeOver, Verb::Resolve, Verb::Abandon]
        .into_iter()
        .flat_map(|verb| states_for(verb).iter().copied())
        .collect();
    want.sort();
    want.dedup();
    let mut got = NEEDS_ATTENTION.to_vec();
    got.sort();
    assert_eq!(got, want);
}

#[test]
fn a_generated_secret_is_shown_only_to_its_requester_once_completed() {
    for approver in APPROVERS {
        for role in Role::ALL {
            for rel in RELS {
                for state in RequestState::ALL {
                    // A requester who left the team no longer gets it (an
                    // admin acts for every team).
                    let want = (rel == Rel::OwnInTeam
                        || (rel == Rel::OwnOutsideTeam && role == Role::Admin))
                        && state == S::Completed;
                    let got = may_reveal_secret(
                        &person(role, rel),
                        &request_approved_by(state, rel, approver),
                    );
                    assert_eq!(got.is_ok(), want, "{} ({rel:?}) in {state}", role.as_str());
                }
            }
        }
    }
}

#[test]
fn a_requester_who_left_the_team_is_told_the_team_should_rotate_the_credential() {
    let request = request_approved_by(S::Completed, Rel::OwnOutsideTeam, Role::Reviewer);
    let left = person(Role::Requester, Rel::OwnOutsideTeam);
    let refused = may_reveal_secret(&left, &request)
        .err()
        .map(|r| r.to_string())
        .unwrap_or_default();
    let team = request.team.unwrap_or_default();
    assert!(
        refused.contains(&format!("no longer belongs to team {team}"))
            && refused.contains("rotate the credential"),
        "{refused}"
    );
    // Back in the team, it is theirs to see.
    let back = UserView {
        teams: vec![team.to_string()],
        ..left
    };
    assert!(may_reveal_secret(&back, &request).is_ok());
}

#[test]
fn an_audit_history_shows_client_and_trace_only_to_audit_readers() {
    let entry = AuditEntry {
        seq: 7,
        position: Some(7),
        at: "2025-01-02 03:04".into(),
        actor: "carol".into(),
        action: "asset.created".into(),
        target: "asset:1".into(),
        before: None,
        after: Some("orders".into()),
        detail: "k8s-namespace from request #3".into(),
        hash: Some("abc".into()),
        channel: Some("portal".into()),
        client_addr: Some("10.1.2.3".into()),
        trace_id: Some("trace-1".into()),
        channel_user: Some("@carol:chat.example".into()),
    };
    for role in Role::ALL {
        let seen = history_for(&person(role, Rel::OwnInTeam), vec![entry.clone()]);
        let want = if areas_for(role).audit {
            entry.clone()
        } else {
            AuditEntry {
                client_addr: None,
                trace_id: None,
                channel_user: None,
                ..entry.clone()
            }
        };
        assert_eq!(seen, vec![want], "{}", role.as_str());
    }
}

#[test]
fn the_assets_team_acts_on_an_active_asset_and_nobody_on_a_retired_one() {
    let payments_asset = AssetFacts {
        team: Some("payments"),
        state: "active",
    };
    let retired = AssetFacts {
        state: "retired",
        ..payments_asset
    };
    for role in Role::ALL {
        for rel in [Rel::TeamMate, Rel::Stranger, Rel::OfferingTeam] {
            let user = person(role, rel);
            let allowed = may_act_on(&user, &payments_asset).is_ok();
            // An admin holds every role and acts for every team.
            let expected = match role {
                Role::Requester => matches!(rel, Rel::TeamMate),
                Role::Admin => true,
                _ => false,
            };
            assert_eq!(allowed, expected, "{role:?} {rel:?}");
            assert!(may_act_on(&user, &retired).is_err(), "{role:?} {rel:?}");
        }
    }
    let mut admin = person(Role::Admin, Rel::Stranger);
    admin.roles.push(Role::Requester);
    assert!(
        may_act_on(&admin, &payments_asset).is_ok(),
        "an admin acts for any team"
    );
    let stranger = person(Role::Requester, Rel::Stranger);
    assert_eq!(
        may_act_on(&stranger, &payments_asset).map_err(|r| r.to_string()),
        Err("pat is not a member of team payments: only the asset's team acts on it".into())
    );
    let teamless = AssetFacts {
        team: None,
        state: "active",
    };
    assert!(may_act_on(&stranger, &teamless).is_ok());
    let mate = person(Role::Requester, Rel::TeamMate);
    assert_eq!(
        may_act_on(&mate, &retired).map_err(|r| r.to_string()),
        Err("the asset is retired: it keeps its history but takes no more actions".into())
    );
}

#[test]
fn a_request_without_a_team_of_a_type_with_teams_is_refused_to_everyone() {
    let catalog = crate::test_support::shipped_catalog();
    let Some(ty) = catalog.resource_type("k8s-namespace") else {
        panic!("k8s-namespace missing")
    };
    let teamless = serde_json::json!({"name": "web", "environment": "dev"});
    let facts = RequestFacts::new(ty, &teamless, S::Draft, ME);
    assert_eq!(facts.team, Some(MISSING_TEAM));
    // A draft without its team is left to validation, which names the field.
    let requester = person(Role::Requester, Rel::OwnInTeam);
    assert!(may(&requester, Verb::Submit, &facts).is_ok());
    // Stored without one (written before the loader required it), it belongs
    // to no team: no team mate sees it, and nobody acts on it for a team.
    let stored = RequestFacts::new(ty, &teamless, S::InReview, UserId(999));
    for role in Role::ALL {
        let user = person(role, Rel::TeamMate);
        let sees_all = matches!(role, Role::Platform | Role::Auditor | Role::Admin);
        assert_eq!(
            may(&user, Verb::View, &stored).is_ok(),
            sees_all,
            "{role:?}"
        );
    }
    let empty_team = serde_json::json!({"name": "web", "team": "", "environment": "dev"});
    let facts = RequestFacts::new(ty, &empty_team, S::Draft, ME);
    assert!(may(&person(Role::Admin, Rel::Stranger), Verb::View, &facts).is_ok());
    assert!(!acts_for_team(
        &person(Role::Admin, Rel::Stranger),
        facts.team
    ));
}
