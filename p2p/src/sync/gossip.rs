//! Gossip: every new tip is announced, and every transaction newly accepted into the mempool
//! relayed, to every peer but the one it came from.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use cairn_chain::Hash;

use crate::identity::NodeId;
use crate::peer::PeerCmd;
use crate::service::Inner;
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

/// Announces every new tip to every peer but the one it came from.
pub(crate) async fn announce_tips(inner: Arc<Inner>) {
    let Some(mut tips) = inner.chain.watch_tip() else { return };
    loop {
        tokio::select! {
            _ = inner.cancel.cancelled() => return,
            r = tips.changed() => if r.is_err() { return },
        }
        let tip = *tips.borrow_and_update();
        let source = inner.block_sources.lock().unwrap_or_else(|e| e.into_inner()).get(&tip.hash).copied();
        relay(&inner, source, Message::NewBlock { height: tip.height, hash: tip.hash });
    }
}

/// Relays every transaction newly accepted into the mempool to every peer but its source.
pub(crate) async fn relay_transactions(inner: Arc<Inner>) {
    let Some(mut txs) = inner.chain.new_transactions() else { return };
    loop {
        let tx = tokio::select! {
            _ = inner.cancel.cancelled() => return,
            r = txs.recv() => match r {
                Ok(tx) => tx,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::debug!(target: "p2p::gossip", skipped = n, "transaction relay lagged");
                    continue;
                }
                Err(_) => return,
            },
        };
        let source = inner.tx_sources.lock().unwrap_or_else(|e| e.into_inner()).get(&tx.id()).copied();
        relay(&inner, source, Message::Transactions(vec![Bytes::from(tx.encode())]));
    }
}

/// Queues `msg` for every peer but `except`; a full inbox drops it (gossip is best effort,
/// sync catches up).
fn relay(inner: &Inner, except: Option<NodeId>, msg: Message) {
    let inboxes: Vec<_> = inner.lock().peers.iter().filter(|(id, _)| Some(**id) != except).map(|(_, p)| p.inbox.clone()).collect();
    for inbox in inboxes {
        let _ = inbox.try_send(PeerCmd::Send(msg.clone()));
    }
}
