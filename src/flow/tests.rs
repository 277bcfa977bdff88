use super::*;
use Action as A;
use RequestState as S;

const H: i64 = 3_600_000;
const PG: &str = "postgres-database";
const NS: &str = "k8s-namespace";
const WEEK0: i64 = 2970;

/// Writes a request's transitions the way `transition()` records them: each step
/// entered when the previous one ended, lead time on completion.
struct Script {
    records: Vec<StepRecord>,
}

impl Script {
    fn request(&mut self, id: i64, type_name: &str, start_h: f64, steps: &[(Action, f64)]) {
        let base = week_start(WEEK0);
        let at = |h: f64| base + (h * H as f64) as i64;
        let mut state = S::Draft;
        let mut entered = at(start_h) - H;
        let mut first_submit = None;
        for &(action, hours) in steps {
            let now = at(start_h + hours);
            let to = match crate::state::next_state(state, action) {
                Ok(to) => to,
                Err(e) => panic!("scripted history is wrong: {e}"),
            };
            if action == A::Submit {
                first_submit = Some(now);
            }
            self.records.push(StepRecord {
                request_id: id,
                type_name: type_name.into(),
                from: state,
                to,
                action,
                actor: ActorKind::Person,
                entered_at: entered,
                at: now,
                lead_ms: lead_time(to, first_submit, now),
            });
            state = to;
            entered = now;
        }
    }
}

/// Four requests over two weeks, with known answers worked out by hand.
fn history() -> Vec<StepRecord> {
    let mut s = Script { records: vec![] };
    // Sent back once, then approved and completed: lead 12 h.
    s.request(
        1,
        PG,
        0.0,
        &[
            (A::Submit, 0.0),
            (A::EnterReview, 1.0),
            (A::RequestChanges, 5.0),
            (A::Resubmit, 7.0),
            (A::EnterReview, 8.0),
            (A::Approve, 10.0),
            (A::StartExecution, 11.0),
            (A::ExecutionSucceeded, 11.5),
            (A::VerificationPassed, 12.0),
        ],
    );
    // Approved, failed, handled by hand: lead 13 h.
    s.request(
        2,
        PG,
        24.0,
        &[
            (A::Submit, 0.0),
            (A::EnterReview, 1.0),
            (A::Approve, 5.0),
            (A::StartExecution, 6.0),
            (A::Fail, 7.0),
            (A::TakeOver, 9.0),
            (A::ResolveManually, 13.0),
        ],
    );
    // Auto-approved at once: lead 2 h.
    s.request(
        3,
        NS,
        48.0,
        &[
            (A::Submit, 0.0),
            (A::AutoApprove, 0.0),
            (A::StartExecution, 1.0),
            (A::ExecutionSucceeded, 1.5),
            (A::VerificationPassed, 2.0),
        ],
    );
    // Next week: sent back twice, then cancelled.
    s.request(
        4,
        PG,
        7.0 * 24.0,
        &[
            (A::Submit, 0.0),
            (A::EnterReview, 1.0),
            (A::RequestChanges, 3.0),
            (A::Resubmit, 4.0),
            (A::EnterReview, 5.0),
            (A::RequestChanges, 6.0),
            (A::Cancel, 8.0),
        ],
    );
    s.records
}

fn metrics(trend_type: Option<&str>) -> FlowMetrics {
    compute(
        &aggregate(&history(), WEEK0, WEEK0 + 1),
        trend_type,
        &What::Creations,
    )
}

fn of<'a>(m: &'a FlowMetrics, name: &str) -> &'a TypeFlow {
    match m.types.iter().find(|t| t.type_name == name) {
        Some(t) => t,
        None => panic!("no figures for {name}"),
    }
}

fn step(t: &TypeFlow, state: RequestState) -> &Durations {
    match t.steps.iter().find(|s| s.step == state) {
        Some(s) => &s.durations,
        None => panic!("no step {state}"),
    }
}

