//! Peer admission end to end, over real QUIC from distinct loopback addresses (127.0.0.x):
//! eviction of idle identities for a newcomer, the per-IP limit with its typed refusal, a
//! banned node's address refused before its handshake, and the operator's bans over the RPC.

use std::path::Path;
use std::time::Duration;

use cairn::Node;
use cairn::config::NodeConfig;
use cairn_p2p::metrics::Side;
use cairn_p2p::wire::RejectReason;
use serde_json::json;

use crate::support::{RawPeer, Rpc, wait_for};

async fn start(dir: &Path, edit: impl FnOnce(&mut NodeConfig)) -> Node {
    let mut c = NodeConfig::for_tests(dir.join("data"));
    // Raw peers do not answer pings: keep them long enough to matter.
    c.p2p.ping_interval = Duration::from_secs(30);
    c.p2p.ping_timeout = Duration::from_secs(60);
    edit(&mut c);
    Node::start(c).await.expect("node starts")
}

/// 64 idle identities from one address hold every inbound slot; an honest newcomer from
/// another address still gets in, by evicting the youngest of the crowded group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_identities_give_way_to_a_newcomer() {
    let t = tempfile::tempdir().unwrap();
    let hub = start(&t.path().join("hub"), |c| c.p2p.max_inbound = 64).await;
    let mut idle = Vec::new();
    for i in 0..64 {
        idle.push(RawPeer::attempt(&hub, "127.0.0.1", None).await.unwrap_or_else(|e| panic!("idle identity {i}: {e}")));
    }
    wait_for("64 inbound", 20, || async { (hub.p2p().peer_count() == 64).then_some(()) }).await;
    let newcomer = start(&t.path().join("new"), |c| c.p2p_addr = "127.0.0.2:0".parse().unwrap()).await;
    let id = newcomer.p2p().connect(&hub.p2p_addr().to_string()).await.expect("the newcomer gets in");
    assert_eq!(id, hub.node_id());
    wait_for("the hub holds the newcomer", 10, || async { hub.p2p().peers().iter().any(|p| p.node_id == newcomer.node_id()).then_some(()) }).await;
    assert_eq!(hub.p2p().peer_count(), 64, "one idle identity gave way");
    assert_eq!(hub.p2p().metrics().evictions(), 1);
    // The youngest identity was the one evicted, told so.
    let last = idle.last().expect("idle peers");
    last.closed_within(10).await;
    match last.conn.close_reason() {
        Some(quinn::ConnectionError::ApplicationClosed(c)) => {
            assert_eq!(c.error_code, RejectReason::Evicted.close_code());
            assert!(String::from_utf8_lossy(&c.reason).starts_with("evicted"), "{:?}", c.reason);
        }
        other => panic!("evicted without a reason: {other:?}"),
    }
    let metrics = Rpc::new(format!("http://{}", hub.rpc_addr())).http_text("/metrics").await;
    assert!(metrics.contains("cairn_p2p_evictions_total 1"), "{metrics}");
    assert!(metrics.contains("cairn_p2p_inbound_by_group{group=\"127.0.0.0/16\"} 64"), "{metrics}");
    newcomer.shutdown().await;
    hub.shutdown().await;
}

/// At most four inbound connections from one IP: the fifth is refused with the typed reason;
/// another IP is still welcome. With the default settings: only 127.0.0.1 (a devnet's
/// address) is exempt, until `exempt_loopback` is turned off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifth_connection_from_one_ip_is_refused_with_a_typed_reason() {
    let t = tempfile::tempdir().unwrap();
    let hub = start(&t.path().join("hub"), |_| {}).await;
    let mut held = Vec::new();
    for i in 0..4 {
        held.push(RawPeer::attempt(&hub, "127.0.0.2", None).await.unwrap_or_else(|e| panic!("connection {i}: {e}")));
    }
    let fifth = RawPeer::attempt(&hub, "127.0.0.2", None).await.err().expect("the fifth is refused");
    assert!(fifth.starts_with("too_many_from_address"), "{fifth}");
    assert!(fifth.contains("127.0.0.2"), "{fifth}");
    assert!(hub.p2p().metrics().rejections(RejectReason::TooManyFromAddress, Side::Local) >= 1);
    let _other = RawPeer::attempt(&hub, "127.0.0.3", None).await.expect("another IP gets in");
    wait_for("five held", 10, || async { (hub.p2p().peer_count() == 5).then_some(()) }).await;
    // One leaves: room again for that IP.
    let gone = held.pop().expect("held");
    gone.conn.close(0u32.into(), b"bye");
    wait_for("the hub saw it go", 10, || async { (hub.p2p().peer_count() == 4).then_some(()) }).await;
    RawPeer::attempt(&hub, "127.0.0.2", None).await.expect("room again");
    // 127.0.0.1 is exempt by default...
    let mut local = Vec::new();
    for i in 0..6 {
        local.push(RawPeer::attempt(&hub, "127.0.0.1", None).await.unwrap_or_else(|e| panic!("exempt connection {i}: {e}")));
    }
    hub.shutdown().await;
    // ...and counts like any host without the exemption.
    let strict = start(&t.path().join("strict"), |c| c.p2p.exempt_loopback = false).await;
    let mut held = Vec::new();
    for i in 0..4 {
        held.push(RawPeer::attempt(&strict, "127.0.0.1", None).await.unwrap_or_else(|e| panic!("connection {i}: {e}")));
    }
    let fifth = RawPeer::attempt(&strict, "127.0.0.1", None).await.err().expect("the fifth is refused");
    assert!(fifth.starts_with("too_many_from_address"), "{fifth}");
    strict.shutdown().await;
}

