//! Relayed transactions that came before their predecessors: a nonce past the sender's next
//! one, with a valid signature. The mempool holds only gap-free runs of nonces, so such a
//! transaction cannot enter it yet; it waits here until the gap fills (the predecessor arrives
//! from another peer, or a block uses it up), as Bitcoin Core's orphan pool holds transactions
//! whose inputs are unknown and Ethereum's txpool queues future nonces.
//!
//! Relay fetches each transaction from whichever peer announced it first, so a sender's
//! nonces can arrive out of order; without this pool one late transaction lost every later
//! one from that sender for good (announcements are not repeated).
//!
//! Bounded: at most `max` transactions (oldest dropped first when full); per sender, the
//! mempool's nonce window bounds them already. Owned by the chain thread.

use std::collections::{BTreeMap, VecDeque};

use foldhash::{HashMap, HashMapExt};

use crate::keys::Address;
use crate::tx::{Transaction, TxId};

/// Transactions waiting for an earlier nonce of their sender.
pub struct Waiting {
    max: usize,
    by_sender: HashMap<Address, BTreeMap<u64, Transaction>>,
    ids: HashMap<TxId, (Address, u64)>,
    /// Hold order, oldest first, for eviction (entries that left since are skipped).
    order: VecDeque<TxId>,
}

impl Waiting {
    /// An empty pool holding at most `max` transactions.
    pub fn new(max: usize) -> Self {
        Waiting { max: max.max(1), by_sender: HashMap::new(), ids: HashMap::new(), order: VecDeque::new() }
    }

    /// Transactions waiting.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether none is waiting.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Whether `id` is waiting here.
    pub fn contains(&self, id: &TxId) -> bool {
        self.ids.contains_key(id)
    }

    /// Holds a transaction (its signature checked, its nonce past the sender's next). A second
    /// transaction with the same sender and nonce replaces the first only if it pays more.
    /// When full, the oldest waiting transaction leaves. Returns whether it was taken.
    pub fn hold(&mut self, tx: Transaction) -> bool {
        let id = tx.id();
        if self.ids.contains_key(&id) {
            return false;
        }
        let (sender, nonce) = (tx.sender(), tx.nonce);
        if let Some(old) = self.by_sender.get(&sender).and_then(|q| q.get(&nonce)) {
            if old.fee >= tx.fee {
                return false;
            }
            let old = old.id();
            self.ids.remove(&old);
        }
        while self.ids.len() >= self.max {
            let Some(oldest) = self.order.pop_front() else { break };
            self.remove(&oldest);
        }
        self.by_sender.entry(sender).or_default().insert(nonce, tx);
        self.ids.insert(id, (sender, nonce));
        self.order.push_back(id);
        if self.order.len() > 2 * self.max {
            let ids = &self.ids;
            self.order.retain(|id| ids.contains_key(id));
        }
        true
    }

    /// Takes out the sender's transaction with nonce `next`, if one waits; the sender's
    /// waiting transactions below `next` (used up) leave too.
    pub fn take(&mut self, sender: &Address, next: u64) -> Option<Transaction> {
        let q = self.by_sender.get_mut(sender)?;
        let mut stale = q.split_off(&next);
        std::mem::swap(q, &mut stale);
        for tx in stale.values() {
            self.ids.remove(&tx.id());
        }
        let found = q.remove(&next);
        if let Some(tx) = &found {
            self.ids.remove(&tx.id());
        }
        if q.is_empty() {
            self.by_sender.remove(sender);
        }
        found
    }

    fn remove(&mut self, id: &TxId) {
        let Some((sender, nonce)) = self.ids.remove(id) else { return };
        if let Some(q) = self.by_sender.get_mut(&sender) {
            if q.get(&nonce).is_some_and(|tx| tx.id() == *id) {
                q.remove(&nonce);
            }
            if q.is_empty() {
                self.by_sender.remove(&sender);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::Hash;
    use crate::keys::Keypair;

    fn tx(k: &Keypair, nonce: u64, fee: u64) -> Transaction {
        Transaction::signed(k, Hash::digest(b"chain"), Address([7; 32]), 1, fee, nonce)
    }

    #[test]
    fn a_transaction_waits_until_its_nonce_is_next_and_used_up_ones_leave() {
        let k = Keypair::generate();
        let s = k.address();
        let mut w = Waiting::new(10);
        assert!(w.hold(tx(&k, 3, 1)));
        assert!(w.hold(tx(&k, 5, 1)));
        assert!(!w.hold(tx(&k, 5, 1)), "the same one twice");
        assert!(w.contains(&tx(&k, 3, 1).id()));
        assert!(w.take(&s, 2).is_none(), "nonce 2 is not waiting");
        assert_eq!(w.take(&s, 3).map(|t| t.nonce), Some(3));
        // A block used nonces 4 and 5: 5 leaves without being taken.
        assert!(w.take(&s, 6).is_none());
        assert!(w.is_empty());
    }

    #[test]
    fn a_higher_fee_replaces_and_the_oldest_leave_when_full() {
        let k = Keypair::generate();
        let mut w = Waiting::new(2);
        assert!(w.hold(tx(&k, 3, 1)));
        assert!(!w.hold(tx(&k, 3, 0)), "a lower fee does not replace");
        assert!(w.hold(tx(&k, 3, 2)), "a higher fee does");
        assert!(!w.contains(&tx(&k, 3, 1).id()));
        assert!(w.hold(tx(&k, 4, 1)));
        assert!(w.hold(tx(&k, 5, 1)), "full: the oldest leaves");
        assert_eq!(w.len(), 2);
        assert!(!w.contains(&tx(&k, 3, 2).id()));
        assert_eq!(w.take(&k.address(), 4).map(|t| t.nonce), Some(4));
    }
}