#[test]
fn rates_per_type_have_the_known_answers() {
    let m = metrics(None);
    let pg = of(&m, PG).rates;
    assert_eq!((pg.submitted, pg.completed, pg.reviewed), (3, 2, 3));
    assert_eq!((pg.sent_back, pg.change_rounds), (2, 3));
    assert_eq!(pg.rework_rate, Some(2.0 / 3.0));
    assert_eq!(pg.rounds_per_request, Some(1.0));
    assert_eq!(pg.auto_approval_share, Some(0.0));
    assert_eq!(pg.failure_rate, Some(0.5));
    assert_eq!(pg.manual_rate, Some(0.5));
    let ns = of(&m, NS).rates;
    assert_eq!(ns.auto_approval_share, Some(1.0));
    // Nobody reviewed a namespace: no rework rate rather than a made-up zero.
    assert_eq!(ns.rework_rate, None);
    assert_eq!(ns.failure_rate, Some(0.0));
    assert_eq!(m.all.rates.auto_approval_share, Some(1.0 / 3.0));
    assert_eq!(m.all.rates.failure_rate, Some(1.0 / 3.0));
}

#[test]
fn lead_wait_and_touch_have_the_known_answers() {
    let m = metrics(None);
    let pg = of(&m, PG);
    assert_eq!(pg.lead.count, 2);
    assert_eq!(pg.lead.median_ms, Some(12 * H));
    assert_eq!(pg.lead.p90_ms, Some(13 * H));
    assert_eq!(pg.lead.mean_ms, Some(12 * H + H / 2));
    // In review: 4, 2, 4, 2 and 1 hours.
    let review = step(pg, S::InReview);
    assert_eq!(review.count, 5);
    assert_eq!(review.median_ms, Some(2 * H));
    assert_eq!(review.p90_ms, Some(4 * H));
    assert_eq!(step(pg, S::Submitted).median_ms, Some(H));
    assert_eq!(step(pg, S::Manual).median_ms, Some(4 * H));
    // Waiting: submitted 5 h, review 13 h, changes 5 h, approved 2 h, failed 2 h.
    assert_eq!(pg.wait_ms, 27 * H);
    // Working: executing 1.5 h, verifying 0.5 h, by hand 4 h.
    assert_eq!(pg.touch_ms, 6 * H);
    assert_eq!(pg.flow_efficiency, Some(6.0 / 33.0));
    // The draft is before the flow: never a step.
    assert!(pg.steps.iter().all(|s| s.step != S::Draft));
    let ns = of(&m, NS);
    assert_eq!(step(ns, S::Submitted).median_ms, Some(0));
    assert_eq!(ns.lead.median_ms, Some(2 * H));
}

#[test]
fn the_trend_has_one_point_per_week() {
    let m = metrics(None);
    assert_eq!(m.weeks, 2);
    assert_eq!(m.trend.len(), 2);
    assert_eq!(m.trend[0].week_start_ms, week_start(WEEK0));
    assert_eq!(m.since_ms, week_start(WEEK0));
    assert_eq!(m.until_ms, week_start(WEEK0 + 2));
    let (w0, w1) = (&m.trend[0], &m.trend[1]);
    assert_eq!(w0.rates.rework_rate, Some(0.5));
    assert_eq!(w1.rates.rework_rate, Some(1.0));
    assert_eq!(w1.rates.rounds_per_request, Some(2.0));
    // Leads of 2, 12 and 13 hours completed in the first week, none in the second.
    assert_eq!(w0.lead_median_ms, Some(12 * H));
    assert_eq!(w1.lead_median_ms, None);
    assert_eq!(w1.wait_ms, 8 * H);
    assert_eq!(w1.touch_ms, 0);
}

#[test]
fn the_trend_follows_one_type_when_asked() {
    let m = metrics(Some(NS));
    assert_eq!(m.trend_type.as_deref(), Some(NS));
    assert_eq!(m.trend[0].rates.auto_approved, 1);
    assert_eq!(m.trend[0].rates.approved_by_person, 0);
    assert_eq!(m.trend[1].rates.submitted, 0);
    // The per-type figures stay whole.
    assert_eq!(m.types.len(), 2);
}

