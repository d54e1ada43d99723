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
    /// Validates and stores a block; moves the tip if it makes the most work.
    fn submit(&mut self, block: Arc<Block>, valid: Option<bool>) -> Result<Submitted, BlockError>;
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
        let mut out = Vec::new();
        let mut h = self.tip().height;
        let mut step = 1u64;
        loop {
            if let Some(hash) = self.hash_at(h) {
                out.push(hash);
            }
            if h == 0 {
                break;
            }
            if out.len() >= 10 {
                step *= 2;
            }
            h = h.saturating_sub(step);
        }
        out
    }

    fn submit(&mut self, block: Arc<Block>, valid: Option<bool>) -> Result<Submitted, BlockError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocks::{Factory, PoolConfig};
    use crate::engine::SECOND;

    #[test]
    fn the_most_work_wins_and_a_reorg_rewrites_the_best_chain() {
        let cfg = PoolConfig { txs_per_block: 2, pool: 16, signed: true, block_time: 10 * SECOND, mempool_miss: 0.0 };
        let mut f = Factory::new(1, &cfg);
        let mut c = LightChain::new(f.spec.clone(), f.genesis.clone(), true);
        let g = f.genesis.header.clone();
        let farmer = cairn_chain::Address([1; 32]);
        let a1 = f.make(&g, 0, 30 * SECOND, farmer, true);
        let b1 = f.make(&g, 1, 31 * SECOND, farmer, true);
        let b2 = f.make(&b1.block.header, 1, 32 * SECOND, farmer, true);
        assert_eq!(c.submit(a1.block.clone(), None), Ok(Submitted::Connected));
        assert_eq!(c.submit(b2.block.clone(), None), Err(BlockError::UnknownParent(b1.block.hash())));
        assert_eq!(c.submit(b1.block.clone(), None), Ok(Submitted::SideChain), "equal work: the first seen stays");
        assert_eq!(c.submit(b2.block.clone(), None), Ok(Submitted::Connected));
        assert_eq!(c.tip().hash, b2.block.hash());
        assert_eq!(c.hash_at(1), Some(b1.block.hash()));
        assert_eq!(c.submit(b2.block.clone(), None), Ok(Submitted::AlreadyKnown));
        let headers = c.headers_after(&[f.genesis.hash()], 10);
        assert_eq!(headers.iter().map(Header::hash).collect::<Vec<_>>(), vec![b1.block.hash(), b2.block.hash()]);
        assert_eq!(c.locator().last(), Some(&f.genesis.hash()));
        let bad = f.make(&b2.block.header, 2, 33 * SECOND, farmer, false);
        assert!(matches!(c.submit(bad.block.clone(), None), Err(BlockError::BadMerkleRoot { .. })), "the real stateless check");
    }
}
