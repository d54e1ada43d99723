//! The p2p service: the QUIC endpoint, the accept loop, dialing, the peer table, address
//! book and bans, and the maintenance loop that keeps the outbound count at its target.
//!
//! # Design
//! Each connection runs in its own task ([`crate::peer`]); the shared [`State`] (peer table,
//! address book, bans) sits behind one mutex that is only held for short, non-async critical
//! sections. Persistence goes through [`PeerStore`] on `spawn_blocking`. A connection counts
//! (is in the peer table) only once both sides have confirmed the handshake: the dialer after
//! the listener's `Hello`, the listener after the dialer's `HelloAck`.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::addrbook::{AddressBook, Expect, Source};
use crate::bans::Bans;
use crate::config::{PEER_INBOX, P2pConfig};
use crate::handshake::{Refusal, check};
use crate::identity::{NodeId, NodeIdentity};
use crate::metrics::{P2pMetrics, Side};
use crate::peer::{PeerCmd, PeerStats, run_peer};
use crate::ports::{Ban, ChainInfo, KnownPeer, PeerStore};
use crate::tls::{SERVER_NAME, peer_node_id};
use crate::transport::{TransportError, bind};
use crate::wire::{Hello, Message, RejectReason, Wire, WireError};

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// The disconnect reason of [`P2p::set_blocked`] (the peer task sends it as `blocked`).
pub(crate) const BLOCKED: &str = "blocked by operator";

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

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum P2pError {
    /// The endpoint could not be made.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// A `--peers` or seed entry is malformed.
    #[error("peer address {0:?}: expected [NODEID@]HOST:PORT")]
    BadAddress(String),
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
    /// Its software.
    pub user_agent: String,
}

pub(crate) struct Peer {
    pub direction: Direction,
    pub address: SocketAddr,
    pub listen_address: SocketAddr,
    pub connected_since_ms: u64,
    pub user_agent: String,
    pub stats: Arc<PeerStats>,
    pub inbox: mpsc::Sender<PeerCmd>,
    pub conn: quinn::Connection,
}

pub(crate) struct State {
    pub peers: HashMap<NodeId, Peer>,
    pending_inbound: usize,
    dialing: HashSet<SocketAddr>,
    pub book: AddressBook,
    pub bans: Bans,
    /// Nodes the operator keeps away for now ([`P2p::set_blocked`]); never persisted.
    blocked: HashSet<NodeId>,
}

impl State {
    fn count(&self, d: Direction) -> usize {
        self.peers.values().filter(|p| p.direction == d).count()
    }
}

pub(crate) struct Inner {
    pub cfg: P2pConfig,
    pub node_id: NodeId,
    endpoint: quinn::Endpoint,
    pub(crate) local_addr: SocketAddr,
    pub chain: Arc<dyn ChainInfo>,
    store: Arc<dyn PeerStore>,
    state: Mutex<State>,
    pub metrics: P2pMetrics,
    pub cancel: CancellationToken,
    tasks: TaskTracker,
    user_agent: String,
    ping_nonce: AtomicU64,
    handshakes: Arc<tokio::sync::Semaphore>,
    /// The catch-up sync's block download schedule.
    download: Mutex<crate::sync::download::Download>,
    /// Sync progress, for log lines.
    progress: Mutex<crate::sync::import::Progress>,
    /// Blocks waiting for their parent.
    orphans: Mutex<crate::sync::orphans::Orphans>,
    /// Wakes the import task when downloaded blocks arrive.
    pub import_ready: tokio::sync::Notify,
    /// Who sent us which block (not to announce it back).
    pub block_sources: Mutex<crate::sync::Recent<NodeId>>,
    /// Who sent us which transaction.
    pub tx_sources: Mutex<crate::sync::Recent<NodeId>>,
    /// Wakes the maintenance loop to dial before its next tick (a peer was just discovered).
    dial_now: tokio::sync::Notify,
}

/// Handle on the running p2p service; cheap to clone.
#[derive(Clone)]
pub struct P2p {
    inner: Arc<Inner>,
}

/// Splits `[NODEID@]HOST:PORT`.
pub fn parse_peer(s: &str) -> Result<(Option<NodeId>, String), ConnectError> {
    let s = s.trim();
    let (id, hostport) = match s.split_once('@') {
        Some((id, rest)) => (Some(id.parse::<NodeId>().map_err(|e| ConnectError::BadAddress(format!("{s}: node ID: {e}")))?), rest),
        None => (None, s),
    };
    match hostport.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok((id, hostport.to_string())),
        _ => Err(ConnectError::BadAddress(format!("{s}: expected [NODEID@]HOST:PORT"))),
    }
}

async fn resolve(hostport: &str) -> Result<SocketAddr, ConnectError> {
    let mut addrs: Vec<SocketAddr> =
        tokio::net::lookup_host(hostport).await.map_err(|e| ConnectError::BadAddress(format!("{hostport}: {e}")))?.take(16).collect();
    addrs.sort_by_key(|a| !a.is_ipv4());
    addrs.into_iter().next().ok_or_else(|| ConnectError::BadAddress(format!("{hostport}: no address")))
}

