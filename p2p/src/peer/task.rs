//! The peer task: the thin I/O shell around one connection's [`PeerProtocol`]. It reads
//! frames, feeds them and the clock to the machine, and carries out its actions: sends,
//! answers from the chain, hands chain messages to the sync task, submits transactions, and
//! reports misbehaviour to the peer manager.
//!
//! # Stopping
//! Every wait races the peer's cancellation token (a child of the service's): the manager
//! cancels it the moment the peer is banned or cut off, so nothing more the peer sent is
//! processed — not the rest of a batch of transactions, not the next request. Shutdown
//! cancels it too; the task then says goodbye within [`GOODBYE`] and ends.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cairn_chain::compact::CompactBlock;
use cairn_chain::{Block, Header, Transaction};
use tokio_util::sync::CancellationToken;

use crate::channels::{Direction, ManagerMsg, PeerCmd, PeerStats, Registration, RelayMsg, Standing, SyncMsg};
use crate::config::MAX_HEADERS;
use crate::config::{FRAME_OVERHEAD, MAX_TXS_PER_MESSAGE};
use crate::ctx::{Ctx, now_ms};
use crate::identity::NodeId;
use crate::peer::protocol::{Action, Close, PeerProtocol, ProtocolConfig, Serve, ToSync};
use crate::peer::writer::{Outbox, WriteError};
use crate::verdict::{Misbehaviour, Verdict, block_verdict, tx_verdict};
use crate::wire::{BlockId, Hello, Message, RejectReason, Wire, WireRx};

/// Longest run of relayed transactions submitted together (see `PeerTask::transactions`): a
/// whole `transactions` message. Each run is one round trip through the chain thread's queue
/// (a precheck, the signatures on every core, the admission), which under load waits behind
/// blocks and RPC intake: runs of at most 256, starting again at 1 for every message (eight
/// round trips a message), held an honest relayer to ~3k tx/s into a busy node.
const MAX_TX_RUN: usize = crate::config::MAX_TXS_PER_MESSAGE;

/// How long a leaving peer task may spend on its goodbye (a `Reject` with the reason).
const GOODBYE: Duration = Duration::from_millis(200);

/// Why a peer task ended.
enum End {
    /// Shutdown, or the manager cut it off (the connection is closed already).
    Cancelled,
    /// We close, with this code and reason.
    Local(RejectReason, String),
    /// The peer broke the protocol (reported to the manager on the way out).
    Violation(Misbehaviour),
    /// The peer broke the protocol, already reported.
    Judged(Misbehaviour),
    /// The peer went away.
    Remote(String),
}

/// Tells the sync task and the manager that the peer is gone, however the task ends (even
/// by a panic).
struct Gone {
    ctx: Arc<Ctx>,
    id: NodeId,
    conn_id: usize,
}

impl Drop for Gone {
    fn drop(&mut self) {
        let (ctx, id, conn_id) = (self.ctx.clone(), self.id, self.conn_id);
        self.ctx.tasks.spawn(async move {
            ctx.sync.send(SyncMsg::PeerDown { id, conn: conn_id }).await;
            ctx.manager.send(ManagerMsg::Gone { id, conn_id }).await;
        });
    }
}

/// One peer's task state around its machine.
struct PeerTask {
    ctx: Arc<Ctx>,
    id: NodeId,
    /// What the peer sends; read only by this task.
    rx: WireRx,
    /// What we send, written by the writer task (see [`crate::peer::writer`]).
    outbox: Outbox,
    cancel: CancellationToken,
    stats: Arc<PeerStats>,
    proto: PeerProtocol,
    /// The length of the peer's next run of relayed transactions: grows while its runs are
    /// clean, across messages, back to 1 after a punishable one (see `transactions`).
    tx_run: usize,
}

