//! The chain engine: validates blocks, chooses the best chain by cumulative work, and moves
//! the store's tip (extending it, or reorganising through undo records).
//!
//! `Chain` is synchronous and owns the only write path to the store; the node runs it on one
//! dedicated thread.

use std::cell::RefCell;
use std::collections::VecDeque;

use foldhash::{HashMap, HashSet, HashSetExt};

use crate::accounts::AccountCache;
use crate::block::{Block, HEADER_VERSION, Header, merkle_root};
use crate::check::CheckedBlock;
use crate::error::BlockError;
use crate::hash::BoundedSet;
use crate::hash::Hash;
use crate::keys::Address;
use crate::pool_log::PoolLog;
use crate::pow::{Target, retarget};
use crate::sigcache::SigCache;
use crate::spec::ChainSpec;
use crate::state::{Account, AccountSource, Overlay, Undo, apply_block, undo_block};
use crate::store::{HeaderRecord, Store, StoreBatch, StoreError, TxLocation};
use crate::tx::{Transaction, TxId};

/// How many timestamps the median-time-past rule looks at.
pub const MEDIAN_TIME_SPAN: usize = 11;

/// How many hashes of invalid blocks are remembered, so a peer resending them costs nothing.
const INVALID_CACHE: usize = 10_000;

/// Most headers [`Chain`] keeps of the best chain's end (a spec's retarget window beyond this
/// is read from the store).
const MAX_WINDOW: usize = 4096;

/// Accounts per generation of the account cache (two generations: at most 2 × this, ~0.8 MiB):
/// a node's active senders and recent recipients; past it, the least recently used half goes.
const ACCOUNT_CACHE_HALF: usize = 4096;

/// Bytes of a run's batch (see [`Chain::submit_run`]) past which it is written and the next
/// blocks start another: bounds what one write holds in memory and puts into the memtables.
const RUN_BATCH_BYTES: usize = 1 << 20;

/// The heights of a block locator on a best chain ending at `tip`: the tip, then back 1, 2,
/// 4, 8, … blocks after the first ten, ending with genesis (the node's rule; the simulator
/// uses it too).
pub fn locator_heights(tip: u64) -> Vec<u64> {
    let mut out = Vec::new();
    let mut h = tip;
    let mut step = 1u64;
    loop {
        out.push(h);
        if h == 0 {
            return out;
        }
        if out.len() >= 10 {
            step = step.saturating_mul(2);
        }
        h = h.saturating_sub(step);
    }
}

/// What accepting a block did.
#[derive(Debug)]
pub enum Outcome {
    /// The block was already stored.
    AlreadyKnown,
    /// Stored on a side branch with no more work than the best chain.
    SideChain,
    /// The best chain moved: `undone` blocks (newest first) left it, `applied` blocks (oldest
    /// first) joined it; the last applied block is the new tip.
    Connected {
        /// Blocks that joined the best chain, in order.
        applied: Vec<Block>,
        /// Blocks that left it (a reorg), newest first.
        undone: Vec<Block>,
    },
}

/// The chain engine.
pub struct Chain {
    spec: ChainSpec,
    genesis: Hash,
    store: Store,
    tip: HeaderRecord,
    /// The best chain's newest headers, oldest first, ending with the tip (at most
    /// [`Chain::window_len`]): the median-time and retarget rules of a block on the tip read
    /// them here instead of from the store (11 reads and hashes a block in a sync).
    recent_best: VecDeque<HeaderRecord>,
    invalid: BoundedSet,
    sigcache: Option<std::sync::Arc<SigCache>>,
    /// Accounts of the best tip (see [`AccountCache`]). A `RefCell` because reads through
    /// [`AccountSource`] (`&self`) fill it; the chain lives on one thread, so no lock.
    accounts: RefCell<AccountCache>,
    /// The persisted mempool's index: a block moves its floor instead of deleting the entries
    /// of the transactions it confirms.
    pool: PoolLog,
    /// The height from which the address index is complete; `None`: no index is kept (see
    /// [`Chain::set_address_index`]).
    address_index_from: Option<u64>,
}