#[test]
fn records_outside_the_window_are_left_out() {
    let m = compute(
        &aggregate(&history(), WEEK0 + 1, WEEK0 + 1),
        None,
        &What::Creations,
    );
    assert_eq!(m.types.len(), 1);
    assert_eq!(m.all.rates.submitted, 1);
    assert_eq!(m.all.lead.count, 0);
}

#[test]
fn a_quantile_stays_within_its_bucket() {
    for ms in [1, 7, 999, 60_000, 3_599_999, 86_400_000, 31_536_000_000] {
        let b = bucket_of(ms);
        assert!(bucket_of(ms * 2) > b && b > bucket_of(ms / 2) - 1, "{ms}");
        // Neighbours a tenth apart never share a bucket above a second.
        if ms > 1000 {
            assert_ne!(bucket_of(ms), bucket_of(ms + ms / 10), "{ms}");
        }
    }
    let spread = [Bucket {
        bucket: bucket_of(100),
        count: 2,
        total_ms: 205,
    }];
    assert_eq!(quantile(&spread, 0.5), Some(102));
    assert_eq!(quantile(&[], 0.5), None);
    // One bucket in parts (one per week) is one bucket, in any order: the
    // rank falls in it, and its mean is that of all its parts.
    let b = bucket_of(1000);
    let part = |count, total_ms| Bucket {
        bucket: b,
        count,
        total_ms,
    };
    let parts = [part(1, 1000), part(3, 3300), part(1, 1100)];
    let mut backwards = parts;
    backwards.reverse();
    assert_eq!(quantile(&parts, 0.5), Some(1080));
    assert_eq!(quantile(&backwards, 0.5), Some(1080));
    assert_eq!(bucket_of(0), 0);
    assert_eq!(bucket_of(-5), 0);
}

#[test]
fn weeks_start_on_monday() {
    // 2026-11-30 is a Monday: 1_795_996_800_000 ms.
    let monday = 1_795_996_800_000;
    assert_eq!(week_start(week_of(monday)), monday);
    assert_eq!(week_start(week_of(monday + WEEK_MS - 1)), monday);
    assert_eq!(week_of(monday - 1) + 1, week_of(monday));
}

#[test]
fn every_step_of_the_flow_is_wait_or_touch() {
    for state in RequestState::ALL {
        assert_eq!(
            step_kind(state).is_some(),
            STEPS.contains(&state),
            "{state}"
        );
    }
    assert_eq!(lead_time(S::Completed, Some(5), 3), Some(0));
    assert_eq!(lead_time(S::Failed, Some(5), 9), None);
}

#[test]
fn durations_and_shares_read_as_text() {
    assert_eq!(human_duration(0), "0 s");
    assert_eq!(human_duration(-5), "0 s");
    assert_eq!(human_duration(7), "7 ms");
    assert_eq!(human_duration(999), "999 ms");
    assert_eq!(human_duration(1_250), "1.2 s");
    assert_eq!(human_duration(42_000), "42 s");
    assert_eq!(human_duration(12 * 60_000), "12 min");
    assert_eq!(human_duration(3 * H + H / 2), "3.5 h");
    assert_eq!(human_duration(72 * H), "3.0 d");
    assert_eq!(percent(Some(2.0 / 3.0)), "67%");
    assert_eq!(percent(None), "–");
}

#[test]
fn a_query_asks_for_a_bounded_window() {
    let now = week_start(WEEK0) + 3 * H;
    assert_eq!(FlowQuery::default().window(now), Ok((WEEK0 - 11, WEEK0)));
    let one = FlowQuery {
        weeks: Some(1),
        ..FlowQuery::default()
    };
    assert_eq!(one.window(now), Ok((WEEK0, WEEK0)));
    for weeks in [0, -3, 53] {
        let q = FlowQuery {
            weeks: Some(weeks),
            ..FlowQuery::default()
        };
        assert!(q.window(now).is_err(), "{weeks}");
    }
}

