//! The dashboard: a page, one script and one stylesheet embedded in the binary (no CDN, no
//! build step; works offline), served at `GET /` and `GET /ui/{file}`. The page reads
//! everything from this same RPC (`/status`, `/blocks`, `/txs`, `/accounts`, `/mempool`,
//! `/p2p/peers`, `/events`, and `/devnet/network` inside `cairn devnet`).
//!
//! The page and its files need no token (they are the same embedded bytes for everyone; see
//! `auth::is_open`). Everything the page reads goes through the auth layer: on a node that
//! wants a token (an RPC bound beyond loopback, or `rpc_token` set) the page answers a 401 by
//! asking for it (the node's `rpc_token`, or `<data_dir>/.cookie`), keeps it for the browser
//! tab only (`sessionStorage`), and sends it as `Authorization: Bearer` with every read; the
//! event stream is then read with `fetch` (an `EventSource` cannot send that header).
//!
//! # Security
//! Everything the page shows comes from the node, and some of it from peers (names, user
//! agents): the script builds its DOM with `textContent` and attributes only, never
//! `innerHTML`, and every response carries a strict Content-Security-Policy (scripts and
//! styles from this origin only, no inline code, no plugins, no framing), so even a mistake
//! there could not run injected code.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::RpcState;
use super::error::ApiError;
use super::extract::PathParam;

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

/// The dashboard's files (`src/rpc/ui/`).
const ASSETS: &[Asset] = &[
    Asset { name: "index.html", content_type: "text/html; charset=utf-8", body: include_bytes!("ui/index.html") },
    Asset { name: "app.js", content_type: "text/javascript; charset=utf-8", body: include_bytes!("ui/app.js") },
    Asset { name: "style.css", content_type: "text/css; charset=utf-8", body: include_bytes!("ui/style.css") },
    Asset { name: "favicon.svg", content_type: "image/svg+xml", body: include_bytes!("ui/favicon.svg") },
];

/// Scripts and styles from this origin only (no inline code, no `eval`); data only from this
/// origin; no plugins, frames, forms or `<base>`. Images: this origin's favicon.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; \
                       base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The files are part of the binary: a browser revalidates them (cheaply, by ETag) on each
/// load, so a node upgraded in place never serves a stale script against a newer page.
const CACHE: &str = "no-cache";

/// `GET /`: the dashboard page.
#[utoipa::path(get, path = "/", tag = "node", responses((status = 200, description = "The dashboard page", content_type = "text/html", body = String), (status = 304, description = "The browser's copy is current")))]
pub async fn index(State(_): State<RpcState>, headers: HeaderMap) -> Response {
    serve(&ASSETS[0], &headers)
}

/// `GET /ui/{file}`: one of the dashboard's files.
#[utoipa::path(get, path = "/ui/{file}", tag = "node", params(("file" = String, Path, description = "app.js, style.css or favicon.svg")), responses((status = 200, description = "A dashboard file", content((String = "text/html"), (String = "text/javascript"), (String = "text/css"), (String = "image/svg+xml"))), (status = 304, description = "The browser's copy is current"), (status = 400, description = "Malformed input", body = crate::rpc::openapi::ErrorBody), (status = 404, description = "No such file", body = crate::rpc::openapi::ErrorBody)))]
pub async fn asset(State(_): State<RpcState>, headers: HeaderMap, PathParam(name): PathParam) -> Response {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(a) => serve(a, &headers),
        None => ApiError::not_found(format!("no dashboard file {name}")).into_response(),
    }
}

/// `GET /devnet/network`: the devnet's nodes, partition, block tree and rates
/// ([`crate::devnet::network::NetworkView`]); 404 outside `cairn devnet`.
#[utoipa::path(get, path = "/devnet/network", tag = "node", responses((status = 200, description = "Inside cairn devnet: nodes, partition, block tree, rates", body = Object), (status = 404, description = "Not a devnet node", body = crate::rpc::openapi::ErrorBody)))]
pub async fn devnet_network(State(s): State<RpcState>) -> Result<Response, ApiError> {
    let feed = s.devnet_network.ok_or_else(|| ApiError::not_found("not a devnet node: /devnet/network is served inside `cairn devnet` only"))?;
    let view = feed.borrow().clone();
    let mut response = Json(&*view).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// A file with its type, caching and security headers; 304 when the browser's copy is current.
fn serve(asset: &Asset, request: &HeaderMap) -> Response {
    let etag = etag(asset.body);
    let fresh = request.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut response = if fresh { StatusCode::NOT_MODIFIED.into_response() } else { asset.body.into_response() };
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(CACHE));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    response
}

/// A strong ETag: the first 16 bytes of the file's BLAKE3 hash, quoted.
fn etag(body: &[u8]) -> String {
    format!("\"{}\"", &blake3::hash(body).to_hex()[..32])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_its_own_files_and_never_uses_inner_html() {
        let page = std::str::from_utf8(ASSETS[0].body).unwrap();
        assert!(page.contains(r#"src="/ui/app.js""#) && page.contains(r#"href="/ui/style.css""#));
        assert!(!page.contains("http://") && !page.contains("https://"), "no outside resources");
        assert!(!page.contains("<script>") && !inline_handler(page), "no inline script or handler (the CSP forbids them)");
        let script = std::str::from_utf8(ASSETS[1].body).unwrap();
        for banned in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"] {
            assert!(!script.contains(banned), "app.js must build its DOM from text nodes: found {banned}");
        }
    }

    /// Whether `html` has an `on…=` attribute.
    fn inline_handler(html: &str) -> bool {
        html.match_indices(" on").any(|(i, _)| {
            let rest = &html[i + 3..];
            let name = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
            name > 0 && rest[name..].starts_with('=')
        })
    }

    #[test]
    fn etags_follow_the_content() {
        assert_eq!(etag(b"a"), etag(b"a"));
        assert_ne!(etag(b"a"), etag(b"b"));
        assert_eq!(etag(b"a").len(), 34);
    }
}
