//! The devnet as the dashboard's network view shows it: every node (height, tip, peers,
//! partition group), the block tree across the nodes (forks, and which branch each node
//! follows), and the recent rates.
//!
//! The runner alone builds it, once a second and after each command, and publishes it on a
//! `watch` channel ([`Publisher`]); every devnet node's RPC holds a receiver
//! ([`NetworkFeed`]) and serves the latest at `GET /devnet/network`. Nothing is shared but the
//! channel, and every part is bounded: at most [`crate::devnet::MAX_NODES`] nodes, the
//! [`TREE_DEPTH`] heights below the highest tip ([`MAX_TREE_BLOCKS`] blocks at most), the
//! last [`RATE_HISTORY`] rate samples.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use cairn_chain::Hash;
use cairn_p2p::NodeId;
use serde::Serialize;
use tokio::sync::watch;

use crate::chain_service::ChainHandle;

/// Heights of the block tree kept below the highest tip: a partition of a few minutes at a
/// 1 s block time still shows where it forked.
pub const TREE_DEPTH: u64 = 500;
/// Most blocks in the tree (forks multiply blocks per height); past it the lowest go first.
pub const MAX_TREE_BLOCKS: usize = 2_000;
/// Most blocks read from one node's store in one refresh: a node that jumped far (a long
/// catch-up) is recorded down to this depth, the rest of its branch is the others'.
const MAX_WALK: usize = 100;
/// Rate samples kept (one a refresh, so two minutes at one a second).
pub const RATE_HISTORY: usize = 120;

/// What each devnet node's RPC reads.
pub type NetworkFeed = watch::Receiver<Arc<NetworkView>>;

/// The whole devnet at one moment (the JSON of `GET /devnet/network`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct NetworkView {
    /// Milliseconds since the devnet started.
    pub uptime_ms: u64,
    /// Every node, running or stopped, by number.
    pub nodes: Vec<NodeView>,
    /// The partition's groups of node numbers, or `null` when whole.
    pub partition: Option<Vec<Vec<usize>>>,
    /// Whether the built-in farmers run.
    pub farming: bool,
    /// The block tree, lowest height first.
    pub blocks: Vec<TreeBlock>,
    /// Recent rates, oldest first.
    pub rates: Vec<RateSample>,
}

/// One node.
#[derive(Clone, Debug, Serialize)]
pub struct NodeView {
    /// 1-based, as the commands name it.
    pub number: usize,
    /// Its node name (`node<N>`).
    pub name: String,
    /// Its node ID, once it has run.
    pub node_id: Option<NodeId>,
    /// Its RPC URL (its own dashboard).
    pub rpc: String,
    /// Whether it runs.
    pub up: bool,
    /// Its partition group (1-based), while partitioned.
    pub group: Option<usize>,
    /// Best height (running nodes).
    pub height: Option<u64>,
    /// Best block hash (running nodes).
    pub tip: Option<Hash>,
    /// Numbers of the devnet nodes it is connected to.
    pub peers: Vec<usize>,
    /// Catching up from a peer.
    pub syncing: bool,
    /// Pending transactions.
    pub mempool: u64,
}

/// A block of the tree.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TreeBlock {
    /// Its hash.
    pub hash: Hash,
    /// Its parent's hash.
    pub prev: Hash,
    /// Height.
    pub height: u64,
    /// Header timestamp, ms.
    pub timestamp: u64,
    /// Transactions in it.
    pub txs: usize,
    /// Numbers of the running nodes whose best chain holds it (empty: a stale branch).
    pub best_of: Vec<usize>,
}

/// Rates at one refresh.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct RateSample {
    /// Milliseconds since the devnet started.
    pub t_ms: u64,
    /// New best-chain blocks a second.
    pub blocks_per_s: f64,
    /// Confirmed transactions a second.
    pub txs_per_s: f64,
}

/// A block as the tree keeps it.
#[derive(Clone, Debug)]
struct Entry {
    prev: Hash,
    height: u64,
    timestamp: u64,
    txs: usize,
}

/// The blocks the devnet's nodes have had as their best chains lately, forks included.
#[derive(Debug, Default)]
pub struct BlockTree {
    blocks: HashMap<Hash, Entry>,
    top: u64,
}

impl BlockTree {
    /// Records `tip` and its ancestors not yet recorded, read from `chain` (at most
    /// [`MAX_WALK`] blocks, never below the tree's depth).
    pub async fn record(&mut self, chain: &ChainHandle, tip: Hash) {
        let mut next = tip;
        for _ in 0..MAX_WALK {
            if self.blocks.contains_key(&next) {
                break;
            }
            let Ok(Some(block)) = chain.block(next).await else { break };
            let h = &block.header;
            self.insert(next, Entry { prev: h.prev_hash, height: h.height, timestamp: h.timestamp, txs: block.transactions.len() });
            if h.height == 0 || h.height + TREE_DEPTH <= self.top {
                break;
            }
            next = h.prev_hash;
        }
        self.prune();
    }

    fn insert(&mut self, hash: Hash, entry: Entry) {
        self.top = self.top.max(entry.height);
        self.blocks.insert(hash, entry);
    }

    /// Drops what fell below [`TREE_DEPTH`], then the lowest heights past [`MAX_TREE_BLOCKS`].
    fn prune(&mut self) {
        let floor = self.top.saturating_sub(TREE_DEPTH);
        self.blocks.retain(|_, e| e.height > floor || self.top < TREE_DEPTH);
        if self.blocks.len() > MAX_TREE_BLOCKS {
            let mut heights: Vec<u64> = self.blocks.values().map(|e| e.height).collect();
            heights.sort_unstable();
            let cut = heights[self.blocks.len() - MAX_TREE_BLOCKS];
            self.blocks.retain(|_, e| e.height > cut);
        }
    }

