//! The aggregation the storage does in SQL, written plainly over records: the
//! reference its queries follow, and what the unit tests drive.

use std::collections::{BTreeMap, BTreeSet};

use super::*;

/// What the storage groups by besides the week and the figure's own key: the
/// type, and the day-2 action of the request (`None` for a creation).
type Group = (String, Option<String>);

/// A record with the day-2 action of its request, as `flow_steps` stores it in
/// `request_action` (read from `requests.action` when the step is written).
struct Row<'a> {
    step: &'a StepRecord,
    request_action: Option<String>,
}

impl Row<'_> {
    fn group(&self) -> Group {
        (self.step.type_name.clone(), self.request_action.clone())
    }
}

fn add_bucket<K: Ord>(into: &mut BTreeMap<(Group, K, i64), Bucket>, key: (Group, K, i64), ms: i64) {
    let bucket = key.2;
    let b = into.entry(key).or_insert(Bucket {
        bucket,
        ..Bucket::default()
    });
    b.count += 1;
    b.total_ms += ms;
}

/// Counts per (type, action of the request, week, action): events, and
/// distinct requests.
fn count_actions(records: &[Row<'_>], by_week: bool) -> Vec<ActionCountRow> {
    let mut counts: BTreeMap<(Group, i64, Action), (i64, BTreeSet<i64>)> = BTreeMap::new();
    for r in records {
        let week = if by_week { r.step.week() } else { 0 };
        let entry = counts.entry((r.group(), week, r.step.action)).or_default();
        entry.0 += 1;
        entry.1.insert(r.step.request_id);
    }
    counts
        .into_iter()
        .map(
            |(((type_name, request_action), week, action), (events, ids))| ActionCountRow {
                type_name,
                request_action,
                week,
                action,
                events,
                requests: ids.len() as i64,
            },
        )
        .collect()
}

/// Distinct requests per (type, action of the request, week, rate base): those
/// that took any of the base's actions.
fn count_bases(records: &[Row<'_>], by_week: bool) -> Vec<RateBaseRow> {
    let mut sets: BTreeMap<(Group, i64, RateBase), BTreeSet<i64>> = BTreeMap::new();
    for r in records {
        let week = if by_week { r.step.week() } else { 0 };
        for base in RateBase::ALL {
            if base.actions().contains(&r.step.action) {
                sets.entry((r.group(), week, base))
                    .or_default()
                    .insert(r.step.request_id);
            }
        }
    }
    sets.into_iter()
        .map(
            |(((type_name, request_action), week, base), ids)| RateBaseRow {
                type_name,
                request_action,
                week,
                base,
                requests: ids.len() as i64,
            },
        )
        .collect()
}

/// The inputs of [`compute`] from the records of the weeks `since..=until`, every
/// request a creation.
pub fn aggregate(records: &[StepRecord], since_week: i64, until_week: i64) -> FlowInput {
    aggregate_of(records, &BTreeMap::new(), since_week, until_week)
}

/// The inputs of [`compute`] from the records of the weeks `since..=until`;
/// `day_two` holds the action of each request that runs one on an asset (as
/// `requests.action` does), the others being creations.
pub fn aggregate_of(
    records: &[StepRecord],
    day_two: &BTreeMap<i64, String>,
    since_week: i64,
    until_week: i64,
) -> FlowInput {
    let window: Vec<Row<'_>> = records
        .iter()
        .filter(|r| (since_week..=until_week).contains(&r.week()))
        .map(|step| Row {
            step,
            request_action: day_two.get(&step.request_id).cloned(),
        })
        .collect();
    let mut steps = BTreeMap::new();
    let mut lead = BTreeMap::new();
    let mut weekly_steps: BTreeMap<(Group, i64, RequestState), i64> = BTreeMap::new();
    for row in &window {
        let r = row.step;
        if step_kind(r.from).is_some() {
            add_bucket(
                &mut steps,
                (row.group(), r.from, r.bucket()),
                r.duration_ms(),
            );
            *weekly_steps
                .entry((row.group(), r.week(), r.from))
                .or_default() += r.duration_ms();
        }
        if let (Some(ms), Some(b)) = (r.lead_ms, r.lead_bucket()) {
            add_bucket(&mut lead, (row.group(), r.week(), b), ms);
        }
    }
    FlowInput {
        since_week,
        until_week,
        steps: steps
            .into_iter()
            .map(
                |(((type_name, request_action), step, _), bucket)| StepBucketRow {
                    type_name,
                    request_action,
                    step,
                    bucket,
                },
            )
            .collect(),
        totals: count_actions(&window, false),
        weekly: count_actions(&window, true),
        base_totals: count_bases(&window, false),
        base_weekly: count_bases(&window, true),
        lead: lead
            .into_iter()
            .map(
                |(((type_name, request_action), week, _), bucket)| LeadBucketRow {
                    type_name,
                    request_action,
                    week,
                    bucket,
                },
            )
            .collect(),
        weekly_steps: weekly_steps
            .into_iter()
            .map(
                |(((type_name, request_action), week, step), total_ms)| WeekStepRow {
                    type_name,
                    request_action,
                    week,
                    step,
                    total_ms,
                },
            )
            .collect(),
    }
}
