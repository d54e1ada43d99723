//! Pending transactions: bounded, ordered per sender by nonce, chosen for blocks by fee.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use foldhash::{HashMap, HashMapExt};

use crate::error::StoreError;
use crate::error::TxError;
use crate::hash::Hash;
use crate::keys::Address;
use crate::spec::ChainSpec;
use crate::state::{Account, AccountSource, Overlay, apply_tx};
use crate::tx::{Transaction, TxId};

/// Mempool limits.
#[derive(Clone, Copy, Debug)]
pub struct MempoolLimits {
    /// Most transactions held in total.
    pub max_txs: usize,
    /// Most pending transactions per sender (a sender's chain of nonces).
    pub max_per_sender: usize,
    /// Smallest fee accepted.
    pub min_fee: u64,
}

impl Default for MempoolLimits {
    fn default() -> Self {
        MempoolLimits { max_txs: 20_000, max_per_sender: 256, min_fee: 0 }
    }
}

impl MempoolLimits {
    /// The defaults for a chain: its minimum fee, and room for two full blocks (at least the
    /// default 20,000), so a load at the chain's capacity can fill every block and a farmer
    /// has the next block's transactions while it farms this one.
    pub fn for_spec(spec: &ChainSpec) -> MempoolLimits {
        let d = MempoolLimits::default();
        MempoolLimits { max_txs: d.max_txs.max(2 * spec.max_block_txs as usize), min_fee: spec.min_fee, ..d }
    }
}

/// What a transaction takes from its sender: amount plus fee.
fn cost(tx: &Transaction) -> u128 {
    tx.amount as u128 + tx.fee as u128
}

/// The mempool. Every sender's pending transactions form a gap-free run of nonces starting
/// at the sender's account nonce, so the next nonce a wallet should use is
/// `account nonce + pending count`.
pub struct Mempool {
    limits: MempoolLimits,
    chain: Hash,
    by_id: HashMap<TxId, Pending>,
    by_sender: HashMap<Address, BTreeMap<u64, TxId>>,
    /// What each sender's pending transactions move in total (amounts and fees), kept with
    /// every insert and removal, so admitting a sender's next transaction checks its balance
    /// without walking its whole run (it was a third of the chain thread's time under load).
    owed: HashMap<Address, u128>,
    /// How many pending transactions pay each fee: the lowest is a floor under every
    /// sender's last one, so a full pool refuses a transaction that could evict nothing
    /// before its signature is verified.
    fees: BTreeMap<u64, usize>,
    /// Transactions admitted so far: each one's arrival number.
    arrivals: u64,
}

/// A pending transaction and its arrival number (blocks take equal fees first come, first
/// served).
struct Pending {
    tx: Transaction,
    arrival: u64,
}

/// What [`Mempool::insert`] did.
#[derive(Debug, PartialEq, Eq)]
pub struct Inserted {
    /// The new transaction's ID.
    pub id: TxId,
    /// Transactions that left the pool to make room (replaced or evicted).
    pub removed: Vec<TxId>,
}

impl Mempool {
    /// An empty mempool for the chain with genesis `chain`.
    pub fn new(chain: Hash, limits: MempoolLimits) -> Self {
        Mempool { limits, chain, by_id: HashMap::new(), by_sender: HashMap::new(), owed: HashMap::new(), fees: BTreeMap::new(), arrivals: 0 }
    }

    /// Number of pending transactions.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }
    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
    /// A pending transaction by ID.
    pub fn get(&self, id: &TxId) -> Option<&Transaction> {
        self.by_id.get(id).map(|p| &p.tx)
    }

    /// The nonce the sender's next new transaction should carry.
    pub fn next_nonce(&self, sender: &Address, account: &Account) -> u64 {
        account.nonce + self.by_sender.get(sender).map_or(0, |q| q.len() as u64)
    }

    /// Admits a transaction after checking signature, chain, fee, nonce sequence and that the
    /// sender can pay for it on top of everything it already has pending. A transaction with
    /// the nonce of a pending one replaces it if it pays a higher fee.
    pub fn insert(&mut self, tx: Transaction, state: &dyn AccountSource) -> Result<Inserted, TxError> {
        let id = tx.id();
        self.check_alone(&tx, &id)?;
        if !tx.verify_signature() {
            return Err(TxError::BadSignature);
        }
        self.admit(tx, id, state)
    }

