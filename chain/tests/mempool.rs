//! Mempool behaviour: nonce runs, replacement, fee priority, eviction, limits.

mod common;

use cairn_chain::mempool::{Mempool, MempoolLimits};
use cairn_chain::{Address, Keypair, Transaction, TxError};
use common::*;

fn pool(t: &TestChain, max_txs: usize, per_sender: usize) -> Mempool {
    Mempool::new(t.genesis(), MempoolLimits { max_txs, max_per_sender: per_sender, min_fee: 1 })
}

fn tx(t: &TestChain, k: &Keypair, nonce: u64, fee: u64) -> Transaction {
    Transaction::signed(k, t.genesis(), Address([1; 32]), 10, fee, nonce)
}

#[test]
fn nonce_runs_and_next_nonce() {
    let t = TestChain::new(test_spec());
    let mut m = pool(&t, 100, 10);
    let k = dev(0);
    for n in 0..3 {
        m.insert(tx(&t, &k, n, 1), &t.store).unwrap();
    }
    let acct = cairn_chain::AccountSource::account(&t.store, &k.address()).unwrap();
    assert_eq!(m.next_nonce(&k.address(), &acct), 3);
    assert!(matches!(m.insert(tx(&t, &k, 5, 1), &t.store), Err(TxError::NonceTooHigh { expected: 3, got: 5 })));
    let rival = Transaction::signed(&k, t.genesis(), Address([9; 32]), 10, 1, 1);
    assert!(matches!(m.insert(rival, &t.store), Err(TxError::FeeTooLow { .. })), "same fee does not replace");
    assert!(matches!(m.insert(tx(&t, &k, 3, 0), &t.store), Err(TxError::FeeTooLow { .. })), "below min fee");
    let same = tx(&t, &k, 2, 1);
    assert!(matches!(m.insert(same, &t.store), Err(TxError::AlreadyKnown(_))));
    let r = m.insert(tx(&t, &k, 1, 5), &t.store).unwrap();
    assert_eq!(r.removed.len(), 1, "higher fee replaces");
    assert_eq!(m.len(), 3);
}

#[test]
fn pending_spend_counts_against_balance() {
    let t = TestChain::new(test_spec());
    let mut m = pool(&t, 100, 10);
    let k = dev(0);
    let bal = cairn_chain::AccountSource::account(&t.store, &k.address()).unwrap().balance;
    let big = Transaction::signed(&k, t.genesis(), Address([1; 32]), bal - 10, 1, 0);
    m.insert(big, &t.store).unwrap();
    let next = Transaction::signed(&k, t.genesis(), Address([1; 32]), 10, 1, 1);
    assert_eq!(m.insert(next, &t.store).unwrap_err().code(), "insufficient_balance");
    // The running total follows replacements and removals: a cheaper nonce 0 replacing the big
    // one (higher fee, smaller amount) frees the balance for nonce 1...
    let small = Transaction::signed(&k, t.genesis(), Address([1; 32]), 5, 2, 0);
    m.insert(small.clone(), &t.store).unwrap();
    let next = Transaction::signed(&k, t.genesis(), Address([1; 32]), bal - 8, 1, 1);
    assert!(m.insert(next.clone(), &t.store).is_ok(), "exactly affordable: 5 + 2 + (bal - 8) + 1");
    let one_more = Transaction::signed(&k, t.genesis(), Address([1; 32]), 0, 1, 2);
    assert_eq!(m.insert(one_more.clone(), &t.store).unwrap_err().code(), "insufficient_balance");
    // ...and taking transactions out frees what they owed.
    assert_eq!(m.remove_ids(&[next.id()]).len(), 1);
    let again = Transaction::signed(&k, t.genesis(), Address([1; 32]), bal - 8, 1, 1);
    assert!(m.insert(again, &t.store).is_ok());
}

#[test]
fn selection_by_fee_respecting_nonce_order() {
    let t = TestChain::new(test_spec());
    let mut m = pool(&t, 100, 10);
    let (a, b) = (dev(0), dev(1));
    m.insert(tx(&t, &a, 0, 1), &t.store).unwrap();
    m.insert(tx(&t, &a, 1, 100), &t.store).unwrap();
    m.insert(tx(&t, &b, 0, 50), &t.store).unwrap();
    let sel = m.select(10, &t.store).unwrap();
    let order: Vec<(Address, u64)> = sel.iter().map(|t| (t.sender(), t.nonce)).collect();
    assert_eq!(order, vec![(b.address(), 0), (a.address(), 0), (a.address(), 1)]);
    assert_eq!(m.select(1, &t.store).unwrap().len(), 1);
}

