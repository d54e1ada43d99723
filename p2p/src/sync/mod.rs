//! The sync task: the one owner of the download schedule ([`download::Download`]), the orphan
//! pool ([`orphans::Orphans`]), the import pipeline ([`import`]), who sent which block, and
//! the announcement of every new tip.
//!
//! Peer tasks hand it the chain messages of their peers, already decoded and checked as far as
//! the data alone allows (proof, target, version, header chaining), over a bounded channel
//! ([`SyncHandle`]); it asks peers for headers and blocks by `try_send` on their inboxes (a
//! full inbox takes the request back), and judges peers through the peer manager.
//!
//! # Catch-up sync
//! A peer that claims more work than our tip (`Hello`, `Status`) is asked for headers after our
//! block locator, once per schedule epoch, and to continue while its batches come full.
//! Headers that connect extend the one schedule of wanted blocks; headers that match it show
//! which peer has which block. Blocks are fetched from every peer that has shown them, in
//! parallel, within a bounded window; stalled ranges move on within seconds. The import
//! checks arrived blocks in order, in parallel off the async runtime, and commits them in
//! runs. Blocks that arrive alone (an announcement's answer) before their parent wait in the
//! bounded orphan pool while the sender is asked for the headers between.
//!
//! # Bounds
//! Inbox: [`SYNC_INBOX`] messages; peer tasks wait when it is full (back-pressure on the
//! peers that send most). The schedule, orphan pool and source maps are bounded (see their
//! modules).

pub mod compact;
pub mod download;
mod gossip;
pub(crate) mod import;
mod known;
pub mod orphans;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_chain::{Block, Hash, Header, Work};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

pub(crate) use gossip::relay_transactions;
pub use gossip::{Recent, TxRequests};

use crate::channels::{PeerCmd, PeerStats, Standing, SyncMsg, SyncStatus};
use crate::ctx::Ctx;
use crate::identity::NodeId;
use crate::ports::Submitted;
use crate::sync::compact::Rebuilding;
use crate::sync::download::{Claim, Download, HeadersFrom, HeadersRejected};
use crate::sync::import::{Import, Progress};
use crate::sync::orphans::Orphans;
use crate::verdict::{Misbehaviour, Verdict, block_verdict};
use crate::wire::{BlockId, Message};

pub use crate::config::{MAX_BLOCKS_PER_REQUEST, MAX_HEADERS, MAX_LOCATOR, MAX_TXS_PER_MESSAGE, SYNC_INBOX};
/// How many blocks' sources (and first-heard times) are remembered. Only the newest blocks'
/// are ever asked for (the tip's, not to announce it back to its sender; a compact block's,
/// for the announce-to-accept time), so a few thousand is plenty; 65,536 held ~6 MiB on a
/// node that synced 20,000 blocks.
const BLOCK_SOURCES: usize = 4096;
/// How often stalls are looked for: well below the 2 s stall timeout.
const TICK: Duration = Duration::from_millis(250);

/// One peer as the sync task knows it.
struct SyncPeer {
    /// Its connection (a replaced connection's `PeerDown` must not remove the new one).
    conn: usize,
    inbox: mpsc::Sender<PeerCmd>,
    cancel: CancellationToken,
    stats: Arc<PeerStats>,
    /// The work it last claimed (only decides whom to ask for headers).
    work: Work,
    /// The work it claimed when last asked for headers from our tip: a higher claim later
    /// (a block whose announcement we missed) is worth asking again.
    asked_for: Work,
}

/// The sync task's state; only [`run`] touches it.
struct Sync {
    ctx: Arc<Ctx>,
    download: Download,
    orphans: Orphans,
    progress: Progress,
    import: Import,
    /// Who sent us which block (not to announce it back).
    block_sources: Recent<NodeId>,
    /// Compact blocks waiting for missing transactions.
    rebuilding: Rebuilding,
    /// The tip we last announced (a new tip on top of it goes out as a compact block).
    announced: Option<Hash>,
    /// When each new block was first announced to us (compact), for the announce-to-accept
    /// histogram (bounded like `block_sources`).
    heard: Recent<Instant>,
    peers: HashMap<NodeId, SyncPeer>,
    status: watch::Sender<SyncStatus>,
}

