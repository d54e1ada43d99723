//! The memory store behaves as the RocksDB store: the same batches (puts, deletes, range
//! deletes, in any order within a batch) leave the same answers to every read that scans —
//! the persisted mempool in admission order from its floor, its next number (read from the
//! end), the address index newest first from a cursor, and raw column families in key order.

use cairn_chain::keys::{PublicKey, SignatureBytes};
use cairn_chain::store::{CF_BANS, CF_PEERS};
use cairn_chain::{Address, Hash, Store, Transaction};
use proptest::prelude::*;

/// One change, on a few keys so that changes collide.
#[derive(Clone, Debug)]
enum Op {
    PutMempool(u64, u8),
    DeleteMempool(u64),
    DeleteMempoolRange(u64, u64),
    SetFloor(u64),
    IndexAddress(u8, u64, u32, u8),
    UnindexAddress(u8, u64, u32),
    PutRaw(bool, Vec<u8>, Vec<u8>),
    DeleteRaw(bool, Vec<u8>),
}

fn arb_op() -> impl Strategy<Value = Op> {
    let seq = 0u64..48;
    prop_oneof![
        4 => (seq.clone(), any::<u8>()).prop_map(|(s, t)| Op::PutMempool(s, t)),
        2 => seq.clone().prop_map(Op::DeleteMempool),
        // `from <= to`, as the pool log stages them (an inverted range is tested alone).
        1 => (seq.clone(), 0u64..16).prop_map(|(a, n)| Op::DeleteMempoolRange(a, a + n)),
        1 => seq.prop_map(Op::SetFloor),
        4 => (0u8..3, 0u64..6, 0u32..3, any::<u8>()).prop_map(|(a, h, i, t)| Op::IndexAddress(a, h, i, t)),
        2 => (0u8..3, 0u64..6, 0u32..3).prop_map(|(a, h, i)| Op::UnindexAddress(a, h, i)),
        2 => (any::<bool>(), prop::collection::vec(0u8..3, 0..3), prop::collection::vec(any::<u8>(), 0..3)).prop_map(|(c, k, v)| Op::PutRaw(c, k, v)),
        1 => (any::<bool>(), prop::collection::vec(0u8..3, 0..3)).prop_map(|(c, k)| Op::DeleteRaw(c, k)),
    ]
}

/// A transaction told apart by `n` (never verified here: the store only encodes it).
fn tx(n: u8) -> Transaction {
    Transaction { chain: Hash([1; 32]), from: PublicKey([n; 32]), to: Address([2; 32]), amount: n.into(), fee: 1, nonce: 0, signature: SignatureBytes([0; 64]) }
}

fn address(a: u8) -> Address {
    // Neighbours in key order, so a scan past one address's entries meets the next one's.
    let mut b = [7u8; 32];
    b[31] = a;
    Address(b)
}

fn cf(peers: bool) -> &'static str {
    if peers { CF_PEERS } else { CF_BANS }
}

fn apply(store: &Store, batch: &[Op]) {
    let mut b = store.batch();
    for op in batch {
        match op {
            Op::PutMempool(s, t) => b.put_mempool_tx(*s, &tx(*t)),
            Op::DeleteMempool(s) => b.delete_mempool_tx(*s),
            Op::DeleteMempoolRange(from, to) => b.delete_mempool_range(*from, *to),
            Op::SetFloor(f) => b.set_mempool_floor(*f),
            Op::IndexAddress(a, h, i, t) => b.index_address_tx(&address(*a), *h, *i, &Hash([*t; 32])),
            Op::UnindexAddress(a, h, i) => b.unindex_address_tx(&address(*a), *h, *i),
            Op::PutRaw(c, k, v) => b.put_raw(cf(*c), k, v),
            Op::DeleteRaw(c, k) => b.delete_raw(cf(*c), k),
        }
    }
    store.write(b).unwrap();
}

/// Everything the scanning reads answer, as one comparable value.
fn view(store: &Store) -> String {
    let mut out = format!("floor {:?} next {}\n", store.mempool_floor().unwrap(), store.mempool_next().unwrap());
    for max in [0, 1, 3, usize::MAX] {
        let entries: Vec<(u64, u64)> = store.mempool_entries(max).unwrap().into_iter().map(|(s, t)| (s, t.amount)).collect();
        out += &format!("mempool {max}: {entries:?}\n");
    }
    for a in 0..4 {
        let cursors = [None, Some((0, 0)), Some((2, 1)), Some((5, 2)), Some((9, 0))];
        for before in cursors {
            for max in [1, 2, 100] {
                let txs: Vec<(u64, u32, u8)> =
                    store.address_txs(&address(a), before, max).unwrap().into_iter().map(|e| (e.height, e.index, e.txid.0[0])).collect();
                out += &format!("address {a} before {before:?} max {max}: {txs:?}\n");
            }
        }
    }
    for c in [true, false] {
        for max in [1, usize::MAX] {
            out += &format!("raw {} {max}: {:?}\n", cf(c), store.raw_entries(cf(c), max).unwrap());
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn memory_store_answers_as_rocksdb(batches in prop::collection::vec(prop::collection::vec(arb_op(), 0..8), 1..8)) {
        let genesis = Hash([3; 32]);
        let dir = tempfile::tempdir().unwrap();
        let mut rocks = Store::open(dir.path(), "backends", genesis).unwrap();
        rocks.set_sync_writes(false);
        let memory = Store::memory("backends", genesis);
        prop_assert_eq!(view(&rocks), view(&memory), "new stores");
        for batch in &batches {
            apply(&rocks, batch);
            apply(&memory, batch);
            prop_assert_eq!(view(&rocks), view(&memory), "after {:?}", batch);
        }
    }
}

/// A range delete that is empty or inverted deletes nothing (and does not panic).
#[test]
fn empty_and_inverted_ranges_delete_nothing_in_memory() {
    let store = Store::memory("backends", Hash([3; 32]));
    let mut b = store.batch();
    for s in 0..4 {
        b.put_mempool_tx(s, &tx(s as u8));
    }
    b.delete_mempool_range(2, 2);
    b.delete_mempool_range(3, 1);
    store.write(b).unwrap();
    assert_eq!(store.mempool_entries(usize::MAX).unwrap().len(), 4);
    assert_eq!(store.mempool_next().unwrap(), 4);
}
