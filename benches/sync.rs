//! Sync benchmarks, all on loopback:
//! 1. catch-up sync: chain A (N blocks x T signed transfers, built directly into A's store) is
//!    served by an in-process node; a fresh `cairn node` child process D dials A and syncs.
//!    Timed from spawning D until D's `/status` `best_hash` equals A's tip (polled every 50 ms);
//!    prints seconds, blocks/s, tx/s, D's peak RSS (`VmHWM`), its RSS at each quarter of the
//!    chain, and the CPU-seconds (user + system) D used. Then D is stopped with SIGTERM and
//!    restarted on its data dir twice: seconds from spawn until `/status` answers. Default
//!    runs: N=2000,T=50 then N=20000,T=0;
//! 2. this machine's raw ed25519 batch-verify rate (`verify_batch`, chunks of 50) over the same
//!    signatures, on 1 and 2 threads, and sync tx/s as a fraction of the 2-thread rate;
//! 3. block propagation along a line of 10 in-process nodes: 20 blocks farmed one at a time at
//!    node 0; median and max first-to-last-node latency, and per hop (/9).
//!
//! Workloads (`SYNC_WORKLOAD`): `fresh` (default) has 100 senders, funded by the dev accounts
//! in the chain's first 100 transactions, each later transfer paying a new address, so the
//! account state grows by one account per transaction as on a real chain; `reused` has 10 dev
//! accounts paying ~256 recipients over and over (a state that never grows).
//!
//! Run: `CARGO_TARGET_DIR=$HOME/.cache/cairn/target cargo bench --bench sync` (release profile;
//! prints figures, asserts nothing about timing). `SYNC_N=blocks SYNC_T=txs_per_block` replace
//! the two default sync runs with a single one (`SYNC_N=20000 SYNC_T=50`: the memory curve of a
//! 10x longer chain); `SYNC_PROPAGATION=0` skips part 3. `SYNC_CACHE=dir` builds each chain once
//! into `dir` and copies it for later runs (so before/after runs, e.g. with `CAIRN_BIN` set to
//! an older build, sync the same chain); `SYNC_VERIFY=0` then skips part 2 and its signing.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn::Node;
use cairn::config::NodeConfig;
use cairn::farm::farmer::farm_blocks;
use cairn_chain::keys::{SignatureBytes, dev_keypair};
use cairn_chain::{Address, Block, Chain, ChainSpec, Hash, Header, PublicKey, Store, Transaction};
use tokio_util::sync::CancellationToken;

fn mine(mut h: Header) -> Header {
    while !h.target.is_met_by(&h.hash()) {
        h.nonce += 1;
    }
    h
}

/// How the benchmark chain's transfers are shaped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Workload {
    /// 100 sender accounts (funded by the dev accounts in the first transactions), every
    /// transfer to a new address: the account state grows by one account per transaction, as
    /// on a real chain.
    Fresh,
    /// 10 dev accounts paying ~256 recipients over and over: the account state stays tiny.
    Reused,
}

/// Senders of the fresh-address workload.
const SENDERS: u32 = 100;

/// Signs the transactions of `n` blocks of `t` (see [`Workload`]).
fn workload_blocks(spec: &ChainSpec, genesis: Hash, workload: Workload, n: usize, t: usize) -> Vec<Vec<Transaction>> {
    let mut blocks = Vec::with_capacity(n);
    match workload {
        Workload::Reused => {
            let keys: Vec<_> = (0..10).map(|i| spec.dev_key(i).unwrap()).collect();
            let mut nonces = vec![0u64; keys.len()];
            for _ in 0..n {
                let mut txs = Vec::with_capacity(t);
                for j in 0..t {
                    let i = j % keys.len();
                    txs.push(Transaction::signed(&keys[i], genesis, Address([(i * 7 + j) as u8; 32]), 1 + j as u64, 1, nonces[i]));
                    nonces[i] += 1;
                }
                blocks.push(txs);
            }
        }
        Workload::Fresh => {
            let dev: Vec<_> = (0..10).map(|i| spec.dev_key(i).unwrap()).collect();
            let senders: Vec<_> = (0..SENDERS).map(|i| dev_keypair("cairn sync bench sender", i)).collect();
            let (mut dev_nonces, mut nonces) = (vec![0u64; dev.len()], vec![0u64; senders.len()]);
            // The first SENDERS transactions fund the senders; every later one pays a new
            // (hash-derived, so randomly placed) address.
            let mut k = 0usize;
            for _ in 0..n {
                let mut txs = Vec::with_capacity(t);
                for _ in 0..t {
                    if k < SENDERS as usize {
                        let d = k % dev.len();
                        txs.push(Transaction::signed(&dev[d], genesis, senders[k].address(), 1_000_000_000, 1, dev_nonces[d]));
                        dev_nonces[d] += 1;
                    } else {
                        let s = k % senders.len();
                        let to = Address(*blake3::hash(&(k as u64).to_le_bytes()).as_bytes());
                        txs.push(Transaction::signed(&senders[s], genesis, to, 1 + (k % 100) as u64, 1, nonces[s]));
                        nonces[s] += 1;
                    }
                    k += 1;
                }
                blocks.push(txs);
            }
        }
    }
    blocks
}

