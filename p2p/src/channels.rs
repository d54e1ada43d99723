//! The vocabulary of the actor map: every message the actors send each other, the handles
//! they send it through, and what they publish. Nothing here runs or owns state; the actors
//! (`manager`, `sync`, the peer and handshake tasks) import it, and it imports none of them,
//! so the module graph stays acyclic.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use cairn_chain::compact::CompactBlock;
use cairn_chain::{Block, Hash, Header, Transaction, Work};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::addrbook::AddressView;
use crate::admission::Decision;
use crate::config::{MANAGER_INBOX, SYNC_INBOX};
use crate::handshake::Refusal;
use crate::identity::NodeId;
use crate::ports::{Ban, BanTarget};
use crate::verdict::Misbehaviour;
use crate::wire::{Message, PeerAddress, RejectReason};

/// Which side opened a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// They dialled us.
    Inbound,
    /// We dialled them.
    Outbound,
}

impl Direction {
    /// `inbound` / `outbound`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

/// Why a dial did not produce a peer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConnectError {
    /// A handshake refusal (by us or by the peer).
    #[error("{}: {detail}{}", reason.code(), if *by_peer { " (refused by the peer)" } else { "" })]
    Refused {
        /// Why.
        reason: RejectReason,
        /// Both values.
        detail: String,
        /// Whether the peer refused us (else we refused it).
        by_peer: bool,
    },
    /// The address is malformed or does not resolve.
    #[error("invalid address: {0}")]
    BadAddress(String),
    /// No QUIC connection could be made.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// The handshake did not finish in time.
    #[error("handshake timed out")]
    Timeout,
    /// Already dialling this address.
    #[error("already dialling {0}")]
    InProgress(SocketAddr),
}

impl ConnectError {
    /// Stable code (RPC error code).
    pub fn code(&self) -> &'static str {
        match self {
            ConnectError::Refused { reason, .. } => reason.code(),
            ConnectError::BadAddress(_) => "invalid_address",
            ConnectError::Unreachable(_) => "unreachable",
            ConnectError::Timeout => "handshake_timeout",
            ConnectError::InProgress(_) => "dial_in_progress",
        }
    }
}

/// A connected peer as the RPC shows it.
#[derive(Clone, Debug)]
pub struct PeerView {
    /// Node ID.
    pub node_id: NodeId,
    /// Remote socket address.
    pub address: SocketAddr,
    /// Address it accepts connections on.
    pub listen_address: SocketAddr,
    /// Who dialled.
    pub direction: Direction,
    /// When the handshake completed (ms).
    pub connected_since_ms: u64,
    /// Its best height, as last heard.
    pub best_height: u64,
    /// Bytes we sent it.
    pub bytes_sent: u64,
    /// Bytes it sent us.
    pub bytes_received: u64,
    /// Blocks it served to our catch-up sync.
    pub blocks_served: u64,
    /// When we last heard from it (ms).
    pub last_seen_ms: u64,
    /// Misbehaviour score.
    pub score: u32,
    /// Last measured ping round trip (ms), if measured.
    pub ping_ms: Option<u64>,
    /// Its software.
    pub user_agent: String,
    /// Its human-readable name, read from its user agent ([`crate::name`]).
    pub name: Option<String>,
}

