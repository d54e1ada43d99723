//! Farming endpoints: a template for outside farmers, and farming N blocks now.

use axum::Json;
use axum::extract::State;
use cairn_chain::Address;
use cairn_rpc_types::TxView;
use cairn_rpc_types::body::FarmRequest;
use cairn_rpc_types::query::{TemplateQuery, parse_hex};
use serde_json::{Value, json};

use super::MAX_SMALL_BODY;
use super::RpcState;
use super::error::ApiError;
use super::extract::{JsonBody, Query};
use crate::farm::farmer::{FarmError, farm_blocks as farm_n};

/// Most blocks one `POST /farm/blocks` farms.
pub const MAX_FARM_COUNT: u64 = 10_000;

/// `GET /farm/template?farmer=ADDRESS`: a header with nonce 0 and its transactions; vary the
/// nonce until BLAKE3(header) ≤ target, then `POST /blocks` `{header, transactions}`.
#[utoipa::path(get, path = "/farm/template", tag = "farming", params(("farmer" = String, Query, description = "Address credited (64 hex)")), responses((status = 200, description = "A header with nonce 0 and its transactions: vary the nonce until BLAKE3(header) <= target", body = crate::rpc::openapi::TemplateSchema), (status = 400, description = "Malformed input", body = crate::rpc::openapi::ErrorBody)))]
pub async fn template(State(s): State<RpcState>, Query(q): Query<TemplateQuery>) -> Result<Json<Value>, ApiError> {
    let farmer: Address = parse_hex(&q.farmer, "farmer address", "invalid_address")?;
    let t = s.chain.template(farmer).await?;
    let txs: Vec<TxView> = t.transactions.iter().map(TxView::from).collect();
    Ok(Json(json!({"header": t.header, "target": t.header.target, "transactions": txs})))
}

/// `POST /farm/blocks {count, farmer}`: farms `count` blocks now; answers their hashes.
#[utoipa::path(post, path = "/farm/blocks", tag = "farming", request_body = crate::rpc::openapi::FarmRequestSchema, responses((status = 200, description = "Farmed now", body = crate::rpc::openapi::Farmed), (status = 400, description = "Malformed input", body = crate::rpc::openapi::ErrorBody), (status = 413, description = "Body too large", body = crate::rpc::openapi::ErrorBody)))]
pub async fn farm_blocks(State(s): State<RpcState>, JsonBody(req): JsonBody<FarmRequest, MAX_SMALL_BODY>) -> Result<Json<Value>, ApiError> {
    let (farmer, count) = req.parse(MAX_FARM_COUNT)?;
    let hashes = farm_n(&s.chain, farmer, count, s.farm_threads, &s.shutdown).await.map_err(|e| match e {
        FarmError::Service(e) => ApiError::from(e),
        FarmError::Refused(e) => ApiError::from(e),
        FarmError::Cancelled => ApiError::new(axum::http::StatusCode::SERVICE_UNAVAILABLE, "shutting_down", "node is shutting down"),
    })?;
    Ok(Json(json!({"hashes": hashes, "height": s.chain.tip().height})))
}
