//! A receiver that answers `200` with `Content-Length: 100` and then stalls its body: the
//! exchange is bounded as a whole, so shutdown returns by its deadline and every span is
//! counted (the status said the receiver took them).

use foundations::telemetry;
use foundations::telemetry::settings::TelemetrySettings;
use foundations::telemetry::user_tracing;
use foundations_tests::Tenant;
use foundations_tests::raw::{BodyFault, FaultyReceiver};
use std::time::{Duration, Instant};

const TRACES: usize = 8;
const SPANS_PER_TRACE: usize = 10;

#[test]
fn a_stalled_response_body_cannot_outlive_the_shutdown_deadline() {
    let receiver = FaultyReceiver::start(BodyFault::Stall);
    // The default request timeout (10 s) is longer than the shutdown deadline: the abort
    // at the deadline is what ends the stalled exchange.
    let yaml = format!(
        "user_tracing:\n  socket_path: {}\n  flush_interval_ms: 20\n",
        receiver.path().display()
    );
    let driver = telemetry::init(&TelemetrySettings::from_yaml(&yaml).unwrap()).unwrap();
    for trace in 0..TRACES {
        let _root = user_tracing::start_user_trace("request", Tenant::new(trace), None);
        for _ in 1..SPANS_PER_TRACE {
            let _child = user_tracing::user_span("step");
        }
    }
    let produced = (TRACES * SPANS_PER_TRACE) as u64;
    let wait = Instant::now();
    while receiver.spans() < 1 && wait.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        receiver.requests() >= 1,
        "the receiver got a request to stall"
    );

    let started = Instant::now();
    let report = driver.shutdown(Duration::from_secs(3));
    let took = started.elapsed();
    assert!(
        took <= Duration::from_millis(3250),
        "shutdown(3 s) took {took:?}"
    );
    let stats = report.user.expect("the user exporter ran");
    // The balance: produced = exported + dropped + still queued (none after shutdown).
    assert_eq!(stats.spans_queued, produced);
    assert_eq!(stats.pending(), 0);
    assert_eq!(
        stats.spans_exported + stats.dropped(),
        produced,
        "{stats:?}"
    );
    // Whatever the receiver fully received, it answered 200 for: exported, not lost.
    assert!(stats.spans_exported >= receiver.spans() as u64, "{stats:?}");
}