/// Runs a registered connection until it ends.
pub(crate) async fn run_peer(ctx: Arc<Ctx>, id: NodeId, conn: quinn::Connection, mut wire: Wire, reg: Registration, direction: Direction, hello: Hello) {
    let Registration { mut inbox, sender, cancel, stats } = reg;
    wire.set_limit(ctx.frame_limit());
    let _gone = Gone { ctx: ctx.clone(), id, conn_id: conn.stable_id() };
    let up = SyncMsg::PeerUp {
        id,
        conn: conn.stable_id(),
        inbox: sender,
        cancel: cancel.clone(),
        stats: stats.clone(),
        work: cairn_chain::Work::from_bytes(hello.total_work),
        hash: hello.best_hash,
    };
    if !ctx.sync.send(up).await {
        return;
    }
    let cfg = ProtocolConfig { max_block_txs: ctx.chain.max_block_txs(), ..ProtocolConfig::from(&ctx.cfg) };
    let (proto, first) = PeerProtocol::new(cfg, direction == Direction::Outbound, Instant::now(), rand::random());
    let (rx, tx) = wire.split();
    let outbox = Outbox::start(tx, ctx.cfg.ping_timeout);
    let mut t = PeerTask { ctx: ctx.clone(), id, rx, outbox, cancel, stats, proto, tx_run: 1 };
    let mut actions = first;
    let end = loop {
        if let Some(end) = t.carry_out(std::mem::take(&mut actions)).await {
            break end;
        }
        if t.cancel.is_cancelled() {
            break End::Cancelled;
        }
        // Unbiased: a busy inbox (gossip) must not stop the task reading the peer or keeping
        // its heartbeat, nor a chatty peer stop it sending.
        tokio::select! {
            _ = t.cancel.cancelled() => break End::Cancelled,
            cmd = inbox.recv() => match cmd {
                Some(PeerCmd::Send(m)) => {
                    t.proto.on_send(&m);
                    if !matches!(m, Message::TxIds(_) | Message::GetTxs(_)) {
                        actions.push(Action::Send(m));
                    } else if let Err(end) = t.gossip(&m) {
                        break end;
                    }
                }
                Some(PeerCmd::Disconnect(code, why)) => break End::Local(code, why.to_string()),
                None => break End::Cancelled,
            },
            _ = tokio::time::sleep_until(t.proto.next_tick().into()) => actions = t.proto.tick(Instant::now()),
            e = t.outbox.ended() => break write_failed(e),
            msg = t.rx.recv() => {
                let now = Instant::now();
                actions = match msg {
                    Ok(m) => {
                        t.stats.last_seen_ms.store(now_ms(), Ordering::Relaxed);
                        let a = t.proto.on_message(m, now);
                        if let Some(rtt) = t.proto.rtt() {
                            // At least 1 ms: 0 means "not measured yet".
                            t.stats.ping_ms.store((rtt.as_millis() as u64).max(1), Ordering::Relaxed);
                        }
                        a
                    }
                    Err(e) => t.proto.on_wire_error(&e, now),
                };
            }
        }
    };
    t.finish(&conn, end).await;
}

/// How the connection ends when the writer could not send.
fn write_failed(e: WriteError) -> End {
    match e {
        WriteError::Timeout(kind) => End::Local(RejectReason::PeerTimeout, format!("send of {kind} timed out (peer not reading)")),
        WriteError::Wire(e) => End::Remote(e.to_string()),
        WriteError::Stopped => End::Cancelled,
    }
}

impl PeerTask {
    /// Runs `fut` unless the peer is cut off first.
    async fn guarded<T>(&self, fut: impl Future<Output = T>) -> Option<T> {
        tokio::select! {
            biased;
            _ = self.cancel.cancelled() => None,
            r = fut => Some(r),
        }
    }

    /// Queues one message for the writer, waiting for room in the outbox (bounded by the
    /// cancellation; the writer bounds each frame by the ping timeout).
    async fn send(&mut self, m: &Message) -> Result<(), End> {
        let cancel = self.cancel.clone();
        tokio::select! {
            biased;
            _ = cancel.cancelled() => Err(End::Cancelled),
            r = self.outbox.send(m) => r.map_err(write_failed),
        }
    }

