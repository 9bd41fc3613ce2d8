//! The receiver's socket does not exist for the first 2 s: spans wait in the queue and are
//! all delivered once it appears. Bodies are gzip-compressed here.

use foundations::telemetry;
use foundations::telemetry::settings::TelemetrySettings;
use foundations::telemetry::user_tracing;
use foundations_tests::{OtlpSink, Reply, Tenant, socket_path};
use std::time::{Duration, Instant};

#[test]
fn spans_wait_for_a_receiver_that_starts_late() {
    let (_dir, path) = socket_path();
    let yaml = format!(
        "user_tracing:\n  socket_path: {}\n  compression: gzip\n  flush_interval_ms: 20\n  \
         retry:\n    initial_backoff_ms: 50\n    max_backoff_ms: 400\n",
        path.display()
    );
    let driver = telemetry::init(&TelemetrySettings::from_yaml(&yaml).unwrap()).unwrap();

    for _ in 0..50 {
        let _root = user_tracing::start_user_trace("early", Tenant::new("zone"), None);
        let _child = user_tracing::user_span("child");
    }
    std::thread::sleep(Duration::from_secs(2));
    let stats = telemetry::user_exporter_stats().unwrap();
    assert_eq!(stats.spans_exported, 0, "nothing can be delivered yet");
    assert_eq!(stats.dropped(), 0, "and nothing is dropped while waiting");

    let started = Instant::now();
    let sink = OtlpSink::start_at(&path, |_| Reply::Ok);
    sink.wait_until(Duration::from_secs(20), |received| {
        received.iter().map(|r| r.spans().len()).sum::<usize>() == 100
    });
    assert!(started.elapsed() < Duration::from_secs(10));

    for request in sink.received() {
        assert_eq!(request.header("content-encoding").as_deref(), Some("gzip"));
    }
    let report = driver.shutdown(Duration::from_secs(10));
    let stats = report.user.unwrap();
    assert_eq!(stats.spans_exported, 100);
    assert_eq!(stats.dropped(), 0);
    assert!(stats.retries > 0, "connection attempts were retried");
}
