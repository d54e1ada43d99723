//! P2P counters and histograms, encoded into the node's `/metrics` by prometheus-client.
//! Labels come from fixed sets.

use std::collections::BTreeMap;

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use crate::wire::RejectReason;

/// Which side refused a handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// We refused the peer.
    Local,
    /// The peer refused us.
    Remote,
}

/// The p2p layer's counters and histograms, written at each scrape by [`P2pMetrics::encode`]
/// through prometheus-client's encoder (which owns the format: names, escaping, `_total`).
pub struct P2pMetrics {
    rejections: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    misbehaviour: Mutex<BTreeMap<&'static str, u64>>,
    connections: AtomicU64,
    duplicate_blocks: AtomicU64,
    duplicate_txs: AtomicU64,
    disconnections: AtomicU64,
    bans: AtomicU64,
    bans_by_kind: Mutex<BTreeMap<&'static str, u64>>,
    evictions: AtomicU64,
    mdns_advertising: AtomicBool,
    mdns_discovered: AtomicU64,
    mdns_removed: AtomicU64,
    mdns_ignored: Mutex<BTreeMap<&'static str, u64>>,
    compact_blocks: Mutex<BTreeMap<&'static str, u64>>,
    txs_requested: AtomicU64,
    tx_ids_announced: AtomicU64,
    reannounce_rounds: AtomicU64,
    propagation: Histogram,
    announce_to_accept: Histogram,
}

/// Adds one to a labelled counter.
fn bump(map: &Mutex<BTreeMap<&'static str, u64>>, key: &'static str) {
    if let Ok(mut m) = map.lock() {
        *m.entry(key).or_default() += 1;
    }
}

/// Encodes a counter with one label (`label="key"` per entry).
fn encode_labelled(enc: &mut DescriptorEncoder, name: &str, help: &str, label: &'static str, map: &Mutex<BTreeMap<&'static str, u64>>) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    if let Ok(map) = map.lock() {
        for (key, v) in map.iter() {
            m.encode_family(&[(label, *key)])?.encode_counter::<NoLabelSet, _, u64>(v, None)?;
        }
    }
    Ok(())
}

/// Seconds of a block's journey: 5 ms to ~80 s.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 15))
}

impl Default for P2pMetrics {
    fn default() -> Self {
        P2pMetrics {
            rejections: Mutex::default(),
            misbehaviour: Mutex::default(),
            connections: AtomicU64::default(),
            duplicate_blocks: AtomicU64::default(),
            duplicate_txs: AtomicU64::default(),
            disconnections: AtomicU64::default(),
            bans: AtomicU64::default(),
            bans_by_kind: Mutex::default(),
            evictions: AtomicU64::default(),
            mdns_advertising: AtomicBool::default(),
            mdns_discovered: AtomicU64::default(),
            mdns_removed: AtomicU64::default(),
            mdns_ignored: Mutex::default(),
            compact_blocks: Mutex::default(),
            txs_requested: AtomicU64::default(),
            tx_ids_announced: AtomicU64::default(),
            reannounce_rounds: AtomicU64::default(),
            propagation: latency_histogram(),
            announce_to_accept: latency_histogram(),
        }
    }
}

impl P2pMetrics {
    /// A handshake refusal.
    pub fn rejected(&self, reason: RejectReason, side: Side) {
        let side = match side {
            Side::Local => "local",
            Side::Remote => "remote",
        };
        if let Ok(mut m) = self.rejections.lock() {
            *m.entry((reason.code(), side)).or_default() += 1;
        }
    }
    /// How many handshakes were refused for `reason` by `side`.
    pub fn rejections(&self, reason: RejectReason, side: Side) -> u64 {
        let side = match side {
            Side::Local => "local",
            Side::Remote => "remote",
        };
        self.rejections.lock().map(|m| m.get(&(reason.code(), side)).copied().unwrap_or(0)).unwrap_or(0)
    }

