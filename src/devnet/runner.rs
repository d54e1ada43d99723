//! The devnet's one owner task: starts the nodes, refreshes the status once a second, runs
//! the stdin commands one at a time, and stops everything cleanly.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use cairn_chain::ChainSpec;
use cairn_p2p::NodeId;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::load::LoadState;
use super::network::{NetworkView, NodeView, Publisher, RateSample};
use super::partition::Partition;
use super::ports::{self, Ports};
use super::screen::Screen;
use super::slot::Slot;
use super::status::{self, Live, Load, Network, Rates, Row};
use super::workers::Workers;
use super::{DevnetError, DevnetOptions};
use crate::Node;
use crate::chain_service::ChainHandle;
use crate::config::ConfigError;

/// How often the status refreshes.
const STATUS_INTERVAL: Duration = Duration::from_secs(1);
/// Most blocks whose transactions one refresh counts (more means the devnet was started on a
/// long existing chain, or paused: those blocks are counted without their transactions).
const MAX_COUNTED_BLOCKS: u64 = 100;

/// Runs a devnet until `stop` is cancelled (Ctrl-C, SIGTERM) or `quit` arrives on `lines`.
/// A closed `lines` (stdin at EOF) only ends the commands. Every node is shut down before
/// this returns, also when starting fails.
pub async fn run(opts: DevnetOptions, mut lines: mpsc::Receiver<String>, stop: CancellationToken) -> Result<(), DevnetError> {
    opts.validate()?;
    let mut net = Devnet::create(&opts)?;
    for _ in 0..opts.nodes {
        if stop.is_cancelled() {
            break;
        }
        if let Err(e) = net.add_slot().await {
            net.shutdown(false).await;
            return Err(e);
        }
    }
    net.rates = Rates::new(net.best().map_or(0, |n| n.chain().tip().height));
    net.begin();
    net.replan().await;
    let mut tick = tokio::time::interval(STATUS_INTERVAL);
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    net.publish().await;
    let mut stdin_open = true;
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            line = lines.recv(), if stdin_open => match line {
                Some(line) => {
                    if net.handle(&line).await.is_break() {
                        break;
                    }
                    net.publish().await;
                }
                None => stdin_open = false,
            },
            _ = tick.tick() => net.refresh().await,
        }
    }
    net.shutdown(true).await;
    Ok(())
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The data dirs' parent: kept (`--dir`) or temporary (removed when dropped, after the nodes
/// have stopped).
enum Root {
    Kept(PathBuf),
    Temporary(tempfile::TempDir),
}

impl Root {
    fn path(&self) -> &std::path::Path {
        match self {
            Root::Kept(p) => p,
            Root::Temporary(t) => t.path(),
        }
    }
}

/// Everything a devnet is; owned by the [`run`] task alone. The commands are in
/// [`super::control`].
pub(super) struct Devnet {
    root: Root,
    base_port: Option<u16>,
    spec: ChainSpec,
    /// Node k is `slots[k - 1]`; slots are never removed.
    pub(super) slots: Vec<Slot>,
    pub(super) partition: Option<Partition>,
    pub(super) workers: Workers,
    rates: Rates,
    rate: Option<u32>,
    pub(super) screen: Screen,
    started: Instant,
    /// The dashboard's view of the devnet, published to every node's RPC.
    network: Publisher,
}

impl Devnet {
    /// Checks the fixed ports and makes the root dir; starts nothing.
    fn create(opts: &DevnetOptions) -> Result<Devnet, DevnetError> {
        if let Some(base) = opts.base_port {
            let plan = ports::planned(base, opts.nodes).ok_or(DevnetError::PortRange { base, nodes: opts.nodes })?;
            for (i, p) in plan.into_iter().enumerate() {
                ports::check_free(i + 1, p)?;
            }
        }
        let root = match &opts.dir {
            Some(d) => {
                std::fs::create_dir_all(d).map_err(|error| DevnetError::Dir { path: d.clone(), error })?;
                Root::Kept(d.clone())
            }
            None => Root::Temporary(
                tempfile::Builder::new().prefix("cairn-devnet-").tempdir().map_err(|error| DevnetError::Dir { path: std::env::temp_dir(), error })?,
            ),
        };
        let mut spec = match &opts.chain {
            Some(path) => ChainSpec::load(path).map_err(ConfigError::from)?,
            None => ChainSpec::devnet(),
        };
        if let Some(ms) = opts.block_time_ms {
            spec.block_time_ms = ms;
        }
        let farm_to = if opts.farm { spec.dev_key(0).map(|k| k.address()) } else { None };
        let load = opts.tx_rate.and_then(|r| LoadState::new(&spec, r).map(|s| (r, s)));
        Ok(Devnet {
            root,
            base_port: opts.base_port,
            spec,
            slots: Vec::new(),
            partition: None,
            workers: Workers::new(farm_to, load),
            rates: Rates::new(0),
            rate: opts.tx_rate,
            screen: Screen::detect(),
            started: Instant::now(),
            network: Publisher::default(),
        })
    }

