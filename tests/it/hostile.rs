//! Hostile peers over real QUIC, after Bitcoin Core's p2p functional tests
//! (p2p_disconnect_ban, p2p_unrequested_blocks, p2p_ibd_stalling, p2p_invalid_messages): a
//! hand-driven raw peer misbehaves against real in-process nodes while honest peers keep
//! being served. The deterministic versions of each case are unit tests of the machines
//! (`p2p/src/sync/download.rs`, `peer/protocol.rs`, `handshake.rs`, `verdict.rs`).

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cairn::Node;
use cairn::config::NodeConfig;
use cairn::farm::farmer::farm_blocks;
use cairn_chain::{Address, Block, ChainSpec, Hash, Header, Transaction};
use cairn_p2p::wire::{BlockId, Message, RejectReason, decode, encode};
use tokio_util::sync::CancellationToken;

use crate::support::{RawPeer, Rpc, dev, devnet_genesis, metric, wait_for};

async fn start(dir: &Path, peers: Vec<String>) -> Node {
    let mut c = NodeConfig::for_tests(dir.join("data"));
    c.peers = peers;
    Node::start(c).await.expect("node starts")
}

async fn farm(n: &Node, count: u64) {
    farm_blocks(n.chain(), Address([0xfa; 32]), count, 1, &CancellationToken::new()).await.expect("farm");
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

/// Mines `header` (tx root set from `txs`) into a block.
fn mined(mut header: Header, txs: Vec<Transaction>) -> Block {
    header.tx_root = cairn_chain::block::merkle_root(&txs.iter().map(Transaction::id).collect::<Vec<_>>());
    let header = cairn::farm::miner::mine(&header, 1, &std::sync::atomic::AtomicBool::new(false)).unwrap();
    Block { header, transactions: txs }
}

/// `n` blocks on `parent` (a fork of our own when `salt` differs from the node's farmer).
fn branch(parent: &Header, parent_hash: Hash, n: u64, salt: u8) -> Vec<Block> {
    let spec = ChainSpec::devnet();
    let mut out: Vec<Block> = Vec::new();
    let (mut prev, mut prev_hash) = (parent.clone(), parent_hash);
    for _ in 0..n {
        let h = Header {
            version: cairn_chain::block::HEADER_VERSION,
            height: prev.height + 1,
            prev_hash,
            tx_root: Hash::ZERO,
            timestamp: prev.timestamp + spec.block_time_ms,
            target: spec.initial_target,
            nonce: 0,
            farmer: Address([salt; 32]),
        };
        let b = mined(h, Vec::new());
        prev = b.header.clone();
        prev_hash = b.hash();
        out.push(b);
    }
    out
}

async fn genesis_header(n: &Node) -> (Header, Hash) {
    let g = n.chain().block_at(0).await.unwrap().unwrap();
    (g.header.clone(), g.hash())
}

impl RawPeer {
    /// Reads frames until one matches, answering pings and status requests meanwhile (so the
    /// node's heartbeat keeps the connection up).
    async fn next_where<T>(&mut self, secs: u64, mut pick: impl FnMut(&Message) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let frame = tokio::time::timeout_at(deadline, self.read_frame()).await.expect("the expected message in time");
            let Ok(m) = decode(&frame) else { continue };
            if let Some(t) = pick(&m) {
                return t;
            }
            self.keep_alive(&m).await;
        }
    }

    async fn keep_alive(&mut self, m: &Message) {
        if let Message::Ping(n) = m {
            self.frame(&encode(&Message::Pong(*n))).await;
        }
    }

    /// Stays alive (answering pings) until `until`, ignoring everything else.
    async fn idle_until(&mut self, until: tokio::time::Instant) {
        while let Ok(frame) = tokio::time::timeout_at(until, self.read_frame()).await {
            if let Ok(m) = decode(&frame) {
                self.keep_alive(&m).await;
            }
        }
    }

    /// A ping round trip: everything sent before it has been handled by the node.
    async fn round_trip(&mut self) {
        self.frame(&encode(&Message::Ping(0xc0ffee))).await;
        self.next_where(10, |m| matches!(m, Message::Pong(0xc0ffee)).then_some(())).await;
    }

    fn close_code(&self) -> Option<(u64, String)> {
        match self.conn.close_reason()? {
            quinn::ConnectionError::ApplicationClosed(c) => Some((c.error_code.into_inner(), String::from_utf8_lossy(&c.reason).into_owned())),
            _ => None,
        }
    }
}

async fn registered(n: &Node, p: &RawPeer) {
    wait_for("raw peer registered", 10, || async { n.p2p().peers().iter().any(|x| x.node_id == p.id).then_some(()) }).await;
}