fn short(id: &NodeId) -> String {
    id.to_string()[..12].to_string()
}

impl P2p {
    /// Binds the endpoint, loads the persisted address book and bans, queues `peers` (then
    /// `seeds`) for dialing, and starts the accept and maintenance loops.
    pub async fn start(
        cfg: P2pConfig,
        identity: NodeIdentity,
        listen: SocketAddr,
        chain: Arc<dyn ChainInfo>,
        store: Arc<dyn PeerStore>,
        peers: &[String],
        seeds: &[String],
    ) -> Result<P2p, P2pError> {
        let endpoint = bind(&identity, &cfg, listen)?;
        let local_addr = endpoint.local_addr().map_err(|source| TransportError::Bind { addr: listen, source })?;
        let mut book = AddressBook::new(cfg.max_addresses);
        let mut bans = Bans::default();
        let s = store.clone();
        let max = cfg.max_addresses;
        let (saved, saved_bans) = tokio::task::spawn_blocking(move || (s.load_peers(max), s.load_bans())).await.unwrap_or_else(|_| {
            (Err(crate::ports::PeerStoreError("load task failed".into())), Err(crate::ports::PeerStoreError("load task failed".into())))
        });
        match saved {
            Ok(saved) => {
                for p in saved {
                    // Only addresses that once answered with a key are proven; the rest
                    // were merely heard of and rank as learned.
                    let source = if p.node_id.is_some() { Source::Persisted } else { Source::Learned };
                    book.add(p.addr, p.node_id, false, source);
                }
            }
            Err(e) => tracing::warn!(target: "p2p::peers", "cannot load the address book: {e}"),
        }
        match saved_bans {
            Ok(b) => bans.load(b, now_ms()),
            Err(e) => tracing::warn!(target: "p2p::peers", "cannot load bans: {e}"),
        }
        let mut manual = Vec::new();
        for (list, source) in [(peers, Source::Manual), (seeds, Source::Seed)] {
            for p in list {
                let (id, hostport) = parse_peer(p).map_err(|_| P2pError::BadAddress(p.clone()))?;
                manual.push((id, hostport, source));
            }
        }
        let node_id = identity.node_id();
        let cfg_handshakes = cfg.max_inbound.saturating_mul(2).saturating_add(16);
        let inner = Arc::new(Inner {
            user_agent: format!("cairn/{}", env!("CARGO_PKG_VERSION")),
            cfg,
            node_id,
            endpoint,
            local_addr,
            chain,
            store,
            state: Mutex::new(State { peers: HashMap::new(), pending_inbound: 0, dialing: HashSet::new(), book, bans, blocked: HashSet::new() }),
            metrics: P2pMetrics::default(),
            cancel: CancellationToken::new(),
            tasks: TaskTracker::new(),
            ping_nonce: AtomicU64::new(rand::random()),
            handshakes: Arc::new(tokio::sync::Semaphore::new(cfg_handshakes)),
            download: Mutex::new(Default::default()),
            progress: Mutex::new(Default::default()),
            orphans: Mutex::new(Default::default()),
            import_ready: tokio::sync::Notify::new(),
            block_sources: Mutex::new(Default::default()),
            tx_sources: Mutex::new(Default::default()),
            dial_now: tokio::sync::Notify::new(),
        });
        // Resolve configured peers (in order) into the book; failures are logged, not fatal.
        for (id, hostport, source) in manual {
            match resolve(&hostport).await {
                Ok(addr) => {
                    inner.lock().book.add(addr, id, id.is_some(), source);
                }
                Err(e) => tracing::warn!(target: "p2p::peers", "skipping peer {hostport}: {e}"),
            }
        }
        let p2p = P2p { inner };
        p2p.inner.tasks.spawn(accept_loop(p2p.inner.clone()));
        p2p.inner.tasks.spawn(maintenance_loop(p2p.inner.clone()));
        p2p.inner.tasks.spawn(crate::sync::announce_tips(p2p.inner.clone()));
        p2p.inner.tasks.spawn(crate::sync::relay_transactions(p2p.inner.clone()));
        p2p.inner.tasks.spawn(crate::sync::import::run(p2p.inner.clone()));
        if p2p.inner.cfg.mdns {
            p2p.inner.tasks.spawn(crate::mdns::run(p2p.inner.clone()));
        } else {
            tracing::info!(target: "p2p::mdns", "mDNS discovery off");
        }
        tracing::info!(target: "p2p", %node_id, listen = %local_addr, "p2p listening");
        Ok(p2p)
    }

