//! Compact blocks (BIP152's idea): a new block travels as its header and one short ID per
//! transaction, and the receiver rebuilds it from the transactions it already holds, fetching
//! only those it lacks.
//!
//! # Short IDs
//! A short ID is the first 8 bytes (little-endian) of keyed BLAKE3 over the transaction ID,
//! keyed by `BLAKE3(header | nonce)`: the 156-byte header and the sender's 8-byte nonce
//! (little-endian). The key changes with every block and every sender, so nobody can craft
//! transactions whose short IDs collide in everyone's blocks; a collision that happens anyway
//! (2^-64 per pair) only costs a fetch.
//!
//! # Rebuilding
//! [`Partial::rebuild`] fills each slot whose short ID matches exactly one candidate
//! transaction. A slot stays empty (to be fetched) when no candidate matches, when two
//! candidates match, or when two slots of the block share a short ID. [`Partial::finish`]
//! then checks the Merkle root: a block whose rebuilt transactions do not give the header's
//! root was not rebuilt (a collision, or a lying sender) and must be fetched whole — without
//! blaming the sender, which cannot be told from bad luck.

use foldhash::{HashMap, HashMapExt};

use crate::block::{Block, Header, merkle_root};
use crate::encode::DecodeError;
use crate::tx::{Transaction, TxId};

/// Bytes per short ID on the wire.
pub const SHORT_ID_LEN: usize = 8;

/// The short-ID function of one compact block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShortIds {
    key: [u8; 32],
}

impl ShortIds {
    /// The function for `header` as sent with `nonce`.
    pub fn new(header: &Header, nonce: u64) -> ShortIds {
        let mut h = blake3::Hasher::new();
        h.update(&header.encode()).update(&nonce.to_le_bytes());
        ShortIds { key: *h.finalize().as_bytes() }
    }

    /// The short ID of a transaction.
    pub fn of(&self, txid: &TxId) -> u64 {
        let h = blake3::keyed_hash(&self.key, &txid.0);
        let mut b = [0u8; 8];
        b.copy_from_slice(&h.as_bytes()[..8]);
        u64::from_le_bytes(b)
    }
}

/// A block as header, nonce and short IDs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompactBlock {
    /// The block's header.
    pub header: Header,
    /// The sender's salt for the short IDs.
    pub nonce: u64,
    /// One short ID per transaction, in block order.
    pub short_ids: Vec<u64>,
}

impl CompactBlock {
    /// The compact form of `block`.
    pub fn of(block: &Block, nonce: u64) -> CompactBlock {
        let f = ShortIds::new(&block.header, nonce);
        CompactBlock { header: block.header.clone(), nonce, short_ids: block.transactions.iter().map(|tx| f.of(&tx.id())).collect() }
    }

    /// The short IDs as sent: 8 bytes each, little-endian, concatenated.
    pub fn encode_short_ids(&self) -> Vec<u8> {
        self.short_ids.iter().flat_map(|s| s.to_le_bytes()).collect()
    }

    /// Reads short IDs as sent; at most `max` of them.
    pub fn decode_short_ids(bytes: &[u8], max: usize) -> Result<Vec<u64>, DecodeError> {
        if bytes.len() % SHORT_ID_LEN != 0 {
            return Err(DecodeError::Truncated("short ids"));
        }
        let n = bytes.len() / SHORT_ID_LEN;
        if n > max {
            return Err(DecodeError::TooMany { what: "short ids", count: n as u64, max: max as u64 });
        }
        Ok(bytes
            .chunks_exact(SHORT_ID_LEN)
            .map(|c| {
                let mut b = [0u8; 8];
                b.copy_from_slice(c);
                u64::from_le_bytes(b)
            })
            .collect())
    }
}

/// A block being rebuilt: its header and one slot per transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partial {
    /// The header.
    pub header: Header,
    slots: Vec<Option<Transaction>>,
}

/// Why a compact block could not become its block.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotRebuilt {
    /// The answer to a fetch did not hold one transaction per missing slot.
    #[error("{got} transactions for {want} missing slots")]
    WrongCount {
        /// Slots that were missing.
        want: usize,
        /// Transactions received.
        got: usize,
    },
    /// The rebuilt transactions do not give the header's Merkle root.
    #[error("the rebuilt transactions do not match the header's Merkle root")]
    RootMismatch,
}

