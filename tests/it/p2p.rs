//! The P2P core between real in-process nodes on port 0: connections and directions, every
//! typed refusal on both sides, the operator's block list, pinning, peer exchange, limits,
//! heartbeat, persistence, and a hostile raw QUIC client.

use std::path::Path;
use std::time::Duration;

use cairn::Node;
use cairn::config::NodeConfig;
use cairn_p2p::metrics::Side;
use cairn_p2p::wire::{Message, RejectReason};
use cairn_p2p::{ConnectError, Direction, NodeId, NodeIdentity};
use tokio::io::AsyncWriteExt;

use crate::support::{RawPeer, wait_for};

fn config(dir: &Path) -> NodeConfig {
    NodeConfig::for_tests(dir.join("data"))
}

async fn start(dir: &Path, edit: impl FnOnce(&mut NodeConfig)) -> Node {
    let mut c = config(dir);
    edit(&mut c);
    Node::start(c).await.expect("node starts")
}

fn peer_ids(n: &Node) -> Vec<(NodeId, Direction)> {
    n.p2p().peers().iter().map(|p| (p.node_id, p.direction)).collect()
}

async fn wait_peers(n: &Node, count: usize) {
    wait_for(&format!("{count} peers"), 20, || async { (n.p2p().peer_count() == count).then_some(()) }).await;
}

