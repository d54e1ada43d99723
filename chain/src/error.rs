//! Typed reasons a block or transaction is refused. Each has a stable `code()` that the RPC
//! returns and `/metrics` counts by.

use std::path::PathBuf;

use crate::encode::DecodeError;
use crate::hash::Hash;
use crate::tx::TxId;

/// Why a transaction is invalid (in a block or for the mempool).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// The signature does not verify under the chain's rule.
    #[error("bad signature")]
    BadSignature,
    /// The transaction is bound to another chain's genesis.
    #[error("transaction is for chain {got}, this chain is {expected}")]
    WrongChain {
        /// This chain's genesis hash.
        expected: Hash,
        /// The transaction's chain field.
        got: Hash,
    },
    /// The nonce was already used.
    #[error("nonce too low: expected {expected}, got {got}")]
    NonceTooLow {
        /// The sender's next usable nonce.
        expected: u64,
        /// The transaction's nonce.
        got: u64,
    },
    /// The nonce skips ahead of the sender's sequence.
    #[error("nonce too high: expected {expected}, got {got}")]
    NonceTooHigh {
        /// The sender's next usable nonce.
        expected: u64,
        /// The transaction's nonce.
        got: u64,
    },
    /// The sender cannot pay amount plus fee.
    #[error("insufficient balance: have {balance}, need {needed}")]
    InsufficientBalance {
        /// The sender's spendable balance.
        balance: u64,
        /// What the transaction (plus pending ones) needs.
        needed: u64,
    },
    /// Arithmetic on amounts would overflow.
    #[error("amount arithmetic overflows")]
    Overflow,
    /// The fee is below the chain's minimum, or does not beat the transaction it replaces.
    #[error("fee {fee} too low: at least {min} needed")]
    FeeTooLow {
        /// The offered fee.
        fee: u64,
        /// The least acceptable.
        min: u64,
    },
    /// The transaction is already pending or included.
    #[error("transaction {0} is already known")]
    AlreadyKnown(TxId),
    /// The sender already has the maximum number of pending transactions.
    #[error("sender has too many pending transactions (max {0})")]
    TooManyPending(usize),
    /// The mempool is full of transactions paying at least as much.
    #[error("mempool full")]
    MempoolFull,
    /// The store failed while reading state; the transaction was not judged.
    #[error("storage: {0}")]
    Store(String),
}

impl TxError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            TxError::BadSignature => "bad_signature",
            TxError::WrongChain { .. } => "wrong_chain",
            TxError::NonceTooLow { .. } => "nonce_too_low",
            TxError::NonceTooHigh { .. } => "nonce_too_high",
            TxError::InsufficientBalance { .. } => "insufficient_balance",
            TxError::Overflow => "overflow",
            TxError::FeeTooLow { .. } => "fee_too_low",
            TxError::AlreadyKnown(_) => "already_known",
            TxError::TooManyPending(_) => "too_many_pending",
            TxError::MempoolFull => "mempool_full",
            TxError::Store(_) => "storage_error",
        }
    }
}

