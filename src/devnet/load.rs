//! The transaction load (`--tx-rate R`, up to [`super::MAX_TX_RATE`]): transfers of 1 at R a
//! second, each to a fresh address (so the account state grows as on a real chain), submitted
//! in batches to one node's chain service and spread by relay.
//!
//! The mempool holds at most 256 pending transactions per sender, so a high rate needs many
//! senders: the load first funds enough sender keys (derived from the chain id, so a kept
//! `--dir` reuses them) from the dev accounts, and starts once a block has confirmed them.
//! Every wake ([`TICK`]) it signs what is due on all cores, then submits it to the node in
//! batches of at most [`MAX_BATCH`]; the next wake waits for that to finish. Nothing is
//! queued: when the node (or the chain's block size) cannot keep up, the accepted rate the
//! status shows falls below the rate asked, and refused transfers are counted, not retried.
//!
//! Nonces are tracked here, per sender. A sender refused as full (`too_many_pending`,
//! `mempool_full`) rests until the next block; any other refusal (a reorg, a restart) makes it
//! re-read its next nonce from the node.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cairn_chain::keys::dev_keypair;
use cairn_chain::{Address, ChainSpec, Hash, Keypair, MempoolLimits, Transaction, TxError};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::chain_service::{ChainHandle, ServiceError};

/// How often the generator wakes: it signs and submits what is due since the last wake, so
/// the rate holds without a timer per transaction.
const TICK: Duration = Duration::from_millis(100);
/// Most transactions due at one wake, in ticks' worth: a slow wake catches up this much and
/// drops the rest (the achieved rate shows it) rather than building a backlog.
const MAX_CATCH_UP_TICKS: u64 = 2;
/// Most transactions in one `submit_txs` call (as `POST /txs` takes in one array).
const MAX_BATCH: usize = 10_000;
/// Fee of every load transfer (the devnet's minimum fee is 0; 1 keeps fee ordering honest).
const FEE: u64 = 1;
/// Fewest senders, whatever the rate.
const MIN_SENDERS: usize = 16;
/// Most senders: funding them takes one transaction each from the dev accounts.
const MAX_SENDERS: usize = 4096;
/// A sender with less than this is (re)funded.
const LOW_BALANCE: u64 = 1_000_000;

/// What the load has done, readable while it runs.
#[derive(Debug, Default)]
pub struct LoadCounters {
    /// Transfers accepted by the entry node.
    pub submitted: AtomicU64,
    /// Transfers refused because a sender or the mempool was full (not retried).
    pub deferred: AtomicU64,
    /// Transfers refused for another reason (the sender re-reads its nonce).
    pub refused: AtomicU64,
    /// Senders funded and sending.
    pub funded: AtomicU64,
    /// Senders in all.
    pub senders: AtomicU64,
}

/// One sender: its key and next nonce, when known.
struct Sender {
    key: Arc<Keypair>,
    nonce: Option<u64>,
    funded: bool,
}

/// The generator's memory, kept while the workers are re-planned.
pub struct LoadState {
    /// The dev accounts, which fund the senders.
    funders: Vec<Arc<Keypair>>,
    senders: Vec<Sender>,
    /// What each sender is funded with.
    fund_amount: u64,
    /// The next sender, round robin.
    next: usize,
    /// Recipients are `BLAKE3(salt | counter)`: fresh every time, also across runs.
    salt: [u8; 16],
    counter: u64,
    /// Shared with the status display.
    pub counters: Arc<LoadCounters>,
}

/// How many senders `rate` needs on `spec`: each holds at most `max_per_sender` pending
/// transactions, and what a sender sends waits about a block time (twice that, for margin)
/// before a block confirms it.
pub fn senders_for(rate: u32, spec: &ChainSpec) -> usize {
    let per_sender = MempoolLimits::default().max_per_sender as u64;
    let pending = u64::from(rate).saturating_mul(spec.block_time_ms).saturating_mul(2) / 1000;
    (pending.div_ceil(per_sender) as usize).clamp(MIN_SENDERS, MAX_SENDERS)
}

impl LoadState {
    /// A generator for `rate` transfers a second, funded by the spec's dev accounts; `None`
    /// if the spec has none.
    pub fn new(spec: &ChainSpec, rate: u32) -> Option<LoadState> {
        let dev = spec.dev_accounts.as_ref()?;
        let funders: Vec<Arc<Keypair>> = (0..).map_while(|i| spec.dev_key(i)).map(Arc::new).collect();
        if funders.is_empty() {
            return None;
        }
        let n = senders_for(rate, spec);
        let seed = format!("cairn devnet load senders/{}", spec.chain_id);
        let senders = (0..n as u32).map(|i| Sender { key: Arc::new(dev_keypair(&seed, i)), nonce: None, funded: false }).collect();
        // Half of each dev account's balance, over the senders it funds.
        let fund_amount = (dev.balance / 2 / n.div_ceil(funders.len()) as u64).max(LOW_BALANCE);
        let counters = Arc::new(LoadCounters::default());
        counters.senders.store(n as u64, Ordering::Relaxed);
        let mut salt = [0u8; 16];
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        salt.copy_from_slice(&now.to_le_bytes());
        Some(LoadState { funders, senders, fund_amount, next: 0, salt, counter: 0, counters })
    }