/// A node banned for misbehaviour is banned with its IP: back with a fresh key from the same
/// address, it is refused before its handshake completes, while other addresses get in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_banned_node_with_a_fresh_key_is_refused_by_address() {
    let t = tempfile::tempdir().unwrap();
    let hub = start(&t.path().join("hub"), |_| {}).await;
    let mut bad = RawPeer::attempt(&hub, "127.0.0.4", None).await.expect("connects");
    wait_for("registered", 10, || async { (hub.p2p().peer_count() == 1).then_some(()) }).await;
    // An undecodable message bans at once.
    bad.frame(&[0xff; 16]).await;
    bad.closed_within(10).await;
    let bans = hub.p2p().bans();
    assert!(bans.iter().any(|b| b.target == cairn_p2p::ports::BanTarget::Node(bad.id)), "{bans:?}");
    assert!(bans.iter().any(|b| b.target.to_string() == "127.0.0.4"), "the IP is banned too: {bans:?}");
    let again = RawPeer::attempt(&hub, "127.0.0.4", None).await.err().expect("refused");
    assert!(again.starts_with("transport"), "refused before TLS, not after: {again}");
    assert_eq!(hub.p2p().peer_count(), 0);
    RawPeer::attempt(&hub, "127.0.0.5", None).await.expect("another address is welcome");
    hub.shutdown().await;
}