/// A peer whose score reaches the ban threshold is cut off at once: of a batch of 1000
/// transactions with bad signatures only the first is verified, the connection closes with
/// `banned`, and an honest peer of the same node keeps receiving blocks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_banned_peer_is_cut_off_at_once_and_the_rest_of_its_batch_is_never_verified() {
    let t = tempfile::tempdir().unwrap();
    let n = start(&t.path().join("n"), vec![]).await;
    let honest = start(&t.path().join("h"), vec![n.p2p_addr().to_string()]).await;
    wait_for("honest peer connected", 10, || async { (n.p2p().peer_count() == 1).then_some(()) }).await;
    let mut p = RawPeer::connect(&n).await;
    registered(&n, &p).await;
    let good = Transaction::signed(&dev(0), devnet_genesis(), Address([1; 32]), 5, 1, 0);
    let batch: Vec<Bytes> = (0..1000u64)
        .map(|i| {
            let mut forged = good.clone();
            forged.amount = 6 + i; // the signature no longer covers it
            Bytes::from(forged.encode())
        })
        .collect();
    p.frame(&encode(&Message::Transactions(batch))).await;
    p.closed_within(10).await;
    let (code, reason) = p.close_code().expect("closed with a reason");
    assert_eq!(code, RejectReason::Banned.close_code().into_inner(), "closed as banned: {reason}");
    assert!(reason.starts_with("banned"), "{reason}");
    assert!(n.p2p().bans().iter().any(|b| b.target == cairn_p2p::ports::BanTarget::Node(p.id)));
    let metrics = Rpc::new(format!("http://{}", n.rpc_addr())).http_text("/metrics").await;
    let verified = metric(&metrics, "cairn_transactions_rejected_total{reason=\"bad_signature\"} ");
    assert_eq!(verified, 1, "only the first bad signature was verified");
    // The honest peer stays and is served.
    farm(&n, 1).await;
    wait_for("honest peer gets the new block", 10, || async { (honest.chain().tip() == n.chain().tip()).then_some(()) }).await;
    assert_eq!(n.p2p().peer_count(), 1);
    for x in [n, honest] {
        x.shutdown().await;
    }
}

/// A block whose only fault is a timestamp too far ahead of our clock (its farmer's clock
/// runs fast) is not stored and its sender not punished; offered again once our clock has
/// caught up, it is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_from_the_future_is_dropped_unpunished_and_taken_when_offered_again_later() {
    let t = tempfile::tempdir().unwrap();
    let n = start(&t.path().join("n"), vec![]).await;
    let drift = ChainSpec::devnet().max_future_drift_ms;
    let mut header = n.chain().template(Address([0xbb; 32])).await.unwrap().header;
    header.timestamp = now_ms() + drift + 2500;
    let block = mined(header, Vec::new());
    let hash = block.hash();
    let mut p = RawPeer::connect(&n).await;
    registered(&n, &p).await;
    let offer = async |p: &mut RawPeer| {
        p.frame(&encode(&Message::NewBlock { height: 1, hash })).await;
        p.next_where(10, |m| matches!(m, Message::GetBlock(BlockId::Hash(h)) if *h == hash).then_some(())).await;
        p.frame(&encode(&Message::BlockData(Some(Bytes::from(block.encode()))))).await;
    };
    offer(&mut p).await;
    p.round_trip().await;
    assert!(!n.chain().has_block(hash).await.unwrap(), "a block from the future was stored");
    assert_eq!(n.p2p().score(&p.id), 0, "its sender was punished");
    // Wait (alive) until our clock has caught up, then offer it again.
    let ready_in = Duration::from_millis((block.header.timestamp - drift).saturating_sub(now_ms()) + 200);
    p.idle_until(tokio::time::Instant::now() + ready_in).await;
    offer(&mut p).await;
    wait_for("the block accepted", 10, || async { (n.chain().tip().hash == hash).then_some(()) }).await;
    assert!(n.p2p().peers().iter().any(|x| x.node_id == p.id), "the sender is still connected");
    n.shutdown().await;
}

