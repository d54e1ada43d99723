//! Where blocks and transactions come from: a pool of real transactions made once up front,
//! block making (real headers, real Merkle roots, the proof ground against the spec's target),
//! the registry of every block made in a run, and the mempool model.
//!
//! # The mempool model
//! In the scale run the transaction relay is not simulated message by message (5,000
//! transactions a block over 1,000 nodes would be billions of events; the scenarios relay
//! them for real, see `SimConfig::tx_relay`). Instead transaction `i` of the pool is
//! created at `i × block_time / txs_per_block − block_time` (and a block made at `t` holds the
//! `txs_per_block` created just before `t - 2 s`), and reaches each node at a delay drawn from
//! the run's seed (100 ms to 1.5 s, what the relay's 100 ms flushes over a few hops give), and
//! a fraction `mempool_miss` of (node, transaction) pairs never arrive. A node restarted
//! (or joined) at `t` has what arrived after `t`. Compact blocks are rebuilt from what that
//! model says a node holds; the rest is fetched with `get_block_txs`, as the real node does.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use cairn_chain::block::merkle_root;
use cairn_chain::compact::CompactBlock;
use cairn_chain::keys::SignatureBytes;
use cairn_chain::{Address, Block, ChainSpec, Hash, Header, Keypair, PublicKey, Transaction, TxId};

use crate::engine::{Time, mix};

/// A block made in the run, shared by every node that stores it.
pub struct Made {
    /// The block.
    pub block: Arc<Block>,
    /// Its canonical encoding (made once).
    pub encoded: Bytes,
    /// Pool index of its first transaction (the rest follow).
    pub tx_first: u64,
    /// Whether its transactions match its header (hostile makers break it).
    pub valid: bool,
    /// Who made it, and when.
    pub maker: usize,
    /// When it was made.
    pub made_at: Time,
    /// The short IDs of its compact form, with the nonce they are salted with (made once per
    /// block in [`crate::Fidelity::Light`]; per announcement in `Full`).
    pub compact: std::sync::OnceLock<(u64, Bytes)>,
}

/// The pool, the spec and the registry.
pub struct Factory {
    /// The chain spec every node runs.
    pub spec: Arc<ChainSpec>,
    /// Its genesis block.
    pub genesis: Arc<Block>,
    txs: Vec<Transaction>,
    ids: Vec<TxId>,
    txs_per_block: u64,
    block_time: Time,
    mempool_miss: f64,
    stateful: bool,
    seed: u64,
    /// Every block made, by hash.
    pub made: HashMap<Hash, Arc<Made>>,
    /// Pool index by transaction ID.
    index: HashMap<TxId, u64>,
}

/// Settings of the pool.
pub struct PoolConfig {
    /// Transactions per block.
    pub txs_per_block: u64,
    /// Distinct transactions in the pool (blocks cycle through it).
    pub pool: usize,
    /// Sign them (needed when blocks are checked for real).
    pub signed: bool,
    /// Mean time between blocks.
    pub block_time: Time,
    /// Fraction of (node, transaction) pairs that never reach the node's mempool.
    pub mempool_miss: f64,
    /// Transactions valid against state, for the real chain: the spec's dev accounts send in
    /// turn (pool index `i` is account `i mod accounts`, nonce `i / accounts`), and a block
    /// holds the pool's next transactions after its parent's (see [`Factory::make`]), so any
    /// prefix of the pool is valid. The pool must outlast the run (a cycled transaction is a
    /// replay).
    pub stateful: bool,
}

impl Factory {
    /// Makes the pool. Signing costs ~20 µs a transaction, so only the scenarios' small
    /// pools are signed.
    pub fn new(seed: u64, cfg: &PoolConfig) -> Factory {
        let mut spec = ChainSpec::devnet();
        spec.chain_id = "cairn-sim".into();
        let spec = Arc::new(spec);
        let genesis = Arc::new(spec.genesis());
        let chain = genesis.hash();
        let key = Keypair::from_seed(blake3::hash(&[b"cairn-sim key".as_slice(), &seed.to_le_bytes()].concat()).into());
        let to = Address(blake3::hash(&seed.to_le_bytes()).into());
        let senders: Vec<Keypair> =
            if cfg.stateful { (0..spec.dev_accounts.as_ref().map_or(0, |d| d.count)).filter_map(|i| spec.dev_key(i)).collect() } else { Vec::new() };
        let txs: Vec<Transaction> = (0..cfg.pool as u64)
            .map(|i| {
                if cfg.stateful && !senders.is_empty() {
                    let n = senders.len() as u64;
                    Transaction::signed(&senders[(i % n) as usize], chain, to, 1, 1, i / n)
                } else if cfg.signed {
                    Transaction::signed(&key, chain, to, 1 + i % 1000, 1, i)
                } else {
                    Transaction { chain, from: PublicKey([7; 32]), to, amount: 1 + i % 1000, fee: 1, nonce: i, signature: SignatureBytes([0; 64]) }
                }
            })
            .collect();
        let ids: Vec<TxId> = txs.iter().map(Transaction::id).collect();
        let index = ids.iter().enumerate().map(|(i, id)| (*id, i as u64)).collect();
        Factory {
            spec,
            genesis,
            txs,
            ids,
            txs_per_block: cfg.txs_per_block,
            block_time: cfg.block_time,
            mempool_miss: cfg.mempool_miss,
            stateful: cfg.stateful,
            seed,
            made: HashMap::new(),
            index,
        }
    }

