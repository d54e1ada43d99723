//! The simulation: settings, the world every node acts on (engine, network, blocks,
//! measurements), and [`Sim`], which runs events and the scenario's commands (partitions,
//! crashes, restarts, new nodes).

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use cairn_chain::{Hash, PublicKey};
use cairn_p2p::P2pConfig;
use cairn_p2p::identity::NodeId;
use cairn_p2p::wire::Message;
use rand::Rng;

use crate::blocks::{Factory, PoolConfig};
use crate::engine::{Engine, SECOND, Time};
pub use crate::metrics::Metrics;
use crate::net::{ConnId, Net, NetConfig};
use crate::node::{Node, TICK};

/// How much of the real code each message goes through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fidelity {
    /// Every message encoded and decoded by the real wire code; blocks decoded and checked by
    /// the real stateless rules (signatures too); compact blocks rebuilt by the real
    /// `Partial`. For the scenarios (small blocks, tens of nodes).
    Full,
    /// Messages are the real values, counted by their real encoded size but not encoded;
    /// block bodies are shared from the registry; validity is the maker's flag; compact
    /// rebuilds come from the mempool model. Costs are virtual time. For the 1,000-node run.
    Light,
}

/// Which chain each node keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChainKind {
    /// The real `cairn_chain::Chain` over its in-memory store (every rule, state included).
    Real,
    /// [`crate::chain::LightChain`]: the block tree, with the real stateless checks in
    /// [`Fidelity::Full`] and none in `Light`.
    Light,
}

/// How a hostile node misbehaves (the misbehaviours the p2p redesign guards against).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hostile {
    /// Farms blocks whose Merkle root is wrong (good proof), announces them compact, serves
    /// them whole.
    InvalidBlocks,
    /// Answers pings and status, never a header, block or transaction request; announces
    /// nothing.
    Stall,
    /// Announces blocks that do not exist and claims work it cannot show; answers `get_block`
    /// with "not found".
    AnnounceNoServe,
    /// Floods unsolicited messages past the rate limit.
    Spam,
}

/// Settings of a run.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The seed everything random derives from.
    pub seed: u64,
    /// Nodes at the start.
    pub nodes: usize,
    /// The links.
    pub net: NetConfig,
    /// How much real code messages go through.
    pub fidelity: Fidelity,
    /// Which chain nodes keep.
    pub chain: ChainKind,
    /// Mean time between blocks (a Poisson process over the farming nodes).
    pub block_time: Time,
    /// Transactions per block.
    pub txs_per_block: u64,
    /// Distinct transactions in the pool.
    pub pool: usize,
    /// Announce new tips as compact blocks (the node's behaviour); `false`: `new_block` and
    /// whole blocks, for comparison.
    pub compact: bool,
    /// Fraction of (node, transaction) pairs missing from mempools.
    pub mempool_miss: f64,
    /// Hostile nodes by number.
    pub hostile: Vec<(usize, Hostile)>,
    /// Outbound peers each node keeps (the node's `target_outbound`).
    pub target_outbound: usize,
    /// Inbound slots (the node's `max_inbound`).
    pub max_inbound: usize,
    /// The handshake's deadline.
    pub handshake_timeout: Duration,
    /// When a crashed peer's connections end at the other side (QUIC's idle timeout).
    pub idle_timeout: Time,
    /// Drop one outbound peer this often (not a node feature; see the partition scenario).
    pub rotate_every: Option<Time>,
    /// Ask at most one announcer for a block announced by `new_block` at a time, for this
    /// long (not a node feature: a proposal the scale run measures; the node asks every
    /// announcer until the block arrives).
    pub one_get_block: Option<Time>,
    /// Relay transactions for real (the relay's `TxRequests`, `tx_ids`/`get_txs`/
    /// `transactions`), each made at a random node; otherwise mempools are the model of
    /// [`crate::blocks`] (the scale run).
    pub tx_relay: bool,
}

impl SimConfig {
    /// The scenarios' settings: full fidelity, the real chain, 50–200 ms links, 10 s blocks of
    /// 16 signed transfers (one from each dev account).
    pub fn scenario(seed: u64, nodes: usize) -> SimConfig {
        SimConfig {
            seed,
            nodes,
            net: NetConfig::default(),
            fidelity: Fidelity::Full,
            chain: ChainKind::Real,
            block_time: 10 * SECOND,
            txs_per_block: 16,
            // 256 blocks' worth: more than any scenario's chain grows.
            pool: 16 * 256,
            compact: true,
            mempool_miss: 0.02,
            hostile: Vec::new(),
            target_outbound: 8,
            max_inbound: 64,
            handshake_timeout: Duration::from_secs(5),
            idle_timeout: 30 * SECOND,
            rotate_every: None,
            one_get_block: None,
            tx_relay: true,
        }
    }
}

