//! Block and transaction exchange: gossip (announce new tips and new transactions to every
//! peer but their source), serving blocks and headers, and catch-up sync.
//!
//! # Catch-up sync
//! When a peer has more work than we do (its `Hello`, a `NewBlock` above our tip + 1, or a
//! block whose parent we lack), the peer's task asks it for headers after our block locator
//! (`GetHeaders`, up to [`MAX_HEADERS`]), then for the blocks it lacks in batches of
//! [`MAX_BLOCKS_PER_REQUEST`], submits them in order, and repeats until the peer has nothing
//! more. Everything is bounded: one outstanding request per peer, lists checked before use.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cairn_chain::{Block, BlockError, Hash, Header, Transaction, TxError};

use crate::identity::NodeId;
use crate::peer::PeerCmd;
use crate::ports::Submitted;
use crate::service::Inner;
use crate::wire::{BlockId, Message};

/// Most headers in one `Headers` answer.
pub const MAX_HEADERS: usize = 2000;
/// Most blocks asked in one `GetBlocks`.
pub const MAX_BLOCKS_PER_REQUEST: usize = 64;
/// Most hashes in a block locator.
pub const MAX_LOCATOR: usize = 64;
/// Most transactions in one `Transactions` message.
pub const MAX_TXS_PER_MESSAGE: usize = 1000;
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

/// What a message handler wants the peer task to do next.
pub(crate) enum Flow {
    /// Keep going.
    Continue,
    /// Send this and keep going.
    Reply(Message),
    /// The peer broke the rules: penalise with these points and disconnect.
    Violation(&'static str, u32),
}

/// Per-peer sync progress.
#[derive(Default)]
pub(crate) struct SyncState {
    /// A request (headers or blocks) is outstanding, sent at this time.
    pub waiting_since: Option<Instant>,
    /// Block hashes still to fetch, in chain order.
    pending: VecDeque<Hash>,
    /// The last header batch was full: ask for more after these blocks.
    more: bool,
    /// Blocks asked for by `GetBlock` after an announcement.
    asked: Recent<()>,
    /// Counted in the node's syncing total.
    counted: bool,
    /// When this sync started and at what height, for progress lines.
    started: Option<(Instant, u64)>,
    /// Last progress line.
    last_report: Option<Instant>,
    /// The peer's best height, as last heard.
    pub target: u64,
}

impl SyncState {
    fn start(&mut self, inner: &Inner) {
        if !self.counted {
            self.counted = true;
            inner.syncing.fetch_add(1, Ordering::Relaxed);
            self.started = Some((Instant::now(), inner.chain.tip().height));
        }
    }

