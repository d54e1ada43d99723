//! Transaction intake end to end: `POST /txs` with an array (each entry answered on its own),
//! the size bound, and the signature cache (a block of mempool transactions verifies no
//! signature twice).

use cairn_chain::{Address, Keypair, Transaction, TxError};
use serde_json::{Value, json};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_array_is_answered_entry_by_entry() {
    let n = start_node().await;
    let rpc = &n.rpc;
    let (k0, k1) = (dev(0), dev(1));
    let to = |i: u8| Address([i; 32]);
    let good: Vec<Transaction> = (0..5).map(|i| Transaction::signed(&k0, devnet_genesis(), to(i as u8 + 1), 10, 1, i)).collect();
    let mut forged = Transaction::signed(&k1, devnet_genesis(), to(9), 10, 1, 0);
    forged.amount = 11; // the signature no longer covers it
    let stranger = Transaction::signed(&Keypair::generate(), devnet_genesis(), to(9), 10, 1, 0); // no funds
    let mut body: Vec<Value> = good.iter().map(tx_json).collect();
    body.insert(2, json!({"chain": "zz"}));
    body.push(tx_json(&forged));
    body.push(tx_json(&stranger));
    body.push(tx_json(&good[0])); // again: already pending
    let (s, v) = rpc.post("/txs", &Value::Array(body)).await;
    assert_eq!(s, 200, "{v}");
    let r = v.as_array().expect("an array of results");
    assert_eq!(r.len(), 9);
    let ids: Vec<&str> = r.iter().filter_map(|x| x["txid"].as_str()).collect();
    assert_eq!(ids.len(), 5, "the five good ones: {v}");
    for (i, tx) in good.iter().enumerate() {
        let at = if i < 2 { i } else { i + 1 };
        assert_eq!(r[at]["txid"].as_str(), Some(tx.id().to_string().as_str()), "in order: {v}");
    }
    let codes: Vec<&str> = r.iter().filter_map(|x| x["error"]["code"].as_str()).collect();
    assert_eq!(codes, vec!["invalid_request", "bad_signature", "insufficient_balance", "already_known"], "{v}");
    for x in r.iter().filter(|x| x.get("error").is_some()) {
        assert!(x["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{x}");
    }
    // The good ones are pending, in one block after a farm.
    let (_, acct) = rpc.get(&format!("/accounts/{}", k0.address())).await;
    assert_eq!(acct["next_nonce"], 5);
    rpc.farm(1, &Address([0xfa; 32])).await;
    let (_, b) = rpc.get("/blocks/1").await;
    assert_eq!(b["transactions"].as_array().map(Vec::len), Some(5));
    // The same forged transaction again is refused from the recent-rejects filter.
    let (s, v) = rpc.post("/txs", &tx_json(&forged)).await;
    assert_eq!((s, code(&v)), (422, "bad_signature"));
    // Bounds: an empty array is fine; more than 10,000 is a 413 and nothing is taken.
    let (s, v) = rpc.post("/txs", &json!([])).await;
    assert_eq!((s, v), (200, json!([])));
    let next = Transaction::signed(&k0, devnet_genesis(), to(7), 10, 1, 5);
    let many = Value::Array(vec![tx_json(&next); 10_001]);
    let (s, v) = rpc.post("/txs", &many).await;
    assert_eq!((s, code(&v)), (413, "too_many_transactions"), "{v}");
    let (_, acct) = rpc.get(&format!("/accounts/{}", k0.address())).await;
    assert_eq!(acct["next_nonce"], 5, "nothing accepted");
    n.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_of_mempool_transactions_verifies_no_signature_twice() {
    let n = start_node().await;
    let rpc = &n.rpc;
    let txs: Vec<Value> = (0..10u32)
        .flat_map(|k| {
            let key = dev(k);
            (0..20u64).map(move |nonce| tx_json(&Transaction::signed(&key, devnet_genesis(), Keypair::generate().address(), 1, 1, nonce)))
        })
        .collect();
    let (s, v) = rpc.post("/txs", &Value::Array(txs)).await;
    assert_eq!(s, 200);
    assert!(v.as_array().unwrap().iter().all(|r| r["txid"].is_string()), "{v}");
    let before = rpc.http_text("/metrics").await;
    assert_eq!(metric(&before, "cairn_signatures_verified_total "), 200, "each verified once on entry");
    rpc.farm(1, &Address([0xfa; 32])).await;
    let (_, b) = rpc.get("/blocks/1").await;
    assert_eq!(b["transactions"].as_array().map(Vec::len), Some(200));
    let after = rpc.http_text("/metrics").await;
    assert_eq!(metric(&after, "cairn_signatures_verified_total "), 200, "the block verified none again");
    assert_eq!(metric(&after, "cairn_sigcache_hits_total "), 200);
    assert_eq!(metric(&after, "cairn_sigcache_entries "), 0, "hits are used up");
    n.node.shutdown().await;
}

/// Copies of the same transactions arriving together (relayed by two peers at once, or posted
/// twice) are verified once: while the first copy's signatures are being verified, the others
/// are duplicates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_arriving_together_are_verified_once() {
    let n = start_node().await;
    let txs: Vec<Transaction> = (0..10u32)
        .flat_map(|k| {
            let key = dev(k);
            (0..50u64).map(move |nonce| Transaction::signed(&key, devnet_genesis(), Keypair::generate().address(), 1, 1, nonce))
        })
        .collect();
    let chain = n.node.chain().clone();
    let submit = |txs: Vec<Transaction>| {
        let c = chain.clone();
        async move { c.submit_txs(txs).await.expect("the chain service runs") }
    };
    let (a, b, c) = tokio::join!(submit(txs.clone()), submit(txs.clone()), submit(txs.clone()));
    let mut taken = 0;
    for r in a.iter().chain(&b).chain(&c) {
        match r {
            Ok(_) => taken += 1,
            Err(TxError::AlreadyKnown(_)) => {}
            Err(e) => panic!("a copy was refused for {e}"),
        }
    }
    assert_eq!(taken, 500, "each taken once");
    let m = n.rpc.http_text("/metrics").await;
    assert_eq!(metric(&m, "cairn_signatures_verified_total "), 500, "each verified once");
    n.node.shutdown().await;
}

/// A transaction accepted at any node reaches every mempool: a peer that joins gets the
/// mempool at once, and so does one that reconnects after a partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mempools_reconcile_when_peers_connect() {
    use std::time::Duration;
    let t = tempfile::tempdir().unwrap();
    let start = |dir: std::path::PathBuf, peers: Vec<String>| async move {
        let mut c = cairn::config::NodeConfig::for_tests(dir);
        c.peers = peers;
        c.p2p.backoff_max = Duration::from_millis(500);
        cairn::Node::start(c).await.expect("node starts")
    };
    let a = start(t.path().join("a"), vec![]).await;
    let rpc_a = Rpc::new(format!("http://{}", a.rpc_addr()));
    let batch = |from: u64| {
        Value::Array((from..from + 10).map(|n| tx_json(&Transaction::signed(&dev(3), devnet_genesis(), Keypair::generate().address(), 1, 1, n))).collect())
    };
    let (s, _) = rpc_a.post("/txs", &batch(0)).await;
    assert_eq!(s, 200);
    // B joins knowing nothing: A's mempool reaches it.
    let b = start(t.path().join("b"), vec![a.p2p_addr().to_string()]).await;
    let pending_at = |n: &cairn::Node| {
        let c = n.chain().clone();
        async move { c.account(dev(3).address()).await.unwrap().next_nonce }
    };
    wait_for("B has A's 10", 20, || async { (pending_at(&b).await == 10).then_some(()) }).await;
    // Apart, A takes 10 more; together again, B gets them.
    b.p2p().set_blocked([a.node_id()].into()).await;
    wait_for("apart", 10, || async { (a.p2p().peer_count() == 0).then_some(()) }).await;
    let (s, _) = rpc_a.post("/txs", &batch(10)).await;
    assert_eq!(s, 200);
    b.p2p().set_blocked(Default::default()).await;
    wait_for("B has all 20 after the reconnect", 30, || async { (pending_at(&b).await == 20).then_some(()) }).await;
    for n in [a, b] {
        n.shutdown().await;
    }
}

