//! Transaction relay by announcement (Bitcoin's inv/getdata, Ethereum's
//! `NewPooledTransactionHashes`): a transaction newly accepted into the mempool is announced by
//! ID to every peer but the one it came from, and a peer fetches only the transactions it
//! lacks. (Tips are announced by the sync task, which knows who sent each block.)
//!
//! # Announcing
//! Per peer, new IDs are queued and go out as one `tx_ids` message every [`RELAY_FLUSH`], or
//! as soon as [`MAX_TX_IDS_PER_MESSAGE`] are queued, so relaying thousands of transactions a
//! second costs a peer a handful of messages a second, far inside its rate budget. A peer
//! that connects is sent the IDs of our whole mempool (up to [`RECONCILE_MAX`]), so mempools
//! reconcile after a partition or a reconnect. And every [`REANNOUNCE_QUIET`] (every
//! [`REANNOUNCE_EVERY`] while new transactions pour in), the next
//! [`RECONCILE_MAX`] of our pending IDs go to every peer, in turns through the whole mempool:
//! whatever a busy moment lost (an announcement dropped under load, a request whose peers all
//! failed, a link that dropped), each peer learns again within a few rounds. Receivers fetch
//! only what they lack, so a round costs an ID per pending transaction and little else. No ID
//! goes to a peer known to hold it (it announced it to us or sent it; see
//! [`crate::sync::known`]), in a round or when a transaction is new, and a quiet round skips
//! what a peer fetched from us too (a full round, every [`REANNOUNCE_EVERY`], offers that
//! again, in case its pool refused it): a quiet node's rounds send only what its peers may lack.
//!
//! # Fetching
//! On a peer's `tx_ids`, the chain says which IDs it lacks (not pending, not known bad), and
//! [`TxRequests`] which of those are not already asked of another peer; the rest is asked of
//! the announcer in one `get_txs`. An ID in flight from one peer remembers one other
//! announcer, asked in turn if the first does not deliver within [`TX_REQUEST_TIMEOUT`] or
//! leaves.
//!
//! The relay task owns the request table, the per-peer queues and the map of transaction
//! sources. Peer tasks tell it who sent a transaction ([`RelayMsg::Seen`]) before they submit
//! it, so the note is queued before the mempool can announce the transaction, and the task
//! reads notes first (`biased`).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_chain::Hash;
use tokio::sync::{mpsc, watch};

use crate::channels::{PeerCmd, RelayMsg, Snapshot};
use crate::config::MAX_TX_IDS_PER_MESSAGE;
use crate::ctx::Ctx;
use crate::identity::NodeId;
use crate::sync::known::KnownTxs;
use crate::wire::Message;

/// How many transaction sources are remembered (to skip them when relaying).
const SOURCES: usize = 65_536;

/// Most pending transactions announced to a peer that just connected (the default mempool's
/// size on a chain of small blocks; a larger mempool's rest follows in the re-announcement
/// rounds).
pub(crate) const RECONCILE_MAX: usize = 20_000;

/// How often the next part of the mempool is announced to every peer again while the node is
/// busy with new transactions (see [`REANNOUNCE_QUIET`]).
pub(crate) const REANNOUNCE_EVERY: Duration = Duration::from_secs(10);

/// How often a round goes out while the node is quiet: fewer than [`QUIET_BELOW`] new
/// transactions since the last tick. Under a load a node cannot keep up with, some
/// announcements are lost (past a peer's request backlog), and rounds are how those
/// transactions reach it afterwards: at one round per 10 s, 2,000 a second from each peer, a
/// 3-node network took ~50 s to confirm what its nodes had accepted in the last 30 s of a
/// load. Every 2 s once the load eases, and every 10 s under it, where rounds would take CPU
/// from the load (a round costs each peer one ID per transaction, at most 20,000, and a
/// lookup each).
pub(crate) const REANNOUNCE_QUIET: Duration = Duration::from_secs(2);

/// New transactions per [`REANNOUNCE_QUIET`] below which the node counts as quiet.
pub(crate) const QUIET_BELOW: usize = 1000;