/// What other tasks can ask of a peer task.
#[derive(Debug)]
pub enum PeerCmd {
    /// Send a message.
    Send(Message),
    /// Close the connection with this code and reason (the sync task, after a judgement that
    /// ends the connection without a ban).
    Disconnect(RejectReason, &'static str),
}

/// Live counters of one peer: written by its task, read by the RPC's peer list. Atomics, so
/// reading them never waits on the task.
pub struct PeerStats {
    /// Best height it announced.
    pub best_height: AtomicU64,
    /// Bytes received.
    pub bytes_in: Arc<AtomicU64>,
    /// Bytes sent.
    pub bytes_out: Arc<AtomicU64>,
    /// Last message time (ms).
    pub last_seen_ms: AtomicU64,
    /// Blocks it served to our catch-up sync.
    pub blocks_served: AtomicU64,
    /// Its last measured ping round trip (ms; 0: not measured yet).
    pub ping_ms: AtomicU64,
    /// When it last delivered a block new to us (ms; 0: never).
    pub last_block_ms: AtomicU64,
    /// When it last delivered a transaction new to us (ms; 0: never).
    pub last_tx_ms: AtomicU64,
}

impl PeerStats {
    /// Counters of a new connection.
    pub fn new(best_height: u64, bytes_in: Arc<AtomicU64>, bytes_out: Arc<AtomicU64>, now_ms: u64) -> Self {
        PeerStats {
            best_height: AtomicU64::new(best_height),
            bytes_in,
            bytes_out,
            last_seen_ms: AtomicU64::new(now_ms),
            blocks_served: AtomicU64::new(0),
            ping_ms: AtomicU64::new(0),
            last_block_ms: AtomicU64::new(0),
            last_tx_ms: AtomicU64::new(0),
        }
    }
}

/// A peer's standing after a judgement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Standing {
    /// Still welcome.
    Good,
    /// Banned now (or already): stop processing anything of it.
    Banned,
}

/// What a registered connection gets: its inbox and its cancellation token (cancelled when
/// the manager cuts it off, or at shutdown).
pub(crate) struct Registration {
    pub inbox: mpsc::Receiver<PeerCmd>,
    /// The inbox's sending side (for the sync task).
    pub sender: mpsc::Sender<PeerCmd>,
    pub cancel: CancellationToken,
    pub stats: Arc<PeerStats>,
}

/// A connection asking to join the peer table.
pub(crate) struct Joining {
    pub id: NodeId,
    pub direction: Direction,
    pub conn: quinn::Connection,
    pub listen: SocketAddr,
    pub best_height: u64,
    pub user_agent: String,
    pub bytes_in: Arc<std::sync::atomic::AtomicU64>,
    pub bytes_out: Arc<std::sync::atomic::AtomicU64>,
    /// An inbound handshake that holds a slot reservation from [`ManagerMsg::Admit`].
    pub reserved: bool,
}

/// Messages to the peer manager.
pub(crate) enum ManagerMsg {
    /// A new inbound connection, before any TLS work: may it go on? An `Accept` counts it
    /// against its IP until `HandshakeEnded`. `validated`: QUIC proved the client owns the
    /// address (or cannot ask it to any more).
    Incoming { addr: SocketAddr, validated: bool, reply: oneshot::Sender<Decision> },
    /// An inbound handshake that was accepted ended (registered or not).
    HandshakeEnded(IpAddr),
    /// May `id` join now? A listener's `Ok` also reserves an inbound slot, released by
    /// `Register` or `Release` (and may evict an inbound peer to make room). `manual`: an
    /// operator's dial (it may reach a node the operator removed before).
    Admit { id: NodeId, direction: Direction, manual: bool, reply: oneshot::Sender<Result<(), Refusal>> },
    /// An inbound handshake that holds a reservation ended without registering.
    Release,
    /// A confirmed connection joins the table (checked again: the decision and the insert
    /// happen in one step of the one owner).
    Register { joining: Box<Joining>, reply: oneshot::Sender<Result<Registration, Refusal>> },
    /// A peer task ended.
    Gone { id: NodeId, conn_id: usize },
    /// A peer misbehaved. `reply` (if any) learns its standing afterwards. `ip`: where it
    /// connected from, if it is not in the peer table yet (a handshake).
    Misbehaved { id: NodeId, kind: Misbehaviour, ip: Option<IpAddr>, reply: Option<oneshot::Sender<Standing>> },
    /// Addresses heard from a peer or seen inbound.
    Learned(Vec<SocketAddr>),
    /// A LAN announcement (mDNS): the address, pinned to the announced node.
    Discovered { addr: SocketAddr, id: NodeId },
    /// A LAN announcement was withdrawn.
    Withdrawn(SocketAddr),
    /// A dial ended.
    Dialled { addr: SocketAddr, result: Result<NodeId, ConnectError> },
    /// Addresses for a peer's `GetPeers`.
    PeersFor { asker: NodeId, reply: oneshot::Sender<Vec<PeerAddress>> },
    /// The operator dials `addr` (joins the book as manual); answered when the dial ends.
    Connect { addr: SocketAddr, id: Option<NodeId>, reply: oneshot::Sender<Result<NodeId, ConnectError>> },
    /// The operator forgets a node: disconnect and drop its addresses.
    Forget { id: NodeId, reply: oneshot::Sender<bool> },
    /// The operator bans a node or an address; the answer is how many peers it cut off.
    Ban { ban: Ban, reply: oneshot::Sender<usize> },
    /// The operator lifts a ban; the answer is whether one was in force.
    Unban { target: BanTarget, reply: oneshot::Sender<bool> },
    /// The address book, for the operator.
    Addresses { reply: oneshot::Sender<Vec<AddressView>> },
    /// The operator's block list (replaces the previous one).
    SetBlocked(HashSet<NodeId>),
}

