//! Misbehaviour scores and bans. A score halves every [`SCORE_HALF_LIFE_MS`], so occasional
//! honest mistakes (a race into an unsolicited answer, a burst over the rate) never add up to a
//! ban in a long-running network, while a sustained misbehaviour still does.
//!
//! A ban covers a node ID or an address ([`BanTarget`]): an automatic ban covers both the key
//! and, for a shorter time, the IP it came from (the manager adds that one), so an attacker
//! cannot come back at once with a fresh key.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::config::{BAN_THRESHOLD, MAX_BANS, MAX_SCORE_RECORDS, SCORE_HALF_LIFE_MS};
use crate::identity::NodeId;
use crate::netgroup::host;
use crate::ports::{Ban, BanTarget};

/// Scores per node and the bans in force.
#[derive(Default)]
pub struct Bans {
    bans: HashMap<BanTarget, Ban>,
    /// Score, and the time (ms) it is as of: decay is applied when it is read or added to.
    scores: HashMap<NodeId, (u32, u64)>,
}

/// `score` as of `since`, decayed to `now`: halved once per whole half-life passed. Returns the
/// score and the time it is now as of (the partial half-life carries over).
fn decay(score: u32, since: u64, now: u64) -> (u32, u64) {
    let halvings = now.saturating_sub(since) / SCORE_HALF_LIFE_MS;
    let score = if halvings >= 32 { 0 } else { score >> halvings };
    (score, since.saturating_add(halvings.saturating_mul(SCORE_HALF_LIFE_MS)))
}

impl Bans {
    /// Restores persisted bans (expired ones are dropped).
    pub fn load(&mut self, bans: Vec<Ban>, now_ms: u64) {
        for b in bans.into_iter().filter(|b| b.until_ms > now_ms) {
            self.bans.insert(b.target, b);
        }
    }

    /// Whether `id` is banned now.
    pub fn is_banned(&self, id: &NodeId, now_ms: u64) -> bool {
        self.bans.get(&BanTarget::Node(*id)).is_some_and(|b| b.until_ms > now_ms)
    }

    /// The ban in force on `ip` (of that address, or of a network holding it), if any.
    pub fn ip_ban(&self, ip: IpAddr, now_ms: u64) -> Option<&Ban> {
        let ip = crate::netgroup::canonical(ip);
        if let Some(b) = self.bans.get(&BanTarget::Net(host(ip))).filter(|b| b.until_ms > now_ms) {
            return Some(b);
        }
        self.bans.values().find(|b| b.until_ms > now_ms && matches!(b.target, BanTarget::Net(net) if net.contains(&ip)))
    }

    /// Current misbehaviour score (decayed to `now_ms`).
    pub fn score(&self, id: &NodeId, now_ms: u64) -> u32 {
        self.scores.get(id).map_or(0, |(s, since)| decay(*s, *since, now_ms).0)
    }

    /// Every score on record that has not decayed to nothing (bounded by [`MAX_SCORE_RECORDS`]).
    pub fn scores(&self, now_ms: u64) -> HashMap<NodeId, u32> {
        self.scores.iter().map(|(id, (s, since))| (*id, decay(*s, *since, now_ms).0)).filter(|(_, s)| *s > 0).collect()
    }

    /// Adds `points`; returns the new score and the ban it caused, if it crossed the threshold.
    pub fn penalize(&mut self, id: NodeId, points: u32, reason: &str, now_ms: u64, ban_ms: u64) -> (u32, Option<Ban>) {
        if !self.scores.contains_key(&id) && self.scores.len() >= MAX_SCORE_RECORDS {
            // Forget the least suspicious record to stay bounded.
            if let Some(k) = self.scores.iter().min_by_key(|(_, (s, since))| decay(*s, *since, now_ms).0).map(|(k, _)| *k) {
                self.scores.remove(&k);
            }
        }
        let entry = self.scores.entry(id).or_insert((0, now_ms));
        let (decayed, since) = decay(entry.0, entry.1, now_ms);
        let score = decayed.saturating_add(points);
        *entry = (score, since);
        if score >= BAN_THRESHOLD && !self.is_banned(&id, now_ms) {
            let ban = Ban { target: BanTarget::Node(id), until_ms: now_ms.saturating_add(ban_ms), reason: reason.to_string() };
            self.ban(ban.clone());
            return (score, Some(ban));
        }
        (score, None)
    }

    /// Bans a node or an address (replacing a ban of the same target). At [`MAX_BANS`] the
    /// ban closest to expiry gives way.
    pub fn ban(&mut self, ban: Ban) {
        if !self.bans.contains_key(&ban.target)
            && self.bans.len() >= MAX_BANS
            && let Some(k) = self.bans.values().min_by_key(|b| b.until_ms).map(|b| b.target)
        {
            self.bans.remove(&k);
        }
        self.bans.insert(ban.target, ban);
    }

    /// Lifts a ban (a node's score is cleared too). Returns whether one was in force.
    pub fn unban(&mut self, target: &BanTarget, now_ms: u64) -> bool {
        if let BanTarget::Node(id) = target {
            self.scores.remove(id);
        }
        self.bans.remove(target).is_some_and(|b| b.until_ms > now_ms)
    }

