//! # cairn-p2p
//!
//! The peer-to-peer layer of Cairn: QUIC transport with node identities, the wire protocol
//! (specified in `PROTOCOL.md` at the repository root), peers, discovery, gossip and
//! catch-up sync.
//!
//! ## Actor map
//!
//! Every piece of state has one owner; owners talk over bounded channels with typed
//! messages, and publish what readers need as immutable snapshots on `watch` channels.
//!
//! ```text
//!                      P2p (service.rs: the node's handle; sends messages, reads snapshots)
//!                        │ ManagerMsg                              ▲ watch: Snapshot, SyncStatus
//!                        ▼                                         │
//!  accept loop ──▶ handshake tasks ──Incoming/Admit/Register──▶ PEER MANAGER (manager/)
//!  (connection.rs)  (connection.rs:                    owns: peer table, address book, bans
//!                   sans-IO Handshake)                 and scores, block list, dialing
//!                        │ registered                   │ try_send PeerCmd · cancel token
//!                        ▼                              ▼
//!                   PEER TASKS (peer/task.rs, one per connection, sans-IO PeerProtocol)
//!                   owns: its connection, heartbeat, rate limit, request tracking
//!                   ──encoded messages──▶ its WRITER (peer/writer.rs): owns the sending
//!                   half, so reading never waits on a send
//!                        │ SyncMsg (decoded,           ▲ try_send PeerCmd
//!                        ▼ checked alone)              │ (GetHeaders, GetBlocks, CompactBlock)
//!                   SYNC TASK (sync/) ─────────────────┘
//!                   owns: download schedule, orphan pool, import pipeline, block sources
//!                        │ Misbehaved{reply}
//!                        ▼
//!                   PEER MANAGER
//!
//!  mDNS task (mdns.rs) ──Discovered/Withdrawn──▶ PEER MANAGER
//!  tx relay task (sync/gossip.rs) ◀──RelayMsg (Seen, Announced)── peer tasks; reads the
//!  manager's Snapshot (inboxes) and try_sends the IDs of new mempool transactions to every
//!  peer but their source (tx_ids, 100 ms / 4096), the mempool's IDs to a peer that joins,
//!  the next part of the mempool to every peer every 10 s, and get_txs for announced
//!  transactions the chain lacks
//! ```
//!
//! | channel | bound | when full |
//! |---|---|---|
//! | `ManagerMsg` | [`config::MANAGER_INBOX`] | senders wait (mDNS announcements are dropped: the LAN repeats them) |
//! | `SyncMsg` | [`sync::SYNC_INBOX`] | the peer task waits: back-pressure on the peer that sends most |
//! | `PeerCmd` (per peer) | [`config::PEER_INBOX`] | the manager and the sync task never wait: a request is taken back, gossip dropped |
//! | `RelayMsg` | `channels::RELAY_INBOX` | the peer task waits (back-pressure on the peer whose messages made the notes; the relay waits only on the chain): no note is lost |
//! | a peer's outbox | [`peer::writer`]: 8 MiB, 4096 messages | gossip (`tx_ids`, `get_txs`, `get_txs` answers) is dropped; other messages wait (the peer is not reading what it asked for); a frame stuck for the ping timeout ends the connection |
//!
//! No cycle of waits: the manager waits on nobody; the sync task waits only on the manager
//! (judgements) and the chain; the relay only on the chain; peer tasks wait on those, and on
//! their writer, which waits only on the network: a peer task keeps reading while its writer waits. No cycle of imports either: every
//! message, handle and published snapshot lives in `channels`, which the actors import and
//! which imports none of them (`architecture_test` checks the module graph).
//!
//! ## Judging peers
//! Every judgement goes through [`verdict`]: chain failures are classified by the chain
//! ([`cairn_chain::Fault`]), misbehaviour has its points in one table
//! ([`verdict::Misbehaviour::points`]), and only the manager keeps scores. At the ban
//! threshold it cancels the peer's token and closes its connection at once: the peer task
//! and the sync task check the token before anything more of that peer is processed.
//!
//! ## Sans-IO machines
//! [`handshake::Handshake`], [`peer::protocol::PeerProtocol`] and
//! [`sync::download::Download`] are plain state machines driven by messages and an injected
//! `now`; the tasks are thin shells around them, and their tests run on virtual time.
//!
//! ## Modules
//! - [`identity`], [`tls`], [`transport`]: node keys, self-signed certificates, QUIC.
//!   [`name`]: the node's human-readable name and how it rides in the `user_agent`.
//! - [`wire`]: the message enum and length-delimited framing with explicit limits.
//! - [`handshake`], `connection`: compatibility rules, the handshake machine and its shell.
//! - `channels`: the typed messages, handles and snapshots of the actor map.
//! - `manager`, [`addrbook`], [`bans`]: the peer manager and the state it owns; its sans-IO
//!   policies [`admission`] (before TLS: address bans, QUIC retry, per-IP rate and limits) and
//!   [`eviction`] (who gives way when the inbound slots are full), over [`netgroup`]s.
//! - [`peer`]: the per-peer machine and task. [`sync`]: catch-up sync, orphans, gossip.
//! - [`mdns`]: LAN discovery. [`metrics`]. [`verdict`]. [`ports`]: what the node provides —
//!   the chain ([`ports::ChainInfo`]) and persistence ([`ports::PeerStore`]); this crate
//!   never touches RocksDB.
//!
//! Every task hangs off one cancellation token and one task tracker; shutdown closes every
//! connection with a reason.

pub mod addrbook;
pub mod admission;
pub mod bans;
mod channels;
pub mod config;
mod connection;
mod ctx;
pub mod events;
pub mod eviction;
pub mod handshake;
pub mod identity;
mod manager;
pub mod mdns;
pub mod metrics;
pub mod name;
pub mod netgroup;
pub mod peer;
pub mod ports;
mod ratelimit;
pub mod service;
pub mod sync;
pub mod tls;
pub mod transport;
mod udp;
pub mod verdict;
pub mod wire;

pub use config::P2pConfig;
pub use events::{PeerEvent, PeerEventKind};
pub use identity::{IdentityError, NodeId, NodeIdentity};
pub use name::{NameError, validate_name};
pub use service::{ConnectError, Direction, P2p, P2pError, PeerView};

#[cfg(test)]
mod architecture_test;
#[cfg(test)]
mod fuzz_seeds;