/// Whether a round of re-announcement goes out at this tick, given the new transactions since
/// the last tick and the time since the last round: at every tick while quiet, at most every
/// [`REANNOUNCE_EVERY`] while busy.
fn round_due(fresh: usize, since_last_round: Duration) -> bool {
    fresh < QUIET_BELOW || since_last_round >= REANNOUNCE_EVERY
}

/// How long an ID waits for company before its announcement goes out.
pub(crate) const RELAY_FLUSH: Duration = Duration::from_millis(100);

/// How long a peer has to deliver transactions asked of it before another announcer is asked
/// (or it again). Under load the answers wait in our own queue behind our chain thread, and
/// an answer counted late is asked again and arrives twice: at 2 s a loaded node took more
/// duplicates than transactions. (Bitcoin Core waits 60 s.)
pub(crate) const TX_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Most IDs waiting to be announced to one peer (a busy peer's queue: its inbox more than half
/// full): beyond it the oldest are dropped (that peer then learns of them at the next
/// reconciliation or from the block that confirms them).
pub(crate) const MAX_QUEUED_IDS: usize = 50_000;

/// Most transactions asked and not yet received (about ten seconds of a heavy load): beyond
/// it, announcements are not fetched (the transactions come with the next reconciliation or
/// the block that confirms them).
pub(crate) const MAX_IN_FLIGHT: usize = 100_000;

/// Most transactions asked of one peer and not yet received (four full `get_txs`, ~2.4 MB of
/// answers): a node asks no more than it can take in a few seconds, so a peer's answers never
/// pile up unread. Beyond it, that peer's announcements are not fetched now (another
/// announcer's may be, and the peer re-announces them within a few rounds).
pub(crate) const MAX_IN_FLIGHT_PER_PEER: usize = 16_384;

/// A bounded map that forgets its oldest entries (public for the network simulator, whose
/// sync glue keeps the same maps).
pub struct Recent<V> {
    map: HashMap<Hash, V>,
    order: VecDeque<Hash>,
    bound: usize,
}

impl<V> Default for Recent<V> {
    /// Bounded like the relay's transaction sources.
    fn default() -> Self {
        Recent::new(SOURCES)
    }
}

impl<V> Recent<V> {
    /// An empty map that remembers at most `bound` entries.
    pub fn new(bound: usize) -> Self {
        Recent { map: HashMap::new(), order: VecDeque::new(), bound: bound.max(1) }
    }

    /// Remembers `v` for `k` (a known `k` keeps its place); the oldest goes beyond the bound.
    pub fn insert(&mut self, k: Hash, v: V) {
        if self.map.insert(k, v).is_none() {
            self.order.push_back(k);
            if self.order.len() > self.bound
                && let Some(old) = self.order.pop_front()
            {
                self.map.remove(&old);
            }
        }
    }
    /// What is remembered for `k`.
    pub fn get(&self, k: &Hash) -> Option<&V> {
        self.map.get(k)
    }
}

/// How many times one transaction is asked for (of its announcer, then its second source or
/// the announcer again) before it is left to the next re-announcement: an answer dropped by a
/// busy peer's full outbox is asked again, a transaction nobody has is not asked forever.
pub(crate) const MAX_ASKS: u8 = 2;

/// Most announced IDs waiting for room to be asked of one peer (its in-flight share full):
/// beyond it, the oldest are dropped (the peer re-announces them within a few rounds).
pub(crate) const MAX_BACKLOG_PER_PEER: usize = 50_000;

/// One transaction asked of a peer.
#[derive(Clone, Copy, Debug)]
struct InFlight {
    peer: NodeId,
    since: Instant,
    /// Another peer that announced it, asked if `peer` does not deliver.
    alt: Option<NodeId>,
    /// Times it was asked for, this one included.
    asks: u8,
}

/// Transactions asked of peers and not yet received: each is asked of one peer at a time.
/// Sans-IO: the relay task feeds it announcements, arrivals, departures and the time. Public
/// for the network simulator, which drives it as the relay task does.
#[derive(Default)]
pub struct TxRequests {
    in_flight: HashMap<Hash, InFlight>,
    /// How many of `in_flight` each peer holds.
    per_peer: HashMap<NodeId, usize>,
    /// Request times, oldest first, for expiry (stale entries are skipped).
    order: VecDeque<(Instant, Hash)>,
    /// Announced IDs waiting for room in their announcer's share, oldest first (at most
    /// [`MAX_BACKLOG_PER_PEER`] a peer): under a load that outruns the requests, what a peer
    /// announced is asked as its answers arrive, instead of being forgotten until it
    /// announces it again.
    backlog: HashMap<NodeId, VecDeque<Hash>>,
}

impl TxRequests {
    /// `from` announced `ids` we lack: returns those to ask it for now. IDs already asked of
    /// another peer take `from` as their second source instead. Past `from`'s share
    /// ([`MAX_IN_FLIGHT_PER_PEER`]) or [`MAX_IN_FLIGHT`], IDs wait in its backlog
    /// ([`TxRequests::ready`] asks them as room comes).
    pub fn announced(&mut self, from: NodeId, ids: Vec<Hash>, now: Instant) -> Vec<Hash> {
        let mut ask = Vec::new();
        for id in ids {
            let room = self.has_room(&from);
            match self.in_flight.get_mut(&id) {
                Some(f) if f.peer != from && f.alt.is_none() => f.alt = Some(from),
                Some(_) => {}
                None if room => {
                    self.insert(id, InFlight { peer: from, since: now, alt: None, asks: 1 });
                    ask.push(id);
                }
                None => {
                    let q = self.backlog.entry(from).or_default();
                    q.push_back(id);
                    if q.len() > MAX_BACKLOG_PER_PEER {
                        q.pop_front();
                    }
                }
            }
        }
        ask
    }

    fn has_room(&self, peer: &NodeId) -> bool {
        self.in_flight.len() < MAX_IN_FLIGHT && self.per_peer.get(peer).copied().unwrap_or(0) < MAX_IN_FLIGHT_PER_PEER
    }

    /// Backlogged IDs that fit their announcer's share now, to ask now (by peer). IDs that
    /// arrived meanwhile or are asked of another peer are skipped.
    pub fn ready(&mut self, now: Instant) -> HashMap<NodeId, Vec<Hash>> {
        let mut ask: HashMap<NodeId, Vec<Hash>> = HashMap::new();
        let peers: Vec<NodeId> = self.backlog.keys().copied().collect();
        for peer in peers {
            while self.has_room(&peer) {
                let Some(id) = self.backlog.get_mut(&peer).and_then(VecDeque::pop_front) else { break };
                if self.in_flight.contains_key(&id) {
                    continue;
                }
                self.insert(id, InFlight { peer, since: now, alt: None, asks: 1 });
                ask.entry(peer).or_default().push(id);
            }
            if self.backlog.get(&peer).is_some_and(VecDeque::is_empty) {
                self.backlog.remove(&peer);
            }
        }
        ask
    }

    fn insert(&mut self, id: Hash, f: InFlight) {
        *self.per_peer.entry(f.peer).or_default() += 1;
        self.order.push_back((f.since, id));
        if let Some(old) = self.in_flight.insert(id, f) {
            self.release(&old.peer);
        }
    }

    fn remove(&mut self, id: &Hash) {
        if let Some(f) = self.in_flight.remove(id) {
            self.release(&f.peer);
        }
    }

    fn release(&mut self, peer: &NodeId) {
        if let Some(n) = self.per_peer.get_mut(peer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_peer.remove(peer);
            }
        }
    }

    /// A transaction arrived (from anyone): no longer wanted. (A backlogged copy of its ID is
    /// skipped when its turn comes only if it is in flight then; otherwise it is asked once
    /// more and arrives as a duplicate: cheaper than searching the backlogs here.)
    pub fn received(&mut self, id: &Hash) {
        self.remove(id);
    }

    /// Requests older than [`TX_REQUEST_TIMEOUT`]: those with a second source move to it, the
    /// others are asked of the same peer again (its answer may have been dropped by its full
    /// outbox), each up to [`MAX_ASKS`] times in all (returned, by peer, to be asked now);
    /// then they are dropped.
    pub fn expire(&mut self, now: Instant) -> HashMap<NodeId, Vec<Hash>> {
        let mut reask: HashMap<NodeId, Vec<Hash>> = HashMap::new();
        while let Some((since, id)) = self.order.front().copied() {
            if now.saturating_duration_since(since) < TX_REQUEST_TIMEOUT {
                break;
            }
            self.order.pop_front();
            let Some(f) = self.in_flight.get(&id).copied() else { continue };
            if f.since != since {
                continue; // re-asked since; its newer entry is further back
            }
            self.move_to_alt(id, f, now, &mut reask);
        }
        reask
    }

    /// A peer left: what it was asked moves to the second sources (returned, by peer).
    pub fn peer_gone(&mut self, peer: &NodeId, now: Instant) -> HashMap<NodeId, Vec<Hash>> {
        let mut reask: HashMap<NodeId, Vec<Hash>> = HashMap::new();
        let theirs: Vec<(Hash, InFlight)> = self.in_flight.iter().filter(|(_, f)| f.peer == *peer).map(|(id, f)| (*id, *f)).collect();
        for (id, f) in theirs {
            self.move_on(id, f, now, &mut reask, false);
        }
        self.backlog.remove(peer);
        for f in self.in_flight.values_mut() {
            if f.alt == Some(*peer) {
                f.alt = None;
            }
        }
        reask
    }

    fn move_to_alt(&mut self, id: Hash, f: InFlight, now: Instant, reask: &mut HashMap<NodeId, Vec<Hash>>) {
        self.move_on(id, f, now, reask, true);
    }

    /// Asks `f`'s second source, or (`same_peer_ok`) its peer again, while asks remain.
    fn move_on(&mut self, id: Hash, f: InFlight, now: Instant, reask: &mut HashMap<NodeId, Vec<Hash>>, same_peer_ok: bool) {
        let next = match f.alt {
            Some(alt) => Some(alt),
            None if same_peer_ok => Some(f.peer),
            None => None,
        };
        match next {
            Some(peer) if f.asks < MAX_ASKS => {
                self.insert(id, InFlight { peer, since: now, alt: None, asks: f.asks + 1 });
                reask.entry(peer).or_default().push(id);
            }
            _ => self.remove(&id),
        }
    }

    /// Transactions asked and not yet received.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.in_flight.len()
    }
}

