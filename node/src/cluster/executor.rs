//! Group commit for one shard on its leader: many commands, one Raft entry.
//!
//! ```text
//!   write(cmd) ──► bounded queue ──► ShardExecutor task: on the first command, let the other
//!                                    ready tasks run (gather), take everything queued
//!                                    (≤ MAX_BATCH), propose ShardEntry{now_ms, cmds} (one entry,
//!                                    one fsync), wait for commit+apply, hand each caller its reply
//! ```
//!
//! One proposal is in flight at a time: whatever arrives meanwhile forms the next entry, so batches
//! grow with load (see DESIGN.md "Group commit, one entry in flight"). The leader stamps `now_ms`;
//! replicas never read their clock.
//!
//! **Gather.** When the CPU is saturated, requests that have arrived on their sockets wait in the
//! runtime's run queue, not yet in this queue: taking the batch at once would propose about one
//! command per entry, whatever the load, and pay every per-entry cost (log row, apply write,
//! openraft's task hops) per command. So before taking a batch the executor yields to the
//! runtime, and each yield lets the worker poll I/O and run the tasks that became ready. It yields
//! again while a round brought it more work (at most [`GATHER_ROUNDS`]): under light load the
//! first round brings nothing and costs a few microseconds.

use std::sync::Arc;

use herald_raft::{GroupReader, Payload, Raft};
use herald_shard::runs::{RunStatus, RunsCommand, RunsReply};
use herald_shard::{ShardCommand, ShardReply};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use super::state_machines::ShardStore;
use crate::codec;
use crate::meta::{ChannelCache, MetaView};
use crate::metrics as m;
use crate::workflows::{evaluate, evaluate_resume, EvalContext, ShardTrigger, WorkflowCache};

/// Most commands in one entry: bounds entry size and apply latency.
const MAX_BATCH: usize = 2048;
/// Queue depth before callers wait (backpressure).
const QUEUE: usize = 16 * 1024;
/// The most rounds the executor yields to the runtime before taking a batch (module docs). In
/// tokio a yielded task runs again once its worker has polled I/O or run its other ready tasks.
/// 16 is the one cap measured, on one node with 64 shards (`docs/benchmarks.md`, session 13).
const GATHER_ROUNDS: usize = 16;

/// What a shard's Raft log records: the leader's clock and a batch of commands.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardEntry {
    pub now_ms: u64,
    pub cmds: Vec<ShardCommand>,
}

/// Why a proposal did not produce a reply.
#[derive(Debug, Clone)]
pub enum ProposeError {
    NotLeader { leader: Option<u64> },
    Failed { retryable: bool, message: String },
}

/// What callers hand the executor: a command to propose as is, or a trigger to evaluate against
/// applied state first (the leader evaluates; the log records the effects).
#[allow(clippy::large_enum_variant)] // moved once into the executor's queue, like ShardCommand
#[derive(Debug)]
pub enum Work {
    Command(ShardCommand),
    Trigger(ShardTrigger),
    /// A paused run whose delay elapsed (by run id): evaluate its continuation.
    Resume(String),
}

type Waiter = oneshot::Sender<Result<ShardReply, ProposeError>>;
type Job = (Work, Waiter);

/// What trigger evaluation reads: the shard's applied state and the catalog.
#[derive(Clone)]
pub struct EvalDeps {
    pub reader: GroupReader,
    pub view: MetaView,
    /// The meta group: its applied index tells when the channel list may have changed.
    pub meta: Raft,
    pub cache: Arc<WorkflowCache>,
}

#[derive(Clone)]
pub struct ShardExecutorHandle {
    tx: mpsc::Sender<Job>,
    holds: mpsc::Sender<Hold>,
}

/// A request to stop proposing: answered on `paused` once nothing is in flight, then no entry is
/// proposed until `release` resolves or is dropped (at most [`MAX_PAUSE`]).
struct Hold {
    paused: oneshot::Sender<()>,
    release: oneshot::Receiver<()>,
}

/// The longest an executor stays paused, even if its holder never lets go.
const MAX_PAUSE: std::time::Duration = std::time::Duration::from_secs(5);

/// While this lives, the executor proposes nothing; dropping it resumes proposing.
pub struct Paused {
    _release: oneshot::Sender<()>,
}

