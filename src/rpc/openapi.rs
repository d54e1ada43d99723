//! The RPC's OpenAPI 3.1 document, served at `GET /openapi.json`: the paths come from the
//! `#[utoipa::path]` attributes on the handlers themselves, the schemas from the types here
//! (the JSON shapes the handlers write; CI's schemathesis run checks every answer against
//! them, so a handler that drifts from its schema fails there).

#![allow(dead_code)] // the schema types are read by the derive, not by code

use utoipa::{Modify, OpenApi, ToSchema};

/// 64 lowercase hex characters (a hash, an address, a node ID or a public key).
const HEX32: &str = "^[0-9a-f]{64}$";

/// An error answer: `{"error": {code, message}}` with a stable `code`.
#[derive(ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// The error itself.
#[derive(ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable (e.g. `invalid_address`, `nonce_too_low`).
    pub code: String,
    /// For people.
    pub message: String,
}

/// `GET /health`.
#[derive(ToSchema)]
pub struct Health {
    pub status: String,
}

/// `GET /status`.
#[derive(ToSchema)]
pub struct Status {
    pub chain_id: String,
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub genesis_hash: String,
    pub block_time_ms: u64,
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub node_id: String,
    pub name: Option<String>,
    pub version: String,
    pub height: u64,
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub best_hash: String,
    /// Cumulative work of the best chain (a decimal integer as a string: it outgrows 64 bits).
    pub total_work: String,
    pub peers: u64,
    pub syncing: bool,
}

/// A block header.
#[derive(ToSchema)]
pub struct HeaderSchema {
    pub version: u32,
    pub height: u64,
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub prev_hash: String,
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub tx_root: String,
    /// Milliseconds since the Unix epoch.
    pub timestamp: u64,
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub target: String,
    pub nonce: u64,
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub farmer: String,
}

/// A signed transaction. On input `txid` and `from` are optional (checked when given); the
/// round-1 form with the key in `from` and no `public_key` is still accepted.
#[derive(ToSchema)]
pub struct TxSchema {
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub txid: Option<String>,
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub chain: String,
    /// The sender's address.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub from: Option<String>,
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub public_key: Option<String>,
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub to: String,
    pub amount: u64,
    pub fee: u64,
    pub nonce: u64,
    #[schema(pattern = "^[0-9a-f]{128}$")]
    pub signature: String,
}

/// A block.
#[derive(ToSchema)]
pub struct BlockSchema {
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub hash: Option<String>,
    pub header: HeaderSchema,
    pub transactions: Vec<TxSchema>,
}

/// `GET /blocks`.
#[derive(ToSchema)]
pub struct BlockRange {
    pub blocks: Vec<BlockSchema>,
    pub count: u64,
}

/// `POST /blocks`.
#[derive(ToSchema)]
pub struct SubmittedBlock {
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub hash: String,
    pub height: u64,
    /// `connected`, `side_chain` or `already_known`.
    pub status: String,
}

/// `GET /farm/template`.
#[derive(ToSchema)]
pub struct TemplateSchema {
    pub header: HeaderSchema,
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub target: String,
    pub transactions: Vec<TxSchema>,
}

/// `POST /farm/blocks` body.
#[derive(ToSchema)]
pub struct FarmRequestSchema {
    #[schema(minimum = 1, maximum = 10000)]
    pub count: u64,
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub farmer: String,
}

/// `POST /farm/blocks`.
#[derive(ToSchema)]
pub struct Farmed {
    pub hashes: Vec<String>,
    pub height: u64,
}

/// `GET /accounts/{address}`.
#[derive(ToSchema)]
pub struct AccountSchema {
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub address: String,
    pub balance: u64,
    pub nonce: u64,
    /// The nonce a wallet should use next (counts pending transactions).
    pub next_nonce: u64,
}

/// `POST /txs` with one transaction.
#[derive(ToSchema)]
pub struct Accepted {
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub txid: String,
}

/// One entry of a `POST /txs` array's answer: `{"txid"}` or `{"error"}`.
#[derive(ToSchema)]
pub struct TxResult {
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub txid: Option<String>,
    pub error: Option<ErrorDetail>,
}

/// `GET /txs/{txid}`.
#[derive(ToSchema)]
pub struct TxLookup {
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub txid: String,
    /// `pending` or `confirmed`.
    pub status: String,
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub block_hash: Option<String>,
    pub height: Option<u64>,
    pub transaction: TxSchema,
}

/// A pending transaction with when this node received it.
#[derive(ToSchema)]
pub struct PendingTx {
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub txid: String,
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub from: String,
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub to: String,
    pub amount: u64,
    pub fee: u64,
    pub nonce: u64,
    /// Absent if restored from disk.
    pub received_ms: Option<u64>,
}

/// `GET /mempool`.
#[derive(ToSchema)]
pub struct MempoolSchema {
    /// All pending transactions.
    pub count: u64,
    /// The highest fees first.
    pub transactions: Vec<PendingTx>,
}

/// A confirmed transaction of an address.
#[derive(ToSchema)]
pub struct HistoryEntry {
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub txid: String,
    pub height: u64,
    pub position: u32,
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub block_hash: String,
    pub timestamp: u64,
    /// `sent`, `received` or `self`.
    pub direction: String,
    pub transaction: TxSchema,
}

