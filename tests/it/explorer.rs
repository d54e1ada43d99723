//! The explorer's reads: the mempool by fee, an address's history (confirmed through the
//! address index, undone on a reorg; pending from the mempool), their limits and cursors.

use cairn_chain::{Keypair, Transaction};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mempool_lists_highest_fee_first_with_arrival_times() {
    let n = start_node().await;
    let rpc = &n.rpc;
    let to = Keypair::generate().address();
    for (k, fee) in [(0, 1), (1, 5), (2, 3)] {
        let tx = Transaction::signed(&dev(k), devnet_genesis(), to, 10, fee, 0);
        assert_eq!(rpc.post("/txs", &tx_json(&tx)).await.0, 202);
    }
    let (s, v) = rpc.get("/mempool").await;
    assert_eq!((s, v["count"].as_u64()), (200, Some(3)));
    let fees: Vec<u64> = v["transactions"].as_array().unwrap().iter().map(|t| t["fee"].as_u64().unwrap()).collect();
    assert_eq!(fees, [5, 3, 1]);
    let now = cairn::chain_service::now_ms();
    for t in v["transactions"].as_array().unwrap() {
        let at = t["received_ms"].as_u64().expect("received_ms");
        assert!(at <= now && now - at < 60_000, "{t}");
        assert!(t["txid"].is_string() && t["from"].is_string() && t["to"].is_string(), "{t}");
    }
    for q in ["?limit=0", "?limit=1001"] {
        let (s, v) = rpc.get(&format!("/mempool{q}")).await;
        assert_eq!((s, code(&v)), (400, "invalid_limit"), "{q}");
    }
    n.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn address_history_pages_newest_first_and_follows_reorgs() {
    let n = start_node().await;
    let rpc = &n.rpc;
    let farmer = Keypair::generate().address();
    let a = dev(0);
    let b = Keypair::generate();
    // Block 1: a → b. Block 2: b → a. Then a → b pending.
    let t1 = Transaction::signed(&a, devnet_genesis(), b.address(), 1000, 1, 0);
    assert_eq!(rpc.post("/txs", &tx_json(&t1)).await.0, 202);
    rpc.farm(1, &farmer).await;
    let t2 = Transaction::signed(&b, devnet_genesis(), a.address(), 10, 1, 0);
    assert_eq!(rpc.post("/txs", &tx_json(&t2)).await.0, 202);
    let h2 = rpc.farm(1, &farmer).await.remove(0);
    let t3 = Transaction::signed(&a, devnet_genesis(), b.address(), 7, 1, 1);
    assert_eq!(rpc.post("/txs", &tx_json(&t3)).await.0, 202);

    let (s, v) = rpc.get(&format!("/accounts/{}/txs", a.address())).await;
    assert_eq!(s, 200, "{v}");
    let confirmed = v["confirmed"].as_array().unwrap();
    let ids: Vec<&str> = confirmed.iter().map(|c| c["txid"].as_str().unwrap()).collect();
    assert_eq!(ids, [t2.id().to_string(), t1.id().to_string()], "newest first");
    assert_eq!((confirmed[0]["direction"].as_str(), confirmed[1]["direction"].as_str()), (Some("received"), Some("sent")));
    assert_eq!((confirmed[0]["height"].as_u64(), confirmed[0]["block_hash"].as_str()), (Some(2), Some(h2.as_str())));
    assert!(confirmed[0]["timestamp"].as_u64().unwrap() > 0);
    assert_eq!(confirmed[0]["transaction"]["from"].as_str(), Some(b.address().to_string().as_str()));
    let pending = v["pending"].as_array().unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!((pending[0]["txid"].as_str(), pending[0]["direction"].as_str()), (Some(t3.id().to_string().as_str()), Some("sent")));
    assert!(v["next"].is_null(), "one page: {v}");

    // Pages of one, following `next`.
    let (_, p1) = rpc.get(&format!("/accounts/{}/txs?limit=1", a.address())).await;
    assert_eq!(p1["confirmed"][0]["txid"].as_str(), Some(t2.id().to_string().as_str()));
    let next = p1["next"].as_str().expect("a next cursor").to_string();
    let (_, p2) = rpc.get(&format!("/accounts/{}/txs?limit=1&before={next}", a.address())).await;
    assert_eq!(p2["confirmed"][0]["txid"].as_str(), Some(t1.id().to_string().as_str()));
    assert!(p2["pending"].as_array().unwrap().is_empty(), "pending only on the first page");
    let (_, p3) = rpc.get(&format!("/accounts/{}/txs?limit=1&before={}", a.address(), p2["next"].as_str().unwrap())).await;
    assert!(p3["confirmed"].as_array().unwrap().is_empty() && p3["next"].is_null(), "{p3}");
    // The recipient sees the same transfers from its side.
    let (_, bv) = rpc.get(&format!("/accounts/{}/txs", b.address())).await;
    let dirs: Vec<&str> = bv["confirmed"].as_array().unwrap().iter().map(|c| c["direction"].as_str().unwrap()).collect();
    assert_eq!(dirs, ["sent", "received"]);

    for (q, want) in [
        ("?before=12", "invalid_cursor"),
        ("?before=a-b", "invalid_cursor"),
        ("?before=-1", "invalid_cursor"),
        ("?limit=101", "invalid_limit"),
        ("?limit=0", "invalid_limit"),
        ("?bogus=1", "invalid_query"),
    ] {
        let (s, v) = rpc.get(&format!("/accounts/{}/txs{q}", a.address())).await;
        assert_eq!((s, code(&v)), (400, want), "{q}: {v}");
    }
    let (s, v) = rpc.get("/accounts/xyz/txs").await;
    assert_eq!((s, code(&v)), (400, "invalid_address"));

    // A heavier branch without these blocks: the index forgets them, the transfers are pending.
    let other = start_node().await;
    let theirs = other.rpc.farm(3, &farmer).await;
    for h in &theirs {
        let (_, blk) = other.rpc.get(&format!("/blocks/{h}")).await;
        assert_eq!(rpc.post("/blocks", &blk).await.0, 201);
    }
    assert_eq!(rpc.height().await, 3);
    let (_, v) = rpc.get(&format!("/accounts/{}/txs", a.address())).await;
    assert!(v["confirmed"].as_array().unwrap().is_empty(), "undone with the reorg: {v}");
    let pending: Vec<&str> = v["pending"].as_array().unwrap().iter().map(|p| p["txid"].as_str().unwrap()).collect();
    assert!(pending.contains(&t1.id().to_string().as_str()), "back in the mempool: {v}");
    other.node.shutdown().await;
    n.node.shutdown().await;
}

/// `address_index = false` keeps no index (the history answers 404 `address_index_off`);
/// turned on later for that data dir, the index is complete from the next block and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_address_index_can_be_off_and_says_where_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = cairn::config::NodeConfig::for_tests(dir.path().join("data"));
    cfg.address_index = false;
    let node = cairn::Node::start(cfg.clone()).await.unwrap();
    let rpc = Rpc::new(format!("http://{}", node.rpc_addr()));
    let a = dev(0);
    let to = Keypair::generate().address();
    let t1 = Transaction::signed(&a, devnet_genesis(), to, 5, 1, 0);
    assert_eq!(rpc.post("/txs", &tx_json(&t1)).await.0, 202);
    rpc.farm(2, &Keypair::generate().address()).await;
    let (s, v) = rpc.get(&format!("/accounts/{}/txs", a.address())).await;
    assert_eq!((s, code(&v)), (404, "address_index_off"), "{v}");
    node.shutdown().await;

    cfg.address_index = true;
    let node = cairn::Node::start(cfg).await.unwrap();
    let rpc = Rpc::new(format!("http://{}", node.rpc_addr()));
    let t2 = Transaction::signed(&a, devnet_genesis(), to, 6, 1, 1);
    assert_eq!(rpc.post("/txs", &tx_json(&t2)).await.0, 202);
    rpc.farm(1, &Keypair::generate().address()).await;
    let (s, v) = rpc.get(&format!("/accounts/{to}/txs")).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["indexed_from"], 3, "complete from the block after the tip it was turned on at");
    let ids: Vec<&str> = v["confirmed"].as_array().unwrap().iter().map(|c| c["txid"].as_str().unwrap()).collect();
    assert_eq!(ids, [t2.id().to_string()], "only what was indexed");
    node.shutdown().await;
}
