//! # cairn-chain
//!
//! The chain core of Cairn: data types and their canonical encoding ([`encode`]), hashing
//! ([`hash`]), keys and addresses ([`keys`]), the signature rule ([`signature`]), transactions
//! ([`tx`]), blocks and the Merkle root ([`block`]), compact blocks ([`compact`]), proof of
//! work ([`pow`]), chain specs and genesis ([`spec`]), account state ([`state`]), validation
//! errors ([`error`]), the stateless rules ([`check`]), the engine that validates and chooses
//! the best chain (`chain`), the mempool ([`mempool`]) and the RocksDB store (`store`).
//!
//! This crate knows nothing about networking or async runtimes: every function is synchronous
//! and the store blocks, so callers run it on a dedicated thread or `spawn_blocking`.
//!
//! # Features
//! `store` (default): the RocksDB store and what needs it (`chain::Chain`, `pool_log`).
//! Without it nothing here links RocksDB: `cairn-p2p` and the fuzz targets (`fuzz/`) build
//! the types, encoding, stateless rules, compact blocks and mempool alone.

pub mod accounts;
pub mod block;
#[cfg(feature = "store")]
pub mod chain;
pub mod check;
pub mod compact;
pub mod encode;
pub mod error;
pub mod hash;
pub mod keys;
pub mod mempool;
#[cfg(feature = "store")]
pub mod pool_log;
pub mod pow;
pub mod sigcache;
pub mod signature;
pub mod spec;
pub mod state;
#[cfg(feature = "store")]
pub mod store;
pub mod tx;
pub mod waiting;

pub use block::{Block, Header};
#[cfg(feature = "store")]
pub use chain::{Chain, Outcome};
pub use check::{CheckResult, CheckedBlock, check_blocks, check_header_alone, check_stateless, check_stateless_with};
pub use error::{BlockError, Fault, StoreError, TxError};
pub use hash::Hash;
pub use keys::{Address, Keypair, PublicKey};
pub use mempool::{Mempool, MempoolLimits};
#[cfg(feature = "store")]
pub use pool_log::PoolLog;
pub use pow::{Target, Work};
pub use sigcache::SigCache;
pub use spec::ChainSpec;
pub use state::{Account, AccountSource};
#[cfg(feature = "store")]
pub use store::{HeaderRecord, Store};
pub use tx::{Transaction, TxId};
pub use waiting::Waiting;
