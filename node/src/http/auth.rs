//! Authentication: `Authorization: Bearer <secret key>` on every v1 route, the service token on the
//! management routes.
//!
//! Publishable keys (`pk_...`) and user tokens are not accepted yet (they need JWT verification and
//! per-endpoint grants); they get the same 401 as a wrong key.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use crate::backend::Backend;
use crate::error::Error;

/// Code Knock documents for a request without a key.
pub const CODE_MISSING: &str = "api_key_missing";
/// Code for a key that is not this environment's secret key.
pub const CODE_INVALID: &str = "api_key_invalid";

/// Compare without an early exit, so the time taken says nothing about the key.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Which key a route requires.
#[derive(Clone, Copy)]
enum Required {
    /// v1 API: the secret key.
    SecretKey,
    /// Management API: the service token.
    ServiceToken,
}

fn check(backend: &dyn Backend, header: Option<&str>, required: Required) -> Result<(), Error> {
    let token = header
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let Some(token) = token else {
        return Err(Error::Unauthorized {
            code: CODE_MISSING,
            message: "No valid API key provided".into(),
        });
    };
    let keys = backend
        .api_keys()
        .ok_or_else(|| Error::NotReady("no API keys configured yet".into()))?;
    let expected = match required {
        Required::SecretKey => &keys.secret_key,
        Required::ServiceToken => &keys.service_token,
    };
    if constant_time_eq(token.as_bytes(), expected.as_bytes()) {
        Ok(())
    } else {
        Err(Error::Unauthorized {
            code: CODE_INVALID,
            message: "The API key provided is invalid".into(),
        })
    }
}

async fn require(backend: &dyn Backend, required: Required, req: Request, next: Next) -> Response {
    let header = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|h| h.to_str().ok());
    match check(backend, header, required) {
        Ok(()) => next.run(req).await,
        Err(e) => ApiError(e).into_response(),
    }
}

pub async fn require_secret_key(
    State(backend): State<Arc<dyn Backend>>,
    req: Request,
    next: Next,
) -> Response {
    require(backend.as_ref(), Required::SecretKey, req, next).await
}

/// The management API (`@knocklabs/mgmt`) authenticates with the service token.
pub async fn require_service_token(
    State(backend): State<Arc<dyn Backend>>,
    req: Request,
    next: Next,
) -> Response {
    require(backend.as_ref(), Required::ServiceToken, req, next).await
}
