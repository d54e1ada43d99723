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
