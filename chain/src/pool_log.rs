//! The persisted mempool's index: which numbered entry of the `mempool` column family holds
//! which pending transaction, and the floor below which every entry is dead.
//!
//! # Why numbers and a floor
//! Each admitted transaction is written once, under the next admission number (big-endian, so
//! the column family is in admission order and an insert lands at the memtable's end). A block
//! that confirms pending transactions deletes none of their entries: it moves the floor (one
//! key in `meta`) to the lowest number still pending, in the block's own batch. Entries above
//! the floor whose transaction a block confirmed stay until the floor passes them; a restart
//! reads them back and the mempool refuses them (their nonce is used), so they are deleted
//! then. Before this, a block of 50 pending transactions wrote 50 tombstones into the
//! mempool's memtable, as costly as the block's account writes.
//!
//! # Correctness
//! The floor is never above a pending transaction's entry: it is the lowest number of the
//! transactions that stay pending after the block (computed before the write, applied to this
//! index only after it succeeded). Transactions that leave the pool otherwise (replaced,
//! evicted, used up by another transaction of their sender, refused on the way back from a
//! reorg) have their entries deleted as before. A reorg's returning transactions get new
//! numbers in the reorg's batch, so they are above any floor it writes.
//!
//! # Bound
//! A transaction that stays pending for long (a low fee) holds the floor down while later ones
//! are confirmed above it. When the dead entries above the floor outnumber
//! [`PoolLog::compact`]'s slack, the oldest pending entries are written again under new numbers
//! and the floor jumps past the dead ones: at most one rewrite per dead entry, and the column
//! family holds at most about twice the pool plus the slack. Dead entries below the floor are
//! dropped with range tombstones, so flushes and compactions discard them.

use std::collections::BTreeMap;

use foldhash::HashMap;

use crate::store::StoreBatch;
use crate::tx::{Transaction, TxId};

/// Dead entries above the floor tolerated beyond the number pending (see the module doc).
const SLACK: u64 = 4096;

/// Dead entries below the floor after which one range tombstone drops them.
const RANGE_DELETE_EVERY: u64 = 1024;

/// The index of the persisted mempool (see the module doc).
#[derive(Debug, Default)]
pub struct PoolLog {
    /// Pending transaction → its entry's number.
    seq_of: HashMap<TxId, u64>,
    /// Entry number → pending transaction, in admission order.
    live: BTreeMap<u64, TxId>,
    /// The number the next entry gets.
    next: u64,
    /// The floor as written.
    floor: u64,
    /// Entries below this are covered by range tombstones already.
    cleared: u64,
}

impl PoolLog {
    /// An index over a store whose floor is `floor` and whose entries are numbered below
    /// `next` ([`crate::Store::mempool_entries`]); entries enter through [`PoolLog::restored`].
    pub fn new(floor: u64, next: u64) -> Self {
        PoolLog { next: next.max(floor), floor, cleared: 0, ..PoolLog::default() }
    }

    /// How many entries are pending.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// The floor as last written.
    pub fn floor(&self) -> u64 {
        self.floor
    }

    /// Takes back entry `seq` read at start, whose transaction the mempool holds again.
    pub fn restored(&mut self, id: TxId, seq: u64) {
        self.seq_of.insert(id, seq);
        self.live.insert(seq, id);
        self.next = self.next.max(seq.saturating_add(1));
    }

    /// Persists a newly pending transaction in `b` under the next number.
    pub fn put(&mut self, b: &mut StoreBatch<'_>, id: TxId, tx: &Transaction) {
        if self.seq_of.contains_key(&id) {
            return;
        }
        let seq = self.next;
        self.next += 1;
        b.put_mempool_tx(seq, tx);
        self.seq_of.insert(id, seq);
        self.live.insert(seq, id);
    }

    /// Deletes the entry of a transaction that left the pool without a block (replaced,
    /// evicted, stale, refused).
    pub fn delete(&mut self, b: &mut StoreBatch<'_>, id: &TxId) {
        if let Some(seq) = self.forget(id) {
            b.delete_mempool_tx(seq);
        }
    }

