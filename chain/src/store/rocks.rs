//! The RocksDB backend of the store (feature `rocksdb`): how the database is opened and tuned,
//! and the raw reads, scans and atomic batches [`super::Store`] is written in.

use std::ops::ControlFlow;
use std::path::Path;

use rocksdb::{
    BlockBasedIndexType, BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DB, Direction, FlushOptions, IteratorMode, Options, ReadOptions,
    WriteBatch, WriteBufferManager, WriteOptions,
};

use super::kv::Scan;
use super::{ALL_CFS, CF_ACCOUNTS, CF_BODIES, CF_HEADERS, CF_MEMPOOL, CF_TXINDEX, CF_UNDO};
use crate::error::StoreError;

/// Memory all memtables together may use before RocksDB flushes the largest.
/// The largest tunable share of a syncing node's memory (heaptrack: memtables peak at ~10 MiB
/// under this budget, while flushes catch up). With the other bounds here, a 20,000-block
/// sync of 50 fresh-address transfers a block peaks at ~61-63 MiB RSS (~20 MiB of it the
/// binary's own pages) at 37-43k tx/s; with 8 MiB memtables and an 8 MiB block cache it
/// peaked at ~73 MiB, no faster.
const MEMTABLE_BUDGET: usize = 6 << 20;
/// Size at which one column family's memtable is flushed: small memtables keep inserts and
/// reads in them cache-friendly.
const MEMTABLE_BYTES: usize = 3 << 20;
/// The block cache shared by every column family: data blocks, and the index and filter
/// partitions of every table (see [`cf_options`]).
const BLOCK_CACHE_BYTES: usize = 4 << 20;
/// A memtable's allocation unit (RocksDB: an eighth of the memtable). Every
/// column family written holds at least one, so small units keep the rarely written ones
/// from holding half a MiB each.
const ARENA_BLOCK_BYTES: usize = 64 << 10;
/// Buffer of each file being written (the write-ahead log, and tables and blob files being
/// flushed or compacted; RocksDB: 1 MiB each, ~3 MiB held while a node syncs).
const FILE_WRITE_BUFFER: u64 = 256 << 10;
/// Level-0 tables of a column family that start a compaction into level 1 (RocksDB: 4).
const L0_COMPACTION_TRIGGER: i32 = 8;
/// Read-ahead per input table of a compaction.
const COMPACTION_READAHEAD: usize = 64 << 10;
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
    o.set_arena_block_size(ARENA_BLOCK_BYTES);
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

/// An open RocksDB database with every column family of [`ALL_CFS`].
pub(super) struct Rocks {
    db: DB,
}

impl Rocks {
    /// Opens (or creates) the database in `dir`.
    pub(super) fn open(dir: &Path) -> Result<Rocks, StoreError> {
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
        opts.set_writable_file_max_buffer_size(FILE_WRITE_BUFFER);
        let cache = Cache::new_lru_cache(BLOCK_CACHE_BYTES);
        let cfs = ALL_CFS.iter().map(|n| ColumnFamilyDescriptor::new(*n, cf_options(n, &cache)));
        let db = DB::open_cf_descriptors(&opts, dir, cfs).map_err(|e| {
            let msg = e.to_string();
            if msg.contains("lock") || msg.contains("Resource temporarily unavailable") { StoreError::Locked(dir.to_path_buf()) } else { StoreError::Rocks(e) }
        })?;
        Ok(Rocks { db })
    }

    fn cf(&self, name: &str) -> &ColumnFamily {
        // Every name in ALL_CFS is created at open.
        self.db.cf_handle(name).expect("column family created at open")
    }

    /// `f` of the value under `key` (pinned: not copied), if there is one.
    pub(super) fn read<R>(&self, cf: &str, key: &[u8], f: impl FnOnce(&[u8]) -> R) -> Result<Option<R>, StoreError> {
        Ok(self.db.get_pinned_cf(self.cf(cf), key)?.map(|v| f(&v)))
    }

    /// Calls `f` on the entries of `scan`, in its order, until it breaks.
    pub(super) fn scan(&self, cf: &str, scan: Scan<'_>, mut f: impl FnMut(&[u8], &[u8]) -> Result<ControlFlow<()>, StoreError>) -> Result<(), StoreError> {
        let mode = match scan {
            Scan::Forward(from) => IteratorMode::From(from, Direction::Forward),
            Scan::Reverse(Some(from)) => IteratorMode::From(from, Direction::Reverse),
            Scan::Reverse(None) => IteratorMode::End,
        };
        for item in self.db.iterator_cf_opt(self.cf(cf), total_order(), mode) {
            let (k, v) = item?;
            if f(&k, &v)?.is_break() {
                break;
            }
        }
        Ok(())
    }

    /// Stages a put in `b`.
    pub(super) fn put(&self, b: &mut WriteBatch, cf: &str, k: &[u8], v: &[u8]) {
        b.put_cf(self.cf(cf), k, v);
    }

    /// Stages a delete in `b`.
    pub(super) fn delete(&self, b: &mut WriteBatch, cf: &str, k: &[u8]) {
        b.delete_cf(self.cf(cf), k);
    }

    /// Stages a range tombstone over `from..to` in `b`.
    pub(super) fn delete_range(&self, b: &mut WriteBatch, cf: &str, from: &[u8], to: &[u8]) {
        b.delete_range_cf(self.cf(cf), from, to);
    }

    /// Writes `b` atomically, with an fsync of the write-ahead log if `sync`.
    pub(super) fn write(&self, b: WriteBatch, sync: bool) -> Result<(), StoreError> {
        if b.is_empty() {
            return Ok(());
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(sync);
        self.db.write_opt(b, &wo)?;
        Ok(())
    }

    /// Makes every write so far durable (fsync of the write-ahead log).
    pub(super) fn sync_wal(&self) -> Result<(), StoreError> {
        self.db.flush_wal(true)?;
        Ok(())
    }

    /// Writes every memtable to its table files and waits.
    pub(super) fn flush(&self) -> Result<(), StoreError> {
        let cfs: Vec<&ColumnFamily> = ALL_CFS.iter().map(|n| self.cf(n)).collect();
        self.db.flush_cfs_opt(&cfs, &FlushOptions::default())?;
        Ok(())
    }
}

/// Read options for an iterator in key order whatever the column family's prefix settings.
fn total_order() -> ReadOptions {
    let mut o = ReadOptions::default();
    o.set_total_order_seek(true);
    o
}
