//! The devnet's workers: a built-in farmer on one running node of each partition group (so
//! every side of a partition keeps a steady chain at the block time, and one chain wins when
//! it heals), and the transaction load on the lowest-numbered running node.
//!
//! They are the only tasks holding a node's `ChainHandle`, so the runner stops them (cancel,
//! join) before a node stops and starts them again afterwards.

use std::sync::Arc;

use cairn_chain::Address;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::load::{self, LoadCounters, LoadState};
use crate::chain_service::ChainHandle;
use crate::farm::farmer;

/// Threads of each built-in farmer: the devnet target is met in a few dozen hashes.
const FARM_THREADS: usize = 1;

/// Running farmers and load, and what to run.
pub struct Workers {
    farm_to: Option<Address>,
    rate: Option<u32>,
    cancel: CancellationToken,
    farmers: Vec<JoinHandle<()>>,
    load: Option<JoinHandle<LoadState>>,
    /// The load's state while it is not running.
    parked: Option<LoadState>,
    counters: Option<Arc<LoadCounters>>,
}

impl Workers {
    /// Nothing runs until [`Workers::start`]. `farm_to` turns farming on; `load` with a rate
    /// turns the transaction load on.
    pub fn new(farm_to: Option<Address>, load: Option<(u32, LoadState)>) -> Workers {
        let (rate, parked) = match load {
            Some((r, s)) => (Some(r), Some(s)),
            None => (None, None),
        };
        let counters = parked.as_ref().map(|s: &LoadState| s.counters.clone());
        Workers { farm_to, rate, cancel: CancellationToken::new(), farmers: Vec::new(), load: None, parked, counters }
    }

    /// Whether farming is on.
    pub fn farming(&self) -> bool {
        self.farm_to.is_some()
    }

    /// Starts a farmer on each of `farm_on` (if farming) and the load on `load_on` (if any).
    /// Call [`Workers::stop`] first.
    pub fn start(&mut self, farm_on: Vec<ChainHandle>, load_on: Option<ChainHandle>) {
        self.cancel = CancellationToken::new();
        if let Some(to) = self.farm_to {
            for chain in farm_on {
                self.farmers.push(tokio::spawn(farmer::run(chain, to, FARM_THREADS, self.cancel.clone())));
            }
        }
        if let (Some(rate), Some(chain)) = (self.rate, load_on)
            && let Some(state) = self.parked.take()
        {
            self.load = Some(tokio::spawn(load::run(chain, rate, state, self.cancel.clone())));
        }
    }

    /// Stops every worker and waits until each has let go of its node.
    pub async fn stop(&mut self) {
        self.cancel.cancel();
        for f in self.farmers.drain(..) {
            if let Err(e) = f.await {
                tracing::error!(target: "devnet", "farmer task failed: {e}");
            }
        }
        if let Some(l) = self.load.take() {
            match l.await {
                Ok(state) => self.parked = Some(state),
                Err(e) => tracing::error!(target: "devnet", "load task failed: {e}"),
            }
        }
    }

    /// The load's counters, if there is a load.
    pub fn load_counters(&self) -> Option<Arc<LoadCounters>> {
        self.counters.clone()
    }
}
