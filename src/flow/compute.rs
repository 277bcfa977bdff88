//! From the storage's aggregates to the figures a metrics page and the API show.

use super::*;

/// A step's duration histogram for one type over the window.
#[derive(Debug, Clone, PartialEq)]
pub struct StepBucketRow {
    pub type_name: String,
    /// The day-2 action of the rows' requests; `None` for creations.
    pub request_action: Option<String>,
    pub step: RequestState,
    pub bucket: Bucket,
}

/// How often an action was taken, and on how many distinct requests, for one type
/// (and one week, for the trend).
#[derive(Debug, Clone, PartialEq)]
pub struct ActionCountRow {
    pub type_name: String,
    /// The day-2 action of the rows' requests; `None` for creations.
    pub request_action: Option<String>,
    pub week: i64,
    pub action: Action,
    pub events: i64,
    pub requests: i64,
}

/// The set of requests a rate divides by. A rate divides requests that took an
/// action by requests that took another, each counted in the period the action
/// happened: a request that entered review on a Friday and was sent back on the
/// Monday counts in two weeks, so the plain counts of one week can come from
/// different requests and make a rate over 100%. The set is every request that
/// took any of the actions in the period, so each rate's requests are within it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RateBase {
    /// Requests a person reviewed in the period: entered review, or sent back
    /// from a review entered earlier.
    Reviewed,
    /// Requests executed in the period: started, retried (each a run of the
    /// request's steps), or failed or taken over from a run that began earlier.
    Executed,
}

impl RateBase {
    pub const ALL: [RateBase; 2] = [RateBase::Reviewed, RateBase::Executed];

    /// The actions whose requests make up the set.
    pub fn actions(self) -> &'static [Action] {
        match self {
            RateBase::Reviewed => &[Action::EnterReview, Action::RequestChanges],
            RateBase::Executed => &[
                Action::StartExecution,
                Action::Retry,
                Action::Fail,
                Action::TakeOver,
            ],
        }
    }
}

/// How many distinct requests of one type make up a [`RateBase`] in one week (or,
/// for the totals, over the whole window).
#[derive(Debug, Clone, PartialEq)]
pub struct RateBaseRow {
    pub type_name: String,
    /// The day-2 action of the rows' requests; `None` for creations.
    pub request_action: Option<String>,
    pub week: i64,
    pub base: RateBase,
    pub requests: i64,
}

/// A lead-time histogram bucket of the requests one type completed in one week.
#[derive(Debug, Clone, PartialEq)]
pub struct LeadBucketRow {
    pub type_name: String,
    /// The day-2 action of the rows' requests; `None` for creations.
    pub request_action: Option<String>,
    pub week: i64,
    pub bucket: Bucket,
}

/// Time spent in one step by one type's requests, summed over one week.
#[derive(Debug, Clone, PartialEq)]
pub struct WeekStepRow {
    pub type_name: String,
    /// The day-2 action of the rows' requests; `None` for creations.
    pub request_action: Option<String>,
    pub week: i64,
    pub step: RequestState,
    pub total_ms: i64,
}

/// The rows of one type and one "what" (see [`What`]): what every figure
/// selects its rows by.
trait Keyed {
    fn key(&self) -> (&str, Option<&str>);
}

macro_rules! keyed {
    ($($row:ty),*) => {$(
        impl Keyed for $row {
            fn key(&self) -> (&str, Option<&str>) {
                (&self.type_name, self.request_action.as_deref())
            }
        }
    )*};
}
keyed!(
    StepBucketRow,
    ActionCountRow,
    RateBaseRow,
    LeadBucketRow,
    WeekStepRow
);

/// Everything the storage reads for one page: the window is `since_week` up to and
/// including `until_week`. `totals` counts over the whole window (its `week` is
/// ignored), `weekly` per week.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FlowInput {
    pub since_week: i64,
    pub until_week: i64,
    pub steps: Vec<StepBucketRow>,
    pub totals: Vec<ActionCountRow>,
    pub weekly: Vec<ActionCountRow>,
    /// The rates' request sets over the whole window (`week` ignored), and per week.
    pub base_totals: Vec<RateBaseRow>,
    pub base_weekly: Vec<RateBaseRow>,
    pub lead: Vec<LeadBucketRow>,
    pub weekly_steps: Vec<WeekStepRow>,
}

