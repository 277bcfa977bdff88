//! A per-minute budget of audit rows for events anyone can cause without
//! signing in (a refused single sign-on callback, a chat user trying link
//! codes): each would otherwise add a row to an audit trail that is never
//! pruned. Beyond the budget such events are only logged.

use std::sync::{Mutex, PoisonError};

/// How many of this minute's audit rows are still to be had.
pub struct AuditBudget {
    per_minute: u32,
    /// The minute (epoch ms / 60,000) and the rows written in it.
    used: Mutex<(i64, u32)>,
}

impl AuditBudget {
    pub const fn per_minute(per_minute: u32) -> AuditBudget {
        AuditBudget {
            per_minute,
            used: Mutex::new((0, 0)),
        }
    }

    /// Takes one row of the budget at `now_ms`; false when the minute's are spent.
    pub fn take(&self, now_ms: i64) -> bool {
        let minute = now_ms.div_euclid(60_000);
        // A plain pair of counters cannot be left half-changed by a panic.
        let mut used = self.used.lock().unwrap_or_else(PoisonError::into_inner);
        if used.0 != minute {
            *used = (minute, 0);
        }
        if used.1 >= self.per_minute {
            return false;
        }
        used.1 += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_had_up_to_the_budget_each_minute() {
        let budget = AuditBudget::per_minute(60);
        let minute = 1_780_000_020_000;
        let taken = (0..500).filter(|_| budget.take(minute)).count();
        assert_eq!(taken, 60);
        assert!(!budget.take(minute + 59_000), "the same minute");
        assert!(budget.take(minute + 60_000), "a new minute, a new budget");
    }
}