/// Relays every transaction newly accepted into the mempool by announcing its ID to every
/// peer but its source, and fetches what peers announce and we lack.
///
/// Bounds: at most [`MAX_QUEUED_IDS`] IDs queued per peer, for the peers in the table (a full
/// announcement of [`MAX_TX_IDS_PER_MESSAGE`] goes out at once); [`MAX_IN_FLIGHT`] requests.
/// Announcements wait in the queue while the peer's inbox is more than half full (gossip never
/// crowds out sync requests), and go out once it drains; a `get_txs` that finds the inbox
/// full is sent again at the next flush. Nothing is lost to a busy moment.
pub(crate) async fn relay_transactions(ctx: Arc<Ctx>, mut notes: mpsc::Receiver<RelayMsg>, mut peers: watch::Receiver<Arc<Snapshot>>) {
    let Some(mut txs) = ctx.chain.new_transactions() else { return };
    let mut sources: Recent<NodeId> = Recent::default();
    let mut connected: HashSet<NodeId> = HashSet::new();
    // What each connected peer is known to hold (it announced or sent it: never announced to
    // it again) or was sent (it fetched it: skipped by the quiet rounds).
    let mut known: HashMap<NodeId, KnownTxs> = HashMap::new();
    let mut queued: HashMap<NodeId, Vec<Hash>> = HashMap::new();
    // Requests that found the peer's inbox full, sent again at the next flush.
    let mut retry: HashMap<NodeId, Vec<Hash>> = HashMap::new();
    let mut requests = TxRequests::default();
    let mut flush = tokio::time::interval(RELAY_FLUSH);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reannounce = tokio::time::interval_at(tokio::time::Instant::now() + REANNOUNCE_QUIET, REANNOUNCE_QUIET);
    reannounce.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // When the last round went out, and how many new transactions came since the last tick.
    let mut last_round = tokio::time::Instant::now();
    let mut last_full = last_round;
    let mut fresh = 0usize;
    // Where the next round of re-announcement starts, in the mempool's sender order.
    let mut cursor = 0;
    loop {
        let batch = tokio::select! {
            biased;
            _ = ctx.cancel.cancelled() => return,
            note = notes.recv() => {
                match note {
                    Some(RelayMsg::Seen { txids, from }) => {
                        let mut peer = known.get_mut(&from);
                        for txid in txids {
                            requests.received(&txid);
                            if let Some(k) = peer.as_deref_mut() {
                                k.held(&txid);
                            }
                            sources.insert(txid, from);
                        }
                    }
                    Some(RelayMsg::Served { ids, to }) => {
                        if let Some(k) = known.get_mut(&to) {
                            ids.iter().for_each(|id| k.served(id));
                        }
                    }
                    Some(RelayMsg::Announced { ids, from }) => {
                        if let Some(k) = known.get_mut(&from) {
                            ids.iter().for_each(|id| k.held(id));
                        }
                        let lacking = ctx.chain.lacking_txs(ids).await;
                        let ask = requests.announced(from, lacking, Instant::now());
                        ctx.metrics.txs_requested(ask.len());
                        let snapshot = peers.borrow().clone();
                        ask_for(&snapshot, &from, ask, &mut retry);
                    }
                    None => return,
                }
                continue;
            }
            _ = flush.tick() => {
                let snapshot = peers.borrow().clone();
                for (id, q) in queued.iter_mut() {
                    announce(&ctx, &snapshot, id, q);
                }
                queued.retain(|_, q| !q.is_empty());
                let mut again = std::mem::take(&mut retry);
                let now = Instant::now();
                for (peer, ids) in requests.expire(now).into_iter().chain(requests.ready(now)) {
                    ctx.metrics.txs_requested(ids.len());
                    again.entry(peer).or_default().extend(ids);
                }
                for (peer, ids) in again {
                    ask_for(&snapshot, &peer, ids, &mut retry);
                }
                continue;
            }
            _ = reannounce.tick() => {
                if !round_due(std::mem::take(&mut fresh), last_round.elapsed()) {
                    continue;
                }
                last_round = tokio::time::Instant::now();
                // A full round (every REANNOUNCE_EVERY; every round under load) also offers
                // what a peer was sent but may have refused (its pool full); a quiet one
                // skips that too.
                let full = last_full.elapsed() >= REANNOUNCE_EVERY;
                if full {
                    last_full = last_round;
                }
                ctx.metrics.reannounce_round();
                let ids = ctx.chain.pending_ids(cursor, RECONCILE_MAX).await;
                cursor = if ids.len() < RECONCILE_MAX { 0 } else { cursor + ids.len() };
                if !ids.is_empty() {
                    let snapshot = peers.borrow().clone();
                    for (id, _) in &snapshot.inboxes {
                        let q = queued.entry(*id).or_default();
                        let before = q.len();
                        q.extend(unknown_to(known.get(id), &ids, !full));
                        tracing::debug!(target: "p2p::gossip", peer = %id, txs = q.len() - before, of = ids.len(), "announcing part of our mempool again");
                        cap(q);
                    }
                }
                continue;
            }
            changed = peers.changed() => {
                if changed.is_err() {
                    return;
                }
                let snapshot = peers.borrow_and_update().clone();
                let now: HashSet<NodeId> = snapshot.inboxes.iter().map(|(id, _)| *id).collect();
                let joined: Vec<NodeId> = now.difference(&connected).copied().collect();
                for left in connected.difference(&now) {
                    queued.remove(left);
                    known.remove(left);
                    retry.remove(left);
                    for (peer, ids) in requests.peer_gone(left, Instant::now()) {
                        ask_for(&snapshot, &peer, ids, &mut retry);
                    }
                }
                connected = now;
                // A new connection knows nothing yet (a peer that reconnects may have lost its
                // mempool).
                for id in &joined {
                    known.insert(*id, KnownTxs::default());
                }
                if !joined.is_empty() {
                    let pending = ctx.chain.pending_ids(0, RECONCILE_MAX).await;
                    for id in &joined {
                        tracing::debug!(target: "p2p::gossip", peer = %id, txs = pending.len(), "announcing our mempool to a new peer");
                        let q = queued.entry(*id).or_default();
                        q.splice(0..0, pending.iter().copied());
                        cap(q);
                        announce(&ctx, &snapshot, id, q);
                    }
                }
                continue;
            }
            r = txs.recv() => match r {
                Ok(batch) => batch,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::debug!(target: "p2p::gossip", skipped = n, "transaction relay lagged");
                    continue;
                }
                Err(_) => return,
            },
        };
        fresh = fresh.saturating_add(batch.len());
        let snapshot = peers.borrow().clone();
        for tx in batch.iter() {
            let txid = tx.id();
            let source = sources.get(&txid).copied();
            for (id, _) in &snapshot.inboxes {
                if Some(*id) != source && !known.get(id).is_some_and(|k| k.knows(&txid, false)) {
                    queued.entry(*id).or_default().push(txid);
                }
            }
        }
        for (id, q) in queued.iter_mut() {
            cap(q);
            if q.len() >= MAX_TX_IDS_PER_MESSAGE {
                announce(&ctx, &snapshot, id, q);
            }
        }
    }
}