/// The counts behind the rates, and the rates (`None` when nothing was counted).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FlowRates {
    /// Requests submitted (first submit) in the window.
    pub submitted: i64,
    /// Requests that reached completed, automatically or by hand.
    pub completed: i64,
    /// Requests a person reviewed: entered review or were sent back in the
    /// period (see [`RateBase::Reviewed`]).
    pub reviewed: i64,
    /// Reviewed requests sent back for changes at least once.
    pub sent_back: i64,
    /// Times a request was sent back for changes.
    pub change_rounds: i64,
    /// Requests a catalog policy approved without a person.
    pub auto_approved: i64,
    /// Requests a person approved.
    pub approved_by_person: i64,
    /// Requests executed: started, retried, failed or taken over in the period
    /// (see [`RateBase::Executed`]).
    pub executed: i64,
    pub failed: i64,
    /// Failed requests taken over for manual handling.
    pub manual: i64,
    /// sent_back / reviewed.
    pub rework_rate: Option<f64>,
    /// change_rounds / reviewed.
    pub rounds_per_request: Option<f64>,
    /// auto_approved / (auto_approved + approved_by_person).
    pub auto_approval_share: Option<f64>,
    /// failed / executed.
    pub failure_rate: Option<f64>,
    /// manual / executed.
    pub manual_rate: Option<f64>,
}

fn ratio(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

impl FlowRates {
    /// The rates of a set of action counts and of the request sets they divide by
    /// (one type's or all types', one week's or the window's). Each rate's part
    /// is a subset of its whole, so every rate is at most 1.
    pub fn of<'a>(
        rows: impl IntoIterator<Item = &'a ActionCountRow>,
        bases: impl IntoIterator<Item = &'a RateBaseRow>,
    ) -> Self {
        let mut requests: BTreeMap<Action, i64> = BTreeMap::new();
        let mut events: BTreeMap<Action, i64> = BTreeMap::new();
        for row in rows {
            *requests.entry(row.action).or_default() += row.requests;
            *events.entry(row.action).or_default() += row.events;
        }
        let mut in_base: BTreeMap<RateBase, i64> = BTreeMap::new();
        for row in bases {
            *in_base.entry(row.base).or_default() += row.requests;
        }
        let n = |a: Action| requests.get(&a).copied().unwrap_or(0);
        let base = |b: RateBase| in_base.get(&b).copied().unwrap_or(0);
        let mut r = FlowRates {
            submitted: n(Action::Submit),
            completed: n(Action::VerificationPassed) + n(Action::ResolveManually),
            reviewed: base(RateBase::Reviewed),
            sent_back: n(Action::RequestChanges),
            change_rounds: events.get(&Action::RequestChanges).copied().unwrap_or(0),
            auto_approved: n(Action::AutoApprove),
            approved_by_person: n(Action::Approve),
            executed: base(RateBase::Executed),
            failed: n(Action::Fail),
            manual: n(Action::TakeOver),
            ..FlowRates::default()
        };
        r.rework_rate = ratio(r.sent_back, r.reviewed);
        r.rounds_per_request = ratio(r.change_rounds, r.reviewed);
        r.auto_approval_share = ratio(r.auto_approved, r.auto_approved + r.approved_by_person);
        r.failure_rate = ratio(r.failed, r.executed);
        r.manual_rate = ratio(r.manual, r.executed);
        r
    }
}

/// One step of one type (or of all types).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StepFlow {
    pub step: RequestState,
    pub kind: StepKind,
    /// The stays in the step that ended in the window: `count` is how many
    /// times a request left it then. A request still in the step is not
    /// counted here until it leaves; [`WaitingNow`] shows it meanwhile.
    pub durations: Durations,
}

