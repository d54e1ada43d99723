//! The address book: where peers might be, whom to dial next, and with what backoff.
//!
//! Reputation: an address that connected, and one whose peer delivered blocks or transactions
//! new to us, ranks above one merely heard of; each failed dial backs it off exponentially.
//! Diversity: outbound dials go to distinct network groups ([`crate::netgroup::group`]): at
//! most one outbound peer per IPv4 /16 (IPv6 /32) unless the book holds nothing else
//! (loopback and the operator's own peers are exempt), so an attacker holding one range
//! cannot surround us.
//!
//! Keys: only the operator's pin (`ID@host:port`) is enforced at an address. Any other key
//! once seen at an address (learned, seeds, mDNS, persisted) is what we expect, but a node
//! that answers there with a new key (its data dir was wiped) is taken and its new key
//! remembered, so it can rejoin the peers that knew it.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use rand::Rng;

use crate::identity::NodeId;
use crate::netgroup::group;
use crate::wire::PeerAddress;

/// Where an address came from; lower ranks are dialled first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    /// Loaded from the persisted book (proven before).
    Persisted,
    /// Given by the user (`--peers`, RPC): never evicted.
    Manual,
    /// Announced on the LAN by the peer itself (mDNS), pinned to the announced node ID.
    Mdns,
    /// From `seed_peers.toml`.
    Seed,
    /// Learned from a peer, or seen inbound.
    Learned,
}

impl Source {
    /// `persisted`, `manual`, `mdns`, `seed`, `learned`.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Persisted => "persisted",
            Source::Manual => "manual",
            Source::Mdns => "mdns",
            Source::Seed => "seed",
            Source::Learned => "learned",
        }
    }
}

/// One address as the operator sees it (`GET /p2p/addresses`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressView {
    /// The address.
    pub addr: SocketAddr,
    /// The key last seen (or pinned) there.
    pub node_id: Option<NodeId>,
    /// Where it came from.
    pub source: Source,
    /// Whether the operator pinned the key.
    pub pinned: bool,
    /// When a dial last succeeded (ms since the epoch), if ever.
    pub last_success_ms: Option<u64>,
    /// Dials failed in a row.
    pub failures: u32,
    /// When it may be dialled next (ms since the epoch).
    pub next_attempt_ms: u64,
    /// Times its peer delivered blocks or transactions new to us.
    pub served: u32,
}

#[derive(Clone, Debug)]
struct Entry {
    node_id: Option<NodeId>,
    /// The operator pinned `node_id` (`ID@host:port` given to `--peers` or the RPC).
    pinned: bool,
    source: Source,
    seq: u64,
    failures: u32,
    next_attempt: Instant,
    connected_once: bool,
    /// When a LAN announcement last made it due at once.
    announced: Option<Instant>,
    /// When a dial last succeeded (ms since the epoch).
    last_success_ms: Option<u64>,
    /// Times its peer delivered something new (see [`AddressBook::served`]).
    served: u32,
}

impl Entry {
    /// Reputation within a source: proven and useful first, failing last (each term capped,
    /// so a long past cannot outweigh the present forever).
    fn reputation(&self) -> i64 {
        i64::from(self.connected_once) * 4 + i64::from(self.served.min(8)) * 2 - i64::from(self.failures.min(8)) * 2
    }
}

/// How often a LAN announcement may make an address due at once (the backoff otherwise
/// stands): a hostile announcer cannot make us dial in a loop.
pub const ANNOUNCE_RETRY_MIN: Duration = Duration::from_secs(5);

/// A bounded set of addresses with per-address retry state.
pub struct AddressBook {
    entries: HashMap<SocketAddr, Entry>,
    max: usize,
    seq: u64,
}

/// What the dialer must check about the key that answers at an address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Expect {
    /// The user pinned this node ID (`ID@host:port`): another key is `node_id_mismatch`.
    pub pinned: Option<NodeId>,
    /// This key answered here before: another key is `key_changed`.
    pub known: Option<NodeId>,
}

impl AddressBook {
    /// An empty book holding at most `max` addresses.
    pub fn new(max: usize) -> Self {
        AddressBook { entries: HashMap::new(), max: max.max(1), seq: 0 }
    }

