//! Block and transaction exchange: serving blocks and headers, gossip ([`gossip`]), and
//! catch-up sync.
//!
//! # Catch-up sync
//! When a peer has more work than we do (its `Hello` or `Status`, or an announcement above our
//! tip + 1, or a block whose parent we lack), one peer at a time is asked for headers after
//! our block locator (`GetHeaders`, up to [`MAX_HEADERS`]). Headers must chain (parent hash,
//! height) and meet their own proof before any body is fetched. Their hashes join the node's
//! one [`download::Download`] schedule, from which every peer high enough gets ranges of up to
//! [`MAX_BLOCKS_PER_REQUEST`] blocks in parallel, within a bounded window; a peer that stalls
//! is dropped and its ranges go to the others. The [`import`] task takes arrived blocks in
//! order, checks them (proof, Merkle root, batched signatures) in parallel off the async
//! runtime, and commits them in runs. Blocks that arrive by gossip before their parent wait
//! in a bounded [`orphans::Orphans`] pool.

pub mod download;
mod gossip;
pub(crate) mod import;
pub mod orphans;

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use cairn_chain::{Block, BlockError, Header, Transaction, TxError};

pub(crate) use gossip::{Recent, announce_tips, relay_transactions};

use crate::identity::NodeId;
use crate::peer::PeerCmd;
use crate::sync::download::Claim;
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