/// Re-announcement rounds send a peer only what it may lack: once two peers' mempools match
/// (each transaction fetched by one from the other), the rounds that go out every two seconds
/// while the node is quiet skip it all; only a full round (one in ten seconds) offers again
/// what a peer was sent, in case its pool refused it. They used to send every pending ID to
/// every peer, each round: 250 IDs over these rounds, against at most one full round's 50.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_rounds_do_not_announce_what_peers_hold() {
    let t = tempfile::tempdir().unwrap();
    let a = cairn::Node::start(cairn::config::NodeConfig::for_tests(t.path().join("a"))).await.expect("node starts");
    let mut c = cairn::config::NodeConfig::for_tests(t.path().join("b"));
    c.peers = vec![a.p2p_addr().to_string()];
    let b = cairn::Node::start(c).await.expect("node starts");
    let (rpc_a, rpc_b) = (Rpc::new(format!("http://{}", a.rpc_addr())), Rpc::new(format!("http://{}", b.rpc_addr())));
    wait_for("connected", 20, || async { (a.p2p().peer_count() == 1 && b.p2p().peer_count() == 1).then_some(()) }).await;
    let txs = Value::Array((0..50).map(|n| tx_json(&Transaction::signed(&dev(4), devnet_genesis(), Keypair::generate().address(), 1, 1, n))).collect());
    let (s, _) = rpc_a.post("/txs", &txs).await;
    assert_eq!(s, 200);
    let pending = |n: &cairn::Node| {
        let c = n.chain().clone();
        async move { c.account(dev(4).address()).await.unwrap().next_nonce }
    };
    wait_for("B has A's 50", 20, || async { (pending(&b).await == 50).then_some(()) }).await;
    let scrape = || async {
        let (ma, mb) = (rpc_a.http_text("/metrics").await, rpc_b.http_text("/metrics").await);
        let sum = |name: &str| metric(&ma, name) + metric(&mb, name);
        (sum("cairn_p2p_tx_ids_announced_total "), sum("cairn_p2p_reannounce_rounds_total "))
    };
    // B's fetch of the 50 may still be settling into A's table: start counting once a round
    // has gone out at each node after B had them all.
    let (_, rounds0) = scrape().await;
    wait_for("a round at each node", 20, || async { (scrape().await.1 >= rounds0 + 2).then_some(()) }).await;
    let (announced, rounds) = scrape().await;
    wait_for("two more rounds at each node", 20, || async { (scrape().await.1 >= rounds + 4).then_some(()) }).await;
    let (after, _) = scrape().await;
    // Two or three rounds at each node, within ten seconds: at most one of A's is full and
    // offers B the 50 it sent it; B offers A nothing (A announced them all).
    assert!(after - announced <= 50, "{} IDs re-announced that the peer holds", after - announced);
    // Still reconciled both ways: a transaction new at B reaches A.
    let tx = Transaction::signed(&dev(5), devnet_genesis(), Keypair::generate().address(), 1, 1, 0);
    let (s, _) = rpc_b.post("/txs", &tx_json(&tx)).await;
    assert_eq!(s, 202);
    let c = a.chain().clone();
    wait_for("A has B's new one", 20, || async { (c.account(dev(5).address()).await.unwrap().next_nonce == 1).then_some(()) }).await;
    for n in [a, b] {
        n.shutdown().await;
    }
}

