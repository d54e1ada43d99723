//! The per-peer protocol as a sans-IO state machine: everything one connection decides after
//! the handshake, with no socket, task or clock of its own.
//!
//! The peer task (the shell) feeds [`PeerProtocol`] each message ([`PeerProtocol::on_message`]),
//! stream failures ([`PeerProtocol::on_wire_error`]), what other tasks send through it
//! ([`PeerProtocol::on_send`]) and the time ([`PeerProtocol::tick`] at
//! [`PeerProtocol::next_tick`]), and carries out the [`Action`]s returned, in order. The machine
//! owns:
//!
//! - the heartbeat: a `Ping` every beat while none is out, a `GetStatus` every beat (a missed
//!   announcement is caught up there), and the ping timeout;
//! - the per-peer rate limit (a token bucket driven by the injected time);
//! - request tracking: which `Peers`, `Status`, `Headers`, `Blocks`/`NotFound`, `BlockTxs`
//!   and `BlockData` answers we asked for (answers are not charged against the rate limit, an
//!   unsolicited `Peers` is held against the peer, a `BlockData` is matched to its `GetBlock`);
//! - the count limits of every message, checked before anything is forwarded;
//! - the judgement of the peer, always as a [`Misbehaviour`] from the one table.
//!
//! Chain work (serving blocks, taking headers) is not done here: the machine says what to
//! serve ([`Serve`]) and what the sync task must see ([`ToSync`]).
//!
//! # Correctness
//! After the machine returns [`Action::Close`] it is closed: every later call returns nothing,
//! so the shell may still feed it whatever was in flight.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cairn_chain::Hash;

use crate::config::{MAX_BLOCKS_PER_REQUEST, MAX_HEADERS, MAX_LOCATOR, MAX_PEERS_PER_MESSAGE, MAX_TX_IDS_PER_MESSAGE, MAX_TXS_PER_MESSAGE, P2pConfig};
use crate::ratelimit::TokenBucket;
use crate::verdict::Misbehaviour;
use crate::wire::{BlockId, Message, PeerAddress, WireError};

/// Most `GetBlock` requests remembered for matching `BlockData` answers (the oldest is
/// forgotten beyond): gossip asks for one block per announcement, so more than this out to one
/// peer means it stopped answering, and its answers, if they come, are then unmatched.
pub const MAX_OUTSTANDING_GET_BLOCK: usize = 64;

/// Most unanswered requests of one kind (`GetPeers`, `GetStatus`, `GetHeaders`, `GetBlocks`)
/// counted towards solicited answers. The sync keeps at most two block requests out per peer
/// and one header request; beyond this a peer that ignored our requests could bank free
/// answers to send later.
pub const MAX_UNANSWERED: u32 = 8;

/// Most characters of a peer's `Reject` detail kept in the close reason (peer text in logs).
pub const MAX_REJECT_DETAIL: usize = 200;

/// [`Close::Local`] reason when a ping went unanswered for `ping_timeout`.
pub const PING_TIMEOUT: &str = "ping timeout";

/// Settings (the shell builds it from [`P2pConfig`], see the `From` impl).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolConfig {
    /// Time between heartbeats (a `Ping` if none is out, and a `GetStatus`).
    pub ping_interval: Duration,
    /// A `Ping` unanswered this long ends the connection.
    pub ping_timeout: Duration,
    /// Messages per second a peer may send (token bucket refill).
    pub msg_rate: u32,
    /// Messages a peer may send at once (token bucket size).
    pub msg_burst: u32,
    /// Least time between two `GetPeers` of the peer that we answer.
    pub get_peers_min_interval: Duration,
    /// Most transactions in a block (the chain's rule): bounds `compact_block`,
    /// `get_block_txs` and `block_txs`.
    pub max_block_txs: usize,
}

impl From<&P2pConfig> for ProtocolConfig {
    fn from(c: &P2pConfig) -> Self {
        ProtocolConfig {
            ping_interval: c.ping_interval,
            ping_timeout: c.ping_timeout,
            msg_rate: c.msg_rate,
            msg_burst: c.msg_burst,
            get_peers_min_interval: c.get_peers_min_interval,
            // The chain's rule; the shell sets it from the chain (`ChainInfo::max_block_txs`).
            max_block_txs: 10_000,
        }
    }
}

/// What to serve from the chain (the shell reads the chain and sends the answer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Serve {
    /// Answer with `BlockData` (`None` if we lack it).
    Block(BlockId),
    /// Answer with `Headers` after the first locator hash on our best chain; `max` is already
    /// capped at [`MAX_HEADERS`].
    Headers {
        /// The peer's block locator (at most [`MAX_LOCATOR`] hashes).
        locator: Vec<Hash>,
        /// Most headers to send.
        max: u32,
    },
    /// Answer with `Blocks` (at most [`MAX_BLOCKS_PER_REQUEST`] hashes asked).
    Blocks(Vec<Hash>),
    /// Answer with our tip (`Status`).
    Status,
    /// Answer with `Transactions` holding those of these mempool transactions we have (at
    /// most [`MAX_TX_IDS_PER_MESSAGE`] asked).
    Txs(Vec<Hash>),
    /// Answer with `BlockTxs`: a block's transactions at these indexes.
    BlockTxs {
        /// The block.
        hash: Hash,
        /// The indexes asked (at most the chain's `max_block_txs`).
        indexes: Vec<u32>,
    },
}