/// Why a block is invalid or cannot be accepted now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// Unsupported header version.
    #[error("unsupported header version {0}")]
    BadVersion(u32),
    /// More transactions than the chain allows.
    #[error("{count} transactions, at most {max} allowed")]
    TooManyTransactions {
        /// Transactions in the block.
        count: usize,
        /// The limit.
        max: u32,
    },
    /// Encoded size over the chain's limit.
    #[error("block is {size} bytes, at most {max} allowed")]
    TooLarge {
        /// Encoded size.
        size: usize,
        /// The limit.
        max: u32,
    },
    /// The parent is not known.
    #[error("unknown parent {0}")]
    UnknownParent(Hash),
    /// Height is not parent height + 1.
    #[error("height {got}, expected {expected}")]
    BadHeight {
        /// Parent height + 1.
        expected: u64,
        /// The header's height.
        got: u64,
    },
    /// Timestamp not above the median of the last 11 blocks.
    #[error("timestamp {got} not above median time past {median}")]
    TimestampTooOld {
        /// Median of the parent's last 11 timestamps.
        median: u64,
        /// The header's timestamp.
        got: u64,
    },
    /// Timestamp too far ahead of the local clock.
    #[error("timestamp {got} more than {max_drift_ms} ms ahead of local time {now}")]
    TimestampInFuture {
        /// The header's timestamp.
        got: u64,
        /// Local time.
        now: u64,
        /// Allowed drift.
        max_drift_ms: u64,
    },
    /// The target is not the one the retarget rule gives.
    #[error("target {got}, expected {expected}")]
    BadTarget {
        /// The required target.
        expected: String,
        /// The header's target.
        got: String,
    },
    /// The header hash does not meet the target.
    #[error("header hash does not meet the target")]
    BadProof,
    /// The transaction root does not match the transactions.
    #[error("transaction root {got}, computed {computed}")]
    BadMerkleRoot {
        /// Root computed from the transactions.
        computed: Hash,
        /// The header's root.
        got: Hash,
    },
    /// The same transaction appears twice.
    #[error("transaction {0} appears twice")]
    DuplicateTransaction(TxId),
    /// A transaction is invalid.
    #[error("transaction {index} ({id}): {error}")]
    Transaction {
        /// Position in the block.
        index: usize,
        /// Its ID.
        id: TxId,
        /// What is wrong with it.
        error: TxError,
    },
    /// The farmer's reward plus fees overflows.
    #[error("reward plus fees overflows")]
    RewardOverflow,
    /// The block (or an ancestor) was already found invalid.
    #[error("block or an ancestor is known to be invalid")]
    KnownInvalid,
    /// Switching to the block's branch would undo more blocks than allowed.
    #[error("reorg of {depth} blocks exceeds the maximum {max}")]
    ReorgTooDeep {
        /// Blocks that would be undone.
        depth: u64,
        /// The configured limit.
        max: u64,
    },
    /// The store failed; the block was not judged.
    #[error("storage: {0}")]
    Store(String),
}

impl BlockError {
    /// Stable machine-readable code (a transaction error's own code for `Transaction`).
    pub fn code(&self) -> &'static str {
        match self {
            BlockError::BadVersion(_) => "bad_version",
            BlockError::TooManyTransactions { .. } => "too_many_transactions",
            BlockError::TooLarge { .. } => "block_too_large",
            BlockError::UnknownParent(_) => "unknown_parent",
            BlockError::BadHeight { .. } => "bad_height",
            BlockError::TimestampTooOld { .. } => "timestamp_too_old",
            BlockError::TimestampInFuture { .. } => "timestamp_in_future",
            BlockError::BadTarget { .. } => "bad_target",
            BlockError::BadProof => "bad_proof",
            BlockError::BadMerkleRoot { .. } => "bad_merkle_root",
            BlockError::DuplicateTransaction(_) => "duplicate_transaction",
            BlockError::Transaction { error, .. } => error.code(),
            BlockError::RewardOverflow => "overflow",
            BlockError::KnownInvalid => "known_invalid",
            BlockError::ReorgTooDeep { .. } => "reorg_too_deep",
            BlockError::Store(_) => "storage_error",
        }
    }

    /// Whether the block itself fails a rule (now: a block from the future counts), as
    /// opposed to the node not being able to judge it (unknown parent, storage failure, too
    /// deep). Peers are judged by [`BlockError::fault`], which tells the future apart.
    pub fn is_invalid(&self) -> bool {
        matches!(self.fault(), Fault::Invalid | Fault::NotYetValid)
    }
}

/// How a failure reflects on whoever sent the data: the one classification every caller
/// (the p2p layer's verdicts, the RPC) uses. Each `fault()` below matches every variant by
/// name, so a new error cannot be added without deciding its class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The data breaks a consensus rule whatever the time or state: its sender misbehaved
    /// (an honest node checks before it relays, under the same rules).
    Invalid,
    /// Not valid yet (a timestamp ahead of our clock): dropped, nobody punished, and the same
    /// data may be accepted when offered again later.
    NotYetValid,
    /// Cannot be judged without more data (an unknown parent): not the sender's fault.
    Unjudged,
    /// Refused by this node's state or policy (a nonce already used, a full mempool, a reorg
    /// deeper than we allow): honest peers race into these, so never held against them.
    Policy,
    /// Our own failure (storage): never the peer's fault.
    Local,
}

