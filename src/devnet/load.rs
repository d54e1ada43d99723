//! The transaction load (`--tx-rate R`): transfers of 1 between the chain's dev accounts at
//! R a second, submitted to one node's chain service and spread by gossip.
//!
//! Nonces are tracked here, per sender, so a sender can have many transactions pending; a
//! refusal that says our count is off (`nonce_too_low`/`_high`, after a reorg or a restart)
//! makes the sender re-read its next nonce from the node.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cairn_chain::{ChainSpec, Keypair, Transaction, TxError};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::chain_service::{ChainHandle, ServiceError};

/// How often the generator wakes: it submits what is due since the last wake, so the rate
/// holds without a timer per transaction.
const TICK: Duration = Duration::from_millis(100);
/// Fee of every load transfer (the devnet's minimum fee is 0; 1 keeps fee ordering honest).
const FEE: u64 = 1;

/// What the load has done, readable while it runs.
#[derive(Debug, Default)]
pub struct LoadCounters {
    /// Transfers accepted by the entry node.
    pub submitted: AtomicU64,
    /// Transfers put off because the sender or the mempool was full.
    pub deferred: AtomicU64,
}

/// The generator's memory, kept while the workers are re-planned.
pub struct LoadState {
    keys: Vec<Keypair>,
    /// Next nonce per sender index, when known.
    nonces: HashMap<usize, u64>,
    /// The next sender, round robin.
    next: usize,
    /// Shared with the status display.
    pub counters: Arc<LoadCounters>,
}

impl LoadState {
    /// A generator over the spec's dev accounts; `None` if it has fewer than two.
    pub fn new(spec: &ChainSpec) -> Option<LoadState> {
        let keys: Vec<Keypair> = (0..).map_while(|i| spec.dev_key(i)).collect();
        (keys.len() >= 2).then(|| LoadState { keys, nonces: HashMap::new(), next: 0, counters: Arc::default() })
    }

    /// Signs and submits the next transfer. `Err` only when the node has stopped.
    async fn submit_one(&mut self, chain: &ChainHandle) -> Result<(), ServiceError> {
        let i = self.next;
        self.next = (self.next + 1) % self.keys.len();
        let key = &self.keys[i];
        let nonce = match self.nonces.get(&i) {
            Some(n) => *n,
            None => chain.account(key.address()).await?.next_nonce,
        };
        let to = self.keys[(i + 1) % self.keys.len()].address();
        let tx = Transaction::signed(key, chain.genesis(), to, 1, FEE, nonce);
        match chain.submit_tx(tx).await? {
            Ok(_) => {
                self.counters.submitted.fetch_add(1, Ordering::Relaxed);
                self.nonces.insert(i, nonce + 1);
            }
            Err(TxError::TooManyPending(_) | TxError::MempoolFull) => {
                self.counters.deferred.fetch_add(1, Ordering::Relaxed);
                self.nonces.insert(i, nonce);
            }
            Err(e) => {
                tracing::debug!(target: "devnet::load", sender = i, "transfer refused: {e}");
                self.nonces.remove(&i);
            }
        }
        Ok(())
    }
}

/// Submits `rate` transfers a second to `chain` until cancelled or the node stops; returns the
/// state for the next run.
pub async fn run(chain: ChainHandle, rate: u32, mut state: LoadState, cancel: CancellationToken) -> LoadState {
    let start = Instant::now();
    let mut due_so_far = 0u64;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return state,
            _ = tick.tick() => {}
        }
        let due = (start.elapsed().as_secs_f64() * f64::from(rate)) as u64;
        // A slow node does not build a backlog: at most one second's worth per wake.
        let n = due.saturating_sub(due_so_far).min(u64::from(rate));
        due_so_far = due;
        for _ in 0..n {
            if cancel.is_cancelled() {
                return state;
            }
            if state.submit_one(&chain).await.is_err() {
                // The node stopped under us; the runner re-plans the load elsewhere.
                return state;
            }
        }
    }
}