/// Runs the sync task until shutdown.
pub(crate) async fn run(ctx: Arc<Ctx>, mut rx: mpsc::Receiver<SyncMsg>, status: watch::Sender<SyncStatus>) {
    let mut tips = ctx.chain.watch_tip();
    let mut s = Sync {
        ctx: ctx.clone(),
        download: Download::default(),
        orphans: Orphans::default(),
        progress: Progress::default(),
        import: Import::default(),
        block_sources: Recent::new(BLOCK_SOURCES),
        rebuilding: Rebuilding::default(),
        announced: Some(ctx.chain.tip().hash),
        heard: Recent::new(BLOCK_SOURCES),
        peers: HashMap::new(),
        status,
    };
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        s.import.fill(&mut s.download, &ctx);
        tokio::select! {
            biased;
            _ = ctx.cancel.cancelled() => break,
            event = s.import.next(), if s.import.is_busy() => match event {
                import::Event::Checked(Ok(run)) => s.import.commit(run, &ctx),
                import::Event::Checked(Err(e)) => {
                    s.on_committed(import::Committed { connected: Vec::new(), sources: Vec::new(), duplicates: 0, failure: Some(import::Failure::Local(e.to_string())) }).await;
                }
                import::Event::Committed(c) => s.on_committed(*c).await,
            },
            // Stall detection and tip announcements before the inbox: a peer flooding
            // messages must not starve them.
            _ = tick.tick() => s.tick(),
            changed = async { tips.as_mut()?.changed().await.ok() }, if tips.is_some() => match changed {
                Some(()) => s.announce_tip().await,
                None => tips = None,
            },
            msg = rx.recv() => match msg {
                Some(m) => s.handle(m).await,
                None => break,
            },
        }
        s.dispatch().await;
        s.publish();
    }
    s.import.abort();
}

impl Sync {
    async fn handle(&mut self, msg: SyncMsg) {
        let id = msg.peer();
        // Nothing more from a peer that was cut off is processed (its token is cancelled
        // the moment the manager judges it).
        if !matches!(msg, SyncMsg::PeerUp { .. } | SyncMsg::PeerDown { .. }) && self.peers.get(&id).is_none_or(|p| p.cancel.is_cancelled()) {
            return;
        }
        match msg {
            SyncMsg::PeerUp { id, conn, inbox, cancel, stats, work, hash } => {
                // A connection already cut off (a crossing connection that lost the
                // tie-break, whose task started late) must not displace the one that replaced
                // it: that one's messages would then be ignored as a cut-off peer's.
                if cancel.is_cancelled() {
                    return;
                }
                // A new connection of a known peer replaces the old one: its requests and
                // evidence do not carry over (answers would pair with the wrong requests).
                if self.peers.remove(&id).is_some() {
                    self.download.remove_peer(&id);
                }
                self.download.add_peer(id);
                self.download.announced(&id, &hash);
                self.peers.insert(id, SyncPeer { conn, inbox, cancel, stats, work, asked_for: Work::ZERO });
            }
            SyncMsg::PeerDown { id, conn } => {
                // Only the connection that is gone: a replacement may have come up already.
                if self.peers.get(&id).is_some_and(|p| p.conn == conn) {
                    self.peers.remove(&id);
                    self.rebuilding.peer_gone(&id);
                    let dropped = self.download.remove_peer(&id);
                    if dropped > 0 {
                        tracing::info!(target: "p2p::sync", peer = %id, dropped, "peer left; dropped the blocks only it had shown");
                    }
                }
            }
            SyncMsg::Status { id, height, hash, work } => {
                self.progress.target(height);
                if let Some(p) = self.peers.get_mut(&id) {
                    p.work = work;
                }
                self.download.announced(&id, &hash);
            }
            SyncMsg::NewBlock { id, height, hash } => {
                self.progress.target(height);
                self.download.announced(&id, &hash);
                if self.ctx.chain.has_block(hash).await {
                    self.ctx.metrics.duplicate_block();
                } else if self.download.wanted() == 0 || height > self.download.last_height().unwrap_or(0) {
                    // A new tip (or one beyond what the schedule fetches): ask for it alone;
                    // if its parent is missing, its sender shows the headers between.
                    self.send(&id, Message::GetBlock(BlockId::Hash(hash)));
                }
            }
            SyncMsg::Headers { id, headers, full, cut } => self.take_headers(id, headers, full, cut).await,
            SyncMsg::Blocks { id, blocks } => match self.download.on_blocks(id, blocks, Instant::now()) {
                None => {} // unsolicited, or late after a reset: ignored
                Some(taken) => {
                    if taken.kept > 0
                        && let Some(p) = self.peers.get(&id)
                    {
                        p.stats.blocks_served.fetch_add(taken.kept as u64, std::sync::atomic::Ordering::Relaxed);
                        p.stats.last_block_ms.store(crate::ctx::now_ms(), std::sync::atomic::Ordering::Relaxed);
                    }
                    if taken.withheld > 0 {
                        tracing::info!(target: "p2p::sync", peer = %id, blocks = taken.withheld, "peer refuses blocks its own headers listed");
                        self.judge(id, Misbehaviour::WithheldBlocks).await;
                    }
                }
            },
            SyncMsg::NotFound { id, hashes } => self.download.on_not_found(&id, &hashes),
            SyncMsg::Block { id, block } => self.take_block(id, *block).await,
            SyncMsg::Compact { id, compact } => self.take_compact(id, *compact).await,
            SyncMsg::BlockTxs { id, hash, txs } => {
                let Some(mut waiting) = self.rebuilding.take(&hash, &id) else {
                    return; // late (fetched whole meanwhile) or not asked: ignored
                };
                match waiting.partial.fill(txs).and_then(|()| waiting.partial.finish()) {
                    Ok(Some(block)) => {
                        self.ctx.metrics.compact_block("fetched_missing");
                        self.take_block(id, block).await;
                    }
                    Ok(None) | Err(_) => self.fetch_whole(id, hash),
                }
            }
        }
    }

