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
//! 3. network: three `cairn node` processes on the load-test spec (`config/loadtest.toml`)
//!    in a triangle, the first farming at the block time; for `THROUGHPUT_SECS` (default 30)
//!    this process posts transfers to fresh addresses as arrays of 1000 through `POST /txs`
//!    (signed on all cores before the load starts, as clients elsewhere would have signed
//!    them; `THROUGHPUT_SIGN=live` signs them during the load, on the nodes' cores), spread over the three nodes (each sender always to the
//!    same node, so its nonces arrive in order). Then it waits (with a deadline) for the
//!    mempools to drain and prints confirmed tx/s, mempool sizes, bans, misbehaviour and
//!    dropped links, whether the nodes share one tip and whether every accepted transfer was
//!    confirmed.
//!
//! The posters behave as clients that respect a 429: a sender refused for want of room
//! (`too_many_pending`: its 256 pending; `mempool_full`) rests until the next block, as the
//! devnet's load generator does. `THROUGHPUT_HAMMER=1` sends those transfers again at once
//! (clients that ignore 429s: the nodes then spend much of their time refusing).
//!
//! `THROUGHPUT_RATE=N` paces the network load at N transfers a second (below capacity, the
//! CPU per transfer it prints is what each one costs, without overload's backlogs).
//!
//! Run: `CARGO_TARGET_DIR=$HOME/.cache/cairn/target cargo bench --bench throughput` (prints
//! figures, asserts only correctness). `CAIRN_BIN=path/to/cairn` runs another build of the
//! node (an older one for "before" figures; it must speak single `POST /txs` only:
//! `THROUGHPUT_ARRAYS=0`). `THROUGHPUT_ONLY=intake|farming|network` runs one part; `PERF_CTL=fifo`
//! profiles only the timed farm calls (see [`PerfControl`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
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

/// `PERF_CTL=fifo` profiles only the timed calls: `enable`/`disable` go to the control fifo of
/// `perf record -D -1 --control fifo:FIFO -- …` around each one.
struct PerfControl(Option<std::fs::File>);

impl PerfControl {
    fn open() -> PerfControl {
        PerfControl(std::env::var_os("PERF_CTL").map(|p| std::fs::OpenOptions::new().write(true).open(p).expect("PERF_CTL fifo")))
    }
    fn set(&mut self, on: bool) {
        use std::io::Write;
        if let Some(f) = self.0.as_mut() {
            f.write_all(if on { b"enable\n" } else { b"disable\n" }).expect("perf control");
        }
    }
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
    // `THROUGHPUT_SETTLE_MS` waits that long between queueing and farming, so what intake
    // leaves running (relay, events, the mempool's group commit) is not counted in the block.
    let settle_ms: u64 = std::env::var("THROUGHPUT_SETTLE_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut farm_secs = 0.0;
    let mut farm_cpu = 0.0;
    let mut next = vec![0u64; SENDERS];
    let mut perf = PerfControl::open();
    let metrics_url = format!("{}/metrics", node.url);
    let before = get_text(&node.http, &metrics_url).await;
    for b in 0..blocks {
        // 50 transfers from 50 senders (alternating halves), queued before the block.
        for j in 0..per_block {
            let i = (b as usize % 2) * 50 + j;
            let tx = Transaction::signed(&senders[i], genesis, Keypair::generate().address(), 1, 1, next[i]);
            next[i] += 1;
            let (s, v) = node.post("/txs", &tx_json(&tx)).await;
            assert_eq!(s, 202, "{v}");
        }
        if settle_ms > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(settle_ms)).await;
        }
        perf.set(true);
        let (t, cpu) = (Instant::now(), cpu_secs(node.child.id()));
        node.farm(1).await;
        farm_secs += t.elapsed().as_secs_f64();
        farm_cpu += cpu_secs(node.child.id()) - cpu;
        perf.set(false);
    }
    println!(
        "farming: {blocks} blocks with {per_block} queued transfers each in {farm_secs:.2} s of farm calls = {:.0} blocks/s; node CPU {:.2} ms a block",
        blocks as f64 / farm_secs,
        farm_cpu * 1000.0 / blocks as f64
    );
    // Where a block's time goes: the chain thread's validation and commit (fsync included),
    // and the whole HTTP call as the node timed it.
    let after = get_text(&node.http, &metrics_url).await;
    let delta = |name: &str| metric_f64(&after, name) - metric_f64(&before, name);
    let imports = delta("cairn_block_import_seconds_count").max(1.0);
    println!(
        "farming: block import on the chain thread {:.2} ms a block (validation + commit + fsync); the node answered each farm call in {:.2} ms",
        delta("cairn_block_import_seconds_sum") * 1000.0 / imports,
        farm_route_ms(&before, &after)
    );
}

