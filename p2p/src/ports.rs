//! What the p2p layer needs from the rest of the node, as traits: the chain's identity and
//! tip ([`ChainInfo`]), and somewhere to persist the address book and bans ([`PeerStore`]).
//! The node implements them over its chain service and RocksDB store; this crate never sees
//! either.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use cairn_chain::compact::{CompactBlock, Partial};
use cairn_chain::{Block, BlockError, CheckResult, CheckedBlock, Hash, Header, Transaction, TxError, Work};
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

/// A boxed future, so [`ChainInfo`] stays object-safe.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What submitting a block did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Submitted {
    /// It is the new tip (possibly after a reorg).
    Connected,
    /// Stored on a side branch.
    SideChain,
    /// Already known.
    AlreadyKnown,
}

/// The chain as the p2p layer sees it. Only identity and tip are required; the block and
/// transaction methods default to "nothing here" (a node that only handshakes).
pub trait ChainInfo: Send + Sync + 'static {
    /// The chain ID of the loaded spec.
    fn chain_id(&self) -> String;
    /// The genesis hash.
    fn genesis(&self) -> Hash;
    /// The current best tip.
    fn tip(&self) -> TipSummary;
    /// Most transactions in a block (bounds decoding).
    fn max_block_txs(&self) -> usize {
        10_000
    }
    /// Largest encoded block the chain allows (bounds frames after the handshake).
    fn max_block_bytes(&self) -> usize {
        1 << 20
    }
    /// Cumulative work of the chain ending at a stored block (any branch), if it is stored.
    fn total_work_of(&self, _hash: Hash) -> BoxFuture<Option<Work>> {
        Box::pin(async { None })
    }
    /// A receiver that wakes on every tip change.
    fn watch_tip(&self) -> Option<tokio::sync::watch::Receiver<TipSummary>> {
        None
    }
    /// A receiver of transactions newly accepted into the mempool, in batches.
    fn new_transactions(&self) -> Option<tokio::sync::broadcast::Receiver<std::sync::Arc<[Transaction]>>> {
        None
    }
    /// Up to `max` pending transactions, each sender's in nonce order (sent to a peer that
    /// just connected, so mempools reconcile).
    fn pending_transactions(&self, _max: usize) -> BoxFuture<Vec<Transaction>> {
        Box::pin(async { Vec::new() })
    }
    /// IDs of up to `max` pending transactions past the first `skip`, each sender's in nonce
    /// order (announced to a peer that just connected, and in turns to every peer, so
    /// mempools reconcile).
    fn pending_ids(&self, _skip: usize, _max: usize) -> BoxFuture<Vec<Hash>> {
        Box::pin(async { Vec::new() })
    }
    /// The pending transactions among `ids` (in the order asked; those not pending are left
    /// out).
    fn pending_by_ids(&self, _ids: Vec<Hash>) -> BoxFuture<Vec<Transaction>> {
        Box::pin(async { Vec::new() })
    }
    /// Those of `ids` worth fetching: not pending, not known to be invalid. The default wants
    /// none (a node without a mempool fetches nothing).
    fn lacking_txs(&self, _ids: Vec<Hash>) -> BoxFuture<Vec<Hash>> {
        Box::pin(async { Vec::new() })
    }
    /// Rebuilds a compact block from the mempool (see [`cairn_chain::compact`]). `None` when
    /// there is no mempool: the caller fetches the whole block.
    fn rebuild(&self, _compact: CompactBlock) -> BoxFuture<Option<Partial>> {
        Box::pin(async { None })
    }
    /// The compact form of a stored block, salted with `nonce` (`None` if not stored).
    fn compact_block(&self, _hash: Hash, _nonce: u64) -> BoxFuture<Option<CompactBlock>> {
        Box::pin(async { None })
    }
    /// A block by hash (any branch).
    fn block(&self, _hash: Hash) -> BoxFuture<Option<Block>> {
        Box::pin(async { None })
    }
    /// The best-chain block at a height.
    fn block_at(&self, _height: u64) -> BoxFuture<Option<Block>> {
        Box::pin(async { None })
    }
    /// Whether a block is stored.
    fn has_block(&self, _hash: Hash) -> BoxFuture<bool> {
        Box::pin(async { false })
    }
    /// Validates and stores a block.
    fn submit_block(&self, _block: Block) -> BoxFuture<Result<Submitted, BlockError>> {
        Box::pin(async { Err(BlockError::Store("no chain".into())) })
    }
    /// Checks what a header alone can show (version, proof, allowed target, timestamp drift)
    /// before its body is fetched. The default checks the proof only.
    fn check_header(&self, header: &Header) -> Result<(), BlockError> {
        if header.target.is_met_by(&header.hash()) { Ok(()) } else { Err(BlockError::BadProof) }
    }
    /// Runs the stateless checks (proof, Merkle root, signatures) of `blocks` in parallel off
    /// the async runtime; results in input order.
    fn check_blocks(&self, blocks: Vec<Block>) -> BoxFuture<Vec<CheckResult>> {
        Box::pin(async move { blocks.into_iter().map(|b| Err(Box::new((b.hash(), BlockError::Store("no chain".into()))))).collect() })
    }
    /// Stores a run of checked blocks in order, committing the run at once; stops at the
    /// first failure (results cover the blocks tried).
    fn submit_checked(&self, _blocks: Vec<CheckedBlock>) -> BoxFuture<Vec<Result<Submitted, BlockError>>> {
        Box::pin(async { vec![Err(BlockError::Store("no chain".into()))] })
    }
    /// Validates a transaction into the mempool.
    fn submit_tx(&self, _tx: Transaction) -> BoxFuture<Result<(), TxError>> {
        Box::pin(async { Err(TxError::Store("no chain".into())) })
    }
    /// Validates transactions into the mempool together (cheap checks, then signatures in
    /// parallel); results in input order. The default submits them one by one.
    fn submit_txs(&self, txs: Vec<Transaction>) -> BoxFuture<Vec<Result<(), TxError>>> {
        let each: Vec<BoxFuture<Result<(), TxError>>> = txs.into_iter().map(|tx| self.submit_tx(tx)).collect();
        Box::pin(async move {
            let mut out = Vec::with_capacity(each.len());
            for f in each {
                out.push(f.await);
            }
            out
        })
    }
    /// Block locator of the best chain: tip, then hashes at exponentially growing distances,
    /// ending with genesis.
    fn locator(&self) -> BoxFuture<Vec<Hash>> {
        Box::pin(async { Vec::new() })
    }
    /// Up to `max` best-chain headers after the first locator hash on our best chain.
    fn headers_after(&self, _locator: Vec<Hash>, _max: usize) -> BoxFuture<Vec<Header>> {
        Box::pin(async { Vec::new() })
    }
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

