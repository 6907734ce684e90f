//! Wake-ups of a shard leader's queue loops: the dispatcher (outbox rows) and the timer loop
//! (timer rows), each a time-ordered table `due_ms | id` in the shard's state.
//!
//! ```text
//!  state machine apply (every replica)          leader's loop
//!    entry adds rows due at d ─► pending low d
//!    batch written (readable)  ─► QueueWake::added(d): low = min(low, d), notify ──► wakes
//!                                                       QueueFloor::begin: floor = min(floor, low)
//!                                                       scan rows due in floor..=now
//!                                                       QueueFloor::found(first row's due)
//! ```
//!
//! Why a floor: a loop removes the rows it handled, and RocksDB keeps each removal as a tombstone
//! until compaction, at the head of the table. A scan from the table's start steps over every one
//! of them on every pass (under webhook fan-out that was a sixth of all CPU samples). The floor starts
//! the scan at the earliest row that can exist instead.
//!
//! Rows due at once (newly queued messages) need no scan at all: apply hands the messages to the
//! loop ([`QueueWake::hand_over`]), with what sending them takes, so the loop reads only their
//! outbox rows (still waiting?) instead of the messages. Scans remain for rows due later
//! (retries), for a new loop, and for messages beyond what a wake holds ([`HANDOFF_CAP`]).
//!
//! Invariant: every row readable in the table is due at or after the loop's floor, or its due
//! time is still pending in [`QueueWake`] (not yet taken by [`QueueFloor::begin`]), or its
//! message is held by [`QueueWake`] (not yet taken by [`QueueWake::take_handed`]; the loop sends
//! what it takes).
//! - A loop starts with floor 0.
//! - `begin` takes the pending low before the loop reads the table, so a row readable by then is
//!   either at or above the old floor or covered by what `begin` took.
//! - A row that becomes readable later reports itself after its write (`added` is called only
//!   after the batch is readable), so it is pending for the next `begin`.
//! - `found` raises the floor to the earliest row the read saw at or above the floor (or beyond
//!   every row when it saw none): by the two points above, nothing readable lies below it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald_raft::GroupReader;
use herald_shard::runs::{self, DueItem, Queue, Sendable};
use herald_shard::ShardId;
use tokio::sync::Notify;

use super::{now_ms, ShardStore};

/// Most messages a wake holds for its loop. Beyond it rows are left to a scan, so a replica whose
/// loop does not run (a follower) stops collecting there.
pub const HANDOFF_CAP: usize = 4096;

/// One queue table's wake-up: a notification, the earliest due time added since the loop last
/// looked, and messages handed to the loop directly (the outbox's only).
pub struct QueueWake {
    notify: Notify,
    low: AtomicU64,
    handed: Mutex<Vec<Sendable>>,
}

impl Default for QueueWake {
    fn default() -> Self {
        QueueWake {
            notify: Notify::new(),
            low: AtomicU64::new(u64::MAX),
            handed: Mutex::default(),
        }
    }
}

impl QueueWake {
    /// Rows due at `due_ms` or later were written and are readable: wake the loop.
    pub fn added(&self, due_ms: u64) {
        self.low.fetch_min(due_ms, Ordering::AcqRel);
        self.notify.notify_one();
    }

    /// Rows due at `due_ms` or later for these messages were written and are readable: hand the
    /// messages to the loop (or, when it holds too many already, leave them to its next scan).
    pub fn hand_over(&self, due_ms: u64, messages: Vec<Sendable>) {
        let mut handed = self.handed.lock().unwrap_or_else(|p| p.into_inner());
        if handed.len() + messages.len() <= HANDOFF_CAP {
            handed.extend(messages);
            drop(handed);
            self.notify.notify_one();
        } else {
            drop(handed);
            self.added(due_ms);
        }
    }

    /// Whether the wake holds as many messages as it takes ([`HANDOFF_CAP`]); more go to a scan.
    pub fn is_full(&self) -> bool {
        self.handed.lock().unwrap_or_else(|p| p.into_inner()).len() >= HANDOFF_CAP
    }

