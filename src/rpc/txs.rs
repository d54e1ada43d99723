//! Account and transaction endpoints.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// Largest `POST /txs` body: an array of [`MAX_TX_BATCH`] transactions as JSON (~550 bytes
/// each) fits with room to spare.
pub const MAX_TXS_BODY: usize = 8 << 20;
use cairn_chain::{Address, TxId};
use cairn_rpc_types::TxView;
use cairn_rpc_types::body::{Submission, parse_submission};
use cairn_rpc_types::query::{HistoryQuery, MempoolQuery, limit, parse_cursor, parse_hex};
use serde_json::{Value, json};

use super::RpcState;
use super::error::ApiError;
use super::extract::{PathParam, Query, RawBody};
use crate::chain_service::MAX_TX_BATCH;
use crate::chain_service::TxStatus;

/// `GET /accounts/{address}`: any well-formed address has an account (balance 0, nonce 0 if
/// never seen). `next_nonce` counts pending transactions, for wallets.
#[utoipa::path(get, path = "/accounts/{address}", tag = "transactions", params(("address" = String, Path, description = "64 hex")), responses((status = 200, description = "Any well-formed address has an account", body = crate::rpc::openapi::AccountSchema), (status = 400, description = "Malformed input", body = crate::rpc::openapi::ErrorBody)))]
pub async fn account(State(s): State<RpcState>, PathParam(a): PathParam) -> Result<Json<Value>, ApiError> {
    let address: Address = parse_hex(&a, "address", "invalid_address")?;
    let info = s.chain.account(address).await?;
    Ok(Json(json!({
        "address": address,
        "balance": info.account.balance,
        "nonce": info.account.nonce,
        "next_nonce": info.next_nonce,
    })))
}

/// `POST /txs`: a signed transaction (answers 202 and its `txid`, or the error's status), or a
/// JSON array of up to [`MAX_TX_BATCH`] of them (answers 200 and an array of results in
/// order: `{"txid"}` or `{"error": {code, message}}`; a malformed entry fails alone).
#[utoipa::path(post, path = "/txs", tag = "transactions", request_body(content = crate::rpc::openapi::TxSchema, description = "A signed transaction, or a JSON array of up to 10,000 of them"), responses((status = 202, description = "Accepted into the mempool", body = crate::rpc::openapi::Accepted), (status = 200, description = "An array: one result per entry, in order", body = Vec<crate::rpc::openapi::TxResult>), (status = 400, description = "Malformed input", body = crate::rpc::openapi::ErrorBody), (status = 409, description = "Already known", body = crate::rpc::openapi::ErrorBody), (status = 413, description = "Body too large", body = crate::rpc::openapi::ErrorBody), (status = 422, description = "The transaction breaks a rule (code says which)", body = crate::rpc::openapi::ErrorBody), (status = 429, description = "Mempool full, or too many pending from this sender", body = crate::rpc::openapi::ErrorBody)))]
pub async fn submit(State(s): State<RpcState>, RawBody(body): RawBody<MAX_TXS_BODY>) -> Result<Response, ApiError> {
    // Up to MAX_TXS_BODY of JSON (tens of milliseconds): read on the blocking pool, not on
    // the runtime's workers.
    let parsed = tokio::task::spawn_blocking(move || parse_submission(&body, MAX_TX_BATCH))
        .await
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "reading the body failed"))?;
    let parsed = match parsed? {
        Submission::One(tx) => {
            let id = s.chain.submit_tx(tx).await??;
            return Ok((StatusCode::ACCEPTED, Json(json!({"txid": id}))).into_response());
        }
        Submission::Many(parsed) => parsed,
    };
    // Malformed entries answer alone; the well-formed ones go through intake together.
    let txs: Vec<cairn_chain::Transaction> = parsed.iter().filter_map(|r| r.as_ref().ok().cloned()).collect();
    let mut results = s.chain.submit_txs(txs).await?.into_iter();
    let answers: Vec<TxResult> = parsed
        .into_iter()
        .map(|p| match p {
            Err(e) => TxResult::refused(&ApiError::from(e)),
            Ok(_) => match results.next() {
                Some(Ok(id)) => TxResult::Accepted { txid: id },
                Some(Err(e)) => TxResult::refused(&ApiError::from(e)),
                None => TxResult::refused(&ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "no result")),
            },
        })
        .collect();
    Ok((StatusCode::OK, Json(answers)).into_response())
}

/// One entry's answer in an array's results: serialized as it stands (no JSON tree per entry;
/// an array answers up to 10,000 of them).
#[derive(serde::Serialize)]
#[serde(untagged)]
enum TxResult {
    /// `{"txid"}`.
    Accepted { txid: TxId },
    /// `{"error": {code, message}}`.
    Refused { error: ErrorBody },
}

#[derive(serde::Serialize)]
struct ErrorBody {
    code: &'static str,
    message: String,
}

impl TxResult {
    fn refused(e: &ApiError) -> TxResult {
        TxResult::Refused { error: ErrorBody { code: e.code(), message: e.message().to_string() } }
    }
}

/// Most transactions `GET /mempool` lists.
pub const MAX_MEMPOOL_LIST: usize = 1000;
/// Most transactions one `GET /accounts/{address}/txs` lists.
pub const MAX_HISTORY: usize = 100;