    /// Queues gossip if the outbox has room now, else drops it (see [`crate::peer::writer`]).
    fn gossip(&mut self, m: &Message) -> Result<bool, End> {
        match self.outbox.try_send(m) {
            Ok(sent) => {
                if !sent {
                    tracing::debug!(target: "p2p::gossip", peer = %self.id, kind = m.kind(), "outbox full: gossip dropped");
                }
                Ok(sent)
            }
            Err(e) => Err(write_failed(e)),
        }
    }

    /// Reports misbehaviour; `Err` if the peer must go now.
    async fn judge(&self, kind: Misbehaviour) -> Result<(), End> {
        match self.guarded(self.ctx.manager.judge(self.id, kind)).await {
            Some(Standing::Good) if !kind.disconnects() => Ok(()),
            Some(Standing::Good) => Err(End::Judged(kind)),
            Some(Standing::Banned) | None => Err(End::Cancelled),
        }
    }

    /// Hands a message to the sync task (waiting for room: back-pressure on this peer).
    async fn to_sync(&self, m: SyncMsg) -> Result<(), End> {
        match self.guarded(self.ctx.sync.send(m)).await {
            Some(true) => Ok(()),
            _ => Err(End::Cancelled),
        }
    }

    /// Carries out the machine's actions in order; `Some` when the connection must end.
    async fn carry_out(&mut self, actions: Vec<Action>) -> Option<End> {
        for a in actions {
            if self.cancel.is_cancelled() {
                return Some(End::Cancelled);
            }
            let r = match a {
                Action::Send(m) => self.send(&m).await,
                Action::Serve(s) => self.serve(s).await,
                Action::Sync(m) => self.sync(m).await,
                Action::Transactions(list) => self.transactions(list).await,
                Action::Announced(ids) => self.announced(ids).await,
                Action::Learn(list) => {
                    let addrs = list.into_iter().map(|p| p.addr).collect();
                    self.guarded(self.ctx.manager.send(ManagerMsg::Learned(addrs))).await;
                    Ok(())
                }
                Action::GivePeers => {
                    let id = self.id;
                    match self.guarded(self.ctx.manager.ask(|reply| ManagerMsg::PeersFor { asker: id, reply })).await.flatten() {
                        Some(list) => self.send(&Message::Peers(list)).await,
                        None => Err(End::Cancelled),
                    }
                }
                Action::Misbehaved(kind) => self.judge(kind).await,
                Action::Close(Close::Violation(kind)) => Err(End::Violation(kind)),
                Action::Close(Close::Local(why)) => {
                    let code = if why == crate::peer::protocol::PING_TIMEOUT { RejectReason::PeerTimeout } else { RejectReason::ProtocolViolation };
                    Err(End::Local(code, why.to_string()))
                }
                Action::Close(Close::Remote(why)) => Err(End::Remote(why)),
            };
            if let Err(end) = r {
                return Some(end);
            }
        }
        None
    }

