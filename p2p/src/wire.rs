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
    /// A known address answered with another key than before. Not sent by this version: a
    /// new key at an address the operator did not pin is taken (PROTOCOL.md 6.1).
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
    /// The peer stopped answering (a ping, or reading what we send). Since version 2.
    PeerTimeout,
    /// Ended without blame (the operator disconnected or forgot the node). Since version 2.
    Disconnected,
    /// Too many connections, or new connections too often, from the peer's IP or subnet.
    /// Since version 2 (added with the per-address limits).
    TooManyFromAddress,
    /// The inbound slots were full and this peer gave way to a newcomer (eviction). Since
    /// version 2 (added with eviction).
    Evicted,
}

impl RejectReason {
    /// Every reason, for metrics.
    pub const ALL: [RejectReason; 17] = [
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
        RejectReason::PeerTimeout,
        RejectReason::Disconnected,
        RejectReason::TooManyFromAddress,
        RejectReason::Evicted,
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
            RejectReason::PeerTimeout => "peer_timeout",
            RejectReason::Disconnected => "disconnected",
            RejectReason::TooManyFromAddress => "too_many_from_address",
            RejectReason::Evicted => "evicted",
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
    /// The sender lacks these blocks (of the `GetBlocks` answered by the `Blocks` that
    /// follows). Since protocol version 2.
    NotFound(Vec<Hash>),
    /// Announces transactions newly in the sender's mempool, by ID (at most
    /// [`crate::config::MAX_TX_IDS_PER_MESSAGE`]). Since protocol version 2.
    TxIds(Vec<Hash>),
    /// Asks for mempool transactions by ID (at most
    /// [`crate::config::MAX_TX_IDS_PER_MESSAGE`]); answered by `Transactions` holding those the
    /// sender still has. Since protocol version 2.
    GetTxs(Vec<Hash>),
    /// A new block as its header and one short ID per transaction
    /// ([`cairn_chain::compact`]). Since protocol version 2.
    CompactBlock {
        /// The canonical header (156 bytes).
        header: Bytes,
        /// The salt of the short IDs.
        nonce: u64,
        /// 8 bytes per transaction, little-endian, in block order.
        short_ids: Bytes,
    },
    /// Asks for transactions of a block by index (ascending). Since protocol version 2.
    GetBlockTxs {
        /// The block.
        hash: Hash,
        /// Indexes of the transactions wanted.
        indexes: Vec<u32>,
    },
    /// The answer to `GetBlockTxs`: the transactions at the asked indexes, in the asked order;
    /// empty if the sender lacks the block or an index is past its end. Since protocol
    /// version 2.
    BlockTxs {
        /// The block.
        hash: Hash,
        /// Canonical transactions.
        txs: Vec<Bytes>,
    },
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
            Message::NotFound(_) => "not_found",
            Message::TxIds(_) => "tx_ids",
            Message::GetTxs(_) => "get_txs",
            Message::CompactBlock { .. } => "compact_block",
            Message::GetBlockTxs { .. } => "get_block_txs",
            Message::BlockTxs { .. } => "block_txs",
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

/// The length of [`encode`]'s output, without encoding: the network simulator (`sim/`) counts
/// the bytes of megabyte blocks sent a thousand times over without copying them.
pub fn encoded_len(m: &Message) -> usize {
    options(usize::MAX).serialized_size(m).map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX))
}

/// Decodes a message body.
pub fn decode(frame: &[u8]) -> Result<Message, WireError> {
    options(frame.len()).deserialize(frame).map_err(|e| WireError::Decode(e.to_string()))
}

/// One connection's framed stream pair, counting bytes both ways. The handshake uses it
/// whole; the peer task splits it ([`Wire::split`]) so that reading never waits on a send.
pub struct Wire {
    rx: WireRx,
    tx: WireTx,
    /// Bytes sent (frames included).
    pub bytes_out: Arc<AtomicU64>,
    /// Bytes received (frames included).
    pub bytes_in: Arc<AtomicU64>,
}

/// The receiving half of a [`Wire`].
pub struct WireRx {
    rx: FramedRead<quinn::RecvStream, LengthDelimitedCodec>,
    limit: usize,
    bytes_in: Arc<AtomicU64>,
}

/// The sending half of a [`Wire`].
pub struct WireTx {
    tx: FramedWrite<quinn::SendStream, LengthDelimitedCodec>,
    limit: usize,
    bytes_out: Arc<AtomicU64>,
}

/// The frame codec: a 4-byte big-endian length, then the body; a length over `limit` is an
/// error before anything is buffered. Public for the fuzz targets (`fuzz/`), which feed it
/// bytes without a stream.
pub fn codec(limit: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder().length_field_type::<u32>().max_frame_length(limit).new_codec()
}

