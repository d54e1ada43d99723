//! # cairn-rpc-types
//!
//! What the RPC reads from a request before it asks the node anything, as pure functions:
//! the JSON views of transactions and blocks ([`views`]) and their conversion into chain
//! types, request bodies ([`body`]: JSON syntax vs shape, a single transaction vs an array
//! with a result per entry, the other request bodies) and query strings and path parameters
//! ([`query`]: limits, history cursors, hex values, block IDs). Every refusal is a
//! [`RequestError`]: a stable code, a bounded message, and whether it is malformed or too
//! large.
//!
//! No HTTP and no RocksDB: the node's handlers (`src/rpc/`) call these functions, the CLI
//! builds its requests with the same views, and the `rpc_json` fuzz target (`fuzz/`) feeds
//! them arbitrary bytes.

pub mod body;
pub mod error;
pub mod query;
pub mod views;

pub use body::{Submission, parse_json, parse_submission};
pub use error::{Rejection, RequestError};
pub use views::{BlockView, TxView};

#[cfg(test)]
mod fuzz_seeds;
#[cfg(test)]
mod tests;
