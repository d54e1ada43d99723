//! RPC errors: `{"error": {"code": "...", "message": "..."}}` with a fitting HTTP status.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cairn_chain::{BlockError, TxError};
use cairn_rpc_types::{Rejection, RequestError};
use serde_json::json;

use crate::chain_service::ServiceError;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    /// An error with an explicit status.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into() }
    }
    /// 400 with `code`.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    /// 404.
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", what)
    }
    /// The stable code.
    pub fn code(&self) -> &'static str {
        self.code
    }
    /// The human message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({"error": {"code": self.code, "message": self.message}}))).into_response()
    }
}

impl From<RequestError> for ApiError {
    fn from(e: RequestError) -> Self {
        let status = match e.rejection {
            Rejection::Malformed => StatusCode::BAD_REQUEST,
            Rejection::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        };
        ApiError::new(status, e.code, e.message)
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Stopped => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", e.to_string()),
            ServiceError::Store(e) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "storage_error", e.to_string()),
        }
    }
}

impl From<BlockError> for ApiError {
    fn from(e: BlockError) -> Self {
        let status = match &e {
            BlockError::Store(_) | BlockError::Transaction { error: TxError::Store(_), .. } => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        ApiError::new(status, e.code(), e.to_string())
    }
}

impl From<TxError> for ApiError {
    fn from(e: TxError) -> Self {
        let status = match &e {
            TxError::AlreadyKnown(_) => StatusCode::CONFLICT,
            TxError::MempoolFull | TxError::TooManyPending(_) => StatusCode::TOO_MANY_REQUESTS,
            TxError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        ApiError::new(status, e.code(), e.to_string())
    }
}