    /// Funds every sender that has too little, then waits until a block has confirmed the
    /// funding. `Ok(false)` when cancelled first.
    async fn fund(&mut self, chain: &ChainHandle, cancel: &CancellationToken) -> Result<bool, ServiceError> {
        let mut tip = chain.watch_tip();
        let mut jobs = Vec::new();
        let mut funder_nonces: Vec<Option<u64>> = vec![None; self.funders.len()];
        for i in 0..self.senders.len() {
            if self.senders[i].funded {
                continue;
            }
            let info = chain.account(self.senders[i].key.address()).await?;
            if info.account.balance >= LOW_BALANCE {
                // Funded already (a kept --dir).
                continue;
            }
            let f = i % self.funders.len();
            let nonce = match funder_nonces[f] {
                Some(n) => n,
                None => chain.account(self.funders[f].address()).await?.next_nonce,
            };
            funder_nonces[f] = Some(nonce + 1);
            jobs.push(Job { key: self.funders[f].clone(), to: Some(self.senders[i].key.address()), amount: self.fund_amount, nonce });
        }
        if !jobs.is_empty() {
            let genesis = chain.genesis();
            let txs = tokio::task::spawn_blocking(move || sign_all(jobs, genesis, [0; 16], 0)).await.map_err(|_| ServiceError::Stopped)?;
            for chunk in txs.chunks(MAX_BATCH) {
                for r in chain.submit_txs(chunk.to_vec()).await? {
                    if let Err(e) = r {
                        tracing::warn!(target: "devnet::load", "funding a load sender refused: {e}");
                    }
                }
            }
        }
        loop {
            let mut funded = 0;
            for s in &mut self.senders {
                if !s.funded {
                    let info = chain.account(s.key.address()).await?;
                    if info.account.balance >= LOW_BALANCE {
                        s.funded = true;
                        s.nonce = Some(info.next_nonce);
                    }
                }
                funded += u64::from(s.funded);
            }
            self.counters.funded.store(funded, Ordering::Relaxed);
            if funded == self.senders.len() as u64 {
                return Ok(true);
            }
            // Wait for the next block.
            tokio::select! {
                biased;
                _ = cancel.cancelled() => return Ok(false),
                r = tip.changed() => if r.is_err() { return Err(ServiceError::Stopped) },
            }
        }
    }

    /// The next `n` transfers, round robin over the senders not resting; fewer if none is
    /// ready. Reads the nonce of a sender that does not know it.
    async fn plan(&mut self, chain: &ChainHandle, n: usize, resting: &HashSet<usize>) -> Result<(Vec<Job>, Vec<usize>), ServiceError> {
        let mut jobs = Vec::with_capacity(n);
        let mut who = Vec::with_capacity(n);
        let len = self.senders.len();
        let mut idle = 0;
        while jobs.len() < n && idle < len {
            let i = self.next;
            self.next = (self.next + 1) % len;
            let s = &mut self.senders[i];
            if !s.funded || resting.contains(&i) {
                idle += 1;
                continue;
            }
            idle = 0;
            let nonce = match s.nonce {
                Some(n) => n,
                None => chain.account(s.key.address()).await?.next_nonce,
            };
            s.nonce = Some(nonce + 1);
            jobs.push(Job { key: s.key.clone(), to: None, amount: 1, nonce });
            who.push(i);
        }
        Ok((jobs, who))
    }