    /// This node's ID.
    pub fn node_id(&self) -> NodeId {
        self.inner.node_id
    }
    /// The bound UDP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// Dials `target` (`[NODEID@]HOST:PORT`) now and waits for the handshake's outcome. The
    /// address joins the book as a manual peer (kept, redialled with backoff).
    pub async fn connect(&self, target: &str) -> Result<NodeId, ConnectError> {
        let (id, hostport) = parse_peer(target)?;
        let addr = resolve(&hostport).await?;
        let deadline = Instant::now() + self.inner.cfg.handshake_timeout * 2;
        loop {
            {
                // Add and reserve together, so the maintenance loop cannot start this dial.
                let mut st = self.inner.lock();
                st.book.add(addr, id, id.is_some(), Source::Manual);
                if st.dialing.insert(addr) {
                    break;
                }
            }
            // A background dial of this address is running: let it finish, then dial.
            if Instant::now() >= deadline {
                return Err(ConnectError::InProgress(addr));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // A task of its own: if the caller (an RPC request) goes away, the dial still ends
        // cleanly and releases its reservation.
        let task = self.inner.tasks.spawn(dial_reserved(self.inner.clone(), addr));
        task.await.unwrap_or(Err(ConnectError::Unreachable(format!("{addr}: dial task failed"))))
    }

    /// Disconnects `node_id` and forgets its addresses. Returns whether anything was known.
    pub async fn forget(&self, node_id: &NodeId) -> bool {
        let (peer, addrs) = {
            let mut st = self.inner.lock();
            let peer = st.peers.get(node_id).map(|p| (p.inbox.clone(), p.conn.clone()));
            let addrs = st.book.remove_node(node_id);
            (peer, addrs)
        };
        let known = peer.is_some() || !addrs.is_empty();
        if let Some((inbox, conn)) = peer {
            disconnect(&inbox, &conn, "forgotten by operator");
        }
        let store = self.inner.store.clone();
        let _ = tokio::task::spawn_blocking(move || {
            for a in addrs {
                let _ = store.remove_peer(&a);
            }
        })
        .await;
        known
    }

    /// Bans `node_id` for `duration` (persisted) and disconnects it.
    pub async fn ban(&self, node_id: NodeId, duration: Duration, reason: &str) {
        let ban = Ban { node_id, until_ms: now_ms().saturating_add(duration.as_millis() as u64), reason: reason.to_string() };
        let peer = {
            let mut st = self.inner.lock();
            st.bans.ban(ban.clone());
            st.peers.get(&node_id).map(|p| (p.inbox.clone(), p.conn.clone()))
        };
        if let Some((inbox, conn)) = peer {
            disconnect(&inbox, &conn, "banned");
        }
        let store = self.inner.store.clone();
        let _ = tokio::task::spawn_blocking(move || store.save_ban(&ban)).await;
    }

    /// Keeps exactly the nodes in `ids` away until the next call (an empty set clears it):
    /// connected ones are disconnected, and connections to or from them are refused with
    /// `blocked`. Unlike a ban this is runtime-only: no score, nothing persisted, not listed in
    /// [`P2p::bans`]. `cairn devnet` partitions a network with it.
    pub fn set_blocked(&self, ids: HashSet<NodeId>) {
        let cut: Vec<_> = {
            let mut st = self.inner.lock();
            st.blocked = ids;
            st.peers.iter().filter(|(id, _)| st.blocked.contains(id)).map(|(_, p)| (p.inbox.clone(), p.conn.clone())).collect()
        };
        for (inbox, conn) in cut {
            disconnect(&inbox, &conn, BLOCKED);
        }
    }

    /// Counters (handshake refusals by reason and side, misbehaviour).
    pub fn metrics(&self) -> &P2pMetrics {
        &self.inner.metrics
    }

    /// Connected peers.
    pub fn peers(&self) -> Vec<PeerView> {
        let st = self.inner.lock();
        st.peers
            .iter()
            .map(|(id, p)| PeerView {
                node_id: *id,
                address: p.address,
                listen_address: p.listen_address,
                direction: p.direction,
                connected_since_ms: p.connected_since_ms,
                best_height: p.stats.best_height.load(Ordering::Relaxed),
                bytes_sent: p.stats.bytes_out.load(Ordering::Relaxed),
                bytes_received: p.stats.bytes_in.load(Ordering::Relaxed),
                blocks_served: p.stats.blocks_served.load(Ordering::Relaxed),
                last_seen_ms: p.stats.last_seen_ms.load(Ordering::Relaxed),
                score: st.bans.score(id),
                user_agent: p.user_agent.clone(),
            })
            .collect()
    }

    /// Whether a catch-up sync with any peer is in progress.
    pub fn is_syncing(&self) -> bool {
        self.inner.download().is_active()
    }

    /// Number of connected peers.
    pub fn peer_count(&self) -> usize {
        self.inner.lock().peers.len()
    }

    /// Bans in force.
    pub fn bans(&self) -> Vec<Ban> {
        self.inner.lock().bans.list(now_ms())
    }

    /// A node's misbehaviour score.
    pub fn score(&self, node_id: &NodeId) -> u32 {
        self.inner.lock().bans.score(node_id)
    }

    /// Appends p2p metrics in Prometheus text.
    pub fn render_metrics(&self, out: &mut String) {
        let (i, o) = {
            let st = self.inner.lock();
            (st.count(Direction::Inbound), st.count(Direction::Outbound))
        };
        self.inner.metrics.render(out, i, o);
        let orphans = self.orphan_count();
        let syncing = u8::from(self.is_syncing());
        let _ = std::fmt::Write::write_fmt(
            out,
            format_args!(
                "# HELP cairn_p2p_orphan_blocks Blocks held until their parent arrives.\n# TYPE cairn_p2p_orphan_blocks gauge\ncairn_p2p_orphan_blocks {orphans}\n\
                 # HELP cairn_p2p_syncing Whether a catch-up sync is running.\n# TYPE cairn_p2p_syncing gauge\ncairn_p2p_syncing {syncing}\n"
            ),
        );
    }

    /// Blocks held in the orphan pool.
    pub fn orphan_count(&self) -> usize {
        self.inner.orphans().len()
    }

    /// Closes every connection with a reason and stops every task.
    pub async fn shutdown(&self) {
        self.inner.cancel.cancel();
        self.inner.tasks.close();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.inner.tasks.wait()).await;
        self.inner.endpoint.close(RejectReason::ShuttingDown.close_code(), RejectReason::ShuttingDown.code().as_bytes());
        let _ = tokio::time::timeout(Duration::from_secs(1), self.inner.endpoint.wait_idle()).await;
    }
}

impl Inner {
    pub(crate) fn download(&self) -> MutexGuard<'_, crate::sync::download::Download> {
        self.download.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn sync_progress(&self) -> MutexGuard<'_, crate::sync::import::Progress> {
        self.progress.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn orphans(&self) -> MutexGuard<'_, crate::sync::orphans::Orphans> {
        self.orphans.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock would be a bug; keep serving with the state as is.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn hello(&self) -> Hello {
        let tip = self.chain.tip();
        Hello {
            protocol_version: self.cfg.protocol_version,
            chain_id: self.chain.chain_id(),
            genesis: self.chain.genesis(),
            listen_port: self.local_addr.port(),
            best_height: tip.height,
            best_hash: tip.hash,
            total_work: tip.total_work.to_bytes(),
            user_agent: self.user_agent.clone(),
        }
    }