/// Builds `n` blocks of `t` signed transfers of `workload` directly into the store at `db`;
/// returns every transaction.
fn build_chain(db: &Path, spec: &ChainSpec, workload: Workload, n: usize, t: usize) -> Vec<Transaction> {
    let mut store = Store::open(db, &spec.chain_id, spec.genesis().hash()).unwrap();
    store.set_sync_writes(false);
    let mut chain = Chain::open(store.clone(), spec.clone()).unwrap();
    let genesis = chain.genesis_hash();
    let mut all = Vec::with_capacity(n * t);
    let mut ts = spec.genesis_timestamp;
    for txs in workload_blocks(spec, genesis, workload, n, t) {
        ts += spec.block_time_ms;
        let header = mine(chain.template(Address([0xfa; 32]), &txs, ts).unwrap());
        all.extend(txs.iter().cloned());
        chain.submit(Block { header, transactions: txs }, ts).unwrap();
    }
    store.sync_wal().unwrap();
    all
}

/// A `VmHWM:`/`VmRSS:` figure of `/proc/<pid>/status`, in MiB.
fn proc_status_mib(pid: u32, field: &str) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb: f64 = s.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    kb / 1024.0
}

fn peak_rss_mib(pid: u32) -> f64 {
    proc_status_mib(pid, "VmHWM:")
}

/// CPU seconds (user + system) a live process has used so far, from `/proc/<pid>/stat`.
fn cpu_seconds(pid: u32) -> f64 {
    stat_cpu_seconds(&std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default())
}

/// CPU seconds (user + system) the live process's thread named `name` has used so far.
fn thread_cpu_seconds(pid: u32, name: &str) -> f64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0.0 };
    let stats = tasks.filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("stat")).ok());
    stats.filter(|s| s.contains(&format!("({name})"))).map(|s| stat_cpu_seconds(&s)).sum()
}

/// utime + stime of a `/proc/.../stat` line, in seconds.
fn stat_cpu_seconds(s: &str) -> f64 {
    // Fields after the command name (which may hold spaces) start at field 3 (state):
    // utime and stime are fields 14 and 15.
    let rest = s.rfind(')').map_or("", |i| &s[i + 1..]);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // SAFETY: sysconf only reads a constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(11) + ticks(12)) / hz
}

#[path = "../tests/common/process.rs"]
mod process;

/// `/status` of the node at `url`, if it answers.
async fn status(http: &reqwest::Client, url: &str) -> Option<serde_json::Value> {
    http.get(format!("{url}/status")).send().await.ok()?.json().await.ok()
}

