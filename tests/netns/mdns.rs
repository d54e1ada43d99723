//! LAN discovery with mDNS: nodes with no `--peers` find each other, ignore other chains,
//! are visible to a third-party client (avahi), rediscover each other after a partition, and
//! stay silent with mDNS turned off.

use crate::harness::{Avahi, Lan, NsNode, P2P_PORT, log_time, say, wait_until};

const DISCOVERED: &str = "cairn_p2p_mdns_discovered_total";

/// Waits until every node is connected to exactly all the others.
fn wait_full_mesh(nodes: &[&NsNode], secs: u64) {
    let ids: Vec<String> = nodes.iter().map(|n| n.node_id()).collect();
    for (i, n) in nodes.iter().enumerate() {
        let mut others: Vec<String> = ids.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, id)| id.clone()).collect();
        others.sort();
        wait_until(&format!("node {} to be connected to all {} others", n.name, others.len()), secs, || (n.peer_ids()? == others).then_some(()));
    }
}

/// Three nodes, `a`, `b`, `c`, with no `--peers`, once each is connected to the other two.
fn three_connected(lan: &mut Lan) -> [NsNode; 3] {
    let nodes = ["a", "b", "c"].map(|name| lan.node(name, &[], &[]));
    wait_full_mesh(&nodes.iter().collect::<Vec<_>>(), 30);
    nodes
}

/// Waits until every node's best block is `best`.
fn wait_same_tip(nodes: &[&NsNode], best: &str, secs: u64) {
    for n in nodes {
        wait_until(&format!("node {} to reach {best}", n.name), secs, || (n.best()? == best).then_some(()));
    }
}

/// Seconds from a node's "advertising" log line to its first "discovered peer" line.
fn first_discovery_secs(n: &NsNode) -> Option<f64> {
    let log = n.log_text();
    let at = |needle: &str| log.lines().find(|l| l.contains(needle)).and_then(log_time);
    let d = at("discovered peer on the LAN")? - at("advertising on the LAN")?;
    Some(if d < 0.0 { d + 86_400.0 } else { d })
}

#[test]
fn three_nodes_without_peers_find_each_other_and_blocks_reach_all() {
    let Some(mut lan) = Lan::new("three_nodes_without_peers_find_each_other_and_blocks_reach_all") else { return };
    let [a, b, c] = three_connected(&mut lan);
    let took = c.started.elapsed().as_secs_f64();
    for n in [&a, &b, &c] {
        // Each found both others itself (not only accepted their dials).
        wait_until(&format!("node {} to discover both others", n.name), 10, || (n.metric(DISCOVERED) >= 2.0).then_some(()));
        let log = n.log_text();
        for other in [&a, &b, &c].iter().filter(|o| o.name != n.name) {
            let line = format!("addr={}:{P2P_PORT}", other.host.ip);
            assert!(
                log.lines().any(|l| l.contains("discovered peer on the LAN") && l.contains(&other.node_id()) && l.contains(&line)),
                "node {} logs discovering {} at its LAN address",
                n.name,
                other.name
            );
        }
    }
    // The last node found the others already up: its figure is the discovery latency itself.
    let first = first_discovery_secs(&c).unwrap_or(f64::NAN);
    say(&format!("figure: the last node to start discovered a peer {first:.2} s after it began advertising; all 3 connected {took:.2} s after it started"));

    let hashes = a.farm(3);
    wait_same_tip(&[&b, &c], hashes.last().unwrap(), 20);
}

#[test]
fn nodes_sharing_a_host_find_each_other_over_loopback() {
    let Some(mut lan) = Lan::new("nodes_sharing_a_host_find_each_other_over_loopback") else { return };
    // No network but loopback: the announcements list 127.0.0.1, heard on our own loopback.
    let host = lan.lone_host();
    let a = lan.node_on(&host, "a", (8080, 9090), &[], &[]);
    let b = lan.node_on(&host, "b", (8081, 9091), &[], &[]);
    wait_full_mesh(&[&a, &b], 30);
    for (n, other, port) in [(&a, &b, 9091), (&b, &a, 9090)] {
        let line = format!("peer={} addr=127.0.0.1:{port}", other.node_id());
        wait_until(&format!("node {} to log discovering {} on loopback", n.name, other.name), 10, || {
            n.log_text().lines().any(|l| l.contains("discovered peer on the LAN") && l.contains(&line)).then_some(())
        });
    }
}

