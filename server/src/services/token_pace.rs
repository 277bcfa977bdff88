//! How fast one person's API tokens may call, together (one person may hold
//! many). Every call is attributable in the audit log (`token.used`), so a script
//! that loops on a token would grow the trail, and the database's work, without
//! bound: past the pace a call is answered `429` with when to try again, and
//! writes nothing. Per process: calls spread over replicas get each one's pace.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Tokens remembered before those that went quiet are forgotten.
const FORGET_AFTER_KEYS: usize = 10_000;

pub struct TokenPace {
    per_minute: u32,
    /// Keyed by user id.
    limiter: Option<DefaultKeyedRateLimiter<i64>>,
}

impl std::fmt::Debug for TokenPace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenPace")
            .field("per_minute", &self.per_minute)
            .finish_non_exhaustive()
    }
}

impl TokenPace {
    /// `per_minute` calls a minute per person, all of them at once if they
    /// come so; 0 sets no limit.
    pub fn new(per_minute: u32) -> TokenPace {
        TokenPace {
            per_minute,
            limiter: NonZeroU32::new(per_minute).map(|n| RateLimiter::keyed(Quota::per_minute(n))),
        }
    }

    /// Counts a call of the person's; how long to wait when it is one too many.
    pub fn call(&self, user: i64) -> Result<(), Duration> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        if limiter.len() > FORGET_AFTER_KEYS {
            limiter.retain_recent();
        }
        limiter
            .check_key(&user)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    pub fn per_minute(&self) -> u32 {
        self.per_minute
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_person_past_their_pace_waits_and_others_do_not() {
        let pace = TokenPace::new(3);
        for _ in 0..3 {
            assert_eq!(pace.call(1), Ok(()));
        }
        let wait = pace.call(1).err().unwrap_or_default();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        assert_eq!(pace.call(2), Ok(()), "another person has their own pace");
    }

    #[test]
    fn no_pace_means_no_limit() {
        let pace = TokenPace::new(0);
        assert!((0..10_000).all(|_| pace.call(1).is_ok()));
    }
}
