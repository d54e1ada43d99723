//! The built-in farmer: asks the chain service for a template, searches a nonce off the
//! runtime, submits the block. `--farm` runs it continuously at the chain's block time;
//! `POST /farm/blocks` runs it for a count.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cairn_chain::{Address, BlockError, Hash};
use tokio_util::sync::CancellationToken;

use crate::chain_service::{Accepted, ChainHandle, Quick, ServiceError, now_ms};

/// Nonces tried on the chain thread before a search on threads of its own: ~0.1 µs each, so
/// the chain thread waits at most ~30 µs; a target of one hash in 16 (the devnet's) is missed
/// by all of them once in ~10^7 blocks.
const QUICK_NONCES: u64 = 256;

/// Why farming stopped.
#[derive(Debug, thiserror::Error)]
pub enum FarmError {
    /// The chain service is gone.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// The chain refused a block this node made (a bug, or the clock moved backwards).
    #[error("own block refused: {0}")]
    Refused(#[from] BlockError),
    /// Farming was cancelled.
    #[error("cancelled")]
    Cancelled,
}

/// Sets the search's stop flag and ends its watcher when dropped.
struct StopOnDrop(Arc<AtomicBool>, tokio::task::JoinHandle<()>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
        self.1.abort();
    }
}

/// Farms one block on the current tip: `Ok(Some(hash))` if it became the tip, `Ok(None)` if
/// the tip moved first (the caller tries again).
pub async fn farm_one(chain: &ChainHandle, farmer: Address, threads: usize, cancel: &CancellationToken) -> Result<Option<Hash>, FarmError> {
    // An easy target (a devnet's) is met within a few nonces: the chain thread tries them
    // as it builds the template and commits the block in the same visit, without the watcher
    // task, the blocking pool and the search threads that a hard one needs.
    let template = match chain.farm_quick(farmer, |h| super::miner::try_nonces(h, QUICK_NONCES)).await? {
        Quick::Submitted { hash, result } => return Ok(became_tip(hash, result?)),
        Quick::Template(t) => t,
    };
    let stop = Arc::new(AtomicBool::new(false));
    // Stop the search when the tip moves (our work would be stale) or on cancel.
    let mut tip = chain.watch_tip();
    tip.mark_unchanged();
    let watcher = {
        let stop = stop.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = tip.changed() => {}
                _ = cancel.cancelled() => {}
            }
            stop.store(true, Ordering::Relaxed);
        })
    };
    // If this future is dropped (an RPC client went away), the search must stop too.
    let _guard = StopOnDrop(stop.clone(), watcher);
    let header = template.header.clone();
    let search_stop = stop.clone();
    let mined = tokio::task::spawn_blocking(move || super::miner::mine(&header, threads, &search_stop)).await;
    if cancel.is_cancelled() {
        return Err(FarmError::Cancelled);
    }
    let Ok(Some(header)) = mined else { return Ok(None) };
    let block = cairn_chain::Block { header, transactions: template.transactions };
    let hash = block.hash();
    Ok(became_tip(hash, chain.submit_block(block).await??))
}

/// A farmed block's hash if it became the tip.
fn became_tip(hash: Hash, accepted: Accepted) -> Option<Hash> {
    match accepted {
        Accepted::Connected => Some(hash),
        Accepted::SideChain | Accepted::AlreadyKnown => None,
    }
}

/// Farms `count` blocks onto the best chain as fast as possible; returns their hashes.
pub async fn farm_blocks(chain: &ChainHandle, farmer: Address, count: u64, threads: usize, cancel: &CancellationToken) -> Result<Vec<Hash>, FarmError> {
    let mut out = Vec::with_capacity(count.min(1024) as usize);
    while (out.len() as u64) < count {
        if let Some(h) = farm_one(chain, farmer, threads, cancel).await? {
            out.push(h);
        }
    }
    Ok(out)
}

/// Farms forever at the chain's block time: waits until a block is due (the tip's timestamp
/// plus the block time), then farms one. Stops on cancel.
pub async fn run(chain: ChainHandle, farmer: Address, threads: usize, cancel: CancellationToken) {
    let block_time = chain.spec().block_time_ms;
    tracing::info!(target: "farm", %farmer, block_time_ms = block_time, "farming");
    let mut tip = chain.watch_tip();
    loop {
        let due = tip.borrow_and_update().timestamp.saturating_add(block_time);
        let wait = Duration::from_millis(due.saturating_sub(now_ms()));
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tip.changed() => continue,
            _ = tokio::time::sleep(wait) => {}
        }
        match farm_one(&chain, farmer, threads, &cancel).await {
            Ok(Some(hash)) => tracing::debug!(target: "farm", %hash, "farmed block"),
            Ok(None) => {}
            Err(FarmError::Cancelled) | Err(FarmError::Service(ServiceError::Stopped)) => return,
            Err(e) => {
                tracing::error!(target: "farm", "farming failed: {e}");
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(block_time)) => {}
                }
            }
        }
    }
}