/// Those of `ids` a peer is not known to hold, nor (`or_served`) was sent (all of them if
/// nothing is known of it).
fn unknown_to<'a>(known: Option<&'a KnownTxs>, ids: &'a [Hash], or_served: bool) -> impl Iterator<Item = Hash> + 'a {
    ids.iter().filter(move |id| !known.is_some_and(|k| k.knows(id, or_served))).copied()
}

/// Drops the oldest IDs of a queue beyond [`MAX_QUEUED_IDS`].
fn cap(q: &mut Vec<Hash>) {
    if q.len() > MAX_QUEUED_IDS {
        let excess = q.len() - MAX_QUEUED_IDS;
        q.drain(..excess);
        tracing::debug!(target: "p2p::gossip", dropped = excess, "announcement queue full; oldest IDs dropped");
    }
}

/// Announces a peer's queued IDs, in messages of at most [`MAX_TX_IDS_PER_MESSAGE`], while its
/// inbox has room (more than half free: sync requests always find room); what does not go
/// stays queued. A peer no longer connected has its queue cleared.
fn announce(ctx: &Ctx, snapshot: &Snapshot, id: &NodeId, q: &mut Vec<Hash>) {
    let Some((_, inbox)) = snapshot.inboxes.iter().find(|(p, _)| p == id) else {
        q.clear();
        return;
    };
    while !q.is_empty() && inbox.capacity() > crate::config::PEER_INBOX / 2 {
        let n = q.len().min(MAX_TX_IDS_PER_MESSAGE);
        if inbox.try_send(PeerCmd::Send(Message::TxIds(q[..n].to_vec()))).is_err() {
            return;
        }
        ctx.metrics.tx_ids_announced(n);
        q.drain(..n);
    }
}

