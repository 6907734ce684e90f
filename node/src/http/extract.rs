//! Request extractors that fail with Knock-shaped errors instead of axum's plain-text rejections.

use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::header::CONTENT_LENGTH;
use axum::http::request::Parts;
use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::{invalid, ApiError};
use super::query::QueryParams;
use crate::error::Error;

/// Largest v1 request body accepted by the recipients endpoints (1 MiB). Bulk requests of 1000
/// recipients fit; trigger data (10 MB in Knock) will get its own limit.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// A JSON body, read up to [`BODY_LIMIT`]. An empty body reads as `{}`.
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let too_large = ApiError(Error::PayloadTooLarge { limit: BODY_LIMIT });
        let declared = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > BODY_LIMIT as u64) {
            return Err(too_large);
        }
        let mut bytes = Vec::new();
        let mut stream = req.into_body().into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk
                .map_err(|e| ApiError(Error::MalformedJson(format!("could not read body: {e}"))))?;
            if bytes.len() + chunk.len() > BODY_LIMIT {
                return Err(too_large);
            }
            bytes.extend_from_slice(&chunk);
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(JsonBody(Value::Object(Default::default())));
        }
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError(Error::MalformedJson(e.to_string())))
    }
}

/// Path parameters; a bad percent-encoding is a 422, not axum's plain-text 400.
pub struct KPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for KPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(t)| KPath(t))
            .map_err(|e| invalid(format!("invalid path: {e}")))
    }
}

/// The query string parsed with every encoding Knock's clients use (see [`QueryParams`]).
pub struct Query(pub QueryParams);

impl<S: Send + Sync> FromRequestParts<S> for Query {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        QueryParams::parse(parts.uri.query()).map(Query)
    }
}
