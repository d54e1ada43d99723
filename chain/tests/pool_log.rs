//! The persisted mempool (`cairn_chain::pool_log`): a block moves the floor instead of deleting
//! entries, and what a reopened store hands back is exactly what was pending (after the
//! mempool refuses the confirmed entries above the floor), across blocks, reorgs and the
//! compaction that keeps it bounded.

mod common;

use std::collections::BTreeSet;

use cairn_chain::mempool::{Mempool, MempoolLimits};
use cairn_chain::{Address, Chain, ChainSpec, Outcome, Store, Transaction, TxId};
use common::*;

/// A chain in `dir` (opened again after each `reopen`) with the mempool the node keeps beside it.
struct Node {
    dir: std::path::PathBuf,
    chain: Chain,
    pool: Mempool,
    spec: ChainSpec,
}

impl Node {
    fn open(dir: &std::path::Path, spec: ChainSpec) -> Node {
        let store = Store::open(dir, &spec.chain_id, spec.genesis().hash()).unwrap();
        let mut chain = Chain::open(store.clone(), spec.clone()).unwrap();
        // What the node does at start: take back what the pool accepts, delete the rest.
        let mut pool = Mempool::new(chain.genesis_hash(), MempoolLimits::default());
        let mut saved = store.mempool_entries(usize::MAX).unwrap();
        saved.sort_by_key(|(_, tx)| (tx.sender(), tx.nonce));
        let mut dead = store.batch();
        for (seq, tx) in saved {
            let id = tx.id();
            match pool.insert(tx, &chain) {
                Ok(_) => chain.pool_mut().restored(id, seq),
                Err(_) => dead.delete_mempool_tx(seq),
            }
        }
        store.write(dead).unwrap();
        Node { dir: dir.to_path_buf(), chain, pool, spec }
    }

    /// Drops every handle on the store (as a killed process would) and opens it again.
    fn reopen(self) -> Node {
        let Node { dir, chain, pool, spec } = self;
        drop((chain, pool));
        Node::open(&dir, spec)
    }

    fn admit(&mut self, txs: &[Transaction]) {
        let store = self.chain.store().clone();
        let mut b = store.batch();
        for tx in txs {
            let ins = self.pool.insert(tx.clone(), &self.chain).unwrap();
            self.chain.pool_mut().put(&mut b, ins.id, tx);
        }
        store.write_unsynced(b).unwrap();
    }

    fn block(&mut self, txs: Vec<Transaction>) -> cairn_chain::Block {
        let t = self.chain.tip().header.timestamp + self.spec.block_time_ms;
        let header = self.chain.template(Address([0xfa; 32]), &txs, t).unwrap();
        cairn_chain::Block { header: mine(header), transactions: txs }
    }

    /// Submits `block`; the pool follows as the node's does (included and stale ones out,
    /// returning ones back).
    fn submit(&mut self, block: cairn_chain::Block) -> Outcome {
        let t = block.header.timestamp;
        let out = self.chain.submit(block, t).unwrap();
        if let Outcome::Connected { applied, undone } = &out {
            let store = self.chain.store().clone();
            let mut b = store.batch();
            for bl in applied {
                for id in self.pool.remove_included(&bl.transactions) {
                    self.chain.pool_mut().delete(&mut b, &id);
                }
            }
            for bl in undone {
                for tx in &bl.transactions {
                    if store.tx_location(&tx.id()).unwrap().is_none() && self.pool.insert(tx.clone(), &self.chain).is_ok() {
                        continue;
                    }
                    self.chain.pool_mut().delete(&mut b, &tx.id());
                }
            }
            let pool = &self.pool;
            let c = self.chain.pool().compact(&mut b, |id| pool.get(id));
            store.write_unsynced(b).unwrap();
            if let Some(c) = c {
                self.chain.pool_mut().compacted(c);
            }
        }
        out
    }

    fn pending(&self) -> BTreeSet<TxId> {
        self.pool.ids().copied().collect()
    }
}

fn ids(txs: &[&Transaction]) -> BTreeSet<TxId> {
    txs.iter().map(|t| t.id()).collect()
}

