//! One vector per validation rule: each rejection reason is reached through `Chain::submit`,
//! and nothing of a rejected block is stored; those that reach the store run on both of its
//! backends (RocksDB and memory).

mod common;

use std::collections::BTreeSet;

use cairn_chain::{AccountSource, Address, BlockError, Hash, Keypair, Target, Transaction, TxError};
use common::*;

on_both_backends!(
    header_rules,
    size_and_count_limits,
    transaction_rules,
    known_invalid_blocks_and_their_children_are_refused_cheaply,
    reorg_deeper_than_the_limit_is_refused,
    side_chain_that_breaks_a_state_rule_is_forgotten_on_reorg,
    a_run_keeps_the_blocks_before_a_bad_one_and_rejects_it_as_alone,
);

fn farmer() -> Address {
    Address([0xfa; 32])
}

/// Submits `block` expecting `code`; checks the chain and store are untouched.
fn rejects(t: &mut TestChain, block: cairn_chain::Block, code: &str) {
    let tip = t.chain.tip().clone();
    let hash = block.hash();
    let err = t.submit(block).expect_err("block should be rejected");
    assert_eq!(err.code(), code, "{err}");
    assert_eq!(t.chain.tip(), &tip, "tip moved");
    if code != "already_known" {
        assert!(!t.store.has_block(&hash).unwrap(), "rejected block was stored");
    }
}

fn header_rules(backend: Backend) {
    let mut t = TestChain::on(backend, test_spec());
    t.extend(farmer(), vec![]);
    t.extend(farmer(), vec![]);
    let good = t.make_block(farmer(), vec![]);

    let mut b = good.clone();
    b.header.version = 2;
    rejects(&mut t, reseal(b), "bad_version");

    let mut b = good.clone();
    while b.header.target.is_met_by(&b.hash()) {
        b.header.nonce += 1;
    }
    rejects(&mut t, b, "bad_proof");

    let mut b = good.clone();
    b.header.prev_hash = Hash([9; 32]);
    rejects(&mut t, reseal(b), "unknown_parent");

    let mut b = good.clone();
    b.header.height += 1;
    rejects(&mut t, reseal(b), "bad_height");

    let mut b = good.clone();
    b.header.timestamp = t.chain.median_time_past(t.chain.tip()).unwrap();
    rejects(&mut t, reseal(b), "timestamp_too_old");

    let mut b = good.clone();
    b.header.timestamp = t.next_time() + t.chain.spec().max_future_drift_ms + 1;
    let b = reseal(b);
    let err = t.chain.submit(b, t.next_time()).unwrap_err();
    assert_eq!(err.code(), "timestamp_in_future");

    let mut b = good.clone();
    let mut harder = [0xff; 32];
    harder[0] = 0x00;
    b.header.target = Target(harder);
    rejects(&mut t, reseal(b), "bad_target");

    let mut b = good.clone();
    b.header.tx_root = Hash([3; 32]);
    rejects(&mut t, common::mine_only(b), "bad_merkle_root");

    // The good block still goes in afterwards.
    t.submit(good).unwrap();
}

fn size_and_count_limits(backend: Backend) {
    let mut t = TestChain::on(backend, test_spec());
    let k = dev(0);
    let txs: Vec<Transaction> = (0..5).map(|i| t.transfer(&k, farmer(), 1, i)).collect();
    let b = reseal(t.make_block(farmer(), txs[..5].to_vec()));
    rejects(&mut t, b, "too_many_transactions");
    // 4 transactions are within the count limit but over the byte limit (room for 3).
    let b = reseal(t.make_block(farmer(), txs[..4].to_vec()));
    rejects(&mut t, b, "block_too_large");
    t.extend(farmer(), txs[..3].to_vec());
}

fn transaction_rules(backend: Backend) {
    let mut t = TestChain::on(backend, test_spec());
    let k = dev(1);
    let to = Address([0x70; 32]);

    let tx = t.transfer(&k, to, 5, 0);
    let b = t.make_block(farmer(), vec![tx.clone(), tx.clone()]);
    rejects(&mut t, b, "duplicate_transaction");

    let mut forged = tx.clone();
    forged.amount = 6;
    let b = t.make_block(farmer(), vec![forged]);
    rejects(&mut t, b, "bad_signature");

    let other = Transaction::signed(&k, Hash::digest(b"another chain"), to, 5, 1, 0);
    let b = t.make_block(farmer(), vec![other]);
    rejects(&mut t, b, "wrong_chain");

    let b = t.make_block(farmer(), vec![t.transfer(&k, to, 5, 1)]);
    rejects(&mut t, b, "nonce_too_high");

    let broke = Keypair::generate();
    let b = t.make_block(farmer(), vec![t.transfer(&broke, to, 5, 0)]);
    rejects(&mut t, b, "insufficient_balance");

    let huge = Transaction::signed(&k, t.genesis(), to, u64::MAX, 1, 0);
    let b = t.make_block(farmer(), vec![huge]);
    rejects(&mut t, b, "overflow");

    t.extend(farmer(), vec![tx.clone()]);
    assert_eq!(t.store.account(&to).unwrap().balance, 5);
    let replay = Transaction::signed(&k, t.genesis(), to, 7, 1, 0);
    let b = t.make_block(farmer(), vec![replay]);
    rejects(&mut t, b, "nonce_too_low");
}

