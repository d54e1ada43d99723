//! Foundation benchmarks: block apply rate (50-transaction blocks), `POST /farm/blocks` with
//! 50 transactions queued, and farming hash rate against raw BLAKE3 header hashing.
//!
//! Run: `cargo bench --bench foundation` (release profile; prints figures, asserts nothing).
//! `BENCH_BLOCKS=N` sets how many blocks the apply benchmark uses (default 400).

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use cairn::Node;
use cairn::config::NodeConfig;
use cairn_chain::{AccountSource, Address, Block, Chain, ChainSpec, Hash, Header, Store, Transaction};

const TXS_PER_BLOCK: usize = 50;

fn open(dir: &std::path::Path, spec: &ChainSpec, sync: bool) -> (Chain, Store) {
    let mut store = Store::open(dir, &spec.chain_id, spec.genesis().hash()).unwrap();
    store.set_sync_writes(sync);
    (Chain::open(store.clone(), spec.clone()).unwrap(), store)
}

fn mine(mut h: Header) -> Header {
    while !h.target.is_met_by(&h.hash()) {
        h.nonce += 1;
    }
    h
}

/// Builds `n` blocks of 50 signed transfers (from 10 dev accounts) on a scratch chain.
fn build_blocks(spec: &ChainSpec, n: usize) -> Vec<Block> {
    let dir = tempfile::tempdir().unwrap();
    let (mut chain, store) = open(dir.path(), spec, false);
    let keys: Vec<_> = (0..10).map(|i| spec.dev_key(i).unwrap()).collect();
    let genesis = chain.genesis_hash();
    let mut out = Vec::with_capacity(n);
    let mut t = spec.genesis_timestamp;
    for _ in 0..n {
        let mut txs = Vec::with_capacity(TXS_PER_BLOCK);
        for (i, k) in keys.iter().enumerate() {
            let nonce = store.account(&k.address()).unwrap().nonce;
            for j in 0..(TXS_PER_BLOCK / keys.len()) as u64 {
                txs.push(Transaction::signed(k, genesis, Address([(i * 7 + j as usize) as u8; 32]), 1 + j, 1, nonce + j));
            }
        }
        t += spec.block_time_ms;
        let header = mine(chain.template(Address([0xfa; 32]), &txs, t).unwrap());
        let b = Block { header, transactions: txs };
        chain.submit(b.clone(), t).unwrap();
        out.push(b);
    }
    out
}

fn bench_apply(spec: &ChainSpec, blocks: &[Block], sync: bool) {
    let dir = tempfile::tempdir().unwrap();
    let (mut chain, _) = open(dir.path(), spec, sync);
    let now = blocks.last().unwrap().header.timestamp;
    let start = Instant::now();
    for b in blocks {
        chain.submit(b.clone(), now).unwrap();
    }
    let s = start.elapsed().as_secs_f64();
    let n = blocks.len() as f64;
    println!(
        "apply {} blocks x {TXS_PER_BLOCK} tx (full validation, batch signatures, RocksDB sync={sync}): {:.2} s, {:.0} blocks/s, {:.0} tx/s",
        blocks.len(),
        s,
        n / s,
        n * TXS_PER_BLOCK as f64 / s
    );
}

fn bench_hashing() {
    let mut header = ChainSpec::devnet().genesis().header;
    header.target = cairn_chain::Target([0; 32]); // unreachable: the search runs until stopped
    let window = Duration::from_secs(2);
    // Raw BLAKE3 over a 156-byte header, one thread.
    let mut bytes = header.encode();
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < window {
        for _ in 0..10_000 {
            bytes[Header::NONCE_OFFSET..Header::NONCE_OFFSET + 8].copy_from_slice(&n.to_le_bytes());
            std::hint::black_box(blake3::hash(&bytes));
            n += 1;
        }
    }
    let raw = n as f64 / start.elapsed().as_secs_f64();
    println!("raw BLAKE3 header hashing, 1 thread: {:.2} MH/s", raw / 1e6);
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    // Miner throughput: search a target met about once per 2^20 hashes, many times; the
    // winning nonce is (about) how many hashes all threads tried together.
    let mut hard = [0xff; 32];
    hard[0] = 0;
    hard[1] = 0;
    hard[2] = 0x0f; // ~2^20 hashes per hit
    for threads in 1..=cores {
        let mut h = header.clone();
        h.target = cairn_chain::Target(hard);
        let stop = AtomicBool::new(false);
        let start = Instant::now();
        let mut hashes = 0f64;
        let mut hits = 0;
        while start.elapsed() < Duration::from_secs(4) {
            h.timestamp += 1;
            let found = cairn::farm::miner::mine(&h, threads, &stop).unwrap();
            hashes += found.nonce as f64;
            hits += 1;
        }
        let rate = hashes / start.elapsed().as_secs_f64();
        println!(
            "miner, {threads} thread(s): {:.2} MH/s total, {:.2} MH/s per thread ({hits} blocks at ~2^20 hashes each)",
            rate / 1e6,
            rate / 1e6 / threads as f64
        );
    }
}

async fn bench_farm_rpc() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(NodeConfig::for_tests(dir.path().join("data"))).await.unwrap();
    let base = format!("http://{}", node.rpc_addr());
    let http = reqwest::Client::new();
    let spec = ChainSpec::devnet();
    let genesis: Hash = spec.genesis().hash();
    let farmer = Address([0xfa; 32]);
    let rounds = 20;
    let mut total = Duration::ZERO;
    for _ in 0..rounds {
        for i in 0..TXS_PER_BLOCK as u32 {
            let k = spec.dev_key(i % 10).unwrap();
            let acct: serde_json::Value = http.get(format!("{base}/accounts/{}", k.address())).send().await.unwrap().json().await.unwrap();
            let tx = Transaction::signed(&k, genesis, Address([3; 32]), 1, 1, acct["next_nonce"].as_u64().unwrap());
            let r = http.post(format!("{base}/txs")).json(&cairn_rpc_types::views::TxView::from(&tx)).send().await.unwrap();
            assert!(r.status().is_success());
        }
        let start = Instant::now();
        let r = http.post(format!("{base}/farm/blocks")).json(&serde_json::json!({"count": 1, "farmer": farmer.to_string()})).send().await.unwrap();
        assert!(r.status().is_success());
        total += start.elapsed();
    }
    let per = total.as_secs_f64() / rounds as f64;
    println!(
        "POST /farm/blocks count=1 with {TXS_PER_BLOCK} tx queued: {:.2} ms per block, {:.0} blocks/s ({rounds} rounds, synced writes)",
        per * 1e3,
        1.0 / per
    );
    let start = Instant::now();
    let r = http.post(format!("{base}/farm/blocks")).json(&serde_json::json!({"count": 100, "farmer": farmer.to_string()})).send().await.unwrap();
    assert!(r.status().is_success());
    let s = start.elapsed().as_secs_f64();
    println!("POST /farm/blocks count=100 (empty blocks): {:.2} s, {:.0} blocks/s", s, 100.0 / s);
    node.shutdown().await;
}

fn main() {
    let n: usize = std::env::var("BENCH_BLOCKS").ok().and_then(|v| v.parse().ok()).unwrap_or(400);
    let spec = ChainSpec::devnet();
    let t = Instant::now();
    let blocks = build_blocks(&spec, n);
    println!("built {n} blocks x {TXS_PER_BLOCK} signed tx in {:.2} s", t.elapsed().as_secs_f64());
    bench_apply(&spec, &blocks, false);
    bench_apply(&spec, &blocks, true);
    tokio::runtime::Runtime::new().unwrap().block_on(bench_farm_rpc());
    bench_hashing();
}