impl TxError {
    /// How this failure reflects on the transaction's sender.
    pub fn fault(&self) -> Fault {
        match self {
            TxError::BadSignature | TxError::WrongChain { .. } | TxError::Overflow => Fault::Invalid,
            TxError::NonceTooLow { .. }
            | TxError::NonceTooHigh { .. }
            | TxError::InsufficientBalance { .. }
            | TxError::FeeTooLow { .. }
            | TxError::AlreadyKnown(_)
            | TxError::TooManyPending(_)
            | TxError::MempoolFull => Fault::Policy,
            TxError::Store(_) => Fault::Local,
        }
    }
}

impl BlockError {
    /// How this failure reflects on the block's sender. Inside a block every transaction
    /// rule is consensus (the state it applies to is fixed by the parent), so a transaction
    /// error there is `Invalid` unless the store failed.
    pub fn fault(&self) -> Fault {
        match self {
            BlockError::BadVersion(_)
            | BlockError::TooManyTransactions { .. }
            | BlockError::TooLarge { .. }
            | BlockError::BadHeight { .. }
            | BlockError::TimestampTooOld { .. }
            | BlockError::BadTarget { .. }
            | BlockError::BadProof
            | BlockError::BadMerkleRoot { .. }
            | BlockError::DuplicateTransaction(_)
            | BlockError::RewardOverflow
            | BlockError::KnownInvalid => Fault::Invalid,
            BlockError::Transaction { error: TxError::Store(_), .. } => Fault::Local,
            BlockError::Transaction { .. } => Fault::Invalid,
            BlockError::TimestampInFuture { .. } => Fault::NotYetValid,
            BlockError::UnknownParent(_) => Fault::Unjudged,
            BlockError::ReorgTooDeep { .. } => Fault::Policy,
            BlockError::Store(_) => Fault::Local,
        }
    }
}

impl From<StoreError> for TxError {
    fn from(e: StoreError) -> Self {
        TxError::Store(e.to_string())
    }
}

impl From<StoreError> for BlockError {
    fn from(e: StoreError) -> Self {
        BlockError::Store(e.to_string())
    }
}

/// Storage failures. Here rather than in `store` because the state and mempool code read
/// accounts through [`crate::AccountSource`] from stores of any kind.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// RocksDB reported an error.
    #[cfg(feature = "rocksdb")]
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    /// The data directory is locked by another process.
    #[error("data dir {0} is in use by another cairn process")]
    Locked(PathBuf),
    /// The data directory belongs to another chain.
    #[error("{0}")]
    WrongChain(Box<ChainMismatch>),
    /// The data directory was written by an incompatible version.
    #[error("data dir {dir} has schema version {found}, this build reads {expected}")]
    Schema {
        /// The directory.
        dir: PathBuf,
        /// Version stored there.
        found: u32,
        /// Version this build writes.
        expected: u32,
    },
    /// Stored bytes do not decode: the database is corrupt.
    #[error("corrupt {what}: {source}")]
    Corrupt {
        /// Which record.
        what: &'static str,
        /// The decode failure.
        source: DecodeError,
    },
    /// A record the invariants require is missing.
    #[error("missing {0}")]
    Missing(String),
}

/// A data directory made for one chain opened with the spec of another.
#[derive(Debug)]
pub struct ChainMismatch {
    /// The directory.
    pub dir: PathBuf,
    /// Chain ID stored there.
    pub found_chain: String,
    /// Genesis stored there (hex).
    pub found_genesis: String,
    /// Chain ID of the loaded spec.
    pub want_chain: String,
    /// Genesis of the loaded spec.
    pub want_genesis: Hash,
}

impl std::fmt::Display for ChainMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "data dir {} holds chain '{}' (genesis {}), but the chain spec is '{}' (genesis {})",
            self.dir.display(),
            self.found_chain,
            self.found_genesis,
            self.want_chain,
            self.want_genesis
        )
    }
}
