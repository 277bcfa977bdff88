use super::*;

const WEEK_MS: i64 = 7 * 24 * 3600 * 1000;

/// Steps of 400 requests over eight weeks, each request's actions spread over
/// the weeks so that many fall on both sides of the split; a third are day-2.
fn records() -> (Vec<StepRecord>, BTreeMap<i64, String>) {
    let mut seed: u64 = 7;
    let mut next = move |n: u64| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) % n
    };
    let start = week_start(3000);
    let mut records = Vec::new();
    let mut day_two = BTreeMap::new();
    for request_id in 1..=400_i64 {
        if request_id % 3 == 0 {
            day_two.insert(request_id, "resize".to_string());
        }
        let type_name = ["a", "b"][(request_id % 2) as usize].to_string();
        let mut at = start + (next(8) as i64) * WEEK_MS;
        for _ in 0..(2 + next(6)) {
            let entered_at = at;
            at += (next(5) as i64) * WEEK_MS / 3 + next(100_000) as i64;
            let action = Action::ALL[next(Action::ALL.len() as u64) as usize];
            let from = RequestState::ALL[next(RequestState::ALL.len() as u64) as usize];
            let to = RequestState::ALL[next(RequestState::ALL.len() as u64) as usize];
            let lead_ms = (to == RequestState::Completed).then_some(at - entered_at);
            records.push(StepRecord {
                request_id,
                type_name: type_name.clone(),
                from,
                to,
                action,
                actor: ActorKind::Person,
                entered_at,
                at,
                lead_ms,
            });
        }
    }
    (records, day_two)
}

/// What the storage reads apart: requests with the same action (or one of a
/// base's) on both sides of the split, per group.
fn counted_twice(
    records: &[StepRecord],
    day_two: &BTreeMap<i64, String>,
    (since, split, until): (i64, i64, i64),
) -> CountedTwice {
    let group = |r: &StepRecord| (r.type_name.clone(), day_two.get(&r.request_id).cloned());
    let side = |r: &StepRecord| {
        let week = r.week();
        if (since..split).contains(&week) {
            Some(false)
        } else if (split..=until).contains(&week) {
            Some(true)
        } else {
            None
        }
    };
    let mut actions: BTreeMap<(Group, Action), BTreeMap<i64, [bool; 2]>> = BTreeMap::new();
    let mut bases: BTreeMap<(Group, RateBase), BTreeMap<i64, [bool; 2]>> = BTreeMap::new();
    for r in records {
        let Some(current) = side(r) else { continue };
        let seen = actions.entry((group(r), r.action)).or_default();
        seen.entry(r.request_id).or_default()[usize::from(current)] = true;
        for base in RateBase::ALL {
            if base.actions().contains(&r.action) {
                let seen = bases.entry((group(r), base)).or_default();
                seen.entry(r.request_id).or_default()[usize::from(current)] = true;
            }
        }
    }
    let both = |seen: &BTreeMap<i64, [bool; 2]>| seen.values().filter(|s| s[0] && s[1]).count();
    CountedTwice {
        actions: actions
            .iter()
            .map(
                |(((type_name, request_action), action), seen)| ActionCountRow {
                    type_name: type_name.clone(),
                    request_action: request_action.clone(),
                    week: 0,
                    action: *action,
                    events: 0,
                    requests: both(seen) as i64,
                },
            )
            .collect(),
        bases: bases
            .iter()
            .map(|(((type_name, request_action), base), seen)| RateBaseRow {
                type_name: type_name.clone(),
                request_action: request_action.clone(),
                week: 0,
                base: *base,
                requests: both(seen) as i64,
            })
            .collect(),
    }
}

#[test]
fn a_window_joined_from_its_parts_is_the_window_read_whole() {
    let (records, day_two) = records();
    let (since, until) = (3001, 3007);
    for split in since + 1..=until {
        let whole = aggregate_of(&records, &day_two, since, until);
        let closed = aggregate_of(&records, &day_two, since, split - 1);
        let current = aggregate_of(&records, &day_two, split, until);
        let twice = counted_twice(&records, &day_two, (since, split, until));
        assert!(
            twice.actions.iter().any(|row| row.requests > 0),
            "the data must have requests on both sides"
        );
        let joined = join(&closed, current, &twice);
        assert_eq!(
            joined.in_order(),
            whole.clone().in_order(),
            "split at {split}"
        );
        // What the figures say is the same too.
        assert_eq!(
            compute(
                &join(
                    &closed,
                    aggregate_of(&records, &day_two, split, until),
                    &twice
                ),
                None,
                &What::Every
            ),
            compute(&whole, None, &What::Every)
        );
    }
}
