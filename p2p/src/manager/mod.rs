//! The peer manager: the one task that owns the peer table, the address book, misbehaviour
//! scores and bans, the operator's block list, and dialing.
//!
//! Everyone else talks to it through [`ManagerHandle`] (a bounded channel of [`ManagerMsg`]);
//! it answers through `oneshot`s and publishes what readers need (the peer list, scores, bans,
//! the peers' inboxes for gossip) as an immutable [`Snapshot`] on a `watch` channel after every
//! change. It never awaits another actor: it talks to peer tasks with `try_send` and, when a
//! peer must go at once (a ban), cancels the peer's token and closes its connection itself.
//!
//! # Bounds
//! - Inbox: [`MANAGER_INBOX`] messages. Senders wait when it is full (back-pressure on the
//!   peer or handshake that sends); the manager's own work per message is short and
//!   non-blocking, so the wait is short. Only [`ManagerHandle::discovered`] (mDNS) uses
//!   `try_send`: a dropped announcement is repeated by the LAN.
//! - Peer table: `max_inbound` + `max_outbound`; address book: `max_addresses`; bans and score
//!   records: [`crate::config::MAX_BANS`], [`crate::config::MAX_SCORE_RECORDS`].

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::addrbook::{AddressBook, Expect, Source};
use crate::bans::Bans;
use crate::channels::{ConnectError, Direction, Joining, ManagerMsg, PeerCmd, PeerStats, PeerView, Registration, Snapshot, Standing};
use crate::config::{MAX_PEERS_PER_MESSAGE, PEER_INBOX};
use crate::ctx::{Ctx, now_ms, short};
use crate::handshake::Refusal;
use crate::identity::NodeId;
use crate::ports::KnownPeer;
use crate::verdict::Misbehaviour;
use crate::wire::{PeerAddress, RejectReason};

use crate::connection::dial_task;

/// A row of the peer table.
struct Peer {
    direction: Direction,
    address: SocketAddr,
    listen_address: SocketAddr,
    connected_since_ms: u64,
    user_agent: String,
    /// Its name, from the user agent ([`crate::name::from_user_agent`]).
    name: Option<String>,
    stats: Arc<PeerStats>,
    inbox: mpsc::Sender<PeerCmd>,
    conn: quinn::Connection,
    cancel: CancellationToken,
}

/// The manager's state; only [`run`] touches it.
struct Manager {
    ctx: Arc<Ctx>,
    peers: HashMap<NodeId, Peer>,
    pending_inbound: usize,
    /// Dials in flight, with the operator's calls waiting on each.
    dialing: HashMap<SocketAddr, Vec<oneshot::Sender<Result<NodeId, ConnectError>>>>,
    book: AddressBook,
    bans: Bans,
    blocked: HashSet<NodeId>,
    published: watch::Sender<Arc<Snapshot>>,
}

/// Runs the manager until shutdown.
pub(crate) async fn run(ctx: Arc<Ctx>, mut rx: mpsc::Receiver<ManagerMsg>, book: AddressBook, bans: Bans, published: watch::Sender<Arc<Snapshot>>) {
    let mut m =
        Manager { ctx: ctx.clone(), peers: HashMap::new(), pending_inbound: 0, dialing: HashMap::new(), book, bans, blocked: HashSet::new(), published };
    m.publish();
    let mut dial_tick = tokio::time::interval(ctx.cfg.dial_interval);
    let mut pex_tick = tokio::time::interval(ctx.cfg.peer_exchange_interval);
    dial_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    pex_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = ctx.cancel.cancelled() => break,
            msg = rx.recv() => match msg {
                Some(msg) => m.handle(msg),
                None => break,
            },
            _ = dial_tick.tick() => m.dial_more(),
            _ = pex_tick.tick() => m.ask_for_peers(),
        }
    }
    // Whoever still waits on a dial learns it will not finish.
    for (addr, waiters) in m.dialing.drain() {
        for w in waiters {
            let _ = w.send(Err(ConnectError::Unreachable(format!("{addr}: shutting down"))));
        }
    }
}

