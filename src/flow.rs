//! Flow metrics, the value-stream view: how long requests wait and how long someone
//! or something works on them, per type and per step, with rework, auto-approval,
//! failure and manual-handling rates and their weekly trend.
//!
//! Every transition is recorded with the time its request entered the state it
//! leaves, so a step's duration is known per row. The storage aggregates those rows
//! in SQL into the small inputs below (histograms and counts per type, week and
//! step), and this module turns them into figures. Nothing here reads a row per
//! request, so a page stays cheap however many requests there are.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::state::{Action, RequestState};

/// One week in milliseconds.
pub const WEEK_MS: i64 = 7 * 24 * 3_600_000;
/// The Unix epoch fell on a Thursday; weeks start on the Monday four days later.
const MONDAY_OFFSET_MS: i64 = 4 * 24 * 3_600_000;
/// Histogram resolution: buckets per doubling. Eight keeps a bucket within 9% of
/// its neighbours; a quantile reads the mean of its bucket, so it is exact when the
/// bucket holds equal durations and never leaves the bucket otherwise.
const BUCKETS_PER_DOUBLING: f64 = 8.0;
/// The default and the longest window a metrics page reads.
pub const DEFAULT_WEEKS: i64 = 12;
pub const MAX_WEEKS: i64 = 52;

/// Whether time in a step is waiting (queued, or waiting for a person) or touch
/// time (someone or something working on the request).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum StepKind {
    Wait,
    Touch,
}

/// Who took a transition, as the flow metrics count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    Person,
    Policy,
    Worker,
    System,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::Person => "person",
            ActorKind::Policy => "policy",
            ActorKind::Worker => "worker",
            ActorKind::System => "system",
        }
    }
}

/// The kind of time a request spends in a state; `None` for the draft (before the
/// flow starts) and the end states (after it ends).
pub fn step_kind(state: RequestState) -> Option<StepKind> {
    use RequestState as S;
    match state {
        // Queued for a policy or a reviewer, waiting for a reviewer's decision,
        // for the requester's revision, for the worker, or for a person after a
        // failure.
        S::Submitted | S::InReview | S::ChangesRequested | S::Approved | S::Failed => {
            Some(StepKind::Wait)
        }
        // The worker applies and verifies; a platform engineer handles by hand.
        S::Executing | S::Verifying | S::Manual => Some(StepKind::Touch),
        S::Draft | S::Completed | S::Rejected | S::Cancelled => None,
    }
}

/// The steps of the flow in the order a request meets them.
pub const STEPS: [RequestState; 8] = [
    RequestState::Submitted,
    RequestState::InReview,
    RequestState::ChangesRequested,
    RequestState::Approved,
    RequestState::Executing,
    RequestState::Verifying,
    RequestState::Failed,
    RequestState::Manual,
];

/// The week a moment falls in, counted in whole weeks from the first Monday after
/// the epoch.
pub fn week_of(at_ms: i64) -> i64 {
    (at_ms - MONDAY_OFFSET_MS).div_euclid(WEEK_MS)
}

/// The Monday 00:00 UTC a week starts on.
pub fn week_start(week: i64) -> i64 {
    week * WEEK_MS + MONDAY_OFFSET_MS
}

/// The histogram bucket of a duration: 0 for nothing, then eight per doubling.
pub fn bucket_of(duration_ms: i64) -> i64 {
    if duration_ms <= 0 {
        return 0;
    }
    // log2 of an i64 is below 64, so the product fits easily.
    (BUCKETS_PER_DOUBLING * (duration_ms as f64).log2()).floor() as i64 + 1
}

/// One histogram bucket as the storage sums it: how many durations, and their total.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Bucket {
    pub bucket: i64,
    pub count: i64,
    pub total_ms: i64,
}

/// Nearest-rank quantile (0 < q <= 1) of a histogram, read as the mean of the
/// bucket the rank falls in. `None` for an empty histogram. A bucket may come
/// in parts (one per week): they are one bucket, whatever their order.
pub fn quantile(buckets: &[Bucket], q: f64) -> Option<i64> {
    let mut parts: Vec<Bucket> = buckets.iter().copied().filter(|b| b.count > 0).collect();
    parts.sort_by_key(|b| b.bucket);
    let mut sorted: Vec<Bucket> = Vec::with_capacity(parts.len());
    for part in parts {
        match sorted.last_mut() {
            Some(last) if last.bucket == part.bucket => {
                last.count += part.count;
                last.total_ms += part.total_ms;
            }
            _ => sorted.push(part),
        }
    }
    let n: i64 = sorted.iter().map(|b| b.count).sum();
    if n == 0 {
        return None;
    }
    let rank = ((q * n as f64).ceil() as i64).clamp(1, n);
    let mut seen = 0;
    for b in &sorted {
        seen += b.count;
        if seen >= rank {
            return Some(b.total_ms / b.count);
        }
    }
    None
}

