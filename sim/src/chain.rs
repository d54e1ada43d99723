//! The chain each simulated node keeps: a block tree in memory with cumulative work, the best
//! chain by height, and fork choice by most work (the real rule; ties keep the first seen).
//!
//! [`ChainModel`] is what the node glue needs of a chain, so the real `cairn_chain::Chain`
//! over an in-memory store can be plugged in once it builds without RocksDB. [`LightChain`]
//! is the model used today: blocks are the real `Block` values shared by `Arc` between nodes,
//! the stateless checks are the real ones (`check_stateless`, signatures included) in
//! [`crate::Fidelity::Full`], and assumed (a flag set by the block's maker) in
//! [`crate::Fidelity::Light`]; account state (balances, nonces) is not modelled.

use std::collections::HashMap;
use std::sync::Arc;

use cairn_chain::{Block, BlockError, ChainSpec, Hash, Header, Work};
use cairn_p2p::ports::Submitted;

/// A tip: height, hash, cumulative work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tip {
    /// Best height.
    pub height: u64,
    /// Best hash.
    pub hash: Hash,
    /// Cumulative work of the best chain.
    pub work: Work,
}

/// What the node glue asks of its chain (the subset of `cairn_p2p::ports::ChainInfo` the sync
/// and serving paths use, synchronous).
pub trait ChainModel {
    /// The best tip.
    fn tip(&self) -> Tip;
    /// Whether the block is stored (any branch).
    fn has_block(&self, hash: &Hash) -> bool;
    /// Cumulative work up to and including a stored block.
    fn total_work_of(&self, hash: &Hash) -> Option<Work>;
    /// A stored block.
    fn block(&self, hash: &Hash) -> Option<Arc<Block>>;
    /// The best chain's block at a height.
    fn hash_at(&self, height: u64) -> Option<Hash>;
    /// Headers after the first locator hash on the best chain (the real `headers_after`).
    fn headers_after(&self, locator: &[Hash], max: usize) -> Vec<Header>;
    /// Block locator: the tip, then back 1, 2, 4, 8, … blocks, ending with genesis.
    fn locator(&self) -> Vec<Hash>;
    /// Validates and stores a block; moves the tip if it makes the most work. `valid`: the
    /// maker's word, for models that do not check; `now_ms`: the node's clock.
    fn submit(&mut self, block: Arc<Block>, valid: Option<bool>, now_ms: u64) -> Result<Submitted, BlockError>;
}

struct Entry {
    block: Arc<Block>,
    work: Work,
}

/// Bound of the remembered invalid blocks (oldest forgotten beyond; each costs a check again).
const MAX_INVALID: usize = 4096;

/// The in-memory chain model. See the module doc.
pub struct LightChain {
    spec: Arc<ChainSpec>,
    genesis: Hash,
    blocks: HashMap<Hash, Entry>,
    /// Best chain: hash by height.
    best: Vec<Hash>,
    invalid: HashMap<Hash, BlockError>,
    /// The best tip's cumulative work.
    tip_work: Work,
    /// Whether to run the real stateless checks (else the caller's verdict is taken).
    validate: bool,
}

impl LightChain {
    /// A chain holding only `genesis`.
    pub fn new(spec: Arc<ChainSpec>, genesis: Arc<Block>, validate: bool) -> LightChain {
        let hash = genesis.hash();
        let work = genesis.header.target.work();
        let tip_work = work;
        let mut blocks = HashMap::new();
        blocks.insert(hash, Entry { block: genesis, work });
        LightChain { spec, genesis: hash, blocks, best: vec![hash], invalid: HashMap::new(), tip_work, validate }
    }

    fn position(&self, hash: &Hash) -> Option<u64> {
        let e = self.blocks.get(hash)?;
        let h = e.block.header.height;
        (self.best.get(h as usize) == Some(hash)).then_some(h)
    }
}

impl ChainModel for LightChain {
    fn tip(&self) -> Tip {
        let hash = *self.best.last().unwrap_or(&self.genesis);
        Tip { height: (self.best.len() as u64).saturating_sub(1), hash, work: self.tip_work }
    }

    fn has_block(&self, hash: &Hash) -> bool {
        self.blocks.contains_key(hash)
    }

