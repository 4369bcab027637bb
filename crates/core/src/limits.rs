//! Publish rate limits: a token bucket per API key, keyed by the key's index in `API_KEYS`
//! (never by the key text). Pure: the runtime supplies the clock.
//!
//! Integer arithmetic in milli-tokens: a rate of `r` events/s refills `r` milli-tokens per ms,
//! so refills are exact and nothing drifts.

use std::collections::HashMap;

const MILLI: u64 = 1_000;

/// One bucket: `rate` events per second on average, at most `burst` at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenBucket {
    rate: u64,
    burst: u64,
    /// Milli-tokens available.
    level: u64,
    last_ms: u64,
}

impl TokenBucket {
    /// A full bucket. `rate` must be > 0; a `burst` of 0 means "as large as one second of rate"
    /// (at least 1).
    pub fn new(rate: u64, burst: u64, now_ms: u64) -> Self {
        let rate = rate.max(1);
        let burst = if burst == 0 { rate } else { burst }.max(1);
        Self { rate, burst, level: burst * MILLI, last_ms: now_ms }
    }

    pub fn rate(&self) -> u64 {
        self.rate
    }

    pub fn burst(&self) -> u64 {
        self.burst
    }

    fn refill(&mut self, now_ms: u64) {
        // A clock that goes backwards refills nothing (and does not underflow).
        let elapsed = now_ms.saturating_sub(self.last_ms);
        self.last_ms = self.last_ms.max(now_ms);
        self.level = self.level.saturating_add(elapsed.saturating_mul(self.rate)).min(self.burst * MILLI);
    }

    /// Takes one token: `Ok` when there was one, else `Err(ms until there will be one)` (> 0).
    pub fn take(&mut self, now_ms: u64) -> Result<(), u64> {
        self.refill(now_ms);
        if self.level >= MILLI {
            self.level -= MILLI;
            Ok(())
        } else {
            let missing = MILLI - self.level;
            Err(missing.div_ceil(self.rate).max(1))
        }
    }
}

/// The buckets of every API key, created on first use. `rate == 0` disables limiting: `take`
/// then always succeeds and nothing is stored.
#[derive(Debug, Clone, Default)]
pub struct KeyLimiter {
    rate: u64,
    burst: u64,
    buckets: HashMap<usize, TokenBucket>,
}

impl KeyLimiter {
    pub fn new(rate: u64, burst: u64) -> Self {
        Self { rate, burst, buckets: HashMap::new() }
    }

    pub fn enabled(&self) -> bool {
        self.rate > 0
    }

    /// Takes a token from key `key_index`'s bucket.
    pub fn take(&mut self, key_index: usize, now_ms: u64) -> Result<(), u64> {
        if !self.enabled() {
            return Ok(());
        }
        let (rate, burst) = (self.rate, self.burst);
        self.buckets.entry(key_index).or_insert_with(|| TokenBucket::new(rate, burst, now_ms)).take(now_ms)
    }
}

/// Whole seconds for a `retry-after` header: `ms` rounded up, at least 1.
pub fn retry_after_secs(ms: u64) -> u64 {
    ms.div_ceil(1_000).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn burst_then_refill() {
        let mut b = TokenBucket::new(2, 3, 1_000);
        assert_eq!((0..3).map(|_| b.take(1_000)).collect::<Vec<_>>(), vec![Ok(()), Ok(()), Ok(())]);
        // empty: one token takes 500 ms at 2/s
        assert_eq!(b.take(1_000), Err(500));
        assert_eq!(b.take(1_200), Err(300));
        assert_eq!(b.take(1_500), Ok(()));
        // a long pause refills only up to the burst
        for _ in 0..3 {
            assert_eq!(b.take(100_000), Ok(()));
        }
        assert!(b.take(100_000).is_err());
    }

    #[test]
    fn burst_defaults_to_rate_and_clock_going_back_is_harmless() {
        let mut b = TokenBucket::new(5, 0, 10_000);
        assert_eq!(b.burst(), 5);
        for _ in 0..5 {
            assert!(b.take(10_000).is_ok());
        }
        assert_eq!(b.take(9_000), Err(200));
        assert_eq!(b.take(10_000), Err(200));
    }

    #[test]
    fn limiter_is_per_key_and_off_at_zero() {
        let mut l = KeyLimiter::new(1, 1);
        assert!(l.take(0, 0).is_ok());
        assert_eq!(l.take(0, 0), Err(1_000));
        assert!(l.take(1, 0).is_ok(), "another key has its own bucket");
        let mut off = KeyLimiter::new(0, 0);
        assert!(!off.enabled());
        assert!((0..10_000).all(|_| off.take(0, 0).is_ok()));
        assert!(off.buckets.is_empty());
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!((retry_after_secs(0), retry_after_secs(1), retry_after_secs(1_000), retry_after_secs(1_001)), (1, 1, 1, 2));
    }

    proptest! {
        /// Over any sequence of requests, no more than burst + rate * elapsed are admitted,
        /// and a refusal's wait is exactly long enough.
        #[test]
        fn never_admits_more_than_the_budget(rate in 1u64..50, burst in 1u64..50, steps in proptest::collection::vec(0u64..400, 1..200)) {
            let mut b = TokenBucket::new(rate, burst, 0);
            let mut now = 0;
            let mut admitted = 0u64;
            for s in steps {
                now += s;
                match b.take(now) {
                    Ok(()) => admitted += 1,
                    Err(wait) => {
                        prop_assert!(wait > 0);
                        let mut probe = b.clone();
                        prop_assert!(probe.take(now + wait).is_ok());
                        let mut early = b.clone();
                        if wait > 1 { prop_assert!(early.take(now + wait - 1).is_err()); }
                    }
                }
                prop_assert!(admitted * 1_000 <= burst * 1_000 + rate * now);
            }
        }
    }
}
