//! The chain service: the one thread that owns the chain engine and the mempool, and the
//! async handle everything else uses to reach them.
//!
//! # Design
//! Every write (blocks, transactions) goes through a bounded command channel to a dedicated
//! OS thread named `chain`, so RocksDB never runs on the async runtime and writes are
//! serialised without a lock. Reads of immutable data (blocks, the transaction index) run on
//! `spawn_blocking` against a shared `Store` handle. The tip is published on a `watch`
//! channel, so `/status`, farmers and (later) the p2p layer read it without a round trip.

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use cairn_chain::compact::{CompactBlock, Partial};
use cairn_chain::hash::BoundedSet;
use cairn_chain::in_flight::{InFlight, Ticket};
use cairn_chain::store::{StoreBatch, TxLocation};
use cairn_chain::{
    Account, AccountSource, Address, Block, BlockError, Chain, ChainSpec, CheckResult, CheckedBlock, Hash, Header, Mempool, MempoolLimits, Outcome, SigCache,
    Store, StoreError, Transaction, TxError, TxId, Waiting, Work,
};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::events::{CHAIN_EVENTS, ChainEvent};
use crate::metrics::Metrics;

/// Commands queued for the chain thread before senders wait.
const COMMAND_QUEUE: usize = 1024;
/// Commands served in a row while intake waits (see [`Worker::next`]).
const URGENT_RUN: usize = 16;
/// Transaction intake and relay lookups waiting for the chain thread (see [`Worker::next`]);
/// when full, submitters wait (an RPC client's request, a peer's relayed batch).
const INTAKE_QUEUE: usize = 256;

/// Batches of accepted transactions buffered for gossip (one per intake call or block, so a
/// 10,000-transaction array is one entry); a listener lagging further skips ahead.
const TX_EVENTS: usize = 4096;

/// Most transactions in one intake call (`POST /txs` with an array).
pub const MAX_TX_BATCH: usize = 10_000;

/// How often mempool and block writes (made without an fsync each) are made durable: a power
/// loss loses at most this much of accepted transactions and blocks; a killed process loses
/// nothing (the write-ahead log is in the OS already).
const WAL_SYNC_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Transaction IDs remembered as carrying a bad signature: the ID commits to the signature,
/// so the same bytes are refused at once without verifying again.
const BAD_SIGNATURES: usize = 50_000;

/// Signatures verified per batch on one core. Larger batches share more work (one multiscalar
/// multiplication, Pippenger's method past ~190 points, and each sender's key decompressed
/// once however many of its transactions the batch holds): 512 rather than 64 took the 3-node
/// network bench from ~5.9k to ~6.4k confirmed tx/s during the load, and ~10k to ~11.9k
/// accepted (alternate runs). A batch holds ~200 B a signature; one that fails is verified
/// one by one, as before.
const VERIFY_CHUNK: usize = 512;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// The best tip, as published after every commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tip {
    /// Height.
    pub height: u64,
    /// Block hash.
    pub hash: Hash,
    /// Cumulative work.
    pub total_work: Work,
    /// The tip block's timestamp (ms).
    pub timestamp: u64,
}

/// The result of a block submission that did not fail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Accepted {
    /// Now the tip (possibly after a reorg).
    Connected,
    /// Stored on a side branch.
    SideChain,
    /// Already stored.
    AlreadyKnown,
}

/// An account as the RPC shows it.
#[derive(Clone, Copy, Debug)]
pub struct AccountInfo {
    /// Confirmed state.
    pub account: Account,
    /// Nonce for the sender's next new transaction (counts pending ones).
    pub next_nonce: u64,
}

/// Work for a farmer: a header to vary the nonce of, and its transactions.
#[derive(Clone, Debug)]
pub struct Template {
    /// Header with nonce 0.
    pub header: Header,
    /// Transactions it commits to.
    pub transactions: Vec<Transaction>,
}

/// A nonce search run on the chain thread right after it builds a template (see
/// [`ChainHandle::farm_quick`]): it must be short, the chain thread waits for it.
pub type QuickSearch = Box<dyn FnOnce(&Header) -> Option<Header> + Send>;

/// What [`ChainHandle::farm_quick`] did.
#[derive(Debug)]
pub enum Quick {
    /// The search found a nonce and the block was submitted.
    Submitted {
        /// The block's hash.
        hash: Hash,
        /// Its submission's outcome.
        result: Result<Accepted, BlockError>,
    },
    /// The search found none: the template, for a longer search.
    Template(Template),
}

/// A pending transaction and when it entered the mempool (ms; `None` if restored from disk).
pub type Pending = (Transaction, Option<u64>);

/// A best-chain transaction with where it is.
#[derive(Clone, Debug)]
pub struct ConfirmedTx {
    /// Height of its block.
    pub height: u64,
    /// Position in the block.
    pub index: u32,
    /// Its block.
    pub block: Hash,
    /// Its block's timestamp (ms).
    pub timestamp: u64,
    /// The transaction.
    pub tx: Transaction,
}

/// Where a transaction is.
#[derive(Clone, Debug)]
pub enum TxStatus {
    /// In the mempool.
    Pending(Transaction),
    /// In a best-chain block.
    Confirmed {
        /// The transaction.
        tx: Transaction,
        /// Including block.
        block: Hash,
        /// Its height.
        height: u64,
    },
}

/// The chain service stopped or the store failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The chain thread is gone (node shutting down).
    #[error("chain service stopped")]
    Stopped,
    /// Storage failure.
    #[error(transparent)]
    Store(#[from] StoreError),
}

type Reply<T> = oneshot::Sender<T>;

/// A batch back from the cheap checks: its transactions, their IDs (hashed once, on the
/// chain thread, and carried from there to admission), each one's verdict, and the ticket that
/// holds the passed ones in flight until `Admit` hands it back.
struct Prechecked {
    txs: Vec<Transaction>,
    ids: Vec<TxId>,
    verdicts: Vec<Result<(), TxError>>,
    ticket: Ticket,
}

/// Transactions admitted by one call, with their IDs, in order.
type Admitted = (Vec<TxId>, Vec<Transaction>);

/// How long a batch's IDs stay in flight at most (see [`InFlight`]): only a batch whose
/// verification panicked never comes back; a live one takes seconds at worst (the intake
/// queue's backlog under load). Past it, a copy of the same transaction is verified again.
const IN_FLIGHT_TTL_MS: u64 = 60_000;

/// What a commit (one block or a run) did to the best chain.
#[derive(Default)]
struct Moved {
    connected: bool,
    /// Transactions in the last connected block (for the log line).
    txs: usize,
    /// Per connected block: the blocks applied and undone.
    steps: Vec<(Vec<Block>, Vec<Block>)>,
}