#[test]
fn a_query_narrows_to_any_well_formed_type_name() {
    let query = |name: &str| FlowQuery {
        type_name: Some(name.to_string()),
        ..FlowQuery::default()
    };
    assert_eq!(FlowQuery::default().trend_type(), Ok(None));
    assert_eq!(query("").trend_type(), Ok(None));
    // In the catalog or removed from it: history keeps the name.
    for name in ["k8s-namespace", "retired_type", "a", &"x".repeat(63)] {
        assert_eq!(query(name).trend_type(), Ok(Some(name)), "{name}");
    }
    for name in ["K8s", "9lives", "-x", "a b", "a/b", "ä", &"x".repeat(64)] {
        assert!(query(name).trend_type().is_err(), "{name}");
    }
}

#[test]
fn dates_read_as_calendar_days() {
    assert_eq!(date_of(0), "1970-01-01");
    assert_eq!(date_of(1_795_996_800_000), "2026-11-30");
    assert_eq!(date_of(951_782_400_000), "2000-02-29");
    assert_eq!(date_of(-1), "1969-12-31");
}

/// Requests whose steps straddle a Monday: each weekly rate divides requests by
/// a set that holds them, so none is over 100%, and a retry is an execution
/// (before, the second week read a 200% rework rate and a 200% failure rate).
#[test]
fn weekly_rates_across_a_monday_stay_within_one() {
    let mut s = Script { records: vec![] };
    let sunday_night = 6.0 * 24.0 + 22.0;
    // Entered review on Sunday, sent back on Monday.
    s.request(
        1,
        PG,
        sunday_night,
        &[
            (A::Submit, 0.0),
            (A::EnterReview, 1.0),
            (A::RequestChanges, 3.0),
        ],
    );
    // Reviewed and sent back within the second week.
    s.request(
        2,
        PG,
        sunday_night + 24.0,
        &[
            (A::Submit, 0.0),
            (A::EnterReview, 1.0),
            (A::RequestChanges, 2.0),
        ],
    );
    // Started on Sunday, failed on Monday, retried and failed again.
    s.request(
        3,
        PG,
        sunday_night,
        &[
            (A::Submit, 0.0),
            (A::AutoApprove, 0.0),
            (A::StartExecution, 1.0),
            (A::Fail, 3.0),
            (A::Retry, 4.0),
            (A::Fail, 5.0),
        ],
    );
    // Started, failed and retried to success within the second week.
    s.request(
        4,
        PG,
        sunday_night + 24.0,
        &[
            (A::Submit, 0.0),
            (A::AutoApprove, 0.0),
            (A::StartExecution, 1.0),
            (A::Fail, 2.0),
            (A::Retry, 3.0),
            (A::ExecutionSucceeded, 4.0),
            (A::VerificationPassed, 5.0),
        ],
    );
    let m = compute(
        &aggregate(&s.records, WEEK0, WEEK0 + 1),
        None,
        &What::Creations,
    );
    let monday = &m.trend[1].rates;
    assert_eq!((monday.sent_back, monday.reviewed), (2, 2));
    assert_eq!(monday.rework_rate, Some(1.0));
    assert_eq!((monday.failed, monday.executed), (2, 2));
    assert_eq!(monday.failure_rate, Some(1.0));
    let sunday = &m.trend[0].rates;
    assert_eq!((sunday.sent_back, sunday.reviewed), (0, 1));
    assert_eq!((sunday.failed, sunday.executed), (0, 1));
    for week in &m.trend {
        let r = &week.rates;
        for rate in [
            r.rework_rate,
            r.auto_approval_share,
            r.failure_rate,
            r.manual_rate,
        ]
        .into_iter()
        .flatten()
        {
            assert!(rate <= 1.0, "week {}: {r:?}", week.week_start_ms);
        }
    }
    let whole = &m.all.rates;
    assert_eq!((whole.reviewed, whole.executed), (2, 2));
}