    /// Number of addresses.
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    /// Whether the book is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds an address (or upgrades what is known about it). `pinned` marks a user-given node
    /// ID. Returns the address evicted to make room, if any, and whether it was added.
    /// Only the operator pins: `pinned` is ignored for any other source (a seed list's ID is
    /// what we expect there, not a pin).
    pub fn add(&mut self, addr: SocketAddr, node_id: Option<NodeId>, pinned: bool, source: Source) -> (bool, Option<SocketAddr>) {
        self.seq += 1;
        let pinned = pinned && source == Source::Manual;
        if let Some(e) = self.entries.get_mut(&addr) {
            if source < e.source {
                e.source = source;
            }
            if pinned {
                e.node_id = node_id;
                e.pinned = true;
            } else if e.node_id.is_none() && matches!(source, Source::Persisted | Source::Seed) {
                e.node_id = node_id;
            }
            if source == Source::Manual {
                // The user asked again: try now.
                e.failures = 0;
                e.next_attempt = Instant::now();
            }
            return (false, None);
        }
        let mut evicted = None;
        if self.entries.len() >= self.max {
            // Evict the learned address that failed most (oldest on ties); never a manual one.
            let victim = self
                .entries
                .iter()
                .filter(|(_, e)| e.source != Source::Manual)
                .max_by_key(|(_, e)| (e.source == Source::Learned, !e.connected_once, e.failures, u64::MAX - e.seq))
                .map(|(a, _)| *a);
            // Hearsay (learned from peers, or announced by anyone on the LAN) only displaces
            // hearsay: a flood of either cannot push out what the user gave or what worked.
            let may_evict = |victim: Source| match source {
                Source::Learned => victim == Source::Learned,
                Source::Mdns => matches!(victim, Source::Learned | Source::Mdns),
                _ => true,
            };
            match victim {
                Some(v) if may_evict(self.entries[&v].source) => {
                    self.entries.remove(&v);
                    evicted = Some(v);
                }
                _ => return (false, None),
            }
        }
        let known = if matches!(source, Source::Persisted | Source::Seed) || pinned { node_id } else { None };
        self.entries.insert(
            addr,
            Entry {
                node_id: known,
                pinned,
                source,
                seq: self.seq,
                failures: 0,
                next_attempt: Instant::now(),
                connected_once: source == Source::Persisted && node_id.is_some(),
                announced: None,
                last_success_ms: None,
                served: 0,
            },
        );
        (true, evicted)
    }

    /// Records an address a peer announced for itself on the LAN (mDNS): the announced node ID
    /// is expected there, and the address is due at once (the peer just said it is there),
    /// unless a key we hold for it stands (see below). Returns what [`AddressBook::add`]
    /// returns.
    pub fn announce(&mut self, addr: SocketAddr, node_id: NodeId) -> (bool, Option<SocketAddr>) {
        let Some(e) = self.entries.get_mut(&addr) else {
            let r = self.add(addr, None, false, Source::Mdns);
            if let Some(e) = self.entries.get_mut(&addr) {
                e.node_id = Some(node_id);
                e.announced = Some(Instant::now());
            }
            return r;
        };
        // A key we already hold for this address (given by the user, or proven by a past
        // connection) stands against an announcement: anyone on the LAN can announce
        // anything. Only a key that itself came from an announcement may change (a node that
        // restarted with a new key).
        if e.pinned || (e.node_id.is_some_and(|k| k != node_id) && e.source != Source::Mdns) {
            return (false, None);
        }
        e.node_id = Some(node_id);
        e.source = e.source.min(Source::Mdns);
        let now = Instant::now();
        if e.announced.is_none_or(|t| now.saturating_duration_since(t) >= ANNOUNCE_RETRY_MIN) {
            e.announced = Some(now);
            e.failures = 0;
            e.next_attempt = now;
        }
        (false, None)
    }

    /// Forgets an address only a LAN announcement vouched for, now withdrawn, unless it ever
    /// connected (then it stays, like any proven address). Returns whether it was forgotten.
    pub fn withdraw(&mut self, addr: &SocketAddr) -> bool {
        if self.entries.get(addr).is_some_and(|e| e.source == Source::Mdns && !e.connected_once) {
            self.entries.remove(addr);
            return true;
        }
        false
    }

    /// What to expect of the key at `addr`.
    pub fn expect(&self, addr: &SocketAddr) -> Expect {
        match self.entries.get(addr) {
            Some(e) if e.pinned => Expect { pinned: e.node_id, known: None },
            Some(e) => Expect { pinned: None, known: e.node_id },
            None => Expect::default(),
        }
    }