fn refused(r: Result<NodeId, ConnectError>) -> (RejectReason, bool) {
    match r {
        Err(ConnectError::Refused { reason, by_peer, .. }) => (reason, by_peer),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_connect_with_peers_and_see_directions() {
    let t = tempfile::tempdir().unwrap();
    let a = start(&t.path().join("a"), |_| {}).await;
    let b = start(&t.path().join("b"), |c| c.peers = vec![a.p2p_addr().to_string()]).await;
    wait_peers(&a, 1).await;
    wait_peers(&b, 1).await;
    assert_eq!(peer_ids(&a), vec![(b.node_id(), Direction::Inbound)]);
    assert_eq!(peer_ids(&b), vec![(a.node_id(), Direction::Outbound)]);
    let c = start(&t.path().join("c"), |c| c.peers = vec![a.p2p_addr().to_string(), format!("{}@{}", b.node_id(), b.p2p_addr())]).await;
    wait_peers(&c, 2).await;
    wait_peers(&a, 2).await;
    wait_peers(&b, 2).await;
    let cp = peer_ids(&c);
    assert!(cp.contains(&(a.node_id(), Direction::Outbound)) && cp.contains(&(b.node_id(), Direction::Outbound)), "{cp:?}");
    assert!(peer_ids(&a).contains(&(c.node_id(), Direction::Inbound)));
    // The RPC shows the same, with the contract's fields.
    let rpc = crate::support::Rpc::new(format!("http://{}", a.rpc_addr()));
    let (_, v) = rpc.get("/p2p/peers").await;
    assert_eq!(v["count"], 2);
    for field in ["node_id", "address", "direction", "connected_since", "best_height", "bytes_sent", "bytes_received", "last_seen", "score"] {
        assert!(!v["peers"][0][field].is_null(), "missing {field}: {v}");
    }
    assert_eq!(rpc.get("/status").await.1["peers"], 2);
    // Shutdown closes connections with a reason: B and C drop A at once, long before the
    // heartbeat (3 s) or idle (30 s) timeouts could notice.
    let a_id = a.node_id();
    a.shutdown().await;
    let t0 = std::time::Instant::now();
    wait_for("B and C drop A", 10, || async { (!b.p2p().peers().iter().chain(c.p2p().peers().iter()).any(|p| p.node_id == a_id)).then_some(()) }).await;
    assert!(t0.elapsed() < Duration::from_secs(2), "dropped only after {:?}", t0.elapsed());
    for n in [b, c] {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_is_typed_on_both_sides_and_leaves_no_peer() {
    let t = tempfile::tempdir().unwrap();
    let hub = start(&t.path().join("hub"), |c| c.p2p.max_inbound = 1).await;
    let target = hub.p2p_addr().to_string();
    type Edit = Box<dyn FnOnce(&mut NodeConfig)>;
    let cases: Vec<(&str, Edit, RejectReason)> = vec![
        ("chain", Box::new(|c: &mut NodeConfig| c.chain.chain_id = "cairn-foreign".into()), RejectReason::WrongChain),
        ("genesis", Box::new(|c: &mut NodeConfig| c.chain.genesis_timestamp += 1), RejectReason::WrongGenesis),
        ("version", Box::new(|c: &mut NodeConfig| c.p2p.protocol_version = 99), RejectReason::IncompatibleVersion),
    ];
    for (name, edit, reason) in cases {
        let other = start(&t.path().join(name), edit).await;
        let (got, by_peer) = refused(other.p2p().connect(&target).await);
        assert_eq!((got, by_peer), (reason, true), "{name}");
        // The refusing side counted it as its own refusal, the dialer as the peer's.
        assert!(hub.p2p().metrics().rejections(reason, Side::Local) >= 1, "{name}: hub did not log the refusal");
        assert_eq!(other.p2p().metrics().rejections(reason, Side::Remote), 1, "{name}: dialer did not log the refusal");
        assert_eq!(other.p2p().peer_count(), 0);
        assert_eq!(hub.p2p().peer_count(), 0);
        other.shutdown().await;
    }
    // Self-dial.
    let (got, _) = refused(hub.p2p().connect(&target).await);
    assert_eq!(got, RejectReason::SelfConnection);
    // A full node (max_inbound 1): the second dialer is refused.
    let first = start(&t.path().join("first"), |_| {}).await;
    first.p2p().connect(&target).await.expect("first peer fits");
    wait_peers(&hub, 1).await;
    let second = start(&t.path().join("second"), |_| {}).await;
    assert_eq!(refused(second.p2p().connect(&target).await), (RejectReason::TooManyPeers, true));
    assert_eq!(hub.p2p().peer_count(), 1);
    // A banned peer: disconnected, and refused when it comes back.
    hub.p2p().ban(cairn_p2p::ports::BanTarget::Node(first.node_id()), Duration::from_secs(3600), "test").await;
    wait_peers(&hub, 0).await;
    wait_peers(&first, 0).await;
    assert_eq!(refused(first.p2p().connect(&target).await), (RejectReason::Banned, true));
    // At least ours (first's maintenance loop may redial the manual peer on its own too).
    assert!(hub.p2p().metrics().rejections(RejectReason::Banned, Side::Local) >= 1);
    // The RPC gives the code as a 4xx.
    let rpc = crate::support::Rpc::new(format!("http://{}", first.rpc_addr()));
    let (s, v) = rpc.post("/p2p/peers", &serde_json::json!({"address": target})).await;
    assert_eq!((s, v["error"]["code"].as_str()), (403, Some("banned")), "{v}");
    let (s, v) = rpc.post("/p2p/peers", &serde_json::json!({"address": "not an address"})).await;
    assert_eq!((s, v["error"]["code"].as_str()), (400, Some("invalid_address")), "{v}");
    for n in [hub, first, second] {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_nodes_are_cut_off_and_refused_both_ways_until_cleared() {
    let t = tempfile::tempdir().unwrap();
    let a = start(&t.path().join("a"), |_| {}).await;
    let b = start(&t.path().join("b"), |c| c.peers = vec![a.p2p_addr().to_string()]).await;
    let c = start(&t.path().join("c"), |c| c.peers = vec![a.p2p_addr().to_string()]).await;
    wait_peers(&a, 2).await;
    // A blocks B: the connection drops at once, C stays.
    a.p2p().set_blocked([b.node_id()].into()).await;
    wait_peers(&b, 0).await;
    assert_eq!(peer_ids(&a), vec![(c.node_id(), Direction::Inbound)]);
    // Refused both ways, with the typed reason on both sides.
    assert_eq!(refused(b.p2p().connect(&a.p2p_addr().to_string()).await), (RejectReason::Blocked, true));
    assert_eq!(refused(a.p2p().connect(&b.p2p_addr().to_string()).await), (RejectReason::Blocked, false));
    // Not a ban: no score, nothing listed (or persisted).
    assert!(a.p2p().bans().is_empty());
    assert_eq!(a.p2p().score(&b.node_id()), 0);
    // Cleared: B's redial (its manual peer) gets in again.
    a.p2p().set_blocked(Default::default()).await;
    wait_for("B back", 20, || async { a.p2p().peers().iter().any(|p| p.node_id == b.node_id()).then_some(()) }).await;
    for n in [a, b, c] {
        n.shutdown().await;
    }
}

/// Only the operator's pin is enforced: a node reinstalled with a new key at an address its
/// peers knew (its data dir wiped) is taken back by their redial, not refused forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinned_ids_are_enforced_and_a_wiped_node_rejoins() {
    let t = tempfile::tempdir().unwrap();
    let a = start(&t.path().join("a"), |_| {}).await;
    let b = start(&t.path().join("b"), |_| {}).await;
    let b_addr = b.p2p_addr();
    let b_id = b.node_id();
    let wrong = NodeIdentity::load_or_create(t.path()).unwrap().node_id();
    assert_eq!(refused(a.p2p().connect(&format!("{wrong}@{b_addr}")).await).0, RejectReason::NodeIdMismatch);
    assert_eq!(a.p2p().peer_count(), 0);
    // The right pin is accepted; the pinned address is then forgotten again.
    assert_eq!(a.p2p().connect(&format!("{}@{b_addr}", b.node_id())).await.unwrap(), b.node_id());
    assert!(a.p2p().forget(&b_id).await);
    wait_peers(&a, 0).await;
    // A plain dial (no pin): A remembers the key it found there.
    assert_eq!(a.p2p().connect(&b_addr.to_string()).await.unwrap(), b_id);
    let book = a.p2p().addresses().await;
    assert_eq!(book.iter().find(|x| x.addr == b_addr).map(|x| (x.node_id, x.pinned)), Some((Some(b_id), false)));
    // B is wiped: a new key on the same address, knowing nobody. A redials the address on its
    // own and takes the new key.
    b.shutdown().await;
    wait_peers(&a, 0).await;
    let b2 = start(&t.path().join("b2"), |c| c.p2p_addr = b_addr).await;
    wait_for("A rejoined the wiped node", 30, || async { a.p2p().peers().iter().any(|p| p.node_id == b2.node_id()).then_some(()) }).await;
    let book = a.p2p().addresses().await;
    assert_eq!(book.iter().find(|x| x.addr == b_addr).and_then(|x| x.node_id), Some(b2.node_id()), "the new key is remembered");
    // A pinned address still refuses another key.
    let c = start(&t.path().join("c"), |_| {}).await;
    assert_eq!(refused(c.p2p().connect(&format!("{b_id}@{b_addr}")).await).0, RejectReason::NodeIdMismatch);
    for n in [a, b2, c] {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_exchange_and_inbound_limit() {
    let t = tempfile::tempdir().unwrap();
    // A–B and B–C: A learns C from B and connects to it.
    let b = start(&t.path().join("b"), |_| {}).await;
    let a = start(&t.path().join("a"), |c| c.peers = vec![b.p2p_addr().to_string()]).await;
    let c = start(&t.path().join("c"), |c| {
        c.peers = vec![b.p2p_addr().to_string()];
        // C does not dial out on its own: the A–C link must come from A learning C.
        c.p2p.target_outbound = 1;
    })
    .await;
    wait_for("A connected to C", 20, || async { a.p2p().peers().iter().any(|p| p.node_id == c.node_id()).then_some(()) }).await;
    assert!(peer_ids(&a).contains(&(c.node_id(), Direction::Outbound)), "A dialled C: {:?}", peer_ids(&a));
    for n in [a, b, c] {
        n.shutdown().await;
    }

    // Inbound limit 2, five dialers: exactly two held, three refused with too_many_peers.
    let hub = start(&t.path().join("hub"), |c| c.p2p.max_inbound = 2).await;
    let mut dialers = Vec::new();
    let mut refusals = 0;
    for i in 0..5 {
        let d = start(&t.path().join(format!("d{i}")), |_| {}).await;
        match d.p2p().connect(&hub.p2p_addr().to_string()).await {
            Ok(_) => {}
            Err(ConnectError::Refused { reason: RejectReason::TooManyPeers, .. }) => refusals += 1,
            Err(e) => panic!("unexpected: {e}"),
        }
        dialers.push(d);
    }
    assert_eq!((hub.p2p().peer_count(), refusals), (2, 3));
    hub.shutdown().await;
    for d in dialers {
        d.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_dialling_each_other_at_once_keep_one_connection() {
    let t = tempfile::tempdir().unwrap();
    for round in 0..5 {
        let a = start(&t.path().join(format!("a{round}")), |_| {}).await;
        let b = start(&t.path().join(format!("b{round}")), |_| {}).await;
        let (to_b, to_a) = (b.p2p_addr().to_string(), a.p2p_addr().to_string());
        let (ra, rb) = tokio::join!(a.p2p().connect(&to_b), b.p2p().connect(&to_a));
        assert!(ra.is_ok() || rb.is_ok(), "round {round}: {ra:?} {rb:?}");
        // Both keep the same single connection: opposite directions on the two sides, and
        // it is the one the lower node ID dialled.
        wait_for("one connection each", 10, || async {
            let (pa, pb) = (peer_ids(&a), peer_ids(&b));
            (pa.len() == 1 && pb.len() == 1 && pa[0].1 != pb[0].1).then_some(())
        })
        .await;
        let lower_dialled = if a.node_id() < b.node_id() { peer_ids(&a)[0].1 == Direction::Outbound } else { peer_ids(&b)[0].1 == Direction::Outbound };
        assert!(lower_dialled, "round {round}: kept the connection of the higher node ID");
        // The kept connection carries blocks both ways (the sync task follows the replacement:
        // a replaced connection's departure does not take the new one with it).
        for (from, to) in [(&a, &b), (&b, &a)] {
            cairn::farm::farmer::farm_blocks(from.chain(), cairn_chain::Address([0xfa; 32]), 1, 1, &tokio_util::sync::CancellationToken::new())
                .await
                .expect("farm");
            let tip = from.chain().tip().hash;
            wait_for("the block crosses the kept connection", 10, || async { (to.chain().tip().hash == tip).then_some(()) }).await;
        }
        for n in [a, b] {
            n.shutdown().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_reconnects_from_the_address_book_and_keeps_bans() {
    let t = tempfile::tempdir().unwrap();
    let b = start(&t.path().join("b"), |_| {}).await;
    let x = start(&t.path().join("x"), |_| {}).await;
    let a = start(&t.path().join("a"), |c| c.peers = vec![b.p2p_addr().to_string()]).await;
    wait_peers(&a, 1).await;
    a.p2p().ban(cairn_p2p::ports::BanTarget::Node(x.node_id()), Duration::from_secs(3600), "test").await;
    a.shutdown().await;
    // No --peers this time: the persisted book brings B back; X stays banned.
    let a = start(&t.path().join("a"), |_| {}).await;
    wait_for("A reconnects to B", 20, || async { a.p2p().peers().iter().any(|p| p.node_id == b.node_id()).then_some(()) }).await;
    assert_eq!(a.p2p().bans().len(), 1);
    assert_eq!(refused(x.p2p().connect(&a.p2p_addr().to_string()).await), (RejectReason::Banned, true));
    for n in [a, b, x] {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_raw_client_is_closed_and_penalised_while_others_are_served() {
    let t = tempfile::tempdir().unwrap();
    let node = start(&t.path().join("n"), |_| {}).await;
    let friend = start(&t.path().join("f"), |c| c.peers = vec![]).await;
    friend.p2p().connect(&node.p2p_addr().to_string()).await.unwrap();

    // An unsolicited address list is ignored and penalised; the connection stays.
    let mut p = RawPeer::connect(&node).await;
    let fake = cairn_p2p::wire::PeerAddress { node_id: None, addr: "127.0.0.1:1".parse().unwrap() };
    p.frame(&cairn_p2p::wire::encode(&Message::Peers(vec![fake]))).await;
    wait_for("unsolicited peers penalised", 10, || async { (node.p2p().score(&p.id) >= 10).then_some(()) }).await;
    assert!(node.p2p().peers().iter().any(|x| x.node_id == p.id), "penalty alone does not disconnect");
    drop(p);

    let oversized = 0x7fff_ffffu32.to_be_bytes().to_vec();
    let garbage = vec![0xffu8; 64];
    let unknown_variant = vec![200u8, 1, 2, 3];
    let second_hello = cairn_p2p::wire::encode(&Message::HelloAck).to_vec();
    for (name, raw, framed) in [
        ("oversized length prefix", oversized, false),
        ("garbage", garbage, true),
        ("unknown message type", unknown_variant, true),
        ("second handshake", second_hello, true),
    ] {
        let mut p = RawPeer::connect(&node).await;
        wait_for("raw peer registered", 10, || async { node.p2p().peers().iter().any(|x| x.node_id == p.id).then_some(()) }).await;
        if framed {
            p.frame(&raw).await;
        } else {
            let _ = p.send.write_all(&raw).await;
            let _ = p.send.flush().await;
        }
        p.closed_within(10).await;
        assert!(node.p2p().score(&p.id) >= 50, "{name}: not penalised");
        wait_for("raw peer dropped", 10, || async { (!node.p2p().peers().iter().any(|x| x.node_id == p.id)).then_some(()) }).await;
        // The node still serves its honest peer and its RPC.
        assert!(node.p2p().peers().iter().any(|x| x.node_id == friend.node_id()), "{name}: honest peer lost");
    }
    let m = {
        let mut s = String::new();
        node.p2p().render_metrics(&mut s);
        s
    };
    assert!(m.contains("cairn_p2p_misbehaviour_total{kind=\"oversized_frame\"} 1"), "{m}");
    // An oversized frame, garbage and an unknown message type each ban (100 points); a second
    // handshake (50) only disconnects.
    assert!(m.contains("cairn_p2p_bans_total 3"), "undecodable frames ban: {m}");
    for n in [node, friend] {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_peer_is_dropped_by_the_heartbeat() {
    let t = tempfile::tempdir().unwrap();
    let node = start(&t.path().join("n"), |_| {}).await;
    let p = RawPeer::connect(&node).await;
    wait_for("raw peer registered", 10, || async { node.p2p().peers().iter().any(|x| x.node_id == p.id).then_some(()) }).await;
    // The raw peer never answers pings (QUIC keep-alives still flow): the node drops it after
    // its ping timeout (3 s in the test config).
    let started = std::time::Instant::now();
    wait_for("silent peer dropped", 15, || async { (!node.p2p().peers().iter().any(|x| x.node_id == p.id)).then_some(()) }).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_travel_in_the_user_agent_to_the_peer_list() {
    let t = tempfile::tempdir().unwrap();
    let a = start(&t.path().join("a"), |c| c.p2p.name = Some("alice".into())).await;
    let b = start(&t.path().join("b"), |c| {
        c.p2p.name = Some("bob.2".into());
        c.peers = vec![a.p2p_addr().to_string()];
    })
    .await;
    // An unnamed node: no name anywhere (JSON null).
    let c = start(&t.path().join("c"), |c| c.peers = vec![a.p2p_addr().to_string()]).await;
    wait_peers(&a, 2).await;
    wait_peers(&b, 1).await;
    wait_peers(&c, 1).await;
    let rpc = |n: &Node| crate::support::Rpc::new(format!("http://{}", n.rpc_addr()));
    let names = |v: &serde_json::Value| -> Vec<(String, serde_json::Value)> {
        v["peers"].as_array().unwrap().iter().map(|p| (p["node_id"].as_str().unwrap().to_string(), p["name"].clone())).collect()
    };
    let (_, v) = rpc(&a).get("/p2p/peers").await;
    let seen = names(&v);
    assert!(seen.contains(&(b.node_id().to_string(), "bob.2".into())), "{v}");
    assert!(seen.contains(&(c.node_id().to_string(), serde_json::Value::Null)), "{v}");
    let bob = v["peers"].as_array().unwrap().iter().find(|p| p["name"] == "bob.2").unwrap();
    assert_eq!(bob["user_agent"], format!("cairn/{} (bob.2)", env!("CARGO_PKG_VERSION")));
    for n in [&b, &c] {
        let (_, v) = rpc(n).get("/p2p/peers").await;
        assert_eq!(names(&v), vec![(a.node_id().to_string(), "alice".into())], "{v}");
    }
    assert_eq!(b.p2p().peers()[0].name.as_deref(), Some("alice"));
    for (n, name) in [(&a, serde_json::json!("alice")), (&b, serde_json::json!("bob.2")), (&c, serde_json::Value::Null)] {
        let (_, v) = rpc(n).get("/status").await;
        assert_eq!(v["name"], name, "{v}");
    }
    for n in [a, b, c] {
        n.shutdown().await;
    }
}