    /// A new block announced as header and short IDs: rebuilt from the mempool, its missing
    /// transactions asked of the sender, or — when that cannot work — the whole block fetched.
    async fn take_compact(&mut self, id: NodeId, compact: cairn_chain::compact::CompactBlock) {
        let (height, hash) = (compact.header.height, compact.header.hash());
        if self.heard.get(&hash).is_none() {
            self.heard.insert(hash, Instant::now());
        }
        self.progress.target(height);
        self.download.announced(&id, &hash);
        if self.rebuilding.contains(&hash) {
            return; // another peer's copy is on its way
        }
        if self.ctx.chain.has_block(hash).await {
            self.ctx.metrics.duplicate_block();
            return;
        }
        if self.download.wanted() > 0 && height <= self.download.last_height().unwrap_or(0) {
            return; // the catch-up sync fetches it
        }
        if self.ctx.chain.total_work_of(compact.header.prev_hash).await.is_none() {
            // Its parent is unknown: the whole block, which the orphan pool holds while the
            // sender shows the headers between.
            self.send(&id, Message::GetBlock(BlockId::Hash(hash)));
            return;
        }
        let Some(partial) = self.ctx.chain.rebuild(compact).await else {
            self.fetch_whole(id, hash);
            return;
        };
        match partial.finish() {
            Ok(Some(block)) => {
                self.ctx.metrics.compact_block("rebuilt");
                self.take_block(id, block).await;
            }
            Ok(None) => {
                let indexes = partial.missing();
                tracing::debug!(target: "p2p::sync", peer = %id, %hash, missing = indexes.len(), "compact block: fetching missing transactions");
                if let Some((pushed, peer)) = self.rebuilding.wait(hash, id, partial, Instant::now()) {
                    self.fetch_whole(peer, pushed);
                }
                if !self.send(&id, Message::GetBlockTxs { hash, indexes }) {
                    self.rebuilding.take(&hash, &id);
                }
            }
            // Short IDs that matched the wrong transactions: bad luck or a liar, which cannot be
            // told apart, so nobody is blamed.
            Err(_) => self.fetch_whole(id, hash),
        }
    }

    /// Asks `id` for a whole block after its compact form could not be rebuilt.
    fn fetch_whole(&mut self, id: NodeId, hash: Hash) {
        tracing::debug!(target: "p2p::sync", peer = %id, %hash, "compact block not rebuilt; fetching the whole block");
        self.ctx.metrics.compact_block("fell_back");
        self.send(&id, Message::GetBlock(BlockId::Hash(hash)));
    }

