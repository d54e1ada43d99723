//! Request extractors that answer every malformed input with a JSON [`ApiError`] instead of
//! axum's plain-text rejections, and read bodies under an explicit size limit.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// A JSON body of at most `LIMIT` bytes.
pub struct JsonBody<T, const LIMIT: usize>(pub T);

impl<S: Send + Sync, T: DeserializeOwned, const LIMIT: usize> FromRequest<S> for JsonBody<T, LIMIT> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, ApiError> {
        let too_large = || ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", format!("request body over {LIMIT} bytes"));
        if let Some(len) = req.headers().get(axum::http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            && len > LIMIT as u64
        {
            return Err(too_large());
        }
        let bytes = axum::body::to_bytes(req.into_body(), LIMIT).await.map_err(|_| too_large())?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Parses JSON, telling syntax errors (`invalid_json`) from shape errors (`invalid_request`).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        use serde_json::error::Category;
        let code = match e.classify() {
            Category::Syntax | Category::Eof | Category::Io => "invalid_json",
            Category::Data => "invalid_request",
        };
        ApiError::bad_request(code, e.to_string())
    })
}

/// Query parameters; a malformed query is a JSON 400.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, s).await.map(|q| Query(q.0)).map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))
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

/// Parses a hex value of a fixed-size type, naming what it should have been.
pub fn parse_hex<T: std::str::FromStr>(s: &str, what: &'static str, code: &'static str) -> Result<T, ApiError> {
    s.parse().map_err(|_| ApiError::bad_request(code, format!("malformed {what} {:?}: expected lowercase hex", s.chars().take(80).collect::<String>())))
}