const DAY: i64 = 24 * H;
const NOW: i64 = 1_795_996_800_000;

fn open(state: RequestState, type_name: &str, age_ms: i64) -> OpenRequest {
    OpenRequest {
        state,
        type_name: type_name.into(),
        entered_at: NOW - age_ms,
    }
}

fn waiting_of(requests: &[OpenRequest]) -> WaitingNow {
    waiting_now(&rank(requests), NOW)
}

fn in_step(t: &TypeWaiting, state: RequestState) -> WaitingStep {
    match t.steps.iter().find(|s| s.step == state) {
        Some(s) => *s,
        None => panic!("no step {state} in {t:?}"),
    }
}

#[test]
fn nothing_in_the_flow_waits_nowhere() {
    let w = waiting_of(&[]);
    assert_eq!(w.at_ms, NOW);
    assert!(w.types.is_empty());
    let steps: Vec<RequestState> = w.all.steps.iter().map(|s| s.step).collect();
    assert_eq!(steps, STEPS, "every step, empty ones too, in flow order");
    for s in &w.all.steps {
        assert_eq!((s.requests, s.oldest_ms, s.median_ms), (0, None, None));
    }
    assert_eq!(w.all.requests(), 0);
    assert_eq!(WaitingNow::default().all.steps.len(), STEPS.len());
}

#[test]
fn a_request_left_in_review_waits_there_with_its_age() {
    let w = waiting_of(&[open(S::InReview, PG, 35 * DAY)]);
    let review = in_step(&w.all, S::InReview);
    assert_eq!(review.kind, StepKind::Wait);
    assert_eq!(review.requests, 1);
    assert_eq!(review.oldest_ms, Some(35 * DAY));
    assert_eq!(review.median_ms, Some(35 * DAY));
    assert_eq!(w.all.requests(), 1, "no other step holds it");
    assert_eq!(w.types.len(), 1);
    assert_eq!(w.of_type(Some(PG)), w.types[0]);
    assert_eq!(in_step(&w.of_type(Some(PG)), S::InReview), review);
    // A type with nothing in the flow reads as every step empty.
    assert_eq!(w.of_type(Some(NS)).requests(), 0);
    assert_eq!(w.of_type(Some(NS)).steps.len(), STEPS.len());
    assert_eq!(w.of_type(None), w.all);
}

#[test]
fn ages_are_per_type_and_for_all_types() {
    let w = waiting_of(&[
        open(S::InReview, PG, 3 * DAY),
        open(S::InReview, NS, 9 * DAY),
        open(S::InReview, NS, H),
        open(S::Executing, NS, 10_000),
        // Entered after the clock read now (a clock stepped back): no time yet.
        open(S::Approved, PG, -H),
    ]);
    let all = in_step(&w.all, S::InReview);
    assert_eq!(
        (all.requests, all.oldest_ms, all.median_ms),
        (3, Some(9 * DAY), Some(3 * DAY))
    );
    let ns = in_step(&w.of_type(Some(NS)), S::InReview);
    assert_eq!(ns.requests, 2);
    assert_eq!(ns.oldest_ms, Some(9 * DAY));
    assert_eq!(ns.median_ms, Some((9 * DAY + H) / 2));
    let executing = in_step(&w.all, S::Executing);
    assert_eq!(
        (executing.kind, executing.oldest_ms),
        (StepKind::Touch, Some(10_000))
    );
    assert_eq!(in_step(&w.all, S::Approved).oldest_ms, Some(0));
    assert_eq!(w.all.requests(), 5);
    let names: Vec<&str> = w.types.iter().map(|t| t.type_name.as_str()).collect();
    assert_eq!(names, [NS, PG]);
}

