//! Crash safety: SIGKILL a real `cairn node` process again and again while it farms and
//! accepts transactions; after every restart, everything it acknowledged is still there, and
//! the final state equals a fresh replay of its blocks.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use cairn_chain::{AccountSource, Address, Keypair, Transaction};
use tokio::sync::Mutex;

use crate::support::*;

const KILLS: usize = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let farmer = Keypair::generate().address();
    let recipients: Vec<Address> = (0..4).map(|_| Keypair::generate().address()).collect();
    let acked_blocks = Arc::new(Mutex::new(BTreeSet::<String>::new()));
    let acked_txs = Arc::new(Mutex::new(BTreeSet::<String>::new()));

    for round in 0..KILLS {
        let (mut child, url) = spawn_node(&data, &[]);
        let rpc = Rpc::new(url);
        wait_for("health", 30, || async { rpc.try_get("/health").await.filter(|(s, _)| *s == 200) }).await;

        // Everything acknowledged before the last kill is still there, on the best chain.
        for h in acked_blocks.lock().await.iter() {
            let (s, b) = rpc.get(&format!("/blocks/{h}")).await;
            assert_eq!(s, 200, "round {round}: acknowledged block {h} lost");
            let height = b["header"]["height"].as_u64().unwrap();
            assert_eq!(rpc.get(&format!("/blocks/{height}")).await.1["hash"], b["hash"], "acknowledged block left the best chain");
        }
        for t in acked_txs.lock().await.iter() {
            assert_eq!(rpc.get(&format!("/txs/{t}")).await.0, 200, "round {round}: acknowledged tx {t} lost");
        }

        // Load: farm and send until killed; kill after a varying number of acknowledgements.
        let stop = Arc::new(AtomicBool::new(false));
        let load = {
            let (rpc, stop, blocks, txs, recipients) = (rpc.clone(), stop.clone(), acked_blocks.clone(), acked_txs.clone(), recipients.clone());
            tokio::spawn(async move {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let key = dev((i % 4) as u32);
                    if let Some((200, acct)) = rpc.try_get(&format!("/accounts/{}", key.address())).await {
                        let nonce = acct["next_nonce"].as_u64().unwrap();
                        let tx = Transaction::signed(&key, devnet_genesis(), recipients[(i % 4) as usize], 1 + i, 1, nonce);
                        if let Some((202, v)) = post_quiet(&rpc, "/txs", &tx_json(&tx)).await {
                            txs.lock().await.insert(v["txid"].as_str().unwrap().to_string());
                        }
                    }
                    if let Some((200, v)) = post_quiet(&rpc, "/farm/blocks", &serde_json::json!({"count": 2, "farmer": farmer.to_string()})).await {
                        let mut b = blocks.lock().await;
                        for h in v["hashes"].as_array().unwrap() {
                            b.insert(h.as_str().unwrap().to_string());
                        }
                    }
                    i += 1;
                }
            })
        };
        let target = acked_blocks.lock().await.len() + 2 + 3 * (round % 4);
        wait_for("acknowledged blocks", 60, || async { (acked_blocks.lock().await.len() >= target).then_some(()) }).await;
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
        stop.store(true, Ordering::Relaxed);
        let _ = load.await;
    }

    // Final restart: the chain replays from genesis to the same tip and the same balances.
    let (mut child, url) = spawn_node(&data, &[]);
    let rpc = Rpc::new(url);
    wait_for("health", 30, || async { rpc.try_get("/health").await.filter(|(s, _)| *s == 200) }).await;
    let (s, status) = rpc.get("/status").await;
    assert_eq!(s, 200);
    assert!(status["height"].as_u64().unwrap() >= 2 * KILLS as u64);
    let replay_dir = tempfile::tempdir().unwrap();
    let (tip, store) = replay_into(&rpc, replay_dir.path()).await;
    assert_eq!(tip.to_string(), status["best_hash"].as_str().unwrap(), "replayed tip differs");
    let mut addrs: Vec<Address> = (0..4).map(|i| dev(i).address()).collect();
    addrs.push(farmer);
    addrs.extend(&recipients);
    for a in addrs {
        let (_, v) = rpc.get(&format!("/accounts/{a}")).await;
        let replayed = store.account(&a).unwrap();
        assert_eq!((v["balance"].as_u64().unwrap(), v["nonce"].as_u64().unwrap()), (replayed.balance, replayed.nonce), "state of {a} differs from replay");
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

/// POST that treats a dropped connection (the node was killed) as "no answer".
async fn post_quiet(rpc: &Rpc, path: &str, body: &serde_json::Value) -> Option<(u16, serde_json::Value)> {
    let r = reqwest::Client::new().post(format!("{}{path}", rpc.base)).json(body).send().await.ok()?;
    let s = r.status().as_u16();
    Some((s, r.json().await.ok()?))
}

/// The persisted mempool after SIGKILL, with a block that confirmed one pending transaction
/// ahead of older ones: a block moves the mempool's floor instead of deleting entries (see
/// `cairn_chain::pool_log`), so the confirmed one's entry is still on disk above the floor.
/// After each kill the pool is exactly what was pending: nothing acknowledged is lost, nothing
/// confirmed comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_keeps_exactly_the_pending_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let farmer = Keypair::generate().address();
    let g = devnet_genesis();
    let to = |i: u8| Address([i; 32]);
    let old = Transaction::signed(&dev(0), g, to(1), 10, 1, 0);
    let confirmed = Transaction::signed(&dev(1), g, to(2), 20, 1, 0);
    let after = Transaction::signed(&dev(1), g, to(3), 30, 1, 1);
    let late = Transaction::signed(&dev(2), g, to(4), 40, 1, 0);

    let start = || async {
        let (child, url) = spawn_node(&data, &[]);
        let rpc = Rpc::new(url);
        wait_for("health", 30, || async { rpc.try_get("/health").await.filter(|(s, _)| *s == 200) }).await;
        (child, rpc)
    };
    let ids = |txs: &[&Transaction]| txs.iter().map(|t| t.id().to_string()).collect::<BTreeSet<_>>();
    let mempool_ids = |rpc: Rpc| async move {
        let (s, v) = rpc.get("/mempool?limit=100").await;
        assert_eq!(s, 200);
        v["transactions"].as_array().unwrap().iter().map(|t| t["txid"].as_str().unwrap().to_string()).collect::<BTreeSet<_>>()
    };

    let (mut child, rpc) = start().await;
    for tx in [&old, &confirmed, &after] {
        assert_eq!(rpc.post("/txs", &tx_json(tx)).await.0, 202);
    }
    // A block with only `confirmed` (mined here from the node's template): `old` stays pending
    // below it, so the floor cannot pass `confirmed`'s entry.
    let (s, t) = rpc.get(&format!("/farm/template?farmer={farmer}")).await;
    assert_eq!(s, 200);
    let mut header: cairn_chain::Header = serde_json::from_value(t["header"].clone()).unwrap();
    header.tx_root = cairn_chain::block::merkle_root(&[confirmed.id()]);
    let header = cairn::farm::miner::mine(&header, 1, &AtomicBool::new(false)).unwrap();
    let block = cairn_chain::Block { header, transactions: vec![confirmed.clone()] };
    let (s, v) = rpc.post("/blocks", &serde_json::to_value(cairn_rpc_types::views::BlockView::from(&block)).unwrap()).await;
    assert_eq!(s, 201, "{v}");
    // Acknowledged with no fsync of its own: the kill must not lose it either.
    assert_eq!(rpc.post("/txs", &tx_json(&late)).await.0, 202);
    assert_eq!(mempool_ids(rpc.clone()).await, ids(&[&old, &after, &late]));
    child.kill().expect("SIGKILL");
    child.wait().unwrap();

    let (mut child, rpc) = start().await;
    assert_eq!(mempool_ids(rpc.clone()).await, ids(&[&old, &after, &late]), "exactly the pending ones after a kill");
    assert_eq!(rpc.get(&format!("/txs/{}", confirmed.id())).await.1["status"], "confirmed");
    // Once everything is farmed, nothing comes back, after a kill or a clean stop.
    rpc.farm(1, &farmer).await;
    assert!(mempool_ids(rpc.clone()).await.is_empty());
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    let (mut child, rpc) = start().await;
    assert!(mempool_ids(rpc.clone()).await.is_empty(), "confirmed transactions stay out of the pool after a kill");
    for (tx, want) in [(&old, 10), (&confirmed, 20), (&after, 30), (&late, 40)] {
        assert_eq!(rpc.balance(&tx.to).await, want);
    }
    child.kill().unwrap();
    child.wait().unwrap();
}