/// Equal fees go first come, first served (whatever their IDs), within each sender's nonce
/// order; a higher fee still goes first.
#[test]
fn equal_fees_are_selected_in_arrival_order() {
    let t = TestChain::new(test_spec());
    let mut m = pool(&t, 100, 10);
    let senders: Vec<Keypair> = (0..6).map(dev).collect();
    let mut arrived = Vec::new();
    for n in 0..2 {
        for k in senders.iter().rev() {
            m.insert(tx(&t, k, n, 1), &t.store).unwrap();
            arrived.push((k.address(), n));
        }
    }
    let order = |m: &Mempool, max| m.select(max, &t.store).unwrap().iter().map(|t| (t.sender(), t.nonce)).collect::<Vec<_>>();
    assert_eq!(order(&m, 100), arrived);
    assert_eq!(order(&m, 3), arrived[..3].to_vec(), "a full block takes the oldest");
    // A higher fee goes before any older transaction.
    m.insert(tx(&t, &senders[5], 0, 2), &t.store).unwrap();
    assert_eq!(order(&m, 1), vec![(senders[5].address(), 0)], "the higher fee first");
}

#[test]
fn full_pool_evicts_cheapest_or_refuses() {
    let t = TestChain::new(test_spec());
    let mut m = pool(&t, 2, 10);
    m.insert(tx(&t, &dev(0), 0, 5), &t.store).unwrap();
    m.insert(tx(&t, &dev(1), 0, 3), &t.store).unwrap();
    assert_eq!(m.insert(tx(&t, &dev(2), 0, 2), &t.store).unwrap_err().code(), "mempool_full");
    let r = m.insert(tx(&t, &dev(2), 0, 9), &t.store).unwrap();
    assert_eq!(r.removed, vec![tx(&t, &dev(1), 0, 3).id()]);
    assert_eq!(m.len(), 2);
    // A full pool never evicts the tail of the run being extended (that would leave a gap).
    let mut m = pool(&t, 2, 10);
    m.insert(tx(&t, &dev(0), 0, 1), &t.store).unwrap();
    m.insert(tx(&t, &dev(0), 1, 1), &t.store).unwrap();
    assert_eq!(m.insert(tx(&t, &dev(0), 2, 5), &t.store).unwrap_err().code(), "mempool_full");
    let acct = cairn_chain::AccountSource::account(&t.store, &dev(0).address()).unwrap();
    assert_eq!(m.next_nonce(&dev(0).address(), &acct), 2);
    let mut m = pool(&t, 100, 2);
    m.insert(tx(&t, &dev(0), 0, 1), &t.store).unwrap();
    m.insert(tx(&t, &dev(0), 1, 1), &t.store).unwrap();
    assert_eq!(m.insert(tx(&t, &dev(0), 2, 1), &t.store).unwrap_err().code(), "too_many_pending");
}

/// What the full insert would refuse for want of room, the cheap checks refuse before any
/// signature is verified (a load past the pool's room costs no verification); what it would
/// take, they let through.
#[test]
fn cheap_checks_refuse_what_could_never_find_room() {
    let t = TestChain::new(test_spec());
    let pre = |m: &Mempool, tx: Transaction| m.precheck(&tx, &tx.id(), &t.store).map_err(|e| e.code());
    // A sender's run is full: its next nonce can never be admitted, nor any later one.
    let mut m = pool(&t, 100, 2);
    m.insert(tx(&t, &dev(0), 0, 1), &t.store).unwrap();
    assert_eq!(pre(&m, tx(&t, &dev(0), 2, 1)), Err("nonce_too_high"), "one past the run's room, with room left");
    m.insert(tx(&t, &dev(0), 1, 1), &t.store).unwrap();
    assert_eq!(pre(&m, tx(&t, &dev(0), 2, 1)), Err("too_many_pending"));
    assert_eq!(pre(&m, tx(&t, &dev(0), 1, 5)), Ok(()), "a replacement needs no room");
    // A full pool: the fee must beat the cheapest pending transaction's.
    let mut m = pool(&t, 2, 10);
    m.insert(tx(&t, &dev(0), 0, 5), &t.store).unwrap();
    m.insert(tx(&t, &dev(1), 0, 3), &t.store).unwrap();
    assert_eq!(pre(&m, tx(&t, &dev(2), 0, 3)), Err("mempool_full"));
    assert_eq!(pre(&m, tx(&t, &dev(2), 0, 4)), Ok(()));
    assert_eq!(pre(&m, tx(&t, &dev(1), 0, 4)), Ok(()), "a replacement needs no room");
    // Evicting, replacing and removing keep the floor true.
    m.insert(tx(&t, &dev(2), 0, 4), &t.store).unwrap();
    assert_eq!(pre(&m, tx(&t, &dev(3), 0, 4)), Err("mempool_full"), "the 3 was evicted: the floor is 4");
    m.insert(tx(&t, &dev(2), 0, 7), &t.store).unwrap();
    assert_eq!(pre(&m, tx(&t, &dev(3), 0, 4)), Err("mempool_full"), "the floor is 5 now");
    assert_eq!(pre(&m, tx(&t, &dev(3), 0, 6)), Ok(()));
    m.remove_ids(&[tx(&t, &dev(0), 0, 5).id()]);
    assert_eq!(pre(&m, tx(&t, &dev(3), 0, 1)), Ok(()), "room again");
}

