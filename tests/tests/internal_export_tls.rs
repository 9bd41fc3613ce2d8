//! The internal pipeline exported over TLS (`https://`), verifying the collector with a CA
//! bundle file. (`internal_export_tls_untrusted.rs`: a collector outside the bundle gets nothing.)

use foundations::telemetry;
use foundations::telemetry::settings::TelemetrySettings;
use foundations::telemetry::tracing::{self, StartTraceOptions};
use foundations_tests::OtlpSink;
use std::time::Duration;

#[test]
fn internal_spans_reach_an_https_collector_verified_by_a_ca_bundle() {
    let (sink, cert_pem) = OtlpSink::start_tls();
    let dir = tempfile::tempdir().unwrap();
    let ca_bundle = dir.path().join("ca.pem");
    std::fs::write(&ca_bundle, cert_pem).unwrap();
    let yaml = format!(
        "tracing:\n  flush_interval_ms: 20\n  output:\n    otlp_http:\n      endpoint: \
         https://localhost:{}\n      ca_bundle: {}\n",
        sink.addr().unwrap().port(),
        ca_bundle.display()
    );
    let driver = telemetry::init(&TelemetrySettings::from_yaml(&yaml).unwrap()).unwrap();
    for _ in 0..5 {
        let _root = tracing::start_trace("over_tls", StartTraceOptions::default());
        let _child = tracing::span("child");
    }
    let report = driver.shutdown(Duration::from_secs(10));
    let stats = report.internal.unwrap();
    assert_eq!(stats.spans_exported, 10, "{stats:?}");
    let received: usize = sink.received().iter().map(|r| r.spans().len()).sum();
    assert_eq!(received, 10);
    assert!(sink.received().iter().all(|r| r.path == "/v1/traces"));
}
