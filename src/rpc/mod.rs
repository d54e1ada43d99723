//! The HTTP + JSON RPC (DESIGN §5): routes, shared state and the request-counting layer.
//! Handlers live by topic in [`chain`], [`txs`], [`farm`] and [`p2p`]; the dashboard page
//! and its files in [`ui`].

pub mod auth;
mod chain;
pub mod error;
mod extract;
mod farm;
mod p2p;
mod txs;
pub mod ui;
pub mod views;

use std::sync::Arc;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{delete, get, post};
use tokio_util::sync::CancellationToken;

use crate::chain_service::ChainHandle;
use crate::metrics::Metrics;
use error::ApiError;

/// What every handler can reach.
#[derive(Clone)]
pub struct RpcState {
    /// The chain service.
    pub chain: ChainHandle,
    /// The p2p service.
    pub p2p: cairn_p2p::P2p,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// This node's ID (hex).
    pub node_id: String,
    /// Threads the built-in farmer uses.
    pub farm_threads: usize,
    /// Node shutdown: long RPC work (farming) stops with it.
    pub shutdown: CancellationToken,
    /// What requests must carry ([`auth`]).
    pub auth: Arc<auth::RpcAuth>,
    /// Inside `cairn devnet`: the devnet's network view (`GET /devnet/network`; 404 elsewhere).
    pub devnet_network: Option<crate::devnet::network::NetworkFeed>,
}

/// Largest body accepted for a block (a full block in JSON is ~3.5 KiB per 10 transactions).
pub const MAX_BLOCK_BODY: usize = 8 << 20;
/// Largest body accepted anywhere else.
pub const MAX_SMALL_BODY: usize = 64 << 10;

/// The router.
pub fn router(state: RpcState) -> Router {
    Router::new()
        .route("/health", get(chain::health))
        .route("/status", get(chain::status))
        .route("/metrics", get(chain::metrics))
        .route("/blocks", get(chain::blocks_range).post(chain::submit_block))
        .route("/blocks/{id}", get(chain::block))
        .route("/farm/template", get(farm::template))
        .route("/farm/blocks", post(farm::farm_blocks))
        .route("/accounts/{address}", get(txs::account))
        .route("/txs", post(txs::submit))
        .route("/txs/{txid}", get(txs::lookup))
        .route("/mempool", get(txs::mempool))
        .route("/p2p/peers", get(p2p::list).post(p2p::add))
        .route("/p2p/peers/{node_id}", delete(p2p::remove))
        .route("/p2p/bans", get(p2p::bans).post(p2p::ban))
        .route("/p2p/bans/{*target}", delete(p2p::unban))
        .route("/p2p/addresses", get(p2p::addresses))
        .route("/", get(ui::index))
        .route("/ui/{file}", get(ui::asset))
        .route("/devnet/network", get(ui::devnet_network))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_token))
        .layer(axum::middleware::from_fn_with_state(state.clone(), count_requests))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(axum::http::StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "method not allowed on this endpoint")
}

async fn count_requests(State(state): State<RpcState>, req: Request, next: Next) -> Response {
    // Label values must come from a fixed set: an arbitrary method name is "other".
    let method = match *req.method() {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        Method::PUT => "PUT",
        Method::HEAD => "HEAD",
        _ => "other",
    };
    let route = req.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let resp = next.run(req).await;
    state.metrics.rpc_request(method, &route, resp.status().as_u16());
    resp
}
