//! Headers, blocks and the transaction Merkle root.

use serde::{Deserialize, Serialize};

use crate::encode::{DecodeError, Reader, Writer};
use crate::hash::Hash;
use crate::keys::Address;
use crate::pow::Target;
use crate::tx::{Transaction, TxId};

/// Header format version this code produces and accepts.
pub const HEADER_VERSION: u32 = 1;

/// A block header.
///
/// # Canonical encoding (156 bytes)
/// `version u32 | height u64 | prev_hash (32) | tx_root (32) | timestamp u64 (ms since the
/// Unix epoch) | target (32, big-endian) | nonce u64 | farmer (32)`
///
/// The block hash is BLAKE3 of these bytes.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// Header format version ([`HEADER_VERSION`]).
    pub version: u32,
    /// Distance from genesis (genesis is 0).
    pub height: u64,
    /// Hash of the parent header (for genesis: BLAKE3 of the chain spec's canonical encoding).
    pub prev_hash: Hash,
    /// Merkle root of the block's transaction IDs ([`merkle_root`]).
    pub tx_root: Hash,
    /// Milliseconds since the Unix epoch.
    pub timestamp: u64,
    /// Difficulty target this block must meet.
    pub target: Target,
    /// Free field the farmer varies to meet the target.
    pub nonce: u64,
    /// Address credited with the block reward and fees.
    pub farmer: Address,
}

impl Header {
    /// Size of the canonical encoding.
    pub const ENCODED_LEN: usize = 4 + 8 + 32 + 32 + 8 + 32 + 8 + 32;
    /// Byte offset of `nonce` in the encoding (farmers rewrite it in place).
    pub const NONCE_OFFSET: usize = 4 + 8 + 32 + 32 + 8 + 32;

    /// Appends the canonical encoding.
    pub fn write(&self, w: &mut Writer) {
        w.u32(self.version)
            .u64(self.height)
            .bytes(&self.prev_hash.0)
            .bytes(&self.tx_root.0)
            .u64(self.timestamp)
            .bytes(&self.target.0)
            .u64(self.nonce)
            .bytes(&self.farmer.0);
    }

    /// The canonical encoding.
    pub fn encode(&self) -> [u8; Self::ENCODED_LEN] {
        let mut w = Writer::with_capacity(Self::ENCODED_LEN);
        self.write(&mut w);
        let v = w.finish();
        let mut out = [0u8; Self::ENCODED_LEN];
        out.copy_from_slice(&v);
        out
    }

    /// Reads one header.
    pub fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Header {
            version: r.u32("header version")?,
            height: r.u64("header height")?,
            prev_hash: Hash(r.array("header prev_hash")?),
            tx_root: Hash(r.array("header tx_root")?),
            timestamp: r.u64("header timestamp")?,
            target: Target(r.array("header target")?),
            nonce: r.u64("header nonce")?,
            farmer: Address(r.array("header farmer")?),
        })
    }

    /// Decodes exactly one header.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let h = Self::read(&mut r)?;
        r.finish()?;
        Ok(h)
    }

    /// The block hash.
    pub fn hash(&self) -> Hash {
        Hash::digest(&self.encode())
    }
}

/// A header and its transactions.
///
/// # Canonical encoding
/// `header (156) | tx count u32 | transactions (184 each)`
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Block {
    /// The header.
    pub header: Header,
    /// The transactions, in application order.
    pub transactions: Vec<Transaction>,
}

impl Block {
    /// The block hash (the header's).
    pub fn hash(&self) -> Hash {
        self.header.hash()
    }

    /// Size of the canonical encoding.
    pub fn encoded_len(&self) -> usize {
        Header::ENCODED_LEN + 4 + self.transactions.len() * Transaction::ENCODED_LEN
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(self.encoded_len());
        self.header.write(&mut w);
        write_transactions(&mut w, &self.transactions);
        w.finish()
    }

    /// Decodes a block of at most `max_txs` transactions.
    pub fn decode(bytes: &[u8], max_txs: usize) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let header = Header::read(&mut r)?;
        let transactions = read_transactions(&mut r, max_txs)?;
        r.finish()?;
        Ok(Block { header, transactions })
    }

    /// IDs of the transactions, in order.
    pub fn tx_ids(&self) -> Vec<TxId> {
        self.transactions.iter().map(Transaction::id).collect()
    }
}

/// Appends a transaction list (count, then each).
pub fn write_transactions(w: &mut Writer, txs: &[Transaction]) {
    w.u32(u32::try_from(txs.len()).unwrap_or(u32::MAX));
    for tx in txs {
        tx.write(w);
    }
}

/// Reads a transaction list of at most `max` entries, never reserving more than the input
/// can actually hold.
pub fn read_transactions(r: &mut Reader<'_>, max: usize) -> Result<Vec<Transaction>, DecodeError> {
    let n = r.count(max, "transactions")?;
    if r.remaining() < n.saturating_mul(Transaction::ENCODED_LEN) {
        return Err(DecodeError::Truncated("transactions"));
    }
    let mut txs = Vec::with_capacity(n);
    for _ in 0..n {
        txs.push(Transaction::read(r)?);
    }
    Ok(txs)
}

/// Merkle root over transaction IDs.
///
/// Leaves are the IDs; an inner node is `BLAKE3(0x01 | left | right)`; a level with an odd
/// count carries its last node up unchanged (no duplication, so no two different lists share a
/// root the way Bitcoin's duplicated-last-leaf tree allows). The empty list's root is all zeroes.
pub fn merkle_root(ids: &[TxId]) -> Hash {
    if ids.is_empty() {
        return Hash::ZERO;
    }
    let mut level: Vec<Hash> = ids.to_vec();
    while level.len() > 1 {
        let mut next = Vec::with_capacity(level.len().div_ceil(2));
        for pair in level.chunks(2) {
            match pair {
                [l, r] => {
                    let mut h = blake3::Hasher::new();
                    h.update(&[1]).update(&l.0).update(&r.0);
                    next.push(Hash(*h.finalize().as_bytes()));
                }
                [single] => next.push(*single),
                _ => unreachable!("chunks(2) yields one or two"),
            }
        }
        level = next;
    }
    level[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merkle_root_shapes() {
        let a = Hash::digest(b"a");
        let b = Hash::digest(b"b");
        let c = Hash::digest(b"c");
        assert_eq!(merkle_root(&[]), Hash::ZERO);
        assert_eq!(merkle_root(&[a]), a);
        assert_ne!(merkle_root(&[a, b]), merkle_root(&[b, a]));
        // No CVE-2012-2459-style collision: [a,b,c] and [a,b,c,c] differ.
        assert_ne!(merkle_root(&[a, b, c]), merkle_root(&[a, b, c, c]));
    }
}