    /// Logs height/target, rate and ETA at most every few seconds (and at the end).
    fn report(&mut self, inner: &Inner, peer: &NodeId, done: bool) {
        let Some((t0, h0)) = self.started else { return };
        if !done && self.last_report.is_some_and(|t| t.elapsed() < Duration::from_secs(3)) {
            return;
        }
        self.last_report = Some(Instant::now());
        let height = inner.chain.tip().height;
        let rate = height.saturating_sub(h0) as f64 / t0.elapsed().as_secs_f64().max(1e-3);
        let target = self.target.max(height);
        let eta = if rate > 0.0 { target.saturating_sub(height) as f64 / rate } else { f64::INFINITY };
        if done {
            tracing::info!(target: "p2p::sync", %peer, height, blocks = height.saturating_sub(h0), secs = format!("{:.1}", t0.elapsed().as_secs_f64()), "sync finished");
        } else {
            tracing::info!(target: "p2p::sync", %peer, height, target, blocks_per_s = format!("{rate:.0}"), eta_s = format!("{eta:.0}"), "syncing");
        }
    }
    pub(crate) fn stop(&mut self, inner: &Inner) {
        self.started = None;
        self.last_report = None;
        self.waiting_since = None;
        self.pending.clear();
        self.more = false;
        if self.counted {
            self.counted = false;
            inner.syncing.fetch_sub(1, Ordering::Relaxed);
        }
    }
    /// Whether a sync request went unanswered for longer than `limit`.
    pub(crate) fn stalled(&self, limit: Duration) -> bool {
        self.waiting_since.is_some_and(|t| t.elapsed() > limit)
    }
}

async fn get_headers(inner: &Inner, sync: &mut SyncState) -> Flow {
    sync.start(inner);
    sync.waiting_since = Some(Instant::now());
    let mut locator = inner.chain.locator().await;
    locator.truncate(MAX_LOCATOR);
    Flow::Reply(Message::GetHeaders { locator, max: MAX_HEADERS as u32 })
}

fn next_blocks(inner: &Inner, sync: &mut SyncState) -> Option<Flow> {
    if sync.pending.is_empty() {
        return None;
    }
    let n = sync.pending.len().min(MAX_BLOCKS_PER_REQUEST);
    let batch: Vec<Hash> = sync.pending.drain(..n).collect();
    sync.start(inner);
    sync.waiting_since = Some(Instant::now());
    Some(Flow::Reply(Message::GetBlocks(batch)))
}

/// Whether the peer announced a height above our tip while the sync ran (announcements are
/// not acted on mid-sync, so the sync goes on instead of ending short).
fn behind(inner: &Inner, sync: &SyncState) -> bool {
    sync.target > inner.chain.tip().height
}

/// Submits a block from `peer`; what to do about the outcome.
async fn take_block(inner: &Inner, peer: NodeId, block: Block, sync: &mut SyncState) -> Flow {
    let hash = block.hash();
    inner.block_sources.lock().unwrap_or_else(|e| e.into_inner()).insert(hash, peer);
    match inner.chain.submit_block(block).await {
        Ok(Submitted::Connected | Submitted::SideChain) => Flow::Continue,
        Ok(Submitted::AlreadyKnown) => {
            inner.metrics.duplicate_block();
            Flow::Continue
        }
        Err(BlockError::UnknownParent(_)) if sync.waiting_since.is_none() => get_headers(inner, sync).await,
        Err(BlockError::UnknownParent(_)) => Flow::Continue,
        Err(e) if e.is_invalid() => {
            tracing::warn!(target: "p2p::sync", %peer, %hash, code = e.code(), "peer sent an invalid block: {e}");
            Flow::Violation("invalid_block", 100)
        }
        Err(e) => {
            tracing::debug!(target: "p2p::sync", %peer, %hash, "block not taken: {e}");
            Flow::Continue
        }
    }
}

/// A peer reported its tip (`Status`): sync if it has more work and no sync is running, so
/// a lost announcement costs at most one heartbeat.
pub(crate) async fn on_status(inner: &Inner, best_height: u64, total_work: [u8; 32], sync: &mut SyncState) -> Flow {
    sync.target = sync.target.max(best_height);
    if sync.waiting_since.is_none() && cairn_chain::Work::from_bytes(total_work) > inner.chain.tip().total_work {
        return get_headers(inner, sync).await;
    }
    Flow::Continue
}

/// Starts a sync if the peer says it has more work than we do.
pub(crate) async fn on_connect(inner: &Inner, remote_height: u64, remote_work: [u8; 32], sync: &mut SyncState) -> Flow {
    sync.target = remote_height;
    if cairn_chain::Work::from_bytes(remote_work) > inner.chain.tip().total_work {
        return get_headers(inner, sync).await;
    }
    Flow::Continue
}

/// Handles the block, header and transaction messages of one peer.
pub(crate) async fn handle(inner: &Arc<Inner>, peer: NodeId, msg: Message, sync: &mut SyncState) -> Flow {
    let chain = &inner.chain;
    match msg {
        Message::NewBlock { height, hash } => {
            sync.target = sync.target.max(height);
            if sync.waiting_since.is_some() || chain.has_block(hash).await {
                return Flow::Continue;
            }
            if height > chain.tip().height.saturating_add(1) {
                return get_headers(inner, sync).await;
            }
            sync.asked.insert(hash, ());
            Flow::Reply(Message::GetBlock(BlockId::Hash(hash)))
        }
        Message::GetBlock(id) => {
            let block = match id {
                BlockId::Hash(h) => chain.block(h).await,
                BlockId::Height(n) => chain.block_at(n).await,
            };
            Flow::Reply(Message::BlockData(block.map(|b| Bytes::from(b.encode()))))
        }
        Message::BlockData(None) => {
            // It announced a block it cannot serve.
            inner.penalize(peer, 10, "unavailable_block");
            Flow::Continue
        }
        Message::BlockData(Some(bytes)) => match Block::decode(&bytes, chain.max_block_txs()) {
            Ok(block) => take_block(inner, peer, block, sync).await,
            Err(_) => Flow::Violation("undecodable_block", 100),
        },
        Message::GetHeaders { locator, max } => {
            if locator.len() > MAX_LOCATOR {
                return Flow::Violation("oversized_locator", 50);
            }
            let headers = chain.headers_after(locator, (max as usize).min(MAX_HEADERS)).await;
            Flow::Reply(Message::Headers(headers.iter().map(|h| Bytes::copy_from_slice(&h.encode())).collect()))
        }
        Message::Headers(list) => {
            if sync.waiting_since.is_none() {
                return Flow::Continue; // unsolicited or late: ignored
            }
            if list.len() > MAX_HEADERS {
                return Flow::Violation("oversized_headers", 100);
            }
            sync.waiting_since = None;
            sync.more = list.len() == MAX_HEADERS;
            for bytes in &list {
                let Ok(h) = Header::decode(bytes) else { return Flow::Violation("undecodable_header", 100) };
                // Headers are checked for their proof before we fetch a body for them.
                let hash = h.hash();
                if !h.target.is_met_by(&hash) {
                    return Flow::Violation("invalid_header", 100);
                }
                if !chain.has_block(hash).await {
                    sync.pending.push_back(hash);
                }
            }
            match next_blocks(inner, sync) {
                Some(f) => f,
                // Nothing new in a full batch: ask further. Nothing new otherwise: done (even if
                // the peer's height is above ours: a longer but lighter fork is not followed).
                None if sync.more => get_headers(inner, sync).await,
                None => {
                    sync.stop(inner);
                    Flow::Continue
                }
            }
        }
        Message::GetBlocks(hashes) => {
            if hashes.len() > MAX_BLOCKS_PER_REQUEST {
                return Flow::Violation("oversized_block_request", 50);
            }
            let budget = inner.cfg.max_frame.saturating_sub(crate::config::FRAME_OVERHEAD);
            let mut out = Vec::new();
            let mut size = 0;
            for h in hashes {
                let Some(b) = chain.block(h).await else { continue };
                let bytes = b.encode();
                if !out.is_empty() && size + bytes.len() > budget {
                    break;
                }
                size += bytes.len();
                out.push(Bytes::from(bytes));
            }
            Flow::Reply(Message::Blocks(out))
        }
        Message::Blocks(list) => {
            if sync.waiting_since.is_none() {
                return Flow::Continue;
            }
            if list.len() > MAX_BLOCKS_PER_REQUEST {
                return Flow::Violation("oversized_blocks", 100);
            }
            sync.waiting_since = None;
            for bytes in &list {
                let Ok(block) = Block::decode(bytes, chain.max_block_txs()) else { return Flow::Violation("undecodable_block", 100) };
                if let f @ Flow::Violation(..) = take_block(inner, peer, block, sync).await {
                    return f;
                }
            }
            match next_blocks(inner, sync) {
                Some(f) => {
                    sync.report(inner, &peer, false);
                    f
                }
                None if sync.more || behind(inner, sync) => get_headers(inner, sync).await,
                None => {
                    sync.report(inner, &peer, true);
                    sync.stop(inner);
                    Flow::Continue
                }
            }
        }
        Message::Transactions(list) => {
            if list.len() > MAX_TXS_PER_MESSAGE {
                return Flow::Violation("oversized_transactions", 50);
            }
            for bytes in list {
                let Ok(tx) = Transaction::decode(&bytes) else { return Flow::Violation("undecodable_transaction", 50) };
                inner.tx_sources.lock().unwrap_or_else(|e| e.into_inner()).insert(tx.id(), peer);
                match chain.submit_tx(tx).await {
                    Err(TxError::BadSignature | TxError::WrongChain { .. }) => {
                        inner.penalize(peer, 20, "invalid_transaction");
                    }
                    Err(TxError::AlreadyKnown(_)) => inner.metrics.duplicate_tx(),
                    _ => {}
                }
            }
            Flow::Continue
        }
        _ => Flow::Continue,
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
