//! Waiting now: the requests in each step of the flow at this moment, and how long
//! they have been in it. The rest of the flow metrics count a stay in a step when
//! the request leaves it, so a request stuck in review for weeks adds nothing to
//! them until someone acts; this figure reads the requests themselves, whatever
//! the page's window, so the worst bottleneck shows while it happens.
//!
//! The storage ranks each step's requests by when they entered it (the row's
//! `updated_at`, which only a state change moves) and returns only the ranks a
//! figure needs: the first, and the middle one or two. Nothing here reads a row
//! per request.

use super::*;

/// Whether a request in `state` is in the flow now: the states of [`STEPS`]. A
/// draft is left out as it is from the steps: nobody is waiting on it but its
/// author, drafts may be left for good, and the oldest forgotten draft would
/// hide the real queues. The end states are not waiting for anything.
pub fn is_in_flow(state: RequestState) -> bool {
    STEPS.contains(&state)
}

/// A request the storage picked out of a step's line, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct WaitingRow {
    pub step: RequestState,
    /// The type whose requests the rank is among; `None` for all types together.
    pub type_name: Option<String>,
    /// 1 for the request that entered the step first.
    pub nth: i64,
    /// How many requests the rank is among.
    pub of: i64,
    /// When the request entered the step.
    pub entered_at: i64,
}

/// Whether the rank `nth` of `of` is one a figure needs: the first gives the
/// oldest age, the middle one (odd `of`) or two (even) the median. The storage's
/// `nth = 1 OR 2 * nth BETWEEN n AND n + 2` is the same rule.
pub fn is_kept_rank(nth: i64, of: i64) -> bool {
    nth == 1 || is_middle(nth, of)
}

fn is_middle(nth: i64, of: i64) -> bool {
    (of..=of.saturating_add(2)).contains(&nth.saturating_mul(2))
}

/// The requests in one step now.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WaitingStep {
    pub step: RequestState,
    pub kind: StepKind,
    /// Requests in the step now.
    pub requests: i64,
    /// How long the request longest in the step has been in it; `None` when the
    /// step is empty.
    pub oldest_ms: Option<i64>,
    /// The median of their times in the step so far (for an even count, the mean
    /// of the middle two); `None` when the step is empty.
    pub median_ms: Option<i64>,
}

/// One type's requests in the flow now, or all types' (`type_name` "all").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TypeWaiting {
    pub type_name: String,
    /// Every step of the flow in flow order, empty ones too.
    pub steps: Vec<WaitingStep>,
}

impl TypeWaiting {
    /// Requests in the flow now, in any step.
    pub fn requests(&self) -> i64 {
        self.steps.iter().map(|s| s.requests).sum()
    }
}

/// The requests in each step now, per type and for all types. Read afresh at
/// every view, whatever the window of the figures beside it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WaitingNow {
    /// The moment the ages are measured to, Unix milliseconds.
    pub at_ms: i64,
    pub all: TypeWaiting,
    /// The types with a request in the flow now, by name.
    pub types: Vec<TypeWaiting>,
}

impl Default for WaitingNow {
    /// Nothing in the flow.
    fn default() -> WaitingNow {
        waiting_now(&[], 0)
    }
}

impl WaitingNow {
    /// All types' figures, or one type's (every step empty for a type with
    /// nothing in the flow).
    pub fn of_type(&self, type_name: Option<&str>) -> TypeWaiting {
        let Some(name) = type_name else {
            return self.all.clone();
        };
        self.types
            .iter()
            .find(|t| t.type_name == name)
            .cloned()
            .unwrap_or_else(|| type_waiting(name, &[], self.at_ms))
    }
}

/// The figures of the storage's ranked rows, with ages measured to `now_ms`.
pub fn waiting_now(rows: &[WaitingRow], now_ms: i64) -> WaitingNow {
    let mut names: Vec<&str> = rows.iter().filter_map(|r| r.type_name.as_deref()).collect();
    names.sort_unstable();
    names.dedup();
    let of = |name: Option<&str>| -> Vec<&WaitingRow> {
        rows.iter()
            .filter(|r| r.type_name.as_deref() == name)
            .collect()
    };
    WaitingNow {
        at_ms: now_ms,
        all: type_waiting("all", &of(None), now_ms),
        types: names
            .iter()
            .map(|name| type_waiting(name, &of(Some(name)), now_ms))
            .collect(),
    }
}

fn type_waiting(type_name: &str, rows: &[&WaitingRow], now_ms: i64) -> TypeWaiting {
    let steps = STEPS
        .into_iter()
        .filter_map(|step| {
            let kind = step_kind(step)?;
            let line: Vec<&WaitingRow> = rows.iter().copied().filter(|r| r.step == step).collect();
            Some(waiting_step(step, kind, &line, now_ms))
        })
        .collect();
    TypeWaiting {
        type_name: type_name.to_string(),
        steps,
    }
}

fn waiting_step(
    step: RequestState,
    kind: StepKind,
    line: &[&WaitingRow],
    now_ms: i64,
) -> WaitingStep {
    // A clock that stepped back since the request entered counts as no time.
    let age = |r: &&WaitingRow| now_ms.saturating_sub(r.entered_at).max(0);
    let middle: Vec<i64> = line
        .iter()
        .filter(|r| is_middle(r.nth, r.of))
        .map(age)
        .collect();
    let median_ms = (!middle.is_empty()).then(|| {
        let sum: i128 = middle.iter().map(|&ms| i128::from(ms)).sum();
        // The mean of ages that each fit an i64 fits one too.
        i64::try_from(sum / middle.len() as i128).unwrap_or(i64::MAX)
    });
    WaitingStep {
        step,
        kind,
        requests: line.iter().map(|r| r.of).max().unwrap_or(0),
        oldest_ms: line.iter().map(age).max(),
        median_ms,
    }
}

/// A request in a step now, as the reference ranking reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenRequest {
    pub state: RequestState,
    pub type_name: String,
    pub entered_at: i64,
}

/// The ranking the storage does in SQL, written plainly over every request: the
/// reference its query follows, and what the tests compare it with.
pub fn rank(requests: &[OpenRequest]) -> Vec<WaitingRow> {
    let mut lines: BTreeMap<(RequestState, Option<&str>), Vec<i64>> = BTreeMap::new();
    for r in requests.iter().filter(|r| is_in_flow(r.state)) {
        for type_name in [Some(r.type_name.as_str()), None] {
            lines
                .entry((r.state, type_name))
                .or_default()
                .push(r.entered_at);
        }
    }
    let mut rows = Vec::new();
    for ((step, type_name), mut line) in lines {
        line.sort_unstable();
        let of = line.len() as i64;
        for (nth, entered_at) in (1..).zip(line) {
            if is_kept_rank(nth, of) {
                rows.push(WaitingRow {
                    step,
                    type_name: type_name.map(str::to_string),
                    nth,
                    of,
                    entered_at,
                });
            }
        }
    }
    rows
}