    /// Up to `n` addresses due for a dial, best first (source rank, then reputation, then
    /// age), skipping those `skip` rules out (connected, being dialled, banned).
    pub fn due(&self, now: Instant, n: usize, skip: impl Fn(&SocketAddr, Option<NodeId>) -> bool) -> Vec<SocketAddr> {
        let mut v: Vec<(&SocketAddr, &Entry)> = self.entries.iter().filter(|(a, e)| e.next_attempt <= now && !skip(a, e.node_id)).collect();
        v.sort_by_key(|(_, e)| (e.source, std::cmp::Reverse(e.reputation()), e.seq));
        v.into_iter().take(n).map(|(a, _)| *a).collect()
    }

    /// Whether `addr` is exempt from the one-outbound-per-group rule: loopback, or the
    /// operator's own peer.
    fn diversity_exempt(&self, addr: &SocketAddr) -> bool {
        crate::netgroup::canonical(addr.ip()).is_loopback() || self.entries.get(addr).is_some_and(|e| e.source == Source::Manual)
    }

    /// Up to `n` addresses to dial now: [`AddressBook::due`]'s order, at most one per network
    /// group not in `used` (the groups of our outbound peers and dials in flight). Only when
    /// that finds nothing and no address in the book (due or not) lies outside the used
    /// groups are dials into a used group allowed.
    pub fn pick(&self, now: Instant, n: usize, used: &HashSet<IpNet>, skip: impl Fn(&SocketAddr, Option<NodeId>) -> bool) -> Vec<SocketAddr> {
        let due = self.due(now, usize::MAX, &skip);
        let mut groups = used.clone();
        let mut picked = Vec::new();
        let mut crowded = Vec::new();
        for addr in due {
            if picked.len() >= n {
                break;
            }
            if self.diversity_exempt(&addr) || groups.insert(group(addr.ip())) {
                picked.push(addr);
            } else {
                crowded.push(addr);
            }
        }
        if picked.is_empty() && !self.entries.iter().any(|(a, e)| !self.diversity_exempt(a) && !skip(a, e.node_id) && !groups.contains(&group(a.ip()))) {
            picked.extend(crowded.into_iter().take(n.saturating_sub(picked.len())));
        }
        picked
    }

    /// Whether an operator-added address holds `node_id` (such a peer is never evicted).
    pub fn is_manual_node(&self, node_id: &NodeId) -> bool {
        self.entries.values().any(|e| e.source == Source::Manual && e.node_id.as_ref() == Some(node_id))
    }

    /// Whether `addr` was added by the operator.
    pub fn is_manual(&self, addr: &SocketAddr) -> bool {
        self.entries.get(addr).is_some_and(|e| e.source == Source::Manual)
    }

    /// Credits the address of a peer that delivered blocks or transactions new to us.
    pub fn served(&mut self, addr: &SocketAddr) {
        if let Some(e) = self.entries.get_mut(addr) {
            e.served = e.served.saturating_add(1);
        }
    }

    /// Every address, for the operator: best first (the order dials are tried in).
    pub fn view(&self, now: Instant, now_ms: u64) -> Vec<AddressView> {
        let mut v: Vec<(&SocketAddr, &Entry)> = self.entries.iter().collect();
        v.sort_by_key(|(_, e)| (e.source, std::cmp::Reverse(e.reputation()), e.seq));
        v.into_iter()
            .map(|(a, e)| AddressView {
                addr: *a,
                node_id: e.node_id,
                source: e.source,
                pinned: e.pinned,
                last_success_ms: e.last_success_ms,
                failures: e.failures,
                next_attempt_ms: now_ms.saturating_add(e.next_attempt.saturating_duration_since(now).as_millis() as u64),
                served: e.served,
            })
            .collect()
    }

    /// Records a failed dial: exponential backoff with jitter.
    pub fn failed(&mut self, addr: &SocketAddr, base: Duration, max: Duration) {
        if let Some(e) = self.entries.get_mut(addr) {
            e.failures = e.failures.saturating_add(1);
            let exp = base.saturating_mul(1u32 << e.failures.min(16).saturating_sub(1)).min(max);
            let jitter = rand::thread_rng().gen_range(0.75..1.25);
            e.next_attempt = Instant::now() + exp.mul_f64(jitter);
        }
    }

    /// Records a successful connection: the key is remembered (expected there from now on;
    /// a new key replaces an old one, see the module docs). Returns whether the address is
    /// (still) in the book.
    pub fn succeeded(&mut self, addr: &SocketAddr, node_id: NodeId, now_ms: u64) -> bool {
        match self.entries.get_mut(addr) {
            Some(e) => {
                e.failures = 0;
                e.node_id = Some(node_id);
                e.connected_once = true;
                e.last_success_ms = Some(now_ms);
                true
            }
            None => false,
        }
    }