enum Command {
    SubmitBlock(Block, Reply<Result<Accepted, BlockError>>),
    SubmitChecked(Vec<CheckedBlock>, Reply<Vec<Result<Accepted, BlockError>>>),
    NoteInvalid(Vec<(Hash, BlockError)>),
    /// The cheap checks of a batch, before signatures are verified elsewhere.
    Precheck(Vec<Transaction>, Reply<Prechecked>),
    /// Transactions (with their IDs) whose signatures were verified (`true`) or found bad
    /// (`false`): admit the good ones (one unsynced write for the batch), and hand back the
    /// batch's ticket. Relayed ones (`true`) whose nonce is past the sender's next wait for
    /// their predecessors ([`Waiting`]).
    Admit(Vec<(Transaction, TxId, bool)>, bool, Ticket, Reply<Vec<Result<TxId, TxError>>>),
    /// Make the unsynced writes durable (sent every [`WAL_SYNC_INTERVAL`]).
    SyncWal,
    Template(Address, Reply<Result<Template, StoreError>>),
    /// A template, a short nonce search on it, and the block's submission if one was found.
    FarmQuick(Address, QuickSearch, Reply<Result<Quick, StoreError>>),
    Account(Address, Reply<Result<AccountInfo, StoreError>>),
    Pending(TxId, Reply<Option<Transaction>>),
    /// Up to N pending transactions, by sender then nonce.
    PendingAll(usize, Reply<Vec<Transaction>>),
    /// How many transactions are pending, and the first N by sender then nonce.
    MempoolView(usize, Reply<(usize, Vec<Pending>)>),
    /// Pending transactions from or to an address.
    PendingFor(Address, usize, Reply<Vec<Pending>>),
    /// IDs of up to N pending transactions past the first S, by sender then nonce
    /// (announced to peers: reconciliation).
    PendingIds(usize, usize, Reply<Vec<TxId>>),
    /// The pending transactions among these IDs (a peer's `get_txs`).
    PendingByIds(Vec<TxId>, Reply<Vec<Transaction>>),
    /// Those of these IDs worth fetching: not pending, not being verified, not waiting for a
    /// predecessor, not known to carry a bad signature, not refused since the last tip.
    Lacking(Vec<TxId>, Reply<Vec<TxId>>),
    /// Rebuilds a compact block from the mempool.
    Rebuild(Box<CompactBlock>, Reply<Partial>),
    Stop(Reply<()>),
}

/// The best tip's block with its hash, as the chain thread last connected it: peers ask for it
/// (as a compact block, or the transactions a compact block lacked) right after it is
/// announced, and it is served from here without a store read. One block (at most the spec's
/// `max_block_bytes`); the next tip replaces it.
pub type TipBlock = Arc<(Hash, Block)>;

/// Cheap-to-clone handle on the chain service.
#[derive(Clone)]
pub struct ChainHandle {
    commands: mpsc::Sender<Command>,
    /// Transaction intake and relay lookups, served when `commands` is empty (see
    /// [`Worker::next`]).
    intake: mpsc::Sender<Command>,
    sigcache: Arc<SigCache>,
    store: Store,
    tip: watch::Receiver<Tip>,
    tip_block: watch::Receiver<Option<TipBlock>>,
    txs: broadcast::Sender<Arc<[Transaction]>>,
    events: broadcast::Sender<ChainEvent>,
    spec: Arc<ChainSpec>,
    genesis: Hash,
    /// Where the address index starts (`None`: not kept); set at start, fixed after.
    address_index_from: Option<u64>,
}

fn tip_of(chain: &Chain) -> Tip {
    let t = chain.tip();
    Tip { height: t.header.height, hash: t.hash, total_work: t.total_work, timestamp: t.header.timestamp }
}