#[test]
fn the_median_is_the_middle_age_or_the_mean_of_the_middle_two() {
    let odd = waiting_of(&[1, 2, 10].map(|d| open(S::Failed, PG, d * DAY)));
    let failed = in_step(&odd.all, S::Failed);
    assert_eq!(
        (failed.requests, failed.median_ms, failed.oldest_ms),
        (3, Some(2 * DAY), Some(10 * DAY))
    );
    let even = waiting_of(&[10, 1, 4, 2].map(|d| open(S::Failed, PG, d * DAY)));
    let failed = in_step(&even.all, S::Failed);
    assert_eq!(
        (failed.requests, failed.median_ms, failed.oldest_ms),
        (4, Some(3 * DAY), Some(10 * DAY))
    );
    let two = waiting_of(&[1, 2].map(|d| open(S::Manual, PG, d * H)));
    assert_eq!(in_step(&two.all, S::Manual).median_ms, Some(3 * H / 2));
}

#[test]
fn the_storage_returns_only_the_oldest_and_the_middle_ranks() {
    let kept = |of: i64| -> Vec<i64> { (1..=of).filter(|&n| is_kept_rank(n, of)).collect() };
    assert_eq!(kept(1), [1]);
    assert_eq!(kept(2), [1, 2]);
    assert_eq!(kept(3), [1, 2]);
    assert_eq!(kept(4), [1, 2, 3]);
    assert_eq!(kept(5), [1, 3]);
    assert_eq!(kept(1000), [1, 500, 501]);
    let many: Vec<OpenRequest> = (0..1000).map(|i| open(S::InReview, PG, i * H)).collect();
    // Three rows of the type's line and three of all types'.
    assert_eq!(rank(&many).len(), 6);
    let review = in_step(&waiting_of(&many).all, S::InReview);
    assert_eq!((review.requests, review.oldest_ms), (1000, Some(999 * H)));
    assert_eq!(review.median_ms, Some(999 * H / 2));
}

#[test]
fn drafts_and_ended_requests_are_not_in_the_flow() {
    let w = waiting_of(&[
        open(S::Draft, PG, 300 * DAY),
        open(S::Completed, PG, DAY),
        open(S::Rejected, PG, DAY),
        open(S::Cancelled, PG, DAY),
    ]);
    assert_eq!(w.all.requests(), 0);
    assert!(w.types.is_empty());
    for state in RequestState::ALL {
        assert_eq!(
            is_in_flow(state),
            !state.is_terminal() && state != S::Draft,
            "{state}"
        );
    }
}

/// `history()` with six daily backups of a database on top: each auto-approved
/// and done in seconds, as a team's backups are.
fn with_backups() -> (Vec<StepRecord>, std::collections::BTreeMap<i64, String>) {
    let mut s = Script { records: history() };
    let mut day_two = std::collections::BTreeMap::new();
    for day in 0..6 {
        let id = 100 + day;
        s.request(
            id,
            PG,
            24.0 * day as f64,
            &[
                (A::Submit, 0.0),
                (A::AutoApprove, 0.0),
                (A::StartExecution, 0.001),
                (A::ExecutionSucceeded, 0.002),
                (A::VerificationPassed, 0.003),
            ],
        );
        day_two.insert(id, "backup".to_string());
    }
    (s.records, day_two)
}

fn what_metrics(trend_type: Option<&str>, what: &What) -> FlowMetrics {
    let (records, day_two) = with_backups();
    compute(
        &aggregate_of(&records, &day_two, WEEK0, WEEK0 + 1),
        trend_type,
        what,
    )
}

fn row<'a>(m: &'a FlowMetrics, name: &str, action: Option<&str>) -> &'a TypeFlow {
    match m
        .types
        .iter()
        .find(|t| t.type_name == name && t.action.as_deref() == action)
    {
        Some(t) => t,
        None => panic!("no figures for {name} {action:?}"),
    }
}