    /// Answers a request from the chain.
    async fn serve(&mut self, s: Serve) -> Result<(), End> {
        let chain = self.ctx.chain.clone();
        let answer = match s {
            Serve::Status => {
                let tip = chain.tip();
                Message::Status { best_height: tip.height, best_hash: tip.hash, total_work: tip.total_work.to_bytes() }
            }
            Serve::Block(id) => {
                let block = match id {
                    BlockId::Hash(h) => self.guarded(chain.block(h)).await,
                    BlockId::Height(n) => self.guarded(chain.block_at(n)).await,
                };
                let Some(block) = block else { return Err(End::Cancelled) };
                Message::BlockData(block.map(|b| Bytes::from(b.encode())))
            }
            Serve::Headers { locator, max } => {
                let Some(headers) = self.guarded(chain.headers_after(locator, (max as usize).min(MAX_HEADERS))).await else {
                    return Err(End::Cancelled);
                };
                Message::Headers(headers.iter().map(|h| Bytes::copy_from_slice(&h.encode())).collect())
            }
            Serve::Blocks(hashes) => {
                // In the order asked, up to the frame budget (at least one block); what we
                // lack is said in a NotFound first, so the asker tells "cut short" from
                // "missing".
                let budget = self.ctx.frame_limit().saturating_sub(FRAME_OVERHEAD);
                let mut out = Vec::new();
                let mut missing = Vec::new();
                let mut size = 0;
                for h in hashes {
                    let Some(found) = self.guarded(chain.block(h)).await else { return Err(End::Cancelled) };
                    let Some(b) = found else {
                        missing.push(h);
                        continue;
                    };
                    let bytes = b.encode();
                    if !out.is_empty() && size + bytes.len() > budget {
                        break;
                    }
                    size += bytes.len();
                    out.push(Bytes::from(bytes));
                }
                if !missing.is_empty() {
                    self.send(&Message::NotFound(missing)).await?;
                }
                Message::Blocks(out)
            }
            Serve::Txs(ids) => {
                // What we no longer have (confirmed, evicted) is left out; nothing to say.
                let Some(txs) = self.guarded(chain.pending_by_ids(ids)).await else { return Err(End::Cancelled) };
                // Gossip answers: dropped when the outbox is full (the asker asks again).
                let mut served = Vec::new();
                for chunk in txs.chunks(MAX_TXS_PER_MESSAGE) {
                    if self.gossip(&Message::Transactions(chunk.iter().map(|tx| Bytes::from(tx.encode())).collect()))? {
                        served.extend(chunk.iter().map(Transaction::id));
                    }
                }
                // The peer asked for these (its pool may still refuse them): relay's quiet
                // rounds skip them for it, its full rounds offer them again (sync::known).
                if !served.is_empty() {
                    self.relay(RelayMsg::Served { ids: served, to: self.id }).await?;
                }
                return Ok(());
            }
            Serve::BlockTxs { hash, indexes } => {
                let Some(block) = self.guarded(chain.block(hash)).await else { return Err(End::Cancelled) };
                // All the asked transactions, or none (we lack the block, or an index is past
                // its end): the asker then fetches the whole block.
                let txs = block
                    .and_then(|b| indexes.iter().map(|i| b.transactions.get(*i as usize).map(|tx| Bytes::from(tx.encode()))).collect::<Option<Vec<_>>>())
                    .unwrap_or_default();
                Message::BlockTxs { hash, txs }
            }
        };
        self.send(&answer).await
    }

