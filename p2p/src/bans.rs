//! Misbehaviour scores and bans. A score halves every [`SCORE_HALF_LIFE_MS`], so occasional
//! honest mistakes (a race into an unsolicited answer, a burst over the rate) never add up to a
//! ban in a long-running network, while a sustained misbehaviour still does.

use std::collections::HashMap;

use crate::config::{BAN_THRESHOLD, MAX_BANS, MAX_SCORE_RECORDS, SCORE_HALF_LIFE_MS};
use crate::identity::NodeId;
use crate::ports::Ban;

/// Scores per node and the bans they led to.
#[derive(Default)]
pub struct Bans {
    bans: HashMap<NodeId, Ban>,
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
            self.bans.insert(b.node_id, b);
        }
    }

    /// Whether `id` is banned now.
    pub fn is_banned(&self, id: &NodeId, now_ms: u64) -> bool {
        self.bans.get(id).is_some_and(|b| b.until_ms > now_ms)
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
        assert_eq!(b.score(&node(2), now), 0);
        for i in 0..(MAX_SCORE_RECORDS + 10) {
            let mut k = [0u8; 32];
            k[..8].copy_from_slice(&(i as u64).to_le_bytes());
            b.penalize(cairn_chain::PublicKey(k), 1, "x", now, day);
        }
        assert!(b.scores(now).len() <= MAX_SCORE_RECORDS);
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
