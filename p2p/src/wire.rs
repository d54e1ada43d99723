//! The wire protocol: one message enum, bincode-encoded, in length-delimited frames on one
//! bidirectional QUIC stream per connection.
//!
//! # Security
//! - Every frame has an explicit maximum: [`HANDSHAKE_FRAME_LIMIT`] until the handshake
//!   succeeds, then the chain's block limit plus overhead. The length prefix is checked before
//!   anything is buffered (tokio-util's `LengthDelimitedCodec`).
//! - Decoding is bounded by the frame it reads from, rejects trailing bytes, and never
//!   preallocates from a peer's count (bincode caps its size hints); counts the protocol limits
//!   (e.g. [`crate::config::MAX_PEERS_PER_MESSAGE`]) are checked after decoding, before use.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bincode::Options;
use bytes::Bytes;
use cairn_chain::Hash;
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec, LengthDelimitedCodecError};

use crate::config::HANDSHAKE_FRAME_LIMIT;
use crate::identity::NodeId;

/// What a node says about itself when a connection opens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Protocol version spoken.
    pub protocol_version: u32,
    /// Chain ID from the chain spec.
    pub chain_id: String,
    /// Genesis hash.
    pub genesis: Hash,
    /// UDP port the node accepts connections on.
    pub listen_port: u16,
    /// Best height.
    pub best_height: u64,
    /// Best block hash.
    pub best_hash: Hash,
    /// Cumulative work of the best chain (32 bytes, big-endian).
    pub total_work: [u8; 32],
    /// Software name and version.
    pub user_agent: String,
}

/// Why a connection was refused; both sides log it and the dialer's caller sees its code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RejectReason {
    /// Another chain ID.
    WrongChain,
    /// Same chain ID, another genesis.
    WrongGenesis,
    /// Another protocol version.
    IncompatibleVersion,
    /// The node dialled itself.
    SelfConnection,
    /// No free connection slot.
    TooManyPeers,
    /// The peer is banned.
    Banned,
    /// Already connected to this node.
    AlreadyConnected,
    /// The peer's key is not the node ID the address pinned.
    NodeIdMismatch,
    /// A known address answered with another key than before.
    KeyChanged,
    /// The peer broke the protocol.
    ProtocolViolation,
    /// The handshake did not finish in time.
    Timeout,
    /// The node is shutting down.
    ShuttingDown,
    /// The operator blocked this node for now (`P2p::set_blocked`, e.g. a devnet partition):
    /// not a ban, nothing is scored or persisted.
    Blocked,
}

impl RejectReason {
    /// Every reason, for metrics.
    pub const ALL: [RejectReason; 13] = [
        RejectReason::WrongChain,
        RejectReason::WrongGenesis,
        RejectReason::IncompatibleVersion,
        RejectReason::SelfConnection,
        RejectReason::TooManyPeers,
        RejectReason::Banned,
        RejectReason::AlreadyConnected,
        RejectReason::NodeIdMismatch,
        RejectReason::KeyChanged,
        RejectReason::ProtocolViolation,
        RejectReason::Timeout,
        RejectReason::ShuttingDown,
        RejectReason::Blocked,
    ];

    /// Stable code (RPC error code, metric label, QUIC close reason).
    pub fn code(self) -> &'static str {
        match self {
            RejectReason::WrongChain => "wrong_chain",
            RejectReason::WrongGenesis => "wrong_genesis",
            RejectReason::IncompatibleVersion => "incompatible_version",
            RejectReason::SelfConnection => "self_connection",
            RejectReason::TooManyPeers => "too_many_peers",
            RejectReason::Banned => "banned",
            RejectReason::AlreadyConnected => "already_connected",
            RejectReason::NodeIdMismatch => "node_id_mismatch",
            RejectReason::KeyChanged => "key_changed",
            RejectReason::ProtocolViolation => "protocol_violation",
            RejectReason::Timeout => "handshake_timeout",
            RejectReason::ShuttingDown => "shutting_down",
            RejectReason::Blocked => "blocked",
        }
    }

    /// QUIC application close code.
    pub fn close_code(self) -> quinn::VarInt {
        quinn::VarInt::from_u32(Self::ALL.iter().position(|r| *r == self).unwrap_or(0) as u32 + 1)
    }
}

/// A peer's dialable address, as exchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerAddress {
    /// Its node ID, if known.
    pub node_id: Option<NodeId>,
    /// Where it listens.
    pub addr: SocketAddr,
}

/// A block by hash or best-chain height.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlockId {
    /// By hash.
    Hash(Hash),
    /// By height on the sender's best chain.
    Height(u64),
}

/// Every message. Chain data travels in its canonical encoding (`Bytes`), decoded by the
/// chain's own bounded decoders.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Opens the handshake (dialer), or answers it (listener).
    Hello(Hello),
    /// The dialer accepts the listener's `Hello`: both sides now count the connection.
    HelloAck,
    /// Refusal, sent before closing.
    Reject {
        /// Why.
        reason: RejectReason,
        /// Human detail (both values).
        detail: String,
    },
    /// Heartbeat.
    Ping(u64),
    /// Heartbeat answer, echoing the nonce.
    Pong(u64),
    /// Asks for addresses.
    GetPeers,
    /// Addresses (at most [`crate::config::MAX_PEERS_PER_MESSAGE`]).
    Peers(Vec<PeerAddress>),
    /// Asks for the peer's tip.
    GetStatus,
    /// The sender's tip.
    Status {
        /// Best height.
        best_height: u64,
        /// Best hash.
        best_hash: Hash,
        /// Cumulative work (32 bytes BE).
        total_work: [u8; 32],
    },
    /// A new block was accepted.
    NewBlock {
        /// Its height.
        height: u64,
        /// Its hash.
        hash: Hash,
    },
    /// Asks for one block.
    GetBlock(BlockId),
    /// A block (canonical encoding), or `None` if the sender lacks it.
    BlockData(Option<Bytes>),
    /// Asks for headers after the first locator hash on the sender's best chain.
    GetHeaders {
        /// Block locator: hashes from the tip back, densest first.
        locator: Vec<Hash>,
        /// Most headers wanted.
        max: u32,
    },
    /// Headers (canonical encodings), in chain order.
    Headers(Vec<Bytes>),
    /// Asks for blocks by hash.
    GetBlocks(Vec<Hash>),
    /// Blocks (canonical encodings), in the order asked; missing ones left out.
    Blocks(Vec<Bytes>),
    /// Transactions (canonical encodings) for the mempool.
    Transactions(Vec<Bytes>),
}

