//! Commit notices held back so the next append to the same follower carries them.
//!
//! openraft 0.9 replicates to each follower with one RPC in flight. When an entry commits, the
//! leader tells each follower with an AppendEntries that carries no entries, only a higher
//! `leader_commit`, and waits for its reply before it sends the next entry. Under load with about
//! one request per entry (many shards, each lightly loaded) that doubles the RPCs per entry and
//! puts a round trip in front of every next append.
//!
//! A follower learns the commit index from any later AppendEntries, and Raft's safety does not
//! depend on when it learns it (the leader answers clients from its own apply). So a commit-only
//! request is acknowledged on the spot and held: the next request to that follower goes out with
//! a `leader_commit` at least as high and replaces it, or the held one goes out after
//! [`CommitHold::hold_for`] if none comes. What may be held is narrow:
//! - no entries;
//! - the same vote and `prev_log_id` that the follower acknowledged on this client last, so the
//!   reply could only be the `Success` given;
//! - a `leader_commit` above what the follower acknowledged.
//!
//! Anything else goes on the wire:
//! - entries, and conflict probes;
//! - a plain heartbeat (nothing new to commit), so followers' election timers run and a higher
//!   vote is seen;
//! - every request on a fresh client: openraft's leadership checks (`ensure_linearizable`) use
//!   fresh clients, so they always reach the follower;
//! - every request after a held notice that went out got no `Success`, so a dead follower or a
//!   higher vote reaches openraft through its own request.
//!
//! In openraft 0.9.25 the leader uses a replication heartbeat's reply for the matching log id
//! (unchanged) and for `millis_since_quorum_ack` in its metrics only.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use openraft::raft::AppendEntriesRequest;

use crate::types::{LogId, TypeConfig, Vote};

type Request = AppendEntriesRequest<TypeConfig>;

/// What to do with one AppendEntries request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Acknowledge it with `Success` now; it is held for a later send.
    Held {
        /// No send is scheduled yet: the caller schedules one after `hold_for`.
        schedule: bool,
    },
    /// Send it now (it supersedes any held request).
    Send,
}

/// One client's (one follower, one group) held commit notice and what the follower acknowledged.
pub(crate) struct CommitHold {
    hold_for: Duration,
    /// The vote and the log id the follower matched in its last `Success` on this client.
    acked: Option<(Vote, Option<LogId>)>,
    shared: Arc<Mutex<Shared>>,
}

#[derive(Default)]
struct Shared {
    held: Option<Request>,
    scheduled: bool,
    /// The highest `leader_commit` the follower acknowledged (on this client or its flushes).
    acked_commit: Option<LogId>,
    /// A held notice that went out got no `Success` (unreachable, a higher vote): the client's
    /// next request goes on the wire, so the replication stream sees what happened.
    unanswered: bool,
}

/// The handle a scheduled send uses: takes the held request when its time comes.
#[derive(Clone)]
pub(crate) struct HeldSlot(Arc<Mutex<Shared>>);

impl CommitHold {
    /// `hold_for` zero turns holding off: every request is sent.
    pub(crate) fn new(hold_for: Duration) -> Self {
        CommitHold {
            hold_for,
            acked: None,
            shared: Arc::default(),
        }
    }

    pub(crate) fn hold_for(&self) -> Duration {
        self.hold_for
    }

    pub(crate) fn slot(&self) -> HeldSlot {
        HeldSlot(self.shared.clone())
    }

    /// Decides about `rpc` before it is sent. Held requests are kept (the newest wins).
    pub(crate) fn decide(&mut self, rpc: &Request) -> Decision {
        let mut shared = lock(&self.shared);
        if std::mem::take(&mut shared.unanswered) {
            self.acked = None;
        }
        let holdable = !self.hold_for.is_zero()
            && rpc.entries.is_empty()
            && self.acked.as_ref() == Some(&(rpc.vote, rpc.prev_log_id))
            && rpc.leader_commit > shared.acked_commit;
        if !holdable {
            // This request carries a `leader_commit` at least as high as any held one (a
            // replication stream's commit index only grows), so the held one is moot.
            shared.held = None;
            return Decision::Send;
        }
        shared.held = Some(rpc.clone());
        let schedule = !shared.scheduled;
        shared.scheduled = true;
        Decision::Held { schedule }
    }

    /// Whether `rpc` (to be sent) tells the follower nothing it has not acknowledged on this
    /// client: no entries, the same vote and log position, no higher commit index. Such a request
    /// only keeps the follower's election timer from expiring (a heartbeat).
    pub(crate) fn is_heartbeat(&self, rpc: &Request) -> bool {
        rpc.entries.is_empty()
            && self.acked.as_ref() == Some(&(rpc.vote, rpc.prev_log_id))
            && rpc.leader_commit <= lock(&self.shared).acked_commit
    }

    /// Records the outcome of a request this client sent: `matched` is the log id the follower
    /// now matches if it answered `Success`, `None` for anything else.
    pub(crate) fn sent(
        &mut self,
        vote: Vote,
        commit: Option<LogId>,
        matched: Option<Option<LogId>>,
    ) {
        match matched {
            Some(m) => {
                self.acked = Some((vote, m));
                let mut shared = lock(&self.shared);
                shared.acked_commit = shared.acked_commit.max(commit);
            }
            None => self.acked = None,
        }
    }
}

impl HeldSlot {
    /// The held request, if one is still waiting; the schedule is cleared either way.
    pub(crate) fn take(&self) -> Option<Request> {
        let mut shared = lock(&self.0);
        shared.scheduled = false;
        shared.held.take()
    }

