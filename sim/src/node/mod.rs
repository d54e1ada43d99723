//! One simulated node: the real protocol machines, and a small synchronous glue in place of
//! the node's async actors.
//!
//! # What is real and what is glue
//! Driven as the node drives them (same inputs, same outputs acted on):
//! - `cairn_p2p::handshake::Handshake` (both roles, admission step, timeout);
//! - `cairn_p2p::peer::protocol::PeerProtocol` (heartbeat, ping timeout, rate limit, request
//!   tracking, count limits, every judgement it makes);
//! - `cairn_p2p::sync::download::Download` (catch-up schedule, stalls),
//!   `cairn_p2p::sync::orphans::Orphans`, `cairn_p2p::sync::compact::Rebuilding`,
//!   `cairn_p2p::sync::Recent` (the sync task's bounded block-source map);
//! - `cairn_chain::compact::{CompactBlock, Partial}` (short IDs, rebuild, fill, Merkle check)
//!   in [`crate::Fidelity::Full`];
//! - `cairn_p2p::bans::Bans` (scores, decay, threshold), `cairn_p2p::verdict` (the points
//!   table, `block_verdict`), `cairn_p2p::peer::unrequested_block_wanted`;
//! - `cairn_chain::check_header_alone` and (Full) `check_stateless`; the wire encoding
//!   (`cairn_p2p::wire::encode`/`decode` in Full, `encoded_len` in Light).
//!
//! Re-implemented as glue (each function names the real one it follows):
//! - the peer task's `carry_out`, `serve` and `sync` (peer/task.rs): answers from the chain,
//!   decoding and the checks alone before the sync sees anything;
//! - the sync task (sync/mod.rs): `handle`, `take_compact`, `take_headers`, `take_block`,
//!   `release_orphans`, `dispatch`, `tick`, `announce_tip`; its import pipeline
//!   (sync/import.rs) becomes a synchronous loop over `Download::take_ready`;
//! - the peer manager (manager/mod.rs): admission (bans, duplicates, inbound limit),
//!   registration, judgement through `Bans`, dialing (`dial_more`: random known nodes instead
//!   of the address book's order; failed dials back off 1 s doubling to 300 s);
//! - the transaction relay (sync/gossip.rs's task) around the real
//!   `cairn_p2p::sync::TxRequests`, with `SimConfig::tx_relay` (the scenarios); without it
//!   (the scale run) the mempool is a model (see [`crate::blocks`]) and
//!   `tx_ids`/`get_txs`/`transactions` are never sent. The mempool is a set of pool
//!   transactions, valid by construction, not the real `Mempool`.
//!
//! Files: `conn.rs` (connections, the manager's part), `peer.rs` (the peer task's part),
//! `sync.rs` (the sync task's part), `relay.rs` (the transaction relay's part), `hostile.rs`
//! (misbehaviour); this file holds the node's
//! state, its beat and its farming.
//!
//! One node event runs start to finish; its processing cost (block checks, rebuilds) moves the
//! node's clock on, and what it sends leaves at that later time: a node is a single server
//! queue, the shape of the real node's chain thread.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use cairn_chain::compact::{CompactBlock, Partial};
use cairn_chain::{Address, Block, BlockError, Hash, Header, Transaction, Work};
use cairn_p2p::bans::Bans;
use cairn_p2p::config::{MAX_BLOCKS_PER_REQUEST, MAX_HEADERS, MAX_LOCATOR, PROTOCOL_VERSION};
use cairn_p2p::handshake::{Handshake, HsAction, Refusal};
use cairn_p2p::identity::NodeId;
use cairn_p2p::peer::protocol::{Action, Close, PING_TIMEOUT, PeerProtocol, ProtocolConfig, Serve, ToSync};
use cairn_p2p::ports::Submitted;
use cairn_p2p::sync::compact::Rebuilding;
use cairn_p2p::sync::download::{Claim, Download, HeadersFrom, HeadersRejected, MAX_BUFFERED};
use cairn_p2p::sync::orphans::Orphans;
use cairn_p2p::sync::{Recent, TxRequests};
use cairn_p2p::verdict::{Misbehaviour, Verdict, block_verdict};
use cairn_p2p::wire::{BlockId, Hello, Message, PeerAddress, RejectReason, WireError};
use rand::Rng;

