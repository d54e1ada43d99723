//! Transaction gossip: every transaction newly accepted into the mempool is relayed to every
//! peer but the one it came from. (Tips are announced by the sync task, which knows who sent
//! each block.)
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
use crate::ctx::Ctx;
use crate::identity::NodeId;
use crate::wire::Message;

/// How many block/transaction sources are remembered (to skip them when relaying).
const SOURCES: usize = 8192;

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
pub(crate) async fn relay_transactions(ctx: Arc<Ctx>, mut seen: mpsc::Receiver<TxSeen>, peers: watch::Receiver<Arc<Snapshot>>) {
    let Some(mut txs) = ctx.chain.new_transactions() else { return };
    let mut sources: Recent<NodeId> = Recent::default();
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
        let msg = Message::Transactions(vec![Bytes::from(tx.encode())]);
        let snapshot = peers.borrow().clone();
        for (id, inbox) in &snapshot.inboxes {
            // Gossip uses at most half of an inbox, so sync requests always find room; beyond
            // that it is dropped (best effort: the peer's mempool catches up from blocks).
            if Some(*id) != source && inbox.capacity() > crate::config::PEER_INBOX / 2 {
                let _ = inbox.try_send(PeerCmd::Send(msg.clone()));
            }
        }
    }
}
