//! Blocks whose parent we lack, held until the parent arrives: a bounded pool (oldest
//! dropped first), indexed by parent so a connecting block releases its children at once.

use std::collections::{HashMap, VecDeque};

use cairn_chain::{Block, Hash};

use crate::identity::NodeId;

/// Most orphan blocks held.
pub const MAX_ORPHANS: usize = 64;
/// Most bytes of orphan blocks held.
pub const MAX_ORPHAN_BYTES: usize = 32 << 20;

/// The pool.
#[derive(Default)]
pub struct Orphans {
    /// Hash → (block, who sent it).
    blocks: HashMap<Hash, (Block, NodeId)>,
    /// Parent hash → children.
    children: HashMap<Hash, Vec<Hash>>,
    /// Arrival order, for eviction.
    order: VecDeque<Hash>,
    bytes: usize,
}

impl Orphans {
    /// Holds `block` from `peer`; drops the oldest orphans to stay within bounds. Returns
    /// false if it was already held.
    pub fn insert(&mut self, block: Block, peer: NodeId) -> bool {
        let hash = block.hash();
        let size = block.encoded_len();
        if self.blocks.contains_key(&hash) || size > MAX_ORPHAN_BYTES {
            return false;
        }
        while !self.order.is_empty() && (self.blocks.len() >= MAX_ORPHANS || self.bytes + size > MAX_ORPHAN_BYTES) {
            if let Some(old) = self.order.pop_front() {
                self.remove(&old);
            }
        }
        self.children.entry(block.header.prev_hash).or_default().push(hash);
        self.order.push_back(hash);
        self.bytes += size;
        self.blocks.insert(hash, (block, peer));
        true
    }

    /// Takes the held children of `parent` (to submit now that it is stored).
    pub fn take_children(&mut self, parent: &Hash) -> Vec<(Block, NodeId)> {
        let Some(kids) = self.children.remove(parent) else { return Vec::new() };
        let mut out = Vec::new();
        for k in kids {
            self.order.retain(|h| *h != k);
            if let Some((b, p)) = self.blocks.remove(&k) {
                self.bytes = self.bytes.saturating_sub(b.encoded_len());
                out.push((b, p));
            }
        }
        out
    }

    /// How many are held.
    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    /// Whether none are held.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    fn remove(&mut self, hash: &Hash) {
        if let Some((b, _)) = self.blocks.remove(hash) {
            self.bytes = self.bytes.saturating_sub(b.encoded_len());
            if let Some(kids) = self.children.get_mut(&b.header.prev_hash) {
                kids.retain(|k| k != hash);
                if kids.is_empty() {
                    self.children.remove(&b.header.prev_hash);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_chain::{Address, Header, Target};

    fn block(parent: u8, nonce: u64) -> Block {
        let header = Header {
            version: cairn_chain::block::HEADER_VERSION,
            height: 1,
            prev_hash: Hash([parent; 32]),
            tx_root: Hash::ZERO,
            timestamp: 1,
            target: Target::MAX,
            nonce,
            farmer: Address([0; 32]),
        };
        Block { header, transactions: Vec::new() }
    }

    #[test]
    fn children_come_back_once_and_the_pool_is_bounded() {
        let mut o = Orphans::default();
        let p = cairn_chain::PublicKey([1; 32]);
        assert!(o.insert(block(9, 1), p));
        assert!(!o.insert(block(9, 1), p), "held once");
        assert!(o.insert(block(9, 2), p));
        assert_eq!(o.take_children(&Hash([9; 32])).len(), 2);
        assert!(o.take_children(&Hash([9; 32])).is_empty());
        assert!(o.is_empty());
        for n in 0..(MAX_ORPHANS as u64 + 10) {
            o.insert(block(3, n), p);
        }
        assert_eq!(o.len(), MAX_ORPHANS);
        // The oldest were dropped.
        let kept = o.take_children(&Hash([3; 32]));
        assert!(kept.iter().all(|(b, _)| b.header.nonce >= 10));
    }
}