/// Honest relaying at load is never punished: 10,000 transfers to fresh addresses taken at
/// one end of a line of three nodes reach every mempool (announced by ID in batches and
/// fetched), with no ban, no misbehaviour point and no dropped link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_of_nodes_relays_a_burst_without_punishing_anyone() {
    let t = tempfile::tempdir().unwrap();
    let start = |dir: std::path::PathBuf, peers: Vec<String>| async move {
        let mut c = cairn::config::NodeConfig::for_tests(dir);
        c.peers = peers;
        cairn::Node::start(c).await.expect("node starts")
    };
    let a = start(t.path().join("a"), vec![]).await;
    let b = start(t.path().join("b"), vec![a.p2p_addr().to_string()]).await;
    let c = start(t.path().join("c"), vec![b.p2p_addr().to_string()]).await;
    wait_for("a line", 20, || async { (b.p2p().peer_count() == 2).then_some(()) }).await;
    let rpc_a = Rpc::new(format!("http://{}", a.rpc_addr()));
    // 100 senders funded from the dev accounts, confirmed everywhere.
    let senders: Vec<Keypair> = (0..100).map(|_| Keypair::generate()).collect();
    let funding: Vec<Value> = senders
        .iter()
        .enumerate()
        .map(|(i, k)| tx_json(&Transaction::signed(&dev((i % 10) as u32), devnet_genesis(), k.address(), 1_000_000, 1, (i / 10) as u64)))
        .collect();
    assert_eq!(rpc_a.post("/txs", &Value::Array(funding)).await.0, 200);
    rpc_a.farm(1, &Address([0xfa; 32])).await;
    let tip = a.chain().tip().hash;
    wait_for("funding block everywhere", 20, || async { (b.chain().tip().hash == tip && c.chain().tip().hash == tip).then_some(()) }).await;
    // The burst: 100 transfers from each sender, in arrays of 1000.
    let burst: Vec<Value> = (0..100u64)
        .flat_map(|n| senders.iter().map(move |k| tx_json(&Transaction::signed(k, devnet_genesis(), Keypair::generate().address(), 1, 1, n))))
        .collect();
    for chunk in burst.chunks(1000) {
        let (s, v) = rpc_a.post("/txs", &Value::Array(chunk.to_vec())).await;
        assert_eq!(s, 200);
        assert!(v.as_array().unwrap().iter().all(|r| r["txid"].is_string()), "{v}");
    }
    for (name, n) in [("B", &b), ("C", &c)] {
        let rpc = Rpc::new(format!("http://{}", n.rpc_addr()));
        wait_for(&format!("all 10,000 in {name}'s mempool"), 60, || async {
            (metric(&rpc.http_text("/metrics").await, "cairn_mempool_transactions ") == 10_000).then_some(())
        })
        .await;
    }
    for (name, n) in [("A", &a), ("B", &b), ("C", &c)] {
        let m = Rpc::new(format!("http://{}", n.rpc_addr())).http_text("/metrics").await;
        assert!(n.p2p().bans().is_empty(), "{name} banned someone");
        assert_eq!(metric(&m, "cairn_p2p_disconnections_total "), 0, "{name} dropped a link");
        assert!(!m.contains("cairn_p2p_misbehaviour_total{"), "{name} held something against an honest peer: {m}");
    }
    // Relayed by announcement: B and C fetched each transaction they lacked by ID.
    for (name, n) in [("B", &b), ("C", &c)] {
        let m = Rpc::new(format!("http://{}", n.rpc_addr())).http_text("/metrics").await;
        assert!(metric(&m, "cairn_p2p_transactions_requested_total ") >= 10_000, "{name} did not fetch by announcement: {m}");
    }
    // (A and C may also have found each other through peer exchange.)
    assert_eq!(b.p2p().peer_count(), 2, "B kept both links");
    for n in [a, b, c] {
        n.shutdown().await;
    }
}