impl ChainHandle {
    /// Opens the store's chain and starts the chain thread. Blocking (opens RocksDB): call
    /// it from `spawn_blocking` or before the runtime starts.
    pub fn start(store: Store, spec: ChainSpec, limits: MempoolLimits, metrics: Arc<Metrics>, address_index: bool) -> Result<ChainHandle, StoreError> {
        let mut chain = Chain::open(store.clone(), spec.clone())?;
        // Blocks are written without an fsync each, like the mempool: the group commit syncs
        // the write-ahead log every `WAL_SYNC_INTERVAL` (and at stop). A killed process loses
        // nothing; a power loss loses at most the last interval's blocks, which the node fetches
        // again from its peers (RocksDB recovers a consistent prefix of the log). Bitcoin Core
        // does not fsync each block either; an fsync a block cost farming a third of its rate.
        chain.set_sync_writes(false);
        chain.set_address_index(address_index)?;
        let address_index_from = chain.address_index_from();
        // Room for every pending transaction twice over (replacements, a block in flight).
        let sigcache = Arc::new(SigCache::new(limits.max_txs.saturating_mul(2).max(10_000)));
        chain.set_sigcache(sigcache.clone());
        let _ = metrics.sigcache.set(sigcache.clone());
        let genesis = chain.genesis_hash();
        let mut mempool = Mempool::new(genesis, limits);
        // Pending transactions persisted before a crash come back, in nonce order per sender.
        // Entries the pool does not take back (confirmed by a block above the floor, or refused
        // now) are deleted: the persisted mempool mirrors the one in memory.
        let mut restored = Vec::new();
        let mut saved = store.mempool_entries(limits.max_txs.saturating_mul(2))?;
        saved.sort_by_key(|(_, tx)| (tx.sender(), tx.nonce));
        let mut dead = store.batch();
        for (seq, tx) in saved {
            let id = tx.id();
            match mempool.insert(tx, &chain) {
                Ok(_) => {
                    chain.pool_mut().restored(id, seq);
                    restored.push(id);
                }
                Err(_) => dead.delete_mempool_tx(seq),
            }
        }
        store.write(dead)?;
        if !restored.is_empty() {
            tracing::info!(target: "chain::mempool", restored = restored.len(), "restored pending transactions");
            // `insert` verified them: a block carrying them does not verify them again.
            sigcache.insert(restored);
        }
        metrics.set_height(chain.tip().header.height);
        metrics.set_mempool(mempool.len());
        let (tip_tx, tip_rx) = watch::channel(tip_of(&chain));
        let (tip_block_tx, tip_block_rx) = watch::channel(None);
        let (cmd_tx, cmd_rx) = mpsc::channel(COMMAND_QUEUE);
        let (intake_tx, intake_rx) = mpsc::channel(INTAKE_QUEUE);
        let (txs, _) = broadcast::channel(TX_EVENTS);
        let (events, _) = broadcast::channel(CHAIN_EVENTS);
        let worker = Worker {
            chain,
            mempool,
            tip: tip_tx,
            tip_block: tip_block_tx,
            txs: txs.clone(),
            events: events.clone(),
            arrivals: HashMap::new(),
            metrics,
            bad_signatures: BoundedSet::new(BAD_SIGNATURES),
            // Half the mempool's size: a few seconds of out-of-order arrivals at any load the
            // mempool can hold.
            waiting: Waiting::new((limits.max_txs / 2).max(1_000)),
            rejected: BoundedSet::new(BAD_SIGNATURES),
            in_flight: InFlight::new(IN_FLIGHT_TTL_MS),
            unsynced: false,
        };
        // The group commit's clock: a tiny thread that asks for a WAL sync every interval and
        // ends with the service (its send fails once the chain thread is gone).
        let ticker = cmd_tx.clone();
        std::thread::Builder::new()
            .name("chain-wal".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(WAL_SYNC_INTERVAL);
                    // Busy (queue full) is fine: the next tick asks again.
                    if let Err(mpsc::error::TrySendError::Closed(_)) = ticker.try_send(Command::SyncWal) {
                        return;
                    }
                }
            })
            .map_err(|e| StoreError::Missing(format!("chain-wal thread: {e}")))?;
        // The thread logs in the caller's span (the node's: its name).
        let span = tracing::Span::current();
        std::thread::Builder::new()
            .name("chain".into())
            .spawn(move || span.in_scope(|| worker.run(cmd_rx, intake_rx)))
            .map_err(|e| StoreError::Missing(format!("chain thread: {e}")))?;
        Ok(ChainHandle {
            commands: cmd_tx,
            intake: intake_tx,
            sigcache,
            store,
            tip: tip_rx,
            tip_block: tip_block_rx,
            txs,
            events,
            spec: Arc::new(spec),
            genesis,
            address_index_from,
        })
    }

    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, ServiceError> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(make(tx)).await.map_err(|_| ServiceError::Stopped)?;
        rx.await.map_err(|_| ServiceError::Stopped)
    }

    /// [`ChainHandle::ask`] on the intake queue: behind blocks, farming and reads.
    async fn ask_intake<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, ServiceError> {
        let (tx, rx) = oneshot::channel();
        self.intake.send(make(tx)).await.map_err(|_| ServiceError::Stopped)?;
        rx.await.map_err(|_| ServiceError::Stopped)
    }

    async fn read<T: Send + 'static>(&self, f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static) -> Result<T, ServiceError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&store)).await.map_err(|_| ServiceError::Stopped)?.map_err(ServiceError::from)
    }

    /// Stops the chain thread and waits until it has let go of the store. Other clones of
    /// the handle answer `Stopped` from then on.
    pub async fn stop(self) {
        let _ = self.ask(Command::Stop).await;
    }

    /// The chain spec.
    pub fn spec(&self) -> &ChainSpec {
        &self.spec
    }
    /// Genesis hash.
    pub fn genesis(&self) -> Hash {
        self.genesis
    }
    /// The current tip.
    pub fn tip(&self) -> Tip {
        self.tip.borrow().clone()
    }
    /// A receiver that sees every tip change.
    pub fn watch_tip(&self) -> watch::Receiver<Tip> {
        self.tip.clone()
    }

    /// Transactions as they are accepted into the mempool, in batches.
    pub fn subscribe_txs(&self) -> broadcast::Receiver<Arc<[Transaction]>> {
        self.txs.subscribe()
    }

    /// The height from which the address index holds every best-chain block, or `None` if
    /// this node keeps none (`address_index = false`).
    pub fn address_index_from(&self) -> Option<u64> {
        self.address_index_from
    }

    /// The best chain's moves: each block joining it, and reorgs (see [`ChainEvent`]).
    pub fn subscribe_events(&self) -> broadcast::Receiver<ChainEvent> {
        self.events.subscribe()
    }

    /// Whether a block is stored.
    pub async fn has_block(&self, hash: Hash) -> Result<bool, ServiceError> {
        self.read(move |s| s.has_block(&hash)).await
    }

    /// Cumulative work of the chain ending at a stored block (any branch).
    pub async fn total_work_of(&self, hash: Hash) -> Result<Option<cairn_chain::Work>, ServiceError> {
        self.read(move |s| Ok(s.header(&hash)?.map(|r| r.total_work))).await
    }

    /// Block locator: the tip, then back 1, 2, 4, 8, … blocks, ending with genesis.
    pub async fn locator(&self) -> Result<Vec<Hash>, ServiceError> {
        let tip = self.tip().height;
        self.read(move |s| {
            let mut out = Vec::new();
            for h in cairn_chain::locator_heights(tip) {
                if let Some(hash) = s.hash_at(h)? {
                    out.push(hash);
                }
            }
            Ok(out)
        })
        .await
    }

    /// Up to `max` best-chain headers after the first `locator` hash that is on our best
    /// chain (after genesis if none is).
    pub async fn headers_after(&self, locator: Vec<Hash>, max: usize) -> Result<Vec<Header>, ServiceError> {
        self.read(move |s| {
            let mut start = 1;
            for hash in &locator {
                if let Some(rec) = s.header(hash)?
                    && s.hash_at(rec.header.height)? == Some(*hash)
                {
                    start = rec.header.height + 1;
                    break;
                }
            }
            let mut out = Vec::new();
            for h in start..start.saturating_add(max as u64) {
                let Some(hash) = s.hash_at(h)? else { break };
                match s.header(&hash)? {
                    Some(rec) => out.push(rec.header),
                    None => break,
                }
            }
            Ok(out)
        })
        .await
    }

    /// Validates and stores a block; moves the tip if it wins.
    pub async fn submit_block(&self, block: Block) -> Result<Result<Accepted, BlockError>, ServiceError> {
        self.ask(|r| Command::SubmitBlock(block, r)).await
    }
    /// Runs the stateless checks (proof, Merkle root, batched signatures) of `blocks` in
    /// parallel on the blocking pool, one chunk per core, off the async runtime and the chain
    /// thread. Results are in input order; failures are also reported to the chain (metrics,
    /// invalid cache).
    pub async fn check_blocks(&self, blocks: Vec<Block>) -> Vec<CheckResult> {
        let cores = cores();
        let per = blocks.len().div_ceil(cores).max(1);
        let mut chunks = Vec::new();
        let mut rest = blocks.into_iter().peekable();
        while rest.peek().is_some() {
            let chunk: Vec<Block> = rest.by_ref().take(per).collect();
            let (spec, genesis, cache) = (self.spec.clone(), self.genesis, self.sigcache.clone());
            chunks.push(tokio::task::spawn_blocking(move || {
                // Signatures verified in batches across the chunk's blocks.
                cairn_chain::check_blocks(&spec, &genesis, chunk, Some(&cache))
            }));
        }
        let mut out = Vec::new();
        for c in chunks {
            match c.await {
                Ok(results) => out.extend(results),
                // A panicking check is a bug; its blocks count as unchecked storage failures.
                Err(e) => out.push(Err(Box::new((Hash::ZERO, BlockError::Store(format!("check task: {e}")))))),
            }
        }
        let failed: Vec<(Hash, BlockError)> = out.iter().filter_map(|r| r.as_ref().err().filter(|f| f.1.is_invalid()).map(|f| (**f).clone())).collect();
        if !failed.is_empty() {
            let _ = self.commands.send(Command::NoteInvalid(failed)).await;
        }
        out
    }

    /// Stores a run of checked blocks in order, with one fsync for the whole run, and
    /// publishes the tip once at the end. Stops at the first failure (the rest are not
    /// tried); the results cover the blocks tried.
    pub async fn submit_checked(&self, blocks: Vec<CheckedBlock>) -> Result<Vec<Result<Accepted, BlockError>>, ServiceError> {
        self.ask(|r| Command::SubmitChecked(blocks, r)).await
    }

    /// Validates a transaction and adds it to the mempool.
    pub async fn submit_tx(&self, tx: Transaction) -> Result<Result<TxId, TxError>, ServiceError> {
        let mut r = self.submit_txs(vec![tx]).await?;
        Ok(r.pop().unwrap_or(Err(TxError::Store("no result".into()))))
    }

    /// Validates transactions into the mempool; results in input order. The chain thread runs
    /// the cheap checks first (so junk costs no signature), the signatures are verified in
    /// parallel batches on the blocking pool (skipping ones already cached), and the chain
    /// thread then only applies: the exact nonce sequence and balance, and one write for the
    /// batch without an fsync (made durable within [`WAL_SYNC_INTERVAL`]).
    pub async fn submit_txs(&self, txs: Vec<Transaction>) -> Result<Vec<Result<TxId, TxError>>, ServiceError> {
        self.submit(txs, false).await
    }

    /// As [`ChainHandle::submit_txs`], for transactions relayed by peers: one whose nonce is
    /// past its sender's next (its predecessor comes from another peer, or in a block) waits
    /// for it instead of being dropped, and is answered `nonce_too_high` meanwhile.
    pub async fn submit_relayed(&self, txs: Vec<Transaction>) -> Result<Vec<Result<TxId, TxError>>, ServiceError> {
        self.submit(txs, true).await
    }

    async fn submit(&self, txs: Vec<Transaction>, relayed: bool) -> Result<Vec<Result<TxId, TxError>>, ServiceError> {
        if txs.is_empty() {
            return Ok(Vec::new());
        }
        // Its own task: once the cheap checks have put a batch in flight, it runs to admission
        // (which hands its ticket back) even if the caller goes away meanwhile (an RPC client
        // disconnects, a peer's task ends).
        let this = self.clone();
        tokio::spawn(async move { this.submit_batch(txs, relayed).await }).await.map_err(|_| ServiceError::Stopped)?
    }

    async fn submit_batch(&self, txs: Vec<Transaction>, relayed: bool) -> Result<Vec<Result<TxId, TxError>>, ServiceError> {
        let Prechecked { txs, ids, verdicts, ticket } = self.ask_intake(|r| Command::Precheck(txs, r)).await?;
        let passed: Vec<usize> = (0..txs.len()).filter(|i| verdicts[*i].is_ok()).collect();
        let mut out: Vec<Result<TxId, TxError>> = verdicts.into_iter().zip(&ids).map(|(r, id)| r.map(|()| *id)).collect();
        if passed.is_empty() {
            return Ok(out);
        }
        let todo: Vec<(Transaction, TxId)> = txs.into_iter().zip(ids).zip(&out).filter(|(_, r)| r.is_ok()).map(|(pair, _)| pair).collect();
        let cache = self.sigcache.clone();
        let (todo, ok) = tokio::task::spawn_blocking(move || {
            let ok = verify_signatures(&todo, &cache);
            (todo, ok)
        })
        .await
        .map_err(|_| ServiceError::Stopped)?;
        let batch = todo.into_iter().zip(ok).map(|((tx, id), ok)| (tx, id, ok)).collect();
        let admitted = self.ask_intake(|r| Command::Admit(batch, relayed, ticket, r)).await?;
        for (i, r) in passed.into_iter().zip(admitted) {
            out[i] = r;
        }
        Ok(out)
    }
    /// A block template paying `farmer`.
    pub async fn template(&self, farmer: Address) -> Result<Template, ServiceError> {
        Ok(self.ask(|r| Command::Template(farmer, r)).await??)
    }
    /// A template paying `farmer`, `search` run on its header, and the block submitted (fully
    /// validated, as any) if it found a nonce: all in one visit to the chain thread, so an
    /// easy target costs one round trip and no thread. Otherwise answers the template.
    pub async fn farm_quick(&self, farmer: Address, search: impl FnOnce(&Header) -> Option<Header> + Send + 'static) -> Result<Quick, ServiceError> {
        Ok(self.ask(|r| Command::FarmQuick(farmer, Box::new(search), r)).await??)
    }
    /// An account with its next nonce.
    pub async fn account(&self, address: Address) -> Result<AccountInfo, ServiceError> {
        Ok(self.ask(|r| Command::Account(address, r)).await??)
    }

    /// The tip's block, if it is `hash` and the chain thread connected it (see [`TipBlock`]).
    fn tip_block(&self, hash: &Hash) -> Option<TipBlock> {
        self.tip_block.borrow().as_ref().filter(|b| b.0 == *hash).cloned()
    }

    /// A block by hash (any branch).
    pub async fn block(&self, hash: Hash) -> Result<Option<Block>, ServiceError> {
        if let Some(b) = self.tip_block(&hash) {
            // A copy of up to `max_block_bytes`: off the async runtime, as a store read is.
            return tokio::task::spawn_blocking(move || Some(b.1.clone())).await.map_err(|_| ServiceError::Stopped);
        }
        self.read(move |s| s.block(&hash)).await
    }
    /// The best-chain block at a height.
    pub async fn block_at(&self, height: u64) -> Result<Option<Block>, ServiceError> {
        self.read(move |s| match s.hash_at(height)? {
            Some(h) => s.block(&h),
            None => Ok(None),
        })
        .await
    }
    /// Up to `limit` best-chain blocks from `from` upward, stopping early (after at least
    /// one block) once they hold `max_txs` transactions, so one answer stays bounded.
    pub async fn blocks_from(&self, from: u64, limit: u64, max_txs: usize) -> Result<Vec<Block>, ServiceError> {
        self.read(move |s| {
            let mut out: Vec<Block> = Vec::new();
            let mut txs = 0;
            for h in from..from.saturating_add(limit) {
                if !out.is_empty() && txs >= max_txs {
                    break;
                }
                match s.hash_at(h)? {
                    Some(hash) => {
                        if let Some(b) = s.block(&hash)? {
                            txs += b.transactions.len();
                            out.push(b);
                        }
                    }
                    None => break,
                }
            }
            Ok(out)
        })
        .await
    }
    /// Up to `max` pending transactions, each sender's in nonce order.
    pub async fn pending(&self, max: usize) -> Result<Vec<Transaction>, ServiceError> {
        self.ask(|r| Command::PendingAll(max, r)).await
    }

    /// How many transactions are pending, and the first `max` (by sender, then nonce).
    pub async fn mempool(&self, max: usize) -> Result<(usize, Vec<Pending>), ServiceError> {
        self.ask(|r| Command::MempoolView(max, r)).await
    }
    /// Pending transactions from or to `address` (at most `max`), with when they arrived.
    pub async fn pending_for(&self, address: Address, max: usize) -> Result<Vec<Pending>, ServiceError> {
        self.ask(|r| Command::PendingFor(address, max, r)).await
    }
    /// An address's best-chain transactions, newest first: at most `max` before `before`
    /// (height, position) or from the tip. Read off the chain thread; an entry whose block
    /// left the best chain since the index was read is skipped.
    pub async fn address_txs(&self, address: Address, before: Option<(u64, u32)>, max: usize) -> Result<Vec<ConfirmedTx>, ServiceError> {
        self.read(move |store| {
            let mut out = Vec::new();
            let mut block: Option<(u64, Hash, u64, Vec<Transaction>)> = None;
            for e in store.address_txs(&address, before, max)? {
                if block.as_ref().map(|b| b.0) != Some(e.height) {
                    let Some(hash) = store.hash_at(e.height)? else { continue };
                    let Some(b) = store.block(&hash)? else { continue };
                    block = Some((e.height, hash, b.header.timestamp, b.transactions));
                }
                if let Some((height, hash, timestamp, txs)) = &block
                    && let Some(tx) = txs.get(e.index as usize).filter(|t| t.id() == e.txid)
                {
                    out.push(ConfirmedTx { height: *height, index: e.index, block: *hash, timestamp: *timestamp, tx: tx.clone() });
                }
            }
            Ok(out)
        })
        .await
    }
    /// IDs of up to `max` pending transactions past the first `skip`, by sender then nonce.
    pub async fn pending_ids(&self, skip: usize, max: usize) -> Result<Vec<TxId>, ServiceError> {
        self.ask(|r| Command::PendingIds(skip, max, r)).await
    }
    /// The pending transactions among `ids`, in the order asked.
    pub async fn pending_by_ids(&self, ids: Vec<TxId>) -> Result<Vec<Transaction>, ServiceError> {
        self.ask_intake(|r| Command::PendingByIds(ids, r)).await
    }
    /// Those of `ids` worth fetching from a peer: not pending, not known bad.
    pub async fn lacking(&self, ids: Vec<TxId>) -> Result<Vec<TxId>, ServiceError> {
        self.ask_intake(|r| Command::Lacking(ids, r)).await
    }
    /// A compact block's slots filled from the mempool.
    pub async fn rebuild(&self, compact: CompactBlock) -> Result<Partial, ServiceError> {
        self.ask(|r| Command::Rebuild(Box::new(compact), r)).await
    }
    /// The compact form of a stored block (short IDs computed off the async runtime).
    pub async fn compact_block(&self, hash: Hash, nonce: u64) -> Result<Option<CompactBlock>, ServiceError> {
        if let Some(b) = self.tip_block(&hash) {
            // Hashing every transaction: off the async runtime.
            return tokio::task::spawn_blocking(move || Some(CompactBlock::of(&b.1, nonce))).await.map_err(|_| ServiceError::Stopped);
        }
        self.read(move |s| Ok(s.block(&hash)?.map(|b| CompactBlock::of(&b, nonce)))).await
    }

    /// Where a transaction is, if anywhere.
    pub async fn tx_status(&self, id: TxId) -> Result<Option<TxStatus>, ServiceError> {
        let confirmed = self
            .read(move |s| {
                let Some(TxLocation { block, index }) = s.tx_location(&id)? else { return Ok(None) };
                let b = s.block(&block)?.ok_or_else(|| StoreError::Missing(format!("block {block}")))?;
                let tx = b.transactions.get(index as usize).cloned().ok_or_else(|| StoreError::Missing(format!("tx {id}")))?;
                Ok(Some(TxStatus::Confirmed { tx, block, height: b.header.height }))
            })
            .await?;
        if confirmed.is_some() {
            return Ok(confirmed);
        }
        Ok(self.ask(|r| Command::Pending(id, r)).await?.map(TxStatus::Pending))
    }
}

