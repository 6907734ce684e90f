//! The one owner of a shard's key layout.
//!
//! Keys here are shard-local: the raft layer prepends the group id (fixed-width big-endian) itself.
//! Every key starts with a one-byte table tag; strings are length-prefixed (`u16` big-endian length,
//! then the UTF-8 bytes) so that a prefix of segments never matches a longer id by accident, and
//! integers are fixed-width big-endian so byte order equals numeric order.
//!
//! ```text
//! 0x01 RECIPIENT       | coll | id                    -> StoredRecipient (JSON)
//! 0x02 CHANNEL_DATA    | coll | id | channel_id       -> StoredChannelData (JSON)
//! 0x03 PREFERENCE_SET  | coll | id | set_id           -> preference set (JSON object, no `id`)
//! 0x04 COLLECTION_INDEX| coll | inserted_ms u64 | id  -> empty   (insertion-order listing)
//! 0x05 COLLECTION_COUNT| coll                         -> u64 BE  (exact recipients per collection)
//! 0x10 MESSAGE         | msg_id                       -> StoredMessage (JSON)
//! 0x11 RECIPIENT_MSG   | coll | id | msg_id           -> empty   (a recipient's messages, time-ordered)
//! 0x12 FEED            | coll | id | channel | msg_id -> empty   (in-app feed items, time-ordered)
//! 0x13 FEED_COUNTS     | coll | id | channel          -> FeedCounts (JSON; exact; merge operands, runs::counts)
//! 0x14 RUN             | run_id                       -> StoredRun (JSON)
//! 0x15 CANCEL_INDEX    | workflow | cancel_key | run  -> empty   (runs a cancel can still stop)
//! 0x16 IDEMPOTENCY     | key                          -> IdempotencyRecord (JSON)
//! 0x17 OUTBOX          | due_ms u64 | msg_id          -> empty   (messages waiting for a provider send)
//! 0x18 DELIVERY_LOG    | msg_id | seq u32             -> delivery log (JSON)
//! 0x19 MESSAGE_EVENT   | msg_id | seq u32             -> message event (JSON; from seq 1 when the
//!                                                        message row stands for event 0)
//! 0x1A TIMER           | due_ms u64 | run_id          -> empty   (paused runs to resume)
//! 0x1B ONCE            | workflow | coll | id | scope -> empty  (trigger_frequency: already ran)
//! ```
//!
//! Message and run ids are fixed-length, time-ordered strings ([`crate::ids`]), so the byte order of
//! the rows keyed by them is time order.
//!
//! Users live in collection [`crate::USERS_COLLECTION`] (`$users`), tenants in `$tenants`.
//! Invariant: a segment is at most [`MAX_SEGMENT_BYTES`]; callers validate before encoding
//! ([`crate::RecipientRef::validate`]); the encoders return `None` for a longer string rather than
//! truncate it, so two ids can never share a key.

/// Recipient record: users, objects and tenants.
pub const TAG_RECIPIENT: u8 = 0x01;
/// Channel data of a recipient, one row per channel.
pub const TAG_CHANNEL_DATA: u8 = 0x02;
/// Preference sets of a recipient, one row per set id (`default` or a tenant id).
pub const TAG_PREFERENCE_SET: u8 = 0x03;
/// Secondary index: a collection's recipients in insertion order.
pub const TAG_COLLECTION_INDEX: u8 = 0x04;
/// Exact count of recipients per collection on this shard.
pub const TAG_COLLECTION_COUNT: u8 = 0x05;

pub const TAG_MESSAGE: u8 = 0x10;
pub const TAG_RECIPIENT_MSG: u8 = 0x11;
pub const TAG_FEED: u8 = 0x12;
pub const TAG_FEED_COUNTS: u8 = 0x13;
pub const TAG_RUN: u8 = 0x14;
pub const TAG_CANCEL_INDEX: u8 = 0x15;
pub const TAG_IDEMPOTENCY: u8 = 0x16;
pub const TAG_OUTBOX: u8 = 0x17;
pub const TAG_DELIVERY_LOG: u8 = 0x18;
pub const TAG_MESSAGE_EVENT: u8 = 0x19;
pub const TAG_TIMER: u8 = 0x1A;
pub const TAG_ONCE: u8 = 0x1B;

