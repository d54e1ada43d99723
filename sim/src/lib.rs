//! # cairn-sim
//!
//! A deterministic network simulator: N nodes running Cairn's real protocol machines over a
//! simulated network in virtual time, one seed giving one exact run.
//!
//! - [`engine`]: the discrete-event engine (virtual clock, one queue ordered by time then
//!   sequence number, one seeded RNG, the trace hash).
//! - [`net`]: connections with per-pair latency, bandwidth (link and uplink), loss as QUIC
//!   retransmission delay, partitions.
//! - [`chain`]: [`chain::ChainModel`] (what a node asks of its chain) and the in-memory
//!   [`chain::LightChain`].
//! - [`blocks`]: the transaction pool, block making, the registry of blocks, the mempool
//!   model.
//! - [`node`]: one node — which real code it drives and which glue stands in for the async
//!   actors is listed there.
//! - [`world`]: settings ([`SimConfig`], [`Fidelity`], [`Hostile`]), the measurements and
//!   [`Sim`], the run and its commands (partition, heal, crash, restart, join).
//! - [`metrics`]: what a run measures and the figures it reports.
//!
//! The crate builds `cairn-chain` without its RocksDB store.
//!
//! ```no_run
//! use cairn_sim::{Sim, SimConfig, engine::SECOND};
//! let mut sim = Sim::new(SimConfig::scenario(7, 50));
//! sim.run_for(120 * SECOND);
//! println!("{:?} {}", sim.agreed_tip(), sim.trace_hash());
//! ```

pub mod blocks;
pub mod chain;
pub mod engine;
pub mod metrics;
pub mod net;
pub mod node;
pub mod world;

pub use metrics::Figures;
pub use world::{ChainKind, Fidelity, Hostile, Sim, SimConfig};