    /// Judges a peer through the manager; returns whether it is still welcome.
    async fn judge(&mut self, id: NodeId, kind: Misbehaviour) -> bool {
        let standing = self.ctx.manager.judge(id, kind).await;
        if standing == Standing::Good && kind.disconnects() {
            // Not banned (yet), but this ends the connection: the peer task closes it.
            if let Some(p) = self.peers.get(&id) {
                let _ = p.inbox.try_send(PeerCmd::Disconnect(crate::wire::RejectReason::ProtocolViolation, kind.code()));
            }
        }
        standing == Standing::Good && !kind.disconnects()
    }

    fn send(&self, id: &NodeId, m: Message) -> bool {
        self.peers.get(id).is_some_and(|p| p.inbox.try_send(PeerCmd::Send(m)).is_ok())
    }

    /// Takes a header batch into the schedule.
    async fn take_headers(&mut self, id: NodeId, headers: Vec<Header>, full: bool, cut: bool) {
        if !self.download.headers_from(&id) {
            return; // unsolicited or late: ignored
        }
        // What we already store: the leading run (a locator can lag), and the first new
        // header's parent.
        let mut stored = std::collections::HashSet::new();
        for h in &headers {
            let hash = h.hash();
            if !self.ctx.chain.has_block(hash).await {
                break;
            }
            stored.insert(hash);
        }
        let parent_stored = match headers.get(stored.len()) {
            Some(first) => self.ctx.chain.has_block(first.prev_hash).await,
            None => false,
        };
        let all_stored = stored.len() == headers.len();
        match self.download.on_headers(id, &headers, full, |h| stored.contains(h), |_| parent_stored) {
            Ok(t) => {
                tracing::debug!(target: "p2p::sync", peer = %id, received = headers.len(), queued = t.queued, "headers");
                if t.queued == 0 && !t.showed_anything && !full && !cut && all_stored && self.unbacked(t.claim) {
                    // It claimed more work than we have (or sent an orphan) and shows nothing
                    // we lack: every heartbeat would cost a header request, so it pays for each.
                    self.judge(id, Misbehaviour::UnbackedWorkClaim).await;
                }
                if t.queued > 0 {
                    self.progress.start(self.ctx.chain.tip().height);
                }
            }
            Err(HeadersRejected::NotAChain) => {
                self.judge(id, Misbehaviour::InvalidHeaderChain).await;
            }
            Err(HeadersRejected::Unsolicited) => {}
        }
    }

    /// Whether a header answer that showed nothing new contradicts what the request relied on.
    /// Not judged while blocks are on their way in (our tip lags them, and an honest
    /// answer may show only what we are importing), nor for an orphan that has connected
    /// meanwhile (its parent came from another peer).
    fn unbacked(&self, claim: Option<Claim>) -> bool {
        if self.download.wanted() > 0 || self.import.is_busy() {
            return false;
        }
        match claim {
            Some(Claim::Work(w)) => w > self.ctx.chain.tip().total_work,
            Some(Claim::Orphan) => !self.orphans.is_empty(),
            None => false,
        }
    }

    /// Submits a block that came alone: an orphan is held and its sender asked for the
    /// headers between; a connected block releases the orphans waiting for it.
    async fn take_block(&mut self, id: NodeId, block: Block) {
        let hash = block.hash();
        let height = block.header.height;
        let arrived = Instant::now();
        let timestamp = block.header.timestamp;
        self.block_sources.insert(hash, id);
        match self.ctx.chain.submit_block(block.clone()).await {
            Ok(Submitted::Connected | Submitted::SideChain) => {
                let age = crate::ctx::now_ms().saturating_sub(timestamp);
                let heard = self.heard.get(&hash).copied().unwrap_or(arrived);
                self.ctx.metrics.block_arrived(Duration::from_millis(age), heard.elapsed());
                if let Some(p) = self.peers.get(&id) {
                    p.stats.last_block_ms.store(crate::ctx::now_ms(), std::sync::atomic::Ordering::Relaxed);
                }
                self.release_orphans(vec![hash]).await
            }
            Ok(Submitted::AlreadyKnown) => self.ctx.metrics.duplicate_block(),
            Err(cairn_chain::BlockError::UnknownParent(_)) => {
                if self.orphans.insert(block, id) {
                    tracing::debug!(target: "p2p::sync", peer = %id, %hash, height, "holding an orphan block; fetching its ancestors");
                }
                self.ask_headers(id, HeadersFrom::Tip, Some(Claim::Orphan)).await;
            }
            Err(e) => self.blame(id, hash, &e).await,
        }
    }

