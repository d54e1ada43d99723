//! What the p2p layer needs from the rest of the node, as traits: the chain's identity and
//! tip ([`ChainInfo`]), and somewhere to persist the address book and bans ([`PeerStore`]).
//! The node implements them over its chain service and RocksDB store; this crate never sees
//! either.

use std::net::SocketAddr;

use cairn_chain::{Hash, Work};
use serde::{Deserialize, Serialize};

use crate::identity::NodeId;

/// The best tip, as the handshake and status messages show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TipSummary {
    /// Height.
    pub height: u64,
    /// Hash.
    pub hash: Hash,
    /// Cumulative work.
    pub total_work: Work,
}

/// The chain as the p2p layer sees it.
pub trait ChainInfo: Send + Sync + 'static {
    /// The chain ID of the loaded spec.
    fn chain_id(&self) -> String;
    /// The genesis hash.
    fn genesis(&self) -> Hash;
    /// The current best tip.
    fn tip(&self) -> TipSummary;
}

/// An address-book entry worth keeping across restarts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownPeer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The key it proved last time (pinned: a different key is refused), if it ever connected.
    pub node_id: Option<NodeId>,
    /// When it was last connected, ms since the epoch (0 = never).
    pub last_seen_ms: u64,
}

/// A ban.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ban {
    /// The banned node.
    pub node_id: NodeId,
    /// Until when, ms since the epoch.
    pub until_ms: u64,
    /// Why.
    pub reason: String,
}

/// A persistence failure (logged; the p2p layer keeps running on its in-memory state).
#[derive(Debug, thiserror::Error)]
#[error("peer store: {0}")]
pub struct PeerStoreError(pub String);

/// Persistence for the address book and bans. Methods block (they may hit the disk): the p2p
/// layer calls them from `spawn_blocking`.
pub trait PeerStore: Send + Sync + 'static {
    /// Up to `max` saved peers.
    fn load_peers(&self, max: usize) -> Result<Vec<KnownPeer>, PeerStoreError>;
    /// Saves (or updates) a peer.
    fn save_peer(&self, peer: &KnownPeer) -> Result<(), PeerStoreError>;
    /// Forgets a peer.
    fn remove_peer(&self, addr: &SocketAddr) -> Result<(), PeerStoreError>;
    /// Every saved ban.
    fn load_bans(&self) -> Result<Vec<Ban>, PeerStoreError>;
    /// Saves a ban.
    fn save_ban(&self, ban: &Ban) -> Result<(), PeerStoreError>;
    /// Lifts a ban.
    fn remove_ban(&self, node_id: &NodeId) -> Result<(), PeerStoreError>;
}
