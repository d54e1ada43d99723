//! Status, health, metrics and block endpoints.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use cairn_rpc_types::BlockView;
use cairn_rpc_types::query::{BlockId, RangeQuery, parse_block_id};
use serde_json::{Value, json};

use super::MAX_BLOCK_BODY;
use super::RpcState;
use super::error::ApiError;
use super::extract::{JsonBody, PathParam, Query};
use crate::chain_service::Accepted;

/// Most blocks one `GET /blocks` returns.
pub const MAX_RANGE: u64 = 100;
/// Past this many transactions a `GET /blocks` answer stops (keeps one answer to a few MiB).
pub const MAX_RANGE_TXS: usize = 10_000;

#[utoipa::path(get, path = "/health", tag = "node", responses((status = 200, description = "Serving", body = crate::rpc::openapi::Health)))]
pub async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

#[utoipa::path(get, path = "/status", tag = "node", responses((status = 200, description = "The node and its best chain", body = crate::rpc::openapi::Status)))]
pub async fn status(State(s): State<RpcState>) -> Json<Value> {
    let tip = s.chain.tip();
    Json(json!({
        "chain_id": s.chain.spec().chain_id,
        "genesis_hash": s.chain.genesis(),
        "block_time_ms": s.chain.spec().block_time_ms,
        "node_id": s.node_id,
        "name": s.p2p.name(),
        "version": env!("CARGO_PKG_VERSION"),
        "height": tip.height,
        "best_hash": tip.hash,
        "total_work": tip.total_work.to_string(),
        "peers": s.p2p.peer_count(),
        "syncing": s.p2p.is_syncing(),
    }))
}

#[utoipa::path(get, path = "/metrics", tag = "node", responses((status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain", body = String)))]
pub async fn metrics(State(s): State<RpcState>) -> impl IntoResponse {
    let text = s.metrics.render(vec![Box::new(s.p2p.collector())]);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text)
}

/// `GET /blocks/{height|hash}`: all digits is a height, 64 hex characters a hash.
#[utoipa::path(get, path = "/blocks/{id}", tag = "chain", params(("id" = String, Path, description = "A height (digits) or a block hash (64 hex)")), responses((status = 200, description = "The block", body = crate::rpc::openapi::BlockSchema), (status = 400, description = "Malformed input", body = crate::rpc::openapi::ErrorBody), (status = 404, description = "Not found", body = crate::rpc::openapi::ErrorBody)))]
pub async fn block(State(s): State<RpcState>, PathParam(id): PathParam) -> Result<Json<BlockView>, ApiError> {
    let block = match parse_block_id(&id)? {
        BlockId::Height(height) => s.chain.block_at(height).await?,
        BlockId::Hash(hash) => s.chain.block(hash).await?,
    };
    block.map(|b| Json(BlockView::from(&b))).ok_or_else(|| ApiError::not_found(format!("no block {id}")))
}

/// `GET /blocks?from=H&limit=N` (limit capped at [`MAX_RANGE`]).
#[utoipa::path(get, path = "/blocks", tag = "chain", params(("from" = u64, Query, description = "First height"), ("limit" = Option<u64>, Query, description = "Blocks (default 10, at most 100; the answer also stops past 10,000 transactions)")), responses((status = 200, description = "Best-chain blocks from `from`", body = crate::rpc::openapi::BlockRange), (status = 400, description = "Malformed input", body = crate::rpc::openapi::ErrorBody)))]
pub async fn blocks_range(State(s): State<RpcState>, Query(q): Query<RangeQuery>) -> Result<Json<Value>, ApiError> {
    let limit = q.limit.unwrap_or(10).min(MAX_RANGE);
    let blocks = s.chain.blocks_from(q.from, limit, MAX_RANGE_TXS).await?;
    let views: Vec<BlockView> = blocks.iter().map(BlockView::from).collect();
    Ok(Json(json!({"blocks": views, "count": views.len()})))
}

/// `POST /blocks`: a farmed block in the JSON `GET` returns.
#[utoipa::path(post, path = "/blocks", tag = "chain", request_body = crate::rpc::openapi::BlockSchema, responses((status = 201, description = "Connected or stored on a side chain", body = crate::rpc::openapi::SubmittedBlock), (status = 200, description = "Already known", body = crate::rpc::openapi::SubmittedBlock), (status = 400, description = "Malformed input", body = crate::rpc::openapi::ErrorBody), (status = 413, description = "Body too large", body = crate::rpc::openapi::ErrorBody), (status = 422, description = "The block breaks a rule (code says which)", body = crate::rpc::openapi::ErrorBody)))]
pub async fn submit_block(State(s): State<RpcState>, JsonBody(view): JsonBody<BlockView, MAX_BLOCK_BODY>) -> Result<impl IntoResponse, ApiError> {
    let block = view.into_block()?;
    let hash = block.hash();
    let height = block.header.height;
    let status = match s.chain.submit_block(block).await?? {
        Accepted::Connected => "connected",
        Accepted::SideChain => "side_chain",
        Accepted::AlreadyKnown => "already_known",
    };
    let code = if status == "already_known" { StatusCode::OK } else { StatusCode::CREATED };
    Ok((code, Json(json!({"hash": hash, "height": height, "status": status}))))
}
