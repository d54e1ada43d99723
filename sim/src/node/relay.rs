//! The transaction relay's part (sync/gossip.rs's `relay_transactions`), in the scenarios
//! (`SimConfig::tx_relay`): new mempool transactions announced by ID to every peer but their
//! source (`tx_ids`, flushed at each beat: every 250 ms instead of 100 ms), the whole mempool
//! to a peer that joins and part of it to every peer every 2 s, and what peers announce and
//! we lack fetched through the real `TxRequests` (one peer at a time, the second announcer
//! or the same one again after 2 s or when the first leaves; announcements past a peer's
//! share wait in its backlog). The mempool holds pool transactions by index: their
//! signatures and state are valid by construction, so it does not check them again.

use super::*;

/// How often part of the mempool is announced again (gossip.rs's `REANNOUNCE_QUIET`: the
/// simulated loads are light, so the node's slower pace under load is not modelled).
const REANNOUNCE_EVERY: Time = 2 * SECOND;
/// Most IDs announced again per round, or to a peer that joins (gossip.rs's `RECONCILE_MAX`).
const RECONCILE_MAX: usize = 20_000;

impl Node {
    /// A transaction enters the mempool (made here, or from `from`): announced onwards.
    pub(crate) fn accept_tx(&mut self, w: &World, i: u64, from: Option<NodeId>) {
        if !self.known_txs.insert(i) {
            return;
        }
        self.mempool.insert(i);
        let id = *w.factory.tx(i).0;
        self.tx_requests.received(&id);
        if let Some(from) = from {
            self.tx_sources.insert(id, from);
        }
        let source = self.tx_sources.get(&id).copied();
        for peer in self.by_id.keys() {
            if Some(*peer) != source {
                self.relay_queue.entry(*peer).or_default().push(id);
            }
        }
    }

    /// A block joined the best chain: its transactions leave the mempool.
    pub(super) fn confirmed(&mut self, w: &World, block: &Block) {
        for tx in &block.transactions {
            if let Some(i) = w.factory.index_of(&tx.id()) {
                self.mempool.remove(&i);
                self.known_txs.insert(i);
            }
        }
    }

    /// A peer registered: it is told our whole mempool.
    pub(super) fn relay_peer_up(&mut self, w: &World, id: NodeId) {
        if !w.cfg.tx_relay {
            return;
        }
        let ids: Vec<Hash> = self.mempool.iter().take(RECONCILE_MAX).map(|i| *w.factory.tx(*i).0).collect();
        self.relay_queue.insert(id, ids);
    }

    /// A peer left: what it was asked goes to the second announcers.
    pub(super) fn relay_peer_gone(&mut self, w: &mut World, id: &NodeId) {
        self.relay_queue.remove(id);
        let now = self.inst(w);
        let reask = self.tx_requests.peer_gone(id, now);
        self.ask_txs(w, reask);
    }

    /// `from` announced these IDs: those we lack and nobody is asked for are asked of it.
    pub(super) fn announced_txs(&mut self, w: &mut World, from: NodeId, ids: Vec<Hash>) {
        if !w.cfg.tx_relay {
            return;
        }
        let lacking: Vec<Hash> = ids.into_iter().filter(|h| w.factory.index_of(h).is_none_or(|i| !self.known_txs.contains(&i))).collect();
        let now = self.inst(w);
        let ask = self.tx_requests.announced(from, lacking, now);
        if !ask.is_empty() {
            self.send_to(w, &from, Message::GetTxs(ask));
        }
    }

    /// Transactions a peer sent: decoded, and those of the pool taken into the mempool.
    pub(super) fn took_txs(&mut self, w: &mut World, from: NodeId, list: Vec<Bytes>) -> Result<(), Misbehaviour> {
        if !w.cfg.tx_relay {
            return Ok(());
        }
        for bytes in &list {
            let tx = Transaction::decode(bytes).map_err(|_| Misbehaviour::UndecodableChainData)?;
            if let Some(i) = w.factory.index_of(&tx.id()) {
                self.accept_tx(w, i, Some(from));
            }
        }
        Ok(())
    }

    /// Answers `get_txs` with what the mempool holds (nothing if it holds none of them).
    pub(super) fn serve_txs(&mut self, w: &mut World, conn: ConnId, ids: Vec<Hash>) {
        let txs: Vec<Bytes> =
            ids.iter().filter_map(|h| w.factory.index_of(h)).filter(|i| self.mempool.contains(i)).map(|i| Bytes::from(w.factory.tx(i).1.encode())).collect();
        for chunk in txs.chunks(cairn_p2p::config::MAX_TXS_PER_MESSAGE) {
            self.send(w, conn, &Message::Transactions(chunk.to_vec()));
        }
    }

    /// The relay's beat: queued IDs go out, late requests move on, and every 10 s part of the
    /// mempool is announced again.
    pub(super) fn relay_tick(&mut self, w: &mut World) {
        if !w.cfg.tx_relay {
            return;
        }
        if self.clock >= self.next_reannounce {
            self.next_reannounce = self.clock + REANNOUNCE_EVERY;
            let ids: Vec<Hash> = self.mempool.iter().take(RECONCILE_MAX).map(|i| *w.factory.tx(*i).0).collect();
            if !ids.is_empty() {
                for peer in self.by_id.keys() {
                    self.relay_queue.entry(*peer).or_default().extend_from_slice(&ids);
                }
            }
        }
        let queued = std::mem::take(&mut self.relay_queue);
        for (peer, ids) in queued {
            for chunk in ids.chunks(cairn_p2p::config::MAX_TX_IDS_PER_MESSAGE) {
                self.send_to(w, &peer, Message::TxIds(chunk.to_vec()));
            }
        }
        let now = self.inst(w);
        let mut reask = self.tx_requests.expire(now);
        for (peer, ids) in self.tx_requests.ready(now) {
            reask.entry(peer).or_default().extend(ids);
        }
        self.ask_txs(w, reask);
    }

    /// Sends re-asked requests, in node-ID order and each peer's IDs sorted (the table returns
    /// a hash map, and fills its lists walking its own hash maps when a peer leaves).
    fn ask_txs(&mut self, w: &mut World, reask: HashMap<NodeId, Vec<Hash>>) {
        let mut reask: Vec<(NodeId, Vec<Hash>)> = reask.into_iter().collect();
        reask.sort_by_key(|(id, _)| *id);
        for (peer, mut ids) in reask {
            ids.sort();
            self.send_to(w, &peer, Message::GetTxs(ids));
        }
    }
}