impl ShardExecutorHandle {
    pub fn spawn(shard: u32, raft: Raft, deps: EvalDeps) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let (holds, holds_rx) = mpsc::channel(1);
        tokio::spawn(run(shard, raft, deps, rx, holds_rx));
        ShardExecutorHandle { tx, holds }
    }

    /// Stop proposing once the entry in flight (if any) is done: the log stops growing, so a
    /// follower can catch up with all of it (leadership hand-off). `None` if the executor stopped.
    pub async fn pause(&self) -> Option<Paused> {
        let (paused, paused_rx) = oneshot::channel();
        let (release_tx, release) = oneshot::channel();
        self.holds.send(Hold { paused, release }).await.ok()?;
        paused_rx.await.ok()?;
        Some(Paused {
            _release: release_tx,
        })
    }

    pub async fn submit(&self, cmd: Work) -> Result<ShardReply, ProposeError> {
        let (reply_tx, reply_rx) = oneshot::channel();
        let stopped = || ProposeError::Failed {
            retryable: true,
            message: "executor stopped".into(),
        };
        self.tx.send((cmd, reply_tx)).await.map_err(|_| stopped())?;
        reply_rx.await.map_err(|_| stopped())?
    }

    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Turn queued work into commands: triggers are evaluated here, against applied state (nothing of
/// this batch is applied yet, and the previous entry is). A trigger that cannot be evaluated is
/// answered at once and left out of the entry.
fn prepare(
    deps: &EvalDeps,
    channel_cache: &mut ChannelCache,
    now_ms: u64,
    jobs: Vec<Job>,
) -> Vec<(ShardCommand, Waiter)> {
    // Only batches that evaluate need the channels (a batch of identifies does not).
    let evaluates = jobs.iter().any(|(w, _)| !matches!(w, Work::Command(_)));
    let channels = if evaluates {
        channel_cache.get(&deps.meta, &deps.view)
    } else {
        Arc::default()
    };
    let store = ShardStore(&deps.reader);
    // Evaluate with `version` of `workflow`, compiled (cached), over applied state.
    let with_workflow =
        |workflow: &str,
         version: u64,
         f: &dyn Fn(&EvalContext<'_>) -> Result<ShardCommand, String>| {
            let workflow = compiled(deps, workflow, version)?;
            f(&EvalContext {
                store: &store,
                workflow: &workflow,
                channels: &channels,
                now_ms,
            })
            .map(Some)
        };
    let mut out = Vec::with_capacity(jobs.len());
    for (work, waiter) in jobs {
        let evaluated = match work {
            Work::Command(c) => Ok(Some(c)),
            Work::Trigger(t) => with_workflow(&t.workflow, t.version, &|ctx| {
                Ok(ShardCommand::Runs(RunsCommand::Record(evaluate(ctx, &t)?)))
            }),
            Work::Resume(run_id) => match herald_shard::runs::load_run(&store, &run_id) {
                Err(e) => Err(e.to_string()),
                // Cancelled or already resumed: nothing to do.
                Ok(run) => match run.filter(|r| r.status == RunStatus::Paused.as_str()) {
                    None => Ok(None),
                    Some(run) => with_workflow(&run.workflow, run.workflow_version, &|ctx| {
                        let run = evaluate_resume(ctx, &run)?;
                        Ok(ShardCommand::Runs(RunsCommand::Resume { run }))
                    }),
                },
            },
        };
        match evaluated {
            Ok(Some(cmd)) => out.push((cmd, waiter)),
            Ok(None) => {
                let _ = waiter.send(Ok(ShardReply::Runs(RunsReply::Recorded(vec![false]))));
            }
            Err(message) => {
                let _ = waiter.send(Err(ProposeError::Failed {
                    retryable: true,
                    message,
                }));
            }
        }
    }
    out
}

fn compiled(
    deps: &EvalDeps,
    workflow: &str,
    version: u64,
) -> Result<Arc<herald_shard::engine::CompiledWorkflow>, String> {
    deps.cache
        .get(&deps.view, workflow, version)
        .ok_or_else(|| {
            format!("workflow {workflow} version {version} is not applied on this node yet")
        })
}

async fn run(
    shard: u32,
    raft: Raft,
    deps: EvalDeps,
    mut rx: mpsc::Receiver<Job>,
    mut holds: mpsc::Receiver<Hold>,
) {
    let mut channel_cache = ChannelCache::default();
    let shard_label = shard.to_string();
    // Registered once: a labelled lookup per entry shows up on the hot path.
    let queue_depth = metrics::gauge!(m::EXECUTOR_QUEUE, "shard" => shard_label.clone());
    let batch_size = metrics::histogram!(m::PROPOSAL_BATCH, "shard" => shard_label);
    loop {
        // Here nothing is in flight: the one place a hold can take effect.
        let first = tokio::select! {
            biased;
            Some(hold) = holds.recv() => {
                if hold.paused.send(()).is_ok() {
                    let _ = tokio::time::timeout(MAX_PAUSE, hold.release).await;
                }
                continue;
            }
            job = rx.recv() => match job {
                Some(job) => job,
                None => break,
            },
        };
        gather(&rx).await;
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        queue_depth.set(rx.len() as f64);
        let now = now_ms();
        let jobs = prepare(&deps, &mut channel_cache, now, jobs);
        if jobs.is_empty() {
            continue;
        }
        batch_size.record(jobs.len() as f64);
        let (cmds, waiters): (Vec<_>, Vec<_>) = jobs.into_iter().unzip();
        let entry = ShardEntry { now_ms: now, cmds };
        match propose(&raft, &entry).await {
            Ok(replies) if replies.len() == waiters.len() => {
                count_recorded(&entry.cmds, &replies);
                for (w, r) in waiters.into_iter().zip(replies) {
                    let _ = w.send(Ok(r));
                }
            }
            Ok(replies) => {
                let err = ProposeError::Failed {
                    retryable: false,
                    message: format!(
                        "apply returned {} replies for {} commands",
                        replies.len(),
                        waiters.len()
                    ),
                };
                for w in waiters {
                    let _ = w.send(Err(err.clone()));
                }
            }
            Err(err) => {
                for w in waiters {
                    let _ = w.send(Err(err.clone()));
                }
            }
        }
    }
}

/// Let the runtime run the tasks that are ready, round after round while a round brings more
/// work into `rx` (at most [`GATHER_ROUNDS`]), so that what they submit joins the next entry.
/// Returns the rounds it yielded.
async fn gather<T>(rx: &mpsc::Receiver<T>) -> usize {
    let mut queued = rx.len();
    for round in 1..=GATHER_ROUNDS {
        tokio::task::yield_now().await;
        let now = rx.len();
        if now == queued {
            return round;
        }
        queued = now;
    }
    GATHER_ROUNDS
}

/// Runs and messages that an applied entry created (a run recorded twice counts once).
fn count_recorded(cmds: &[ShardCommand], replies: &[ShardReply]) {
    for (cmd, reply) in cmds.iter().zip(replies) {
        let (
            ShardCommand::Runs(RunsCommand::Record(runs)),
            ShardReply::Runs(RunsReply::Recorded(created)),
        ) = (cmd, reply)
        else {
            continue;
        };
        for (run, _) in runs.iter().zip(created).filter(|(_, new)| **new) {
            metrics::counter!(m::RUNS).increment(1);
            for msg in &run.messages {
                metrics::counter!(m::MESSAGES, "channel_type" => msg.channel_type.clone(),
                    "status" => msg.status.clone())
                .increment(1);
            }
        }
    }
}

async fn propose(raft: &Raft, entry: &ShardEntry) -> Result<Vec<ShardReply>, ProposeError> {
    let bytes = codec::encode(entry).map_err(|e| ProposeError::Failed {
        retryable: false,
        message: e.to_string(),
    })?;
    match raft.client_write(Payload(bytes)).await {
        Ok(resp) => {
            codec::decode::<Vec<ShardReply>>(&resp.data.0).map_err(|e| ProposeError::Failed {
                retryable: false,
                message: e.to_string(),
            })
        }
        Err(e) => Err(classify_write_error(e)),
    }
}

pub fn classify_write_error(
    e: openraft::error::RaftError<u64, openraft::error::ClientWriteError<u64, openraft::BasicNode>>,
) -> ProposeError {
    use openraft::error::{ClientWriteError, RaftError};
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => ProposeError::NotLeader {
            leader: f.leader_id,
        },
        RaftError::APIError(ClientWriteError::ChangeMembershipError(c)) => ProposeError::Failed {
            retryable: true,
            message: c.to_string(),
        },
        RaftError::Fatal(f) => ProposeError::Failed {
            retryable: true,
            message: f.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tasks that are ready when the executor takes its first command get to submit theirs before
    /// the batch is taken; without the gather the queue would hold none of them yet.
    #[tokio::test(flavor = "current_thread")]
    async fn gather_lets_ready_submitters_join_the_batch() {
        let (tx, rx) = mpsc::channel::<usize>(64);
        for i in 0..32 {
            let tx = tx.clone();
            tokio::spawn(async move { tx.send(i).await });
        }
        assert_eq!(rx.len(), 0, "spawned tasks have not run yet");
        assert_eq!(
            gather(&rx).await,
            2,
            "one round brought work, the next none"
        );
        assert_eq!(rx.len(), 32);
    }

    /// With nothing to submit, the gather stops after one round, even while other tasks keep
    /// the runtime busy.
    #[tokio::test(flavor = "current_thread")]
    async fn gather_stops_after_a_round_that_brings_nothing() {
        let (_tx, rx) = mpsc::channel::<usize>(64);
        assert_eq!(gather(&rx).await, 1);
        let busy = tokio::spawn(async {
            loop {
                tokio::task::yield_now().await;
            }
        });
        assert_eq!(gather(&rx).await, 1);
        busy.abort();
    }
}
