//! One peer connection: [`protocol`] is the sans-IO machine (heartbeat, rate limit, request
//! tracking, message checks), [`task`] the thin I/O shell around it, and [`writer`] the task
//! that sends what the shell queues, so reading never waits on a send.

pub mod protocol;
pub(crate) mod task;
pub(crate) mod writer;

pub use crate::channels::{PeerCmd, PeerStats};
pub(crate) use task::run_peer;
/// Public for the network simulator (`sim/`), whose peer glue applies the same rule.
pub use task::unrequested_block_wanted;
