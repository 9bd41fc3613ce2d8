//! The internal pipeline over OTLP/gRPC with TLS (`https://`, rustls), trusting the
//! receiver's self-signed certificate through `ca_bundle`.

use foundations::telemetry;
use foundations::telemetry::settings::TelemetrySettings;
use foundations::telemetry::tracing::{self, StartTraceOptions};
use foundations_tests::{GrpcReply, GrpcSink};
use std::time::Duration;

#[test]
fn internal_spans_reach_a_tls_grpc_receiver() {
    let (sink, pem) = GrpcSink::start_tls(|_| GrpcReply::Ok);
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, pem).unwrap();
    let yaml = format!(
        "tracing:\n  flush_interval_ms: 20\n  output:\n    otlp_grpc:\n      endpoint: {}\n      \
         ca_bundle: {}\n",
        sink.endpoint(),
        ca.display()
    );
    let driver = telemetry::init(&TelemetrySettings::from_yaml(&yaml).unwrap()).unwrap();
    {
        let _root = tracing::start_trace("over_tls", StartTraceOptions::default());
        let _child = tracing::span("child");
    }
    sink.wait_until(Duration::from_secs(10), |r| !r.is_empty());
    let report = driver.shutdown(Duration::from_secs(10));
    let stats = report.internal.unwrap();
    assert_eq!(stats.spans_exported, 2, "{stats:?}");
    assert_eq!(stats.dropped(), 0);
    let names: Vec<_> = sink.received()[0]
        .spans()
        .iter()
        .map(|s| s.name.clone())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}