impl Manager {
    fn handle(&mut self, msg: ManagerMsg) {
        let changed = match msg {
            ManagerMsg::Admit { id, direction, reply } => {
                let r = self.admit(id, direction, false);
                if r.is_ok() && direction == Direction::Inbound {
                    self.pending_inbound += 1;
                }
                let _ = reply.send(r);
                false
            }
            ManagerMsg::Release => {
                self.pending_inbound = self.pending_inbound.saturating_sub(1);
                false
            }
            ManagerMsg::Register { joining, reply } => {
                let id = joining.id;
                let r = self.register(*joining);
                let ok = r.is_ok();
                if let Err(Some(reg)) = reply.send(r).map_err(Result::ok) {
                    // The handshake task is gone (shutdown): undo, or the row would stay with
                    // no task to say it is gone.
                    reg.cancel.cancel();
                    if let Some(p) = self.peers.remove(&id) {
                        p.conn.close(RejectReason::ShuttingDown.close_code(), b"shutting_down: node shutting down");
                        self.ctx.metrics.disconnected();
                    }
                }
                ok
            }
            ManagerMsg::Gone { id, conn_id } => self.gone(&id, conn_id),
            ManagerMsg::Misbehaved { id, kind, reply } => {
                let standing = self.penalize(id, kind);
                if let Some(r) = reply {
                    let _ = r.send(standing);
                }
                true
            }
            ManagerMsg::Learned(addrs) => {
                self.learn(addrs);
                false
            }
            ManagerMsg::Discovered { addr, id } => {
                let (_, evicted) = self.book.announce(addr, id);
                if let Some(gone) = evicted {
                    self.persist(move |s| s.remove_peer(&gone));
                }
                self.dial_more();
                false
            }
            ManagerMsg::Withdrawn(addr) => {
                self.book.withdraw(&addr);
                false
            }
            ManagerMsg::Dialled { addr, result } => {
                self.dialled(addr, result);
                false
            }
            ManagerMsg::PeersFor { asker, reply } => {
                let _ = reply.send(self.peers_for(&asker));
                false
            }
            ManagerMsg::Connect { addr, id, reply } => {
                self.book.add(addr, id, id.is_some(), Source::Manual);
                match self.dialing.get_mut(&addr) {
                    // Already dialling: this call learns that dial's outcome.
                    Some(waiters) => waiters.push(reply),
                    None => self.start_dial(addr, vec![reply]),
                }
                false
            }
            ManagerMsg::Forget { id, reply } => {
                let connected = self.peers.contains_key(&id);
                let addrs = self.book.remove_node(&id);
                let known = connected || !addrs.is_empty();
                self.drop_peer(&id, RejectReason::Disconnected, "forgotten by operator");
                self.persist(move |s| {
                    for a in &addrs {
                        s.remove_peer(a)?;
                    }
                    Ok(())
                });
                let _ = reply.send(known);
                true
            }
            ManagerMsg::Ban { ban, reply } => {
                let id = ban.node_id;
                self.bans.ban(ban.clone());
                self.drop_peer(&id, RejectReason::Banned, "banned by operator");
                self.persist(move |s| s.save_ban(&ban));
                let _ = reply.send(());
                true
            }
            ManagerMsg::SetBlocked(ids) => {
                self.blocked = ids;
                let cut: Vec<NodeId> = self.peers.keys().filter(|id| self.blocked.contains(id)).copied().collect();
                for id in cut {
                    self.drop_peer(&id, RejectReason::Blocked, "blocked by operator");
                }
                true
            }
        };
        if changed {
            self.publish();
        }
    }

    fn count(&self, d: Direction) -> usize {
        self.peers.values().filter(|p| p.direction == d).count()
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
        let dialer = |d: Direction| if d == Direction::Outbound { self.ctx.node_id } else { *id };
        dialer(new) < dialer(existing)
    }

    /// Whether a connection may join the table now. `reserved`: an inbound handshake that
    /// already holds one of the pending slots.
    fn admit(&self, id: NodeId, direction: Direction, reserved: bool) -> Result<(), Refusal> {
        if self.bans.is_banned(&id, now_ms()) {
            return Err(Refusal::new(RejectReason::Banned, format!("node {id} is banned")));
        }
        if self.blocked.contains(&id) {
            return Err(Refusal::new(RejectReason::Blocked, format!("node {id} is blocked by the operator")));
        }
        if let Some(existing) = self.peers.get(&id)
            && !self.replaces(existing.direction, direction, &id)
        {
            return Err(Refusal::new(RejectReason::AlreadyConnected, format!("already connected to {id}")));
        }
        // A replaced connection of the same direction frees its own slot.
        let replacing = usize::from(self.peers.get(&id).is_some_and(|p| p.direction == direction));
        let (count, max) = match direction {
            Direction::Inbound => (self.count(Direction::Inbound) + self.pending_inbound - usize::from(reserved) - replacing, self.ctx.cfg.max_inbound),
            Direction::Outbound => (self.count(Direction::Outbound) - replacing, self.ctx.cfg.max_outbound),
        };
        if count >= max {
            return Err(Refusal::new(RejectReason::TooManyPeers, format!("{count} {} peers, at most {max}", direction.as_str())));
        }
        Ok(())
    }

