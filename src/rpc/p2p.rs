//! Peer endpoints: list (with bans), add (dial now, answer the node ID or the typed
//! refusal), remove (disconnect and forget: not redialled unless added again; the node
//! redialling us is still accepted unless banned), bans (list, ban a node or an address,
//! lift), and the address book.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use cairn_p2p::ports::{Ban, BanTarget};
use cairn_p2p::{ConnectError, NodeId};
use cairn_rpc_types::body::{AddPeer, BanRequest, BanWho};
use cairn_rpc_types::query::parse_hex;
use serde_json::{Value, json};

use super::error::ApiError;
use super::extract::{JsonBody, PathParam};
use super::{MAX_SMALL_BODY, RpcState};

/// `GET /p2p/peers`.
#[utoipa::path(get, path = "/p2p/peers", tag = "p2p", responses((status = 200, description = "Connected peers and bans", body = crate::rpc::openapi::PeerList)))]
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
                "ping_ms": p.ping_ms,
                "user_agent": p.user_agent,
                "name": p.name,
            })
        })
        .collect();
    let bans: Vec<Value> = s.p2p.bans().iter().map(ban_json).collect();
    Json(json!({"peers": views, "count": views.len(), "bans": bans}))
}

/// A ban as the RPC shows it: `node_id` or `ip` (an address, or a CIDR network), `reason`,
/// `until_ms` (and `until`, its round-1 name).
fn ban_json(b: &Ban) -> Value {
    let mut v = json!({"reason": b.reason, "until_ms": b.until_ms, "until": b.until_ms});
    match b.target {
        BanTarget::Node(id) => v["node_id"] = json!(id),
        BanTarget::Net(_) => v["ip"] = json!(b.target.to_string()),
    }
    v
}

/// `GET /p2p/bans`.
#[utoipa::path(get, path = "/p2p/bans", tag = "p2p", responses((status = 200, description = "Bans in force", body = crate::rpc::openapi::BanList)))]
pub async fn bans(State(s): State<RpcState>) -> Json<Value> {
    let mut bans = s.p2p.bans();
    bans.sort_by_key(|b| b.until_ms);
    let list: Vec<Value> = bans.iter().map(ban_json).collect();
    Json(json!({"bans": list, "count": list.len()}))
}

/// `POST /p2p/bans {"node_id" | "ip", "duration_s"?, "reason"?}`: bans and disconnects at
/// once; answers the ban and how many peers it cut off.
#[utoipa::path(post, path = "/p2p/bans", tag = "p2p", request_body = crate::rpc::openapi::BanRequestSchema, responses((status = 200, description = "Banned and cut off", body = crate::rpc::openapi::Banned), (status = 400, description = "Malformed input", body = crate::rpc::openapi::ErrorBody), (status = 413, description = "Body too large", body = crate::rpc::openapi::ErrorBody)))]
pub async fn ban(State(s): State<RpcState>, JsonBody(req): JsonBody<BanRequest, MAX_SMALL_BODY>) -> Result<Json<Value>, ApiError> {
    let ban = req.parse()?;
    let target = match ban.who {
        BanWho::Node(id) => BanTarget::Node(id),
        BanWho::Ip(ip) => BanTarget::Net(cairn_p2p::netgroup::parse(ip).map_err(|e| ApiError::bad_request("invalid_ip", e))?),
    };
    let (ban, cut) = s.p2p.ban(target, Duration::from_secs(ban.secs), ban.reason).await;
    Ok(Json(json!({"ban": ban_json(&ban), "disconnected": cut})))
}

/// `DELETE /p2p/bans/{node_id | ip | cidr}` (a CIDR's `/` may be sent as is or as `%2F`).
#[utoipa::path(delete, path = "/p2p/bans/{target}", tag = "p2p", params(("target" = String, Path, description = "A node ID, an IP address or a CIDR network (its `/` as is or %2F)")), responses((status = 200, description = "Lifted", body = crate::rpc::openapi::Unbanned), (status = 400, description = "Malformed input", body = crate::rpc::openapi::ErrorBody), (status = 404, description = "Not found", body = crate::rpc::openapi::ErrorBody)))]
pub async fn unban(State(s): State<RpcState>, PathParam(target): PathParam) -> Result<Json<Value>, ApiError> {
    let target = BanTarget::parse(&target).map_err(|e| ApiError::bad_request("invalid_ban_target", e))?;
    if s.p2p.unban(target).await { Ok(Json(json!({"unbanned": target.to_string()}))) } else { Err(ApiError::not_found(format!("no ban on {target}"))) }
}

/// `GET /p2p/addresses`: the address book, in the order dials are tried.
#[utoipa::path(get, path = "/p2p/addresses", tag = "p2p", responses((status = 200, description = "The address book in dial order", body = crate::rpc::openapi::AddressBook)))]
pub async fn addresses(State(s): State<RpcState>) -> Json<Value> {
    let list: Vec<Value> = s
        .p2p
        .addresses()
        .await
        .iter()
        .map(|a| {
            json!({
                "address": a.addr.to_string(),
                "node_id": a.node_id,
                "source": a.source.as_str(),
                "pinned": a.pinned,
                "last_success_ms": a.last_success_ms,
                "failures": a.failures,
                "next_attempt_ms": a.next_attempt_ms,
                "served": a.served,
            })
        })
        .collect();
    Json(json!({"addresses": list, "count": list.len()}))
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
#[utoipa::path(post, path = "/p2p/peers", tag = "p2p", request_body = crate::rpc::openapi::AddPeerSchema, responses((status = 200, description = "Connected", body = crate::rpc::openapi::Connected), (status = 400, description = "Malformed input", body = crate::rpc::openapi::ErrorBody), (status = 403, description = "The peer bans us", body = crate::rpc::openapi::ErrorBody), (status = 409, description = "Refused by the peer (typed code), or a dial in progress", body = crate::rpc::openapi::ErrorBody), (status = 413, description = "Body too large", body = crate::rpc::openapi::ErrorBody), (status = 422, description = "Unreachable or timed out", body = crate::rpc::openapi::ErrorBody)))]
pub async fn add(State(s): State<RpcState>, JsonBody(req): JsonBody<AddPeer, MAX_SMALL_BODY>) -> Result<Json<Value>, ApiError> {
    let id = s.p2p.connect(&req.address).await?;
    Ok(Json(json!({"node_id": id})))
}

/// `DELETE /p2p/peers/{node_id}`.
#[utoipa::path(delete, path = "/p2p/peers/{node_id}", tag = "p2p", params(("node_id" = String, Path, description = "64 hex")), responses((status = 200, description = "Disconnected and forgotten", body = crate::rpc::openapi::Removed), (status = 400, description = "Malformed input", body = crate::rpc::openapi::ErrorBody), (status = 404, description = "Not found", body = crate::rpc::openapi::ErrorBody)))]
pub async fn remove(State(s): State<RpcState>, PathParam(id): PathParam) -> Result<Json<Value>, ApiError> {
    let id: NodeId = parse_hex(&id, "node ID", "invalid_node_id")?;
    if s.p2p.forget(&id).await { Ok(Json(json!({"removed": id}))) } else { Err(ApiError::not_found(format!("no peer {id}"))) }
}