impl Chain {
    /// Opens the chain in `store`, writing genesis if the store is new.
    pub fn open(store: Store, spec: ChainSpec) -> Result<Chain, StoreError> {
        let genesis_block = spec.genesis();
        let genesis = genesis_block.hash();
        let tip_hash = match store.tip_hash()? {
            Some(h) => h,
            None => {
                let rec = HeaderRecord { hash: genesis, total_work: genesis_block.header.target.work(), header: genesis_block.header };
                let mut b = store.batch();
                b.put_block(&rec, &[]);
                b.set_height(0, &genesis);
                for (a, v) in spec.balances().map_err(StoreError::Missing)? {
                    b.put_account(&a, &crate::state::Account { balance: v, nonce: 0 });
                }
                b.set_tip(&genesis);
                store.write(b)?;
                genesis
            }
        };
        let tip = store.header(&tip_hash)?.ok_or_else(|| StoreError::Missing(format!("tip header {tip_hash}")))?;
        let pool = PoolLog::new(store.mempool_floor()?.unwrap_or(0), store.mempool_next()?);
        let address_index_from = store.address_index_from()?;
        let mut chain = Chain {
            spec,
            genesis,
            store,
            tip,
            recent_best: VecDeque::new(),
            invalid: BoundedSet::new(INVALID_CACHE),
            sigcache: None,
            accounts: RefCell::new(AccountCache::new(ACCOUNT_CACHE_HALF)),
            pool,
            address_index_from,
        };
        chain.reload_recent()?;
        chain.set_address_index(true)?;
        Ok(chain)
    }

    /// Keeps (`true`, the default) or stops keeping the address index: each connected block's
    /// transactions under their sender and recipient, in the block's own batch. Turned on for
    /// a chain past genesis that had none (a data dir from before the index, or kept with it
    /// off), the index is complete only from the next block: [`Chain::address_index_from`]
    /// says from where. Turned off, the record of where it starts is dropped, so turning it on
    /// again starts over from that tip.
    pub fn set_address_index(&mut self, on: bool) -> Result<(), StoreError> {
        let want = match (on, self.address_index_from) {
            (true, Some(_)) | (false, None) => return Ok(()),
            (true, None) => Some(if self.tip.header.height == 0 { 0 } else { self.tip.header.height + 1 }),
            (false, Some(_)) => None,
        };
        let mut b = self.store.batch();
        b.set_address_index_from(want);
        self.store.write(b)?;
        self.address_index_from = want;
        Ok(())
    }

    /// The height from which the address index holds every best-chain block, or `None` if this
    /// node keeps no address index.
    pub fn address_index_from(&self) -> Option<u64> {
        self.address_index_from
    }

    /// How many headers [`Chain::recent_best`] keeps: what the header rules of a child of the
    /// tip read.
    fn window_len(&self) -> usize {
        let retarget = if self.spec.fixed_target { 0 } else { usize::try_from(self.spec.retarget_window).unwrap_or(usize::MAX) };
        MEDIAN_TIME_SPAN.max(retarget.saturating_add(1)).min(MAX_WINDOW)
    }

    /// Reads the tip's window of headers from the store (at open and after a reorg).
    fn reload_recent(&mut self) -> Result<(), StoreError> {
        self.recent_best.clear();
        let n = self.window_len();
        let mut headers = self.recent(&self.tip.clone(), n)?;
        headers.reverse();
        self.recent_best.extend(headers);
        Ok(())
    }

    /// Skips, in blocks, the signatures the mempool verified (see [`SigCache`]).
    pub fn set_sigcache(&mut self, cache: std::sync::Arc<SigCache>) {
        self.sigcache = Some(cache);
    }

    /// The chain spec.
    pub fn spec(&self) -> &ChainSpec {
        &self.spec
    }
    /// The genesis hash (also every transaction's `chain` field).
    pub fn genesis_hash(&self) -> Hash {
        self.genesis
    }
    /// The store (for reads).
    pub fn store(&self) -> &Store {
        &self.store
    }
    /// The best tip.
    pub fn tip(&self) -> &HeaderRecord {
        &self.tip
    }
    /// The persisted mempool's index (see [`PoolLog`]).
    pub fn pool(&self) -> &PoolLog {
        &self.pool
    }
    /// The persisted mempool's index, for the mempool's owner: every transaction it admits,
    /// and every one that leaves it without a block, goes through here.
    pub fn pool_mut(&mut self) -> &mut PoolLog {
        &mut self.pool
    }