/// What travels: the message itself (Light), or its real encoding (Full).
pub enum Payload {
    /// The message value.
    Msg(Message),
    /// Its encoding by `wire::encode`.
    Frame(Bytes),
}

/// Everything that happens.
pub enum Event {
    /// A message reaches a node.
    Deliver {
        /// The connection.
        conn: ConnId,
        /// The receiver.
        to: usize,
        /// The receiver's incarnation when sent (a restarted node gets nothing of the old).
        inc: u32,
        /// The message.
        payload: Payload,
    },
    /// The other end closed the connection.
    Closed {
        /// The connection.
        conn: ConnId,
        /// The node told.
        to: usize,
        /// Its incarnation.
        inc: u32,
    },
    /// A node's beat.
    Tick {
        /// The node.
        node: usize,
        /// Its incarnation.
        inc: u32,
    },
    /// Some farming node finds a block.
    Mine,
    /// Pool transaction `i` is made at a random running node (with `tx_relay`).
    Tx(u64),
}

/// What every node acts on.
pub struct World {
    /// The run's settings.
    pub cfg: SimConfig,
    /// The node settings the machines take (the production defaults).
    pub p2p: P2pConfig,
    /// Clock, queue, RNG, trace.
    pub eng: Engine<Event>,
    /// Links.
    pub net: Net,
    /// Blocks and transactions.
    pub factory: Factory,
    /// Measurements.
    pub metrics: Metrics,
    /// Node IDs by number.
    pub ids: Vec<NodeId>,
    index: HashMap<NodeId, usize>,
    /// Whether each node runs.
    pub up: Vec<bool>,
    /// Each node's incarnation (restarts).
    pub inc: Vec<u32>,
    /// When each node last started (its mempool holds what arrived since).
    pub since: Vec<Time>,
    /// Whether others know each node's address (a node that left is forgotten by dialers
    /// only through failures; one not yet joined is unknown).
    pub known: Vec<bool>,
}

impl World {
    /// Sends `m` on `conn` from `from`, leaving at `at`.
    pub fn send(&mut self, conn: ConnId, from: usize, m: &Message, at: Time) {
        let (payload, len) = match self.cfg.fidelity {
            Fidelity::Full => {
                let b = cairn_p2p::wire::encode(m);
                let n = b.len();
                (Payload::Frame(b), n)
            }
            Fidelity::Light => (Payload::Msg(m.clone()), cairn_p2p::wire::encoded_len(m)),
        };
        let frame = len + 4;
        self.metrics.sent(m.kind(), frame);
        if let Some((to, arrive)) = self.net.route(conn, from, frame, at, &mut self.eng.rng) {
            let inc = self.inc[to];
            self.eng.schedule(arrive, Event::Deliver { conn, to, inc, payload });
        }
    }

    /// Tells `to` that `from` closed `conn`: after the link (the close frame) or after
    /// `delay` (QUIC's idle timeout, for a crash); never across a partition.
    pub fn close_conn(&mut self, conn: ConnId, from: usize, to: usize, at: Time, delay: Option<Time>) {
        let inc = self.inc[to];
        let when = match delay {
            Some(d) => self.net.reachable(from, to).then_some(at + d),
            None => self.net.route(conn, from, 64, at, &mut self.eng.rng).map(|(_, t)| t),
        };
        if let Some(t) = when {
            self.eng.schedule(t, Event::Closed { conn, to, inc });
        }
    }

    /// A node's tip moved.
    pub fn tip_changed(&mut self, node: usize, at: Time, hash: Hash) {
        self.metrics.tip_changes += 1;
        self.eng.trace(&(node as u64).to_le_bytes());
        self.eng.trace(&at.to_le_bytes());
        self.eng.trace(&hash.0);
    }

    /// A node's number.
    pub fn index_of(&self, id: &NodeId) -> usize {
        self.index.get(id).copied().unwrap_or(usize::MAX)
    }
}

/// A simulated network of nodes. See the crate doc.
pub struct Sim {
    /// The world.
    pub w: World,
    /// The nodes, by number.
    pub nodes: Vec<Node>,
    mining: bool,
}

