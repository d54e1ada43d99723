//! Shared pieces of the fuzz targets (`fuzz_targets/`): structured inputs built with
//! `arbitrary`, and the canonical-encoding checks every decoder target applies.
//!
//! Structured inputs draw hashes and node IDs from small pools ([`Pool`]), so a sequence of
//! messages or events refers to the same blocks and peers often enough to reach the machines'
//! deeper states; a raw 32-byte value would almost never repeat.

pub mod submit;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use bytes::Bytes;
use cairn_chain::compact::CompactBlock;
use cairn_chain::hash::Hash;
use cairn_chain::keys::{Address, PublicKey, SignatureBytes};
use cairn_chain::pow::Target;
use cairn_chain::{Block, Header, Transaction};
use cairn_p2p::config::{MAX_BLOCKS_PER_REQUEST, MAX_HEADERS, MAX_LOCATOR, MAX_PEERS_PER_MESSAGE, MAX_TX_IDS_PER_MESSAGE};
use cairn_p2p::wire::{BlockId, Hello, Message, PeerAddress, RejectReason};

/// Most transactions a block may hold in the fuzzed decoders (the devnet spec's rule is the
/// same order of magnitude; a smaller bound keeps the limit reachable).
pub const MAX_TXS: usize = 10_000;

/// An index into a small pool of values (hashes, node IDs).
#[derive(Arbitrary, Clone, Copy, Debug)]
pub struct Pool(pub u8);

impl Pool {
    /// A hash of the pool (16 distinct values).
    pub fn hash(self) -> Hash {
        Hash::digest(&[self.0 % 16])
    }
    /// A node ID of the pool (4 distinct values).
    pub fn node(self) -> PublicKey {
        node(self.0 % 4)
    }
}

/// Node `i` of the fuzz targets (a fixed, valid Ed25519 key). The pool's four are derived
/// once: a derivation is a base-point multiplication, slow under coverage instrumentation, and
/// every fake transaction names one (`wire_roundtrip` ran ~100 inputs a second deriving them
/// anew, 255 for a block).
pub fn node(i: u8) -> PublicKey {
    static POOL: OnceLock<[PublicKey; 4]> = OnceLock::new();
    let derive = |i: u8| cairn_chain::Keypair::from_seed([i.wrapping_add(1); 32]).public();
    match POOL.get_or_init(|| [0, 1, 2, 3].map(derive)).get(usize::from(i)) {
        Some(key) => *key,
        None => derive(i),
    }
}

/// The genesis the fuzzed nodes share.
pub fn genesis() -> Hash {
    Hash::digest(b"cairn fuzz genesis")
}

/// The chain ID the fuzzed nodes share.
pub const CHAIN_ID: &str = "fuzz";

/// Our `Hello` in the handshake targets.
pub fn local_hello() -> Hello {
    Hello {
        protocol_version: cairn_p2p::config::PROTOCOL_VERSION,
        chain_id: CHAIN_ID.into(),
        genesis: genesis(),
        listen_port: 9000,
        best_height: 10,
        best_hash: Pool(0).hash(),
        total_work: [0; 32],
        user_agent: "cairn/fuzz".into(),
    }
}

/// A peer's `Hello`: ours with what the input chose to change (so most of them pass the
/// checks and the machine goes on).
#[derive(Arbitrary, Debug)]
pub struct FuzzHello {
    wrong_version: Option<u32>,
    wrong_chain: Option<String>,
    wrong_genesis: bool,
    listen_port: u16,
    best_height: u64,
    best_hash: Pool,
    total_work: [u8; 32],
    user_agent: String,
}

impl FuzzHello {
    /// The `Hello` it stands for.
    pub fn hello(&self) -> Hello {
        let mut h = local_hello();
        if let Some(v) = self.wrong_version {
            h.protocol_version = v;
        }
        if let Some(c) = &self.wrong_chain {
            h.chain_id.clone_from(c);
        }
        if self.wrong_genesis {
            h.genesis = Pool(1).hash();
        }
        h.listen_port = self.listen_port;
        h.best_height = self.best_height;
        h.best_hash = self.best_hash.hash();
        h.total_work = self.total_work;
        h.user_agent.clone_from(&self.user_agent);
        h
    }
}

/// A chain payload: a valid encoding of the kind the message carries, or raw bytes.
#[derive(Arbitrary, Debug)]
pub enum Payload {
    /// A header of the pool's fake chain at this height.
    Header(u8),
    /// A block of the pool's fake chain at this height, with `txs` transactions.
    Block(u8, u8),
    /// A transaction.
    Tx(FuzzTx),
    /// Anything.
    Raw(Vec<u8>),
}