impl Wire {
    /// Frames a stream pair with the pre-handshake limit.
    pub fn new(send: quinn::SendStream, recv: quinn::RecvStream) -> Self {
        let (bytes_in, bytes_out) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        Wire {
            rx: WireRx { rx: FramedRead::new(recv, codec(HANDSHAKE_FRAME_LIMIT)), limit: HANDSHAKE_FRAME_LIMIT, bytes_in: bytes_in.clone() },
            tx: WireTx { tx: FramedWrite::new(send, codec(HANDSHAKE_FRAME_LIMIT)), limit: HANDSHAKE_FRAME_LIMIT, bytes_out: bytes_out.clone() },
            bytes_out,
            bytes_in,
        }
    }

    /// Raises (or lowers) the frame limit, both ways.
    pub fn set_limit(&mut self, limit: usize) {
        self.rx.limit = limit;
        self.rx.rx.decoder_mut().set_max_frame_length(limit);
        self.tx.limit = limit;
        self.tx.tx.encoder_mut().set_max_frame_length(limit);
    }

    /// Sends one message.
    pub async fn send(&mut self, m: &Message) -> Result<(), WireError> {
        self.tx.send(m).await
    }

    /// Receives one message.
    pub async fn recv(&mut self) -> Result<Message, WireError> {
        self.rx.recv().await
    }

    /// Finishes our half of the stream (a graceful end).
    pub async fn finish(&mut self) {
        self.tx.finish().await
    }

    /// The two halves, to be driven apart.
    pub fn split(self) -> (WireRx, WireTx) {
        (self.rx, self.tx)
    }
}

impl WireRx {
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
}

impl WireTx {
    /// The largest message body this half sends.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Sends one message.
    pub async fn send(&mut self, m: &Message) -> Result<(), WireError> {
        self.send_body(encode(m)).await
    }

