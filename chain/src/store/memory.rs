//! The in-memory backend of the store: one ordered map per column family, for tests, the
//! fuzz targets and the network simulator, which need `Chain` without RocksDB (and without a
//! data dir). Nothing survives the last clone of the store.
//!
//! It keeps RocksDB's semantics as [`super::Store`] uses them: keys in bytewise order, scans
//! forward from a key or backward from a key (or the end), batches applied atomically and in
//! order, range deletes over `from..to`. `chain/tests/store_backends.rs` checks this against
//! RocksDB on the same operations.

use std::collections::BTreeMap;
use std::ops::{Bound, ControlFlow};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::ALL_CFS;
use super::kv::Scan;
use crate::error::StoreError;

type Map = BTreeMap<Vec<u8>, Vec<u8>>;

/// Every column family, behind one lock: the store is `Clone` and shared by threads (the
/// chain's writer, readers on a blocking pool), and one lock over all of them makes a batch
/// visible to readers all at once, as RocksDB's `WriteBatch` is. A read-write lock, since
/// reads (every RPC read, every account lookup) far outnumber the writer's batches.
pub(super) struct Memory {
    cfs: RwLock<Vec<Map>>,
}

/// One staged change of a batch (column families by their place in [`ALL_CFS`]).
pub(super) enum Op {
    Put(usize, Vec<u8>, Vec<u8>),
    Delete(usize, Vec<u8>),
    DeleteRange(usize, Vec<u8>, Vec<u8>),
}

/// A column family's place in [`ALL_CFS`].
fn index(cf: &str) -> usize {
    // Every column family the store names is in ALL_CFS, as RocksDB creates them at open.
    ALL_CFS.iter().position(|n| *n == cf).expect("column family created at open")
}

impl Memory {
    /// Empty column families.
    pub(super) fn new() -> Memory {
        Memory { cfs: RwLock::new(vec![Map::new(); ALL_CFS.len()]) }
    }

    // A panic while the lock is held cannot leave a map half-changed in a way that matters
    // more than the panic itself (a batch's ops are plain map inserts and removes), so a
    // poisoned lock is used as it is rather than spreading the panic to every reader.
    fn maps(&self) -> RwLockReadGuard<'_, Vec<Map>> {
        self.cfs.read().unwrap_or_else(|e| e.into_inner())
    }
    fn maps_mut(&self) -> RwLockWriteGuard<'_, Vec<Map>> {
        self.cfs.write().unwrap_or_else(|e| e.into_inner())
    }

    /// `f` of the value under `key`, if there is one.
    pub(super) fn read<R>(&self, cf: &str, key: &[u8], f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        self.maps()[index(cf)].get(key).map(|v| f(v))
    }

    /// Calls `f` on the entries of `scan`, in its order, until it breaks. The read lock is
    /// held throughout: `f` must not use the store.
    pub(super) fn scan(&self, cf: &str, scan: Scan<'_>, mut f: impl FnMut(&[u8], &[u8]) -> Result<ControlFlow<()>, StoreError>) -> Result<(), StoreError> {
        let maps = self.maps();
        let map = &maps[index(cf)];
        let mut visit = |(k, v): (&Vec<u8>, &Vec<u8>)| f(k, v);
        let mut run = |iter: &mut dyn Iterator<Item = (&Vec<u8>, &Vec<u8>)>| -> Result<(), StoreError> {
            for entry in iter {
                if visit(entry)?.is_break() {
                    break;
                }
            }
            Ok(())
        };
        match scan {
            Scan::Forward(from) => run(&mut map.range::<[u8], _>((Bound::Included(from), Bound::Unbounded))),
            Scan::Reverse(Some(from)) => run(&mut map.range::<[u8], _>((Bound::Unbounded, Bound::Included(from))).rev()),
            Scan::Reverse(None) => run(&mut map.iter().rev()),
        }
    }

    /// Stages a put.
    pub(super) fn put(ops: &mut Vec<Op>, cf: &str, k: &[u8], v: &[u8]) {
        ops.push(Op::Put(index(cf), k.to_vec(), v.to_vec()));
    }

    /// Stages a delete.
    pub(super) fn delete(ops: &mut Vec<Op>, cf: &str, k: &[u8]) {
        ops.push(Op::Delete(index(cf), k.to_vec()));
    }

    /// Stages a delete of every key in `from..to`.
    pub(super) fn delete_range(ops: &mut Vec<Op>, cf: &str, from: &[u8], to: &[u8]) {
        ops.push(Op::DeleteRange(index(cf), from.to_vec(), to.to_vec()));
    }

    /// Applies `ops` in order, atomically: readers see all of them or none.
    pub(super) fn write(&self, ops: Vec<Op>) {
        if ops.is_empty() {
            return;
        }
        let mut maps = self.maps_mut();
        for op in ops {
            match op {
                Op::Put(cf, k, v) => {
                    maps[cf].insert(k, v);
                }
                Op::Delete(cf, k) => {
                    maps[cf].remove(&k);
                }
                Op::DeleteRange(cf, from, to) => {
                    // An empty or inverted range deletes nothing (and `BTreeMap::range` would
                    // panic on an inverted one).
                    if from < to {
                        let doomed: Vec<Vec<u8>> =
                            maps[cf].range::<[u8], _>((Bound::Included(&from[..]), Bound::Excluded(&to[..]))).map(|(k, _)| k.clone()).collect();
                        for k in doomed {
                            maps[cf].remove(&k);
                        }
                    }
                }
            }
        }
    }
}