/// Stops `child` with SIGTERM (a clean shutdown), restarts it on `data`, and returns the
/// seconds from spawning the new process until its `/status` answers, with the new process.
async fn restart(http: &reqwest::Client, mut child: std::process::Child, data: &Path, want: &str) -> (f64, std::process::Child) {
    // SAFETY: signals our own child, still unreaped, so the pid is its own.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let exit = child.wait().unwrap();
    assert!(exit.success(), "node exited with {exit} on SIGTERM");
    let start = Instant::now();
    let (child, url) = process::spawn_node(data, &[]);
    loop {
        if let Some(s) = status(http, &url).await {
            let secs = start.elapsed().as_secs_f64();
            assert_eq!(s["best_hash"].as_str(), Some(want), "restarted node lost its tip");
            return (secs, child);
        }
        assert!(start.elapsed() < Duration::from_secs(60), "restarted node did not answer /status within 60 s");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// One sync run; returns (tx/s, the transactions of the chain).
async fn bench_sync(workload: Workload, n: usize, t: usize) -> (f64, Vec<Transaction>) {
    let spec = ChainSpec::devnet();
    let dir = tempfile::tempdir().unwrap();
    let data_a = dir.path().join("a").join("data");
    let built = Instant::now();
    let db = data_a.join("db");
    let txs = match std::env::var_os("SYNC_CACHE") {
        // A chain built once and copied for every run: before/after runs sync the same chain.
        Some(cache) => {
            let cached = Path::new(&cache).join(format!("{workload:?}-{n}x{t}"));
            let spec2 = spec.clone();
            tokio::task::spawn_blocking(move || {
                if !cached.exists() {
                    let tmp = cached.with_extension("tmp");
                    let _ = std::fs::remove_dir_all(&tmp);
                    build_chain(&tmp, &spec2, workload, n, t);
                    std::fs::rename(&tmp, &cached).unwrap();
                }
                std::fs::create_dir_all(&data_a).unwrap();
                let ok = std::process::Command::new("cp").arg("-a").arg(&cached).arg(&db).status().unwrap().success();
                assert!(ok, "copying the cached chain failed");
                let genesis = spec2.genesis().hash();
                let verify = std::env::var("SYNC_VERIFY").as_deref() != Ok("0");
                if verify { workload_blocks(&spec2, genesis, workload, n, t).into_iter().flatten().collect() } else { Vec::new() }
            })
            .await
            .unwrap()
        }
        None => tokio::task::spawn_blocking(move || build_chain(&db, &spec, workload, n, t)).await.unwrap(),
    };
    let data_a = dir.path().join("a").join("data");
    println!("built {n} blocks x {t} tx ({workload:?} workload) in {:.2} s", built.elapsed().as_secs_f64());
    let a = Node::start(NodeConfig::for_tests(data_a)).await.unwrap();
    let tip = a.chain().tip();
    assert_eq!(tip.height, n as u64);
    let want = tip.hash.to_string();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let data_d = dir.path().join("d");
    let start = Instant::now();
    let (child, url) = process::spawn_node(&data_d, &["--peers", &a.p2p_addr().to_string()]);
    // D's resident memory as the chain grows: sampled at each quarter of the chain.
    let mut rss_curve: Vec<(u64, f64, f64, f64)> = Vec::new();
    // Where the peak was reached (height, MiB), from the samples every 50 ms.
    let mut highest = (0u64, 0.0f64);
    loop {
        let s = status(&http, &url).await;
        let height = s.as_ref().and_then(|s| s["height"].as_u64()).unwrap_or(0);
        let now = proc_status_mib(child.id(), "VmRSS:");
        if now > highest.1 {
            highest = (height, now);
        }
        if rss_curve.len() < 4 && height * 4 >= (rss_curve.len() as u64 + 1) * n as u64 {
            let pid = child.id();
            rss_curve.push((height, proc_status_mib(pid, "VmRSS:"), proc_status_mib(pid, "RssAnon:"), proc_status_mib(pid, "RssFile:")));
        }
        if s.as_ref().and_then(|s| s["best_hash"].as_str()) == Some(want.as_str()) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(900), "D did not reach A's tip within 900 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let s = start.elapsed().as_secs_f64();
    let rss = peak_rss_mib(child.id());
    let (cpu, chain_cpu) = (cpu_seconds(child.id()), thread_cpu_seconds(child.id(), "chain"));
    a.shutdown().await;
    let tps = (n * t) as f64 / s;
    println!(
        "sync {n} blocks x {t} tx, {workload:?} workload (fresh `cairn node` child from an in-process peer, spawn to A's tip): {s:.2} s, {:.0} blocks/s, {tps:.0} tx/s, peak RSS {rss:.1} MiB, CPU {cpu:.2} s (user+sys of the child; its chain thread {chain_cpu:.2} s)",
        n as f64 / s
    );
    let curve: Vec<String> = rss_curve.iter().map(|(h, m, anon, file)| format!("{m:.1} MiB at height {h} (heap {anon:.1}, mapped files {file:.1})")).collect();
    println!("  RSS as the chain grows: {}; highest sample {:.1} MiB at height {}", curve.join(", "), highest.1, highest.0);
    let (first, child) = restart(&http, child, &data_d, &want).await;
    let (second, mut child) = restart(&http, child, &data_d, &want).await;
    println!("  first restart after sync: {first:.3} s (spawn to /status); second restart: {second:.3} s");
    let _ = child.kill();
    let _ = child.wait();
    (tps, txs)
}

type Item = (PublicKey, Vec<u8>, SignatureBytes);

fn verify_all(items: &[Item]) {
    verify_chunks(items, 50);
}

fn verify_chunks(items: &[Item], size: usize) {
    for c in items.chunks(size) {
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
    // The batches a sync verifies: across the blocks of a check chunk (chain::check_blocks).
    let start = Instant::now();
    verify_chunks(&items, 4096);
    println!("  1 thread, chunks of 4096 (cross-block batches): {:.0} sig/s", n / start.elapsed().as_secs_f64());
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
    let workload = match std::env::var("SYNC_WORKLOAD").as_deref() {
        Ok("reused") => Workload::Reused,
        Ok("fresh") | Err(_) => Workload::Fresh,
        Ok(other) => panic!("SYNC_WORKLOAD={other}: expected fresh or reused"),
    };
    let runs = match (env("SYNC_N"), env("SYNC_T")) {
        (None, None) => vec![(2000, 50), (20000, 0)],
        (n, t) => vec![(n.unwrap_or(2000), t.unwrap_or(50))],
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    for (n, t) in runs {
        let (tps, txs) = rt.block_on(bench_sync(workload, n, t));
        if !txs.is_empty() {
            let two = bench_verify(&txs);
            println!("sync tx/s / 2-thread batch-verify rate: {:.3}", tps / two);
        }
    }
    if env("SYNC_PROPAGATION") != Some(0) {
        rt.block_on(bench_propagation());
    }
}
