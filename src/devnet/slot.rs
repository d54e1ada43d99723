//! One node's place in the devnet: its number, data dir, ports and peers, which outlive the
//! running [`Node`] so `start N` brings the same node back (same key, chain and ports).

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use cairn_chain::{ChainSpec, MempoolLimits};
use cairn_p2p::NodeId;

use super::DevnetError;
use super::network::NetworkFeed;
use super::ports::Ports;
use crate::Node;
use crate::config::{NodeConfig, Overrides, resolve};

/// How often a devnet node looks for peers to dial: the network is local, so a restarted
/// node is back in well under a second (the Internet default is 2 s).
const DIAL_INTERVAL: Duration = Duration::from_millis(500);
/// First redial delay after a failed dial.
const BACKOFF_BASE: Duration = Duration::from_millis(250);
/// Longest redial delay: a node stopped for a minute is redialled within seconds of its
/// restart (the Internet default, 5 minutes, would leave it alone that long).
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// A devnet node, running or stopped.
pub struct Slot {
    /// 1-based, as users name it (`stop 2`).
    pub number: usize,
    /// Its data dir (RocksDB, node key).
    pub dir: PathBuf,
    /// Its ports: fixed by `--base-port`, else picked at first start and kept.
    pub ports: Ports,
    /// Pinned addresses (`ID@127.0.0.1:PORT`) of the nodes it was created after.
    pub peers: Vec<String>,
    /// Known once it has run.
    pub node_id: Option<NodeId>,
    /// The running node.
    pub node: Option<Node>,
    /// The chain spec it runs, parsed once for the whole devnet (so every node, restarted or
    /// added later, has the same genesis even if the file changes meanwhile).
    spec: ChainSpec,
    /// Whether its log lines also go to `dir/node.log`.
    log_file: bool,
    /// The devnet's network view, served by its RPC at `GET /devnet/network`.
    network: Option<NetworkFeed>,
}

impl Slot {
    /// A slot not yet started, to run `spec`.
    pub fn new(number: usize, dir: PathBuf, ports: Ports, peers: Vec<String>, spec: ChainSpec) -> Slot {
        Slot { number, dir, ports, peers, node_id: None, node: None, spec, log_file: false, network: None }
    }

    /// Serves the devnet's network view from its RPC.
    pub fn with_network(mut self, feed: NetworkFeed) -> Slot {
        self.network = Some(feed);
        self
    }

    /// Also writes its node's log lines to `node.log` in its data dir (`--dir` kept dirs).
    pub fn with_log_file(mut self) -> Slot {
        self.log_file = true;
        self
    }

    /// Whether its node runs.
    pub fn is_running(&self) -> bool {
        self.node.is_some()
    }

    /// Where its P2P endpoint listens.
    pub fn p2p_addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.ports.p2p))
    }

    /// Its RPC URL.
    pub fn rpc_url(&self) -> String {
        format!("http://{}", SocketAddr::from((Ipv4Addr::LOCALHOST, self.ports.rpc)))
    }

    /// `ID@127.0.0.1:PORT`, once it has run.
    pub fn pinned_address(&self) -> Option<String> {
        self.node_id.map(|id| format!("{id}@{}", self.p2p_addr()))
    }

    /// Starts its node with `blocked` kept away from the first moment, and records the ports
    /// and node ID it got.
    pub async fn start(&mut self, blocked: HashSet<NodeId>) -> Result<(), DevnetError> {
        let config = self.config()?;
        if self.log_file {
            // Before the start, so its first lines are there too.
            std::fs::create_dir_all(&self.dir).map_err(|error| DevnetError::Dir { path: self.dir.clone(), error })?;
            let path = self.dir.join("node.log");
            crate::node_log::attach(&format!("node{}", self.number), &path).map_err(|error| DevnetError::Dir { path, error })?;
        }
        let node = Node::start(config).await.map_err(|error| DevnetError::Node { number: self.number, error })?;
        if !blocked.is_empty() {
            node.p2p().set_blocked(blocked).await;
        }
        self.ports = Ports { p2p: node.p2p_addr().port(), rpc: node.rpc_addr().port() };
        self.node_id = Some(node.node_id());
        self.node = Some(node);
        Ok(())
    }

    /// Stops its node (flushing and closing its store); a no-op if stopped.
    pub async fn stop(&mut self) {
        if let Some(node) = self.node.take() {
            node.shutdown().await;
        }
    }

    /// A node config: named `node<N>` (its number, as the panel shows it), the devnet's chain
    /// spec, loopback only, mDNS off, no seeds, quick redials, and a mempool that holds two
    /// full blocks (a load at the chain's capacity fills every block).
    fn config(&self) -> Result<NodeConfig, DevnetError> {
        let mut c = resolve(Overrides {
            name: Some(format!("node{}", self.number)),
            data_dir: Some(self.dir.clone()),
            p2p_port: Some(self.ports.p2p),
            rpc_port: Some(self.ports.rpc),
            peers: Some(self.peers.clone()),
            no_mdns: true,
            ..Overrides::default()
        })?;
        // As `resolve` derives them from a spec it loads itself.
        c.p2p.max_frame = self.spec.max_block_bytes as usize + cairn_p2p::config::FRAME_OVERHEAD;
        c.mempool = MempoolLimits::for_spec(&self.spec);
        c.chain = self.spec.clone();
        c.p2p_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.ports.p2p));
        c.seeds.clear();
        c.p2p.dial_interval = DIAL_INTERVAL;
        c.p2p.backoff_base = BACKOFF_BASE;
        c.p2p.backoff_max = BACKOFF_MAX;
        c.devnet_network = self.network.clone();
        Ok(c)
    }
}
