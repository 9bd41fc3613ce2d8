//! A queue smaller than the burst: every span is accounted for exactly, exported or dropped.

use foundations::telemetry;
use foundations::telemetry::settings::TelemetrySettings;
use foundations::telemetry::user_tracing;
use foundations_tests::{OtlpSink, Tenant};
use std::time::Duration;

#[test]
fn produced_equals_exported_plus_dropped() {
    let sink = OtlpSink::start();
    let yaml = format!(
        "user_tracing:\n  socket_path: {}\n  max_queue_size: 100\n  max_batch_size: 10\n  \
         flush_interval_ms: 1000\n",
        sink.path().display()
    );
    let driver = telemetry::init(&TelemetrySettings::from_yaml(&yaml).unwrap()).unwrap();
    let produced = 5_000;
    for _ in 0..produced / 10 {
        let _root = user_tracing::start_user_trace("burst", Tenant::new("zone"), None);
        for _ in 0..9 {
            let _child = user_tracing::user_span("child");
        }
    }
    let report = driver.shutdown(Duration::from_secs(20));
    assert!(report.flushed);
    let stats = report.user.unwrap();
    assert!(
        stats.dropped_queue_full > 0,
        "the burst overflowed the queue"
    );
    assert_eq!(stats.spans_exported + stats.dropped(), produced);
    assert_eq!(stats.dropped(), stats.dropped_queue_full);
    let received: usize = sink.received().iter().map(|r| r.spans().len()).sum();
    assert_eq!(received as u64, stats.spans_exported);
}
