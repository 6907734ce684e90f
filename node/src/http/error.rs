//! The only place where [`crate::error::Error`] becomes an HTTP status and Knock's error body
//! `{code, message, status, type}`, plus Knock's unrouted-path body.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::error::Error;

/// An [`Error`] on its way out of a handler.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

pub type ApiResult<T> = std::result::Result<T, ApiError>;

/// `(status, code, type)` for each error.
fn classify(e: &Error) -> (StatusCode, &'static str, &'static str) {
    match e {
        Error::Unauthorized { code, .. } => {
            (StatusCode::UNAUTHORIZED, *code, "authentication_error")
        }
        Error::InvalidParams(_) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_params",
            "invalid_request_error",
        ),
        Error::InvalidDetails { .. } => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_params",
            "invalid_request_error",
        ),
        Error::Refused { status, code, .. } => (
            StatusCode::from_u16(*status).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY),
            *code,
            "invalid_request_error",
        ),
        Error::MalformedJson(_) => (
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "invalid_request_error",
        ),
        Error::NotFound(_) => (
            StatusCode::NOT_FOUND,
            "resource_missing",
            "invalid_request_error",
        ),
        Error::PayloadTooLarge { .. } => (
            StatusCode::PAYLOAD_TOO_LARGE,
            "request_too_large",
            "invalid_request_error",
        ),
        Error::Unavailable { .. } | Error::NotReady(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            "api_error",
        ),
        Error::Internal(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "api_error",
        ),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, kind) = classify(&self.0);
        if status.is_server_error() {
            tracing::warn!(error = %self.0, "v1 request failed");
        }
        let mut body = json!({
            "code": code,
            "message": self.0.to_string(),
            "status": status.as_u16(),
            "type": kind,
        });
        if let Error::InvalidDetails { problems, .. } = &self.0 {
            body["errors"] = problems
                .iter()
                .map(|(field, message)| json!({ "field": field, "message": message }))
                .collect();
        }
        let mut resp = (status, Json(body)).into_response();
        // The Stainless SDKs honour this header over their own status rules.
        let retry = if self.0.is_retryable() {
            "true"
        } else {
            "false"
        };
        resp.headers_mut()
            .insert("x-should-retry", HeaderValue::from_static(retry));
        resp
    }
}

/// Knock's answer for a path (or method) it does not route.
pub async fn route_not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"errors": {"detail": "404 Not Found"}})),
    )
        .into_response()
}

pub fn invalid(msg: impl Into<String>) -> ApiError {
    ApiError(Error::InvalidParams(msg.into()))
}

pub fn not_found(msg: impl Into<String>) -> ApiError {
    ApiError(Error::NotFound(msg.into()))
}

pub fn internal(msg: impl Into<String>) -> ApiError {
    ApiError(Error::Internal(msg.into()))
}