/// The sending side; cheap to clone.
#[derive(Clone)]
pub(crate) struct ManagerHandle {
    tx: mpsc::Sender<ManagerMsg>,
}

impl ManagerHandle {
    pub(crate) fn channel() -> (ManagerHandle, mpsc::Receiver<ManagerMsg>) {
        let (tx, rx) = mpsc::channel(MANAGER_INBOX);
        (ManagerHandle { tx }, rx)
    }

    /// Sends, waiting for room. Fails only when the manager has stopped (shutdown).
    pub(crate) async fn send(&self, m: ManagerMsg) -> bool {
        self.tx.send(m).await.is_ok()
    }

    /// Sends and waits for the answer `make` wires in; `None` if the manager stopped.
    pub(crate) async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> ManagerMsg) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        if !self.send(make(tx)).await {
            return None;
        }
        rx.await.ok()
    }

    /// Reports misbehaviour and returns the peer's standing afterwards.
    pub(crate) async fn judge(&self, id: NodeId, kind: Misbehaviour) -> Standing {
        self.ask(|reply| ManagerMsg::Misbehaved { id, kind, ip: None, reply: Some(reply) }).await.unwrap_or(Standing::Banned)
    }

    /// Like [`ManagerHandle::judge`], for a peer not in the table yet (its handshake), so an
    /// automatic ban can cover the address it came from.
    pub(crate) async fn judge_at(&self, id: NodeId, kind: Misbehaviour, ip: IpAddr) -> Standing {
        self.ask(|reply| ManagerMsg::Misbehaved { id, kind, ip: Some(ip), reply: Some(reply) }).await.unwrap_or(Standing::Banned)
    }

    /// A LAN announcement; dropped if the inbox is full (the LAN repeats it).
    pub(crate) fn discovered(&self, addr: SocketAddr, id: NodeId) {
        if self.tx.try_send(ManagerMsg::Discovered { addr, id }).is_err() {
            tracing::debug!(target: "p2p::mdns", %addr, "peer manager busy; announcement dropped");
        }
    }

    /// A withdrawn LAN announcement; dropped if the inbox is full (the entry then ages out by
    /// backoff like any unreachable address).
    pub(crate) fn withdrawn(&self, addr: SocketAddr) {
        let _ = self.tx.try_send(ManagerMsg::Withdrawn(addr));
    }
}

/// What readers see of the manager's state: rebuilt and published after every change.
#[derive(Default)]
pub(crate) struct Snapshot {
    /// The table, with each peer's live counters (read when a view is asked for).
    pub peers: Vec<(PeerView, Arc<PeerStats>)>,
    /// The peers' inboxes (gossip goes through them; a full inbox drops gossip).
    pub inboxes: Vec<(NodeId, mpsc::Sender<PeerCmd>)>,
    pub scores: HashMap<NodeId, u32>,
    pub bans: Vec<Ban>,
    pub inbound: usize,
    pub outbound: usize,
    /// Inbound peers per network group, biggest first (bounded, see `METRIC_GROUPS`).
    pub inbound_groups: Vec<(String, usize)>,
}