    /// Signs and submits `n` transfers; senders refused as full join `resting`. `Err` only
    /// when the node has stopped.
    async fn send(&mut self, chain: &ChainHandle, n: usize, resting: &mut HashSet<usize>) -> Result<(), ServiceError> {
        let (jobs, who) = self.plan(chain, n, resting).await?;
        if jobs.is_empty() {
            self.counters.deferred.fetch_add(n as u64, Ordering::Relaxed);
            return Ok(());
        }
        let nonces: Vec<u64> = jobs.iter().map(|j| j.nonce).collect();
        let (genesis, salt, first) = (chain.genesis(), self.salt, self.counter);
        self.counter += jobs.len() as u64;
        let txs = tokio::task::spawn_blocking(move || sign_all(jobs, genesis, salt, first)).await.map_err(|_| ServiceError::Stopped)?;
        // Senders refused in this round: their later transfers fail as a consequence.
        let mut failed = HashSet::new();
        let mut at = 0;
        for chunk in txs.chunks(MAX_BATCH) {
            let results = chain.submit_txs(chunk.to_vec()).await?;
            for r in results {
                let (i, nonce) = (who[at], nonces[at]);
                at += 1;
                match r {
                    Ok(_) => {
                        self.counters.submitted.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) if failed.contains(&i) => {
                        self.counters.deferred.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(TxError::TooManyPending(_) | TxError::MempoolFull) => {
                        failed.insert(i);
                        resting.insert(i);
                        self.senders[i].nonce = Some(nonce);
                        self.counters.deferred.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        tracing::debug!(target: "devnet::load", sender = i, "transfer refused: {e}");
                        failed.insert(i);
                        self.senders[i].nonce = None;
                        self.counters.refused.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
        Ok(())
    }
}

/// A transfer to sign: `to` or, if `None`, a fresh address.
struct Job {
    key: Arc<Keypair>,
    to: Option<Address>,
    amount: u64,
    nonce: u64,
}

/// The `counter`-th fresh recipient of a run.
fn fresh_address(salt: &[u8; 16], counter: u64) -> Address {
    let mut b = [0u8; 24];
    b[..16].copy_from_slice(salt);
    b[16..].copy_from_slice(&counter.to_le_bytes());
    Address(Hash::digest(&b).0)
}

/// Signs every job, in order, on all cores; fresh recipients are numbered from `first`.
fn sign_all(jobs: Vec<Job>, genesis: Hash, salt: [u8; 16], first: u64) -> Vec<Transaction> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per = jobs.len().div_ceil(threads).max(1);
    let sign = |k: usize, chunk: &[Job]| -> Vec<Transaction> {
        chunk
            .iter()
            .enumerate()
            .map(|(j, job)| {
                let to = job.to.unwrap_or_else(|| fresh_address(&salt, first + (k * per + j) as u64));
                Transaction::signed(&job.key, genesis, to, job.amount, FEE, job.nonce)
            })
            .collect()
    };
    if threads == 1 || jobs.len() < 64 {
        return sign(0, &jobs);
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = jobs.chunks(per).enumerate().map(|(k, chunk)| s.spawn(move || sign(k, chunk))).collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect()
    })
}

/// Funds the senders, then submits `rate` transfers a second to `chain` until cancelled or
/// the node stops; returns the state for the next run.
pub async fn run(chain: ChainHandle, rate: u32, mut state: LoadState, cancel: CancellationToken) -> LoadState {
    match state.fund(&chain, &cancel).await {
        Ok(true) => {}
        // Cancelled, or the node stopped under us: the runner re-plans the load elsewhere.
        Ok(false) | Err(_) => return state,
    }
    let mut tip = chain.watch_tip();
    let mut resting = HashSet::new();
    let start = Instant::now();
    let mut due_so_far = 0u64;
    let per_tick = (u64::from(rate) * TICK.as_millis() as u64).div_ceil(1000);
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return state,
            _ = tick.tick() => {}
        }
        if tip.has_changed().unwrap_or(false) {
            tip.mark_unchanged();
            // A block took transactions out of the mempool: the senders may send again.
            resting.clear();
        }
        let due = (start.elapsed().as_secs_f64() * f64::from(rate)) as u64;
        let n = due.saturating_sub(due_so_far).min(per_tick * MAX_CATCH_UP_TICKS);
        due_so_far = due;
        if n == 0 {
            continue;
        }
        if state.send(&chain, n as usize, &mut resting).await.is_err() {
            return state;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enough_senders_for_the_rate() {
        let spec = ChainSpec::devnet();
        assert_eq!(senders_for(1, &spec), MIN_SENDERS);
        // 20,000/s over two 2 s blocks is 80,000 pending, 256 a sender.
        assert_eq!(senders_for(20_000, &spec), 313);
        assert_eq!(senders_for(100_000, &spec), 1563);
    }

    #[test]
    fn signing_in_parallel_keeps_order_and_pays_fresh_addresses() {
        let spec = ChainSpec::devnet();
        let key = Arc::new(spec.dev_key(0).unwrap());
        let jobs: Vec<Job> = (0..1000).map(|n| Job { key: key.clone(), to: None, amount: 1, nonce: n }).collect();
        let txs = sign_all(jobs, spec.genesis().hash(), [7; 16], 0);
        assert_eq!(txs.len(), 1000);
        assert!(txs.iter().enumerate().all(|(i, t)| t.nonce == i as u64 && t.to == fresh_address(&[7; 16], i as u64)));
        let to: HashSet<Address> = txs.iter().map(|t| t.to).collect();
        assert_eq!(to.len(), 1000, "every recipient is fresh");
    }
}
