//! The signature cache across the paths that fill and read it: a block checked alone (a new
//! block on the live path) puts what it verified in the cache, so a relayed copy of one of its
//! transactions still on its way is not verified again; catch-up sync's checks add nothing;
//! a bad block adds nothing.

mod common;

use cairn_chain::{Address, CheckedBlock, SigCache, check_blocks};
use common::*;

#[test]
fn a_block_checked_alone_caches_what_it_verified_and_sync_does_not() {
    let t = TestChain::on(Backend::Memory, test_spec());
    let spec = t.chain.spec().clone();
    let txs: Vec<_> = (0..3).map(|i| t.transfer(&dev(i), Address([9; 32]), 1, 0)).collect();
    let block = t.make_block(Address([0xfa; 32]), txs.clone());
    let ids: Vec<_> = txs.iter().map(|tx| tx.id()).collect();

    // One was verified at intake: the block takes that hit and verifies the other two.
    let cache = SigCache::new(100);
    cache.insert([ids[0]]);
    assert!(CheckedBlock::check_with(&spec, &t.genesis(), block.clone(), Some(&cache)).is_ok());
    assert_eq!(cache.hits(), 1);
    assert_eq!(cache.verified(), 2);
    assert_eq!(cache.contains_each(&ids), vec![false, true, true], "the hit was taken, the two verified ones went in");

    // Catch-up sync verifies the same block's signatures and caches nothing.
    let sync = SigCache::new(100);
    assert!(check_blocks(&spec, &t.genesis(), vec![block.clone()], Some(&sync)).into_iter().all(|r| r.is_ok()));
    assert_eq!(sync.verified(), 3);
    assert!(sync.is_empty());

    // A block with a bad signature caches nothing.
    let mut bad = block;
    bad.transactions[1].amount += 1;
    let bad = reseal(bad);
    let clean = SigCache::new(100);
    assert!(CheckedBlock::check_with(&spec, &t.genesis(), bad, Some(&clean)).is_err());
    assert!(clean.is_empty());
}
