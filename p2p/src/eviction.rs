//! Which inbound peer gives way when the inbound slots are full and a newcomer has passed the
//! handshake: Bitcoin Core's `AttemptToEvictConnection`, as a pure function.
//!
//! Protected first, each rule taking its peers out of the running:
//! 1. [`PROTECT_BY_GROUP`] peers from distinct network groups, the groups picked by a hash keyed
//!    with a per-node secret (an attacker cannot predict, so cannot aim, which groups are kept);
//! 2. [`PROTECT_BY_PING`] with the lowest ping;
//! 3. [`PROTECT_BY_TX`] that most recently delivered a transaction new to us;
//! 4. [`PROTECT_BY_BLOCK`] that most recently delivered a block new to us;
//! 5. half of the rest: those connected longest.
//!
//! Of the peers left, the network group with the most connections (ties: the one whose
//! youngest connection is youngest) loses its youngest peer. If every peer is protected, no
//! one is evicted and the newcomer is refused `too_many_peers`. Peers we dialled and peers the
//! operator added are never candidates (the caller leaves them out).
//!
//! So identities an attacker can make cheaply (fresh keys from a few addresses, idle, young)
//! are what goes, and peers that are useful, fast, long-standing or from elsewhere stay.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use ipnet::IpNet;

use crate::identity::NodeId;

/// Peers protected for coming from distinct network groups.
pub const PROTECT_BY_GROUP: usize = 4;
/// Peers protected for the lowest ping.
pub const PROTECT_BY_PING: usize = 8;
/// Peers protected for delivering transactions most recently.
pub const PROTECT_BY_TX: usize = 4;
/// Peers protected for delivering blocks most recently.
pub const PROTECT_BY_BLOCK: usize = 4;

/// An inbound peer as eviction sees it.
#[derive(Clone, Debug)]
pub struct Candidate {
    /// The peer.
    pub id: NodeId,
    /// Its network group ([`crate::netgroup::group`]).
    pub group: IpNet,
    /// When it connected (ms).
    pub connected_ms: u64,
    /// Its last measured ping (ms), `None` if not measured yet.
    pub ping_ms: Option<u64>,
    /// When it last delivered a block new to us (ms; 0: never).
    pub last_block_ms: u64,
    /// When it last delivered a transaction new to us (ms; 0: never).
    pub last_tx_ms: u64,
}

/// Keeps all but the `k` peers ranked best by `key` (greatest first); ties go to the longest
/// connected.
fn protect<K: Ord>(c: &mut Vec<Candidate>, k: usize, key: impl Fn(&Candidate) -> K) {
    c.sort_by(|a, b| key(b).cmp(&key(a)).then(a.connected_ms.cmp(&b.connected_ms)));
    let keep = k.min(c.len());
    c.drain(..keep);
}

fn keyed(group: &IpNet, secret: u64) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    secret.hash(&mut h);
    group.hash(&mut h);
    h.finish()
}

/// The peer to evict, if any. `secret`: this node's random key for the group ranking.
pub fn select(candidates: &[Candidate], secret: u64) -> Option<NodeId> {
    let mut c = candidates.to_vec();
    // 1. Distinct groups: the oldest peer of each of the best-keyed groups.
    let mut groups: Vec<IpNet> = c.iter().map(|p| p.group).collect();
    groups.sort();
    groups.dedup();
    groups.sort_by_key(|g| std::cmp::Reverse(keyed(g, secret)));
    for g in groups.into_iter().take(PROTECT_BY_GROUP) {
        if let Some(i) = c.iter().enumerate().filter(|(_, p)| p.group == g).min_by_key(|(_, p)| p.connected_ms).map(|(i, _)| i) {
            c.swap_remove(i);
        }
    }
    // 2–4. Fast, and useful lately (only peers that delivered something count as useful).
    protect(&mut c, PROTECT_BY_PING, |p| std::cmp::Reverse(p.ping_ms.unwrap_or(u64::MAX)));
    let useful_tx = c.iter().filter(|p| p.last_tx_ms > 0).count().min(PROTECT_BY_TX);
    protect(&mut c, useful_tx, |p| p.last_tx_ms);
    let useful_block = c.iter().filter(|p| p.last_block_ms > 0).count().min(PROTECT_BY_BLOCK);
    protect(&mut c, useful_block, |p| p.last_block_ms);
    // 5. Half of the rest by age.
    let half = c.len() / 2;
    protect(&mut c, half, |p| std::cmp::Reverse(p.connected_ms));
    // The biggest group loses its youngest.
    let mut by_group: HashMap<IpNet, (usize, u64)> = HashMap::new();
    for p in &c {
        let e = by_group.entry(p.group).or_default();
        e.0 += 1;
        e.1 = e.1.max(p.connected_ms);
    }
    let (group, _) = by_group.into_iter().max_by_key(|(g, (n, youngest))| (*n, *youngest, *g))?;
    c.iter().filter(|p| p.group == group).max_by_key(|p| p.connected_ms).map(|p| p.id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netgroup::group;

    fn node(i: u32) -> NodeId {
        let mut k = [0u8; 32];
        k[..4].copy_from_slice(&i.to_le_bytes());
        cairn_chain::PublicKey(k)
    }

    fn peer(i: u32, ip: &str, connected_ms: u64) -> Candidate {
        Candidate { id: node(i), group: group(ip.parse().expect("ip")), connected_ms, ping_ms: Some(50), last_block_ms: 0, last_tx_ms: 0 }
    }

    #[test]
    fn idle_identities_from_one_address_give_way_youngest_first() {
        // 64 slots: 4 honest peers from elsewhere, 60 idle identities from one address.
        let mut c: Vec<Candidate> = (0..4).map(|i| peer(i, &format!("10.{i}.0.1"), 1_000 + u64::from(i))).collect();
        c.extend((4..64).map(|i| peer(i, "192.0.2.7", 10_000 + u64::from(i))));
        for secret in [0, 1, 42, u64::MAX] {
            let victim = select(&c, secret).expect("someone gives way");
            assert_eq!(victim, node(63), "the youngest of the crowded group (secret {secret})");
        }
        // Honest peers stay however the keyed groups fall: they are in small groups.
        let mut c2 = c.clone();
        for _ in 0..40 {
            let v = select(&c2, 7).expect("victim");
            assert!(c2.iter().any(|p| p.id == v && p.group == group("192.0.2.7".parse().expect("ip"))), "an attacker identity goes first");
            c2.retain(|p| p.id != v);
        }
    }

    #[test]
    fn useful_fast_and_old_peers_are_protected() {
        // All in one group so only the non-group rules decide.
        let mut c: Vec<Candidate> = (0..40).map(|i| peer(i, "198.51.100.1", 1_000 + u64::from(i))).collect();
        // The youngest peer delivered a block lately, the second youngest a transaction, the
        // third is the fastest.
        c[39].last_block_ms = 50_000;
        c[38].last_tx_ms = 50_000;
        c[37].ping_ms = Some(1);
        let v = select(&c, 3).expect("victim");
        assert!(v != node(39) && v != node(38) && v != node(37), "protected: {v:?}");
        assert_eq!(v, node(36), "the youngest unprotected one");
    }

    #[test]
    fn nobody_is_evicted_when_everyone_is_protected() {
        let c: Vec<Candidate> = (0..8).map(|i| peer(i, "203.0.113.1", u64::from(i))).collect();
        assert_eq!(select(&c, 1), None, "eight fast peers: all protected by ping");
        assert_eq!(select(&[], 1), None);
    }
}
