//! P2P benchmarks (issue 3), all on loopback:
//! 1. connection establishment with the full handshake (QUIC + TLS 1.3 with mutual node-key
//!    auth + Hello/Hello/HelloAck): `P2p::connect` between two services, 100 times (median,
//!    p90, max), then a raw client split into QUIC/TLS vs the Hello exchange;
//! 2. application Ping/Pong round trips per second on one connection, sequential and with 16
//!    in flight (raw client against a node; the node's per-peer rate limit is lifted);
//! 3. idle peers one node holds, and the node's RSS: the clients run in a child process (this
//!    binary re-executed) so the node process's VmRSS delta is the node's own cost; also the
//!    per-handshake time under that load and the kernel's UDP receive-buffer drops.
//!
//! Run: `CARGO_TARGET_DIR=$HOME/.cache/cairn/target cargo bench --bench p2p` (release profile;
//! prints figures, asserts nothing about timing). `BENCH_PEERS=N` sets the idle-peer target
//! (default 5000; connecting stops after 30 s).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_chain::{Hash, Work};
use cairn_p2p::config::PROTOCOL_VERSION;
use cairn_p2p::ports::{Ban, BanTarget, ChainInfo, KnownPeer, PeerStore, PeerStoreError, TipSummary};
use cairn_p2p::tls::SERVER_NAME;
use cairn_p2p::wire::{Hello, Message, Wire};
use cairn_p2p::{NodeIdentity, P2p, P2pConfig};
use tokio::io::{AsyncBufReadExt, AsyncReadExt};

const GENESIS: Hash = Hash([7; 32]);
const CLIENT_ENV: &str = "CAIRN_P2P_BENCH_CLIENT_OF";

struct BenchChain;
#[rustfmt::skip]
impl ChainInfo for BenchChain {
    fn chain_id(&self) -> String { "p2p-bench".into() }
    fn genesis(&self) -> Hash { GENESIS }
    fn tip(&self) -> TipSummary { TipSummary { height: 0, hash: GENESIS, total_work: Work::ZERO } }
}

/// Persists nothing.
struct NoStore;
#[rustfmt::skip]
impl PeerStore for NoStore {
    fn load_peers(&self, _: usize) -> Result<Vec<KnownPeer>, PeerStoreError> { Ok(vec![]) }
    fn save_peer(&self, _: &KnownPeer) -> Result<(), PeerStoreError> { Ok(()) }
    fn remove_peer(&self, _: &SocketAddr) -> Result<(), PeerStoreError> { Ok(()) }
    fn load_bans(&self) -> Result<Vec<Ban>, PeerStoreError> { Ok(vec![]) }
    fn save_ban(&self, _: &Ban) -> Result<(), PeerStoreError> { Ok(()) }
    fn remove_ban(&self, _: &BanTarget) -> Result<(), PeerStoreError> { Ok(()) }
}

/// Production defaults, except: no automatic dialing, peer exchange or mDNS, room for many inbound
/// peers, a generous handshake timeout, and no per-peer message rate limit.
fn cfg() -> P2pConfig {
    P2pConfig {
        target_outbound: 0,
        max_inbound: 100_000,
        handshake_timeout: Duration::from_secs(30),
        dial_interval: Duration::from_secs(3600),
        peer_exchange_interval: Duration::from_secs(3600),
        msg_rate: u32::MAX,
        msg_burst: u32::MAX,
        mdns: false,
        ..P2pConfig::default()
    }
}

fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("cairn-p2p-bench").tempdir_in("/dev/shm").or_else(|_| tempfile::tempdir()).unwrap()
}

fn identity(root: &std::path::Path, name: &str) -> NodeIdentity {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    NodeIdentity::load_or_create(&dir).unwrap()
}

async fn node(root: &std::path::Path, name: &str) -> P2p {
    let addr = "127.0.0.1:0".parse().unwrap();
    P2p::start(cfg(), identity(root, name), addr, Arc::new(BenchChain), Arc::new(NoStore), &[], &[]).await.unwrap()
}

fn hello(listen_port: u16) -> Hello {
    let (chain_id, user_agent) = (BenchChain.chain_id(), "p2p-bench".into());
    let (genesis, best_hash) = (GENESIS, GENESIS);
    Hello { protocol_version: PROTOCOL_VERSION, chain_id, genesis, listen_port, best_height: 0, best_hash, total_work: [0; 32], user_agent }
}