    /// Forgets an address.
    pub fn remove(&mut self, addr: &SocketAddr) -> bool {
        self.entries.remove(addr).is_some()
    }

    /// Forgets every address known for `node_id`; returns them.
    pub fn remove_node(&mut self, node_id: &NodeId) -> Vec<SocketAddr> {
        let addrs: Vec<SocketAddr> = self.entries.iter().filter(|(_, e)| e.node_id.as_ref() == Some(node_id)).map(|(a, _)| *a).collect();
        for a in &addrs {
            self.entries.remove(a);
        }
        addrs
    }

    /// Up to `n` addresses that have connected before, for a `Peers` answer.
    pub fn sample(&self, n: usize) -> Vec<PeerAddress> {
        self.entries.iter().filter(|(_, e)| e.connected_once).take(n).map(|(a, e)| PeerAddress { node_id: e.node_id, addr: *a }).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(p: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], p))
    }

    fn at(ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().expect("ip"), 9090)
    }

    #[test]
    fn only_the_operator_pins_and_a_new_key_elsewhere_is_taken() {
        let (x, y) = (cairn_chain::keys::PublicKey([1; 32]), cairn_chain::keys::PublicKey([2; 32]));
        let mut b = AddressBook::new(10);
        b.add(a(1), Some(x), true, Source::Manual);
        b.add(a(2), Some(x), true, Source::Seed);
        b.add(a(3), Some(x), false, Source::Persisted);
        assert_eq!(b.expect(&a(1)), Expect { pinned: Some(x), known: None }, "the operator's pin");
        assert_eq!(b.expect(&a(2)), Expect { pinned: None, known: Some(x) }, "a seed's ID is expected, not pinned");
        assert_eq!(b.expect(&a(3)), Expect { pinned: None, known: Some(x) });
        // The node at a(3) was wiped and answers with a new key: taken and remembered.
        assert!(b.succeeded(&a(3), y, 5));
        assert_eq!(b.expect(&a(3)).known, Some(y));
        assert_eq!(b.view(Instant::now(), 0).iter().find(|v| v.addr == a(3)).and_then(|v| v.last_success_ms), Some(5));
    }

    #[test]
    fn reputation_orders_within_a_source() {
        let mut b = AddressBook::new(10);
        for p in 1..=3 {
            b.add(a(p), None, false, Source::Learned);
        }
        let now = Instant::now() + Duration::from_millis(1);
        assert_eq!(b.due(now, 10, |_, _| false), vec![a(1), a(2), a(3)], "oldest first at first");
        b.succeeded(&a(3), cairn_chain::keys::PublicKey([3; 32]), 1);
        b.served(&a(2));
        b.served(&a(2));
        b.served(&a(2));
        assert_eq!(b.due(now, 10, |_, _| false), vec![a(2), a(3), a(1)], "served well, then connected, then unknown");
        // A failure backs off and lowers the rank once due again.
        b.failed(&a(2), Duration::from_millis(0), Duration::from_millis(0));
        b.failed(&a(2), Duration::from_millis(0), Duration::from_millis(0));
        b.failed(&a(2), Duration::from_millis(0), Duration::from_millis(0));
        b.failed(&a(2), Duration::from_millis(0), Duration::from_millis(0));
        let later = Instant::now() + Duration::from_millis(5);
        assert_eq!(b.due(later, 10, |_, _| false), vec![a(3), a(1), a(2)]);
        let v = b.view(later, 0);
        assert_eq!(v.iter().find(|v| v.addr == a(2)).map(|v| (v.failures, v.served, v.source.as_str())), Some((4, 3, "learned")));
    }

    #[test]
    fn outbound_dials_spread_over_network_groups() {
        let mut b = AddressBook::new(50);
        // Five addresses in 10.1/16, one in 10.2/16, one in 192.0.2/24.
        for i in 1..=5 {
            b.add(at(&format!("10.1.0.{i}")), None, false, Source::Learned);
        }
        b.add(at("10.2.0.1"), None, false, Source::Learned);
        b.add(at("192.0.2.1"), None, false, Source::Learned);
        let now = Instant::now() + Duration::from_millis(1);
        let none = HashSet::new();
        let picked = b.pick(now, 8, &none, |_, _| false);
        assert_eq!(picked.len(), 3, "one per group: {picked:?}");
        let groups: HashSet<IpNet> = picked.iter().map(|a| group(a.ip())).collect();
        assert_eq!(groups.len(), 3);
        // With outbound peers in every group, nothing else to try: crowding is allowed.
        let used: HashSet<IpNet> = ["10.1.0.9", "10.2.0.9", "192.0.2.9"].iter().map(|s| group(s.parse().expect("ip"))).collect();
        let skip = |a: &SocketAddr, _: Option<NodeId>| picked.contains(a);
        assert_eq!(b.pick(now, 8, &used, skip).len(), 4, "the rest of 10.1/16, as the book has nothing else");
        // A fresh group in the book (even if backing off) keeps the rule.
        b.add(at("198.51.100.1"), None, false, Source::Learned);
        b.failed(&at("198.51.100.1"), Duration::from_secs(60), Duration::from_secs(60));
        assert!(b.pick(now, 8, &used, skip).is_empty(), "waits for the other group");
        // Loopback and the operator's peers are exempt.
        b.add(a(1), None, false, Source::Learned);
        b.add(a(2), None, false, Source::Learned);
        b.add(at("10.1.0.50"), None, false, Source::Manual);
        let p = b.pick(now, 8, &used, skip);
        assert!(p.contains(&a(1)) && p.contains(&a(2)) && p.contains(&at("10.1.0.50")), "{p:?}");
    }

    #[test]
    fn order_backoff_and_bounds() {
        let mut b = AddressBook::new(3);
        b.add(a(3), None, false, Source::Seed);
        b.add(a(2), None, false, Source::Manual);
        b.add(a(1), None, false, Source::Persisted);
        let now = Instant::now() + Duration::from_millis(1);
        assert_eq!(b.due(now, 10, |_, _| false), vec![a(1), a(2), a(3)], "persisted, then --peers, then seeds");
        b.failed(&a(1), Duration::from_secs(10), Duration::from_secs(60));
        assert_eq!(b.due(now, 10, |_, _| false), vec![a(2), a(3)], "backing off");
        // Full: a learned address does not push out better ones...
        assert!(!b.add(a(4), None, false, Source::Learned).0);
        // ...but a manual one evicts the worst non-manual entry.
        let (added, evicted) = b.add(a(5), None, false, Source::Manual);
        assert!(added && evicted.is_some() && evicted != Some(a(2)));
        assert_eq!(b.len(), 3);
    }

    #[test]
    fn announcements_pin_and_retry_now_but_never_override_the_user() {
        let (x, y) = (cairn_chain::keys::PublicKey([1; 32]), cairn_chain::keys::PublicKey([2; 32]));
        let mut b = AddressBook::new(10);
        assert!(b.announce(a(1), x).0);
        assert_eq!(b.expect(&a(1)), Expect { pinned: None, known: Some(x) }, "expected there, not pinned: only the operator pins");
        // A failed dial backs off; a fresh announcement (the peer is back) retries at once.
        b.failed(&a(1), Duration::from_secs(60), Duration::from_secs(60));
        assert!(b.due(Instant::now(), 10, |_, _| false).is_empty());
        b.announce(a(1), y);
        assert!(b.due(Instant::now(), 10, |_, _| false).is_empty(), "announcing again at once does not lift the backoff");
        if let Some(e) = b.entries.get_mut(&a(1)) {
            e.announced = Instant::now().checked_sub(ANNOUNCE_RETRY_MIN);
        }
        b.announce(a(1), y);
        assert_eq!(b.due(Instant::now() + Duration::from_millis(1), 10, |_, _| false), vec![a(1)]);
        assert_eq!(b.expect(&a(1)).known, Some(y), "a node that restarted with a new key announces it");
        // A learned address learns the announced key.
        b.add(a(2), None, false, Source::Learned);
        b.announce(a(2), x);
        assert_eq!(b.expect(&a(2)).known, Some(x));
        // The user's pin stands, and so does a key proven by a past connection.
        b.add(a(3), Some(x), true, Source::Manual);
        b.announce(a(3), y);
        assert_eq!(b.expect(&a(3)).pinned, Some(x));
        b.add(a(4), Some(x), false, Source::Persisted);
        b.announce(a(4), y);
        assert_eq!(b.expect(&a(4)).known, Some(x), "a hostile announcement cannot take over a proven address");
        // A withdrawn announcement is forgotten unless the address ever worked.
        assert!(b.withdraw(&a(1)));
        assert!(!b.withdraw(&a(3)), "not an announced address");
        assert_eq!(b.len(), 3);
    }
}
