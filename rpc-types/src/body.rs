//! Request bodies: JSON into values ([`parse_json`]), `POST /txs`'s one transaction or array
//! of them ([`parse_submission`]), and the small bodies of the farming and p2p endpoints.
//! The body's size limit is the HTTP layer's (it reads at most that many bytes).

use cairn_chain::keys::PublicKey;
use cairn_chain::{Address, Transaction};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::error::RequestError;
use crate::query::parse_hex;
use crate::views::TxView;

/// Parses JSON, telling syntax errors (`invalid_json`) from shape errors (`invalid_request`).
pub fn parse_json<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, RequestError> {
    serde_json::from_slice(bytes).map_err(|e| {
        use serde_json::error::Category;
        let code = match e.classify() {
            Category::Syntax | Category::Eof | Category::Io => "invalid_json",
            Category::Data => "invalid_request",
        };
        RequestError::malformed(code, e.to_string())
    })
}

/// A `POST /txs` body, read.
#[derive(Debug)]
pub enum Submission {
    /// A single transaction (a JSON object).
    One(Transaction),
    /// An array: each entry's transaction, or why that entry alone is refused, in order.
    Many(Vec<Result<Transaction, RequestError>>),
}

/// Reads a `POST /txs` body: an array of at most `max` transactions (more: 413
/// `too_many_transactions`, nothing read; a malformed entry fails alone), or anything else as
/// one transaction. Read straight from the bytes: the array is split into its entries' raw
/// text (borrowed, not copied), and each entry is read into a transaction without a JSON
/// tree in between (that tree was a string per field and a map per transaction).
pub fn parse_submission(body: &[u8], max: usize) -> Result<Submission, RequestError> {
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'[') {
        return parse_json::<TxView>(body)?.into_tx().map(Submission::One);
    }
    let entries: Vec<&RawValue> = parse_json(body)?;
    if entries.len() > max {
        return Err(RequestError::too_large(
            "too_many_transactions",
            format!("{} transactions in one request, at most {max}; nothing was accepted", entries.len()),
        ));
    }
    Ok(Submission::Many(entries.into_iter().map(|raw| tx_from_json(raw.get())).collect()))
}

/// One transaction from its JSON text (`invalid_request`, or `txid_mismatch`).
fn tx_from_json(text: &str) -> Result<Transaction, RequestError> {
    serde_json::from_str::<TxView>(text).map_err(|e| RequestError::malformed("invalid_request", e.to_string()))?.into_tx()
}

/// `POST /farm/blocks {count, farmer}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FarmRequest {
    /// Blocks to farm.
    pub count: u64,
    /// Address credited (hex).
    pub farmer: String,
}

impl FarmRequest {
    /// The farmer and a count within 1..=`max`.
    pub fn parse(&self, max: u64) -> Result<(Address, u64), RequestError> {
        let farmer: Address = parse_hex(&self.farmer, "farmer address", "invalid_address")?;
        if self.count == 0 || self.count > max {
            return Err(RequestError::malformed("invalid_count", format!("count must be 1 to {max}")));
        }
        Ok((farmer, self.count))
    }
}

/// Longest ban the RPC accepts: ten years.
pub const MAX_BAN_S: u64 = 10 * 365 * 24 * 3600;
/// Default ban: a day.
pub const DEFAULT_BAN_S: u64 = 24 * 3600;
/// Longest reason kept.
pub const MAX_REASON: usize = 200;

/// `POST /p2p/bans {"node_id" | "ip", "duration_s"?, "reason"?}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BanRequest {
    /// A node ID (hex), or
    pub node_id: Option<String>,
    /// an IP address or CIDR network.
    pub ip: Option<String>,
    /// Seconds, 1 to [`MAX_BAN_S`] (default [`DEFAULT_BAN_S`]); any JSON, checked here.
    pub duration_s: Option<Value>,
    /// Why (trimmed; at most [`MAX_REASON`] printable characters).
    pub reason: Option<String>,
}

/// Whom a [`BanRequest`] bans.
#[derive(Debug, PartialEq, Eq)]
pub enum BanWho<'a> {
    /// A node.
    Node(PublicKey),
    /// An address or network, as given (the p2p layer parses it).
    Ip(&'a str),
}

/// A [`BanRequest`], checked.
#[derive(Debug, PartialEq, Eq)]
pub struct Ban<'a> {
    /// Whom.
    pub who: BanWho<'a>,
    /// For how long, seconds.
    pub secs: u64,
    /// Why.
    pub reason: &'a str,
}

impl BanRequest {
    /// Exactly one target, a duration in range and a printable reason (default "banned by
    /// operator").
    pub fn parse(&self) -> Result<Ban<'_>, RequestError> {
        let who = match (&self.node_id, &self.ip) {
            (Some(id), None) => BanWho::Node(parse_hex(id, "node ID", "invalid_node_id")?),
            (None, Some(ip)) => BanWho::Ip(ip),
            _ => return Err(RequestError::malformed("invalid_request", "give exactly one of \"node_id\" and \"ip\"")),
        };
        let secs = match &self.duration_s {
            None => DEFAULT_BAN_S,
            Some(v) => v.as_u64().filter(|s| (1..=MAX_BAN_S).contains(s)).ok_or_else(|| {
                RequestError::malformed("invalid_duration", format!("duration_s must be a whole number of seconds from 1 to {MAX_BAN_S}, got {v}"))
            })?,
        };
        let reason = self.reason.as_deref().map(str::trim).filter(|r| !r.is_empty()).unwrap_or("banned by operator");
        if reason.chars().count() > MAX_REASON || reason.chars().any(char::is_control) {
            return Err(RequestError::malformed("invalid_reason", format!("reason must be at most {MAX_REASON} printable characters")));
        }
        Ok(Ban { who, secs, reason })
    }
}

/// `POST /p2p/peers {address}`: `[NODEID@]HOST:PORT` (the p2p layer parses it).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddPeer {
    /// The address.
    pub address: String,
}
