//! Gossip and catch-up sync between real in-process nodes: a line of nodes, a fresh node
//! catching up on 2000 blocks, a stalling peer, a partition healing, an invalid block.

use std::path::Path;

use cairn::Node;
use cairn::config::NodeConfig;
use cairn::farm::farmer::farm_blocks;
use cairn_chain::{AccountSource, Address, Transaction};
use tokio_util::sync::CancellationToken;

use crate::support::{dev, devnet_genesis, wait_for};

async fn start(dir: &Path, peers: Vec<String>) -> Node {
    let mut c = NodeConfig::for_tests(dir.join("data"));
    c.peers = peers;
    Node::start(c).await.expect("node starts")
}

async fn farm(n: &Node, count: u64, farmer: Address) {
    farm_blocks(n.chain(), farmer, count, 1, &CancellationToken::new()).await.expect("farm");
}

async fn send(n: &Node, key: u32, to: Address, amount: u64) -> cairn_chain::TxId {
    let k = dev(key);
    let next = n.chain().account(k.address()).await.unwrap().next_nonce;
    let tx = Transaction::signed(&k, devnet_genesis(), to, amount, 1, next);
    n.chain().submit_tx(tx).await.unwrap().expect("tx accepted")
}

async fn same_tip(nodes: &[&Node], secs: u64) {
    wait_for("equal tips", secs, || async {
        let t = nodes[0].chain().tip();
        nodes.iter().all(|n| n.chain().tip() == t).then_some(())
    })
    .await;
}

