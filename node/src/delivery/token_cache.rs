//! Short-lived provider credentials (FCM OAuth access tokens, APNs provider JWTs) kept until shortly
//! before they expire, keyed by the account they belong to. Minting is expensive (a signature, and
//! for FCM a round trip) and providers throttle it, so every send must not mint its own.
//!
//! Two sends that miss at the same time both mint; the later insert wins. That costs one extra token,
//! never a wrong one, and keeps the lock out of any `.await`.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

#[derive(Default)]
pub(crate) struct TokenCache {
    tokens: Mutex<BTreeMap<String, (String, Instant)>>,
}

impl TokenCache {
    /// The cached token for `key` if it is still valid at `now`.
    pub(crate) fn get(&self, key: &str, now: Instant) -> Option<String> {
        let tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        tokens
            .get(key)
            .filter(|(_, valid_until)| now < *valid_until)
            .map(|(token, _)| token.clone())
    }

    pub(crate) fn put(&self, key: &str, token: String, valid_until: Instant) {
        let mut tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        tokens.retain(|_, (_, until)| *until > Instant::now());
        tokens.insert(key.to_string(), (token, valid_until));
    }

    /// Forget `key`'s token after the provider rejected it.
    pub(crate) fn invalidate(&self, key: &str) {
        let mut tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        tokens.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn tokens_expire_and_can_be_invalidated() {
        let cache = TokenCache::default();
        let now = Instant::now();
        cache.put("a", "t1".into(), now + Duration::from_secs(60));
        assert_eq!(cache.get("a", now).as_deref(), Some("t1"));
        assert_eq!(cache.get("a", now + Duration::from_secs(60)), None);
        assert_eq!(cache.get("b", now), None);
        cache.invalidate("a");
        assert_eq!(cache.get("a", now), None);
    }
}
