//! Every judgement of a peer, in one place.
//!
//! A peer is judged only through a [`Misbehaviour`]: each kind has its points and the reason
//! for them in [`Misbehaviour::points`], one table (reth's reputation table, Bitcoin Core's
//! `Misbehaving` calls gathered in one list). Failures of chain data are first classified by
//! the chain itself ([`cairn_chain::Fault`]: invalid, not yet valid, unjudged, policy, local),
//! and [`block_verdict`] / [`tx_verdict`] turn that class into a verdict, so no call site
//! decides on its own whether a peer is to blame (Bitcoin Core's `MaybePunishNodeForBlock`).
//!
//! Points add up per node in the peer manager; at [`BAN_THRESHOLD`] the node is banned, its
//! connection closed at once, and nothing more it sent is processed.

use cairn_chain::{BlockError, Fault, TxError};

pub use crate::config::BAN_THRESHOLD;

/// Something a peer did wrong. The variant names what; [`Misbehaviour::points`] how much it
/// counts and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Misbehaviour {
    /// A frame over the limit: the stream cannot be resynchronised.
    OversizedFrame,
    /// A frame that is not a message of this protocol.
    UndecodableMessage,
    /// Anything but the expected message during the handshake, or a bad one.
    HandshakeViolation,
    /// A `Hello` or `HelloAck` after the handshake.
    SecondHandshake,
    /// More than a message's count limit (peers, headers, blocks, locator, transactions).
    OversizedMessage,
    /// Messages beyond the per-peer rate: dropped.
    RateLimited,
    /// A `Peers` list nobody asked for: ignored.
    UnsolicitedPeers,
    /// A header, block or transaction that does not decode.
    UndecodableChainData,
    /// A header that breaks a rule it can be checked against alone (proof, target, version).
    InvalidHeader,
    /// Headers that do not follow each other (parent hash, height).
    InvalidHeaderChain,
    /// A block that breaks a consensus rule.
    InvalidBlock,
    /// A transaction that breaks a consensus rule (signature, chain binding, overflow).
    InvalidTransaction,
    /// It claimed more work than ours (or sent an orphan) and then showed nothing we lack.
    UnbackedWorkClaim,
    /// It announced a block and then said it does not have it.
    UnavailableBlock,
    /// It sent us headers and then answered `NotFound` for their blocks.
    WithheldBlocks,
}

impl Misbehaviour {
    /// Every kind, for metrics and the table's tests.
    pub const ALL: [Misbehaviour; 15] = [
        Misbehaviour::OversizedFrame,
        Misbehaviour::UndecodableMessage,
        Misbehaviour::HandshakeViolation,
        Misbehaviour::SecondHandshake,
        Misbehaviour::OversizedMessage,
        Misbehaviour::RateLimited,
        Misbehaviour::UnsolicitedPeers,
        Misbehaviour::UndecodableChainData,
        Misbehaviour::InvalidHeader,
        Misbehaviour::InvalidHeaderChain,
        Misbehaviour::InvalidBlock,
        Misbehaviour::InvalidTransaction,
        Misbehaviour::UnbackedWorkClaim,
        Misbehaviour::UnavailableBlock,
        Misbehaviour::WithheldBlocks,
    ];

    /// The table: points towards [`BAN_THRESHOLD`] (100), each with its reason.
    pub fn points(self) -> u32 {
        match self {
            // Garbage on the wire: no honest implementation of this protocol sends it.
            Misbehaviour::OversizedFrame => 100,
            Misbehaviour::UndecodableMessage => 100,
            Misbehaviour::UndecodableChainData => 100,
            Misbehaviour::OversizedMessage => 100,
            // Consensus-invalid data: an honest node checks under the same rules before it
            // relays, so it never sends any (a timestamp ahead of our clock is not judged here:
            // see `Fault::NotYetValid`).
            Misbehaviour::InvalidHeader => 100,
            Misbehaviour::InvalidHeaderChain => 100,
            Misbehaviour::InvalidBlock => 100,
            Misbehaviour::InvalidTransaction => 100,
            // The handshake is short and fixed; a peer that cannot follow it is broken, but
            // may be an old or buggy build rather than hostile: closed, banned on repeat.
            Misbehaviour::HandshakeViolation => 50,
            Misbehaviour::SecondHandshake => 50,
            // Announcing what it will not serve wastes our requests and can stall a sync;
            // an honest node can lose a block to a reorg between announce and request, so
            // a few are forgiven.
            Misbehaviour::WithheldBlocks => 20,
            Misbehaviour::UnavailableBlock => 10,
            // Claims that cost us a header request each time and show nothing.
            Misbehaviour::UnbackedWorkClaim => 10,
            // Cheap to ignore; honest nodes can race into one now and then.
            Misbehaviour::UnsolicitedPeers => 10,
            // A sustained flood (each point is a message over the burst allowance).
            Misbehaviour::RateLimited => 1,
        }
    }

    /// Whether the connection ends at once, whatever the score: after these the stream is
    /// out of step or the peer is plainly not following the protocol.
    pub fn disconnects(self) -> bool {
        matches!(
            self,
            Misbehaviour::OversizedFrame
                | Misbehaviour::UndecodableMessage
                | Misbehaviour::HandshakeViolation
                | Misbehaviour::SecondHandshake
                | Misbehaviour::OversizedMessage
                | Misbehaviour::UndecodableChainData
                | Misbehaviour::InvalidHeader
                | Misbehaviour::InvalidHeaderChain
                | Misbehaviour::InvalidBlock
                | Misbehaviour::InvalidTransaction
        )
    }

