//! The import pipeline of a catch-up sync: takes downloaded blocks in chain order, checks
//! them in parallel off the async runtime (proof, Merkle root, batched signatures; the next
//! run is checked while the current one commits), commits them in runs, bans the source of
//! an invalid block, and logs progress (height/target, blocks/s, ETA).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_chain::{Block, BlockError, CheckResult, Hash};
use tokio::task::JoinHandle;

use crate::identity::NodeId;
use crate::peer::PeerCmd;
use crate::ports::Submitted;
use crate::service::Inner;
use crate::sync::{MAX_BLOCKS_PER_REQUEST, dispatch};

/// Runs checked ahead of the one committing.
const PIPELINE: usize = 2;
/// Blocks per committed run.
const RUN: usize = 2 * MAX_BLOCKS_PER_REQUEST;
/// Bytes per run (past the first block): bounds what is held while runs are checked.
const RUN_BYTES: usize = 16 << 20;

/// Who served and who listed each block of a run.
type Sources = Vec<(NodeId, NodeId)>;
type Checking = JoinHandle<(Sources, Vec<CheckResult>)>;

/// Progress of the node's sync, for log lines.
#[derive(Default)]
pub(crate) struct Progress {
    started: Option<(Instant, u64)>,
    last_report: Option<Instant>,
    target: u64,
}

impl Progress {
    /// A sync starts (if none is running) at `height`.
    pub(crate) fn start(&mut self, height: u64) {
        if self.started.is_none() {
            self.started = Some((Instant::now(), height));
            self.last_report = Some(Instant::now());
        }
    }
    /// A peer reports `height`.
    pub(crate) fn target(&mut self, height: u64) {
        self.target = self.target.max(height);
    }
    /// Logs height/target, rate and ETA at most every few seconds.
    fn report(&mut self, height: u64) {
        let Some((t0, h0)) = self.started else { return };
        if self.last_report.is_some_and(|t| t.elapsed() < Duration::from_secs(3)) {
            return;
        }
        self.last_report = Some(Instant::now());
        let rate = height.saturating_sub(h0) as f64 / t0.elapsed().as_secs_f64().max(1e-3);
        let target = self.target.max(height);
        let eta = if rate > 0.0 { target.saturating_sub(height) as f64 / rate } else { f64::INFINITY };
        tracing::info!(target: "p2p::sync", height, target, blocks_per_s = format!("{rate:.0}"), eta_s = format!("{eta:.0}"), "syncing");
    }
    /// The sync is over: one summary line.
    pub(crate) fn finish(&mut self, height: u64) {
        if let Some((t0, h0)) = self.started.take() {
            let secs = t0.elapsed().as_secs_f64();
            let blocks = height.saturating_sub(h0);
            if blocks == 0 {
                // Nothing came of it (a peer's claim, or a race with another source).
                tracing::debug!(target: "p2p::sync", height, "header request brought nothing new");
                return;
            }
            tracing::info!(target: "p2p::sync", height, blocks, secs = format!("{secs:.1}"), blocks_per_s = format!("{:.0}", blocks as f64 / secs.max(1e-3)), "sync finished");
        }
    }
}

/// The import task: one per node.
pub(crate) async fn run(inner: Arc<Inner>) {
    let mut checking: VecDeque<Checking> = VecDeque::new();
    loop {
        while checking.len() < PIPELINE {
            let batch = inner.download().take_ready(RUN, RUN_BYTES);
            if batch.is_empty() {
                break;
            }
            // Room in the window: ask for more while this run is checked.
            dispatch(&inner);
            let chain = inner.chain.clone();
            checking.push_back(tokio::spawn(async move {
                let (blocks, sources): (Vec<Block>, Sources) = batch.into_iter().map(|r| (r.block, (r.served_by, r.listed_by))).unzip();
                (sources, chain.check_blocks(blocks).await)
            }));
        }
        let Some(front) = checking.pop_front() else {
            tokio::select! {
                _ = inner.cancel.cancelled() => return,
                _ = inner.import_ready.notified() => continue,
            }
        };
        let (sources, checked) = tokio::select! {
            _ = inner.cancel.cancelled() => return,
            r = front => match r {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(target: "p2p::sync", "block check task failed: {e}");
                    abort(&inner, &mut checking);
                    continue;
                }
            },
        };
        if !commit(&inner, sources, checked).await {
            abort(&inner, &mut checking);
        }
        let height = inner.chain.tip().height;
        let done = !inner.download().is_active();
        let mut progress = inner.sync_progress();
        if done && checking.is_empty() {
            progress.finish(height);
        } else {
            progress.report(height);
        }
        drop(progress);
        dispatch(&inner);
    }
}