/// The figures of one type, or of all types together (`type_name` "all").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TypeFlow {
    pub type_name: String,
    /// What the figures count: `None` for creations, a day-2 action's name, or
    /// `*` for every request (see [`What`]).
    pub action: Option<String>,
    pub rates: FlowRates,
    /// From first submit to completed, for the requests completed in the window.
    pub lead: Durations,
    /// Time spent waiting, summed over every stay in a step that ended in the
    /// window, whatever became of the request (cancelled and rejected ones too).
    pub wait_ms: i64,
    /// Time spent being worked on, summed likewise.
    pub touch_ms: i64,
    /// touch_ms / (wait_ms + touch_ms): the share of the time in steps that ended
    /// in the window that someone or something worked on the request. Not a share
    /// of the lead times: it counts every request's steps, completed or not.
    pub flow_efficiency: Option<f64>,
    /// The steps in flow order, those visited in the window only.
    pub steps: Vec<StepFlow>,
}

/// One week of the trend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WeekFlow {
    /// Monday 00:00 UTC, Unix milliseconds.
    pub week_start_ms: i64,
    pub rates: FlowRates,
    pub lead_median_ms: Option<i64>,
    pub wait_ms: i64,
    pub touch_ms: i64,
}

/// A metrics page: the window, each type's figures, all types together, and the
/// weekly trend of the chosen type (or of all).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FlowMetrics {
    pub since_ms: i64,
    /// The end of the window (exclusive): the Monday after its last week.
    pub until_ms: i64,
    pub weeks: i64,
    /// The type the trend follows; `None` for all types.
    pub trend_type: Option<String>,
    /// What `all`, `focus` and `trend` count: `None` for creations, a day-2
    /// action's name, or `*` for every request.
    pub action: Option<String>,
    /// All types together, of what `action` says.
    pub all: TypeFlow,
    /// The trend's type (or all types), of what `action` says: the steps and
    /// lead times the trend goes with.
    pub focus: TypeFlow,
    /// One entry per type and what its requests do: its creations, and each of
    /// its day-2 actions apart, whatever `action` says.
    pub types: Vec<TypeFlow>,
    pub trend: Vec<WeekFlow>,
    /// The requests in each step now: not of the window, read afresh at every
    /// view ([`compute`] leaves it empty; the service fills it).
    pub waiting: WaitingNow,
}

/// Sums a step's time into wait or touch.
fn split_time(step: RequestState, total_ms: i64, wait: &mut i64, touch: &mut i64) {
    match step_kind(step) {
        Some(StepKind::Wait) => *wait += total_ms,
        Some(StepKind::Touch) => *touch += total_ms,
        None => {}
    }
}

/// Which rows a figure counts, by their type and their requests' day-2 action.
type Keep<'a> = dyn Fn((&str, Option<&str>)) -> bool + 'a;

fn kept<'a, R: Keyed>(rows: &'a [R], keep: &'a Keep<'_>) -> impl Iterator<Item = &'a R> {
    rows.iter().filter(move |r| keep(r.key()))
}

/// The figures of the rows `keep` selects (one type and what, or all types),
/// named `type_name` and `action`.
fn type_flow(
    input: &FlowInput,
    (type_name, action): (&str, Option<String>),
    keep: &Keep<'_>,
) -> TypeFlow {
    let mut steps = Vec::new();
    let (mut wait_ms, mut touch_ms) = (0, 0);
    for step in STEPS {
        let buckets: Vec<Bucket> = kept(&input.steps, keep)
            .filter(|r| r.step == step)
            .map(|r| r.bucket)
            .collect();
        let durations = Durations::of(&buckets);
        if durations.count == 0 {
            continue;
        }
        split_time(step, durations.total_ms, &mut wait_ms, &mut touch_ms);
        if let Some(kind) = step_kind(step) {
            steps.push(StepFlow {
                step,
                kind,
                durations,
            });
        }
    }
    let lead: Vec<Bucket> = kept(&input.lead, keep).map(|r| r.bucket).collect();
    TypeFlow {
        type_name: type_name.to_string(),
        action,
        rates: FlowRates::of(kept(&input.totals, keep), kept(&input.base_totals, keep)),
        lead: Durations::of(&lead),
        wait_ms,
        touch_ms,
        flow_efficiency: ratio(touch_ms, wait_ms + touch_ms),
        steps,
    }
}

