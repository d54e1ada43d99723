//! Peers connecting, leaving and being refused, as the node's `GET /events` shows them.
//!
//! Published on a bounded `tokio::sync::broadcast` ([`PEER_EVENTS`]): publishing never waits,
//! a subscriber that falls that far behind misses the oldest events and is told how many.

use std::net::SocketAddr;

use serde::Serialize;

use crate::NodeId;

/// Events the broadcast holds before the slowest subscriber misses some.
pub const PEER_EVENTS: usize = 1024;

/// What happened.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PeerEventKind {
    /// The handshake completed and the peer is in the table.
    Connected,
    /// The peer left the table (its connection ended, or we cut it off).
    Disconnected,
    /// A handshake was refused, by us or by the peer.
    Refused,
}

/// `event: peer`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct PeerEvent {
    /// What happened.
    pub event: PeerEventKind,
    /// The peer's node ID, when known (a refusal before TLS has none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_id: Option<NodeId>,
    /// The peer's address.
    pub addr: SocketAddr,
    /// The peer's name, when it gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `inbound` / `outbound`, for a connection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direction: Option<&'static str>,
    /// The typed reason of a refusal or a disconnection we made (a code of PROTOCOL.md §4).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// For a refusal: whether the peer refused us (`true`) or we refused it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by_peer: Option<bool>,
}

impl PeerEvent {
    pub(crate) fn new(event: PeerEventKind, node_id: Option<NodeId>, addr: SocketAddr) -> PeerEvent {
        PeerEvent { event, node_id, addr, name: None, direction: None, reason: None, by_peer: None }
    }
}