impl Payload {
    /// Its bytes.
    pub fn bytes(&self) -> Bytes {
        match self {
            Payload::Header(h) => Bytes::copy_from_slice(&chain_header(u64::from(*h)).encode()),
            Payload::Block(h, n) => Bytes::from(chain_block(u64::from(*h), *n).encode()),
            Payload::Tx(t) => Bytes::from(t.tx().encode()),
            Payload::Raw(b) => Bytes::copy_from_slice(b),
        }
    }
}

/// A transaction with fields chosen by the input (its signature is not valid).
#[derive(Arbitrary, Debug, Clone)]
pub struct FuzzTx {
    from: u8,
    to: [u8; 32],
    amount: u64,
    fee: u64,
    nonce: u64,
    signature: [u8; 32],
}

impl FuzzTx {
    /// The transaction.
    pub fn tx(&self) -> Transaction {
        let mut signature = [0u8; 64];
        signature[..32].copy_from_slice(&self.signature);
        Transaction {
            chain: genesis(),
            from: node(self.from % 4),
            to: Address(self.to),
            amount: self.amount,
            fee: self.fee,
            nonce: self.nonce,
            signature: SignatureBytes(signature),
        }
    }
}

/// Headers of the fake chain kept from its start (every `u8` height the inputs name).
const CACHED_HEADERS: usize = 256;

/// Header `height` of the fake chain every structured target shares (no valid proof: the
/// schedule and the protocol machine never check one). The first [`CACHED_HEADERS`] are built
/// once (each names its parent's hash: header `h` built alone costs `h` hashes).
pub fn chain_header(height: u64) -> Header {
    static FIRST: OnceLock<Vec<Header>> = OnceLock::new();
    let first = FIRST.get_or_init(|| {
        let first = Header {
            version: cairn_chain::block::HEADER_VERSION,
            height: 0,
            prev_hash: genesis(),
            tx_root: Hash::ZERO,
            timestamp: 0,
            target: Target::MAX,
            nonce: 0,
            farmer: Address([7; 32]),
        };
        std::iter::successors(Some(first), |h| Some(next_header(h))).take(CACHED_HEADERS).collect()
    });
    match usize::try_from(height).ok().and_then(|i| first.get(i)) {
        Some(h) => h.clone(),
        None => {
            let last = &first[CACHED_HEADERS - 1];
            (last.height..height).fold(last.clone(), |h, _| next_header(&h))
        }
    }
}

/// The fake chain's header after `h`.
fn next_header(h: &Header) -> Header {
    Header { height: h.height + 1, prev_hash: h.hash(), timestamp: h.timestamp + 1_000, ..h.clone() }
}

/// Headers `from..from + n` of the fake chain (built in one pass).
pub fn chain_headers(from: u64, n: u64) -> Vec<Header> {
    let mut out = Vec::with_capacity(n as usize);
    let mut h = chain_header(from);
    for _ in 0..n {
        let next = next_header(&h);
        out.push(std::mem::replace(&mut h, next));
    }
    out
}

/// Block `height` of the fake chain with `txs` transactions (its root matches them).
pub fn chain_block(height: u64, txs: u8) -> Block {
    let transactions: Vec<Transaction> =
        (0..txs).map(|i| FuzzTx { from: i, to: [i; 32], amount: u64::from(i), fee: 1, nonce: height, signature: [0; 32] }.tx()).collect();
    let mut header = chain_header(height);
    let ids: Vec<Hash> = transactions.iter().map(Transaction::id).collect();
    header.tx_root = cairn_chain::block::merkle_root(&ids);
    Block { header, transactions }
}

/// Most copies [`Msg::Many`] makes where no fixed limit applies (a block's transaction
/// indexes, whose limit is the configured block size): past any the targets configure.
const MANY: usize = 5_000;

/// How many items [`Msg::Many`] puts in a message whose count limit is `limit`: a few (mod
/// 64), or one below, at or one past the limit; the boundary is what matters, and filling
/// every such message to [`MANY`] (as before) made `wire_roundtrip` encode, decode and check
/// megabytes an input: ~100 inputs a second.
fn many(n: u16, limit: usize) -> usize {
    match n % 4 {
        0 => usize::from(n >> 2) % 64,
        1 => limit - 1,
        2 => limit,
        _ => limit + 1,
    }
}