    fn total_work_of(&self, hash: &Hash) -> Option<Work> {
        self.blocks.get(hash).map(|e| e.work)
    }

    fn block(&self, hash: &Hash) -> Option<Arc<Block>> {
        self.blocks.get(hash).map(|e| e.block.clone())
    }

    fn hash_at(&self, height: u64) -> Option<Hash> {
        self.best.get(usize::try_from(height).ok()?).copied()
    }

    fn headers_after(&self, locator: &[Hash], max: usize) -> Vec<Header> {
        let start = locator.iter().find_map(|h| self.position(h)).unwrap_or(0);
        self.best.iter().skip(start as usize + 1).take(max).filter_map(|h| self.blocks.get(h)).map(|e| e.block.header.clone()).collect()
    }

    fn locator(&self) -> Vec<Hash> {
        locator_of(self.tip().height, |h| self.hash_at(h))
    }

    fn submit(&mut self, block: Arc<Block>, valid: Option<bool>, _now_ms: u64) -> Result<Submitted, BlockError> {
        let hash = block.hash();
        if self.blocks.contains_key(&hash) {
            return Ok(Submitted::AlreadyKnown);
        }
        if let Some(e) = self.invalid.get(&hash) {
            return Err(e.clone());
        }
        let prev = block.header.prev_hash;
        let Some(parent) = self.blocks.get(&prev) else {
            return Err(BlockError::UnknownParent(prev));
        };
        let parent_height = parent.block.header.height;
        let parent_work = parent.work;
        let verdict = if self.validate {
            cairn_chain::check_stateless(&self.spec, &self.genesis, &block)
        } else if valid == Some(false) {
            Err(BlockError::BadMerkleRoot { computed: Hash([0; 32]), got: block.header.tx_root })
        } else {
            Ok(())
        };
        let verdict = verdict.and_then(|()| {
            if block.header.height == parent_height + 1 { Ok(()) } else { Err(BlockError::BadHeight { expected: parent_height + 1, got: block.header.height }) }
        });
        if let Err(e) = verdict {
            if self.invalid.len() >= MAX_INVALID {
                self.invalid.clear();
            }
            self.invalid.insert(hash, e.clone());
            return Err(e);
        }
        let work = parent_work.saturating_add(block.header.target.work());
        let height = block.header.height;
        self.blocks.insert(hash, Entry { block, work });
        if work <= self.tip().work {
            return Ok(Submitted::SideChain);
        }
        // Reorganise: walk back from the new tip to the best chain.
        let mut branch = vec![hash];
        let mut cur = prev;
        while self.position(&cur).is_none() {
            branch.push(cur);
            match self.blocks.get(&cur) {
                Some(e) => cur = e.block.header.prev_hash,
                None => break,
            }
        }
        let fork = self.position(&cur).unwrap_or(0);
        self.best.truncate(fork as usize + 1);
        self.best.extend(branch.into_iter().rev());
        self.tip_work = work;
        debug_assert_eq!(self.best.len() as u64, height + 1);
        Ok(Submitted::Connected)
    }
}

/// The real `cairn_chain::Chain` over its in-memory store: every rule (stateless, contextual,
/// state: balances, nonces, fees, rewards), fork choice and reorganisation through undo
/// records, exactly as the node runs them. Reads go to the store as the node's chain service
/// reads (`headers_after` and `locator` follow `src/chain_service.rs`).
pub struct RealChain {
    chain: cairn_chain::Chain,
}

impl RealChain {
    /// A chain holding only the genesis of `spec`, in memory.
    pub fn new(spec: &ChainSpec) -> Result<RealChain, cairn_chain::StoreError> {
        let genesis = spec.genesis().hash();
        let store = cairn_chain::Store::memory(&spec.chain_id, genesis);
        Ok(RealChain { chain: cairn_chain::Chain::open(store, spec.clone())? })
    }

    /// The chain, for reads the trait does not cover (accounts).
    pub fn inner(&self) -> &cairn_chain::Chain {
        &self.chain
    }
}

impl ChainModel for RealChain {
    fn tip(&self) -> Tip {
        let t = self.chain.tip();
        Tip { height: t.header.height, hash: t.hash, work: t.total_work }
    }

