//! Message and recipient-run ids: time-ordered, and carrying their home slot.
//!
//! An id is 20 bytes rendered as 27 base62 characters (KSUID-sized, e.g. `1jNaXzB2RZX3LY8wVQnfCKyPnv7`):
//!
//! ```text
//!   bytes 0..8   milliseconds since the Unix epoch (big-endian)
//!   bytes 8..10  slot of the recipient the id belongs to (big-endian, < 4096)
//!   bytes 10..20 entropy: random for messages, a hash of (workflow run, recipient) for runs
//! ```
//!
//! Fixed length plus an alphabet in ASCII order (`0-9A-Za-z`) make string order equal numeric order,
//! so rows keyed by these ids are time-ordered, and any node finds the shard of `GET /v1/messages/{id}`
//! from the id alone ([`slot_of_id`]).
//!
//! Ids are minted by the shard leader before proposing (randomness stays out of `apply`).

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Characters in an id.
pub const ID_LEN: usize = 27;
const RAW_LEN: usize = 20;

/// Build an id from its parts.
pub fn make_id(ms: u64, slot: u16, entropy: [u8; 10]) -> String {
    let mut raw = [0u8; RAW_LEN];
    raw[..8].copy_from_slice(&ms.to_be_bytes());
    raw[8..10].copy_from_slice(&slot.to_be_bytes());
    raw[10..].copy_from_slice(&entropy);
    encode(&raw)
}

/// The id of recipient `recipient_key`'s run of workflow run `workflow_run_id`: the same inputs give
/// the same id, so a retried trigger split across shards re-creates nothing.
pub fn run_id(ms: u64, slot: u16, workflow_run_id: &str, recipient_key: &str) -> String {
    let h =
        xxhash_rust::xxh3::xxh3_128(format!("{workflow_run_id}\u{0}{recipient_key}").as_bytes());
    let mut entropy = [0u8; 10];
    entropy.copy_from_slice(&h.to_be_bytes()[..10]);
    make_id(ms, slot, entropy)
}

/// The slot an id was minted for; `None` for anything that is not a Herald id.
pub fn slot_of_id(id: &str) -> Option<u16> {
    let raw = decode(id)?;
    let slot = u16::from_be_bytes([raw[8], raw[9]]);
    (slot < crate::SLOT_COUNT).then_some(slot)
}

/// When an id was minted (ms since the epoch).
pub fn time_of_id(id: &str) -> Option<u64> {
    let raw = decode(id)?;
    let mut ms = [0u8; 8];
    ms.copy_from_slice(&raw[..8]);
    Some(u64::from_be_bytes(ms))
}

/// The 160-bit number as five big-endian 32-bit limbs (arithmetic on limbs, not bytes: an id is
/// minted for every run and message and parsed for every message id a request names).
type Limbs = [u32; RAW_LEN / 4];

/// Digit value of each byte in [`ALPHABET`], `NOT_A_DIGIT` for the others.
const DIGITS: [u8; 256] = {
    let mut table = [NOT_A_DIGIT; 256];
    let mut i = 0;
    while i < ALPHABET.len() {
        table[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    table
};
const NOT_A_DIGIT: u8 = 0xff;

fn encode(raw: &[u8; RAW_LEN]) -> String {
    let mut limbs: Limbs = [0; RAW_LEN / 4];
    for (limb, chunk) in limbs.iter_mut().zip(raw.chunks_exact(4)) {
        *limb = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
    }
    // Repeated division of the big-endian number by 62, least significant digit first.
    let mut out = [b'0'; ID_LEN];
    for digit in out.iter_mut().rev() {
        let mut rem = 0u64;
        for limb in limbs.iter_mut() {
            let acc = (rem << 32) | u64::from(*limb);
            *limb = (acc / 62) as u32;
            rem = acc % 62;
        }
        *digit = ALPHABET[rem as usize];
    }
    out.iter().map(|&b| char::from(b)).collect()
}

fn decode(id: &str) -> Option<[u8; RAW_LEN]> {
    if id.len() != ID_LEN {
        return None;
    }
    let mut limbs: Limbs = [0; RAW_LEN / 4];
    for c in id.bytes() {
        let digit = DIGITS[usize::from(c)];
        if digit == NOT_A_DIGIT {
            return None;
        }
        // limbs = limbs * 62 + digit
        let mut carry = u64::from(digit);
        for limb in limbs.iter_mut().rev() {
            let acc = u64::from(*limb) * 62 + carry;
            *limb = acc as u32;
            carry = acc >> 32;
        }
        if carry != 0 {
            return None;
        }
    }
    let mut raw = [0u8; RAW_LEN];
    for (chunk, limb) in raw.chunks_exact_mut(4).zip(limbs) {
        chunk.copy_from_slice(&limb.to_be_bytes());
    }
    Some(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_orders_by_time() {
        let a = make_id(1_700_000_000_000, 4095, [0xff; 10]);
        let b = make_id(1_700_000_000_001, 0, [0; 10]);
        assert_eq!(a.len(), ID_LEN);
        assert!(a < b, "{a} < {b}");
        assert_eq!(slot_of_id(&a), Some(4095));
        assert_eq!(time_of_id(&b), Some(1_700_000_000_001));
    }

    #[test]
    fn run_ids_are_stable_per_recipient() {
        let a = run_id(5, 7, "wf-run", "u1");
        assert_eq!(a, run_id(5, 7, "wf-run", "u1"));
        assert_ne!(a, run_id(5, 7, "wf-run", "u2"));
    }

    #[test]
    fn rejects_foreign_strings() {
        assert_eq!(slot_of_id("nope"), None);
        assert_eq!(slot_of_id(&"z".repeat(ID_LEN)), None, "overflows 160 bits");
        assert_eq!(slot_of_id(&"!".repeat(ID_LEN)), None);
        assert_eq!(
            slot_of_id(&make_id(1, 5000, [0; 10])),
            None,
            "slot out of range"
        );
    }

    /// The byte-at-a-time base62 conversion ids were first minted with: stored ids must not change.
    fn encode_bytewise(raw: &[u8; RAW_LEN]) -> String {
        let mut num = raw.to_vec();
        let mut out = [b'0'; ID_LEN];
        for slot in out.iter_mut().rev() {
            let mut rem = 0u32;
            for byte in num.iter_mut() {
                let acc = (rem << 8) | u32::from(*byte);
                *byte = (acc / 62) as u8;
                rem = acc % 62;
            }
            *slot = ALPHABET[rem as usize];
        }
        out.iter().map(|&b| char::from(b)).collect()
    }

    #[test]
    fn extremes_encode_as_before() {
        for raw in [[0u8; RAW_LEN], [0xff; RAW_LEN]] {
            assert_eq!(encode(&raw), encode_bytewise(&raw));
            assert_eq!(decode(&encode(&raw)), Some(raw));
        }
    }

    proptest::proptest! {
        #[test]
        fn ids_encode_as_the_bytewise_conversion_did(raw: [u8; RAW_LEN]) {
            let id = encode(&raw);
            proptest::prop_assert_eq!(&id, &encode_bytewise(&raw));
            proptest::prop_assert_eq!(decode(&id), Some(raw));
        }

        #[test]
        fn any_id_round_trips(ms: u64, slot in 0u16..4096, e: [u8; 10]) {
            let id = make_id(ms, slot, e);
            proptest::prop_assert_eq!(slot_of_id(&id), Some(slot));
            proptest::prop_assert_eq!(time_of_id(&id), Some(ms));
        }
    }
}