    /// Sets the screen up and prints what was started and how to reach it.
    fn begin(&mut self) {
        let (panel, line) = self.render();
        if matches!(self.screen, Screen::Live { .. }) {
            self.screen.status(&panel, &line);
        }
        let kept = match &self.root {
            Root::Kept(p) => format!("data in {} (kept)", p.display()),
            Root::Temporary(t) => format!("data in {} (removed at exit; --dir keeps it)", t.path().display()),
        };
        let genesis = self.spec.genesis().hash().to_string();
        self.screen.say(&format!(
            "cairn devnet: {} nodes on chain {} (genesis {}…) on 127.0.0.1, joined by --peers (mDNS off); {kept}",
            self.slots.len(),
            self.spec.chain_id,
            &genesis[..16]
        ));
        let farming = match self.spec.dev_key(0) {
            Some(k) if self.workers.farming() => {
                format!("farming every {} ms to dev:0 ({}), one farmer per partition group", self.spec.block_time_ms, k.address())
            }
            _ => "not farming (--farm farms at the block time; or POST /farm/blocks on any node)".to_string(),
        };
        let load = match self.rate {
            Some(r) if self.workers.load_counters().is_some() => {
                format!("; {r} transfers a second to fresh addresses, from senders the dev accounts fund in the first block")
            }
            _ => String::new(),
        };
        self.screen.say(&format!("{farming}{load}"));
        let accounts = status::accounts(&self.spec);
        if !accounts.is_empty() {
            self.screen.say(&accounts.join("\n"));
        }
        let rows = self.rows();
        self.screen.say(&status::addresses(&rows).join("\n"));
        self.screen.say("type help for the commands (stop N, start N, add, partition 1 / 2 3, heal, status, quit); Ctrl-C stops the devnet");
    }

    /// The running node with the most work (lowest number on ties) among `numbers`.
    fn leader(&self, numbers: impl IntoIterator<Item = usize>) -> Option<&Node> {
        let mut best: Option<&Node> = None;
        for n in numbers {
            if let Some(node) = n.checked_sub(1).and_then(|i| self.slots.get(i)).and_then(|s| s.node.as_ref())
                && best.is_none_or(|b| node.chain().tip().total_work > b.chain().tip().total_work)
            {
                best = Some(node);
            }
        }
        best
    }

    /// The leading node of the whole network.
    fn best(&self) -> Option<&Node> {
        self.leader(1..=self.slots.len())
    }

    /// Restarts the workers: a farmer on the leader of each group (of the whole network when
    /// not partitioned), the load on the overall leader.
    pub(super) async fn replan(&mut self) {
        self.workers.stop().await;
        let groups: Vec<Vec<usize>> = match &self.partition {
            Some(p) => p.groups().iter().map(|g| g.iter().copied().collect()).collect(),
            None => vec![(1..=self.slots.len()).collect()],
        };
        let farm_on: Vec<ChainHandle> = groups.iter().filter_map(|g| self.leader(g.iter().copied())).map(|n| n.chain().clone()).collect();
        let load_on = self.best().map(|n| n.chain().clone());
        self.workers.start(farm_on, load_on);
    }

    /// The nodes `number` must keep away under the current partition.
    pub(super) fn blocked_for(&self, number: usize) -> HashSet<NodeId> {
        let Some(p) = &self.partition else { return HashSet::new() };
        self.slots.iter().filter(|s| p.separated(number, s.number)).filter_map(|s| s.node_id).collect()
    }

    /// Applies the current partition (or none) to every running node.
    pub(super) async fn apply_partition(&self) {
        for s in &self.slots {
            if let Some(node) = &s.node {
                node.p2p().set_blocked(self.blocked_for(s.number)).await;
            }
        }
    }

    /// Creates and starts the next node, peered (pinned) with every earlier one.
    pub(super) async fn add_slot(&mut self) -> Result<usize, DevnetError> {
        let number = self.slots.len() + 1;
        let ports = match self.base_port {
            Some(base) => ports::for_node(base, number).ok_or(DevnetError::PortRange { base, nodes: number })?,
            None => Ports::default(),
        };
        ports::check_free(number, ports)?;
        if let Some(p) = &mut self.partition {
            p.join_first(number);
        }
        // Under a partition it is given only its own group's addresses, so it never reaches
        // across before the others' block lists name it.
        let part = self.partition.as_ref();
        let peers = self.slots.iter().filter(|s| part.is_none_or(|p| !p.separated(number, s.number))).filter_map(Slot::pinned_address).collect();
        let mut slot = Slot::new(number, self.root.path().join(format!("node{number}")), ports, peers, self.spec.clone()).with_network(self.network.feed());
        if matches!(self.root, Root::Kept(_)) {
            slot = slot.with_log_file();
        }
        slot.start(self.blocked_for(number)).await?;
        self.slots.push(slot);
        // Nodes of other groups must refuse the newcomer too.
        self.apply_partition().await;
        Ok(number)
    }