async fn balance(n: &Node, a: Address) -> u64 {
    n.chain().account(a).await.unwrap().account.balance
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn line_of_three_shares_blocks_and_transactions() {
    let t = tempfile::tempdir().unwrap();
    let a = start(&t.path().join("a"), vec![]).await;
    let b = start(&t.path().join("b"), vec![a.p2p_addr().to_string()]).await;
    let c = start(&t.path().join("c"), vec![b.p2p_addr().to_string()]).await;
    wait_for("line connected", 20, || async { (b.p2p().peer_count() == 2).then_some(()) }).await;
    let farmer = Address([0xfa; 32]);
    farm(&a, 1, farmer).await;
    same_tip(&[&a, &b, &c], 20).await;
    // A transaction sent at C is farmed into a block at A.
    let to = Address([0x70; 32]);
    let id = send(&c, 3, to, 4242).await;
    wait_for("tx reaches A", 20, || async { a.chain().tx_status(id).await.unwrap().map(|_| ()) }).await;
    farm(&a, 1, farmer).await;
    same_tip(&[&a, &b, &c], 20).await;
    for n in [&a, &b, &c] {
        assert_eq!(balance(n, to).await, 4242);
        assert_eq!(n.chain().tip().height, 2);
    }
    // Every metric line is present (duplicates are counted when gossip crosses).
    let mut m = String::new();
    b.p2p().render_metrics(&mut m);
    assert!(m.contains("cairn_p2p_duplicate_blocks_total") && m.contains("cairn_p2p_duplicate_transactions_total"), "{m}");
    // The two new blocks reached B and C as announcements: their journey is in the histograms.
    for n in [&b, &c] {
        let mut m = String::new();
        n.p2p().render_metrics(&mut m);
        for h in ["cairn_block_propagation_seconds_count 2", "cairn_block_announce_to_accept_seconds_count 2"] {
            assert!(m.contains(h), "no {h} in:\n{m}");
        }
    }
    for n in [a, b, c] {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_node_catches_up_on_2000_blocks_with_transactions() {
    let t = tempfile::tempdir().unwrap();
    let a = start(&t.path().join("a"), vec![]).await;
    let farmer = Address([0xfa; 32]);
    let recipients: Vec<Address> = (0..4u8).map(|i| Address([i + 1; 32])).collect();
    for i in 0..2000u64 {
        if i % 4 == 0 {
            for (k, to) in recipients.iter().enumerate() {
                send(&a, k as u32, *to, 1 + i).await;
            }
        }
        farm(&a, 1, farmer).await;
    }
    assert_eq!(a.chain().tip().height, 2000);
    let d = start(&t.path().join("d"), vec![a.p2p_addr().to_string()]).await;
    // It reports syncing while it catches up (sampled: it may finish between two looks).
    let mut saw_syncing = false;
    wait_for("D at A's tip", 120, || {
        let (a, d) = (&a, &d);
        saw_syncing |= d.p2p().is_syncing();
        async move { (d.chain().tip() == a.chain().tip()).then_some(()) }
    })
    .await;
    assert!(saw_syncing, "D never reported syncing");
    wait_for("sync finished", 10, || async { (!d.p2p().is_syncing()).then_some(()) }).await;
    let mut addrs = recipients.clone();
    addrs.push(farmer);
    addrs.extend((0..4).map(|k| dev(k).address()));
    for x in addrs {
        assert_eq!(a.chain().account(x).await.unwrap().account, d.chain().account(x).await.unwrap().account);
    }
    for n in [a, d] {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_heals_onto_the_most_work_chain() {
    let t = tempfile::tempdir().unwrap();
    let a = start(&t.path().join("a"), vec![]).await;
    let b = start(&t.path().join("b"), vec![a.p2p_addr().to_string()]).await;
    let c = start(&t.path().join("c"), vec![]).await;
    let d = start(&t.path().join("d"), vec![c.p2p_addr().to_string()]).await;
    wait_for("pairs connected", 20, || async { (a.p2p().peer_count() == 1 && c.p2p().peer_count() == 1).then_some(()) }).await;
    // Group {A,B} farms 3 blocks including a transfer; group {C,D} farms 6.
    let to = Address([0x77; 32]);
    let id = send(&a, 5, to, 999).await;
    farm(&a, 3, Address([0xaa; 32])).await;
    farm(&c, 6, Address([0xcc; 32])).await;
    same_tip(&[&a, &b], 20).await;
    same_tip(&[&c, &d], 20).await;
    assert_eq!(balance(&a, to).await, 999);
    // Heal: everyone converges on C's heavier chain; A's transfer returns to the mempool.
    b.p2p().connect(&d.p2p_addr().to_string()).await.unwrap();
    same_tip(&[&a, &b, &c, &d], 30).await;
    assert_eq!(a.chain().tip().height, 6);
    assert_eq!(balance(&a, to).await, 0);
    wait_for("reorged-out tx back in a mempool", 20, || async {
        matches!(a.chain().tx_status(id).await.unwrap(), Some(cairn::chain_service::TxStatus::Pending(_))).then_some(())
    })
    .await;
    // Relayed (in a batch, within 100 ms a hop) to C, which re-includes it in its next block,
    // and every node agrees.
    wait_for("the tx relayed to C", 20, || async {
        matches!(c.chain().tx_status(id).await.unwrap(), Some(cairn::chain_service::TxStatus::Pending(_))).then_some(())
    })
    .await;
    farm(&c, 1, Address([0xcc; 32])).await;
    wait_for("re-included everywhere", 30, || async {
        let mut ok = true;
        for n in [&a, &b, &c, &d] {
            ok &= balance(n, to).await == 999;
        }
        ok.then_some(())
    })
    .await;
    // Balances equal a fresh replay of the winning chain.
    let replay = tempfile::tempdir().unwrap();
    let rpc = crate::support::Rpc::new(format!("http://{}", b.rpc_addr()));
    let (tip, store) = crate::support::replay_into(&rpc, replay.path()).await;
    assert_eq!(tip, b.chain().tip().hash);
    for x in [to, Address([0xaa; 32]), Address([0xcc; 32]), dev(5).address()] {
        assert_eq!(store.account(&x).unwrap(), b.chain().account(x).await.unwrap().account);
    }
    for n in [a, b, c, d] {
        n.shutdown().await;
    }
}

/// Signs, roots and mines a block on `n`'s tip with `txs` (after `edit` changes the header).
fn block_on(n: &Node, txs: Vec<Transaction>, header: cairn_chain::Header) -> cairn_chain::Block {
    let _ = n;
    let mut h = header;
    h.tx_root = cairn_chain::block::merkle_root(&txs.iter().map(Transaction::id).collect::<Vec<_>>());
    let h = cairn::farm::miner::mine(&h, 1, &std::sync::atomic::AtomicBool::new(false)).unwrap();
    cairn_chain::Block { header: h, transactions: txs }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_serving_invalid_blocks_is_banned_and_nothing_is_stored() {
    let t = tempfile::tempdir().unwrap();
    let n = start(&t.path().join("n"), vec![]).await;
    farm(&n, 2, Address([0xfa; 32])).await;
    let tip = n.chain().tip();
    let template = n.chain().template(Address([0xbb; 32])).await.unwrap().header;
    let good_tx = Transaction::signed(&dev(0), devnet_genesis(), Address([1; 32]), 5, 1, 0);

    let mut bad_proof = block_on(&n, vec![], template.clone());
    while bad_proof.header.target.is_met_by(&bad_proof.hash()) {
        bad_proof.header.nonce += 1;
    }
    let mut forged = good_tx.clone();
    forged.amount = 6;
    let bad_sig = block_on(&n, vec![forged], template.clone());
    let mut bad_root = block_on(&n, vec![good_tx.clone()], template.clone());
    bad_root.header.tx_root = cairn_chain::Hash([3; 32]);
    bad_root.header = cairn::farm::miner::mine(&bad_root.header, 1, &std::sync::atomic::AtomicBool::new(false)).unwrap();

    for (name, block) in [("bad proof", bad_proof), ("bad signature", bad_sig), ("wrong merkle root", bad_root)] {
        let mut p = crate::support::RawPeer::connect(&n).await;
        wait_for("raw peer registered", 10, || async { n.p2p().peers().iter().any(|x| x.node_id == p.id).then_some(()) }).await;
        let msg = cairn_p2p::wire::Message::BlockData(Some(bytes::Bytes::from(block.encode())));
        p.frame(&cairn_p2p::wire::encode(&msg)).await;
        p.closed_within(10).await;
        assert!(n.p2p().bans().iter().any(|b| b.target == cairn_p2p::ports::BanTarget::Node(p.id)), "{name}: sender not banned");
        assert_eq!(n.chain().tip(), tip, "{name}: chain moved");
        assert!(!n.chain().has_block(block.hash()).await.unwrap(), "{name}: invalid block stored");
    }
    n.shutdown().await;
}

/// Blocks that arrive before their parent wait in the bounded orphan pool and connect, in
/// order, once the missing parent arrives. (Each is announced and asked for: an unrequested
/// block is taken only if it has more work than our tip.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphan_blocks_wait_for_their_parent() {
    use cairn_p2p::wire::{BlockId, Message, decode, encode};
    let t = tempfile::tempdir().unwrap();
    let a = start(&t.path().join("a"), vec![]).await;
    farm(&a, 3, Address([0xfa; 32])).await;
    let mut blocks = Vec::new();
    for h in 1..=3 {
        blocks.push(a.chain().block_at(h).await.unwrap().unwrap());
    }
    let d = start(&t.path().join("d"), vec![]).await;
    let mut p = crate::support::RawPeer::connect(&d).await;
    wait_for("raw peer registered", 10, || async { d.p2p().peers().iter().any(|x| x.node_id == p.id).then_some(()) }).await;
    let data = |b: &cairn_chain::Block| encode(&Message::BlockData(Some(bytes::Bytes::from(b.encode()))));
    for b in [&blocks[2], &blocks[1]] {
        p.frame(&encode(&Message::NewBlock { height: b.header.height, hash: b.hash() })).await;
        tokio::time::timeout(std::time::Duration::from_secs(10), async {
            loop {
                match decode(&p.read_frame().await) {
                    Ok(Message::GetBlock(BlockId::Hash(h))) if h == b.hash() => return,
                    Ok(Message::Ping(n)) => p.frame(&encode(&Message::Pong(n))).await,
                    _ => {}
                }
            }
        })
        .await
        .expect("the announced block is asked for");
        p.frame(&data(b)).await;
    }
    wait_for("two orphans held", 10, || async { (d.p2p().orphan_count() == 2).then_some(()) }).await;
    assert_eq!(d.chain().tip().height, 0);
    // Unrequested, but with more work than our tip: taken.
    p.frame(&data(&blocks[0])).await;
    wait_for("orphans connected", 10, || async { (d.chain().tip().hash == blocks[2].hash()).then_some(()) }).await;
    assert_eq!(d.p2p().orphan_count(), 0);
    assert!(d.p2p().bans().is_empty(), "an honest out-of-order sender is not banned");
    for n in [a, d] {
        n.shutdown().await;
    }
}

/// The download path: a peer whose headers are valid but whose body breaks a rule (a forged
/// signature) is banned when the import checks it; nothing is stored and the chain stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_serving_an_invalid_body_during_sync_is_banned() {
    use cairn_p2p::wire::{Message, decode, encode};
    let t = tempfile::tempdir().unwrap();
    let d = start(&t.path().join("d"), vec![]).await;
    let tip = d.chain().tip();
    let template = d.chain().template(Address([0xbb; 32])).await.unwrap().header;
    let mut forged = Transaction::signed(&dev(0), devnet_genesis(), Address([1; 32]), 5, 1, 0);
    forged.amount = 6;
    let bad = block_on(&d, vec![forged], template);
    let mut p = crate::support::RawPeer::connect_claiming(&d, Some([0x7f; 32])).await;
    header_request(&mut p).await;
    let status = Message::Status { best_height: 1, best_hash: bad.hash(), total_work: [0x7f; 32] };
    p.frame(&encode(&status)).await;
    p.frame(&encode(&Message::Headers(vec![bytes::Bytes::copy_from_slice(&bad.header.encode())]))).await;
    let asked = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            if let Ok(Message::GetBlocks(h)) = decode(&p.read_frame().await) {
                return h;
            }
        }
    })
    .await
    .expect("the body was asked for");
    assert_eq!(asked, vec![bad.hash()]);
    p.frame(&encode(&Message::Blocks(vec![bytes::Bytes::from(bad.encode())]))).await;
    p.closed_within(10).await;
    assert!(d.p2p().bans().iter().any(|b| b.target == cairn_p2p::ports::BanTarget::Node(p.id)), "server of an invalid body not banned");
    assert_eq!(d.chain().tip(), tip, "chain moved");
    assert!(!d.chain().has_block(bad.hash()).await.unwrap(), "invalid block stored");
    d.shutdown().await;
}

/// Waits for the node to ask `p` (which claims more work) for headers.
async fn header_request(p: &mut crate::support::RawPeer) {
    let asked = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            if let Ok(cairn_p2p::wire::Message::GetHeaders { .. }) = cairn_p2p::wire::decode(&p.read_frame().await) {
                return;
            }
        }
    })
    .await;
    assert!(asked.is_ok(), "no header request for a peer claiming more work");
}

