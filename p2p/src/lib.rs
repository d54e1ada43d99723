//! # cairn-p2p
//!
//! The peer-to-peer layer of Cairn.
//!
//! - [`identity`]: the node key; node ID = its ed25519 public key.
//! - [`tls`], [`transport`]: QUIC (quinn) with TLS 1.3, mutual authentication by self-signed
//!   certificates bound to the node key.
//! - [`wire`]: the message enum and length-delimited framing with explicit limits.
//! - [`handshake`]: compatibility rules (version, chain ID, genesis, self-connection).
//! - [`service`]: the endpoint, accept loop, dialing, peer table, and maintenance loop;
//!   [`peer`]: one task per connection; [`addrbook`]: addresses and backoff; [`bans`]:
//!   misbehaviour scores and bans; [`metrics`]; [`sync`]: gossip and catch-up sync;
//!   [`mdns`]: LAN discovery (advertise, browse, hand compatible peers to the dialer).
//! - [`ports`]: what the node provides — chain identity and tip ([`ports::ChainInfo`]) and
//!   persistence ([`ports::PeerStore`]). This crate never touches RocksDB.
//!
//! Every task hangs off one cancellation token and one task tracker; shutdown closes every
//! connection with a reason.

pub mod addrbook;
pub mod bans;
pub mod config;
pub mod handshake;
pub mod identity;
pub mod mdns;
pub mod metrics;
pub mod peer;
pub mod ports;
pub mod service;
pub mod sync;
pub mod tls;
pub mod transport;
pub mod wire;

pub use config::P2pConfig;
pub use identity::{IdentityError, NodeId, NodeIdentity};
pub use service::{ConnectError, Direction, P2p, P2pError, PeerView};