    /// Decodes and checks what the data alone can show, then hands it to the sync task.
    async fn sync(&mut self, m: ToSync) -> Result<(), End> {
        let id = self.id;
        let chain = self.ctx.chain.clone();
        match m {
            ToSync::Status { best_height, best_hash, total_work } => {
                self.stats.best_height.fetch_max(best_height, Ordering::Relaxed);
                self.to_sync(SyncMsg::Status { id, height: best_height, hash: best_hash, work: cairn_chain::Work::from_bytes(total_work) }).await
            }
            ToSync::NewBlock { height, hash } => {
                self.stats.best_height.fetch_max(height, Ordering::Relaxed);
                self.to_sync(SyncMsg::NewBlock { id, height, hash }).await
            }
            ToSync::NotFound(hashes) => self.to_sync(SyncMsg::NotFound { id, hashes }).await,
            ToSync::Headers(list) => {
                let full = list.len() == MAX_HEADERS;
                let mut headers: Vec<Header> = Vec::with_capacity(list.len());
                let mut cut = false;
                for bytes in &list {
                    let Ok(h) = Header::decode(bytes) else { return Err(End::Violation(Misbehaviour::UndecodableChainData)) };
                    if let Some(prev) = headers.last()
                        && (h.prev_hash != prev.hash() || h.height != prev.height.wrapping_add(1))
                    {
                        return Err(End::Violation(Misbehaviour::InvalidHeaderChain));
                    }
                    // What a header shows alone (proof, allowed target, version, not too far
                    // ahead of our clock) is checked before any body is fetched.
                    match chain.check_header(&h) {
                        Ok(()) => headers.push(h),
                        Err(e) => match block_verdict(&e, true) {
                            Verdict::Punish(kind) => {
                                tracing::warn!(target: "p2p::sync", peer = %id, height = h.height, code = e.code(), "peer sent an invalid header: {e}");
                                return Err(End::Violation(kind));
                            }
                            // Maybe our clock: not held against the peer, but nothing past it is
                            // taken now.
                            Verdict::NotYetValid | Verdict::Blameless => {
                                tracing::info!(target: "p2p::sync", peer = %id, height = h.height, "header batch cut short: {e}");
                                cut = true;
                                break;
                            }
                        },
                    }
                }
                self.to_sync(SyncMsg::Headers { id, headers, full, cut }).await
            }
            ToSync::Blocks(list) => {
                let mut blocks = Vec::with_capacity(list.len());
                for bytes in &list {
                    let Ok(b) = Block::decode(bytes, chain.max_block_txs()) else { return Err(End::Violation(Misbehaviour::UndecodableChainData)) };
                    blocks.push(b);
                }
                self.to_sync(SyncMsg::Blocks { id, blocks }).await
            }
            ToSync::CompactBlock { header, nonce, short_ids } => {
                let (Ok(header), Ok(short_ids)) = (Header::decode(&header), CompactBlock::decode_short_ids(&short_ids, chain.max_block_txs())) else {
                    return Err(End::Violation(Misbehaviour::UndecodableChainData));
                };
                if !self.header_taken(&header, "compact block")? {
                    return Ok(());
                }
                self.stats.best_height.fetch_max(header.height, Ordering::Relaxed);
                self.to_sync(SyncMsg::Compact { id, compact: Box::new(CompactBlock { header, nonce, short_ids }) }).await
            }
            ToSync::BlockTxs { hash, txs } => {
                let mut decoded = Vec::with_capacity(txs.len());
                for bytes in &txs {
                    let Ok(tx) = Transaction::decode(bytes) else { return Err(End::Violation(Misbehaviour::UndecodableChainData)) };
                    decoded.push(tx);
                }
                self.to_sync(SyncMsg::BlockTxs { id, hash, txs: decoded }).await
            }
            ToSync::BlockData { block, requested } => {
                let Ok(b) = Block::decode(&block, chain.max_block_txs()) else { return Err(End::Violation(Misbehaviour::UndecodableChainData)) };
                let hash = b.hash();
                if !self.header_taken(&b.header, "block")? {
                    return Ok(());
                }
                let asked = match requested {
                    Some(BlockId::Hash(h)) => h == hash,
                    Some(BlockId::Height(n)) => n == b.header.height,
                    None => false,
                };
                if !asked && !self.more_work_than_tip(&b).await {
                    // Unrequested and no better than what we have: not processed, not stored.
                    tracing::debug!(target: "p2p::sync", peer = %id, %hash, "unrequested block without more work dropped");
                    return Ok(());
                }
                self.to_sync(SyncMsg::Block { id, block: Box::new(b) }).await
            }
        }
    }

    /// Checks what a block's header shows alone: `Err` if it is invalid (the peer is judged),
    /// `Ok(false)` if it is not valid yet (dropped unstored and unpunished: offered again
    /// after our clock passes it, it is taken).
    fn header_taken(&self, header: &Header, what: &str) -> Result<bool, End> {
        let Err(e) = self.ctx.chain.check_header(header) else { return Ok(true) };
        let (id, hash) = (self.id, header.hash());
        match block_verdict(&e, true) {
            Verdict::Punish(kind) => {
                tracing::warn!(target: "p2p::sync", peer = %id, %hash, code = e.code(), "peer sent an invalid {what}: {e}");
                Err(End::Violation(kind))
            }
            Verdict::NotYetValid | Verdict::Blameless => {
                tracing::info!(target: "p2p::sync", peer = %id, %hash, "{what} not taken yet: {e}");
                Ok(false)
            }
        }
    }