    /// A penalised behaviour.
    pub fn misbehaved(&self, kind: &'static str) {
        bump(&self.misbehaviour, kind);
    }
    /// A peer sent a block we already had.
    pub fn duplicate_block(&self) {
        self.duplicate_blocks.fetch_add(1, Relaxed);
    }
    /// A peer sent a transaction we already had.
    pub fn duplicate_tx(&self) {
        self.duplicate_txs.fetch_add(1, Relaxed);
    }

    /// A compact block received and handled: `rebuilt` (from the mempool alone),
    /// `fetched_missing` (after fetching the transactions it lacked) or `fell_back` (the whole
    /// block was fetched).
    pub fn compact_block(&self, outcome: &'static str) {
        bump(&self.compact_blocks, outcome);
    }
    /// How many compact blocks ended with `outcome`.
    pub fn compact_blocks(&self, outcome: &str) -> u64 {
        self.compact_blocks.lock().map(|m| m.get(outcome).copied().unwrap_or(0)).unwrap_or(0)
    }
    /// Transactions asked of peers after their announcements.
    pub fn txs_requested(&self, n: usize) {
        self.txs_requested.fetch_add(n as u64, Relaxed);
    }

    /// Transaction IDs sent to peers in announcements (`tx_ids`).
    pub fn tx_ids_announced(&self, n: usize) {
        self.tx_ids_announced.fetch_add(n as u64, Relaxed);
    }

    /// A round of re-announcing part of the mempool went out.
    pub fn reannounce_round(&self) {
        self.reannounce_rounds.fetch_add(1, Relaxed);
    }