/// What a message handler wants the peer task to do next.
pub(crate) enum Flow {
    /// Keep going.
    Continue,
    /// Send this and keep going.
    Reply(Message),
    /// The peer broke the rules: penalise with these points and disconnect.
    Violation(&'static str, u32),
}

/// Asks `peer` for headers if it has more work than we do (by its `claim`, or else its
/// height), no header request is out, and it is above what the download already wants.
async fn maybe_headers(inner: &Inner, peer: NodeId, height: u64, claim: Option<Claim>) -> Flow {
    let tip = inner.chain.tip();
    let more_work = match claim {
        Some(Claim::Work(w)) => w > tip.total_work,
        _ => height > tip.height,
    };
    let wanted = |dl: &download::Download| more_work && dl.last_height().is_none_or(|last| height > last) && dl.wants_headers();
    let after = {
        let dl = inner.download();
        if !wanted(&dl) {
            return Flow::Continue;
        }
        dl.last_hash()
    };
    let mut locator = inner.chain.locator().await;
    if let Some(last) = after {
        locator.insert(0, last);
    }
    locator.truncate(MAX_LOCATOR);
    {
        let mut dl = inner.download();
        // The schedule may have moved while the locator was read.
        if !wanted(&dl) || dl.last_hash() != after {
            return Flow::Continue;
        }
        dl.asked_headers(peer, Instant::now());
        if let Some(c) = claim {
            dl.claimed(c);
        }
    }
    inner.sync_progress().start(inner.chain.tip().height);
    Flow::Reply(Message::GetHeaders { locator, max: MAX_HEADERS as u32 })
}

/// Hands out block ranges to every peer that can serve them, and asks for more headers when
/// the last batch was full and there is room. Called whenever the schedule may have moved.
pub(crate) fn dispatch(inner: &Inner) {
    let peers: Vec<(NodeId, u64, tokio::sync::mpsc::Sender<PeerCmd>)> = inner
        .lock()
        .peers
        .iter()
        .map(|(id, p)| (*id, p.stats.best_height.load(std::sync::atomic::Ordering::Relaxed), p.inbox.clone()))
        .collect();
    let now = Instant::now();
    let mut dl = inner.download();
    for (id, height, inbox) in &peers {
        while let Some(hashes) = dl.assign(*id, *height, MAX_BLOCKS_PER_REQUEST, now) {
            if inbox.try_send(PeerCmd::Send(Message::GetBlocks(hashes))).is_err() {
                dl.unassign_last(id);
                break;
            }
        }
    }
    // A full header batch: continue from the last queued block with a peer above it.
    if dl.more()
        && dl.wants_headers()
        && let Some(last) = dl.last_hash()
        && let Some((id, _, inbox)) = peers.iter().find(|(_, h, _)| dl.last_height().is_some_and(|l| *h > l))
    {
        // The continuation needs no locator beyond the last queued block.
        if inbox.try_send(PeerCmd::Send(Message::GetHeaders { locator: vec![last], max: MAX_HEADERS as u32 })).is_ok() {
            dl.asked_headers(*id, now);
        }
    }
}

/// A peer's task ends: its requests go to the others.
pub(crate) fn peer_gone(inner: &Inner, peer: &NodeId) {
    inner.download().release(peer);
    dispatch(inner);
}

/// A peer reported its tip (`Status`): sync if it has more work, so a lost announcement
/// costs at most one heartbeat.
pub(crate) async fn on_status(inner: &Inner, peer: NodeId, best_height: u64, total_work: [u8; 32]) -> Flow {
    inner.sync_progress().target(best_height);
    let f = maybe_headers(inner, peer, best_height, Some(Claim::Work(cairn_chain::Work::from_bytes(total_work)))).await;
    // Its height may have risen above blocks nobody could serve before.
    dispatch(inner);
    f
}

/// Starts a sync if the peer says (in its `Hello`) it has more work than we do.
pub(crate) async fn on_connect(inner: &Inner, peer: NodeId, remote_height: u64, remote_work: [u8; 32]) -> Flow {
    inner.sync_progress().target(remote_height);
    let f = maybe_headers(inner, peer, remote_height, Some(Claim::Work(cairn_chain::Work::from_bytes(remote_work)))).await;
    dispatch(inner);
    f
}

/// Submits a block that came alone (an announcement's answer): an orphan is held and its
/// ancestors fetched; a connected block releases the orphans waiting for it.
async fn take_block(inner: &Inner, peer: NodeId, block: Block) -> Flow {
    let hash = block.hash();
    let height = block.header.height;
    // What the header alone shows is checked first, so a free junk header (an easy target)
    // never reaches the orphan pool or costs a header request.
    match inner.chain.check_header(&block.header) {
        Ok(()) | Err(BlockError::TimestampInFuture { .. }) => {}
        Err(e) => {
            tracing::warn!(target: "p2p::sync", %peer, %hash, code = e.code(), "peer sent an invalid block: {e}");
            return Flow::Violation("invalid_block", 100);
        }
    }
    inner.block_sources.lock().unwrap_or_else(|e| e.into_inner()).insert(hash, peer);
    match inner.chain.submit_block(block.clone()).await {
        Ok(Submitted::Connected | Submitted::SideChain) => {
            import::release_orphans(inner, vec![hash]).await;
            Flow::Continue
        }
        Ok(Submitted::AlreadyKnown) => {
            inner.metrics.duplicate_block();
            Flow::Continue
        }
        Err(BlockError::UnknownParent(_)) => {
            if inner.orphans().insert(block, peer) {
                tracing::debug!(target: "p2p::sync", %peer, %hash, height, "holding an orphan block; fetching its ancestors");
            }
            maybe_headers(inner, peer, height, Some(Claim::Orphan)).await
        }
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

/// Checks a header batch and queues its blocks for download.
async fn take_headers(inner: &Inner, peer: NodeId, list: Vec<Bytes>) -> Flow {
    if !inner.download().headers_from(&peer) {
        return Flow::Continue; // unsolicited or late: ignored
    }
    if list.len() > MAX_HEADERS {
        return Flow::Violation("oversized_headers", 100);
    }
    let mut headers = Vec::with_capacity(list.len());
    let mut cut = false;
    for bytes in &list {
        let Ok(h) = Header::decode(bytes) else { return Flow::Violation("undecodable_header", 100) };
        // Each header must pass what it can show alone (proof, allowed target, version, not
        // too far in the future) before we fetch a body for it.
        match inner.chain.check_header(&h) {
            Ok(()) => headers.push(h),
            Err(e @ BlockError::TimestampInFuture { .. }) => {
                // Maybe our clock: not held against the peer, but nothing past it is taken.
                tracing::info!(target: "p2p::sync", %peer, height = h.height, "header batch cut short: {e}");
                cut = true;
                break;
            }
            Err(e) => {
                tracing::warn!(target: "p2p::sync", %peer, height = h.height, code = e.code(), "peer sent an invalid header: {e}");
                return Flow::Violation("invalid_header", 100);
            }
        }
    }
    // What we already store: the leading run (a locator can lag), and the first new
    // header's parent.
    let mut have = std::collections::HashSet::new();
    for h in &headers {
        let hash = h.hash();
        if !inner.chain.has_block(hash).await {
            break;
        }
        have.insert(hash);
    }
    let parent_stored = match headers.get(have.len()) {
        Some(first) => inner.chain.has_block(first.prev_hash).await,
        None => false,
    };
    let full = headers.len() == MAX_HEADERS;
    let all_stored = have.len() == headers.len();
    let (r, claim) = {
        let mut dl = inner.download();
        (dl.on_headers(peer, &headers, full, |h| have.contains(h), |_| parent_stored), dl.take_claim())
    };
    match r {
        Ok(0) if !full && !cut && all_stored && unbacked(inner, claim) => {
            // It claimed more work than we have (or sent an orphan) and shows nothing we lack:
            // every heartbeat would cost a header request, so it pays for each.
            inner.penalize(peer, 10, "unbacked_work_claim");
        }
        Ok(n) => {
            tracing::debug!(target: "p2p::sync", %peer, received = headers.len(), queued = n, "headers");
        }
        Err(download::HeadersRejected::NotAChain) => return Flow::Violation("invalid_header_chain", 100),
        Err(e) => tracing::debug!(target: "p2p::sync", %peer, "header batch not taken: {e:?}"),
    }
    if !inner.download().is_active() {
        inner.sync_progress().finish(inner.chain.tip().height);
    }
    dispatch(inner);
    Flow::Continue
}

/// Whether a header answer that showed nothing new contradicts what the request relied on.
fn unbacked(inner: &Inner, claim: Option<Claim>) -> bool {
    match claim {
        Some(Claim::Work(w)) => w > inner.chain.tip().total_work,
        Some(Claim::Orphan) => true,
        None => false,
    }
}

/// Takes a `Blocks` answer into the download.
fn take_blocks(inner: &Inner, peer: NodeId, list: Vec<Bytes>) -> Flow {
    if list.len() > MAX_BLOCKS_PER_REQUEST {
        return Flow::Violation("oversized_blocks", 100);
    }
    if !inner.download().has_requests(&peer) {
        return Flow::Continue; // unsolicited or late (after a reset): not even decoded
    }
    let mut blocks = Vec::with_capacity(list.len());
    for bytes in &list {
        let Ok(block) = Block::decode(bytes, inner.chain.max_block_txs()) else { return Flow::Violation("undecodable_block", 100) };
        blocks.push(block);
    }
    let kept = inner.download().on_blocks(peer, blocks);
    if let Some(n) = kept.filter(|n| *n > 0) {
        if let Some(p) = inner.lock().peers.get(&peer) {
            p.stats.blocks_served.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        }
        inner.import_ready.notify_one();
    }
    dispatch(inner);
    Flow::Continue
}

/// Handles the block, header and transaction messages of one peer.
pub(crate) async fn handle(inner: &Arc<Inner>, peer: NodeId, msg: Message) -> Flow {
    let chain = &inner.chain;
    match msg {
        Message::NewBlock { height, hash } => {
            inner.sync_progress().target(height);
            if chain.has_block(hash).await {
                inner.metrics.duplicate_block();
                return Flow::Continue;
            }
            if height > chain.tip().height.saturating_add(1) {
                // Too far ahead for one block: fetch headers (if no download covers it).
                let f = maybe_headers(inner, peer, height, None).await;
                dispatch(inner);
                return f;
            }
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
            Ok(block) => take_block(inner, peer, block).await,
            Err(_) => Flow::Violation("undecodable_block", 100),
        },
        Message::GetHeaders { locator, max } => {
            if locator.len() > MAX_LOCATOR {
                return Flow::Violation("oversized_locator", 50);
            }
            let headers = chain.headers_after(locator, (max as usize).min(MAX_HEADERS)).await;
            Flow::Reply(Message::Headers(headers.iter().map(|h| Bytes::copy_from_slice(&h.encode())).collect()))
        }
        Message::Headers(list) => take_headers(inner, peer, list).await,
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
        Message::Blocks(list) => take_blocks(inner, peer, list),
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