#[test]
fn a_reopened_store_gives_back_exactly_what_was_pending() {
    let dir = tempfile::tempdir().unwrap();
    let spec = ChainSpec::devnet();
    let mut n = Node::open(dir.path(), spec);
    let g = n.chain.genesis_hash();
    let old = Transaction::signed(&dev(0), g, Address([1; 32]), 10, 1, 0);
    let confirmed = Transaction::signed(&dev(1), g, Address([2; 32]), 20, 1, 0);
    let after = Transaction::signed(&dev(1), g, Address([3; 32]), 30, 1, 1);
    n.admit(&[old.clone(), confirmed.clone(), after.clone()]);
    // `confirmed` leaves in a block while `old`, admitted before it, stays: its entry is not
    // deleted, the floor stays at `old`'s.
    let floor = n.chain.pool().floor();
    let b = n.block(vec![confirmed.clone()]);
    assert!(matches!(n.submit(b), Outcome::Connected { .. }));
    assert_eq!(n.chain.pool().floor(), floor);
    assert_eq!(n.chain.store().mempool_entries(100).unwrap().len(), 3, "the confirmed entry is still there");
    assert_eq!(n.pending(), ids(&[&old, &after]));

    let mut n = n.reopen();
    assert_eq!(n.pending(), ids(&[&old, &after]), "nothing confirmed comes back, nothing pending is lost");
    assert_eq!(n.chain.store().mempool_entries(100).unwrap().len(), 2, "the start deleted the confirmed entry");

    // Everything confirmed: the floor passes every entry.
    let b = n.block(vec![old.clone(), after.clone()]);
    n.submit(b);
    assert!(n.pending().is_empty());
    assert!(n.chain.store().mempool_entries(100).unwrap().is_empty());
    let late = Transaction::signed(&dev(2), g, Address([4; 32]), 40, 1, 0);
    n.admit(std::slice::from_ref(&late));
    let n = n.reopen();
    assert_eq!(n.pending(), ids(&[&late]), "numbers continue past the floor after a reopen");
}

#[test]
fn a_reorg_returns_its_transactions_to_the_persisted_pool() {
    let dir = tempfile::tempdir().unwrap();
    let spec = ChainSpec::devnet();
    let mut n = Node::open(dir.path(), spec.clone());
    let g = n.chain.genesis_hash();
    let a = Transaction::signed(&dev(0), g, Address([1; 32]), 10, 1, 0);
    let keep = Transaction::signed(&dev(1), g, Address([2; 32]), 20, 1, 0);
    n.admit(&[a.clone(), keep.clone()]);
    let b1 = n.block(vec![a.clone()]);
    n.submit(b1);
    assert_eq!(n.pending(), ids(&[&keep]));

    // A longer branch from genesis without `a`: `a` comes back, on disk too.
    let side_dir = tempfile::tempdir().unwrap();
    let mut side = Node::open(side_dir.path(), spec);
    let s1 = side.block(vec![]);
    side.submit(s1.clone());
    let s2 = side.block(vec![]);
    side.submit(s2.clone());
    assert!(matches!(n.submit(s1), Outcome::SideChain));
    assert!(matches!(n.submit(s2), Outcome::Connected { ref undone, .. } if undone.len() == 1));
    assert_eq!(n.pending(), ids(&[&a, &keep]));
    let n = n.reopen();
    assert_eq!(n.pending(), ids(&[&a, &keep]), "the returning transaction was persisted with the reorg");
}

#[test]
fn a_long_pending_transaction_does_not_let_dead_entries_pile_up() {
    let dir = tempfile::tempdir().unwrap();
    let spec = ChainSpec::devnet();
    let mut n = Node::open(dir.path(), spec);
    let g = n.chain.genesis_hash();
    // dev(0)'s transfer is admitted first and never included.
    let stuck = Transaction::signed(&dev(0), g, Address([1; 32]), 1, 1, 0);
    n.admit(std::slice::from_ref(&stuck));
    let k = dev(1);
    let (mut nonce, mut most) = (0, 0);
    for _ in 0..30 {
        let txs: Vec<Transaction> = (0..256)
            .map(|_| {
                nonce += 1;
                Transaction::signed(&k, g, Address([2; 32]), 1, 1, nonce - 1)
            })
            .collect();
        n.admit(&txs);
        let b = n.block(txs);
        n.submit(b);
        most = most.max(n.chain.store().mempool_entries(usize::MAX).unwrap().len());
    }
    // 7,680 confirmed above the stuck one: the compaction moved it past them.
    assert!(most <= 4096 + 2 + 256, "at most the slack of dead entries stays: {most}");
    assert!(n.chain.pool().floor() > 0);
    let n = n.reopen();
    assert_eq!(n.pending(), ids(&[&stuck]));
}