/// Whom a block that broke a rule at `stage` condemns. A body failing its stateless checks
/// condemns its server: an honest node stores no such block, and the body's hash matched the
/// header it was asked for. A block failing a rule that needs its parent or the state
/// condemns the peer whose headers listed it: those blocks are on its best chain, which it
/// applied, while an honest server may hold them on a side branch (stored unapplied).
enum Stage {
    Check,
    Connect,
}

/// Commits the valid prefix of a checked run; returns false if the run broke (an invalid
/// block, whose source is banned, or a store failure), so the schedule must start over.
async fn commit(inner: &Inner, sources: Sources, checked: Vec<CheckResult>) -> bool {
    let mut good = Vec::with_capacity(checked.len());
    let mut bad = None;
    for (r, src) in checked.into_iter().zip(&sources) {
        match r {
            Ok(c) => good.push((c, *src)),
            Err(failed) => {
                let (hash, e) = *failed;
                bad = Some((hash, e, *src, Stage::Check));
                break;
            }
        }
    }
    let hashes: Vec<Hash> = good.iter().map(|(c, _)| c.hash()).collect();
    {
        let mut s = inner.block_sources.lock().unwrap_or_else(|e| e.into_inner());
        for (c, (served_by, _)) in &good {
            s.insert(c.hash(), *served_by);
        }
    }
    let srcs: Sources = good.iter().map(|(_, s)| *s).collect();
    let results = if good.is_empty() { Vec::new() } else { inner.chain.submit_checked(good.into_iter().map(|(c, _)| c).collect()).await };
    let mut connected = Vec::new();
    for ((r, hash), src) in results.into_iter().zip(&hashes).zip(&srcs) {
        match r {
            Ok(Submitted::Connected | Submitted::SideChain) => connected.push(*hash),
            Ok(Submitted::AlreadyKnown) => inner.metrics.duplicate_block(),
            Err(e) => {
                bad = Some((*hash, e, *src, Stage::Connect));
                break;
            }
        }
    }
    release_orphans(inner, connected).await;
    let Some((hash, e, (served_by, listed_by), stage)) = bad else { return true };
    let culprit = match stage {
        Stage::Check => served_by,
        Stage::Connect => listed_by,
    };
    if e.is_invalid() && !matches!(e, BlockError::TimestampInFuture { .. }) {
        tracing::warn!(target: "p2p::sync", peer = %culprit, %hash, code = e.code(), "peer sent an invalid block: {e}");
        inner.penalize(culprit, 100, "invalid_block");
        let inbox = inner.lock().peers.get(&culprit).map(|p| p.inbox.clone());
        if let Some(inbox) = inbox {
            let _ = inbox.try_send(PeerCmd::Disconnect("sent an invalid block"));
        }
    } else {
        tracing::info!(target: "p2p::sync", %hash, "sync run stopped: {e}");
    }
    false
}

/// Drops the runs being checked and the schedule (after a broken run): the next `Status`
/// from a peer with more work starts over from our tip.
fn abort(inner: &Inner, checking: &mut VecDeque<Checking>) {
    for c in checking.drain(..) {
        c.abort();
    }
    inner.download().reset();
}

/// Submits the orphans waiting for `parents` (and theirs, in turn).
pub(crate) async fn release_orphans(inner: &Inner, parents: Vec<Hash>) {
    let mut work = parents;
    while let Some(parent) = work.pop() {
        if inner.orphans().is_empty() {
            return;
        }
        let kids = inner.orphans().take_children(&parent);
        for (block, peer) in kids {
            let hash = block.hash();
            inner.block_sources.lock().unwrap_or_else(|e| e.into_inner()).insert(hash, peer);
            match inner.chain.submit_block(block).await {
                Ok(Submitted::Connected | Submitted::SideChain) => work.push(hash),
                Ok(Submitted::AlreadyKnown) => {}
                Err(e) if e.is_invalid() => {
                    tracing::warn!(target: "p2p::sync", %peer, %hash, code = e.code(), "orphan block was invalid: {e}");
                    inner.penalize(peer, 100, "invalid_block");
                }
                Err(e) => tracing::debug!(target: "p2p::sync", %hash, "orphan not taken: {e}"),
            }
        }
    }
}
