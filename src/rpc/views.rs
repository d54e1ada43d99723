//! JSON shapes of the RPC (DESIGN §5). Hashes, addresses and keys are lowercase hex; amounts
//! are integers.

use cairn_chain::keys::{PublicKey, SignatureBytes};
use cairn_chain::{Address, Block, Hash, Header, Transaction};
use serde::{Deserialize, Serialize};

use super::error::ApiError;

/// A transaction as shown and accepted. `txid` is derived; if a client sends it, it must match.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TxView {
    /// Derived ID (optional on input).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub txid: Option<Hash>,
    /// Genesis hash of the chain the transaction is for.
    pub chain: Hash,
    /// Sender public key.
    pub from: PublicKey,
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

impl From<&Transaction> for TxView {
    fn from(t: &Transaction) -> Self {
        TxView { txid: Some(t.id()), chain: t.chain, from: t.from, to: t.to, amount: t.amount, fee: t.fee, nonce: t.nonce, signature: t.signature }
    }
}

impl TxView {
    /// The transaction, checking a declared `txid`.
    pub fn into_tx(self) -> Result<Transaction, ApiError> {
        let tx =
            Transaction { chain: self.chain, from: self.from, to: self.to, amount: self.amount, fee: self.fee, nonce: self.nonce, signature: self.signature };
        match self.txid {
            Some(declared) if declared != tx.id() => {
                Err(ApiError::bad_request("txid_mismatch", format!("declared txid {declared} but the transaction hashes to {}", tx.id())))
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
    pub fn into_block(self) -> Result<Block, ApiError> {
        let transactions = self.transactions.into_iter().map(TxView::into_tx).collect::<Result<Vec<_>, _>>()?;
        let block = Block { header: self.header, transactions };
        match self.hash {
            Some(declared) if declared != block.hash() => {
                Err(ApiError::bad_request("hash_mismatch", format!("declared hash {declared} but the header hashes to {}", block.hash())))
            }
            _ => Ok(block),
        }
    }
}