    /// A connection completed its handshake.
    pub fn connected(&self) {
        self.connections.fetch_add(1, Relaxed);
    }
    /// A registered connection ended.
    pub fn disconnected(&self) {
        self.disconnections.fetch_add(1, Relaxed);
    }
    /// A node was banned for misbehaviour.
    pub fn banned(&self) {
        self.bans.fetch_add(1, Relaxed);
    }
    /// A ban was placed; `kind` is one of `node_auto`, `ip_auto`, `node_operator`,
    /// `ip_operator`.
    pub fn ban_placed(&self, kind: &'static str) {
        bump(&self.bans_by_kind, kind);
    }
    /// An inbound peer was evicted for a newcomer.
    pub fn evicted(&self) {
        self.evictions.fetch_add(1, Relaxed);
    }
    /// Inbound peers evicted so far.
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Relaxed)
    }

    /// Whether this node's mDNS advertisement is registered.
    pub fn set_mdns_advertising(&self, on: bool) {
        self.mdns_advertising.store(on, Relaxed);
    }
    /// A compatible peer announced itself on the LAN (new, or at a new address).
    pub fn mdns_discovered(&self) {
        self.mdns_discovered.fetch_add(1, Relaxed);
    }
    /// A discovered peer's LAN announcement went away (withdrawn, expired, or the interface
    /// it was heard on went down).
    pub fn mdns_removed(&self) {
        self.mdns_removed.fetch_add(1, Relaxed);
    }
    /// A LAN announcement was ignored (not dialled), for `reason`.
    pub fn mdns_ignored(&self, reason: &'static str) {
        bump(&self.mdns_ignored, reason);
    }

    /// Writes the p2p metrics through `enc` (the prometheus-client encoder of a scrape);
    /// `inbound`/`outbound` are the current peer counts, `groups` the inbound peers per
    /// network group (at most [`crate::config::METRIC_GROUPS`] labels).
    pub fn encode(&self, enc: &mut DescriptorEncoder, inbound: usize, outbound: usize, groups: &[(String, usize)]) -> std::fmt::Result {
        let mut peers = enc.encode_descriptor("cairn_p2p_peers", "Connected peers.", None, MetricType::Gauge)?;
        for (direction, n) in [("inbound", inbound), ("outbound", outbound)] {
            peers.encode_family(&[("direction", direction)])?.encode_gauge(&(n as i64))?;
        }
        let mut by_group = enc.encode_descriptor(
            "cairn_p2p_inbound_by_group",
            "Inbound peers per network group (IPv4 /16, IPv6 /32): the biggest groups, the rest as \"other\".",
            None,
            MetricType::Gauge,
        )?;
        for (group, n) in groups {
            by_group.encode_family(&[("group", group.as_str())])?.encode_gauge(&(*n as i64))?;
        }
        for (name, help, v) in [
            ("cairn_p2p_connections", "Connections that completed the handshake.", &self.connections),
            ("cairn_p2p_disconnections", "Registered connections that ended.", &self.disconnections),
            ("cairn_p2p_bans", "Nodes banned for misbehaviour.", &self.bans),
            ("cairn_p2p_evictions", "Inbound peers evicted to make room for a newcomer.", &self.evictions),
            ("cairn_p2p_duplicate_blocks", "Blocks received that were already known (dropped).", &self.duplicate_blocks),
            ("cairn_p2p_duplicate_transactions", "Transactions received that were already known (dropped).", &self.duplicate_txs),
            ("cairn_p2p_transactions_requested", "Transactions asked of peers (get_txs) after their announcements.", &self.txs_requested),
            ("cairn_p2p_tx_ids_announced", "Transaction IDs sent to peers in announcements (tx_ids), new and re-announced.", &self.tx_ids_announced),
            (
                "cairn_p2p_reannounce_rounds",
                "Rounds of re-announcing part of the mempool to every peer (IDs a peer is known to hold are skipped).",
                &self.reannounce_rounds,
            ),
            ("cairn_p2p_mdns_discovered", "Compatible peers discovered on the LAN by mDNS and handed to the dialer.", &self.mdns_discovered),
            ("cairn_p2p_mdns_removed", "Discovered LAN peers whose mDNS announcement was withdrawn or expired.", &self.mdns_removed),
        ] {
            enc.encode_descriptor(name, help, None, MetricType::Counter)?.encode_counter::<NoLabelSet, _, u64>(&v.load(Relaxed), None)?;
        }
        let mut rejections =
            enc.encode_descriptor("cairn_p2p_handshake_rejections", "Handshakes refused, by reason and by which side refused.", None, MetricType::Counter)?;
        if let Ok(m) = self.rejections.lock() {
            for ((reason, side), v) in m.iter() {
                rejections.encode_family(&[("reason", *reason), ("side", *side)])?.encode_counter::<NoLabelSet, _, u64>(v, None)?;
            }
        }
        encode_labelled(enc, "cairn_p2p_misbehaviour", "Penalised peer behaviour, by kind.", "kind", &self.misbehaviour)?;
        encode_labelled(
            enc,
            "cairn_p2p_bans_by_kind",
            "Bans placed, by what they cover (node, ip) and who placed them (auto, operator).",
            "kind",
            &self.bans_by_kind,
        )?;
        encode_labelled(
            enc,
            "cairn_p2p_compact_blocks",
            "Compact blocks received, by outcome: rebuilt from the mempool, fetched_missing transactions first, or fell_back to the whole block.",
            "outcome",
            &self.compact_blocks,
        )?;
        encode_labelled(enc, "cairn_p2p_mdns_ignored", "LAN (mDNS) announcements not dialled, by reason.", "reason", &self.mdns_ignored)?;
        enc.encode_descriptor("cairn_p2p_mdns_advertising", "Whether this node advertises itself on the LAN (mDNS).", None, MetricType::Gauge)?
            .encode_gauge(&i64::from(self.mdns_advertising.load(Relaxed)))?;
        for (name, help, h) in [
            (
                "cairn_block_propagation_seconds",
                "From a block's header timestamp to its acceptance here, for new blocks from peers (includes the farmer's clock offset).",
                &self.propagation,
            ),
            (
                "cairn_block_announce_to_accept_seconds",
                "From a new block's announcement by a peer (compact or whole) to its acceptance here.",
                &self.announce_to_accept,
            ),
        ] {
            h.encode(enc.encode_descriptor(name, help, None, MetricType::Histogram)?)?;
        }
        Ok(())
    }

    /// A new block from a peer was accepted `age` after its header's timestamp and `since`
    /// after its announcement arrived.
    pub fn block_arrived(&self, age: std::time::Duration, since: std::time::Duration) {
        self.propagation.observe(age.as_secs_f64());
        self.announce_to_accept.observe(since.as_secs_f64());
    }
}
