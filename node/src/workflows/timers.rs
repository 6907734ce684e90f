//! The timer loop of a shard leader: paused runs (delay steps) whose time has come are resumed.
//!
//! Timer rows `(due_ms, run_id)` are replicated shard state, written with the paused run and
//! removed by the resume or cancel that ends the pause, so a new leader resumes exactly what is
//! still due. The loop ticks every [`TICK`]; a timer fires within about a tick of its due time.
//! Resuming twice is harmless: a run no longer paused is left alone by apply.

use std::time::Duration;

use futures::future::BoxFuture;
use herald_raft::GroupReader;
use tokio_util::sync::CancellationToken;

use crate::cluster::{now_ms, ShardStore};

pub const TICK: Duration = Duration::from_millis(20);
/// Timers resumed per tick at most (the rest wait for the next tick).
const PER_TICK: usize = 1024;

/// Resume one paused run on the shard (through its executor). `Err` = this node no longer leads.
pub type Resume =
    std::sync::Arc<dyn Fn(String) -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

pub async fn run(shard: u32, reader: GroupReader, resume: Resume, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(TICK) => {}
        }
        let due = match herald_shard::runs::due_timers(&ShardStore(&reader), now_ms(), PER_TICK) {
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
