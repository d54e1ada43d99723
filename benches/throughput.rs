//! The live path, against a real `cairn node` process on loopback (the load generator is this
//! process, on the same 2 cores):
//! 1. intake through `POST /txs`: 100 funded senders each send transfers to fresh addresses
//!    (so the account state grows as on a real chain); 4 HTTP clients post them one per
//!    request, then (on a fresh node) as arrays of 1000. Prints accepted tx/s.
//! 2. farming with queued transactions: 200 blocks, each with 50 transfers queued before it
//!    (`POST /farm/blocks {count: 1}` per block; only the farm calls are timed). Prints
//!    blocks/s and the node's CPU time per block (from `/proc`, 10 ms ticks summed over the
//!    200 calls).
//!
//! Run: `CARGO_TARGET_DIR=$HOME/.cache/cairn/target cargo bench --bench throughput` (prints
//! figures, asserts only correctness). `CAIRN_BIN=path/to/cairn` runs another build of the
//! node (an older one for "before" figures; it must speak single `POST /txs` only:
//! `THROUGHPUT_ARRAYS=0`). `THROUGHPUT_ONLY=intake|farming` runs one part.

use std::time::Instant;

use cairn_chain::{Address, ChainSpec, Hash, Keypair, Transaction};
use serde_json::{Value, json};

#[path = "../tests/common/process.rs"]
mod process;

const SENDERS: usize = 100;
const PER_SENDER: u64 = 190;
const CLIENTS: usize = 4;

fn tx_json(tx: &Transaction) -> Value {
    json!({
        "chain": tx.chain, "from": tx.from, "to": tx.to, "amount": tx.amount, "fee": tx.fee,
        "nonce": tx.nonce, "signature": tx.signature,
    })
}

struct Node {
    child: std::process::Child,
    url: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Node {
    fn start() -> Node {
        let dir = tempfile::tempdir().unwrap();
        let (child, url) = process::spawn_node(&dir.path().join("data"), &[]);
        Node { child, url, http: reqwest::Client::new(), _dir: dir }
    }
    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self.http.post(format!("{}{path}", self.url)).json(body).send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }
    async fn farm(&self, count: u64) {
        let (s, v) = self.post("/farm/blocks", &json!({"count": count, "farmer": Address([0xfa; 32])})).await;
        assert_eq!(s, 200, "{v}");
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Funds `SENDERS` fresh keys from the dev accounts (one block) and returns them.
async fn fund(node: &Node, spec: &ChainSpec, genesis: Hash) -> Vec<Keypair> {
    let senders: Vec<Keypair> = (0..SENDERS).map(|_| Keypair::generate()).collect();
    let mut nonces = [0u64; 10];
    for (i, k) in senders.iter().enumerate() {
        let d = i % 10;
        let tx = Transaction::signed(&spec.dev_key(d as u32).unwrap(), genesis, k.address(), 1_000_000_000, 1, nonces[d]);
        nonces[d] += 1;
        let (s, v) = node.post("/txs", &tx_json(&tx)).await;
        assert_eq!(s, 202, "{v}");
    }
    node.farm(1).await;
    senders
}

/// Every sender's transfers to fresh addresses, nonces from `first`.
fn transfers(senders: &[Keypair], genesis: Hash, first: u64, per: u64) -> Vec<Transaction> {
    let mut out = Vec::new();
    for n in first..first + per {
        for k in senders {
            out.push(Transaction::signed(k, genesis, Keypair::generate().address(), 1, 1, n));
        }
    }
    out
}

async fn intake(arrays: bool) -> f64 {
    let spec = ChainSpec::devnet();
    let genesis = spec.genesis().hash();
    let node = Node::start();
    let senders = fund(&node, &spec, genesis).await;
    let txs = transfers(&senders, genesis, 0, PER_SENDER);
    let total = txs.len();
    // Each client gets whole senders, so every sender's nonces arrive in order.
    let mut parts: Vec<Vec<Value>> = vec![Vec::new(); CLIENTS];
    for (i, tx) in txs.iter().enumerate() {
        parts[(i % SENDERS) % CLIENTS].push(tx_json(tx));
    }
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for part in parts {
        let (http, url) = (reqwest::Client::new(), node.url.clone());
        tasks.push(tokio::spawn(async move {
            let mut accepted = 0;
            if arrays {
                for chunk in part.chunks(1000) {
                    let r = http.post(format!("{url}/txs")).json(&Value::Array(chunk.to_vec())).send().await.unwrap();
                    let v: Value = r.json().await.unwrap();
                    accepted += v.as_array().unwrap().iter().filter(|x| x["txid"].is_string()).count();
                }
            } else {
                for tx in part {
                    let r = http.post(format!("{url}/txs")).json(&tx).send().await.unwrap();
                    accepted += usize::from(r.status().as_u16() == 202);
                }
            }
            accepted
        }));
    }
    let mut accepted = 0;
    for t in tasks {
        accepted += t.await.unwrap();
    }
    let secs = t0.elapsed().as_secs_f64();
    assert_eq!(accepted, total, "every transfer accepted");
    let rate = total as f64 / secs;
    println!(
        "intake ({}): {total} transfers to fresh addresses in {secs:.2} s = {rate:.0} tx/s",
        if arrays { "arrays of 1000, 4 clients" } else { "one per request, 4 clients" }
    );
    rate
}

/// CPU-seconds (user + system) process `pid` has used.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0) + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    ticks / 100.0
}

async fn farming() {
    let spec = ChainSpec::devnet();
    let genesis = spec.genesis().hash();
    let node = Node::start();
    let senders = fund(&node, &spec, genesis).await;
    // `THROUGHPUT_BLOCKS` farms more (e.g. a longer run under a profiler).
    let blocks: u64 = std::env::var("THROUGHPUT_BLOCKS").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    // `THROUGHPUT_TXS` queues fewer (0: the fixed cost of a block).
    let per_block: usize = std::env::var("THROUGHPUT_TXS").ok().and_then(|v| v.parse().ok()).unwrap_or(50).min(50);
    let mut farm_secs = 0.0;
    let mut farm_cpu = 0.0;
    let mut next = vec![0u64; SENDERS];
    for b in 0..blocks {
        // 50 transfers from 50 senders (alternating halves), queued before the block.
        for j in 0..per_block {
            let i = (b as usize % 2) * 50 + j;
            let tx = Transaction::signed(&senders[i], genesis, Keypair::generate().address(), 1, 1, next[i]);
            next[i] += 1;
            let (s, v) = node.post("/txs", &tx_json(&tx)).await;
            assert_eq!(s, 202, "{v}");
        }
        let (t, cpu) = (Instant::now(), cpu_secs(node.child.id()));
        node.farm(1).await;
        farm_secs += t.elapsed().as_secs_f64();
        farm_cpu += cpu_secs(node.child.id()) - cpu;
    }
    println!(
        "farming: {blocks} blocks with {per_block} queued transfers each in {farm_secs:.2} s of farm calls = {:.0} blocks/s; node CPU {:.2} ms a block",
        blocks as f64 / farm_secs,
        farm_cpu * 1000.0 / blocks as f64
    );
}

#[tokio::main]
async fn main() {
    let arrays = std::env::var("THROUGHPUT_ARRAYS").map_or(true, |v| v != "0");
    // `THROUGHPUT_ONLY=intake|farming` runs one part (e.g. under a profiler).
    let only = std::env::var("THROUGHPUT_ONLY").unwrap_or_default();
    if only != "farming" {
        intake(false).await;
        if arrays {
            intake(true).await;
        }
    }
    if only != "intake" {
        farming().await;
    }
}
