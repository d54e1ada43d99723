//! The RocksDB store: every byte the node keeps.
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
//! `WriteBatch`: a node killed at any instant reopens with the tip, state, indexes and undo
//! records of exactly one committed block. The write-ahead log is on; writes are synced unless
//! [`Store::set_sync_writes`] turns that off (the node does, and syncs the log every second).
//!
//! All methods block: call them from a dedicated thread or `spawn_blocking`, never from an
//! async task.

mod keys;

use std::path::Path;
use std::sync::Arc;

use rocksdb::{
    BlockBasedIndexType, BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DB, FlushOptions, IteratorMode, Options, WriteBatch,
    WriteBufferManager, WriteOptions,
};

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

/// Memory all memtables together may use before RocksDB flushes the largest.
/// The largest tunable share of a syncing node's memory: 16 MiB kept a 20,000-block sync at
/// ~70 MiB peak RSS, 8 MiB at ~63 MiB, for more flushes and compaction (~+20% CPU-seconds
/// there, measured under load).
const MEMTABLE_BUDGET: usize = 8 << 20;
/// Size at which one column family's memtable is flushed: small memtables keep inserts and
/// reads in them cache-friendly.
const MEMTABLE_BYTES: usize = 4 << 20;
/// The block cache shared by every column family: data blocks, and the index and filter
/// partitions of every table (see [`cf_options`]).
const BLOCK_CACHE_BYTES: usize = 8 << 20;
/// Level-0 tables of a column family that start a compaction into level 1 (RocksDB: 4).
const L0_COMPACTION_TRIGGER: i32 = 8;
/// Read-ahead per input table of a compaction.
const COMPACTION_READAHEAD: usize = 256 << 10;
/// Write-ahead log size past which the column families holding its oldest records flush.
const MAX_WAL_BYTES: u64 = 32 << 20;

/// Options of one column family: Bloom filters, so a point read of an absent key (a new
/// account, an unknown block or transaction) rarely touches a data block.
///
/// Index and filter blocks live in the block cache, partitioned (4 KiB partitions under a
/// small top-level index, which stays pinned, as do the partitions of level-0 tables), so
/// their memory is bounded by the cache however long the chain grows. Held by each open table
/// instead (~10 bits a key plus an index entry per 4 KiB block), they grew with the chain: a
/// node synced to 1M transactions held ~30 MiB more than at 100k. Partitions, unlike a whole
/// table's filter, are small enough that one read of an absent key loads only what it needs.
fn cf_options(name: &str, cache: &Cache) -> Options {
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(cache);
    table.set_bloom_filter(10.0, false);
    table.set_index_type(BlockBasedIndexType::TwoLevelIndexSearch);
    table.set_partition_filters(true);
    table.set_metadata_block_size(4096);
    table.set_cache_index_and_filter_blocks(true);
    table.set_cache_index_and_filter_blocks_with_high_priority(true);
    table.set_pin_top_level_index_and_filter(true);
    table.set_pin_l0_filter_and_index_blocks_in_cache(true);
    let mut o = Options::default();
    o.set_block_based_table_factory(&table);
    o.set_compression_type(rocksdb::DBCompressionType::Lz4);
    o.set_write_buffer_size(MEMTABLE_BYTES);
    // Small memtables flush small level-0 tables; compacting them into level 1 rewrites the
    // level-1 tables they overlap (all of them, for random keys), so wait for more of them.
    o.set_level_zero_file_num_compaction_trigger(L0_COMPACTION_TRIGGER);
    if [CF_BODIES, CF_UNDO].contains(&name) {
        // Large values written once under random keys (block hashes): kept in blob files, so
        // compaction, which rewrites the randomly keyed tables again and again as the chain
        // grows, moves only their keys and 30-byte pointers, not every body and undo record.
        o.set_enable_blob_files(true);
        o.set_min_blob_size(256);
        o.set_enable_blob_gc(true);
    }
    if [CF_ACCOUNTS, CF_HEADERS, CF_TXINDEX, CF_MEMPOOL].contains(&name) {
        // Point reads that mostly miss (a new recipient, a new block, a transaction the
        // mempool does not hold): a memtable Bloom filter answers them without walking it.
        o.set_memtable_prefix_bloom_ratio(0.1);
        o.set_memtable_whole_key_filtering(true);
    }
    o
}

/// A handle on the database; cheap to clone, safe to share between threads.
#[derive(Clone)]
pub struct Store {
    db: Arc<DB>,
    sync_writes: bool,
}

