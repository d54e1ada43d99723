//! `GET /events` (Server-Sent Events) and CORS, with a hand-rolled HTTP/1.1 client so the test
//! sees exactly what goes over the socket.

use std::time::Duration;

use cairn::Node;
use cairn::config::NodeConfig;
use cairn_chain::{Keypair, Transaction};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::support::*;

/// A subscriber reading one `/events` response.
struct Sse {
    r: BufReader<TcpStream>,
    /// Body bytes of the chunks read so far, not yet split into events.
    buf: String,
    status: u16,
    head: String,
}

impl Sse {
    async fn open(rpc: &Rpc, query: &str) -> Sse {
        let addr = rpc.base.trim_start_matches("http://").to_string();
        let mut s = TcpStream::connect(&addr).await.expect("connect");
        s.write_all(format!("GET /events{query} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n").as_bytes()).await.unwrap();
        let mut r = BufReader::new(s);
        let mut head = String::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(Duration::from_secs(10), r.read_line(&mut line)).await.expect("response head").unwrap();
            if n == 0 || line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        Sse { r, buf: String::new(), status, head }
    }

    /// Reads one chunk of the chunked body; `None` at its end.
    async fn chunk(&mut self) -> Option<()> {
        let mut size = String::new();
        if self.r.read_line(&mut size).await.ok()? == 0 {
            return None;
        }
        let n = usize::from_str_radix(size.trim(), 16).ok()?;
        if n == 0 {
            return None;
        }
        let mut data = vec![0; n + 2];
        self.r.read_exact(&mut data).await.ok()?;
        self.buf.push_str(&String::from_utf8_lossy(&data[..n]));
        Some(())
    }

    /// The next event (name, data), skipping comments; panics after `secs`.
    async fn next(&mut self, secs: u64) -> Option<(String, Value)> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut name = String::from("message");
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event: ") {
                        name = v.to_string();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data.push_str(v);
                    }
                }
                if data.is_empty() {
                    continue; // a keep-alive comment
                }
                return Some((name, serde_json::from_str(&data).expect("event data is JSON")));
            }
            tokio::time::timeout_at(deadline, self.chunk()).await.expect("an event in time")?;
        }
    }

    /// The next event named `name`, skipping others.
    async fn next_named(&mut self, name: &str, secs: u64) -> Value {
        loop {
            let (n, v) = self.next(secs).await.unwrap_or_else(|| panic!("stream ended before a {name} event"));
            if n == name {
                return v;
            }
        }
    }
}

/// Blocks, transactions and reorgs as they happen, each filtered by `types`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stream_blocks_transactions_and_reorgs() {
    let n = start_node().await;
    let rpc = &n.rpc;
    let mut all = Sse::open(rpc, "").await;
    assert_eq!(all.status, 200, "{}", all.head);
    assert!(all.head.to_ascii_lowercase().contains("content-type: text/event-stream"), "{}", all.head);
    let mut blocks = Sse::open(rpc, "?types=block,reorg").await;

    let tx = Transaction::signed(&dev(0), devnet_genesis(), Keypair::generate().address(), 5, 1, 0);
    assert_eq!(rpc.post("/txs", &tx_json(&tx)).await.0, 202);
    let e = all.next_named("tx", 10).await;
    assert_eq!(e["txid"].as_str(), Some(tx.id().to_string().as_str()));
    assert_eq!(e["from"].as_str(), Some(dev(0).address().to_string().as_str()));
    assert_eq!(e["amount"], 5);

    let farmer = Keypair::generate().address();
    let hash = rpc.farm(1, &farmer).await.remove(0);
    for s in [&mut all, &mut blocks] {
        let b = s.next_named("block", 10).await;
        assert_eq!((b["height"].as_u64(), b["hash"].as_str(), b["txs"].as_u64()), (Some(1), Some(hash.as_str()), Some(1)));
        assert_eq!(b["farmer"].as_str(), Some(farmer.to_string().as_str()));
        assert_eq!(b["prev_hash"].as_str(), Some(rpc.get("/blocks/0").await.1["hash"].as_str().unwrap()));
    }

    // A heavier branch from another node: a reorg of depth 1, then the new branch's blocks.
    let other = start_node().await;
    let theirs = other.rpc.farm(2, &farmer).await;
    for h in &theirs {
        let (_, b) = other.rpc.get(&format!("/blocks/{h}")).await;
        let (s, v) = rpc.post("/blocks", &b).await;
        assert!(s == 201, "{v}");
    }
    let r = blocks.next_named("reorg", 10).await;
    assert_eq!(
        (r["depth"].as_u64(), r["old_tip"].as_str(), r["new_tip"].as_str(), r["height"].as_u64()),
        (Some(1), Some(hash.as_str()), Some(theirs[1].as_str()), Some(2))
    );
    let b1 = blocks.next_named("block", 10).await;
    let b2 = blocks.next_named("block", 10).await;
    assert_eq!((b1["hash"].as_str(), b2["hash"].as_str()), (Some(theirs[0].as_str()), Some(theirs[1].as_str())));

    // A filtered stream sees no transactions.
    let tx = Transaction::signed(&dev(1), devnet_genesis(), farmer, 5, 1, 0);
    assert_eq!(rpc.post("/txs", &tx_json(&tx)).await.0, 202);
    rpc.farm(1, &farmer).await;
    assert_eq!(blocks.next(10).await.unwrap().0, "block", "the tx event is filtered out");
    other.node.shutdown().await;

    // Shutdown ends the streams (and does not wait for them).
    let started = std::time::Instant::now();
    n.node.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(2), "shutdown with subscribers took {:?}", started.elapsed());
    loop {
        match all.next(5).await {
            None => break,
            Some(_) => continue,
        }
    }
}