use crate::blocks::{Factory, Made};
use crate::chain::{ChainModel, LightChain, RealChain};
use crate::engine::{MS, SECOND, Time, mix};
use crate::net::ConnId;
use crate::world::{ChainKind, Fidelity, Hostile, Payload, World};

mod conn;
mod hostile;
mod peer;
mod relay;
mod sync;

/// How often a node's timers run: the sync task's 250 ms tick (peer heartbeats and
/// handshake deadlines are checked at the same beat, so they fire up to 250 ms late).
pub const TICK: Time = 250 * MS;

/// Modelled cost of checking and committing a block: a base, and per transaction (signatures
/// already verified at mempool admission, as the real signature cache saves).
const BLOCK_COST: Time = 500_000;
const BLOCK_COST_PER_TX: Time = 5_000;
/// Modelled cost of a compact block's rebuild per mempool candidate (one keyed hash).
const REBUILD_COST_PER_TX: Time = 300;

/// How long an automatic ban lasts (the node's default).
const BAN_MS: u64 = 24 * 3600 * 1000;

struct Up {
    proto: PeerProtocol,
    work: Work,
    asked_for: Work,
}

enum Phase {
    Hs(Box<Handshake>),
    Up(Box<Up>),
}

struct Side {
    remote: usize,
    remote_id: NodeId,
    outbound: bool,
    phase: Phase,
}

/// One node. See the module doc.
pub struct Node {
    /// Its number.
    pub idx: usize,
    /// Its node ID.
    pub id: NodeId,
    /// How it misbehaves, if it does.
    pub hostile: Option<Hostile>,
    /// Its chain.
    pub chain: Box<dyn ChainModel>,
    sides: BTreeMap<ConnId, Side>,
    by_id: BTreeMap<NodeId, ConnId>,
    download: Download,
    orphans: Orphans,
    rebuilding: Rebuilding,
    /// Light fidelity: the indexes each compact block being rebuilt waits for.
    light_missing: HashMap<Hash, Vec<u32>>,
    /// Who sent which block (the sync task's `block_sources`).
    sources: Recent<NodeId>,
    announced: Option<Hash>,
    last_tip: Hash,
    /// Scores and bans: kept across a restart (the real node persists them).
    pub bans: Bans,
    failures: HashMap<usize, (u32, Time)>,
    clock: Time,
    busy_until: Time,
    next_dial: Time,
    next_rotate: Time,
    /// Blocks a hostile maker made and serves (its chain refuses them).
    stash: HashMap<Hash, Arc<Made>>,
    /// The mempool (pool indexes), with `tx_relay`.
    mempool: BTreeSet<u64>,
    /// Every transaction this node has had (pending or confirmed): not fetched again.
    known_txs: HashSet<u64>,
    /// IDs waiting for the next flush, per peer.
    relay_queue: BTreeMap<NodeId, Vec<Hash>>,
    /// What is asked of whom (the relay's real table).
    tx_requests: TxRequests,
    /// Who sent which transaction (not to announce it back).
    tx_sources: Recent<NodeId>,
    next_reannounce: Time,
    /// With `one_get_block`: the block requests in flight, whom and since when.
    asked_block: Recent<(NodeId, Time)>,
}

fn addr_of(idx: usize) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, (idx >> 16) as u8, (idx >> 8) as u8, idx as u8), 9000))
}