/// Relay fetches each transaction from whichever peer announced it first, so a sender's
/// nonces can arrive out of order. One that comes before its predecessor waits for it (it
/// used to be dropped, and with it every later one of that sender, for good): it enters the
/// mempool when the predecessor arrives, or when a block uses the predecessor up. A client's
/// gap through the RPC is still refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relayed_transactions_out_of_nonce_order_wait_for_their_predecessors() {
    let a = start_node().await;
    let chain = a.node.chain().clone();
    let k = dev(4);
    let txs: Vec<Transaction> = (0..6).map(|n| Transaction::signed(&k, devnet_genesis(), Keypair::generate().address(), 1, 1, n)).collect();
    let next = || {
        let c = chain.clone();
        let addr = k.address();
        async move { c.account(addr).await.unwrap().next_nonce }
    };
    let waiting = || async { metric(&a.rpc.http_text("/metrics").await, "cairn_mempool_waiting_transactions ") };
    // 2 and 1 come first: both wait, answered nonce_too_high.
    let r = chain.submit_relayed(vec![txs[2].clone(), txs[1].clone()]).await.unwrap();
    assert!(r.iter().all(|r| matches!(r, Err(cairn_chain::TxError::NonceTooHigh { .. }))), "{r:?}");
    assert_eq!((next().await, waiting().await), (0, 2));
    // Already held: a peer announcing them again is not asked for them.
    assert!(chain.lacking(vec![txs[1].id(), txs[2].id()]).await.unwrap().is_empty());
    // A client's gap is refused, not held.
    let (s, v) = a.rpc.post("/txs", &Value::Array(vec![tx_json(&txs[4])])).await;
    assert_eq!(s, 200);
    assert_eq!(v[0]["error"]["code"], "nonce_too_high", "{v}");
    assert_eq!(waiting().await, 2);
    // 0 arrives: 1 and 2 follow it into the mempool.
    let r = chain.submit_relayed(vec![txs[0].clone()]).await.unwrap();
    assert!(r[0].is_ok(), "{r:?}");
    assert_eq!((next().await, waiting().await), (3, 0));
    // 4 waits again; a block from elsewhere uses 3 up (this node never saw 3): 4 follows.
    assert!(chain.submit_relayed(vec![txs[4].clone()]).await.unwrap()[0].is_err());
    let b = start_node().await;
    let (s, v) = b.rpc.post("/txs", &Value::Array(txs[..4].iter().map(tx_json).collect())).await;
    assert_eq!(s, 200, "{v}");
    b.rpc.farm(1, &Address([0xfa; 32])).await;
    let block = b.node.chain().block_at(1).await.unwrap().expect("B's block");
    assert_eq!(block.transactions.len(), 4);
    assert!(chain.submit_block(block).await.unwrap().is_ok());
    wait_for("4 promoted after the block", 10, || async { (next().await == 5).then_some(()) }).await;
    assert_eq!(waiting().await, 0);
    a.node.shutdown().await;
    b.node.shutdown().await;
}