    /// The messages handed over since the last call; the caller sends them.
    pub fn take_handed(&self) -> Vec<Sendable> {
        std::mem::take(&mut *self.handed.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Whether rows were added that only a scan finds.
    pub fn scan_pending(&self) -> bool {
        self.low.load(Ordering::Acquire) != u64::MAX
    }

    /// Until rows are added (or another `added` arrived since the last wait).
    pub async fn notified(&self) {
        self.notify.notified().await
    }

    fn take_low(&self) -> u64 {
        self.low.swap(u64::MAX, Ordering::AcqRel)
    }
}

/// A loop's lower bound for its scans of one queue table (see the module invariant); a new
/// loop's floor is 0.
#[derive(Default)]
pub struct QueueFloor {
    from_ms: u64,
}

/// What one pass of a queue loop read.
pub struct QueuePass {
    /// The clock the pass read at.
    pub now_ms: u64,
    /// The earliest row's due time (possibly later than `now_ms`, possibly a row being handled).
    pub first: Option<u64>,
    /// Rows due at `now_ms`, oldest first, at most the limit asked for.
    pub due: Vec<DueItem>,
}

impl QueuePass {
    /// How long until the earliest row is due: zero when it is due already, `None` without rows.
    pub fn first_due_in(&self) -> Option<Duration> {
        self.first
            .map(|due| Duration::from_millis(due.saturating_sub(self.now_ms)))
    }
}

impl QueueFloor {
    /// One pass's read of `queue` on the shard's applied state, from the floor.
    pub fn read(
        &mut self,
        wake: &QueueWake,
        reader: &GroupReader,
        queue: Queue,
        limit: usize,
    ) -> herald_shard::Result<QueuePass> {
        let from = self.begin(wake);
        let now_ms = now_ms();
        let store = ShardStore(reader);
        let due = runs::due_rows(&store, queue, from, now_ms, limit)?;
        // The first due row is the earliest at or above the floor; only an empty read needs a
        // second look, for a row due later.
        let first = match due.first() {
            Some(row) => Some(row.due_ms),
            None => runs::first_due(&store, queue, from)?,
        };
        self.found(first);
        Ok(QueuePass { now_ms, first, due })
    }

    /// The floor for this pass's reads: lowered to every row added since the last pass.
    fn begin(&mut self, wake: &QueueWake) -> u64 {
        self.from_ms = self.from_ms.min(wake.take_low());
        self.from_ms
    }

    /// The pass's read saw `first` as the earliest due time at or above the floor (`None`: no row).
    fn found(&mut self, first: Option<u64>) {
        self.from_ms = first.unwrap_or(u64::MAX);
    }
}

/// The wake-ups of one shard's dispatcher and timer loop.
#[derive(Default)]
pub struct Wakeups {
    pub outbox: QueueWake,
    pub timers: QueueWake,
    /// Provider sends this node's dispatcher of the shard has in flight. A leadership hand-off
    /// waits for none (for a while), so their results commit here instead of the next leader
    /// sending them again.
    pub sending: std::sync::atomic::AtomicUsize,
}

/// Every local shard's wake-ups, shared by its state machine (which reports added rows) and the
/// leader loops started for it.
#[derive(Default)]
pub struct WakeupsByShard(Mutex<HashMap<ShardId, Arc<Wakeups>>>);

impl WakeupsByShard {
    pub fn get(&self, shard: ShardId) -> Arc<Wakeups> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(shard).or_default().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_follows_found_rows_and_drops_for_added_ones() {
        let wake = QueueWake::default();
        let mut floor = QueueFloor::default();
        assert_eq!(floor.begin(&wake), 0, "a new loop reads the whole table");
        floor.found(Some(500));
        assert_eq!(floor.begin(&wake), 500);
        wake.added(300);
        wake.added(400);
        assert_eq!(
            floor.begin(&wake),
            300,
            "a row added below the floor lowers it"
        );
        floor.found(None);
        assert_eq!(
            floor.begin(&wake),
            u64::MAX,
            "an empty table is not read again"
        );
        wake.added(700);
        assert_eq!(floor.begin(&wake), 700);
        assert_eq!(floor.begin(&wake), 700, "a taken low is not taken twice");
    }

    #[test]
    fn handed_messages_skip_the_scan_until_the_wake_is_full() {
        let wake = QueueWake::default();
        let ids = |n: usize| {
            (0..n)
                .map(|i| Sendable {
                    id: i.to_string(),
                    due_ms: 100,
                    attempts: 0,
                    channel_id: "c".into(),
                    channel_type: "http".into(),
                    recipient: herald_shard::RecipientRef::user("u"),
                    content: "{}".into(),
                    recipient_snapshot: "{}".into(),
                })
                .collect::<Vec<_>>()
        };
        wake.hand_over(100, ids(3));
        assert!(!wake.scan_pending(), "handed rows need no scan");
        assert_eq!(wake.take_handed(), ids(3));
        assert!(wake.take_handed().is_empty(), "taken once");
        assert!(!wake.is_full());
        wake.hand_over(100, ids(HANDOFF_CAP));
        assert!(
            wake.is_full(),
            "a full wake tells its state machine to stop copying"
        );
        wake.hand_over(200, ids(1));
        assert!(
            wake.scan_pending(),
            "beyond the cap, rows are left to a scan"
        );
        let mut floor = QueueFloor::default();
        floor.found(Some(500));
        assert_eq!(floor.begin(&wake), 200);
        assert_eq!(wake.take_handed().len(), HANDOFF_CAP);
        assert!(!wake.is_full());
    }

    #[test]
    fn a_pass_tells_how_long_until_its_first_row() {
        let pass = |first| QueuePass {
            now_ms: 100,
            first,
            due: Vec::new(),
        };
        assert_eq!(
            pass(Some(150)).first_due_in(),
            Some(Duration::from_millis(50))
        );
        assert_eq!(pass(Some(90)).first_due_in(), Some(Duration::ZERO));
        assert_eq!(pass(None).first_due_in(), None);
    }
}
