//! Peer endpoints: list (with bans), add (dial now, answer the node ID or the typed
//! refusal), remove (disconnect and forget).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use cairn_p2p::{ConnectError, NodeId};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ApiError;
use super::extract::{JsonBody, PathParam, parse_hex};
use super::{MAX_SMALL_BODY, RpcState};

/// `GET /p2p/peers`.
pub async fn list(State(s): State<RpcState>) -> Json<Value> {
    let mut peers = s.p2p.peers();
    peers.sort_by_key(|p| p.connected_since_ms);
    let views: Vec<Value> = peers
        .iter()
        .map(|p| {
            json!({
                "node_id": p.node_id,
                "address": p.address.to_string(),
                "listen_address": p.listen_address.to_string(),
                "direction": p.direction.as_str(),
                "connected_since": p.connected_since_ms,
                "best_height": p.best_height,
                "bytes_sent": p.bytes_sent,
                "bytes_received": p.bytes_received,
                "blocks_served": p.blocks_served,
                "last_seen": p.last_seen_ms,
                "score": p.score,
                "user_agent": p.user_agent,
                "name": p.name,
            })
        })
        .collect();
    let bans: Vec<Value> = s.p2p.bans().iter().map(|b| json!({"node_id": b.node_id, "until": b.until_ms, "reason": b.reason})).collect();
    Json(json!({"peers": views, "count": views.len(), "bans": bans}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddPeer {
    address: String,
}

impl From<ConnectError> for ApiError {
    fn from(e: ConnectError) -> Self {
        let status = match &e {
            ConnectError::BadAddress(_) => StatusCode::BAD_REQUEST,
            ConnectError::Refused { reason: cairn_p2p::wire::RejectReason::Banned, .. } => StatusCode::FORBIDDEN,
            ConnectError::Refused { .. } | ConnectError::InProgress(_) => StatusCode::CONFLICT,
            ConnectError::Unreachable(_) | ConnectError::Timeout => StatusCode::UNPROCESSABLE_ENTITY,
        };
        ApiError::new(status, e.code(), e.to_string())
    }
}

/// `POST /p2p/peers {address}`: `[NODEID@]HOST:PORT`.
pub async fn add(State(s): State<RpcState>, JsonBody(req): JsonBody<AddPeer, MAX_SMALL_BODY>) -> Result<Json<Value>, ApiError> {
    let id = s.p2p.connect(&req.address).await?;
    Ok(Json(json!({"node_id": id})))
}

/// `DELETE /p2p/peers/{node_id}`.
pub async fn remove(State(s): State<RpcState>, PathParam(id): PathParam) -> Result<Json<Value>, ApiError> {
    let id: NodeId = parse_hex(&id, "node ID", "invalid_node_id")?;
    if s.p2p.forget(&id).await { Ok(Json(json!({"removed": id}))) } else { Err(ApiError::not_found(format!("no peer {id}"))) }
}