/// State owned by the chain thread.
struct Worker {
    chain: Chain,
    mempool: Mempool,
    tip: watch::Sender<Tip>,
    /// The tip's block, set before the tip is published (see [`TipBlock`]).
    tip_block: watch::Sender<Option<TipBlock>>,
    txs: broadcast::Sender<Arc<[Transaction]>>,
    /// The best chain's moves, for `GET /events`.
    events: broadcast::Sender<ChainEvent>,
    /// When each pending transaction arrived (ms), for `GET /mempool`. Entries of
    /// transactions that left the pool are dropped once they outnumber the pool (after a
    /// block), so it stays within about twice the pool's bound.
    arrivals: HashMap<TxId, u64>,
    metrics: Arc<Metrics>,
    /// IDs of transactions refused for a bad signature (the recent-rejects filter).
    bad_signatures: BoundedSet,
    /// Relayed transactions waiting for an earlier nonce of their sender.
    waiting: Waiting,
    /// IDs refused since the last tip for a reason a tip can change: not fetched from peers
    /// again before the next tip (Bitcoin Core's recent-rejects filter; at the bound the
    /// oldest is forgotten, and fetched again if announced).
    rejected: BoundedSet,
    /// IDs of the batches between their cheap checks and admission (signatures being
    /// verified): a copy arriving meanwhile is a duplicate. Holds what the intake queue and
    /// the verifiers hold, and no more (tickets expire).
    in_flight: InFlight,
    /// Mempool writes since the last WAL sync.
    unsynced: bool,
}