    /// Whether `b` would give a chain with more work than our tip (its parent must be known).
    async fn more_work_than_tip(&self, b: &Block) -> bool {
        let tip = self.ctx.chain.tip().total_work;
        let parent = self.guarded(self.ctx.chain.total_work_of(b.header.prev_hash)).await.flatten();
        unrequested_block_wanted(parent, b.header.target.work(), tip)
    }

    /// Hands a peer's announcement to the relay, waiting for room: back-pressure on this
    /// peer, never a lost announcement. (Not asking the chain here: this peer's block
    /// requests would wait behind it.)
    async fn announced(&mut self, ids: Vec<cairn_chain::Hash>) -> Result<(), End> {
        self.relay(RelayMsg::Announced { ids, from: self.id }).await
    }

    /// Queues a note for the relay, waiting for room (bounded by the cancellation). A node
    /// that relays no transactions (`blocks_only`) runs no relay: the note is dropped.
    async fn relay(&self, note: RelayMsg) -> Result<(), End> {
        match self.guarded(self.ctx.relay.send(note)).await {
            Some(_) => Ok(()),
            None => Err(End::Cancelled),
        }
    }

    /// Submits relayed transactions in order, in runs that grow while the peer's
    /// transactions are valid (1, 4, 16, … up to [`MAX_TX_RUN`], carried from one message to
    /// the next): an honest relayer's messages are verified whole and in parallel, while a
    /// peer sending junk costs at most one signature before it is judged (at most three times
    /// what it sent valid before). The moment the peer is judged, the rest of the batch is
    /// dropped unverified.
    async fn transactions(&mut self, list: Vec<Bytes>) -> Result<(), End> {
        let mut run = Vec::new();
        let mut entries = list.into_iter();
        loop {
            let next = entries.next();
            let undecodable = match &next {
                Some(bytes) => match Transaction::decode(bytes) {
                    Ok(tx) => {
                        run.push(tx);
                        false
                    }
                    Err(_) => true,
                },
                None => false,
            };
            if run.len() >= self.tx_run || next.is_none() || undecodable {
                let clean = self.submit_run(std::mem::take(&mut run)).await?;
                self.tx_run = if clean { self.tx_run.saturating_mul(4).min(MAX_TX_RUN) } else { 1 };
            }
            if undecodable {
                return Err(End::Violation(Misbehaviour::UndecodableChainData));
            }
            if next.is_none() {
                return Ok(());
            }
        }
    }

    /// Submits one run of transactions; judges the peer on the first punishable failure (the
    /// rest of the run is not judged). Returns whether nothing in it was punishable.
    async fn submit_run(&mut self, run: Vec<Transaction>) -> Result<bool, End> {
        if run.is_empty() {
            return Ok(true);
        }
        if self.cancel.is_cancelled() {
            return Err(End::Cancelled);
        }
        // Their source, before the mempool can announce them.
        self.relay(RelayMsg::Seen { txids: run.iter().map(Transaction::id).collect(), from: self.id }).await?;
        let Some(results) = self.guarded(self.ctx.chain.submit_txs(run)).await else { return Err(End::Cancelled) };
        let mut clean = true;
        for r in results {
            match r {
                Ok(()) => self.stats.last_tx_ms.store(crate::ctx::now_ms(), std::sync::atomic::Ordering::Relaxed),
                Err(cairn_chain::TxError::AlreadyKnown(_)) => self.ctx.metrics.duplicate_tx(),
                Err(e) => match tx_verdict(&e) {
                    Verdict::Punish(kind) => {
                        clean = false;
                        tracing::warn!(target: "p2p::gossip", peer = %self.id, code = e.code(), "peer relayed an invalid transaction: {e}");
                        self.judge(kind).await?;
                    }
                    Verdict::NotYetValid | Verdict::Blameless => {}
                },
            }
        }
        Ok(clean)
    }