/// An unrequested block that does not have more work than our tip is neither processed nor
/// stored; the same block asked for after an announcement is stored (on a side chain).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unrequested_block_without_more_work_is_not_stored_but_a_requested_one_is() {
    let t = tempfile::tempdir().unwrap();
    let n = start(&t.path().join("n"), vec![]).await;
    farm(&n, 2).await;
    let tip = n.chain().tip();
    let (g, gh) = genesis_header(&n).await;
    let side = branch(&g, gh, 1, 0x5e).remove(0);
    let mut p = RawPeer::connect(&n).await;
    registered(&n, &p).await;
    p.frame(&encode(&Message::BlockData(Some(Bytes::from(side.encode()))))).await;
    p.round_trip().await;
    assert!(!n.chain().has_block(side.hash()).await.unwrap(), "an unrequested low-work block was stored");
    assert_eq!(n.p2p().score(&p.id), 0);
    // Announced, then asked for: taken.
    p.frame(&encode(&Message::NewBlock { height: 1, hash: side.hash() })).await;
    p.next_where(10, |m| matches!(m, Message::GetBlock(BlockId::Hash(h)) if *h == side.hash()).then_some(())).await;
    p.frame(&encode(&Message::BlockData(Some(Bytes::from(side.encode()))))).await;
    wait_for("requested side block stored", 10, || async { n.chain().has_block(side.hash()).await.unwrap().then_some(()) }).await;
    assert_eq!(n.chain().tip(), tip, "a side block with less work does not move the tip");
    n.shutdown().await;
}

/// A peer that claims much work and sends headers it never serves (silent) or then says it
/// lacks (`NotFound`) cannot hold a sync: the node drops what only that peer showed and syncs
/// from an honest peer, and the withholder is penalised.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_a_peer_never_serves_do_not_stall_the_sync() {
    for answer_not_found in [false, true] {
        let t = tempfile::tempdir().unwrap();
        let a = start(&t.path().join("a"), vec![]).await;
        farm(&a, 30).await;
        let d = start(&t.path().join("d"), vec![]).await;
        let (g, gh) = genesis_header(&d).await;
        let fork = branch(&g, gh, 5, 0xee);
        let mut p = RawPeer::connect_claiming(&d, Some([0x7f; 32])).await;
        p.next_where(10, |m| matches!(m, Message::GetHeaders { .. }).then_some(())).await;
        let headers = fork.iter().map(|b| Bytes::copy_from_slice(&b.header.encode())).collect();
        p.frame(&encode(&Message::Headers(headers))).await;
        let asked = p
            .next_where(10, |m| match m {
                Message::GetBlocks(h) => Some(h.clone()),
                _ => None,
            })
            .await;
        assert_eq!(asked[0], fork[0].hash(), "the bodies are asked of the peer that showed the headers");
        if answer_not_found {
            p.frame(&encode(&Message::NotFound(asked))).await;
            p.frame(&encode(&Message::Blocks(Vec::new()))).await;
        }
        let started = Instant::now();
        d.p2p().connect(&a.p2p_addr().to_string()).await.expect("connect to the honest peer");
        // The withholder stays connected (answering pings) and serves nothing.
        let keep = tokio::spawn(async move {
            p.idle_until(tokio::time::Instant::now() + Duration::from_secs(60)).await;
            p
        });
        wait_for("synced from the honest peer", 30, || async { (d.chain().tip() == a.chain().tip()).then_some(()) }).await;
        println!("synced past the withholder (NotFound: {answer_not_found}) in {:.1} s", started.elapsed().as_secs_f64());
        keep.abort();
        if answer_not_found {
            let id = d.p2p().peers().iter().map(|x| x.node_id).find(|id| *id != a.node_id());
            if let Some(id) = id {
                assert!(d.p2p().score(&id) > 0, "announcing headers and refusing their blocks is penalised");
            }
        }
        for x in [a, d] {
            x.shutdown().await;
        }
    }
}

/// Honest peers with big blocks: five blocks of 1,500 transfers (~276 KB each) do not fit
/// one frame together; the answer is cut short and the rest asked again, never taken as a
/// refusal, so a fresh node syncs to the end from its one peer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_node_syncs_big_blocks_cut_short_by_the_frame_budget() {
    let t = tempfile::tempdir().unwrap();
    let adir = t.path().join("a");
    let tip = prebuild_big_blocks(&adir.join("data").join("db"), 5, 1500);
    let a = start(&adir, vec![]).await;
    assert_eq!(a.chain().tip().hash, tip);
    let size = a.chain().block_at(1).await.unwrap().unwrap().encoded_len();
    assert!(size > 250_000, "blocks of {size} bytes");
    let d = start(&t.path().join("d"), vec![a.p2p_addr().to_string()]).await;
    wait_for("fresh node synced the big blocks", 60, || async { (d.chain().tip().hash == tip).then_some(()) }).await;
    wait_for("sync over", 10, || async { (!d.p2p().is_syncing()).then_some(()) }).await;
    for x in [a, d] {
        x.shutdown().await;
    }
}

