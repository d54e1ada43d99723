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
//!   records: [`crate::config::MAX_BANS`], [`crate::config::MAX_SCORE_RECORDS`]; handshake
//!   rate buckets: [`crate::admission::MAX_RATE_BUCKETS`]; removed nodes:
//!   [`crate::config::MAX_FORGOTTEN`].
//!
//! # Policies
//! The rules are sans-IO and tested on their own: who may start a handshake
//! ([`crate::admission`]), who gives way when the inbound slots are full
//! ([`crate::eviction`]), whom to dial ([`crate::addrbook`]), scores and bans
//! ([`crate::bans`]). This task only feeds them its state and carries out their answers.

use crate::events::{PeerEvent, PeerEventKind};
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::addrbook::{AddressBook, Expect, Source};
use crate::admission::{Admission, Decision, Limits};
use crate::bans::Bans;
use crate::channels::{ConnectError, Direction, Joining, ManagerMsg, PeerCmd, PeerStats, PeerView, Registration, Snapshot, Standing};
use crate::config::{MAX_FORGOTTEN, MAX_PEERS_PER_MESSAGE, METRIC_GROUPS, PEER_INBOX};
use crate::ctx::{Ctx, now_ms, short};
use crate::handshake::Refusal;
use crate::identity::NodeId;
use crate::netgroup::{canonical, group, host};
use crate::ports::{Ban, BanTarget, KnownPeer};
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
    admission: Admission,
    /// Nodes the operator removed: not dialled again unless the operator asks (oldest first,
    /// at most [`MAX_FORGOTTEN`]).
    forgotten: VecDeque<NodeId>,
    /// This node's secret for eviction's network-group ranking.
    secret: u64,
}