    /// `rec` and up to `n - 1` of its ancestors, newest first.
    fn recent(&self, rec: &HeaderRecord, n: usize) -> Result<Vec<HeaderRecord>, StoreError> {
        let mut out = Vec::with_capacity(n.min(MAX_WINDOW));
        if self.recent_best.back().is_some_and(|t| t.hash == rec.hash) {
            out.extend(self.recent_best.iter().rev().take(n).cloned());
        } else {
            out.push(rec.clone());
        }
        while out.len() < n {
            let last = &out[out.len() - 1];
            if last.header.height == 0 {
                break;
            }
            let prev = last.header.prev_hash;
            out.push(self.store.header(&prev)?.ok_or_else(|| StoreError::Missing(format!("ancestor {prev}")))?);
        }
        Ok(out)
    }

    /// Median of the timestamps of `parent` and its 10 predecessors: a child's timestamp must
    /// be above it.
    pub fn median_time_past(&self, parent: &HeaderRecord) -> Result<u64, StoreError> {
        let mut ts: Vec<u64> = self.recent(parent, MEDIAN_TIME_SPAN)?.iter().map(|r| r.header.timestamp).collect();
        ts.sort_unstable();
        Ok(ts[ts.len() / 2])
    }

    /// The target a child of `parent` must carry.
    pub fn expected_target(&self, parent: &HeaderRecord) -> Result<Target, StoreError> {
        if self.spec.fixed_target {
            return Ok(self.spec.initial_target);
        }
        let window = self.spec.retarget_window.min(parent.header.height);
        if window == 0 {
            return Ok(parent.header.target);
        }
        let recent = self.recent(parent, window as usize + 1)?;
        let first = &recent[recent.len() - 1];
        let actual = parent.header.timestamp.saturating_sub(first.header.timestamp);
        let expected = window.saturating_mul(self.spec.block_time_ms);
        Ok(retarget(parent.header.target, actual, expected, self.spec.pow_limit))
    }

    /// A header for a new block on the tip, paying `farmer`, with `txs`, nonce 0: a farmer
    /// varies the nonce until the hash meets the target.
    pub fn template(&self, farmer: Address, txs: &[Transaction], now_ms: u64) -> Result<Header, StoreError> {
        let ids: Vec<_> = txs.iter().map(Transaction::id).collect();
        self.template_for_ids(farmer, &ids, now_ms)
    }

    /// As [`Chain::template`], from the IDs of the transactions, in order (the mempool knows
    /// them: no transaction is hashed again).
    pub fn template_for_ids(&self, farmer: Address, ids: &[TxId], now_ms: u64) -> Result<Header, StoreError> {
        let parent = &self.tip;
        Ok(Header {
            version: HEADER_VERSION,
            height: parent.header.height + 1,
            prev_hash: parent.hash,
            tx_root: merkle_root(ids),
            timestamp: now_ms.max(self.median_time_past(parent)? + 1),
            target: self.expected_target(parent)?,
            nonce: 0,
            farmer,
        })
    }

    /// Checks everything about `header` that depends on its parent and the clock.
    pub fn check_contextual(&self, parent: &HeaderRecord, header: &Header, now_ms: u64) -> Result<(), BlockError> {
        let expected = parent.header.height + 1;
        if header.height != expected {
            return Err(BlockError::BadHeight { expected, got: header.height });
        }
        let median = self.median_time_past(parent)?;
        if header.timestamp <= median {
            return Err(BlockError::TimestampTooOld { median, got: header.timestamp });
        }
        let max_drift_ms = self.spec.max_future_drift_ms;
        if header.timestamp > now_ms.saturating_add(max_drift_ms) {
            return Err(BlockError::TimestampInFuture { got: header.timestamp, now: now_ms, max_drift_ms });
        }
        let target = self.expected_target(parent)?;
        if header.target != target {
            return Err(BlockError::BadTarget { expected: target.to_string(), got: header.target.to_string() });
        }
        Ok(())
    }