/// Writes `blocks` blocks of `per_block` transfers to fresh addresses straight into the store
/// at `db`; returns the tip.
fn prebuild_big_blocks(db: &Path, blocks: u64, per_block: u64) -> Hash {
    let spec = ChainSpec::devnet();
    let genesis = spec.genesis().hash();
    let store = cairn_chain::Store::open(db, &spec.chain_id, genesis).unwrap();
    let mut chain = cairn_chain::Chain::open(store, spec.clone()).unwrap();
    let senders: Vec<_> = (0..15).map(dev).collect();
    let mut nonces = vec![0u64; senders.len()];
    let mut t = spec.genesis_timestamp;
    let mut fresh = 0u64;
    for _ in 0..blocks {
        t += spec.block_time_ms;
        let mut txs = Vec::new();
        for i in 0..per_block as usize {
            let s = i % senders.len();
            fresh += 1;
            let mut to = [0u8; 32];
            to[..8].copy_from_slice(&fresh.to_le_bytes());
            txs.push(Transaction::signed(&senders[s], genesis, Address(to), 1, spec.min_fee, nonces[s]));
            nonces[s] += 1;
        }
        let header = chain.template(Address([0xfa; 32]), &txs, t).unwrap();
        let header = cairn::farm::miner::mine(&header, 1, &std::sync::atomic::AtomicBool::new(false)).unwrap();
        chain.submit(Block { header, transactions: txs }, t).unwrap();
    }
    chain.tip().hash
}

/// A handshake that does not finish in time is closed with the typed `handshake_timeout`
/// code: a dialer that opens no stream, and one that sends its `Hello` but never its
/// `HelloAck`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_that_times_out_is_closed_with_the_typed_code() {
    let t = tempfile::tempdir().unwrap();
    let n = start(&t.path().join("n"), vec![]).await;
    for send_hello in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let identity = cairn_p2p::NodeIdentity::load_or_create(dir.path()).unwrap();
        let endpoint = cairn_p2p::transport::bind(&identity, &cairn_p2p::P2pConfig::default(), "127.0.0.1:0".parse().unwrap()).unwrap();
        let conn = endpoint.connect(n.p2p_addr(), cairn_p2p::tls::SERVER_NAME).unwrap().await.unwrap();
        let (mut send, _recv) = conn.open_bi().await.unwrap();
        if send_hello {
            let tip = n.chain().tip();
            let hello = cairn_p2p::wire::Hello {
                protocol_version: cairn_p2p::config::PROTOCOL_VERSION,
                chain_id: n.chain().spec().chain_id.clone(),
                genesis: n.chain().genesis(),
                listen_port: 1,
                best_height: tip.height,
                best_hash: tip.hash,
                total_work: tip.total_work.to_bytes(),
                user_agent: "slow".into(),
            };
            let body = encode(&Message::Hello(hello));
            send.write_all(&(body.len() as u32).to_be_bytes()).await.unwrap();
            send.write_all(&body).await.unwrap();
        }
        let reason = tokio::time::timeout(Duration::from_secs(10), conn.closed()).await.expect("closed by the node");
        match reason {
            quinn::ConnectionError::ApplicationClosed(c) => {
                assert_eq!(c.error_code, RejectReason::Timeout.close_code(), "hello sent: {send_hello}");
                assert!(String::from_utf8_lossy(&c.reason).starts_with("handshake_timeout"), "{:?}", c.reason);
            }
            other => panic!("closed without the typed code (hello sent: {send_hello}): {other}"),
        }
    }
    n.shutdown().await;
}

/// Shutdown cancels dials in flight: a node dialling a peer that never answers stops at once
/// (it used to wait out the handshake timeout).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_does_not_wait_for_dials_in_flight() {
    let t = tempfile::tempdir().unwrap();
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    silent.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let n = start(&t.path().join("n"), vec![silent.local_addr().unwrap().to_string()]).await;
    let mut buf = [0u8; 2048];
    silent.recv_from(&mut buf).expect("the node dials the silent peer");
    let started = Instant::now();
    n.shutdown().await;
    let took = started.elapsed();
    println!("shutdown with a dial in flight took {} ms", took.as_millis());
    assert!(took < Duration::from_millis(1500), "shutdown took {took:?} with a dial in flight");
}

