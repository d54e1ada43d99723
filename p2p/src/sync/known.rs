//! Which transactions a peer is known to hold, so relay does not announce them to it again
//! (Bitcoin Core's per-peer `m_tx_inventory_known_filter`). The relay task keeps one per
//! connected peer and skips its IDs when it relays a new transaction and in the
//! re-announcement rounds, which otherwise sent every peer up to 20,000 IDs it already held
//! every two seconds while the node was quiet.
//!
//! Two kinds of knowledge:
//! - **held**: the peer announced the transaction to us or sent it: it was in its mempool;
//! - **served**: we sent it to the peer, which asked for it. Its mempool may still have
//!   refused it (full, under a load past what the network confirms), and then only the
//!   rounds bring it there later. So a served ID is skipped by the quiet rounds but not by
//!   the full ones ([`crate::sync::gossip`]: one every ten seconds, and every round under
//!   load). An ID we only announced counts for nothing (the announcement may have been
//!   dropped by a busy peer).
//!
//! A fixed table of [`SLOTS`] 32-bit entries, indexed by the ID's first bits (IDs are hashes):
//! 128 KiB a peer, whatever it announces. An entry is a 30-bit tag and the kind. A newer ID in
//! the same slot replaces the older, which is then announced again if pending: forgetting
//! costs an ID on the wire, never a transaction. An ID counts as known only if its slot holds
//! its own tag (a 45-bit match by chance: about one in 3·10^13 lookups), and a peer's
//! announcements fill only its own table.

use cairn_chain::Hash;

/// Slots per peer (a power of two).
pub(crate) const SLOTS: usize = 1 << 15;

/// The transaction IDs one peer is known to hold (see the module's docs).
pub(crate) struct KnownTxs {
    tags: Box<[u32]>,
}

impl Default for KnownTxs {
    fn default() -> Self {
        KnownTxs { tags: vec![0; SLOTS].into_boxed_slice() }
    }
}

/// The low bits of an entry: which kind of knowledge (zero: an empty slot).
const SERVED: u32 = 0b01;
const HELD: u32 = 0b11;
const KIND: u32 = 0b11;

impl KnownTxs {
    /// The slot and the tag (its kind bits zero) of `id`.
    fn place(id: &Hash) -> (usize, u32) {
        let b = &id.0;
        let slot = usize::from(u16::from_le_bytes([b[0], b[1]])) & (SLOTS - 1);
        let tag = u32::from_le_bytes([b[2], b[3], b[4], b[5]]) & !KIND;
        (slot, tag)
    }

    /// The peer holds `id` (it announced or sent it).
    pub(crate) fn held(&mut self, id: &Hash) {
        let (slot, tag) = Self::place(id);
        self.tags[slot] = tag | HELD;
    }

    /// We sent `id` to the peer, which asked for it (held stays held).
    pub(crate) fn served(&mut self, id: &Hash) {
        let (slot, tag) = Self::place(id);
        if self.tags[slot] != tag | HELD {
            self.tags[slot] = tag | SERVED;
        }
    }

    /// Whether the peer holds `id`, or (`or_served`) was sent it.
    pub(crate) fn knows(&self, id: &Hash, or_served: bool) -> bool {
        let (slot, tag) = Self::place(id);
        let entry = self.tags[slot];
        entry == tag | HELD || (or_served && entry == tag | SERVED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> Hash {
        Hash(*blake3::hash(&n.to_le_bytes()).as_bytes())
    }

    #[test]
    fn remembers_what_it_was_told_and_nothing_else() {
        let mut k = KnownTxs::default();
        let told: Vec<Hash> = (0..1000).map(id).collect();
        for t in &told {
            k.held(t);
        }
        // 1,000 IDs in 32,768 slots: a few share a slot, and the later one stays.
        let kept = told.iter().filter(|t| k.knows(t, false)).count();
        assert!(kept >= 980, "{kept} of 1000 kept");
        assert!(k.knows(&told[999], false), "the last one told is always kept");
        // Never told: never known (a 45-bit match by chance).
        assert!((1000..101_000).map(id).all(|t| !k.knows(&t, true)));
        assert!(!KnownTxs::default().knows(&Hash([0; 32]), true), "an empty slot matches nothing, not even a tag of zeros");
    }

    #[test]
    fn served_counts_only_when_asked_and_never_downgrades_held() {
        let mut k = KnownTxs::default();
        let (a, b) = (id(1), id(2));
        k.served(&a);
        assert!(k.knows(&a, true) && !k.knows(&a, false), "served: skipped by quiet rounds only");
        k.held(&a);
        assert!(k.knows(&a, false), "then held");
        k.held(&b);
        k.served(&b);
        assert!(k.knows(&b, false), "served after held stays held");
    }

    #[test]
    fn a_newer_id_in_the_same_slot_replaces_the_older() {
        let mut k = KnownTxs::default();
        let a = Hash([7; 32]);
        let mut b = Hash([9; 32]);
        b.0[0] = 7;
        b.0[1] = 7;
        k.held(&a);
        k.held(&b);
        assert!(k.knows(&b, false) && !k.knows(&a, true));
    }
}