    /// Accepts a block: validates it, stores it, and moves the tip if its chain has the most
    /// work. Nothing of an invalid block is stored.
    pub fn submit(&mut self, block: Block, now_ms: u64) -> Result<Outcome, BlockError> {
        let hash = block.hash();
        if let Some(known) = self.known(&hash)? {
            return known;
        }
        let checked = match CheckedBlock::check_with(&self.spec, &self.genesis, block, self.sigcache.as_deref()) {
            Ok(c) => c,
            Err(failed) => {
                let (hash, e) = *failed;
                self.note_stateless_failure(hash, &e);
                return Err(e);
            }
        };
        self.connect(checked, now_ms)
    }

    /// Accepts a block whose stateless checks already passed: as [`Chain::submit`] without
    /// repeating them.
    pub fn submit_checked(&mut self, block: CheckedBlock, now_ms: u64) -> Result<Outcome, BlockError> {
        if block.genesis != self.genesis {
            // Checked for another chain: its checks say nothing here (a caller's bug).
            return Err(BlockError::Store(format!("block {} was checked for another chain (genesis {})", block.hash, block.genesis)));
        }
        if let Some(known) = self.known(&block.hash)? {
            return known;
        }
        self.connect(block, now_ms)
    }

    /// Accepts a run of checked blocks in order, as [`Chain::submit_checked`] on each would,
    /// stopping at the first that fails (the results cover the blocks tried). Blocks that
    /// extend the tip one after another are applied through one overlay and written in one
    /// batch (a new batch past [`RUN_BATCH_BYTES`]): each account is read and written once per
    /// run, not once per block. Blocks before a failing one are kept; the failing one gets the
    /// error it would get alone. Anything else (a side branch, a reorg, a known block) ends
    /// the batch and takes the path of [`Chain::submit_checked`].
    pub fn submit_run(&mut self, blocks: Vec<CheckedBlock>, now_ms: u64) -> Vec<Result<Outcome, BlockError>> {
        let mut out = Vec::with_capacity(blocks.len());
        let mut run = Run::default();
        for checked in blocks {
            let extends = checked.genesis == self.genesis && checked.block.header.prev_hash == self.tip.hash;
            let step = if extends { self.extend_run(&mut run, checked, now_ms) } else { Step::Elsewhere(Box::new(checked)) };
            match step {
                Step::Applied => {
                    if run.bytes >= RUN_BATCH_BYTES {
                        self.write_run(&mut run, &mut out);
                    }
                }
                Step::Failed(e) => {
                    self.write_run(&mut run, &mut out);
                    out.push(Err(e));
                }
                Step::Elsewhere(checked) => {
                    if self.write_run(&mut run, &mut out) {
                        out.push(self.submit_checked(*checked, now_ms));
                    }
                }
            }
            if out.last().is_some_and(Result::is_err) {
                return out;
            }
        }
        self.write_run(&mut run, &mut out);
        out
    }

    /// Applies a block that extends the tip to `run` (nothing written yet) and makes it the
    /// tip in memory.
    fn extend_run(&mut self, run: &mut Run, checked: CheckedBlock, now_ms: u64) -> Step {
        let CheckedBlock { block, hash, .. } = &checked;
        match self.known(hash) {
            Ok(None) => {}
            Ok(Some(_)) => return Step::Elsewhere(Box::new(checked)),
            Err(e) => return Step::Failed(e.into()),
        }
        let parent = &self.tip;
        let total_work = parent.total_work.saturating_add(block.header.target.work());
        if total_work <= parent.total_work {
            return Step::Elsewhere(Box::new(checked));
        }
        if let Err(e) = self.check_contextual(parent, &block.header, now_ms) {
            if !matches!(e, BlockError::TimestampInFuture { .. } | BlockError::Store(_)) {
                self.invalid.insert(*hash);
            }
            return Step::Failed(e);
        }
        let below = RunState { changes: &run.changes, chain: self };
        let mut overlay = Overlay::new(&below);
        let undo = match apply_block(&mut overlay, block, &self.genesis, self.spec.block_reward) {
            Ok(undo) => undo,
            Err(e) => {
                if e.is_invalid() {
                    self.invalid.insert(*hash);
                }
                return Step::Failed(e);
            }
        };
        let changes = overlay.into_changes();
        run.changes.extend(changes);
        if run.start.is_none() {
            run.start = Some(self.tip.clone());
        }
        let CheckedBlock { block, hash, ids, .. } = checked;
        let n = block.transactions.len();
        run.bytes += Header::ENCODED_LEN + n * (Transaction::ENCODED_LEN + 2 * RUN_ENTRY_BYTES) + undo.prior.len() * RUN_ENTRY_BYTES;
        let rec = HeaderRecord { hash, total_work, header: block.header.clone() };
        self.set_tip(rec.clone());
        run.blocks.push((rec, block, undo, ids));
        Step::Applied
    }

