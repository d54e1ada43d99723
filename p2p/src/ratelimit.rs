//! A token bucket driven by the caller's clock (sans-IO: tests pass virtual instants).

use std::time::{Duration, Instant};

/// `rate` tokens per `period`, at most `burst` saved, in exact integer units: a token is
/// `period` in nanoseconds, and each elapsed nanosecond adds `rate` units, so the refill never
/// drifts and the same instants always give the same answer.
#[derive(Clone, Debug)]
pub(crate) struct TokenBucket {
    units: u128,
    rate: u128,
    cap: u128,
    per_token: u128,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket: the burst is available at once.
    pub(crate) fn new(rate: u32, period: Duration, burst: u32, now: Instant) -> Self {
        let per_token = period.as_nanos().max(1);
        let cap = u128::from(burst) * per_token;
        TokenBucket { units: cap, rate: u128::from(rate), cap, per_token, last: now }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_nanos();
        self.units = self.units.saturating_add(elapsed.saturating_mul(self.rate)).min(self.cap);
        self.last = self.last.max(now);
    }

    /// Takes one token if there is one.
    pub(crate) fn take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.units >= self.per_token {
            self.units -= self.per_token;
            true
        } else {
            false
        }
    }

    /// Whether the bucket has refilled completely (it then says no more than a new one).
    pub(crate) fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.units >= self.cap
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_the_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10, Duration::from_secs(60), 20, t0);
        assert_eq!((0..25).filter(|_| b.take(t0)).count(), 20, "the burst");
        assert!(!b.take(t0 + Duration::from_millis(5_999)), "10 a minute: one per 6 s");
        assert!(b.take(t0 + Duration::from_secs(6)));
        assert!(!b.is_full(t0 + Duration::from_secs(6)));
        assert!(b.is_full(t0 + Duration::from_secs(6 + 120)), "refilled to the burst, never beyond");
        assert_eq!((0..25).filter(|_| b.take(t0 + Duration::from_secs(126))).count(), 20);
    }
}