#[test]
fn inclusion_removes_included_and_stale() {
    let mut t = TestChain::new(test_spec());
    let mut m = pool(&t, 100, 10);
    let k = dev(0);
    let t0 = tx(&t, &k, 0, 1);
    m.insert(t0.clone(), &t.store).unwrap();
    m.insert(tx(&t, &k, 1, 1), &t.store).unwrap();
    // A block includes a different nonce-0 transaction and the pool's nonce-1 one is still good.
    let other0 = Transaction::signed(&k, t.genesis(), Address([2; 32]), 1, 1, 0);
    let b = t.extend(Address([0xfa; 32]), vec![other0]);
    assert_eq!(m.remove_included(&b.transactions), vec![t0.id()], "the stale nonce-0 one is dropped and listed");
    assert_eq!(m.len(), 1);
    // A block with the pool's own nonce-1 transaction takes it out without listing it.
    let t1 = m.iter().next().unwrap().clone();
    let b = t.extend(Address([0xfa; 32]), vec![t1.clone()]);
    assert!(m.remove_included(&b.transactions).is_empty());
    assert!(m.is_empty());
}

#[test]
fn cheap_checks_come_before_any_signature_and_removal_keeps_runs_gap_free() {
    let t = TestChain::new(test_spec());
    let mut m = pool(&t, 100, 10);
    let k = dev(0);
    // A forged signature passes the cheap checks (they never look at it)...
    let mut forged = tx(&t, &k, 0, 1);
    forged.amount = 11;
    assert!(m.precheck(&forged, &forged.id(), &t.store).is_ok());
    // ...and the cheap failures are found without it.
    let pre = |m: &Mempool, tx: Transaction| m.precheck(&tx, &tx.id(), &t.store);
    assert!(matches!(pre(&m, tx(&t, &k, 0, 0)), Err(TxError::FeeTooLow { .. })));
    assert!(matches!(pre(&m, tx(&t, &k, 11, 1)), Err(TxError::NonceTooHigh { .. })), "beyond what the sender may queue");
    let broke = Keypair::generate();
    assert!(matches!(pre(&m, tx(&t, &broke, 0, 1)), Err(TxError::InsufficientBalance { .. })));
    let mut other = tx(&t, &k, 0, 1);
    other.chain = cairn_chain::Hash([7; 32]);
    assert!(matches!(m.precheck(&other, &other.id(), &t.store), Err(TxError::WrongChain { .. })));
    // The full insert verifies; insert_verified trusts its caller.
    assert!(matches!(m.insert(forged.clone(), &t.store), Err(TxError::BadSignature)));
    let ids: Vec<_> = (0..4)
        .map(|n| {
            let tx = tx(&t, &k, n, 1);
            let id = tx.id();
            m.insert_verified(tx, id, &t.store).unwrap().id
        })
        .collect();
    assert!(matches!(pre(&m, tx(&t, &k, 2, 1)), Err(TxError::AlreadyKnown(_))));
    // Taking out nonce 1 takes 2 and 3 with it: the run stays gap-free.
    let mut removed = m.remove_ids(&ids[1..2]);
    removed.sort();
    let mut want = ids[1..].to_vec();
    want.sort();
    assert_eq!(removed, want);
    assert_eq!(m.len(), 1);
    let acct = cairn_chain::AccountSource::account(&t.store, &k.address()).unwrap();
    assert_eq!(m.next_nonce(&k.address(), &acct), 1);
}
