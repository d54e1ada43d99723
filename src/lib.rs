//! # cairn
//!
//! The Cairn node as a library: [`Node::start`] runs a whole node in-process from a
//! [`config::NodeConfig`] (the binary, `cairn devnet` and the tests all use it).
//!
//! - [`chain_service`]: the thread that owns the chain engine and mempool, and its async handle.
//! - [`rpc`]: the HTTP + JSON API.
//! - [`farm`]: the nonce search and the built-in farmer.
//! - [`config`]: defaults, config file, environment and flags.
//! - [`cli`]: the `cairn` commands (the binary only parses arguments and calls these).
//! - [`devnet`]: `cairn devnet`, many nodes in one process with live status and commands.
//! - [`metrics`]: Prometheus counters.
//! - [`p2p_bridge`]: the chain and store as the p2p layer sees them.

pub mod chain_service;
pub mod cli;
pub mod config;
pub mod devnet;
pub mod events;
pub mod farm;
pub mod metrics;
pub mod node;
pub mod node_log;
pub mod p2p_bridge;
pub mod rpc;

pub use node::{Node, NodeError};
