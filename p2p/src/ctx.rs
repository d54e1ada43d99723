//! What every task of the service reads and nobody changes after start: settings, identity,
//! the endpoint, the chain and store ports, counters, the actors' handles, and the
//! cancellation token and task tracker that everything hangs off.
//!
//! Nothing in here is mutable state with an owner: the handles are channel senders, the
//! counters are atomics (metrics), and the endpoint and ports are thread-safe handles.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::channels::{ManagerHandle, RelayMsg, SyncHandle};
use crate::config::{FRAME_OVERHEAD, P2pConfig};
use crate::handshake::Refusal;
use crate::identity::NodeId;
use crate::metrics::{P2pMetrics, Side};
use crate::ports::{ChainInfo, PeerStore};
use crate::wire::Hello;

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// The first 12 hex digits of a node ID, for log lines.
pub(crate) fn short(id: &NodeId) -> String {
    id.to_string()[..12].to_string()
}

/// The service's task tracker. Every task it spawns runs in the tracing span current at the
/// spawn: [`crate::P2p::start`] runs in the node's span (the node's name, see
/// [`crate::name`]), so every log line of every task says which node it comes from, even with
/// many nodes in one process (`cairn devnet`); tasks spawned by those tasks inherit it.
#[derive(Default)]
pub(crate) struct Tasks(TaskTracker);

impl Tasks {
    /// Spawns `task` on the runtime, tracked, in the current span.
    pub(crate) fn spawn<F>(&self, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.0.spawn(task.in_current_span())
    }

    /// Runs `f` on the blocking pool, tracked, in the current span.
    pub(crate) fn spawn_blocking<F, T>(&self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let span = tracing::Span::current();
        self.0.spawn_blocking(move || span.in_scope(f))
    }

    /// No more tasks: [`Tasks::wait`] ends once the running ones have.
    pub(crate) fn close(&self) -> bool {
        self.0.close()
    }

    /// Waits until closed and every task has ended.
    pub(crate) fn wait(&self) -> tokio_util::task::task_tracker::TaskTrackerWaitFuture<'_> {
        self.0.wait()
    }
}

/// The service's shared, immutable context.
pub(crate) struct Ctx {
    pub cfg: P2pConfig,
    pub node_id: NodeId,
    pub endpoint: quinn::Endpoint,
    pub local_addr: SocketAddr,
    pub chain: Arc<dyn ChainInfo>,
    pub store: Arc<dyn PeerStore>,
    pub metrics: Arc<P2pMetrics>,
    pub cancel: CancellationToken,
    pub tasks: Tasks,
    pub user_agent: String,
    pub manager: ManagerHandle,
    pub sync: SyncHandle,
    /// Notes to the transaction relay (who sent which transaction); `try_send`, see
    /// [`crate::channels::RELAY_INBOX`].
    pub relay: tokio::sync::mpsc::Sender<RelayMsg>,
    /// Peers connecting, leaving, refused ([`crate::events`]); bounded, never waits.
    pub events: tokio::sync::broadcast::Sender<crate::events::PeerEvent>,
}

impl Ctx {
    /// Our `Hello`, with the tip as it is now.
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

    /// The frame limit after the handshake: the chain's largest valid block plus the message's
    /// framing, so any valid block fits in one frame. Both sides derive it from the same chain
    /// spec, so what one sends the other accepts.
    pub(crate) fn frame_limit(&self) -> usize {
        self.chain.max_block_bytes().saturating_add(FRAME_OVERHEAD)
    }

    /// Publishes a refusal to event subscribers (if any).
    pub(crate) fn refusal_event(&self, peer: Option<NodeId>, addr: SocketAddr, reason: crate::wire::RejectReason, by_peer: bool) {
        if self.events.receiver_count() > 0 {
            let mut e = crate::events::PeerEvent::new(crate::events::PeerEventKind::Refused, peer, addr);
            e.reason = Some(reason.code());
            e.by_peer = Some(by_peer);
            let _ = self.events.send(e);
        }
    }

    /// Logs and counts a handshake refusal.
    pub(crate) fn refused(&self, peer: Option<&NodeId>, addr: SocketAddr, r: &Refusal, by_peer: bool) {
        self.metrics.rejected(r.reason, if by_peer { Side::Remote } else { Side::Local });
        self.refusal_event(peer.copied(), addr, r.reason, by_peer);
        let who = if by_peer { "refused by peer" } else { "refused peer" };
        let id = peer.map(short).unwrap_or_default();
        tracing::info!(target: "p2p::handshake", peer = %id, %addr, code = r.reason.code(), "{who}: {}", r.detail);
    }
}
