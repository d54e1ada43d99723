//! # cairn-chain
//!
//! The chain core of Cairn: data types and their canonical encoding ([`encode`]), hashing
//! ([`hash`]), keys and addresses ([`keys`]), the signature rule ([`signature`]), transactions
//! ([`tx`]), blocks and the Merkle root ([`block`]), compact blocks ([`compact`]), proof of
//! work ([`pow`]), chain specs and genesis ([`spec`]), account state ([`state`]), validation
//! errors ([`error`]), the engine that validates and chooses the best chain ([`chain`]), the
//! mempool ([`mempool`]) and the RocksDB store ([`store`]).
//!
//! This crate knows nothing about networking or async runtimes: every function is synchronous
//! and the store blocks, so callers run it on a dedicated thread or `spawn_blocking`.

pub mod accounts;
pub mod block;
pub mod chain;
pub mod compact;
pub mod encode;
pub mod error;
pub mod hash;
pub mod keys;
pub mod mempool;
pub mod pool_log;
pub mod pow;
pub mod sigcache;
pub mod signature;
pub mod spec;
pub mod state;
pub mod store;
pub mod tx;
pub mod waiting;

pub use block::{Block, Header};
pub use chain::{Chain, CheckResult, CheckedBlock, Outcome, check_blocks, check_header_alone, check_stateless, check_stateless_with};
pub use error::{BlockError, Fault, TxError};
pub use hash::Hash;
pub use keys::{Address, Keypair, PublicKey};
pub use mempool::{Mempool, MempoolLimits};
pub use pool_log::PoolLog;
pub use pow::{Target, Work};
pub use sigcache::SigCache;
pub use spec::ChainSpec;
pub use state::{Account, AccountSource};
pub use store::{HeaderRecord, Store, StoreError};
pub use tx::{Transaction, TxId};
pub use waiting::Waiting;
