//! Key layout of the meta group's state (herald-raft prefixes the group id).
//!
//! ```text
//! 0x01                         -> ClusterInfo (JSON)
//! 0x02                         -> ApiKeys (JSON)
//! 0x03                         -> ClusterCa (JSON)
//! 0x10 | node id u64 BE        -> Member (JSON)
//! 0x20 | table | 0x00 | key    -> record (JSON)
//! ```

const INFO: u8 = 0x01;
const API_KEYS: u8 = 0x02;
const CA: u8 = 0x03;
const MEMBER: u8 = 0x10;
const RECORD: u8 = 0x20;

pub fn info() -> Vec<u8> {
    vec![INFO]
}

pub fn api_keys() -> Vec<u8> {
    vec![API_KEYS]
}

pub fn ca() -> Vec<u8> {
    vec![CA]
}

pub fn member(id: u64) -> Vec<u8> {
    let mut k = vec![MEMBER];
    k.extend_from_slice(&id.to_be_bytes());
    k
}

/// `[start, end)` of all member keys.
pub fn member_range() -> (Vec<u8>, Vec<u8>) {
    (vec![MEMBER], vec![MEMBER + 1])
}

/// Table names never contain NUL, so `table | 0x00` is an unambiguous prefix.
pub fn record(table: &str, key: &str) -> Vec<u8> {
    let mut k = vec![RECORD];
    k.extend_from_slice(table.as_bytes());
    k.push(0);
    k.extend_from_slice(key.as_bytes());
    k
}

/// `[start, end)` of every record of `table`.
pub fn record_range(table: &str) -> (Vec<u8>, Vec<u8>) {
    let start = record(table, "");
    let mut end = start.clone();
    // `table | 0x00` -> `table | 0x01`: the byte after the separator bounds the table.
    if let Some(last) = end.last_mut() {
        *last = 1;
    }
    (start, end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_keys_sort_by_id_inside_their_range() {
        let (lo, hi) = member_range();
        assert!(member(1) < member(256));
        assert!(member(0) >= lo && member(u64::MAX) < hi);
    }

    #[test]
    fn records_of_different_tables_do_not_collide() {
        assert_ne!(record("ab", "c"), record("a", "bc"));
    }
}
