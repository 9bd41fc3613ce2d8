//! A receiver that closes every connection shortly after answering, without announcing it:
//! the worker notices the stale connection and opens a new one, and no request is retried,
//! failed or lost for it.

use foundations::telemetry;
use foundations::telemetry::settings::TelemetrySettings;
use foundations::telemetry::user_tracing;
use foundations_tests::Tenant;
use foundations_tests::raw::{BodyFault, FaultyReceiver};
use std::time::Duration;

#[test]
fn a_stale_keep_alive_connection_is_replaced_without_a_retry() {
    let receiver = FaultyReceiver::start(BodyFault::CloseWhenIdle);
    let yaml = format!(
        "user_tracing:\n  socket_path: {}\n  num_tasks: 1\n  flush_interval_ms: 300000\n",
        receiver.path().display()
    );
    let driver = telemetry::init(&TelemetrySettings::from_yaml(&yaml).unwrap()).unwrap();
    let mut produced = 0;
    for round in 0..5 {
        // One routing, so one request per round.
        for _ in 0..3 {
            let _root = user_tracing::start_user_trace("request", Tenant::new(7), None);
            let _child = user_tracing::user_span("step");
            produced += 2;
        }
        // One request per round, sent after a quiet time.
        assert!(
            driver.flush(Duration::from_secs(5)).flushed,
            "round {round} flushed"
        );
        assert_eq!(receiver.spans(), produced, "round {round} delivered");
        // Long enough for the receiver to have closed the connection the worker keeps.
        std::thread::sleep(Duration::from_millis(30));
    }
    let report = driver.shutdown(Duration::from_secs(3));
    let stats = report.user.expect("the user exporter ran");
    assert_eq!(stats.spans_exported, produced as u64, "{stats:?}");
    assert_eq!(stats.dropped(), 0, "{stats:?}");
    assert_eq!(
        stats.retries, 0,
        "a stale connection costs no retry: {stats:?}"
    );
    // One connection per request: each was found closed and replaced, never reused.
    assert_eq!(receiver.requests(), 5);
    assert_eq!(receiver.connections(), 5);
}