/// Chain messages for the sync task (the shell decodes and forwards them). Counts are already
/// within their limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToSync {
    /// The peer's tip.
    Status {
        /// Best height.
        best_height: u64,
        /// Best hash.
        best_hash: Hash,
        /// Cumulative work (32 bytes BE).
        total_work: [u8; 32],
    },
    /// The peer accepted a new block.
    NewBlock {
        /// Its height.
        height: u64,
        /// Its hash.
        hash: Hash,
    },
    /// Headers (canonical encodings, at most [`MAX_HEADERS`]).
    Headers(Vec<Bytes>),
    /// Blocks (canonical encodings, at most [`MAX_BLOCKS_PER_REQUEST`]).
    Blocks(Vec<Bytes>),
    /// Blocks asked for that the peer lacks (at most [`MAX_BLOCKS_PER_REQUEST`]).
    NotFound(Vec<Hash>),
    /// A new block as header and short IDs (the short IDs within the chain's
    /// `max_block_txs`, whole 8-byte entries not yet checked).
    CompactBlock {
        /// The canonical header.
        header: Bytes,
        /// The short IDs' salt.
        nonce: u64,
        /// The short IDs, 8 bytes each.
        short_ids: Bytes,
    },
    /// Transactions of a block we are rebuilding (at most the chain's `max_block_txs`).
    BlockTxs {
        /// The block.
        hash: Hash,
        /// Canonical transactions.
        txs: Vec<Bytes>,
    },
    /// A single block; `requested`: the `GetBlock` it answers, if we had one outstanding
    /// (answers come in order on the one stream).
    BlockData {
        /// The block (canonical encoding).
        block: Bytes,
        /// The request it answers, if any.
        requested: Option<BlockId>,
    },
}

/// Why the connection ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Close {
    /// The peer broke the protocol: report it to the peer manager, close as a violation.
    Violation(Misbehaviour),
    /// We end it, through no proven fault of the peer (e.g. [`PING_TIMEOUT`]).
    Local(&'static str),
    /// The peer ended it (its `Reject`: `"<code>: <detail>"`), or the stream did.
    Remote(String),
}

/// What the shell must do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send this message to the peer.
    Send(Message),
    /// Read this from the chain and send it to the peer.
    Serve(Serve),
    /// Forward to the sync task.
    Sync(ToSync),
    /// Transactions (canonical encodings, at most [`MAX_TXS_PER_MESSAGE`]) for the mempool.
    Transactions(Vec<Bytes>),
    /// Transaction IDs the peer announced (at most [`MAX_TX_IDS_PER_MESSAGE`]), for the
    /// relay task to fetch those we lack.
    Announced(Vec<Hash>),
    /// Addresses the peer gave in answer to our `GetPeers`, for the address book.
    Learn(Vec<PeerAddress>),
    /// Answer a `GetPeers`: the shell asks the peer manager for addresses and sends `Peers`.
    GivePeers,
    /// Report to the peer manager and go on (it may ban; the shell then stops).
    Misbehaved(Misbehaviour),
    /// End the connection. Always the last action; the machine is closed after it.
    Close(Close),
}

/// Requests of ours still unanswered, by the kind of answer they allow.
#[derive(Clone, Debug, Default)]
struct Asked {
    /// `GetPeers` → one `Peers`.
    peers: u32,
    /// `GetStatus` → one `Status`.
    status: u32,
    /// `GetHeaders` → one `Headers`.
    headers: u32,
    /// `GetBlocks` → one `Blocks` or `NotFound`.
    blocks: u32,
    /// `GetBlockTxs` → one `BlockTxs`.
    block_txs: u32,
}

/// One more unanswered request, up to [`MAX_UNANSWERED`].
fn ask(n: &mut u32) {
    *n = (*n + 1).min(MAX_UNANSWERED);
}

/// Whether the sender expects an answer it pairs with this message (so it is never dropped).
fn is_request(m: &Message) -> bool {
    matches!(
        m,
        Message::Ping(_)
            | Message::GetPeers
            | Message::GetStatus
            | Message::GetBlock(_)
            | Message::GetHeaders { .. }
            | Message::GetBlocks(_)
            | Message::GetBlockTxs { .. }
    )
}

/// Takes one unanswered request; whether there was one.
fn answer(n: &mut u32) -> bool {
    let had = *n > 0;
    *n = n.saturating_sub(1);
    had
}

/// One peer's protocol after the handshake. See the module doc.
#[derive(Clone, Debug)]
pub struct PeerProtocol {
    cfg: ProtocolConfig,
    /// When the next heartbeat is due.
    next_beat: Instant,
    /// The `Ping` out: its nonce and when it was sent.
    ping: Option<(u64, Instant)>,
    /// Round trip of the last answered `Ping`.
    rtt: Option<Duration>,
    /// Nonce of the next `Ping`.
    nonce: u64,
    /// When we last answered the peer's `GetPeers`.
    last_get_peers: Option<Instant>,
    asked: Asked,
    /// `GetBlock`s out, oldest first (answers come in order).
    get_blocks: VecDeque<BlockId>,
    bucket: TokenBucket,
    closed: bool,
}

impl PeerProtocol {
    /// The round trip of the last answered `Ping`, if one was answered.
    pub fn rtt(&self) -> Option<Duration> {
        self.rtt
    }

    /// `outbound`: we dialled (then it asks for addresses at once: a new node fills its address
    /// book from the peers it chose). `nonce_seed`: the first ping nonce (random in the shell,
    /// fixed in tests); later pings count up from it.
    pub fn new(cfg: ProtocolConfig, outbound: bool, now: Instant, nonce_seed: u64) -> (PeerProtocol, Vec<Action>) {
        let mut p = PeerProtocol {
            next_beat: now + cfg.ping_interval,
            ping: None,
            nonce: nonce_seed,
            rtt: None,
            last_get_peers: None,
            asked: Asked::default(),
            get_blocks: VecDeque::new(),
            bucket: TokenBucket::new(cfg.msg_rate, Duration::from_secs(1), cfg.msg_burst, now),
            closed: false,
            cfg,
        };
        let mut first = Vec::new();
        if outbound {
            ask(&mut p.asked.peers);
            first.push(Action::Send(Message::GetPeers));
        }
        (p, first)
    }

    /// A message arrived.
    ///
    /// # Security
    /// Every message but a solicited answer costs a token first. One over the rate is held
    /// against the peer (a sustained flood adds up to a ban in the peer manager); an
    /// announcement or gossip is then dropped unread, but a request is still answered: the
    /// asker pairs answers with its requests in order, so a silently dropped request would
    /// put every later answer out of step. Counts are checked against their limits before
    /// anything is forwarded.
    pub fn on_message(&mut self, msg: Message, now: Instant) -> Vec<Action> {
        if self.closed {
            return Vec::new();
        }
        if self.charged(&msg) && !self.bucket.take(now) {
            if matches!(msg, Message::NewBlock { .. } | Message::CompactBlock { .. } | Message::Transactions(_) | Message::TxIds(_)) {
                // Gossip over the rate is load, not abuse: an honest relayer under a burst must
                // never be penalised. It is dropped (the mempool and tips catch up through
                // later gossip and sync); a flood costs the flooder its bandwidth only.
                return Vec::new();
            }
            if !is_request(&msg) {
                return vec![Action::Misbehaved(Misbehaviour::RateLimited)];
            }
            let mut out = vec![Action::Misbehaved(Misbehaviour::RateLimited)];
            out.extend(self.handle(msg, now));
            return out;
        }
        self.handle(msg, now)
    }

