//! Restart after a clean shutdown: a real `cairn node` process syncs a chain of a few
//! thousand blocks with transactions, is stopped with SIGTERM, and starts again on its data
//! dir. The shutdown flushed the store (nothing left in its write-ahead log to replay), and the
//! restarted node answers `/status` with the synced tip and the synced state.

use std::path::Path;

use cairn::Node;
use cairn::config::NodeConfig;
use cairn_chain::{Address, Block, Chain, ChainSpec, Hash, Store, Transaction};

use crate::support::*;

const BLOCKS: u64 = 3000;
const TXS_PER_BLOCK: u64 = 10;

/// Writes `BLOCKS` blocks of `TXS_PER_BLOCK` transfers (4 dev accounts, each transfer to a new
/// address) straight into the store at `db`; returns the tip and the last recipient.
fn build_chain(db: &Path) -> (Hash, Address) {
    let spec = ChainSpec::devnet();
    let mut store = Store::open(db, &spec.chain_id, spec.genesis().hash()).unwrap();
    store.set_sync_writes(false);
    let mut chain = Chain::open(store.clone(), spec.clone()).unwrap();
    let keys: Vec<_> = (0..4).map(dev).collect();
    let mut nonces = [0u64; 4];
    let (genesis, mut t, mut k) = (chain.genesis_hash(), spec.genesis_timestamp, 0u64);
    let mut last = Address([0; 32]);
    for _ in 0..BLOCKS {
        let mut txs = Vec::new();
        for _ in 0..TXS_PER_BLOCK {
            let i = (k % 4) as usize;
            last = Address(*blake3::hash(&k.to_le_bytes()).as_bytes());
            txs.push(Transaction::signed(&keys[i], genesis, last, 1 + k, 1, nonces[i]));
            nonces[i] += 1;
            k += 1;
        }
        t += spec.block_time_ms;
        let header = chain.template(Address([0xfa; 32]), &txs, t).unwrap();
        let header = cairn::farm::miner::mine(&header, 1, &std::sync::atomic::AtomicBool::new(false)).unwrap();
        chain.submit(Block { header, transactions: txs }, t).unwrap();
    }
    store.sync_wal().unwrap();
    (chain.tip().hash, last)
}

/// Total bytes of RocksDB's write-ahead log files (`*.log`) in `db`.
fn wal_bytes(db: &Path) -> u64 {
    std::fs::read_dir(db)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
        .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_shutdown_after_sync_flushes_and_restarts_at_the_tip() {
    let t = tempfile::tempdir().unwrap();
    let db_a = t.path().join("a/data/db");
    let (tip, last) = tokio::task::spawn_blocking(move || build_chain(&db_a)).await.unwrap();
    let a = Node::start(NodeConfig::for_tests(t.path().join("a/data"))).await.unwrap();
    let d_data = t.path().join("d/data");

    // SIGTERM in the middle of the sync: the node exits within a second, with what it had
    // imported flushed (the restarted node starts at least there and finishes the sync).
    let (mut child, url) = spawn_node(&d_data, &["--peers", &a.p2p_addr().to_string()]);
    let rpc = Rpc::new(url);
    let reached = wait_for("D importing", 60, || {
        let rpc = rpc.clone();
        async move { rpc.try_get("/status").await?.1["height"].as_u64().filter(|h| *h > 0) }
    })
    .await;
    let started = std::time::Instant::now();
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let exit = wait_exit(&mut child, 20);
    let took = started.elapsed();
    println!("SIGTERM at height {reached} of {BLOCKS} (syncing): exited in {} ms", took.as_millis());
    assert!(exit.success(), "node exited with {exit} on SIGTERM mid-sync");
    assert!(took < std::time::Duration::from_millis(1500), "SIGTERM mid-sync took {took:?}");

    let (mut child, url) = spawn_node(&d_data, &["--peers", &a.p2p_addr().to_string()]);
    let rpc = Rpc::new(url);
    let resumed = wait_for("restarted D's /status", 60, || rpc.try_get("/status")).await.1["height"].as_u64().unwrap();
    assert!(resumed >= reached, "restart after a SIGTERM mid-sync is at {resumed}, had reached {reached}");
    wait_for("D at A's tip", 120, || {
        let rpc = rpc.clone();
        async move { (rpc.try_get("/status").await?.1["best_hash"].as_str()? == tip.to_string()).then_some(()) }
    })
    .await;
    let balance = rpc.get(&format!("/accounts/{last}")).await.1["balance"].as_u64().unwrap();
    assert_eq!(balance, BLOCKS * TXS_PER_BLOCK, "the last transfer's recipient");
    a.shutdown().await;

    // A clean stop: SIGTERM, exit status 0, and every memtable flushed, so the log holds
    // nothing to replay (a synced chain of this size leaves megabytes in it otherwise).
    let term = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(term.success());
    let exit = wait_exit(&mut child, 60);
    assert!(exit.success(), "node exited with {exit} on SIGTERM");
    let wal = wal_bytes(&d_data.join("db"));
    println!("write-ahead log left by the clean shutdown: {wal} bytes");
    assert!(wal < 64 * 1024, "clean shutdown left {wal} bytes of write-ahead log to replay");

    let started = std::time::Instant::now();
    let (mut child, url) = spawn_node(&d_data, &[]);
    let rpc = Rpc::new(url);
    let status = wait_for("restarted node's /status", 60, || rpc.try_get("/status")).await;
    println!("restart after sync answered /status in {:.3} s", started.elapsed().as_secs_f64());
    assert_eq!(status.0, 200);
    assert_eq!(status.1["best_hash"].as_str(), Some(tip.to_string().as_str()));
    assert_eq!(status.1["height"].as_u64(), Some(BLOCKS));
    assert_eq!(rpc.get(&format!("/accounts/{last}")).await.1["balance"].as_u64(), Some(balance));
    child.kill().unwrap();
    child.wait().unwrap();
}
