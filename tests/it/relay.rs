//! Relay by announcement and compact blocks, end to end over real QUIC: a new tip reaches a
//! peer as header and short IDs, rebuilt from its mempool, and only the transactions it lacks
//! are fetched.

use cairn_chain::{Address, Keypair, Transaction};
use serde_json::Value;

use crate::support::*;

async fn compact(rpc: &Rpc, outcome: &str) -> u64 {
    metric(&rpc.http_text("/metrics").await, &format!("cairn_p2p_compact_blocks_total{{outcome=\"{outcome}\"}}"))
}

/// A (blocks only: it announces no transaction) farms blocks of transactions B holds all, or
/// half, of: B rebuilds the first from its mempool alone and fetches only the missing half of
/// the second by index; it never needs a whole block.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compact_blocks_rebuild_from_the_mempool_and_fetch_only_what_is_missing() {
    let t = tempfile::tempdir().unwrap();
    let start = |dir: std::path::PathBuf, peers: Vec<String>, blocks_only: bool| async move {
        let mut c = cairn::config::NodeConfig::for_tests(dir);
        c.peers = peers;
        c.p2p.blocks_only = blocks_only;
        cairn::Node::start(c).await.expect("node starts")
    };
    let a = start(t.path().join("a"), vec![], true).await;
    let b = start(t.path().join("b"), vec![a.p2p_addr().to_string()], false).await;
    wait_for("connected", 20, || async { (a.p2p().peer_count() == 1 && b.p2p().peer_count() == 1).then_some(()) }).await;
    let (rpc_a, rpc_b) = (Rpc::new(format!("http://{}", a.rpc_addr())), Rpc::new(format!("http://{}", b.rpc_addr())));
    let farmer = Address([0xfa; 32]);
    let transfers = |nonces: std::ops::Range<u64>| -> Vec<Value> {
        nonces.map(|n| tx_json(&Transaction::signed(&dev(4), devnet_genesis(), Keypair::generate().address(), 5, 1, n))).collect()
    };

    // Both hold all ten: rebuilt with no round trip.
    let all = transfers(0..10);
    for rpc in [&rpc_a, &rpc_b] {
        assert_eq!(rpc.post("/txs", &Value::Array(all.clone())).await.0, 200);
    }
    let tip = rpc_a.farm(1, &farmer).await.remove(0);
    wait_for("B takes block 1", 20, || async { (b.chain().tip().hash.to_string() == tip).then_some(()) }).await;
    assert_eq!(compact(&rpc_b, "rebuilt").await, 1);

    // B holds half of the next ten: it asks A for the other five by index.
    let next = transfers(10..20);
    assert_eq!(rpc_a.post("/txs", &Value::Array(next.clone())).await.0, 200);
    assert_eq!(rpc_b.post("/txs", &Value::Array(next[..5].to_vec())).await.0, 200);
    let tip = rpc_a.farm(1, &farmer).await.remove(0);
    wait_for("B takes block 2", 20, || async { (b.chain().tip().hash.to_string() == tip).then_some(()) }).await;
    assert_eq!(compact(&rpc_b, "fetched_missing").await, 1);

    // B holds none of a block of twenty: all fetched by index, still no whole block.
    assert_eq!(rpc_a.post("/txs", &Value::Array(transfers(20..40))).await.0, 200);
    let tip = rpc_a.farm(1, &farmer).await.remove(0);
    wait_for("B takes block 3", 20, || async { (b.chain().tip().hash.to_string() == tip).then_some(()) }).await;
    assert_eq!(compact(&rpc_b, "fetched_missing").await, 2);
    assert_eq!(compact(&rpc_b, "fell_back").await, 0, "no whole block was needed");
    assert_eq!(b.chain().tip().height, 3);
    // Nobody was judged for any of it.
    for rpc in [&rpc_a, &rpc_b] {
        let m = rpc.http_text("/metrics").await;
        assert!(!m.lines().any(|l| l.starts_with("cairn_p2p_misbehaviour_total{")), "misbehaviour recorded:\n{m}");
    }
    for n in [a, b] {
        n.shutdown().await;
    }
}