    /// Applies the verdict on a block that failed with `e` to the peer `id` that sent it.
    async fn blame(&mut self, id: NodeId, hash: Hash, e: &cairn_chain::BlockError) {
        match block_verdict(e, false) {
            Verdict::Punish(kind) => {
                tracing::warn!(target: "p2p::sync", peer = %id, %hash, code = e.code(), "peer sent an invalid block: {e}");
                self.judge(id, kind).await;
            }
            Verdict::NotYetValid => tracing::info!(target: "p2p::sync", peer = %id, %hash, "block not taken yet: {e}"),
            Verdict::Blameless => tracing::debug!(target: "p2p::sync", peer = %id, %hash, "block not taken: {e}"),
        }
    }

    /// Submits the orphans waiting for `parents` (and theirs, in turn).
    async fn release_orphans(&mut self, parents: Vec<Hash>) {
        let mut work = parents;
        while let Some(parent) = work.pop() {
            if self.orphans.is_empty() {
                return;
            }
            for (block, peer) in self.orphans.take_children(&parent) {
                if self.peers.get(&peer).is_none_or(|p| p.cancel.is_cancelled()) {
                    continue; // its sender left or was cut off: nothing of it is processed
                }
                let hash = block.hash();
                self.block_sources.insert(hash, peer);
                match self.ctx.chain.submit_block(block).await {
                    Ok(Submitted::Connected | Submitted::SideChain) => work.push(hash),
                    Ok(Submitted::AlreadyKnown) => {}
                    Err(e) => self.blame(peer, hash, &e).await,
                }
            }
        }
    }

    /// A committed run came back: orphans waiting on its blocks are released; a run that
    /// broke blames whom the failure points at and starts the schedule over.
    async fn on_committed(&mut self, outcome: import::Committed) {
        self.release_orphans(outcome.connected.clone()).await;
        for (hash, peer) in &outcome.sources {
            self.block_sources.insert(*hash, *peer);
        }
        let duplicates = outcome.duplicates;
        for _ in 0..duplicates {
            self.ctx.metrics.duplicate_block();
        }
        if let Some(failure) = outcome.failure {
            if let Some((culprit, hash, e)) = failure.blame() {
                match block_verdict(&e, false) {
                    Verdict::Punish(kind) => {
                        tracing::warn!(target: "p2p::sync", peer = %culprit, %hash, code = e.code(), "peer sent an invalid block: {e}");
                        self.judge(culprit, kind).await;
                    }
                    Verdict::NotYetValid | Verdict::Blameless => tracing::info!(target: "p2p::sync", %hash, "sync run stopped: {e}"),
                }
            }
            self.import.abort();
            self.download.reset();
        }
        let height = self.ctx.chain.tip().height;
        if !self.download.is_active() && !self.import.is_busy() {
            self.progress.finish(height);
        } else {
            self.progress.report(height);
        }
    }

    /// Looks for stalled peers and compact blocks waiting too long.
    fn tick(&mut self) {
        for (hash, peer) in self.rebuilding.expire(Instant::now()) {
            self.fetch_whole(peer, hash);
        }
        let tip = self.ctx.chain.tip().total_work;
        let peers = &self.peers;
        let stalls = self.download.tick(Instant::now(), |id| peers.iter().any(|(o, p)| o != id && p.work > tip));
        for s in stalls {
            if s.dropped > 0
                && let Some(p) = self.peers.get_mut(&s.peer)
            {
                // Asked again from our tip once nothing else is wanted: if the others showed
                // nothing, it is the only way on.
                p.asked_for = Work::ZERO;
            }
            tracing::info!(target: "p2p::sync", peer = %s.peer, dropped = s.dropped, timeout_s = s.timeout.as_secs(), "peer stalled; its blocks go to others");
        }
    }