/// Two nodes with large mempools meeting: each announces its whole mempool and fetches the
/// other's at the same time, megabytes each way. (When one task both read and sent, each
/// node blocked sending answers the other was not reading until the send timeout cut the
/// link.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_full_mempools_reconcile_both_ways_at_once_without_dropping_the_link() {
    let t = tempfile::tempdir().unwrap();
    let start = |dir: std::path::PathBuf, peers: Vec<String>| async move {
        let mut c = cairn::config::NodeConfig::for_tests(dir);
        c.peers = peers;
        c.mempool.max_txs = 40_000;
        c.mempool.max_per_sender = 2_000;
        cairn::Node::start(c).await.expect("node starts")
    };
    let a = start(t.path().join("a"), vec![]).await;
    let b = start(t.path().join("b"), vec![]).await;
    // 15,000 pending at each (dev accounts 0..8 at A, 8..16 at B; fresh recipients).
    for (node, devs) in [(&a, 0..8u32), (&b, 8..16u32)] {
        let rpc = Rpc::new(format!("http://{}", node.rpc_addr()));
        let keys: Vec<Keypair> = devs.map(dev).collect();
        let txs: Vec<Value> = (0..15_000u64)
            .map(|i| {
                let k = &keys[(i % 8) as usize];
                tx_json(&Transaction::signed(k, devnet_genesis(), Keypair::generate().address(), 1, 1, i / 8))
            })
            .collect();
        for chunk in txs.chunks(5_000) {
            let (s, v) = rpc.post("/txs", &Value::Array(chunk.to_vec())).await;
            assert_eq!(s, 200);
            assert!(v.as_array().unwrap().iter().all(|r| r["txid"].is_string()), "{}", &v.to_string()[..300]);
        }
    }
    a.p2p().connect(&b.p2p_addr().to_string()).await.expect("A dials B");
    for (name, n) in [("A", &a), ("B", &b)] {
        let rpc = Rpc::new(format!("http://{}", n.rpc_addr()));
        wait_for(&format!("{name} holds all 30,000"), 90, || async {
            (metric(&rpc.http_text("/metrics").await, "cairn_mempool_transactions ") == 30_000).then_some(())
        })
        .await;
    }
    for (name, n) in [("A", &a), ("B", &b)] {
        let m = Rpc::new(format!("http://{}", n.rpc_addr())).http_text("/metrics").await;
        assert_eq!(metric(&m, "cairn_p2p_disconnections_total "), 0, "{name} dropped the link");
    }
    for n in [a, b] {
        n.shutdown().await;
    }
}

