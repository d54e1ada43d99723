//! The built-in farmer's path on the chain thread: template, nonce search and commit in one
//! visit, and what the commit leaves in the persisted mempool.

use cairn::chain_service::{Accepted, Quick};
use cairn_chain::{Address, ChainSpec, Keypair, Transaction};

use crate::support::{dev, devnet_genesis, start_node};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quick_farm_commits_in_one_visit_and_the_block_takes_its_records_out_of_the_persisted_mempool() {
    let n = start_node().await;
    let chain = n.node.chain().clone();
    let farmer = Address([0xfa; 32]);
    let k = dev(0);
    // Two transfers of one sender, and one of another whose nonce-0 slot a block will fill
    // with a different transaction (so the pool's one goes stale).
    let mut txs: Vec<Transaction> = (0..2).map(|nonce| Transaction::signed(&k, devnet_genesis(), Keypair::generate().address(), 1, 1, nonce)).collect();
    let stale = Transaction::signed(&dev(1), devnet_genesis(), Address([1; 32]), 1, 1, 0);
    txs.push(stale.clone());
    assert!(chain.submit_txs(txs.clone()).await.unwrap().iter().all(Result::is_ok));

    // A search that finds nothing: the template comes back and nothing is committed.
    let Quick::Template(t) = chain.farm_quick(farmer, |_| None).await.unwrap() else { panic!("no nonce, no block") };
    assert_eq!(t.transactions.len(), 3);
    assert_eq!(chain.tip().height, 0);

    // dev(1)'s nonce 0 confirmed by another block first: the pool's one is stale from then on.
    let other = Transaction::signed(&dev(1), devnet_genesis(), Address([2; 32]), 2, 1, 0);
    let Quick::Template(mut t1) = chain.farm_quick(farmer, |_| None).await.unwrap() else { panic!() };
    t1.transactions = vec![other.clone()];
    t1.header.tx_root = cairn_chain::block::merkle_root(&[other.id()]);
    let header = cairn::farm::miner::mine(&t1.header, 1, &std::sync::atomic::AtomicBool::new(false)).unwrap();
    assert_eq!(chain.submit_block(cairn_chain::Block { header, transactions: t1.transactions }).await.unwrap(), Ok(Accepted::Connected));

    // The quick path finds a nonce at once on the devnet target and commits the block.
    let Quick::Submitted { hash, result } = chain.farm_quick(farmer, |h| cairn::farm::miner::try_nonces(h, 256)).await.unwrap() else {
        panic!("the devnet target is met within 256 nonces")
    };
    assert_eq!(result, Ok(Accepted::Connected));
    let tip = chain.tip();
    assert_eq!((tip.height, tip.hash), (2, hash));
    let block = chain.block(hash).await.unwrap().unwrap();
    assert_eq!(block.transactions.iter().map(Transaction::id).collect::<Vec<_>>(), txs[..2].iter().map(Transaction::id).collect::<Vec<_>>());
    assert!(chain.pending(10).await.unwrap().is_empty(), "included and stale ones left the pool");

    // On disk too: the block's batch took its own transactions out, the stale one went after.
    let dir = n._dir.path().join("data").join("db");
    drop(chain); // its store handle, so the database can be opened again
    n.node.shutdown().await;
    let spec = ChainSpec::devnet();
    let store = cairn_chain::Store::open(&dir, &spec.chain_id, spec.genesis().hash()).unwrap();
    assert!(store.mempool_txs(100).unwrap().is_empty(), "no persisted mempool record is left");
}