/// A pending transaction and when this node received it.
#[derive(serde::Serialize)]
pub struct PendingView {
    #[serde(flatten)]
    tx: TxView,
    /// When it entered this node's mempool (ms since the epoch); absent if restored from disk.
    #[serde(skip_serializing_if = "Option::is_none")]
    received_ms: Option<u64>,
}

impl PendingView {
    fn of((tx, received_ms): &(cairn_chain::Transaction, Option<u64>)) -> PendingView {
        PendingView { tx: TxView::from(tx), received_ms: *received_ms }
    }
}

/// `GET /mempool?limit=N`: how many transactions are pending (`count`), and the N (default
/// 100, at most [`MAX_MEMPOOL_LIST`]) with the highest fees, highest first.
#[utoipa::path(get, path = "/mempool", tag = "transactions", params(("limit" = Option<u64>, Query, description = "1 to 1000 (default 100)")), responses((status = 200, description = "Pending transactions, highest fee first", body = crate::rpc::openapi::MempoolSchema), (status = 400, description = "Malformed input", body = crate::rpc::openapi::ErrorBody)))]
pub async fn mempool(State(s): State<RpcState>, Query(q): Query<MempoolQuery>) -> Result<Json<Value>, ApiError> {
    let limit = limit(q.limit, 100, MAX_MEMPOOL_LIST)?;
    let (count, txs) = s.chain.mempool(limit).await?;
    let views: Vec<PendingView> = txs.iter().map(PendingView::of).collect();
    Ok(Json(json!({"count": count, "transactions": views})))
}

/// `GET /accounts/{address}/txs?limit=N&before=CURSOR`: the address's best-chain
/// transactions (sent and received) newest first, from the address index kept in each
/// block's own batch (and undone with it on a reorg); on the first page (no `before`) also
/// its pending ones. `next` is the cursor of the following page, or null at the end.
#[utoipa::path(get, path = "/accounts/{address}/txs", tag = "transactions", params(("address" = String, Path, description = "64 hex"), ("limit" = Option<u64>, Query, description = "1 to 100 (default 50)"), ("before" = Option<String>, Query, description = "`next` of the previous page (HEIGHT-POSITION)")), responses((status = 200, description = "Confirmed transactions newest first, and pending ones on the first page", body = crate::rpc::openapi::History), (status = 400, description = "Malformed input", body = crate::rpc::openapi::ErrorBody), (status = 404, description = "This node keeps no address index (`address_index_off`)", body = crate::rpc::openapi::ErrorBody)))]
pub async fn history(State(s): State<RpcState>, PathParam(a): PathParam, Query(q): Query<HistoryQuery>) -> Result<Json<Value>, ApiError> {
    let address: Address = parse_hex(&a, "address", "invalid_address")?;
    let limit = limit(q.limit, 50, MAX_HISTORY)?;
    let before = q.before.as_deref().map(parse_cursor).transpose()?;
    let Some(indexed_from) = s.chain.address_index_from() else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "address_index_off", "this node keeps no address index (address_index = false)"));
    };
    let confirmed = s.chain.address_txs(address, before, limit).await?;
    let pending = if before.is_none() { s.chain.pending_for(address, limit).await? } else { Vec::new() };
    let next = (confirmed.len() == limit).then(|| confirmed.last().map(|c| format!("{}-{}", c.height, c.index))).flatten();
    let direction = |t: &cairn_chain::Transaction| match (t.sender() == address, t.to == address) {
        (true, true) => "self",
        (true, false) => "sent",
        _ => "received",
    };
    let confirmed: Vec<Value> = confirmed
        .iter()
        .map(|c| {
            json!({
                "txid": c.tx.id(), "height": c.height, "position": c.index, "block_hash": c.block, "timestamp": c.timestamp,
                "direction": direction(&c.tx), "transaction": TxView::from(&c.tx),
            })
        })
        .collect();
    let pending: Vec<Value> =
        pending.iter().map(|p| json!({"txid": p.0.id(), "direction": direction(&p.0), "received_ms": p.1, "transaction": TxView::from(&p.0)})).collect();
    Ok(Json(json!({"address": address, "confirmed": confirmed, "pending": pending, "next": next, "indexed_from": indexed_from})))
}

/// `GET /txs/{txid}`: the transaction and where it is.
#[utoipa::path(get, path = "/txs/{txid}", tag = "transactions", params(("txid" = String, Path, description = "64 hex")), responses((status = 200, description = "Pending or confirmed", body = crate::rpc::openapi::TxLookup), (status = 400, description = "Malformed input", body = crate::rpc::openapi::ErrorBody), (status = 404, description = "Not found", body = crate::rpc::openapi::ErrorBody)))]
pub async fn lookup(State(s): State<RpcState>, PathParam(t): PathParam) -> Result<Json<Value>, ApiError> {
    let id: TxId = parse_hex(&t, "txid", "invalid_txid")?;
    match s.chain.tx_status(id).await? {
        None => Err(ApiError::not_found(format!("no transaction {id}"))),
        Some(TxStatus::Pending(tx)) => Ok(Json(json!({"txid": id, "status": "pending", "transaction": TxView::from(&tx)}))),
        Some(TxStatus::Confirmed { tx, block, height }) => Ok(Json(json!({
            "txid": id, "status": "confirmed", "block_hash": block, "height": height, "transaction": TxView::from(&tx)
        }))),
    }
}
