//! Shared test helpers: nodes on port 0, an HTTP client, deadline-bound waiting.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use cairn::Node;
use cairn::config::NodeConfig;
use cairn_chain::{Address, ChainSpec, Hash, Keypair, Transaction};
use cairn_p2p::wire::{Hello, Message};
use cairn_p2p::{NodeId, NodeIdentity, P2pConfig};
use serde_json::{Value, json};

/// Polls `probe` until it returns `Some`, failing loudly after `secs` seconds.
pub async fn wait_for<T, F, Fut>(what: &str, secs: u64, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out after {secs} s waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The value of the first `/metrics` line starting with `prefix` (name and labels), 0 if none.
pub fn metric(text: &str, prefix: &str) -> u64 {
    text.lines().find_map(|l| l.strip_prefix(prefix).and_then(|v| v.trim().parse().ok())).unwrap_or(0)
}

/// An HTTP client for one node's RPC.
#[derive(Clone)]
pub struct Rpc {
    pub base: String,
    http: reqwest::Client,
}

impl Rpc {
    pub fn new(base: String) -> Self {
        Rpc { base, http: reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap() }
    }
    /// GET: (status, JSON body or Null).
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self.http.get(format!("{}{path}", self.base)).send().await.expect("GET");
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }
    /// POST a JSON value.
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self.http.post(format!("{}{path}", self.base)).json(body).send().await.expect("POST");
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }
    /// POST raw bytes as JSON.
    pub async fn post_raw(&self, path: &str, body: Vec<u8>) -> (u16, Value) {
        let r = self.http.post(format!("{}{path}", self.base)).header("content-type", "application/json").body(body).send().await.expect("POST");
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }
    /// GET a text body (e.g. `/metrics`).
    pub async fn http_text(&self, path: &str) -> String {
        self.http.get(format!("{}{path}", self.base)).send().await.expect("GET").text().await.expect("text body")
    }
    /// Sends a raw HTTP/1.1 request (`head` without the blank line, then `body`) and reads
    /// the answer: lets a test send bodies a well-behaved client would not, and read an early
    /// answer the server gives before consuming the body.
    pub async fn raw(&self, head: &str, body: &[u8]) -> (u16, Value) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = self.base.trim_start_matches("http://");
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        s.write_all(format!("{head}\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes()).await.expect("write head");
        // The server may answer and close before taking the whole body.
        let _ = s.write_all(body).await;
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
        let text = String::from_utf8_lossy(&buf);
        let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
        // A chunked answer: take the JSON object out of the chunk framing.
        let json = body.find('{').and_then(|a| body.rfind('}').map(|b| &body[a..=b])).unwrap_or("null");
        (status, serde_json::from_str(json).unwrap_or(Value::Null))
    }
    pub async fn try_get(&self, path: &str) -> Option<(u16, Value)> {
        let r = self.http.get(format!("{}{path}", self.base)).send().await.ok()?;
        let s = r.status().as_u16();
        Some((s, r.json().await.unwrap_or(Value::Null)))
    }
    pub async fn height(&self) -> u64 {
        self.get("/status").await.1["height"].as_u64().expect("height")
    }
    pub async fn balance(&self, a: &Address) -> u64 {
        self.get(&format!("/accounts/{a}")).await.1["balance"].as_u64().expect("balance")
    }
    pub async fn farm(&self, count: u64, farmer: &Address) -> Vec<String> {
        let (s, v) = self.post("/farm/blocks", &json!({"count": count, "farmer": farmer.to_string()})).await;
        assert_eq!(s, 200, "farm: {v}");
        v["hashes"].as_array().unwrap().iter().map(|h| h.as_str().unwrap().to_string()).collect()
    }
}

/// A node running in-process on port 0 in its own temporary data dir.
pub struct TestNode {
    pub node: Node,
    pub rpc: Rpc,
    pub _dir: tempfile::TempDir,
}