/// The cores to spread verification over, asked once: `available_parallelism` reads the
/// cgroup files on every call (it showed as 5% of a node's CPU when asked per transaction).
fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
}

/// Verifies the signatures of `txs` (each with its ID) under the chain's rule, in parallel
/// batches (one thread per core, batches of [`VERIFY_CHUNK`]; a failed batch is retried one by
/// one to find the bad ones). Transactions in `cache` are taken as verified, looked up just
/// before each batch (a copy verified meanwhile by another intake batch, or by a block that
/// carried it, is not verified again); those found good go into it at once, whatever their
/// admission then says. Counts what it verifies.
fn verify_signatures(txs: &[(Transaction, TxId)], cache: &SigCache) -> Vec<bool> {
    let mut ok = vec![true; txs.len()];
    if txs.is_empty() {
        return ok;
    }
    let check = |idx: &[usize]| -> Vec<(usize, bool)> {
        let cached = cache.contains_each(idx.iter().map(|i| &txs[*i].1));
        let idx: Vec<usize> = idx.iter().zip(cached).filter(|(_, c)| !c).map(|(i, _)| *i).collect();
        if idx.is_empty() {
            return Vec::new();
        }
        cache.count_verified(idx.len());
        let msgs: Vec<Vec<u8>> = idx.iter().map(|i| txs[*i].0.signing_message()).collect();
        let good: Vec<(usize, bool)> =
            if cairn_chain::signature::verify_batch(idx.iter().zip(&msgs).map(|(i, m)| (&txs[*i].0.from, m.as_slice(), &txs[*i].0.signature))) {
                idx.iter().map(|i| (*i, true)).collect()
            } else {
                idx.iter().zip(&msgs).map(|(i, m)| (*i, cairn_chain::signature::verify(&txs[*i].0.from, m, &txs[*i].0.signature))).collect()
            };
        cache.insert(good.iter().filter(|(_, g)| *g).map(|(i, _)| txs[*i].1));
        good
    };
    let all: Vec<usize> = (0..txs.len()).collect();
    let cores = cores();
    let results: Vec<(usize, bool)> = if all.len() <= VERIFY_CHUNK || cores == 1 {
        all.chunks(VERIFY_CHUNK).flat_map(check).collect()
    } else {
        let per = all.len().div_ceil(cores);
        std::thread::scope(|s| {
            let handles: Vec<_> = all.chunks(per).map(|part| s.spawn(move || part.chunks(VERIFY_CHUNK).flat_map(check).collect::<Vec<_>>())).collect();
            // A panicking verifier is a bug; its transactions count as unverified (bad).
            handles.into_iter().zip(all.chunks(per)).flat_map(|(h, part)| h.join().unwrap_or_else(|_| part.iter().map(|i| (*i, false)).collect())).collect()
        })
    };
    for (i, good) in results {
        ok[i] = good;
    }
    ok
}

impl Worker {
    /// The next command: blocks, farming, reads and control first; transaction intake and
    /// relay lookups (`intake`) when none waits, or once every [`URGENT_RUN`] commands, so a
    /// block is never queued behind seconds of transactions (at most behind the one intake
    /// batch being served) and a stream of reads cannot starve intake. `None` once the main
    /// queue is closed.
    fn next(
        rt: &tokio::runtime::Runtime,
        commands: &mut mpsc::Receiver<Command>,
        intake: &mut mpsc::Receiver<Command>,
        intake_open: &mut bool,
        urgent_run: &mut usize,
    ) -> Option<Command> {
        if *urgent_run < URGENT_RUN {
            match commands.try_recv() {
                Ok(c) => {
                    *urgent_run += 1;
                    return Some(c);
                }
                Err(mpsc::error::TryRecvError::Disconnected) => return None,
                Err(mpsc::error::TryRecvError::Empty) => {}
            }
        }
        *urgent_run = 0;
        if *intake_open {
            match intake.try_recv() {
                Ok(c) => return Some(c),
                Err(mpsc::error::TryRecvError::Disconnected) => *intake_open = false,
                Err(mpsc::error::TryRecvError::Empty) => {}
            }
        }
        rt.block_on(async {
            loop {
                tokio::select! {
                    biased;
                    c = commands.recv() => return c,
                    c = intake.recv(), if *intake_open => match c {
                        Some(c) => return Some(c),
                        None => *intake_open = false,
                    },
                }
            }
        })
    }

