//! Places for long answers — live progress streams, bulk downloads — bounded per
//! person and per process. Each such answer holds a database connection or a
//! core for seconds to minutes, and the calls-a-minute pace cannot see that: one
//! client opening them in a loop must not starve the portal and the workers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{ServiceError, ServiceResult};

/// What is bounded, and how it is said when there is no place left.
#[derive(Debug)]
pub struct SlotKind {
    pub per_person: usize,
    pub total: usize,
    /// The refusal when the person holds `per_person` already.
    pub theirs_full: fn(usize, usize) -> String,
    /// The refusal when the process holds `total` already.
    pub all_full: fn(usize, usize) -> String,
    /// How long a refused caller is asked to wait, when a place is likely to
    /// come free by then.
    pub retry_after: Option<Duration>,
}

/// The most progress streams one process keeps open, and one person: each
/// polls the database, so a thousand idle tabs must not take its connections.
pub const PROGRESS_STREAMS: SlotKind = SlotKind {
    per_person: 8,
    total: 256,
    theirs_full: |theirs, most| {
        format!(
            "you follow {theirs} requests live already (at most {most}); close one, or reload the page later"
        )
    },
    all_full: |total, most| {
        format!(
            "{total} live progress streams are open on this server (at most {most}); try again in a minute"
        )
    },
    retry_after: None,
};

/// The bulk downloads (the Backstage feed, the audit export) one process sends
/// at once, and one person: each reads every row and keeps a core busy for
/// seconds on a large database. Backstage reads its feed one at a time.
pub const DOWNLOADS: SlotKind = SlotKind {
    per_person: 2,
    total: 6,
    theirs_full: |theirs, most| {
        format!(
            "you are downloading {theirs} exports already (at most {most} at once); wait for one to finish"
        )
    },
    all_full: |total, most| {
        format!(
            "{total} exports are being sent by this server (at most {most} at once); try again in a minute"
        )
    },
    retry_after: Some(Duration::from_secs(10)),
};

/// The open answers of one kind, counted per person.
#[derive(Debug)]
pub struct Slots {
    kind: &'static SlotKind,
    open: Mutex<HashMap<String, usize>>,
}

/// One open answer's place, given back when the answer ends (however it ends).
#[derive(Debug)]
pub struct Slot {
    slots: Arc<Slots>,
    person: String,
}

impl Slots {
    pub fn new(kind: &'static SlotKind) -> Arc<Slots> {
        Arc::new(Slots {
            kind,
            open: Mutex::default(),
        })
    }

    /// A place for one more answer to `person`, or the reason there is none.
    pub fn take(self: &Arc<Self>, person: &str) -> ServiceResult<Slot> {
        let kind = self.kind;
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let total: usize = open.values().sum();
        let theirs = open.get(person).copied().unwrap_or(0);
        if theirs >= kind.per_person {
            let message = (kind.theirs_full)(theirs, kind.per_person);
            return Err(ServiceError::TooMany(message, kind.retry_after));
        }
        if total >= kind.total {
            let message = (kind.all_full)(total, kind.total);
            return Err(ServiceError::TooMany(message, kind.retry_after));
        }
        open.insert(person.to_string(), theirs + 1);
        Ok(Slot {
            slots: Arc::clone(self),
            person: person.to_string(),
        })
    }

    /// Answers open now, in all.
    pub fn open(&self) -> usize {
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .sum()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.person) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.person);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static TWO_OF_THREE: SlotKind = SlotKind {
        per_person: 2,
        total: 3,
        theirs_full: |n, most| format!("yours: {n} of {most}"),
        all_full: |n, most| format!("all: {n} of {most}"),
        retry_after: None,
    };

    #[test]
    fn places_are_bounded_per_person_and_in_all_and_given_back() {
        let slots = Slots::new(&TWO_OF_THREE);
        let first = slots.take("ann");
        let second = slots.take("ann");
        assert!(first.is_ok() && second.is_ok());
        let third = slots.take("ann").err().map(|e| e.to_string());
        assert_eq!(third.as_deref(), Some("yours: 2 of 2"));
        let bens = slots.take("ben");
        assert!(bens.is_ok());
        let full = slots.take("cy").err().map(|e| e.to_string());
        assert_eq!(full.as_deref(), Some("all: 3 of 3"));
        drop(first);
        assert_eq!(slots.open(), 2);
        assert!(
            slots.take("ann").is_ok(),
            "a place given back is taken again"
        );
        drop(bens);
        assert!(slots.take("cy").is_ok());
    }
}
