//! The store: every byte the node keeps, in RocksDB (feature `rocksdb`, [`Store::open`]) or
//! in memory ([`Store::memory`]: tests, fuzzing, simulation). Both backends have the same
//! semantics ([`kv`] is the raw layer they share).
//!
//! # Column families
//! | cf | key | value |
//! |---|---|---|
//! | `headers` | block hash | header (156 B) + cumulative work (32 B BE) |
//! | `bodies` | block hash | transaction list (canonical) |
//! | `heights` | height (u64 BE) | hash of the best-chain block at that height |
//! | `accounts` | address | balance u64 + nonce u64 (absent = default account) |
//! | `undo` | block hash | [`Undo`] of a best-chain block |
//! | `txindex` | txid | block hash + position u32 (best chain only) |
//! | `mempool` | admission number (u64 BE) | transaction (canonical): pending transactions survive a crash; entries below the `mempool_floor` in `meta` are dead (see [`crate::pool_log`]) |
//! | `peers`, `bans` | owned by the p2p layer through [`Store::put_raw`]-style helpers |
//! | `meta` | name | schema version, chain ID, genesis hash, tip hash |
//!
//! # Correctness
//! Every change the chain makes goes through one [`StoreBatch`], written as one RocksDB
//! `WriteBatch` (in memory: applied under one lock): a node killed at any instant reopens with
//! the tip, state, indexes and undo records of exactly one committed block. The write-ahead log
//! is on; writes are synced unless [`Store::set_sync_writes`] turns that off (the node does,
//! and syncs the log every second).
//!
//! All methods block: call them from a dedicated thread or `spawn_blocking`, never from an
//! async task.

mod keys;
mod kv;
mod memory;
#[cfg(feature = "rocksdb")]
mod rocks;

use std::ops::ControlFlow;
#[cfg(feature = "rocksdb")]
use std::path::Path;
use std::sync::Arc;

use kv::{Kv, Ops, Scan};

use crate::block::{Block, Header, read_transactions, write_transactions};
use crate::encode::{DecodeError, Reader, Writer};
pub use crate::error::{ChainMismatch, StoreError};
use crate::hash::Hash;
use crate::keys::Address;
use crate::pow::Work;
use crate::state::{Account, AccountSource, Undo};
use crate::tx::{Transaction, TxId};

pub use keys::{address_tx_key, height_key};

/// On-disk format version; bump it when any encoding above changes.
pub const SCHEMA_VERSION: u32 = 1;

const CF_HEADERS: &str = "headers";
const CF_BODIES: &str = "bodies";
const CF_HEIGHTS: &str = "heights";
const CF_ACCOUNTS: &str = "accounts";
const CF_UNDO: &str = "undo";
const CF_TXINDEX: &str = "txindex";
const CF_MEMPOOL: &str = "mempool";
/// Best-chain transactions by address (sent and received): `address_tx_key` → txid.
const CF_ADDRTX: &str = "addrtx";
/// Column family the p2p layer keeps its address book in.
pub const CF_PEERS: &str = "peers";
/// Column family the p2p layer keeps bans in.
pub const CF_BANS: &str = "bans";
const CF_META: &str = "meta";
const ALL_CFS: [&str; 11] = [CF_HEADERS, CF_BODIES, CF_HEIGHTS, CF_ACCOUNTS, CF_UNDO, CF_TXINDEX, CF_MEMPOOL, CF_ADDRTX, CF_PEERS, CF_BANS, CF_META];

const META_SCHEMA: &[u8] = b"schema";
const META_CHAIN_ID: &[u8] = b"chain_id";
const META_GENESIS: &[u8] = b"genesis";
const META_TIP: &[u8] = b"tip";
const META_MEMPOOL_FLOOR: &[u8] = b"mempool_floor";
/// The height from which the address index holds every best-chain block (absent: no index).
const META_ADDRESS_INDEX_FROM: &[u8] = b"address_index_from";