    /// Sends one encoded message body ([`encode`]). If the future is dropped part-way, the
    /// frame stays whole in the buffer (the next send or [`WireTx::finish`] writes the rest),
    /// or was never taken: the stream never carries half a frame followed by another.
    pub async fn send_body(&mut self, body: Bytes) -> Result<(), WireError> {
        let n = body.len();
        if n > self.limit {
            return Err(WireError::FrameTooLarge(self.limit));
        }
        self.tx.send(body).await.map_err(WireError::Io)?;
        self.bytes_out.fetch_add(n as u64 + 4, Ordering::Relaxed);
        Ok(())
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

/// Golden vectors: the exact bytes of concrete messages, frames and chain data. Each one is
/// printed in `PROTOCOL.md` (appendix A) in a fenced block that starts with the line
/// `vector <name>`; these tests compare the code's bytes with the constant here *and* with the
/// document, so neither can drift from the implementation unnoticed. The tables of refusal
/// codes, misbehaviour points and limits in the document are checked the same way.
#[cfg(test)]
mod vectors {
    use std::net::{Ipv6Addr, SocketAddrV6};
    use std::time::Duration;

    use bytes::BytesMut;
    use cairn_chain::block::merkle_root;
    use cairn_chain::keys::{DEV_SEED, dev_keypair};
    use cairn_chain::{Block, ChainSpec, Header, Transaction};
    use tokio_util::codec::{Decoder, Encoder};

    use super::*;
    use crate::config::{ALPN, BAN_THRESHOLD, FRAME_OVERHEAD, MAX_PEERS_PER_MESSAGE, P2pConfig, PROTOCOL_VERSION};
    use crate::verdict::Misbehaviour;

    const DOC: &str = include_str!("../../PROTOCOL.md");

    /// The hex of the fenced block in `PROTOCOL.md` that starts with `vector <name>`.
    fn doc_vector(name: &str) -> String {
        let marker = format!("vector {name}");
        let mut lines = DOC.lines().skip_while(|l| l.trim() != marker);
        assert!(lines.next().is_some(), "PROTOCOL.md has no `{marker}` block");
        lines.take_while(|l| !l.starts_with("```")).map(str::trim).collect()
    }

    /// Checks `bytes` against the expected hex and against the document.
    fn check(name: &str, bytes: &[u8], hex: &str) {
        assert_eq!(hex::encode(bytes), hex, "{name}: the encoding changed");
        assert_eq!(doc_vector(name), hex, "{name}: PROTOCOL.md shows other bytes than the code");
    }

    /// Checks a message's encoding, and that the bytes decode back to it.
    fn check_message(name: &str, m: &Message, hex: &str) {
        check(name, &encode(m), hex);
        assert_eq!(&decode(&hex::decode(hex).unwrap()).unwrap(), m, "{name}: does not decode back");
    }

    /// Fails if the document has no table row starting with these cells.
    fn doc_row(cells: &[&str]) {
        let row = format!("| {} |", cells.join(" | "));
        assert!(DOC.lines().any(|l| l.starts_with(&row)), "PROTOCOL.md has no row starting `{row}`");
    }

    /// The variant index the protocol gives each message. No wildcard: a new variant does not
    /// compile until it has its index here, its vector below and its line in the document.
    fn index(m: &Message) -> u8 {
        match m {
            Message::Hello(_) => 0,
            Message::HelloAck => 1,
            Message::Reject { .. } => 2,
            Message::Ping(_) => 3,
            Message::Pong(_) => 4,
            Message::GetPeers => 5,
            Message::Peers(_) => 6,
            Message::GetStatus => 7,
            Message::Status { .. } => 8,
            Message::NewBlock { .. } => 9,
            Message::GetBlock(_) => 10,
            Message::BlockData(_) => 11,
            Message::GetHeaders { .. } => 12,
            Message::Headers(_) => 13,
            Message::GetBlocks(_) => 14,
            Message::Blocks(_) => 15,
            Message::Transactions(_) => 16,
            Message::NotFound(_) => 17,
            Message::TxIds(_) => 18,
            Message::GetTxs(_) => 19,
            Message::CompactBlock { .. } => 20,
            Message::GetBlockTxs { .. } => 21,
            Message::BlockTxs { .. } => 22,
        }
    }

    fn devnet_genesis() -> Hash {
        ChainSpec::devnet().genesis().hash()
    }

    /// A transfer of 1000 (fee 1, nonce 0) from dev account 0 to dev account 1 on the devnet.
    fn devnet_tx() -> Transaction {
        Transaction::signed(&dev_keypair(DEV_SEED, 0), devnet_genesis(), dev_keypair(DEV_SEED, 1).address(), 1000, 1, 0)
    }

    /// Devnet block 1 holding [`devnet_tx`], farmed by dev account 0, 2 s after genesis; valid on
    /// a fresh devnet node.
    fn devnet_block_1() -> Block {
        let tx = devnet_tx();
        let spec = ChainSpec::devnet();
        let header = Header {
            version: 1,
            height: 1,
            prev_hash: devnet_genesis(),
            tx_root: merkle_root(&[tx.id()]),
            timestamp: spec.genesis_timestamp + 2000,
            target: spec.initial_target,
            nonce: 27,
            farmer: dev_keypair(DEV_SEED, 0).address(),
        };
        Block { header, transactions: vec![tx] }
    }

    fn h(b: u8) -> Hash {
        Hash([b; 32])
    }

    fn work(n: u64) -> [u8; 32] {
        let mut w = [0u8; 32];
        w[24..].copy_from_slice(&n.to_be_bytes());
        w
    }

    #[test]
    fn messages() {
        let genesis = devnet_genesis();
        let block_1 = Bytes::from(devnet_block_1().encode());
        let cases: Vec<(&str, Message, &str)> = vec![
            (
                "hello",
                Message::Hello(Hello {
                    protocol_version: 2,
                    chain_id: "cairn-devnet".into(),
                    genesis,
                    listen_port: 9090,
                    best_height: 0,
                    best_hash: genesis,
                    total_work: work(16),
                    user_agent: "cairn/0.1.0".into(),
                }),
                "00020c636169726e2d6465766e6574203d2797d779ddbd3add3a6e53c70e07bbbb316a1bd1ad1b3be2cbd29bd456e35dfb822300203d2797d779ddbd3add3a6e\
                 53c70e07bbbb316a1bd1ad1b3be2cbd29bd456e35d00000000000000000000000000000000000000000000000000000000000000100b636169726e2f302e312e\
                 30",
            ),
            ("hello_ack", Message::HelloAck, "01"),
            (
                "reject",
                Message::Reject { reason: RejectReason::IncompatibleVersion, detail: "protocol version 2 here, 1 there".into() },
                "02022070726f746f636f6c2076657273696f6e203220686572652c2031207468657265",
            ),
            ("ping", Message::Ping(0x0123_4567_89ab_cdef), "03fdefcdab8967452301"),
            ("pong", Message::Pong(251), "04fbfb00"),
            ("get_peers", Message::GetPeers, "05"),
            (
                "peers",
                Message::Peers(vec![
                    PeerAddress { node_id: Some(cairn_chain::PublicKey([0xcd; 32])), addr: "192.0.2.1:9090".parse().unwrap() },
                    PeerAddress { node_id: None, addr: "[2001:db8::1]:9091".parse().unwrap() },
                ]),
                "06020120cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd00c0000201fb8223000120010db8000000000000000000000001fb83\
                 23",
            ),
            ("get_status", Message::GetStatus, "07"),
            (
                "status",
                Message::Status { best_height: 300, best_hash: h(0x22), total_work: work(4816) },
                "08fb2c01202222222222222222222222222222222222222222222222222222222222222222000000000000000000000000000000000000000000000000000000\
                 00000012d0",
            ),
            (
                "new_block",
                Message::NewBlock { height: 1_000_000, hash: h(0x22) },
                "09fc40420f00202222222222222222222222222222222222222222222222222222222222222222",
            ),
            ("get_block_by_hash", Message::GetBlock(BlockId::Hash(h(0x11))), "0a00201111111111111111111111111111111111111111111111111111111111111111"),
            ("get_block_by_height", Message::GetBlock(BlockId::Height(70_000)), "0a01fc70110100"),
            ("block_data_none", Message::BlockData(None), "0b00"),
            (
                "block_data",
                Message::BlockData(Some(Bytes::from(ChainSpec::devnet().genesis().encode()))),
                "0b01a001000000000000000000000016e42d167ea85256fbd060152524dd3273070824d508c4151f8f8a4b9a17c76b0000000000000000000000000000000000\
                 00000000000000000000000000000000a8da769b0100000fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff000000000000000000\
                 0000000000000000000000000000000000000000000000000000000000000000000000",
            ),
            (
                "get_headers",
                Message::GetHeaders { locator: vec![h(0x22), h(0x11)], max: 2000 },
                "0c022022222222222222222222222222222222222222222222222222222222222222222011111111111111111111111111111111111111111111111111111111\
                 11111111fbd007",
            ),
            (
                "headers",
                Message::Headers(vec![Bytes::copy_from_slice(&devnet_block_1().header.encode())]),
                "0d019c0100000001000000000000003d2797d779ddbd3add3a6e53c70e07bbbb316a1bd1ad1b3be2cbd29bd456e35d21d6f955ca4eb6052c4fbff3190e950c37\
                 eea1b6d48fc785e52375c63bf7abcdd0afda769b0100000fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff1b00000000000000ec\
                 0423c4f08a9cafb710da32c45d1d353bb53600811e2734ca6b562ec641e969",
            ),
            (
                "get_blocks",
                Message::GetBlocks(vec![h(0x11), h(0x22)]),
                "0e022011111111111111111111111111111111111111111111111111111111111111112022222222222222222222222222222222222222222222222222222222\
                 22222222",
            ),
            (
                "blocks",
                Message::Blocks(vec![block_1]),
                "0f01fb58010100000001000000000000003d2797d779ddbd3add3a6e53c70e07bbbb316a1bd1ad1b3be2cbd29bd456e35d21d6f955ca4eb6052c4fbff3190e95\
                 0c37eea1b6d48fc785e52375c63bf7abcdd0afda769b0100000fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff1b000000000000\
                 00ec0423c4f08a9cafb710da32c45d1d353bb53600811e2734ca6b562ec641e969010000003d2797d779ddbd3add3a6e53c70e07bbbb316a1bd1ad1b3be2cbd2\
                 9bd456e35d5cc784106e833a25e8cd5aaa8c0b06577556145bbc85551ffafcfa058a642ad3f5c9339510af7bd407aa2608586acde575316449d9a344ae638ec0\
                 fad3364caee803000000000000010000000000000000000000000000003b32296182896d186c93effd66f0abf2c069c5966643778ff53d3384e6aa22e88eaff1\
                 6bea747d99071d0af3734792d33396247aa7d4b555608bf25c1657ea06",
            ),
            (
                "transactions",
                Message::Transactions(vec![Bytes::from(devnet_tx().encode())]),
                "1001b83d2797d779ddbd3add3a6e53c70e07bbbb316a1bd1ad1b3be2cbd29bd456e35d5cc784106e833a25e8cd5aaa8c0b06577556145bbc85551ffafcfa058a\
                 642ad3f5c9339510af7bd407aa2608586acde575316449d9a344ae638ec0fad3364caee803000000000000010000000000000000000000000000003b32296182\
                 896d186c93effd66f0abf2c069c5966643778ff53d3384e6aa22e88eaff16bea747d99071d0af3734792d33396247aa7d4b555608bf25c1657ea06",
            ),
            ("not_found", Message::NotFound(vec![h(0x11)]), "1101201111111111111111111111111111111111111111111111111111111111111111"),
            (
                "tx_ids",
                Message::TxIds(vec![h(0x11), h(0x22)]),
                "12022011111111111111111111111111111111111111111111111111111111111111112022222222222222222222222222222222222222222222222222222222\
                 22222222",
            ),
            ("get_txs", Message::GetTxs(vec![h(0x11)]), "1301201111111111111111111111111111111111111111111111111111111111111111"),
            (
                "compact_block",
                Message::CompactBlock {
                    header: Bytes::copy_from_slice(&devnet_block_1().header.encode()),
                    nonce: 7,
                    short_ids: Bytes::from(cairn_chain::compact::CompactBlock::of(&devnet_block_1(), 7).encode_short_ids()),
                },
                "149c0100000001000000000000003d2797d779ddbd3add3a6e53c70e07bbbb316a1bd1ad1b3be2cbd29bd456e35d21d6f955ca4eb6052c4fbff3190e950c37ee\
                 a1b6d48fc785e52375c63bf7abcdd0afda769b0100000fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff1b00000000000000ec04\
                 23c4f08a9cafb710da32c45d1d353bb53600811e2734ca6b562ec641e9690708117e763615d1d2ed",
            ),
            (
                "get_block_txs",
                Message::GetBlockTxs { hash: h(0x22), indexes: vec![0, 300] },
                "152022222222222222222222222222222222222222222222222222222222222222220200fb2c01",
            ),
            (
                "block_txs",
                Message::BlockTxs { hash: h(0x22), txs: vec![Bytes::from(devnet_tx().encode())] },
                "1620222222222222222222222222222222222222222222222222222222222222222201b83d2797d779ddbd3add3a6e53c70e07bbbb316a1bd1ad1b3be2cbd29b\
                 d456e35d5cc784106e833a25e8cd5aaa8c0b06577556145bbc85551ffafcfa058a642ad3f5c9339510af7bd407aa2608586acde575316449d9a344ae638ec0fa\
                 d3364caee803000000000000010000000000000000000000000000003b32296182896d186c93effd66f0abf2c069c5966643778ff53d3384e6aa22e88eaff16b\
                 ea747d99071d0af3734792d33396247aa7d4b555608bf25c1657ea06",
            ),
        ];
        let mut seen = std::collections::BTreeSet::new();
        for (name, m, hex) in &cases {
            check_message(name, m, hex);
            // The first byte is the variant index (all are below 251, so one varint byte).
            assert_eq!(encode(m)[0], index(m), "{name}: variant index");
            doc_row(&[&index(m).to_string(), &format!("`{}`", m.kind())]);
            seen.insert(index(m));
        }
        assert_eq!(seen.len(), 23, "a vector for every message");
    }

    #[test]
    fn frames() {
        // A frame is the body's length as 4 bytes big-endian, then the body.
        let mut codec = super::codec(HANDSHAKE_FRAME_LIMIT);
        let mut out = BytesMut::new();
        codec.encode(encode(&Message::Ping(0x0123_4567_89ab_cdef)), &mut out).unwrap();
        check("frame_ping", &out, "0000000a03fdefcdab8967452301");
        // The limit is on the body length and is checked from the prefix, before any body.
        let mut at_limit = BytesMut::from(&(HANDSHAKE_FRAME_LIMIT as u32).to_be_bytes()[..]);
        at_limit.extend_from_slice(&vec![0; HANDSHAKE_FRAME_LIMIT]);
        assert_eq!(codec.decode(&mut at_limit).unwrap().map(|f| f.len()), Some(HANDSHAKE_FRAME_LIMIT));
        let mut over = BytesMut::from(&(HANDSHAKE_FRAME_LIMIT as u32 + 1).to_be_bytes()[..]);
        assert!(codec.decode(&mut over).is_err(), "refused from the prefix alone");
        // After the handshake: the chain's largest block plus the overhead (devnet: 1 MiB + 64 KiB).
        assert_eq!(ChainSpec::devnet().max_block_bytes as usize + FRAME_OVERHEAD, 1_114_112);
    }

    #[test]
    fn field_encodings() {
        // A hash (and a node ID) is a byte string: length 0x20, then the 32 raw bytes.
        let m = encode(&Message::NotFound(vec![h(0xab)]));
        assert_eq!(m.to_vec(), [&[17u8, 1, 0x20][..], &[0xab; 32][..]].concat());
        let id = cairn_chain::PublicKey([0xcd; 32]);
        let addr: SocketAddr = "192.0.2.1:9090".parse().unwrap();
        let m = encode(&Message::Peers(vec![PeerAddress { node_id: Some(id), addr }]));
        assert_eq!(&m[..4], &[6, 1, 1, 0x20]);
        assert_eq!(&m[4..36], &[0xcd; 32]);
        // Decoders take exactly 32 bytes: not 31, not 33, and not the 64 hex digits of version 1.
        for (len, body) in [(0x1f, vec![0xab; 31]), (0x21, vec![0xab; 33]), (0x40, "ab".repeat(32).into_bytes())] {
            assert!(decode(&[&[17u8, 1, len][..], &body[..]].concat()).is_err(), "hash of {len} bytes");
        }
        // So a version-1 `Hello` (hashes as hex strings) does not decode at all: the version
        // check is never reached (PROTOCOL.md section 13). With raw hashes the same bytes do.
        let hello_v1 = |hash: &[u8]| {
            let len = [hash.len() as u8];
            [&[0u8, 1, 12][..], b"cairn-devnet", &len, hash, &[0xfb, 0x82, 0x23, 0], &len, hash, &work(16), &[11], b"cairn/0.1.0"].concat()
        };
        let genesis = devnet_genesis();
        assert!(decode(&hello_v1(genesis.to_string().as_bytes())).is_err());
        assert!(matches!(decode(&hello_v1(genesis.as_bytes())), Ok(Message::Hello(Hello { protocol_version: 1, .. }))));
        // A fixed array (`total_work`) is its 32 bytes with no length.
        let m = encode(&Message::Status { best_height: 0, best_hash: h(0), total_work: work(1) });
        assert_eq!(&m[2..35], &[&[0x20u8][..], &[0; 32][..]].concat()[..]);
        assert_eq!(&m[35..], &work(1)[..]);
        // An IPv6 address travels without flow info and scope ID: both decode as 0.
        let scoped = SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::LOCALHOST, 9090, 7, 3));
        let plain = SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::LOCALHOST, 9090, 0, 0));
        let m = Message::Peers(vec![PeerAddress { node_id: None, addr: scoped }]);
        assert_eq!(decode(&encode(&m)).unwrap(), Message::Peers(vec![PeerAddress { node_id: None, addr: plain }]));
        // Option tags are 0 and 1 only; strings are UTF-8; a message ends exactly at its frame.
        assert!(decode(&[11, 2]).is_err());
        assert!(decode(&[2, 0, 1, 0xff]).is_err());
        assert!(decode(&[1, 0]).is_err());
        assert!(decode(&[]).is_err());
        // An unknown variant index (a message of a later version) does not decode.
        assert!(decode(&[18]).is_err());
    }

    #[test]
    fn varints() {
        let cases: [(u64, &str); 8] = [
            (0, "00"),
            (250, "fa"),
            (251, "fbfb00"),
            (65_535, "fbffff"),
            (65_536, "fc00000100"),
            (u32::MAX as u64, "fcffffffff"),
            (1 << 32, "fd0000000001000000"),
            (u64::MAX, "fdffffffffffffffff"),
        ];
        for (n, hex) in cases {
            assert_eq!(hex::encode(encode(&Message::Ping(n))), format!("03{hex}"), "Ping({n})");
            doc_row(&[&n.to_string(), &format!("`{hex}`")]);
        }
        // Decoders accept a longer form than needed (bincode 1 does not check); never send one.
        assert_eq!(decode(&[3, 0xfb, 5, 0]).unwrap(), Message::Ping(5));
        assert_eq!(decode(&[0xfb, 3, 0, 1]).unwrap(), Message::Ping(1), "a variant index is a varint too");
        // 254 (a u128 follows) and 255 are refused for every integer of this protocol.
        assert!(decode(&[3, 0xfe, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
        assert!(decode(&[3, 0xff]).is_err());
        // A value too big for its field is refused: `max` of GetHeaders is a u32.
        assert!(decode(&[12, 0, 0xfd, 0, 0, 0, 0, 1, 0, 0, 0]).is_err());
    }

    #[test]
    fn refusal_codes() {
        for (i, r) in RejectReason::ALL.iter().enumerate() {
            let m = Message::Reject { reason: *r, detail: String::new() };
            assert_eq!(encode(&m).to_vec(), vec![2, i as u8, 0], "{r:?}: variant index {i}");
            assert_eq!(r.close_code().into_inner(), i as u64 + 1, "{r:?}: close code");
            doc_row(&[&i.to_string(), &format!("`{}`", r.code()), &(i + 1).to_string()]);
        }
    }

    #[test]
    fn chain_data() {
        let spec = ChainSpec::devnet();
        check("devnet_spec_hash", Hash::digest(&spec.encode()).as_bytes(), "16e42d167ea85256fbd060152524dd3273070824d508c4151f8f8a4b9a17c76b");
        let genesis = spec.genesis();
        check(
            "devnet_genesis_header",
            &genesis.header.encode(),
            "01000000000000000000000016e42d167ea85256fbd060152524dd3273070824d508c4151f8f8a4b9a17c76b0000000000000000000000000000000000000000\
             00000000000000000000000000a8da769b0100000fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff000000000000000000000000\
             00000000000000000000000000000000000000000000000000000000",
        );
        check("devnet_genesis_hash", genesis.hash().as_bytes(), "3d2797d779ddbd3add3a6e53c70e07bbbb316a1bd1ad1b3be2cbd29bd456e35d");
        assert_eq!(spec.initial_target.work(), cairn_chain::Work::from_bytes(work(16)));
        let dev0 = dev_keypair(DEV_SEED, 0);
        check("dev0_seed", &dev0.seed(), "d00e90807493d7ff2f7155abdb7f04bf66e2f9b967fc638658316b05b8ca1416");
        check("dev0_public_key", dev0.public().as_bytes(), "5cc784106e833a25e8cd5aaa8c0b06577556145bbc85551ffafcfa058a642ad3");
        check("dev0_address", dev0.address().as_bytes(), "ec0423c4f08a9cafb710da32c45d1d353bb53600811e2734ca6b562ec641e969");
        check("dev1_address", dev_keypair(DEV_SEED, 1).address().as_bytes(), "f5c9339510af7bd407aa2608586acde575316449d9a344ae638ec0fad3364cae");
        let tx = devnet_tx();
        check(
            "tx_signing_message",
            &tx.signing_message(),
            "636169726e2f74782f76313d2797d779ddbd3add3a6e53c70e07bbbb316a1bd1ad1b3be2cbd29bd456e35d5cc784106e833a25e8cd5aaa8c0b06577556145bbc\
             85551ffafcfa058a642ad3f5c9339510af7bd407aa2608586acde575316449d9a344ae638ec0fad3364caee80300000000000001000000000000000000000000\
             000000",
        );
        check(
            "tx",
            &tx.encode(),
            "3d2797d779ddbd3add3a6e53c70e07bbbb316a1bd1ad1b3be2cbd29bd456e35d5cc784106e833a25e8cd5aaa8c0b06577556145bbc85551ffafcfa058a642ad3\
             f5c9339510af7bd407aa2608586acde575316449d9a344ae638ec0fad3364caee803000000000000010000000000000000000000000000003b32296182896d18\
             6c93effd66f0abf2c069c5966643778ff53d3384e6aa22e88eaff16bea747d99071d0af3734792d33396247aa7d4b555608bf25c1657ea06",
        );
        check("txid", tx.id().as_bytes(), "21d6f955ca4eb6052c4fbff3190e950c37eea1b6d48fc785e52375c63bf7abcd");
        assert!(tx.verify_signature());
        let block = devnet_block_1();
        check(
            "block_1_header",
            &block.header.encode(),
            "0100000001000000000000003d2797d779ddbd3add3a6e53c70e07bbbb316a1bd1ad1b3be2cbd29bd456e35d21d6f955ca4eb6052c4fbff3190e950c37eea1b6\
             d48fc785e52375c63bf7abcdd0afda769b0100000fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff1b00000000000000ec0423c4\
             f08a9cafb710da32c45d1d353bb53600811e2734ca6b562ec641e969",
        );
        check("block_1_hash", block.hash().as_bytes(), "03700bbe2c75f5d567ff05c4ebe3daa79c44de946fdccd1e83b5935802665c4c");
        check(
            "block_1",
            &block.encode(),
            "0100000001000000000000003d2797d779ddbd3add3a6e53c70e07bbbb316a1bd1ad1b3be2cbd29bd456e35d21d6f955ca4eb6052c4fbff3190e950c37eea1b6\
             d48fc785e52375c63bf7abcdd0afda769b0100000fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff1b00000000000000ec0423c4\
             f08a9cafb710da32c45d1d353bb53600811e2734ca6b562ec641e969010000003d2797d779ddbd3add3a6e53c70e07bbbb316a1bd1ad1b3be2cbd29bd456e35d\
             5cc784106e833a25e8cd5aaa8c0b06577556145bbc85551ffafcfa058a642ad3f5c9339510af7bd407aa2608586acde575316449d9a344ae638ec0fad3364cae\
             e803000000000000010000000000000000000000000000003b32296182896d186c93effd66f0abf2c069c5966643778ff53d3384e6aa22e88eaff16bea747d99\
             071d0af3734792d33396247aa7d4b555608bf25c1657ea06",
        );
        assert!(block.header.target.is_met_by(&block.hash()), "nonce 27 meets the devnet target");
        assert_eq!(cairn_chain::check_stateless(&spec, &genesis.hash(), &block), Ok(()));
        // Compact blocks: the short-ID key of block 1 sent with nonce 7, and its one short ID.
        let short = cairn_chain::compact::ShortIds::new(&block.header, 7);
        let mut h = blake3::Hasher::new();
        h.update(&block.header.encode()).update(&7u64.to_le_bytes());
        check("short_id_key_block_1_nonce_7", h.finalize().as_bytes(), "175fb6de21d5d0071f60fb9ba1911495d5b91a41c87bd109782d5d6de656e008");
        check("short_id_tx", &short.of(&tx.id()).to_le_bytes(), "117e763615d1d2ed");
        // Three leaves: BLAKE3(0x01 | BLAKE3(0x01 | a | b) | c); the odd one goes up unchanged.
        let leaves = [Hash::digest(b"a"), Hash::digest(b"b"), Hash::digest(b"c")];
        check("merkle_root_abc", merkle_root(&leaves).as_bytes(), "ad379d5cb062173b783c53c101bed4b5f5ed43c2d66c875e4204d7ca3737483a");
    }

    #[test]
    fn protocol_version() {
        doc_row(&["`PROTOCOL_VERSION`", &PROTOCOL_VERSION.to_string()]);
        assert_eq!(PROTOCOL_VERSION, 2, "PROTOCOL.md specifies version 2");
    }

    #[test]
    fn documented_limits_and_points() {
        let cfg = P2pConfig::default();
        let secs = |d: Duration| format!("{} s", d.as_secs());
        let rows: [(&str, String); 23] = [
            ("ALPN", format!("`{}`", std::str::from_utf8(ALPN).unwrap())),
            ("SERVER_NAME", format!("`{}`", crate::tls::SERVER_NAME)),
            ("HANDSHAKE_FRAME_LIMIT", HANDSHAKE_FRAME_LIMIT.to_string()),
            ("FRAME_OVERHEAD", FRAME_OVERHEAD.to_string()),
            ("MAX_PEERS_PER_MESSAGE", MAX_PEERS_PER_MESSAGE.to_string()),
            ("MAX_LOCATOR", crate::config::MAX_LOCATOR.to_string()),
            ("MAX_HEADERS", crate::config::MAX_HEADERS.to_string()),
            ("MAX_BLOCKS_PER_REQUEST", crate::config::MAX_BLOCKS_PER_REQUEST.to_string()),
            ("MAX_TXS_PER_MESSAGE", crate::config::MAX_TXS_PER_MESSAGE.to_string()),
            ("MAX_TX_IDS_PER_MESSAGE", crate::config::MAX_TX_IDS_PER_MESSAGE.to_string()),
            ("BAN_THRESHOLD", BAN_THRESHOLD.to_string()),
            ("handshake_timeout", secs(cfg.handshake_timeout)),
            ("keep_alive", secs(cfg.keep_alive)),
            ("idle_timeout", secs(cfg.idle_timeout)),
            ("ping_interval", secs(cfg.ping_interval)),
            ("ping_timeout", secs(cfg.ping_timeout)),
            ("get_peers_min_interval", secs(cfg.get_peers_min_interval)),
            ("msg_rate", cfg.msg_rate.to_string()),
            ("msg_burst", cfg.msg_burst.to_string()),
            ("ban_duration", secs(cfg.ban_duration)),
            ("max_inbound", cfg.max_inbound.to_string()),
            ("max_outbound", cfg.max_outbound.to_string()),
            ("target_outbound", cfg.target_outbound.to_string()),
        ];
        for (name, value) in &rows {
            doc_row(&[&format!("`{name}`"), value]);
        }
        for m in Misbehaviour::ALL {
            doc_row(&[&format!("`{}`", m.code()), &m.points().to_string(), if m.disconnects() { "yes" } else { "no" }]);
        }
    }

    #[test]
    fn certificates() {
        use rustls::client::danger::ServerCertVerifier;
        use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
        use rustls::server::danger::ClientCertVerifier;
        let v = crate::tls::PeerVerifier::new(&rustls::crypto::ring::default_provider());
        let name = ServerName::try_from(crate::tls::SERVER_NAME).unwrap();
        let accepted = |der: &CertificateDer<'static>| {
            v.verify_server_cert(der, &[], &name, &[], UnixTime::now()).is_ok() && v.verify_client_cert(der, &[], UnixTime::now()).is_ok()
        };
        // Made from PROTOCOL.md 2.2 by another X.509 library (Python `cryptography`), key seed
        // 32 × 0x07: no extensions at all. Accepted in both roles; the node ID is its key.
        let key = "ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c";
        check("certificate_key", &hex::decode(key).unwrap(), key);
        let minimal = "3081ce308181a003020102020101300506032b65703010310e300c06035504030c05636169726e3020170d3230303130313030303030305a180f323130303031\
                       30313030303030305a3010310e300c06035504030c05636169726e302a300506032b6570032100ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b9242\
                       1eea691446d22c300506032b65700341004e757669d57caca189bcfa7e0279d4a703979e073bc2272e9ad9a4ca8577363c231f937620094a1537aac19368a337\
                       b6b2037eda026f9a2d1cbb13153689cc0c";
        check("certificate_minimal", &hex::decode(minimal).unwrap(), minimal);
        let minimal = CertificateDer::from(hex::decode(minimal).unwrap());
        assert!(accepted(&minimal));
        assert_eq!(hex::encode(crate::tls::certificate_key(&minimal).unwrap()), key);
        // The same with an extended-key-usage extension naming only `clientAuth`: refused.
        let client_only = "3081e730819aa003020102020101300506032b65703010310e300c06035504030c05636169726e3020170d3230303130313030303030305a180f323130303031\
                           30313030303030305a3010310e300c06035504030c05636169726e302a300506032b6570032100ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b9242\
                           1eea691446d22ca317301530130603551d25040c300a06082b06010505070302300506032b657003410008411c6a8f836c81e554c46db58951f0b9bf93551fae\
                           89313aa64f9ac128839d6bb0ae56c07acfe845e70c5cc10ec07f70d39b266f46dcd362353f37a1bc0305";
        check("certificate_client_auth_only", &hex::decode(client_only).unwrap(), client_only);
        assert!(!accepted(&CertificateDer::from(hex::decode(client_only).unwrap())));
    }
}