/// A pending transaction of an address.
#[derive(ToSchema)]
pub struct PendingEntry {
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub txid: String,
    pub direction: String,
    pub received_ms: Option<u64>,
    pub transaction: TxSchema,
}

/// `GET /accounts/{address}/txs`.
#[derive(ToSchema)]
pub struct History {
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub address: String,
    pub confirmed: Vec<HistoryEntry>,
    pub pending: Vec<PendingEntry>,
    /// The next page's cursor (`HEIGHT-POSITION`), or null.
    pub next: Option<String>,
    /// The height from which the index holds every block (0: all; later for a data dir that
    /// had no index before).
    pub indexed_from: u64,
}

/// A connected peer.
#[derive(ToSchema)]
pub struct PeerSchema {
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub node_id: String,
    pub address: String,
    pub listen_address: String,
    /// `inbound` or `outbound`.
    pub direction: String,
    pub connected_since: u64,
    pub best_height: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub blocks_served: u64,
    pub last_seen: u64,
    pub score: u32,
    pub ping_ms: Option<u64>,
    pub user_agent: String,
    pub name: Option<String>,
}

/// A ban: `node_id` or `ip` (an address or a CIDR network).
#[derive(ToSchema)]
pub struct BanSchema {
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub node_id: Option<String>,
    pub ip: Option<String>,
    pub reason: String,
    pub until_ms: u64,
    /// `until_ms` under its round-1 name.
    pub until: u64,
}

/// `GET /p2p/peers`.
#[derive(ToSchema)]
pub struct PeerList {
    pub peers: Vec<PeerSchema>,
    pub count: u64,
    pub bans: Vec<BanSchema>,
}

/// `POST /p2p/peers` body.
#[derive(ToSchema)]
pub struct AddPeerSchema {
    /// `[NODE_ID@]HOST:PORT`.
    pub address: String,
}

/// `POST /p2p/peers`.
#[derive(ToSchema)]
pub struct Connected {
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub node_id: String,
}

/// `DELETE /p2p/peers/{node_id}`.
#[derive(ToSchema)]
pub struct Removed {
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub removed: String,
}

/// `GET /p2p/bans`.
#[derive(ToSchema)]
pub struct BanList {
    pub bans: Vec<BanSchema>,
    pub count: u64,
}

/// `POST /p2p/bans` body: exactly one of `node_id` and `ip`.
#[derive(ToSchema)]
pub struct BanRequestSchema {
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub node_id: Option<String>,
    pub ip: Option<String>,
    /// Seconds, 1 to ten years (default a day).
    pub duration_s: Option<u64>,
    /// At most 200 printable characters.
    pub reason: Option<String>,
}

/// `POST /p2p/bans`.
#[derive(ToSchema)]
pub struct Banned {
    pub ban: BanSchema,
    /// Peers cut off by it.
    pub disconnected: u64,
}

/// `DELETE /p2p/bans/{target}`.
#[derive(ToSchema)]
pub struct Unbanned {
    pub unbanned: String,
}

/// An entry of the address book.
#[derive(ToSchema)]
pub struct BookEntry {
    pub address: String,
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub node_id: Option<String>,
    /// `manual`, `seed`, `mdns`, `learned` or `persisted`.
    pub source: String,
    pub pinned: bool,
    pub last_success_ms: Option<u64>,
    pub failures: u32,
    pub next_attempt_ms: u64,
    pub served: u32,
}

/// `GET /p2p/addresses`.
#[derive(ToSchema)]
pub struct AddressBook {
    pub addresses: Vec<BookEntry>,
    pub count: u64,
}

/// The bearer token beyond loopback.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("Required when the RPC is bound beyond loopback (or rpc_token is set) by every route but GET /health and the dashboard's static GET / and GET /ui/{file}: the configured rpc_token, or DATA_DIR/.cookie"))
                    .build(),
            ),
        );
    }
}

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(title = "Cairn node RPC", description = "HTTP + JSON. Hashes, addresses and keys are lowercase hex; amounts are integers. Every error is `{\"error\": {code, message}}`."),
    paths(
        super::chain::health, super::chain::status, super::chain::metrics, super::chain::block, super::chain::blocks_range,
        super::chain::submit_block, super::farm::template, super::farm::farm_blocks, super::txs::account, super::txs::history,
        super::txs::submit, super::txs::lookup, super::txs::mempool, super::p2p::list, super::p2p::add, super::p2p::remove,
        super::p2p::bans, super::p2p::ban, super::p2p::unban, super::p2p::addresses, super::events::events, openapi_json,
        super::ui::index, super::ui::asset, super::ui::devnet_network,
    ),
    modifiers(&BearerAuth),
    tags((name = "chain"), (name = "transactions"), (name = "farming"), (name = "p2p"), (name = "node")),
)]
pub struct ApiDoc;

/// `GET /openapi.json`: this document.
#[utoipa::path(get, path = "/openapi.json", tag = "node", responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object)))]
pub async fn openapi_json() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(ApiDoc::openapi())
}

/// The pattern used in the schemas (kept for the path parameters' docs).
pub const HEX32_PATTERN: &str = HEX32;