    fn register(&mut self, j: Joining) -> Result<Registration, Refusal> {
        if j.reserved {
            self.pending_inbound = self.pending_inbound.saturating_sub(1);
        }
        self.admit(j.id, j.direction, false)?;
        let stats = Arc::new(PeerStats::new(j.best_height, j.bytes_in, j.bytes_out, now_ms()));
        let (tx, rx) = mpsc::channel(PEER_INBOX);
        let cancel = self.ctx.cancel.child_token();
        let address = j.conn.remote_address();
        tracing::info!(target: "p2p::peer", peer = %j.id, addr = %address, direction = j.direction.as_str(), height = j.best_height, "peer connected");
        let replaced = self.peers.insert(
            j.id,
            Peer {
                direction: j.direction,
                address,
                listen_address: j.listen,
                connected_since_ms: now_ms(),
                user_agent: j.user_agent.chars().take(64).collect(),
                name: crate::name::from_user_agent(&j.user_agent),
                stats: stats.clone(),
                inbox: tx.clone(),
                conn: j.conn,
                cancel: cancel.clone(),
            },
        );
        if let Some(old) = replaced {
            // The crossing connection loses the tie-break; its task ends on the cancel.
            old.cancel.cancel();
            old.conn.close(RejectReason::AlreadyConnected.close_code(), b"already_connected: crossing connection replaced");
        }
        self.ctx.metrics.connected();
        if j.direction == Direction::Inbound {
            self.learn(vec![j.listen]);
        }
        Ok(Registration { inbox: rx, sender: tx, cancel, stats })
    }

    /// Removes a peer whose task ended, if the entry is still that connection's.
    fn gone(&mut self, id: &NodeId, conn_id: usize) -> bool {
        if self.peers.get(id).is_some_and(|p| p.conn.stable_id() == conn_id) {
            self.peers.remove(id);
            self.ctx.metrics.disconnected();
            return true;
        }
        false
    }

    /// Takes a peer out of the table and cuts it off at once.
    fn drop_peer(&mut self, id: &NodeId, code: RejectReason, why: &str) {
        if let Some(p) = self.peers.remove(id) {
            tracing::info!(target: "p2p::peer", peer = %id, "disconnecting: {why}");
            // Readers see the change (a ban, the table) no later than the peer sees the close.
            self.publish();
            cut_off(&p, code, why);
            self.ctx.metrics.disconnected();
        }
    }

    /// Adds a misbehaviour's points; at the threshold bans (persisted) and cuts the peer off.
    fn penalize(&mut self, id: NodeId, kind: Misbehaviour) -> Standing {
        self.ctx.metrics.misbehaved(kind.code());
        let now = now_ms();
        if self.bans.is_banned(&id, now) {
            return Standing::Banned;
        }
        let points = kind.points();
        let (score, ban) = self.bans.penalize(id, points, kind.code(), now, self.ctx.cfg.ban_duration.as_millis() as u64);
        tracing::warn!(target: "p2p::peer", peer = %id, kind = kind.code(), points, score, "misbehaviour");
        let Some(ban) = ban else { return Standing::Good };
        self.ctx.metrics.banned();
        tracing::warn!(target: "p2p::peer", peer = %id, reason = kind.code(), "banned");
        self.drop_peer(&id, RejectReason::Banned, kind.code());
        self.persist(move |s| s.save_ban(&ban));
        Standing::Banned
    }

    fn learn(&mut self, addrs: Vec<SocketAddr>) {
        let mut added = Vec::new();
        let mut evicted = Vec::new();
        for addr in addrs {
            if addr.port() == 0 || addr.ip().is_unspecified() || addr.ip().is_multicast() {
                continue;
            }
            let (new, gone) = self.book.add(addr, None, false, Source::Learned);
            if new {
                added.push(addr);
            }
            evicted.extend(gone);
        }
        if added.is_empty() && evicted.is_empty() {
            return;
        }
        self.persist(move |s| {
            for e in &evicted {
                s.remove_peer(e)?;
            }
            for addr in &added {
                s.save_peer(&KnownPeer { addr: *addr, node_id: None, last_seen_ms: 0 })?;
            }
            Ok(())
        });
    }

    /// Writes to the peer store on the blocking pool (never on this task).
    fn persist(&self, f: impl FnOnce(&dyn crate::ports::PeerStore) -> Result<(), crate::ports::PeerStoreError> + Send + 'static) {
        let store = self.ctx.store.clone();
        self.ctx.tasks.spawn_blocking(move || {
            if let Err(e) = f(store.as_ref()) {
                tracing::warn!(target: "p2p::peers", "cannot persist peers: {e}");
            }
        });
    }

    /// Addresses to give a peer: the listen addresses of our other peers, then proven book
    /// entries, at most [`MAX_PEERS_PER_MESSAGE`].
    fn peers_for(&self, asker: &NodeId) -> Vec<PeerAddress> {
        let mut out: Vec<PeerAddress> = self
            .peers
            .iter()
            .filter(|(id, p)| *id != asker && p.listen_address.port() != 0)
            .map(|(id, p)| PeerAddress { node_id: Some(*id), addr: p.listen_address })
            .take(MAX_PEERS_PER_MESSAGE)
            .collect();
        let room = MAX_PEERS_PER_MESSAGE - out.len();
        let known: Vec<PeerAddress> = self.book.sample(room).into_iter().filter(|p| !out.iter().any(|o| o.addr == p.addr)).collect();
        out.extend(known);
        out
    }