    fn has_block(&self, hash: &Hash) -> bool {
        self.chain.store().has_block(hash).unwrap_or(false)
    }

    fn total_work_of(&self, hash: &Hash) -> Option<Work> {
        self.chain.store().header(hash).ok().flatten().map(|r| r.total_work)
    }

    fn block(&self, hash: &Hash) -> Option<Arc<Block>> {
        self.chain.store().block(hash).ok().flatten().map(Arc::new)
    }

    fn hash_at(&self, height: u64) -> Option<Hash> {
        self.chain.store().hash_at(height).ok().flatten()
    }

    fn headers_after(&self, locator: &[Hash], max: usize) -> Vec<Header> {
        let s = self.chain.store();
        let start = locator
            .iter()
            .find_map(|hash| {
                let rec = s.header(hash).ok().flatten()?;
                (s.hash_at(rec.header.height).ok().flatten() == Some(*hash)).then_some(rec.header.height + 1)
            })
            .unwrap_or(1);
        (start..start.saturating_add(max as u64))
            .map_while(|h| s.hash_at(h).ok().flatten().and_then(|hash| s.header(&hash).ok().flatten()))
            .map(|r| r.header)
            .collect()
    }

    fn locator(&self) -> Vec<Hash> {
        locator_of(self.tip().height, |h| self.hash_at(h))
    }

    fn submit(&mut self, block: Arc<Block>, _valid: Option<bool>, now_ms: u64) -> Result<Submitted, BlockError> {
        match self.chain.submit((*block).clone(), now_ms)? {
            cairn_chain::Outcome::AlreadyKnown => Ok(Submitted::AlreadyKnown),
            cairn_chain::Outcome::SideChain => Ok(Submitted::SideChain),
            cairn_chain::Outcome::Connected { .. } => Ok(Submitted::Connected),
        }
    }
}

/// A block locator over `hash_at` (the node's rule: [`cairn_chain::locator_heights`]).
fn locator_of(tip: u64, hash_at: impl Fn(u64) -> Option<Hash>) -> Vec<Hash> {
    cairn_chain::locator_heights(tip).into_iter().filter_map(hash_at).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocks::{Factory, PoolConfig};
    use crate::engine::SECOND;

    #[test]
    fn the_most_work_wins_and_a_reorg_rewrites_the_best_chain() {
        let cfg = PoolConfig { txs_per_block: 2, pool: 16, signed: true, block_time: 10 * SECOND, mempool_miss: 0.0, stateful: false };
        let mut f = Factory::new(1, &cfg);
        let mut c = LightChain::new(f.spec.clone(), f.genesis.clone(), true);
        let g = f.genesis.header.clone();
        let farmer = cairn_chain::Address([1; 32]);
        let a1 = f.make(&g, 0, 30 * SECOND, farmer, true, |_| true);
        let b1 = f.make(&g, 1, 31 * SECOND, farmer, true, |_| true);
        let b2 = f.make(&b1.block.header, 1, 32 * SECOND, farmer, true, |_| true);
        assert_eq!(c.submit(a1.block.clone(), None, 0), Ok(Submitted::Connected));
        assert_eq!(c.submit(b2.block.clone(), None, 0), Err(BlockError::UnknownParent(b1.block.hash())));
        assert_eq!(c.submit(b1.block.clone(), None, 0), Ok(Submitted::SideChain), "equal work: the first seen stays");
        assert_eq!(c.submit(b2.block.clone(), None, 0), Ok(Submitted::Connected));
        assert_eq!(c.tip().hash, b2.block.hash());
        assert_eq!(c.hash_at(1), Some(b1.block.hash()));
        assert_eq!(c.submit(b2.block.clone(), None, 0), Ok(Submitted::AlreadyKnown));
        let headers = c.headers_after(&[f.genesis.hash()], 10);
        assert_eq!(headers.iter().map(Header::hash).collect::<Vec<_>>(), vec![b1.block.hash(), b2.block.hash()]);
        assert_eq!(c.locator().last(), Some(&f.genesis.hash()));
        let bad = f.make(&b2.block.header, 2, 33 * SECOND, farmer, false, |_| true);
        assert!(matches!(c.submit(bad.block.clone(), None, 0), Err(BlockError::BadMerkleRoot { .. })), "the real stateless check");
    }
}