#[test]
fn reward_overflow_is_invalid_not_a_wrap() {
    let mut spec = test_spec();
    spec.block_reward = u64::MAX;
    let mut t = TestChain::new(spec);
    t.extend(farmer(), vec![]);
    assert_eq!(t.store.account(&farmer()).unwrap().balance, u64::MAX);
    let b = t.make_block(farmer(), vec![]);
    rejects(&mut t, b, "overflow");
}

fn known_invalid_blocks_and_their_children_are_refused_cheaply(backend: Backend) {
    let mut t = TestChain::on(backend, test_spec());
    let mut bad = t.make_block(farmer(), vec![]);
    bad.header.version = 7;
    let bad = reseal(bad);
    rejects(&mut t, bad.clone(), "bad_version");
    rejects(&mut t, bad.clone(), "known_invalid");
    let mut child = t.make_block(farmer(), vec![]);
    child.header.prev_hash = bad.hash();
    child.header.height = 2;
    rejects(&mut t, reseal(child), "known_invalid");
}

fn reorg_deeper_than_the_limit_is_refused(backend: Backend) {
    let spec = test_spec(); // max_reorg_depth 3
    let mut main = TestChain::on(backend, spec.clone());
    let mut side = TestChain::on(backend, spec);
    for _ in 0..3 {
        main.extend(farmer(), vec![]);
    }
    let side_blocks: Vec<_> = (0..6).map(|_| side.extend(Address([0x5e; 32]), vec![])).collect();
    for b in &side_blocks[..3] {
        assert!(matches!(main.submit(b.clone()).unwrap(), cairn_chain::Outcome::SideChain));
    }
    main.extend(farmer(), vec![]);
    main.extend(farmer(), vec![]);
    // A block so low it could never become best is not even stored.
    let mut low = side.make_block(farmer(), vec![]);
    low.header.height = 1;
    low.header.prev_hash = main.chain.genesis_hash();
    let low = reseal(low);
    rejects(&mut main, low, "reorg_too_deep");
    // The side branch outgrows the main chain, but switching would undo 5 > 3 blocks.
    for b in &side_blocks[3..5] {
        assert!(matches!(main.submit(b.clone()).unwrap(), cairn_chain::Outcome::SideChain));
    }
    let err = main.submit(side_blocks[5].clone()).unwrap_err();
    assert_eq!(err.code(), "reorg_too_deep", "{err}");
    assert_eq!(main.chain.tip().header.height, 5);
}

fn side_chain_that_breaks_a_state_rule_is_forgotten_on_reorg(backend: Backend) {
    let spec = test_spec();
    let mut main = TestChain::on(backend, spec.clone());
    main.extend(farmer(), vec![]);
    // A side branch whose second block spends from an empty account: valid in isolation
    // (signature, root, proof) but not against state.
    let side = TestChain::on(backend, spec);
    let b1 = side.make_block(Address([1; 32]), vec![]);
    let mut side = side;
    side.submit(b1.clone()).unwrap();
    let broke = Keypair::generate();
    let bad_tx = Transaction::signed(&broke, side.genesis(), farmer(), 5, 1, 0);
    let header = side.chain.template(Address([1; 32]), std::slice::from_ref(&bad_tx), side.next_time()).unwrap();
    let b2 = cairn_chain::Block { header: mine(header), transactions: vec![bad_tx] };
    assert!(matches!(main.submit(b1.clone()).unwrap(), cairn_chain::Outcome::SideChain));
    let err = main.submit(b2.clone()).unwrap_err();
    assert_eq!(err.code(), "insufficient_balance");
    assert_eq!(main.chain.tip().header.height, 1);
    assert!(!main.store.has_block(&b2.hash()).unwrap());
}