/// A peer that claims more work than it can show (empty header answers) is penalised for
/// each request it costs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_claiming_work_it_cannot_show_is_penalised() {
    use cairn_p2p::wire::{Message, encode};
    let t = tempfile::tempdir().unwrap();
    let d = start(&t.path().join("d"), vec![]).await;
    let mut p = crate::support::RawPeer::connect_claiming(&d, Some([0x7f; 32])).await;
    header_request(&mut p).await;
    p.frame(&encode(&Message::Headers(Vec::new()))).await;
    wait_for("liar penalised", 10, || async { (d.p2p().score(&p.id) > 0).then_some(()) }).await;
    d.shutdown().await;
}

/// Headers are checked before any body is fetched: a header with a valid proof but a target
/// the spec does not allow (the devnet pins its target) bans the sender; nothing is queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_sending_a_header_with_a_wrong_target_is_banned_before_any_body_is_fetched() {
    use cairn_p2p::wire::{Message, encode};
    let t = tempfile::tempdir().unwrap();
    let d = start(&t.path().join("d"), vec![]).await;
    let mut header = d.chain().template(Address([0xbb; 32])).await.unwrap().header;
    header.target = cairn_chain::Target::MAX; // any hash meets it: a proof that costs nothing
    let mut p = crate::support::RawPeer::connect_claiming(&d, Some([0x7f; 32])).await;
    header_request(&mut p).await;
    p.frame(&encode(&Message::Headers(vec![bytes::Bytes::copy_from_slice(&header.encode())]))).await;
    p.closed_within(10).await;
    assert!(d.p2p().bans().iter().any(|b| b.target == cairn_p2p::ports::BanTarget::Node(p.id)), "sender of an invalid header not banned");
    wait_for("nothing of the invalid header queued", 10, || async { (!d.p2p().is_syncing()).then_some(()) }).await;
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_completes_when_one_of_three_peers_stops_answering() {
    let t = tempfile::tempdir().unwrap();
    let a = start(&t.path().join("a"), vec![]).await;
    farm(&a, 300, Address([0xfa; 32])).await;
    let b = start(&t.path().join("b"), vec![a.p2p_addr().to_string()]).await;
    same_tip(&[&a, &b], 60).await;
    let d = start(&t.path().join("d"), vec![]).await;
    // A peer that claims far more work and then never answers a request.
    let silent = crate::support::RawPeer::connect_claiming(&d, Some([0x7f; 32])).await;
    d.p2p().connect(&a.p2p_addr().to_string()).await.unwrap();
    d.p2p().connect(&b.p2p_addr().to_string()).await.unwrap();
    same_tip(&[&a, &d], 60).await;
    // The silent peer is dropped for stalling (its sync request timed out).
    wait_for("silent peer dropped", 20, || async { (!d.p2p().peers().iter().any(|x| x.node_id == silent.id)).then_some(()) }).await;
    wait_for("not syncing", 20, || async { (!d.p2p().is_syncing()).then_some(()) }).await;
    for n in [a, b, d] {
        n.shutdown().await;
    }
}

