//! Signed transfers between accounts.

use serde::{Deserialize, Serialize};

use crate::encode::{DecodeError, Reader, Writer};
use crate::hash::Hash;
use crate::keys::{Address, Keypair, PublicKey, SignatureBytes};

/// Domain separator for the signed message, so a transaction signature is never valid as
/// anything else.
const SIGNING_DOMAIN: &[u8] = b"cairn/tx/v1";

/// A transfer of `amount` from the owner of `from` to `to`, paying `fee` to the farmer.
///
/// # Canonical encoding (184 bytes)
/// `chain (32) | from (32) | to (32) | amount u64 | fee u64 | nonce u64 | signature (64)`
///
/// `chain` is the genesis hash of the chain the transaction is for: a signature made for one
/// chain is void on every other. The signature covers
/// `"cairn/tx/v1" | chain | from | to | amount | fee | nonce`.
/// The transaction ID is BLAKE3 of the whole 184-byte encoding.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transaction {
    /// Genesis hash of the chain this transaction is valid on.
    pub chain: Hash,
    /// Sender's public key; the sender's address is derived from it.
    pub from: PublicKey,
    /// Recipient address.
    pub to: Address,
    /// Amount moved.
    pub amount: u64,
    /// Fee paid to the farmer of the including block.
    pub fee: u64,
    /// Sender's sequence number: must equal the sender's account nonce when applied.
    pub nonce: u64,
    /// Ed25519 signature over the signing message (see the type's docs).
    pub signature: SignatureBytes,
}

/// A transaction identifier (BLAKE3 of the canonical encoding).
pub type TxId = Hash;

impl Transaction {
    /// Size of the canonical encoding.
    pub const ENCODED_LEN: usize = 32 * 3 + 8 * 3 + 64;

    /// Builds and signs a transaction.
    pub fn signed(key: &Keypair, chain: Hash, to: Address, amount: u64, fee: u64, nonce: u64) -> Self {
        let mut tx = Transaction { chain, from: key.public(), to, amount, fee, nonce, signature: SignatureBytes([0; 64]) };
        tx.signature = key.sign(&tx.signing_message());
        tx
    }

    /// The exact bytes the sender signs.
    pub fn signing_message(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(SIGNING_DOMAIN.len() + 120);
        w.bytes(SIGNING_DOMAIN);
        self.write_unsigned(&mut w);
        w.finish()
    }

    fn write_unsigned(&self, w: &mut Writer) {
        w.bytes(&self.chain.0).bytes(&self.from.0).bytes(&self.to.0).u64(self.amount).u64(self.fee).u64(self.nonce);
    }

    /// Appends the canonical encoding.
    pub fn write(&self, w: &mut Writer) {
        self.write_unsigned(w);
        w.bytes(&self.signature.0);
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(Self::ENCODED_LEN);
        self.write(&mut w);
        w.finish()
    }

    /// Reads one transaction.
    pub fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Transaction {
            chain: Hash(r.array("tx chain")?),
            from: PublicKey(r.array("tx from")?),
            to: Address(r.array("tx to")?),
            amount: r.u64("tx amount")?,
            fee: r.u64("tx fee")?,
            nonce: r.u64("tx nonce")?,
            signature: SignatureBytes(r.array("tx signature")?),
        })
    }

    /// Decodes exactly one transaction.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let tx = Self::read(&mut r)?;
        r.finish()?;
        Ok(tx)
    }

    /// The canonical encoding, in a fixed-size array (no allocation).
    pub fn to_bytes(&self) -> [u8; Self::ENCODED_LEN] {
        let mut b = [0u8; Self::ENCODED_LEN];
        b[..32].copy_from_slice(&self.chain.0);
        b[32..64].copy_from_slice(&self.from.0);
        b[64..96].copy_from_slice(&self.to.0);
        b[96..104].copy_from_slice(&self.amount.to_le_bytes());
        b[104..112].copy_from_slice(&self.fee.to_le_bytes());
        b[112..120].copy_from_slice(&self.nonce.to_le_bytes());
        b[120..].copy_from_slice(&self.signature.0);
        b
    }

    /// The transaction ID (hashed from [`Transaction::to_bytes`]: an ID is taken several times
    /// on a transaction's way from intake to a block, and the encoding's heap allocation was a
    /// fifth of its cost).
    pub fn id(&self) -> TxId {
        Hash::digest(&self.to_bytes())
    }

    /// The sender's address.
    pub fn sender(&self) -> Address {
        self.from.address()
    }

    /// Whether the signature is valid under the chain's signature rule.
    pub fn verify_signature(&self) -> bool {
        crate::signature::verify(&self.from, &self.signing_message(), &self.signature)
    }
}
