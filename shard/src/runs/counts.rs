//! Feed counters as merge operands: `apply` records how a message's contribution changed, never
//! reading the counters row, and the store folds the changes over the row ([`fold`]).
//!
//! ```text
//!   operand = [OPERAND_FEED_COUNTS, step, step, ...]     one byte per step, applied in order
//!   step    = bit 0: add (1) or remove (0) one message's contribution
//!             bit 1: the message is archived (counts into archived_*)
//!             bit 2: it is unread            bit 3: it is unseen
//! ```
//!
//! Every counter saturates at 0 and `u64::MAX`, one step at a time, exactly as when `apply` read,
//! changed and rewrote the row: the fold only ever runs over the full row (see
//! `herald_raft::MergeRule`), so the result is the same on every replica whenever it runs.

use super::model::{FeedCounts, StoredMessage};

/// First byte of a feed-counters operand (the store's merge rule dispatches on it).
pub const OPERAND_FEED_COUNTS: u8 = 1;

const ADD: u8 = 1;
const ARCHIVED: u8 = 1 << 1;
const UNREAD: u8 = 1 << 2;
const UNSEEN: u8 = 1 << 3;

/// The step that adds (`add`) or removes message `m`'s contribution.
pub fn step(m: &StoredMessage, add: bool) -> u8 {
    let mut s = 0;
    if add {
        s |= ADD;
    }
    if m.archived_ms.is_some() {
        s |= ARCHIVED;
    }
    if m.read_ms.is_none() {
        s |= UNREAD;
    }
    if m.seen_ms.is_none() {
        s |= UNSEEN;
    }
    s
}

/// The operand carrying `steps`, in order.
pub fn operand(steps: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + steps.len());
    out.push(OPERAND_FEED_COUNTS);
    out.extend_from_slice(steps);
    out
}

/// Apply `steps` to `counts`.
fn apply_steps(counts: &mut FeedCounts, steps: &[u8]) {
    for &s in steps {
        let (total, unread, unseen) = if s & ARCHIVED != 0 {
            (
                &mut counts.archived_total,
                &mut counts.archived_unread,
                &mut counts.archived_unseen,
            )
        } else {
            (&mut counts.total, &mut counts.unread, &mut counts.unseen)
        };
        let bump = |n: &mut u64| {
            *n = if s & ADD != 0 {
                n.saturating_add(1)
            } else {
                n.saturating_sub(1)
            }
        };
        bump(total);
        if s & UNREAD != 0 {
            bump(unread);
        }
        if s & UNSEEN != 0 {
            bump(unseen);
        }
    }
}

/// Decode a counters row. Rows are written only by [`fold`]; one that does not decode (which
/// would be a bug) counts from zero rather than failing every later read and compaction.
fn decode(raw: Option<&[u8]>) -> FeedCounts {
    raw.and_then(|r| serde_json::from_slice(r).ok())
        .unwrap_or_default()
}

/// The counters row after applying each operand's `steps` (the bytes after its first), in order,
/// over `existing`: decoded and encoded once however many operands a key has collected.
pub fn fold<'a>(existing: Option<&[u8]>, steps: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut counts = decode(existing);
    for s in steps {
        apply_steps(&mut counts, s);
    }
    serde_json::to_vec(&counts).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One fold per operand, checked against one fold of them all.
    fn fold_all(ops: &[&[u8]]) -> FeedCounts {
        let mut row: Option<Vec<u8>> = None;
        for op in ops {
            row = Some(fold(row.as_deref(), [*op]));
        }
        assert_eq!(row, Some(fold(None, ops.iter().copied())));
        decode(row.as_deref())
    }

    #[test]
    fn steps_add_and_remove_contributions_in_order() {
        let unread_unseen = ADD | UNREAD | UNSEEN;
        let c = fold_all(&[&[unread_unseen], &[unread_unseen]]);
        assert_eq!((c.total, c.unread, c.unseen), (2, 2, 2));
        // Marking one read: remove its old contribution, add the new one.
        let c = fold_all(&[
            &[unread_unseen, unread_unseen],
            &[UNREAD | UNSEEN, ADD | UNSEEN],
        ]);
        assert_eq!((c.total, c.unread, c.unseen), (2, 1, 2));
        // Archiving moves it to the archived counters.
        let c = fold_all(&[
            &[unread_unseen],
            &[UNREAD | UNSEEN, ADD | ARCHIVED | UNREAD],
        ]);
        assert_eq!(
            (
                c.total,
                c.archived_total,
                c.archived_unread,
                c.archived_unseen
            ),
            (0, 1, 1, 0)
        );
    }

    #[test]
    fn counters_saturate_one_step_at_a_time() {
        // Removing from zero stays at zero, so a later add counts one (not zero, as a summed
        // delta would): the fold must never combine steps ahead of the row.
        let c = fold_all(&[&[UNREAD], &[ADD | UNREAD]]);
        assert_eq!((c.total, c.unread), (1, 1));
    }

    #[test]
    fn a_row_that_does_not_decode_counts_from_zero() {
        let row = fold(Some(b"not json"), [&[ADD][..]]);
        assert_eq!(decode(Some(&row)).total, 1);
    }
}
