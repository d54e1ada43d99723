//! P2P settings, and the constants behind their defaults, each with the reason for its value.

use std::time::Duration;

/// Protocol version this build speaks. Peers must speak the same one. Version 2 added
/// `NotFound` (a version-1 node cannot decode it) and made a `Blocks` answer cut short by the
/// frame budget distinct from one that lacks blocks (see PROTOCOL.md).
pub const PROTOCOL_VERSION: u32 = 2;

/// ALPN protocol name, one per protocol version: a QUIC peer that is not Cairn, or speaks
/// another version (whose `Hello` would not even decode: version 2 encodes hashes as raw
/// bytes), fails the TLS handshake with `no_application_protocol`, never a ban.
pub const ALPN: &[u8] = b"cairn/2";

/// DNS-SD service type a node advertises and browses for on the LAN (mDNS). The service name
/// (`_cairn`) stays within DNS-SD's 15-character limit; `_udp` because QUIC runs over UDP.
pub const MDNS_SERVICE_TYPE: &str = "_cairn._udp.local.";

/// Most LAN announcements tracked at once: anyone on the LAN can announce any number of fake
/// nodes, and a real LAN of Cairn nodes is far smaller than this.
pub const MDNS_MAX_TRACKED: usize = 1024;

/// How long shutdown waits for the mDNS daemon to confirm the advertisement's withdrawal
/// (it answers at once after sending the goodbye packets; this only bounds a stuck daemon).
pub const MDNS_WITHDRAW_TIMEOUT: Duration = Duration::from_secs(1);

/// mdns-sd repeats a goodbye packet 120 ms after the first (RFC 6762 §10.1: a lost goodbye
/// leaves a stale record until its TTL ends); the daemon is kept up this long for it.
pub const MDNS_GOODBYE_REPEAT: Duration = Duration::from_millis(150);

/// Pause before re-subscribing when the browse subscription ends (the daemon ends it when its
/// bounded event channel is full).
pub const MDNS_RESUBSCRIBE_DELAY: Duration = Duration::from_secs(1);

/// Largest frame before the handshake has succeeded: a `Hello` is ~200 bytes; anything
/// bigger from an unauthenticated peer is junk (zebra uses 1 KiB, reth 2 KiB).
pub const HANDSHAKE_FRAME_LIMIT: usize = 4 * 1024;

/// Overhead allowed on top of the chain's block size limit for one frame after the handshake
/// (message tag, lengths, a batch's per-block framing).
pub const FRAME_OVERHEAD: usize = 64 * 1024;

/// Most addresses in one `Peers` message (Bitcoin Core's `addr` limit).
pub const MAX_PEERS_PER_MESSAGE: usize = 1000;

/// A misbehaviour score halves after this long (issue 11's reputation decay, started early):
/// occasional honest mistakes never add up to a ban, a sustained misbehaviour still does.
pub const SCORE_HALF_LIFE_MS: u64 = 3_600_000;

/// Misbehaviour score at which a peer is banned.
pub const BAN_THRESHOLD: u32 = 100;

/// Commands queued for one peer task before senders wait or drop gossip.
pub const PEER_INBOX: usize = 256;

/// Most headers in one `Headers` answer.
pub const MAX_HEADERS: usize = 2000;
/// Most blocks asked in one `GetBlocks`.
pub const MAX_BLOCKS_PER_REQUEST: usize = 64;
/// Most hashes in a block locator.
pub const MAX_LOCATOR: usize = 64;
/// Most transactions in one `Transactions` message.
pub const MAX_TXS_PER_MESSAGE: usize = 1000;
/// Most transaction IDs in one `tx_ids` announcement or `get_txs` request.
pub const MAX_TX_IDS_PER_MESSAGE: usize = 4096;
/// Messages queued for the sync task (see the actor map in the crate docs).
pub const SYNC_INBOX: usize = 1024;
/// Commands queued for the peer manager.
pub const MANAGER_INBOX: usize = 1024;

/// Most bans held (a ban costs an attacker a fresh key; the table must not grow with that).
pub const MAX_BANS: usize = 10_000;

/// Most node IDs the operator removed (`DELETE /p2p/peers/{id}`) remembered as "do not dial
/// again unless asked"; the oldest is forgotten first.
pub const MAX_FORGOTTEN: usize = 1024;

/// Most network groups labelled in `cairn_p2p_inbound_by_group` (the rest add up as `other`),
/// so a peer set spread over many groups cannot blow up the metric's label set.
pub const METRIC_GROUPS: usize = 8;

