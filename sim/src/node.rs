//! One simulated node: the real protocol machines, and a small synchronous glue in place of
//! the node's async actors.
//!
//! # What is real and what is glue
//! Driven as the node drives them (same inputs, same outputs acted on):
//! - `cairn_p2p::handshake::Handshake` (both roles, admission step, timeout);
//! - `cairn_p2p::peer::protocol::PeerProtocol` (heartbeat, ping timeout, rate limit, request
//!   tracking, count limits, every judgement it makes);
//! - `cairn_p2p::sync::download::Download` (catch-up schedule, stalls),
//!   `cairn_p2p::sync::orphans::Orphans`, `cairn_p2p::sync::compact::Rebuilding`;
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
//! - the transaction relay (sync/gossip.rs) is not run: the mempool is a model (see
//!   [`crate::blocks`]). `tx_ids`/`get_txs`/`transactions` are never sent.
//!
//! One node event runs start to finish; its processing cost (block checks, rebuilds) moves the
//! node's clock on, and what it sends leaves at that later time: a node is a single server
//! queue, the shape of the real node's chain thread.

use std::collections::{BTreeMap, HashMap, VecDeque};
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
use cairn_p2p::verdict::{Misbehaviour, Verdict, block_verdict};
use cairn_p2p::wire::{BlockId, Hello, Message, PeerAddress, RejectReason, WireError};
use rand::Rng;