/// Runs the manager until shutdown.
pub(crate) async fn run(ctx: Arc<Ctx>, mut rx: mpsc::Receiver<ManagerMsg>, book: AddressBook, bans: Bans, published: watch::Sender<Arc<Snapshot>>) {
    let cfg = &ctx.cfg;
    let limits = Limits {
        max_per_ip: cfg.max_inbound_per_ip,
        max_per_subnet: cfg.max_inbound_per_subnet,
        rate: cfg.handshakes_per_minute,
        period: std::time::Duration::from_secs(60),
        burst: cfg.handshake_burst,
        exempt_loopback: cfg.exempt_loopback,
    };
    let mut m = Manager {
        ctx: ctx.clone(),
        peers: HashMap::new(),
        pending_inbound: 0,
        dialing: HashMap::new(),
        book,
        bans,
        blocked: HashSet::new(),
        published,
        admission: Admission::new(limits),
        forgotten: VecDeque::new(),
        secret: rand::random(),
    };
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
            ManagerMsg::Incoming { addr, validated, reply } => {
                let ip = canonical(addr.ip());
                let banned = self.bans.ip_ban(ip, now_ms()).is_some();
                let connected = self.peers.values().filter(|p| p.direction == Direction::Inbound).map(|p| p.address.ip());
                let d = self.admission.incoming(ip, validated, banned, connected, Instant::now());
                if let Decision::Refuse(r) | Decision::Close(r) = &d {
                    // Debug only: a flood of these must not flood the log (the metric counts).
                    self.ctx.metrics.rejected(r.reason, crate::metrics::Side::Local);
                    self.ctx.refusal_event(None, addr, r.reason, false);
                    tracing::debug!(target: "p2p::handshake", %addr, code = r.reason.code(), "refused before the handshake: {}", r.detail);
                }
                let _ = reply.send(d);
                false
            }
            ManagerMsg::HandshakeEnded(ip) => {
                self.admission.ended(ip);
                false
            }
            ManagerMsg::Admit { id, direction, manual, reply } => {
                let r = self.admit(id, direction, manual);
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
            ManagerMsg::Misbehaved { id, kind, ip, reply } => {
                let standing = self.penalize(id, kind, ip);
                // Published before the answer: readers see the new score no later than the
                // peer sees what the judgement leads to (a close).
                self.publish();
                if let Some(r) = reply {
                    let _ = r.send(standing);
                }
                false
            }
            ManagerMsg::Learned(addrs) => {
                self.learn(addrs);
                false
            }
            ManagerMsg::Discovered { addr, id } => {
                if self.forgotten.contains(&id) {
                    return;
                }
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
                if let Some(id) = id {
                    self.forgotten.retain(|f| *f != id);
                }
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
                if !self.forgotten.contains(&id) {
                    if self.forgotten.len() >= MAX_FORGOTTEN {
                        self.forgotten.pop_front();
                    }
                    self.forgotten.push_back(id);
                }
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
                let kind = match ban.target {
                    BanTarget::Node(_) => "node_operator",
                    BanTarget::Net(_) => "ip_operator",
                };
                self.ctx.metrics.ban_placed(kind);
                tracing::warn!(target: "p2p::peer", target = %ban.target, until_ms = ban.until_ms, reason = %ban.reason, "banned by the operator");
                let cut = self.place_ban(ban, "banned by operator");
                let _ = reply.send(cut);
                true
            }
            ManagerMsg::Unban { target, reply } => {
                let lifted = self.bans.unban(&target, now_ms());
                if lifted {
                    tracing::info!(target: "p2p::peer", %target, "ban lifted by the operator");
                }
                self.persist(move |s| s.remove_ban(&target));
                let _ = reply.send(lifted);
                true
            }
            ManagerMsg::Addresses { reply } => {
                let _ = reply.send(self.book.view(Instant::now(), now_ms()));
                false
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

    /// Whether a connection may join the table now; a full inbound side makes room by
    /// eviction if it can. `manual`: an operator's dial, which may reach a node the operator
    /// removed before (and so un-removes it).
    fn admit(&mut self, id: NodeId, direction: Direction, manual: bool) -> Result<(), Refusal> {
        if self.bans.is_banned(&id, now_ms()) {
            return Err(Refusal::new(RejectReason::Banned, format!("node {id} is banned")));
        }
        if self.blocked.contains(&id) {
            return Err(Refusal::new(RejectReason::Blocked, format!("node {id} is blocked by the operator")));
        }
        if direction == Direction::Outbound && self.forgotten.contains(&id) {
            if !manual {
                return Err(Refusal::new(RejectReason::Disconnected, format!("node {id} was removed by the operator; add it again to reconnect")));
            }
            self.forgotten.retain(|f| *f != id);
        }
        if let Some(existing) = self.peers.get(&id)
            && !self.replaces(existing.direction, direction, &id)
        {
            return Err(Refusal::new(RejectReason::AlreadyConnected, format!("already connected to {id}")));
        }
        // A replaced connection of the same direction frees its own slot.
        let replacing = usize::from(self.peers.get(&id).is_some_and(|p| p.direction == direction));
        let (count, max) = match direction {
            Direction::Inbound => (self.count(Direction::Inbound) + self.pending_inbound - replacing, self.ctx.cfg.max_inbound),
            Direction::Outbound => (self.count(Direction::Outbound) - replacing, self.ctx.cfg.max_outbound),
        };
        if count >= max {
            if direction == Direction::Inbound
                && let Some(victim) = self.eviction_victim(&id)
            {
                tracing::info!(target: "p2p::peer", peer = %victim, newcomer = %id, "inbound slots full: evicting");
                self.ctx.metrics.evicted();
                self.drop_peer(&victim, RejectReason::Evicted, "inbound slots full; gave way to a newcomer");
                return Ok(());
            }
            return Err(Refusal::new(RejectReason::TooManyPeers, format!("{count} {} peers, at most {max}", direction.as_str())));
        }
        Ok(())
    }

    /// The inbound peer to evict for `newcomer`, if any (see [`crate::eviction`]): peers we
    /// dialled and the operator's own peers are never candidates.
    fn eviction_victim(&self, newcomer: &NodeId) -> Option<NodeId> {
        use std::sync::atomic::Ordering::Relaxed;
        let candidates: Vec<crate::eviction::Candidate> = self
            .peers
            .iter()
            .filter(|(id, p)| p.direction == Direction::Inbound && *id != newcomer && !self.book.is_manual_node(id))
            .map(|(id, p)| crate::eviction::Candidate {
                id: *id,
                group: group(p.address.ip()),
                connected_ms: p.connected_since_ms,
                ping_ms: Some(p.stats.ping_ms.load(Relaxed)).filter(|ms| *ms > 0),
                last_block_ms: p.stats.last_block_ms.load(Relaxed),
                last_tx_ms: p.stats.last_tx_ms.load(Relaxed),
            })
            .collect();
        crate::eviction::select(&candidates, self.secret)
    }

    fn register(&mut self, j: Joining) -> Result<Registration, Refusal> {
        if j.reserved {
            self.pending_inbound = self.pending_inbound.saturating_sub(1);
        }
        self.admit(j.id, j.direction, true)?;
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
        if self.ctx.events.receiver_count() > 0 {
            let mut e = PeerEvent::new(PeerEventKind::Connected, Some(j.id), address);
            e.name = crate::name::from_user_agent(&j.user_agent);
            e.direction = Some(j.direction.as_str());
            let _ = self.ctx.events.send(e);
        }
        if j.direction == Direction::Inbound {
            self.learn(vec![j.listen]);
        }
        Ok(Registration { inbox: rx, sender: tx, cancel, stats })
    }

    /// Removes a peer whose task ended, if the entry is still that connection's.
    fn gone(&mut self, id: &NodeId, conn_id: usize) -> bool {
        if self.peers.get(id).is_some_and(|p| p.conn.stable_id() == conn_id)
            && let Some(p) = self.peers.remove(id)
        {
            self.credit(&p);
            self.ctx.metrics.disconnected();
            self.left(id, &p, None);
            return true;
        }
        false
    }

    /// Publishes a peer's leaving to event subscribers (if any).
    fn left(&self, id: &NodeId, p: &Peer, reason: Option<&'static str>) {
        if self.ctx.events.receiver_count() > 0 {
            let mut e = PeerEvent::new(PeerEventKind::Disconnected, Some(*id), p.address);
            e.name = p.name.clone();
            e.direction = Some(p.direction.as_str());
            e.reason = reason;
            let _ = self.ctx.events.send(e);
        }
    }

    /// Credits the address of a peer that delivered something new, for the book's reputation.
    fn credit(&mut self, p: &Peer) {
        use std::sync::atomic::Ordering::Relaxed;
        if p.stats.last_block_ms.load(Relaxed) > 0 || p.stats.last_tx_ms.load(Relaxed) > 0 {
            self.book.served(&p.listen_address);
        }
    }

    /// Takes a peer out of the table and cuts it off at once.
    fn drop_peer(&mut self, id: &NodeId, code: RejectReason, why: &str) {
        if let Some(p) = self.peers.remove(id) {
            tracing::info!(target: "p2p::peer", peer = %id, "disconnecting: {why}");
            self.credit(&p);
            // Readers see the change (a ban, the table) no later than the peer sees the close.
            self.publish();
            cut_off(&p, code, why);
            self.ctx.metrics.disconnected();
            self.left(id, &p, Some(code.code()));
        }
    }

    /// Adds a misbehaviour's points; at the threshold bans (persisted) and cuts the peer off.
    /// The ban covers the node ID and, for `ip_ban_duration`, the IP it connected from (`ip`
    /// when it is not in the table yet) unless that IP is exempt (`127.0.0.1` and `::1` by default).
    fn penalize(&mut self, id: NodeId, kind: Misbehaviour, ip: Option<IpAddr>) -> Standing {
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
        self.ctx.metrics.ban_placed("node_auto");
        let ip = self.peers.get(&id).map(|p| p.address.ip()).or(ip).map(canonical);
        tracing::warn!(target: "p2p::peer", peer = %id, reason = kind.code(), ip = ?ip, "banned");
        self.persist(move |s| s.save_ban(&ban));
        // The address ban first: readers see both bans no later than the peer sees its close.
        if let Some(ip) = ip.filter(|ip| !self.admission.exempt(*ip)) {
            let ms = self.ctx.cfg.ip_ban_duration.min(self.ctx.cfg.ban_duration).as_millis() as u64;
            self.ctx.metrics.ban_placed("ip_auto");
            let ip_ban = Ban { target: BanTarget::Net(host(ip)), until_ms: now.saturating_add(ms), reason: format!("{} (node {})", kind.code(), short(&id)) };
            self.place_ban(ip_ban, kind.code());
        }
        self.drop_peer(&id, RejectReason::Banned, kind.code());
        Standing::Banned
    }

    /// Records a ban (persisted) and cuts off every peer it covers; returns how many.
    fn place_ban(&mut self, ban: Ban, why: &str) -> usize {
        let covered: Vec<NodeId> = self
            .peers
            .iter()
            .filter(|(id, p)| match ban.target {
                BanTarget::Node(n) => n == **id,
                BanTarget::Net(net) => net.contains(&canonical(p.address.ip())),
            })
            .map(|(id, _)| *id)
            .collect();
        self.bans.ban(ban.clone());
        for id in &covered {
            self.drop_peer(id, RejectReason::Banned, why);
        }
        self.persist(move |s| s.save_ban(&ban));
        covered.len()
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
        // The network groups we have outbound peers or dials in: a new dial goes elsewhere.
        let used: HashSet<ipnet::IpNet> = self
            .peers
            .values()
            .filter(|p| p.direction == Direction::Outbound)
            .map(|p| p.address)
            .chain(self.dialing.keys().copied())
            .filter(|a| !canonical(a.ip()).is_loopback() && !self.book.is_manual(a))
            .map(|a| group(a.ip()))
            .collect();
        let due = self.book.pick(Instant::now(), want, &used, |a, id| {
            connected.contains(a)
                || self.dialing.contains_key(a)
                || *a == self.ctx.local_addr
                || self.bans.ip_ban(a.ip(), now).is_some()
                || id.is_some_and(|id| {
                    id == self.ctx.node_id
                        || self.peers.contains_key(&id)
                        || self.bans.is_banned(&id, now)
                        || self.blocked.contains(&id)
                        || self.forgotten.contains(&id)
                })
        });
        for addr in due {
            self.start_dial(addr, Vec::new());
        }
    }

    fn start_dial(&mut self, addr: SocketAddr, waiters: Vec<oneshot::Sender<Result<NodeId, ConnectError>>>) {
        let expect: Expect = self.book.expect(&addr);
        // An operator's dial (now, or of an address they gave) may reach a removed node.
        let manual = !waiters.is_empty() || self.book.is_manual(&addr);
        self.dialing.insert(addr, waiters);
        let ctx = self.ctx.clone();
        self.ctx.tasks.spawn(dial_task(ctx, addr, expect, manual));
    }

    fn dialled(&mut self, addr: SocketAddr, result: Result<NodeId, ConnectError>) {
        match &result {
            // Persisted only if still wanted (an operator may have forgotten it meanwhile).
            Ok(id) if self.book.succeeded(&addr, *id, now_ms()) => {
                let known = KnownPeer { addr, node_id: Some(*id), last_seen_ms: now_ms() };
                self.persist(move |s| s.save_peer(&known));
            }
            // Ourselves, or a node the operator removed: not worth dialling again.
            Err(
                ConnectError::Refused { reason: RejectReason::SelfConnection, .. }
                | ConnectError::Refused { reason: RejectReason::Disconnected, by_peer: false, .. },
            ) => {
                if self.book.remove(&addr) {
                    self.persist(move |s| s.remove_peer(&addr));
                }
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
                    ping_ms: Some(p.stats.ping_ms.load(Relaxed)).filter(|ms| *ms > 0),
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
            inbound_groups: self.inbound_groups(),
        };
        self.published.send_replace(Arc::new(snap));
    }
}

impl Manager {
    /// Inbound peers per network group, the biggest [`METRIC_GROUPS`] named and the rest
    /// added up as `other`.
    fn inbound_groups(&self) -> Vec<(String, usize)> {
        let mut by: HashMap<ipnet::IpNet, usize> = HashMap::new();
        for p in self.peers.values().filter(|p| p.direction == Direction::Inbound) {
            *by.entry(group(p.address.ip())).or_default() += 1;
        }
        let mut v: Vec<(ipnet::IpNet, usize)> = by.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let other: usize = v.iter().skip(METRIC_GROUPS).map(|(_, n)| n).sum();
        let mut out: Vec<(String, usize)> = v.into_iter().take(METRIC_GROUPS).map(|(g, n)| (g.to_string(), n)).collect();
        if other > 0 {
            out.push(("other".into(), other));
        }
        out
    }
}

/// Cuts a peer off at once: its token stops its task before it processes anything more, and
/// the connection closes with the code (the task may still be blocked on a send).
fn cut_off(p: &Peer, code: RejectReason, why: &str) {
    p.cancel.cancel();
    p.conn.close(code.close_code(), format!("{}: {why}", code.code()).as_bytes());
}
