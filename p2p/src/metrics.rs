//! P2P counters, rendered into the node's Prometheus text. Labels come from fixed sets.

use std::collections::BTreeMap;
use std::fmt::Write;
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

/// The p2p layer's counters.
#[derive(Default)]
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
}

/// Adds one to a labelled counter.
fn bump(map: &Mutex<BTreeMap<&'static str, u64>>, key: &'static str) {
    if let Ok(mut m) = map.lock() {
        *m.entry(key).or_default() += 1;
    }
}

/// Renders a counter with one label (`label="key"` per entry).
fn render_labelled(out: &mut String, name: &str, help: &str, label: &str, map: &Mutex<BTreeMap<&'static str, u64>>) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    if let Ok(m) = map.lock() {
        for (key, v) in m.iter() {
            let _ = writeln!(out, "{name}{{{label}=\"{key}\"}} {v}");
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

    /// Appends the Prometheus text; `inbound`/`outbound` are the current peer counts, `groups`
    /// the inbound peers per network group (at most [`crate::config::METRIC_GROUPS`] labels).
    pub fn render(&self, out: &mut String, inbound: usize, outbound: usize, groups: &[(String, usize)]) {
        let _ = writeln!(out, "# HELP cairn_p2p_peers Connected peers.\n# TYPE cairn_p2p_peers gauge");
        let _ = writeln!(out, "cairn_p2p_peers{{direction=\"inbound\"}} {inbound}\ncairn_p2p_peers{{direction=\"outbound\"}} {outbound}");
        let _ = writeln!(
            out,
            "# HELP cairn_p2p_inbound_by_group Inbound peers per network group (IPv4 /16, IPv6 /32): the biggest groups, the rest as \"other\".\n# TYPE cairn_p2p_inbound_by_group gauge"
        );
        for (group, n) in groups {
            let _ = writeln!(out, "cairn_p2p_inbound_by_group{{group=\"{group}\"}} {n}");
        }
        for (name, help, v) in [
            ("cairn_p2p_connections_total", "Connections that completed the handshake.", &self.connections),
            ("cairn_p2p_disconnections_total", "Registered connections that ended.", &self.disconnections),
            ("cairn_p2p_bans_total", "Nodes banned for misbehaviour.", &self.bans),
            ("cairn_p2p_evictions_total", "Inbound peers evicted to make room for a newcomer.", &self.evictions),
            ("cairn_p2p_duplicate_blocks_total", "Blocks received that were already known (dropped).", &self.duplicate_blocks),
            ("cairn_p2p_duplicate_transactions_total", "Transactions received that were already known (dropped).", &self.duplicate_txs),
            ("cairn_p2p_transactions_requested_total", "Transactions asked of peers (get_txs) after their announcements.", &self.txs_requested),
            ("cairn_p2p_mdns_discovered_total", "Compatible peers discovered on the LAN by mDNS and handed to the dialer.", &self.mdns_discovered),
            ("cairn_p2p_mdns_removed_total", "Discovered LAN peers whose mDNS announcement was withdrawn or expired.", &self.mdns_removed),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", v.load(Relaxed));
        }
        let _ = writeln!(
            out,
            "# HELP cairn_p2p_handshake_rejections_total Handshakes refused, by reason and by which side refused.\n# TYPE cairn_p2p_handshake_rejections_total counter"
        );
        if let Ok(m) = self.rejections.lock() {
            for ((reason, side), v) in m.iter() {
                let _ = writeln!(out, "cairn_p2p_handshake_rejections_total{{reason=\"{reason}\",side=\"{side}\"}} {v}");
            }
        }
        render_labelled(out, "cairn_p2p_misbehaviour_total", "Penalised peer behaviour, by kind.", "kind", &self.misbehaviour);
        render_labelled(
            out,
            "cairn_p2p_bans_by_kind_total",
            "Bans placed, by what they cover (node, ip) and who placed them (auto, operator).",
            "kind",
            &self.bans_by_kind,
        );
        render_labelled(
            out,
            "cairn_p2p_compact_blocks_total",
            "Compact blocks received, by outcome: rebuilt from the mempool, fetched_missing transactions first, or fell_back to the whole block.",
            "outcome",
            &self.compact_blocks,
        );
        render_labelled(out, "cairn_p2p_mdns_ignored_total", "LAN (mDNS) announcements not dialled, by reason.", "reason", &self.mdns_ignored);
        let _ = writeln!(
            out,
            "# HELP cairn_p2p_mdns_advertising Whether this node advertises itself on the LAN (mDNS).\n# TYPE cairn_p2p_mdns_advertising gauge\ncairn_p2p_mdns_advertising {}",
            u8::from(self.mdns_advertising.load(Relaxed))
        );
    }
}
