//! # cairn-p2p
//!
//! The peer-to-peer layer of Cairn. Today it holds the node's identity ([`identity`]); the
//! QUIC transport, wire protocol, peer manager, discovery, gossip and sync land here next
//! (see `ARCHITECTURE.md`). It talks to the chain only through `cairn-chain`'s types, never to
//! RocksDB directly.

pub mod identity;

pub use identity::{IdentityError, NodeId, NodeIdentity};
