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
//! A [`Generations`] map: two generations of at most `half` entries each, the least recently
//! used half dropped at once when both are full (an evicted account costs one store read
//! later).

use crate::generations::Generations;
use crate::keys::Address;
use crate::state::Account;

/// Accounts of the best tip, bounded (see the module doc).
pub type AccountCache = Generations<Address, Account>;

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