    pub(crate) fn next_nonce(&self) -> u64 {
        self.ping_nonce.fetch_add(1, Ordering::Relaxed)
    }

    /// Adds misbehaviour points; bans (and persists the ban) at the threshold.
    pub(crate) fn penalize(&self, id: NodeId, points: u32, kind: &'static str) -> u32 {
        self.metrics.misbehaved(kind);
        let (score, ban) = self.lock().bans.penalize(id, points, kind, now_ms(), self.cfg.ban_duration.as_millis() as u64);
        tracing::warn!(target: "p2p::peer", peer = %id, kind, points, score, "misbehaviour");
        if let Some(ban) = ban {
            self.metrics.banned();
            tracing::warn!(target: "p2p::peer", peer = %id, reason = kind, "banned");
            let store = self.store.clone();
            self.tasks.spawn_blocking(move || {
                if let Err(e) = store.save_ban(&ban) {
                    tracing::warn!(target: "p2p::peer", "cannot persist ban: {e}");
                }
            });
        }
        score
    }

    /// Learns addresses from a peer or an inbound connection; persists the changes in one
    /// blocking task.
    pub(crate) fn learn(&self, addrs: impl IntoIterator<Item = SocketAddr>) {
        let mut added = Vec::new();
        let mut evicted = Vec::new();
        {
            let mut st = self.lock();
            for addr in addrs {
                if addr.port() == 0 || addr.ip().is_unspecified() || addr.ip().is_multicast() {
                    continue;
                }
                let (new, gone) = st.book.add(addr, None, false, Source::Learned);
                if new {
                    added.push(addr);
                }
                evicted.extend(gone);
            }
        }
        if added.is_empty() && evicted.is_empty() {
            return;
        }
        let store = self.store.clone();
        self.tasks.spawn_blocking(move || {
            for e in evicted {
                let _ = store.remove_peer(&e);
            }
            for addr in added {
                let _ = store.save_peer(&KnownPeer { addr, node_id: None, last_seen_ms: 0 });
            }
        });
    }

    /// A peer's LAN announcement is gone: its address leaves the book unless it ever
    /// connected (an address only an announcement vouched for is not redialled forever).
    pub(crate) fn withdrawn(&self, addr: SocketAddr) {
        self.lock().book.withdraw(&addr);
    }

    /// Takes an address a peer announced for itself on the LAN ([`crate::mdns`]): into the
    /// book, pinned to the announced node ID, and wakes the dialer, which applies the usual
    /// outbound limits, bans and backoff.
    pub(crate) fn discovered(&self, addr: SocketAddr, id: NodeId) {
        let (_, evicted) = self.lock().book.announce(addr, id);
        if let Some(gone) = evicted {
            let store = self.store.clone();
            self.tasks.spawn_blocking(move || {
                let _ = store.remove_peer(&gone);
            });
        }
        self.dial_now.notify_one();
    }

    fn refused(&self, peer: Option<&NodeId>, addr: SocketAddr, r: &Refusal, side: Side) {
        self.metrics.rejected(r.reason, side);
        let who = match side {
            Side::Local => "refused peer",
            Side::Remote => "refused by peer",
        };
        let id = peer.map(short).unwrap_or_default();
        tracing::info!(target: "p2p::handshake", peer = %id, %addr, code = r.reason.code(), "{who}: {}", r.detail);
    }

