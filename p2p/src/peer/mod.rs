//! One peer connection: [`protocol`] is the sans-IO machine (heartbeat, rate limit, request
//! tracking, message checks), [`task`] the thin I/O shell around it.

pub mod protocol;
pub(crate) mod task;

pub use crate::channels::{PeerCmd, PeerStats};
pub(crate) use task::run_peer;