/// Asks a peer for transactions; what finds its inbox full waits in `retry` for the next
/// flush (a peer that left: dropped; its requests move to second sources).
fn ask_for(snapshot: &Snapshot, id: &NodeId, ids: Vec<Hash>, retry: &mut HashMap<NodeId, Vec<Hash>>) {
    if ids.is_empty() {
        return;
    }
    let Some((_, inbox)) = snapshot.inboxes.iter().find(|(p, _)| p == id) else { return };
    for chunk in ids.chunks(MAX_TX_IDS_PER_MESSAGE) {
        if inbox.try_send(PeerCmd::Send(Message::GetTxs(chunk.to_vec()))).is_err() {
            retry.entry(*id).or_default().extend_from_slice(chunk);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(b: u8) -> NodeId {
        cairn_chain::PublicKey([b; 32])
    }

    fn ids(range: std::ops::Range<u8>) -> Vec<Hash> {
        range.map(|b| Hash([b; 32])).collect()
    }

    #[test]
    fn rounds_skip_what_a_peer_is_known_to_hold() {
        let pending = ids(0..10);
        // Nothing known of the peer: every pending ID goes.
        assert_eq!(unknown_to(None, &pending, true).collect::<Vec<_>>(), pending);
        let mut k = KnownTxs::default();
        for id in &pending[..4] {
            k.held(id);
        }
        for id in &pending[4..6] {
            k.served(id);
        }
        // A quiet round skips what the peer holds and what it was sent; a full one offers
        // again what it was sent (its pool may have refused it).
        assert_eq!(unknown_to(Some(&k), &pending, true).collect::<Vec<_>>(), pending[6..].to_vec());
        assert_eq!(unknown_to(Some(&k), &pending, false).collect::<Vec<_>>(), pending[4..].to_vec());
        for id in &pending {
            k.held(id);
        }
        assert_eq!(unknown_to(Some(&k), &pending, false).count(), 0, "no round sends what the peer holds");
    }

    #[test]
    fn rounds_go_out_at_every_tick_while_quiet_and_every_ten_seconds_under_load() {
        // Quiet: every tick, however recent the last round.
        assert!(round_due(0, REANNOUNCE_QUIET));
        assert!(round_due(QUIET_BELOW - 1, REANNOUNCE_QUIET));
        // Busy: not before REANNOUNCE_EVERY since the last round, then yes (progress under a
        // load that never stops).
        assert!(!round_due(QUIET_BELOW, REANNOUNCE_QUIET));
        assert!(!round_due(usize::MAX, REANNOUNCE_EVERY - Duration::from_millis(1)));
        assert!(round_due(usize::MAX, REANNOUNCE_EVERY));
        assert!(REANNOUNCE_QUIET < REANNOUNCE_EVERY);
    }

    #[test]
    fn each_transaction_is_asked_of_one_peer_at_a_time() {
        let t0 = Instant::now();
        let mut r = TxRequests::default();
        let (a, b, c) = (node(1), node(2), node(3));
        assert_eq!(r.announced(a, ids(0..4), t0), ids(0..4));
        // B announces two of them and two new ones: only the new ones are asked of B.
        assert_eq!(r.announced(b, ids(2..6), t0), ids(4..6));
        assert_eq!(r.announced(c, ids(0..6), t0), vec![], "all in flight already");
        r.received(&Hash([0; 32]));
        assert_eq!(r.len(), 5);
        // A delivers nothing in time: what B also announced moves to B, the rest is dropped.
        let reask = r.expire(t0 + TX_REQUEST_TIMEOUT);
        // 1 had C as its second source (B's announcement did not cover it), 2 and 3 had B;
        // B's own requests (4, 5) had C.
        assert_eq!(reask.get(&b).map(Vec::len), Some(2));
        assert_eq!(reask.get(&c).map(Vec::len), Some(3));
        assert_eq!(r.len(), 5);
        // Not expired again before their new deadline.
        assert!(r.expire(t0 + TX_REQUEST_TIMEOUT + Duration::from_millis(1)).is_empty());
        // The second sources fail too: after MAX_ASKS asks in all, nothing is left.
        assert_eq!(MAX_ASKS, 2);
        assert!(r.expire(t0 + TX_REQUEST_TIMEOUT * 2).is_empty());
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn an_unanswered_request_is_asked_of_its_announcer_again() {
        let t0 = Instant::now();
        let mut r = TxRequests::default();
        let a = node(1);
        assert_eq!(r.announced(a, ids(0..2), t0), ids(0..2));
        for n in 1..MAX_ASKS as u32 {
            let again = r.expire(t0 + TX_REQUEST_TIMEOUT * n);
            assert_eq!(again.get(&a), Some(&ids(0..2)), "ask {}", n + 1);
        }
        assert!(r.expire(t0 + TX_REQUEST_TIMEOUT * MAX_ASKS as u32).is_empty());
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn announcements_past_a_peers_share_wait_and_are_asked_as_answers_arrive() {
        let t0 = Instant::now();
        let mut r = TxRequests::default();
        let (a, b) = (node(1), node(2));
        let many: Vec<Hash> = (0..MAX_IN_FLIGHT_PER_PEER as u64 + 5).map(|i| Hash::digest(&i.to_le_bytes())).collect();
        let asked = r.announced(a, many.clone(), t0);
        assert_eq!(asked.len(), MAX_IN_FLIGHT_PER_PEER);
        // Nothing to ask before answers arrive.
        assert!(r.ready(t0).is_empty());
        // Three answers arrive: three of the five waiting are asked, in announcement order.
        for id in &many[..3] {
            r.received(id);
        }
        let now = r.ready(t0);
        assert_eq!(now.get(&a).map(|v| v.as_slice()), Some(&many[MAX_IN_FLIGHT_PER_PEER..MAX_IN_FLIGHT_PER_PEER + 3]));
        // One of the last two is asked of B meanwhile: when A has room again, it is skipped.
        let last = many[MAX_IN_FLIGHT_PER_PEER + 4];
        assert_eq!(r.announced(b, vec![last], t0), vec![last]);
        for id in &many[3..5] {
            r.received(id);
        }
        assert_eq!(r.ready(t0).get(&a), Some(&vec![many[MAX_IN_FLIGHT_PER_PEER + 3]]));
        assert!(r.backlog.is_empty());
    }

    #[test]
    fn a_backlog_is_bounded_and_leaves_with_its_peer() {
        let t0 = Instant::now();
        let mut r = TxRequests::default();
        let a = node(1);
        let n = MAX_IN_FLIGHT_PER_PEER + MAX_BACKLOG_PER_PEER + 10;
        let many: Vec<Hash> = (0..n as u64).map(|i| Hash::digest(&i.to_le_bytes())).collect();
        r.announced(a, many, t0);
        assert_eq!(r.backlog.get(&a).map(VecDeque::len), Some(MAX_BACKLOG_PER_PEER));
        r.peer_gone(&a, t0);
        assert!(r.backlog.is_empty());
        assert_eq!(r.len(), 0, "nobody else announced them");
    }

    #[test]
    fn a_peer_that_leaves_hands_its_requests_to_the_second_source() {
        let t0 = Instant::now();
        let mut r = TxRequests::default();
        let (a, b) = (node(1), node(2));
        r.announced(a, ids(0..3), t0);
        r.announced(b, ids(1..2), t0);
        let reask = r.peer_gone(&a, t0);
        assert_eq!(reask.get(&b), Some(&ids(1..2)));
        assert_eq!(r.len(), 1);
        // B leaving too drops it.
        assert!(r.peer_gone(&b, t0).is_empty());
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn requests_are_bounded() {
        let t0 = Instant::now();
        let mut r = TxRequests::default();
        let many: Vec<Hash> = (0..MAX_IN_FLIGHT as u64 + 10).map(|i| Hash::digest(&i.to_le_bytes())).collect();
        // One peer is asked at most its share...
        assert_eq!(r.announced(node(1), many.clone(), t0).len(), MAX_IN_FLIGHT_PER_PEER);
        // ...and gets room again as its answers arrive.
        r.received(&many[0]);
        assert_eq!(r.announced(node(1), many[MAX_IN_FLIGHT_PER_PEER..].to_vec(), t0).len(), 1);
        // Many peers together reach the overall bound.
        for (p, chunk) in many.chunks(MAX_IN_FLIGHT_PER_PEER).enumerate() {
            r.announced(node(10 + p as u8), chunk.to_vec(), t0);
        }
        assert_eq!(r.len(), MAX_IN_FLIGHT);
        // A peer that leaves hands its share to the second sources and holds nothing.
        r.peer_gone(&node(1), t0);
        assert_eq!(r.len(), MAX_IN_FLIGHT);
        assert!(!r.per_peer.contains_key(&node(1)));
    }
}