    /// Writes a run's blocks in one batch and moves their outcomes to `out`. If the write
    /// fails, each becomes a store error and the tip goes back to where the run started.
    /// Returns whether the write succeeded (or there was nothing to write).
    fn write_run(&mut self, run: &mut Run, out: &mut Vec<Result<Outcome, BlockError>>) -> bool {
        let Some(start) = run.start.take() else { return true };
        let blocks = std::mem::take(&mut run.blocks);
        let changes = std::mem::take(&mut run.changes);
        let bytes = std::mem::take(&mut run.bytes);
        let store = self.store.clone();
        // The estimate plus a quarter: the accounts and the pool's floor are not in it.
        let mut b = store.batch_with_capacity(bytes + bytes / 4);
        for (rec, block, _, _) in &blocks {
            b.put_block(rec, &block.transactions);
        }
        let pool = self.stage_connected(&mut b, blocks.iter().map(|(rec, block, undo, ids)| (rec.hash, block, undo, Some(ids.as_slice()))));
        stage_accounts(&mut b, &changes);
        b.set_tip(&self.tip.hash);
        let written = self.write_state(b, &changes, pool);
        match written {
            Ok(()) => {
                out.extend(blocks.into_iter().map(|(_, block, _, _)| Ok(Outcome::Connected { applied: vec![block], undone: Vec::new() })));
                true
            }
            Err(e) => {
                self.tip = start;
                // If the store cannot be read either, the window is empty and the header rules
                // read the store (and fail there) until it can.
                let _ = self.reload_recent();
                out.extend(blocks.iter().map(|_| Err(BlockError::Store(e.to_string()))));
                false
            }
        }
    }

    /// Makes `rec` (a child of the tip) the tip in memory, with its place in the window.
    fn set_tip(&mut self, rec: HeaderRecord) {
        self.tip = rec;
        self.recent_best.push_back(self.tip.clone());
        while self.recent_best.len() > self.window_len() {
            self.recent_best.pop_front();
        }
    }

    /// Remembers a block that failed [`check_stateless`] (here or on another thread), when
    /// the failure is fixed by its hash. Only what was expensive to find is cached: a bad
    /// proof costs one hash to see again (caching it would let junk flush the cache), and a
    /// wrong root or size says nothing about the header (the right body may come).
    pub fn note_stateless_failure(&mut self, hash: Hash, e: &BlockError) {
        if e.is_invalid()
            && !matches!(e, BlockError::BadProof | BlockError::BadMerkleRoot { .. } | BlockError::TooLarge { .. } | BlockError::TooManyTransactions { .. })
        {
            self.invalid.insert(hash);
        }
    }

    /// The answer for a block seen before (stored, or known invalid), if it was.
    fn known(&self, hash: &Hash) -> Result<Option<Result<Outcome, BlockError>>, StoreError> {
        if self.invalid.contains(hash) {
            return Ok(Some(Err(BlockError::KnownInvalid)));
        }
        if self.store.has_block(hash)? {
            return Ok(Some(Ok(Outcome::AlreadyKnown)));
        }
        Ok(None)
    }

    /// Turns fsync per write off for a run of blocks (see [`Store::set_sync_writes`]); the
    /// caller ends the run with [`Store::sync_wal`] and turns it back on.
    pub fn set_sync_writes(&mut self, on: bool) {
        self.store.set_sync_writes(on);
    }