    /// Every node as shown.
    pub(super) fn rows(&self) -> Vec<Row> {
        self.slots
            .iter()
            .map(|s| Row {
                number: s.number,
                node_id: s.node_id,
                p2p: s.p2p_addr(),
                rpc: s.rpc_url(),
                group: self.partition.as_ref().and_then(|p| p.group_of(s.number)).map(|g| g + 1),
                live: s.node.as_ref().map(|n| {
                    let tip = n.chain().tip();
                    Live { height: tip.height, best: tip.hash, peers: n.p2p().peer_count(), syncing: n.p2p().is_syncing(), mempool: n.metrics().mempool() }
                }),
            })
            .collect()
    }

    pub(super) fn render(&self) -> (Vec<String>, String) {
        let rows = self.rows();
        let (blocks_per_s, txs_per_s, sent_per_s) = self.rates.per_second();
        let net = Network {
            uptime: self.started.elapsed(),
            blocks_per_s,
            txs_per_s,
            farming: self.workers.farming(),
            load: self.rate.zip(self.workers.load_counters()).map(|(rate, c)| Load {
                rate,
                sent: c.submitted.load(Ordering::Relaxed),
                sent_per_s,
                refused: c.deferred.load(Ordering::Relaxed) + c.refused.load(Ordering::Relaxed),
                funded: (c.funded.load(Ordering::Relaxed), c.senders.load(Ordering::Relaxed)),
            }),
            partition: self.partition.as_ref().map(Partition::to_string),
        };
        (status::panel(&rows, &net, super::screen::width()), status::line(&rows, &net))
    }

    /// Counts the new best-chain blocks and their transactions, then shows the status.
    async fn refresh(&mut self) {
        let mut new_txs = 0;
        let mut height = self.rates.counted();
        if let Some(node) = self.best() {
            height = node.chain().tip().height;
            let from = self.rates.counted() + 1;
            if height >= from && height - from < MAX_COUNTED_BLOCKS {
                for h in from..=height {
                    if let Ok(Some(b)) = node.chain().block_at(h).await {
                        new_txs += b.transactions.len() as u64;
                    }
                }
            }
        }
        let sent = self.workers.load_counters().map_or(0, |c| c.submitted.load(Ordering::Relaxed));
        self.rates.record(Instant::now(), height, new_txs, sent);
        let (blocks_per_s, txs_per_s, _) = self.rates.per_second();
        self.network.sample(RateSample { t_ms: millis(self.started.elapsed()), blocks_per_s, txs_per_s });
        self.publish().await;
        let (panel, line) = self.render();
        self.screen.status(&panel, &line);
    }

    /// Records every running node's tip in the block tree and publishes the network view.
    async fn publish(&mut self) {
        let mut nodes = Vec::with_capacity(self.slots.len());
        let by_id: std::collections::HashMap<NodeId, usize> = self.slots.iter().filter_map(|s| Some((s.node_id?, s.number))).collect();
        for s in &self.slots {
            let live = s.node.as_ref().map(|n| (n.chain().clone(), n.chain().tip(), n.p2p().clone(), n.metrics().mempool()));
            if let Some((chain, tip, _, _)) = &live {
                self.network.tree_mut().record(chain, tip.hash).await;
            }
            let mut peers: Vec<usize> =
                live.as_ref().map_or_else(Vec::new, |(_, _, p2p, _)| p2p.peers().iter().filter_map(|p| by_id.get(&p.node_id).copied()).collect());
            peers.sort_unstable();
            nodes.push(NodeView {
                number: s.number,
                name: format!("node{}", s.number),
                node_id: s.node_id,
                rpc: s.rpc_url(),
                up: live.is_some(),
                group: self.partition.as_ref().and_then(|p| p.group_of(s.number)).map(|g| g + 1),
                height: live.as_ref().map(|(_, tip, ..)| tip.height),
                tip: live.as_ref().map(|(_, tip, ..)| tip.hash),
                peers,
                syncing: live.as_ref().is_some_and(|(_, _, p2p, _)| p2p.is_syncing()),
                mempool: live.as_ref().map_or(0, |l| l.3),
            });
        }
        self.network.publish(NetworkView {
            uptime_ms: millis(self.started.elapsed()),
            nodes,
            partition: self.partition.as_ref().map(|p| p.groups().iter().map(|g| g.iter().copied().collect()).collect()),
            farming: self.workers.farming(),
            ..NetworkView::default()
        });
    }

    /// Stops the workers, then every node at once; gives the terminal back. `announce` says
    /// so on stdout (not after a failed start: the error line is the whole story).
    async fn shutdown(&mut self, announce: bool) {
        self.workers.stop().await;
        let mut stopping = JoinSet::new();
        for s in &mut self.slots {
            if let Some(node) = s.node.take() {
                stopping.spawn(node.shutdown());
            }
        }
        while let Some(r) = stopping.join_next().await {
            if let Err(e) = r {
                tracing::error!(target: "devnet", "node shutdown failed: {e}");
            }
        }
        self.screen.close();
        if announce {
            let data = match &self.root {
                Root::Kept(p) => format!("data kept in {}", p.display()),
                Root::Temporary(_) => "temporary data removed".to_string(),
            };
            self.screen.say(&format!("devnet stopped: {} nodes shut down, {data}", self.slots.len()));
        }
    }
}