    /// Drops a transaction from the index without writing anything (a block confirmed it, or
    /// its entry was never written); returns its number.
    pub fn forget(&mut self, id: &TxId) -> Option<u64> {
        let seq = self.seq_of.remove(id)?;
        self.live.remove(&seq);
        Some(seq)
    }

    /// The floor once the transactions `gone` names have left: the lowest number among the
    /// rest (the next number if none). Changes nothing.
    pub fn floor_without(&self, gone: impl Fn(&TxId) -> bool) -> u64 {
        self.live.iter().find(|(_, id)| !gone(id)).map_or(self.next, |(seq, _)| *seq)
    }

    /// Stages `floor` (from [`PoolLog::floor_without`]) in `b` if it moved, with a range
    /// tombstone over the dead entries below it once there are enough of them. Call
    /// [`PoolLog::floor_written`] once `b` is written.
    pub fn stage_floor(&self, b: &mut StoreBatch<'_>, floor: u64) {
        if floor == self.floor {
            return;
        }
        b.set_mempool_floor(floor);
        if floor.saturating_sub(self.cleared) >= RANGE_DELETE_EVERY {
            b.delete_mempool_range(self.cleared, floor);
        }
    }

    /// Records that the batch with [`PoolLog::stage_floor`]`(floor)` was written, and that the
    /// transactions `confirmed` left the pool with it.
    pub fn floor_written<'a>(&mut self, floor: u64, confirmed: impl IntoIterator<Item = &'a TxId>) {
        for id in confirmed {
            self.forget(id);
        }
        if floor != self.floor && floor.saturating_sub(self.cleared) >= RANGE_DELETE_EVERY {
            self.cleared = floor;
        }
        self.floor = floor;
    }

    /// Dead entries above the floor: numbered at or above it, not pending.
    fn dead_above_floor(&self) -> u64 {
        (self.next - self.floor.min(self.next)).saturating_sub(self.live.len() as u64)
    }

    /// Keeps the column family bounded (see the module doc): if the dead entries above the
    /// floor exceed the pool's size plus [`SLACK`], stages in `b` a rewrite of every pending
    /// entry under new numbers (in admission order) and the floor past the dead ones. Changes
    /// nothing here: pass the result to [`PoolLog::compacted`] once `b` is written. `txs`
    /// gives a pending transaction by ID (the mempool); one it lacks is deleted.
    pub fn compact<'t>(&self, b: &mut StoreBatch<'_>, txs: impl Fn(&TxId) -> Option<&'t Transaction>) -> Option<Compaction> {
        if self.dead_above_floor() <= self.live.len() as u64 + SLACK {
            return None;
        }
        let mut next = self.next;
        let mut moves = Vec::with_capacity(self.live.len());
        for (seq, id) in &self.live {
            b.delete_mempool_tx(*seq);
            let new = txs(id).map(|tx| {
                b.put_mempool_tx(next, tx);
                next += 1;
                next - 1
            });
            moves.push((*id, *seq, new));
        }
        // The first new number: past every dead entry (and every moved one's old place).
        let floor = self.next;
        self.stage_floor(b, floor);
        Some(Compaction { moves, floor, next })
    }

    /// Applies a [`PoolLog::compact`] whose batch was written.
    pub fn compacted(&mut self, c: Compaction) {
        for (id, old, new) in c.moves {
            if self.seq_of.get(&id) != Some(&old) {
                continue;
            }
            self.live.remove(&old);
            match new {
                Some(seq) => {
                    self.seq_of.insert(id, seq);
                    self.live.insert(seq, id);
                }
                None => {
                    self.seq_of.remove(&id);
                }
            }
        }
        self.next = self.next.max(c.next);
        self.floor_written(c.floor, []);
    }
}

/// A rewrite staged by [`PoolLog::compact`].
#[derive(Debug)]
pub struct Compaction {
    /// Each pending transaction, its old number, its new one (`None`: deleted).
    moves: Vec<(TxId, u64, Option<u64>)>,
    floor: u64,
    next: u64,
}
