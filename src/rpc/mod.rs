//! The HTTP + JSON RPC (DESIGN §5): routes, shared state and the request-counting layer.
//! Handlers live by topic in [`chain`], [`txs`], [`farm`] and [`p2p`]; the dashboard page
//! and its files in [`ui`].

pub mod auth;
mod chain;
pub mod error;
pub mod events;
mod extract;
mod farm;
pub mod listener;
pub mod openapi;
mod p2p;
mod txs;
pub mod ui;

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
    /// `GET /events` subscribers' slots ([`events::MAX_SUBSCRIBERS`]).
    pub subscribers: Arc<tokio::sync::Semaphore>,
    /// The node's rendered events, for `GET /events`.
    pub events: events::EventHub,
}

/// Largest body accepted for a block (a full block in JSON is ~3.5 KiB per 10 transactions).
pub const MAX_BLOCK_BODY: usize = 8 << 20;
/// Largest body accepted anywhere else.
pub const MAX_SMALL_BODY: usize = 64 << 10;

/// The router. `cors`: origins whose pages may read (GET, HEAD), `*` for any; empty for none.
pub fn router(state: RpcState, cors: &[String]) -> Router {
    Router::new()
        .route("/health", get(chain::health))
        .route("/status", get(chain::status))
        .route("/metrics", get(chain::metrics))
        .route("/blocks", get(chain::blocks_range).post(chain::submit_block))
        .route("/blocks/{id}", get(chain::block))
        .route("/farm/template", get(farm::template))
        .route("/farm/blocks", post(farm::farm_blocks))
        .route("/accounts/{address}", get(txs::account))
        .route("/accounts/{address}/txs", get(txs::history))
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
        .route("/events", get(events::events))
        .route("/openapi.json", get(openapi::openapi_json))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_token))
        .layer(axum::middleware::from_fn_with_state(state.clone(), count_requests))
        // Outermost: a browser's preflight is answered before the token is asked for.
        .layer(cors_layer(cors))
        .with_state(state)
}

/// CORS for reads: GET and HEAD from the allowed origins, with the headers a page sends
/// (a bearer token, `Last-Event-ID` on an `EventSource` reconnect).
fn cors_layer(origins: &[String]) -> tower_http::cors::CorsLayer {
    use axum::http::{HeaderValue, header};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        // Checked when the config was read; one that still fails to be a header is skipped.
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::GET, Method::HEAD])
        .allow_headers([header::AUTHORIZATION, header::ACCEPT, header::CACHE_CONTROL, header::HeaderName::from_static("last-event-id")])
        .max_age(std::time::Duration::from_secs(600))
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
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    state.metrics.rpc_request(method, &route, resp.status().as_u16(), started.elapsed().as_secs_f64());
    resp
}
