//! Transactions between the cheap checks and admission: their signatures are being verified
//! off the mempool's thread. A second copy that arrives meanwhile (the same transaction
//! relayed by two peers, or posted twice) is a duplicate: verifying it again would only find
//! the same answer, and under load that was a fifth of a node's verifications.
//!
//! Each batch that passes the cheap checks takes a ticket; its admission hands the ticket back
//! and the IDs leave. A ticket never handed back (its caller panicked) expires after
//! [`InFlight::new`]'s time to live, so an ID is never held back for good.

use std::collections::BTreeMap;

use foldhash::{HashMap, HashMapExt};

use crate::tx::TxId;

/// A batch's claim on its IDs, handed back at admission.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ticket(u64);

/// The IDs being verified, by batch.
#[derive(Debug)]
pub struct InFlight {
    ids: HashMap<TxId, Ticket>,
    /// Open tickets, oldest first: when each was taken (ms) and its IDs.
    tickets: BTreeMap<Ticket, (u64, Vec<TxId>)>,
    next: u64,
    ttl_ms: u64,
}

impl InFlight {
    /// Nothing in flight; a ticket not handed back within `ttl_ms` expires.
    pub fn new(ttl_ms: u64) -> Self {
        InFlight { ids: HashMap::new(), tickets: BTreeMap::new(), next: 0, ttl_ms }
    }

    /// Whether `id` is being verified.
    pub fn contains(&self, id: &TxId) -> bool {
        self.ids.contains_key(id)
    }

    /// IDs held.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Opens a ticket at `now_ms`, after dropping tickets that expired by then.
    pub fn open(&mut self, now_ms: u64) -> Ticket {
        self.expire(now_ms);
        let t = Ticket(self.next);
        self.next += 1;
        self.tickets.insert(t, (now_ms, Vec::new()));
        t
    }

    /// Claims `id` for ticket `t`; `false` (nothing changes) if it is in flight already, in
    /// this batch or another, or if `t` is not open.
    pub fn claim(&mut self, t: Ticket, id: TxId) -> bool {
        if self.ids.contains_key(&id) {
            return false;
        }
        let Some((_, ids)) = self.tickets.get_mut(&t) else { return false };
        ids.push(id);
        self.ids.insert(id, t);
        true
    }

    /// Hands a ticket back: its IDs are no longer in flight (unknown or expired tickets are
    /// ignored).
    pub fn release(&mut self, t: Ticket) {
        if let Some((_, ids)) = self.tickets.remove(&t) {
            for id in ids {
                // An expired ticket's ID may have been claimed again by a later one.
                if self.ids.get(&id) == Some(&t) {
                    self.ids.remove(&id);
                }
            }
        }
    }

    fn expire(&mut self, now_ms: u64) {
        while let Some((t, (at, _))) = self.tickets.first_key_value() {
            if now_ms.saturating_sub(*at) < self.ttl_ms {
                break;
            }
            let t = *t;
            self.release(t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::Hash;

    fn id(n: u8) -> TxId {
        Hash([n; 32])
    }

    fn batch(f: &mut InFlight, ids: &[u8], now: u64) -> Ticket {
        let t = f.open(now);
        for n in ids {
            assert!(f.claim(t, id(*n)));
        }
        t
    }

    #[test]
    fn ids_are_held_until_their_ticket_comes_back() {
        let mut f = InFlight::new(60_000);
        let a = batch(&mut f, &[1, 2], 0);
        // A duplicate, in the same batch or another, is refused.
        assert!(!f.claim(a, id(2)));
        let b = batch(&mut f, &[3], 10);
        assert!(!f.claim(b, id(1)));
        assert!(f.contains(&id(1)) && f.contains(&id(2)) && f.contains(&id(3)));
        f.release(a);
        assert!(!f.contains(&id(1)) && !f.contains(&id(2)));
        assert!(f.contains(&id(3)));
        f.release(a); // twice: nothing
        f.release(b);
        assert!(f.is_empty());
    }

    #[test]
    fn a_ticket_never_handed_back_expires_and_does_not_free_a_later_claim() {
        let mut f = InFlight::new(1_000);
        let lost = batch(&mut f, &[1, 2], 0);
        // Not yet expired at 999 ms.
        batch(&mut f, &[5], 999);
        assert!(f.contains(&id(1)));
        // At 1000 ms the lost ticket goes; id 2 is claimed again by a new batch.
        let again = batch(&mut f, &[2], 1_000);
        assert!(!f.contains(&id(1)));
        assert!(f.contains(&id(2)));
        // The lost ticket coming back late frees nothing of the new claim.
        f.release(lost);
        assert!(f.contains(&id(2)));
        f.release(again);
        assert!(!f.contains(&id(2)));
        assert_eq!(f.len(), 1);
        // A released ticket claims nothing more.
        assert!(!f.claim(again, id(9)));
    }
}