fn corrupt(what: &'static str) -> impl FnOnce(DecodeError) -> StoreError {
    move |source| StoreError::Corrupt { what, source }
}

/// A raw `(key, value)` pair of a column family owned by another layer.
pub type RawEntry = (Vec<u8>, Vec<u8>);

/// A stored header with the cumulative work of the chain ending in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderRecord {
    /// The header.
    pub header: Header,
    /// Its hash.
    pub hash: Hash,
    /// Total work from genesis through this block.
    pub total_work: Work,
}

impl HeaderRecord {
    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(Header::ENCODED_LEN + 32);
        self.header.write(&mut w);
        w.bytes(&self.total_work.to_bytes());
        w.finish()
    }
    fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(b);
        let header = Header::read(&mut r)?;
        let total_work = Work::from_bytes(r.array("total work")?);
        r.finish()?;
        Ok(HeaderRecord { hash: header.hash(), header, total_work })
    }
}

/// Where a best-chain transaction is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxLocation {
    /// The including block.
    pub block: Hash,
    /// Position in it.
    pub index: u32,
}

/// One entry of the address index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddressTx {
    /// Height of the including block.
    pub height: u64,
    /// Position in it.
    pub index: u32,
    /// The transaction.
    pub txid: TxId,
}

/// A handle on the database; cheap to clone, safe to share between threads.
#[derive(Clone)]
pub struct Store {
    kv: Arc<Kv>,
    sync_writes: bool,
}

impl Store {
    /// Opens (or creates) the RocksDB database in `dir` for the chain `chain_id` with
    /// `genesis`. A new database is initialised by the caller through [`Store::is_new`] and a
    /// batch.
    #[cfg(feature = "rocksdb")]
    pub fn open(dir: &Path, chain_id: &str, genesis: Hash) -> Result<Store, StoreError> {
        let store = Store { kv: Arc::new(Kv::Rocks(rocks::Rocks::open(dir)?)), sync_writes: true };
        store.check_identity(dir, chain_id, genesis)?;
        store.migrate_mempool()?;
        Ok(store)
    }

    /// A new, empty store in memory for the chain `chain_id` with `genesis` (no data dir;
    /// everything is gone with the last clone). Same API and semantics as a RocksDB store;
    /// [`Store::flush`] and [`Store::sync_wal`] have nothing to do.
    pub fn memory(chain_id: &str, genesis: Hash) -> Store {
        let memory = memory::Memory::new();
        let mut ops = Ops::Memory(&memory, Vec::new());
        stage_identity(&mut ops, chain_id, genesis);
        // As `migrate_mempool` leaves a new store: nothing pending, numbered from 0.
        ops.put(CF_META, META_MEMPOOL_FLOOR, &0u64.to_le_bytes());
        // Writing to memory cannot fail.
        let _ = ops.write(false);
        Store { kv: Arc::new(Kv::Memory(memory)), sync_writes: true }
    }

    /// Turns off fsync per write (the node's group commit, benchmarks). A SIGKILL still loses
    /// nothing written; only an OS crash may lose the last writes.
    pub fn set_sync_writes(&mut self, on: bool) {
        self.sync_writes = on;
    }

    /// Makes every write so far durable (fsync of the write-ahead log): ends a run of
    /// writes made with sync writes off.
    pub fn sync_wal(&self) -> Result<(), StoreError> {
        self.kv.sync_wal()
    }