impl Partial {
    /// Fills the slots of `compact` from `candidates` (ID and transaction, e.g. the mempool).
    /// Cost: one keyed hash per candidate.
    pub fn rebuild<'a>(compact: &CompactBlock, candidates: impl IntoIterator<Item = (&'a TxId, &'a Transaction)>) -> Partial {
        let f = ShortIds::new(&compact.header, compact.nonce);
        // Short ID → its slot; `None` when two slots share it (both must be fetched).
        let mut slot_of: HashMap<u64, Option<usize>> = HashMap::with_capacity(compact.short_ids.len());
        for (i, s) in compact.short_ids.iter().enumerate() {
            slot_of.entry(*s).and_modify(|e| *e = None).or_insert(Some(i));
        }
        let mut slots: Vec<Option<Transaction>> = vec![None; compact.short_ids.len()];
        // Slots two candidates matched: left empty whatever else matches.
        let mut ambiguous: Vec<bool> = vec![false; slots.len()];
        for (id, tx) in candidates {
            let Some(Some(i)) = slot_of.get(&f.of(id)) else { continue };
            let i = *i;
            if ambiguous[i] {
                continue;
            }
            if slots[i].as_ref().is_some_and(|t| t != tx) {
                slots[i] = None;
                ambiguous[i] = true;
            } else {
                slots[i] = Some(tx.clone());
            }
        }
        Partial { header: compact.header.clone(), slots }
    }

    /// Indexes of the slots still empty, ascending.
    pub fn missing(&self) -> Vec<u32> {
        self.slots.iter().enumerate().filter(|(_, s)| s.is_none()).map(|(i, _)| i as u32).collect()
    }

    /// Fills the empty slots, in ascending order, with `txs` (the answer to a fetch of
    /// [`Partial::missing`]).
    pub fn fill(&mut self, txs: Vec<Transaction>) -> Result<(), NotRebuilt> {
        let want = self.slots.iter().filter(|s| s.is_none()).count();
        if txs.len() != want {
            return Err(NotRebuilt::WrongCount { want, got: txs.len() });
        }
        let mut txs = txs.into_iter();
        for s in self.slots.iter_mut().filter(|s| s.is_none()) {
            *s = txs.next();
        }
        Ok(())
    }

    /// The block, if every slot is filled and the transactions give the header's root.
    /// `Ok(None)` while slots are missing.
    pub fn finish(&self) -> Result<Option<Block>, NotRebuilt> {
        if self.slots.iter().any(Option::is_none) {
            return Ok(None);
        }
        let transactions: Vec<Transaction> = self.slots.iter().flatten().cloned().collect();
        let ids: Vec<TxId> = transactions.iter().map(Transaction::id).collect();
        if merkle_root(&ids) != self.header.tx_root {
            return Err(NotRebuilt::RootMismatch);
        }
        Ok(Some(Block { header: self.header.clone(), transactions }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Keypair;
    use crate::spec::ChainSpec;

    fn txs(n: u64) -> Vec<Transaction> {
        let k = Keypair::generate();
        let genesis = ChainSpec::devnet().genesis().hash();
        (0..n).map(|i| Transaction::signed(&k, genesis, Keypair::generate().address(), 1, 0, i)).collect()
    }

    fn block(txs: Vec<Transaction>) -> Block {
        let mut header = ChainSpec::devnet().genesis().header;
        header.height = 1;
        header.tx_root = merkle_root(&txs.iter().map(Transaction::id).collect::<Vec<_>>());
        Block { header, transactions: txs }
    }

    fn pool(txs: &[Transaction]) -> Vec<(TxId, Transaction)> {
        txs.iter().map(|t| (t.id(), t.clone())).collect()
    }

    fn rebuild(c: &CompactBlock, pool: &[(TxId, Transaction)]) -> Partial {
        Partial::rebuild(c, pool.iter().map(|(id, t)| (id, t)))
    }

    #[test]
    fn a_block_of_known_transactions_rebuilds_without_a_fetch() {
        let all = txs(50);
        let b = block(all.clone());
        let c = CompactBlock::of(&b, 7);
        let wire = c.encode_short_ids();
        assert_eq!(wire.len(), 50 * SHORT_ID_LEN);
        assert_eq!(CompactBlock::decode_short_ids(&wire, 50).unwrap(), c.short_ids);
        // More in the pool than in the block, in another order.
        let mut p = pool(&all);
        p.extend(pool(&txs(20)));
        p.reverse();
        let partial = rebuild(&c, &p);
        assert_eq!(partial.missing(), Vec::<u32>::new());
        assert_eq!(partial.finish().unwrap(), Some(b));
    }

    #[test]
    fn missing_transactions_are_fetched_by_index_and_filled_in_order() {
        let all = txs(10);
        let b = block(all.clone());
        let c = CompactBlock::of(&b, 1);
        let known: Vec<Transaction> = all.iter().enumerate().filter(|(i, _)| i % 3 != 0).map(|(_, t)| t.clone()).collect();
        let mut partial = rebuild(&c, &pool(&known));
        assert_eq!(partial.missing(), vec![0, 3, 6, 9]);
        assert_eq!(partial.finish(), Ok(None));
        assert_eq!(partial.clone().fill(vec![all[0].clone()]), Err(NotRebuilt::WrongCount { want: 4, got: 1 }));
        // Wrong transactions in the right number: the root tells.
        let mut wrong = partial.clone();
        wrong.fill(txs(4)).unwrap();
        assert_eq!(wrong.finish(), Err(NotRebuilt::RootMismatch));
        partial.fill(vec![all[0].clone(), all[3].clone(), all[6].clone(), all[9].clone()]).unwrap();
        assert_eq!(partial.finish().unwrap(), Some(b));
    }

    #[test]
    fn colliding_short_ids_leave_their_slots_to_be_fetched() {
        let all = txs(4);
        let b = block(all.clone());
        // Two slots with one short ID: neither is filled from the pool.
        let mut c = CompactBlock::of(&b, 3);
        c.short_ids[2] = c.short_ids[1];
        let partial = rebuild(&c, &pool(&all));
        assert_eq!(partial.missing(), vec![1, 2]);
        // Two candidates for one slot: left empty, even if one of them is right.
        let c = CompactBlock::of(&b, 3);
        let mut p = pool(&all);
        let impostor = txs(1).remove(0);
        p.insert(0, (all[0].id(), impostor)); // claims the short ID of slot 0
        let partial = rebuild(&c, &p);
        assert_eq!(partial.missing(), vec![0]);
    }

    #[test]
    fn short_ids_depend_on_the_block_and_the_nonce() {
        let b = block(txs(3));
        assert_ne!(CompactBlock::of(&b, 1).short_ids, CompactBlock::of(&b, 2).short_ids);
        assert!(CompactBlock::decode_short_ids(&[0; 9], 10).is_err(), "not a multiple of 8");
        assert!(CompactBlock::decode_short_ids(&[0; 24], 2).is_err(), "over the limit");
    }
}
