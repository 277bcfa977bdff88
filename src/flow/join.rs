//! A window's aggregates from two parts: its closed weeks, read once and kept
//! (a week that has ended gains no steps), and its current week, read at each
//! change. Counts and sums add up; a whole-window count of distinct requests
//! does not (a request with steps in both parts is in both), so the requests
//! counted in both are read apart and taken off once.

use std::collections::BTreeMap;

use super::*;

/// The requests a whole-window distinct count finds in both parts: per type,
/// request action and action (`actions`, `events` unused) or rate base.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CountedTwice {
    pub actions: Vec<ActionCountRow>,
    pub bases: Vec<RateBaseRow>,
}

type Group = (String, Option<String>);

fn group_of(type_name: &str, request_action: &Option<String>) -> Group {
    (type_name.to_string(), request_action.clone())
}

/// The window `closed.since_week..=current.until_week` from its closed weeks
/// and its current week, which follow each other.
pub fn join(closed: &FlowInput, current: FlowInput, twice: &CountedTwice) -> FlowInput {
    FlowInput {
        since_week: closed.since_week,
        until_week: current.until_week,
        steps: join_steps(&closed.steps, current.steps),
        totals: join_totals(&closed.totals, current.totals, &twice.actions),
        weekly: concat(&closed.weekly, current.weekly),
        base_totals: join_bases(&closed.base_totals, current.base_totals, &twice.bases),
        base_weekly: concat(&closed.base_weekly, current.base_weekly),
        lead: concat(&closed.lead, current.lead),
        weekly_steps: concat(&closed.weekly_steps, current.weekly_steps),
    }
}

impl FlowInput {
    /// Each list's rows in one order, so that two readings of the same figures
    /// (the database's order is its own) compare equal.
    pub fn in_order(mut self) -> FlowInput {
        fn by_debug<T: std::fmt::Debug>(rows: &mut [T]) {
            rows.sort_by_cached_key(|row| format!("{row:?}"));
        }
        by_debug(&mut self.steps);
        by_debug(&mut self.totals);
        by_debug(&mut self.weekly);
        by_debug(&mut self.base_totals);
        by_debug(&mut self.base_weekly);
        by_debug(&mut self.lead);
        by_debug(&mut self.weekly_steps);
        self
    }
}

/// Rows per week: the parts' weeks are apart, so their rows are too.
fn concat<T: Clone>(closed: &[T], current: Vec<T>) -> Vec<T> {
    let mut all = closed.to_vec();
    all.extend(current);
    all
}

fn join_steps(closed: &[StepBucketRow], current: Vec<StepBucketRow>) -> Vec<StepBucketRow> {
    let mut by_key: BTreeMap<(Group, RequestState, i64), StepBucketRow> = BTreeMap::new();
    for row in closed.iter().cloned().chain(current) {
        let key = (
            group_of(&row.type_name, &row.request_action),
            row.step,
            row.bucket.bucket,
        );
        match by_key.get_mut(&key) {
            Some(kept) => {
                kept.bucket.count += row.bucket.count;
                kept.bucket.total_ms += row.bucket.total_ms;
            }
            None => {
                by_key.insert(key, row);
            }
        }
    }
    by_key.into_values().collect()
}

fn join_totals(
    closed: &[ActionCountRow],
    current: Vec<ActionCountRow>,
    twice: &[ActionCountRow],
) -> Vec<ActionCountRow> {
    let key = |row: &ActionCountRow| (group_of(&row.type_name, &row.request_action), row.action);
    let mut by_key: BTreeMap<(Group, Action), ActionCountRow> = BTreeMap::new();
    for row in closed.iter().cloned().chain(current) {
        match by_key.get_mut(&key(&row)) {
            Some(kept) => {
                kept.events += row.events;
                kept.requests += row.requests;
            }
            None => {
                by_key.insert(key(&row), row);
            }
        }
    }
    for row in twice {
        if let Some(kept) = by_key.get_mut(&key(row)) {
            kept.requests -= row.requests;
        }
    }
    by_key.into_values().collect()
}

fn join_bases(
    closed: &[RateBaseRow],
    current: Vec<RateBaseRow>,
    twice: &[RateBaseRow],
) -> Vec<RateBaseRow> {
    let key = |row: &RateBaseRow| (group_of(&row.type_name, &row.request_action), row.base);
    let mut by_key: BTreeMap<(Group, RateBase), RateBaseRow> = BTreeMap::new();
    for row in closed.iter().cloned().chain(current) {
        match by_key.get_mut(&key(&row)) {
            Some(kept) => kept.requests += row.requests,
            None => {
                by_key.insert(key(&row), row);
            }
        }
    }
    for row in twice {
        if let Some(kept) = by_key.get_mut(&key(row)) {
            kept.requests -= row.requests;
        }
    }
    by_key.into_values().collect()
}

#[cfg(test)]
mod tests;
