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

use crate::cluster::{now_ms, QueueFloor, ShardStore, Wakeups};

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
        let from = floor.begin(&wake.timers);
        let now = now_ms();
        let first = match herald_shard::runs::first_timer_due(&ShardStore(&reader), from) {
            Ok(first) => first,
            Err(e) => {
                tracing::warn!(shard, error = %e, "timer scan failed");
                pause = IDLE;
                continue;
            }
        };
        floor.found(first);
        pause = match first {
            Some(due) if due > now => Duration::from_millis(due - now).min(IDLE),
            Some(_) => Duration::ZERO,
            None => IDLE,
        };
        let due = match herald_shard::runs::due_timers(&ShardStore(&reader), from, now, PER_TICK) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(shard, error = %e, "timer scan failed");
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
