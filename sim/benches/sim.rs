//! The 1,000-node scale run: block propagation, bytes per block and stale rate, with compact
//! blocks at 2 s, 10 s and 60 s block times (and 10 s with 1% of transactions missing from
//! mempools) and without them at 10 s.
//!
//! Run: `cargo bench -p cairn-sim --bench sim` (`SIM_SEED` picks another seed; `SIM_NODES`
//! another size; `SIM_PROPOSALS=1` adds a row for a change the node does not have). Prints
//! figures; asserts nothing about speed.

use std::time::Instant;

use cairn_sim::engine::{SECOND, Time};
use cairn_sim::{ChainKind, Fidelity, Sim, SimConfig};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

struct Run {
    block_time: Time,
    blocks: u64,
    compact: bool,
    /// Fraction of (node, transaction) pairs missing from mempools.
    miss: f64,
    /// The one-request-per-block proposal (`SimConfig::one_get_block`).
    one_get_block: bool,
}

fn main() {
    let seed = env("SIM_SEED", 1);
    let nodes = env("SIM_NODES", 1000) as usize;
    let started = Instant::now();
    println!(
        "cairn-sim scale run: {nodes} nodes, 8 outbound each, 50-200 ms links (50 Mbit/s, 100 Mbit/s uplink), 1 MB blocks of 5,000 transactions, seed {seed}"
    );
    println!();
    println!("| block time | relay | blocks | stale | to 50% | to 90% | to 99% | to 100% | block relay bytes/node/block | all bytes/node/block | wall |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let runs = [
        Run { block_time: 2 * SECOND, blocks: 50, compact: true, miss: 0.0, one_get_block: false },
        Run { block_time: 10 * SECOND, blocks: 30, compact: true, miss: 0.0, one_get_block: false },
        Run { block_time: 60 * SECOND, blocks: 8, compact: true, miss: 0.0, one_get_block: false },
        Run { block_time: 10 * SECOND, blocks: 30, compact: true, miss: 0.01, one_get_block: false },
        Run { block_time: 10 * SECOND, blocks: 30, compact: false, miss: 0.0, one_get_block: false },
    ];
    // `SIM_PROPOSALS=1`: also whole-block relay with one `get_block` in flight per block.
    let proposals = (env("SIM_PROPOSALS", 0) == 1).then_some(Run { block_time: 10 * SECOND, blocks: 30, compact: false, miss: 0.0, one_get_block: true });
    for r in runs.into_iter().chain(proposals) {
        let t0 = Instant::now();
        let mut cfg = SimConfig::scenario(seed, nodes);
        cfg.fidelity = Fidelity::Light;
        cfg.chain = ChainKind::Light;
        cfg.tx_relay = false;
        cfg.block_time = r.block_time;
        cfg.txs_per_block = 5000;
        cfg.pool = 5000 * 8;
        cfg.compact = r.compact;
        cfg.mempool_miss = r.miss;
        cfg.one_get_block = r.one_get_block.then_some(2 * SECOND);
        let mut sim = Sim::new(cfg);
        // Connect first (dials every 2 s), then farm, then let the last blocks spread.
        sim.set_mining(false);
        sim.run_for(30 * SECOND);
        let from = sim.now();
        sim.set_mining(true);
        let farm = r.block_time * r.blocks;
        sim.run_for(farm);
        let to = sim.now();
        sim.set_mining(false);
        sim.run_for(30 * SECOND);
        let f = sim.figures(from, to);
        let p = f.propagation_ms;
        println!(
            "| {} s | {} | {} | {:.1}% ({}) | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} kB | {:.0} kB | {:.1} s |",
            r.block_time / SECOND,
            match (r.compact, r.miss > 0.0) {
                (true, false) => "compact".to_string(),
                (true, true) => format!("compact, {}% of txs missing", r.miss * 100.0),
                (false, _) if r.one_get_block => "whole blocks, one get_block in flight (proposal)".to_string(),
                (false, _) => "whole blocks".to_string(),
            },
            f.blocks,
            100.0 * f.stale as f64 / f.blocks.max(1) as f64,
            f.stale,
            p[0],
            p[1],
            p[2],
            p[3],
            f.relay_bytes_per_node_per_block / 1e3,
            f.all_bytes_per_node_per_block / 1e3,
            t0.elapsed().as_secs_f64()
        );
        let made = sim.w.metrics.made.len().max(1) as f64;
        let per = |kind: &str| sim.w.metrics.msgs_by_kind.get(kind).copied().unwrap_or(0) as f64 / nodes as f64 / made;
        eprintln!(
            "  trace {}, events {}, virtual {} s; measured {} blocks ({} unreached); per node per block: compact_block {:.1}, new_block {:.1}, get_block {:.2}, block_data {:.2}, get_block_txs {:.2}; {:?}",
            &sim.trace_hash()[..16],
            sim.w.eng.events,
            sim.now() / SECOND,
            f.measured,
            f.unreached,
            per("compact_block"),
            per("new_block"),
            per("get_block"),
            per("block_data"),
            per("get_block_txs"),
            sim.w.metrics.counters,
        );
    }
    println!();
    println!("wall time: {:.1} s", started.elapsed().as_secs_f64());
}