/// Every consensus error code has a vector above (mempool-only codes are covered in the
/// mempool tests; storage errors are not a rule).
#[test]
fn every_rule_has_a_vector() {
    let covered: BTreeSet<&str> = [
        "bad_version",
        "bad_proof",
        "unknown_parent",
        "bad_height",
        "timestamp_too_old",
        "timestamp_in_future",
        "bad_target",
        "bad_merkle_root",
        "too_many_transactions",
        "block_too_large",
        "duplicate_transaction",
        "bad_signature",
        "wrong_chain",
        "nonce_too_high",
        "nonce_too_low",
        "insufficient_balance",
        "overflow",
        "known_invalid",
        "reorg_too_deep",
    ]
    .into();
    let h = Hash::ZERO;
    let all_block_errors = [
        BlockError::BadVersion(0),
        BlockError::TooManyTransactions { count: 0, max: 0 },
        BlockError::TooLarge { size: 0, max: 0 },
        BlockError::UnknownParent(h),
        BlockError::BadHeight { expected: 0, got: 0 },
        BlockError::TimestampTooOld { median: 0, got: 0 },
        BlockError::TimestampInFuture { got: 0, now: 0, max_drift_ms: 0 },
        BlockError::BadTarget { expected: String::new(), got: String::new() },
        BlockError::BadProof,
        BlockError::BadMerkleRoot { computed: h, got: h },
        BlockError::DuplicateTransaction(h),
        BlockError::RewardOverflow,
        BlockError::KnownInvalid,
        BlockError::ReorgTooDeep { depth: 0, max: 0 },
    ];
    let tx_errors = [
        TxError::BadSignature,
        TxError::WrongChain { expected: h, got: h },
        TxError::NonceTooLow { expected: 0, got: 0 },
        TxError::NonceTooHigh { expected: 0, got: 0 },
        TxError::InsufficientBalance { balance: 0, needed: 0 },
        TxError::Overflow,
    ];
    for code in all_block_errors.iter().map(BlockError::code).chain(tx_errors.iter().map(TxError::code)) {
        assert!(covered.contains(code), "no vector for {code}");
    }
}

/// Blocks checked off the chain thread: a `CheckedBlock` connects like a submitted one, one
/// checked for another chain is refused, and a failed check is remembered for what it found.
#[test]
fn checked_blocks_connect_only_on_the_chain_they_were_checked_for() {
    let mut t = TestChain::new(test_spec());
    let spec = t.chain.spec().clone();
    let b = t.make_block(farmer(), vec![]);
    let now = t.next_time();
    let other = cairn_chain::CheckedBlock::check(&spec, &Hash([9; 32]), b.clone()).unwrap();
    assert!(matches!(t.chain.submit_checked(other, now), Err(BlockError::Store(_))), "checked for another chain");
    let ok = cairn_chain::CheckedBlock::check(&spec, &t.genesis(), b.clone()).unwrap();
    assert!(matches!(t.chain.submit_checked(ok, now), Ok(cairn_chain::Outcome::Connected { .. })));
    assert_eq!(t.chain.tip().hash, b.hash());
    // A block failing the checks never becomes a CheckedBlock.
    let mut bad = t.make_block(farmer(), vec![]);
    bad.header.tx_root = Hash([3; 32]);
    let bad = mine_only(bad);
    let failed = cairn_chain::CheckedBlock::check(&spec, &t.genesis(), bad).unwrap_err();
    assert_eq!(failed.1.code(), "bad_merkle_root");
}

/// Checking many blocks at once (signatures batched across blocks) gives each block exactly
/// the answer it gets alone: a bad signature condemns only its block, at its index, and the
/// blocks around it still pass.
#[test]
fn blocks_checked_together_get_the_answers_they_get_alone() {
    let t = TestChain::new(test_spec());
    let spec = t.chain.spec().clone();
    let g = t.genesis();
    let to = |i: u8| Address([i; 32]);
    let good = |skip: u64| t.make_block(farmer(), vec![t.transfer(&dev(0), to(1), 5, skip), t.transfer(&dev(1), to(2), 5, skip)]);
    let mut bad_sig = good(1);
    bad_sig.transactions[1].signature.0[40] ^= 1;
    let bad_sig = reseal(bad_sig);
    let mut bad_root = good(2);
    bad_root.header.tx_root = Hash([3; 32]);
    let bad_root = mine_only(bad_root);
    let blocks = vec![good(0), bad_sig, good(3), bad_root, t.make_block(farmer(), vec![]), good(4)];
    let summary = |r: &cairn_chain::CheckResult| r.as_ref().map(|c| c.hash()).map_err(|f| (f.0, f.1.code(), format!("{:?}", f.1)));
    let alone: Vec<_> = blocks.iter().map(|b| summary(&cairn_chain::CheckedBlock::check(&spec, &g, b.clone()))).collect();
    let together: Vec<_> = cairn_chain::check_blocks(&spec, &g, blocks.clone(), None).iter().map(summary).collect();
    assert_eq!(together, alone);
    let bad = alone[1].as_ref().unwrap_err();
    assert!(bad.1 == "bad_signature" && bad.2.contains("index: 1"), "{bad:?}");
    assert_eq!(alone[3].as_ref().unwrap_err().1, "bad_merkle_root");
    assert_eq!(alone.iter().filter(|r| r.is_ok()).count(), 4);
    // All valid: every block passes in one batch.
    let valid: Vec<_> = [0, 2, 4, 5].iter().map(|i| blocks[*i].clone()).collect();
    assert!(cairn_chain::check_blocks(&spec, &g, valid, None).iter().all(|r| r.is_ok()));
}

