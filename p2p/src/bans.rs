//! Misbehaviour scores and bans.

use std::collections::HashMap;

use crate::config::{BAN_THRESHOLD, MAX_BANS, MAX_SCORE_RECORDS};
use crate::identity::NodeId;
use crate::ports::Ban;

/// Scores per node and the bans they led to.
#[derive(Default)]
pub struct Bans {
    bans: HashMap<NodeId, Ban>,
    scores: HashMap<NodeId, u32>,
}

impl Bans {
    /// Restores persisted bans (expired ones are dropped).
    pub fn load(&mut self, bans: Vec<Ban>, now_ms: u64) {
        for b in bans.into_iter().filter(|b| b.until_ms > now_ms) {
            self.bans.insert(b.node_id, b);
        }
    }

    /// Whether `id` is banned now.
    pub fn is_banned(&self, id: &NodeId, now_ms: u64) -> bool {
        self.bans.get(id).is_some_and(|b| b.until_ms > now_ms)
    }

    /// Current misbehaviour score.
    pub fn score(&self, id: &NodeId) -> u32 {
        self.scores.get(id).copied().unwrap_or(0)
    }

    /// Every score on record (bounded by [`MAX_SCORE_RECORDS`]).
    pub fn scores(&self) -> HashMap<NodeId, u32> {
        self.scores.clone()
    }

    /// Adds `points`; returns the new score and the ban it caused, if it crossed the threshold.
    pub fn penalize(&mut self, id: NodeId, points: u32, reason: &str, now_ms: u64, ban_ms: u64) -> (u32, Option<Ban>) {
        if !self.scores.contains_key(&id) && self.scores.len() >= MAX_SCORE_RECORDS {
            // Forget the least suspicious record to stay bounded.
            if let Some(k) = self.scores.iter().min_by_key(|(_, s)| **s).map(|(k, _)| *k) {
                self.scores.remove(&k);
            }
        }
        let s = self.scores.entry(id).or_default();
        *s = s.saturating_add(points);
        let score = *s;
        if score >= BAN_THRESHOLD && !self.is_banned(&id, now_ms) {
            let ban = Ban { node_id: id, until_ms: now_ms.saturating_add(ban_ms), reason: reason.to_string() };
            self.ban(ban.clone());
            return (score, Some(ban));
        }
        (score, None)
    }

    /// Bans a node. At [`MAX_BANS`] the ban closest to expiry gives way.
    pub fn ban(&mut self, ban: Ban) {
        if !self.bans.contains_key(&ban.node_id)
            && self.bans.len() >= MAX_BANS
            && let Some(k) = self.bans.values().min_by_key(|b| b.until_ms).map(|b| b.node_id)
        {
            self.bans.remove(&k);
        }
        self.bans.insert(ban.node_id, ban);
    }

    /// Lifts a ban and clears the score.
    pub fn unban(&mut self, id: &NodeId) -> bool {
        self.scores.remove(id);
        self.bans.remove(id).is_some()
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
        assert!(b.unban(&node(2)));
        assert_eq!(b.score(&node(2)), 0);
        for i in 0..(MAX_SCORE_RECORDS + 10) {
            let mut k = [0u8; 32];
            k[..8].copy_from_slice(&(i as u64).to_le_bytes());
            b.penalize(cairn_chain::PublicKey(k), 1, "x", now, day);
        }
        assert!(b.scores().len() <= MAX_SCORE_RECORDS);
    }
}
