//! The import pipeline of a catch-up sync, owned by the sync task: takes downloaded blocks in
//! chain order, checks them in parallel off the async runtime (proof, Merkle root, batched
//! signatures; the next runs are checked while one commits), commits them in runs on the
//! chain thread, and says whom a broken run blames. Also the progress lines (height/target,
//! blocks/s, ETA).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_chain::{Block, BlockError, CheckResult, Hash};
use tokio::task::JoinHandle;

use crate::config::MAX_BLOCKS_PER_REQUEST;
use crate::ctx::Ctx;
use crate::identity::NodeId;
use crate::ports::Submitted;
use crate::sync::download::Download;

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
    pub(crate) fn report(&mut self, height: u64) {
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

/// The pipeline: runs being checked, and the one being committed.
#[derive(Default)]
pub(crate) struct Import {
    checking: VecDeque<Checking>,
    committing: Option<JoinHandle<Committed>>,
}

/// What the pipeline produced.
pub(crate) enum Event {
    /// A run's checks finished (the next step is to commit it).
    Checked(Result<(Sources, Vec<CheckResult>), tokio::task::JoinError>),
    /// A run was committed (or broke).
    Committed(Box<Committed>),
}

/// A committed run.
pub(crate) struct Committed {
    /// Blocks stored (best or side chain).
    pub connected: Vec<Hash>,
    /// Who served each stored block.
    pub sources: Vec<(Hash, NodeId)>,
    /// Blocks we already had.
    pub duplicates: usize,
    /// Where the run broke, if it did.
    pub failure: Option<Failure>,
}

/// Where a run broke.
pub(crate) enum Failure {
    /// A block failed a check: whom it condemns (see [`Failure::blame`]).
    Block { hash: Hash, error: BlockError, served_by: NodeId, listed_by: NodeId, stage: Stage },
    /// Our side failed (a check task died): nobody is blamed.
    Local(String),
}

/// Where a block failed. A body failing its stateless checks condemns its server: an honest
/// node stores no such block, and the body's hash matched the header it was asked for. A
/// block failing a rule that needs its parent or the state condemns the peer whose headers
/// listed it: those blocks are on its best chain, which it applied, while an honest server
/// may hold them on a side branch (stored unapplied).
pub(crate) enum Stage {
    Check,
    Connect,
}

impl Failure {
    /// The peer the failure points at, the block, and the error.
    pub(crate) fn blame(self) -> Option<(NodeId, Hash, BlockError)> {
        match self {
            Failure::Block { hash, error, served_by, listed_by, stage } => {
                Some((if matches!(stage, Stage::Check) { served_by } else { listed_by }, hash, error))
            }
            Failure::Local(e) => {
                tracing::error!(target: "p2p::sync", "block check task failed: {e}");
                None
            }
        }
    }
}

impl Import {
    /// Starts checking arrived blocks, in order, while the pipeline has room.
    pub(crate) fn fill(&mut self, download: &mut Download, ctx: &Arc<Ctx>) {
        while self.checking.len() < PIPELINE {
            let batch = download.take_ready(RUN, RUN_BYTES);
            if batch.is_empty() {
                break;
            }
            let chain = ctx.chain.clone();
            self.checking.push_back(ctx.tasks.spawn(async move {
                let (blocks, sources): (Vec<Block>, Sources) = batch.into_iter().map(|r| (r.block, (r.served_by, r.listed_by))).unzip();
                (sources, chain.check_blocks(blocks).await)
            }));
        }
    }

    /// Whether anything is being checked or committed.
    pub(crate) fn is_busy(&self) -> bool {
        !self.checking.is_empty() || self.committing.is_some()
    }

    /// The next thing the pipeline finishes: the commit in flight, else the oldest check
    /// (a run commits only after the one before it). Cancel-safe: nothing is taken out
    /// before it has finished. Pending forever when idle (guard with [`Import::is_busy`]).
    pub(crate) async fn next(&mut self) -> Event {
        if let Some(c) = self.committing.as_mut() {
            let r = c.await;
            self.committing = None;
            return Event::Committed(Box::new(r.unwrap_or_else(|e| Committed {
                connected: Vec::new(),
                sources: Vec::new(),
                duplicates: 0,
                failure: Some(Failure::Local(e.to_string())),
            })));
        }
        match self.checking.front_mut() {
            Some(c) => {
                let r = c.await;
                self.checking.pop_front();
                Event::Checked(r)
            }
            None => std::future::pending().await,
        }
    }

    /// Commits a checked run on the chain thread (its valid prefix).
    pub(crate) fn commit(&mut self, checked: (Sources, Vec<CheckResult>), ctx: &Arc<Ctx>) {
        let chain = ctx.chain.clone();
        self.committing = Some(ctx.tasks.spawn(commit(chain, checked.0, checked.1)));
    }

    /// Drops the runs being checked (after a broken run, or at shutdown).
    pub(crate) fn abort(&mut self) {
        for c in self.checking.drain(..) {
            c.abort();
        }
    }
}

/// Commits the valid prefix of a checked run.
async fn commit(chain: Arc<dyn crate::ports::ChainInfo>, sources: Sources, checked: Vec<CheckResult>) -> Committed {
    let mut good = Vec::with_capacity(checked.len());
    let mut failure = None;
    for (r, (served_by, listed_by)) in checked.into_iter().zip(&sources) {
        match r {
            Ok(c) => good.push((c, *served_by, *listed_by)),
            Err(failed) => {
                let (hash, error) = *failed;
                failure = Some(Failure::Block { hash, error, served_by: *served_by, listed_by: *listed_by, stage: Stage::Check });
                break;
            }
        }
    }
    let meta: Vec<(Hash, NodeId, NodeId)> = good.iter().map(|(c, s, l)| (c.hash(), *s, *l)).collect();
    let results = if good.is_empty() { Vec::new() } else { chain.submit_checked(good.into_iter().map(|(c, _, _)| c).collect()).await };
    let mut out = Committed { connected: Vec::new(), sources: Vec::new(), duplicates: 0, failure: None };
    for (r, (hash, served_by, listed_by)) in results.into_iter().zip(meta) {
        match r {
            Ok(Submitted::Connected | Submitted::SideChain) => {
                out.connected.push(hash);
                out.sources.push((hash, served_by));
            }
            Ok(Submitted::AlreadyKnown) => out.duplicates += 1,
            Err(error) => {
                out.failure = Some(Failure::Block { hash, error, served_by, listed_by, stage: Stage::Connect });
                break;
            }
        }
    }
    if out.failure.is_none() {
        out.failure = failure;
    }
    out
}
