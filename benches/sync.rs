//! Sync benchmarks, all on loopback:
//! 1. catch-up sync: chain A (N blocks x T signed transfers, built directly into A's store) is
//!    served by an in-process node; a fresh `cairn node` child process D dials A and syncs.
//!    Timed from spawning D until D's `/status` `best_hash` equals A's tip (polled every 50 ms);
//!    prints seconds, blocks/s, tx/s and D's peak RSS (`VmHWM`). Default runs: N=2000,T=50
//!    then N=20000,T=0;
//! 2. this machine's raw ed25519 batch-verify rate (`verify_batch`, chunks of 50) over the same
//!    signatures, on 1 and 2 threads, and sync tx/s as a fraction of the 2-thread rate;
//! 3. block propagation along a line of 10 in-process nodes: 20 blocks farmed one at a time at
//!    node 0; median and max first-to-last-node latency, and per hop (/9).
//!
//! Run: `CARGO_TARGET_DIR=$HOME/.cache/cairn/target cargo bench --bench sync` (release profile;
//! prints figures, asserts nothing about timing). `SYNC_N=blocks SYNC_T=txs_per_block` replace
//! the two default sync runs with a single one.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn::Node;
use cairn::config::NodeConfig;
use cairn::farm::farmer::farm_blocks;
use cairn_chain::keys::SignatureBytes;
use cairn_chain::{AccountSource, Address, Block, Chain, ChainSpec, Hash, Header, PublicKey, Store, Transaction};
use tokio_util::sync::CancellationToken;

fn mine(mut h: Header) -> Header {
    while !h.target.is_met_by(&h.hash()) {
        h.nonce += 1;
    }
    h
}

/// Builds `n` blocks of `t` signed transfers (spread over 10 dev accounts) directly into the
/// store at `db`; returns every transaction.
fn build_chain(db: &Path, spec: &ChainSpec, n: usize, t: usize) -> Vec<Transaction> {
    let mut store = Store::open(db, &spec.chain_id, spec.genesis().hash()).unwrap();
    store.set_sync_writes(false);
    let mut chain = Chain::open(store.clone(), spec.clone()).unwrap();
    let keys: Vec<_> = (0..10).map(|i| spec.dev_key(i).unwrap()).collect();
    let genesis = chain.genesis_hash();
    let mut all = Vec::with_capacity(n * t);
    let mut ts = spec.genesis_timestamp;
    for _ in 0..n {
        let mut txs = Vec::with_capacity(t);
        let mut nonces: Vec<u64> = keys.iter().map(|k| store.account(&k.address()).unwrap().nonce).collect();
        for j in 0..t {
            let i = j % keys.len();
            txs.push(Transaction::signed(&keys[i], genesis, Address([(i * 7 + j) as u8; 32]), 1 + j as u64, 1, nonces[i]));
            nonces[i] += 1;
        }
        ts += spec.block_time_ms;
        let header = mine(chain.template(Address([0xfa; 32]), &txs, ts).unwrap());
        all.extend(txs.iter().cloned());
        chain.submit(Block { header, transactions: txs }, ts).unwrap();
    }
    all
}

fn peak_rss_mib(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb: f64 = s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    kb / 1024.0
}

#[path = "../tests/common/process.rs"]
mod process;