impl Node {
    /// A node with a chain holding only genesis.
    pub fn new(idx: usize, id: NodeId, hostile: Option<Hostile>, w: &World) -> Node {
        let chain: Box<dyn ChainModel> = match w.cfg.chain {
            ChainKind::Real => match RealChain::new(&w.factory.spec) {
                Ok(c) => Box::new(c),
                // A memory store cannot fail to open; were it to, the light model stands in.
                Err(_) => Box::new(LightChain::new(w.factory.spec.clone(), w.factory.genesis.clone(), true)),
            },
            ChainKind::Light => Box::new(LightChain::new(w.factory.spec.clone(), w.factory.genesis.clone(), w.cfg.fidelity == Fidelity::Full)),
        };
        let tip = chain.tip().hash;
        Node {
            idx,
            id,
            hostile,
            chain,
            sides: BTreeMap::new(),
            by_id: BTreeMap::new(),
            download: Download::default(),
            orphans: Orphans::default(),
            rebuilding: Rebuilding::default(),
            light_missing: HashMap::new(),
            sources: Recent::default(),
            announced: Some(tip),
            last_tip: tip,
            bans: Bans::default(),
            failures: HashMap::new(),
            clock: 0,
            busy_until: 0,
            next_dial: 0,
            next_rotate: 0,
            stash: HashMap::new(),
            asked_block: Recent::default(),
            mempool: BTreeSet::new(),
            known_txs: HashSet::new(),
            relay_queue: BTreeMap::new(),
            tx_requests: TxRequests::default(),
            tx_sources: Recent::default(),
            next_reannounce: 0,
        }
    }

    /// Registered peers (node numbers), in connection order.
    pub fn peers(&self) -> Vec<usize> {
        self.sides.values().filter(|s| matches!(s.phase, Phase::Up(_))).map(|s| s.remote).collect()
    }

    /// Registered outbound peers.
    pub fn outbound(&self) -> usize {
        self.sides.values().filter(|s| s.outbound && matches!(s.phase, Phase::Up(_))).count()
    }

    pub(super) fn inst(&self, w: &World) -> Instant {
        w.eng.instant(self.clock)
    }

    pub(super) fn now_ms(&self, w: &World) -> u64 {
        w.factory.spec.genesis_timestamp + 1_000 + self.clock / MS
    }

    /// Starts handling an event that happens at `at`: the node's clock is the later of that
    /// and the end of its previous work.
    pub fn begin(&mut self, at: Time) {
        self.clock = at.max(self.busy_until);
    }

    /// After every event: the import, the dispatch, and the announcement of a new tip (the
    /// real sync task's loop: `import.fill`, `dispatch`, the tip watch).
    pub fn end(&mut self, w: &mut World) {
        self.import(w);
        self.dispatch(w);
        let tip = self.chain.tip();
        if tip.hash != self.last_tip {
            self.last_tip = tip.hash;
            w.tip_changed(self.idx, self.clock, tip.hash);
            self.announce_tip(w);
        }
        self.busy_until = self.clock;
    }

    pub(super) fn cost(&mut self, t: Time) {
        self.clock += t;
    }

    pub(super) fn hello(&self, w: &World) -> Hello {
        let tip = self.chain.tip();
        Hello {
            protocol_version: PROTOCOL_VERSION,
            chain_id: w.factory.spec.chain_id.clone(),
            genesis: w.factory.genesis.hash(),
            listen_port: 9000,
            best_height: tip.height,
            best_hash: tip.hash,
            total_work: tip.work.to_bytes(),
            user_agent: "cairn-sim".into(),
        }
    }

    pub(super) fn send(&mut self, w: &mut World, conn: ConnId, m: &Message) {
        w.send(conn, self.idx, m, self.clock);
    }

    /// Crash: every connection is gone without a word (the peers find out by QUIC's idle
    /// timeout); the chain and the bans stay, everything in memory goes.
    pub fn crash(&mut self, w: &mut World) {
        let conns: Vec<(ConnId, usize)> = self.sides.iter().map(|(c, s)| (*c, s.remote)).collect();
        for (conn, remote) in conns {
            w.close_conn(conn, self.idx, remote, self.clock, Some(w.cfg.idle_timeout));
            w.net.close(conn);
        }
        self.sides.clear();
        self.by_id.clear();
        self.download = Download::default();
        self.orphans = Orphans::default();
        self.rebuilding = Rebuilding::default();
        self.light_missing.clear();
        self.sources = Recent::default();
        self.failures.clear();
        self.stash.clear();
        self.asked_block = Recent::default();
        // The mempool was in memory (the real node keeps it in its store: a simplification).
        self.mempool.clear();
        self.known_txs.clear();
        self.relay_queue.clear();
        self.tx_requests = TxRequests::default();
        self.tx_sources = Recent::default();
        self.announced = Some(self.chain.tip().hash);
        self.last_tip = self.chain.tip().hash;
    }

