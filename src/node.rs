//! Starting and stopping a whole node in-process: the chain service, the RPC server and the
//! built-in farmer, under one cancellation token.
//!
//! A named node runs in a tracing span, `node{node_name=alice}` ([`node_span`]): its tasks,
//! its chain thread and the p2p layer's tasks run in it, so every log line says which node it
//! comes from, even with many nodes in one process (`cairn devnet`).

use std::net::SocketAddr;
use std::sync::Arc;

use cairn_chain::{Store, StoreError};
use cairn_p2p::{IdentityError, NodeId, NodeIdentity, P2p, P2pError};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, Span};

use crate::chain_service::ChainHandle;
use crate::config::NodeConfig;
use crate::metrics::Metrics;
use crate::p2p_bridge::{ChainBridge, StoreBridge};
use crate::rpc::{RpcState, router};

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The data directory could not be created.
    #[error("data dir {path}: {source}")]
    DataDir {
        /// The directory.
        path: std::path::PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The node key could not be loaded.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The p2p layer could not start.
    #[error(transparent)]
    P2p(#[from] P2pError),
    /// A listening address could not be bound.
    #[error("cannot listen for {what} on {addr}: {source}")]
    Bind {
        /// RPC or P2P.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Target of the node's span ([`node_span`]). The binary's log filter always enables it, so
/// the name is on every line whatever `RUST_LOG` selects; no event uses this target.
pub const SPAN_TARGET: &str = "cairn::node_span";

/// The span a node runs in: `node{node_name=NAME}` at level ERROR (so no log filter level
/// hides it), or no span for an unnamed node. The field is not called `name`: the JSON log
/// format writes a span's own name under that key.
pub fn node_span(name: Option<&str>) -> Span {
    match name {
        Some(name) => tracing::span!(target: SPAN_TARGET, tracing::Level::ERROR, "node", node_name = %name),
        None => Span::none(),
    }
}

/// How long open RPC connections get to finish when the node stops.
const RPC_GRACE: std::time::Duration = std::time::Duration::from_millis(500);

/// A running node.
pub struct Node {
    chain: ChainHandle,
    p2p: P2p,
    rpc_addr: SocketAddr,
    node_id: NodeId,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    span: Span,
    auth: Arc<crate::rpc::auth::RpcAuth>,
}

impl Node {
    /// Starts a node: opens (or creates) its data dir and chain, binds the RPC, starts the
    /// farmer if configured. Returns once the RPC is listening.
    pub async fn start(config: NodeConfig) -> Result<Node, NodeError> {
        let span = node_span(config.p2p.name.as_deref());
        // A start that fails leaves nothing behind that it created: not the data dir, not a
        // node key, not a database (what existed before stays untouched).
        let dir = config.data_dir.clone();
        let created = [dir.clone(), dir.join(cairn_p2p::identity::KEY_FILE), dir.join("db")].map(|p| (!p.exists()).then_some(p));
        let started = Self::start_in_span(config, span.clone()).instrument(span).await;
        if started.is_err() {
            match &created[0] {
                Some(d) => {
                    let _ = std::fs::remove_dir_all(d);
                }
                None => {
                    if let Some(key) = &created[1] {
                        let _ = std::fs::remove_file(key);
                    }
                    if let Some(db) = &created[2] {
                        let _ = std::fs::remove_dir_all(db);
                    }
                }
            }
        }
        started
    }

    async fn start_in_span(config: NodeConfig, span: Span) -> Result<Node, NodeError> {
        let dir = config.data_dir.clone();
        let spec = config.chain.clone();
        let limits = config.mempool;
        let address_index = config.address_index;
        let metrics = Arc::new(Metrics::default());
        let m = metrics.clone();
        // Files and RocksDB: off the async runtime.
        let in_span = span.clone();
        let (identity, chain, store) = tokio::task::spawn_blocking(move || -> Result<_, NodeError> {
            let _span = in_span.enter();
            std::fs::create_dir_all(&dir).map_err(|source| NodeError::DataDir { path: dir.clone(), source })?;
            let identity = NodeIdentity::load_or_create(&dir)?;
            let genesis = spec.genesis().hash();
            let store = Store::open(&dir.join("db"), &spec.chain_id, genesis)?;
            Ok((identity, ChainHandle::start(store.clone(), spec, limits, m, address_index)?, store))
        })
        .await
        .map_err(|e| StoreError::Missing(format!("node start task: {e}")))??;
        let node_id = identity.node_id();

        // The RPC port is bound before the p2p layer starts (it advertises us on the LAN and
        // dials out), and a failure of either stops what already runs: a node that cannot
        // start leaves nothing behind (no store lock, no advertisement, no peers).
        let bound = match tokio::net::TcpListener::bind(config.rpc_addr).await {
            Ok(l) => l.local_addr().map(|a| (l, a)),
            Err(e) => Err(e),
        };
        let (listener, rpc_addr) = match bound {
            Ok(b) => b,
            Err(source) => {
                chain.stop().await;
                return Err(NodeError::Bind { what: "RPC", addr: config.rpc_addr, source });
            }
        };
        let started = P2p::start(
            config.p2p.clone(),
            identity,
            config.p2p_addr,
            Arc::new(ChainBridge::new(chain.clone())),
            Arc::new(StoreBridge(store)),
            &config.peers,
            &config.seeds,
        )
        .await;
        let p2p = match started {
            Ok(p) => p,
            Err(e) => {
                chain.stop().await;
                return Err(e.into());
            }
        };
        let p2p_addr = p2p.local_addr();
        let host = if p2p_addr.ip().is_unspecified() { std::net::IpAddr::from([127, 0, 0, 1]) } else { p2p_addr.ip() };

        let auth = match crate::rpc::auth::RpcAuth::setup(&config.data_dir, rpc_addr, config.rpc_token.clone()) {
            Ok(a) => Arc::new(a),
            Err(source) => {
                p2p.shutdown().await;
                chain.stop().await;
                return Err(NodeError::DataDir { path: config.data_dir.join(crate::rpc::auth::COOKIE_FILE), source });
            }
        };
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let state = RpcState {
            auth: auth.clone(),
            chain: chain.clone(),
            p2p: p2p.clone(),
            metrics: metrics.clone(),
            node_id: node_id.to_string(),
            farm_threads: config.farm_threads,
            shutdown: shutdown.clone(),
            devnet_network: config.devnet_network.clone(),
            subscribers: Arc::new(tokio::sync::Semaphore::new(crate::rpc::events::MAX_SUBSCRIBERS)),
            events: crate::rpc::events::EventHub::start(&chain, &p2p, shutdown.clone()),
        };
        let app = router(state, &config.rpc_cors);
        let listener = crate::rpc::listener::TimedListener::new(listener, crate::rpc::listener::WRITE_TIMEOUT, crate::rpc::listener::MAX_CONNECTIONS);
        let stop = shutdown.clone();
        tasks.spawn(
            async move {
                let serve = axum::serve(listener, app).with_graceful_shutdown(stop.clone().cancelled_owned());
                // Connections get RPC_GRACE to finish at shutdown (event streams end at once;
                // a client that does not read would otherwise hold the node until its write
                // timeout), then the server is dropped with them.
                let grace = async {
                    stop.cancelled().await;
                    tokio::time::sleep(RPC_GRACE).await;
                };
                tokio::select! {
                    served = serve => if let Err(e) = served {
                        tracing::error!(target: "rpc", "RPC server failed: {e}");
                    },
                    _ = grace => tracing::debug!(target: "rpc", "RPC connections still open at shutdown dropped"),
                }
            }
            .in_current_span(),
        );
        if let Some(farmer) = config.farm {
            tasks.spawn(crate::farm::farmer::run(chain.clone(), farmer, config.farm_threads, shutdown.clone()).in_current_span());
        }
        let tip = chain.tip();
        tracing::info!(target: "node", %node_id, chain = %config.chain.chain_id, genesis = %chain.genesis(), height = tip.height, best = %tip.hash, "node started");
        tracing::info!(target: "node", "node ID {node_id}; peers connect with --peers {node_id}@{host}:{}", p2p_addr.port());
        tracing::info!(target: "rpc", "RPC listening on http://{rpc_addr}");
        if !rpc_addr.ip().is_loopback() {
            let token = match auth.cookie() {
                Some(c) => format!("the token is in {} (cat it, or `cairn --data-dir {}` reads it)", c.display(), config.data_dir.display()),
                None => "the token is the configured rpc_token".into(),
            };
            tracing::warn!(target: "rpc", "the RPC is exposed beyond loopback on {rpc_addr}: every request but /health needs `Authorization: Bearer <token>`; {token}");
        }
        Ok(Node { chain, p2p, rpc_addr, node_id, metrics, shutdown, tasks, span, auth })
    }

    /// The p2p service.
    pub fn p2p(&self) -> &P2p {
        &self.p2p
    }
    /// Where the P2P endpoint listens (dialable on loopback when bound to 0.0.0.0).
    pub fn p2p_addr(&self) -> SocketAddr {
        let a = self.p2p.local_addr();
        if a.ip().is_unspecified() { SocketAddr::from(([127, 0, 0, 1], a.port())) } else { a }
    }
    /// Where the RPC listens.
    pub fn rpc_addr(&self) -> SocketAddr {
        self.rpc_addr
    }
    /// This node's ID.
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }
    /// The chain service.
    pub fn chain(&self) -> &ChainHandle {
        &self.chain
    }
    /// Metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }
    /// The span its log lines are in ([`node_span`]).
    pub fn span(&self) -> &Span {
        &self.span
    }

    /// Stops every task and waits for them; the chain thread stops (and RocksDB closes) once
    /// the last handle is gone.
    pub async fn shutdown(self) {
        let span = self.span.clone();
        async move {
            self.shutdown.cancel();
            self.tasks.close();
            self.tasks.wait().await;
            self.p2p.shutdown().await;
            self.auth.remove_cookie();
            let Node { chain, .. } = self;
            chain.stop().await;
            tracing::info!(target: "node", "node stopped");
        }
        .instrument(span)
        .await
    }
}
