//! What the node tells subscribers (`GET /events`): the best chain moving and reorganising.
//! Transactions and peers have their own broadcasts (the chain service's accepted batches,
//! the p2p layer's [`cairn_p2p::PeerEvent`]).
//!
//! Every broadcast here is bounded (the ring of a `tokio::sync::broadcast`): a subscriber that
//! falls behind by more than its capacity misses the oldest events and learns how many, the
//! sender never waits.

use cairn_chain::{Address, Block, Hash};
use serde::Serialize;

/// Chain events a broadcast holds before the slowest subscriber misses some.
pub const CHAIN_EVENTS: usize = 1024;

/// The best chain changed.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum ChainEvent {
    /// A block became part of the best chain (each block of a reorg's new branch, in order).
    Block(BlockEvent),
    /// The best chain lost `depth` blocks to another branch (sent before that branch's blocks).
    Reorg(ReorgEvent),
}

/// `event: block`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct BlockEvent {
    /// Its height.
    pub height: u64,
    /// Its hash.
    pub hash: Hash,
    /// Its parent.
    pub prev_hash: Hash,
    /// Transactions in it.
    pub txs: usize,
    /// Who farmed it.
    pub farmer: Address,
    /// Its header's timestamp (ms).
    pub timestamp: u64,
}

/// `event: reorg`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ReorgEvent {
    /// Blocks that left the best chain.
    pub depth: usize,
    /// The tip before.
    pub old_tip: Hash,
    /// The tip after.
    pub new_tip: Hash,
    /// The new tip's height.
    pub height: u64,
}

impl ChainEvent {
    /// The SSE event name.
    pub fn kind(&self) -> &'static str {
        match self {
            ChainEvent::Block(_) => "block",
            ChainEvent::Reorg(_) => "reorg",
        }
    }

    /// The events of one move of the best chain: `undone` newest first, `applied` oldest first.
    pub fn of_move(applied: &[Block], undone: &[Block]) -> Vec<ChainEvent> {
        let mut out = Vec::with_capacity(applied.len() + 1);
        if let (Some(old), Some(new)) = (undone.first(), applied.last()) {
            out.push(ChainEvent::Reorg(ReorgEvent { depth: undone.len(), old_tip: old.hash(), new_tip: new.hash(), height: new.header.height }));
        }
        out.extend(applied.iter().map(|b| {
            ChainEvent::Block(BlockEvent {
                height: b.header.height,
                hash: b.hash(),
                prev_hash: b.header.prev_hash,
                txs: b.transactions.len(),
                farmer: b.header.farmer,
                timestamp: b.header.timestamp,
            })
        }));
        out
    }
}