    /// Stable code (metric label, log field, ban reason).
    pub fn code(self) -> &'static str {
        match self {
            Misbehaviour::OversizedFrame => "oversized_frame",
            Misbehaviour::UndecodableMessage => "undecodable_message",
            Misbehaviour::HandshakeViolation => "handshake_violation",
            Misbehaviour::SecondHandshake => "second_handshake",
            Misbehaviour::OversizedMessage => "oversized_message",
            Misbehaviour::RateLimited => "rate_limited",
            Misbehaviour::UnsolicitedPeers => "unsolicited_peers",
            Misbehaviour::UndecodableChainData => "undecodable_chain_data",
            Misbehaviour::InvalidHeader => "invalid_header",
            Misbehaviour::InvalidHeaderChain => "invalid_header_chain",
            Misbehaviour::InvalidBlock => "invalid_block",
            Misbehaviour::InvalidTransaction => "invalid_transaction",
            Misbehaviour::UnbackedWorkClaim => "unbacked_work_claim",
            Misbehaviour::UnavailableBlock => "unavailable_block",
            Misbehaviour::WithheldBlocks => "withheld_blocks",
        }
    }
}

/// What to do with a peer whose data failed a check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The peer misbehaved: judge it.
    Punish(Misbehaviour),
    /// Not valid yet (from the future): drop the data, punish nobody; it may be offered again.
    NotYetValid,
    /// Nothing against the peer (we lack context, our policy, or our own failure).
    Blameless,
}

/// The verdict on a peer that sent a block or header failing with `e`. `as_header`: the
/// failure came from the header-only checks (judged as [`Misbehaviour::InvalidHeader`]).
pub fn block_verdict(e: &BlockError, as_header: bool) -> Verdict {
    match e.fault() {
        Fault::Invalid if as_header => Verdict::Punish(Misbehaviour::InvalidHeader),
        Fault::Invalid => Verdict::Punish(Misbehaviour::InvalidBlock),
        Fault::NotYetValid => Verdict::NotYetValid,
        Fault::Unjudged | Fault::Policy | Fault::Local => Verdict::Blameless,
    }
}

/// The verdict on a peer that relayed a transaction failing with `e`.
pub fn tx_verdict(e: &TxError) -> Verdict {
    match e.fault() {
        Fault::Invalid => Verdict::Punish(Misbehaviour::InvalidTransaction),
        Fault::NotYetValid => Verdict::NotYetValid,
        Fault::Unjudged | Fault::Policy | Fault::Local => Verdict::Blameless,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_chain::Hash;

    #[test]
    fn every_kind_has_points_and_a_unique_code() {
        let mut codes: Vec<_> = Misbehaviour::ALL.iter().map(|m| m.code()).collect();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), Misbehaviour::ALL.len());
        assert!(Misbehaviour::ALL.iter().all(|m| m.points() > 0 && m.points() <= BAN_THRESHOLD));
    }

    #[test]
    fn invalid_data_bans_at_once_and_noise_does_not() {
        for m in [Misbehaviour::InvalidBlock, Misbehaviour::InvalidHeader, Misbehaviour::InvalidTransaction] {
            assert_eq!(m.points(), BAN_THRESHOLD, "{m:?}");
            assert!(m.disconnects());
        }
        for m in [Misbehaviour::RateLimited, Misbehaviour::UnsolicitedPeers, Misbehaviour::UnbackedWorkClaim] {
            assert!(m.points() < BAN_THRESHOLD / 4, "{m:?}");
            assert!(!m.disconnects());
        }
    }

    #[test]
    fn a_block_from_the_future_is_not_held_against_its_sender() {
        let future = BlockError::TimestampInFuture { got: 10, now: 1, max_drift_ms: 1 };
        assert_eq!(block_verdict(&future, true), Verdict::NotYetValid);
        assert_eq!(block_verdict(&future, false), Verdict::NotYetValid);
        assert_eq!(block_verdict(&BlockError::BadProof, true), Verdict::Punish(Misbehaviour::InvalidHeader));
        assert_eq!(block_verdict(&BlockError::BadProof, false), Verdict::Punish(Misbehaviour::InvalidBlock));
        assert_eq!(block_verdict(&BlockError::UnknownParent(Hash::ZERO), false), Verdict::Blameless);
        assert_eq!(block_verdict(&BlockError::Store("disk".into()), false), Verdict::Blameless);
        assert_eq!(block_verdict(&BlockError::ReorgTooDeep { depth: 9, max: 1 }, false), Verdict::Blameless);
        let store_in_tx = BlockError::Transaction { index: 0, id: Hash::ZERO, error: TxError::Store("disk".into()) };
        assert_eq!(block_verdict(&store_in_tx, false), Verdict::Blameless);
        let nonce_in_block = BlockError::Transaction { index: 0, id: Hash::ZERO, error: TxError::NonceTooLow { expected: 2, got: 1 } };
        assert_eq!(block_verdict(&nonce_in_block, false), Verdict::Punish(Misbehaviour::InvalidBlock), "state rules are consensus in a block");
    }

    #[test]
    fn relayed_transactions_are_punished_only_for_consensus_faults() {
        assert_eq!(tx_verdict(&TxError::BadSignature), Verdict::Punish(Misbehaviour::InvalidTransaction));
        assert_eq!(tx_verdict(&TxError::WrongChain { expected: Hash::ZERO, got: Hash::ZERO }), Verdict::Punish(Misbehaviour::InvalidTransaction));
        for e in [TxError::NonceTooLow { expected: 2, got: 1 }, TxError::MempoolFull, TxError::Store("x".into()), TxError::FeeTooLow { fee: 0, min: 1 }] {
            assert_eq!(tx_verdict(&e), Verdict::Blameless, "{e:?}");
        }
    }
}