impl Store {
    /// Opens (or creates) the database in `dir` for the chain `chain_id` with `genesis`.
    /// A new database is initialised by the caller through [`Store::is_new`] and a batch.
    pub fn open(dir: &Path, chain_id: &str, genesis: Hash) -> Result<Store, StoreError> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_max_open_files(512);
        opts.set_keep_log_file_num(4);
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        // Memory stays bounded however long the chain grows: all memtables share one budget,
        // and one block cache holds the data blocks of every column family.
        // The budget starts flushes; it does not stall writes. (A stalling budget, tried, froze
        // a node for good after a 9,500-transaction block: writes waited for a flush that never
        // came, and with them the chain thread, the farmer and intake.)
        opts.set_write_buffer_manager(&WriteBufferManager::new_write_buffer_manager(MEMTABLE_BUDGET, false));
        // A column family written rarely (meta, peers) cannot pin old log files: past this,
        // RocksDB flushes it, so a crash replays a bounded log.
        opts.set_max_total_wal_size(MAX_WAL_BYTES);
        // Compaction reads its input tables sequentially, mostly from the page cache; the
        // default 2 MiB read-ahead buffer per input table made a compaction of ten tables hold
        // 20 MiB.
        opts.set_compaction_readahead_size(COMPACTION_READAHEAD);
        let cache = Cache::new_lru_cache(BLOCK_CACHE_BYTES);
        let cfs = ALL_CFS.iter().map(|n| ColumnFamilyDescriptor::new(*n, cf_options(n, &cache)));
        let db = DB::open_cf_descriptors(&opts, dir, cfs).map_err(|e| {
            let msg = e.to_string();
            if msg.contains("lock") || msg.contains("Resource temporarily unavailable") { StoreError::Locked(dir.to_path_buf()) } else { StoreError::Rocks(e) }
        })?;
        let store = Store { db: Arc::new(db), sync_writes: true };
        store.check_identity(dir, chain_id, genesis)?;
        store.migrate_mempool()?;
        Ok(store)
    }

    /// Turns off fsync per write (the node's group commit, benchmarks). A SIGKILL still loses nothing
    /// written; only an OS crash may lose the last writes.
    pub fn set_sync_writes(&mut self, on: bool) {
        self.sync_writes = on;
    }

    /// Makes every write so far durable (fsync of the write-ahead log): ends a run of
    /// writes made with sync writes off.
    pub fn sync_wal(&self) -> Result<(), StoreError> {
        self.db.flush_wal(true)?;
        Ok(())
    }

    /// Writes every memtable to its table files and waits: a store closed after this opens
    /// without replaying its write-ahead log (a clean shutdown calls it last).
    pub fn flush(&self) -> Result<(), StoreError> {
        let cfs: Vec<&ColumnFamily> = ALL_CFS.iter().map(|n| self.cf(n)).collect();
        self.db.flush_cfs_opt(&cfs, &FlushOptions::default())?;
        Ok(())
    }

    fn check_identity(&self, dir: &Path, chain_id: &str, genesis: Hash) -> Result<(), StoreError> {
        let Some(schema) = self.meta(META_SCHEMA)? else {
            let mut b = self.batch();
            b.put(CF_META, META_SCHEMA, &SCHEMA_VERSION.to_le_bytes());
            b.put(CF_META, META_CHAIN_ID, chain_id.as_bytes());
            b.put(CF_META, META_GENESIS, &genesis.0);
            return self.write(b);
        };
        let found = Reader::new(&schema).u32("schema").map_err(corrupt("schema version"))?;
        if found != SCHEMA_VERSION {
            return Err(StoreError::Schema { dir: dir.into(), found, expected: SCHEMA_VERSION });
        }
        let found_chain = String::from_utf8_lossy(&self.meta(META_CHAIN_ID)?.unwrap_or_default()).into_owned();
        let found_genesis = hex::encode(self.meta(META_GENESIS)?.unwrap_or_default());
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

    fn cf(&self, name: &str) -> &ColumnFamily {
        // Every name in ALL_CFS is created at open.
        self.db.cf_handle(name).expect("column family created at open")
    }

    fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get_cf(self.cf(cf), key)?)
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
        self.get(CF_HEADERS, &hash.0)?.map(|v| HeaderRecord::decode(&v).map_err(corrupt("header"))).transpose()
    }

    /// Whether a block with this hash is stored.
    pub fn has_block(&self, hash: &Hash) -> Result<bool, StoreError> {
        Ok(self.db.get_pinned_cf(self.cf(CF_HEADERS), hash.0)?.is_some())
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
        let iter = self.db.iterator_cf(self.cf(CF_ADDRTX), IteratorMode::From(&start, rocksdb::Direction::Reverse));
        for item in iter {
            if out.len() >= max {
                break;
            }
            let (k, v) = item?;
            if k.len() != 44 || k[..32] != address.0 {
                break;
            }
            if before.is_some() && *k == start[..] {
                continue;
            }
            let height = u64::from_be_bytes(k[32..40].try_into().map_err(|_| StoreError::Missing("address index key".into()))?);
            let index = u32::from_be_bytes(k[40..44].try_into().map_err(|_| StoreError::Missing("address index key".into()))?);
            let txid = Hash(Reader::new(&v).array("address index txid").map_err(corrupt("address index"))?);
            out.push(AddressTx { height, index, txid });
        }
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
        for item in self.db.iterator_cf_opt(self.cf(CF_MEMPOOL), total_order(), IteratorMode::From(&from, rocksdb::Direction::Forward)) {
            if out.len() >= max {
                break;
            }
            let (k, v) = item?;
            let Ok(key) = <[u8; 8]>::try_from(&*k) else { continue };
            out.push((u64::from_be_bytes(key), Transaction::decode(&v).map_err(corrupt("mempool tx"))?));
        }
        Ok(out)
    }

    /// The number past every persisted mempool entry (0 if there is none).
    pub fn mempool_next(&self) -> Result<u64, StoreError> {
        let mut it = self.db.iterator_cf_opt(self.cf(CF_MEMPOOL), total_order(), IteratorMode::End);
        match it.next().transpose()? {
            Some((k, _)) => Ok(<[u8; 8]>::try_from(&*k).map_or(0, |key| u64::from_be_bytes(key).saturating_add(1))),
            None => Ok(0),
        }
    }

    /// Every live persisted mempool transaction (at most `max`), in admission order.
    pub fn mempool_txs(&self, max: usize) -> Result<Vec<Transaction>, StoreError> {
        Ok(self.mempool_entries(max)?.into_iter().map(|(_, tx)| tx).collect())
    }

    /// Entries of a mempool persisted before entries were numbered (keyed by transaction ID),
    /// renumbered from 0 in one write, with the floor set: run once, at open.
    fn migrate_mempool(&self) -> Result<(), StoreError> {
        if self.mempool_floor()?.is_some() {
            return Ok(());
        }
        let mut b = self.batch();
        let mut seq = 0u64;
        for item in self.db.iterator_cf_opt(self.cf(CF_MEMPOOL), total_order(), IteratorMode::Start) {
            let (k, v) = item?;
            if k.len() != 8 {
                b.delete(CF_MEMPOOL, &k);
                if Transaction::decode(&v).is_ok() {
                    b.put(CF_MEMPOOL, &seq.to_be_bytes(), &v);
                    seq += 1;
                }
            }
        }
        b.set_mempool_floor(0);
        self.write(b)
    }

    /// Raw entries of a column family owned by another layer (address book, bans), at most
    /// `max`.
    pub fn raw_entries(&self, cf: &str, max: usize) -> Result<Vec<RawEntry>, StoreError> {
        let mut out = Vec::new();
        for item in self.db.iterator_cf_opt(self.cf(cf), total_order(), IteratorMode::Start).take(max) {
            let (k, v) = item?;
            out.push((k.into_vec(), v.into_vec()));
        }
        Ok(out)
    }

    /// Starts a batch of changes.
    pub fn batch(&self) -> StoreBatch<'_> {
        StoreBatch { store: self, batch: WriteBatch::default() }
    }

    /// Writes a batch atomically without waiting for an fsync, whatever the sync setting: it
    /// survives the process being killed (the write-ahead log is in the OS), and
    /// [`Store::sync_wal`] makes it survive a power loss too (the mempool's group commit).
    pub fn write_unsynced(&self, b: StoreBatch<'_>) -> Result<(), StoreError> {
        if b.batch.is_empty() {
            return Ok(());
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(false);
        self.db.write_opt(b.batch, &wo)?;
        Ok(())
    }

    /// Writes a batch atomically (an empty batch writes nothing).
    pub fn write(&self, b: StoreBatch<'_>) -> Result<(), StoreError> {
        if b.batch.is_empty() {
            return Ok(());
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(self.sync_writes);
        self.db.write_opt(b.batch, &wo)?;
        Ok(())
    }
}

/// Read options for an iterator over a whole column family, in key order whatever the
/// column family's prefix settings.
fn total_order() -> rocksdb::ReadOptions {
    let mut o = rocksdb::ReadOptions::default();
    o.set_total_order_seek(true);
    o
}

impl AccountSource for Store {
    fn account(&self, a: &Address) -> Result<Account, StoreError> {
        match self.db.get_pinned_cf(self.cf(CF_ACCOUNTS), a.0)? {
            None => Ok(Account::default()),
            Some(v) => Account::decode(&v).map_err(corrupt("account")),
        }
    }
}

/// Changes to write together, atomically.
pub struct StoreBatch<'a> {
    store: &'a Store,
    batch: WriteBatch,
}

impl StoreBatch<'_> {
    fn put(&mut self, cf: &str, k: &[u8], v: &[u8]) {
        self.batch.put_cf(self.store.cf(cf), k, v);
    }
    fn delete(&mut self, cf: &str, k: &[u8]) {
        self.batch.delete_cf(self.store.cf(cf), k);
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
        self.batch.delete_range_cf(self.store.cf(CF_MEMPOOL), from.to_be_bytes(), to.to_be_bytes());
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
