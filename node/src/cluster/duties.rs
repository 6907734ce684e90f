//! Leader duties: a shard's leader runs its dispatcher (provider sends from the outbox) and its
//! timer loop (paused runs to resume). This loop starts both when this node becomes a shard's
//! leader and stops them when it is not.
//!
//! A dispatcher also stops by itself at the first result it cannot commit (leadership lost); the
//! next pass restarts it if this node leads again. Work is never lost in between: the outbox is
//! replicated state, and the new leader's dispatcher scans it from the start.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use herald_raft::GroupId;
use herald_shard::ShardId;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::executor::{ProposeError, Work};
use super::Cluster;
use crate::delivery::dispatcher::{self, DispatchDeps, Submit};
use crate::workflows::timers::{self, Resume};

const PASS_INTERVAL: Duration = Duration::from_millis(200);

pub(super) fn spawn(cluster: Cluster) {
    let token = cluster.shutdown_token();
    tokio::spawn(async move {
        let mut running: HashMap<ShardId, Duties> = HashMap::new();
        loop {
            tokio::select! {
                _ = token.cancelled() => {
                    for d in running.values() {
                        d.stop.cancel();
                    }
                    return;
                }
                _ = tokio::time::sleep(PASS_INTERVAL) => {}
            }
            pass(&cluster, &mut running);
        }
    });
}

/// The tasks of one led shard.
struct Duties {
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

fn pass(cluster: &Cluster, running: &mut HashMap<ShardId, Duties>) {
    let me = cluster.node_id();
    for shard in 0..cluster.shard_count() {
        let group = cluster.local_group(GroupId::shard(shard));
        let leads = group
            .as_ref()
            .is_some_and(|g| g.raft.metrics().borrow().current_leader == Some(me));
        let alive = running
            .get(&shard)
            .is_some_and(|d| d.tasks.iter().all(|t| !t.is_finished()));
        match (leads, alive, group) {
            (true, false, Some(g)) => {
                if let Some(old) = running.remove(&shard) {
                    old.stop.cancel();
                }
                let executor = cluster.executor(shard, &g);
                let submit_to = move |work: Work| {
                    let executor = executor.clone();
                    async move {
                        executor.submit(work).await.map_err(|e| match e {
                            ProposeError::NotLeader { .. } => "not the leader".to_owned(),
                            ProposeError::Failed { message, .. } => message,
                        })
                    }
                };
                let to_executor = submit_to.clone();
                let submit: Submit = Arc::new(move |cmd| Box::pin(to_executor(Work::Command(cmd))));
                let resume: Resume = Arc::new(move |run_id| {
                    let fut = submit_to(Work::Resume(run_id));
                    Box::pin(async move { fut.await.map(|_| ()) })
                });
                let deps = DispatchDeps {
                    providers: cluster.inner.providers.clone(),
                    view: cluster.inner.view.clone(),
                    meta: cluster.inner.meta.raft.clone(),
                    retry_base: Duration::from_millis(cluster.inner.config.retry_base_ms),
                    concurrency: cluster.inner.config.delivery_concurrency,
                };
                let stop = CancellationToken::new();
                let wakeups = cluster.wakeups(shard);
                let dispatch = tokio::spawn(dispatcher::run(
                    shard,
                    g.reader.clone(),
                    submit,
                    wakeups.clone(),
                    deps,
                    stop.clone(),
                ));
                let timers = tokio::spawn(timers::run(
                    shard,
                    g.reader.clone(),
                    resume,
                    wakeups,
                    stop.clone(),
                ));
                running.insert(
                    shard,
                    Duties {
                        stop,
                        tasks: vec![dispatch, timers],
                    },
                );
            }
            (false, true, _) => {
                if let Some(d) = running.remove(&shard) {
                    d.stop.cancel();
                }
            }
            _ => {}
        }
    }
}
