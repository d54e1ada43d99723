//! Account state and the state transition of a block.

use foldhash::{HashMap, HashMapExt};

use crate::block::Block;
use crate::encode::{DecodeError, Reader, Writer};
use crate::error::StoreError;
use crate::error::{BlockError, TxError};
use crate::hash::Hash;
use crate::keys::Address;
use crate::tx::Transaction;

/// An account: what it holds and the nonce its next transaction must carry.
/// An address never seen is the default account (balance 0, nonce 0).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Account {
    /// Spendable balance.
    pub balance: u64,
    /// Nonce the next transaction from this account must carry.
    pub nonce: u64,
}

impl Account {
    /// Canonical encoding: `balance u64 | nonce u64`.
    pub fn encode(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.balance.to_le_bytes());
        out[8..].copy_from_slice(&self.nonce.to_le_bytes());
        out
    }
    /// Decodes [`Account::encode`] output.
    pub fn decode(b: &[u8]) -> Result<Account, DecodeError> {
        let mut r = Reader::new(b);
        let a = Account { balance: r.u64("balance")?, nonce: r.u64("nonce")? };
        r.finish()?;
        Ok(a)
    }
    /// Whether this is indistinguishable from an account never seen (stored as absent).
    pub fn is_empty(&self) -> bool {
        *self == Account::default()
    }
}

/// Somewhere accounts can be read from.
pub trait AccountSource {
    /// The account at `a` (default if never seen).
    fn account(&self, a: &Address) -> Result<Account, StoreError>;
}

/// Pending account changes on top of a base source: what a block (or a reorg) would do,
/// before any of it is written.
pub struct Overlay<'a> {
    base: &'a dyn AccountSource,
    changes: HashMap<Address, Account>,
}

impl<'a> Overlay<'a> {
    /// An empty overlay on `base`.
    pub fn new(base: &'a dyn AccountSource) -> Self {
        Overlay { base, changes: HashMap::new() }
    }
    /// An empty overlay on `base` with room for `n` changed accounts (no rehashing while a
    /// block of `n / 2` transfers is applied).
    pub fn with_capacity(base: &'a dyn AccountSource, n: usize) -> Self {
        Overlay { base, changes: HashMap::with_capacity(n) }
    }
    /// Sets an account.
    pub fn set(&mut self, a: Address, acc: Account) {
        self.changes.insert(a, acc);
    }
    /// Every account changed, with its new value.
    pub fn into_changes(self) -> HashMap<Address, Account> {
        self.changes
    }
}

impl AccountSource for Overlay<'_> {
    fn account(&self, a: &Address) -> Result<Account, StoreError> {
        match self.changes.get(a) {
            Some(acc) => Ok(*acc),
            None => self.base.account(a),
        }
    }
}

/// Previous values of every account a block touched, so it can be undone exactly.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Undo {
    /// `(address, value before the block)`, each address once.
    pub prior: Vec<(Address, Account)>,
}

impl Undo {
    /// Canonical encoding: `count u32 | (address | account)*`.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(4 + self.prior.len() * 48);
        w.u32(self.prior.len() as u32);
        for (a, acc) in &self.prior {
            w.bytes(&a.0).bytes(&acc.encode());
        }
        w.finish()
    }
    /// Decodes [`Undo::encode`] output.
    pub fn decode(b: &[u8]) -> Result<Undo, DecodeError> {
        let mut r = Reader::new(b);
        let n = r.count(b.len() / 48, "undo entries")?;
        let mut prior = Vec::with_capacity(n);
        for _ in 0..n {
            let a = Address(r.array("undo address")?);
            let acc = Account::decode(r.take(16, "undo account")?)?;
            prior.push((a, acc));
        }
        r.finish()?;
        Ok(Undo { prior })
    }
}

/// Records the first prior value of each touched account.
struct UndoRecorder {
    seen: HashMap<Address, ()>,
    undo: Undo,
}

impl UndoRecorder {
    fn touch(&mut self, a: Address, prior: Account) {
        if self.seen.insert(a, ()).is_none() {
            self.undo.prior.push((a, prior));
        }
    }
}

/// Applies one transaction's state rules (signature checked elsewhere): chain binding, nonce,
/// balance, checked arithmetic. Returns the fee.
pub fn apply_tx(state: &mut Overlay<'_>, tx: &Transaction, chain: &Hash) -> Result<u64, TxError> {
    apply_tx_recording(state, tx, chain, None)
}

fn apply_tx_recording(state: &mut Overlay<'_>, tx: &Transaction, chain: &Hash, mut rec: Option<&mut UndoRecorder>) -> Result<u64, TxError> {
    if tx.chain != *chain {
        return Err(TxError::WrongChain { expected: *chain, got: tx.chain });
    }
    let from = tx.sender();
    let mut sender = state.account(&from)?;
    if tx.nonce < sender.nonce {
        return Err(TxError::NonceTooLow { expected: sender.nonce, got: tx.nonce });
    }
    if tx.nonce > sender.nonce {
        return Err(TxError::NonceTooHigh { expected: sender.nonce, got: tx.nonce });
    }
    let needed = tx.amount.checked_add(tx.fee).ok_or(TxError::Overflow)?;
    if sender.balance < needed {
        return Err(TxError::InsufficientBalance { balance: sender.balance, needed });
    }
    if let Some(r) = rec.as_deref_mut() {
        r.touch(from, sender);
    }
    sender.balance -= needed;
    sender.nonce = sender.nonce.checked_add(1).ok_or(TxError::Overflow)?;
    state.set(from, sender);
    let mut recipient = state.account(&tx.to)?;
    if let Some(r) = rec {
        r.touch(tx.to, recipient);
    }
    recipient.balance = recipient.balance.checked_add(tx.amount).ok_or(TxError::Overflow)?;
    state.set(tx.to, recipient);
    Ok(tx.fee)
}

/// Applies a block's state transition (every transaction in order, then the farmer's reward
/// plus fees) to `state`, returning the undo record. Stateless checks (signatures, root,
/// proof) are not repeated here.
pub fn apply_block(state: &mut Overlay<'_>, block: &Block, chain: &Hash, reward: u64) -> Result<Undo, BlockError> {
    let touched = 2 * block.transactions.len() + 1;
    let mut rec = UndoRecorder { seen: HashMap::with_capacity(touched), undo: Undo { prior: Vec::with_capacity(touched) } };
    state.changes.reserve(touched);
    let mut fees: u64 = 0;
    for (index, tx) in block.transactions.iter().enumerate() {
        let fee = apply_tx_recording(state, tx, chain, Some(&mut rec)).map_err(|error| BlockError::Transaction { index, id: tx.id(), error })?;
        fees = fees.checked_add(fee).ok_or(BlockError::RewardOverflow)?;
    }
    let farmer = block.header.farmer;
    let mut acc = state.account(&farmer)?;
    rec.touch(farmer, acc);
    acc.balance = acc.balance.checked_add(reward).and_then(|b| b.checked_add(fees)).ok_or(BlockError::RewardOverflow)?;
    state.set(farmer, acc);
    Ok(rec.undo)
}

/// Reverts a block: restores every account in its undo record.
pub fn undo_block(state: &mut Overlay<'_>, undo: &Undo) {
    for (a, acc) in undo.prior.iter().rev() {
        state.set(*a, *acc);
    }
}