    /// Tells the peer why, waits briefly for it to read that, then closes.
    async fn refuse(&self, conn: &quinn::Connection, wire: Option<&mut Wire>, peer: Option<&NodeId>, r: &Refusal) {
        self.refused(peer, conn.remote_address(), r, Side::Local);
        if let Some(w) = wire {
            let _ = w.send(&Message::Reject { reason: r.reason, detail: r.detail.clone() }).await;
            w.finish().await;
            let _ = tokio::time::timeout(Duration::from_millis(500), conn.closed()).await;
        }
        conn.close(r.reason.close_code(), format!("{}: {}", r.reason.code(), r.detail).as_bytes());
    }

    /// Whether a new connection (in direction `new`) to peer `id` replaces the one already in
    /// the table (in direction `existing`):
    /// - the peer dialled us again: yes, it proved its key and its old connection is dead or
    ///   dying (a restart, a forget) and would otherwise block it until the heartbeat noticed;
    /// - we dial a peer we hold an outbound connection to: no, we never dial twice;
    /// - crossing connections (both dialled at once): both sides keep the one dialled by the
    ///   lower node ID.
    fn replaces(&self, existing: Direction, new: Direction, id: &NodeId) -> bool {
        if existing == new {
            return new == Direction::Inbound;
        }
        let dialer = |d: Direction| if d == Direction::Outbound { self.node_id } else { *id };
        dialer(new) < dialer(existing)
    }

    /// Whether a connection may join the peer table now.
    fn admit(&self, id: NodeId, direction: Direction, pending_inbound: bool) -> Result<(), Refusal> {
        self.admit_locked(&self.lock(), id, direction, pending_inbound)
    }

    fn admit_locked(&self, st: &State, id: NodeId, direction: Direction, pending_inbound: bool) -> Result<(), Refusal> {
        if st.bans.is_banned(&id, now_ms()) {
            return Err(Refusal::new(RejectReason::Banned, format!("node {id} is banned")));
        }
        if st.blocked.contains(&id) {
            return Err(Refusal::new(RejectReason::Blocked, format!("node {id} is blocked by the operator")));
        }
        if let Some(existing) = st.peers.get(&id)
            && !self.replaces(existing.direction, direction, &id)
        {
            return Err(Refusal::new(RejectReason::AlreadyConnected, format!("already connected to {id}")));
        }
        // A replaced connection of the same direction frees its own slot.
        let replacing = usize::from(st.peers.get(&id).is_some_and(|p| p.direction == direction));
        let (count, max) = match direction {
            Direction::Inbound => {
                (st.count(Direction::Inbound) + st.pending_inbound - usize::from(pending_inbound) - replacing, self.cfg.max_inbound)
            }
            Direction::Outbound => (st.count(Direction::Outbound) - replacing, self.cfg.max_outbound),
        };
        if count >= max {
            return Err(Refusal::new(RejectReason::TooManyPeers, format!("{count} {} peers, at most {max}", direction.as_str())));
        }
        Ok(())
    }

    /// Puts a confirmed connection in the peer table (raising its frame limit), or says why
    /// not. Returns the peer task's inbox and the shared counters.
    #[allow(clippy::too_many_arguments)]
    fn register(
        &self,
        id: NodeId,
        direction: Direction,
        conn: &quinn::Connection,
        wire: &mut Wire,
        hello: &Hello,
        listen_address: SocketAddr,
        pending_inbound: bool,
    ) -> Result<(mpsc::Receiver<PeerCmd>, Arc<PeerStats>), Refusal> {
        // Check and insert under one guard: two handshakes of one node cannot both get in.
        let mut st = self.lock();
        self.admit_locked(&st, id, direction, pending_inbound)?;
        wire.set_limit(self.cfg.max_frame);
        let stats = Arc::new(PeerStats {
            best_height: AtomicU64::new(hello.best_height),
            bytes_in: wire.bytes_in.clone(),
            bytes_out: wire.bytes_out.clone(),
            last_seen_ms: AtomicU64::new(now_ms()),
            blocks_served: AtomicU64::new(0),
        });
        let (tx, rx) = mpsc::channel(PEER_INBOX);
        let replaced = st.peers.insert(
            id,
            Peer {
                direction,
                address: conn.remote_address(),
                listen_address,
                connected_since_ms: now_ms(),
                user_agent: hello.user_agent.chars().take(64).collect(),
                stats: stats.clone(),
                inbox: tx,
                conn: conn.clone(),
            },
        );
        drop(st);
        if let Some(old) = replaced {
            // The crossing connection loses the tie-break; its task ends on the close.
            old.conn.close(RejectReason::AlreadyConnected.close_code(), b"already_connected: crossing connection replaced");
        }
        self.metrics.connected();
        tracing::info!(target: "p2p::peer", peer = %id, addr = %conn.remote_address(), direction = direction.as_str(), height = hello.best_height, "peer connected");
        Ok((rx, stats))
    }

    /// Removes a peer whose task ended (only if it is still this connection's entry).
    /// Removes the peer's entry if it is still this connection's (a connection that was
    /// replaced leaves the new one's entry alone); returns whether it was.
    pub(crate) fn unregister(&self, id: &NodeId, conn_id: usize) -> bool {
        let mut st = self.lock();
        if st.peers.get(id).is_some_and(|p| p.conn.stable_id() == conn_id) {
            st.peers.remove(id);
            drop(st);
            self.metrics.disconnected();
            return true;
        }
        false
    }