    /// Ends the connection as `end` says.
    async fn finish(self, conn: &quinn::Connection, end: End) {
        let id = self.id;
        // Last words go straight after the frame being written; what else was queued is
        // dropped.
        let mut last = self.outbox.stop().await;
        match end {
            End::Cancelled => {
                if self.ctx.cancel.is_cancelled() {
                    // Shutdown: say so, briefly.
                    let code = RejectReason::ShuttingDown;
                    let bye = Message::Reject { reason: code, detail: "node shutting down".into() };
                    if let Some(tx) = last.as_mut() {
                        let _ = tokio::time::timeout(GOODBYE, async {
                            let _ = tx.send(&bye).await;
                            tx.finish().await;
                        })
                        .await;
                    }
                    conn.close(code.close_code(), format!("{}: node shutting down", code.code()).as_bytes());
                }
                // Otherwise the manager cut it off and closed the connection with the reason.
            }
            End::Local(code, why) => {
                tracing::info!(target: "p2p::peer", peer = %id, "disconnecting: {why}");
                let bye = Message::Reject { reason: code, detail: why.clone() };
                if let Some(tx) = last.as_mut() {
                    let _ = tokio::time::timeout(GOODBYE, async {
                        let _ = tx.send(&bye).await;
                        tx.finish().await;
                        conn.closed().await;
                    })
                    .await;
                }
                conn.close(code.close_code(), format!("{}: {why}", code.code()).as_bytes());
            }
            End::Remote(why) => {
                tracing::info!(target: "p2p::peer", peer = %id, "peer disconnected: {why}");
                conn.close(quinn::VarInt::from_u32(0), b"closed");
            }
            End::Judged(kind) => {
                tracing::warn!(target: "p2p::peer", peer = %id, kind = kind.code(), "closing connection: protocol violation");
                conn.close(RejectReason::ProtocolViolation.close_code(), format!("protocol_violation: {}", kind.code()).as_bytes());
            }
            End::Violation(kind) => {
                tracing::warn!(target: "p2p::peer", peer = %id, kind = kind.code(), "closing connection: protocol violation");
                // Judged first: a ban closes the connection with `banned` (the manager does it);
                // otherwise it closes here as a protocol violation.
                let code = match self.ctx.manager.judge(id, kind).await {
                    Standing::Good => RejectReason::ProtocolViolation,
                    Standing::Banned => RejectReason::Banned,
                };
                conn.close(code.close_code(), format!("{}: {}", code.code(), kind.code()).as_bytes());
            }
        }
    }
}

/// Whether an unrequested block is worth processing (Bitcoin Core's rule for unrequested
/// blocks): only if its parent is stored and it would make a chain with more work than our
/// tip — a new best tip. Anything else is dropped unread: side-chain blocks with less work
/// cost us storage and validation for nothing, and orphans are only taken when asked for.
pub fn unrequested_block_wanted(parent_work: Option<cairn_chain::Work>, block_work: cairn_chain::Work, tip: cairn_chain::Work) -> bool {
    parent_work.is_some_and(|p| p.saturating_add(block_work) > tip)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_chain::Work;

    #[test]
    fn unrequested_blocks_are_taken_only_with_more_work_than_the_tip() {
        let w = |n: u8| {
            let mut b = [0u8; 32];
            b[31] = n;
            Work::from_bytes(b)
        };
        assert!(unrequested_block_wanted(Some(w(10)), w(1), w(10)), "extends the tip");
        assert!(!unrequested_block_wanted(Some(w(5)), w(1), w(10)), "a side block with less work");
        assert!(!unrequested_block_wanted(Some(w(9)), w(1), w(10)), "equal work: the first seen stays");
        assert!(!unrequested_block_wanted(None, w(100), w(10)), "an orphan nobody asked for");
    }
}