fn node_id(seed: u64, idx: usize) -> NodeId {
    let mut h = blake3::Hasher::new();
    h.update(&seed.to_le_bytes());
    h.update(&(idx as u64).to_le_bytes());
    PublicKey(h.finalize().into())
}

impl Sim {
    /// Builds the network; nodes start dialing at their first beat, and farming starts at
    /// once.
    pub fn new(cfg: SimConfig) -> Sim {
        let pool = PoolConfig {
            txs_per_block: cfg.txs_per_block,
            pool: cfg.pool,
            signed: cfg.fidelity == Fidelity::Full,
            block_time: cfg.block_time,
            mempool_miss: cfg.mempool_miss,
            stateful: cfg.chain == ChainKind::Real,
        };
        let factory = Factory::new(cfg.seed, &pool);
        let n = cfg.nodes;
        let ids: Vec<NodeId> = (0..n).map(|i| node_id(cfg.seed, i)).collect();
        let index = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        let w = World {
            net: Net::new(cfg.net.clone(), n, cfg.seed),
            eng: Engine::new(cfg.seed),
            factory,
            metrics: Metrics::default(),
            ids,
            index,
            up: vec![true; n],
            inc: vec![0; n],
            since: vec![0; n],
            known: vec![true; n],
            p2p: P2pConfig::default(),
            cfg,
        };
        let mut sim = Sim { nodes: Vec::new(), w, mining: true };
        for i in 0..n {
            let hostile = sim.w.cfg.hostile.iter().find(|(h, _)| *h == i).map(|(_, k)| *k);
            let node = Node::new(i, sim.w.ids[i], hostile, &sim.w);
            sim.nodes.push(node);
            sim.schedule_tick(i);
        }
        sim.schedule_mine();
        if sim.w.cfg.tx_relay {
            // What was made before the run is everywhere already; the rest is made as it goes.
            let mut i = 0;
            while sim.w.factory.created(i) < 0 {
                for node in 0..n {
                    sim.nodes[node].accept_tx(&sim.w, i, None);
                }
                i += 1;
            }
            sim.schedule_tx(i);
        }
        sim
    }

    fn schedule_tx(&mut self, i: u64) {
        let at = u64::try_from(self.w.factory.created(i)).unwrap_or(0);
        self.w.eng.schedule(at, Event::Tx(i));
    }

    fn schedule_tick(&mut self, i: usize) {
        let offset = self.w.eng.rng.gen_range(0..TICK);
        let inc = self.w.inc[i];
        let now = self.w.eng.now();
        self.w.eng.schedule(now + offset, Event::Tick { node: i, inc });
    }

    fn schedule_mine(&mut self) {
        let u: f64 = self.w.eng.rng.r#gen::<f64>().max(1e-12);
        let gap = (-u.ln() * self.w.cfg.block_time as f64) as Time;
        let now = self.w.eng.now();
        self.w.eng.schedule(now + gap.max(1), Event::Mine);
    }

    /// Virtual time now.
    pub fn now(&self) -> Time {
        self.w.eng.now()
    }

    /// Farming on or off.
    pub fn set_mining(&mut self, on: bool) {
        self.mining = on;
    }

    /// Runs events for `d` of virtual time.
    pub fn run_for(&mut self, d: Time) {
        let until = self.now() + d;
        while let Some(ev) = self.w.eng.next(until) {
            self.step(ev);
        }
    }

    /// Runs until `done` holds (checked every virtual second) or `limit` passes; whether it
    /// held.
    pub fn run_until(&mut self, limit: Time, done: impl Fn(&Sim) -> bool) -> bool {
        let end = self.now() + limit;
        while self.now() < end {
            if done(self) {
                return true;
            }
            self.run_for(SECOND.min(end - self.now()));
        }
        done(self)
    }