/// One sync run; returns (tx/s, the transactions of the chain).
async fn bench_sync(n: usize, t: usize) -> (f64, Vec<Transaction>) {
    let spec = ChainSpec::devnet();
    let dir = tempfile::tempdir().unwrap();
    let data_a = dir.path().join("a").join("data");
    let built = Instant::now();
    let db = data_a.join("db");
    let txs = tokio::task::spawn_blocking(move || build_chain(&db, &spec, n, t)).await.unwrap();
    println!("built {n} blocks x {t} tx in {:.2} s", built.elapsed().as_secs_f64());
    let a = Node::start(NodeConfig::for_tests(data_a)).await.unwrap();
    let tip = a.chain().tip();
    assert_eq!(tip.height, n as u64);
    let want = tip.hash.to_string();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let start = Instant::now();
    let (mut child, url) = process::spawn_node(&dir.path().join("d"), &["--peers", &a.p2p_addr().to_string()]);
    loop {
        let best = match http.get(format!("{url}/status")).send().await {
            Ok(r) => r.json::<serde_json::Value>().await.ok().and_then(|v| v["best_hash"].as_str().map(str::to_string)),
            Err(_) => None,
        };
        if best.as_deref() == Some(want.as_str()) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(300), "D did not reach A's tip within 300 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let s = start.elapsed().as_secs_f64();
    let rss = peak_rss_mib(child.id());
    let _ = child.kill();
    let _ = child.wait();
    a.shutdown().await;
    let tps = (n * t) as f64 / s;
    println!(
        "sync {n} blocks x {t} tx (fresh `cairn node` child from an in-process peer, spawn to A's tip): {s:.2} s, {:.0} blocks/s, {tps:.0} tx/s, peak RSS {rss:.1} MiB",
        n as f64 / s
    );
    (tps, txs)
}

type Item = (PublicKey, Vec<u8>, SignatureBytes);

fn verify_all(items: &[Item]) {
    for c in items.chunks(50) {
        assert!(cairn_chain::signature::verify_batch(c.iter().map(|(k, m, s)| (k, &m[..], s))));
    }
}

/// Returns the 2-thread rate.
fn bench_verify(txs: &[Transaction]) -> f64 {
    let items: Vec<Item> = txs.iter().map(|tx| (tx.from, tx.signing_message(), tx.signature)).collect();
    let n = items.len() as f64;
    let start = Instant::now();
    verify_all(&items);
    let one = n / start.elapsed().as_secs_f64();
    let start = Instant::now();
    let (x, y) = items.split_at(items.len() / 2);
    std::thread::scope(|s| {
        s.spawn(|| verify_all(x));
        s.spawn(|| verify_all(y));
    });
    let two = n / start.elapsed().as_secs_f64();
    println!("raw ed25519 verify_batch (chunks of 50) over {} signatures: 1 thread {one:.0} sig/s, 2 threads {two:.0} sig/s", items.len());
    two
}

async fn bench_propagation() {
    const NODES: usize = 10;
    const BLOCKS: usize = 20;
    let dir = tempfile::tempdir().unwrap();
    let mut nodes: Vec<Node> = Vec::new();
    for i in 0..NODES {
        let mut c = NodeConfig::for_tests(dir.path().join(i.to_string()).join("data"));
        // A strict line: one outbound (to the previous node), one inbound, so peer exchange
        // cannot turn it into a mesh.
        (c.p2p.target_outbound, c.p2p.max_outbound, c.p2p.max_inbound) = (usize::from(i > 0), 1, 1);
        if let Some(prev) = nodes.last() {
            c.peers = vec![prev.p2p_addr().to_string()];
        }
        nodes.push(Node::start(c).await.unwrap());
    }
    let t0 = Instant::now();
    while !nodes[1..NODES - 1].iter().all(|n| n.p2p().peer_count() == 2) {
        assert!(t0.elapsed() < Duration::from_secs(30), "line did not connect within 30 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seen: Arc<Mutex<HashMap<(usize, Hash), Instant>>> = Arc::default();
    for (i, n) in nodes.iter().enumerate() {
        let mut rx = n.chain().watch_tip();
        let seen = seen.clone();
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let h = rx.borrow_and_update().hash;
                seen.lock().unwrap().entry((i, h)).or_insert_with(Instant::now);
            }
        });
    }
    let mut lat = Vec::with_capacity(BLOCKS);
    for _ in 0..BLOCKS {
        let h = farm_blocks(nodes[0].chain(), Address([0xfa; 32]), 1, 1, &CancellationToken::new()).await.unwrap()[0];
        let t0 = Instant::now();
        let last = loop {
            if let Some(t) = seen.lock().unwrap().get(&(NODES - 1, h)) {
                break *t;
            }
            assert!(t0.elapsed() < Duration::from_secs(30), "block did not reach the last node within 30 s");
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        let first = seen.lock().unwrap()[&(0, h)];
        lat.push((last - first).as_secs_f64() * 1e3);
    }
    lat.sort_by(|a, b| a.total_cmp(b));
    let (med, max) = (lat[BLOCKS / 2], lat[BLOCKS - 1]);
    let hops = (NODES - 1) as f64;
    println!(
        "propagation along a line of {NODES} nodes, {BLOCKS} blocks: first->last median {med:.2} ms, max {max:.2} ms; per hop median {:.2} ms, max {:.2} ms",
        med / hops,
        max / hops
    );
    for n in nodes {
        n.shutdown().await;
    }
}

fn main() {
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<usize>().ok());
    let runs = match (env("SYNC_N"), env("SYNC_T")) {
        (None, None) => vec![(2000, 50), (20000, 0)],
        (n, t) => vec![(n.unwrap_or(2000), t.unwrap_or(50))],
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    for (n, t) in runs {
        let (tps, txs) = rt.block_on(bench_sync(n, t));
        if !txs.is_empty() {
            let two = bench_verify(&txs);
            println!("sync tx/s / 2-thread batch-verify rate: {:.3}", tps / two);
        }
    }
    rt.block_on(bench_propagation());
}
