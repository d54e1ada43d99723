//! [`RequestError`]: why a request was refused before the node was asked anything.

/// Longest message a [`RequestError`] keeps, in characters. Parser messages can quote the
/// input (serde quotes a string that has the wrong type in full): past this it is cut, so an
/// answer never echoes a large body back.
pub const MAX_MESSAGE_CHARS: usize = 512;

/// How a request was refused (the node answers 400 or 413).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// Malformed: bad syntax, shape or value.
    Malformed,
    /// Well formed but more than a request may carry.
    TooLarge,
}

/// A refused request: a stable code (`invalid_json`, `invalid_request`, `txid_mismatch`, …)
/// and a human message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct RequestError {
    /// Malformed or too large.
    pub rejection: Rejection,
    /// The stable code.
    pub code: &'static str,
    /// What was wrong (at most [`MAX_MESSAGE_CHARS`] characters).
    pub message: String,
}

impl RequestError {
    /// A malformed request.
    pub fn malformed(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(Rejection::Malformed, code, message)
    }

    /// A request carrying too much.
    pub fn too_large(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(Rejection::TooLarge, code, message)
    }

    fn new(rejection: Rejection, code: &'static str, message: impl Into<String>) -> Self {
        let mut message = message.into();
        if let Some((cut, _)) = message.char_indices().nth(MAX_MESSAGE_CHARS) {
            message.truncate(cut);
            message.push('…');
        }
        RequestError { rejection, code, message }
    }
}

/// Every code a [`RequestError`] may carry (the fuzz target checks each error against it).
pub const CODES: &[&str] = &[
    "invalid_json",
    "invalid_request",
    "invalid_query",
    "txid_mismatch",
    "hash_mismatch",
    "too_many_transactions",
    "invalid_limit",
    "invalid_cursor",
    "invalid_address",
    "invalid_txid",
    "invalid_block_id",
    "invalid_height",
    "invalid_node_id",
    "invalid_count",
    "invalid_duration",
    "invalid_reason",
];
