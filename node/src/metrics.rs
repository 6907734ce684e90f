//! Metric names recorded by herald-node, and the Prometheus exporter it installs.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Counter: writes routed to a shard (any node, before forwarding).
pub const SHARD_WRITES: &str = "herald_shard_writes_total";
/// Counter: requests that found no leader before the routing deadline.
pub const ROUTE_FAILURES: &str = "herald_route_failures_total";
/// Histogram: commands per proposed shard entry (the group-commit factor), by `shard`.
pub const PROPOSAL_BATCH: &str = "herald_proposal_batch_commands";
/// Counter: per-shard trigger parts routed (any node, before forwarding).
pub const SHARD_TRIGGERS: &str = "herald_shard_triggers_total";
/// Counter: accepted trigger requests, by `workflow`.
pub const TRIGGERS: &str = "herald_triggers_total";
/// Counter: recipient runs recorded by shard leaders.
pub const RUNS: &str = "herald_runs_total";
/// Counter: messages created, by `channel_type` and initial `status`.
pub const MESSAGES: &str = "herald_messages_total";
/// Counter: delivery attempts, by `provider` and `outcome` (sent, delivered, retry, undelivered).
pub const DELIVERIES: &str = "herald_delivery_attempts_total";
/// Histogram: provider call latency in seconds, by `provider`.
pub const PROVIDER_LATENCY: &str = "herald_provider_latency_seconds";
/// Gauge: jobs queued in a shard executor, by `shard`.
pub const EXECUTOR_QUEUE: &str = "herald_executor_queue_depth";
/// Gauge: messages due or in flight in a shard leader's dispatcher, by `shard`.
pub const OUTBOX_DUE: &str = "herald_outbox_due";
/// Counter: times RocksDB stopped every write until a flush or compaction caught up, by `cf`.
pub const ROCKSDB_WRITE_STOPS: &str = "herald_rocksdb_write_stops_total";
/// Counter: times RocksDB slowed writes down to its delayed write rate, by `cf`.
pub const ROCKSDB_WRITE_DELAYS: &str = "herald_rocksdb_write_delays_total";
/// Counter: shard leadership hand-offs this node started as leader, by `result` (moved, failed).
pub const LEADER_HANDOFFS: &str = "herald_leader_handoffs_total";

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// How often recorded histogram samples are folded into their summaries. Without it they pile up
/// in memory until the next scrape, without bound on a node nobody scrapes.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Install the process-wide recorder once (several in-process nodes in tests share it), start its
/// upkeep thread, and return the handle that renders `/metrics`.
pub fn prometheus() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new().install_recorder().ok()?;
            let upkeep = handle.clone();
            // A plain thread: the recorder may be installed before the async runtime exists.
            std::thread::Builder::new()
                .name("herald-metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(UPKEEP_EVERY);
                    upkeep.run_upkeep();
                })
                .ok()?;
            Some(handle)
        })
        .clone()
}