/// Peers connecting and leaving; bad queries are 400 with a code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_tell_peers_and_refuse_bad_types() {
    let t = tempfile::tempdir().unwrap();
    let a = Node::start(NodeConfig::for_tests(t.path().join("a"))).await.unwrap();
    let rpc = Rpc::new(format!("http://{}", a.rpc_addr()));
    let mut s = Sse::open(&rpc, "?types=peer").await;
    let mut cfg = NodeConfig::for_tests(t.path().join("b"));
    cfg.p2p.name = Some("bob".into());
    cfg.peers = vec![format!("{}@{}", a.node_id(), a.p2p_addr())];
    let b = Node::start(cfg).await.unwrap();
    let e = s.next_named("peer", 20).await;
    assert_eq!(e["event"], "connected");
    assert_eq!(e["node_id"].as_str(), Some(b.node_id().to_string().as_str()));
    assert_eq!(e["name"], "bob");
    b.shutdown().await;
    let e = s.next_named("peer", 20).await;
    assert_eq!(e["event"], "disconnected");

    for q in ["?types=block,bogus", "?types=", "?kinds=block"] {
        let (status, v) = rpc.get(&format!("/events{q}")).await;
        assert_eq!(status, 400, "{q}: {v}");
        let want = if q.contains("kinds") { "invalid_query" } else { "invalid_event_type" };
        assert_eq!(v["error"]["code"], want, "{q}: {v}");
    }
    a.shutdown().await;
}

/// Many subscribers at once: each costs a bounded buffer, past the limit they get 503, and the
/// node keeps answering everything else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_subscribers_are_bounded_and_the_node_keeps_serving() {
    let n = start_node().await;
    let rpc = &n.rpc;
    let mut subs = Vec::new();
    for _ in 0..cairn::rpc::events::MAX_SUBSCRIBERS {
        let s = Sse::open(rpc, "?types=block").await;
        assert_eq!(s.status, 200);
        subs.push(s);
    }
    let (status, v) = rpc.get("/events").await;
    assert_eq!((status, v["error"]["code"].as_str()), (503, Some("too_many_subscribers")));
    let hash = rpc.farm(1, &Keypair::generate().address()).await.remove(0);
    for s in subs.iter_mut().step_by(97) {
        assert_eq!(s.next_named("block", 20).await["hash"].as_str(), Some(hash.as_str()));
    }
    // Subscribers that leave free their slots.
    drop(subs);
    // (A write to a closed connection is what tells the server; a block makes one.)
    let farmer = Keypair::generate().address();
    wait_for("a slot freed", 30, || async {
        rpc.farm(1, &farmer).await;
        (Sse::open(rpc, "?types=block").await.status == 200).then_some(())
    })
    .await;
    n.node.shutdown().await;
}

/// CORS: reads from any origin on a loopback RPC, with the preflight answered (not 405).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_lets_pages_read() {
    let n = start_node().await;
    let http = reqwest::Client::new();
    let r = http.get(format!("{}/status", n.rpc.base)).header("Origin", "http://example.test").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers().get("access-control-allow-origin").and_then(|v| v.to_str().ok()), Some("*"));
    let r = http
        .request(reqwest::Method::OPTIONS, format!("{}/blocks/0", n.rpc.base))
        .header("Origin", "http://example.test")
        .header("Access-Control-Request-Method", "GET")
        .header("Access-Control-Request-Headers", "authorization")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "preflight: {}", r.status());
    let methods = r.headers().get("access-control-allow-methods").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    assert!(methods.contains("GET") && !methods.contains("POST"), "{methods}");
    n.node.shutdown().await;

    // Configured origins only.
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = NodeConfig::for_tests(dir.path().join("data"));
    cfg.rpc_cors = vec!["http://allowed.test".into()];
    let node = Node::start(cfg).await.unwrap();
    let base = format!("http://{}", node.rpc_addr());
    for (origin, allowed) in [("http://allowed.test", true), ("http://other.test", false)] {
        let r = http.get(format!("{base}/status")).header("Origin", origin).send().await.unwrap();
        let got = r.headers().get("access-control-allow-origin").and_then(|v| v.to_str().ok()).map(str::to_string);
        assert_eq!(got.as_deref() == Some(origin), allowed, "{origin}: {got:?}");
    }
    node.shutdown().await;
}
