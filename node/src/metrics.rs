//! Metric names recorded by herald-node, and the Prometheus exporter it installs.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Counter: writes routed to a shard (any node, before forwarding).
pub const SHARD_WRITES: &str = "herald_shard_writes_total";
/// Counter: requests that found no leader before the routing deadline.
pub const ROUTE_FAILURES: &str = "herald_route_failures_total";
/// Histogram: commands per proposed shard entry (the group-commit factor), by `shard`.
pub const PROPOSAL_BATCH: &str = "herald_proposal_batch_commands";
/// Counter: HTTP responses, by `status`.
pub const HTTP_RESPONSES: &str = "herald_http_responses_total";

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Install the process-wide recorder once (several in-process nodes in tests share it) and return
/// the handle that renders `/metrics`.
pub fn prometheus() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| PrometheusBuilder::new().install_recorder().ok())
        .clone()
}