    /// What the follower answered to a held request that went out with this `leader_commit`:
    /// `true` for `Success`.
    pub(crate) fn answered(&self, commit: Option<LogId>, success: bool) {
        let mut shared = lock(&self.0);
        if success {
            shared.acked_commit = shared.acked_commit.max(commit);
        } else {
            shared.unanswered = true;
        }
    }
}

fn lock(m: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;
    use crate::types::Entry;

    const HOLD: Duration = Duration::from_millis(20);

    fn log_id(index: u64) -> Option<LogId> {
        Some(LogId::new(CommittedLeaderId::new(2, 1), index))
    }

    fn vote() -> Vote {
        Vote::new_committed(2, 1)
    }

    fn append(prev: u64, entries: u64, commit: u64) -> Request {
        Request {
            vote: vote(),
            prev_log_id: log_id(prev),
            leader_commit: log_id(commit),
            entries: (1..=entries)
                .map(|i| Entry {
                    log_id: log_id(prev + i).unwrap(),
                    payload: EntryPayload::Blank,
                })
                .collect(),
        }
    }

    /// A client whose follower acknowledged entries up to 5 with commit 3.
    fn acked_client() -> CommitHold {
        let mut hold = CommitHold::new(HOLD);
        assert_eq!(hold.decide(&append(4, 1, 3)), Decision::Send);
        hold.sent(vote(), log_id(3), Some(log_id(5)));
        hold
    }

    #[test]
    fn a_commit_notice_after_an_acknowledged_append_is_held_and_the_newest_kept() {
        let mut hold = acked_client();
        let slot = hold.slot();
        assert_eq!(
            hold.decide(&append(5, 0, 4)),
            Decision::Held { schedule: true }
        );
        assert_eq!(
            hold.decide(&append(5, 0, 5)),
            Decision::Held { schedule: false }
        );
        assert_eq!(slot.take().unwrap().leader_commit, log_id(5));
        assert!(slot.take().is_none(), "taken once");
        // Taking cleared the schedule: the next hold schedules a send again.
        assert_eq!(
            hold.decide(&append(5, 0, 5)),
            Decision::Held { schedule: true }
        );
    }

    #[test]
    fn the_next_request_with_entries_is_sent_and_replaces_the_held_notice() {
        let mut hold = acked_client();
        let slot = hold.slot();
        assert!(matches!(
            hold.decide(&append(5, 0, 5)),
            Decision::Held { .. }
        ));
        assert_eq!(hold.decide(&append(5, 2, 5)), Decision::Send);
        assert!(slot.take().is_none());
    }

    #[test]
    fn what_the_follower_has_not_acknowledged_goes_on_the_wire() {
        // A fresh client (openraft's leadership checks) knows nothing.
        let mut fresh = CommitHold::new(HOLD);
        assert_eq!(fresh.decide(&append(5, 0, 5)), Decision::Send);

        let mut hold = acked_client();
        // A heartbeat with nothing new to commit.
        assert_eq!(hold.decide(&append(5, 0, 3)), Decision::Send);
        // Another prev_log_id (a conflict probe) or another vote.
        assert_eq!(hold.decide(&append(4, 0, 5)), Decision::Send);
        let mut other_vote = append(5, 0, 5);
        other_vote.vote = Vote::new_committed(3, 2);
        assert_eq!(hold.decide(&other_vote), Decision::Send);
    }

    #[test]
    fn after_a_failed_request_nothing_is_held() {
        let mut hold = acked_client();
        assert_eq!(hold.decide(&append(5, 1, 5)), Decision::Send);
        hold.sent(vote(), log_id(5), None);
        assert_eq!(hold.decide(&append(6, 0, 6)), Decision::Send);
    }

    /// An acked client whose notice of commit 5 was held, then sent by its slot and answered.
    fn held_notice_answered(success: bool) -> CommitHold {
        let mut hold = acked_client();
        let slot = hold.slot();
        assert!(matches!(
            hold.decide(&append(5, 0, 5)),
            Decision::Held { .. }
        ));
        let held = slot.take().unwrap();
        slot.answered(held.leader_commit, success);
        hold
    }

    #[test]
    fn a_commit_acknowledged_by_a_held_send_is_not_held_again() {
        let mut hold = held_notice_answered(true);
        // The periodic heartbeat that follows carries commit 5, which the follower has.
        assert_eq!(hold.decide(&append(5, 0, 5)), Decision::Send);
    }

    #[test]
    fn after_a_held_notice_went_unanswered_the_next_request_goes_on_the_wire() {
        let mut hold = held_notice_answered(false);
        // Same commit, same prev: held before, now sent so openraft sees the failure itself.
        assert_eq!(hold.decide(&append(5, 0, 5)), Decision::Send);
        // ...and until a send succeeds again, nothing is held.
        assert_eq!(hold.decide(&append(5, 0, 5)), Decision::Send);
        hold.sent(vote(), log_id(4), Some(log_id(5)));
        assert!(matches!(
            hold.decide(&append(5, 0, 5)),
            Decision::Held { .. }
        ));
    }

    #[test]
    fn a_zero_hold_sends_everything() {
        let mut hold = CommitHold::new(Duration::ZERO);
        hold.sent(vote(), log_id(3), Some(log_id(5)));
        assert_eq!(hold.decide(&append(5, 0, 5)), Decision::Send);
    }
}