    /// Stores a checked block and moves the tip if its chain has the most work.
    fn connect(&mut self, checked: CheckedBlock, now_ms: u64) -> Result<Outcome, BlockError> {
        let CheckedBlock { block, hash, ids, .. } = checked;
        if self.invalid.contains(&block.header.prev_hash) {
            // Has a valid proof, so caching it costs an attacker real work.
            self.invalid.insert(hash);
            return Err(BlockError::KnownInvalid);
        }
        // A block that can never become best within the reorg limit is not worth storing.
        let max_depth = self.spec.max_reorg_depth;
        if block.header.height.saturating_add(max_depth) <= self.tip.header.height {
            return Err(BlockError::ReorgTooDeep { depth: self.tip.header.height - block.header.height + 1, max: max_depth });
        }
        let parent = if block.header.prev_hash == self.tip.hash {
            self.tip.clone()
        } else {
            self.store.header(&block.header.prev_hash)?.ok_or(BlockError::UnknownParent(block.header.prev_hash))?
        };
        if let Err(e) = self.check_contextual(&parent, &block.header, now_ms) {
            if !matches!(e, BlockError::TimestampInFuture { .. } | BlockError::Store(_)) {
                self.invalid.insert(hash);
            }
            return Err(e);
        }
        let rec = HeaderRecord { hash, total_work: parent.total_work.saturating_add(block.header.target.work()), header: block.header.clone() };
        if rec.total_work > self.tip.total_work {
            self.reorganize(rec, block, ids)
        } else {
            let mut b = self.store.batch();
            b.put_block(&rec, &block.transactions);
            self.store.write(b)?;
            Ok(Outcome::SideChain)
        }
    }

    fn on_best_chain(&self, rec: &HeaderRecord) -> Result<bool, StoreError> {
        Ok(self.store.hash_at(rec.header.height)? == Some(rec.hash))
    }

    /// Puts into `b` what joining the best chain writes for each of `connected` (hash, block,
    /// undo record), beyond the block itself: its height, its undo record, its transactions'
    /// index entries, and the persisted mempool's new floor (no entry is deleted: see
    /// [`PoolLog`]). Returns the floor and the confirmed transactions, for
    /// [`Chain::write_state`].
    fn stage_connected<'b>(&self, b: &mut StoreBatch<'_>, connected: impl Iterator<Item = (Hash, &'b Block, &'b Undo, Option<&'b [TxId]>)>) -> PoolUpdate {
        let mut index = Vec::new();
        let mut by_address = Vec::new();
        let indexing = self.address_index_from.is_some();
        for (hash, block, undo, ids) in connected {
            let height = block.header.height;
            b.set_height(height, &hash);
            b.put_undo(&hash, undo);
            index.reserve(block.transactions.len());
            if indexing {
                by_address.reserve(2 * block.transactions.len());
            }
            // The IDs its check computed (one per transaction, in order), else hashed here.
            let known = ids.filter(|ids| ids.len() == block.transactions.len());
            for (i, tx) in block.transactions.iter().enumerate() {
                let id = known.map_or_else(|| tx.id(), |ids| ids[i]);
                index.push((id, TxLocation { block: hash, index: i as u32 }));
                if indexing {
                    let from = tx.sender();
                    by_address.push((from, height, i as u32, id));
                    if tx.to != from {
                        by_address.push((tx.to, height, i as u32, id));
                    }
                }
            }
        }
        // Keys in order within each column family: RocksDB inserts a sorted run into its
        // memtable from where the previous key went, instead of from the top each time.
        by_address.sort_unstable_by_key(|(a, h, i, _)| (*a, *h, *i));
        for (a, h, i, id) in &by_address {
            b.index_address_tx(a, *h, *i, id);
        }
        index.sort_unstable_by_key(|(id, _)| *id);
        for (id, loc) in &index {
            b.index_tx(id, *loc);
        }
        let confirmed: Vec<TxId> = index.into_iter().map(|(id, _)| id).collect();
        let floor = self.pool.floor_without(|id| confirmed.binary_search(id).is_ok());
        self.pool.stage_floor(b, floor);
        PoolUpdate { floor, confirmed }
    }

