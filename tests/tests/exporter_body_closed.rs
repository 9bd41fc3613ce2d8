//! A receiver that answers `200` and closes the connection half-way through its body: the
//! spans count as exported (the status said so), the worker goes on, and later spans are
//! delivered over a new connection.

use foundations::telemetry;
use foundations::telemetry::settings::TelemetrySettings;
use foundations::telemetry::user_tracing;
use foundations_tests::Tenant;
use foundations_tests::raw::{BodyFault, FaultyReceiver};
use std::time::{Duration, Instant};

#[test]
fn a_body_cut_short_neither_loses_spans_nor_stops_the_worker() {
    let receiver = FaultyReceiver::start(BodyFault::CloseMidBody);
    let yaml = format!(
        "user_tracing:\n  socket_path: {}\n  flush_interval_ms: 20\n  request_timeout_ms: 2000\n",
        receiver.path().display()
    );
    let driver = telemetry::init(&TelemetrySettings::from_yaml(&yaml).unwrap()).unwrap();
    let mut produced = 0;
    for round in 0..3 {
        for trace in 0..4 {
            let _root = user_tracing::start_user_trace("request", Tenant::new(trace), None);
            let _child = user_tracing::user_span("step");
            produced += 2;
        }
        let wait = Instant::now();
        while receiver.spans() < produced && wait.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(receiver.spans(), produced, "round {round} delivered");
    }
    let started = Instant::now();
    let report = driver.shutdown(Duration::from_secs(3));
    assert!(started.elapsed() < Duration::from_secs(3));
    let stats = report.user.expect("the user exporter ran");
    assert_eq!(stats.spans_queued, produced as u64);
    assert_eq!(stats.spans_exported, produced as u64, "{stats:?}");
    assert_eq!(stats.dropped(), 0);
    assert!(receiver.requests() >= 3);
}
