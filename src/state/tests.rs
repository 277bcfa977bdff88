use super::*;
use Action as A;
use RequestState as S;

/// The contract, written out independently of `next_state`'s match.
const ALLOWED: [(RequestState, Action, RequestState); 20] = [
    (S::Draft, A::Submit, S::Submitted),
    (S::Submitted, A::EnterReview, S::InReview),
    (S::Submitted, A::AutoApprove, S::Approved),
    (S::InReview, A::Approve, S::Approved),
    (S::InReview, A::Reject, S::Rejected),
    (S::InReview, A::RequestChanges, S::ChangesRequested),
    (S::ChangesRequested, A::Resubmit, S::Submitted),
    (S::Draft, A::Cancel, S::Cancelled),
    (S::Submitted, A::Cancel, S::Cancelled),
    (S::InReview, A::Cancel, S::Cancelled),
    (S::ChangesRequested, A::Cancel, S::Cancelled),
    (S::Approved, A::Cancel, S::Cancelled),
    (S::Executing, A::Cancel, S::Failed),
    (S::Verifying, A::Cancel, S::Failed),
    (S::Approved, A::StartExecution, S::Executing),
    (S::Executing, A::ExecutionSucceeded, S::Verifying),
    (S::Verifying, A::VerificationPassed, S::Completed),
    (S::Executing, A::Fail, S::Failed),
    (S::Verifying, A::Fail, S::Failed),
    (S::Failed, A::Retry, S::Executing),
];

const ALLOWED_MANUAL: [(RequestState, Action, RequestState); 3] = [
    (S::Failed, A::TakeOver, S::Manual),
    (S::Manual, A::ResolveManually, S::Completed),
    (S::Manual, A::Abandon, S::Cancelled),
];

fn expected(from: RequestState, action: Action) -> Option<RequestState> {
    ALLOWED
        .iter()
        .chain(ALLOWED_MANUAL.iter())
        .find(|(f, a, _)| *f == from && *a == action)
        .map(|(_, _, to)| *to)
}

#[test]
fn every_state_action_pair_matches_the_table() {
    let mut allowed = 0;
    let mut forbidden = 0;
    for from in RequestState::ALL {
        for action in Action::ALL {
            match (expected(from, action), next_state(from, action)) {
                (Some(want), Ok(got)) => {
                    assert_eq!(got, want, "{from} --{action}->");
                    allowed += 1;
                }
                (None, Err(err)) => {
                    assert_eq!(err, TransitionError { from, action });
                    forbidden += 1;
                }
                (want, got) => panic!("{from} --{action}->: expected {want:?}, got {got:?}"),
            }
        }
    }
    assert_eq!(allowed, 23);
    assert_eq!(forbidden, 12 * 16 - 23);
}

#[test]
fn terminal_states_allow_nothing() {
    for state in RequestState::ALL.into_iter().filter(|s| s.is_terminal()) {
        assert!(
            Action::ALL.iter().all(|a| next_state(state, *a).is_err()),
            "{state}"
        );
    }
    let terminal: Vec<_> = RequestState::ALL
        .into_iter()
        .filter(|s| s.is_terminal())
        .collect();
    assert_eq!(terminal, vec![S::Rejected, S::Cancelled, S::Completed]);
}

#[test]
fn in_flight_states_are_the_non_terminal_submitted_ones() {
    let in_flight: Vec<_> = RequestState::ALL
        .into_iter()
        .filter(|s| s.is_in_flight())
        .collect();
    assert_eq!(
        in_flight,
        vec![
            S::Submitted,
            S::InReview,
            S::ChangesRequested,
            S::Approved,
            S::Executing,
            S::Verifying,
            S::Failed,
            S::Manual
        ]
    );
    assert!(!S::Draft.is_in_flight());
}

#[test]
fn names_round_trip_and_match_serde() {
    for state in RequestState::ALL {
        assert_eq!(state.as_str().parse::<RequestState>(), Ok(state));
        let json = serde_json::to_string(&state).unwrap_or_default();
        assert_eq!(json, format!("\"{}\"", state.as_str()));
    }
    for action in Action::ALL {
        assert_eq!(action.as_str().parse::<Action>(), Ok(action));
        let json = serde_json::to_string(&action).unwrap_or_default();
        assert_eq!(json, format!("\"{}\"", action.as_str()));
    }
    assert_eq!(S::InReview.as_str(), "in_review");
    assert_eq!(S::InReview.label(), "In review");
    assert!("in-review".parse::<RequestState>().is_err());
    assert!("approve!".parse::<Action>().is_err());
}

#[test]
fn transition_errors_read_as_sentences() {
    let err = TransitionError {
        from: S::Rejected,
        action: A::Approve,
    };
    assert_eq!(err.to_string(), "cannot approve a request that is rejected");
    let err = TransitionError {
        from: S::ChangesRequested,
        action: A::RequestChanges,
    };
    assert_eq!(
        err.to_string(),
        "cannot request changes on a request that is changes requested"
    );
}