    /// Writes a batch that moves the tip and changes `changes`, and brings the account cache and
    /// the persisted mempool's index in step: the new values after the write, nothing cached if
    /// it failed (its outcome is unknown).
    fn write_state(&mut self, b: StoreBatch<'_>, changes: &HashMap<Address, Account>, pool: PoolUpdate) -> Result<(), StoreError> {
        let mut cache = self.accounts.borrow_mut();
        if let Err(e) = self.store.write(b) {
            cache.clear();
            return Err(e);
        }
        for (a, acc) in changes {
            cache.insert(*a, *acc);
        }
        drop(cache);
        self.pool.floor_written(pool.floor, &pool.confirmed);
        Ok(())
    }

    /// Makes `new_tip` (whose block `new_block` is not stored yet) the tip: undoes the best
    /// chain back to the fork point and applies the branch, all in one overlay, then writes it
    /// all in one batch. If a branch block breaks a state rule, it and its descendants are
    /// forgotten and the tip stays.
    fn reorganize(&mut self, new_tip: HeaderRecord, new_block: Block, new_ids: Vec<TxId>) -> Result<Outcome, BlockError> {
        let max_depth = self.spec.max_reorg_depth;
        let lowest = self.tip.header.height.saturating_sub(max_depth);
        // The branch, newest first, down to (not including) the fork point.
        let mut branch = vec![new_tip.clone()];
        let mut cursor = new_tip.header.prev_hash;
        let fork = loop {
            let rec = self.store.header(&cursor)?.ok_or_else(|| StoreError::Missing(format!("branch ancestor {cursor}")))?;
            if self.on_best_chain(&rec)? {
                break rec;
            }
            if rec.header.height <= lowest {
                return Err(BlockError::ReorgTooDeep { depth: self.tip.header.height - rec.header.height + 1, max: max_depth });
            }
            cursor = rec.header.prev_hash;
            branch.push(rec);
        };
        let depth = self.tip.header.height - fork.header.height;
        if depth > max_depth {
            return Err(BlockError::ReorgTooDeep { depth, max: max_depth });
        }

        let mut overlay = Overlay::new(&*self);
        let mut undone = Vec::with_capacity(depth as usize);
        for height in (fork.header.height + 1..=self.tip.header.height).rev() {
            let hash = self.store.hash_at(height)?.ok_or_else(|| StoreError::Missing(format!("best block at {height}")))?;
            let undo = self.store.undo(&hash)?.ok_or_else(|| StoreError::Missing(format!("undo of {hash}")))?;
            undo_block(&mut overlay, &undo);
            undone.push(self.store.block(&hash)?.ok_or_else(|| StoreError::Missing(format!("block {hash}")))?);
        }

        let mut applied = Vec::with_capacity(branch.len());
        let mut undos = Vec::with_capacity(branch.len());
        for (i, rec) in branch.iter().enumerate().rev() {
            let block = if rec.hash == new_tip.hash {
                new_block.clone()
            } else {
                let transactions = self.store.body(&rec.hash)?.ok_or_else(|| StoreError::Missing(format!("body {}", rec.hash)))?;
                Block { header: rec.header.clone(), transactions }
            };
            match apply_block(&mut overlay, &block, &self.genesis, self.spec.block_reward) {
                Ok(undo) => {
                    undos.push(undo);
                    applied.push(block);
                }
                // The store failed: nothing was judged, keep the branch for later.
                Err(e) if !e.is_invalid() => return Err(e),
                Err(e) => {
                    drop(overlay);
                    // This block and every branch block above it are invalid: forget them.
                    let mut b = self.store.batch();
                    for bad in &branch[..=i] {
                        self.invalid.insert(bad.hash);
                        b.delete_block(&bad.hash);
                    }
                    self.store.write(b)?;
                    return Err(e);
                }
            }
        }

        let changes = overlay.into_changes();
        let store = self.store.clone();
        let mut b = store.batch();
        b.put_block(&new_tip, &new_block.transactions);
        let mut returned = Vec::new();
        let reapplied: HashSet<_> =
            if undone.is_empty() { HashSet::new() } else { applied.iter().flat_map(|bl| bl.transactions.iter().map(Transaction::id)).collect() };
        for block in &undone {
            let hash = block.hash();
            b.delete_undo(&hash);
            for (i, tx) in block.transactions.iter().enumerate() {
                let id = tx.id();
                b.unindex_tx(&id);
                if self.address_index_from.is_some() {
                    b.unindex_address_tx(&tx.sender(), block.header.height, i as u32);
                    b.unindex_address_tx(&tx.to, block.header.height, i as u32);
                }
                // Back to the (persisted) mempool in the same batch: a crash cannot lose it.
                if !reapplied.contains(&id) {
                    self.pool.put(&mut b, id, tx);
                    returned.push(id);
                }
            }
            if block.header.height > new_tip.header.height {
                b.delete_height(block.header.height);
            }
        }
        let last = applied.len().saturating_sub(1);
        let pool = self.stage_connected(
            &mut b,
            applied
                .iter()
                .zip(&undos)
                .enumerate()
                .map(|(i, (bl, u))| if i == last { (new_tip.hash, bl, u, Some(new_ids.as_slice())) } else { (bl.hash(), bl, u, None) }),
        );
        stage_accounts(&mut b, &changes);
        b.set_tip(&new_tip.hash);
        if let Err(e) = self.write_state(b, &changes, pool) {
            // Not written: the returning transactions have no entries.
            for id in &returned {
                self.pool.forget(id);
            }
            return Err(e.into());
        }
        let extends = undone.is_empty() && new_tip.header.prev_hash == self.tip.hash;
        if extends {
            self.set_tip(new_tip);
        } else {
            self.tip = new_tip;
            self.reload_recent()?;
        }
        Ok(Outcome::Connected { applied, undone })
    }
}