/// A run of blocks committed together (one overlay, one batch) ends exactly as the blocks
/// submitted one by one: the blocks before a state-invalid one are kept, that one gets the
/// error it gets alone, the ones after it are not tried, and the store holds the same accounts.
fn a_run_keeps_the_blocks_before_a_bad_one_and_rejects_it_as_alone(backend: Backend) {
    let spec = test_spec();
    let mut a = TestChain::on(backend, spec.clone());
    let (k, to) = (dev(0), Address([7; 32]));
    let b1 = a.extend(farmer(), vec![a.transfer(&k, to, 5, 0)]);
    let b2 = a.extend(farmer(), vec![a.transfer(&k, to, 6, 0), a.transfer(&k, Address([8; 32]), 1, 1)]);
    // Spends more than the sender holds: passes every stateless check, fails when applied.
    let balance = a.store.account(&k.address()).unwrap().balance;
    let b3 = a.make_block(farmer(), vec![a.transfer(&k, to, balance, 0)]);
    let mut h4 = b3.header.clone();
    (h4.prev_hash, h4.height, h4.timestamp) = (b3.hash(), b3.header.height + 1, b3.header.timestamp + spec.block_time_ms);
    h4.tx_root = cairn_chain::block::merkle_root(&[]);
    let b4 = cairn_chain::Block { header: mine(h4), transactions: vec![] };
    let alone = a.submit(b3.clone()).expect_err("overspending block");

    let mut b = TestChain::on(backend, spec.clone());
    let now = b4.header.timestamp;
    let g = b.genesis();
    let check = |blk: &cairn_chain::Block| cairn_chain::CheckedBlock::check(&spec, &g, blk.clone()).unwrap();
    let run = vec![check(&b1), check(&b2), check(&b3), check(&b4)];
    let results = b.chain.submit_run(run, now);
    assert_eq!(results.len(), 3, "the block after the bad one is not tried");
    assert!(results[..2].iter().all(|r| matches!(r, Ok(cairn_chain::Outcome::Connected { .. }))));
    let err = results[2].as_ref().expect_err("the bad block fails");
    assert_eq!((err.code(), err.to_string()), (alone.code(), alone.to_string()));
    assert_eq!(b.chain.tip().hash, b2.hash());
    assert!(!b.store.has_block(&b3.hash()).unwrap());
    for addr in [k.address(), to, Address([8; 32]), farmer()] {
        assert_eq!(b.store.account(&addr).unwrap(), a.store.account(&addr).unwrap(), "{addr}");
        assert_eq!(b.chain.account(&addr).unwrap(), a.store.account(&addr).unwrap(), "cached {addr}");
    }
    // A known block in a run takes the one-block path; the run goes on after it.
    let again = b.chain.submit_run(vec![check(&b1), check(&b2)], now);
    assert!(again.iter().all(|r| matches!(r, Ok(cairn_chain::Outcome::AlreadyKnown))), "{again:?}");
    let next = b.make_block(farmer(), vec![b.transfer(&k, to, 1, 0)]);
    let mixed = b.chain.submit_run(vec![check(&b2), check(&next)], now);
    assert!(matches!(mixed[..], [Ok(cairn_chain::Outcome::AlreadyKnown), Ok(cairn_chain::Outcome::Connected { .. })]), "{mixed:?}");
    assert_eq!(b.chain.tip().hash, next.hash());
    assert_eq!(b.store.account(&to).unwrap().balance, a.store.account(&to).unwrap().balance + 1);
}
