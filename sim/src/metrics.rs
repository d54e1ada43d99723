//! What a run measures ([`Metrics`], filled by the nodes and the world as things happen) and
//! what it reports ([`Figures`]: propagation, stale rate, bytes).

use std::collections::{BTreeMap, HashMap, HashSet};

use cairn_chain::Hash;

use crate::engine::{MS, Time};
use crate::world::Sim;

/// What the run measured.
#[derive(Default)]
pub struct Metrics {
    /// Bytes sent by message kind (frames: message plus 4-byte length prefix).
    pub bytes_by_kind: BTreeMap<&'static str, u64>,
    /// Messages sent by kind.
    pub msgs_by_kind: BTreeMap<&'static str, u64>,
    /// When each node first stored each block.
    pub seen: HashMap<Hash, Vec<(usize, Time)>>,
    /// Blocks made: hash, maker, time, valid.
    pub made: Vec<(Hash, usize, Time, bool)>,
    /// Bans: by whom, of whom, why.
    pub bans: Vec<(usize, usize, &'static str)>,
    /// Misbehaviours judged, by code.
    pub misbehaviours: BTreeMap<&'static str, u64>,
    /// Other counters (compact outcomes, duplicates).
    pub counters: BTreeMap<&'static str, u64>,
    /// Tip changes.
    pub tip_changes: u64,
}

impl Metrics {
    /// A message went out.
    pub fn sent(&mut self, kind: &'static str, bytes: usize) {
        *self.bytes_by_kind.entry(kind).or_default() += bytes as u64;
        *self.msgs_by_kind.entry(kind).or_default() += 1;
    }
    /// A node stored a block.
    pub fn stored(&mut self, hash: Hash, node: usize, at: Time) {
        self.seen.entry(hash).or_default().push((node, at));
    }
    /// A block was made.
    pub fn made(&mut self, hash: Hash, maker: usize, at: Time, valid: bool) {
        self.made.push((hash, maker, at, valid));
    }
    /// A peer was judged.
    pub fn misbehaved(&mut self, code: &'static str) {
        *self.misbehaviours.entry(code).or_default() += 1;
    }
    /// A peer was banned.
    pub fn banned(&mut self, by: usize, whom: usize, why: &'static str) {
        self.bans.push((by, whom, why));
    }
    /// Counts an event.
    pub fn count(&mut self, what: &'static str) {
        *self.counters.entry(what).or_default() += 1;
    }
}

/// The message kinds of block relay (announcements, catch-up and compact rebuilds).
pub const BLOCK_RELAY: [&str; 11] =
    ["new_block", "compact_block", "get_block", "block_data", "get_block_txs", "block_txs", "get_headers", "headers", "get_blocks", "blocks", "not_found"];

/// What [`Sim::figures`] measured.
#[derive(Clone, Debug, Default)]
pub struct Figures {
    /// Blocks made in the window (honest).
    pub blocks: usize,
    /// Of them, not on the final best chain.
    pub stale: usize,
    /// Blocks on the best chain that reached every running node (the propagation figures'
    /// sample).
    pub measured: usize,
    /// Blocks on the best chain that some running node still lacked at the end.
    pub unreached: usize,
    /// Mean time to 50, 90, 99 and 100% of the running nodes (ms).
    pub propagation_ms: [f64; 4],
    /// Block-relay bytes sent per node per block made.
    pub relay_bytes_per_node_per_block: f64,
    /// All bytes sent per node per block made.
    pub all_bytes_per_node_per_block: f64,
}

impl Sim {
    /// Measures blocks made in `[from, to)`: propagation to the running nodes, stale rate,
    /// and bytes.
    pub fn figures(&self, from: Time, to: Time) -> Figures {
        let Some(best) = self.best_node() else { return Figures::default() };
        let chain = &self.nodes[best].chain;
        let height = chain.tip().height;
        let on_best: HashSet<Hash> = (0..=height).filter_map(|h| chain.hash_at(h)).collect();
        let population = self.honest_up().len().max(1);
        let mut made = 0usize;
        let mut stale = 0usize;
        let mut sums = [0f64; 4];
        let mut measured = 0usize;
        let mut unreached = 0usize;
        for (hash, _, at, valid) in &self.w.metrics.made {
            if !*valid || *at < from || *at >= to {
                continue;
            }
            made += 1;
            if !on_best.contains(hash) {
                stale += 1;
                continue;
            }
            let mut delays: Vec<Time> = self.w.metrics.seen.get(hash).map(|v| v.iter().map(|(_, t)| t - at).collect()).unwrap_or_default();
            delays.sort_unstable();
            let mut row = [0f64; 4];
            let mut complete = true;
            for (k, p) in [0.5, 0.9, 0.99, 1.0].iter().enumerate() {
                let idx = ((p * population as f64).ceil() as usize).clamp(1, population) - 1;
                match delays.get(idx) {
                    Some(d) => row[k] = *d as f64 / MS as f64,
                    None => complete = false,
                }
            }
            if complete {
                measured += 1;
                for k in 0..4 {
                    sums[k] += row[k];
                }
            } else {
                unreached += 1;
            }
        }
        let m = measured.max(1) as f64;
        let relay: u64 = self.w.metrics.bytes_by_kind.iter().filter(|(k, _)| BLOCK_RELAY.contains(k)).map(|(_, v)| *v).sum();
        let all: u64 = self.w.metrics.bytes_by_kind.values().sum();
        let total_made = self.w.metrics.made.iter().filter(|m| m.3).count().max(1) as f64;
        let nodes = self.nodes.len().max(1) as f64;
        Figures {
            blocks: made,
            stale,
            measured,
            unreached,
            propagation_ms: sums.map(|s| s / m),
            relay_bytes_per_node_per_block: relay as f64 / nodes / total_made,
            all_bytes_per_node_per_block: all as f64 / nodes / total_made,
        }
    }
}
