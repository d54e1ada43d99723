//! The node's Prometheus metrics, kept in prometheus-client types and encoded by it in the
//! Prometheus text format (0.0.4, which `promtool check metrics` reads). One registry per
//! node (a devnet runs several nodes in one process, so nothing here is global).
//!
//! Label values come only from fixed sets (error codes, matched route templates, HTTP
//! statuses), so every family here is bounded by the code, not by traffic. Values owned
//! elsewhere (the signature cache, the p2p layer, the process) are read at each scrape by
//! collectors ([`crate::process_metrics`], [`cairn_p2p::service::MetricsCollector`]).

use std::sync::{Arc, OnceLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;
type Histograms = Family<Labels, Histogram, fn() -> Histogram>;

/// Seconds from 0.5 ms to ~16 s (RPC answers, block imports, sync batches).
fn seconds_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// The node's metrics.
pub struct Metrics {
    registry: Registry,
    height: Gauge,
    mempool: Gauge,
    waiting: Gauge,
    blocks_accepted: Counter,
    reorgs: Counter,
    txs_accepted: Counter,
    blocks_rejected: Family<Labels, Counter>,
    txs_rejected: Family<Labels, Counter>,
    rpc: Family<Labels, Counter>,
    rpc_latency: Histograms,
    block_import: Histogram,
    sync_batch: Histogram,
    /// The chain service's signature cache (its counters are read at each scrape).
    pub sigcache: OnceLock<Arc<cairn_chain::SigCache>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Every metric registered, at zero.
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let m = Metrics {
            registry: Registry::default(),
            height: Gauge::default(),
            mempool: Gauge::default(),
            waiting: Gauge::default(),
            blocks_accepted: Counter::default(),
            reorgs: Counter::default(),
            txs_accepted: Counter::default(),
            blocks_rejected: Family::default(),
            txs_rejected: Family::default(),
            rpc: Family::default(),
            rpc_latency: Family::new_with_constructor(seconds_histogram as fn() -> Histogram),
            block_import: seconds_histogram(),
            sync_batch: seconds_histogram(),
            sigcache: OnceLock::new(),
        };
        let r = &mut registry;
        r.register("cairn_height", "Height of the best chain", m.height.clone());
        r.register("cairn_mempool_transactions", "Transactions in the mempool", m.mempool.clone());
        r.register("cairn_mempool_waiting_transactions", "Relayed transactions waiting for an earlier nonce of their sender", m.waiting.clone());
        r.register("cairn_blocks_accepted", "Blocks accepted (best or side chain)", m.blocks_accepted.clone());
        r.register("cairn_reorgs", "Best-chain reorganisations", m.reorgs.clone());
        r.register("cairn_transactions_accepted", "Transactions accepted into the mempool", m.txs_accepted.clone());
        r.register("cairn_blocks_rejected", "Blocks refused, by reason", m.blocks_rejected.clone());
        r.register("cairn_transactions_rejected", "Transactions refused, by reason", m.txs_rejected.clone());
        r.register("cairn_rpc_requests", "RPC requests by method, route and status", m.rpc.clone());
        r.register("cairn_rpc_request_duration_seconds", "RPC answer time by method and route (to the response head)", m.rpc_latency.clone());
        r.register("cairn_block_import_seconds", "Time to validate and commit one block on the chain thread", m.block_import.clone());
        r.register("cairn_sync_batch_seconds", "Time to commit one catch-up sync run (consecutive blocks, one batch)", m.sync_batch.clone());
        r.register(
            "cairn_build",
            "Version and commit of this build",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION").to_string()), ("commit", env!("CAIRN_COMMIT").to_string())]),
        );
        Metrics { registry, ..m }
    }

    /// Best height.
    pub fn set_height(&self, h: u64) {
        self.height.set(h as i64);
    }
    /// Mempool size.
    pub fn set_mempool(&self, n: usize) {
        self.mempool.set(n as i64);
    }
    /// Relayed transactions waiting for an earlier nonce of their sender.
    pub fn set_waiting(&self, n: usize) {
        self.waiting.set(n as i64);
    }
    /// Transactions in the mempool now.
    pub fn mempool(&self) -> u64 {
        self.mempool.get().max(0) as u64
    }
    /// A block was accepted (best or side chain).
    pub fn block_accepted(&self) {
        self.blocks_accepted.inc();
    }
    /// A block was refused with `code`.
    pub fn block_rejected(&self, code: &'static str) {
        self.blocks_rejected.get_or_create(&vec![("reason", code.to_string())]).inc();
    }
    /// The best chain reorganised.
    pub fn reorg(&self) {
        self.reorgs.inc();
    }
    /// Transactions entered the mempool.
    pub fn txs_accepted(&self, n: usize) {
        self.txs_accepted.inc_by(n as u64);
    }
    /// A transaction was refused with `code`.
    pub fn tx_rejected(&self, code: &'static str) {
        self.txs_rejected.get_or_create(&vec![("reason", code.to_string())]).inc();
    }
    /// An RPC request to `route` (the matched template, e.g. `/blocks/{id}`) answered
    /// `status` after `seconds`.
    pub fn rpc_request(&self, method: &'static str, route: &str, status: u16, seconds: f64) {
        self.rpc.get_or_create(&vec![("method", method.to_string()), ("route", route.to_string()), ("status", status.to_string())]).inc();
        self.rpc_latency.get_or_create(&vec![("method", method.to_string()), ("route", route.to_string())]).observe(seconds);
    }
    /// One block went through the chain thread's validation and commit.
    pub fn block_imported(&self, seconds: f64) {
        self.block_import.observe(seconds);
    }
    /// One catch-up sync run was committed.
    pub fn sync_batch(&self, seconds: f64) {
        self.sync_batch.observe(seconds);
    }

    /// The Prometheus text exposition: these metrics, then each collector's.
    pub fn render(&self, collectors: Vec<Box<dyn Collector>>) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        let mut extra = Registry::default();
        if let Some(c) = self.sigcache.get() {
            extra.register_collector(Box::new(SigCacheCollector(c.clone())));
        }
        extra.register_collector(Box::new(crate::process_metrics::ProcessCollector));
        for c in collectors {
            extra.register_collector(c);
        }
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &extra);
        out
    }
}

/// The signature cache's counters, read at each scrape.
struct SigCacheCollector(Arc<cairn_chain::SigCache>);

impl std::fmt::Debug for SigCacheCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("signature cache metrics")
    }
}

impl Collector for SigCacheCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let c = &self.0;
        enc.encode_descriptor("cairn_signatures_verified", "Transaction signatures verified (mempool intake and blocks).", None, MetricType::Counter)?
            .encode_counter::<NoLabelSet, _, u64>(&c.verified(), None)?;
        enc.encode_descriptor("cairn_sigcache_hits", "Block signatures not verified again: the mempool had verified them.", None, MetricType::Counter)?
            .encode_counter::<NoLabelSet, _, u64>(&c.hits(), None)?;
        enc.encode_descriptor("cairn_sigcache_entries", "Verified signatures held in the signature cache.", None, MetricType::Gauge)?
            .encode_gauge(&(c.len() as i64))
    }
}