/// Largest string segment a key may carry (ids are validated to far less: 255 chars).
pub const MAX_SEGMENT_BYTES: usize = u16::MAX as usize;

fn push_segment(out: &mut Vec<u8>, s: &str) -> Option<()> {
    let len = u16::try_from(s.len()).ok()?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
    Some(())
}

fn take_segment<'a>(buf: &mut &'a [u8]) -> Option<&'a str> {
    if buf.len() < 2 {
        return None;
    }
    let len = u16::from_be_bytes([buf[0], buf[1]]) as usize;
    let rest = &buf[2..];
    if rest.len() < len {
        return None;
    }
    let s = std::str::from_utf8(&rest[..len]).ok()?;
    *buf = &rest[len..];
    Some(s)
}

fn take_u64(buf: &mut &[u8]) -> Option<u64> {
    if buf.len() < 8 {
        return None;
    }
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[..8]);
    *buf = &buf[8..];
    Some(u64::from_be_bytes(b))
}

fn tagged(tag: u8, segments: &[&str]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(1 + segments.iter().map(|s| s.len() + 2).sum::<usize>());
    out.push(tag);
    for s in segments {
        push_segment(&mut out, s)?;
    }
    Some(out)
}

/// The smallest key greater than every key starting with `prefix` (for `[prefix, end)` scans).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return end;
        }
    }
    // All 0xff (never produced by this layout): no upper bound short of "everything".
    vec![u8::MAX; prefix.len() + 1]
}

// ---- recipients ----

pub fn recipient(collection: &str, id: &str) -> Option<Vec<u8>> {
    tagged(TAG_RECIPIENT, &[collection, id])
}

pub fn decode_recipient(key: &[u8]) -> Option<(String, String)> {
    let (&tag, mut rest) = key.split_first()?;
    if tag != TAG_RECIPIENT {
        return None;
    }
    let c = take_segment(&mut rest)?;
    let i = take_segment(&mut rest)?;
    rest.is_empty().then(|| (c.to_owned(), i.to_owned()))
}

// ---- channel data ----

pub fn channel_data(collection: &str, id: &str, channel_id: &str) -> Option<Vec<u8>> {
    tagged(TAG_CHANNEL_DATA, &[collection, id, channel_id])
}

/// Prefix of every channel-data row of one recipient.
pub fn channel_data_prefix(collection: &str, id: &str) -> Option<Vec<u8>> {
    tagged(TAG_CHANNEL_DATA, &[collection, id])
}

pub fn decode_channel_data(key: &[u8]) -> Option<(String, String, String)> {
    decode_three(TAG_CHANNEL_DATA, key)
}

// ---- preference sets ----

pub fn preference_set(collection: &str, id: &str, set_id: &str) -> Option<Vec<u8>> {
    tagged(TAG_PREFERENCE_SET, &[collection, id, set_id])
}

/// Prefix of every preference set of one recipient.
pub fn preference_set_prefix(collection: &str, id: &str) -> Option<Vec<u8>> {
    tagged(TAG_PREFERENCE_SET, &[collection, id])
}

pub fn decode_preference_set(key: &[u8]) -> Option<(String, String, String)> {
    decode_three(TAG_PREFERENCE_SET, key)
}

fn decode_three(expect: u8, key: &[u8]) -> Option<(String, String, String)> {
    let (&tag, mut rest) = key.split_first()?;
    if tag != expect {
        return None;
    }
    let a = take_segment(&mut rest)?;
    let b = take_segment(&mut rest)?;
    let c = take_segment(&mut rest)?;
    rest.is_empty()
        .then(|| (a.to_owned(), b.to_owned(), c.to_owned()))
}