    /// What needs nothing but the transaction: not pending already, this chain, the minimum
    /// fee. `id` is the transaction's ID (the caller has it: it is hashed once on the way in).
    fn check_alone(&self, tx: &Transaction, id: &TxId) -> Result<(), TxError> {
        if self.by_id.contains_key(id) {
            return Err(TxError::AlreadyKnown(*id));
        }
        if tx.chain != self.chain {
            return Err(TxError::WrongChain { expected: self.chain, got: tx.chain });
        }
        if tx.fee < self.limits.min_fee {
            return Err(TxError::FeeTooLow { fee: tx.fee, min: self.limits.min_fee });
        }
        Ok(())
    }

    /// The cheap checks, before anyone spends a signature verification on `tx`: not pending
    /// already, this chain, the minimum fee, a nonce not used yet and within what the sender
    /// may queue, a balance that covers it alone, and room (a full pool takes a new
    /// transaction only if its fee beats the cheapest pending one). [`Mempool::insert_verified`]
    /// checks the exact sequence, balance and room again (the pool and state may move in
    /// between; what is refused here, admission would refuse now too). `id` is `tx`'s ID.
    pub fn precheck(&self, tx: &Transaction, id: &TxId, state: &dyn AccountSource) -> Result<(), TxError> {
        self.check_alone(tx, id)?;
        let sender = tx.sender();
        let account = state.account(&sender)?;
        let next = self.next_nonce(&sender, &account);
        if tx.nonce < account.nonce {
            return Err(TxError::NonceTooLow { expected: next, got: tx.nonce });
        }
        // A sender's run holds at most `max_per_sender` nonces from its account's: one past
        // that can never be admitted, whatever arrives first.
        if tx.nonce >= account.nonce.saturating_add(self.limits.max_per_sender as u64) {
            if next >= account.nonce.saturating_add(self.limits.max_per_sender as u64) {
                return Err(TxError::TooManyPending(self.limits.max_per_sender));
            }
            return Err(TxError::NonceTooHigh { expected: next, got: tx.nonce });
        }
        if tx.nonce >= next && self.no_room(tx.fee) {
            return Err(TxError::MempoolFull);
        }
        let needed = tx.amount.checked_add(tx.fee).ok_or(TxError::Overflow)?;
        if needed > account.balance {
            return Err(TxError::InsufficientBalance { balance: account.balance, needed });
        }
        Ok(())
    }

    /// As [`Mempool::insert`] for a transaction whose signature the caller verified under the
    /// chain's rule (in parallel, off the thread that owns the mempool); `id` is its ID.
    pub fn insert_verified(&mut self, tx: Transaction, id: TxId, state: &dyn AccountSource) -> Result<Inserted, TxError> {
        self.check_alone(&tx, &id)?;
        self.admit(tx, id, state)
    }

    /// Whether a new transaction (not a replacement) paying `fee` finds no room: the pool is
    /// full, and no pending fee is below `fee` (nothing it could evict).
    fn no_room(&self, fee: u64) -> bool {
        self.by_id.len() >= self.limits.max_txs && self.fees.keys().next().is_some_and(|floor| fee <= *floor)
    }