#[test]
fn a_node_of_another_chain_is_never_dialled() {
    let Some(mut lan) = Lan::new("a_node_of_another_chain_is_never_dialled") else { return };
    let spec = lan.foreign_spec();
    let a = lan.node("a", &[], &[]);
    let b = lan.node("b", &[], &[]);
    let f = lan.node("foreign", &["--chain", spec.to_str().unwrap()], &[]);
    wait_full_mesh(&[&a, &b], 30);
    // Everyone heard everyone, and each side ignored the other chain before dialing.
    let wrong_chain = "cairn_p2p_mdns_ignored_total{reason=\"wrong_chain\"}";
    for (n, heard) in [(&a, 1.0), (&b, 1.0), (&f, 2.0)] {
        wait_until(&format!("node {} to ignore {heard} announcement(s) of another chain", n.name), 20, || (n.metric(wrong_chain) >= heard).then_some(()));
    }
    assert_eq!(f.peer_count(), Some(0), "the foreign node has no peers");
    let fid = f.node_id();
    // No handshake with the foreign node was even tried. (a and b may refuse each other's
    // crossing dial as `already_connected`: that is between them, so only chain and genesis
    // refusals count here.)
    for n in [&a, &b, &f] {
        let m = n.metrics();
        for reason in ["wrong_chain", "wrong_genesis"] {
            let refused = format!("cairn_p2p_handshake_rejections_total{{reason=\"{reason}\"");
            assert!(!m.contains(&refused), "node {}: a {reason} handshake was tried:\n{m}", n.name);
        }
        assert!(!n.peer_ids().unwrap().contains(&fid));
    }
    assert!(!f.log_text().contains("refused"), "the foreign node refused or was refused:\n{}", f.log_tail(20));
    assert_eq!(f.metric("cairn_p2p_connections_total"), 0.0);
    assert_eq!(f.metric(DISCOVERED), 0.0);
}

#[test]
fn avahi_browse_sees_the_advertisement_and_its_withdrawal() {
    let test = "avahi_browse_sees_the_advertisement_and_its_withdrawal";
    let Some(mut lan) = Lan::new(test) else { return };
    let mut a = lan.node("a", &["--name", "alice"], &[]);
    let Some(avahi) = Avahi::start(&mut lan, test) else { return };
    let status = a.status();
    let id = status["node_id"].as_str().unwrap().to_string();
    let seen = wait_until("avahi-browse to resolve node a's service", 30, || avahi.find(&id));
    assert_eq!(seen.instance, format!("cairn-{}", &id[..16]));
    assert_eq!((seen.address.as_str(), seen.port), (a.host.ip.to_string().as_str(), P2P_PORT));
    let mut txt = seen.txt.clone();
    txt.sort();
    let mut want = vec![
        format!("chain={}", status["chain_id"].as_str().unwrap()),
        format!("genesis={}", status["genesis_hash"].as_str().unwrap()),
        format!("node={id}"),
        "name=alice".to_string(),
        format!("proto={}", cairn_p2p::config::PROTOCOL_VERSION),
    ];
    want.sort();
    assert_eq!(txt, want, "TXT records");
    assert_eq!(a.metric("cairn_p2p_mdns_advertising"), 1.0);

    // A clean shutdown withdraws the advertisement: avahi forgets it at once, not at TTL expiry.
    assert!(a.stop().success());
    assert!(a.log_text().contains("withdrew the LAN advertisement"), "{}", a.log_tail(10));
    let stopped = std::time::Instant::now();
    wait_until("avahi-browse to stop listing node a", 15, || avahi.find(&id).is_none().then_some(()));
    say(&format!("figure: avahi-browse resolved node a; after SIGTERM it was gone from avahi's listing in {:.2} s", stopped.elapsed().as_secs_f64()));
}