/// A message, built from the input with values the machines will recognise.
#[derive(Arbitrary, Debug)]
pub enum Msg {
    /// `Hello`.
    Hello(FuzzHello),
    /// `HelloAck`.
    HelloAck,
    /// `Reject`.
    Reject(u8, String),
    /// `Ping`.
    Ping(u64),
    /// `Pong` (the protocol machines start their nonces at small numbers).
    Pong(u8),
    /// `GetPeers`.
    GetPeers,
    /// `Peers`.
    Peers(Vec<(Option<Pool>, [u8; 4], u16)>),
    /// `GetStatus`.
    GetStatus,
    /// `Status`.
    Status(u64, Pool, [u8; 32]),
    /// `NewBlock`.
    NewBlock(u64, Pool),
    /// `GetBlock`.
    GetBlock(Option<Pool>, u64),
    /// `BlockData`.
    BlockData(Option<Payload>),
    /// `GetHeaders`.
    GetHeaders(Vec<Pool>, u32),
    /// `Headers`.
    Headers(Vec<Payload>),
    /// `GetBlocks`.
    GetBlocks(Vec<Pool>),
    /// `Blocks`.
    Blocks(Vec<Payload>),
    /// `Transactions`.
    Transactions(Vec<Payload>),
    /// `NotFound`.
    NotFound(Vec<Pool>),
    /// `TxIds`.
    TxIds(Vec<Pool>),
    /// `GetTxs`.
    GetTxs(Vec<Pool>),
    /// `CompactBlock` of a fake-chain block, or raw parts.
    CompactBlock(Option<(u8, u8)>, u64, Vec<u8>),
    /// `GetBlockTxs`.
    GetBlockTxs(Pool, Vec<u32>),
    /// `BlockTxs`.
    BlockTxs(Pool, Vec<Payload>),
    /// A message of kind `kind` with a few items, or one below, at or one past its count
    /// limit, as `n` says ([`many`]): reaches the limits that an input of a few kilobytes
    /// could not.
    Many(u8, u16),
}

fn hashes(v: &[Pool]) -> Vec<Hash> {
    v.iter().map(|p| p.hash()).collect()
}

fn payloads(v: &[Payload]) -> Vec<Bytes> {
    v.iter().map(Payload::bytes).collect()
}

impl Msg {
    /// The wire message.
    pub fn message(&self) -> Message {
        match self {
            Msg::Hello(h) => Message::Hello(h.hello()),
            Msg::HelloAck => Message::HelloAck,
            Msg::Reject(r, detail) => Message::Reject { reason: RejectReason::ALL[*r as usize % RejectReason::ALL.len()], detail: detail.clone() },
            Msg::Ping(n) => Message::Ping(*n),
            Msg::Pong(n) => Message::Pong(u64::from(*n)),
            Msg::GetPeers => Message::GetPeers,
            Msg::Peers(v) => Message::Peers(
                v.iter().map(|(id, ip, port)| PeerAddress { node_id: id.map(Pool::node), addr: SocketAddr::new(Ipv4Addr::from(*ip).into(), *port) }).collect(),
            ),
            Msg::GetStatus => Message::GetStatus,
            Msg::Status(h, hash, work) => Message::Status { best_height: *h, best_hash: hash.hash(), total_work: *work },
            Msg::NewBlock(h, hash) => Message::NewBlock { height: *h, hash: hash.hash() },
            Msg::GetBlock(hash, h) => Message::GetBlock(hash.map_or(BlockId::Height(*h), |p| BlockId::Hash(p.hash()))),
            Msg::BlockData(p) => Message::BlockData(p.as_ref().map(Payload::bytes)),
            Msg::GetHeaders(l, max) => Message::GetHeaders { locator: hashes(l), max: *max },
            Msg::Headers(v) => Message::Headers(payloads(v)),
            Msg::GetBlocks(v) => Message::GetBlocks(hashes(v)),
            Msg::Blocks(v) => Message::Blocks(payloads(v)),
            Msg::Transactions(v) => Message::Transactions(payloads(v)),
            Msg::NotFound(v) => Message::NotFound(hashes(v)),
            Msg::TxIds(v) => Message::TxIds(hashes(v)),
            Msg::GetTxs(v) => Message::GetTxs(hashes(v)),
            Msg::CompactBlock(block, nonce, raw) => match block {
                Some((height, txs)) => {
                    let c = CompactBlock::of(&chain_block(u64::from(*height), *txs), *nonce);
                    Message::CompactBlock { header: Bytes::copy_from_slice(&c.header.encode()), nonce: *nonce, short_ids: Bytes::from(c.encode_short_ids()) }
                }
                None => {
                    Message::CompactBlock { header: Bytes::copy_from_slice(&chain_header(0).encode()), nonce: *nonce, short_ids: Bytes::copy_from_slice(raw) }
                }
            },
            Msg::GetBlockTxs(hash, idx) => Message::GetBlockTxs { hash: hash.hash(), indexes: idx.clone() },
            Msg::BlockTxs(hash, v) => Message::BlockTxs { hash: hash.hash(), txs: payloads(v) },
            Msg::Many(kind, n) => {
                let h = |limit: usize| vec![Pool(3).hash(); many(*n, limit)];
                match kind % 8 {
                    0 => Message::Peers(vec![PeerAddress { node_id: None, addr: SocketAddr::from(([10, 0, 0, 1], 9000)) }; many(*n, MAX_PEERS_PER_MESSAGE)]),
                    1 => {
                        let locator = h(MAX_LOCATOR);
                        // `max` past the headers' limit too (the machine caps it).
                        Message::GetHeaders { max: many(*n, MAX_HEADERS) as u32, locator }
                    }
                    2 => Message::GetBlocks(h(MAX_BLOCKS_PER_REQUEST)),
                    3 => Message::TxIds(h(MAX_TX_IDS_PER_MESSAGE)),
                    4 => Message::GetTxs(h(MAX_TX_IDS_PER_MESSAGE)),
                    5 => Message::NotFound(h(MAX_BLOCKS_PER_REQUEST)),
                    6 => Message::GetBlockTxs { hash: Pool(2).hash(), indexes: (0..(*n as usize).min(MANY) as u32).collect() },
                    _ => Message::Headers(vec![Bytes::copy_from_slice(&chain_header(1).encode()); many(*n, MAX_HEADERS)]),
                }
            }
        }
    }
}