    /// The exact nonce sequence, room and balance checks, then the insert.
    fn admit(&mut self, tx: Transaction, id: TxId, state: &dyn AccountSource) -> Result<Inserted, TxError> {
        let sender = tx.sender();
        let account = state.account(&sender)?;
        let queue = self.by_sender.get(&sender);
        let next = self.next_nonce(&sender, &account);
        if tx.nonce < account.nonce {
            return Err(TxError::NonceTooLow { expected: next, got: tx.nonce });
        }
        if tx.nonce > next {
            return Err(TxError::NonceTooHigh { expected: next, got: tx.nonce });
        }
        let replaced = queue.and_then(|q| q.get(&tx.nonce)).copied();
        if let Some(old) = replaced.and_then(|r| self.by_id.get(&r)).map(|p| &p.tx) {
            if tx.fee <= old.fee {
                return Err(TxError::FeeTooLow { fee: tx.fee, min: old.fee.saturating_add(1) });
            }
        } else if queue.map_or(0, BTreeMap::len) >= self.limits.max_per_sender {
            return Err(TxError::TooManyPending(self.limits.max_per_sender));
        }
        // The sender must afford every pending transaction plus this one.
        let replaced_cost = replaced.and_then(|r| self.by_id.get(&r)).map_or(0, |p| cost(&p.tx));
        let owed = self.owed.get(&sender).copied().unwrap_or(0).saturating_sub(replaced_cost);
        let needed = u64::try_from(owed + cost(&tx)).map_err(|_| TxError::Overflow)?;
        if needed > account.balance {
            return Err(TxError::InsufficientBalance { balance: account.balance, needed });
        }
        let mut removed = Vec::new();
        if let Some(r) = replaced {
            if let Some(Pending { tx: old, .. }) = self.by_id.remove(&r) {
                self.owe(&sender, -(cost(&old) as i128));
                self.unfee(old.fee);
            }
            removed.push(r);
        } else if self.no_room(tx.fee) {
            // No fee below the floor: nothing to evict, and no walk over every sender to find
            // that out (a full pool under load refuses thousands a second).
            return Err(TxError::MempoolFull);
        } else if self.by_id.len() >= self.limits.max_txs {
            let victim = self.cheapest_tail(&sender).filter(|(_, fee)| *fee < tx.fee).ok_or(TxError::MempoolFull)?;
            self.remove(&victim.0);
            removed.push(victim.0);
        }
        self.by_sender.entry(sender).or_default().insert(tx.nonce, id);
        self.owe(&sender, cost(&tx) as i128);
        *self.fees.entry(tx.fee).or_default() += 1;
        self.arrivals += 1;
        self.by_id.insert(id, Pending { tx, arrival: self.arrivals });
        Ok(Inserted { id, removed })
    }

    /// Changes what `sender` owes by `delta`, forgetting senders that owe nothing.
    fn owe(&mut self, sender: &Address, delta: i128) {
        let total = self.owed.get(sender).map_or(0, |o| *o as i128) + delta;
        if total <= 0 {
            self.owed.remove(sender);
        } else {
            self.owed.insert(*sender, total as u128);
        }
    }

    /// One fewer pending transaction pays `fee`.
    fn unfee(&mut self, fee: u64) {
        if let Some(n) = self.fees.get_mut(&fee) {
            *n -= 1;
            if *n == 0 {
                self.fees.remove(&fee);
            }
        }
    }

    /// The lowest-fee transaction that is last in its sender's run (removable without
    /// leaving a gap), among senders other than `except` (whose run is being extended).
    fn cheapest_tail(&self, except: &Address) -> Option<(TxId, u64)> {
        self.by_sender
            .iter()
            .filter(|(s, _)| *s != except)
            .filter_map(|(_, q)| q.values().next_back())
            .map(|id| (*id, self.by_id[id].tx.fee))
            .min_by_key(|(_, fee)| *fee)
    }

    fn remove(&mut self, id: &TxId) -> Option<Transaction> {
        let tx = self.by_id.remove(id)?.tx;
        let sender = tx.sender();
        self.owe(&sender, -(cost(&tx) as i128));
        self.unfee(tx.fee);
        if let Some(q) = self.by_sender.get_mut(&sender) {
            q.remove(&tx.nonce);
            if q.is_empty() {
                self.by_sender.remove(&sender);
            }
        }
        Some(tx)
    }

    /// Transactions for a new block, at most `max`: highest fee first among each sender's
    /// next transaction, equal fees in the order they arrived (as geth orders them), nonce
    /// order within a sender, each checked against `state` so the block is valid. Under a load
    /// past a block's room, the transactions that waited longest go first (by ID, which one
    /// waited was chance).
    pub fn select(&self, max: usize, state: &dyn AccountSource) -> Result<Vec<Transaction>, StoreError> {
        Ok(self.select_with_ids(max, state)?.into_iter().map(|(_, tx)| tx).collect())
    }