impl Message {
    /// Short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Hello(_) => "hello",
            Message::HelloAck => "hello_ack",
            Message::Reject { .. } => "reject",
            Message::Ping(_) => "ping",
            Message::Pong(_) => "pong",
            Message::GetPeers => "get_peers",
            Message::Peers(_) => "peers",
            Message::GetStatus => "get_status",
            Message::Status { .. } => "status",
            Message::NewBlock { .. } => "new_block",
            Message::GetBlock(_) => "get_block",
            Message::BlockData(_) => "block_data",
            Message::GetHeaders { .. } => "get_headers",
            Message::Headers(_) => "headers",
            Message::GetBlocks(_) => "get_blocks",
            Message::Blocks(_) => "blocks",
            Message::Transactions(_) => "transactions",
        }
    }
}

/// Errors reading or writing frames.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// A length prefix over the current limit.
    #[error("frame over the {0}-byte limit")]
    FrameTooLarge(usize),
    /// A frame that is not a message.
    #[error("undecodable message: {0}")]
    Decode(String),
    /// The stream failed or the connection closed.
    #[error("stream: {0}")]
    Io(std::io::Error),
    /// The peer finished its stream.
    #[error("stream closed by peer")]
    Closed,
}

fn options(limit: usize) -> impl Options {
    bincode::DefaultOptions::new().with_limit(limit as u64).with_little_endian().with_varint_encoding().reject_trailing_bytes()
}

/// Encodes a message body (no frame).
pub fn encode(m: &Message) -> Bytes {
    Bytes::from(options(usize::MAX).serialize(m).unwrap_or_default())
}

/// Decodes a message body.
pub fn decode(frame: &[u8]) -> Result<Message, WireError> {
    options(frame.len()).deserialize(frame).map_err(|e| WireError::Decode(e.to_string()))
}

/// One connection's framed stream pair, counting bytes both ways.
pub struct Wire {
    rx: FramedRead<quinn::RecvStream, LengthDelimitedCodec>,
    tx: FramedWrite<quinn::SendStream, LengthDelimitedCodec>,
    limit: usize,
    /// Bytes sent (frames included).
    pub bytes_out: Arc<AtomicU64>,
    /// Bytes received (frames included).
    pub bytes_in: Arc<AtomicU64>,
}

fn codec(limit: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder().length_field_type::<u32>().max_frame_length(limit).new_codec()
}

impl Wire {
    /// Frames a stream pair with the pre-handshake limit.
    pub fn new(send: quinn::SendStream, recv: quinn::RecvStream) -> Self {
        Wire {
            rx: FramedRead::new(recv, codec(HANDSHAKE_FRAME_LIMIT)),
            tx: FramedWrite::new(send, codec(HANDSHAKE_FRAME_LIMIT)),
            limit: HANDSHAKE_FRAME_LIMIT,
            bytes_out: Arc::new(AtomicU64::new(0)),
            bytes_in: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Raises (or lowers) the frame limit, both ways.
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
        self.rx.decoder_mut().set_max_frame_length(limit);
        self.tx.encoder_mut().set_max_frame_length(limit);
    }

    /// Sends one message.
    pub async fn send(&mut self, m: &Message) -> Result<(), WireError> {
        let body = encode(m);
        let n = body.len();
        if n > self.limit {
            return Err(WireError::FrameTooLarge(self.limit));
        }
        self.tx.send(body).await.map_err(WireError::Io)?;
        self.bytes_out.fetch_add(n as u64 + 4, Ordering::Relaxed);
        Ok(())
    }

    /// Receives one message.
    pub async fn recv(&mut self) -> Result<Message, WireError> {
        match self.rx.next().await {
            None => Err(WireError::Closed),
            Some(Err(e)) => {
                if e.get_ref().is_some_and(|i| i.is::<LengthDelimitedCodecError>()) {
                    Err(WireError::FrameTooLarge(self.limit))
                } else {
                    Err(WireError::Io(e))
                }
            }
            Some(Ok(frame)) => {
                self.bytes_in.fetch_add(frame.len() as u64 + 4, Ordering::Relaxed);
                decode(&frame)
            }
        }
    }

    /// Finishes our half of the stream (a graceful end).
    pub async fn finish(&mut self) {
        let _ = SinkExt::<Bytes>::flush(&mut self.tx).await;
        let _ = self.tx.get_mut().finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejects_junk() {
        let m = Message::Peers(vec![PeerAddress { node_id: None, addr: "127.0.0.1:9090".parse().unwrap() }]);
        assert_eq!(decode(&encode(&m)).unwrap(), m);
        let mut b = encode(&m).to_vec();
        b.push(0);
        assert!(decode(&b).is_err(), "trailing byte");
        assert!(decode(&[200]).is_err(), "unknown variant");
        // A huge announced vector length with nothing behind it fails without allocating.
        assert!(decode(&[6, 0xfd, 0xff, 0xff, 0xff, 0xff]).is_err());
    }
}
