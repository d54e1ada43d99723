//! RPC authentication: a bearer token, required once the RPC listens beyond loopback (as
//! bitcoind's `.cookie`). The token is the configured `rpc_token`, or else a random one the
//! node writes to `<data_dir>/.cookie` (owner-only) at start and removes at shutdown; the CLI
//! reads that file when given the data dir. On loopback the RPC stays open (a devnet) unless a
//! token is configured. `GET /health` never needs the token (probes), nor do the dashboard's
//! page and files (`/`, `/ui/{file}`: static, embedded; the page asks for the token).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::RpcState;
use super::error::ApiError;

/// The cookie file's name in the data dir.
pub const COOKIE_FILE: &str = ".cookie";

/// What the RPC requires.
#[derive(Debug, Default)]
pub struct RpcAuth {
    token: Option<String>,
    /// The cookie file this node wrote (removed at shutdown).
    cookie: Option<PathBuf>,
}

impl RpcAuth {
    /// Decides for an RPC bound at `bind`: the configured token if any, a fresh cookie in
    /// `data_dir` beyond loopback, else none.
    pub fn setup(data_dir: &Path, bind: SocketAddr, configured: Option<String>) -> std::io::Result<RpcAuth> {
        if let Some(token) = configured {
            return Ok(RpcAuth { token: Some(token), cookie: None });
        }
        if bind.ip().is_loopback() {
            return Ok(RpcAuth::default());
        }
        let token = hex::encode(rand::random::<[u8; 32]>());
        let path = data_dir.join(COOKIE_FILE);
        // A stale cookie of an earlier run is replaced.
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        cairn_p2p::identity::write_secret(&path, &token)?;
        Ok(RpcAuth { token: Some(token), cookie: Some(path) })
    }

    /// Whether requests need the token.
    pub fn required(&self) -> bool {
        self.token.is_some()
    }

    /// The cookie file, if this node wrote one.
    pub fn cookie(&self) -> Option<&Path> {
        self.cookie.as_deref()
    }

    /// Whether an `Authorization` header value carries the token (compared in constant time).
    fn accepts(&self, header: Option<&[u8]>) -> bool {
        let Some(token) = &self.token else { return true };
        let Some(given) = header.and_then(|h| h.strip_prefix(b"Bearer ")) else { return false };
        given.len() == token.len() && given.iter().zip(token.as_bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }

    /// Removes the cookie this node wrote.
    pub fn remove_cookie(&self) {
        if let Some(path) = &self.cookie {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Whether `path` is served without the token: the health probe, and the dashboard's page and
/// files (the same bytes for everyone, embedded in the binary: no node data is in them). The
/// page then asks for the token and sends it with each of its reads, so a browser, which
/// cannot add a header to a page load, can open a token-protected node's dashboard.
pub fn is_open(path: &str) -> bool {
    path == "/health" || path == "/" || path.strip_prefix("/ui/").is_some_and(|f| !f.is_empty() && !f.contains('/'))
}

/// The layer: 401 `unauthorized` for a request without the token.
pub async fn require_token(State(state): State<RpcState>, req: Request, next: Next) -> Response {
    if !is_open(req.uri().path()) && !state.auth.accepts(req.headers().get(AUTHORIZATION).map(|v| v.as_bytes())) {
        return ApiError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this RPC needs `Authorization: Bearer <token>`: the node's rpc_token, or the contents of <data_dir>/.cookie",
        )
        .into_response();
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_open_and_anything_else_needs_the_cookie() {
        let dir = tempfile::tempdir().unwrap();
        let open = RpcAuth::setup(dir.path(), "127.0.0.1:8080".parse().unwrap(), None).unwrap();
        assert!(!open.required() && open.accepts(None));
        let exposed = RpcAuth::setup(dir.path(), "0.0.0.0:8080".parse().unwrap(), None).unwrap();
        let token = std::fs::read_to_string(dir.path().join(COOKIE_FILE)).unwrap();
        let token = token.trim();
        assert!(exposed.required());
        assert!(exposed.accepts(Some(format!("Bearer {token}").as_bytes())));
        assert!(!exposed.accepts(None));
        assert!(!exposed.accepts(Some(token.as_bytes())), "the scheme is required");
        assert!(!exposed.accepts(Some(b"Bearer nope")));
        exposed.remove_cookie();
        assert!(!dir.path().join(COOKIE_FILE).exists());
        let configured = RpcAuth::setup(dir.path(), "127.0.0.1:8080".parse().unwrap(), Some("s3cret".into())).unwrap();
        assert!(configured.accepts(Some(b"Bearer s3cret")) && !configured.accepts(Some(b"Bearer s3cre")));
        assert!(configured.cookie().is_none() && !dir.path().join(COOKIE_FILE).exists());
    }

    #[test]
    fn only_the_probe_and_the_dashboards_static_files_are_open() {
        for open in ["/health", "/", "/ui/app.js", "/ui/style.css", "/ui/nothing-such"] {
            assert!(is_open(open), "{open}");
        }
        for closed in ["/status", "/events", "/devnet/network", "/ui", "/ui/", "/ui/a/b", "/ui/../status", "//", "/health/x", "/openapi.json"] {
            assert!(!is_open(closed), "{closed}");
        }
    }
}
