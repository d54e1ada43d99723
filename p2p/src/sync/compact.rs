//! Compact blocks being rebuilt: those whose missing transactions were asked of their sender
//! (`get_block_txs`) and not yet delivered. Owned by the sync task; sans-IO (time injected).
//! Public for the network simulator (`sim/`), which drives it as the sync task does.
//!
//! # Bounds
//! At most [`MAX_PENDING`] blocks: a new one beyond that pushes out the oldest, which is then
//! fetched whole. One waits at most [`BLOCK_TXS_TIMEOUT`] for its transactions before it is
//! fetched whole from its sender.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use cairn_chain::Hash;
use cairn_chain::compact::Partial;

use crate::identity::NodeId;

/// Most compact blocks waiting for missing transactions at once.
pub const MAX_PENDING: usize = 8;

/// How long a compact block waits for its missing transactions before the whole block is
/// asked for.
pub const BLOCK_TXS_TIMEOUT: Duration = Duration::from_secs(5);

/// A compact block waiting for transactions.
pub struct Waiting {
    /// Who sent it (and was asked for the rest).
    pub peer: NodeId,
    /// The block so far.
    pub partial: Partial,
    since: Instant,
}

/// The compact blocks waiting for transactions, by block hash.
#[derive(Default)]
pub struct Rebuilding {
    waiting: HashMap<Hash, Waiting>,
}

impl Rebuilding {
    /// Whether this block is being rebuilt already (another peer's copy is then ignored).
    pub fn contains(&self, hash: &Hash) -> bool {
        self.waiting.contains_key(hash)
    }

    /// Starts waiting for a block's missing transactions from `peer`. Returns a block pushed
    /// out to make room (to be fetched whole from its sender).
    pub fn wait(&mut self, hash: Hash, peer: NodeId, partial: Partial, now: Instant) -> Option<(Hash, NodeId)> {
        let mut pushed = None;
        if self.waiting.len() >= MAX_PENDING
            && let Some(oldest) = self.waiting.iter().min_by_key(|(_, w)| w.since).map(|(h, _)| *h)
            && let Some(w) = self.waiting.remove(&oldest)
        {
            pushed = Some((oldest, w.peer));
        }
        self.waiting.insert(hash, Waiting { peer, partial, since: now });
        pushed
    }

    /// The block `peer` just sent transactions for, if we were waiting for them from it.
    pub fn take(&mut self, hash: &Hash, peer: &NodeId) -> Option<Waiting> {
        if self.waiting.get(hash).is_some_and(|w| w.peer == *peer) { self.waiting.remove(hash) } else { None }
    }

    /// Blocks that waited too long, with their senders (to be fetched whole).
    pub fn expire(&mut self, now: Instant) -> Vec<(Hash, NodeId)> {
        let late: Vec<Hash> = self.waiting.iter().filter(|(_, w)| now.saturating_duration_since(w.since) >= BLOCK_TXS_TIMEOUT).map(|(h, _)| *h).collect();
        late.into_iter().filter_map(|h| self.waiting.remove(&h).map(|w| (h, w.peer))).collect()
    }

    /// A peer left: its blocks are dropped (the tip comes again from another peer's
    /// announcement or status).
    pub fn peer_gone(&mut self, peer: &NodeId) {
        self.waiting.retain(|_, w| w.peer != *peer);
    }
}

#[cfg(test)]
mod tests {
    use cairn_chain::compact::CompactBlock;
    use cairn_chain::{ChainSpec, PublicKey};

    use super::*;

    fn partial(height: u64) -> (Hash, Partial) {
        let mut block = ChainSpec::devnet().genesis();
        block.header.height = height;
        let c = CompactBlock::of(&block, 0);
        (block.hash(), Partial::rebuild(&c, std::iter::empty()))
    }

    #[test]
    fn waits_are_taken_only_from_their_sender_and_expire() {
        let t0 = Instant::now();
        let (a, b) = (PublicKey([1; 32]), PublicKey([2; 32]));
        let mut r = Rebuilding::default();
        let (h1, p1) = partial(1);
        let (h2, p2) = partial(2);
        assert_eq!(r.wait(h1, a, p1, t0), None);
        assert_eq!(r.wait(h2, b, p2, t0 + Duration::from_secs(1)), None);
        assert!(r.contains(&h1));
        assert!(r.take(&h1, &b).is_none(), "not from the peer asked");
        assert!(r.take(&h1, &a).is_some());
        assert!(!r.contains(&h1));
        assert_eq!(r.expire(t0 + BLOCK_TXS_TIMEOUT), vec![]);
        assert_eq!(r.expire(t0 + Duration::from_secs(1) + BLOCK_TXS_TIMEOUT), vec![(h2, b)]);
    }

    #[test]
    fn the_oldest_is_pushed_out_beyond_the_bound_and_a_leaving_peer_takes_its_own() {
        let t0 = Instant::now();
        let (a, b) = (PublicKey([1; 32]), PublicKey([2; 32]));
        let mut r = Rebuilding::default();
        let mut first = None;
        for i in 0..MAX_PENDING as u64 {
            let (h, p) = partial(i + 1);
            first.get_or_insert(h);
            assert_eq!(r.wait(h, a, p, t0 + Duration::from_millis(i)), None);
        }
        let (h, p) = partial(100);
        assert_eq!(r.wait(h, b, p, t0 + Duration::from_secs(1)), Some((first.unwrap(), a)));
        r.peer_gone(&a);
        assert!(r.contains(&h));
        assert_eq!(r.waiting.len(), 1);
    }
}