/// The operator bans and lifts bans over the RPC: a node ID (cut off at once, kept out), an
/// address (even loopback), a network; bad input is a 400 that changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_bans_over_the_rpc() {
    let t = tempfile::tempdir().unwrap();
    let hub = start(&t.path().join("hub"), |_| {}).await;
    let rpc = Rpc::new(format!("http://{}", hub.rpc_addr()));
    let peer = start(&t.path().join("p"), |c| c.peers = vec![hub.p2p_addr().to_string()]).await;
    wait_for("peer connected", 20, || async { (hub.p2p().peer_count() == 1).then_some(()) }).await;
    // Bad input: 400 with a code, nothing banned.
    for (body, code) in [
        (json!({"ip": "127.0.0"}), "invalid_ip"),
        (json!({"ip": "10.0.0.0/33"}), "invalid_ip"),
        (json!({"node_id": "zz"}), "invalid_node_id"),
        (json!({"node_id": peer.node_id(), "ip": "127.0.0.9"}), "invalid_request"),
        (json!({}), "invalid_request"),
        (json!({"ip": "127.0.0.9", "duration_s": -5}), "invalid_duration"),
        (json!({"ip": "127.0.0.9", "duration_s": 0}), "invalid_duration"),
        (json!({"ip": "127.0.0.9", "duration_s": "1h"}), "invalid_duration"),
        (json!({"ip": "127.0.0.9", "extra": 1}), "invalid_request"),
    ] {
        let (status, v) = rpc.post("/p2p/bans", &body).await;
        assert_eq!((status, v["error"]["code"].as_str()), (400, Some(code)), "{body}: {v}");
    }
    assert_eq!(rpc.get("/p2p/bans").await.1["count"], 0, "nothing changed");
    for (path, code) in [("/p2p/bans/not-an-ip", 400), ("/p2p/bans/127.0.0.0%2F99", 400), ("/p2p/bans/127.0.0.9", 404)] {
        let r = reqwest::Client::new().delete(format!("{}{path}", rpc.base)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), code, "{path}");
    }
    // Ban the peer's node ID: cut off at once, and its redials refused.
    let (status, v) = rpc.post("/p2p/bans", &json!({"node_id": peer.node_id(), "duration_s": 600, "reason": "testing"})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["disconnected"], 1);
    assert_eq!(v["ban"]["reason"], "testing");
    wait_for("peer cut off", 10, || async { (hub.p2p().peer_count() == 0).then_some(()) }).await;
    // An address ban, and a network ban given as a CIDR.
    let (status, v) = rpc.post("/p2p/bans", &json!({"ip": "127.0.0.9"})).await;
    assert_eq!(status, 200, "{v}");
    let (status, _) = rpc.post("/p2p/bans", &json!({"ip": "10.1.2.3/24"})).await;
    assert_eq!(status, 200);
    let (_, list) = rpc.get("/p2p/bans").await;
    assert_eq!(list["count"], 3, "{list}");
    let targets: Vec<String> = list["bans"].as_array().unwrap().iter().map(|b| b["node_id"].as_str().or(b["ip"].as_str()).unwrap().to_string()).collect();
    for want in [peer.node_id().to_string(), "127.0.0.9".into(), "10.1.2.0/24".into()] {
        assert!(targets.contains(&want), "{want} missing: {list}");
    }
    for b in list["bans"].as_array().unwrap() {
        assert!(b["until_ms"].as_u64().is_some() && b["reason"].is_string(), "{b}");
    }
    // The banned address is refused before TLS even on loopback (the operator asked).
    let refused = RawPeer::attempt(&hub, "127.0.0.9", None).await.err().expect("refused");
    assert!(refused.starts_with("transport"), "{refused}");
    // Lift them: the address gets in, and the peer's redial is accepted again.
    for path in ["/p2p/bans/127.0.0.9", "/p2p/bans/10.1.2.0%2F24", &format!("/p2p/bans/{}", peer.node_id())] {
        let r = reqwest::Client::new().delete(format!("{}{path}", rpc.base)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    assert_eq!(rpc.get("/p2p/bans").await.1["count"], 0);
    RawPeer::attempt(&hub, "127.0.0.9", None).await.expect("unbanned address gets in");
    wait_for("the peer is back", 30, || async { hub.p2p().peers().iter().any(|p| p.node_id == peer.node_id()).then_some(()) }).await;
    peer.shutdown().await;
    hub.shutdown().await;
}

/// `DELETE /p2p/peers/{id}` sticks: the node does not redial it (its address is forgotten
/// and its ID refused to our dialer) until the operator adds it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_peer_is_not_redialled_until_added_again() {
    let t = tempfile::tempdir().unwrap();
    // B never dials out: whatever reconnects must be A's doing.
    let b = start(&t.path().join("b"), |c| c.p2p.target_outbound = 0).await;
    let a = start(&t.path().join("a"), |c| c.peers = vec![b.p2p_addr().to_string()]).await;
    wait_for("A–B", 20, || async { (a.p2p().peer_count() == 1).then_some(()) }).await;
    let rpc = Rpc::new(format!("http://{}", a.rpc_addr()));
    let r = reqwest::Client::new().delete(format!("{}/p2p/peers/{}", rpc.base, b.node_id())).send().await.unwrap();
    assert_eq!(r.status(), 200);
    wait_for("A dropped B", 10, || async { (a.p2p().peer_count() == 0).then_some(()) }).await;
    let (_, book) = rpc.get("/p2p/addresses").await;
    assert!(!book.to_string().contains(&b.p2p_addr().to_string()), "B's address is forgotten: {book}");
    // A hears of B's address again (C's peer exchange): its dialer refuses B's node ID.
    let c = start(&t.path().join("c"), |c| c.peers = vec![b.p2p_addr().to_string(), a.p2p_addr().to_string()]).await;
    wait_for("A refused B on its own redial", 30, || async { (a.p2p().metrics().rejections(RejectReason::Disconnected, Side::Local) >= 1).then_some(()) })
        .await;
    assert!(!a.p2p().peers().iter().any(|p| p.node_id == b.node_id() && p.direction == cairn_p2p::Direction::Outbound));
    // Added again by the operator: connected.
    assert_eq!(a.p2p().connect(&b.p2p_addr().to_string()).await.expect("dial"), b.node_id());
    for n in [a, b, c] {
        n.shutdown().await;
    }
}