// ---- collection index ----

pub fn collection_index(collection: &str, inserted_ms: u64, id: &str) -> Option<Vec<u8>> {
    let mut out = tagged(TAG_COLLECTION_INDEX, &[collection])?;
    out.extend_from_slice(&inserted_ms.to_be_bytes());
    push_segment(&mut out, id)?;
    Some(out)
}

/// Prefix of a collection's index rows.
pub fn collection_index_prefix(collection: &str) -> Option<Vec<u8>> {
    tagged(TAG_COLLECTION_INDEX, &[collection])
}

/// `(collection, inserted_ms, id)`.
pub fn decode_collection_index(key: &[u8]) -> Option<(String, u64, String)> {
    let (&tag, mut rest) = key.split_first()?;
    if tag != TAG_COLLECTION_INDEX {
        return None;
    }
    let c = take_segment(&mut rest)?;
    let ms = take_u64(&mut rest)?;
    let id = take_segment(&mut rest)?;
    rest.is_empty().then(|| (c.to_owned(), ms, id.to_owned()))
}

// ---- counters ----

pub fn collection_count(collection: &str) -> Option<Vec<u8>> {
    tagged(TAG_COLLECTION_COUNT, &[collection])
}

pub fn encode_count(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

pub fn decode_count(value: &[u8]) -> Option<u64> {
    let mut v = value;
    let n = take_u64(&mut v)?;
    v.is_empty().then_some(n)
}

// ---- messages, runs and their indexes ----

/// A one-segment row (`MESSAGE`, `RUN`, `IDEMPOTENCY`); the table prefix is `[tag]`.
pub fn single(tag: u8, id: &str) -> Option<Vec<u8>> {
    tagged(tag, &[id])
}

/// The id of a one-segment row.
pub fn decode_single(tag: u8, key: &[u8]) -> Option<String> {
    let (&t, mut rest) = key.split_first()?;
    if t != tag {
        return None;
    }
    let id = take_segment(&mut rest)?;
    rest.is_empty().then(|| id.to_owned())
}

/// A row or prefix made of string segments under `tag` (indexes: the last segment is the id).
pub fn segments(tag: u8, parts: &[&str]) -> Option<Vec<u8>> {
    tagged(tag, parts)
}

/// The last string segment of a `segments` key whose first `skip` segments are known.
pub fn last_segment(key: &[u8], skip: usize) -> Option<String> {
    let (_, mut rest) = key.split_first()?;
    for _ in 0..skip {
        take_segment(&mut rest)?;
    }
    let id = take_segment(&mut rest)?;
    rest.is_empty().then(|| id.to_owned())
}

/// A time-ordered queue row: `tag | due_ms | id` (`OUTBOX`, `TIMER`).
pub fn due(tag: u8, due_ms: u64, id: &str) -> Option<Vec<u8>> {
    let mut out = vec![tag];
    out.extend_from_slice(&due_ms.to_be_bytes());
    push_segment(&mut out, id)?;
    Some(out)
}

/// The first `due` row key with `due_ms >= ms`.
pub fn due_from(tag: u8, ms: u64) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&ms.to_be_bytes());
    out
}

/// The first key after every `due` row with `due_ms <= ms`.
pub fn due_until(tag: u8, ms: u64) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&ms.saturating_add(1).to_be_bytes());
    out
}

pub fn decode_due(tag: u8, key: &[u8]) -> Option<(u64, String)> {
    let (&t, mut rest) = key.split_first()?;
    if t != tag {
        return None;
    }
    let ms = take_u64(&mut rest)?;
    let id = take_segment(&mut rest)?;
    rest.is_empty().then(|| (ms, id.to_owned()))
}

