//! # cairn-chain
//!
//! The chain core of Cairn: data types and their canonical encoding ([`encode`]), hashing
//! ([`hash`]), keys and addresses ([`keys`]), the signature rule ([`signature`]), transactions
//! ([`tx`]), blocks and the Merkle root ([`block`]), compact blocks ([`compact`]), proof of
//! work ([`pow`]), chain specs and genesis ([`spec`]), account state ([`state`]), validation
//! errors ([`error`]), the stateless rules ([`check`]), the engine that validates and chooses
//! the best chain ([`chain`]), the mempool ([`mempool`]) and the batches on their way into it ([`in_flight`]) and the store ([`store`]: RocksDB, or
//! memory).
//!
//! This crate knows nothing about networking or async runtimes: every function is synchronous
//! and the store blocks, so callers run it on a dedicated thread or `spawn_blocking`.
//!
//! # Features
//! `rocksdb` (default): the store's RocksDB backend (`Store::open`). Without it nothing here
//! links RocksDB, and everything else is the same, `Chain` included, over
//! [`Store::memory`]: `cairn-p2p` and the fuzz targets (`fuzz/`) build it so.

pub mod accounts;
pub mod block;
pub mod chain;
pub mod check;
pub mod compact;
pub mod encode;
pub mod error;
pub mod generations;
pub mod hash;
pub mod in_flight;
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
pub use chain::{Chain, Outcome, locator_heights};
pub use check::{CheckResult, CheckedBlock, check_blocks, check_header_alone, check_stateless, check_stateless_with};
pub use error::{BlockError, Fault, StoreError, TxError};
pub use hash::Hash;
pub use keys::{Address, Keypair, PublicKey};
pub use mempool::{Mempool, MempoolLimits};
pub use pool_log::PoolLog;
pub use pow::{Target, Work};
pub use sigcache::SigCache;
pub use spec::ChainSpec;
pub use state::{Account, AccountSource};
pub use store::{HeaderRecord, Store};
pub use tx::{Transaction, TxId};
pub use waiting::Waiting;