/// A handshake violation is judged before the close: the first (50 points) closes with
/// `protocol_violation`, the second, which bans, with `banned`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_violation_that_bans_closes_with_banned() {
    let t = tempfile::tempdir().unwrap();
    let n = start(&t.path().join("n"), vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    let identity = cairn_p2p::NodeIdentity::load_or_create(dir.path()).unwrap();
    for want in [RejectReason::ProtocolViolation, RejectReason::Banned] {
        let endpoint = cairn_p2p::transport::bind(&identity, &cairn_p2p::P2pConfig::default(), "127.0.0.1:0".parse().unwrap()).unwrap();
        let conn = endpoint.connect(n.p2p_addr(), cairn_p2p::tls::SERVER_NAME).unwrap().await.unwrap();
        let (mut send, _recv) = conn.open_bi().await.unwrap();
        let body = encode(&Message::Ping(1)); // not a hello
        send.write_all(&(body.len() as u32).to_be_bytes()).await.unwrap();
        send.write_all(&body).await.unwrap();
        match tokio::time::timeout(Duration::from_secs(10), conn.closed()).await.expect("closed by the node") {
            quinn::ConnectionError::ApplicationClosed(c) => {
                assert_eq!(c.error_code, want.close_code(), "{:?}", String::from_utf8_lossy(&c.reason));
                assert!(String::from_utf8_lossy(&c.reason).starts_with(want.code()), "{:?}", c.reason);
            }
            other => panic!("closed without a code: {other}"),
        }
    }
    assert!(n.p2p().bans().iter().any(|b| b.target == cairn_p2p::ports::BanTarget::Node(identity.node_id())));
    n.shutdown().await;
}

/// A compact block that does not rebuild costs its sender nothing: short IDs matching nothing
/// are fetched by index, an answer whose transactions do not give the Merkle root (here: the
/// right count, the wrong transactions) makes the node fetch the whole block, which it then
/// takes. No point is held against the sender; an over-long announcement is still a violation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compact_block_that_does_not_rebuild_is_fetched_whole_unpunished() {
    let t = tempfile::tempdir().unwrap();
    let n = start(&t.path().join("n"), vec![]).await;
    let mut header = n.chain().template(Address([0xbb; 32])).await.unwrap().header;
    header.timestamp = header.timestamp.max(now_ms());
    let txs: Vec<Transaction> = (0..3).map(|i| Transaction::signed(&dev(5), devnet_genesis(), Address([i as u8 + 1; 32]), 7, 1, i)).collect();
    let block = mined(header, txs.clone());
    let hash = block.hash();
    let mut p = RawPeer::connect(&n).await;
    registered(&n, &p).await;
    // Short IDs from another salt than the one sent: nothing in the (empty) mempool could match
    // anyway, so every slot is asked for.
    let compact = cairn_chain::compact::CompactBlock::of(&block, 1);
    p.frame(&encode(&Message::CompactBlock {
        header: Bytes::copy_from_slice(&block.header.encode()),
        nonce: 2,
        short_ids: Bytes::from(compact.encode_short_ids()),
    }))
    .await;
    let indexes = p
        .next_where(10, |m| match m {
            Message::GetBlockTxs { hash: h, indexes } if *h == hash => Some(indexes.clone()),
            _ => None,
        })
        .await;
    assert_eq!(indexes, vec![0, 1, 2]);
    // Three transactions, but not the block's.
    let wrong: Vec<Bytes> = (0..3).map(|i| Bytes::from(Transaction::signed(&dev(6), devnet_genesis(), Address([9; 32]), 1, 1, i).encode())).collect();
    p.frame(&encode(&Message::BlockTxs { hash, txs: wrong })).await;
    p.next_where(10, |m| matches!(m, Message::GetBlock(BlockId::Hash(h)) if *h == hash).then_some(())).await;
    p.frame(&encode(&Message::BlockData(Some(Bytes::from(block.encode()))))).await;
    wait_for("the whole block taken", 10, || async { (n.chain().tip().hash == hash).then_some(()) }).await;
    assert_eq!(n.p2p().score(&p.id), 0, "the sender of a compact block that did not rebuild was punished");
    let m = Rpc::new(format!("http://{}", n.rpc_addr())).http_text("/metrics").await;
    assert_eq!(metric(&m, "cairn_p2p_compact_blocks_total{outcome=\"fell_back\"} "), 1);
    // An announcement of more IDs than the limit breaks the protocol.
    let ids: Vec<Hash> = (0..cairn_p2p::config::MAX_TX_IDS_PER_MESSAGE as u64 + 1).map(|i| Hash::digest(&i.to_le_bytes())).collect();
    p.frame(&encode(&Message::TxIds(ids))).await;
    p.closed_within(10).await;
    assert_eq!(p.close_code().map(|(_, why)| why), Some("banned: oversized_message".into()));
    n.shutdown().await;
}