/// How many misbehaviour records (node ID → score) are remembered.
pub const MAX_SCORE_RECORDS: usize = 4096;

/// Tunable P2P settings; [`P2pConfig::default`] is what a production node uses, tests shorten
/// the intervals.
#[derive(Clone, Debug)]
pub struct P2pConfig {
    /// Protocol version announced (tests set another to check the refusal).
    pub protocol_version: u32,
    /// Outbound connections the node tries to keep (Bitcoin Core: 8).
    pub target_outbound: usize,
    /// Most outbound connections, counting manual ones.
    pub max_outbound: usize,
    /// Most inbound connections.
    pub max_inbound: usize,
    /// Most addresses kept in the address book.
    pub max_addresses: usize,
    /// Time allowed for the whole handshake (TLS + hello exchange).
    pub handshake_timeout: Duration,
    /// Interval between pings.
    pub ping_interval: Duration,
    /// A peer that has not answered a ping within this time is dropped.
    pub ping_timeout: Duration,
    /// QUIC keep-alive (must stay well below the idle timeout).
    pub keep_alive: Duration,
    /// QUIC idle timeout: a silent connection is closed after this.
    pub idle_timeout: Duration,
    /// How often the manager checks its outbound count and dials.
    pub dial_interval: Duration,
    /// First retry delay after a failed dial; doubles per failure (with jitter).
    pub backoff_base: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
    /// How often to ask a peer for addresses while below the outbound target.
    pub peer_exchange_interval: Duration,
    /// Least time between two `GetPeers` a peer may send us.
    pub get_peers_min_interval: Duration,
    /// Messages per second a peer may send (token bucket refill).
    pub msg_rate: u32,
    /// Burst allowance of the token bucket.
    pub msg_burst: u32,
    /// How long a ban lasts.
    pub ban_duration: Duration,
    /// How long the IP ban that comes with an automatic ban lasts (at most `ban_duration`):
    /// shorter, since an address may pass to someone else.
    pub ip_ban_duration: Duration,
    /// Most inbound connections from one IP.
    pub max_inbound_per_ip: usize,
    /// Most inbound connections from one subnet (IPv4 /24, IPv6 /64).
    pub max_inbound_per_subnet: usize,
    /// New inbound handshakes allowed per IP per minute (token bucket refill)...
    pub handshakes_per_minute: u32,
    /// ...and at once (its size).
    pub handshake_burst: u32,
    /// Peers at `127.0.0.1` or `::1` skip the per-address limits, the handshake rate and
    /// automatic IP bans (a devnet runs many nodes there); other `127.x` addresses count as
    /// distinct hosts. Tests of those limits from `127.0.0.1` turn it off.
    pub exempt_loopback: bool,
    /// Largest frame after the handshake for tools that speak the wire without a chain (the
    /// p2p benchmark); a node derives its limit from the chain spec (`max_block_bytes` +
    /// [`FRAME_OVERHEAD`]).
    pub max_frame: usize,
    /// Advertise this node and discover peers on the LAN with mDNS ([`crate::mdns`]).
    pub mdns: bool,
    /// The node's human-readable name ([`crate::name`]), already validated: sent in the
    /// `user_agent` and the mDNS TXT records. `None`: unnamed.
    pub name: Option<String>,
    /// Relay blocks only (Bitcoin Core's `-blocksonly`): no transaction is announced to peers
    /// or fetched from their announcements (their `get_txs` are still answered). Saves
    /// bandwidth on a node that does not need the network's mempool.
    pub blocks_only: bool,
}

impl Default for P2pConfig {
    fn default() -> Self {
        P2pConfig {
            protocol_version: PROTOCOL_VERSION,
            target_outbound: 8,
            max_outbound: 16,
            max_inbound: 64,
            max_addresses: 2048,
            handshake_timeout: Duration::from_secs(5),
            ping_interval: Duration::from_secs(15),
            ping_timeout: Duration::from_secs(45),
            keep_alive: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(30),
            dial_interval: Duration::from_secs(2),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            peer_exchange_interval: Duration::from_secs(30),
            get_peers_min_interval: Duration::from_secs(5),
            msg_rate: 1000,
            msg_burst: 4000,
            ban_duration: Duration::from_secs(24 * 3600),
            ip_ban_duration: Duration::from_secs(24 * 3600),
            max_inbound_per_ip: 4,
            max_inbound_per_subnet: 16,
            handshakes_per_minute: 10,
            handshake_burst: 20,
            exempt_loopback: true,
            max_frame: 1 << 20,
            mdns: true,
            name: None,
            blocks_only: false,
        }
    }
}
