//! Leader duties: a shard's leader runs its dispatcher (provider sends from the outbox). This loop
//! starts a dispatcher when this node becomes a shard's leader and stops it when it is not.
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

const PASS_INTERVAL: Duration = Duration::from_millis(200);

pub(super) fn spawn(cluster: Cluster) {
    let token = cluster.shutdown_token();
    tokio::spawn(async move {
        let mut running: HashMap<ShardId, (CancellationToken, JoinHandle<()>)> = HashMap::new();
        loop {
            tokio::select! {
                _ = token.cancelled() => {
                    for (stop, _) in running.values() {
                        stop.cancel();
                    }
                    return;
                }
                _ = tokio::time::sleep(PASS_INTERVAL) => {}
            }
            pass(&cluster, &mut running);
        }
    });
}

fn pass(cluster: &Cluster, running: &mut HashMap<ShardId, (CancellationToken, JoinHandle<()>)>) {
    let me = cluster.node_id();
    for shard in 0..cluster.shard_count() {
        let group = cluster.local_group(GroupId::shard(shard));
        let leads = group
            .as_ref()
            .is_some_and(|g| g.raft.metrics().borrow().current_leader == Some(me));
        let alive = running
            .get(&shard)
            .is_some_and(|(_, handle)| !handle.is_finished());
        match (leads, alive, group) {
            (true, false, Some(g)) => {
                let executor = cluster.executor(shard, &g);
                let submit: Submit = Arc::new(move |cmd| {
                    let executor = executor.clone();
                    Box::pin(async move {
                        executor
                            .submit(Work::Command(cmd))
                            .await
                            .map_err(|e| match e {
                                ProposeError::NotLeader { .. } => "not the leader".to_owned(),
                                ProposeError::Failed { message, .. } => message,
                            })
                    })
                });
                let deps = DispatchDeps {
                    providers: cluster.inner.providers.clone(),
                    view: cluster.inner.view.clone(),
                    retry_base: Duration::from_millis(cluster.inner.config.retry_base_ms),
                    concurrency: cluster.inner.config.delivery_concurrency,
                };
                let stop = CancellationToken::new();
                let handle = tokio::spawn(dispatcher::run(
                    shard,
                    g.reader.clone(),
                    submit,
                    cluster.outbox_wake(shard),
                    deps,
                    stop.clone(),
                ));
                running.insert(shard, (stop, handle));
            }
            (false, true, _) => {
                if let Some((stop, _)) = running.remove(&shard) {
                    stop.cancel();
                }
            }
            _ => {}
        }
    }
}
