//! The timer loop of a shard leader: paused runs (delay steps) whose time has come are resumed.
//!
//! Timer rows `(due_ms, run_id)` are replicated shard state, written with the paused run and
//! removed by the resume or cancel that ends the pause, so a new leader resumes exactly what is
//! still due. The loop sleeps until the earliest row is due (the first row of the time-ordered
//! table at or above its floor, see `cluster::wakeups`), and the state machine wakes it when an
//! applied entry adds timers, so a timer fires within milliseconds of its due time without polling. Resuming twice is harmless: a run no longer
//! paused is left alone by apply.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use herald_raft::GroupReader;
use tokio_util::sync::CancellationToken;

use herald_shard::runs::Queue;

use crate::cluster::{QueueFloor, Wakeups};

/// Longest sleep without a wake-up (a safety net).
const IDLE: Duration = Duration::from_secs(1);
/// Timers resumed per pass at most (the rest in the next pass, at once).
const PER_TICK: usize = 1024;

/// Resume one paused run on the shard (through its executor). `Err` = this node no longer leads.
pub type Resume =
    std::sync::Arc<dyn Fn(String) -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

pub async fn run(
    shard: u32,
    reader: GroupReader,
    resume: Resume,
    wake: Arc<Wakeups>,
    stop: CancellationToken,
) {
    let mut floor = QueueFloor::default();
    let mut pause = Duration::ZERO;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = wake.timers.notified() => {}
            _ = tokio::time::sleep(pause) => {}
        }
        let due = match floor.read(&wake.timers, &reader, Queue::Timers, PER_TICK) {
            Ok(pass) => {
                // Rows left due (more than one pass's worth) are read again at once.
                pause = pass.first_due_in().map_or(IDLE, |wait| wait.min(IDLE));
                pass.due
            }
            Err(e) => {
                tracing::warn!(shard, error = %e, "timer scan failed");
                pause = IDLE;
                continue;
            }
        };
        let resumes = due.into_iter().map(|t| resume(t.id));
        for result in futures::future::join_all(resumes).await {
            if let Err(e) = result {
                tracing::debug!(shard, error = %e, "timer loop stops");
                return;
            }
        }
    }
}