/// What a ban covers: one node (its key) or an address (one IP, or a CIDR network).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BanTarget {
    /// A node ID, whatever address it comes from.
    #[serde(rename = "node_id")]
    Node(NodeId),
    /// Every connection from this network (a single IP is a /32 or /128).
    #[serde(rename = "ip")]
    Net(ipnet::IpNet),
}

impl BanTarget {
    /// Parses a node ID (64 hex digits), an IP address or a CIDR network.
    pub fn parse(s: &str) -> Result<BanTarget, String> {
        let s = s.trim();
        if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return s.parse::<NodeId>().map(BanTarget::Node).map_err(|e| format!("node ID {s:?}: {e}"));
        }
        crate::netgroup::parse(s).map(BanTarget::Net).map_err(|e| format!("{e}, or a node ID (64 hex digits)"))
    }

    /// The key it is stored under.
    pub fn key(&self) -> Vec<u8> {
        match self {
            BanTarget::Node(id) => id.0.to_vec(),
            BanTarget::Net(net) => format!("ip:{net}").into_bytes(),
        }
    }
}

impl std::fmt::Display for BanTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BanTarget::Node(id) => write!(f, "{id}"),
            BanTarget::Net(net) => f.write_str(&crate::netgroup::display(net)),
        }
    }
}

/// A ban. Stored as JSON: `{"node_id": ..., "until_ms", "reason"}` or `{"ip": "10.0.0.7/32", ...}`
/// (bans stored before address bans existed read as node bans).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ban {
    /// Whom it covers.
    #[serde(flatten)]
    pub target: BanTarget,
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
    fn remove_ban(&self, target: &BanTarget) -> Result<(), PeerStoreError>;
}