    /// As [`Mempool::select`], each transaction with its ID.
    pub fn select_with_ids(&self, max: usize, state: &dyn AccountSource) -> Result<Vec<(TxId, Transaction)>, StoreError> {
        let room = max.min(self.by_id.len());
        let mut overlay = Overlay::with_capacity(state, 2 * room + 1);
        let mut heap = BinaryHeap::with_capacity(self.by_sender.len());
        let mut cursors: HashMap<Address, std::collections::btree_map::Values<'_, u64, TxId>> = HashMap::with_capacity(self.by_sender.len());
        for (sender, q) in &self.by_sender {
            let mut it = q.values();
            if let Some(id) = it.next() {
                let p = &self.by_id[id];
                heap.push((p.tx.fee, Reverse(p.arrival), *id, *sender));
                cursors.insert(*sender, it);
            }
        }
        let mut out = Vec::with_capacity(room);
        while out.len() < max {
            let Some((_, _, id, sender)) = heap.pop() else { break };
            let tx = &self.by_id[&id].tx;
            match apply_tx(&mut overlay, tx, &self.chain) {
                Ok(_) => {
                    out.push((id, tx.clone()));
                    if let Some(next) = cursors.get_mut(&sender).and_then(Iterator::next) {
                        let p = &self.by_id[next];
                        heap.push((p.tx.fee, Reverse(p.arrival), *next, sender));
                    }
                }
                Err(TxError::Store(e)) => return Err(StoreError::Missing(e)),
                // Stale or unaffordable now: skip this sender's run for this block.
                Err(_) => {}
            }
        }
        Ok(out)
    }

    /// Removes transactions a new block included, and any of the same senders' pending
    /// transactions whose nonce the block used up. Returns the IDs of those others (the
    /// included ones are the block's: its caller knows them). The block is valid, so each
    /// sender's next nonce after it is one past its last transaction there: no state read.
    pub fn remove_included(&mut self, included: &[Transaction]) -> Vec<TxId> {
        let mut next: HashMap<Address, u64> = HashMap::with_capacity(included.len());
        for tx in included {
            let sender = tx.sender();
            // The pool's transaction at this sender and nonce, if it is this one (found
            // without hashing the transaction; another one there is stale, removed below).
            let same = self.by_sender.get(&sender).and_then(|q| q.get(&tx.nonce)).copied().filter(|id| self.by_id.get(id).map(|p| &p.tx) == Some(tx));
            if let Some(id) = same {
                self.remove(&id);
            }
            let n = next.entry(sender).or_default();
            *n = (*n).max(tx.nonce.saturating_add(1));
        }
        let mut removed = Vec::new();
        for (sender, nonce) in next {
            let stale: Vec<TxId> = self.by_sender.get(&sender).map(|q| q.range(..nonce).map(|(_, id)| *id).collect()).unwrap_or_default();
            for id in stale {
                self.remove(&id);
                removed.push(id);
            }
        }
        removed
    }

    /// Takes transactions out (e.g. ones that could not be persisted), with any later nonces
    /// of the same senders, so every sender's run stays gap-free. Returns the IDs removed.
    pub fn remove_ids(&mut self, ids: &[TxId]) -> Vec<TxId> {
        let mut removed = Vec::new();
        let mut cut: HashMap<Address, u64> = HashMap::new();
        for id in ids {
            if let Some(tx) = self.remove(id) {
                removed.push(*id);
                let n = cut.entry(tx.sender()).or_insert(tx.nonce);
                *n = (*n).min(tx.nonce);
            }
        }
        for (sender, from) in cut {
            let later: Vec<TxId> = self.by_sender.get(&sender).map(|q| q.range(from..).map(|(_, id)| *id).collect()).unwrap_or_default();
            for id in later {
                self.remove(&id);
                removed.push(id);
            }
        }
        removed
    }

    /// Every pending transaction with its ID, in no particular order (a compact block is
    /// rebuilt from these).
    pub fn entries(&self) -> impl Iterator<Item = (&TxId, &Transaction)> {
        self.by_id.iter().map(|(id, p)| (id, &p.tx))
    }

    /// IDs of every pending transaction, by sender then nonce (the order a peer can take
    /// them in).
    pub fn ids(&self) -> impl Iterator<Item = &TxId> {
        self.by_sender.values().flat_map(|q| q.values())
    }

    /// Whether a transaction is pending.
    pub fn contains(&self, id: &TxId) -> bool {
        self.by_id.contains_key(id)
    }

    /// Every pending transaction, by sender then nonce.
    pub fn iter(&self) -> impl Iterator<Item = &Transaction> {
        self.by_sender.values().flat_map(|q| q.values()).map(|id| &self.by_id[id].tx)
    }

    /// A sender's pending transactions, in nonce order.
    pub fn from_sender(&self, sender: &Address) -> impl Iterator<Item = &Transaction> {
        self.by_sender.get(sender).into_iter().flat_map(|q| q.values()).map(|id| &self.by_id[id].tx)
    }
}