    fn pool_at(&self, i: u64) -> usize {
        (i % self.txs.len().max(1) as u64) as usize
    }

    /// The transaction with pool index `i` (the pool cycles).
    pub fn tx(&self, i: u64) -> (&TxId, &Transaction) {
        let k = self.pool_at(i);
        (&self.ids[k], &self.txs[k])
    }

    /// The pool index of a transaction, if it is one of the pool's.
    pub fn index_of(&self, id: &TxId) -> Option<u64> {
        self.index.get(id).copied()
    }

    /// Whether node `node` (up since `since`) holds transaction `i` in its mempool at `now`.
    pub fn has_tx(&self, node: usize, since: Time, i: u64, now: Time) -> bool {
        let r = mix(self.seed ^ 0x6d65_6d70, (node as u64) << 40 ^ i);
        let arrives = self.created(i) + 100_000_000 + i128::from(r % 1_400_000_000);
        let kept = (r >> 32) as f64 / u32::MAX as f64 >= self.mempool_miss;
        // A node up from the start holds what arrived before it too.
        kept && arrives <= i128::from(now) && (since == 0 || arrives >= i128::from(since))
    }

    /// When transaction `i` is created: `i × block_time / txs_per_block − block_time` (a
    /// block's worth exists when the run starts).
    pub fn created(&self, i: u64) -> i128 {
        i128::from(i) * i128::from(self.block_time) / i128::from(self.txs_per_block.max(1)) - i128::from(self.block_time)
    }

    /// The mempool candidates a node offers to a compact block's rebuild: the pool around
    /// the block's transactions that the node holds (a real mempool holds those and more,
    /// which only costs hashing).
    pub fn mempool_for(&self, node: usize, since: Time, made: &Made, now: Time) -> Vec<(TxId, Transaction)> {
        let k = self.txs_per_block;
        let from = made.tx_first.saturating_sub(k);
        (from..made.tx_first + 2 * k)
            .filter(|i| self.has_tx(node, since, *i, now))
            .map(|i| {
                let (id, tx) = self.tx(i);
                (*id, tx.clone())
            })
            .collect()
    }

    /// Makes a block on `parent` (a header the maker stores). `valid: false` gives it a Merkle
    /// root its transactions do not have (a hostile maker's block; its proof is still good).
    /// `has(i)`: whether the maker holds pool transaction `i` (stateful pools only: the block
    /// takes the pool's next unconfirmed transactions on its branch, in order, while the maker
    /// has them, so every sender's nonces follow on).
    pub fn make(&mut self, parent: &Header, maker: usize, now: Time, farmer: Address, valid: bool, has: impl Fn(u64) -> bool) -> Arc<Made> {
        let height = parent.height + 1;
        let range = if self.stateful {
            let first = self.made.get(&parent.hash()).map_or(0, |m| m.tx_first + m.block.transactions.len() as u64);
            let n = (first..first + self.txs_per_block).take_while(|i| has(*i)).count() as u64;
            first..first + n
        } else {
            // The transactions created just before `now - 2 s`: what has had time to spread (a
            // fork at the same time holds about the same ones, as competing real blocks do).
            let horizon = i128::from(now) - 2 * i128::from(crate::engine::SECOND) + i128::from(self.block_time);
            let created = u64::try_from(horizon.max(0) * i128::from(self.txs_per_block) / i128::from(self.block_time.max(1))).unwrap_or(0);
            let first = created.saturating_sub(self.txs_per_block);
            first..first + self.txs_per_block
        };
        let tx_first = range.start;
        let transactions: Vec<Transaction> = range.clone().map(|i| self.tx(i).1.clone()).collect();
        let ids: Vec<TxId> = range.map(|i| *self.tx(i).0).collect();
        let mut tx_root = merkle_root(&ids);
        if !valid {
            tx_root = Hash(blake3::hash(&tx_root.0).into());
        }
        let timestamp = self.spec.genesis_timestamp + 1_000 + now / 1_000_000;
        let mut header = Header {
            version: parent.version,
            height,
            prev_hash: parent.hash(),
            tx_root,
            timestamp: timestamp.max(parent.timestamp + 1),
            target: self.spec.initial_target,
            nonce: mix(self.seed, height ^ (maker as u64) << 32),
            farmer,
        };
        // The devnet's pinned target needs ~16 hashes.
        while !header.target.is_met_by(&header.hash()) {
            header.nonce = header.nonce.wrapping_add(1);
        }
        let block = Block { header, transactions };
        let encoded = Bytes::from(block.encode());
        let made = Arc::new(Made { block: Arc::new(block), encoded, tx_first, valid, maker, made_at: now, compact: std::sync::OnceLock::new() });
        self.made.insert(made.block.hash(), made.clone());
        made
    }

    /// The compact form's short IDs of a block, salted with `nonce` (the real `CompactBlock`).
    pub fn short_ids(made: &Made, nonce: u64) -> Bytes {
        Bytes::from(CompactBlock::of(&made.block, nonce).encode_short_ids())
    }
}