    fn handle(&mut self, msg: Message, now: Instant) -> Vec<Action> {
        match msg {
            Message::Ping(n) => vec![Action::Send(Message::Pong(n))],
            Message::Pong(n) => {
                // A late Pong (after the deadline, before the shell's tick) still proves life.
                if let Some((want, sent)) = self.ping
                    && want == n
                {
                    self.rtt = Some(now.saturating_duration_since(sent));
                    self.ping = None;
                }
                Vec::new()
            }
            Message::GetPeers => {
                // Too soon after the last one: ignored silently (honest nodes can race here);
                // a flood is caught by the rate limit.
                if self.last_get_peers.is_some_and(|t| now.saturating_duration_since(t) < self.cfg.get_peers_min_interval) {
                    return Vec::new();
                }
                self.last_get_peers = Some(now);
                vec![Action::GivePeers]
            }
            Message::Peers(list) => {
                if list.len() > MAX_PEERS_PER_MESSAGE {
                    return self.violation(Misbehaviour::OversizedMessage);
                }
                if !answer(&mut self.asked.peers) {
                    // Ignored, so a peer cannot stream addresses into our book.
                    return vec![Action::Misbehaved(Misbehaviour::UnsolicitedPeers)];
                }
                vec![Action::Learn(list)]
            }
            Message::GetStatus => vec![Action::Serve(Serve::Status)],
            Message::Status { best_height, best_hash, total_work } => {
                answer(&mut self.asked.status);
                vec![Action::Sync(ToSync::Status { best_height, best_hash, total_work })]
            }
            Message::NewBlock { height, hash } => vec![Action::Sync(ToSync::NewBlock { height, hash })],
            Message::GetBlock(id) => vec![Action::Serve(Serve::Block(id))],
            Message::BlockData(Some(block)) => {
                let requested = self.get_blocks.pop_front();
                vec![Action::Sync(ToSync::BlockData { block, requested })]
            }
            Message::BlockData(None) => match self.get_blocks.pop_front() {
                // It announced (or holds at that height) a block it then does not serve.
                Some(_) => vec![Action::Misbehaved(Misbehaviour::UnavailableBlock)],
                // Nothing asked: nothing lost, nothing to judge.
                None => Vec::new(),
            },
            Message::GetHeaders { locator, max } => {
                if locator.len() > MAX_LOCATOR {
                    return self.violation(Misbehaviour::OversizedMessage);
                }
                let max = max.min(u32::try_from(MAX_HEADERS).unwrap_or(u32::MAX));
                vec![Action::Serve(Serve::Headers { locator, max })]
            }
            Message::Headers(list) => {
                if list.len() > MAX_HEADERS {
                    return self.violation(Misbehaviour::OversizedMessage);
                }
                answer(&mut self.asked.headers);
                vec![Action::Sync(ToSync::Headers(list))]
            }
            Message::GetBlocks(hashes) => {
                if hashes.len() > MAX_BLOCKS_PER_REQUEST {
                    return self.violation(Misbehaviour::OversizedMessage);
                }
                vec![Action::Serve(Serve::Blocks(hashes))]
            }
            Message::Blocks(list) => {
                if list.len() > MAX_BLOCKS_PER_REQUEST {
                    return self.violation(Misbehaviour::OversizedMessage);
                }
                answer(&mut self.asked.blocks);
                vec![Action::Sync(ToSync::Blocks(list))]
            }
            Message::NotFound(hashes) => {
                if hashes.len() > MAX_BLOCKS_PER_REQUEST {
                    return self.violation(Misbehaviour::OversizedMessage);
                }
                // It precedes the `Blocks` answer of the same request, which settles the count.
                vec![Action::Sync(ToSync::NotFound(hashes))]
            }
            Message::Transactions(list) => {
                if list.len() > MAX_TXS_PER_MESSAGE {
                    return self.violation(Misbehaviour::OversizedMessage);
                }
                vec![Action::Transactions(list)]
            }
            Message::TxIds(ids) => {
                if ids.len() > MAX_TX_IDS_PER_MESSAGE {
                    return self.violation(Misbehaviour::OversizedMessage);
                }
                vec![Action::Announced(ids)]
            }
            Message::GetTxs(ids) => {
                if ids.len() > MAX_TX_IDS_PER_MESSAGE {
                    return self.violation(Misbehaviour::OversizedMessage);
                }
                vec![Action::Serve(Serve::Txs(ids))]
            }
            Message::CompactBlock { header, nonce, short_ids } => {
                if short_ids.len() > self.cfg.max_block_txs.saturating_mul(cairn_chain::compact::SHORT_ID_LEN) {
                    return self.violation(Misbehaviour::OversizedMessage);
                }
                vec![Action::Sync(ToSync::CompactBlock { header, nonce, short_ids })]
            }
            Message::GetBlockTxs { hash, indexes } => {
                if indexes.len() > self.cfg.max_block_txs {
                    return self.violation(Misbehaviour::OversizedMessage);
                }
                vec![Action::Serve(Serve::BlockTxs { hash, indexes })]
            }
            Message::BlockTxs { hash, txs } => {
                if txs.len() > self.cfg.max_block_txs {
                    return self.violation(Misbehaviour::OversizedMessage);
                }
                answer(&mut self.asked.block_txs);
                vec![Action::Sync(ToSync::BlockTxs { hash, txs })]
            }
            Message::Hello(_) | Message::HelloAck => self.violation(Misbehaviour::SecondHandshake),
            Message::Reject { reason, detail } => {
                let detail: String = detail.chars().take(MAX_REJECT_DETAIL).collect();
                self.close(Close::Remote(format!("{}: {detail}", reason.code())))
            }
        }
    }