pub async fn start_node() -> TestNode {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(NodeConfig::for_tests(dir.path().join("data"))).await.expect("node starts");
    let rpc = Rpc::new(format!("http://{}", node.rpc_addr()));
    TestNode { node, rpc, _dir: dir }
}

/// The devnet's `n`-th dev key.
pub fn dev(n: u32) -> Keypair {
    ChainSpec::devnet().dev_key(n).unwrap()
}

pub fn devnet_genesis() -> Hash {
    ChainSpec::devnet().genesis().hash()
}

/// JSON for a signed transfer.
pub fn tx_json(tx: &Transaction) -> Value {
    serde_json::to_value(cairn_rpc_types::views::TxView::from(tx)).unwrap()
}

/// Replays the best chain of the node behind `rpc` into a fresh store and returns the
/// replayed chain's tip hash (every block re-validated from genesis).
pub async fn replay_into(rpc: &Rpc, dir: &Path) -> (Hash, cairn_chain::Store) {
    let spec = ChainSpec::devnet();
    let store = cairn_chain::Store::open(dir, &spec.chain_id, spec.genesis().hash()).unwrap();
    let mut chain = cairn_chain::Chain::open(store.clone(), spec).unwrap();
    let tip = rpc.height().await;
    let mut from = 1;
    while from <= tip {
        let (s, v) = rpc.get(&format!("/blocks?from={from}&limit=100")).await;
        assert_eq!(s, 200);
        for b in v["blocks"].as_array().unwrap() {
            let view: cairn_rpc_types::views::BlockView = serde_json::from_value(b.clone()).unwrap();
            let block = view.into_block().unwrap();
            let now = block.header.timestamp;
            chain.submit(block, now).expect("replayed block is valid");
            from += 1;
        }
    }
    (chain.tip().hash, store)
}

// Running the real binary: shared with the benchmarks.
#[path = "../common/process.rs"]
mod process;
pub use process::{cairn, spawn_node, spawn_node_addrs};

/// The error line of a failed run (the one-line reason), checking it is the only one.
pub fn error_line(o: &std::process::Output) -> String {
    assert!(!o.status.success(), "expected failure, got success: {}", String::from_utf8_lossy(&o.stdout));
    let err = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(lines.len(), 1, "one error line expected: {err}");
    lines[0].to_string()
}

