//! The signature cache: transactions whose signature was verified when they entered the
//! mempool, so a block carrying them does not verify those signatures again (Bitcoin Core's
//! sigcache).
//!
//! Keyed by transaction ID, which is the hash of the whole canonical encoding, signature
//! included: an ID in the cache vouches for exactly that signature over exactly that message.
//! Signatures go in as soon as they are verified: by mempool intake (whatever the admission
//! then says), and by a new block checked alone for those it did not find here (a copy of one
//! of its transactions may be being relayed meanwhile; catch-up sync adds nothing). Block
//! validation takes a hit out (a confirmed transaction is not seen again). Bounded: at
//! [`SigCache::capacity`] the oldest entry goes first (it costs at most one extra
//! verification later).
//!
//! Shared lock: the intake path (verifying incoming transactions on the blocking pool) writes
//! and block checks (on the blocking pool, in parallel chunks) read at the same time, off the
//! chain thread; a `Mutex` around a hash-set lookup is held for well under a microsecond, far
//! less than the signature verification each hit saves (~25 µs).

use std::collections::VecDeque;

use foldhash::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::tx::TxId;

/// A bounded set of transaction IDs with verified signatures, and counters.
pub struct SigCache {
    inner: Mutex<Inner>,
    capacity: usize,
    hits: AtomicU64,
    verified: AtomicU64,
}

#[derive(Default)]
struct Inner {
    set: HashSet<TxId>,
    order: VecDeque<TxId>,
}

impl SigCache {
    /// An empty cache of at most `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        SigCache { inner: Mutex::new(Inner::default()), capacity: capacity.max(1), hits: AtomicU64::new(0), verified: AtomicU64::new(0) }
    }

    /// Most entries held.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Records verified signatures.
    pub fn insert(&self, ids: impl IntoIterator<Item = TxId>) {
        let Ok(mut g) = self.inner.lock() else { return };
        for id in ids {
            if !g.set.insert(id) {
                continue;
            }
            g.order.push_back(id);
            while g.set.len() > self.capacity {
                match g.order.pop_front() {
                    Some(old) => {
                        g.set.remove(&old);
                    }
                    None => break,
                }
            }
        }
    }

    /// Takes out the IDs that are cached (a hit is used once); returns which ones were, in
    /// order. Counts the hits.
    pub fn take(&self, ids: &[TxId]) -> Vec<bool> {
        let Ok(mut g) = self.inner.lock() else { return vec![false; ids.len()] };
        let out: Vec<bool> = ids.iter().map(|id| g.set.remove(id)).collect();
        let hits = out.iter().filter(|h| **h).count();
        if hits > 0 {
            // The order queue keeps the taken IDs until they come up; `insert` skips them then
            // (they are no longer in the set), so the queue stays at most twice the capacity.
            if g.order.len() > self.capacity.saturating_mul(2) {
                let Inner { set, order } = &mut *g;
                order.retain(|id| set.contains(id));
            }
            self.hits.fetch_add(hits as u64, Relaxed);
        }
        out
    }

    /// Which of `ids` are cached (without taking them), under one lock.
    pub fn contains_each<'a>(&self, ids: impl IntoIterator<Item = &'a TxId>) -> Vec<bool> {
        match self.inner.lock() {
            Ok(g) => ids.into_iter().map(|id| g.set.contains(id)).collect(),
            Err(_) => ids.into_iter().map(|_| false).collect(),
        }
    }

    /// Counts signatures actually verified (by whoever uses this cache).
    pub fn count_verified(&self, n: usize) {
        self.verified.fetch_add(n as u64, Relaxed);
    }

    /// Signatures a block did not verify again thanks to the cache.
    pub fn hits(&self) -> u64 {
        self.hits.load(Relaxed)
    }

    /// Signatures verified, as counted with [`SigCache::count_verified`].
    pub fn verified(&self) -> u64 {
        self.verified.load(Relaxed)
    }

    /// Entries held now.
    pub fn len(&self) -> usize {
        self.inner.lock().map_or(0, |g| g.set.len())
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::Hash;

    fn id(i: u32) -> TxId {
        Hash::digest(&i.to_le_bytes())
    }

    #[test]
    fn hits_are_taken_once_and_the_oldest_goes_first() {
        let c = SigCache::new(3);
        c.insert((0..3).map(id));
        assert_eq!(c.take(&[id(0), id(9)]), vec![true, false]);
        assert_eq!(c.take(&[id(0)]), vec![false], "a hit is used once");
        assert_eq!(c.hits(), 1);
        c.insert((3..6).map(id));
        assert_eq!(c.len(), 3);
        assert_eq!(c.contains_each([&id(1), &id(5)]), vec![false, true], "the oldest went first");
        for round in 0..100u32 {
            c.insert([id(100 + round)]);
            c.take(&[id(100 + round)]);
        }
        assert!(c.inner.lock().unwrap().order.len() <= 7, "the order queue stays bounded");
    }
}
