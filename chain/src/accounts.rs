//! The account cache: recently read or written accounts of the best tip, so building a
//! template, admitting transactions and applying a block do not read the same accounts from
//! RocksDB again and again (a farmed block's senders were read at intake, at selection and at
//! apply: three point reads each, ~2–4 µs apiece).
//!
//! # Correctness
//! Owned by [`crate::Chain`], the only writer of the `accounts` column family. An entry is
//! the account's value at the best tip: it enters on a read from the store (an absent account
//! is cached as the default one, so a new address is looked up once), and every commit that
//! moves the tip (extension or reorg) writes the new value of every account it changed here
//! after its batch is written. A failed write clears the cache.
//!
//! # Bound
//! Two generations of at most [`AccountCache::new`]'s `half` entries each: when the current one
//! is full it becomes the old one and the previous old one is dropped, so the least recently
//! used half goes at once (an evicted account costs one store read later). A hit in the old
//! generation moves the entry to the current one.

use foldhash::{HashMap, HashMapExt};

use crate::keys::Address;
use crate::state::Account;

/// Accounts of the best tip, bounded (see the module doc).
pub struct AccountCache {
    current: HashMap<Address, Account>,
    old: HashMap<Address, Account>,
    half: usize,
}

impl AccountCache {
    /// An empty cache holding at most `2 * half` accounts.
    pub fn new(half: usize) -> Self {
        let half = half.max(1);
        AccountCache { current: HashMap::new(), old: HashMap::new(), half }
    }

    /// The cached account at `a`, if any.
    pub fn get(&mut self, a: &Address) -> Option<Account> {
        if let Some(acc) = self.current.get(a) {
            return Some(*acc);
        }
        let acc = self.old.remove(a)?;
        self.insert(*a, acc);
        Some(acc)
    }

    /// Caches `acc` as the value at `a` (a read from the store, or a committed change).
    pub fn insert(&mut self, a: Address, acc: Account) {
        if self.current.len() >= self.half && !self.current.contains_key(&a) {
            // The full generation becomes the old one; its allocation is reused by the next.
            std::mem::swap(&mut self.current, &mut self.old);
            self.current.clear();
        }
        self.current.insert(a, acc);
    }

    /// Forgets everything (a write whose outcome is unknown).
    pub fn clear(&mut self) {
        self.current.clear();
        self.old.clear();
    }

    /// How many accounts are held.
    pub fn len(&self) -> usize {
        self.current.len() + self.old.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acc(n: u64) -> Account {
        Account { balance: n, nonce: n }
    }

    #[test]
    fn holds_at_most_two_generations_and_keeps_what_is_used() {
        let mut c = AccountCache::new(4);
        for i in 0..4u8 {
            c.insert(Address([i; 32]), acc(i.into()));
        }
        assert_eq!(c.len(), 4);
        // A fifth entry starts a new generation; the first four are old.
        c.insert(Address([4; 32]), acc(4));
        assert_eq!(c.len(), 5);
        // A hit in the old generation moves it forward.
        assert_eq!(c.get(&Address([0; 32])), Some(acc(0)));
        for i in 5..8u8 {
            c.insert(Address([i; 32]), acc(i.into()));
        }
        // The current generation (4, 0, 5, 6) was full at 7: 1, 2, 3 are gone.
        assert!(c.len() <= 8);
        assert_eq!(c.get(&Address([1; 32])), None);
        assert_eq!(c.get(&Address([0; 32])), Some(acc(0)));
        assert_eq!(c.get(&Address([7; 32])), Some(acc(7)));
        // Overwriting updates in place.
        c.insert(Address([7; 32]), acc(70));
        assert_eq!(c.get(&Address([7; 32])), Some(acc(70)));
        c.clear();
        assert!(c.is_empty());
    }
}