/// Waits (polling) for `child` to exit, failing after `secs` seconds.
pub fn wait_exit(child: &mut std::process::Child, secs: u64) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(std::time::Instant::now() < deadline, "process did not exit within {secs} s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A hand-driven QUIC peer for the hostile-client tests.
pub struct RawPeer {
    pub conn: quinn::Connection,
    pub send: quinn::SendStream,
    pub recv: quinn::RecvStream,
    pub id: NodeId,
    _endpoint: quinn::Endpoint,
    _dir: tempfile::TempDir,
}

impl RawPeer {
    /// Connects and completes the handshake by hand.
    pub async fn connect(node: &Node) -> RawPeer {
        Self::connect_claiming(node, None).await
    }

    /// Connects claiming `work` as its cumulative work (default: the node's own).
    pub async fn connect_claiming(node: &Node, work: Option<[u8; 32]>) -> RawPeer {
        Self::attempt(node, "127.0.0.1", work).await.expect("raw peer handshake")
    }

    /// Connects from `ip` (any of 127.0.0.0/8 works on Linux) with a fresh key and completes
    /// the handshake; if the node refuses, the reason: the QUIC close reason text
    /// (`<code>: <detail>`), or the transport error (a refusal before TLS).
    pub async fn attempt(node: &Node, ip: &str, work: Option<[u8; 32]>) -> Result<RawPeer, String> {
        let dir = tempfile::tempdir().unwrap();
        let identity = NodeIdentity::load_or_create(dir.path()).unwrap();
        let endpoint = cairn_p2p::transport::bind(&identity, &P2pConfig::default(), format!("{ip}:0").parse().unwrap()).unwrap();
        let connecting = endpoint.connect(node.p2p_addr(), cairn_p2p::tls::SERVER_NAME).unwrap();
        let conn = match tokio::time::timeout(Duration::from_secs(10), connecting).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(format!("transport: {e}")),
            Err(_) => return Err("transport: timed out".into()),
        };
        let why = |conn: &quinn::Connection| match conn.close_reason() {
            Some(quinn::ConnectionError::ApplicationClosed(c)) => String::from_utf8_lossy(&c.reason).into_owned(),
            Some(other) => format!("transport: {other}"),
            None => "no answer".into(),
        };
        let Ok((send, recv)) = conn.open_bi().await else { return Err(why(&conn)) };
        let mut p = RawPeer { conn, send, recv, id: identity.node_id(), _endpoint: endpoint, _dir: dir };
        let tip = node.chain().tip();
        let spec = node.chain().spec();
        let hello = Hello {
            protocol_version: cairn_p2p::config::PROTOCOL_VERSION,
            chain_id: spec.chain_id.clone(),
            genesis: node.chain().genesis(),
            listen_port: 1,
            best_height: tip.height,
            best_hash: tip.hash,
            total_work: work.unwrap_or(tip.total_work.to_bytes()),
            user_agent: "raw-test".into(),
        };
        p.frame(&cairn_p2p::wire::encode(&Message::Hello(hello))).await;
        // The node's hello, or the end of the connection.
        let mut len = [0u8; 4];
        if tokio::time::timeout(Duration::from_secs(10), p.recv.read_exact(&mut len)).await.map_or(true, |r| r.is_err()) {
            let _ = tokio::time::timeout(Duration::from_secs(5), p.conn.closed()).await;
            return Err(why(&p.conn));
        }
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        if p.recv.read_exact(&mut body).await.is_err() {
            return Err(why(&p.conn));
        }
        if matches!(cairn_p2p::wire::decode(&body), Ok(Message::Reject { .. })) {
            // Refused after the hello: the node closes with the reason.
            let _ = tokio::time::timeout(Duration::from_secs(5), p.conn.closed()).await;
            return Err(why(&p.conn));
        }
        p.frame(&cairn_p2p::wire::encode(&Message::HelloAck)).await;
        Ok(p)
    }
    pub async fn frame(&mut self, body: &[u8]) {
        let _ = self.send.write_all(&(body.len() as u32).to_be_bytes()).await;
        let _ = self.send.write_all(body).await;
    }
    pub async fn read_frame(&mut self) -> Vec<u8> {
        let mut len = [0u8; 4];
        self.recv.read_exact(&mut len).await.unwrap();
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        self.recv.read_exact(&mut body).await.unwrap();
        body
    }
    pub async fn closed_within(&self, secs: u64) {
        tokio::time::timeout(Duration::from_secs(secs), self.conn.closed()).await.expect("node closed the connection");
    }
}

/// Writes a devnet chain of `blocks` empty blocks (farmed to `farmer`) straight into the store
/// at `db` (a node's `<data_dir>/db`), much faster than farming through a node.
pub fn prebuild_chain(db: &Path, blocks: u64, farmer: Address) -> Hash {
    let spec = ChainSpec::devnet();
    let mut store = cairn_chain::Store::open(db, &spec.chain_id, spec.genesis().hash()).unwrap();
    store.set_sync_writes(false);
    let mut chain = cairn_chain::Chain::open(store, spec.clone()).unwrap();
    let mut t = spec.genesis_timestamp;
    for _ in 0..blocks {
        t += spec.block_time_ms;
        let header = chain.template(farmer, &[], t).unwrap();
        let header = cairn::farm::miner::mine(&header, 1, &std::sync::atomic::AtomicBool::new(false)).unwrap();
        chain.submit(cairn_chain::Block { header, transactions: vec![] }, t).unwrap();
    }
    chain.tip().hash
}

/// The error code of an RPC error answer.
pub fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("<no error code>")
}
