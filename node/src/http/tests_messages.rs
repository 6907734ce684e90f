//! HTTP tests of messages, the feed and recipient runs over the in-memory backend of `tests.rs`.

use super::tests::Harness;

#[tokio::test]
async fn unknown_message_is_404() {
    let h = Harness::new();
    let (s, _) = h.get("/v1/messages/nope").await;
    assert_eq!(s, axum::http::StatusCode::NOT_FOUND);
}
