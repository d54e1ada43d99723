//! The address book: where peers might be, whom to dial next, and with what backoff.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::Rng;

use crate::identity::NodeId;
use crate::wire::PeerAddress;

/// Where an address came from; lower ranks are dialled first at start.
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

#[derive(Clone, Debug)]
struct Entry {
    node_id: Option<NodeId>,
    pinned: bool,
    source: Source,
    seq: u64,
    failures: u32,
    next_attempt: Instant,
    connected_once: bool,
    /// When a LAN announcement last made it due at once.
    announced: Option<Instant>,
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
    pub fn add(&mut self, addr: SocketAddr, node_id: Option<NodeId>, pinned: bool, source: Source) -> (bool, Option<SocketAddr>) {
        self.seq += 1;
        if let Some(e) = self.entries.get_mut(&addr) {
            if source < e.source {
                e.source = source;
            }
            if pinned {
                e.node_id = node_id;
                e.pinned = true;
            } else if e.node_id.is_none() && source == Source::Persisted {
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
        let known = if source == Source::Persisted || pinned { node_id } else { None };
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
            },
        );
        (true, evicted)
    }

    /// Records an address a peer announced for itself on the LAN (mDNS): pinned to the
    /// announced node ID and due at once (the peer just said it is there), unless the user
    /// pinned this address to another node, which stands. Returns what [`AddressBook::add`]
    /// returns.
    pub fn announce(&mut self, addr: SocketAddr, node_id: NodeId) -> (bool, Option<SocketAddr>) {
        let Some(e) = self.entries.get_mut(&addr) else {
            let r = self.add(addr, Some(node_id), true, Source::Mdns);
            if let Some(e) = self.entries.get_mut(&addr) {
                e.announced = Some(Instant::now());
            }
            return r;
        };
        // A key we already hold for this address (given by the user, or proven by a past
        // connection) stands against an announcement: anyone on the LAN can announce
        // anything. Only a key that itself came from an announcement may change (a node that
        // restarted with a new key).
        if e.node_id.is_some_and(|k| k != node_id) && e.source != Source::Mdns {
            return (false, None);
        }
        e.node_id = Some(node_id);
        e.pinned = true;
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

    /// Up to `n` addresses due for a dial, best first (source rank, then age), skipping those
    /// `skip` rules out (connected, being dialled, banned).
    pub fn due(&self, now: Instant, n: usize, skip: impl Fn(&SocketAddr, Option<NodeId>) -> bool) -> Vec<SocketAddr> {
        let mut v: Vec<(&SocketAddr, &Entry)> = self.entries.iter().filter(|(a, e)| e.next_attempt <= now && !skip(a, e.node_id)).collect();
        v.sort_by_key(|(_, e)| (e.source, e.seq));
        v.into_iter().take(n).map(|(a, _)| *a).collect()
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

    /// Records a successful connection: the key is remembered (pinned from now on).
    /// Returns whether the address is (still) in the book.
    pub fn succeeded(&mut self, addr: &SocketAddr, node_id: NodeId) -> bool {
        match self.entries.get_mut(addr) {
            Some(e) => {
                e.failures = 0;
                e.node_id = Some(node_id);
                e.connected_once = true;
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
        assert_eq!(b.expect(&a(1)), Expect { pinned: Some(x), known: None });
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
        assert_eq!(b.expect(&a(1)).pinned, Some(y), "a node that restarted with a new key announces it");
        // A learned address is upgraded to a pinned one.
        b.add(a(2), None, false, Source::Learned);
        b.announce(a(2), x);
        assert_eq!(b.expect(&a(2)).pinned, Some(x));
        // The user's pin stands, and so does a key proven by a past connection.
        b.add(a(3), Some(x), true, Source::Manual);
        b.announce(a(3), y);
        assert_eq!(b.expect(&a(3)).pinned, Some(x));
        b.add(a(4), Some(x), false, Source::Persisted);
        b.announce(a(4), y);
        assert_ne!(b.expect(&a(4)).pinned, Some(y), "a hostile announcement cannot take over a proven address");
        // A withdrawn announcement is forgotten unless the address ever worked.
        assert!(b.withdraw(&a(1)));
        assert!(!b.withdraw(&a(3)), "not an announced address");
        assert_eq!(b.len(), 3);
    }
}