    /// The tree, lowest height first (then by hash), each block with the nodes whose best
    /// chain (from `tips`: node number, tip hash) holds it.
    pub fn view(&self, tips: &[(usize, Hash)]) -> Vec<TreeBlock> {
        let mut best_of: HashMap<Hash, Vec<usize>> = HashMap::new();
        for &(number, tip) in tips {
            let mut next = tip;
            // Each step goes one height down, so this ends within the tree's size.
            while let Some(e) = self.blocks.get(&next) {
                best_of.entry(next).or_default().push(number);
                next = e.prev;
            }
        }
        let mut out: Vec<TreeBlock> = self
            .blocks
            .iter()
            .map(|(hash, e)| TreeBlock {
                hash: *hash,
                prev: e.prev,
                height: e.height,
                timestamp: e.timestamp,
                txs: e.txs,
                best_of: best_of.remove(hash).unwrap_or_default(),
            })
            .collect();
        out.sort_by(|a, b| a.height.cmp(&b.height).then(a.hash.0.cmp(&b.hash.0)));
        out
    }

    /// Blocks held.
    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }
}

/// The runner's end: the tree, the rate history and the channel.
#[derive(Debug)]
pub struct Publisher {
    tree: BlockTree,
    rates: VecDeque<RateSample>,
    sender: watch::Sender<Arc<NetworkView>>,
}

impl Default for Publisher {
    fn default() -> Self {
        Publisher { tree: BlockTree::default(), rates: VecDeque::with_capacity(RATE_HISTORY), sender: watch::Sender::new(Arc::default()) }
    }
}

impl Publisher {
    /// A receiver for a node's RPC.
    pub fn feed(&self) -> NetworkFeed {
        self.sender.subscribe()
    }

    /// The tree, to record tips into.
    pub fn tree_mut(&mut self) -> &mut BlockTree {
        &mut self.tree
    }

    /// Adds a rate sample (the oldest goes past [`RATE_HISTORY`]).
    pub fn sample(&mut self, s: RateSample) {
        if self.rates.len() == RATE_HISTORY {
            self.rates.pop_front();
        }
        self.rates.push_back(s);
    }

    /// Publishes `view` with the tree and the rates filled in.
    pub fn publish(&self, mut view: NetworkView) {
        let tips: Vec<(usize, Hash)> = view.nodes.iter().filter_map(|n| Some((n.number, n.tip?))).collect();
        view.blocks = self.tree.view(&tips);
        view.rates = self.rates.iter().copied().collect();
        self.sender.send_replace(Arc::new(view));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(n: u64) -> Hash {
        let mut b = [0u8; 32];
        b[..8].copy_from_slice(&n.to_be_bytes());
        Hash(b)
    }

    /// A chain of `len` blocks on `from` (at `height`), hashes from `base`.
    fn chain(tree: &mut BlockTree, from: Hash, height: u64, base: u64, len: u64) -> Hash {
        let mut prev = from;
        for i in 0..len {
            let hash = h(base + i);
            tree.insert(hash, Entry { prev, height: height + 1 + i, timestamp: 0, txs: 0 });
            prev = hash;
        }
        tree.prune();
        prev
    }

    #[test]
    fn a_fork_shows_which_nodes_follow_which_branch() {
        let mut tree = BlockTree::default();
        let common = chain(&mut tree, h(0), 0, 1, 3);
        let a = chain(&mut tree, common, 3, 100, 2);
        let b = chain(&mut tree, common, 3, 200, 3);
        let v = tree.view(&[(1, a), (2, b), (3, b)]);
        assert_eq!(v.len(), 8);
        let of = |x: u64| v.iter().find(|t| t.hash == h(x)).unwrap().best_of.clone();
        assert_eq!(of(1), vec![1, 2, 3]);
        assert_eq!(of(101), vec![1]);
        assert_eq!(of(202), vec![2, 3]);
        // After the heal every node follows b: a's branch is stale.
        let v = tree.view(&[(1, b), (2, b), (3, b)]);
        assert!(v.iter().filter(|t| t.height > 3 && t.hash.0[7] < 200).all(|t| t.best_of.is_empty()));
        assert!(v.windows(2).all(|w| w[0].height <= w[1].height));
    }

    #[test]
    fn the_tree_is_bounded() {
        let mut tree = BlockTree::default();
        let tip = chain(&mut tree, h(0), 0, 1, TREE_DEPTH + 300);
        assert_eq!(tree.len() as u64, TREE_DEPTH);
        assert!(tree.blocks.values().all(|e| e.height > 300));
        // Many forks of the same heights: the count bound holds too.
        for f in 0..20 {
            chain(&mut tree, h(f * 1000 + 10_000), 700, f * 1000 + 10_000, 100);
        }
        assert!(tree.len() <= MAX_TREE_BLOCKS && tree.len() > MAX_TREE_BLOCKS - 100, "{}", tree.len());
        let v = tree.view(&[(1, tip)]);
        assert!(v.iter().any(|b| b.hash == tip && b.best_of == [1]));
    }

    #[test]
    fn the_rate_history_is_bounded() {
        let mut p = Publisher::default();
        for i in 0..RATE_HISTORY as u64 + 10 {
            p.sample(RateSample { t_ms: i, blocks_per_s: 1.0, txs_per_s: 0.0 });
        }
        let feed = p.feed();
        p.publish(NetworkView::default());
        let v = feed.borrow().clone();
        assert_eq!(v.rates.len(), RATE_HISTORY);
        assert_eq!(v.rates[0].t_ms, 10);
    }
}