/// Mean time the node took to answer `POST /farm/blocks` between two scrapes, in ms.
fn farm_route_ms(before: &str, after: &str) -> f64 {
    let pick = |text: &str, suffix: &str| {
        text.lines()
            .filter(|l| l.starts_with(&format!("cairn_rpc_request_duration_seconds_{suffix}{{")) && l.contains("/farm/blocks"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    let n = (pick(after, "count") - pick(before, "count")).max(1.0);
    (pick(after, "sum") - pick(before, "sum")) * 1000.0 / n
}

#[tokio::main]
async fn main() {
    let arrays = std::env::var("THROUGHPUT_ARRAYS").map_or(true, |v| v != "0");
    // `THROUGHPUT_ONLY=intake|farming|network` runs one part (e.g. under a profiler).
    let only = std::env::var("THROUGHPUT_ONLY").unwrap_or_default();
    if only.is_empty() || only == "intake" {
        intake(false).await;
        if arrays {
            intake(true).await;
        }
    }
    if only.is_empty() || only == "farming" {
        farming().await;
    }
    if only.is_empty() || only == "network" {
        network().await;
    }
}

/// Senders of the network load, per node: each sender's transfers go to one node only.
const NET_SENDERS_PER_NODE: usize = 600;
/// Transfers a poster signs and sends in one array.
const NET_BATCH: usize = 1000;
/// Posters per node (each with its own senders), so signing and posting overlap.
const NET_POSTERS: usize = 2;

/// A number from the Prometheus text, summed over its labelled lines (0 if absent).
fn metric_sum(text: &str, name: &str) -> u64 {
    metric_f64(text, name) as u64
}

/// [`metric_sum`] without rounding (a histogram's `_sum` in seconds).
fn metric_f64(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#') && (l.starts_with(&format!("{name} ")) || l.starts_with(&format!("{name}{{"))))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

struct NetNode {
    child: std::process::Child,
    url: String,
    peer: String,
    _dir: tempfile::TempDir,
}

impl Drop for NetNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn get_json(http: &reqwest::Client, url: &str) -> Value {
    match http.get(url).send().await {
        Ok(r) => r.json().await.unwrap_or(Value::Null),
        Err(_) => Value::Null,
    }
}

async fn get_text(http: &reqwest::Client, url: &str) -> String {
    match http.get(url).send().await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// What became of one posted transfer.
#[derive(Clone, Copy, PartialEq)]
enum Posted {
    Accepted,
    /// Refused for want of room (`too_many_pending`, `mempool_full`: HTTP 429 alone): a client
    /// waits for a block before sending that sender's transfers again.
    NoRoom,
    /// Any other refusal, or no answer.
    Refused,
}

/// Posts `txs` as one array; per transaction, what became of it.
async fn post_batch(http: &reqwest::Client, url: &str, txs: &[Transaction]) -> Vec<Posted> {
    // Serialized straight from the transactions (the same JSON as `tx_json`, without building
    // a `Value` tree per transfer: the load generator shares the nodes' two cores).
    let body = serde_json::to_vec(txs).expect("transactions serialize");
    let Ok(r) = http.post(format!("{url}/txs")).header(reqwest::header::CONTENT_TYPE, "application/json").body(body).send().await else {
        return vec![Posted::Refused; txs.len()];
    };
    let v: Value = r.json().await.unwrap_or(Value::Null);
    match v.as_array() {
        Some(a) if a.len() == txs.len() => a
            .iter()
            .map(|x| {
                if x["txid"].is_string() {
                    Posted::Accepted
                } else if matches!(x["error"]["code"].as_str(), Some("too_many_pending" | "mempool_full")) {
                    Posted::NoRoom
                } else {
                    Posted::Refused
                }
            })
            .collect(),
        _ => vec![Posted::Refused; txs.len()],
    }
}

async fn network() {
    let secs: u64 = std::env::var("THROUGHPUT_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(30);
    // A load below the network's capacity measures what each transfer costs, apart from the
    // effects of overload (backlogs, relay lag): `THROUGHPUT_RATE` transfers a second in all.
    let rate: Option<f64> = std::env::var("THROUGHPUT_RATE").ok().and_then(|v| v.parse().ok());
    let chain_path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/loadtest.toml");
    let spec = ChainSpec::load(std::path::Path::new(chain_path)).expect("load-test spec");
    let genesis = spec.genesis().hash();
    let farmer = Address([0xfa; 32]).to_string();
    // The nodes' own default mempool (two full blocks: 100,000 on this spec), unless
    // `THROUGHPUT_MEMPOOL=N`.
    let mempool: Option<u64> = std::env::var("THROUGHPUT_MEMPOOL").ok().and_then(|v| v.parse().ok());
    let start = |peers: Vec<String>, farm: bool| {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("node.toml");
        std::fs::write(&config, mempool.map_or(String::new(), |n| format!("mempool_max_txs = {n}\n"))).unwrap();
        let mut args: Vec<String> = vec!["--chain".into(), chain_path.into(), "--config".into(), config.display().to_string()];
        if !peers.is_empty() {
            args.extend(["--peers".into(), peers.join(",")]);
        }
        if farm {
            args.extend(["--farm".into(), farmer.clone()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (child, url, peer) = process::spawn_node_addrs(&dir.path().join("data"), &args);
        NetNode { child, url, peer, _dir: dir }
    };
    let a = start(vec![], true);
    let b = start(vec![a.peer.clone()], false);
    let c = start(vec![a.peer.clone(), b.peer.clone()], false);
    let nodes = [a, b, c];
    let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(120)).build().unwrap();
    let deadline = Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let mut ok = true;
        for n in &nodes {
            ok &= get_json(&http, &format!("{}/status", n.url)).await["peers"].as_u64().unwrap_or(0) >= 2;
        }
        if ok {
            break;
        }
        assert!(Instant::now() < deadline, "the triangle did not connect within 60 s");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    let links_before: u64 = {
        let mut n = 0;
        for node in &nodes {
            n += metric_sum(&get_text(&http, &format!("{}/metrics", node.url)).await, "cairn_p2p_disconnections_total");
        }
        n
    };

    // Fund the senders from the dev accounts, through the farming node; start once confirmed.
    let senders: Vec<Keypair> = (0..NET_SENDERS_PER_NODE * 3).map(|_| Keypair::generate()).collect();
    let devs = spec.dev_accounts.as_ref().map_or(1, |d| d.count as usize);
    let mut fund = Vec::new();
    for (i, k) in senders.iter().enumerate() {
        let d = i % devs;
        fund.push(Transaction::signed(&spec.dev_key(d as u32).unwrap(), genesis, k.address(), 1_000_000_000, 1, (i / devs) as u64));
    }
    assert!(post_batch(&http, &nodes[0].url, &fund).await.iter().all(|p| *p == Posted::Accepted), "funding accepted");
    let funded_at = {
        let deadline = Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let v = get_json(&http, &format!("{}/accounts/{}", nodes[0].url, senders[senders.len() - 1].address())).await;
            if v["balance"].as_u64().unwrap_or(0) > 0 {
                break get_json(&http, &format!("{}/status", nodes[0].url)).await["height"].as_u64().unwrap_or(0);
            }
            assert!(Instant::now() < deadline, "funding not confirmed within 60 s");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    };

    // The transfers: a fresh address each, the hash of (poster, sender, nonce), no key
    // generation (it would cost as much as the signature). Signed before the clock starts
    // (up to 20,000 a second of load), unless `THROUGHPUT_SIGN=live`: on a real network the
    // clients' signing is not on the nodes' cores, and here it took a sixth of the machine.
    // Past what was signed ahead, the posters sign as they go.
    let per_poster = NET_SENDERS_PER_NODE / NET_POSTERS;
    let live = std::env::var("THROUGHPUT_SIGN").is_ok_and(|v| v == "live");
    let ahead = if live { 0 } else { (secs * 20_000).div_ceil(senders.len() as u64) };
    let fresh = |p: usize, s: usize, n: u64| Address(Hash::digest(&[p.to_le_bytes(), s.to_le_bytes(), n.to_le_bytes()].concat()).0);
    let signed_at = Instant::now();
    // Per poster, per sender: its transfers by nonce.
    let presigned: Vec<Arc<Vec<Vec<Transaction>>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = senders
            .chunks(per_poster)
            .enumerate()
            .map(|(p, keys)| {
                scope.spawn(move || {
                    keys.iter().enumerate().map(|(s, k)| (0..ahead).map(|n| Transaction::signed(k, genesis, fresh(p, s, n), 1, 1, n)).collect()).collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| Arc::new(h.join().unwrap())).collect()
    });
    if !live {
        println!("network: {} transfers signed ahead in {:.1} s", ahead as usize * senders.len(), signed_at.elapsed().as_secs_f64());
    }

    // The load: posters post arrays until the end (signing on the blocking pool what was not
    // signed ahead).
    let accepted = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let no_room = Arc::new(AtomicU64::new(0));
    // Clients that respect a 429: a sender refused for want of room (its 256 pending, or a full
    // mempool) rests until the next block. `THROUGHPUT_HAMMER=1` sends its transfers again at
    // once (a client that ignores 429s: the nodes spend their time refusing).
    let hammer = std::env::var("THROUGHPUT_HAMMER").is_ok_and(|v| v == "1");
    let t0 = Instant::now();
    let end = t0 + std::time::Duration::from_secs(secs);
    // The farming node's height, for resting senders.
    let height = Arc::new(AtomicU64::new(funded_at));
    {
        let (http, url, height) = (http.clone(), nodes[0].url.clone(), height.clone());
        tokio::spawn(async move {
            while Instant::now() < end {
                if let Some(h) = get_json(&http, &format!("{url}/status")).await["height"].as_u64() {
                    height.store(h, Ordering::Relaxed);
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        });
    }
    let mut posters = Vec::new();
    for (p, keys) in senders.chunks(per_poster).enumerate() {
        let presigned = presigned[p].clone();
        let url = nodes[p / NET_POSTERS].url.clone();
        let keys: Arc<Vec<Keypair>> = Arc::new(keys.to_vec());
        let (http, accepted, refused, no_room, height) = (http.clone(), accepted.clone(), refused.clone(), no_room.clone(), height.clone());
        posters.push(tokio::spawn(async move {
            let mut next = vec![0u64; keys.len()];
            // Per sender, the height it was refused room at: it rests while the tip is there.
            let mut rest = vec![0u64; keys.len()];
            let mut turn = 0usize;
            // Paced: one array per period from each of the 3 × NET_POSTERS posters.
            let period = rate.map(|r| std::time::Duration::from_secs_f64(NET_BATCH as f64 * 3.0 * NET_POSTERS as f64 / r));
            let mut due = tokio::time::Instant::now();
            while Instant::now() < end {
                if let Some(period) = period {
                    tokio::time::sleep_until(due).await;
                    due += period;
                }
                // Round robin over this poster's senders that are not resting, nonces in order.
                let h = height.load(Ordering::Relaxed);
                let mut plan = Vec::with_capacity(NET_BATCH);
                let mut skipped = 0;
                while plan.len() < NET_BATCH && skipped < keys.len() {
                    let s = turn % keys.len();
                    turn += 1;
                    if rest[s] >= h {
                        skipped += 1;
                        continue;
                    }
                    skipped = 0;
                    plan.push((s, next[s]));
                    next[s] += 1;
                }
                if plan.is_empty() {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    continue;
                }
                let (k, presigned) = (keys.clone(), presigned.clone());
                let (plan, txs) = tokio::task::spawn_blocking(move || {
                    let txs = plan
                        .iter()
                        .map(|(s, n)| match presigned[*s].get(*n as usize) {
                            Some(tx) => tx.clone(),
                            None => Transaction::signed(&k[*s], genesis, fresh(p, *s, *n), 1, 1, *n),
                        })
                        .collect::<Vec<_>>();
                    (plan, txs)
                })
                .await
                .unwrap();
                let posted = post_batch(&http, &url, &txs).await;
                let good = posted.iter().filter(|x| **x == Posted::Accepted).count() as u64;
                accepted.fetch_add(good, Ordering::Relaxed);
                refused.fetch_add(txs.len() as u64 - good, Ordering::Relaxed);
                no_room.fetch_add(posted.iter().filter(|x| **x == Posted::NoRoom).count() as u64, Ordering::Relaxed);
                // A refused transfer leaves a gap: that sender starts again from it (after the
                // next block, if it was refused room).
                for ((s, nonce), posted) in plan.iter().zip(&posted) {
                    if *posted != Posted::Accepted {
                        next[*s] = next[*s].min(*nonce);
                    }
                    if *posted == Posted::NoRoom && !hammer {
                        rest[*s] = h;
                    }
                }
            }
        }));
    }
    for p in posters {
        p.await.unwrap();
    }
    let load_secs = t0.elapsed().as_secs_f64();
    let accepted = accepted.load(Ordering::Relaxed);
    let refused = refused.load(Ordering::Relaxed);
    let no_room = no_room.load(Ordering::Relaxed);

    // Confirmed during the load, then drain: wait for empty mempools and one tip.
    let count_confirmed = |upto: u64| {
        let (http, url) = (http.clone(), nodes[0].url.clone());
        async move {
            let mut n = 0u64;
            for h in funded_at + 1..=upto {
                let v = get_json(&http, &format!("{url}/blocks/{h}")).await;
                n += v["transactions"].as_array().map_or(0, |a| a.len() as u64);
            }
            n
        }
    };
    let height_at_end = get_json(&http, &format!("{}/status", nodes[0].url)).await["height"].as_u64().unwrap_or(0);
    let confirmed_in_load = count_confirmed(height_at_end).await;
    let drain_deadline = Instant::now() + std::time::Duration::from_secs(120);
    let mut mempools = [0u64; 3];
    let mut tips: Vec<String> = Vec::new();
    let mut heights = [0u64; 3];
    let drained = loop {
        for (i, n) in nodes.iter().enumerate() {
            mempools[i] = metric_sum(&get_text(&http, &format!("{}/metrics", n.url)).await, "cairn_mempool_transactions");
        }
        tips.clear();
        for (i, n) in nodes.iter().enumerate() {
            let st = get_json(&http, &format!("{}/status", n.url)).await;
            heights[i] = st["height"].as_u64().unwrap_or(0);
            tips.push(st["best_hash"].as_str().unwrap_or("").to_string());
        }
        if mempools.iter().all(|m| *m == 0) && tips.iter().all(|t| *t == tips[0]) {
            break true;
        }
        if Instant::now() > drain_deadline {
            break false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    };
    let drain_secs = t0.elapsed().as_secs_f64();
    let final_height = get_json(&http, &format!("{}/status", nodes[0].url)).await["height"].as_u64().unwrap_or(0);
    let confirmed = count_confirmed(final_height).await;

    let mut bans = 0;
    let mut ban_list = 0;
    let mut misbehaviour = 0;
    let mut disconnections = 0u64;
    let mut peers = Vec::new();
    for n in &nodes {
        let m = get_text(&http, &format!("{}/metrics", n.url)).await;
        bans += metric_sum(&m, "cairn_p2p_bans_total");
        misbehaviour += metric_sum(&m, "cairn_p2p_misbehaviour_total");
        disconnections += metric_sum(&m, "cairn_p2p_disconnections_total");
        ban_list += get_json(&http, &format!("{}/p2p/bans", n.url)).await["count"].as_u64().unwrap_or(0);
        peers.push(get_json(&http, &format!("{}/p2p/peers", n.url)).await["count"].as_u64().unwrap_or(0));
    }
    let disconnections = disconnections.saturating_sub(links_before);
    // What each transaction cost: CPU of every node and of this load generator, and how many
    // signatures each node verified (once per transaction is the floor: intake or block).
    let mut cpu = Vec::new();
    let mut verified = Vec::new();
    let mut hits = Vec::new();
    for n in &nodes {
        cpu.push(cpu_secs(n.child.id()));
        let m = get_text(&http, &format!("{}/metrics", n.url)).await;
        verified.push(metric_sum(&m, "cairn_signatures_verified_total"));
        hits.push(metric_sum(&m, "cairn_sigcache_hits_total"));
    }
    let own_cpu = cpu_secs(std::process::id());
    let per_tx = |s: f64| s * 1e6 / confirmed.max(1) as f64;
    println!(
        "network: CPU per confirmed transfer: nodes {:?} µs, load generator {:.0} µs; signatures verified per node {verified:?} (per transfer {:?}), of block signatures found verified {hits:?}",
        cpu.iter().map(|s| per_tx(*s).round()).collect::<Vec<_>>(),
        per_tx(own_cpu),
        verified.iter().map(|v| format!("{:.2}", *v as f64 / confirmed.max(1) as f64)).collect::<Vec<_>>(),
    );
    println!(
        "network (3 nodes, triangle, load-test spec, {secs} s of load{}): {accepted} transfers accepted ({:.0} tx/s), {refused} refused ({no_room} for want of room{}); \
         {confirmed_in_load} confirmed during the load = {:.0} confirmed tx/s; \
         all {confirmed} confirmed {drain_secs:.1} s after the start = {:.0} confirmed tx/s",
        rate.map_or(String::new(), |r| format!(" paced at {r} tx/s")),
        accepted as f64 / load_secs,
        if hammer { ", sent again at once" } else { ", their senders rested until the next block" },
        confirmed_in_load as f64 / load_secs,
        confirmed as f64 / drain_secs,
    );
    println!(
        "network: after the load: mempools {mempools:?} {}; one tip: {} (heights {heights:?}); {confirmed} of {accepted} accepted confirmed ({}); \
         peers {peers:?}; bans {bans} (listed {ban_list}), misbehaviour points {misbehaviour}, dropped links {disconnections} (since the triangle formed)",
        if drained { "(drained)" } else { "(NOT drained within 120 s)" },
        tips.iter().all(|t| *t == tips[0]),
        if confirmed == accepted { "all" } else { "NOT all" },
    );
}