    /// Writes every memtable to its table files and waits: a store closed after this opens
    /// without replaying its write-ahead log (a clean shutdown calls it last).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.kv.flush()
    }

    #[cfg(feature = "rocksdb")]
    fn check_identity(&self, dir: &Path, chain_id: &str, genesis: Hash) -> Result<(), StoreError> {
        let Some(schema) = self.meta(META_SCHEMA)? else {
            let mut b = self.batch();
            stage_identity(&mut b.ops, chain_id, genesis);
            return self.write(b);
        };
        let found = Reader::new(&schema).u32("schema").map_err(corrupt("schema version"))?;
        if found != SCHEMA_VERSION {
            return Err(StoreError::Schema { dir: dir.into(), found, expected: SCHEMA_VERSION });
        }
        let found_chain = String::from_utf8_lossy(&self.meta(META_CHAIN_ID)?.unwrap_or_default()).into_owned();
        let found_genesis = const_hex::encode(self.meta(META_GENESIS)?.unwrap_or_default());
        if found_chain != chain_id || found_genesis != genesis.to_string() {
            return Err(StoreError::WrongChain(Box::new(ChainMismatch {
                dir: dir.into(),
                found_chain,
                found_genesis,
                want_chain: chain_id.into(),
                want_genesis: genesis,
            })));
        }
        Ok(())
    }

    fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.kv.read(cf, key, <[u8]>::to_vec)
    }

    fn meta(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(CF_META, key)
    }

    /// The best-chain tip hash, or `None` before genesis is written.
    pub fn tip_hash(&self) -> Result<Option<Hash>, StoreError> {
        match self.meta(META_TIP)? {
            None => Ok(None),
            Some(v) => Ok(Some(Hash(Reader::new(&v).array("tip").map_err(corrupt("tip"))?))),
        }
    }

    /// A header record by hash (any branch).
    pub fn header(&self, hash: &Hash) -> Result<Option<HeaderRecord>, StoreError> {
        self.kv.read(CF_HEADERS, &hash.0, HeaderRecord::decode)?.transpose().map_err(corrupt("header"))
    }

    /// Whether a block with this hash is stored.
    pub fn has_block(&self, hash: &Hash) -> Result<bool, StoreError> {
        Ok(self.kv.read(CF_HEADERS, &hash.0, |_| ())?.is_some())
    }

    /// A block's transactions by hash.
    pub fn body(&self, hash: &Hash) -> Result<Option<Vec<Transaction>>, StoreError> {
        let Some(v) = self.get(CF_BODIES, &hash.0)? else { return Ok(None) };
        let mut r = Reader::new(&v);
        let txs = read_transactions(&mut r, usize::MAX).map_err(corrupt("body"))?;
        r.finish().map_err(corrupt("body"))?;
        Ok(Some(txs))
    }

    /// A whole block by hash (any branch).
    pub fn block(&self, hash: &Hash) -> Result<Option<Block>, StoreError> {
        let Some(rec) = self.header(hash)? else { return Ok(None) };
        let transactions = self.body(hash)?.ok_or_else(|| StoreError::Missing(format!("body of {hash}")))?;
        Ok(Some(Block { header: rec.header, transactions }))
    }

    /// The best-chain block hash at `height`.
    pub fn hash_at(&self, height: u64) -> Result<Option<Hash>, StoreError> {
        match self.get(CF_HEIGHTS, &height_key(height))? {
            None => Ok(None),
            Some(v) => Ok(Some(Hash(Reader::new(&v).array("height index").map_err(corrupt("height index"))?))),
        }
    }

    /// The undo record of a best-chain block.
    pub fn undo(&self, hash: &Hash) -> Result<Option<Undo>, StoreError> {
        self.get(CF_UNDO, &hash.0)?.map(|v| Undo::decode(&v).map_err(corrupt("undo"))).transpose()
    }

    /// Where a best-chain transaction is.
    pub fn tx_location(&self, id: &TxId) -> Result<Option<TxLocation>, StoreError> {
        let Some(v) = self.get(CF_TXINDEX, &id.0)? else { return Ok(None) };
        let mut r = Reader::new(&v);
        let loc = TxLocation { block: Hash(r.array("tx block").map_err(corrupt("txindex"))?), index: r.u32("tx index").map_err(corrupt("txindex"))? };
        Ok(Some(loc))
    }

    /// An address's best-chain transactions, newest first: at most `max` of those before
    /// `before` (height, position), or from the tip.
    pub fn address_txs(&self, address: &Address, before: Option<(u64, u32)>, max: usize) -> Result<Vec<AddressTx>, StoreError> {
        let start = match before {
            Some((h, i)) => address_tx_key(&address.0, h, i),
            None => address_tx_key(&address.0, u64::MAX, u32::MAX),
        };
        let mut out = Vec::new();
        self.kv.scan(CF_ADDRTX, Scan::Reverse(Some(&start)), |k, v| {
            if out.len() >= max || k.len() != 44 || k[..32] != address.0 {
                return Ok(ControlFlow::Break(()));
            }
            if before.is_some() && *k == start[..] {
                return Ok(ControlFlow::Continue(()));
            }
            let height = u64::from_be_bytes(k[32..40].try_into().map_err(|_| StoreError::Missing("address index key".into()))?);
            let index = u32::from_be_bytes(k[40..44].try_into().map_err(|_| StoreError::Missing("address index key".into()))?);
            let txid = Hash(Reader::new(v).array("address index txid").map_err(corrupt("address index"))?);
            out.push(AddressTx { height, index, txid });
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(out)
    }

    /// The height from which the address index is complete, or `None` if the node keeps none.
    pub fn address_index_from(&self) -> Result<Option<u64>, StoreError> {
        match self.meta(META_ADDRESS_INDEX_FROM)? {
            None => Ok(None),
            Some(v) => Ok(Some(Reader::new(&v).u64("address index start").map_err(corrupt("address index start"))?)),
        }
    }

    /// The persisted mempool's floor: every entry numbered below it is dead (`None` in a store
    /// written before entries were numbered, or before anything was pending).
    pub fn mempool_floor(&self) -> Result<Option<u64>, StoreError> {
        match self.meta(META_MEMPOOL_FLOOR)? {
            None => Ok(None),
            Some(v) => Ok(Some(Reader::new(&v).u64("mempool floor").map_err(corrupt("mempool floor"))?)),
        }
    }

    /// The live persisted mempool: entries at or above the floor, in admission order, at most
    /// `max`, with their numbers.
    pub fn mempool_entries(&self, max: usize) -> Result<Vec<(u64, Transaction)>, StoreError> {
        let floor = self.mempool_floor()?.unwrap_or(0);
        let mut out = Vec::new();
        let from = floor.to_be_bytes();
        self.kv.scan(CF_MEMPOOL, Scan::Forward(&from), |k, v| {
            if out.len() >= max {
                return Ok(ControlFlow::Break(()));
            }
            if let Ok(key) = <[u8; 8]>::try_from(k) {
                out.push((u64::from_be_bytes(key), Transaction::decode(v).map_err(corrupt("mempool tx"))?));
            }
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(out)
    }

    /// The number past every persisted mempool entry (0 if there is none).
    pub fn mempool_next(&self) -> Result<u64, StoreError> {
        let mut next = 0;
        self.kv.scan(CF_MEMPOOL, Scan::Reverse(None), |k, _| {
            next = <[u8; 8]>::try_from(k).map_or(0, |key| u64::from_be_bytes(key).saturating_add(1));
            Ok(ControlFlow::Break(()))
        })?;
        Ok(next)
    }

    /// Every live persisted mempool transaction (at most `max`), in admission order.
    pub fn mempool_txs(&self, max: usize) -> Result<Vec<Transaction>, StoreError> {
        Ok(self.mempool_entries(max)?.into_iter().map(|(_, tx)| tx).collect())
    }

    /// Entries of a mempool persisted before entries were numbered (keyed by transaction ID),
    /// renumbered from 0 in one write, with the floor set: run once, at open.
    #[cfg(feature = "rocksdb")]
    fn migrate_mempool(&self) -> Result<(), StoreError> {
        if self.mempool_floor()?.is_some() {
            return Ok(());
        }
        let mut b = self.batch();
        let mut seq = 0u64;
        self.kv.scan(CF_MEMPOOL, Scan::Forward(&[]), |k, v| {
            if k.len() != 8 {
                b.delete(CF_MEMPOOL, k);
                if Transaction::decode(v).is_ok() {
                    b.put(CF_MEMPOOL, &seq.to_be_bytes(), v);
                    seq += 1;
                }
            }
            Ok(ControlFlow::Continue(()))
        })?;
        b.set_mempool_floor(0);
        self.write(b)
    }

    /// Raw entries of a column family owned by another layer (address book, bans), at most
    /// `max`.
    pub fn raw_entries(&self, cf: &str, max: usize) -> Result<Vec<RawEntry>, StoreError> {
        let mut out = Vec::new();
        self.kv.scan(cf, Scan::Forward(&[]), |k, v| {
            if out.len() >= max {
                return Ok(ControlFlow::Break(()));
            }
            out.push((k.to_vec(), v.to_vec()));
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(out)
    }

    /// Starts a batch of changes.
    pub fn batch(&self) -> StoreBatch<'_> {
        StoreBatch { ops: self.kv.batch(0) }
    }

    /// An empty batch with room reserved for about `bytes` of writes: a large batch (a sync's
    /// run) then never holds its buffer twice, old and new, while it grows.
    pub fn batch_with_capacity(&self, bytes: usize) -> StoreBatch<'_> {
        StoreBatch { ops: self.kv.batch(bytes) }
    }

    /// Writes a batch atomically without waiting for an fsync, whatever the sync setting: it
    /// survives the process being killed (the write-ahead log is in the OS), and
    /// [`Store::sync_wal`] makes it survive a power loss too (the mempool's group commit).
    pub fn write_unsynced(&self, b: StoreBatch<'_>) -> Result<(), StoreError> {
        b.ops.write(false)
    }

    /// Writes a batch atomically (an empty batch writes nothing).
    pub fn write(&self, b: StoreBatch<'_>) -> Result<(), StoreError> {
        b.ops.write(self.sync_writes)
    }
}

/// Stages the identity of a new store: schema version, chain ID, genesis.
fn stage_identity(ops: &mut Ops<'_>, chain_id: &str, genesis: Hash) {
    ops.put(CF_META, META_SCHEMA, &SCHEMA_VERSION.to_le_bytes());
    ops.put(CF_META, META_CHAIN_ID, chain_id.as_bytes());
    ops.put(CF_META, META_GENESIS, &genesis.0);
}

impl AccountSource for Store {
    fn account(&self, a: &Address) -> Result<Account, StoreError> {
        match self.kv.read(CF_ACCOUNTS, &a.0, Account::decode)? {
            None => Ok(Account::default()),
            Some(acc) => acc.map_err(corrupt("account")),
        }
    }
}

/// Changes to write together, atomically (one RocksDB `WriteBatch`, or one application under
/// the memory backend's lock), to the store that made it.
pub struct StoreBatch<'a> {
    ops: Ops<'a>,
}

impl StoreBatch<'_> {
    fn put(&mut self, cf: &str, k: &[u8], v: &[u8]) {
        self.ops.put(cf, k, v);
    }
    fn delete(&mut self, cf: &str, k: &[u8]) {
        self.ops.delete(cf, k);
    }
    /// Stores a block's header record and body.
    pub fn put_block(&mut self, rec: &HeaderRecord, txs: &[Transaction]) {
        self.put(CF_HEADERS, &rec.hash.0, &rec.encode());
        let mut w = Writer::with_capacity(4 + txs.len() * Transaction::ENCODED_LEN);
        write_transactions(&mut w, txs);
        self.put(CF_BODIES, &rec.hash.0, &w.finish());
    }
    /// Forgets a block entirely (an invalid side-branch block).
    pub fn delete_block(&mut self, hash: &Hash) {
        self.delete(CF_HEADERS, &hash.0);
        self.delete(CF_BODIES, &hash.0);
    }
    /// Sets the best-chain hash at a height.
    pub fn set_height(&mut self, height: u64, hash: &Hash) {
        self.put(CF_HEIGHTS, &height_key(height), &hash.0);
    }
    /// Clears the best-chain hash at a height.
    pub fn delete_height(&mut self, height: u64) {
        self.delete(CF_HEIGHTS, &height_key(height));
    }
    /// Writes an account (the default account is stored as absent).
    pub fn put_account(&mut self, a: &Address, acc: &Account) {
        if acc.is_empty() {
            self.delete(CF_ACCOUNTS, &a.0);
        } else {
            self.put(CF_ACCOUNTS, &a.0, &acc.encode());
        }
    }
    /// Stores a block's undo record.
    pub fn put_undo(&mut self, hash: &Hash, undo: &Undo) {
        self.put(CF_UNDO, &hash.0, &undo.encode());
    }
    /// Drops a block's undo record.
    pub fn delete_undo(&mut self, hash: &Hash) {
        self.delete(CF_UNDO, &hash.0);
    }
    /// Indexes a best-chain transaction.
    pub fn index_tx(&mut self, id: &TxId, loc: TxLocation) {
        let mut w = Writer::with_capacity(36);
        w.bytes(&loc.block.0).u32(loc.index);
        self.put(CF_TXINDEX, &id.0, &w.finish());
    }
    /// Removes a transaction from the index.
    pub fn unindex_tx(&mut self, id: &TxId) {
        self.delete(CF_TXINDEX, &id.0);
    }
    /// Indexes a best-chain transaction under an address (its sender or recipient).
    pub fn index_address_tx(&mut self, address: &Address, height: u64, index: u32, id: &TxId) {
        self.put(CF_ADDRTX, &address_tx_key(&address.0, height, index), &id.0);
    }
    /// Removes an address index entry (a block leaving the best chain).
    pub fn unindex_address_tx(&mut self, address: &Address, height: u64, index: u32) {
        self.delete(CF_ADDRTX, &address_tx_key(&address.0, height, index));
    }
    /// Persists a pending transaction as entry `seq` (see [`crate::pool_log`]).
    pub fn put_mempool_tx(&mut self, seq: u64, tx: &Transaction) {
        self.put(CF_MEMPOOL, &seq.to_be_bytes(), &tx.encode());
    }
    /// Forgets persisted mempool entry `seq`.
    pub fn delete_mempool_tx(&mut self, seq: u64) {
        self.delete(CF_MEMPOOL, &seq.to_be_bytes());
    }
    /// Sets the persisted mempool's floor: entries numbered below it are dead.
    pub fn set_mempool_floor(&mut self, floor: u64) {
        self.put(CF_META, META_MEMPOOL_FLOOR, &floor.to_le_bytes());
    }
    /// Deletes every persisted mempool entry numbered in `from..to` (one range tombstone).
    pub fn delete_mempool_range(&mut self, from: u64, to: u64) {
        self.ops.delete_range(CF_MEMPOOL, &from.to_be_bytes(), &to.to_be_bytes());
    }
    /// Records the height from which the address index is complete (`None`: no index kept).
    pub fn set_address_index_from(&mut self, from: Option<u64>) {
        match from {
            Some(h) => self.put(CF_META, META_ADDRESS_INDEX_FROM, &h.to_le_bytes()),
            None => self.delete(CF_META, META_ADDRESS_INDEX_FROM),
        }
    }
    /// Moves the tip.
    pub fn set_tip(&mut self, hash: &Hash) {
        self.put(CF_META, META_TIP, &hash.0);
    }
    /// Writes a raw entry in a column family owned by another layer.
    pub fn put_raw(&mut self, cf: &'static str, k: &[u8], v: &[u8]) {
        self.put(cf, k, v);
    }
    /// Deletes a raw entry in a column family owned by another layer.
    pub fn delete_raw(&mut self, cf: &'static str, k: &[u8]) {
        self.delete(cf, k);
    }
}
