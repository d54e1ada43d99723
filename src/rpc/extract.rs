//! Request extractors that answer every malformed input with a JSON [`ApiError`] instead of
//! axum's plain-text rejections, and read bodies under an explicit size limit. What they read
//! is parsed by `cairn-rpc-types` (pure functions, fuzzed by `fuzz/`'s `rpc_json`).

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// A JSON body of at most `LIMIT` bytes.
pub struct JsonBody<T, const LIMIT: usize>(pub T);

impl<S: Send + Sync, T: DeserializeOwned, const LIMIT: usize> FromRequest<S> for JsonBody<T, LIMIT> {
    type Rejection = ApiError;

    async fn from_request(req: Request, s: &S) -> Result<Self, ApiError> {
        let RawBody(bytes) = RawBody::<LIMIT>::from_request(req, s).await?;
        Ok(JsonBody(cairn_rpc_types::parse_json(&bytes)?))
    }
}

/// A body of at most `LIMIT` bytes, unparsed (a handler that reads it borrowing from it).
pub struct RawBody<const LIMIT: usize>(pub axum::body::Bytes);

impl<S: Send + Sync, const LIMIT: usize> FromRequest<S> for RawBody<LIMIT> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, ApiError> {
        let too_large = || ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", format!("request body over {LIMIT} bytes"));
        if let Some(len) = req.headers().get(axum::http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            && len > LIMIT as u64
        {
            return Err(too_large());
        }
        Ok(RawBody(axum::body::to_bytes(req.into_body(), LIMIT).await.map_err(|_| too_large())?))
    }
}

/// Query parameters; a malformed query is a JSON 400.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Ok(Query(cairn_rpc_types::query::parse_query(parts.uri.query().unwrap_or_default())?))
    }
}

/// One path parameter as a string; the handler parses it.
pub struct PathParam(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<String>::from_request_parts(parts, s)
            .await
            .map(|p| PathParam(p.0))
            .map_err(|e| ApiError::bad_request("invalid_path", e.body_text()))
    }
}
