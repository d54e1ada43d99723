//! Peer endpoints. The p2p layer is not wired in yet: the list is empty and adding a peer
//! answers `p2p_unavailable`.

use axum::Json;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::error::ApiError;
use super::extract::PathParam;

pub async fn list() -> Json<Value> {
    Json(json!({"peers": [], "count": 0, "bans": []}))
}

pub async fn add() -> ApiError {
    ApiError::new(StatusCode::NOT_IMPLEMENTED, "p2p_unavailable", "this build has no peer-to-peer layer yet")
}

pub async fn remove(PathParam(id): PathParam) -> ApiError {
    ApiError::not_found(format!("no peer {id}"))
}
