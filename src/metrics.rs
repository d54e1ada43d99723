//! Prometheus metrics, rendered by hand in the text exposition format.
//!
//! Label values come only from fixed sets (error codes, matched route templates, HTTP
//! statuses), so every map here is bounded by the code, not by traffic.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The node's counters and gauges.
#[derive(Default)]
pub struct Metrics {
    height: AtomicU64,
    mempool: AtomicU64,
    waiting: AtomicU64,
    blocks_accepted: AtomicU64,
    reorgs: AtomicU64,
    txs_accepted: AtomicU64,
    blocks_rejected: Mutex<BTreeMap<&'static str, u64>>,
    txs_rejected: Mutex<BTreeMap<&'static str, u64>>,
    rpc: Mutex<BTreeMap<(&'static str, String, u16), u64>>,
    /// The chain service's signature cache (its counters are rendered here).
    pub sigcache: std::sync::OnceLock<std::sync::Arc<cairn_chain::SigCache>>,
}

fn bump(map: &Mutex<BTreeMap<&'static str, u64>>, key: &'static str) {
    if let Ok(mut m) = map.lock() {
        *m.entry(key).or_default() += 1;
    }
}

impl Metrics {
    /// Best height.
    pub fn set_height(&self, h: u64) {
        self.height.store(h, Relaxed);
    }
    /// Mempool size.
    pub fn set_mempool(&self, n: usize) {
        self.mempool.store(n as u64, Relaxed);
    }
    /// Relayed transactions waiting for an earlier nonce of their sender.
    pub fn set_waiting(&self, n: usize) {
        self.waiting.store(n as u64, Relaxed);
    }
    /// Transactions in the mempool now.
    pub fn mempool(&self) -> u64 {
        self.mempool.load(Relaxed)
    }
    /// A block was accepted (best or side chain).
    pub fn block_accepted(&self) {
        self.blocks_accepted.fetch_add(1, Relaxed);
    }
    /// A block was refused with `code`.
    pub fn block_rejected(&self, code: &'static str) {
        bump(&self.blocks_rejected, code);
    }
    /// The best chain reorganised.
    pub fn reorg(&self) {
        self.reorgs.fetch_add(1, Relaxed);
    }
    /// Transactions entered the mempool.
    pub fn txs_accepted(&self, n: usize) {
        self.txs_accepted.fetch_add(n as u64, Relaxed);
    }
    /// A transaction was refused with `code`.
    pub fn tx_rejected(&self, code: &'static str) {
        bump(&self.txs_rejected, code);
    }
    /// An RPC request to `route` (the matched template, e.g. `/blocks/{id}`) answered `status`.
    pub fn rpc_request(&self, method: &'static str, route: &str, status: u16) {
        if let Ok(mut m) = self.rpc.lock() {
            *m.entry((method, route.to_string(), status)).or_default() += 1;
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut gauge = |name: &str, help: &str, kind: &str, v: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        };
        gauge("cairn_height", "Height of the best chain.", "gauge", self.height.load(Relaxed));
        gauge("cairn_mempool_transactions", "Transactions in the mempool.", "gauge", self.mempool.load(Relaxed));
        gauge("cairn_mempool_waiting_transactions", "Relayed transactions waiting for an earlier nonce of their sender.", "gauge", self.waiting.load(Relaxed));
        gauge("cairn_blocks_accepted_total", "Blocks accepted (best or side chain).", "counter", self.blocks_accepted.load(Relaxed));
        gauge("cairn_reorgs_total", "Best-chain reorganisations.", "counter", self.reorgs.load(Relaxed));
        gauge("cairn_transactions_accepted_total", "Transactions accepted into the mempool.", "counter", self.txs_accepted.load(Relaxed));
        if let Some(c) = self.sigcache.get() {
            gauge("cairn_signatures_verified_total", "Transaction signatures verified (mempool intake and blocks).", "counter", c.verified());
            gauge("cairn_sigcache_hits_total", "Block signatures not verified again: the mempool had verified them.", "counter", c.hits());
            gauge("cairn_sigcache_entries", "Verified signatures held in the signature cache.", "gauge", c.len() as u64);
        }
        let mut labelled = |name: &str, help: &str, map: &Mutex<BTreeMap<&'static str, u64>>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            if let Ok(m) = map.lock() {
                for (reason, v) in m.iter() {
                    let _ = writeln!(out, "{name}{{reason=\"{reason}\"}} {v}");
                }
            }
        };
        labelled("cairn_blocks_rejected_total", "Blocks refused, by reason.", &self.blocks_rejected);
        labelled("cairn_transactions_rejected_total", "Transactions refused, by reason.", &self.txs_rejected);
        let _ = writeln!(out, "# HELP cairn_rpc_requests_total RPC requests by method, route and status.\n# TYPE cairn_rpc_requests_total counter");
        if let Ok(m) = self.rpc.lock() {
            for ((method, route, status), v) in m.iter() {
                let _ = writeln!(out, "cairn_rpc_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {v}");
            }
        }
        out
    }
}