    fn step(&mut self, ev: Event) {
        let now = self.w.eng.now();
        match ev {
            Event::Deliver { conn, to, inc, payload } => {
                if !self.w.up[to] || self.w.inc[to] != inc {
                    return;
                }
                self.w.eng.trace(&now.to_le_bytes());
                self.w.eng.trace(&conn.to_le_bytes());
                self.w.eng.trace(&(to as u64).to_le_bytes());
                match &payload {
                    Payload::Frame(b) => {
                        self.w.eng.trace(blake3::hash(b).as_bytes());
                    }
                    Payload::Msg(m) => {
                        self.w.eng.trace(m.kind().as_bytes());
                    }
                }
                let node = &mut self.nodes[to];
                node.begin(now);
                node.on_deliver(&mut self.w, conn, payload);
                node.end(&mut self.w);
            }
            Event::Closed { conn, to, inc } => {
                if !self.w.up[to] || self.w.inc[to] != inc {
                    return;
                }
                let node = &mut self.nodes[to];
                node.begin(now);
                node.on_closed(&mut self.w, conn);
                node.end(&mut self.w);
            }
            Event::Tick { node: i, inc } => {
                if !self.w.up[i] || self.w.inc[i] != inc {
                    return;
                }
                let node = &mut self.nodes[i];
                node.begin(now);
                node.tick(&mut self.w);
                node.end(&mut self.w);
                self.w.eng.schedule(now + TICK, Event::Tick { node: i, inc });
            }
            Event::Mine => {
                if self.mining {
                    let farmers: Vec<usize> =
                        (0..self.nodes.len()).filter(|i| self.w.up[*i] && matches!(self.nodes[*i].hostile, None | Some(Hostile::InvalidBlocks))).collect();
                    if !farmers.is_empty() {
                        let i = farmers[self.w.eng.rng.gen_range(0..farmers.len())];
                        let node = &mut self.nodes[i];
                        node.begin(now);
                        node.mine(&mut self.w);
                        node.end(&mut self.w);
                    }
                }
                self.schedule_mine();
            }
            Event::Tx(i) => {
                let up: Vec<usize> = self.honest_up();
                if !up.is_empty() {
                    let origin = up[self.w.eng.rng.gen_range(0..up.len())];
                    let node = &mut self.nodes[origin];
                    node.begin(now);
                    node.accept_tx(&self.w, i, None);
                    node.end(&mut self.w);
                }
                self.schedule_tx(i + 1);
            }
        }
    }

    /// Node `i` farms a block now (whatever the farming process draws).
    pub fn mine_by(&mut self, i: usize) {
        if !self.w.up[i] {
            return;
        }
        let now = self.now();
        let node = &mut self.nodes[i];
        node.begin(now);
        node.mine(&mut self.w);
        node.end(&mut self.w);
    }

    /// Partitions the network: `groups[i]` is node `i`'s side.
    pub fn partition(&mut self, groups: Vec<u32>) {
        self.w.net.set_groups(groups);
    }

    /// Heals every partition.
    pub fn heal(&mut self) {
        let n = self.nodes.len();
        self.w.net.set_groups(vec![0; n]);
    }

    /// Crashes node `i` (its connections die; its chain stays).
    pub fn crash(&mut self, i: usize) {
        if !self.w.up[i] {
            return;
        }
        let now = self.now();
        self.nodes[i].begin(now);
        self.nodes[i].crash(&mut self.w);
        self.w.up[i] = false;
    }

    /// Restarts node `i` with its chain and bans, nothing else.
    pub fn restart(&mut self, i: usize) {
        if self.w.up[i] {
            return;
        }
        self.w.up[i] = true;
        self.w.inc[i] += 1;
        self.w.since[i] = self.now();
        self.schedule_tick(i);
    }

    /// A new node with an empty chain joins; its number.
    pub fn add_node(&mut self) -> usize {
        let i = self.nodes.len();
        let id = node_id(self.w.cfg.seed, i);
        self.w.ids.push(id);
        self.w.index.insert(id, i);
        self.w.up.push(true);
        self.w.inc.push(0);
        self.w.since.push(self.now());
        self.w.known.push(true);
        self.w.net.add_node();
        let node = Node::new(i, id, None, &self.w);
        self.nodes.push(node);
        self.schedule_tick(i);
        i
    }

    /// The honest nodes that run.
    pub fn honest_up(&self) -> Vec<usize> {
        (0..self.nodes.len()).filter(|i| self.w.up[*i] && self.nodes[*i].hostile.is_none()).collect()
    }

    /// The one tip every running honest node has, if they agree.
    pub fn agreed_tip(&self) -> Option<Hash> {
        let mut tips = self.honest_up().into_iter().map(|i| self.nodes[i].chain.tip().hash);
        let first = tips.next()?;
        tips.all(|t| t == first).then_some(first)
    }

    /// The most-work tip any running honest node has (the lowest node number on ties).
    pub fn best_node(&self) -> Option<usize> {
        self.honest_up().into_iter().max_by(|a, b| self.nodes[*a].chain.tip().work.cmp(&self.nodes[*b].chain.tip().work).then(b.cmp(a)))
    }

    /// The run's trace hash: every delivered message and every tip change, in order.
    pub fn trace_hash(&self) -> String {
        self.w.eng.trace_hash()
    }
}