/// A node on the load-test spec farms a block of 10,000 transfers and then keeps working:
/// more intake, another block. (A stalling RocksDB memtable budget once froze the chain thread
/// for good right after such a block: farming, intake and relay all stopped.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_keeps_working_after_a_block_of_ten_thousand_transfers() {
    let t = tempfile::tempdir().unwrap();
    let spec = cairn_chain::ChainSpec::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/loadtest.toml")).unwrap();
    let genesis = spec.genesis().hash();
    let mut c = cairn::config::NodeConfig::for_tests(t.path().join("n"));
    c.chain = spec.clone();
    let n = cairn::Node::start(c).await.expect("node starts");
    let rpc = Rpc::new(format!("http://{}", n.rpc_addr()));
    let farmer = Address([0xfa; 32]);
    // 50 senders funded by the dev accounts, then 200 transfers each to fresh addresses.
    let senders: Vec<Keypair> = (0..50).map(|_| Keypair::generate()).collect();
    let funding: Vec<Value> = senders
        .iter()
        .enumerate()
        .map(|(i, k)| tx_json(&Transaction::signed(&spec.dev_key((i % 10) as u32).unwrap(), genesis, k.address(), 1_000_000, 1, (i / 10) as u64)))
        .collect();
    assert_eq!(rpc.post("/txs", &Value::Array(funding)).await.0, 200);
    rpc.farm(1, &farmer).await;
    let transfers = |from: u64, to: u64| -> Vec<Value> {
        (from..to)
            .flat_map(|nonce| senders.iter().map(move |k| tx_json(&Transaction::signed(k, genesis, Keypair::generate().address(), 1, 1, nonce))))
            .collect()
    };
    for chunk in transfers(0, 200).chunks(5000) {
        let (s, v) = rpc.post("/txs", &Value::Array(chunk.to_vec())).await;
        assert!(s == 200 && v.as_array().unwrap().iter().all(|r| r["txid"].is_string()), "{s}");
    }
    rpc.farm(1, &farmer).await;
    let tip = n.chain().block_at(2).await.unwrap().unwrap();
    assert_eq!(tip.transactions.len(), 10_000);
    // Still working: intake and another block, each within a deadline.
    let more = tokio::time::timeout(std::time::Duration::from_secs(30), rpc.post("/txs", &Value::Array(transfers(200, 210)))).await;
    assert_eq!(more.expect("intake answers after the big block").0, 200);
    let next = tokio::time::timeout(std::time::Duration::from_secs(30), rpc.farm(1, &farmer)).await;
    assert_eq!(next.expect("farming goes on after the big block").len(), 1);
    assert_eq!(n.chain().block_at(3).await.unwrap().unwrap().transactions.len(), 500);
    n.shutdown().await;
}