    /// The stream failed: a bad frame is the peer's fault (the stream is out of step, so the
    /// connection ends); a closed or failed stream is the peer (or the network) going away.
    pub fn on_wire_error(&mut self, e: &WireError, _now: Instant) -> Vec<Action> {
        if self.closed {
            return Vec::new();
        }
        match e {
            WireError::FrameTooLarge(_) => self.violation(Misbehaviour::OversizedFrame),
            WireError::Decode(_) => self.violation(Misbehaviour::UndecodableMessage),
            WireError::Closed => self.close(Close::Remote("stream closed".into())),
            WireError::Io(e) => self.close(Close::Remote(e.to_string())),
        }
    }

    /// The shell is about to send `msg` for another task (sync requests, gossip, peer
    /// exchange): the machine records what it must expect back. Not needed for the machine's
    /// own `Send` actions (already recorded).
    ///
    /// `GetPeers` → one `Peers` answer is solicited; `GetStatus`, `GetHeaders`, `GetBlocks` →
    /// one `Status`, `Headers`, `Blocks`/`NotFound` answer is free of the rate limit;
    /// `GetBlock(id)` → the next `BlockData` answers it (at most
    /// [`MAX_OUTSTANDING_GET_BLOCK`] remembered, oldest forgotten).
    pub fn on_send(&mut self, msg: &Message) {
        if self.closed {
            return;
        }
        match msg {
            Message::GetPeers => ask(&mut self.asked.peers),
            Message::GetStatus => ask(&mut self.asked.status),
            Message::GetHeaders { .. } => ask(&mut self.asked.headers),
            Message::GetBlocks(_) => ask(&mut self.asked.blocks),
            Message::GetBlockTxs { .. } => ask(&mut self.asked.block_txs),
            Message::GetBlock(id) => {
                if self.get_blocks.len() >= MAX_OUTSTANDING_GET_BLOCK {
                    self.get_blocks.pop_front();
                }
                self.get_blocks.push_back(*id);
            }
            _ => {}
        }
    }

    /// Time passes: the ping timeout first, then the heartbeat if due. A late call does one
    /// beat, not one per beat missed (the next is a full interval later).
    pub fn tick(&mut self, now: Instant) -> Vec<Action> {
        if self.closed {
            return Vec::new();
        }
        if let Some((_, sent)) = self.ping
            && now >= sent + self.cfg.ping_timeout
        {
            return self.close(Close::Local(PING_TIMEOUT));
        }
        if now < self.next_beat {
            return Vec::new();
        }
        self.next_beat = now + self.cfg.ping_interval;
        let mut out = Vec::with_capacity(2);
        if self.ping.is_none() {
            let nonce = self.nonce;
            self.nonce = self.nonce.wrapping_add(1);
            self.ping = Some((nonce, now));
            out.push(Action::Send(Message::Ping(nonce)));
        }
        // Every beat, even with a ping out: a missed `NewBlock` is caught up by the answer.
        ask(&mut self.asked.status);
        out.push(Action::Send(Message::GetStatus));
        out
    }

    /// When [`PeerProtocol::tick`] next has something to do: the next heartbeat, or the ping
    /// deadline if sooner.
    pub fn next_tick(&self) -> Instant {
        match self.ping {
            Some((_, sent)) => self.next_beat.min(sent + self.cfg.ping_timeout),
            None => self.next_beat,
        }
    }

    /// Whether the machine returned [`Action::Close`]: it does nothing more.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Whether `msg` costs a token: everything but the answers we asked for, and the messages
    /// that end the connection anyway.
    fn charged(&self, msg: &Message) -> bool {
        match msg {
            Message::Pong(n) => self.ping.is_none_or(|(want, _)| want != *n),
            Message::Peers(_) => self.asked.peers == 0,
            Message::Status { .. } => self.asked.status == 0,
            Message::Headers(_) => self.asked.headers == 0,
            Message::Blocks(_) | Message::NotFound(_) => self.asked.blocks == 0,
            Message::BlockData(_) => self.get_blocks.is_empty(),
            Message::BlockTxs { .. } => self.asked.block_txs == 0,
            Message::Hello(_) | Message::HelloAck | Message::Reject { .. } => false,
            Message::Ping(_)
            | Message::GetPeers
            | Message::GetStatus
            | Message::NewBlock { .. }
            | Message::GetBlock(_)
            | Message::GetHeaders { .. }
            | Message::GetBlocks(_)
            | Message::Transactions(_)
            | Message::TxIds(_)
            | Message::GetTxs(_)
            | Message::CompactBlock { .. }
            | Message::GetBlockTxs { .. } => true,
        }
    }

    fn violation(&mut self, m: Misbehaviour) -> Vec<Action> {
        self.close(Close::Violation(m))
    }