/// Decodes a header and, if it decodes, checks the encoding is canonical (the same bytes).
pub fn header_canonical(bytes: &[u8]) -> Option<Header> {
    let h = Header::decode(bytes).ok()?;
    assert_eq!(&h.encode()[..], bytes, "header: decode → encode changed the bytes");
    Some(h)
}

/// Decodes a transaction and, if it decodes, checks the encoding is canonical.
pub fn tx_canonical(bytes: &[u8]) -> Option<Transaction> {
    let tx = Transaction::decode(bytes).ok()?;
    assert_eq!(tx.encode(), bytes, "transaction: decode → encode changed the bytes");
    assert_eq!(tx.id(), Hash::digest(bytes), "transaction ID is not the hash of its encoding");
    Some(tx)
}

/// Decodes a block and, if it decodes, checks the encoding is canonical and its length known.
pub fn block_canonical(bytes: &[u8], max_txs: usize) -> Option<Block> {
    let b = Block::decode(bytes, max_txs).ok()?;
    assert!(b.transactions.len() <= max_txs, "block: more transactions than the limit");
    assert_eq!(b.encoded_len(), bytes.len(), "block: encoded_len differs from the decoded length");
    assert_eq!(b.encode(), bytes, "block: decode → encode changed the bytes");
    assert_eq!(b.hash(), b.header.hash());
    Some(b)
}

/// Runs the chain's decoders over every chain payload a message carries, as the peer task
/// does, checking the canonical round trip of each.
pub fn check_payloads(m: &Message) {
    match m {
        Message::BlockData(Some(b)) => {
            block_canonical(b, MAX_TXS);
        }
        Message::Headers(v) => v.iter().for_each(|b| {
            header_canonical(b);
        }),
        Message::Blocks(v) => v.iter().for_each(|b| {
            block_canonical(b, MAX_TXS);
        }),
        Message::Transactions(v) | Message::BlockTxs { txs: v, .. } => v.iter().for_each(|b| {
            tx_canonical(b);
        }),
        Message::CompactBlock { header, short_ids, .. } => {
            header_canonical(header);
            if let Ok(ids) = CompactBlock::decode_short_ids(short_ids, MAX_TXS) {
                let c = CompactBlock { header: Header::decode(header).unwrap_or_else(|_| chain_header(0)), nonce: 0, short_ids: ids };
                assert_eq!(&c.encode_short_ids()[..], &short_ids[..], "short IDs: decode → encode changed the bytes");
            }
        }
        _ => {}
    }
}