/// One week of the trend, of the rows `keep` selects.
fn week_flow(input: &FlowInput, week: i64, keep: &Keep<'_>) -> WeekFlow {
    let lead: Vec<Bucket> = kept(&input.lead, keep)
        .filter(|r| r.week == week)
        .map(|r| r.bucket)
        .collect();
    let (mut wait_ms, mut touch_ms) = (0, 0);
    for r in kept(&input.weekly_steps, keep).filter(|r| r.week == week) {
        split_time(r.step, r.total_ms, &mut wait_ms, &mut touch_ms);
    }
    WeekFlow {
        week_start_ms: week_start(week),
        rates: FlowRates::of(
            kept(&input.weekly, keep).filter(|r| r.week == week),
            kept(&input.base_weekly, keep).filter(|r| r.week == week),
        ),
        lead_median_ms: quantile(&lead, 0.5),
        wait_ms,
        touch_ms,
    }
}

/// Cuts a value from outside to a length an error message may repeat.
pub(crate) fn shown(value: &str, max: usize) -> String {
    value.chars().take(max + 1).collect()
}

impl FlowQuery {
    /// The type the trend is narrowed to (none for an empty `type`), or why the
    /// name cannot be a type's. A type removed from the catalog keeps its history
    /// and its figures, so any well-formed type name is taken, in the catalog or not.
    pub fn trend_type(&self) -> Result<Option<&str>, String> {
        match self.type_name.as_deref().filter(|t| !t.is_empty()) {
            Some(name) if !is_type_name(name) => Err(format!(
                "{:?} is not a type name: lowercase letters, digits, '-' and '_', \
                 starting with a letter, at most {MAX_TYPE_NAME} characters",
                // A hostile value is not echoed whole into the answer.
                shown(name, MAX_TYPE_NAME)
            )),
            trend_type => Ok(trend_type),
        }
    }
}

/// The longest type name the catalog takes.
const MAX_TYPE_NAME: usize = 63;

/// Whether `name` is formed as the catalog's type names are (the rule its loader
/// holds a type's file name to).
fn is_type_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && name.len() <= MAX_TYPE_NAME
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// Every (type, day-2 action) the window has rows of, creations first in each
/// type (`None` orders before any name).
fn pairs(input: &FlowInput) -> Vec<(&str, Option<&str>)> {
    let mut pairs: Vec<(&str, Option<&str>)> = input
        .totals
        .iter()
        .map(Keyed::key)
        .chain(input.steps.iter().map(Keyed::key))
        .collect();
    pairs.sort_unstable();
    pairs.dedup();
    pairs
}

/// The whole page's figures: per type and what its requests do, and all types
/// together. `trend_type` narrows the trend and the focus to one type, `what`
/// narrows them and all types' figures to creations, one action or every request.
pub fn compute(input: &FlowInput, trend_type: Option<&str>, what: &What) -> FlowMetrics {
    let types = pairs(input)
        .into_iter()
        .map(|(name, action)| {
            let keep = |key: (&str, Option<&str>)| key == (name, action);
            type_flow(input, (name, action.map(str::to_string)), &keep)
        })
        .collect();
    let of_what = |key: (&str, Option<&str>)| what.counts(key.1);
    let all = type_flow(input, ("all", what.as_param()), &of_what);
    let in_focus = |key: (&str, Option<&str>)| {
        trend_type.is_none_or(|want| want == key.0) && what.counts(key.1)
    };
    let focus = match trend_type {
        Some(name) => type_flow(input, (name, what.as_param()), &in_focus),
        None => all.clone(),
    };
    let trend = (input.since_week..=input.until_week)
        .map(|week| week_flow(input, week, &in_focus))
        .collect();
    FlowMetrics {
        since_ms: week_start(input.since_week),
        until_ms: week_start(input.until_week + 1),
        weeks: input.until_week - input.since_week + 1,
        trend_type: trend_type.map(str::to_string),
        action: what.as_param(),
        all,
        focus,
        types,
        trend,
        waiting: WaitingNow::default(),
    }
}
