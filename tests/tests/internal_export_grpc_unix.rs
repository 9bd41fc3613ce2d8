//! The internal pipeline over OTLP/gRPC on a Unix socket (`unix:///path`), the receiver
//! started only after the first spans are queued: the exporter waits for it, nothing lost.

use foundations::telemetry;
use foundations::telemetry::settings::TelemetrySettings;
use foundations::telemetry::tracing::{self, StartTraceOptions};
use foundations_tests::{GrpcReply, GrpcSink};
use std::time::Duration;

#[test]
fn internal_spans_reach_a_unix_socket_grpc_receiver_that_starts_late() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("otlp-grpc.sock");
    let yaml = format!(
        "tracing:\n  flush_interval_ms: 20\n  retry:\n    initial_backoff_ms: 20\n    \
         max_backoff_ms: 50\n  output:\n    otlp_grpc:\n      endpoint: unix://{}\n",
        path.display()
    );
    let driver = telemetry::init(&TelemetrySettings::from_yaml(&yaml).unwrap()).unwrap();
    {
        let _root = tracing::start_trace("before_receiver", StartTraceOptions::default());
        let _child = tracing::span("child");
    }
    std::thread::sleep(Duration::from_millis(300));
    let sink = GrpcSink::start_unix_at(&path, |_| GrpcReply::Ok);
    {
        let _root = tracing::start_trace("after_receiver", StartTraceOptions::default());
    }
    sink.wait_until(Duration::from_secs(10), |r| {
        r.iter().map(|r| r.spans().len()).sum::<usize>() >= 3
    });
    let report = driver.shutdown(Duration::from_secs(10));
    let stats = report.internal.unwrap();
    assert_eq!(stats.spans_exported, 3, "{stats:?}");
    assert_eq!(stats.dropped(), 0, "{stats:?}");
    assert!(
        stats.requests >= 2,
        "connection failures were retried: {stats:?}"
    );
}
