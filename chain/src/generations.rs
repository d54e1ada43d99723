//! A bounded map of two generations: when the current generation is full it becomes the old
//! one and the previous old one is dropped, so the least recently used half goes at once (no
//! per-entry bookkeeping); a hit in the old generation moves the entry to the current one.
//! Used for the best tip's accounts ([`crate::accounts::AccountCache`]) and for decompressed
//! public keys (`signature.rs`).

use std::hash::Hash;

use foldhash::{HashMap, HashMapExt};

/// At most `2 * half` entries (see the module doc).
pub struct Generations<K, V> {
    current: HashMap<K, V>,
    old: HashMap<K, V>,
    half: usize,
}

impl<K: Hash + Eq + Copy, V: Copy> Generations<K, V> {
    /// An empty map holding at most `2 * half` entries.
    pub fn new(half: usize) -> Self {
        Generations { current: HashMap::new(), old: HashMap::new(), half: half.max(1) }
    }

    /// The value at `k`, if held.
    pub fn get(&mut self, k: &K) -> Option<V> {
        if let Some(v) = self.current.get(k) {
            return Some(*v);
        }
        let v = self.old.remove(k)?;
        self.insert(*k, v);
        Some(v)
    }

    /// Holds `v` as the value at `k`.
    pub fn insert(&mut self, k: K, v: V) {
        if self.current.len() >= self.half && !self.current.contains_key(&k) {
            // The full generation becomes the old one; its allocation is reused by the next.
            std::mem::swap(&mut self.current, &mut self.old);
            self.current.clear();
        }
        self.current.insert(k, v);
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.current.clear();
        self.old.clear();
    }

    /// How many entries are held.
    pub fn len(&self) -> usize {
        self.current.len() + self.old.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `k` is held (without moving it).
    pub fn contains(&self, k: &K) -> bool {
        self.current.contains_key(k) || self.old.contains_key(k)
    }
}
