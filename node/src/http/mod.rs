//! Knock v1 HTTP API: recipients (users, objects, tenants, their channel data and preference
//! sets, the bulk endpoints and bulk operations), messages and their engagement, the in-app feed,
//! and workflow recipient runs.
//!
//! ```text
//! request -> [auth: Bearer sk] -> extract (Knock-shaped rejections) -> validate (validate.rs)
//!         -> route by shard (Backend::shard_for) -> Backend::write / read -> render (render.rs)
//! ```
//!
//! Invariants:
//! - A request is validated completely before its first write: a 4xx changes nothing.
//! - Client mistakes are 4xx with Knock's body `{code, message, status, type}` (error.rs is the
//!   only place that maps errors); an unrouted path or method is 404 `{"errors":{"detail":...}}`.
//! - Bodies are limited to [`extract::BODY_LIMIT`] (1 MiB). `Idempotency-Key` is ignored here.
//! - This module never sees Raft, QUIC or RocksDB: only [`crate::backend::Backend`].
//!
//! `error` ([`error::ApiError`], the error -> response mapping) and `query` (query-string parsing)
//! are public for the other HTTP surfaces of the node.
//!
//! Mounting: [`router`] carries its own fallback (Knock's 404 body), so merge it into a router that
//! has none.

mod auth;
mod bulk;
pub mod error;
mod extract;
mod feeds;
mod message_render;
mod messages;
mod mgmt;
mod objects;
mod paging;
pub mod query;
mod recipients;
mod render;
mod runs;
mod tenants;
mod users;
mod validate;
mod workflows;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_messages;

use std::sync::Arc;

use axum::Router;

use crate::backend::Backend;

pub use bulk::BULK_OPERATIONS_TABLE;
pub use extract::BODY_LIMIT;
pub use paging::MAX_PAGE_SIZE;
pub use validate::{MAX_BULK_ITEMS, MAX_ID_CHARS};

/// Every v1 endpoint behind secret-key auth, and the management endpoints behind the service token.
pub fn router(backend: Arc<dyn Backend>) -> Router {
    let v1 = Router::new()
        .merge(users::routes())
        .merge(objects::routes())
        .merge(tenants::routes())
        .merge(bulk::routes())
        .merge(workflows::routes())
        .merge(messages::routes())
        .merge(feeds::routes())
        .merge(runs::routes())
        .route_layer(axum::middleware::from_fn_with_state(
            backend.clone(),
            auth::require_secret_key,
        ));
    let management = mgmt::routes().route_layer(axum::middleware::from_fn_with_state(
        backend.clone(),
        auth::require_service_token,
    ));
    Router::new()
        .merge(v1)
        .merge(management)
        .fallback(error::route_not_found)
        .method_not_allowed_fallback(error::route_not_found)
        .with_state(backend)
}
