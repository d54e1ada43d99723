//! The store's raw key-value layer: the backend ([`Kv`]: RocksDB with the `rocksdb` feature,
//! or memory) and its batches ([`Ops`]), so [`super::Store`] is written once over both.

use std::ops::ControlFlow;

use super::memory::{Memory, Op};
#[cfg(feature = "rocksdb")]
use super::rocks::Rocks;
use crate::error::StoreError;

/// Where a scan starts and which way it goes.
#[derive(Clone, Copy, Debug)]
pub(super) enum Scan<'k> {
    /// From the first key at or after this one, ascending (`&[]`: every key).
    Forward(&'k [u8]),
    /// From the last key at or before this one (`None`: the last key), descending.
    Reverse(Option<&'k [u8]>),
}

/// A backend.
pub(super) enum Kv {
    /// RocksDB in a data dir.
    #[cfg(feature = "rocksdb")]
    Rocks(Rocks),
    /// Ordered maps in memory.
    Memory(Memory),
}

impl Kv {
    /// `f` of the value under `key`, if there is one (RocksDB: pinned, not copied).
    pub(super) fn read<R>(&self, cf: &str, key: &[u8], f: impl FnOnce(&[u8]) -> R) -> Result<Option<R>, StoreError> {
        match self {
            #[cfg(feature = "rocksdb")]
            Kv::Rocks(db) => db.read(cf, key, f),
            Kv::Memory(m) => Ok(m.read(cf, key, f)),
        }
    }

    /// Calls `f` on each entry of `scan`, in its order, until `f` breaks or fails. `f` must
    /// not use the store (the memory backend holds its read lock).
    pub(super) fn scan(&self, cf: &str, scan: Scan<'_>, f: impl FnMut(&[u8], &[u8]) -> Result<ControlFlow<()>, StoreError>) -> Result<(), StoreError> {
        match self {
            #[cfg(feature = "rocksdb")]
            Kv::Rocks(db) => db.scan(cf, scan, f),
            Kv::Memory(m) => m.scan(cf, scan, f),
        }
    }

    /// An empty batch for this backend, with room for about `bytes` of writes (RocksDB's
    /// batch is one growing buffer: reserved, it is never copied into a buffer twice its size).
    pub(super) fn batch(&self, bytes: usize) -> Ops<'_> {
        match self {
            #[cfg(feature = "rocksdb")]
            Kv::Rocks(db) => Ops::Rocks(db, if bytes == 0 { rocksdb::WriteBatch::default() } else { rocksdb::WriteBatch::with_capacity_bytes(bytes) }),
            Kv::Memory(m) => {
                let _ = bytes;
                Ops::Memory(m, Vec::new())
            }
        }
    }

    /// Makes every write so far durable (memory: nothing to do).
    pub(super) fn sync_wal(&self) -> Result<(), StoreError> {
        match self {
            #[cfg(feature = "rocksdb")]
            Kv::Rocks(db) => db.sync_wal(),
            Kv::Memory(_) => Ok(()),
        }
    }

    /// Writes memtables to table files (memory: nothing to do).
    pub(super) fn flush(&self) -> Result<(), StoreError> {
        match self {
            #[cfg(feature = "rocksdb")]
            Kv::Rocks(db) => db.flush(),
            Kv::Memory(_) => Ok(()),
        }
    }
}

/// Changes staged for one atomic write, with the backend that made them (and writes them).
pub(super) enum Ops<'a> {
    /// A RocksDB `WriteBatch`.
    #[cfg(feature = "rocksdb")]
    Rocks(&'a Rocks, rocksdb::WriteBatch),
    /// Operations applied in order under the memory backend's lock.
    Memory(&'a Memory, Vec<Op>),
}

impl Ops<'_> {
    pub(super) fn put(&mut self, cf: &str, k: &[u8], v: &[u8]) {
        match self {
            #[cfg(feature = "rocksdb")]
            Ops::Rocks(db, b) => db.put(b, cf, k, v),
            Ops::Memory(_, ops) => Memory::put(ops, cf, k, v),
        }
    }

    pub(super) fn delete(&mut self, cf: &str, k: &[u8]) {
        match self {
            #[cfg(feature = "rocksdb")]
            Ops::Rocks(db, b) => db.delete(b, cf, k),
            Ops::Memory(_, ops) => Memory::delete(ops, cf, k),
        }
    }

    /// Deletes every key in `from..to`.
    pub(super) fn delete_range(&mut self, cf: &str, from: &[u8], to: &[u8]) {
        match self {
            #[cfg(feature = "rocksdb")]
            Ops::Rocks(db, b) => db.delete_range(b, cf, from, to),
            Ops::Memory(_, ops) => Memory::delete_range(ops, cf, from, to),
        }
    }

    /// Writes the batch atomically to the backend that made it (`sync`: fsync the
    /// write-ahead log first; memory: nothing to sync). An empty batch writes nothing.
    pub(super) fn write(self, sync: bool) -> Result<(), StoreError> {
        match self {
            #[cfg(feature = "rocksdb")]
            Ops::Rocks(db, b) => db.write(b, sync),
            Ops::Memory(m, ops) => {
                let _ = sync;
                m.write(ops);
                Ok(())
            }
        }
    }
}