    #[allow(clippy::too_many_arguments)]
    fn spawn_peer(
        self: &Arc<Self>,
        id: NodeId,
        conn: quinn::Connection,
        wire: Wire,
        inbox: mpsc::Receiver<PeerCmd>,
        stats: Arc<PeerStats>,
        dir: Direction,
        remote_work: [u8; 32],
    ) {
        let span = tracing::info_span!(target: "p2p::peer", "peer", peer = %short(&id), dir = dir.as_str());
        self.tasks.spawn(run_peer(self.clone(), id, conn, wire, inbox, stats, dir, remote_work).instrument(span));
    }
}

/// Asks a peer task to disconnect; if its inbox is full (the task is stuck), closes the
/// connection directly, which also fails whatever the task is blocked on.
fn disconnect(inbox: &mpsc::Sender<PeerCmd>, conn: &quinn::Connection, why: &'static str) {
    if inbox.try_send(PeerCmd::Disconnect(why)).is_err() {
        conn.close(RejectReason::ProtocolViolation.close_code(), why.as_bytes());
    }
}

/// Reads the reason a peer gave when it closed the connection, if it gave one.
fn close_refusal(conn: &quinn::Connection) -> Option<Refusal> {
    match conn.close_reason()? {
        quinn::ConnectionError::ApplicationClosed(c) => {
            let text = String::from_utf8_lossy(&c.reason).into_owned();
            let code = text.split(':').next().unwrap_or("");
            RejectReason::ALL.iter().find(|r| r.code() == code).map(|r| Refusal::new(*r, text.clone()))
        }
        _ => None,
    }
}

async fn dial(inner: Arc<Inner>, addr: SocketAddr) -> Result<NodeId, ConnectError> {
    if !inner.lock().dialing.insert(addr) {
        return Err(ConnectError::InProgress(addr));
    }
    dial_reserved(inner, addr).await
}

/// Clears a dial reservation however the dial ends (even if its future is dropped).
struct Dialing<'a>(&'a Inner, SocketAddr);

impl Drop for Dialing<'_> {
    fn drop(&mut self) {
        self.0.lock().dialing.remove(&self.1);
    }
}

/// Dials `addr`, already marked as being dialled; clears the mark and updates the book.
async fn dial_reserved(inner: Arc<Inner>, addr: SocketAddr) -> Result<NodeId, ConnectError> {
    let _reservation = Dialing(&inner, addr);
    let expect = inner.lock().book.expect(&addr);
    let r = match tokio::time::timeout(inner.cfg.handshake_timeout, dial_handshake(&inner, addr, expect)).await {
        Ok(r) => r,
        Err(_) => Err(ConnectError::Timeout),
    };
    let mut st = inner.lock();
    match &r {
        // Persisted only if still wanted (an operator may have forgotten it meanwhile).
        Ok(id) if st.book.succeeded(&addr, *id) => {
            drop(st);
            let store = inner.store.clone();
            let known = KnownPeer { addr, node_id: Some(*id), last_seen_ms: now_ms() };
            inner.tasks.spawn_blocking(move || {
                if let Err(e) = store.save_peer(&known) {
                    tracing::warn!(target: "p2p::peers", "cannot persist peer: {e}");
                }
            });
        }
        Err(ConnectError::Refused { reason: RejectReason::SelfConnection, .. }) => {
            st.book.remove(&addr);
        }
        Ok(_) | Err(ConnectError::Refused { reason: RejectReason::AlreadyConnected, .. }) => {}
        Err(_) => st.book.failed(&addr, inner.cfg.backoff_base, inner.cfg.backoff_max),
    }
    r
}

