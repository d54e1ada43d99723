//! `cairn devnet`: a whole local network in one process — N nodes on loopback joined by
//! pinned `--peers`, a farmer, an optional transaction load, a live status, and stdin commands
//! to stop, restart, add, partition and heal nodes.
//!
//! # Design
//! One task, the [`runner`], owns everything: the node [`slot`]s (each a [`crate::Node`]
//! started in-process, its data dir and its ports), the current [`partition`], the
//! [`workers`] (built-in farmers and the [`load`] generator, the only other holders of a
//! node's `ChainHandle`), and the [`screen`]. Commands ([`commands`], run by `control`)
//! arrive on a bounded channel and run one at a time between status refreshes ([`status`]),
//! so no state is shared and nothing needs a lock. The runner also publishes the
//! dashboard's [`network`] view on a `watch` channel each node's RPC reads.
//!
//! # Correctness
//! A node's store closes only once every `ChainHandle` clone is gone, and a restarted node
//! must reopen it: workers are stopped (cancelled and joined) before any node stops, and
//! re-planned afterwards.
//!
//! Devnet nodes run with mDNS off and no seed peers: they are joined by `--peers` only, so two
//! devnets on one machine (or one LAN) never merge.

pub mod commands;
mod control;
pub mod load;
pub mod network;
pub mod partition;
pub mod ports;
pub mod runner;
pub mod screen;
pub mod slot;
pub mod status;
pub mod workers;

use std::path::PathBuf;

pub use runner::run;

use crate::NodeError;
use crate::config::ConfigError;

/// Nodes started when `--nodes` is not given.
pub const DEFAULT_NODES: usize = 3;
/// Most nodes in one devnet (started plus added): every node runs in this process, and past a
/// few dozen a laptop spends its time on connection upkeep rather than on the chain.
pub const MAX_NODES: usize = 32;
/// Highest `--tx-rate`. The load is signed on all cores and submitted in batches; whatever the
/// nodes (or the chain's blocks: `config/loadtest.toml` carries 25,000 a second) cannot take is
/// reported as a lower achieved rate, never queued.
pub const MAX_TX_RATE: u32 = 100_000;
/// Shortest `--block-time`, ms.
pub const MIN_BLOCK_TIME_MS: u64 = 100;
/// Longest `--block-time`, ms (an hour).
pub const MAX_BLOCK_TIME_MS: u64 = 3_600_000;

/// What `cairn devnet` was asked for.
#[derive(Debug, Clone)]
pub struct DevnetOptions {
    /// Nodes to start (1..=[`MAX_NODES`]).
    pub nodes: usize,
    /// Run the built-in farmer (one per partition group), paying the first dev account.
    pub farm: bool,
    /// Transfers a second (from funded senders to fresh addresses), if any.
    pub tx_rate: Option<u32>,
    /// The chain spec file every node runs [default: the embedded devnet spec].
    pub chain: Option<PathBuf>,
    /// Overrides the spec's `block_time_ms` on every node (a different chain: the genesis hash
    /// commits to it).
    pub block_time_ms: Option<u64>,
    /// Keep the data dirs here (`DIR/node1`, …) instead of a temporary dir removed at exit.
    pub dir: Option<PathBuf>,
    /// Node k uses P2P port `P + 2(k-1)` and RPC port `P + 2(k-1) + 1`; without it ports are
    /// picked free and kept across a node's restarts.
    pub base_port: Option<u16>,
}

impl Default for DevnetOptions {
    fn default() -> Self {
        DevnetOptions { nodes: DEFAULT_NODES, farm: false, tx_rate: None, chain: None, block_time_ms: None, dir: None, base_port: None }
    }
}

impl DevnetOptions {
    /// Checks the ranges before anything starts.
    pub fn validate(&self) -> Result<(), DevnetError> {
        if !(1..=MAX_NODES).contains(&self.nodes) {
            return Err(DevnetError::NodeCount(self.nodes));
        }
        if let Some(r) = self.tx_rate
            && !(1..=MAX_TX_RATE).contains(&r)
        {
            return Err(DevnetError::TxRate(r));
        }
        if let Some(ms) = self.block_time_ms
            && !(MIN_BLOCK_TIME_MS..=MAX_BLOCK_TIME_MS).contains(&ms)
        {
            return Err(DevnetError::BlockTime(ms));
        }
        if let Some(base) = self.base_port
            && ports::planned(base, self.nodes).is_none()
        {
            return Err(DevnetError::PortRange { base, nodes: self.nodes });
        }
        Ok(())
    }
}

/// Why a devnet could not start. Every message is one line and already names its cause (the
/// causes are not chained as `source`, so `{:#}` does not repeat them).
#[derive(Debug, thiserror::Error)]
pub enum DevnetError {
    /// `--nodes` out of range.
    #[error("--nodes {0}: a devnet has 1 to {MAX_NODES} nodes")]
    NodeCount(usize),
    /// `--tx-rate` out of range.
    #[error("--tx-rate {0}: must be 1 to {MAX_TX_RATE} transactions a second")]
    TxRate(u32),
    /// `--block-time` out of range.
    #[error("--block-time {0}: must be {MIN_BLOCK_TIME_MS} to {MAX_BLOCK_TIME_MS} ms")]
    BlockTime(u64),
    /// `--base-port` leaves no room for every node's two ports.
    #[error("--base-port {base}: {nodes} nodes need the {} ports from {base} up, which must lie in 1..=65535", 2 * nodes)]
    PortRange {
        /// The base port.
        base: u16,
        /// Nodes asked for.
        nodes: usize,
    },
    /// A planned port is taken.
    #[error("port {port} ({what} of node {node}) is in use: {error}")]
    PortInUse {
        /// The port.
        port: u16,
        /// `UDP, P2P` or `TCP, RPC`.
        what: &'static str,
        /// The node (1-based).
        node: usize,
        /// The OS error.
        error: std::io::Error,
    },
    /// The devnet's directory could not be made.
    #[error("devnet dir {path}: {error}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        error: std::io::Error,
    },
    /// A node's configuration could not be built.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A node failed to start.
    #[error("node {number}: {error}")]
    Node {
        /// The node (1-based).
        number: usize,
        /// Why.
        error: NodeError,
    },
}
