//! The discrete-event engine: virtual time, one queue of events ordered by (time, sequence
//! number), one seeded RNG, and the trace hash.
//!
//! # Determinism
//! Everything random comes from one `StdRng` seeded with the run's seed (or from [`mix`] of
//! the seed, for per-pair draws that must not depend on the order of events). Events at the
//! same time run in the order they were scheduled. The protocol machines take an `Instant`:
//! they get `base + virtual time`, where `base` is taken once per run, so they only ever see
//! differences of virtual time. The node glue iterates ordered maps only, and sorts what the
//! real machines return from their hash maps (stalls, expired rebuilds) before acting on it.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;

/// Virtual time in nanoseconds since the run began.
pub type Time = u64;

/// One second of virtual time.
pub const SECOND: Time = 1_000_000_000;
/// One millisecond of virtual time.
pub const MS: Time = 1_000_000;

/// A 64-bit mix of a seed and a key (splitmix64's finaliser): per-pair draws (link latency,
/// mempool arrival) that do not depend on the order anything else happened in.
pub fn mix(seed: u64, key: u64) -> u64 {
    let mut z = seed ^ key.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

struct Scheduled<E> {
    at: Time,
    seq: u64,
    event: E,
}

impl<E> PartialEq for Scheduled<E> {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl<E> Eq for Scheduled<E> {}
impl<E> PartialOrd for Scheduled<E> {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl<E> Ord for Scheduled<E> {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

/// The clock, the queue, the RNG and the trace.
pub struct Engine<E> {
    now: Time,
    seq: u64,
    queue: BinaryHeap<Reverse<Scheduled<E>>>,
    /// The run's one RNG.
    pub rng: StdRng,
    base: Instant,
    trace: blake3::Hasher,
    /// Events run so far.
    pub events: u64,
}

impl<E> Engine<E> {
    /// An engine at time 0.
    pub fn new(seed: u64) -> Self {
        Engine { now: 0, seq: 0, queue: BinaryHeap::new(), rng: StdRng::seed_from_u64(seed), base: Instant::now(), trace: blake3::Hasher::new(), events: 0 }
    }

    /// The current virtual time.
    pub fn now(&self) -> Time {
        self.now
    }

    /// Virtual time as the `Instant` the protocol machines take.
    pub fn instant(&self, t: Time) -> Instant {
        self.base + Duration::from_nanos(t)
    }

    /// Schedules `event` at `at` (never before now).
    pub fn schedule(&mut self, at: Time, event: E) {
        self.seq += 1;
        self.queue.push(Reverse(Scheduled { at: at.max(self.now), seq: self.seq, event }));
    }

    /// The next event at or before `until`, advancing the clock to it.
    pub fn next(&mut self, until: Time) -> Option<E> {
        if self.queue.peek().is_none_or(|Reverse(s)| s.at > until) {
            self.now = self.now.max(until);
            return None;
        }
        let Reverse(s) = self.queue.pop()?;
        self.now = s.at;
        self.events += 1;
        Some(s.event)
    }

    /// Adds to the trace hash.
    pub fn trace(&mut self, bytes: &[u8]) {
        self.trace.update(bytes);
    }

    /// The trace hash so far (hex).
    pub fn trace_hash(&self) -> String {
        self.trace.finalize().to_hex().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_run_by_time_then_by_order_scheduled() {
        let mut e: Engine<u32> = Engine::new(1);
        e.schedule(5, 1);
        e.schedule(3, 2);
        e.schedule(5, 3);
        let got: Vec<u32> = std::iter::from_fn(|| e.next(10)).collect();
        assert_eq!(got, vec![2, 1, 3]);
        assert_eq!(e.now(), 10);
    }
}
