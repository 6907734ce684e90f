//! Metric names of the transport, all in one place. The node installs the exporter; this crate only
//! talks to the `metrics` facade.

use metrics::{describe_counter, describe_histogram, Unit};

/// Outgoing calls started (counter).
pub const CALLS_TOTAL: &str = "herald_transport_calls_total";
/// Outgoing calls that failed, labelled `error` with [`Error::code`](super::Error::code) (counter).
pub const CALL_FAILURES_TOTAL: &str = "herald_transport_call_failures_total";
/// Wall time of outgoing calls, successful or not, in seconds (histogram).
pub const CALL_DURATION_SECONDS: &str = "herald_transport_call_duration_seconds";
/// Outgoing connections established (counter).
pub const DIALS_TOTAL: &str = "herald_transport_dials_total";
/// Incoming connections that completed the mutual-TLS handshake (counter).
pub const INBOUND_CONNECTIONS_TOTAL: &str = "herald_transport_inbound_connections_total";
/// Incoming connections refused during the handshake, e.g. no or foreign certificate (counter).
pub const INBOUND_REJECTED_TOTAL: &str = "herald_transport_inbound_rejected_total";
/// Incoming requests handed to the [`RpcHandler`](super::RpcHandler) (counter).
pub const REQUESTS_SERVED_TOTAL: &str = "herald_transport_requests_served_total";
/// Incoming streams dropped because of a malformed or oversized frame (counter).
pub const BAD_FRAMES_TOTAL: &str = "herald_transport_bad_frames_total";

/// Registers descriptions for every metric above. Optional; the node calls it once at start-up.
pub fn describe() {
    describe_counter!(CALLS_TOTAL, Unit::Count, "Outgoing transport calls started");
    describe_counter!(
        CALL_FAILURES_TOTAL,
        Unit::Count,
        "Outgoing transport calls that failed, by error code"
    );
    describe_histogram!(
        CALL_DURATION_SECONDS,
        Unit::Seconds,
        "Latency of outgoing transport calls"
    );
    describe_counter!(
        DIALS_TOTAL,
        Unit::Count,
        "Outgoing QUIC connections established"
    );
    describe_counter!(
        INBOUND_CONNECTIONS_TOTAL,
        Unit::Count,
        "Incoming QUIC connections that passed mutual TLS"
    );
    describe_counter!(
        INBOUND_REJECTED_TOTAL,
        Unit::Count,
        "Incoming QUIC connections refused during the handshake"
    );
    describe_counter!(
        REQUESTS_SERVED_TOTAL,
        Unit::Count,
        "Incoming requests passed to the RPC handler"
    );
    describe_counter!(
        BAD_FRAMES_TOTAL,
        Unit::Count,
        "Incoming streams dropped for a malformed or oversized frame"
    );
}