/// Median and 90th percentile, and the plain mean.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Durations {
    /// How many durations were measured.
    pub count: i64,
    pub median_ms: Option<i64>,
    pub p90_ms: Option<i64>,
    pub mean_ms: Option<i64>,
    pub total_ms: i64,
}

impl Durations {
    pub fn of(buckets: &[Bucket]) -> Self {
        let count: i64 = buckets.iter().map(|b| b.count).sum();
        let total_ms: i64 = buckets.iter().map(|b| b.total_ms).sum();
        Durations {
            count,
            median_ms: quantile(buckets, 0.5),
            p90_ms: quantile(buckets, 0.9),
            mean_ms: (count > 0).then(|| total_ms / count),
            total_ms,
        }
    }
}

mod compute;
pub use compute::*;

mod join;
pub use join::{CountedTwice, join};

mod waiting;
pub use waiting::*;

mod what;
pub use what::*;

#[cfg(test)]
mod tests;

/// One recorded transition, as the storage writes it: the step it leaves (with the
/// time the request entered it), where it goes, who took it, and for a completion
/// the lead time since the first submit.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRecord {
    pub request_id: i64,
    pub type_name: String,
    pub from: RequestState,
    pub to: RequestState,
    pub action: Action,
    pub actor: ActorKind,
    pub entered_at: i64,
    pub at: i64,
    /// Set on the transition into completed.
    pub lead_ms: Option<i64>,
}

impl StepRecord {
    /// Time spent in the step; a clock that stepped back counts as none.
    pub fn duration_ms(&self) -> i64 {
        (self.at - self.entered_at).max(0)
    }

    pub fn bucket(&self) -> i64 {
        bucket_of(self.duration_ms())
    }

    pub fn week(&self) -> i64 {
        week_of(self.at)
    }

    pub fn lead_bucket(&self) -> Option<i64> {
        self.lead_ms.map(bucket_of)
    }
}

/// The lead time to record on a transition: from the first submit to completed.
pub fn lead_time(to: RequestState, first_submit_at: Option<i64>, at: i64) -> Option<i64> {
    match (to, first_submit_at) {
        (RequestState::Completed, Some(submitted)) => Some((at - submitted).max(0)),
        _ => None,
    }
}

mod reference;
pub use reference::{aggregate, aggregate_of};

/// A duration as a person reads it: milliseconds, seconds, minutes, hours or
/// days, one decimal where it helps. Steps a machine does take well under a
/// second; rounding them to "0 s" would hide them.
pub fn human_duration(ms: i64) -> String {
    let s = ms as f64 / 1000.0;
    if ms <= 0 {
        "0 s".to_string()
    } else if ms < 1000 {
        format!("{ms} ms")
    } else if s < 10.0 {
        format!("{s:.1} s")
    } else if s < 60.0 {
        format!("{s:.0} s")
    } else if s < 3600.0 {
        format!("{:.0} min", s / 60.0)
    } else if s < 48.0 * 3600.0 {
        format!("{:.1} h", s / 3600.0)
    } else {
        format!("{:.1} d", s / 86_400.0)
    }
}

/// A share as a percentage, or a dash when nothing was counted.
pub fn percent(share: Option<f64>) -> String {
    share.map_or_else(|| "–".to_string(), |s| format!("{:.0}%", s * 100.0))
}

/// What a metrics page asks for: how many weeks back (this one included; 12 by
/// default, at most 52), optionally the one type whose trend to draw, and what
/// its requests do (creations unless an action is named: see [`What`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowQuery {
    pub weeks: Option<i64>,
    #[serde(rename = "type")]
    pub type_name: Option<String>,
    #[serde(default)]
    pub action: Option<String>,
}

impl FlowQuery {
    /// The weeks of the window ending with the week of `now_ms`, or why not.
    pub fn window(&self, now_ms: i64) -> Result<(i64, i64), String> {
        let weeks = self.weeks.unwrap_or(DEFAULT_WEEKS);
        if !(1..=MAX_WEEKS).contains(&weeks) {
            return Err(format!("must be between 1 and {MAX_WEEKS}, got {weeks}"));
        }
        let until = week_of(now_ms);
        Ok((until - weeks + 1, until))
    }
}

/// The UTC date of a moment as `YYYY-MM-DD` (the civil-from-days algorithm: no
/// calendar crate in the core).
pub fn date_of(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}