#[test]
fn partition_heals_by_rediscovery_onto_the_most_work_chain() {
    let Some(mut lan) = Lan::new("partition_heals_by_rediscovery_onto_the_most_work_chain") else { return };
    let [a, b, c] = three_connected(&mut lan);
    let base = a.farm(1);
    wait_same_tip(&[&b, &c], &base[0], 20);

    // Cut c off and farm on both sides: c 2 blocks, a (with b) 5, the most work.
    c.host.link(false);
    let cut = std::time::Instant::now();
    let c_tip = c.farm(2).pop().unwrap();
    let a_tip = a.farm(5).pop().unwrap();
    wait_same_tip(&[&b], &a_tip, 20);
    // QUIC notices the silence (idle timeout, 30 s).
    wait_until("c to lose its peers", 90, || (c.peer_count()? == 0).then_some(()));
    for n in [&a, &b] {
        wait_until(&format!("{} to drop c", n.name), 30, || (n.peer_count()? == 1).then_some(()));
    }
    let detected = cut.elapsed().as_secs_f64();
    assert_eq!(c.best().unwrap(), c_tip, "c kept its own branch while cut off");
    let discovered_before = c.metric(DISCOVERED);

    c.host.link(true);
    let healed = std::time::Instant::now();
    wait_full_mesh(&[&a, &b, &c], 60);
    let reconnected = healed.elapsed().as_secs_f64();
    wait_same_tip(&[&a, &b, &c], &a_tip, 30);
    let converged = healed.elapsed().as_secs_f64();
    assert_eq!(c.status()["height"].as_u64(), Some(6), "c reorganised onto the 1 + 5 block chain");
    // mDNS itself found the others again once the link was back (the dialer's backoff may
    // have got there first; both are fine, but discovery must work after a partition).
    wait_until("c to rediscover a and b by mDNS", 30, || (c.metric(DISCOVERED) >= discovered_before + 2.0).then_some(()));
    say(&format!(
        "figure: partition noticed {detected:.1} s after the cut; after the link came back: reconnected in {reconnected:.2} s, converged in {converged:.2} s, rediscovered by mDNS in {:.2} s",
        healed.elapsed().as_secs_f64()
    ));
}

#[test]
fn with_mdns_off_a_node_neither_advertises_nor_dials() {
    let test = "with_mdns_off_a_node_neither_advertises_nor_dials";
    let Some(mut lan) = Lan::new(test) else { return };
    let config = lan.dir.path().join("no-mdns.toml");
    std::fs::write(&config, "mdns = false\n").unwrap();
    // One advertising node, and mDNS turned off each of the three ways.
    let a = lan.node("a", &[], &[]);
    let off = [
        lan.node("flag", &["--no-mdns"], &[]),
        lan.node("env", &[], &[("CAIRN_NO_MDNS", "1")]),
        lan.node("file", &["--config", config.to_str().unwrap()], &[]),
    ];
    let Some(avahi) = Avahi::start(&mut lan, test) else { return };
    // The control: a third-party client sees the advertising node...
    let a_id = a.node_id();
    wait_until("avahi-browse to resolve node a", 30, || avahi.find(&a_id));
    // ...and, by then, nothing else, though every node has been up longer than discovery takes.
    let listed: Vec<String> = avahi.browse().into_iter().map(|b| b.instance).collect();
    assert_eq!(listed, vec![format!("cairn-{}", &a_id[..16])], "only node a advertises");
    for n in &off {
        assert!(n.log_text().contains("mDNS discovery off"), "node {}: {}", n.name, n.log_tail(10));
        assert_eq!(n.metric("cairn_p2p_mdns_advertising"), 0.0, "node {}", n.name);
        // It does not browse: it never even hears its own or a's announcement.
        assert!(!n.metrics().contains("cairn_p2p_mdns_ignored_total{"), "node {}", n.name);
        assert_eq!(n.metric(DISCOVERED), 0.0, "node {}", n.name);
        assert_eq!(n.peer_count(), Some(0), "node {} dialled nobody", n.name);
    }
    assert_eq!(a.metric(DISCOVERED), 0.0, "node a heard nobody else");
    assert_eq!(a.peer_count(), Some(0));
}