/// Daily backups leave a database's creation figures as they were: the
/// comparison has a row per type and what, and by default the trend, the steps
/// and all types' figures are of creations.
#[test]
fn backups_do_not_hide_how_long_a_creation_takes() {
    let m = what_metrics(Some(PG), &What::Creations);
    let created = row(&m, PG, None);
    assert_eq!(created, of(&metrics(None), PG), "as with no backups at all");
    assert_eq!(created.rates.auto_approval_share, Some(0.0));
    assert_eq!(created.lead.median_ms, Some(12 * H));
    let backups = row(&m, PG, Some("backup"));
    assert_eq!(backups.rates.submitted, 6);
    assert_eq!(backups.rates.auto_approval_share, Some(1.0));
    assert!(backups.lead.median_ms.is_some_and(|ms| ms < 60_000));
    let listed: Vec<(&str, Option<&str>)> = m
        .types
        .iter()
        .map(|t| (t.type_name.as_str(), t.action.as_deref()))
        .collect();
    assert_eq!(listed, [(NS, None), (PG, None), (PG, Some("backup"))]);
    // The focus, the trend and all types count creations only.
    assert_eq!(
        (m.action.as_deref(), m.focus.action.as_deref()),
        (None, None)
    );
    assert_eq!(m.focus.lead, created.lead);
    assert_eq!(m.trend[0].rates.auto_approved, 0);
    assert_eq!(m.all.rates.submitted, 4);
    assert_eq!(m.all.rates.auto_approval_share, Some(1.0 / 3.0));
}

#[test]
fn one_action_or_every_request_when_asked() {
    let backup = What::Action("backup".into());
    let m = what_metrics(Some(PG), &backup);
    assert_eq!(m.action.as_deref(), Some("backup"));
    assert_eq!(m.focus, {
        let mut b = row(&m, PG, Some("backup")).clone();
        b.type_name = PG.into();
        b
    });
    assert_eq!(m.trend[0].rates.auto_approved, 6);
    assert_eq!(m.all.rates.submitted, 6, "all types' backups");
    let every = what_metrics(None, &What::Every);
    assert_eq!(every.action.as_deref(), Some(EVERY));
    assert_eq!(every.all.rates.submitted, 10);
    assert_eq!(every.focus, every.all);
    assert_eq!(every.types.len(), 3, "the rows stay apart");
    // An action no request took: nothing, not everything.
    let none = what_metrics(Some(PG), &What::Action("restore".into()));
    assert_eq!(none.focus.rates.submitted, 0);
    assert!(none.trend.iter().all(|w| w.rates.submitted == 0));
    assert_eq!(label_of(None), "creations");
    assert_eq!(What::Every.label(), "every request");
    assert_eq!(backup.label(), "backup");
}

#[test]
fn a_query_names_creations_an_action_or_every_request() {
    let query = |action: Option<&str>| FlowQuery {
        action: action.map(str::to_string),
        ..FlowQuery::default()
    };
    assert_eq!(query(None).what(), Ok(What::Creations));
    assert_eq!(query(Some("")).what(), Ok(What::Creations));
    assert_eq!(query(Some("*")).what(), Ok(What::Every));
    // Declared today or removed since: history keeps the name.
    for name in ["backup", "upgrade-templates", "scale2", &"a".repeat(32)] {
        assert_eq!(
            query(Some(name)).what(),
            Ok(What::Action(name.into())),
            "{name}"
        );
    }
    let long = "a".repeat(10_000);
    for hostile in [
        "Backup",
        "back up",
        "-x",
        "x-",
        "9x",
        "back_up",
        "**",
        "*backup",
        "../etc",
        "%00",
        "a\0b",
        "'; DROP TABLE flow_steps; --",
        "ä",
        "<script>",
        &"a".repeat(33),
        &long,
    ] {
        let Err(why) = query(Some(hostile)).what() else {
            panic!("{hostile:?} must be refused");
        };
        assert!(
            why.len() < 400,
            "a hostile value is cut: {} bytes",
            why.len()
        );
    }
    let type_query = FlowQuery {
        type_name: Some(long),
        ..FlowQuery::default()
    };
    assert!(type_query.trend_type().is_err_and(|why| why.len() < 400));
}
