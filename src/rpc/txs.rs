//! Account and transaction endpoints.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use cairn_chain::{Address, TxId};
use serde_json::{Value, json};

use super::MAX_SMALL_BODY;
use super::RpcState;
use super::error::ApiError;
use super::extract::{JsonBody, PathParam, parse_hex};
use super::views::TxView;
use crate::chain_service::TxStatus;

/// `GET /accounts/{address}`: any well-formed address has an account (balance 0, nonce 0 if
/// never seen). `next_nonce` counts pending transactions, for wallets.
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

/// `POST /txs`: a signed transaction; answers its `txid`.
pub async fn submit(State(s): State<RpcState>, JsonBody(view): JsonBody<TxView, MAX_SMALL_BODY>) -> Result<(StatusCode, Json<Value>), ApiError> {
    let tx = view.into_tx()?;
    let id = s.chain.submit_tx(tx).await??;
    Ok((StatusCode::ACCEPTED, Json(json!({"txid": id}))))
}

/// `GET /txs/{txid}`: the transaction and where it is.
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
