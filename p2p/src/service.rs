//! The p2p service handle: starts the actors and is how the node talks to them.
//!
//! [`P2p::start`] binds the endpoint, loads the persisted address book and bans, and spawns
//! the peer manager, the sync task, the transaction relay, the accept loop and mDNS (see the
//! actor map in the crate docs). [`P2p`] then only sends messages and reads what the actors
//! publish on `watch` channels; it holds no state of its own.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use crate::addrbook::AddressView;
use crate::addrbook::{AddressBook, Source};
use crate::bans::Bans;
pub use crate::channels::{ConnectError, Direction, PeerView};
use crate::channels::{ManagerHandle, ManagerMsg, RELAY_INBOX, Snapshot, SyncHandle, SyncStatus};
use crate::config::P2pConfig;
use crate::ctx::{Ctx, Tasks, now_ms};
use crate::identity::{NodeId, NodeIdentity};
use crate::metrics::P2pMetrics;
use crate::ports::{Ban, BanTarget, ChainInfo, PeerStore};
use crate::transport::{TransportError, bind};
use crate::wire::RejectReason;

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum P2pError {
    /// The endpoint could not be made.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// A `--peers` or seed entry is malformed.
    #[error("peer address {0:?}: expected [NODEID@]HOST:PORT")]
    BadAddress(String),
    /// The configured node name is not valid.
    #[error(transparent)]
    Name(#[from] crate::name::NameError),
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

/// Handle on the running p2p service; cheap to clone.
#[derive(Clone)]
pub struct P2p {
    ctx: Arc<Ctx>,
    peers: watch::Receiver<Arc<Snapshot>>,
    sync: watch::Receiver<SyncStatus>,
}

impl P2p {
    /// Binds the endpoint, loads the persisted address book and bans, queues `peers` (then
    /// `seeds`) for dialing, and starts the actors.
    pub async fn start(
        cfg: P2pConfig,
        identity: NodeIdentity,
        listen: SocketAddr,
        chain: Arc<dyn ChainInfo>,
        store: Arc<dyn PeerStore>,
        peers: &[String],
        seeds: &[String],
    ) -> Result<P2p, P2pError> {
        if let Some(name) = &cfg.name {
            crate::name::validate_name(name)?;
        }
        let mut manual = Vec::new();
        for (list, source) in [(peers, Source::Manual), (seeds, Source::Seed)] {
            for p in list {
                let (id, hostport) = parse_peer(p).map_err(|_| P2pError::BadAddress(p.clone()))?;
                manual.push((id, hostport, source));
            }
        }
        let endpoint = bind(&identity, &cfg, listen)?;
        let local_addr = endpoint.local_addr().map_err(|source| TransportError::Bind { addr: listen, source })?;
        let mut book = AddressBook::new(cfg.max_addresses);
        let mut bans = Bans::default();
        let s = store.clone();
        let max = cfg.max_addresses;
        let (saved, saved_bans) = tokio::task::spawn_blocking(move || (s.load_peers(max), s.load_bans()))
            .await
            .unwrap_or_else(|_| (Err(crate::ports::PeerStoreError("load task failed".into())), Err(crate::ports::PeerStoreError("load task failed".into()))));
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
        // Configured peers (in order) join the book before the manager starts dialing;
        // failures are logged, not fatal.
        for (id, hostport, source) in manual {
            match resolve(&hostport).await {
                Ok(addr) => {
                    book.add(addr, id, id.is_some(), source);
                }
                Err(e) => tracing::warn!(target: "p2p::peers", "skipping peer {hostport}: {e}"),
            }
        }
        let (manager, manager_rx) = ManagerHandle::channel();
        let (sync, sync_rx) = SyncHandle::channel();
        let (relay, relay_rx) = tokio::sync::mpsc::channel(RELAY_INBOX);
        let node_id = identity.node_id();
        let ctx = Arc::new(Ctx {
            user_agent: crate::name::user_agent(cfg.name.as_deref()),
            cfg,
            node_id,
            endpoint,
            local_addr,
            chain,
            store,
            metrics: Arc::new(P2pMetrics::default()),
            cancel: CancellationToken::new(),
            tasks: Tasks::default(),
            manager,
            sync,
            relay,
            events: tokio::sync::broadcast::channel(crate::events::PEER_EVENTS).0,
        });
        let (peers_tx, peers_rx) = watch::channel(Arc::new(Snapshot::default()));
        let (sync_tx, sync_status) = watch::channel(SyncStatus::default());
        ctx.tasks.spawn(crate::manager::run(ctx.clone(), manager_rx, book, bans, peers_tx));
        ctx.tasks.spawn(crate::sync::run(ctx.clone(), sync_rx, sync_tx));
        if ctx.cfg.blocks_only {
            // No relay task: peer tasks' notes fail to send and are dropped (never waited on:
            // the channel is closed).
            drop(relay_rx);
            tracing::info!(target: "p2p::gossip", "blocks only: transactions are not relayed");
        } else {
            ctx.tasks.spawn(crate::sync::relay_transactions(ctx.clone(), relay_rx, peers_rx.clone()));
        }
        ctx.tasks.spawn(crate::connection::accept_loop(ctx.clone()));
        if ctx.cfg.mdns {
            ctx.tasks.spawn(crate::mdns::run(ctx.clone()));
        } else {
            tracing::info!(target: "p2p::mdns", "mDNS discovery off");
        }
        tracing::info!(target: "p2p", %node_id, listen = %local_addr, "p2p listening");
        Ok(P2p { ctx, peers: peers_rx, sync: sync_status })
    }

    /// This node's ID.
    pub fn node_id(&self) -> NodeId {
        self.ctx.node_id
    }
    /// This node's human-readable name, if it has one.
    pub fn name(&self) -> Option<&str> {
        self.ctx.cfg.name.as_deref()
    }
    /// The bound UDP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.ctx.local_addr
    }

    /// Dials `target` (`[NODEID@]HOST:PORT`) now and waits for the handshake's outcome. The
    /// address joins the book as a manual peer (kept, redialled with backoff). If a dial of
    /// that address is under way already, its outcome is the answer.
    pub async fn connect(&self, target: &str) -> Result<NodeId, ConnectError> {
        let (id, hostport) = parse_peer(target)?;
        let addr = resolve(&hostport).await?;
        self.ctx
            .manager
            .ask(|reply| ManagerMsg::Connect { addr, id, reply })
            .await
            .unwrap_or_else(|| Err(ConnectError::Unreachable(format!("{addr}: shutting down"))))
    }

    /// Disconnects `node_id` and forgets its addresses. Returns whether anything was known.
    pub async fn forget(&self, node_id: &NodeId) -> bool {
        let id = *node_id;
        self.ctx.manager.ask(|reply| ManagerMsg::Forget { id, reply }).await.unwrap_or(false)
    }

    /// Bans a node or an address for `duration` (persisted) and disconnects every peer it
    /// covers at once. Returns the ban and how many peers it cut off.
    pub async fn ban(&self, target: BanTarget, duration: Duration, reason: &str) -> (Ban, usize) {
        let ban = Ban { target, until_ms: now_ms().saturating_add(duration.as_millis() as u64), reason: reason.to_string() };
        let b = ban.clone();
        let cut = self.ctx.manager.ask(|reply| ManagerMsg::Ban { ban: b, reply }).await.unwrap_or(0);
        (ban, cut)
    }

    /// Lifts a ban (a node's score is cleared too). Returns whether one was in force.
    pub async fn unban(&self, target: BanTarget) -> bool {
        self.ctx.manager.ask(|reply| ManagerMsg::Unban { target, reply }).await.unwrap_or(false)
    }

    /// The address book, best first (the order dials are tried in).
    pub async fn addresses(&self) -> Vec<AddressView> {
        self.ctx.manager.ask(|reply| ManagerMsg::Addresses { reply }).await.unwrap_or_default()
    }

    /// Keeps exactly the nodes in `ids` away until the next call (an empty set clears it):
    /// connected ones are disconnected, and connections to or from them are refused with
    /// `blocked`. Unlike a ban this is runtime-only: no score, nothing persisted, not listed in
    /// [`P2p::bans`]. `cairn devnet` partitions a network with it.
    pub async fn set_blocked(&self, ids: HashSet<NodeId>) {
        self.ctx.manager.send(ManagerMsg::SetBlocked(ids)).await;
    }

    /// Counters (handshake refusals by reason and side, misbehaviour).
    pub fn metrics(&self) -> &P2pMetrics {
        &self.ctx.metrics
    }

    /// Connected peers.
    pub fn peers(&self) -> Vec<PeerView> {
        use std::sync::atomic::Ordering::Relaxed;
        let snap = self.peers.borrow().clone();
        snap.peers
            .iter()
            .map(|(v, stats)| PeerView {
                best_height: stats.best_height.load(Relaxed),
                bytes_sent: stats.bytes_out.load(Relaxed),
                bytes_received: stats.bytes_in.load(Relaxed),
                blocks_served: stats.blocks_served.load(Relaxed),
                last_seen_ms: stats.last_seen_ms.load(Relaxed),
                score: snap.scores.get(&v.node_id).copied().unwrap_or(0),
                ping_ms: Some(stats.ping_ms.load(Relaxed)).filter(|ms| *ms > 0),
                ..v.clone()
            })
            .collect()
    }

    /// Peers connecting, leaving and refused, as they happen.
    pub fn subscribe_events(&self) -> tokio::sync::broadcast::Receiver<crate::events::PeerEvent> {
        self.ctx.events.subscribe()
    }

    /// Whether a catch-up sync with any peer is in progress.
    pub fn is_syncing(&self) -> bool {
        self.sync.borrow().active
    }

    /// Number of connected peers.
    pub fn peer_count(&self) -> usize {
        self.peers.borrow().peers.len()
    }

    /// Bans in force.
    pub fn bans(&self) -> Vec<Ban> {
        let now = now_ms();
        self.peers.borrow().bans.iter().filter(|b| b.until_ms > now).cloned().collect()
    }

    /// A node's misbehaviour score.
    pub fn score(&self, node_id: &NodeId) -> u32 {
        self.peers.borrow().scores.get(node_id).copied().unwrap_or(0)
    }

    /// Writes the p2p metrics through a scrape's encoder.
    pub fn encode_metrics(&self, enc: &mut prometheus_client::encoding::DescriptorEncoder) -> std::fmt::Result {
        use prometheus_client::metrics::MetricType;
        let (i, o, groups) = {
            let snap = self.peers.borrow();
            (snap.inbound, snap.outbound, snap.inbound_groups.clone())
        };
        self.ctx.metrics.encode(enc, i, o, &groups)?;
        enc.encode_descriptor("cairn_p2p_orphan_blocks", "Blocks held until their parent arrives.", None, MetricType::Gauge)?
            .encode_gauge(&(self.orphan_count() as i64))?;
        enc.encode_descriptor("cairn_p2p_syncing", "Whether a catch-up sync is running.", None, MetricType::Gauge)?.encode_gauge(&i64::from(self.is_syncing()))
    }

    /// The p2p metrics in the Prometheus text format (tests; the node's `/metrics` encodes
    /// them with its own).
    pub fn render_metrics(&self, out: &mut String) {
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(MetricsCollector(self.clone())));
        let _ = prometheus_client::encoding::prometheus_text::encode(out, &registry);
    }

    /// The p2p metrics as a prometheus-client collector (read at each scrape).
    pub fn collector(&self) -> MetricsCollector {
        MetricsCollector(self.clone())
    }

    /// Blocks held in the orphan pool.
    pub fn orphan_count(&self) -> usize {
        self.sync.borrow().orphans
    }

    /// Closes every connection with a reason and stops every task: dials and handshakes in
    /// flight end at once, peer tasks say goodbye within 200 ms.
    pub async fn shutdown(&self) {
        self.ctx.cancel.cancel();
        self.ctx.tasks.close();
        let _ = tokio::time::timeout(Duration::from_millis(600), self.ctx.tasks.wait()).await;
        self.ctx.endpoint.close(RejectReason::ShuttingDown.close_code(), format!("{}: node shutting down", RejectReason::ShuttingDown.code()).as_bytes());
        let _ = tokio::time::timeout(Duration::from_millis(300), self.ctx.endpoint.wait_idle()).await;
    }
}

/// [`P2p`]'s metrics, encoded at each scrape.
#[derive(Clone)]
pub struct MetricsCollector(P2p);

impl std::fmt::Debug for MetricsCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("p2p metrics")
    }
}

impl prometheus_client::collector::Collector for MetricsCollector {
    fn encode(&self, mut enc: prometheus_client::encoding::DescriptorEncoder) -> std::fmt::Result {
        self.0.encode_metrics(&mut enc)
    }
}
