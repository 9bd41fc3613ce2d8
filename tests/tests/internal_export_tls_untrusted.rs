//! A collector whose certificate is not in the CA bundle never receives a span: the TLS
//! handshake fails, the exporter keeps retrying, and at the shutdown deadline the spans are
//! counted as dropped rather than lost silently.

use foundations::telemetry;
use foundations::telemetry::settings::TelemetrySettings;
use foundations::telemetry::tracing::{self, StartTraceOptions};
use foundations_tests::OtlpSink;
use std::time::Duration;

#[test]
fn an_untrusted_collector_gets_nothing_and_the_loss_is_counted() {
    let (sink, _its_cert) = OtlpSink::start_tls();
    // A bundle holding some other certificate.
    let (_other, other_cert) = OtlpSink::start_tls();
    let dir = tempfile::tempdir().unwrap();
    let ca_bundle = dir.path().join("ca.pem");
    std::fs::write(&ca_bundle, other_cert).unwrap();
    let yaml = format!(
        "tracing:\n  flush_interval_ms: 20\n  retry:\n    initial_backoff_ms: 20\n    \
         max_backoff_ms: 100\n  output:\n    otlp_http:\n      endpoint: https://localhost:{}\n      \
         ca_bundle: {}\n",
        sink.addr().unwrap().port(),
        ca_bundle.display()
    );
    let driver = telemetry::init(&TelemetrySettings::from_yaml(&yaml).unwrap()).unwrap();
    for _ in 0..3 {
        drop(tracing::start_trace(
            "never_delivered",
            StartTraceOptions::default(),
        ));
    }
    std::thread::sleep(Duration::from_millis(300));
    let report = driver.shutdown(Duration::from_millis(500));
    assert!(!report.flushed);
    let stats = report.internal.unwrap();
    assert_eq!(stats.spans_exported, 0);
    assert_eq!(stats.dropped_at_shutdown, 3, "{stats:?}");
    assert!(sink.received().is_empty());
}
