//! Transaction gossip: every transaction newly accepted into the mempool is relayed to every
//! peer but the one it came from, in batches: per peer, queued transactions go out as one
//! `transactions` message every [`RELAY_FLUSH`], or as soon as [`MAX_TXS_PER_MESSAGE`] are
//! queued, so relaying thousands a second costs a peer a handful of messages a second (far
//! inside its rate budget). (Tips are announced by the sync task, which knows who sent each
//! block.)
//!
//! The relay task owns the map of transaction sources. Peer tasks tell it who sent a
//! transaction ([`TxSeen`]) before they submit it, so the note is queued before the mempool
//! can announce the transaction, and the task reads notes first (`biased`).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use cairn_chain::Hash;
use tokio::sync::{mpsc, watch};

use crate::channels::{PeerCmd, Snapshot, TxSeen};
use crate::config::MAX_TXS_PER_MESSAGE;
use crate::ctx::Ctx;
use crate::identity::NodeId;
use crate::wire::Message;

/// How many block/transaction sources are remembered (to skip them when relaying).
const SOURCES: usize = 8192;

/// Most pending transactions sent to a peer that just connected (the mempool's default size).
pub(crate) const RECONCILE_MAX: usize = 20_000;

/// How long a transaction waits for company before its batch goes out.
pub(crate) const RELAY_FLUSH: std::time::Duration = std::time::Duration::from_millis(100);

/// A bounded map that forgets its oldest entries.
pub(crate) struct Recent<V> {
    map: HashMap<Hash, V>,
    order: VecDeque<Hash>,
}

impl<V> Default for Recent<V> {
    fn default() -> Self {
        Recent { map: HashMap::new(), order: VecDeque::new() }
    }
}

impl<V> Recent<V> {
    pub(crate) fn insert(&mut self, k: Hash, v: V) {
        if self.map.insert(k, v).is_none() {
            self.order.push_back(k);
            if self.order.len() > SOURCES
                && let Some(old) = self.order.pop_front()
            {
                self.map.remove(&old);
            }
        }
    }
    pub(crate) fn get(&self, k: &Hash) -> Option<&V> {
        self.map.get(k)
    }
}

/// Relays every transaction newly accepted into the mempool to every peer but its source.
///
/// Bounds: at most [`MAX_TXS_PER_MESSAGE`] queued per peer (a full batch goes out at once),
/// for the peers in the table. A batch that finds the peer's inbox more than half full is
/// dropped (best effort: gossip never crowds out sync requests; the peer's mempool catches up
/// from later gossip and blocks).
///
/// Reconciliation: a peer that joins gets our whole mempool (up to [`RECONCILE_MAX`], in
/// batches), so a transaction accepted anywhere reaches every mempool even across a partition
/// or a reconnect (what the peer already has it drops as a duplicate).
pub(crate) async fn relay_transactions(ctx: Arc<Ctx>, mut seen: mpsc::Receiver<TxSeen>, mut peers: watch::Receiver<Arc<Snapshot>>) {
    let Some(mut txs) = ctx.chain.new_transactions() else { return };
    let mut sources: Recent<NodeId> = Recent::default();
    let mut connected: std::collections::HashSet<NodeId> = std::collections::HashSet::new();
    let mut queued: HashMap<NodeId, Vec<Bytes>> = HashMap::new();
    let mut flush = tokio::time::interval(RELAY_FLUSH);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let tx = tokio::select! {
            biased;
            _ = ctx.cancel.cancelled() => return,
            note = seen.recv() => match note {
                Some(n) => {
                    sources.insert(n.txid, n.from);
                    continue;
                }
                None => return,
            },
            _ = flush.tick() => {
                let snapshot = peers.borrow().clone();
                for (id, batch) in queued.drain() {
                    send_batch(&snapshot, &id, batch);
                }
                continue;
            }
            changed = peers.changed() => {
                if changed.is_err() {
                    return;
                }
                let snapshot = peers.borrow_and_update().clone();
                let now: std::collections::HashSet<NodeId> = snapshot.inboxes.iter().map(|(id, _)| *id).collect();
                let joined: Vec<NodeId> = now.difference(&connected).copied().collect();
                connected = now;
                if !joined.is_empty() {
                    let pending = ctx.chain.pending_transactions(RECONCILE_MAX).await;
                    if !pending.is_empty() {
                        let encoded: Vec<Bytes> = pending.iter().map(|tx| Bytes::from(tx.encode())).collect();
                        for id in &joined {
                            tracing::debug!(target: "p2p::gossip", peer = %id, txs = encoded.len(), "sending our mempool to a new peer");
                            for batch in encoded.chunks(MAX_TXS_PER_MESSAGE) {
                                send_batch(&snapshot, id, batch.to_vec());
                            }
                        }
                    }
                }
                continue;
            }
            r = txs.recv() => match r {
                Ok(tx) => tx,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::debug!(target: "p2p::gossip", skipped = n, "transaction relay lagged");
                    continue;
                }
                Err(_) => return,
            },
        };
        let source = sources.get(&tx.id()).copied();
        let bytes = Bytes::from(tx.encode());
        let snapshot = peers.borrow().clone();
        for (id, _) in &snapshot.inboxes {
            if Some(*id) == source {
                continue;
            }
            let q = queued.entry(*id).or_default();
            q.push(bytes.clone());
            if q.len() >= MAX_TXS_PER_MESSAGE
                && let Some(batch) = queued.remove(id)
            {
                send_batch(&snapshot, id, batch);
            }
        }
    }
}

/// Sends one peer its batch, if it is still connected and its inbox has room.
fn send_batch(snapshot: &Snapshot, id: &NodeId, batch: Vec<Bytes>) {
    if batch.is_empty() {
        return;
    }
    if let Some((_, inbox)) = snapshot.inboxes.iter().find(|(p, _)| p == id) {
        // Gossip uses at most half of an inbox, so sync requests always find room.
        if inbox.capacity() > crate::config::PEER_INBOX / 2 {
            let _ = inbox.try_send(PeerCmd::Send(Message::Transactions(batch)));
        }
    }
}