async fn dial_handshake(inner: &Arc<Inner>, addr: SocketAddr, expect: Expect) -> Result<NodeId, ConnectError> {
    let conn = inner
        .endpoint
        .connect(addr, SERVER_NAME)
        .map_err(|e| ConnectError::Unreachable(format!("{addr}: {e}")))?
        .await
        .map_err(|e| ConnectError::Unreachable(format!("{addr}: {e}")))?;
    let id = peer_node_id(&conn).ok_or_else(|| ConnectError::Unreachable(format!("{addr}: no peer certificate")))?;
    if let Some(pinned) = expect.pinned
        && pinned != id
    {
        return refuse_dial(inner, &conn, &id, Refusal::new(RejectReason::NodeIdMismatch, format!("{addr} pinned to {pinned}, answered as {id}"))).await;
    }
    if let Some(known) = expect.known
        && known != id
    {
        tracing::warn!(target: "p2p::handshake", %addr, %known, presented = %id, "known peer presented a different key");
        return refuse_dial(inner, &conn, &id, Refusal::new(RejectReason::KeyChanged, format!("{addr} was {known}, now presents {id}"))).await;
    }
    if id == inner.node_id {
        return refuse_dial(inner, &conn, &id, Refusal::new(RejectReason::SelfConnection, format!("{addr} is this node ({id})"))).await;
    }
    if let Err(r) = inner.admit(id, Direction::Outbound, false) {
        if r.reason == RejectReason::AlreadyConnected {
            conn.close(r.reason.close_code(), r.reason.code().as_bytes());
            return Ok(id);
        }
        return refuse_dial(inner, &conn, &id, r).await;
    }
    let (send, recv) = conn.open_bi().await.map_err(|e| ConnectError::Unreachable(e.to_string()))?;
    let mut wire = Wire::new(send, recv);
    let local = inner.hello();
    let sent = wire.send(&Message::Hello(local.clone())).await;
    let answer = match sent {
        Ok(()) => wire.recv().await,
        Err(e) => Err(e),
    };
    let hello = match answer {
        Ok(Message::Hello(h)) => h,
        Ok(Message::Reject { reason, detail }) => {
            let r = Refusal::new(reason, detail.chars().take(300).collect::<String>());
            inner.refused(Some(&id), addr, &r, Side::Remote);
            conn.close(quinn::VarInt::from_u32(0), b"refused");
            return Err(ConnectError::Refused { reason: r.reason, detail: r.detail, by_peer: true });
        }
        Ok(other) => {
            let r = Refusal::new(RejectReason::ProtocolViolation, format!("expected hello, got {}", other.kind()));
            inner.refuse(&conn, Some(&mut wire), Some(&id), &r).await;
            return Err(ConnectError::Refused { reason: r.reason, detail: r.detail, by_peer: false });
        }
        Err(e) => {
            // The peer may have refused by closing (e.g. our certificate, or before reading).
            if let Some(r) = close_refusal(&conn) {
                inner.refused(Some(&id), addr, &r, Side::Remote);
                return Err(ConnectError::Refused { reason: r.reason, detail: r.detail, by_peer: true });
            }
            return Err(ConnectError::Unreachable(format!("{addr}: {e}")));
        }
    };
    if let Err(r) = check(&local, &inner.node_id, &hello, &id) {
        inner.refuse(&conn, Some(&mut wire), Some(&id), &r).await;
        return Err(ConnectError::Refused { reason: r.reason, detail: r.detail, by_peer: false });
    }
    // Confirm first, register after: a dial cancelled mid-send leaves nothing behind.
    if let Err(e) = wire.send(&Message::HelloAck).await {
        return Err(ConnectError::Unreachable(format!("{addr}: closed during handshake: {e}")));
    }
    match inner.register(id, Direction::Outbound, &conn, &mut wire, &hello, addr, false) {
        Ok((rx, stats)) => {
            inner.spawn_peer(id, conn, wire, rx, stats, Direction::Outbound, hello.total_work);
            Ok(id)
        }
        Err(r) => {
            inner.refuse(&conn, Some(&mut wire), Some(&id), &r).await;
            Err(ConnectError::Refused { reason: r.reason, detail: r.detail, by_peer: false })
        }
    }
}

/// Refuses a dialled peer before any protocol exchange (the reason travels in the close).
async fn refuse_dial(inner: &Inner, conn: &quinn::Connection, id: &NodeId, r: Refusal) -> Result<NodeId, ConnectError> {
    inner.refuse(conn, None, Some(id), &r).await;
    Err(ConnectError::Refused { reason: r.reason, detail: r.detail, by_peer: false })
}

async fn accept_loop(inner: Arc<Inner>) {
    loop {
        let incoming = tokio::select! {
            _ = inner.cancel.cancelled() => return,
            i = inner.endpoint.accept() => match i {
                Some(i) => i,
                None => return,
            },
        };
        // Bounded work for strangers: beyond this many handshakes in flight, refuse at once.
        let Ok(permit) = inner.handshakes.clone().try_acquire_owned() else {
            inner.metrics.rejected(RejectReason::TooManyPeers, Side::Local);
            incoming.refuse();
            continue;
        };
        let inner2 = inner.clone();
        inner.tasks.spawn(async move {
            let _permit = permit;
            let timeout = inner2.cfg.handshake_timeout;
            if tokio::time::timeout(timeout, inbound(inner2.clone(), incoming)).await.is_err() {
                inner2.metrics.rejected(RejectReason::Timeout, Side::Local);
                tracing::debug!(target: "p2p::handshake", "inbound handshake timed out");
            }
        });
    }
}

/// Releases a reserved inbound slot however the handshake ends.
struct PendingSlot<'a>(&'a Inner);

impl Drop for PendingSlot<'_> {
    fn drop(&mut self) {
        let mut st = self.0.lock();
        st.pending_inbound = st.pending_inbound.saturating_sub(1);
    }
}

