//! Query strings and path parameters: [`parse_query`] (as axum's `Query` reads them), limits,
//! history cursors, hex values and block IDs, and each endpoint's query.

use cairn_chain::Hash;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::error::RequestError;

/// Reads a query string (without the `?`; empty if none) into `T` with the crates and the
/// message axum's `Query` extractor uses (`invalid_query`).
pub fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, RequestError> {
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|e| RequestError::malformed("invalid_query", format!("Failed to deserialize query string: {e}")))
}

/// Parses a hex value of a fixed-size type, naming what it should have been.
pub fn parse_hex<T: std::str::FromStr>(s: &str, what: &'static str, code: &'static str) -> Result<T, RequestError> {
    s.parse().map_err(|_| {
        RequestError::malformed(
            code,
            format!("malformed {what} {:?}: expected hex digits of the right length (either case)", s.chars().take(80).collect::<String>()),
        )
    })
}

/// `limit` within 1..=`max` (default `default`), else `invalid_limit`.
pub fn limit(given: Option<usize>, default: usize, max: usize) -> Result<usize, RequestError> {
    match given {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(n) => Err(RequestError::malformed("invalid_limit", format!("limit {n} out of range: 1 to {max}"))),
    }
}

/// A history cursor: `HEIGHT-POSITION` of the last transaction a page showed.
pub fn parse_cursor(c: &str) -> Result<(u64, u32), RequestError> {
    let bad = || {
        RequestError::malformed(
            "invalid_cursor",
            format!("malformed cursor {:?}: expected HEIGHT-POSITION as given in `next`", c.chars().take(40).collect::<String>()),
        )
    };
    let (h, i) = c.split_once('-').ok_or_else(bad)?;
    let digits = |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(h) || !digits(i) {
        return Err(bad());
    }
    Ok((h.parse().map_err(|_| bad())?, i.parse().map_err(|_| bad())?))
}

/// What `GET /blocks/{id}` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockId {
    /// All digits: a best-chain height.
    Height(u64),
    /// 64 hex characters: a block hash.
    Hash(Hash),
}

/// `GET /blocks/{id}`'s `id`: all digits (at most 20) is a height, else 64 hex characters.
pub fn parse_block_id(id: &str) -> Result<BlockId, RequestError> {
    if !id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit()) {
        let height = id.parse().map_err(|_| RequestError::malformed("invalid_height", format!("height {id} out of range")))?;
        Ok(BlockId::Height(height))
    } else {
        parse_hex(id, "block hash or height", "invalid_block_id").map(BlockId::Hash)
    }
}

/// `GET /mempool?limit=N`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MempoolQuery {
    /// How many to list.
    #[serde(default)]
    pub limit: Option<usize>,
}

/// `GET /accounts/{address}/txs?limit=N&before=CURSOR`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// How many to list.
    #[serde(default)]
    pub limit: Option<usize>,
    /// `next` of the previous page ([`parse_cursor`]).
    #[serde(default)]
    pub before: Option<String>,
}

/// `GET /blocks?from=H&limit=N`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeQuery {
    /// First height.
    pub from: u64,
    /// How many blocks.
    #[serde(default)]
    pub limit: Option<u64>,
}

/// `GET /farm/template?farmer=ADDRESS`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateQuery {
    /// Address credited (hex).
    pub farmer: String,
}

/// `GET /events?types=block,reorg,tx,peer`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Comma-separated kinds (the events module parses them).
    #[serde(default)]
    pub types: Option<String>,
}
