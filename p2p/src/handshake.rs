//! Handshake rules: what makes two nodes compatible.

use crate::identity::NodeId;
use crate::wire::{Hello, RejectReason};

/// A refusal with both sides' values, for logs and the RPC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The reason.
    pub reason: RejectReason,
    /// Human detail naming both values.
    pub detail: String,
}

impl Refusal {
    /// A refusal.
    pub fn new(reason: RejectReason, detail: impl Into<String>) -> Self {
        Refusal { reason, detail: detail.into() }
    }
}

/// Checks a remote `Hello` (from node `remote_id`) against ours.
pub fn check(local: &Hello, local_id: &NodeId, remote: &Hello, remote_id: &NodeId) -> Result<(), Refusal> {
    if local_id == remote_id {
        return Err(Refusal::new(RejectReason::SelfConnection, format!("connected to own node ID {local_id}")));
    }
    if local.protocol_version != remote.protocol_version {
        return Err(Refusal::new(
            RejectReason::IncompatibleVersion,
            format!("protocol version {} here, {} there", local.protocol_version, remote.protocol_version),
        ));
    }
    if local.chain_id != remote.chain_id {
        return Err(Refusal::new(
            RejectReason::WrongChain,
            format!("chain '{}' here, '{}' there", local.chain_id, remote.chain_id.chars().take(64).collect::<String>()),
        ));
    }
    if local.genesis != remote.genesis {
        return Err(Refusal::new(RejectReason::WrongGenesis, format!("genesis {} here, {} there", local.genesis, remote.genesis)));
    }
    Ok(())
}
