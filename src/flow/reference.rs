//! The aggregation the storage does in SQL, written plainly over records: the
//! reference its queries follow, and what the unit tests drive.

use std::collections::{BTreeMap, BTreeSet};

use super::*;

type Key = (String, i64, Action);

fn add_bucket<K: Ord>(
    into: &mut BTreeMap<(String, K, i64), Bucket>,
    key: (String, K, i64),
    ms: i64,
) {
    let bucket = key.2;
    let b = into.entry(key).or_insert(Bucket {
        bucket,
        ..Bucket::default()
    });
    b.count += 1;
    b.total_ms += ms;
}

/// Counts per (type, week, action): events, and distinct requests.
fn count_actions(records: &[&StepRecord], by_week: bool) -> Vec<ActionCountRow> {
    let mut counts: BTreeMap<Key, (i64, BTreeSet<i64>)> = BTreeMap::new();
    for r in records {
        let week = if by_week { r.week() } else { 0 };
        let entry = counts
            .entry((r.type_name.clone(), week, r.action))
            .or_default();
        entry.0 += 1;
        entry.1.insert(r.request_id);
    }
    counts
        .into_iter()
        .map(
            |((type_name, week, action), (events, ids))| ActionCountRow {
                type_name,
                week,
                action,
                events,
                requests: ids.len() as i64,
            },
        )
        .collect()
}

/// Distinct requests per (type, week, rate base): those that took any of the
/// base's actions.
fn count_bases(records: &[&StepRecord], by_week: bool) -> Vec<RateBaseRow> {
    let mut sets: BTreeMap<(String, i64, RateBase), BTreeSet<i64>> = BTreeMap::new();
    for r in records {
        let week = if by_week { r.week() } else { 0 };
        for base in RateBase::ALL {
            if base.actions().contains(&r.action) {
                sets.entry((r.type_name.clone(), week, base))
                    .or_default()
                    .insert(r.request_id);
            }
        }
    }
    sets.into_iter()
        .map(|((type_name, week, base), ids)| RateBaseRow {
            type_name,
            week,
            base,
            requests: ids.len() as i64,
        })
        .collect()
}

/// The inputs of [`compute`] from the records of the weeks `since..=until`.
pub fn aggregate(records: &[StepRecord], since_week: i64, until_week: i64) -> FlowInput {
    let window: Vec<&StepRecord> = records
        .iter()
        .filter(|r| (since_week..=until_week).contains(&r.week()))
        .collect();
    let mut steps = BTreeMap::new();
    let mut lead = BTreeMap::new();
    let mut weekly_steps: BTreeMap<(String, i64, RequestState), i64> = BTreeMap::new();
    for r in &window {
        if step_kind(r.from).is_some() {
            let key = (r.type_name.clone(), r.from, r.bucket());
            add_bucket(&mut steps, key, r.duration_ms());
            *weekly_steps
                .entry((r.type_name.clone(), r.week(), r.from))
                .or_default() += r.duration_ms();
        }
        if let (Some(ms), Some(b)) = (r.lead_ms, r.lead_bucket()) {
            add_bucket(&mut lead, (r.type_name.clone(), r.week(), b), ms);
        }
    }
    FlowInput {
        since_week,
        until_week,
        steps: steps
            .into_iter()
            .map(|((type_name, step, _), bucket)| StepBucketRow {
                type_name,
                step,
                bucket,
            })
            .collect(),
        totals: count_actions(&window, false),
        weekly: count_actions(&window, true),
        base_totals: count_bases(&window, false),
        base_weekly: count_bases(&window, true),
        lead: lead
            .into_iter()
            .map(|((type_name, week, _), bucket)| LeadBucketRow {
                type_name,
                week,
                bucket,
            })
            .collect(),
        weekly_steps: weekly_steps
            .into_iter()
            .map(|((type_name, week, step), total_ms)| WeekStepRow {
                type_name,
                week,
                step,
                total_ms,
            })
            .collect(),
    }
}