    /// Dials due addresses while the outbound count is below target.
    fn dial_more(&mut self) {
        let outbound = self.count(Direction::Outbound) + self.dialing.len();
        let want = self.ctx.cfg.target_outbound.saturating_sub(outbound);
        if want == 0 {
            return;
        }
        let connected: HashSet<SocketAddr> = self.peers.values().flat_map(|p| [p.address, p.listen_address]).collect();
        let now = now_ms();
        let due = self.book.due(Instant::now(), want, |a, id| {
            connected.contains(a)
                || self.dialing.contains_key(a)
                || *a == self.ctx.local_addr
                || id.is_some_and(|id| id == self.ctx.node_id || self.peers.contains_key(&id) || self.bans.is_banned(&id, now) || self.blocked.contains(&id))
        });
        for addr in due {
            self.start_dial(addr, Vec::new());
        }
    }

    fn start_dial(&mut self, addr: SocketAddr, waiters: Vec<oneshot::Sender<Result<NodeId, ConnectError>>>) {
        let expect: Expect = self.book.expect(&addr);
        self.dialing.insert(addr, waiters);
        let ctx = self.ctx.clone();
        self.ctx.tasks.spawn(dial_task(ctx, addr, expect));
    }

    fn dialled(&mut self, addr: SocketAddr, result: Result<NodeId, ConnectError>) {
        match &result {
            // Persisted only if still wanted (an operator may have forgotten it meanwhile).
            Ok(id) if self.book.succeeded(&addr, *id) => {
                let known = KnownPeer { addr, node_id: Some(*id), last_seen_ms: now_ms() };
                self.persist(move |s| s.save_peer(&known));
            }
            Err(ConnectError::Refused { reason: RejectReason::SelfConnection, .. }) => {
                self.book.remove(&addr);
            }
            Ok(_) | Err(ConnectError::Refused { reason: RejectReason::AlreadyConnected, .. }) => {}
            Err(_) => self.book.failed(&addr, self.ctx.cfg.backoff_base, self.ctx.cfg.backoff_max),
        }
        match &result {
            Ok(id) => tracing::debug!(target: "p2p::dial", %addr, peer = %short(id), "dialled"),
            Err(e) => tracing::debug!(target: "p2p::dial", %addr, "dial failed: {e}"),
        }
        for w in self.dialing.remove(&addr).unwrap_or_default() {
            let _ = w.send(result.clone());
        }
    }

    /// Asks one random peer for addresses while below the outbound target.
    fn ask_for_peers(&self) {
        if self.count(Direction::Outbound) >= self.ctx.cfg.target_outbound || self.peers.is_empty() {
            return;
        }
        let i = rand::random::<usize>() % self.peers.len();
        if let Some(p) = self.peers.values().nth(i) {
            let _ = p.inbox.try_send(PeerCmd::Send(crate::wire::Message::GetPeers));
        }
    }

    fn publish(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        let peers = self
            .peers
            .iter()
            .map(|(id, p)| {
                let view = PeerView {
                    node_id: *id,
                    address: p.address,
                    listen_address: p.listen_address,
                    direction: p.direction,
                    connected_since_ms: p.connected_since_ms,
                    best_height: p.stats.best_height.load(Relaxed),
                    bytes_sent: p.stats.bytes_out.load(Relaxed),
                    bytes_received: p.stats.bytes_in.load(Relaxed),
                    blocks_served: p.stats.blocks_served.load(Relaxed),
                    last_seen_ms: p.stats.last_seen_ms.load(Relaxed),
                    score: self.bans.score(id, now_ms()),
                    user_agent: p.user_agent.clone(),
                    name: p.name.clone(),
                };
                (view, p.stats.clone())
            })
            .collect();
        let snap = Snapshot {
            peers,
            inboxes: self.peers.iter().map(|(id, p)| (*id, p.inbox.clone())).collect(),
            scores: self.bans.scores(now_ms()),
            bans: self.bans.list(now_ms()),
            inbound: self.count(Direction::Inbound),
            outbound: self.count(Direction::Outbound),
        };
        self.published.send_replace(Arc::new(snap));
    }
}

/// Cuts a peer off at once: its token stops its task before it processes anything more, and
/// the connection closes with the code (the task may still be blocked on a send).
fn cut_off(p: &Peer, code: RejectReason, why: &str) {
    p.cancel.cancel();
    p.conn.close(code.close_code(), format!("{}: {why}", code.code()).as_bytes());
}