/// Dials `$addr` from endpoint `$ep` with client config `$cc`, then Hello / Hello / HelloAck:
/// `Result<(Wire, quic_tls_time, total_time), String>`. A macro because quinn types cannot be
/// named here (not a dependency); the connection lives as long as the `Wire`'s streams.
macro_rules! raw_connect {
    ($ep:expr, $cc:expr, $addr:expr) => {
        async {
            let (t0, port) = (Instant::now(), $ep.local_addr().map_err(text)?.port());
            let conn = $ep.connect_with($cc, $addr, SERVER_NAME).map_err(text)?.await.map_err(text)?;
            let tls = t0.elapsed();
            let (send, recv) = conn.open_bi().await.map_err(text)?;
            let mut wire = Wire::new(send, recv);
            wire.send(&Message::Hello(hello(port))).await.map_err(text)?;
            match wire.recv().await {
                Ok(Message::Hello(_)) => {}
                other => return Err(format!("expected Hello, got {other:?}")),
            }
            wire.send(&Message::HelloAck).await.map_err(text)?;
            wire.set_limit(cfg().max_frame);
            Ok::<_, String>((wire, tls, t0.elapsed()))
        }
    };
}

fn text(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Next Pong nonce, answering any Ping from the node and skipping anything else.
async fn next_pong(wire: &mut Wire) -> u64 {
    loop {
        match wire.recv().await.expect("recv") {
            Message::Pong(n) => return n,
            Message::Ping(n) => wire.send(&Message::Pong(n)).await.expect("send"),
            _ => {}
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// "median / p90 / max" of durations, in ms.
fn stats(v: &mut [f64]) -> String {
    if v.is_empty() {
        return "no samples".into();
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let at = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    format!("median {:.3} ms, p90 {:.3} ms, max {:.3} ms (n = {})", at(0.5), at(0.9), at(1.0), v.len())
}

fn rss_kb(pid: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()).unwrap_or(0)
}

/// Datagrams the kernel dropped on the UDP socket bound to 127.0.0.1:`port` (full receive
/// buffer), from the `drops` column of /proc/net/udp.
fn udp_drops(port: u16) -> String {
    let t = std::fs::read_to_string("/proc/net/udp").unwrap_or_default();
    let want = format!("0100007F:{port:04X}");
    t.lines().find(|l| l.split_whitespace().nth(1) == Some(want.as_str())).and_then(|l| l.split_whitespace().last()).unwrap_or("?").into()
}

async fn wait_count(p: &P2p, want: usize, secs: u64) {
    let t = Instant::now();
    while p.peer_count() != want && t.elapsed() < Duration::from_secs(secs) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

const FLEET_IN_FLIGHT: usize = 32;

/// Child mode: connects up to `n` idle raw peers (distinct identities, one UDP endpoint) to
/// `node`, FLEET_IN_FLIGHT handshakes at a time, for at most 30 s; reports one line, then
/// holds the connections until stdin closes.
async fn client_fleet(node: SocketAddr, n: usize) {
    let dir = scratch();
    let c = cfg();
    let ep = cairn_p2p::transport::bind(&identity(dir.path(), "ep"), &c, "127.0.0.1:0".parse().unwrap()).unwrap();
    let (mut wires, mut times, mut errors, t0) = (Vec::new(), Vec::new(), Vec::new(), Instant::now());
    while wires.len() + errors.len() < n && t0.elapsed() < Duration::from_secs(30) {
        let mut set = tokio::task::JoinSet::new();
        for i in 0..FLEET_IN_FLIGHT.min(n - wires.len() - errors.len()) {
            let id = identity(dir.path(), &format!("c{}", wires.len() + errors.len() + i));
            let (cc, ep) = (cairn_p2p::transport::configs(&id, &c).unwrap().1, ep.clone());
            set.spawn(async move { raw_connect!(ep, cc, node).await });
        }
        while let Some(r) = set.join_next().await {
            match r.map_err(text).and_then(|r| r) {
                Ok((w, _, t)) => (wires.push(w), times.push(ms(t))).1,
                Err(e) => errors.push(e),
            }
        }
    }
    errors.dedup();
    let (secs, port, errs) = (t0.elapsed().as_secs_f64(), ep.local_addr().unwrap().port(), &errors[..errors.len().min(3)]);
    println!("{}|{secs:.2}|{port}|{}|{errs:?}", wires.len(), stats(&mut times));
    let _ = tokio::io::stdin().read(&mut [0u8; 1]).await;
}

async fn idle_peers(root: &std::path::Path) {
    let n: usize = std::env::var("BENCH_PEERS").ok().and_then(|s| s.parse().ok()).unwrap_or(5000);
    let node = node(root, "idle").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let me = std::process::id().to_string();
    let before = rss_kb(&me); // after [1]/[2], whose nodes are shut down
    let mut child = tokio::process::Command::new(std::env::current_exe().unwrap());
    child.env(CLIENT_ENV, node.local_addr().to_string()).env("BENCH_PEERS", n.to_string()).kill_on_drop(true);
    let mut child = child.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    tokio::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).await.unwrap();
    let f: Vec<&str> = line.trim().splitn(5, '|').collect();
    let ok: usize = f[0].parse().expect("client fleet report");
    wait_count(&node, ok, 10).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (held, after, client_rss) = (node.peer_count(), rss_kb(&me), rss_kb(&child.id().unwrap().to_string()));
    println!("[3] idle peers: asked {n}, clients connected {ok} in {} s ({FLEET_IN_FLIGHT} handshakes in flight); node holds {held} peers", f[1]);
    println!("    per-handshake time under that load: {}; client errors (first 3, deduplicated): {}", f[3], f[4]);
    let (mib, delta) = (|kb: u64| kb as f64 / 1024.0, after as f64 - before as f64);
    let per_peer = delta / held.max(1) as f64; // KiB
    println!(
        "    node process VmRSS: {:.1} MiB before, {:.1} MiB after: delta {:.1} MiB = {per_peer:.1} KiB per peer",
        mib(before),
        mib(after),
        delta / 1024.0
    );
    println!("    (clients run in a child process, so the delta is the node's own; client process VmRSS {:.1} MiB)", mib(client_rss));
    let (np, cp) = (node.local_addr().port(), f[2].parse().unwrap_or(0));
    println!("    UDP datagrams dropped by the kernel (receive buffer full): node socket {}, client socket {}", udp_drops(np), udp_drops(cp));
    drop(child.stdin.take());
    let _ = child.wait().await;
    node.shutdown().await;
}

async fn connect_latency(root: &std::path::Path) {
    let (a, b) = (node(root, "a").await, node(root, "b").await);
    let target = format!("{}@{}", b.node_id(), b.local_addr());
    let mut v = Vec::new();
    for _ in 0..100 {
        let t = Instant::now();
        a.connect(&target).await.expect("connect");
        v.push(ms(t.elapsed()));
        a.forget(&b.node_id()).await;
        wait_count(&a, 0, 5).await;
        wait_count(&b, 0, 5).await;
    }
    println!("[1] P2p::connect -> Ok (QUIC + TLS 1.3 + Hello/Hello/HelloAck, dialer side): {}", stats(&mut v));
    a.shutdown().await;

    let c = cfg();
    let ep = cairn_p2p::transport::bind(&identity(root, "raw"), &c, "127.0.0.1:0".parse().unwrap()).unwrap();
    let (mut tls, mut all) = (Vec::new(), Vec::new());
    for i in 0..100 {
        let cc = cairn_p2p::transport::configs(&identity(root, &format!("raw{i}")), &c).unwrap().1;
        let (wire, t1, t2) = raw_connect!(ep, cc, b.local_addr()).await.expect("raw connect");
        tls.push(ms(t1));
        all.push(ms(t2));
        drop(wire);
        wait_count(&b, 0, 5).await;
    }
    println!("    raw client, QUIC + TLS 1.3 only:  {}", stats(&mut tls));
    println!("    raw client, + Hello/Hello/HelloAck: {}", stats(&mut all));

    // [2] Ping/Pong on one connection (to the same node).
    let cc = cairn_p2p::transport::configs(&identity(root, "pinger"), &c).unwrap().1;
    let (mut wire, _, _) = raw_connect!(ep, cc, b.local_addr()).await.expect("raw connect");
    let (mut n, mut rtts, t0) = (0u64, Vec::new(), Instant::now());
    while n < 50_000 && t0.elapsed() < Duration::from_secs(4) {
        let t = Instant::now();
        wire.send(&Message::Ping(n)).await.expect("send");
        assert_eq!(next_pong(&mut wire).await, n);
        rtts.push(ms(t.elapsed()));
        n += 1;
    }
    let secs = t0.elapsed().as_secs_f64();
    println!("[2] Ping/Pong sequential: {n} round trips in {secs:.2} s = {:.0} /s; RTT {}", n as f64 / secs, stats(&mut rtts));
    const IN_FLIGHT: u64 = 16;
    let (mut sent, mut got, t0) = (0u64, 0u64, Instant::now());
    loop {
        while sent - got < IN_FLIGHT && t0.elapsed() < Duration::from_secs(4) {
            wire.send(&Message::Ping(sent)).await.expect("send");
            sent += 1;
        }
        if got == sent {
            break;
        }
        assert_eq!(next_pong(&mut wire).await, got);
        got += 1;
    }
    let secs = t0.elapsed().as_secs_f64();
    println!("    Ping/Pong {IN_FLIGHT} in flight: {got} round trips in {secs:.2} s = {:.0} /s", got as f64 / secs);
    println!("    (node msg_rate/msg_burst raised to u32::MAX: default 1000/s, burst 4000, would cap both runs)");
    drop(wire);
    b.shutdown().await;
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    if let Ok(node) = std::env::var(CLIENT_ENV) {
        let n = std::env::var("BENCH_PEERS").unwrap().parse().unwrap();
        return rt.block_on(client_fleet(node.parse().unwrap(), n));
    }
    let dir = scratch();
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!("p2p bench: loopback, {cpus} CPUs, tokio multi-thread runtime, release build");
    println!("node config: P2pConfig::default() except no auto-dial/peer exchange/mDNS, max_inbound 100000, handshake_timeout 30 s");
    rt.block_on(async {
        connect_latency(dir.path()).await;
        idle_peers(dir.path()).await;
    });
}