    /// Bans in force.
    pub fn list(&self, now_ms: u64) -> Vec<Ban> {
        self.bans.values().filter(|b| b.until_ms > now_ms).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::Misbehaviour;

    fn node(b: u8) -> NodeId {
        cairn_chain::PublicKey([b; 32])
    }

    #[test]
    fn points_add_up_to_a_ban_once_and_it_holds_until_it_ends() {
        let mut b = Bans::default();
        let (day, now) = (86_400_000, 1_000);
        let kind = Misbehaviour::UnbackedWorkClaim;
        for i in 1..10 {
            let (score, ban) = b.penalize(node(1), kind.points(), kind.code(), now, day);
            assert_eq!((score, ban.is_none()), (i * kind.points(), true), "below the threshold: no ban");
        }
        let (score, ban) = b.penalize(node(1), kind.points(), kind.code(), now, day);
        assert_eq!(score, BAN_THRESHOLD);
        let ban = ban.expect("banned at the threshold");
        assert_eq!((ban.until_ms, ban.reason.as_str()), (now + day, "unbacked_work_claim"));
        assert!(b.is_banned(&node(1), now + day - 1));
        assert!(!b.is_banned(&node(1), now + day), "a ban ends");
        assert!(b.penalize(node(1), 100, "again", now, day).1.is_none(), "banned once, not again while it holds");
        // Invalid data bans at once; bans and scores stay bounded.
        assert!(b.penalize(node(2), Misbehaviour::InvalidBlock.points(), "invalid_block", now, day).1.is_some());
        assert!(b.unban(&BanTarget::Node(node(2)), now));
        assert_eq!(b.score(&node(2), now), 0);
        for i in 0..(MAX_SCORE_RECORDS + 10) {
            let mut k = [0u8; 32];
            k[..8].copy_from_slice(&(i as u64).to_le_bytes());
            b.penalize(cairn_chain::PublicKey(k), 1, "x", now, day);
        }
        assert!(b.scores(now).len() <= MAX_SCORE_RECORDS);
    }

    #[test]
    fn address_bans_cover_the_ip_or_the_network_until_they_end() {
        let mut b = Bans::default();
        let net = |s: &str| BanTarget::parse(s).expect("target");
        b.ban(Ban { target: net("10.0.0.7"), until_ms: 100, reason: "x".into() });
        b.ban(Ban { target: net("192.0.2.0/24"), until_ms: 200, reason: "y".into() });
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert_eq!(b.ip_ban(ip("10.0.0.7"), 50).map(|b| b.reason.as_str()), Some("x"));
        assert_eq!(b.ip_ban(ip("::ffff:10.0.0.7"), 50).map(|b| b.reason.as_str()), Some("x"), "mapped IPv4");
        assert!(b.ip_ban(ip("10.0.0.8"), 50).is_none());
        assert_eq!(b.ip_ban(ip("192.0.2.99"), 150).map(|b| b.reason.as_str()), Some("y"));
        assert!(b.ip_ban(ip("10.0.0.7"), 100).is_none(), "ended");
        assert!(!b.is_banned(&node(1), 0), "an address ban is not a node ban");
        assert!(b.unban(&net("192.0.2.0/24"), 150));
        assert!(b.ip_ban(ip("192.0.2.99"), 150).is_none());
        assert!(!b.unban(&net("192.0.2.0/24"), 150), "already lifted");
        assert_eq!(b.list(50).len(), 1);
        // Stored bans from before address bans read as node bans.
        let old = format!(r#"{{"node_id":"{}","until_ms":5,"reason":"old"}}"#, node(9));
        let ban: Ban = serde_json::from_str(&old).expect("old ban");
        assert_eq!(ban.target, BanTarget::Node(node(9)));
        let ip_ban = Ban { target: net("10.0.0.0/8"), until_ms: 5, reason: "r".into() };
        let json = serde_json::to_string(&ip_ban).expect("json");
        assert_eq!(serde_json::from_str::<Ban>(&json).expect("round trip"), ip_ban, "{json}");
    }

    #[test]
    fn scores_halve_every_half_life_so_occasional_mistakes_never_ban() {
        let mut b = Bans::default();
        let (h, day) = (SCORE_HALF_LIFE_MS, 86_400_000);
        assert_eq!(b.penalize(node(3), 60, "x", 0, day).0, 60);
        assert_eq!(b.score(&node(3), h - 1), 60);
        assert_eq!(b.score(&node(3), h), 30, "halved after one half-life");
        assert_eq!(b.score(&node(3), 2 * h + h / 2), 15);
        // 30 points every half-life settle below 60: never a ban.
        let mut b = Bans::default();
        for i in 0..100 {
            let (score, ban) = b.penalize(node(4), 30, "x", i * h, day);
            assert!(ban.is_none() && score < BAN_THRESHOLD, "round {i}: {score}");
        }
        // The same points at once ban.
        let mut b = Bans::default();
        let bans: Vec<_> = (0..4).filter_map(|_| b.penalize(node(5), 30, "x", 0, day).1).collect();
        assert_eq!(bans.len(), 1);
        assert_eq!(b.score(&node(5), 40 * h), 0, "it decays away");
        assert!(b.scores(40 * h).is_empty());
    }
}
