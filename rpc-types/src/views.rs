//! JSON shapes of transactions and blocks in the RPC (DESIGN §5), shown and accepted. Hashes,
//! addresses and keys are lowercase hex; amounts are integers.

use cairn_chain::keys::{PublicKey, SignatureBytes};
use cairn_chain::{Address, Block, Hash, Header, Transaction};
use serde::{Deserialize, Serialize};

use crate::error::RequestError;

/// A transaction as shown and accepted. `txid` and `from` are derived; a client may send them,
/// and they must then match. `from` is the sender's address, `public_key` its key.
///
/// Accepted on input as well: the round-1 form without `public_key`, where `from` is the
/// sender's public key (both are 32 bytes of hex, so a `from` without a `public_key` is read
/// as the key).
#[derive(Serialize, Deserialize)]
#[serde(try_from = "TxInput")]
pub struct TxView {
    /// Derived ID (optional on input).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub txid: Option<Hash>,
    /// Genesis hash of the chain the transaction is for.
    pub chain: Hash,
    /// Sender address (derived from `public_key`).
    pub from: Address,
    /// Sender public key.
    pub public_key: PublicKey,
    /// Recipient.
    pub to: Address,
    /// Amount.
    pub amount: u64,
    /// Fee.
    pub fee: u64,
    /// Sender nonce.
    pub nonce: u64,
    /// Signature.
    pub signature: SignatureBytes,
}

/// A transaction as a client may send it (see [`TxView`]).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TxInput {
    #[serde(default)]
    txid: Option<Hash>,
    chain: Hash,
    #[serde(default)]
    from: Option<Hash>,
    #[serde(default)]
    public_key: Option<PublicKey>,
    to: Address,
    amount: u64,
    fee: u64,
    nonce: u64,
    signature: SignatureBytes,
}

impl TryFrom<TxInput> for TxView {
    type Error = String;
    fn try_from(i: TxInput) -> Result<Self, String> {
        let public_key = match (i.public_key, i.from) {
            (Some(k), Some(from)) if k.address().0 != from.0 => {
                return Err(format!("from {from} is not the address of public_key {k} ({})", k.address()));
            }
            (Some(k), _) => k,
            // The round-1 form: `from` is the key.
            (None, Some(from)) => PublicKey(from.0),
            (None, None) => return Err("missing field `public_key`".into()),
        };
        Ok(TxView {
            txid: i.txid,
            chain: i.chain,
            from: public_key.address(),
            public_key,
            to: i.to,
            amount: i.amount,
            fee: i.fee,
            nonce: i.nonce,
            signature: i.signature,
        })
    }
}

impl From<&Transaction> for TxView {
    fn from(t: &Transaction) -> Self {
        TxView {
            txid: Some(t.id()),
            chain: t.chain,
            from: t.from.address(),
            public_key: t.from,
            to: t.to,
            amount: t.amount,
            fee: t.fee,
            nonce: t.nonce,
            signature: t.signature,
        }
    }
}

impl TxView {
    /// The transaction, checking a declared `txid`.
    pub fn into_tx(self) -> Result<Transaction, RequestError> {
        let tx = Transaction {
            chain: self.chain,
            from: self.public_key,
            to: self.to,
            amount: self.amount,
            fee: self.fee,
            nonce: self.nonce,
            signature: self.signature,
        };
        match self.txid {
            Some(declared) if declared != tx.id() => {
                Err(RequestError::malformed("txid_mismatch", format!("declared txid {declared} but the transaction hashes to {}", tx.id())))
            }
            _ => Ok(tx),
        }
    }
}

/// A block as shown and accepted. `hash` is derived; if a client sends it, it must match.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockView {
    /// Derived hash (optional on input).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<Hash>,
    /// The header.
    pub header: Header,
    /// Transactions.
    pub transactions: Vec<TxView>,
}

impl From<&Block> for BlockView {
    fn from(b: &Block) -> Self {
        BlockView { hash: Some(b.hash()), header: b.header.clone(), transactions: b.transactions.iter().map(TxView::from).collect() }
    }
}

impl BlockView {
    /// The block, checking declared hashes.
    pub fn into_block(self) -> Result<Block, RequestError> {
        let transactions = self.transactions.into_iter().map(TxView::into_tx).collect::<Result<Vec<_>, _>>()?;
        let block = Block { header: self.header, transactions };
        match self.hash {
            Some(declared) if declared != block.hash() => {
                Err(RequestError::malformed("hash_mismatch", format!("declared hash {declared} but the header hashes to {}", block.hash())))
            }
            _ => Ok(block),
        }
    }
}