/// What [`Chain::stage_connected`] staged for the persisted mempool: its new floor, and the
/// transactions that left the pool (sorted).
struct PoolUpdate {
    floor: u64,
    confirmed: Vec<TxId>,
}

/// Rough bytes of one index, account or undo entry in a batch (key, value and overhead), for
/// [`RUN_BATCH_BYTES`].
const RUN_ENTRY_BYTES: usize = 80;

/// What [`Chain::extend_run`] did with a block.
enum Step {
    /// Applied to the run.
    Applied,
    /// It fails, with the error [`Chain::submit_checked`] would give.
    Failed(BlockError),
    /// Not for a run (known already, or no more work): the one-block path takes it.
    Elsewhere(Box<CheckedBlock>),
}

/// Blocks of [`Chain::submit_run`] applied but not written yet.
#[derive(Default)]
struct Run {
    /// The tip before the run's first block (restored if the write fails).
    start: Option<HeaderRecord>,
    /// Each block with its header record, undo record and transaction IDs, in order.
    blocks: Vec<(HeaderRecord, Block, Undo, Vec<TxId>)>,
    /// Every account the run changed, with its value after the run's last block.
    changes: HashMap<Address, Account>,
    /// Rough size of the batch that will write it.
    bytes: usize,
}

/// The accounts as a run left them, over the best tip's.
struct RunState<'a> {
    changes: &'a HashMap<Address, Account>,
    chain: &'a Chain,
}

impl AccountSource for RunState<'_> {
    fn account(&self, a: &Address) -> Result<Account, StoreError> {
        match self.changes.get(a) {
            Some(acc) => Ok(*acc),
            None => self.chain.account(a),
        }
    }
}

/// Puts changed accounts into `b`, in key order (see [`Chain::stage_connected`]).
fn stage_accounts(b: &mut StoreBatch<'_>, changes: &HashMap<Address, Account>) {
    let mut sorted: Vec<_> = changes.iter().collect();
    sorted.sort_unstable_by_key(|(a, _)| **a);
    for (a, acc) in sorted {
        b.put_account(a, acc);
    }
}

impl AccountSource for Chain {
    /// The account at the best tip: from the account cache, else from the store (and cached).
    fn account(&self, a: &Address) -> Result<Account, StoreError> {
        if let Some(acc) = self.accounts.borrow_mut().get(a) {
            return Ok(acc);
        }
        let acc = self.store.account(a)?;
        self.accounts.borrow_mut().insert(*a, acc);
        Ok(acc)
    }
}