    /// Hands out block ranges to every peer that has shown them, and asks peers for headers
    /// where the schedule wants them. Runs after every event.
    async fn dispatch(&mut self) {
        let now = Instant::now();
        // Quickest peers first: a range given up by a staller goes to the others before it.
        let mut ids: Vec<NodeId> = self.peers.keys().copied().collect();
        ids.sort_by_key(|id| self.download.timeout(id));
        for id in &ids {
            while let Some(hashes) = self.download.assign(*id, MAX_BLOCKS_PER_REQUEST, now) {
                if !self.send(id, Message::GetBlocks(hashes)) {
                    self.download.unassign_last(id);
                    break;
                }
            }
        }
        let tip = self.ctx.chain.tip().total_work;
        for id in &ids {
            let Some((work, asked_for)) = self.peers.get(id).map(|p| (p.work, p.asked_for)) else { continue };
            let more = work > tip;
            // Also asked again when it claims more than when it was last asked (the heartbeat's
            // Status catches up a missed announcement); a liar pays for each.
            let from = self.download.headers_wanted(id, more).or_else(|| {
                let idle = self.download.wanted() == 0 && !self.import.is_busy();
                (more && work > asked_for && idle && !self.download.headers_from(id)).then_some(HeadersFrom::Tip)
            });
            if let Some(from) = from {
                // Only a request from our tip relies on its claim; a continuation after a full
                // batch may rightly come back empty (the batch ended at its tip).
                let claim = (from == HeadersFrom::Tip).then_some(Claim::Work(work));
                if from == HeadersFrom::Tip
                    && let Some(p) = self.peers.get_mut(id)
                {
                    p.asked_for = work;
                }
                self.ask_headers(*id, from, claim).await;
            }
        }
        if !self.download.is_active() && !self.import.is_busy() {
            self.progress.finish(self.ctx.chain.tip().height);
        }
    }

    /// Sends `id` a header request.
    async fn ask_headers(&mut self, id: NodeId, from: HeadersFrom, claim: Option<Claim>) {
        if self.download.headers_from(&id) || !self.peers.contains_key(&id) {
            return;
        }
        let locator = match from {
            HeadersFrom::After(h) => vec![h],
            HeadersFrom::Tip => {
                let mut l = self.ctx.chain.locator().await;
                if let Some(last) = self.download.last_hash() {
                    l.insert(0, last);
                }
                l.truncate(MAX_LOCATOR);
                l
            }
        };
        if self.send(&id, Message::GetHeaders { locator, max: MAX_HEADERS as u32 }) {
            self.download.asked_headers(id, from, claim, Instant::now());
        }
    }

    /// Announces a new tip to every peer but the one it came from: as a compact block when
    /// it extends the tip announced before and no catch-up import is running (the live
    /// chain), else as `new_block` (after a reorg or a sync run the peers fetch what they lack
    /// by headers and whole blocks).
    async fn announce_tip(&mut self) {
        // A new header epoch only once a sync is over (nothing wanted, nothing importing):
        // mid-import the tip lags what is already on its way in.
        let importing = self.import.is_busy();
        if !importing {
            self.download.tip_moved();
        }
        let tip = self.ctx.chain.tip();
        let source = self.block_sources.get(&tip.hash).copied();
        let previous = self.announced.replace(tip.hash);
        let mut message = Message::NewBlock { height: tip.height, hash: tip.hash };
        if !importing
            && previous.is_some()
            && self.peers.keys().any(|id| Some(*id) != source)
            && let Some(c) = self.ctx.chain.compact_block(tip.hash, rand::random()).await
            && Some(c.header.prev_hash) == previous
        {
            message = Message::CompactBlock {
                header: bytes::Bytes::copy_from_slice(&c.header.encode()),
                nonce: c.nonce,
                short_ids: bytes::Bytes::from(c.encode_short_ids()),
            };
        }
        for (id, p) in &self.peers {
            if Some(*id) != source {
                // A full inbox drops the announcement: gossip is best effort, the heartbeat's
                // status catches up.
                let _ = p.inbox.try_send(PeerCmd::Send(message.clone()));
            }
        }
    }

    fn publish(&self) {
        let s = SyncStatus { active: self.download.is_active() || self.import.is_busy(), orphans: self.orphans.len() };
        self.status.send_if_modified(|old| {
            let changed = *old != s;
            *old = s;
            changed
        });
    }
}