    fn run(mut self, mut commands: mpsc::Receiver<Command>, mut intake: mpsc::Receiver<Command>) {
        // Only to wait on two queues at once: no I/O, no timers, no tasks of its own.
        let rt = match tokio::runtime::Builder::new_current_thread().build() {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!(target: "chain::service", "chain thread cannot wait on its queues: {e}");
                return;
            }
        };
        let (mut intake_open, mut urgent_run) = (true, 0);
        while let Some(cmd) = Self::next(&rt, &mut commands, &mut intake, &mut intake_open, &mut urgent_run) {
            match cmd {
                Command::SubmitBlock(block, reply) => {
                    let r = self.submit_block(block);
                    let _ = reply.send(r);
                }
                Command::SubmitChecked(blocks, reply) => {
                    let r = self.submit_run(blocks);
                    let _ = reply.send(r);
                }
                Command::NoteInvalid(list) => {
                    for (hash, e) in list {
                        self.metrics.block_rejected(e.code());
                        tracing::info!(target: "chain::validate", %hash, code = e.code(), "block rejected: {e}");
                        self.chain.note_stateless_failure(hash, &e);
                    }
                }
                Command::Precheck(txs, reply) => {
                    let r = self.precheck(txs);
                    if let Err(r) = reply.send(r) {
                        // Its submitter is gone (it runs in a task of its own: only at shutdown).
                        self.in_flight.release(r.ticket);
                    }
                }
                Command::Admit(txs, relayed, ticket, reply) => {
                    self.in_flight.release(ticket);
                    let r = self.admit(txs, relayed);
                    let _ = reply.send(r);
                }
                Command::SyncWal => self.sync_wal(),
                Command::Template(farmer, reply) => {
                    let r = self.template(farmer);
                    let _ = reply.send(r);
                }
                Command::FarmQuick(farmer, search, reply) => {
                    let r = self.template(farmer).map(|t| match search(&t.header) {
                        Some(header) => {
                            let block = Block { header, transactions: t.transactions };
                            Quick::Submitted { hash: block.hash(), result: self.submit_block(block) }
                        }
                        None => Quick::Template(t),
                    });
                    let _ = reply.send(r);
                }
                Command::Account(a, reply) => {
                    let r = self.chain.account(&a).map(|account| AccountInfo { account, next_nonce: self.mempool.next_nonce(&a, &account) });
                    let _ = reply.send(r);
                }
                Command::Pending(id, reply) => {
                    let _ = reply.send(self.mempool.get(&id).cloned());
                }
                Command::PendingAll(max, reply) => {
                    let _ = reply.send(self.mempool.iter().take(max).cloned().collect());
                }
                Command::MempoolView(max, reply) => {
                    // The `max` highest fees (a heap of `max`, not a sort of the whole pool);
                    // ties by sender then nonce so the answer is stable.
                    let mut top = std::collections::BinaryHeap::with_capacity(max + 1);
                    for tx in self.mempool.iter() {
                        top.push(std::cmp::Reverse((tx.fee, std::cmp::Reverse((tx.sender(), tx.nonce)), tx.id())));
                        if top.len() > max {
                            top.pop();
                        }
                    }
                    let list = top
                        .into_sorted_vec()
                        .into_iter()
                        .filter_map(|std::cmp::Reverse((_, _, id))| Some((self.mempool.get(&id)?.clone(), self.arrivals.get(&id).copied())))
                        .collect();
                    let _ = reply.send((self.mempool.len(), list));
                }
                Command::PendingFor(address, max, reply) => {
                    // Sent: the sender's own run. Received: a scan comparing recipients only
                    // (no hashing of senders' keys), so a busy pool costs microseconds here.
                    let sent = self.mempool.from_sender(&address);
                    let received = self.mempool.iter().filter(|tx| tx.to == address && tx.sender() != address);
                    let list = sent.chain(received).take(max).map(|tx| (tx.clone(), self.arrivals.get(&tx.id()).copied())).collect();
                    let _ = reply.send(list);
                }
                Command::PendingIds(skip, max, reply) => {
                    let _ = reply.send(self.mempool.ids().skip(skip).take(max).copied().collect());
                }
                Command::PendingByIds(ids, reply) => {
                    let _ = reply.send(ids.iter().filter_map(|id| self.mempool.get(id).cloned()).collect());
                }
                Command::Lacking(ids, reply) => {
                    let _ = reply.send(
                        ids.into_iter()
                            .filter(|id| {
                                !self.mempool.contains(id)
                                    && !self.in_flight.contains(id)
                                    && !self.waiting.contains(id)
                                    && !self.bad_signatures.contains(id)
                                    && !self.rejected.contains(id)
                            })
                            .collect(),
                    );
                }
                Command::Rebuild(compact, reply) => {
                    let _ = reply.send(Partial::rebuild(&compact, self.mempool.entries()));
                }
                Command::Stop(reply) => {
                    self.sync_wal();
                    // Memtables to table files, so the next start replays no log.
                    if let Err(e) = self.chain.store().flush() {
                        tracing::warn!(target: "chain::service", "flushing the store at stop: {e}");
                    }
                    // Drop the engine (and its store handle) before confirming.
                    drop(self);
                    tracing::debug!(target: "chain::service", "chain thread stopped");
                    let _ = reply.send(());
                    return;
                }
            }
        }
    }

    fn submit_block(&mut self, block: Block) -> Result<Accepted, BlockError> {
        let (hash, height) = (block.hash(), block.header.height);
        // The commit moves the persisted mempool's floor past the transactions it confirms
        // (see `cairn_chain::pool_log`): no entry is deleted or read.
        let started = std::time::Instant::now();
        let r = self.chain.submit(block, now_ms());
        // Written (if anything was) without an fsync: the group commit makes it durable.
        self.unsynced = true;
        self.metrics.block_imported(started.elapsed().as_secs_f64());
        let mut moved = Moved::default();
        let r = self.record(hash, height, r, &mut moved);
        self.publish(moved);
        r
    }

    /// A run of checked blocks (catch-up sync, or a relayed block): written without an fsync
    /// (the group commit makes it durable), the tip published once.
    fn submit_run(&mut self, blocks: Vec<CheckedBlock>) -> Vec<Result<Accepted, BlockError>> {
        let mut moved = Moved::default();
        let meta: Vec<(Hash, u64)> = blocks.iter().map(|b| (b.hash(), b.block().header.height)).collect();
        let started = std::time::Instant::now();
        // Consecutive blocks on the tip are applied through one overlay and written in one batch.
        let results = self.chain.submit_run(blocks, now_ms());
        self.unsynced = true;
        self.metrics.sync_batch(started.elapsed().as_secs_f64());
        let out: Vec<Result<Accepted, BlockError>> =
            results.into_iter().zip(meta).map(|(r, (hash, height))| self.record(hash, height, r, &mut moved)).collect();
        self.publish(moved);
        out
    }

    /// Logs and counts one block's outcome, and collects what it moved.
    fn record(&mut self, hash: Hash, height: u64, r: Result<Outcome, BlockError>, moved: &mut Moved) -> Result<Accepted, BlockError> {
        match r {
            Err(e) => {
                self.metrics.block_rejected(e.code());
                tracing::info!(target: "chain::validate", %hash, height, code = e.code(), "block rejected: {e}");
                Err(e)
            }
            Ok(Outcome::AlreadyKnown) => Ok(Accepted::AlreadyKnown),
            Ok(Outcome::SideChain) => {
                self.metrics.block_accepted();
                tracing::info!(target: "chain::fork", %hash, height, "stored side-chain block");
                Ok(Accepted::SideChain)
            }
            Ok(Outcome::Connected { applied, undone }) => {
                self.metrics.block_accepted();
                if !undone.is_empty() {
                    tracing::warn!(target: "chain::fork", depth = undone.len(), new_tip = %hash, "reorganised");
                    self.metrics.reorg();
                }
                moved.txs = applied.last().map_or(0, |b| b.transactions.len());
                moved.connected = true;
                // The mempool follows in order: undo then apply, block by block.
                moved.steps.push((applied, undone));
                Ok(Accepted::Connected)
            }
        }
    }

    /// After a commit: publish the tip first (whatever the mempool work does), then bring the
    /// mempool in step.
    fn publish(&mut self, moved: Moved) {
        if !moved.connected {
            return;
        }
        let t = tip_of(&self.chain);
        tracing::info!(target: "chain::store", height = t.height, hash = %t.hash, txs = moved.txs, "new tip");
        self.metrics.set_height(t.height);
        // The block first: whoever sees the new tip may ask for it at once. A copy, as the
        // mempool and the events still read the applied blocks below (~1 ms for 20,000
        // transactions, once a tip).
        let block = moved.steps.last().and_then(|(applied, _)| applied.last()).filter(|b| b.hash() == t.hash);
        self.tip_block.send_replace(block.map(|b| Arc::new((t.hash, b.clone()))));
        self.tip.send_replace(t);
        self.rejected = BoundedSet::new(BAD_SIGNATURES);
        if self.arrivals.len() > 2 * self.mempool.len() + 1024 {
            let pool = &self.mempool;
            self.arrivals.retain(|id, _| pool.contains(id));
        }
        for (applied, undone) in moved.steps {
            if self.events.receiver_count() > 0 {
                for e in ChainEvent::of_move(&applied, &undone) {
                    // No subscriber left is not an error.
                    let _ = self.events.send(e);
                }
            }
            if let Err(e) = self.after_connect(&applied, &undone) {
                tracing::error!(target: "chain::mempool", "mempool update after a new tip failed: {e}");
            }
        }
    }

    /// Keeps the mempool in step with the best chain: included transactions leave it (and
    /// same-sender ones whose nonce was used up leave the disk too), those of blocks that left
    /// the chain come back (the chain already persisted them in the reorg's batch).
    fn after_connect(&mut self, applied: &[Block], undone: &[Block]) -> Result<(), StoreError> {
        let store = self.chain.store().clone();
        let mut stale = store.batch();
        let mut any = false;
        let mut senders = HashSet::new();
        for block in applied {
            // The block's own transactions left the persisted mempool with its batch (the floor);
            // only the same-sender ones whose nonce it used up are deleted here.
            for id in self.mempool.remove_included(&block.transactions) {
                self.chain.pool_mut().delete(&mut stale, &id);
                any = true;
            }
            if !self.waiting.is_empty() {
                senders.extend(block.transactions.iter().map(Transaction::sender));
            }
        }
        // Waiting transactions whose predecessors this block used up are next now.
        let mut promoted = Admitted::default();
        self.promote(senders, &mut stale, &mut promoted);
        any |= !promoted.0.is_empty();
        let mut back = Vec::new();
        for block in undone.iter().rev() {
            for tx in &block.transactions {
                let id = tx.id();
                if store.tx_location(&id)?.is_none() && self.mempool.insert(tx.clone(), &self.chain).is_ok() {
                    back.push(tx.clone());
                } else if !self.mempool.contains(&id) {
                    // The reorg's batch persisted it; the pool refused it (or a block has it).
                    self.chain.pool_mut().delete(&mut stale, &id);
                    any = true;
                }
            }
        }
        // Bounded on disk: long-pending entries move past the dead ones now and then.
        let mempool = &self.mempool;
        let compaction = self.chain.pool().compact(&mut stale, |id| mempool.get(id));
        any |= compaction.is_some();
        if any {
            // Unsynced: a stale record that outlives a power loss is deleted at the next start
            // (it can never become valid again); the next group commit makes this durable.
            store.write_unsynced(stale)?;
            self.unsynced = true;
        }
        if let Some(c) = compaction {
            self.chain.pool_mut().compacted(c);
        }
        self.accepted(promoted.0, promoted.1);
        if !back.is_empty() {
            tracing::info!(target: "chain::mempool", back = back.len(), "returned transactions of reorged-out blocks");
            // Relayed like new transactions, so any farmer can re-include them.
            let _ = self.txs.send(back.into());
        }
        self.metrics.set_mempool(self.mempool.len());
        Ok(())
    }

    /// The cheap checks of a batch: a signature known to be bad, a copy already being
    /// verified ([`InFlight`]: answered as already known), and the mempool's
    /// [`Mempool::precheck`]; a nonce already used is looked up in the transaction index, to
    /// answer "already known" if it is this very transaction that used it. (A transaction
    /// whose nonce is still unused cannot be in the best chain: no index read for it.) Those
    /// that pass are put in flight under the batch's ticket. Failures are counted here.
    fn precheck(&mut self, txs: Vec<Transaction>) -> Prechecked {
        let store = self.chain.store().clone();
        let ids: Vec<TxId> = txs.iter().map(Transaction::id).collect();
        let ticket = self.in_flight.open(now_ms());
        let verdicts = txs
            .iter()
            .zip(&ids)
            .map(|(tx, id)| {
                let r = if self.bad_signatures.contains(id) {
                    Err(TxError::BadSignature)
                } else if self.in_flight.contains(id) {
                    Err(TxError::AlreadyKnown(*id))
                } else {
                    match self.mempool.precheck(tx, id, &self.chain) {
                        Err(TxError::NonceTooLow { .. }) if store.tx_location(id).map_err(TxError::from)?.is_some() => Err(TxError::AlreadyKnown(*id)),
                        r => r,
                    }
                };
                match &r {
                    Ok(()) => {
                        self.in_flight.claim(ticket, *id);
                    }
                    Err(e) => {
                        self.metrics.tx_rejected(e.code());
                        self.remember_rejection(*id, e);
                    }
                }
                r
            })
            .collect();
        Prechecked { txs, ids, verdicts, ticket }
    }

    /// Admits verified transactions: the exact checks against the mempool and state, then one
    /// write for all of them, without an fsync (see [`WAL_SYNC_INTERVAL`]).
    fn admit(&mut self, txs: Vec<(Transaction, TxId, bool)>, relayed: bool) -> Vec<Result<TxId, TxError>> {
        let store = self.chain.store().clone();
        let mut b = store.batch();
        let mut accepted = Admitted::default();
        let mut out = Vec::with_capacity(txs.len());
        let mut senders = HashSet::new();
        for (tx, id, signature_ok) in txs {
            let r = if !signature_ok {
                self.bad_signatures.insert(id);
                Err(TxError::BadSignature)
            } else {
                match self.stage(&tx, id, &mut b, &mut accepted) {
                    Ok(id) => {
                        senders.insert(tx.sender());
                        Ok(id)
                    }
                    Err(e @ TxError::NonceTooHigh { .. }) if relayed => {
                        // Its predecessor is on its way from another peer, or in a block.
                        self.waiting.hold(tx);
                        out.push(Err(e));
                        continue;
                    }
                    Err(e) => Err(e),
                }
            };
            if let Err(e) = &r {
                self.metrics.tx_rejected(e.code());
                self.remember_rejection(id, e);
            }
            out.push(r);
        }
        self.promote(senders, &mut b, &mut accepted);
        if let Err(e) = store.write_unsynced(b) {
            // Not stored: take them out again so memory and disk agree, and say so.
            tracing::error!(target: "chain::store", "cannot persist accepted transactions: {e}");
            let ids = accepted.0;
            // Out of memory and out of the index: the floor may pass whatever the index had.
            for id in self.mempool.remove_ids(&ids) {
                self.chain.pool_mut().forget(&id);
            }
            for r in out.iter_mut() {
                if r.as_ref().is_ok_and(|id| ids.contains(id)) {
                    *r = Err(TxError::Store(e.to_string()));
                }
            }
            self.metrics.set_mempool(self.mempool.len());
            return out;
        }
        self.unsynced |= !accepted.0.is_empty();
        self.accepted(accepted.0, accepted.1);
        self.metrics.set_mempool(self.mempool.len());
        out
    }

    /// Newly in the mempool (and persisted; `ids` are theirs): counted, and handed to relay
    /// as one batch. (Their signatures went into the cache when they were verified.)
    fn accepted(&mut self, ids: Vec<TxId>, txs: Vec<Transaction>) {
        if txs.is_empty() {
            return;
        }
        self.metrics.txs_accepted(txs.len());
        let now = now_ms();
        self.arrivals.extend(ids.into_iter().map(|id| (id, now)));
        // Nobody listening is fine (no p2p yet, or no peers).
        let _ = self.txs.send(txs.into());
    }

    /// Inserts a verified transaction (`id` is its ID) into the mempool and stages its record
    /// (and the removal of any it replaced or evicted) in `b`; on success it joins `accepted`.
    fn stage(&mut self, tx: &Transaction, id: TxId, b: &mut StoreBatch<'_>, accepted: &mut Admitted) -> Result<TxId, TxError> {
        let ins = self.mempool.insert_verified(tx.clone(), id, &self.chain)?;
        let pool = self.chain.pool_mut();
        pool.put(b, ins.id, tx);
        for old in &ins.removed {
            pool.delete(b, old);
        }
        accepted.0.push(id);
        accepted.1.push(tx.clone());
        Ok(ins.id)
    }

    /// Remembers a refusal that only a new tip can change (fee, balance, nonce used, mempool
    /// full), so a peer's re-announcement of the transaction is not fetched again before then.
    fn remember_rejection(&mut self, id: TxId, e: &TxError) {
        if !matches!(e, TxError::AlreadyKnown(_) | TxError::BadSignature | TxError::NonceTooHigh { .. } | TxError::Store(_)) {
            self.rejected.insert(id);
        }
    }

    /// Moves waiting transactions of these senders whose nonce is now next into the mempool,
    /// in order, adding them to the batch `b` and to `accepted`.
    fn promote(&mut self, senders: HashSet<Address>, b: &mut StoreBatch<'_>, accepted: &mut Admitted) {
        if self.waiting.is_empty() {
            return;
        }
        for sender in senders {
            let mut next = match self.chain.account(&sender) {
                Ok(account) => self.mempool.next_nonce(&sender, &account),
                Err(e) => {
                    tracing::warn!(target: "chain::mempool", "reading an account for waiting transactions: {e}");
                    continue;
                }
            };
            while let Some(tx) = self.waiting.take(&sender, next) {
                let id = tx.id();
                if let Err(e) = self.stage(&tx, id, b, accepted) {
                    self.metrics.tx_rejected(e.code());
                    break;
                }
                next += 1;
            }
        }
        self.metrics.set_waiting(self.waiting.len());
    }

    /// The group commit: makes the unsynced writes (mempool and blocks) durable.
    fn sync_wal(&mut self) {
        if !self.unsynced {
            return;
        }
        match self.chain.store().sync_wal() {
            Ok(()) => self.unsynced = false,
            Err(e) => tracing::error!(target: "chain::store", "syncing the write-ahead log failed: {e}"),
        }
    }

    fn template(&mut self, farmer: Address) -> Result<Template, StoreError> {
        let spec = self.chain.spec();
        let room = (spec.max_block_bytes as usize).saturating_sub(Header::ENCODED_LEN + 4) / Transaction::ENCODED_LEN;
        let max = room.min(spec.max_block_txs as usize);
        let (ids, transactions): (Vec<TxId>, Vec<Transaction>) = self.mempool.select_with_ids(max, &self.chain)?.into_iter().unzip();
        let header = self.chain.template_for_ids(farmer, &ids, now_ms())?;
        Ok(Template { header, transactions })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn blocks_and_reads_go_before_intake_which_is_served_at_least_every_run() {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let (urgent_tx, mut urgent) = mpsc::channel(64);
        let (intake_tx, mut intake) = mpsc::channel(64);
        let intake_cmd = || Command::Lacking(Vec::new(), oneshot::channel().0);
        intake_tx.try_send(intake_cmd()).unwrap();
        intake_tx.try_send(intake_cmd()).unwrap();
        for _ in 0..URGENT_RUN + 4 {
            urgent_tx.try_send(Command::SyncWal).unwrap();
        }
        let (mut open, mut run) = (true, 0);
        let mut order = String::new();
        for _ in 0..URGENT_RUN + 6 {
            match Worker::next(&rt, &mut urgent, &mut intake, &mut open, &mut run) {
                Some(Command::SyncWal) => order.push('u'),
                Some(Command::Lacking(..)) => order.push('i'),
                _ => order.push('?'),
            }
        }
        assert_eq!(order, format!("{}i{}i", "u".repeat(URGENT_RUN), "u".repeat(4)));
        // Both queues empty: it waits for either (here the intake).
        intake_tx.try_send(intake_cmd()).unwrap();
        assert!(matches!(Worker::next(&rt, &mut urgent, &mut intake, &mut open, &mut run), Some(Command::Lacking(..))));
        // The main queue closed: the worker stops, whatever intake holds.
        intake_tx.try_send(intake_cmd()).unwrap();
        drop(urgent_tx);
        assert!(Worker::next(&rt, &mut urgent, &mut intake, &mut open, &mut run).is_none());
    }

    use super::*;
    use cairn_chain::Keypair;

    #[test]
    fn parallel_verification_finds_exactly_the_bad_signatures_and_skips_cached_ones() {
        let k = Keypair::generate();
        let mut txs: Vec<Transaction> = (0..300).map(|n| Transaction::signed(&k, Hash::ZERO, Address([1; 32]), 1, 1, n)).collect();
        for i in [0, 77, 150, 299] {
            txs[i].amount += 1; // the signature no longer covers it
        }
        let txs: Vec<(Transaction, TxId)> = txs.into_iter().map(|tx| (tx.clone(), tx.id())).collect();
        let cache = SigCache::new(1000);
        let ok = verify_signatures(&txs, &cache);
        let bad: Vec<usize> = (0..txs.len()).filter(|i| !ok[*i]).collect();
        assert_eq!(bad, vec![0, 77, 150, 299]);
        assert_eq!(cache.verified(), 300);
        // The good ones went into the cache at once, the bad ones did not...
        assert_eq!(cache.len(), 296);
        assert_eq!(cache.contains_each([&txs[77].1, &txs[78].1]), vec![false, true]);
        // ...and cached IDs are taken as verified (and not counted again).
        assert_eq!(verify_signatures(&txs[5..7], &cache), vec![true, true]);
        assert_eq!(cache.verified(), 300);
        assert!(verify_signatures(&[], &cache).is_empty());
    }
}