/// Messages to the sync task.
pub(crate) enum SyncMsg {
    /// A peer joined; `work`/`hash` are what its `Hello` claimed.
    PeerUp { id: NodeId, conn: usize, inbox: mpsc::Sender<PeerCmd>, cancel: CancellationToken, stats: Arc<PeerStats>, work: Work, hash: Hash },
    /// A peer's task ended.
    PeerDown { id: NodeId, conn: usize },
    /// Its tip, as it says.
    Status { id: NodeId, height: u64, hash: Hash, work: Work },
    /// It announced a block.
    NewBlock { id: NodeId, height: u64, hash: Hash },
    /// Headers, each decoded and checked alone, following each other; `cut`: the batch was
    /// cut at a header from the future (not held against the peer).
    Headers { id: NodeId, headers: Vec<Header>, full: bool, cut: bool },
    /// A `GetBlocks` answer, decoded.
    Blocks { id: NodeId, blocks: Vec<Block> },
    /// It lacks these blocks (before the `Blocks` answer they belong to).
    NotFound { id: NodeId, hashes: Vec<Hash> },
    /// A block that came alone, its header checked; `requested`: we asked for it, or it has
    /// more work than our tip (anything else was dropped by the peer task).
    Block { id: NodeId, block: Box<Block> },
    /// A compact block, decoded, its header checked alone.
    Compact { id: NodeId, compact: Box<CompactBlock> },
    /// Transactions of a block being rebuilt (the answer to our `GetBlockTxs`), decoded.
    BlockTxs { id: NodeId, hash: Hash, txs: Vec<Transaction> },
}

impl SyncMsg {
    pub(crate) fn peer(&self) -> NodeId {
        match self {
            SyncMsg::PeerUp { id, .. }
            | SyncMsg::PeerDown { id, .. }
            | SyncMsg::Status { id, .. }
            | SyncMsg::NewBlock { id, .. }
            | SyncMsg::Headers { id, .. }
            | SyncMsg::Blocks { id, .. }
            | SyncMsg::NotFound { id, .. }
            | SyncMsg::Block { id, .. }
            | SyncMsg::Compact { id, .. }
            | SyncMsg::BlockTxs { id, .. } => *id,
        }
    }
}

/// The sending side; cheap to clone.
#[derive(Clone)]
pub(crate) struct SyncHandle {
    tx: mpsc::Sender<SyncMsg>,
}

impl SyncHandle {
    pub(crate) fn channel() -> (SyncHandle, mpsc::Receiver<SyncMsg>) {
        let (tx, rx) = mpsc::channel(SYNC_INBOX);
        (SyncHandle { tx }, rx)
    }

    /// Sends, waiting for room; false once the task stopped.
    pub(crate) async fn send(&self, m: SyncMsg) -> bool {
        self.tx.send(m).await.is_ok()
    }
}

/// What readers see of the sync.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SyncStatus {
    /// A catch-up sync is running.
    pub active: bool,
    /// Blocks in the orphan pool.
    pub orphans: usize,
}

/// Notes from peer tasks to the transaction relay.
pub(crate) enum RelayMsg {
    /// A peer sent these transactions (a run of one `transactions` message, before it is
    /// submitted, so the relay knows their source before the mempool can announce them).
    Seen { txids: Vec<Hash>, from: NodeId },
    /// A peer announced these transaction IDs (at most `MAX_TX_IDS_PER_MESSAGE`).
    Announced { ids: Vec<Hash>, from: NodeId },
    /// These transactions were queued to a peer that asked for them (`get_txs`): it holds
    /// them now, and relay does not announce them to it again.
    Served { ids: Vec<Hash>, to: NodeId },
}

/// Notes queued for the relay task; when full, the peer task waits (back-pressure on the peer
/// whose messages made them): no note is lost to a busy moment. The relay waits on nobody but
/// the chain, so the wait always ends. (One `Seen` a run of up to 1000 transactions, so the
/// queue fills only when the chain is far behind.)
pub(crate) const RELAY_INBOX: usize = 1024;