/// Parallel download with reassignment: D syncs from A, B (a real process) and C at once;
/// B is frozen (SIGSTOP) mid-sync, so its ranges stall and go to the others. D completes,
/// drops B, and more than one peer served it blocks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_downloads_from_several_peers_and_reassigns_a_frozen_ones_ranges() {
    let t = tempfile::tempdir().unwrap();
    let farmer = Address([0xfa; 32]);
    let blocks = 20_000;
    let tip = crate::support::prebuild_chain(&t.path().join("a/data/db"), blocks, farmer);
    let a = Node::start(NodeConfig::for_tests(t.path().join("a/data"))).await.unwrap();
    let c = start(&t.path().join("c"), vec![a.p2p_addr().to_string()]).await;
    let (mut b, b_url, b_peer) = crate::support::spawn_node_addrs(&t.path().join("b/data"), &["--peers", &a.p2p_addr().to_string()]);
    let b_rpc = crate::support::Rpc::new(b_url);
    wait_for("B and C at A's tip", 120, || {
        let b_rpc = b_rpc.clone();
        let c_tip = c.chain().tip().hash;
        async move { (c_tip == tip && b_rpc.try_get("/status").await?.1["best_hash"].as_str()? == tip.to_string()).then_some(()) }
    })
    .await;
    let b_id: cairn_p2p::NodeId = b_peer.split('@').next().unwrap().parse().unwrap();
    let d = start(&t.path().join("d"), vec![]).await;
    for p in [a.p2p_addr().to_string(), c.p2p_addr().to_string(), b_peer.clone()] {
        d.p2p().connect(&p).await.unwrap();
    }
    // Freeze B as soon as the sync is under way (or at once if D got nothing yet).
    wait_for("D syncing", 60, || async { (d.p2p().is_syncing() || d.chain().tip().height > 0).then_some(()) }).await;
    let frozen_at = d.chain().tip().height;
    let stop = std::process::Command::new("kill").args(["-STOP", &b.id().to_string()]).status().unwrap();
    assert!(stop.success());
    wait_for("D at A's tip", 120, || async { (d.chain().tip().hash == tip).then_some(()) }).await;
    assert!(frozen_at < blocks, "D finished before B was frozen");
    // B stalled and was dropped; A and C both served blocks (a good share each).
    wait_for("B dropped", 30, || async { (!d.p2p().peers().iter().any(|p| p.node_id == b_id)).then_some(()) }).await;
    let served: Vec<u64> = d.p2p().peers().iter().map(|p| p.blocks_served).collect();
    assert!(served.iter().filter(|b| **b >= 1000).count() >= 2, "blocks came from one peer only: {served:?}");
    wait_for("not syncing", 20, || async { (!d.p2p().is_syncing()).then_some(()) }).await;
    let _ = std::process::Command::new("kill").args(["-CONT", &b.id().to_string()]).status();
    b.kill().unwrap();
    b.wait().unwrap();
    for n in [a, c, d] {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_killed_mid_sync_resumes_and_completes() {
    let t = tempfile::tempdir().unwrap();
    let farmer = Address([0xfa; 32]);
    let blocks = 6000;
    let tip = crate::support::prebuild_chain(&t.path().join("a/data/db"), blocks, farmer);
    let a = Node::start(NodeConfig::for_tests(t.path().join("a/data"))).await.unwrap();
    assert_eq!(a.chain().tip().hash, tip);
    let d_data = t.path().join("d/data");
    let peers = a.p2p_addr().to_string();
    let (mut child, url) = crate::support::spawn_node(&d_data, &["--peers", &peers]);
    let rpc = crate::support::Rpc::new(url);
    let height = |rpc: crate::support::Rpc| async move { rpc.try_get("/status").await.and_then(|(_, v)| v["height"].as_u64()) };
    let at_kill = wait_for("D part-way through the sync", 60, || {
        let rpc = rpc.clone();
        async move { height(rpc).await.filter(|h| *h >= 300) }
    })
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(at_kill < blocks, "D finished before it could be killed (height {at_kill})");
    // Restart on the same data dir: it resumes from where it was and completes.
    let (mut child, url) = crate::support::spawn_node(&d_data, &["--peers", &peers]);
    let rpc = crate::support::Rpc::new(url);
    let resumed = height(rpc.clone()).await.unwrap();
    assert!(resumed >= at_kill.saturating_sub(64), "restarted at {resumed}, killed at {at_kill}");
    wait_for("D at A's tip", 120, || {
        let rpc = rpc.clone();
        async move { (rpc.try_get("/status").await?.1["best_hash"].as_str()? == tip.to_string()).then_some(()) }
    })
    .await;
    let (_, v) = rpc.get(&format!("/accounts/{farmer}")).await;
    assert_eq!(v["balance"].as_u64().unwrap(), balance(&a, farmer).await);
    child.kill().unwrap();
    child.wait().unwrap();
    a.shutdown().await;
}