async fn inbound(inner: Arc<Inner>, incoming: quinn::Incoming) {
    let remote = incoming.remote_address();
    let conn = match incoming.await {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(target: "p2p::handshake", %remote, "TLS handshake failed: {e}");
            return;
        }
    };
    let Some(id) = peer_node_id(&conn) else { return };
    let Ok((send, recv)) = conn.accept_bi().await else { return };
    let mut wire = Wire::new(send, recv);
    let hello = match wire.recv().await {
        Ok(Message::Hello(h)) => h,
        Ok(other) => {
            inner.penalize(id, 50, "handshake_violation");
            let r = Refusal::new(RejectReason::ProtocolViolation, format!("expected hello, got {}", other.kind()));
            inner.refuse(&conn, Some(&mut wire), Some(&id), &r).await;
            return;
        }
        Err(e) => {
            if matches!(e, WireError::FrameTooLarge(_) | WireError::Decode(_)) {
                inner.penalize(id, 50, "handshake_violation");
                let r = Refusal::new(RejectReason::ProtocolViolation, format!("bad hello: {e}"));
                inner.refuse(&conn, None, Some(&id), &r).await;
            }
            return;
        }
    };
    let local = inner.hello();
    if let Err(r) = check(&local, &inner.node_id, &hello, &id) {
        inner.refuse(&conn, Some(&mut wire), Some(&id), &r).await;
        return;
    }
    let admitted = {
        let mut st = inner.lock();
        let r = inner.admit_locked(&st, id, Direction::Inbound, false);
        if r.is_ok() {
            st.pending_inbound += 1;
        }
        r
    };
    if let Err(r) = admitted {
        inner.refuse(&conn, Some(&mut wire), Some(&id), &r).await;
        return;
    }
    let _slot = PendingSlot(&inner);
    if wire.send(&Message::Hello(local)).await.is_err() {
        return;
    }
    match wire.recv().await {
        Ok(Message::HelloAck) => {}
        Ok(Message::Reject { reason, detail }) => {
            inner.refused(Some(&id), remote, &Refusal::new(reason, detail.chars().take(300).collect::<String>()), Side::Remote);
            return;
        }
        Ok(other) => {
            inner.penalize(id, 50, "handshake_violation");
            let r = Refusal::new(RejectReason::ProtocolViolation, format!("expected hello_ack, got {}", other.kind()));
            inner.refuse(&conn, Some(&mut wire), Some(&id), &r).await;
            return;
        }
        Err(e @ (WireError::FrameTooLarge(_) | WireError::Decode(_))) => {
            inner.penalize(id, 50, "handshake_violation");
            let r = Refusal::new(RejectReason::ProtocolViolation, format!("bad hello_ack: {e}"));
            inner.refuse(&conn, None, Some(&id), &r).await;
            return;
        }
        // The dialer went away or timed out: not misbehaviour.
        Err(_) => return,
    }
    let listen = SocketAddr::new(remote.ip(), hello.listen_port);
    match inner.register(id, Direction::Inbound, &conn, &mut wire, &hello, listen, true) {
        Ok((rx, stats)) => {
            drop(_slot);
            inner.learn([listen]);
            inner.spawn_peer(id, conn, wire, rx, stats, Direction::Inbound, hello.total_work);
        }
        Err(r) => inner.refuse(&conn, Some(&mut wire), Some(&id), &r).await,
    }
}

async fn maintenance_loop(inner: Arc<Inner>) {
    let mut dial_tick = tokio::time::interval(inner.cfg.dial_interval);
    let mut pex_tick = tokio::time::interval(inner.cfg.peer_exchange_interval);
    dial_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    pex_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = inner.cancel.cancelled() => return,
            _ = dial_tick.tick() => dial_more(&inner),
            _ = inner.dial_now.notified() => dial_more(&inner),
            _ = pex_tick.tick() => ask_for_peers(&inner),
        }
    }
}

/// Dials due addresses while the outbound count is below target.
fn dial_more(inner: &Arc<Inner>) {
    let due = {
        let st = inner.lock();
        let outbound = st.count(Direction::Outbound) + st.dialing.len();
        let want = inner.cfg.target_outbound.saturating_sub(outbound);
        if want == 0 {
            return;
        }
        let connected_addrs: HashSet<SocketAddr> = st.peers.values().flat_map(|p| [p.address, p.listen_address]).collect();
        let now = now_ms();
        st.book.due(Instant::now(), want, |a, id| {
            connected_addrs.contains(a)
                || st.dialing.contains(a)
                || *a == inner.local_addr
                || id.is_some_and(|id| id == inner.node_id || st.peers.contains_key(&id) || st.bans.is_banned(&id, now) || st.blocked.contains(&id))
        })
    };
    for addr in due {
        let inner2 = inner.clone();
        inner.tasks.spawn(async move {
            match dial(inner2, addr).await {
                Ok(id) => tracing::debug!(target: "p2p::dial", %addr, peer = %id, "dialled"),
                Err(e) => tracing::debug!(target: "p2p::dial", %addr, "dial failed: {e}"),
            }
        });
    }
}

/// Asks one random peer for addresses while below the outbound target.
fn ask_for_peers(inner: &Arc<Inner>) {
    let target = {
        let st = inner.lock();
        if st.count(Direction::Outbound) >= inner.cfg.target_outbound || st.peers.is_empty() {
            return;
        }
        let i = rand::random::<usize>() % st.peers.len();
        st.peers.values().nth(i).map(|p| p.inbox.clone())
    };
    if let Some(inbox) = target {
        let _ = inbox.try_send(PeerCmd::Send(Message::GetPeers));
    }
}