    /// The node's 250 ms beat: the sync task's `tick`, every machine's `tick`, the manager's
    /// dialing, and a hostile node's misbehaviour.
    pub fn tick(&mut self, w: &mut World) {
        let inst = self.inst(w);
        let mut expired = self.rebuilding.expire(inst);
        expired.sort();
        for (hash, peer) in expired {
            self.light_missing.remove(&hash);
            self.fetch_whole(w, peer, hash);
        }
        let tip = self.chain.tip().work;
        let works: Vec<(NodeId, Work)> = self
            .by_id
            .keys()
            .filter_map(|id| self.sides.get(&self.by_id[id]).and_then(|s| if let Phase::Up(u) = &s.phase { Some((*id, u.work)) } else { None }))
            .collect();
        let mut stalls = self.download.tick(inst, |id| works.iter().any(|(o, w)| o != id && *w > tip));
        stalls.sort_by_key(|s| s.peer);
        for s in stalls {
            if s.dropped > 0
                && let Some(up) = self.up_mut(&s.peer)
            {
                up.asked_for = Work::ZERO;
            }
        }
        let conns: Vec<ConnId> = self.sides.keys().copied().collect();
        for conn in conns {
            match self.sides.get_mut(&conn).map(|s| &mut s.phase) {
                Some(Phase::Hs(hs)) => {
                    let acts = hs.tick(inst);
                    self.carry_hs(w, conn, acts);
                }
                Some(Phase::Up(up)) => {
                    let acts = up.proto.tick(inst);
                    self.carry_out(w, conn, acts);
                }
                None => {}
            }
        }
        self.relay_tick(w);
        self.dial_more(w);
        self.rotate(w);
        self.misbehave(w);
    }

    /// Farms a block on the tip. A hostile maker of invalid blocks announces its (bad Merkle
    /// root) block as a compact block and serves it whole when asked.
    pub fn mine(&mut self, w: &mut World) {
        let tip = self.chain.tip();
        let Some(parent) = self.chain.block(&tip.hash) else { return };
        let valid = self.hostile != Some(Hostile::InvalidBlocks);
        let farmer = Address(blake3::hash(&self.id.0).into());
        // With the relay, what this node has had (pending here, or confirmed only on another
        // branch); without it, the pool as the mempool model has it everywhere.
        let relay = w.cfg.tx_relay;
        let known = &self.known_txs;
        let made = w.factory.make(&parent.header, self.idx, self.clock, farmer, valid, |i| !relay || known.contains(&i));
        let hash = made.block.hash();
        w.metrics.made(hash, self.idx, self.clock, valid);
        if valid {
            let _ = self.submit(w, made.block.clone());
        } else {
            self.stash.insert(hash, made.clone());
            let m = compact_message(w, &made);
            for id in self.peer_ids() {
                self.send_to(w, &id, m.clone());
            }
        }
    }
}

/// The compact announcement of a block: salted per announcement in Full fidelity (the real
/// node draws a nonce each time); once per block in Light (the short IDs of 5,000
/// transactions, computed once instead of by every relaying node).
fn compact_message(w: &mut World, made: &Made) -> Message {
    let (nonce, short_ids) = match w.cfg.fidelity {
        Fidelity::Full => {
            let nonce = w.eng.rng.r#gen();
            (nonce, Factory::short_ids(made, nonce))
        }
        Fidelity::Light => made
            .compact
            .get_or_init(|| {
                let nonce = mix(0x636f_6d70, u64::from_le_bytes(made.block.hash().0[..8].try_into().unwrap_or_default()));
                (nonce, Factory::short_ids(made, nonce))
            })
            .clone(),
    };
    Message::CompactBlock { header: Bytes::copy_from_slice(&made.block.header.encode()), nonce, short_ids }
}

enum Either {
    Hs(HsAction),
    Peer(Action),
}