/// A per-message sequence row: `tag | msg_id | seq` (`DELIVERY_LOG`, `MESSAGE_EVENT`).
pub fn sequenced(tag: u8, id: &str, seq: u32) -> Option<Vec<u8>> {
    let mut out = tagged(tag, &[id])?;
    out.extend_from_slice(&seq.to_be_bytes());
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipient_round_trip() {
        let k = recipient("$users", "u-1").unwrap();
        assert_eq!(k[0], TAG_RECIPIENT);
        assert_eq!(decode_recipient(&k), Some(("$users".into(), "u-1".into())));
        assert_eq!(decode_recipient(&k[..k.len() - 1]), None);
    }

    #[test]
    fn channel_data_and_preferences_round_trip() {
        let k = channel_data("projects", "p/1", "chan").unwrap();
        assert_eq!(
            decode_channel_data(&k),
            Some(("projects".into(), "p/1".into(), "chan".into()))
        );
        assert!(k.starts_with(&channel_data_prefix("projects", "p/1").unwrap()));
        let p = preference_set("$users", "u", "default").unwrap();
        assert_eq!(
            decode_preference_set(&p),
            Some(("$users".into(), "u".into(), "default".into()))
        );
        assert_eq!(decode_channel_data(&p), None, "tags are checked");
    }

    #[test]
    fn length_prefix_keeps_ids_apart() {
        // "ab" must not be inside the prefix range of "a".
        let prefix = channel_data_prefix("$users", "a").unwrap();
        let other = channel_data("$users", "ab", "c").unwrap();
        assert!(!other.starts_with(&prefix));
    }

    #[test]
    fn index_orders_by_time_then_id() {
        let a = collection_index("c", 5, "z").unwrap();
        let b = collection_index("c", 6, "a").unwrap();
        let c = collection_index("c", 6, "b").unwrap();
        assert!(a < b && b < c);
        assert_eq!(
            decode_collection_index(&b),
            Some(("c".into(), 6, "a".into()))
        );
        let prefix = collection_index_prefix("c").unwrap();
        let end = prefix_end(&prefix);
        assert!(a.starts_with(&prefix) && c < end);
    }

    #[test]
    fn count_round_trip_and_prefix_end() {
        assert_eq!(decode_count(&encode_count(42)), Some(42));
        assert_eq!(decode_count(&[1, 2]), None);
        assert_eq!(prefix_end(&[1, 2, 0xff]), vec![1, 3]);
        assert!(collection_count("x")
            .unwrap()
            .starts_with(&[TAG_COLLECTION_COUNT]));
        assert_eq!(recipient("c", &"x".repeat(70_000)), None);
    }

    #[test]
    fn message_tables_round_trip() {
        let m = single(TAG_MESSAGE, "abc").unwrap();
        assert_eq!(decode_single(TAG_MESSAGE, &m), Some("abc".into()));
        assert_eq!(decode_single(TAG_RUN, &m), None);
        let f = segments(TAG_FEED, &["$users", "u", "chan", "m1"]).unwrap();
        assert_eq!(last_segment(&f, 3), Some("m1".into()));
        assert!(f.starts_with(&segments(TAG_FEED, &["$users", "u", "chan"]).unwrap()));
        let d = due(TAG_OUTBOX, 7, "m").unwrap();
        assert_eq!(decode_due(TAG_OUTBOX, &d), Some((7, "m".into())));
        assert!(d < due_until(TAG_OUTBOX, 7) && due_until(TAG_OUTBOX, 6) < d);
        assert!(due_from(TAG_OUTBOX, 7) < d && d < due_from(TAG_OUTBOX, 8));
        assert!(
            sequenced(TAG_DELIVERY_LOG, "m", 1).unwrap()
                < sequenced(TAG_DELIVERY_LOG, "m", 2).unwrap()
        );
    }

    proptest::proptest! {
        #[test]
        fn any_index_key_round_trips(c in "\\PC{0,40}", ms: u64, id in "\\PC{0,40}") {
            let k = collection_index(&c, ms, &id).unwrap();
            proptest::prop_assert_eq!(decode_collection_index(&k), Some((c, ms, id)));
        }
    }
}