    fn close(&mut self, c: Close) -> Vec<Action> {
        self.closed = true;
        vec![Action::Close(c)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::RejectReason;

    const SEED: u64 = 1000;
    const BEAT: Duration = Duration::from_secs(10);
    const PING_WAIT: Duration = Duration::from_secs(30);

    fn cfg() -> ProtocolConfig {
        ProtocolConfig {
            ping_interval: BEAT,
            ping_timeout: PING_WAIT,
            msg_rate: 10,
            msg_burst: 5,
            get_peers_min_interval: Duration::from_secs(5),
            max_block_txs: 100,
        }
    }

    fn inbound(t0: Instant) -> PeerProtocol {
        let (p, first) = PeerProtocol::new(cfg(), false, t0, SEED);
        assert_eq!(first, vec![], "an inbound peer is not asked for addresses");
        p
    }

    /// A machine that allows any burst, for tests not about the rate limit.
    fn unlimited(t0: Instant) -> PeerProtocol {
        let c = ProtocolConfig { msg_rate: 1_000_000, msg_burst: 1_000_000, ..cfg() };
        PeerProtocol::new(c, false, t0, SEED).0
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn addrs(n: usize) -> Vec<PeerAddress> {
        (0..n).map(|i| PeerAddress { node_id: None, addr: ([10, 0, 0, 1], 1 + i as u16).into() }).collect()
    }

    fn blobs(n: usize) -> Vec<Bytes> {
        vec![Bytes::from_static(b"x"); n]
    }

    fn hashes(n: usize) -> Vec<Hash> {
        (0..n).map(|i| Hash::digest(&i.to_le_bytes())).collect()
    }

    fn closed_for(m: Misbehaviour) -> Vec<Action> {
        vec![Action::Close(Close::Violation(m))]
    }

    /// Everything a closed machine could still be given; it must stay silent.
    fn assert_silent(p: &mut PeerProtocol, now: Instant) {
        assert!(p.is_closed());
        assert_eq!(p.on_message(Message::Ping(1), now), vec![]);
        assert_eq!(p.on_message(Message::HelloAck, now), vec![]);
        assert_eq!(p.on_message(Message::Peers(addrs(2000)), now), vec![]);
        assert_eq!(p.on_wire_error(&WireError::Decode("x".into()), now), vec![]);
        assert_eq!(p.on_wire_error(&WireError::Closed, now), vec![]);
        p.on_send(&Message::GetPeers);
        assert_eq!(p.on_message(Message::Peers(addrs(1)), now), vec![]);
        assert_eq!(p.tick(now), vec![]);
        assert_eq!(p.tick(now + secs(3600)), vec![]);
    }

    #[test]
    fn heartbeat_pings_and_asks_status_each_beat_then_times_out() {
        let t0 = Instant::now();
        let mut p = inbound(t0);
        assert_eq!(p.next_tick(), t0 + BEAT);
        assert_eq!(p.tick(t0 + BEAT - Duration::from_millis(1)), vec![]);
        assert_eq!(p.tick(t0 + BEAT), vec![Action::Send(Message::Ping(SEED)), Action::Send(Message::GetStatus)]);
        // Next beat at 20 s; the ping is due back by 40 s.
        assert_eq!(p.next_tick(), t0 + secs(20));
        assert_eq!(p.tick(t0 + secs(15)), vec![]);
        // Ping still out: no second ping, but the status is asked every beat.
        assert_eq!(p.tick(t0 + secs(20)), vec![Action::Send(Message::GetStatus)]);
        assert_eq!(p.tick(t0 + secs(30)), vec![Action::Send(Message::GetStatus)]);
        assert_eq!(p.next_tick(), t0 + secs(40), "the ping deadline and the beat coincide");
        assert_eq!(p.tick(t0 + secs(40) - Duration::from_millis(1)), vec![]);
        assert_eq!(p.tick(t0 + secs(40)), vec![Action::Close(Close::Local(PING_TIMEOUT))]);
        assert_silent(&mut p, t0 + secs(40));
    }

    #[test]
    fn next_tick_is_the_ping_deadline_when_it_comes_first() {
        let t0 = Instant::now();
        let c = ProtocolConfig { ping_interval: secs(10), ping_timeout: secs(4), ..cfg() };
        let (mut p, _) = PeerProtocol::new(c, false, t0, SEED);
        p.tick(t0 + secs(10));
        assert_eq!(p.next_tick(), t0 + secs(14));
        assert_eq!(p.tick(t0 + secs(14)), vec![Action::Close(Close::Local(PING_TIMEOUT))]);
    }

    #[test]
    fn a_late_tick_does_one_beat_and_the_next_is_a_full_interval_later() {
        let t0 = Instant::now();
        let mut p = inbound(t0);
        let late = t0 + secs(25);
        assert_eq!(p.tick(late), vec![Action::Send(Message::Ping(SEED)), Action::Send(Message::GetStatus)]);
        assert_eq!(p.tick(late), vec![]);
        assert_eq!(p.next_tick(), late + BEAT);
    }

    #[test]
    fn the_right_pong_clears_the_ping_and_others_do_not() {
        let t0 = Instant::now();
        let mut p = inbound(t0);
        p.tick(t0 + BEAT);
        assert_eq!(p.on_message(Message::Pong(SEED + 7), t0 + secs(11)), vec![]);
        assert_eq!(p.next_tick(), t0 + secs(20));
        assert_eq!(p.on_message(Message::Pong(SEED), t0 + secs(12)), vec![]);
        // Answered: the next beat pings again with the next nonce, and nothing times out.
        assert_eq!(p.tick(t0 + secs(20)), vec![Action::Send(Message::Ping(SEED + 1)), Action::Send(Message::GetStatus)]);
        assert_eq!(p.on_message(Message::Pong(SEED + 1), t0 + secs(21)), vec![]);
        for beat in 3..20 {
            let actions = p.tick(t0 + BEAT * beat);
            assert_eq!(actions.len(), 2, "beat {beat}: {actions:?}");
            let Action::Send(Message::Ping(n)) = actions[0] else { panic!("{actions:?}") };
            assert_eq!(p.on_message(Message::Pong(n), t0 + BEAT * beat + secs(1)), vec![]);
        }
        assert!(!p.is_closed());
    }

    #[test]
    fn requests_are_answered_or_served() {
        let t0 = Instant::now();
        let mut p = unlimited(t0);
        assert_eq!(p.on_message(Message::Ping(42), t0), vec![Action::Send(Message::Pong(42))]);
        assert_eq!(p.on_message(Message::GetStatus, t0), vec![Action::Serve(Serve::Status)]);
        let id = BlockId::Height(9);
        assert_eq!(p.on_message(Message::GetBlock(id), t0), vec![Action::Serve(Serve::Block(id))]);
        assert_eq!(p.on_message(Message::GetBlocks(hashes(3)), t0), vec![Action::Serve(Serve::Blocks(hashes(3)))]);
        let get = |max| Message::GetHeaders { locator: hashes(2), max };
        assert_eq!(p.on_message(get(10), t0), vec![Action::Serve(Serve::Headers { locator: hashes(2), max: 10 })]);
        assert_eq!(p.on_message(get(u32::MAX), t0), vec![Action::Serve(Serve::Headers { locator: hashes(2), max: MAX_HEADERS as u32 })], "max capped");
    }

    #[test]
    fn chain_messages_go_to_sync_and_transactions_to_the_mempool() {
        let t0 = Instant::now();
        let mut p = unlimited(t0);
        let (best_hash, total_work) = (Hash::digest(b"tip"), [9; 32]);
        assert_eq!(
            p.on_message(Message::Status { best_height: 5, best_hash, total_work }, t0),
            vec![Action::Sync(ToSync::Status { best_height: 5, best_hash, total_work })]
        );
        assert_eq!(p.on_message(Message::NewBlock { height: 6, hash: best_hash }, t0), vec![Action::Sync(ToSync::NewBlock { height: 6, hash: best_hash })]);
        assert_eq!(p.on_message(Message::Headers(blobs(3)), t0), vec![Action::Sync(ToSync::Headers(blobs(3)))]);
        assert_eq!(p.on_message(Message::Blocks(blobs(2)), t0), vec![Action::Sync(ToSync::Blocks(blobs(2)))]);
        assert_eq!(p.on_message(Message::NotFound(hashes(2)), t0), vec![Action::Sync(ToSync::NotFound(hashes(2)))]);
        assert_eq!(p.on_message(Message::Transactions(blobs(4)), t0), vec![Action::Transactions(blobs(4))]);
        assert_eq!(p.on_message(Message::TxIds(hashes(3)), t0), vec![Action::Announced(hashes(3))]);
        assert_eq!(p.on_message(Message::GetTxs(hashes(2)), t0), vec![Action::Serve(Serve::Txs(hashes(2)))]);
        let (header, short_ids) = (Bytes::from_static(b"h"), Bytes::from_static(b"12345678"));
        assert_eq!(
            p.on_message(Message::CompactBlock { header: header.clone(), nonce: 5, short_ids: short_ids.clone() }, t0),
            vec![Action::Sync(ToSync::CompactBlock { header, nonce: 5, short_ids })]
        );
        assert_eq!(
            p.on_message(Message::GetBlockTxs { hash: best_hash, indexes: vec![1, 4] }, t0),
            vec![Action::Serve(Serve::BlockTxs { hash: best_hash, indexes: vec![1, 4] })]
        );
    }

    #[test]
    fn announcements_over_the_rate_are_dropped_unjudged_and_block_txs_answers_are_free() {
        let t0 = Instant::now();
        let mut p = inbound(t0);
        for _ in 0..5 {
            p.on_message(Message::Ping(1), t0);
        }
        let gossip = [
            Message::TxIds(hashes(1)),
            Message::Transactions(blobs(1)),
            Message::CompactBlock { header: Bytes::new(), nonce: 0, short_ids: Bytes::new() },
            Message::NewBlock { height: 1, hash: Hash::ZERO },
        ];
        for m in gossip {
            let kind = m.kind();
            assert_eq!(p.on_message(m, t0), vec![], "{kind} over the rate: dropped, not judged");
        }
        // A GetBlockTxs is a request: answered even over the rate (answers pair in order).
        assert_eq!(
            p.on_message(Message::GetBlockTxs { hash: Hash::ZERO, indexes: vec![0] }, t0),
            vec![Action::Misbehaved(Misbehaviour::RateLimited), Action::Serve(Serve::BlockTxs { hash: Hash::ZERO, indexes: vec![0] })]
        );
        // The answer to our own GetBlockTxs costs nothing; an unasked one is judged.
        p.on_send(&Message::GetBlockTxs { hash: Hash::ZERO, indexes: vec![0] });
        assert_eq!(
            p.on_message(Message::BlockTxs { hash: Hash::ZERO, txs: blobs(1) }, t0),
            vec![Action::Sync(ToSync::BlockTxs { hash: Hash::ZERO, txs: blobs(1) })]
        );
        assert_eq!(p.on_message(Message::BlockTxs { hash: Hash::ZERO, txs: blobs(1) }, t0), vec![Action::Misbehaved(Misbehaviour::RateLimited)]);
    }

    #[test]
    fn every_count_limit_closes_one_over_and_passes_at_the_limit() {
        /// Builds the message with `n` items.
        type Make = fn(usize) -> Message;
        let limits: [(Make, usize); 12] = [
            (|n| Message::Peers(addrs(n)), MAX_PEERS_PER_MESSAGE),
            (|n| Message::Headers(blobs(n)), MAX_HEADERS),
            (|n| Message::Blocks(blobs(n)), MAX_BLOCKS_PER_REQUEST),
            (|n| Message::NotFound(hashes(n)), MAX_BLOCKS_PER_REQUEST),
            (|n| Message::GetBlocks(hashes(n)), MAX_BLOCKS_PER_REQUEST),
            (|n| Message::GetHeaders { locator: hashes(n), max: 1 }, MAX_LOCATOR),
            (|n| Message::Transactions(blobs(n)), MAX_TXS_PER_MESSAGE),
            (|n| Message::TxIds(hashes(n)), MAX_TX_IDS_PER_MESSAGE),
            (|n| Message::GetTxs(hashes(n)), MAX_TX_IDS_PER_MESSAGE),
            // The chain's max_block_txs (100 in these tests) bounds the compact block messages.
            (|n| Message::CompactBlock { header: Bytes::new(), nonce: 0, short_ids: Bytes::from(vec![0; 8 * n]) }, 100),
            (|n| Message::GetBlockTxs { hash: Hash::ZERO, indexes: vec![0; n] }, 100),
            (|n| Message::BlockTxs { hash: Hash::ZERO, txs: blobs(n) }, 100),
        ];
        for (make, limit) in limits {
            let t0 = Instant::now();
            let mut p = unlimited(t0);
            p.on_send(&Message::GetPeers);
            let at = make(limit);
            let kind = at.kind();
            let actions = p.on_message(at, t0);
            assert!(actions.len() == 1 && !matches!(actions[0], Action::Close(_)), "{kind} at the limit: {actions:?}");
            assert_eq!(p.on_message(make(limit + 1), t0), closed_for(Misbehaviour::OversizedMessage), "{kind}");
            assert_silent(&mut p, t0);
        }
    }

    #[test]
    fn peers_are_learned_only_when_asked_one_answer_per_request() {
        let t0 = Instant::now();
        let mut p = unlimited(t0);
        assert_eq!(p.on_message(Message::Peers(addrs(3)), t0), vec![Action::Misbehaved(Misbehaviour::UnsolicitedPeers)]);
        p.on_send(&Message::GetPeers);
        assert_eq!(p.on_message(Message::Peers(addrs(3)), t0), vec![Action::Learn(addrs(3))]);
        assert_eq!(p.on_message(Message::Peers(addrs(3)), t0), vec![Action::Misbehaved(Misbehaviour::UnsolicitedPeers)]);
        p.on_send(&Message::GetPeers);
        p.on_send(&Message::GetPeers);
        assert_eq!(p.on_message(Message::Peers(addrs(1)), t0), vec![Action::Learn(addrs(1))]);
        assert_eq!(p.on_message(Message::Peers(addrs(2)), t0), vec![Action::Learn(addrs(2))]);
        assert_eq!(p.on_message(Message::Peers(vec![]), t0), vec![Action::Misbehaved(Misbehaviour::UnsolicitedPeers)]);
        assert!(!p.is_closed());
    }

    #[test]
    fn an_outbound_connection_asks_for_addresses_at_once() {
        let t0 = Instant::now();
        let (mut p, first) = PeerProtocol::new(cfg(), true, t0, SEED);
        assert_eq!(first, vec![Action::Send(Message::GetPeers)]);
        assert_eq!(p.on_message(Message::Peers(addrs(2)), t0), vec![Action::Learn(addrs(2))]);
        assert_eq!(p.on_message(Message::Peers(addrs(2)), t0), vec![Action::Misbehaved(Misbehaviour::UnsolicitedPeers)]);
    }

    #[test]
    fn unanswered_requests_bank_at_most_max_unanswered_answers() {
        let t0 = Instant::now();
        let mut p = unlimited(t0);
        for _ in 0..MAX_UNANSWERED + 5 {
            p.on_send(&Message::GetPeers);
        }
        for i in 0..MAX_UNANSWERED {
            assert_eq!(p.on_message(Message::Peers(addrs(1)), t0), vec![Action::Learn(addrs(1))], "answer {i}");
        }
        assert_eq!(p.on_message(Message::Peers(addrs(1)), t0), vec![Action::Misbehaved(Misbehaviour::UnsolicitedPeers)]);
    }

    #[test]
    fn get_peers_is_answered_at_most_once_per_interval() {
        let t0 = Instant::now();
        let mut p = unlimited(t0);
        assert_eq!(p.on_message(Message::GetPeers, t0), vec![Action::GivePeers]);
        assert_eq!(p.on_message(Message::GetPeers, t0 + secs(1)), vec![], "ignored silently");
        assert_eq!(p.on_message(Message::GetPeers, t0 + secs(5) - Duration::from_millis(1)), vec![]);
        assert_eq!(p.on_message(Message::GetPeers, t0 + secs(5)), vec![Action::GivePeers]);
        assert_eq!(p.on_message(Message::GetPeers, t0 + secs(6)), vec![]);
        assert!(!p.is_closed());
    }

    #[test]
    fn block_data_is_matched_to_get_block_in_order() {
        let t0 = Instant::now();
        let mut p = unlimited(t0);
        let (a, b, c) = (BlockId::Hash(Hash::digest(b"a")), BlockId::Height(5), BlockId::Height(6));
        for id in [a, b, c] {
            p.on_send(&Message::GetBlock(id));
        }
        let block = Bytes::from_static(b"block");
        assert_eq!(
            p.on_message(Message::BlockData(Some(block.clone())), t0),
            vec![Action::Sync(ToSync::BlockData { block: block.clone(), requested: Some(a) })]
        );
        assert_eq!(p.on_message(Message::BlockData(None), t0), vec![Action::Misbehaved(Misbehaviour::UnavailableBlock)]);
        assert_eq!(
            p.on_message(Message::BlockData(Some(block.clone())), t0),
            vec![Action::Sync(ToSync::BlockData { block: block.clone(), requested: Some(c) })]
        );
        // Nothing out: a block is still offered to sync (it may be new), a refusal is ignored.
        assert_eq!(p.on_message(Message::BlockData(Some(block.clone())), t0), vec![Action::Sync(ToSync::BlockData { block, requested: None })]);
        assert_eq!(p.on_message(Message::BlockData(None), t0), vec![]);
        assert!(!p.is_closed());
    }

    #[test]
    fn at_most_max_outstanding_get_block_are_remembered_oldest_forgotten() {
        let t0 = Instant::now();
        let mut p = unlimited(t0);
        let extra = 6;
        for h in 0..(MAX_OUTSTANDING_GET_BLOCK + extra) as u64 {
            p.on_send(&Message::GetBlock(BlockId::Height(h)));
        }
        let block = Bytes::from_static(b"b");
        for h in extra as u64..(MAX_OUTSTANDING_GET_BLOCK + extra) as u64 {
            assert_eq!(
                p.on_message(Message::BlockData(Some(block.clone())), t0),
                vec![Action::Sync(ToSync::BlockData { block: block.clone(), requested: Some(BlockId::Height(h)) })]
            );
        }
        assert_eq!(p.on_message(Message::BlockData(None), t0), vec![], "all answered");
    }

    #[test]
    fn a_flood_gets_the_burst_then_drops_until_time_refills_the_bucket() {
        let t0 = Instant::now();
        let mut p = inbound(t0); // 10 a second, burst 5
        let ann = |i: u64| Message::NewBlock { height: i, hash: Hash::ZERO };
        let ok = |i: u64| vec![Action::Sync(ToSync::NewBlock { height: i, hash: Hash::ZERO })];
        // Gossip over the rate is dropped, never held against the peer.
        let limited: Vec<Action> = vec![];
        for i in 0..5 {
            assert_eq!(p.on_message(ann(i), t0), ok(i), "burst {i}");
        }
        for i in 5..50 {
            assert_eq!(p.on_message(ann(i), t0), limited, "{i}: an announcement over the rate is dropped");
        }
        // 100 ms is one token at 10 a second.
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(p.on_message(ann(1), t1), ok(1));
        assert_eq!(p.on_message(ann(2), t1), limited);
        // 99 ms is not.
        let t2 = t1 + Duration::from_millis(99);
        assert_eq!(p.on_message(ann(3), t2), limited);
        assert_eq!(p.on_message(ann(4), t2 + Duration::from_millis(1)), ok(4));
        // A long pause saves the burst, not more.
        let t3 = t2 + secs(3600);
        for i in 0..5 {
            assert_eq!(p.on_message(Message::GetStatus, t3), vec![Action::Serve(Serve::Status)], "burst {i}");
        }
        // A request over the rate is held against the peer but still answered: the asker pairs
        // answers with requests in order, so dropping one would put every later answer out of
        // step.
        assert_eq!(p.on_message(Message::GetStatus, t3), vec![Action::Misbehaved(Misbehaviour::RateLimited), Action::Serve(Serve::Status)]);
        assert_eq!(
            p.on_message(Message::GetBlocks(hashes(1)), t3),
            vec![Action::Misbehaved(Misbehaviour::RateLimited), Action::Serve(Serve::Blocks(hashes(1)))]
        );
        assert!(!p.is_closed(), "rate limiting drops; banning is the manager's");
    }

    #[test]
    fn answers_we_asked_for_are_not_charged_and_unsolicited_ones_are() {
        let t0 = Instant::now();
        let (mut p, _) = PeerProtocol::new(cfg(), true, t0, SEED); // asked for peers
        p.tick(t0 + BEAT); // ping and status out
        let t = t0 + BEAT;
        for i in 0..5 {
            assert_eq!(p.on_message(Message::Ping(i), t), vec![Action::Send(Message::Pong(i))]);
        }
        let limited = vec![Action::Misbehaved(Misbehaviour::RateLimited)];
        assert_eq!(p.on_message(Message::NewBlock { height: 9, hash: Hash::ZERO }, t), vec![], "the bucket is empty: gossip dropped");

        p.on_send(&Message::GetHeaders { locator: vec![], max: 10 });
        p.on_send(&Message::GetBlocks(hashes(1)));
        p.on_send(&Message::GetBlock(BlockId::Height(1)));
        let (best_hash, total_work) = (Hash::ZERO, [0; 32]);
        let status = Message::Status { best_height: 1, best_hash, total_work };
        let block = Bytes::from_static(b"b");
        let answers = [
            (Message::Pong(SEED), vec![]),
            (status.clone(), vec![Action::Sync(ToSync::Status { best_height: 1, best_hash, total_work })]),
            (Message::Peers(addrs(1)), vec![Action::Learn(addrs(1))]),
            (Message::Headers(blobs(1)), vec![Action::Sync(ToSync::Headers(blobs(1)))]),
            // A NotFound comes before the Blocks of the same request and leaves it outstanding.
            (Message::NotFound(hashes(1)), vec![Action::Sync(ToSync::NotFound(hashes(1)))]),
            (Message::Blocks(blobs(1)), vec![Action::Sync(ToSync::Blocks(blobs(1)))]),
            (Message::BlockData(Some(block.clone())), vec![Action::Sync(ToSync::BlockData { block: block.clone(), requested: Some(BlockId::Height(1)) })]),
        ];
        for (msg, want) in answers.clone() {
            let kind = msg.kind();
            assert_eq!(p.on_message(msg, t), want, "solicited {kind}");
        }
        // The same again, unasked: charged, and the bucket is empty.
        for (msg, _) in answers {
            let kind = msg.kind();
            assert_eq!(p.on_message(msg, t), limited, "unsolicited {kind}");
        }
        // Messages that end the connection are never lost to the rate limit.
        let reject = Message::Reject { reason: RejectReason::ShuttingDown, detail: "bye".into() };
        assert_eq!(p.on_message(reject, t), vec![Action::Close(Close::Remote("shutting_down: bye".into()))]);
    }

    #[test]
    fn a_second_handshake_is_a_violation() {
        for msg in [
            Message::HelloAck,
            Message::Hello(crate::wire::Hello {
                protocol_version: 1,
                chain_id: "c".into(),
                genesis: Hash::ZERO,
                listen_port: 1,
                best_height: 0,
                best_hash: Hash::ZERO,
                total_work: [0; 32],
                user_agent: String::new(),
            }),
        ] {
            let t0 = Instant::now();
            let mut p = inbound(t0);
            assert_eq!(p.on_message(msg, t0), closed_for(Misbehaviour::SecondHandshake));
            assert_silent(&mut p, t0);
        }
    }

    #[test]
    fn the_peers_reject_closes_with_its_reason_and_a_cut_detail() {
        let t0 = Instant::now();
        let mut p = inbound(t0);
        let detail = "ü".repeat(1000);
        let actions = p.on_message(Message::Reject { reason: RejectReason::Banned, detail }, t0);
        let [Action::Close(Close::Remote(why))] = actions.as_slice() else { panic!("{actions:?}") };
        assert_eq!(*why, format!("banned: {}", "ü".repeat(MAX_REJECT_DETAIL)));
        assert_silent(&mut p, t0);
    }

    #[test]
    fn wire_errors_close_bad_frames_as_violations_and_failures_as_remote() {
        let cases = [
            (WireError::FrameTooLarge(1 << 20), Close::Violation(Misbehaviour::OversizedFrame)),
            (WireError::Decode("junk".into()), Close::Violation(Misbehaviour::UndecodableMessage)),
            (WireError::Closed, Close::Remote("stream closed".into())),
            (WireError::Io(std::io::Error::other("reset")), Close::Remote("reset".into())),
        ];
        for (e, want) in cases {
            let t0 = Instant::now();
            let mut p = inbound(t0);
            assert_eq!(p.on_wire_error(&e, t0), vec![Action::Close(want)], "{e}");
            assert_silent(&mut p, t0);
        }
    }

    #[test]
    fn from_p2p_config() {
        let c = P2pConfig::default();
        let pc = ProtocolConfig::from(&c);
        assert_eq!((pc.ping_interval, pc.ping_timeout), (c.ping_interval, c.ping_timeout));
        assert_eq!((pc.msg_rate, pc.msg_burst, pc.get_peers_min_interval), (c.msg_rate, c.msg_burst, c.get_peers_min_interval));
    }
}