use crate::blocks::{Factory, Made};
use crate::chain::{ChainModel, LightChain, RealChain};
use crate::engine::{MS, SECOND, Time, mix};
use crate::net::ConnId;
use crate::world::{ChainKind, Fidelity, Hostile, Payload, World};

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
/// Most blocks whose sender is remembered (the sync task's `Recent` bound).
const MAX_SOURCES: usize = 4096;

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
    sources: HashMap<Hash, NodeId>,
    source_order: VecDeque<Hash>,
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
    /// With `one_get_block`: the block requests in flight, whom and since when.
    asked_block: HashMap<Hash, (NodeId, Time)>,
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
            sources: HashMap::new(),
            source_order: VecDeque::new(),
            announced: Some(tip),
            last_tip: tip,
            bans: Bans::default(),
            failures: HashMap::new(),
            clock: 0,
            busy_until: 0,
            next_dial: 0,
            next_rotate: 0,
            stash: HashMap::new(),
            asked_block: HashMap::new(),
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

    fn inst(&self, w: &World) -> Instant {
        w.eng.instant(self.clock)
    }

    fn now_ms(&self, w: &World) -> u64 {
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

    fn cost(&mut self, t: Time) {
        self.clock += t;
    }

    fn hello(&self, w: &World) -> Hello {
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

    fn send(&mut self, w: &mut World, conn: ConnId, m: &Message) {
        w.send(conn, self.idx, m, self.clock);
    }

    // ---- connections (connection.rs and the manager) -------------------------------------

    /// Dials `to`: the real dialer's handshake machine on a new connection.
    pub fn dial(&mut self, w: &mut World, to: usize) {
        let conn = w.net.open(self.idx, to, self.clock);
        let (hs, first) = Handshake::dialer(self.hello(w), self.id, w.ids[to], self.inst(w), w.cfg.handshake_timeout);
        self.sides.insert(conn, Side { remote: to, remote_id: w.ids[to], outbound: true, phase: Phase::Hs(Box::new(hs)) });
        self.carry_hs(w, conn, first);
    }

    /// A frame arrived on `conn`.
    pub fn on_deliver(&mut self, w: &mut World, conn: ConnId, payload: Payload) {
        if !self.sides.contains_key(&conn) {
            // The first frame of an inbound connection starts its listener handshake.
            let Some(c) = w.net.conn(conn) else { return };
            if c.ends[1] != self.idx {
                return;
            }
            let remote = c.ends[0];
            let hs = Handshake::listener(self.hello(w), self.id, w.ids[remote], self.inst(w), w.cfg.handshake_timeout);
            self.sides.insert(conn, Side { remote, remote_id: w.ids[remote], outbound: false, phase: Phase::Hs(Box::new(hs)) });
        }
        let msg = match payload {
            Payload::Msg(m) => Ok(m),
            Payload::Frame(b) => cairn_p2p::wire::decode(&b),
        };
        let inst = self.inst(w);
        let Some(side) = self.sides.get_mut(&conn) else { return };
        match &mut side.phase {
            Phase::Hs(hs) => {
                let acts = hs.on_message(msg, inst);
                self.carry_hs(w, conn, acts);
            }
            Phase::Up(up) => {
                let acts = match msg {
                    Ok(m) => up.proto.on_message(m, inst),
                    Err(e) => up.proto.on_wire_error(&e, inst),
                };
                self.carry_out(w, conn, acts);
            }
        }
    }

    /// The other end closed `conn` (its close frame, or QUIC's idle timeout after a crash).
    pub fn on_closed(&mut self, w: &mut World, conn: ConnId) {
        if self.sides.contains_key(&conn) {
            let inst = self.inst(w);
            let acts = match self.sides.get_mut(&conn).map(|s| &mut s.phase) {
                Some(Phase::Hs(hs)) => hs.on_message(Err(WireError::Closed), inst).into_iter().map(Either::Hs).collect(),
                Some(Phase::Up(up)) => up.proto.on_wire_error(&WireError::Closed, inst).into_iter().map(Either::Peer).collect(),
                None => Vec::new(),
            };
            for a in acts {
                match a {
                    Either::Hs(a) => self.carry_hs(w, conn, vec![a]),
                    Either::Peer(a) => self.carry_out(w, conn, vec![a]),
                }
            }
            // Whatever the machine said, the connection is gone.
            self.drop_side(w, conn);
        }
    }

    /// Ends `conn`: an optional `Reject` first (as the real shells send), then the QUIC close,
    /// which reaches the other end after the link's latency (if it can reach it at all).
    fn close(&mut self, w: &mut World, conn: ConnId, reject: Option<(RejectReason, String)>) {
        let Some(side) = self.sides.get(&conn) else { return };
        let remote = side.remote;
        if let Some((reason, detail)) = reject {
            self.send(w, conn, &Message::Reject { reason, detail });
        }
        w.close_conn(conn, self.idx, remote, self.clock, None);
        self.drop_side(w, conn);
    }

    /// Forgets a connection: the sync task's `PeerDown`, and a dial that never registered
    /// backs off.
    fn drop_side(&mut self, w: &mut World, conn: ConnId) {
        let Some(side) = self.sides.remove(&conn) else { return };
        w.net.close(conn);
        match side.phase {
            Phase::Up(_) => {
                if self.by_id.get(&side.remote_id) == Some(&conn) {
                    self.by_id.remove(&side.remote_id);
                    self.rebuilding.peer_gone(&side.remote_id);
                    self.download.remove_peer(&side.remote_id);
                }
            }
            Phase::Hs(_) if side.outbound => {
                let f = self.failures.entry(side.remote).or_insert((0, 0));
                f.0 += 1;
                let backoff = (SECOND << f.0.min(9)).min(300 * SECOND);
                f.1 = self.clock + backoff;
            }
            Phase::Hs(_) => {}
        }
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
        self.sources.clear();
        self.source_order.clear();
        self.failures.clear();
        self.stash.clear();
        self.asked_block.clear();
        self.announced = Some(self.chain.tip().hash);
        self.last_tip = self.chain.tip().hash;
    }

    /// The manager's admission of a peer whose `Hello` passed the checks.
    fn admit(&self, w: &World, side: (&NodeId, bool)) -> Result<(), Refusal> {
        let (id, outbound) = side;
        if self.bans.is_banned(id, self.now_ms(w)) {
            return Err(Refusal::new(RejectReason::Banned, "banned"));
        }
        if self.by_id.contains_key(id) {
            return Err(Refusal::new(RejectReason::AlreadyConnected, "already connected"));
        }
        let inbound = self.sides.values().filter(|s| !s.outbound && matches!(s.phase, Phase::Up(_))).count();
        if !outbound && inbound >= w.cfg.max_inbound {
            return Err(Refusal::new(RejectReason::TooManyPeers, "no inbound slot"));
        }
        Ok(())
    }

    fn carry_hs(&mut self, w: &mut World, conn: ConnId, actions: Vec<HsAction>) {
        let mut todo: VecDeque<HsAction> = actions.into();
        while let Some(a) = todo.pop_front() {
            let Some(side) = self.sides.get(&conn) else { return };
            let (remote_id, outbound) = (side.remote_id, side.outbound);
            match a {
                HsAction::Send(m) => self.send(w, conn, &m),
                HsAction::Admit(_) => {
                    let r = self.admit(w, (&remote_id, outbound));
                    let inst = self.inst(w);
                    if let Some(Side { phase: Phase::Hs(hs), .. }) = self.sides.get_mut(&conn) {
                        todo.extend(hs.admitted(r, inst));
                    }
                }
                HsAction::Done(hello) => self.register(w, conn, hello),
                HsAction::Refuse { refusal, misbehaviour, send_reject } => {
                    if let Some(kind) = misbehaviour {
                        self.penalize(w, remote_id, kind);
                    }
                    let reject = send_reject.then(|| (refusal.reason, refusal.detail.clone()));
                    self.close(w, conn, reject);
                }
                HsAction::RefusedByPeer(_) | HsAction::Lost(_) => self.close(w, conn, None),
            }
        }
    }

    /// Registration after a finished handshake, then the peer task's start.
    fn register(&mut self, w: &mut World, conn: ConnId, hello: Hello) {
        let Some(side) = self.sides.get(&conn) else { return };
        let (remote_id, outbound, remote) = (side.remote_id, side.outbound, side.remote);
        if self.by_id.contains_key(&remote_id) || self.bans.is_banned(&remote_id, self.now_ms(w)) {
            self.close(w, conn, Some((RejectReason::AlreadyConnected, "already connected".into())));
            return;
        }
        let cfg = ProtocolConfig { max_block_txs: w.factory.spec.max_block_txs as usize, ..ProtocolConfig::from(&w.p2p) };
        let seed = w.eng.rng.r#gen();
        let (proto, first) = PeerProtocol::new(cfg, outbound, self.inst(w), seed);
        let work = Work::from_bytes(hello.total_work);
        if let Some(s) = self.sides.get_mut(&conn) {
            s.phase = Phase::Up(Box::new(Up { proto, work, asked_for: Work::ZERO }));
        }
        self.failures.remove(&remote);
        self.by_id.insert(remote_id, conn);
        self.download.add_peer(remote_id);
        self.download.announced(&remote_id, &hello.best_hash);
        self.carry_out(w, conn, first);
    }

    /// The manager's `penalize`: points through `Bans`; at the threshold the peer is banned
    /// and cut off. Returns whether it is still in good standing.
    fn penalize(&mut self, w: &mut World, id: NodeId, kind: Misbehaviour) -> bool {
        let now_ms = self.now_ms(w);
        let (_, ban) = self.bans.penalize(id, kind.points(), kind.code(), now_ms, BAN_MS);
        w.metrics.misbehaved(kind.code());
        if ban.is_some() {
            w.metrics.banned(self.idx, w.index_of(&id), kind.code());
            if let Some(conn) = self.by_id.get(&id).copied() {
                self.close(w, conn, Some((RejectReason::Banned, kind.code().into())));
            }
            return false;
        }
        true
    }

    /// The sync task's `judge`: also ends the connection for the kinds that always do.
    fn judge(&mut self, w: &mut World, id: NodeId, kind: Misbehaviour) -> bool {
        let good = self.penalize(w, id, kind);
        if good
            && kind.disconnects()
            && let Some(conn) = self.by_id.get(&id).copied()
        {
            self.close(w, conn, Some((RejectReason::ProtocolViolation, kind.code().into())));
        }
        good && !kind.disconnects()
    }

    // ---- the peer task (peer/task.rs) -----------------------------------------------------

    fn carry_out(&mut self, w: &mut World, conn: ConnId, actions: Vec<Action>) {
        for a in actions {
            let Some(side) = self.sides.get(&conn) else { return };
            let id = side.remote_id;
            match a {
                Action::Send(m) => self.send(w, conn, &m),
                Action::Serve(s) => self.serve(w, conn, s),
                Action::Sync(m) => {
                    if let Err(kind) = self.sync_data(w, id, m) {
                        self.penalize(w, id, kind);
                        self.close(w, conn, Some((RejectReason::ProtocolViolation, kind.code().into())));
                    }
                }
                // The transaction relay is modelled, not run (see the module doc).
                Action::Transactions(_) | Action::Announced(_) | Action::Learn(_) => {}
                Action::GivePeers => {
                    let list: Vec<PeerAddress> = self
                        .sides
                        .values()
                        .filter(|s| matches!(s.phase, Phase::Up(_)))
                        .take(8)
                        .map(|s| PeerAddress { node_id: Some(s.remote_id), addr: addr_of(s.remote) })
                        .collect();
                    self.send(w, conn, &Message::Peers(list));
                }
                Action::Misbehaved(kind) => {
                    if !self.penalize(w, id, kind) {
                        return;
                    }
                }
                Action::Close(Close::Violation(kind)) => {
                    self.penalize(w, id, kind);
                    self.close(w, conn, Some((RejectReason::ProtocolViolation, kind.code().into())));
                }
                Action::Close(Close::Local(why)) => {
                    let code = if why == PING_TIMEOUT { RejectReason::PeerTimeout } else { RejectReason::ProtocolViolation };
                    self.close(w, conn, Some((code, why.into())));
                }
                Action::Close(Close::Remote(_)) => self.close(w, conn, None),
            }
        }
    }

    /// Answers a request from the chain (the peer task's `serve`), as the node's misbehaviour
    /// allows.
    fn serve(&mut self, w: &mut World, conn: ConnId, s: Serve) {
        match (self.hostile, &s) {
            (Some(Hostile::Stall), Serve::Status) => {}
            (Some(Hostile::Stall), _) => return,
            (Some(Hostile::AnnounceNoServe), Serve::Block(_)) => return self.send(w, conn, &Message::BlockData(None)),
            _ => {}
        }
        let answer = match s {
            Serve::Status => {
                let tip = self.chain.tip();
                Message::Status { best_height: tip.height, best_hash: tip.hash, total_work: tip.work.to_bytes() }
            }
            Serve::Block(id) => {
                let hash = match id {
                    BlockId::Hash(h) => Some(h),
                    BlockId::Height(n) => self.chain.hash_at(n),
                };
                Message::BlockData(hash.and_then(|h| self.encoded(w, &h)))
            }
            Serve::Headers { locator, max } => {
                let headers = self.chain.headers_after(&locator, (max as usize).min(MAX_HEADERS));
                Message::Headers(headers.iter().map(|h| Bytes::copy_from_slice(&h.encode())).collect())
            }
            Serve::Blocks(hashes) => {
                let budget = w.factory.spec.max_block_bytes as usize;
                let (mut out, mut missing, mut size) = (Vec::new(), Vec::new(), 0);
                for h in hashes {
                    let Some(b) = self.encoded(w, &h) else {
                        missing.push(h);
                        continue;
                    };
                    if !out.is_empty() && size + b.len() > budget {
                        break;
                    }
                    size += b.len();
                    out.push(b);
                }
                if !missing.is_empty() {
                    self.send(w, conn, &Message::NotFound(missing));
                }
                Message::Blocks(out)
            }
            // The mempool is modelled: nothing is relayed by `get_txs`.
            Serve::Txs(_) => return,
            Serve::BlockTxs { hash, indexes } => {
                let block = self.chain.block(&hash).or_else(|| self.stash.get(&hash).map(|m| m.block.clone()));
                let txs = block
                    .and_then(|b| indexes.iter().map(|i| b.transactions.get(*i as usize).map(|tx| Bytes::from(tx.encode()))).collect::<Option<Vec<_>>>())
                    .unwrap_or_default();
                Message::BlockTxs { hash, txs }
            }
        };
        self.send(w, conn, &answer);
    }

    fn encoded(&self, w: &World, hash: &Hash) -> Option<Bytes> {
        if !self.chain.has_block(hash) && !self.stash.contains_key(hash) {
            return None;
        }
        w.factory.made.get(hash).map(|m| m.encoded.clone())
    }

    /// A block from its bytes: decoded for real in Full fidelity; in Light, its header is
    /// decoded and the body taken from the registry (the same block, without a megabyte copy).
    fn block_of(&self, w: &World, bytes: &[u8]) -> Result<Block, Misbehaviour> {
        let max = w.factory.spec.max_block_txs as usize;
        match w.cfg.fidelity {
            Fidelity::Full => Block::decode(bytes, max).map_err(|_| Misbehaviour::UndecodableChainData),
            Fidelity::Light => {
                let header = bytes.get(..Header::ENCODED_LEN).and_then(|b| Header::decode(b).ok()).ok_or(Misbehaviour::UndecodableChainData)?;
                w.factory.made.get(&header.hash()).map(|m| (*m.block).clone()).ok_or(Misbehaviour::UndecodableChainData)
            }
        }
    }

    fn arc_block_of(&self, w: &World, bytes: &[u8]) -> Result<Arc<Block>, Misbehaviour> {
        if w.cfg.fidelity == Fidelity::Light {
            let header = bytes.get(..Header::ENCODED_LEN).and_then(|b| Header::decode(b).ok()).ok_or(Misbehaviour::UndecodableChainData)?;
            return w.factory.made.get(&header.hash()).map(|m| m.block.clone()).ok_or(Misbehaviour::UndecodableChainData);
        }
        self.block_of(w, bytes).map(Arc::new)
    }

    /// What a header alone shows (the peer task's `header_taken`): `Err` punishes, `Ok(false)`
    /// drops it unpunished.
    fn header_taken(&self, w: &World, h: &Header) -> Result<bool, Misbehaviour> {
        match cairn_chain::check_header_alone(&w.factory.spec, h, self.now_ms(w)) {
            Ok(()) => Ok(true),
            Err(e) => match block_verdict(&e, true) {
                Verdict::Punish(kind) => Err(kind),
                Verdict::NotYetValid | Verdict::Blameless => Ok(false),
            },
        }
    }

    /// Decodes and checks chain data alone, then hands it to the sync glue (the peer task's
    /// `sync`).
    fn sync_data(&mut self, w: &mut World, id: NodeId, m: ToSync) -> Result<(), Misbehaviour> {
        match m {
            ToSync::Status { best_height: _, best_hash, total_work } => {
                if let Some(up) = self.up_mut(&id) {
                    up.work = Work::from_bytes(total_work);
                }
                self.download.announced(&id, &best_hash);
            }
            ToSync::NewBlock { height, hash } => self.on_new_block(w, id, height, hash),
            ToSync::NotFound(hashes) => self.download.on_not_found(&id, &hashes),
            ToSync::Headers(list) => {
                let full = list.len() == MAX_HEADERS;
                let (mut headers, mut cut) = (Vec::<Header>::with_capacity(list.len()), false);
                for bytes in &list {
                    let h = Header::decode(bytes).map_err(|_| Misbehaviour::UndecodableChainData)?;
                    if let Some(prev) = headers.last()
                        && (h.prev_hash != prev.hash() || h.height != prev.height.wrapping_add(1))
                    {
                        return Err(Misbehaviour::InvalidHeaderChain);
                    }
                    if !self.header_taken(w, &h)? {
                        cut = true;
                        break;
                    }
                    headers.push(h);
                }
                self.take_headers(w, id, headers, full, cut);
            }
            ToSync::Blocks(list) => {
                let blocks = list.iter().map(|b| self.block_of(w, b)).collect::<Result<Vec<_>, _>>()?;
                if let Some(taken) = self.download.on_blocks(id, blocks, self.inst(w))
                    && taken.withheld > 0
                {
                    self.judge(w, id, Misbehaviour::WithheldBlocks);
                }
            }
            ToSync::CompactBlock { header, nonce, short_ids } => {
                let header = Header::decode(&header).map_err(|_| Misbehaviour::UndecodableChainData)?;
                let short_ids = match w.cfg.fidelity {
                    Fidelity::Full => {
                        CompactBlock::decode_short_ids(&short_ids, w.factory.spec.max_block_txs as usize).map_err(|_| Misbehaviour::UndecodableChainData)?
                    }
                    Fidelity::Light => Vec::new(),
                };
                if self.header_taken(w, &header)? {
                    self.take_compact(w, id, CompactBlock { header, nonce, short_ids });
                }
            }
            ToSync::BlockTxs { hash, txs } => {
                // Light fidelity counts the transactions without decoding them (honest answers).
                let count = txs.len();
                let txs = match w.cfg.fidelity {
                    Fidelity::Full => {
                        txs.iter().map(|b| Transaction::decode(b)).collect::<Result<Vec<_>, _>>().map_err(|_| Misbehaviour::UndecodableChainData)?
                    }
                    Fidelity::Light => Vec::new(),
                };
                self.on_block_txs(w, id, hash, txs, count);
            }
            ToSync::BlockData { block, requested } => {
                let b = self.arc_block_of(w, &block)?;
                let hash = b.hash();
                if !self.header_taken(w, &b.header)? {
                    return Ok(());
                }
                let asked = match requested {
                    Some(BlockId::Hash(h)) => h == hash,
                    Some(BlockId::Height(n)) => n == b.header.height,
                    None => false,
                };
                let parent = self.chain.total_work_of(&b.header.prev_hash);
                if !asked && !cairn_p2p::peer::unrequested_block_wanted(parent, b.header.target.work(), self.chain.tip().work) {
                    return Ok(());
                }
                self.take_block(w, id, b);
            }
        }
        Ok(())
    }

    fn up_mut(&mut self, id: &NodeId) -> Option<&mut Up> {
        let conn = self.by_id.get(id)?;
        match &mut self.sides.get_mut(conn)?.phase {
            Phase::Up(up) => Some(up),
            Phase::Hs(_) => None,
        }
    }

    // ---- the sync task (sync/mod.rs) ------------------------------------------------------

    /// Sends a request of the sync task to a registered peer (recorded by its machine first,
    /// as `PeerCmd::Send` is).
    fn send_to(&mut self, w: &mut World, id: &NodeId, m: Message) -> bool {
        let Some(conn) = self.by_id.get(id).copied() else { return false };
        if let Some(up) = self.up_mut(id) {
            up.proto.on_send(&m);
        }
        self.send(w, conn, &m);
        true
    }

    fn remember_source(&mut self, hash: Hash, id: NodeId) {
        if self.sources.insert(hash, id).is_none() {
            self.source_order.push_back(hash);
            if self.source_order.len() > MAX_SOURCES
                && let Some(old) = self.source_order.pop_front()
            {
                self.sources.remove(&old);
            }
        }
    }

    fn on_new_block(&mut self, w: &mut World, id: NodeId, height: u64, hash: Hash) {
        self.download.announced(&id, &hash);
        if self.chain.has_block(&hash) {
            w.metrics.count("duplicate_block");
        } else if self.download.wanted() == 0 || height > self.download.last_height().unwrap_or(0) {
            if let Some(wait) = w.cfg.one_get_block {
                // The proposal: one request in flight per block, the next announcer after
                // `wait` (or once the one asked has left).
                if let Some((peer, since)) = self.asked_block.get(&hash)
                    && self.clock < since + wait
                    && self.by_id.contains_key(peer)
                {
                    return;
                }
                if self.asked_block.len() >= MAX_SOURCES {
                    self.asked_block.clear();
                }
                self.asked_block.insert(hash, (id, self.clock));
            }
            self.send_to(w, &id, Message::GetBlock(BlockId::Hash(hash)));
        }
    }

    fn take_compact(&mut self, w: &mut World, id: NodeId, compact: CompactBlock) {
        let (height, hash) = (compact.header.height, compact.header.hash());
        self.download.announced(&id, &hash);
        if self.rebuilding.contains(&hash) {
            return;
        }
        if self.chain.has_block(&hash) {
            w.metrics.count("duplicate_block");
            return;
        }
        if self.download.wanted() > 0 && height <= self.download.last_height().unwrap_or(0) {
            return;
        }
        if self.chain.total_work_of(&compact.header.prev_hash).is_none() {
            self.send_to(w, &id, Message::GetBlock(BlockId::Hash(hash)));
            return;
        }
        let Some(made) = w.factory.made.get(&hash).cloned() else {
            self.fetch_whole(w, id, hash);
            return;
        };
        let since = w.since[self.idx];
        match w.cfg.fidelity {
            Fidelity::Full => {
                let candidates = w.factory.mempool_for(self.idx, since, &made, self.clock);
                self.cost(REBUILD_COST_PER_TX * candidates.len() as Time);
                let partial = Partial::rebuild(&compact, candidates.iter().map(|(i, t)| (i, t)));
                match partial.finish() {
                    Ok(Some(block)) => {
                        w.metrics.count("compact_rebuilt");
                        self.take_block(w, id, Arc::new(block));
                    }
                    Ok(None) => {
                        let indexes = partial.missing();
                        self.wait_for_txs(w, id, hash, partial, indexes);
                    }
                    Err(_) => self.fetch_whole(w, id, hash),
                }
            }
            Fidelity::Light => {
                // The rebuild's outcome from the mempool model, at its modelled cost; a block
                // whose root its transactions do not give fails the real `finish`.
                if !made.valid {
                    self.fetch_whole(w, id, hash);
                    return;
                }
                let n = made.block.transactions.len() as u64;
                self.cost(REBUILD_COST_PER_TX * n);
                let indexes: Vec<u32> = (0..n).filter(|i| !w.factory.has_tx(self.idx, since, made.tx_first + i, self.clock)).map(|i| i as u32).collect();
                if indexes.is_empty() {
                    w.metrics.count("compact_rebuilt");
                    self.take_block(w, id, made.block.clone());
                } else {
                    // An empty `Partial` keeps the real `Rebuilding`'s bookkeeping (bound,
                    // expiry, the sender's departure); the slots are counted here.
                    let partial = Partial::rebuild(&CompactBlock { header: compact.header, nonce: 0, short_ids: Vec::new() }, std::iter::empty());
                    self.light_missing.insert(hash, indexes.clone());
                    self.wait_for_txs(w, id, hash, partial, indexes);
                }
            }
        }
    }

    fn wait_for_txs(&mut self, w: &mut World, id: NodeId, hash: Hash, partial: Partial, indexes: Vec<u32>) {
        if let Some((pushed, peer)) = self.rebuilding.wait(hash, id, partial, self.inst(w)) {
            self.light_missing.remove(&pushed);
            self.fetch_whole(w, peer, pushed);
        }
        if !self.send_to(w, &id, Message::GetBlockTxs { hash, indexes }) {
            self.rebuilding.take(&hash, &id);
        }
    }

    fn on_block_txs(&mut self, w: &mut World, id: NodeId, hash: Hash, txs: Vec<Transaction>, count: usize) {
        let Some(mut waiting) = self.rebuilding.take(&hash, &id) else { return };
        let rebuilt = match w.cfg.fidelity {
            Fidelity::Full => waiting.partial.fill(txs).and_then(|()| waiting.partial.finish()).ok().flatten().map(Arc::new),
            Fidelity::Light => {
                let want = self.light_missing.remove(&hash).map_or(usize::MAX, |v| v.len());
                if count == want { w.factory.made.get(&hash).map(|m| m.block.clone()) } else { None }
            }
        };
        match rebuilt {
            Some(block) => {
                w.metrics.count("compact_fetched_missing");
                self.take_block(w, id, block);
            }
            None => self.fetch_whole(w, id, hash),
        }
    }

    fn fetch_whole(&mut self, w: &mut World, id: NodeId, hash: Hash) {
        w.metrics.count("compact_fell_back");
        self.send_to(w, &id, Message::GetBlock(BlockId::Hash(hash)));
    }

    fn take_headers(&mut self, w: &mut World, id: NodeId, headers: Vec<Header>, full: bool, cut: bool) {
        if !self.download.headers_from(&id) {
            return;
        }
        let mut stored = std::collections::HashSet::new();
        for h in &headers {
            let hash = h.hash();
            if !self.chain.has_block(&hash) {
                break;
            }
            stored.insert(hash);
        }
        let parent_stored = headers.get(stored.len()).is_some_and(|first| self.chain.has_block(&first.prev_hash));
        let all_stored = stored.len() == headers.len();
        match self.download.on_headers(id, &headers, full, |h| stored.contains(h), |_| parent_stored) {
            Ok(t) => {
                if t.queued == 0 && !t.showed_anything && !full && !cut && all_stored && self.unbacked(t.claim) {
                    self.judge(w, id, Misbehaviour::UnbackedWorkClaim);
                }
            }
            Err(HeadersRejected::NotAChain) => {
                self.judge(w, id, Misbehaviour::InvalidHeaderChain);
            }
            Err(HeadersRejected::Unsolicited) => {}
        }
    }

    fn unbacked(&self, claim: Option<Claim>) -> bool {
        if self.download.wanted() > 0 {
            return false;
        }
        match claim {
            Some(Claim::Work(work)) => work > self.chain.tip().work,
            Some(Claim::Orphan) => !self.orphans.is_empty(),
            None => false,
        }
    }

    /// Stores a block and records when this node first had it.
    fn submit(&mut self, w: &mut World, block: Arc<Block>) -> Result<Submitted, BlockError> {
        let hash = block.hash();
        let valid = w.factory.made.get(&hash).map(|m| m.valid);
        self.cost(BLOCK_COST + BLOCK_COST_PER_TX * block.transactions.len() as Time);
        let now_ms = self.now_ms(w);
        let r = self.chain.submit(block, valid, now_ms);
        if matches!(r, Ok(Submitted::Connected | Submitted::SideChain)) {
            w.metrics.stored(hash, self.idx, self.clock);
        }
        r
    }

    fn take_block(&mut self, w: &mut World, id: NodeId, block: Arc<Block>) {
        let hash = block.hash();
        self.remember_source(hash, id);
        match self.submit(w, block.clone()) {
            Ok(Submitted::Connected | Submitted::SideChain) => self.release_orphans(w, vec![hash]),
            Ok(Submitted::AlreadyKnown) => w.metrics.count("duplicate_block"),
            Err(BlockError::UnknownParent(_)) => {
                self.orphans.insert((*block).clone(), id);
                self.ask_headers(w, id, HeadersFrom::Tip, Some(Claim::Orphan));
            }
            Err(e) => self.blame(w, id, &e),
        }
    }

    fn blame(&mut self, w: &mut World, id: NodeId, e: &BlockError) {
        if let Verdict::Punish(kind) = block_verdict(e, false) {
            self.judge(w, id, kind);
        }
    }

    fn release_orphans(&mut self, w: &mut World, parents: Vec<Hash>) {
        let mut work = parents;
        while let Some(parent) = work.pop() {
            if self.orphans.is_empty() {
                return;
            }
            for (block, peer) in self.orphans.take_children(&parent) {
                if !self.by_id.contains_key(&peer) {
                    continue;
                }
                let hash = block.hash();
                self.remember_source(hash, peer);
                match self.submit(w, Arc::new(block)) {
                    Ok(Submitted::Connected | Submitted::SideChain) => work.push(hash),
                    Ok(Submitted::AlreadyKnown) => {}
                    Err(e) => self.blame(w, peer, &e),
                }
            }
        }
    }

    /// The import pipeline as one synchronous loop: ready blocks in order, committed until
    /// one fails (its server is blamed for a failed check, its lister for a failed connect,
    /// as `Failure::blame` does), then the schedule starts over.
    fn import(&mut self, w: &mut World) {
        loop {
            let ready = self.download.take_ready(MAX_BLOCKS_PER_REQUEST, MAX_BUFFERED);
            if ready.is_empty() {
                return;
            }
            let mut connected = Vec::new();
            let mut failed = false;
            for r in ready {
                let hash = r.block.hash();
                self.remember_source(hash, r.served_by);
                match self.submit(w, Arc::new(r.block)) {
                    Ok(Submitted::Connected | Submitted::SideChain) => connected.push(hash),
                    Ok(Submitted::AlreadyKnown) => w.metrics.count("duplicate_block"),
                    Err(e) => {
                        let culprit = if matches!(e, BlockError::BadHeight { .. } | BlockError::UnknownParent(_)) { r.listed_by } else { r.served_by };
                        self.blame(w, culprit, &e);
                        failed = true;
                        break;
                    }
                }
            }
            self.release_orphans(w, connected);
            if failed {
                self.download.reset();
                return;
            }
        }
    }

    fn peer_ids(&self) -> Vec<NodeId> {
        self.by_id.keys().copied().collect()
    }

    /// Hands out block ranges and header requests (the sync task's `dispatch`).
    fn dispatch(&mut self, w: &mut World) {
        let now = self.inst(w);
        let mut ids = self.peer_ids();
        // Quickest first, as the real one; ties in node-ID order (the real order there is a
        // hash map's, which a replayable run cannot use). With nothing wanted, `assign` has
        // nothing to give: skipped (the same outcome, without its cost after every event).
        let assigning = self.download.wanted() > 0;
        if assigning {
            ids.sort_by_key(|id| (self.download.timeout(id), *id));
        }
        for id in ids.iter().filter(|_| assigning) {
            while let Some(hashes) = self.download.assign(*id, MAX_BLOCKS_PER_REQUEST, now) {
                if !self.send_to(w, id, Message::GetBlocks(hashes)) {
                    self.download.unassign_last(id);
                    break;
                }
            }
        }
        let tip = self.chain.tip().work;
        for id in &ids {
            let Some((work, asked_for)) = self.up_mut(id).map(|u| (u.work, u.asked_for)) else { continue };
            let more = work > tip;
            let from = self.download.headers_wanted(id, more).or_else(|| {
                let idle = self.download.wanted() == 0;
                (more && work > asked_for && idle && !self.download.headers_from(id)).then_some(HeadersFrom::Tip)
            });
            if let Some(from) = from {
                let claim = (from == HeadersFrom::Tip).then_some(Claim::Work(work));
                if from == HeadersFrom::Tip
                    && let Some(up) = self.up_mut(id)
                {
                    up.asked_for = work;
                }
                self.ask_headers(w, *id, from, claim);
            }
        }
    }

    fn ask_headers(&mut self, w: &mut World, id: NodeId, from: HeadersFrom, claim: Option<Claim>) {
        if self.download.headers_from(&id) || !self.by_id.contains_key(&id) {
            return;
        }
        let locator = match from {
            HeadersFrom::After(h) => vec![h],
            HeadersFrom::Tip => {
                let mut l = self.chain.locator();
                if let Some(last) = self.download.last_hash() {
                    l.insert(0, last);
                }
                l.truncate(MAX_LOCATOR);
                l
            }
        };
        if self.send_to(w, &id, Message::GetHeaders { locator, max: MAX_HEADERS as u32 }) {
            self.download.asked_headers(id, from, claim, self.inst(w));
        }
    }

    /// Announces a new tip to every peer but its source: a compact block when it extends the
    /// tip announced before and no catch-up runs, else `new_block` (the sync task's
    /// `announce_tip`; `compact: false` in the run's settings gives the whole-block relay).
    fn announce_tip(&mut self, w: &mut World) {
        if self.hostile == Some(Hostile::Stall) {
            return;
        }
        let importing = self.download.is_active();
        if !importing {
            self.download.tip_moved();
        }
        let tip = self.chain.tip();
        let source = self.sources.get(&tip.hash).copied();
        let previous = self.announced.replace(tip.hash);
        let mut message = Message::NewBlock { height: tip.height, hash: tip.hash };
        if w.cfg.compact
            && !importing
            && previous.is_some()
            && self.by_id.keys().any(|id| Some(*id) != source)
            && let Some(made) = w.factory.made.get(&tip.hash).cloned()
            && Some(made.block.header.prev_hash) == previous
        {
            message = compact_message(w, &made);
        }
        for id in self.peer_ids() {
            if Some(id) != source {
                self.send_to(w, &id, message.clone());
            }
        }
    }

    // ---- time ------------------------------------------------------------------------------

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
        self.dial_more(w);
        self.rotate(w);
        self.misbehave(w);
    }

    /// The manager's `dial_more`: below the outbound target, dial known nodes at random (not
    /// ourselves, not connected, not banned, not backing off).
    fn dial_more(&mut self, w: &mut World) {
        if self.clock < self.next_dial {
            return;
        }
        self.next_dial = self.clock + w.p2p.dial_interval.as_nanos() as Time;
        let outbound = self.sides.values().filter(|s| s.outbound).count();
        let want = w.cfg.target_outbound.saturating_sub(outbound);
        let n = w.ids.len();
        let now_ms = self.now_ms(w);
        for _ in 0..want {
            for _ in 0..20 {
                let to = w.eng.rng.gen_range(0..n);
                let busy = to == self.idx
                    || self.sides.values().any(|s| s.remote == to)
                    || self.bans.is_banned(&w.ids[to], now_ms)
                    || self.failures.get(&to).is_some_and(|(_, until)| *until > self.clock)
                    || !w.known[to];
                if !busy {
                    self.dial(w, to);
                    break;
                }
            }
        }
    }

    /// Optional outbound rotation (not in the real node; a proposal the partition scenario
    /// measures): every `rotate_every`, one outbound peer is dropped so a new one is dialled.
    fn rotate(&mut self, w: &mut World) {
        let Some(every) = w.cfg.rotate_every else { return };
        if self.clock < self.next_rotate {
            return;
        }
        self.next_rotate = self.clock + every;
        let outbound: Vec<ConnId> = self.sides.iter().filter(|(_, s)| s.outbound && matches!(s.phase, Phase::Up(_))).map(|(c, _)| *c).collect();
        if outbound.len() >= w.cfg.target_outbound {
            let conn = outbound[w.eng.rng.gen_range(0..outbound.len())];
            self.close(w, conn, Some((RejectReason::Disconnected, "rotated".into())));
        }
    }

    /// A hostile node's extra behaviour, each beat.
    fn misbehave(&mut self, w: &mut World) {
        match self.hostile {
            Some(Hostile::AnnounceNoServe) if w.eng.rng.gen_bool(0.1) => {
                let tip = self.chain.tip();
                let fake = Hash(w.eng.rng.r#gen());
                let work = tip.work.saturating_add(Work::from_bytes([0x10; 32]));
                for id in self.peer_ids() {
                    self.send_to(w, &id, Message::NewBlock { height: tip.height + 1, hash: fake });
                    self.send_to(w, &id, Message::Status { best_height: tip.height + 100, best_hash: fake, total_work: work.to_bytes() });
                }
            }
            Some(Hostile::Spam) => {
                // Unsolicited pongs: each costs a token, and over the rate a point.
                for id in self.peer_ids() {
                    for _ in 0..1500 {
                        let n = w.eng.rng.r#gen();
                        self.send_to(w, &id, Message::Pong(n));
                    }
                }
            }
            _ => {}
        }
    }

    /// Farms a block on the tip. A hostile maker of invalid blocks announces its (bad Merkle
    /// root) block as a compact block and serves it whole when asked.
    pub fn mine(&mut self, w: &mut World) {
        let tip = self.chain.tip();
        let Some(parent) = self.chain.block(&tip.hash) else { return };
        let valid = self.hostile != Some(Hostile::InvalidBlocks);
        let farmer = Address(blake3::hash(&self.id.0).into());
        let made = w.factory.make(&parent.header, self.idx, self.clock, farmer, valid);
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
